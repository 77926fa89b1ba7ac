//! Level 6 match finder (klauspost `level6.go`): level 5's two tables plus a
//! repeat-offset check, two end-of-match candidates and dense re-indexing.

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

/// Level 6 encoder state (`fastEncL6`).
pub(super) struct FastEncL6 {
    pub(super) fgen: FastGen,
    table: Box<[i32; TABLE_SIZE]>,
    b_table: Box<[EntryPrev; TABLE_SIZE]>,
}

/// The tables one search works on.
struct Tables<'a> {
    short: &'a mut [i32; TABLE_SIZE],
    long: &'a mut [EntryPrev; TABLE_SIZE],
    cur: i32,
    /// Distance of the last match (Go's `repeat`, starting at 1).
    repeat: i32,
}

impl FastEncL6 {
    pub(super) fn new() -> FastEncL6 {
        FastEncL6 {
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
            repeat: 1,
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
        len: usize,
        mut s: i32,
        next_emit: i32,
        cv: u64,
    ) -> Option<Found> {
        let cur = self.cur;
        let s_limit = len as i32 - INPUT_MARGIN;
        let mut cv = cv;
        let mut next_s = s;
        loop {
            let hs = hash_s(cv);
            let hl = hash_l(cv);
            s = next_s;
            next_s = s + 1 + ((s - next_emit) >> 7);
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
                    // Long candidate matches at least 4 bytes.
                    self.store_both(next, next_s);
                    let t2 = l_candidate.prev() - cur;
                    if s - t2 < MAX_MATCH_OFFSET && cv as u32 == load32(buf, t2) {
                        let l = matchlen(buf, len, s + 4, t + 4) + 4;
                        let ml1 = matchlen(buf, len, s + 4, t2 + 4) + 4;
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
                // Current value did not match, but check if previous long value does.
                let t = l_candidate.prev() - cur;
                if s - t < MAX_MATCH_OFFSET && cv as u32 == load32(buf, t) {
                    self.store_both(next, next_s);
                    return Some(Found { s, t, l: 0, next_s });
                }
            }

            let t = s_candidate - cur;
            if s - t < MAX_MATCH_OFFSET && cv as u32 == load32(buf, t) {
                return Some(self.improve_short(buf, len, Found { s, t, l: 0, next_s }, cv, next));
            }
            cv = next;
        }
    }

    /// A short-table match at `f.s`: measure it, then try the repeat offset
    /// and the long candidates at `nextS`.
    #[inline(always)]
    fn improve_short(&mut self, buf: &HistBuf, len: usize, f: Found, cv: u64, next: u64) -> Found {
        let cur = self.cur;
        let Found {
            mut s,
            mut t,
            next_s,
            ..
        } = f;
        let mut l = matchlen(buf, len, s + 4, t + 4) + 4;
        // Look up next long candidate (at nextS), then store the next match.
        let l_candidate = self.long[hash_l(next)];
        self.store_both(next, next_s);
        // Check repeat at s + 1.
        let t2 = s - self.repeat + 1;
        if load32(buf, t2) == (cv >> 8) as u32 {
            let ml = matchlen(buf, len, s + 5, t2 + 4) + 4;
            if ml > l {
                return Found {
                    s: s + 1,
                    t: t2,
                    l: ml,
                    next_s,
                };
            }
        }
        // If the next long is a candidate, use that...
        let t2 = l_candidate.cur() - cur;
        if next_s - t2 < MAX_MATCH_OFFSET {
            if load32(buf, t2) == next as u32 {
                let ml = matchlen(buf, len, next_s + 4, t2 + 4) + 4;
                if ml > l {
                    t = t2;
                    s = next_s;
                    l = ml;
                }
            }
            // If the previous long is a candidate, use that...
            let t2 = l_candidate.prev() - cur;
            if next_s - t2 < MAX_MATCH_OFFSET && load32(buf, t2) == next as u32 {
                let ml = matchlen(buf, len, next_s + 4, t2 + 4) + 4;
                if ml > l {
                    return Found {
                        s: next_s,
                        t: t2,
                        l: ml,
                        next_s,
                    };
                }
            }
        }
        Found { s, t, l, next_s }
    }

    /// Go's end-of-match check: a match ending where the long table points
    /// may start earlier and be longer.
    #[inline(always)]
    fn improve_end(
        &self,
        buf: &HistBuf,
        len: usize,
        (s, t, l): (i32, i32, i32),
    ) -> (i32, i32, i32) {
        const SKIP_BEGINNING: i32 = 2;
        let (mut s, mut t, mut l) = (s, t, l);
        let s_at = s + l;
        if s_at >= len as i32 - INPUT_MARGIN {
            return (s, t, l);
        }
        let e_long = self.long[hash_l(load64(buf, s_at))];
        let s2 = s + SKIP_BEGINNING;
        let t2 = e_long.cur() - self.cur - l + SKIP_BEGINNING;
        let off = s2 - t2;
        if off < MAX_MATCH_OFFSET {
            if off > 0 && t2 >= 0 {
                let l2 = matchlen_long(buf, len, s2, t2);
                if l2 > l {
                    (t, l, s) = (t2, l2, s2);
                }
            }
            // Test the previous entry (against the possibly longer match).
            let t2 = e_long.prev() - self.cur - l + SKIP_BEGINNING;
            let off = s2 - t2;
            if off > 0 && off < MAX_MATCH_OFFSET && t2 >= 0 {
                let l2 = matchlen_long(buf, len, s2, t2);
                if l2 > l {
                    (t, l, s) = (t2, l2, s2);
                }
            }
        }
        (s, t, l)
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
                t,
                mut l,
                next_s,
            }) = self.find(buf, len, s, next_emit, cv)
            else {
                return next_emit;
            };
            s = fs;
            if l == 0 {
                l = matchlen_long(buf, len, s + 4, t + 4) + 4;
            } else if l == 258 {
                l += matchlen_long(buf, len, s + l, t + l);
            }
            let (ns, mut t, mut l) = self.improve_end(buf, len, (s, t, l));
            s = ns;
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
            self.repeat = s - t;
            s += l;
            next_emit = s;
            if next_s >= s {
                s = next_s + 1;
            }
            if s >= s_limit {
                // Index after match end.
                let mut i = next_s + 1;
                while i < len as i32 - 8 {
                    self.store_both(load64(buf, i), i);
                    i += 2;
                }
                return next_emit;
            }
            // Store every long hash in-between and every second short.
            let mut i = next_s + 1;
            while i < s - 1 {
                let cv = load64(buf, i);
                let t = i + cur;
                self.short[hash_s(cv)] = t;
                let e = &mut self.long[hash_l(cv)];
                *e = e.pushed(t);
                let e = &mut self.long[hash_l(cv >> 8)];
                *e = e.pushed(t + 1);
                i += 2;
            }
            cv = load64(buf, s);
        }
    }
}
