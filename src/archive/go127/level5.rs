//! Level 5 (Go's `level5.go`): like level 4 with a 4-byte and a 7-byte
//! hash table, but the long table keeps two candidates per entry, and short
//! matches look for a longer match ending where they end.

use super::fast::{
    BUFFER_RESET, FastGen, INPUT_MARGIN, MAX_MATCH_OFFSET, MIN_NON_LITERAL_BLOCK_SIZE, TABLE_BITS,
    TABLE_SIZE, boxed_array, emit_remainder, hash4, hash7, idx, load8, load32, load64,
    match_len_limited, match_len_long,
};
use super::level6::{Pair, rebase_pairs};
use super::tokens::{MAX_MATCH_LENGTH, Tokens};

/// Level 5 match finder state.
pub(super) struct Level5 {
    history: FastGen,
    table: Box<[i32; TABLE_SIZE]>,
    b_table: Box<[Pair; TABLE_SIZE]>,
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

/// A match found by the search loop (`l` is 0 when still to be measured).
struct Found {
    s: i32,
    t: i32,
    l: i32,
    next_s: i32,
}

impl Level5 {
    /// A fresh encoder.
    pub(super) fn new() -> Level5 {
        Level5 {
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
                    self.b_table.fill(Pair::default());
                }
                Some(min_off) => {
                    for v in self.table.iter_mut() {
                        *v = self.history.rebase(*v, min_off);
                    }
                    rebase_pairs(&self.history, &mut self.b_table[..], min_off);
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
        let src = self.history.hist();
        let mut cx = Ctx {
            src,
            table: &mut self.table,
            b_table: &mut self.b_table,
            cur: self.history.cur,
            s_limit: src.len() as i32 - INPUT_MARGIN,
        };
        let cur = cx.cur;
        let mut next_emit = s;
        let mut cv = load64(src, s);
        loop {
            let Some(f) = cx.find(s, cv, next_emit) else {
                return next_emit;
            };
            let (mut s2, mut t, mut l, next_s) = (f.s, f.t, f.l, f.next_s);
            if l == 0 {
                l = match_len_long(src, s2 + 4, t + 4) + 4;
            } else if l == MAX_MATCH_LENGTH {
                l += match_len_long(src, s2 + l, t + l);
            }
            if l < 30 && s2 + l < cx.s_limit {
                (s2, t, l) = cx.better_at_end(s2, t, l);
            }
            while t > 0 && s2 > next_emit && load8(src, t - 1) == load8(src, s2 - 1) {
                s2 -= 1;
                t -= 1;
                l += 1;
            }
            if next_emit < s2 {
                dst.add_literals(&src[idx(next_emit)..idx(s2)]);
            }
            dst.add_match_long(l, (s2 - t - 1) as u32);
            s = s2 + l;
            next_emit = s;
            if next_s >= s {
                s = next_s + 1;
            }
            if s >= cx.s_limit {
                return next_emit;
            }
            cx.index_between(s - l + 1, s);
            // Index s-1 and go on searching at s.
            let x = load64(src, s - 1);
            let o = cur + s - 1;
            cx.table[hs(x)] = o;
            cx.b_table[hl(x)].push(o);
            cv = x >> 8;
        }
    }
}

/// The tables and bounds one block is searched with.
struct Ctx<'a> {
    src: &'a [u8],
    table: &'a mut [i32; TABLE_SIZE],
    b_table: &'a mut [Pair; TABLE_SIZE],
    cur: i32,
    s_limit: i32,
}

impl Ctx<'_> {
    /// Whether the 4 bytes at `t` equal `v`, with `t` within reach of `s`.
    #[inline(always)]
    fn hit(&self, s: i32, t: i32, v: u64) -> bool {
        s - t < MAX_MATCH_OFFSET && v as u32 == load32(self.src, t)
    }

    /// Indexes `next_s` in both tables.
    #[inline(always)]
    fn index_next(&mut self, hs_next: usize, hl_next: usize, next_s: i32) {
        self.table[hs_next] = next_s + self.cur;
        self.b_table[hl_next].push(next_s + self.cur);
    }

    /// Searches forward from `s` (whose 8 bytes are `cv`) for a match of at
    /// least 4 bytes, indexing the positions it passes. `None` at the end of the block.
    #[inline(always)]
    fn find(&mut self, mut s: i32, mut cv: u64, next_emit: i32) -> Option<Found> {
        const SKIP_LOG: i32 = 6;
        let src = self.src;
        let cur = self.cur;
        let mut next_s = s;
        // The hashes of cv, carried over from the previous position.
        let (mut hs_cur, mut hl_cur) = (hs(cv), hl(cv));
        loop {
            s = next_s;
            next_s = s + 1 + ((s - next_emit) >> SKIP_LOG);
            if next_s > self.s_limit {
                return None;
            }
            let s_candidate = self.table[hs_cur];
            let l_candidate = self.b_table[hl_cur];
            let next = load64(src, next_s);
            self.table[hs_cur] = s + cur;
            self.b_table[hl_cur].push(s + cur);
            let hs_next = hs(next);
            let hl_next = hl(next);

            let t = l_candidate.cur() - cur;
            if s - t < MAX_MATCH_OFFSET {
                if cv as u32 == load32(src, t) {
                    self.index_next(hs_next, hl_next, next_s);
                    let t2 = l_candidate.prev() - cur;
                    if self.hit(s, t2, cv) {
                        let l = match_len_limited(src, s + 4, t + 4) + 4;
                        let ml1 = match_len_limited(src, s + 4, t2 + 4) + 4;
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
                if self.hit(s, t, cv) {
                    self.index_next(hs_next, hl_next, next_s);
                    return Some(Found { s, t, l: 0, next_s });
                }
            }

            let t = s_candidate - cur;
            if self.hit(s, t, cv) {
                return Some(self.short_hit(s, t, next, next_s, hs_next, hl_next));
            }
            cv = next;
            (hs_cur, hl_cur) = (hs_next, hl_next);
        }
    }

    /// A 4-byte short-hash match at `s`: indexes `next_s` and takes a long
    /// candidate at `next_s` instead when it gives a longer match.
    #[inline(always)]
    fn short_hit(
        &mut self,
        s: i32,
        t: i32,
        next: u64,
        next_s: i32,
        hs_next: usize,
        hl_next: usize,
    ) -> Found {
        let src = self.src;
        let cur = self.cur;
        let l = match_len_limited(src, s + 4, t + 4) + 4;
        let l_candidate = self.b_table[hl_next];
        self.index_next(hs_next, hl_next, next_s);
        let t2 = l_candidate.cur() - cur;
        if next_s - t2 < MAX_MATCH_OFFSET {
            if load32(src, t2) == next as u32 {
                let ml = match_len_limited(src, next_s + 4, t2 + 4) + 4;
                if ml > l {
                    return Found {
                        s: next_s,
                        t: t2,
                        l: ml,
                        next_s,
                    };
                }
            }
            let t2 = l_candidate.prev() - cur;
            if self.hit(next_s, t2, next) {
                let ml = match_len_limited(src, next_s + 4, t2 + 4) + 4;
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

    /// Tries the latest long candidate where the match ends, aligned back
    /// to the match start (skipping 2 bytes that backward extension may
    /// still recover). Returns the (possibly) better `(s, t, l)`.
    #[inline(always)]
    fn better_at_end(&self, s: i32, t: i32, l: i32) -> (i32, i32, i32) {
        const SKIP_BEGINNING: i32 = 2;
        let src = self.src;
        let e_long = self.b_table[hl(load64(src, s + l))].cur();
        let t2 = e_long - self.cur - l + SKIP_BEGINNING;
        let s2 = s + SKIP_BEGINNING;
        let off = s2 - t2;
        if t2 >= 0 && off < MAX_MATCH_OFFSET && off > 0 {
            let l2 = match_len_long(src, s2, t2);
            if l2 > l {
                return (s2, t2, l2);
            }
        }
        (s, t, l)
    }

    /// Indexes positions from `i` up to `s - 1` after a match: three
    /// entries at the start, then a long and a short one every 3 bytes.
    #[inline(always)]
    fn index_between(&mut self, mut i: i32, s: i32) {
        const HASH_EVERY: i32 = 3;
        let src = self.src;
        let cur = self.cur;
        if i >= s - 1 {
            return;
        }
        let mut cv = load64(src, i);
        let t = i + cur;
        self.table[hs(cv)] = t;
        self.b_table[hl(cv)].push(t);
        cv >>= 8;
        self.b_table[hl(cv)].push(t + 1);
        cv >>= 8;
        self.table[hs(cv)] = t + 2;
        // Skip one, so as not to run into s.
        i += 4;
        while i < s - 1 {
            let cv = load64(src, i);
            let t = i + cur;
            self.b_table[hl(cv)].push(t);
            self.table[hs(cv >> 8)] = t + 1;
            i += HASH_EVERY;
        }
    }
}
