//! Byte access to a packet: the single place where kernel and host differ.

use core::mem::size_of;

/// Read access to the bytes of one packet.
///
/// The host implements it over a byte slice; the BPF programs implement it over the
/// `data`/`data_end` pointers of their context, checking the very pointer they dereference
/// (`start + off + size_of::<T>() > end`) so that the verifier can prove every access.
pub trait Packet {
    /// Length of the packet as seen by the program (the linear bytes that can be read).
    fn len(&self) -> usize;

    /// True when the packet has no bytes at all.
    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length of the packet on the wire (may exceed [`Packet::len`] for a capture snapshot
    /// or a non-linear socket buffer).
    #[inline(always)]
    fn wire_len(&self) -> usize {
        self.len()
    }

    /// Reads a `T` at byte offset `off`, or `None` when it does not fit in the packet.
    ///
    /// `T` must be plain old data made of `u8`/`[u8; N]` fields (alignment 1, every bit
    /// pattern valid).
    fn load<T: Copy>(&self, off: usize) -> Option<T>;

    /// Returns `off` unchanged. The BPF programs pass it through memory the verifier does
    /// not track, so that parse paths that differ only in a header offset (one per VLAN
    /// depth, say) continue as one path and are verified once; the classifier bounds the
    /// result again right after.
    #[inline(always)]
    fn merge_offset(&self, off: usize) -> usize {
        off
    }
}

impl Packet for [u8] {
    #[inline(always)]
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    #[inline(always)]
    fn load<T: Copy>(&self, off: usize) -> Option<T> {
        let end = off.checked_add(size_of::<T>())?;
        let bytes = self.get(off..end)?;
        // SAFETY: `bytes` holds exactly size_of::<T>() initialised bytes and callers only use
        // alignment-1 POD types, for which any bit pattern is valid.
        Some(unsafe { (bytes.as_ptr() as *const T).read_unaligned() })
    }
}

impl<P: Packet + ?Sized> Packet for &P {
    #[inline(always)]
    fn len(&self) -> usize {
        (**self).len()
    }

    #[inline(always)]
    fn wire_len(&self) -> usize {
        (**self).wire_len()
    }

    #[inline(always)]
    fn load<T: Copy>(&self, off: usize) -> Option<T> {
        (**self).load(off)
    }
}

/// A captured packet whose original length on the wire is larger than the bytes kept.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire.
    pub orig_len: usize,
}

impl Packet for Snapshot<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.data.len()
    }

    #[inline(always)]
    fn wire_len(&self) -> usize {
        self.orig_len.max(self.data.len())
    }

    #[inline(always)]
    fn load<T: Copy>(&self, off: usize) -> Option<T> {
        self.data.load(off)
    }
}
