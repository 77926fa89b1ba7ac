//! Level 5 (pgzip's default) match finder (klauspost `level5.go`): a short
//! table of 4-byte hashes plus a long table of 7-byte hashes keeping two
//! candidates per bucket, a check for a longer match ending at the end of the
//! found one, and sparse re-indexing of matched bytes.

use super::fast::{
    EntryPrev, FastGen, HistBuf, Input, MAX_MATCH_OFFSET, TABLE_BITS, TABLE_SIZE, Wrap, byte_at,
    emit_remainder, hash_len, hash7, load32, load64, matchlen, matchlen_long, rebase_entry,
    zeroed_box,
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

/// Level 5 encoder state (`fastEncL5`).
pub(super) struct FastEncL5 {
    pub(super) fgen: FastGen,
    table: Box<[i32; TABLE_SIZE]>,
    b_table: Box<[EntryPrev; TABLE_SIZE]>,
}

/// The tables one search works on.
struct Tables<'a> {
    short: &'a mut [i32; TABLE_SIZE],
    long: &'a mut [EntryPrev; TABLE_SIZE],
    cur: i32,
}

impl FastEncL5 {
    pub(super) fn new() -> FastEncL5 {
        FastEncL5 {
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
                self.b_table.fill(EntryPrev::default());
            }
            Wrap::Rebase { min_off, cur } => {
                for v in self.table.iter_mut() {
                    *v = rebase_entry(*v, min_off, cur);
                }
                for v in self.b_table.iter_mut() {
                    *v = v.rebased(min_off, cur);
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

/// A match: start, source, length (0 = only 4 bytes known so far).
struct Found {
    s: i32,
    t: i32,
    l: i32,
    next_s: i32,
}

impl Tables<'_> {
    /// Stores position `pos` (absolute `pos + cur`) for `next` in both tables.
    #[inline(always)]
    fn store_both(&mut self, next: u64, pos: i32) {
        self.short[hash_s(next)] = pos + self.cur;
        let e = &mut self.long[hash_l(next)];
        *e = e.pushed(pos + self.cur);
    }

    /// Scans from `s` for the next match; `None` when `sLimit` is reached.
    #[inline(always)]
    fn find(
        &mut self,
        buf: &HistBuf,
        src: &[u8],
        mut s: i32,
        next_emit: i32,
        cv: u64,
    ) -> Option<Found> {
        let cur = self.cur;
        let s_limit = src.len() as i32 - INPUT_MARGIN;
        let mut cv = cv;
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
            self.long[hl] = l_candidate.pushed(s + cur);

            let t = l_candidate.cur() - cur;
            if s - t < MAX_MATCH_OFFSET {
                if cv as u32 == load32(buf, t) {
                    self.store_both(next, next_s);
                    let t2 = l_candidate.prev() - cur;
                    if s - t2 < MAX_MATCH_OFFSET && cv as u32 == load32(buf, t2) {
                        let l = matchlen(buf, src.len(), s + 4, t + 4) + 4;
                        let ml1 = matchlen(buf, src.len(), s + 4, t2 + 4) + 4;
                        if ml1 > l {
                            return Some(Found {
                                s,
                                t: t2,
                                l: ml1,
                                next_s,
                            });
                        }
                        return Some(Found { s, t, l, next_s });
                    }
                    return Some(Found { s, t, l: 0, next_s });
                }
                let t = l_candidate.prev() - cur;
                if s - t < MAX_MATCH_OFFSET && cv as u32 == load32(buf, t) {
                    self.store_both(next, next_s);
                    return Some(Found { s, t, l: 0, next_s });
                }
            }

            let t = s_candidate - cur;
            if s - t < MAX_MATCH_OFFSET && cv as u32 == load32(buf, t) {
                // Found a 4 match...
                let l = matchlen(buf, src.len(), s + 4, t + 4) + 4;
                let l_candidate = self.long[hash_l(next)];
                self.store_both(next, next_s);
                // If the next long is a candidate, use that...
                let t2 = l_candidate.cur() - cur;
                if next_s - t2 < MAX_MATCH_OFFSET {
                    if load32(buf, t2) == next as u32 {
                        let ml = matchlen(buf, src.len(), next_s + 4, t2 + 4) + 4;
                        if ml > l {
                            return Some(Found {
                                s: next_s,
                                t: t2,
                                l: ml,
                                next_s,
                            });
                        }
                    }
                    let t2 = l_candidate.prev() - cur;
                    if next_s - t2 < MAX_MATCH_OFFSET && load32(buf, t2) == next as u32 {
                        let ml = matchlen(buf, src.len(), next_s + 4, t2 + 4) + 4;
                        if ml > l {
                            return Some(Found {
                                s: next_s,
                                t: t2,
                                l: ml,
                                next_s,
                            });
                        }
                    }
                }
                return Some(Found { s, t, l, next_s });
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
            let Some(Found {
                s: fs,
                mut t,
                mut l,
                next_s,
            }) = self.find(buf, src, s, next_emit, cv)
            else {
                return next_emit;
            };
            s = fs;
            if l == 0 {
                l = matchlen_long(buf, len, s + 4, t + 4) + 4;
            } else if l == 258 {
                l += matchlen_long(buf, len, s + l, t + l);
            }
            // Try to locate a better match by checking the end of best match...
            let s_at = s + l;
            if l < 30 && s_at < s_limit {
                const SKIP_BEGINNING: i32 = 2;
                let e_long = self.long[hash_l(load64(buf, s_at))].cur();
                let t2 = e_long - cur - l + SKIP_BEGINNING;
                let s2 = s + SKIP_BEGINNING;
                let off = s2 - t2;
                if t2 >= 0 && off < MAX_MATCH_OFFSET && off > 0 {
                    let l2 = matchlen_long(buf, len, s2, t2);
                    if l2 > l {
                        t = t2;
                        l = l2;
                        s = s2;
                    }
                }
            }
            // Extend backwards.
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
                return next_emit;
            }
            self.index_match(buf, s, l);
            let x = load64(buf, s - 1);
            self.store_both(x, s - 1);
            cv = x >> 8;
        }
    }

    /// Stores every 3rd hash inside the match just emitted (ending at `s`).
    #[inline(always)]
    fn index_match(&mut self, buf: &HistBuf, s: i32, l: i32) {
        let cur = self.cur;
        let mut i = s - l + 1;
        if i < s - 1 {
            let mut cv = load64(buf, i);
            let mut t = i + cur;
            self.short[hash_s(cv)] = t;
            let e = &mut self.long[hash_l(cv)];
            *e = e.pushed(t);
            // A long entry at i+1...
            cv >>= 8;
            t += 1;
            let e = &mut self.long[hash_l(cv)];
            *e = e.pushed(t);
            // ...and a short one at i+2.
            cv >>= 8;
            t += 1;
            self.short[hash_s(cv)] = t;
            i += 4;
            while i < s - 1 {
                let cv = load64(buf, i);
                let t = i + cur;
                let e = &mut self.long[hash_l(cv)];
                *e = e.pushed(t);
                self.short[hash_s(cv >> 8)] = t + 1;
                i += 3;
            }
        }
    }
}
