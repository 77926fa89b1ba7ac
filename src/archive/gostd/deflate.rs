//! Levels 2–9: Go's hash-chain LZ77 compressor (`compressor.deflate` and
//! friends in `deflate.go`) over a sliding 2 × 32 KiB window. Levels 2–3
//! take the first good match greedily; levels 4–9 defer each match by one
//! byte to see whether the next position matches better ("lazy" matching).

use super::bit_writer::BitWriter;
use super::token::{Token, literal_token, match_token};
use super::window::{
    HASH_MASK, HASH_SIZE, POS_MASK, WINDOW_MASK, WINDOW_SIZE, Window, hash4, load32, match_len,
    zeroed,
};

/// Shortest match Go emits.
const MIN_MATCH_LENGTH: usize = 4;
const MAX_MATCH_LENGTH: usize = 258;
/// Go writes a block once it has queued this many tokens.
const MAX_FLATE_BLOCK_TOKENS: usize = 1 << 14;
/// Hash chain values are rebased once the offset passes this.
const MAX_HASH_OFFSET: usize = 1 << 24;
/// `fast_skip_hashing` of the lazy levels: always hash every position.
const SKIP_NEVER: usize = i32::MAX as usize;
/// Go's `math.MaxInt32` marker for "this block's bytes left the window".
const BLOCK_START_GONE: usize = i32::MAX as usize;
/// `hash_prev` entry for a previous position at least this far back (or
/// none); more than any chain step the search can take.
const FAR: u16 = u16::MAX;
/// Lookahead the matcher wants before it works on a position.
const MIN_LOOKAHEAD: usize = MIN_MATCH_LENGTH + MAX_MATCH_LENGTH;

/// Match-search tuning of one level: Go's `compressionLevel`.
#[derive(Clone, Copy)]
struct Params {
    /// Search only a quarter of the chain once a match is this long.
    good: usize,
    /// Do not look for a better match once one is this long.
    lazy: usize,
    /// Stop searching at a match this long.
    nice: usize,
    /// Chain entries to look at.
    chain: usize,
    /// Matches longer than this are not hashed (levels 2–3).
    fast_skip_hashing: usize,
}

/// The parameters of `level` (2..=9).
fn params(level: i32) -> Option<Params> {
    let (good, lazy, nice, chain, fast_skip_hashing) = match level {
        2 => (4, 0, 16, 8, 5),
        3 => (4, 0, 32, 32, 6),
        4 => (4, 4, 16, 16, SKIP_NEVER),
        5 => (8, 16, 32, 32, SKIP_NEVER),
        6 => (8, 16, 128, 128, SKIP_NEVER),
        7 => (8, 32, 128, 256, SKIP_NEVER),
        8 => (32, 128, 258, 1024, SKIP_NEVER),
        9 => (32, 258, 258, 4096, SKIP_NEVER),
        _ => return None,
    };
    Some(Params {
        good,
        lazy,
        nice,
        chain,
        fast_skip_hashing,
    })
}

/// The state of Go's `compressor` for levels 2–9.
pub(super) struct Deflate {
    p: Params,
    /// Input window; unprocessed data is `window[index..window_end]`.
    window: Box<Window>,
    window_end: usize,
    index: usize,
    /// Window index where the queued tokens start.
    block_start: usize,
    /// Whether `window[index - 1]` still awaits a decision (lazy levels).
    byte_available: bool,
    tokens: Vec<Token>,
    /// Current and previous match (lazy levels).
    length: usize,
    offset: usize,
    max_insert_index: usize,
    /// Head of the hash chain of the last hashed position, plus
    /// `hash_offset`; may be stale, exactly as in Go.
    chain_head: isize,
    /// Newest position (plus `hash_offset`) of each hash.
    hash_head: Box<[u32; HASH_SIZE]>,
    /// How far back the previous position with the same hash is, or
    /// [`FAR`]. Go stores that position itself, but every chain step that
    /// reaches further back than the window ends the search, so a 16-bit
    /// distance says the same in half the (cache) space.
    hash_prev: Box<[u16; WINDOW_SIZE]>,
    hash_offset: usize,
}

impl Deflate {
    /// A compressor for `level` (2..=9), or `None`.
    pub(super) fn new(level: i32) -> Option<Deflate> {
        Some(Deflate {
            p: params(level)?,
            window: zeroed(),
            window_end: 0,
            index: 0,
            block_start: 0,
            byte_available: false,
            tokens: Vec::with_capacity(MAX_FLATE_BLOCK_TOKENS + 1),
            length: MIN_MATCH_LENGTH - 1,
            offset: 0,
            max_insert_index: 0,
            chain_head: -1,
            hash_head: zeroed(),
            hash_prev: zeroed(),
            hash_offset: 1,
        })
    }

    /// Go's `fillDeflate`: slides the window when it is nearly used up,
    /// then copies as much of `b` as fits. Returns the bytes taken.
    pub(super) fn fill(&mut self, b: &[u8]) -> usize {
        if self.index >= 2 * WINDOW_SIZE - MIN_LOOKAHEAD {
            self.slide();
        }
        let free = &mut self.window[self.window_end..2 * WINDOW_SIZE];
        let n = free.len().min(b.len());
        free[..n].copy_from_slice(&b[..n]);
        self.window_end += n;
        n
    }

    /// Moves the upper half of the window down and rebases the hash chains.
    fn slide(&mut self) {
        self.window.copy_within(WINDOW_SIZE..2 * WINDOW_SIZE, 0);
        self.index -= WINDOW_SIZE;
        self.window_end -= WINDOW_SIZE;
        if self.block_start >= WINDOW_SIZE {
            self.block_start -= WINDOW_SIZE;
        } else {
            self.block_start = BLOCK_START_GONE;
        }
        self.hash_offset += WINDOW_SIZE;
        if self.hash_offset > MAX_HASH_OFFSET {
            let delta = self.hash_offset - 1;
            self.hash_offset -= delta;
            self.chain_head -= delta as isize;
            let delta = delta as u32;
            for v in self.hash_head.iter_mut() {
                *v = v.saturating_sub(delta);
            }
        }
    }

    /// Hashes the four bytes at `index` into the chains; returns the
    /// previous head of its chain.
    #[inline(always)]
    fn insert(&mut self, index: usize) -> u32 {
        Self::insert_at(
            &self.window,
            &mut self.hash_head,
            &mut self.hash_prev,
            self.hash_offset,
            index,
        )
    }

    /// [`Deflate::insert`] on borrowed parts, for tight loops.
    #[inline(always)]
    fn insert_at(
        window: &Window,
        head: &mut [u32; HASH_SIZE],
        prev: &mut [u16; WINDOW_SIZE],
        hash_offset: usize,
        index: usize,
    ) -> u32 {
        let h = hash4(window, index) & HASH_MASK;
        let old = head[h];
        let here = (index + hash_offset) as u32;
        prev[index & WINDOW_MASK] = (here - old).min(u32::from(FAR)) as u16;
        head[h] = here;
        old
    }

    /// Writes the queued tokens as a block ending at window index `index`.
    fn write_block(&mut self, index: usize, w: &mut BitWriter, out: &mut Vec<u8>) {
        if index > 0 {
            let window = if self.block_start <= index {
                Some(&self.window[self.block_start..index])
            } else {
                None
            };
            self.block_start = index;
            w.write_block(&self.tokens, false, window, out);
        }
        self.tokens.clear();
    }

    /// Go's `findMatch`: the longest match (longer than three bytes) for
    /// `pos` along the hash chain from `prev_head`, as (length, distance).
    #[inline(always)]
    fn find_match(&self, pos: usize, prev_head: usize, lookahead: usize) -> Option<(usize, usize)> {
        let win = &*self.window;
        let min_match_look = MAX_MATCH_LENGTH.min(lookahead);
        let nice = self.p.nice.min(min_match_look);
        let mut tries = self.p.chain;
        let mut length = MIN_MATCH_LENGTH - 1;
        if length >= self.p.good {
            tries >>= 2;
        }
        // The chain ends at the oldest position still in the window.
        let oldest = pos.saturating_sub(WINDOW_SIZE);
        let mut found = None;
        // Bytes length-3..=length at pos (Go compares only byte `length`;
        // any better match repeats all four).
        let mut w_end = load32(win, pos + length - 3);
        let mut i = prev_head;
        loop {
            if w_end == load32(win, i + length - 3) {
                let n = match_len(win, i, pos, min_match_look);
                if n > length && (n > MIN_MATCH_LENGTH || pos - i <= 4096) {
                    length = n;
                    found = Some((n, pos - i));
                    if n >= nice {
                        break;
                    }
                    w_end = load32(win, pos + n - 3);
                }
            }
            tries -= 1;
            if tries == 0 {
                break;
            }
            // Go stops once the chain leaves the window or goes below 0,
            // and after the oldest position in the window, whose link pos
            // has just overwritten (any link from there leaves the window).
            let back = usize::from(self.hash_prev[i & WINDOW_MASK]);
            if back > i - oldest {
                break;
            }
            i -= back;
        }
        found
    }

    /// Go's `deflate` step: consumes the window as far as the lookahead
    /// allows (all of it when `sync`), writing full blocks.
    pub(super) fn step(&mut self, sync: bool, w: &mut BitWriter, out: &mut Vec<u8>) {
        if self.window_end - self.index < MIN_LOOKAHEAD && !sync {
            return;
        }
        self.max_insert_index = self.window_end.saturating_sub(MIN_MATCH_LENGTH - 1);
        if self.p.fast_skip_hashing == SKIP_NEVER {
            self.step_lazy(sync, w, out);
        } else {
            self.step_greedy(sync, w, out);
        }
    }

    /// Handles the end of the window: `true` when the loop must stop.
    #[inline(always)]
    fn at_end(&mut self, sync: bool, w: &mut BitWriter, out: &mut Vec<u8>) -> bool {
        let lookahead = self.window_end - self.index;
        if lookahead >= MIN_LOOKAHEAD {
            return false;
        }
        if !sync {
            return true;
        }
        if lookahead > 0 {
            return false;
        }
        if self.byte_available {
            // One pending literal still needs to go out.
            self.tokens
                .push(literal_token(self.window[(self.index - 1) & POS_MASK]));
            self.byte_available = false;
        }
        if !self.tokens.is_empty() {
            self.write_block(self.index, w, out);
        }
        true
    }

    /// Hashes the current position and searches for a match if `wanted`.
    #[inline(always)]
    fn hash_and_search(&mut self, wanted: impl Fn(usize) -> bool) -> Option<(usize, usize)> {
        let index = self.index;
        if index < self.max_insert_index {
            self.chain_head = self.insert(index) as isize;
        }
        let lookahead = self.window_end - index;
        let min_index = index.saturating_sub(WINDOW_SIZE) as isize;
        let head = self.chain_head - self.hash_offset as isize;
        if head >= min_index && wanted(lookahead) {
            self.find_match(index, head as usize, lookahead)
        } else {
            None
        }
    }

    /// Hashes the positions `from..to` (those with four bytes ahead).
    #[inline(always)]
    fn insert_range(&mut self, from: usize, to: usize) {
        let (window, head, prev) = (&*self.window, &mut *self.hash_head, &mut *self.hash_prev);
        for index in from..to.min(self.max_insert_index) {
            Self::insert_at(window, head, prev, self.hash_offset, index);
        }
    }

    /// The lazy-matching loop of levels 4–9.
    fn step_lazy(&mut self, sync: bool, w: &mut BitWriter, out: &mut Vec<u8>) {
        loop {
            if self.at_end(sync, w, out) {
                return;
            }
            let prev_length = self.length;
            let prev_offset = self.offset;
            let lazy = self.p.lazy;
            let found =
                self.hash_and_search(|lookahead| lookahead > prev_length && prev_length < lazy);
            (self.length, self.offset) = found.unwrap_or((MIN_MATCH_LENGTH - 1, 0));

            if prev_length >= MIN_MATCH_LENGTH && self.length <= prev_length {
                // The match at the previous byte is at least as good: emit
                // it and hash every byte it covers.
                self.tokens.push(match_token(
                    (prev_length - 3) as u32,
                    (prev_offset - 1) as u32,
                ));
                let new_index = self.index + prev_length - 1;
                self.insert_range(self.index + 1, new_index);
                self.index = new_index;
                self.byte_available = false;
                self.length = MIN_MATCH_LENGTH - 1;
                if self.tokens.len() == MAX_FLATE_BLOCK_TOKENS {
                    self.write_block(self.index, w, out);
                }
            } else {
                if self.byte_available {
                    let i = self.index - 1;
                    self.tokens.push(literal_token(self.window[i & POS_MASK]));
                    if self.tokens.len() == MAX_FLATE_BLOCK_TOKENS {
                        self.write_block(i + 1, w, out);
                    }
                }
                self.index += 1;
                self.byte_available = true;
            }
        }
    }

    /// The greedy loop of levels 2–3.
    fn step_greedy(&mut self, sync: bool, w: &mut BitWriter, out: &mut Vec<u8>) {
        loop {
            if self.at_end(sync, w, out) {
                return;
            }
            let found = self.hash_and_search(|lookahead| lookahead > MIN_MATCH_LENGTH - 1);
            match found {
                Some((length, offset)) if length >= MIN_MATCH_LENGTH => {
                    self.tokens
                        .push(match_token((length - 3) as u32, (offset - 1) as u32));
                    let new_index = self.index + length;
                    if length <= self.p.fast_skip_hashing {
                        self.insert_range(self.index + 1, new_index);
                    }
                    self.index = new_index;
                    if self.tokens.len() == MAX_FLATE_BLOCK_TOKENS {
                        self.write_block(self.index, w, out);
                    }
                }
                _ => {
                    let i = self.index;
                    self.tokens.push(literal_token(self.window[i & POS_MASK]));
                    if self.tokens.len() == MAX_FLATE_BLOCK_TOKENS {
                        self.write_block(i + 1, w, out);
                    }
                    self.index += 1;
                }
            }
        }
    }
}
