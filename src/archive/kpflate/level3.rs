//! Level 3 match finder (klauspost `level3.go`): one 16-bit table of 5-byte
//! hashes keeping two candidates per bucket.

use super::fast::{
    EntryPrev, FastGen, HistBuf, Input, MAX_MATCH_OFFSET, Wrap, byte_at, emit_remainder, hash_len,
    load32, load64, matchlen_long, zeroed_box,
};
use super::tokens::Tokens;

const INPUT_MARGIN: i32 = 12 - 1;
const MIN_NON_LITERAL_BLOCK_SIZE: usize = 1 + 1 + INPUT_MARGIN as usize;
const TABLE_BITS: u8 = 16;
const TABLE_SIZE: usize = 1 << TABLE_BITS;

#[inline(always)]
fn hash(u: u64) -> usize {
    hash_len(u, TABLE_BITS, 5)
}

/// Level 3 encoder state (`fastEncL3`).
pub(super) struct FastEncL3 {
    pub(super) fgen: FastGen,
    table: Box<[EntryPrev; TABLE_SIZE]>,
}

impl FastEncL3 {
    pub(super) fn new() -> FastEncL3 {
        FastEncL3 {
            fgen: FastGen::new(),
            table: zeroed_box(),
        }
    }

    /// Appends the tokens of `input` (which continues the history) to `dst`.
    pub(super) fn encode(&mut self, dst: &mut Tokens, input: Input<'_>) {
        let table = &mut *self.table;
        match self.fgen.guard_wrap() {
            Wrap::None => {}
            Wrap::Clear => table.fill(EntryPrev::default()),
            Wrap::Rebase { min_off, cur } => {
                for v in table.iter_mut() {
                    *v = v.rebased_each(min_off, cur);
                }
            }
        }
        let (s, n) = self.fgen.add(input);
        if n < MIN_NON_LITERAL_BLOCK_SIZE {
            return;
        }
        let cur = self.fgen.cur;
        let next_emit = search(table, cur, &self.fgen.buf, self.fgen.len, s, dst);
        emit_remainder(dst, self.fgen.hist(), next_emit);
    }
}

/// Pushes position `pos` (absolute) into the bucket for `x`.
#[inline(always)]
fn push(table: &mut [EntryPrev; TABLE_SIZE], x: u64, pos: i32) {
    let e = &mut table[hash(x)];
    *e = e.pushed(pos);
}

/// Scans from `s` for a match; returns the match start and candidate, or
/// `None` at `sLimit`.
#[inline(always)]
fn find(
    table: &mut [EntryPrev; TABLE_SIZE],
    cur: i32,
    buf: &HistBuf,
    len: usize,
    (mut s, next_emit, mut cv): (i32, i32, u64),
) -> Option<(i32, i32, i32)> {
    let s_limit = len as i32 - INPUT_MARGIN;
    let mut next_s = s;
    loop {
        let next_hash = hash(cv);
        s = next_s;
        next_s = s + 1 + ((s - next_emit) >> 7);
        if next_s > s_limit {
            return None;
        }
        let candidates = table[next_hash];
        let now = load64(buf, next_s);
        // Safe offset distance until s + 4...
        let min_offset = cur + s - (MAX_MATCH_OFFSET - 4);
        table[next_hash] = candidates.pushed(s + cur);

        let candidate = candidates.cur();
        if candidate < min_offset {
            // Previous will also be invalid, we have nothing.
            cv = now;
            continue;
        }
        if cv as u32 == load32(buf, candidate - cur) {
            let prev = candidates.prev();
            if prev < min_offset || cv as u32 != load32(buf, prev - cur) {
                return Some((s, candidate, next_s));
            }
            // Both match and are valid: pick the longest.
            let l1 = matchlen_long(buf, len, s + 4, candidate - cur + 4);
            let l2 = matchlen_long(buf, len, s + 4, prev - cur + 4);
            return Some((s, if l2 > l1 { prev } else { candidate }, next_s));
        }
        let candidate = candidates.prev();
        if candidate > min_offset && cv as u32 == load32(buf, candidate - cur) {
            return Some((s, candidate, next_s));
        }
        cv = now;
    }
}

/// The main loop; returns `nextEmit`, where the trailing literals start.
fn search(
    table: &mut [EntryPrev; TABLE_SIZE],
    cur: i32,
    buf: &HistBuf,
    len: usize,
    mut s: i32,
    dst: &mut Tokens,
) -> i32 {
    let src = &buf[..len];
    let mut next_emit = s;
    let s_limit = len as i32 - INPUT_MARGIN;
    let mut cv = load64(buf, s);
    loop {
        let Some((fs, mut candidate, next_s)) = find(table, cur, buf, len, (s, next_emit, cv))
        else {
            return next_emit;
        };
        s = fs;
        // Emit matches while the position after each also matches.
        loop {
            let mut t = candidate - cur;
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
                // Index first pair after match end (Go indexes at t + l).
                t += l;
                if ((t + 8) as usize) < len && t > 0 {
                    push(table, load64(buf, t), cur + t);
                }
                return next_emit;
            }
            // Store every 5th hash in-between.
            let mut i = s - l + 2;
            while i < s - 5 {
                push(table, load64(buf, i), cur + i);
                i += 6;
            }
            // Update the table at s-2 to s, and check both candidates at s.
            let x = load64(buf, s - 2);
            push(table, x, cur + s - 2);
            push(table, x >> 8, cur + s - 1);
            let x = x >> 16;
            let curr_hash = hash(x);
            let candidates = table[curr_hash];
            cv = x;
            table[curr_hash] = candidates.pushed(s + cur);
            let min_offset = cur + s - (MAX_MATCH_OFFSET - 4);
            candidate = candidates.cur();
            if candidate > min_offset {
                if cv as u32 == load32(buf, candidate - cur) {
                    continue;
                }
                candidate = candidates.prev();
                if candidate > min_offset && cv as u32 == load32(buf, candidate - cur) {
                    continue;
                }
            }
            cv = x >> 8;
            s += 1;
            break;
        }
    }
}
