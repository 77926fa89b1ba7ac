//! Level 4 match finder (klauspost `level4.go`): a short table of 4-byte
//! hashes and a long table of 7-byte hashes, one candidate each.

use super::fast::{
    FastGen, HistBuf, Input, MAX_MATCH_OFFSET, TABLE_BITS, TABLE_SIZE, Wrap, byte_at,
    emit_remainder, hash_len, hash7, load32, load64, matchlen_long, rebase_entry, zeroed_box,
};
use super::tokens::Tokens;

const INPUT_MARGIN: i32 = 12 - 1;
const MIN_NON_LITERAL_BLOCK_SIZE: usize = 1 + 1 + INPUT_MARGIN as usize;

#[inline(always)]
fn hash_s(u: u64) -> usize {
    hash_len(u, TABLE_BITS, 4)
}

#[inline(always)]
fn hash_l(u: u64) -> usize {
    hash7(u, TABLE_BITS)
}

/// Level 4 encoder state (`fastEncL4`).
pub(super) struct FastEncL4 {
    pub(super) fgen: FastGen,
    table: Box<[i32; TABLE_SIZE]>,
    b_table: Box<[i32; TABLE_SIZE]>,
}

/// The tables one search works on.
struct Tables<'a> {
    short: &'a mut [i32; TABLE_SIZE],
    long: &'a mut [i32; TABLE_SIZE],
    cur: i32,
}

impl FastEncL4 {
    pub(super) fn new() -> FastEncL4 {
        FastEncL4 {
            fgen: FastGen::new(),
            table: zeroed_box(),
            b_table: zeroed_box(),
        }
    }

    /// Appends the tokens of `input` (which continues the history) to `dst`.
    pub(super) fn encode(&mut self, dst: &mut Tokens, input: Input<'_>) {
        match self.fgen.guard_wrap() {
            Wrap::None => {}
            Wrap::Clear => {
                self.table.fill(0);
                self.b_table.fill(0);
            }
            Wrap::Rebase { min_off, cur } => {
                for v in self.table.iter_mut().chain(self.b_table.iter_mut()) {
                    *v = rebase_entry(*v, min_off, cur);
                }
            }
        }
        let (s, n) = self.fgen.add(input);
        if n < MIN_NON_LITERAL_BLOCK_SIZE {
            return;
        }
        let mut tabs = Tables {
            short: &mut self.table,
            long: &mut self.b_table,
            cur: self.fgen.cur,
        };
        let next_emit = tabs.search(&self.fgen.buf, self.fgen.len, s, dst);
        emit_remainder(dst, self.fgen.hist(), next_emit);
    }
}

impl Tables<'_> {
    /// Scans from `s` for a match; returns (s, t, nextS), or `None` at `sLimit`.
    #[inline(always)]
    fn find(
        &mut self,
        buf: &HistBuf,
        len: usize,
        mut s: i32,
        next_emit: i32,
        mut cv: u64,
    ) -> Option<(i32, i32, i32)> {
        let cur = self.cur;
        let s_limit = len as i32 - INPUT_MARGIN;
        let mut next_s = s;
        loop {
            let hs = hash_s(cv);
            let hl = hash_l(cv);
            s = next_s;
            next_s = s + 1 + ((s - next_emit) >> 6);
            if next_s > s_limit {
                return None;
            }
            let s_candidate = self.short[hs];
            let l_candidate = self.long[hl];
            let next = load64(buf, next_s);
            self.short[hs] = s + cur;
            self.long[hl] = s + cur;

            let t = l_candidate - cur;
            if s - t < MAX_MATCH_OFFSET && cv as u32 == load32(buf, t) {
                // We got a long match. Use that.
                return Some((s, t, next_s));
            }
            let t = s_candidate - cur;
            if s - t < MAX_MATCH_OFFSET && cv as u32 == load32(buf, t) {
                // Found a 4 match; check whether the next long candidate is better.
                let l_candidate = self.long[hash_l(next)];
                let l_off = next_s - (l_candidate - cur);
                if l_off < MAX_MATCH_OFFSET && load32(buf, l_candidate - cur) == next as u32 {
                    let l1 = matchlen_long(buf, len, s + 4, t + 4);
                    let l2 = matchlen_long(buf, len, next_s + 4, next_s - l_off + 4);
                    if l2 > l1 {
                        return Some((next_s, l_candidate - cur, next_s));
                    }
                }
                return Some((s, t, next_s));
            }
            cv = next;
        }
    }

    /// The main loop; returns `nextEmit`, where the trailing literals start.
    fn search(&mut self, buf: &HistBuf, len: usize, mut s: i32, dst: &mut Tokens) -> i32 {
        let src = &buf[..len];
        let cur = self.cur;
        let mut next_emit = s;
        let s_limit = len as i32 - INPUT_MARGIN;
        let mut cv = load64(buf, s);
        loop {
            let Some((fs, mut t, next_s)) = self.find(buf, len, s, next_emit, cv) else {
                return next_emit;
            };
            s = fs;
            let mut l = matchlen_long(buf, len, s + 4, t + 4) + 4;
            while t > 0 && s > next_emit && byte_at(buf, t - 1) == byte_at(buf, s - 1) {
                s -= 1;
                t -= 1;
                l += 1;
            }
            if next_emit < s {
                dst.emit_literals(&src[next_emit as usize..s as usize]);
            }
            dst.add_match_long(l, (s - t - 1) as u32);
            s += l;
            next_emit = s;
            if next_s >= s {
                s = next_s + 1;
            }
            if s >= s_limit {
                // Index first pair after match end.
                if ((s + 8) as usize) < len {
                    let cv = load64(buf, s);
                    self.short[hash_s(cv)] = s + cur;
                    self.long[hash_l(cv)] = s + cur;
                }
                return next_emit;
            }
            // Store every 3rd hash in-between.
            let mut i = next_s;
            while i < s - 1 {
                let cv = load64(buf, i);
                let t = i + cur;
                self.long[hash_l(cv)] = t;
                self.long[hash_l(cv >> 8)] = t + 1;
                self.short[hash_s(cv >> 8)] = t + 1;
                i += 3;
            }
            // Update the table at s-1 and s.
            let x = load64(buf, s - 1);
            let o = cur + s - 1;
            self.short[hash_s(x)] = o;
            self.long[hash_l(x)] = o;
            cv = x >> 8;
        }
    }
}
