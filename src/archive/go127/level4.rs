//! Level 4 (Go's `level4.go`): a table of 4-byte hashes and a table of
//! 7-byte hashes, one candidate each, indexing every third matched byte.

use super::fast::{
    BUFFER_RESET, FastGen, INPUT_MARGIN, MAX_MATCH_OFFSET, MIN_NON_LITERAL_BLOCK_SIZE, TABLE_BITS,
    TABLE_SIZE, boxed_array, emit_remainder, hash4, hash7, idx, load8, load32, load64, match_len,
    match_len_long,
};
use super::tokens::Tokens;

/// Level 4 match finder state.
pub(super) struct Level4 {
    history: FastGen,
    table: Box<[i32; TABLE_SIZE]>,
    b_table: Box<[i32; TABLE_SIZE]>,
}

/// Short (4-byte) hash.
#[inline(always)]
fn hs(u: u64) -> usize {
    hash4::<TABLE_BITS>(u)
}

/// Long (7-byte) hash.
#[inline(always)]
fn hl(u: u64) -> usize {
    hash7::<TABLE_BITS>(u)
}

/// Length of the common prefix of `src[a..]` and `src[b..]`.
#[inline(always)]
fn common(src: &[u8], a: i32, b: i32) -> usize {
    match (src.get(idx(a)..), src.get(idx(b)..)) {
        (Some(x), Some(y)) => match_len(x, y),
        _ => 0,
    }
}

impl Level4 {
    /// A fresh encoder.
    pub(super) fn new() -> Level4 {
        Level4 {
            history: FastGen::new(),
            table: boxed_array(),
            b_table: boxed_array(),
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
                None => {
                    self.table.fill(0);
                    self.b_table.fill(0);
                }
                Some(min_off) => {
                    for v in self.table.iter_mut().chain(self.b_table.iter_mut()) {
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
        const SKIP_LOG: i32 = 6;
        let src = self.history.hist();
        let table = &mut *self.table;
        let b_table = &mut *self.b_table;
        let cur = self.history.cur;
        let mut next_emit = s;
        let s_limit = src.len() as i32 - INPUT_MARGIN;
        let mut cv = load64(src, s);
        loop {
            let mut next_s = s;
            let mut t;
            loop {
                let (hs_cur, hl_cur) = (hs(cv), hl(cv));
                s = next_s;
                next_s = s + 1 + ((s - next_emit) >> SKIP_LOG);
                if next_s > s_limit {
                    return next_emit;
                }
                let s_candidate = table[hs_cur];
                let l_candidate = b_table[hl_cur];
                let next = load64(src, next_s);
                table[hs_cur] = s + cur;
                b_table[hl_cur] = s + cur;

                t = l_candidate - cur;
                if s - t < MAX_MATCH_OFFSET && cv as u32 == load32(src, t) {
                    break;
                }
                t = s_candidate - cur;
                if s - t < MAX_MATCH_OFFSET && cv as u32 == load32(src, t) {
                    // Prefer the long candidate at next_s if it matches longer.
                    let l_off = b_table[hl(next)] - cur;
                    if next_s - l_off < MAX_MATCH_OFFSET && load32(src, l_off) == next as u32 {
                        let l1 = common(src, s + 4, t + 4);
                        // Go measures against `next_s - l_off + 4`, the
                        // distance rather than the position; kept as is.
                        let l2 = common(src, next_s + 4, next_s - l_off + 4);
                        if l2 > l1 {
                            s = next_s;
                            t = l_off;
                        }
                    }
                    break;
                }
                cv = next;
            }

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
                if ((s + 8) as usize) < src.len() {
                    let cv = load64(src, s);
                    table[hs(cv)] = s + cur;
                    b_table[hl(cv)] = s + cur;
                }
                return next_emit;
            }
            // Index every third position in between.
            let mut i = next_s;
            while i < s - 1 {
                let cv = load64(src, i);
                let t = i + cur;
                b_table[hl(cv)] = t;
                b_table[hl(cv >> 8)] = t + 1;
                table[hs(cv >> 8)] = t + 1;
                i += 3;
            }
            // Index s-1 and go on searching at s.
            let x = load64(src, s - 1);
            let o = cur + s - 1;
            table[hs(x)] = o;
            b_table[hl(x)] = o;
            cv = x >> 8;
        }
    }
}
