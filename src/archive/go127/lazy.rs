//! Levels 7–9 (Go's `deflate.go`: `fillDeflate`, `findMatch`,
//! `deflateLazy`, `tryBetterMatchAtEnd`, `skipLiterals`): hash chains over
//! a 64 KiB sliding window with lazy matching. Level 9 also weighs each
//! candidate match against the Huffman cost of its bytes as literals.

use super::blocks::BlockWriter;
use super::fast::{load32, match_len};
use super::huffman::HuffmanEncoder;
use super::tokens::{LENGTH_CODES, LENGTH_EXTRA_BITS, OFFSET_EXTRA_BITS, Tokens};

const WINDOW_SIZE: i32 = 1 << 15;
const WINDOW_MASK: i32 = WINDOW_SIZE - 1;
/// Size of the window buffer the encoder gathers input in.
pub(super) const WINDOW_LEN: usize = 2 * WINDOW_SIZE as usize;
const MIN_MATCH_LENGTH: i32 = 4;
const MAX_MATCH_LENGTH: i32 = 258;
const HASH_BITS: u32 = 17;
const HASH_SIZE: usize = 1 << HASH_BITS;
const MAX_HASH_OFFSET: i32 = 1 << 28;
/// Blocks are written once they hold this many tokens.
const MAX_FLATE_BLOCK_TOKENS: usize = 1 << 15;

/// Go's `hash4u(u, hashBits)`.
#[inline(always)]
fn hash4(u: u32) -> usize {
    (u.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
}

/// The state of a level 7–9 encoder.
pub(super) struct Lazy {
    lazy: i32,
    nice: i32,
    chain: i32,
    length: i32,
    offset: i32,
    max_insert_index: i32,
    chain_head: i32,
    hash_offset: i32,
    /// Consecutive literals; wraps like Go's `uint16`.
    literal_counter: u16,
    index: i32,
    block_start: i32,
    byte_available: bool,
    hash_head: Box<[i32; HASH_SIZE]>,
    hash_prev: Box<[i32; WINDOW_SIZE as usize]>,
    /// Literal code estimate, for level 9 only.
    h: Option<Box<HuffmanEncoder>>,
}

/// What one run of the compressor works on.
struct Io<'a> {
    w: &'a mut BlockWriter,
    tokens: &'a mut Tokens,
    window: &'a [u8],
    window_end: i32,
    sync: bool,
}

impl Lazy {
    /// A fresh encoder for level 7, 8 or 9.
    pub(super) fn new(level: i32) -> Lazy {
        let (lazy, nice, chain) = match level {
            7 => (12, 16, 24),
            8 => (30, 40, 64),
            _ => (258, 258, 1024),
        };
        Lazy {
            lazy,
            nice,
            chain,
            length: MIN_MATCH_LENGTH - 1,
            offset: 0,
            max_insert_index: 0,
            chain_head: -1,
            hash_offset: 1,
            literal_counter: 0,
            index: 0,
            block_start: 0,
            byte_available: false,
            hash_head: super::fast::boxed_array(),
            hash_prev: super::fast::boxed_array(),
            h: None,
        }
    }

    /// Copies as much of `b` into the window as fits, first sliding the
    /// window down by 32 KiB once the search has passed its end.
    pub(super) fn fill(&mut self, window: &mut [u8], window_end: &mut usize, b: &[u8]) -> usize {
        if self.index >= 2 * WINDOW_SIZE - (MIN_MATCH_LENGTH + MAX_MATCH_LENGTH) {
            let half = WINDOW_SIZE as usize;
            window.copy_within(half..2 * half, 0);
            self.index -= WINDOW_SIZE;
            *window_end -= half;
            if self.block_start >= WINDOW_SIZE {
                self.block_start -= WINDOW_SIZE;
            } else {
                self.block_start = i32::MAX;
            }
            self.hash_offset += WINDOW_SIZE;
            if self.hash_offset > MAX_HASH_OFFSET {
                let delta = self.hash_offset - 1;
                self.hash_offset -= delta;
                self.chain_head -= delta;
                for v in self.hash_prev.iter_mut().chain(self.hash_head.iter_mut()) {
                    *v = (*v - delta).max(0);
                }
            }
        }
        let n = b.len().min(window.len() - *window_end);
        window[*window_end..*window_end + n].copy_from_slice(&b[..n]);
        *window_end += n;
        n
    }

    /// Records the 4 bytes at `index` in the hash chains.
    #[inline(always)]
    fn insert(&mut self, window: &[u8], index: i32) {
        let h = hash4(load32(window, index));
        let ch = self.hash_head[h];
        self.chain_head = ch;
        self.hash_prev[(index & WINDOW_MASK) as usize] = ch;
        self.hash_head[h] = index + self.hash_offset;
    }

    /// Writes the tokens gathered so far as a block ending at `index`.
    fn write_block(&mut self, io: &mut Io, index: i32) {
        if index > 0 {
            let window = if self.block_start <= index {
                io.window.get(self.block_start as usize..index as usize)
            } else {
                None
            };
            self.block_start = index;
            io.w.write_block_dynamic(io.tokens, false, window, io.sync);
        }
    }

    /// Adds a literal, writing the block when it is full.
    #[inline(always)]
    fn literal(&mut self, io: &mut Io, b: u8) {
        io.tokens.add_literal(b);
        self.flush_full(io);
    }

    /// Writes the block once it holds the most tokens allowed.
    #[inline(always)]
    fn flush_full(&mut self, io: &mut Io) {
        if io.tokens.n == MAX_FLATE_BLOCK_TOKENS {
            self.write_block(io, self.index);
            io.tokens.reset();
        }
    }

    /// Finds the longest match for `pos` along the hash chain from
    /// `prev_head`, returning `(length, offset)` (Go's `findMatch`).
    fn find_match(
        &self,
        window: &[u8],
        pos: i32,
        prev_head: i32,
        lookahead: i32,
    ) -> Option<(i32, i32)> {
        let min_match_look = lookahead.min(MAX_MATCH_LENGTH);
        let win = window.get(..(pos + min_match_look) as usize)?;
        let w_pos = &win[pos as usize..];
        let nice = self.nice.min(min_match_look);
        let mut tries = self.chain;
        let mut length = MIN_MATCH_LENGTH - 1;
        let mut w_end = w_pos[length as usize];
        let min_index = (pos - WINDOW_SIZE).max(0);
        let mut found = None;
        let mut c_gain = 4;
        let mut i = prev_head;
        while tries > 0 {
            if w_end == win[(i + length) as usize] {
                let cand = &win[i as usize..(i + min_match_look) as usize];
                let n = match_len(cand, w_pos) as i32;
                if n > length && self.gain_ok(w_pos, n, pos - i, &mut c_gain) {
                    length = n;
                    found = Some((n, pos - i));
                    if n >= nice {
                        break;
                    }
                    w_end = w_pos[n as usize];
                }
            }
            if i <= min_index {
                break;
            }
            i = self.hash_prev[(i & WINDOW_MASK) as usize] - self.hash_offset;
            if i < min_index {
                break;
            }
            tries -= 1;
        }
        found
    }

    /// For long chains (level 9): whether a match of `n` bytes at distance
    /// `dist` gains more bits over literals than the best so far.
    #[inline]
    fn gain_ok(&self, w_pos: &[u8], n: i32, dist: i32, c_gain: &mut i32) -> bool {
        const BASE_COST: i32 = 3;
        if self.chain < 100 {
            return true;
        }
        let Some(h) = &self.h else {
            return true;
        };
        // Go passes the distance itself (not distance - 1) here.
        let oc = super::tokens::offset_code(dist as u32) as usize;
        let lc = LENGTH_CODES[((n - 3) & 255) as usize] as usize;
        let new_gain = h.bit_length_raw(&w_pos[..n as usize])
            - i32::from(OFFSET_EXTRA_BITS[oc & 31])
            - BASE_COST
            - i32::from(LENGTH_EXTRA_BITS[lc & 31]);
        if new_gain <= *c_gain {
            return false;
        }
        *c_gain = new_gain;
        true
    }

    /// Compresses the window as far as it can be with the lookahead lazy
    /// matching needs, or to its end when syncing (Go's `deflateLazy`).
    pub(super) fn deflate(
        &mut self,
        w: &mut BlockWriter,
        tokens: &mut Tokens,
        window: &[u8],
        window_end: usize,
        sync: bool,
    ) {
        let mut io = Io {
            w,
            tokens,
            window,
            window_end: window_end as i32,
            sync,
        };
        if io.window_end - self.index < MIN_MATCH_LENGTH + MAX_MATCH_LENGTH && !sync {
            return;
        }
        if io.window_end != self.index && self.chain > 100 {
            // Estimate literal costs from the bytes still to be coded.
            let mut tmp = [0u16; 256];
            let to_index = &window[self.index as usize..io.window_end as usize];
            for &v in &to_index[..to_index.len().min(MAX_FLATE_BLOCK_TOKENS)] {
                tmp[v as usize] += 1;
            }
            self.h
                .get_or_insert_with(|| Box::new(HuffmanEncoder::new()))
                .generate(&tmp, 15);
        }
        self.max_insert_index = io.window_end - (MIN_MATCH_LENGTH - 1);
        loop {
            let lookahead = io.window_end - self.index;
            if lookahead < MIN_MATCH_LENGTH + MAX_MATCH_LENGTH {
                if !sync {
                    return;
                }
                if lookahead == 0 {
                    if self.byte_available {
                        io.tokens.add_literal(window[(self.index - 1) as usize]);
                        self.byte_available = false;
                    }
                    if io.tokens.n > 0 {
                        self.write_block(&mut io, self.index);
                        io.tokens.reset();
                    }
                    return;
                }
            }
            if !self.step(&mut io, lookahead) {
                return;
            }
        }
    }

    /// One position of lazy matching: emits the previous match if the one
    /// at `index` is not longer, else a literal. Returns false to stop.
    fn step(&mut self, io: &mut Io, lookahead: i32) -> bool {
        let window = io.window;
        if self.index < self.max_insert_index {
            self.insert(window, self.index);
        }
        let mut prev_length = self.length;
        let mut prev_offset = self.offset;
        self.length = MIN_MATCH_LENGTH - 1;
        self.offset = 0;
        let min_index = (self.index - WINDOW_SIZE).max(0);
        let head = self.chain_head - self.hash_offset;
        let searched = if head >= min_index && lookahead > prev_length && prev_length < self.lazy {
            self.find_match(window, self.index, head, lookahead)
        } else {
            None
        };
        if let Some((l, o)) = searched {
            self.length = l;
            self.offset = o;
        }
        if prev_length >= MIN_MATCH_LENGTH && self.length <= prev_length {
            (prev_length, prev_offset) =
                self.try_better_match_at_end(io, prev_length, prev_offset, lookahead);
            // The previous match wins; emit it.
            io.tokens
                .add_match((prev_length - 3) as u32, (prev_offset - 1) as u32);
            self.insert_match(window, prev_length);
            self.byte_available = false;
            self.length = MIN_MATCH_LENGTH - 1;
            self.flush_full(io);
            self.literal_counter = 0;
            return true;
        }
        if self.length >= MIN_MATCH_LENGTH {
            self.literal_counter = 0;
        }
        if self.byte_available {
            self.literal_counter = self.literal_counter.wrapping_add(1);
            self.literal(io, window[(self.index - 1) as usize]);
            self.index += 1;
            self.skip_literals(io);
        } else {
            self.index += 1;
            self.byte_available = true;
        }
        true
    }

    /// Hashes every position a match of `length` starting at `index - 1`
    /// covers (as far as there is lookahead) and moves past it.
    fn insert_match(&mut self, window: &[u8], length: i32) {
        let new_index = self.index + length - 1;
        let end = new_index.min(self.max_insert_index) + MIN_MATCH_LENGTH - 1;
        let start = (self.index + 1).min(self.max_insert_index);
        if end - start >= MIN_MATCH_LENGTH {
            for di in start..=end - MIN_MATCH_LENGTH {
                let h = hash4(load32(window, di));
                self.hash_prev[(di & WINDOW_MASK) as usize] = self.hash_head[h];
                self.hash_head[h] = di + self.hash_offset;
            }
        }
        self.index = new_index;
    }

    /// Checks whether a match found through the hash of the previous
    /// match's end, starting up to 2 bytes later, is longer; if so emits
    /// the skipped bytes as literals and returns that match instead.
    fn try_better_match_at_end(
        &mut self,
        io: &mut Io,
        prev_length: i32,
        prev_offset: i32,
        lookahead: i32,
    ) -> (i32, i32) {
        const CHECK_OFF: i32 = 2;
        let window = io.window;
        if prev_length >= MAX_MATCH_LENGTH - CHECK_OFF {
            return (prev_length, prev_offset);
        }
        let prev_index = self.index - 1;
        if prev_index + prev_length >= self.max_insert_index {
            return (prev_length, prev_offset);
        }
        let end = lookahead.min(MAX_MATCH_LENGTH + CHECK_OFF) + prev_index;
        let min_index = (self.index - WINDOW_SIZE).max(0);
        let h = hash4(load32(window, prev_index + prev_length));
        let ch2 = self.hash_head[h] - self.hash_offset - prev_length;
        if prev_index - ch2 == prev_offset || ch2 <= min_index + CHECK_OFF {
            return (prev_length, prev_offset);
        }
        let length = match (
            window.get((prev_index + CHECK_OFF) as usize..end as usize),
            window.get((ch2 + CHECK_OFF) as usize..),
        ) {
            (Some(a), Some(b)) => match_len(a, b) as i32,
            _ => 0,
        };
        if length <= prev_length {
            return (prev_length, prev_offset);
        }
        let mut prev_length = length;
        let prev_offset = prev_index - ch2;
        for i in (0..CHECK_OFF).rev() {
            if prev_length >= MAX_MATCH_LENGTH
                || window[(prev_index + i) as usize] != window[(ch2 + i) as usize]
            {
                // The match starts after byte i: emit the bytes before it.
                for j in 0..=i {
                    self.literal(io, window[(prev_index + j) as usize]);
                    self.index += 1;
                    if self.index < self.max_insert_index {
                        self.insert(window, self.index);
                    }
                }
                break;
            }
            prev_length += 1;
        }
        (prev_length, prev_offset)
    }

    /// In long runs of literals, emits extra literals without searching
    /// (more the longer the run), as Go's `skipLiterals`.
    fn skip_literals(&mut self, io: &mut Io) {
        let window = io.window;
        let n = i32::from(self.literal_counter) - self.chain;
        if n <= 0 {
            return;
        }
        let n = 1 + (n >> 6);
        for _ in 0..n {
            if self.index >= io.window_end - 1 {
                break;
            }
            self.literal(io, window[(self.index - 1) as usize]);
            if self.index < self.max_insert_index {
                self.insert(window, self.index);
            }
            self.index += 1;
        }
        io.tokens.add_literal(window[(self.index - 1) as usize]);
        self.byte_available = false;
        self.flush_full(io);
    }
}
