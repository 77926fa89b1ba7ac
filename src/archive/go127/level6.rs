//! Level 6 (the default, Go's `level6.go`): a table of 4-byte hashes and a
//! table of 7-byte hashes that keeps two candidates per entry, full
//! indexing of matched bytes, a repeat-offset check, and a search for a
//! longer match ending where the found one ends.

use super::fast::{
    BUFFER_RESET, FastGen, INPUT_MARGIN, MAX_MATCH_OFFSET, MIN_NON_LITERAL_BLOCK_SIZE, TABLE_BITS,
    TABLE_SIZE, boxed_array, emit_remainder, hash4, hash7, idx, load8, load32, load64,
    match_len_limited, match_len_long,
};
use super::tokens::{MAX_MATCH_LENGTH, Tokens};

/// A hash table entry remembering the two latest positions, packed in one
/// `u64` (latest in the low half) so that adding one is a single store.
#[derive(Clone, Copy, Default)]
pub(super) struct Pair(u64);

impl Pair {
    /// An entry with latest position `cur` and the one before it `prev`.
    #[inline(always)]
    pub(super) fn new(cur: i32, prev: i32) -> Pair {
        Pair(u64::from(cur as u32) | u64::from(prev as u32) << 32)
    }

    /// The latest position (+ cur).
    #[inline(always)]
    pub(super) fn cur(self) -> i32 {
        self.0 as u32 as i32
    }

    /// The position before it.
    #[inline(always)]
    pub(super) fn prev(self) -> i32 {
        (self.0 >> 32) as u32 as i32
    }

    /// Makes `v` the latest position.
    #[inline(always)]
    pub(super) fn push(&mut self, v: i32) {
        self.0 = self.0 << 32 | u64::from(v as u32);
    }
}

/// Rebases a two-candidate table the way levels 5 and 6 do: an entry whose
/// latest position is out of reach is cleared whole.
pub(super) fn rebase_pairs(history: &FastGen, table: &mut [Pair], min_off: i32) {
    for v in table.iter_mut() {
        *v = if v.cur() <= min_off {
            Pair::default()
        } else {
            Pair::new(
                v.cur() - history.cur + MAX_MATCH_OFFSET,
                history.rebase(v.prev(), min_off),
            )
        };
    }
}

/// Level 6 match finder state.
pub(super) struct Level6 {
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

/// A match found by the search loop.
struct Found {
    s: i32,
    t: i32,
    l: i32,
    next_s: i32,
}

impl Level6 {
    /// A fresh encoder.
    pub(super) fn new() -> Level6 {
        Level6 {
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
        // The distance of the previous match; must be > 0.
        let mut repeat = 1;
        loop {
            let Some(f) = cx.find(s, cv, next_emit, repeat) else {
                return next_emit;
            };
            let (mut s2, mut t, mut l, next_s) = (f.s, f.t, f.l, f.next_s);
            if l == 0 {
                l = match_len_long(src, s2 + 4, t + 4) + 4;
            } else if l == MAX_MATCH_LENGTH {
                l += match_len_long(src, s2 + l, t + l);
            }
            if s2 + l < cx.s_limit {
                (s2, t, l) = cx.better_at_end(s2, t, l);
            }
            // Extend backwards.
            while t > 0 && s2 > next_emit && load8(src, t - 1) == load8(src, s2 - 1) {
                s2 -= 1;
                t -= 1;
                l += 1;
            }
            if next_emit < s2 {
                dst.add_literals(&src[idx(next_emit)..idx(s2)]);
            }
            dst.add_match_long(l, (s2 - t - 1) as u32);
            repeat = s2 - t;
            s = s2 + l;
            next_emit = s;
            if next_s >= s {
                s = next_s + 1;
            }
            if s >= cx.s_limit {
                // Index the rest of the block.
                let mut i = next_s + 1;
                while i < src.len() as i32 - 8 {
                    let cv = load64(src, i);
                    cx.table[hs(cv)] = i + cur;
                    cx.b_table[hl(cv)].push(i + cur);
                    i += 2;
                }
                return next_emit;
            }
            // Store every long hash in between and every second short one.
            let mut i = next_s + 1;
            while i < s - 1 {
                let cv = load64(src, i);
                let (l1, l2) = (hl(cv), hl(cv >> 8));
                cx.table[hs(cv)] = i + cur;
                cx.b_table[l1].push(i + cur);
                cx.b_table[l2].push(i + cur + 1);
                i += 2;
            }
            cv = load64(src, s);
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
    /// least 4 bytes, indexing the positions it passes. `l` is 0 when the
    /// match length is still to be measured. `None` at the end of the block.
    #[inline(always)]
    fn find(&mut self, mut s: i32, mut cv: u64, next_emit: i32, repeat: i32) -> Option<Found> {
        const SKIP_LOG: i32 = 7;
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
                    // The long candidate matches at least 4 bytes.
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
                // The latest long candidate failed; try the one before it.
                let t = l_candidate.prev() - cur;
                if self.hit(s, t, cv) {
                    self.index_next(hs_next, hl_next, next_s);
                    return Some(Found { s, t, l: 0, next_s });
                }
            }

            let t = s_candidate - cur;
            if self.hit(s, t, cv) {
                return Some(self.short_hit(s, t, cv, next, next_s, hs_next, hl_next, repeat));
            }
            cv = next;
            (hs_cur, hl_cur) = (hs_next, hl_next);
        }
    }

    /// A 4-byte short-hash match at `s`: indexes `next_s` and prefers a
    /// repeat of the last distance at `s + 1` or a long candidate at `next_s`
    /// when either gives a longer match.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn short_hit(
        &mut self,
        s: i32,
        t: i32,
        cv: u64,
        next: u64,
        next_s: i32,
        hs_next: usize,
        hl_next: usize,
        repeat: i32,
    ) -> Found {
        let src = self.src;
        let cur = self.cur;
        let mut f = Found {
            s,
            t,
            l: match_len_limited(src, s + 4, t + 4) + 4,
            next_s,
        };
        let l_candidate = self.b_table[hl_next];
        self.index_next(hs_next, hl_next, next_s);

        // Check a repeat of the last distance one byte on.
        let t2 = s - repeat + 1;
        if load32(src, t2) == (cv >> 8) as u32 {
            let ml = match_len_limited(src, s + 5, t2 + 4) + 4;
            if ml > f.l {
                return Found {
                    s: s + 1,
                    t: t2,
                    l: ml,
                    next_s,
                };
            }
        }
        // Then the long candidates at next_s.
        let t2 = l_candidate.cur() - cur;
        if next_s - t2 < MAX_MATCH_OFFSET {
            if load32(src, t2) == next as u32 {
                let ml = match_len_limited(src, next_s + 4, t2 + 4) + 4;
                if ml > f.l {
                    f = Found {
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
                if ml > f.l {
                    f = Found {
                        s: next_s,
                        t: t2,
                        l: ml,
                        next_s,
                    };
                }
            }
        }
        f
    }

    /// Looks up the long hash where the match ends and tries the two
    /// candidates there, aligned back to the match start (skipping 2 bytes
    /// that backward extension may still recover). Returns the (possibly)
    /// better `(s, t, l)`.
    #[inline(always)]
    fn better_at_end(&self, mut s: i32, mut t: i32, mut l: i32) -> (i32, i32, i32) {
        const SKIP_BEGINNING: i32 = 2;
        let src = self.src;
        let e_long = self.b_table[hl(load64(src, s + l))];
        let s2 = s + SKIP_BEGINNING;
        let t2 = e_long.cur() - self.cur - l + SKIP_BEGINNING;
        let off = s2 - t2;
        if off < MAX_MATCH_OFFSET {
            if off > 0 && t2 >= 0 {
                let l2 = match_len_long(src, s2, t2);
                if l2 > l {
                    (s, t, l) = (s2, t2, l2);
                }
            }
            let t2 = e_long.prev() - self.cur - l + SKIP_BEGINNING;
            let off = s2 - t2;
            if off > 0 && off < MAX_MATCH_OFFSET && t2 >= 0 {
                let l2 = match_len_long(src, s2, t2);
                if l2 > l {
                    (s, t, l) = (s2, t2, l2);
                }
            }
        }
        (s, t, l)
    }
}
