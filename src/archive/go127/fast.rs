//! What the level 1–6 match finders share (Go's `deflatefast.go` and
//! `load_store.go`): the history buffer with its running offset, the hash
//! functions, little-endian loads and match length counting.
//!
//! Positions are `i32`, as in Go: a hash table entry holds `position + cur`,
//! so entries made for earlier blocks stay valid while the history moves.

use super::tokens::Tokens;

/// Largest distance a match may reach back.
pub(super) const MAX_MATCH_OFFSET: i32 = 1 << 15;
/// Largest block the fast encoders are handed.
const MAX_STORE_BLOCK_SIZE: usize = 65535;
/// Size of the history buffer.
const ALLOC_HISTORY: usize = MAX_STORE_BLOCK_SIZE * 5;
/// Once `cur` reaches this, table offsets are rebased to keep clear of `i32` overflow.
pub(super) const BUFFER_RESET: i32 =
    ((1i64 << 31) - ALLOC_HISTORY as i64 - MAX_STORE_BLOCK_SIZE as i64 - 1) as i32;
/// Bytes at the end of a block that are never the start of a match search.
pub(super) const INPUT_MARGIN: i32 = 12 - 1;
/// Blocks shorter than this are not searched at all.
pub(super) const MIN_NON_LITERAL_BLOCK_SIZE: usize = 1 + 1 + INPUT_MARGIN as usize;
/// Bits of the level 1, 4, 5 and 6 tables.
pub(super) const TABLE_BITS: u32 = 15;
/// Entries of the level 1, 4, 5 and 6 tables.
pub(super) const TABLE_SIZE: usize = 1 << TABLE_BITS;

/// The history the fast encoders match against, its running offset, and
/// the block being gathered for them.
///
/// Go copies each full window into its history buffer (`hist`, capacity
/// `ALLOC_HISTORY`); here the window is gathered right behind the history,
/// in `buf[hist_len..]`, so that copy is not needed. The history moves
/// exactly when and where Go's does.
pub(super) struct FastGen {
    /// History (`..hist_len`), then the pending block.
    buf: Vec<u8>,
    /// Length of Go's `hist`.
    hist_len: usize,
    /// Offset added to history positions to make table entries.
    pub(super) cur: i32,
}

impl FastGen {
    /// An empty history.
    pub(super) fn new() -> FastGen {
        FastGen {
            buf: vec![0; ALLOC_HISTORY + MAX_STORE_BLOCK_SIZE],
            hist_len: 0,
            cur: MAX_STORE_BLOCK_SIZE as i32,
        }
    }

    /// The history, ending with the block last added.
    #[inline]
    pub(super) fn hist(&self) -> &[u8] {
        &self.buf[..self.hist_len]
    }

    /// Room for the next block (up to 64 KiB - 1).
    pub(super) fn pending_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.hist_len..self.hist_len + MAX_STORE_BLOCK_SIZE]
    }

    /// The first `n` bytes of the next block.
    pub(super) fn pending(&self, n: usize) -> &[u8] {
        &self.buf[self.hist_len..self.hist_len + n]
    }

    /// The last `n` bytes of the history (the block last added, for its length).
    pub(super) fn last(&self, n: usize) -> &[u8] {
        &self.buf[self.hist_len - n..self.hist_len]
    }

    /// Appends the `n` pending bytes to the history, first sliding the last
    /// 32 KiB down when they would not fit, and returns where they start.
    pub(super) fn add_block(&mut self, n: usize) -> i32 {
        if self.hist_len + n > ALLOC_HISTORY {
            let offset = self.hist_len - MAX_MATCH_OFFSET as usize;
            self.buf.copy_within(offset..self.hist_len + n, 0);
            self.hist_len = MAX_MATCH_OFFSET as usize;
            self.cur += offset as i32;
        }
        let s = self.hist_len as i32;
        self.hist_len += n;
        s
    }

    /// The smallest table value still in reach when rebasing, or `None`
    /// when the history is empty (tables are then simply cleared).
    pub(super) fn rebase_min(&self) -> Option<i32> {
        if self.hist_len == 0 {
            None
        } else {
            Some(self.cur + self.hist_len as i32 - MAX_MATCH_OFFSET)
        }
    }

    /// Rebases one table value (see `rebase_min`).
    #[inline]
    pub(super) fn rebase(&self, v: i32, min_off: i32) -> i32 {
        if v <= min_off {
            0
        } else {
            v - self.cur + MAX_MATCH_OFFSET
        }
    }
}

/// A position as an index; negative positions become out of range.
#[inline(always)]
pub(super) fn idx(i: i32) -> usize {
    i as u32 as usize
}

/// Little-endian `u64` at `i` (0 past the end, which the callers never reach).
#[inline(always)]
pub(super) fn load64(b: &[u8], i: i32) -> u64 {
    // Through u32, so that i + 8 cannot overflow and negative i is out of range.
    let i = i as u32 as usize;
    match b.get(i..i + 8) {
        Some(&[a0, a1, a2, a3, a4, a5, a6, a7]) => {
            u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7])
        }
        _ => 0,
    }
}

/// Little-endian `u32` at `i` (0 past the end, which the callers never reach).
#[inline(always)]
pub(super) fn load32(b: &[u8], i: i32) -> u32 {
    let i = i as u32 as usize;
    match b.get(i..i + 4) {
        Some(&[a0, a1, a2, a3]) => u32::from_le_bytes([a0, a1, a2, a3]),
        _ => 0,
    }
}

/// The byte at `i` (0 past the end, which the callers never reach).
#[inline(always)]
pub(super) fn load8(b: &[u8], i: i32) -> u8 {
    b.get(i as u32 as usize).copied().unwrap_or(0)
}

/// Hash of the low 4 bytes of `u` into `B` bits.
#[inline(always)]
pub(super) fn hash4<const B: u32>(u: u64) -> usize {
    ((u as u32).wrapping_mul(2_654_435_761) >> (32 - B)) as usize
}

/// Hash of the low 5 bytes of `u` into `B` bits.
#[inline(always)]
pub(super) fn hash5<const B: u32>(u: u64) -> usize {
    ((u << 24).wrapping_mul(889_523_592_379) >> (64 - B)) as usize
}

/// Hash of the low 7 bytes of `u` into `B` bits.
#[inline(always)]
pub(super) fn hash7<const B: u32>(u: u64) -> usize {
    ((u << 8).wrapping_mul(58_295_818_150_454_627) >> (64 - B)) as usize
}

/// Length of the common prefix of `a` and `b` (at most `a.len()`).
#[inline(always)]
pub(super) fn match_len(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    while i + 8 <= n {
        let diff = le64(a, i) ^ le64(b, i);
        if diff != 0 {
            return i + (diff.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Little-endian `u64` at `i` of `s` (0 past the end, which callers avoid).
#[inline(always)]
fn le64(s: &[u8], i: usize) -> u64 {
    match s.get(i..i + 8) {
        Some(&[a0, a1, a2, a3, a4, a5, a6, a7]) => {
            u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7])
        }
        _ => 0,
    }
}

/// Match length between positions `s` and `t` of `src`, up to the end.
#[inline(always)]
pub(super) fn match_len_long(src: &[u8], s: i32, t: i32) -> i32 {
    match (src.get(idx(s)..), src.get(idx(t)..)) {
        (Some(a), Some(b)) => match_len(a, b) as i32,
        _ => 0,
    }
}

/// Match length between positions `s` and `t` of `src`, at most 254.
#[inline(always)]
pub(super) fn match_len_limited(src: &[u8], s: i32, t: i32) -> i32 {
    let s = idx(s);
    let end = (s + 258 - 4).min(src.len());
    match (src.get(s..end), src.get(idx(t)..)) {
        (Some(a), Some(b)) => match_len(a, b) as i32,
        _ => 0,
    }
}

/// Adds the literals `src[from..]` unless the block has no tokens at all
/// (an encoder that found nothing leaves the block to be stored).
#[inline]
pub(super) fn emit_remainder(dst: &mut Tokens, src: &[u8], from: i32) {
    let rest = src.get(idx(from)..).unwrap_or_default();
    if !rest.is_empty() && dst.n != 0 {
        dst.add_literals(rest);
    }
}

/// Allocates a zeroed boxed array without building it on the stack.
pub(super) fn boxed_array<T: Copy + Default, const N: usize>() -> Box<[T; N]> {
    let v: Box<[T]> = vec![T::default(); N].into_boxed_slice();
    match v.try_into() {
        Ok(a) => a,
        Err(_) => unreachable!("vector has exactly N elements"),
    }
}
