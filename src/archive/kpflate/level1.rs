//! Level 1 (BestSpeed) match finder (klauspost `level1.go`): one 15-bit table
//! of 5-byte hashes, probing two positions per step with a growing skip.

use super::fast::{
    FastGen, HistBuf, Input, MAX_MATCH_OFFSET, TABLE_BITS, TABLE_SIZE, Wrap, byte_at,
    emit_remainder, hash_len, load32, load64, match_len_at, rebase_entry, zeroed_box,
};
use super::tokens::Tokens;

const INPUT_MARGIN: i32 = 12 - 1;
const MIN_NON_LITERAL_BLOCK_SIZE: usize = 1 + 1 + INPUT_MARGIN as usize;

#[inline(always)]
fn hash(u: u64) -> usize {
    hash_len(u, TABLE_BITS, 5)
}

/// Level 1 encoder state (`fastEncL1`).
pub(super) struct FastEncL1 {
    pub(super) fgen: FastGen,
    table: Box<[i32; TABLE_SIZE]>,
}

impl FastEncL1 {
    pub(super) fn new() -> FastEncL1 {
        FastEncL1 {
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
            // Go only sets the token count here; the caller never uses it.
            return;
        }
        let cur = self.fgen.cur;
        let next_emit = search(table, cur, &self.fgen.buf, self.fgen.len, s, dst);
        emit_remainder(dst, self.fgen.hist(), next_emit);
    }
}

/// The main loop; returns `nextEmit`, where the trailing literals start.
fn search(
    table: &mut [i32; TABLE_SIZE],
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
        const SKIP_LOG: u32 = 5;
        const DO_EVERY: i32 = 2;
        let mut next_s;
        let mut candidate;
        loop {
            let next_hash = hash(cv);
            candidate = table[next_hash];
            next_s = s + DO_EVERY + ((s - next_emit) >> SKIP_LOG);
            if next_s > s_limit {
                return next_emit;
            }
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
                table[next_hash] = next_s + cur;
                break;
            }
            cv = now;
            s = next_s;
        }

        // A 4-byte match has been found; emit matches while the next position
        // also matches.
        loop {
            let mut t = candidate - cur;
            let mut l = 4 + match_len_at(buf, len, s + 4, t + 4);
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
                // Index first pair after match end.
                if ((s + l + 8) as usize) < src.len() {
                    let cv = load64(buf, s);
                    table[hash(cv)] = s + cur;
                }
                return next_emit;
            }
            // Update the table at s-2 and s, and check for an immediate match at s.
            let mut x = load64(buf, s - 2);
            let o = cur + s - 2;
            table[hash(x)] = o;
            x >>= 16;
            let curr_hash = hash(x);
            candidate = table[curr_hash];
            table[curr_hash] = o + 2;
            let offset = s - (candidate - cur);
            if offset > MAX_MATCH_OFFSET || x as u32 != load32(buf, candidate - cur) {
                cv = x >> 8;
                s += 1;
                break;
            }
        }
    }
}
