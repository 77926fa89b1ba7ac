//! Level 2 (Go's `level2.go`): like level 1 with a 128 Ki-entry table of
//! 5-byte hashes and denser indexing of matched bytes.

use super::fast::{
    BUFFER_RESET, FastGen, INPUT_MARGIN, MAX_MATCH_OFFSET, MIN_NON_LITERAL_BLOCK_SIZE, boxed_array,
    emit_remainder, hash5, idx, load8, load32, load64, match_len_long,
};
use super::tokens::Tokens;

/// Bits of the level 2 table.
const L2_TABLE_BITS: u32 = 17;
/// Entries of the level 2 table.
const L2_TABLE_SIZE: usize = 1 << L2_TABLE_BITS;

/// Level 2 match finder state.
pub(super) struct Level2 {
    history: FastGen,
    table: Box<[i32; L2_TABLE_SIZE]>,
}

/// The table hash.
#[inline(always)]
fn h(u: u64) -> usize {
    hash5::<L2_TABLE_BITS>(u)
}

impl Level2 {
    /// A fresh encoder.
    pub(super) fn new() -> Level2 {
        Level2 {
            history: FastGen::new(),
            table: boxed_array(),
        }
    }

    /// The history and pending block.
    pub(super) fn history(&mut self) -> &mut FastGen {
        &mut self.history
    }

    /// Adds the `len` pending bytes to the history as one block and finds
    /// its tokens into `dst`.
    pub(super) fn encode(&mut self, dst: &mut Tokens, len: usize) {
        if self.history.cur >= BUFFER_RESET {
            match self.history.rebase_min() {
                None => self.table.fill(0),
                Some(min_off) => {
                    for v in self.table.iter_mut() {
                        *v = self.history.rebase(*v, min_off);
                    }
                }
            }
            self.history.cur = MAX_MATCH_OFFSET;
        }
        let s = self.history.add_block(len);
        if len < MIN_NON_LITERAL_BLOCK_SIZE {
            // Left for the caller, which never searches blocks this small.
            dst.n = len;
            return;
        }
        let next_emit = self.search(dst, s);
        emit_remainder(dst, self.history.hist(), next_emit);
    }

    /// The match loop over the history from `s`; returns where the
    /// trailing literals start.
    fn search(&mut self, dst: &mut Tokens, mut s: i32) -> i32 {
        const SKIP_LOG: i32 = 5;
        const DO_EVERY: i32 = 2;
        let src = self.history.hist();
        let table = &mut *self.table;
        let cur = self.history.cur;
        let mut next_emit = s;
        let s_limit = src.len() as i32 - INPUT_MARGIN;
        let mut cv = load64(src, s);
        loop {
            let mut next_s = s;
            let mut candidate;
            loop {
                let mut next_hash = h(cv);
                s = next_s;
                next_s = s + DO_EVERY + ((s - next_emit) >> SKIP_LOG);
                if next_s > s_limit {
                    return next_emit;
                }
                candidate = table[next_hash];
                let mut now = load64(src, next_s);
                table[next_hash] = s + cur;
                next_hash = h(now);
                let offset = s - (candidate - cur);
                if offset < MAX_MATCH_OFFSET && cv as u32 == load32(src, candidate - cur) {
                    table[next_hash] = next_s + cur;
                    break;
                }
                // Try the next position right away.
                cv = now;
                s = next_s;
                next_s += 1;
                candidate = table[next_hash];
                now >>= 8;
                table[next_hash] = s + cur;
                let offset = s - (candidate - cur);
                if offset < MAX_MATCH_OFFSET && cv as u32 == load32(src, candidate - cur) {
                    break;
                }
                cv = now;
            }

            loop {
                let mut t = candidate - cur;
                let mut l = match_len_long(src, s + 4, t + 4) + 4;
                while t > 0 && s > next_emit && load8(src, t - 1) == load8(src, s - 1) {
                    s -= 1;
                    t -= 1;
                    l += 1;
                }
                if next_emit < s {
                    dst.add_literals(&src[idx(next_emit)..idx(s)]);
                }
                dst.add_match_long(l, (s - t - 1) as u32);
                s += l;
                next_emit = s;
                if next_s >= s {
                    s = next_s + 1;
                }
                if s >= s_limit {
                    // Index the first position after the match.
                    if ((s + l + 8) as usize) < src.len() {
                        table[h(load64(src, s))] = s + cur;
                    }
                    return next_emit;
                }
                // Index every second position of every 7, offset by 1.
                let mut i = s - l + 2;
                while i < s - 5 {
                    let mut x = load64(src, i);
                    table[h(x)] = cur + i;
                    x >>= 16;
                    table[h(x)] = cur + i + 2;
                    x >>= 16;
                    table[h(x)] = cur + i + 4;
                    i += 7;
                }
                // Index s-2 and s-1, and check s for another match.
                let x = load64(src, s - 2);
                let o = cur + s - 2;
                table[h(x)] = o;
                table[h(x >> 8)] = o + 1;
                let curr_hash = h(x >> 16);
                candidate = table[curr_hash];
                table[curr_hash] = o + 2;
                let offset = s - (candidate - cur);
                if offset > MAX_MATCH_OFFSET || (x >> 16) as u32 != load32(src, candidate - cur) {
                    cv = x >> 24;
                    s += 1;
                    break;
                }
            }
        }
    }
}
