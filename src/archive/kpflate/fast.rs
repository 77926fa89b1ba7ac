//! Shared machinery of the fast (level 1-6) encoders (klauspost `fast_encoder.go`):
//! the history buffer with its moving base offset `cur`, hashes, loads and
//! match length helpers.

use super::MAX_STORE_BLOCK_SIZE;
use super::tokens::Tokens;

/// Bits of the small hash tables.
pub(super) const TABLE_BITS: u8 = 15;
/// Entries in the small hash tables.
pub(super) const TABLE_SIZE: usize = 1 << TABLE_BITS;
/// Bits of the big hash tables.
pub(super) const B_TABLE_BITS: u8 = 17;
/// Entries in the big hash tables.
pub(super) const B_TABLE_SIZE: usize = 1 << B_TABLE_BITS;
/// Largest match distance.
pub(super) const MAX_MATCH_OFFSET: i32 = 1 << 15;
/// Size of the history buffer.
const ALLOC_HISTORY: usize = MAX_STORE_BLOCK_SIZE * 5;
/// `cur` is rebased once it reaches this.
pub(super) const BUFFER_RESET: i32 = i32::MAX - ALLOC_HISTORY as i32 - MAX_STORE_BLOCK_SIZE as i32;

const PRIME3BYTES: u32 = 506_832_829;
const PRIME4BYTES: u32 = 2_654_435_761;
const PRIME5BYTES: u64 = 889_523_592_379;
const PRIME6BYTES: u64 = 227_718_039_650_203;
const PRIME7BYTES: u64 = 58_295_818_150_454_627;
const PRIME8BYTES: u64 = 0xcf1b_bcdc_b7a5_6463;

/// Index mask for the history buffer: every position Go touches is below
/// `ALLOC_HISTORY`, so masking never changes an index; it only lets loads skip
/// bounds checks.
pub(super) const HIST_MASK: usize = (1 << 19) - 1;
/// The history buffer: `ALLOC_HISTORY` (< `HIST_MASK`) bytes used, plus room
/// for an 8-byte load at any masked index.
pub(super) type HistBuf = [u8; HIST_MASK + 1 + 8];

/// History shared by the fast encoders (`fastGen`).
pub(super) struct FastGen {
    /// Buffered history: `buf[..len]`.
    pub(super) buf: Box<HistBuf>,
    /// Number of history bytes (`len(e.hist)`); at most `ALLOC_HISTORY`.
    pub(super) len: usize,
    /// Absolute offset of `hist[0]` as stored in the hash tables.
    pub(super) cur: i32,
}

impl FastGen {
    pub(super) fn new() -> FastGen {
        FastGen {
            buf: zeroed_box(),
            len: 0,
            cur: MAX_STORE_BLOCK_SIZE as i32,
        }
    }

    /// The history as a slice.
    #[inline(always)]
    pub(super) fn hist(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Go's `addBlock`: appends the input to the history (sliding the last
    /// 32 KiB down to the start first when it would not fit) and returns where
    /// the input starts in the history, and its length.
    pub(super) fn add(&mut self, input: Input<'_>) -> (i32, usize) {
        let n = match input {
            Input::Slice(src) => src.len(),
            Input::Staged(n) => n,
        };
        if self.len + n > ALLOC_HISTORY {
            let offset = self.len - MAX_MATCH_OFFSET as usize;
            // Staged input sits right after the history and moves with it.
            let end = match input {
                Input::Slice(_) => self.len,
                Input::Staged(n) => self.len + n,
            };
            self.buf.copy_within(offset..end, 0);
            self.cur += offset as i32;
            self.len = MAX_MATCH_OFFSET as usize;
        }
        let s = self.len;
        if let Input::Slice(src) = input {
            self.buf[s..s + n].copy_from_slice(src);
        }
        self.len += n;
        (s as i32, n)
    }

    /// The staging area right after the history, where the compressor
    /// collects its window (room for `MAX_STORE_BLOCK_SIZE` bytes).
    pub(super) fn staging(&mut self) -> &mut [u8] {
        let start = self.len;
        &mut self.buf[start..start + MAX_STORE_BLOCK_SIZE]
    }

    /// `n` bytes of the staging area.
    pub(super) fn staged(&self, n: usize) -> &[u8] {
        &self.buf[self.len..self.len + n]
    }

    /// `Reset`: moves `cur` past everything so no old entry can match.
    pub(super) fn reset(&mut self) {
        if self.cur <= BUFFER_RESET {
            self.cur += MAX_MATCH_OFFSET + self.len as i32;
        }
        self.len = 0;
    }

    /// The wraparound guard at the top of every `Encode`: when `cur` has grown
    /// too big, sets it back to `MAX_MATCH_OFFSET` and says how the caller must
    /// fix its tables.
    pub(super) fn guard_wrap(&mut self) -> Wrap {
        if self.cur < BUFFER_RESET {
            return Wrap::None;
        }
        let action = if self.len == 0 {
            Wrap::Clear
        } else {
            Wrap::Rebase {
                min_off: self.cur + self.len as i32 - MAX_MATCH_OFFSET,
                cur: self.cur,
            }
        };
        self.cur = MAX_MATCH_OFFSET;
        action
    }
}

/// Input to an `Encode` call.
#[derive(Clone, Copy)]
pub(super) enum Input<'a> {
    /// Bytes from elsewhere (a dictionary): copied into the history.
    Slice(&'a [u8]),
    /// This many bytes already in the staging area after the history.
    Staged(usize),
}

/// What [`FastGen::guard_wrap`] asks of the tables.
pub(super) enum Wrap {
    /// Nothing to do.
    None,
    /// Zero every entry.
    Clear,
    /// Rebase every entry with [`rebase_entry`].
    Rebase { min_off: i32, cur: i32 },
}

/// One rebased table entry: 0 when out of reach, else relative to the new `cur`.
#[inline(always)]
pub(super) fn rebase_entry(v: i32, min_off: i32, cur: i32) -> i32 {
    if v <= min_off {
        0
    } else {
        v - cur + MAX_MATCH_OFFSET
    }
}

/// A long-table bucket: newest position in the low half, previous in the
/// high half (Go's `tableEntryPrev`), so a push is one 8-byte store.
#[derive(Clone, Copy, Default)]
pub(super) struct EntryPrev(u64);

impl EntryPrev {
    pub(super) fn new(cur: i32, prev: i32) -> EntryPrev {
        EntryPrev(u64::from(cur as u32) | (u64::from(prev as u32) << 32))
    }

    /// Newest position.
    #[inline(always)]
    pub(super) fn cur(self) -> i32 {
        self.0 as u32 as i32
    }

    /// Previous position.
    #[inline(always)]
    pub(super) fn prev(self) -> i32 {
        (self.0 >> 32) as u32 as i32
    }

    /// This bucket with `v` pushed as the newest entry.
    #[inline(always)]
    pub(super) fn pushed(self, v: i32) -> EntryPrev {
        EntryPrev((self.0 << 32) | u64::from(v as u32))
    }

    /// Rebases both entries after a wraparound (levels 5 and 6: `prev` is
    /// dropped with `cur`).
    pub(super) fn rebased(self, min_off: i32, cur: i32) -> EntryPrev {
        if self.cur() <= min_off {
            EntryPrev(0)
        } else {
            EntryPrev::new(
                self.cur() - cur + MAX_MATCH_OFFSET,
                rebase_entry(self.prev(), min_off, cur),
            )
        }
    }

    /// Rebases each entry on its own after a wraparound (level 3).
    pub(super) fn rebased_each(self, min_off: i32, cur: i32) -> EntryPrev {
        EntryPrev::new(
            rebase_entry(self.cur(), min_off, cur),
            rebase_entry(self.prev(), min_off, cur),
        )
    }
}

/// A zeroed table on the heap (without building it on the stack first).
pub(super) fn zeroed_box<T: Copy + Default, const N: usize>() -> Box<[T; N]> {
    let v: Box<[T]> = vec![T::default(); N].into_boxed_slice();
    match v.try_into() {
        Ok(b) => b,
        Err(_) => unreachable!("a vector of N elements converts to [T; N]"),
    }
}

/// Go's `emitRemainder`: the literals after the last match, unless the block
/// produced no tokens at all (then the caller stores it).
pub(super) fn emit_remainder(dst: &mut Tokens, src: &[u8], next_emit: i32) {
    if (next_emit as usize) < src.len() {
        if dst.n() == 0 {
            return;
        }
        dst.emit_literals(&src[next_emit as usize..]);
    }
}

/// Little-endian u64 at history position `i`.
#[inline(always)]
pub(super) fn load64(b: &HistBuf, i: i32) -> u64 {
    let i = i as usize & HIST_MASK;
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

/// Little-endian u32 at history position `i`.
#[inline(always)]
pub(super) fn load32(b: &HistBuf, i: i32) -> u32 {
    let i = i as usize & HIST_MASK;
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(a)
}

/// The history byte at position `i`.
#[inline(always)]
pub(super) fn byte_at(b: &HistBuf, i: i32) -> u8 {
    b[i as usize & HIST_MASK]
}

/// Hash of the low 7 bytes of `u` into `h` bits.
#[inline(always)]
pub(super) fn hash7(u: u64, h: u8) -> usize {
    ((u << 8).wrapping_mul(PRIME7BYTES) >> ((64 - h) & 63)) as usize
}

/// Hash of the low `mls` bytes of `u` into `length` bits (`hashLen`).
#[inline(always)]
pub(super) fn hash_len(u: u64, length: u8, mls: u8) -> usize {
    match mls {
        3 => ((((u as u32) << 8).wrapping_mul(PRIME3BYTES)) >> (32 - length)) as usize,
        5 => ((u << 24).wrapping_mul(PRIME5BYTES) >> (64 - length)) as usize,
        6 => ((u << 16).wrapping_mul(PRIME6BYTES) >> (64 - length)) as usize,
        7 => ((u << 8).wrapping_mul(PRIME7BYTES) >> (64 - length)) as usize,
        8 => (u.wrapping_mul(PRIME8BYTES) >> (64 - length)) as usize,
        _ => ((u as u32).wrapping_mul(PRIME4BYTES) >> (32 - length)) as usize,
    }
}

/// Go's `matchLen(src[a:end], src[b:])` for `b < a`: the number of equal
/// leading bytes, at most `end - a`.
#[inline(always)]
pub(super) fn match_len_at(buf: &HistBuf, end: usize, a: i32, b: i32) -> i32 {
    let (a, b) = (a as usize, b as usize);
    let avail = end.saturating_sub(a);
    let mut n = 0usize;
    while n + 8 <= avail {
        let diff = load64(buf, (a + n) as i32) ^ load64(buf, (b + n) as i32);
        if diff != 0 {
            return (n + (diff.trailing_zeros() >> 3) as usize) as i32;
        }
        n += 8;
    }
    while n < avail && buf[(a + n) & HIST_MASK] == buf[(b + n) & HIST_MASK] {
        n += 1;
    }
    n as i32
}

/// `matchlen`: match length of positions `s` and `t` (history length `len`),
/// capped at 254.
#[inline(always)]
pub(super) fn matchlen(buf: &HistBuf, len: usize, s: i32, t: i32) -> i32 {
    let end = (s as usize + 258 - 4).min(len);
    match_len_at(buf, end, s, t)
}

/// `matchlenLong`: uncapped match length of positions `s` and `t`.
#[inline(always)]
pub(super) fn matchlen_long(buf: &HistBuf, len: usize, s: i32, t: i32) -> i32 {
    match_len_at(buf, len, s, t)
}
