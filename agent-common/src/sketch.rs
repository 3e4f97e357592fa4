//! Hashes and the distinct-count estimate kept inside map values.
//!
//! A distinct count is a **linear-counting bitmap** that every value sets one bit of. The
//! estimate is `n̂ = −m·ln(V/m)` (Whang et al., 1990), with `m` bits and `V` of them still
//! zero; its standard error is `√(m(eᵗ − t − 1))/n` with `t = n/m`. A bitmap saturates near
//! `m·ln m`; beyond that the count is reported as a lower bound.

/// Murmur3's 32-bit finaliser: a cheap, well-mixing hash step.
#[inline(always)]
pub fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// Odd multipliers of [`absorb`] (the golden ratio's) and of the finishes (SplitMix64's).
const MUL_ABSORB: u64 = 0x9e37_79b9_7f4a_7c15;
const MUL_FINISH: u64 = 0xbf58_476d_1ce4_e5b9;

/// A 64-bit key from a 32-bit seed, for [`absorb`]'s first word.
#[inline(always)]
pub fn seed_key(seed: u32) -> u64 {
    u64::from(seed) << 32 | u64::from(seed)
}

/// Absorbs word `w` into hash state `h`: one multiply, in 64-bit registers. The hashes the
/// BPF programs compute per packet (slots, conversations, sources, senders) are chains of
/// these and a [`finish`]: in BPF every 32-bit step of [`fmix32`] also costs a
/// zero-extension, and nine of those per packet were a fifth of the programs' time.
#[inline(always)]
pub fn absorb(h: u64, w: u64) -> u64 {
    (h ^ w).wrapping_mul(MUL_ABSORB)
}

/// Absorbs an address kept as two words (`Summary::src_words`).
#[inline(always)]
pub fn absorb_addr(h: u64, a: &[u64; 2]) -> u64 {
    absorb(absorb(h, a[0]), a[1])
}

/// The 32-bit hash of state `h`, for choosing a set. The high half is folded into the low
/// one before the last multiply, so that every bit of the result depends on every bit
/// absorbed (a product's high bits depend only on its factor's lower bits). One multiply:
/// the chain of multiplies is what a packet waits for.
#[inline(always)]
pub fn finish(h: u64) -> u32 {
    ((h ^ (h >> 32)).wrapping_mul(MUL_FINISH) >> 32) as u32
}

/// The 32-bit hash of state `h` with every output bit random-like (SplitMix64's
/// finaliser), for the distinct-count bitmaps: [`finish`] spreads sequential addresses too
/// evenly over the bits, and linear counting then overestimates.
#[inline(always)]
pub fn finish_random(h: u64) -> u32 {
    let z = (h ^ (h >> 30)).wrapping_mul(MUL_FINISH);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

/// Hash of a 16-byte address.
#[inline(always)]
pub fn addr_hash(a: &[u8; 16]) -> u32 {
    let w0 = u32::from_ne_bytes([a[0], a[1], a[2], a[3]]);
    let w1 = u32::from_ne_bytes([a[4], a[5], a[6], a[7]]);
    let w2 = u32::from_ne_bytes([a[8], a[9], a[10], a[11]]);
    let w3 = u32::from_ne_bytes([a[12], a[13], a[14], a[15]]);
    fmix32(w0 ^ fmix32(w1 ^ fmix32(w2 ^ fmix32(w3 ^ 0x27d4_eb2f))))
}

/// A distinct count read back from a set and its bitmap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distinct {
    /// The linear-counting estimate.
    pub value: u32,
    /// True when the bitmap is saturated and `value` is only a lower bound.
    pub saturated: bool,
}

/// Linear-counting estimate over a bitmap of any number of words.
#[cfg(feature = "std")]
pub fn linear_count_bits(bits: &[u64]) -> Distinct {
    let set: u32 = bits.iter().map(|w| w.count_ones()).sum();
    let total = bits.len() as u32 * 64;
    let m = f64::from(total);
    let zero = total - set;
    if zero == 0 {
        // Saturated: report the bitmap's capacity as a lower bound.
        return Distinct {
            value: (m * m.ln()) as u32,
            saturated: true,
        };
    }
    let n = -m * std::primitive::f64::ln(f64::from(zero) / m);
    Distinct {
        value: n.round() as u32,
        saturated: false,
    }
}
