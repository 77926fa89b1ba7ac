//! The sliding window of the levels 2–9 matcher and the loads, hashes and
//! comparisons done on it.

/// Size of one window half: the largest match distance.
pub(super) const WINDOW_SIZE: usize = 1 << 15;
/// Masks a position to its slot in per-position rings.
pub(super) const WINDOW_MASK: usize = WINDOW_SIZE - 1;
/// Bits of Go's `hash4`.
pub(super) const HASH_BITS: u32 = 17;
/// Buckets of Go's `hash4`.
pub(super) const HASH_SIZE: usize = 1 << HASH_BITS;
/// Masks a hash to its bucket.
pub(super) const HASH_MASK: usize = HASH_SIZE - 1;

/// The window buffer: two window halves plus slack so that 8-byte loads
/// starting inside the window never leave the array.
pub(super) const WINDOW_ALLOC: usize = 2 * WINDOW_SIZE + 8;
pub(super) type Window = [u8; WINDOW_ALLOC];
/// Masks a load position into the window (positions are always below
/// `2 * WINDOW_SIZE`; the mask only lets the compiler drop bounds checks).
pub(super) const POS_MASK: usize = 2 * WINDOW_SIZE - 1;

/// A zeroed array on the heap (without building it on the stack first).
pub(super) fn zeroed<T: Copy + Default, const N: usize>() -> Box<[T; N]> {
    match vec![T::default(); N].into_boxed_slice().try_into() {
        Ok(array) => array,
        Err(_) => unreachable!("a vec of N elements converts to [T; N]"),
    }
}

/// The four bytes at `i`, little-endian.
#[inline(always)]
pub(super) fn load32(win: &Window, i: usize) -> u32 {
    let i = i & POS_MASK;
    u32::from_le_bytes([win[i], win[i + 1], win[i + 2], win[i + 3]])
}

/// The eight bytes at `i`, little-endian.
#[inline(always)]
pub(super) fn load64(win: &Window, i: usize) -> u64 {
    let i = i & POS_MASK;
    u64::from_le_bytes(win[i..i + 8].try_into().unwrap_or([0; 8]))
}

/// Go's `hash4` of the bytes at `i`: the top 17 bits of their big-endian
/// word times a constant.
#[inline(always)]
pub(super) fn hash4(win: &Window, i: usize) -> usize {
    (load32(win, i).swap_bytes().wrapping_mul(0x1e35_a7bd) >> (32 - HASH_BITS)) as usize
}

/// Number of equal leading bytes at `a` and `b`, at most `max`. Both
/// ranges lie inside the window; the 8-byte loads may read slack beyond.
#[inline(always)]
pub(super) fn match_len(win: &Window, a: usize, b: usize, max: usize) -> usize {
    let mut n = 0;
    while n < max {
        let diff = load64(win, a + n) ^ load64(win, b + n);
        if diff != 0 {
            return (n + (diff.trailing_zeros() / 8) as usize).min(max);
        }
        n += 8;
    }
    max
}
