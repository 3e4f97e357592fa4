//! Hashes and distinct-count structures kept inside map values.
//!
//! A distinct count is kept twice, cheaply:
//! * an **exact set** of up to [`SET_SLOTS`] (64) values in open-addressing slots with an
//!   occupancy mask, so counts up to 64 are exact (host hashes are 32-bit: a collision among
//!   64 hosts has probability below 10⁻⁶);
//! * a **linear-counting bitmap** of [`BITMAP_BITS`] (1024) bits that every value also sets.
//!   Past 64 values the estimate is `n̂ = −m·ln(V/m)` (Whang et al., 1990), with `m` bits and
//!   `V` of them still zero. Its standard error is `√(m(eᵗ − t − 1))/n` with `t = n/m`:
//!   2.7 % at n = 1000 and 3.4 % at n = 2000, so the estimate stays within ±10 % (three
//!   standard errors) up to about 3000 distinct values. The bitmap saturates near 7000
//!   (`m·ln m`); beyond that the count is reported as a lower bound.

/// Slots of the exact part of a distinct-count set.
pub const SET_SLOTS: usize = 64;
/// 64-bit words of the linear-counting bitmap.
pub const BITMAP_WORDS: usize = 16;
/// Bits of the linear-counting bitmap.
pub const BITMAP_BITS: usize = BITMAP_WORDS * 64;

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

/// Hash of a port number.
#[inline(always)]
pub fn port_hash(port: u16) -> u32 {
    fmix32(u32::from(port) ^ 0x9e37_79b9)
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

/// Sets the bitmap bit chosen by hash `h`.
#[inline(always)]
pub fn bitmap_insert(bits: &mut [u64; BITMAP_WORDS], h: u32) {
    let idx = (h as usize) & (BITMAP_BITS - 1);
    let word = (idx >> 6) & (BITMAP_WORDS - 1);
    let bit = 1u64 << (idx & 63);
    // Write only when the bit is new: a hot entry's cache line stays clean.
    if bits[word] & bit == 0 {
        bits[word] |= bit;
    }
}

/// Inserts `v` (with hash `h`) into the exact set. Returns nothing: a full set leaves the
/// counting to the bitmap.
#[inline(always)]
pub fn set_insert<T: Copy + PartialEq>(slots: &mut [T; SET_SLOTS], used: &mut u64, v: T, h: u32) {
    if *used == u64::MAX {
        return;
    }
    let start = (h >> 26) as usize;
    let mut i = 0;
    while i < SET_SLOTS {
        let idx = (start + i) & (SET_SLOTS - 1);
        let bit = 1u64 << idx;
        if *used & bit == 0 {
            slots[idx] = v;
            *used |= bit;
            return;
        }
        if slots[idx] == v {
            return;
        }
        i += 1;
    }
}

/// A distinct count read back from a set and its bitmap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distinct {
    /// The count (exact when `exact`, else the linear-counting estimate).
    pub value: u32,
    /// True when the count comes from the exact set.
    pub exact: bool,
    /// True when the bitmap is saturated and `value` is only a lower bound.
    pub saturated: bool,
}

/// Distinct count from an exact set's occupancy mask and its bitmap.
#[cfg(feature = "std")]
pub fn distinct(used: u64, bits: &[u64; BITMAP_WORDS]) -> Distinct {
    let exact = used.count_ones();
    if used != u64::MAX {
        return Distinct {
            value: exact,
            exact: true,
            saturated: false,
        };
    }
    let est = linear_count(bits);
    Distinct {
        value: est.value.max(SET_SLOTS as u32),
        exact: false,
        saturated: est.saturated,
    }
}

/// Distinct count from an exact set (its slots, occupancy mask and the hash of a slot value)
/// and its bitmap.
///
/// Unlike [`distinct`], a full set (64 values) still counts as exact when the bitmap holds
/// no bit beyond those of the 64 values in the set: an occupancy mask alone cannot tell 64
/// values from more, but a 65th value almost always (probability about 94 %) sets a bit of
/// its own. Past that, this is [`distinct`].
#[cfg(feature = "std")]
pub fn distinct_set<T: Copy>(
    slots: &[T; SET_SLOTS],
    used: u64,
    bits: &[u64; BITMAP_WORDS],
    hash: impl Fn(T) -> u32,
) -> Distinct {
    if used == u64::MAX {
        let mut own = [0u64; BITMAP_WORDS];
        for v in slots {
            bitmap_insert(&mut own, hash(*v));
        }
        if own == *bits {
            return Distinct {
                value: SET_SLOTS as u32,
                exact: true,
                saturated: false,
            };
        }
    }
    distinct(used, bits)
}

/// Linear-counting estimate of the distinct values that set bits in `bits`.
#[cfg(feature = "std")]
pub fn linear_count(bits: &[u64; BITMAP_WORDS]) -> Distinct {
    linear_count_bits(bits)
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
            exact: false,
            saturated: true,
        };
    }
    let n = -m * std::primitive::f64::ln(f64::from(zero) / m);
    Distinct {
        value: n.round() as u32,
        exact: false,
        saturated: false,
    }
}
