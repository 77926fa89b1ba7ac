//! Level 3 (Go's `level3.go`): one 64 Ki-entry table of 5-byte hashes
//! keeping two candidates per entry; the longer of two matching candidates wins.

use super::fast::{
    BUFFER_RESET, FastGen, INPUT_MARGIN, MAX_MATCH_OFFSET, MIN_NON_LITERAL_BLOCK_SIZE, boxed_array,
    emit_remainder, hash5, idx, load8, load32, load64, match_len, match_len_long,
};
use super::level6::Pair;
use super::tokens::Tokens;

/// Bits of the level 3 table.
const L3_TABLE_BITS: u32 = 16;
/// Entries of the level 3 table.
const L3_TABLE_SIZE: usize = 1 << L3_TABLE_BITS;

/// Level 3 match finder state.
pub(super) struct Level3 {
    history: FastGen,
    table: Box<[Pair; L3_TABLE_SIZE]>,
}

/// The table hash.
#[inline(always)]
fn h(u: u64) -> usize {
    hash5::<L3_TABLE_BITS>(u)
}

/// Length of the common prefix of `src[a..]` and `src[b..]`.
#[inline(always)]
fn common(src: &[u8], a: i32, b: i32) -> usize {
    match (src.get(idx(a)..), src.get(idx(b)..)) {
        (Some(x), Some(y)) => match_len(x, y),
        _ => 0,
    }
}

impl Level3 {
    /// A fresh encoder.
    pub(super) fn new() -> Level3 {
        Level3 {
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
                None => self.table.fill(Pair::default()),
                Some(min_off) => {
                    for v in self.table.iter_mut() {
                        let (c, p) = (
                            self.history.rebase(v.cur(), min_off),
                            self.history.rebase(v.prev(), min_off),
                        );
                        *v = Pair::new(c, p);
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
        const SKIP_LOG: i32 = 7;
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
                let next_hash = h(cv);
                s = next_s;
                next_s = s + 1 + ((s - next_emit) >> SKIP_LOG);
                if next_s > s_limit {
                    return next_emit;
                }
                let candidates = table[next_hash];
                let now = load64(src, next_s);
                // Offsets below this are out of reach until s + 4.
                let min_offset = cur + s - (MAX_MATCH_OFFSET - 4);
                table[next_hash].push(s + cur);

                candidate = candidates.cur();
                if candidate < min_offset {
                    // The older candidate is out of reach too.
                    cv = now;
                    continue;
                }
                if cv as u32 == load32(src, candidate - cur) {
                    if candidates.prev() < min_offset
                        || cv as u32 != load32(src, candidates.prev() - cur)
                    {
                        break;
                    }
                    // Both match: take the longer.
                    let l1 = common(src, s + 4, candidate - cur + 4);
                    let l2 = common(src, s + 4, candidates.prev() - cur + 4);
                    if l2 > l1 {
                        candidate = candidates.prev();
                    }
                    break;
                }
                candidate = candidates.prev();
                if candidate > min_offset && cv as u32 == load32(src, candidate - cur) {
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
                    // Index the position after the match source (as Go does).
                    t += l;
                    if ((t + 8) as usize) < src.len() && t > 0 {
                        table[h(load64(src, t))].push(cur + t);
                    }
                    return next_emit;
                }
                // Index every 6th position in between, then s-2, s-1 and s.
                let mut i = s - l + 2;
                while i < s - 5 {
                    table[h(load64(src, i))].push(cur + i);
                    i += 6;
                }
                let mut x = load64(src, s - 2);
                table[h(x)].push(cur + s - 2);
                x >>= 8;
                table[h(x)].push(cur + s - 1);
                x >>= 8;
                let curr_hash = h(x);
                let candidates = table[curr_hash];
                cv = x;
                table[curr_hash].push(s + cur);

                // Go on with another match at s if either candidate has one.
                let min_offset = cur + s - (MAX_MATCH_OFFSET - 4);
                candidate = candidates.cur();
                if candidate > min_offset {
                    if cv as u32 == load32(src, candidate - cur) {
                        continue;
                    }
                    candidate = candidates.prev();
                    if candidate > min_offset && cv as u32 == load32(src, candidate - cur) {
                        continue;
                    }
                }
                cv = x >> 8;
                s += 1;
                break;
            }
        }
    }
}
