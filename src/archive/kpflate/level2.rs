//! Level 2 match finder (klauspost `level2.go`): like level 1 but with a
//! 17-bit table and denser re-indexing after each match.

use super::fast::{
    B_TABLE_BITS, B_TABLE_SIZE, FastGen, HistBuf, Input, MAX_MATCH_OFFSET, Wrap, byte_at,
    emit_remainder, hash_len, load32, load64, matchlen_long, rebase_entry, zeroed_box,
};
use super::tokens::Tokens;

const INPUT_MARGIN: i32 = 12 - 1;
const MIN_NON_LITERAL_BLOCK_SIZE: usize = 1 + 1 + INPUT_MARGIN as usize;

#[inline(always)]
fn hash(u: u64) -> usize {
    hash_len(u, B_TABLE_BITS, 5)
}

/// Level 2 encoder state (`fastEncL2`).
pub(super) struct FastEncL2 {
    pub(super) fgen: FastGen,
    table: Box<[i32; B_TABLE_SIZE]>,
}

impl FastEncL2 {
    pub(super) fn new() -> FastEncL2 {
        FastEncL2 {
            fgen: FastGen::new(),
            table: zeroed_box(),
        }
    }

    /// Appends the tokens of `input` (which continues the history) to `dst`.
    pub(super) fn encode(&mut self, dst: &mut Tokens, input: Input<'_>) {
        let table = &mut *self.table;
        match self.fgen.guard_wrap() {
            Wrap::None => {}
            Wrap::Clear => table.fill(0),
            Wrap::Rebase { min_off, cur } => {
                for v in table.iter_mut() {
                    *v = rebase_entry(*v, min_off, cur);
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

/// The main loop; returns `nextEmit`, where the trailing literals start.
fn search(
    table: &mut [i32; B_TABLE_SIZE],
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
        let mut next_s = s;
        let mut candidate;
        loop {
            let next_hash = hash(cv);
            s = next_s;
            next_s = s + 2 + ((s - next_emit) >> 5);
            if next_s > s_limit {
                return next_emit;
            }
            candidate = table[next_hash];
            let mut now = load64(buf, next_s);
            table[next_hash] = s + cur;
            let next_hash = hash(now);
            let offset = s - (candidate - cur);
            if offset < MAX_MATCH_OFFSET && cv as u32 == load32(buf, candidate - cur) {
                table[next_hash] = next_s + cur;
                break;
            }
            // Do one right away...
            cv = now;
            s = next_s;
            next_s += 1;
            candidate = table[next_hash];
            now >>= 8;
            table[next_hash] = s + cur;
            let offset = s - (candidate - cur);
            if offset < MAX_MATCH_OFFSET && cv as u32 == load32(buf, candidate - cur) {
                break;
            }
            cv = now;
        }

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
                // Index first pair after match end.
                if ((s + l + 8) as usize) < len {
                    table[hash(load64(buf, s))] = s + cur;
                }
                return next_emit;
            }
            // Store every second hash in-between, but offset by 1.
            let mut i = s - l + 2;
            while i < s - 5 {
                let mut x = load64(buf, i);
                table[hash(x)] = cur + i;
                x >>= 16;
                table[hash(x)] = cur + i + 2;
                x >>= 16;
                table[hash(x)] = cur + i + 4;
                i += 7;
            }
            // Update the table at s-2 to s, and check for a match at s.
            let x = load64(buf, s - 2);
            let o = cur + s - 2;
            table[hash(x)] = o;
            table[hash(x >> 8)] = o + 1;
            let curr_hash = hash(x >> 16);
            candidate = table[curr_hash];
            table[curr_hash] = o + 2;
            let offset = s - (candidate - cur);
            if offset > MAX_MATCH_OFFSET || (x >> 16) as u32 != load32(buf, candidate - cur) {
                cv = x >> 24;
                s += 1;
                break;
            }
        }
    }
}
