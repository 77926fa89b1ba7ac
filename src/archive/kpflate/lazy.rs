//! Levels 7–9 (klauspost `deflate.go`: `fillDeflate`, `fillWindow`,
//! `findMatch`, `deflateLazy`, `writeBlock`): hash chains over a 64 KiB
//! sliding window with lazy matching, a check for a longer match ending where
//! the previous one ends, literal skipping after long runs without matches,
//! and (level 9) a Huffman-cost estimate to choose among candidates.

use super::bit_writer::BitWriter;
use super::fast::zeroed_box;
use super::huffman::{HuffmanEncoder, hlen};
use super::tokens::{LENGTH_CODES, LENGTH_EXTRA_BITS, OFFSET_EXTRA_BITS, Tokens, offset_code};

const WINDOW_SIZE: usize = 1 << 15;
const WINDOW_MASK: usize = WINDOW_SIZE - 1;
/// Size of the sliding window buffer (`2 * windowSize`).
pub(super) const LAZY_WINDOW: usize = 2 * WINDOW_SIZE;
const MIN_MATCH_LENGTH: i64 = 4;
const MAX_MATCH_LENGTH: i64 = 258;
const HASH_BITS: u32 = 17;
const HASH_SIZE: usize = 1 << HASH_BITS;
pub(super) const MAX_HASH_OFFSET: i64 = 1 << 28;
const MAX_FLATE_BLOCK_TOKENS: usize = 1 << 15;
const PRIME4BYTES: u32 = 2_654_435_761;
/// Go's `math.MaxInt32` marker for "block start slid out of the window".
const NO_BLOCK_START: i64 = i32::MAX as i64;

/// Go's `hash4`: the 17-bit hash of the 4 bytes at `b[i..]`.
#[inline(always)]
fn hash4(b: &[u8], i: usize) -> usize {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[i..i + 4]);
    (u32::from_le_bytes(a).wrapping_mul(PRIME4BYTES) >> (32 - HASH_BITS)) as usize
}

/// Go's `matchLen(a, b)`: equal leading bytes, at most `a.len()`.
#[inline(always)]
fn match_len(a: &[u8], b: &[u8]) -> i64 {
    let b = &b[..a.len().min(b.len())];
    let mut n = 0usize;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let (mut xa, mut ya) = ([0u8; 8], [0u8; 8]);
        xa.copy_from_slice(x);
        ya.copy_from_slice(y);
        let diff = u64::from_le_bytes(xa) ^ u64::from_le_bytes(ya);
        if diff != 0 {
            return (n + (diff.trailing_zeros() >> 3) as usize) as i64;
        }
        n += 8;
    }
    let tail = a[n..].iter().zip(&b[n..]).take_while(|(x, y)| x == y);
    (n + tail.count()) as i64
}

/// Where the compressed output of a step goes.
pub(super) struct Sink<'a> {
    pub(super) tokens: &'a mut Tokens,
    pub(super) w: &'a mut BitWriter,
    pub(super) out: &'a mut Vec<u8>,
    pub(super) sync: bool,
}

/// Lazy-matching state (`advancedState` plus the compressor's window).
pub(super) struct Lazy {
    lazy: i64,
    nice: i64,
    chain: i64,
    window: Box<[u8; LAZY_WINDOW]>,
    pub(super) window_end: i64,
    block_start: i64,
    index: i64,
    hash_offset: i64,
    chain_head: i64,
    length: i64,
    offset: i64,
    max_insert_index: i64,
    /// Literals since the last match; wraps, as Go's `uint16` does.
    ii: u16,
    byte_available: bool,
    hash_head: Box<[u32; HASH_SIZE]>,
    hash_prev: Box<[u32; WINDOW_SIZE]>,
    /// Literal code of the pending window, for level 9's cost estimate.
    h: Option<Box<HuffmanEncoder>>,
}

impl Lazy {
    /// State for `level` (7, 8 or 9).
    pub(super) fn new(level: i32) -> Option<Lazy> {
        let (lazy, nice, chain) = match level {
            7 => (12, 16, 24),
            8 => (30, 40, 64),
            9 => (258, 258, 1024),
            _ => return None,
        };
        Some(Lazy {
            lazy,
            nice,
            chain,
            window: zeroed_box(),
            window_end: 0,
            block_start: 0,
            index: 0,
            hash_offset: 1,
            chain_head: -1,
            length: MIN_MATCH_LENGTH - 1,
            offset: 0,
            max_insert_index: 0,
            ii: 0,
            byte_available: false,
            hash_head: zeroed_box(),
            hash_prev: zeroed_box(),
            h: None,
        })
    }

    /// Starts the hash positions at `offset` instead of 1 (tests the rebase
    /// near `MAX_HASH_OFFSET`, which must not change the output).
    #[cfg(test)]
    pub(super) fn set_hash_offset(&mut self, offset: i64) {
        self.hash_offset = offset;
    }

    /// Go's `reset` for the lazy levels.
    pub(super) fn reset(&mut self) {
        self.chain_head = -1;
        self.hash_head.fill(0);
        self.hash_prev.fill(0);
        self.hash_offset = 1;
        self.index = 0;
        self.window_end = 0;
        self.block_start = 0;
        self.byte_available = false;
        self.length = MIN_MATCH_LENGTH - 1;
        self.offset = 0;
        self.ii = 0;
        self.max_insert_index = 0;
    }

    /// Go's `fillWindow`: puts (the last 32 KiB of) `dict` in the window and
    /// hashes every position. Only valid right after [`Lazy::reset`].
    pub(super) fn fill_window(&mut self, dict: &[u8]) {
        let b = &dict[dict.len().saturating_sub(WINDOW_SIZE)..];
        let n = b.len();
        self.window[..n].copy_from_slice(b);
        for di in 0..n.saturating_sub(3) {
            let h = hash4(&self.window[..], di);
            self.hash_prev[di & WINDOW_MASK] = self.hash_head[h];
            self.hash_head[h] = (di as i64 + self.hash_offset) as u32;
        }
        self.window_end += n as i64;
        self.index = n as i64;
    }

    /// Go's `fillDeflate`: slides the window when needed, then copies in as
    /// much of `b` as fits. Returns the number of bytes taken.
    pub(super) fn fill(&mut self, b: &[u8]) -> usize {
        if self.index >= (2 * WINDOW_SIZE) as i64 - (MIN_MATCH_LENGTH + MAX_MATCH_LENGTH) {
            self.window.copy_within(WINDOW_SIZE.., 0);
            let ws = WINDOW_SIZE as i64;
            self.index -= ws;
            self.window_end -= ws;
            if self.block_start >= ws {
                self.block_start -= ws;
            } else {
                self.block_start = NO_BLOCK_START;
            }
            self.hash_offset += ws;
            if self.hash_offset > MAX_HASH_OFFSET {
                let delta = self.hash_offset - 1;
                self.hash_offset -= delta;
                self.chain_head -= delta;
                for v in self.hash_prev.iter_mut().chain(self.hash_head.iter_mut()) {
                    *v = if i64::from(*v) > delta {
                        (i64::from(*v) - delta) as u32
                    } else {
                        0
                    };
                }
            }
        }
        let start = self.window_end as usize;
        let n = b.len().min(LAZY_WINDOW - start);
        self.window[start..start + n].copy_from_slice(&b[..n]);
        self.window_end += n as i64;
        n
    }

    /// Inserts position `i` into the hash chains.
    #[inline(always)]
    fn insert(&mut self, i: i64) -> u32 {
        let h = hash4(&self.window[..], i as usize);
        let ch = self.hash_head[h];
        self.hash_prev[i as usize & WINDOW_MASK] = ch;
        self.hash_head[h] = (i + self.hash_offset) as u32;
        ch
    }

    /// Go's `writeBlock`: writes the queued tokens, which cover the window
    /// from the block start to `index`.
    fn write_block(&mut self, k: &mut Sink<'_>, index: i64) {
        if index > 0 {
            let window = if self.block_start <= index {
                Some(&self.window[self.block_start as usize..index as usize])
            } else {
                None
            };
            self.block_start = index;
            k.w.write_block_dynamic(k.tokens, false, window, k.sync, k.out);
        }
        k.tokens.reset();
    }

    /// Writes the block once the token buffer is full.
    #[inline(always)]
    fn write_block_if_full(&mut self, k: &mut Sink<'_>) {
        if k.tokens.n() == MAX_FLATE_BLOCK_TOKENS {
            self.write_block(k, self.index);
        }
    }

    /// Go's `deflateLazy`: tokenises the window while enough lookahead is
    /// left (or everything, on sync).
    pub(super) fn step(&mut self, k: &mut Sink<'_>) {
        if self.window_end - self.index < MIN_MATCH_LENGTH + MAX_MATCH_LENGTH && !k.sync {
            return;
        }
        if self.window_end != self.index && self.chain > 100 {
            // Literal code of what is left, for the cost estimate.
            let mut tmp = [0u16; 256];
            for &v in &self.window[self.index as usize..self.window_end as usize] {
                tmp[usize::from(v)] = tmp[usize::from(v)].wrapping_add(1);
            }
            self.h
                .get_or_insert_with(|| Box::new(HuffmanEncoder::new()))
                .generate(&tmp, 15);
        }
        self.max_insert_index = self.window_end - (MIN_MATCH_LENGTH - 1);
        loop {
            let lookahead = self.window_end - self.index;
            if lookahead < MIN_MATCH_LENGTH + MAX_MATCH_LENGTH {
                if !k.sync {
                    return;
                }
                if lookahead == 0 {
                    if self.byte_available {
                        k.tokens.add_literal(self.window[self.index as usize - 1]);
                        self.byte_available = false;
                    }
                    if k.tokens.n() > 0 {
                        self.write_block(k, self.index);
                    }
                    return;
                }
            }
            if self.index < self.max_insert_index {
                self.chain_head = i64::from(self.insert(self.index));
            }
            let prev_length = self.length;
            let prev_offset = self.offset;
            self.length = MIN_MATCH_LENGTH - 1;
            self.offset = 0;
            let min_index = (self.index - WINDOW_SIZE as i64).max(0);
            let prev_head = self.chain_head - self.hash_offset;
            if prev_head >= min_index
                && lookahead > prev_length
                && prev_length < self.lazy
                && let Some((length, offset)) = self.find_match(self.index, prev_head, lookahead)
            {
                self.length = length;
                self.offset = offset;
            }
            if prev_length >= MIN_MATCH_LENGTH && self.length <= prev_length {
                self.emit_prev_match(k, (prev_length, prev_offset), lookahead, min_index);
            } else {
                self.literal_step(k);
            }
        }
    }

    /// The previous position's match is at least as good: emit it (after
    /// checking for a longer match ending at the same place) and hash the
    /// positions it covers.
    fn emit_prev_match(
        &mut self,
        k: &mut Sink<'_>,
        prev: (i64, i64),
        lookahead: i64,
        min_index: i64,
    ) {
        const CHECK_OFF: i64 = 2;
        let (mut prev_length, mut prev_offset) = prev;
        let prev_index = self.index - 1;
        if prev_index + prev_length + CHECK_OFF < self.max_insert_index {
            let end = lookahead.min(MAX_MATCH_LENGTH) + prev_index;
            let idx = prev_index + prev_length - (4 - CHECK_OFF);
            let h = hash4(&self.window[..], idx as usize);
            let ch2 =
                i64::from(self.hash_head[h]) - self.hash_offset - prev_length + (4 - CHECK_OFF);
            if ch2 > min_index {
                let w = &self.window[..];
                let length = match_len(&w[prev_index as usize..end as usize], &w[ch2 as usize..]);
                if length > prev_length {
                    prev_length = length;
                    prev_offset = prev_index - ch2;
                }
            }
        }
        k.tokens
            .add_match((prev_length - 3) as u32, (prev_offset - 1) as u32);
        // Insert every position covered by the match that is not yet hashed.
        let new_index = self.index + prev_length - 1;
        let end = new_index.min(self.max_insert_index) + MIN_MATCH_LENGTH - 1;
        let start = (self.index + 1).min(self.max_insert_index);
        for di in start..end - (MIN_MATCH_LENGTH - 1) {
            self.insert(di);
        }
        self.index = new_index;
        self.byte_available = false;
        self.length = MIN_MATCH_LENGTH - 1;
        self.write_block_if_full(k);
        self.ii = 0;
    }

    /// No match taken here: emit the pending literal, and after a long run
    /// without matches skip ahead emitting literals.
    fn literal_step(&mut self, k: &mut Sink<'_>) {
        if self.length >= MIN_MATCH_LENGTH {
            self.ii = 0;
        }
        if !self.byte_available {
            self.index += 1;
            self.byte_available = true;
            return;
        }
        self.ii = self.ii.wrapping_add(1);
        k.tokens.add_literal(self.window[self.index as usize - 1]);
        self.write_block_if_full(k);
        self.index += 1;
        let n = i64::from(self.ii) - self.chain;
        if n > 0 {
            for _ in 0..1 + (n >> 6) {
                if self.index >= self.window_end - 1 {
                    break;
                }
                k.tokens.add_literal(self.window[self.index as usize - 1]);
                self.write_block_if_full(k);
                if self.index < self.max_insert_index {
                    self.chain_head = i64::from(self.insert(self.index));
                }
                self.index += 1;
            }
            k.tokens.add_literal(self.window[self.index as usize - 1]);
            self.byte_available = false;
            self.write_block_if_full(k);
        }
    }

    /// Go's `findMatch`: walks the hash chain from `prev_head` for a match at
    /// `pos` longer than 3 bytes; level 9 weighs candidates by estimated gain.
    fn find_match(&self, pos: i64, prev_head: i64, lookahead: i64) -> Option<(i64, i64)> {
        const BASE_COST: i64 = 6;
        let min_match_look = lookahead.min(MAX_MATCH_LENGTH);
        let win = &self.window[..(pos + min_match_look) as usize];
        let nice = min_match_look.min(self.nice);
        let w_pos = &win[pos as usize..];
        let min_index = (pos - WINDOW_SIZE as i64).max(0);
        let gain_mode = self.chain >= 100;
        let (mut length, mut offset, mut ok, mut c_gain) = (MIN_MATCH_LENGTH - 1, 0, false, 0i64);
        let mut w_end = win[(pos + length) as usize];
        let mut i = prev_head;
        let mut tries = self.chain;
        while tries > 0 {
            if w_end == win[(i + length) as usize] {
                let n = match_len(&win[i as usize..(i + min_match_look) as usize], w_pos);
                let better = if !gain_mode {
                    n > length
                } else if n > length {
                    let gain = self.bit_length_raw(&w_pos[..n as usize])
                        - i64::from(OFFSET_EXTRA_BITS[offset_code((pos - i) as u32) as usize])
                        - BASE_COST
                        - i64::from(
                            LENGTH_EXTRA_BITS[usize::from(LENGTH_CODES[((n - 3) & 255) as usize])],
                        );
                    let better = gain > c_gain;
                    if better {
                        c_gain = gain;
                    }
                    better
                } else {
                    false
                };
                if better {
                    length = n;
                    offset = pos - i;
                    ok = true;
                    if n >= nice {
                        break;
                    }
                    w_end = win[(pos + n) as usize];
                }
            }
            if i <= min_index {
                break;
            }
            i = i64::from(self.hash_prev[i as usize & WINDOW_MASK]) - self.hash_offset;
            if i < min_index {
                break;
            }
            tries -= 1;
        }
        ok.then_some((length, offset))
    }

    /// Bits to code `b` as literals with the window's literal code.
    fn bit_length_raw(&self, b: &[u8]) -> i64 {
        self.h.as_ref().map_or(0, |h| {
            b.iter()
                .map(|&v| i64::from(hlen(h.codes[usize::from(v)])))
                .sum()
        })
    }
}
