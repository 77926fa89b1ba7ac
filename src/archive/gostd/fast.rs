//! Level 1 (BestSpeed): Go's Snappy-style matcher (`deflatefast.go`) and
//! the `encSpeed` step of `deflate.go` that runs it on every full
//! 65535-byte block. One 16384-entry hash table remembers the last
//! position of each 4-byte hash across blocks, so matches may reach back
//! into the previous block.

use super::bit_writer::{BitWriter, MAX_STORE_BLOCK_SIZE};
use super::token::{Token, literal_token, match_token};

const TABLE_BITS: u32 = 14;
const TABLE_SIZE: usize = 1 << TABLE_BITS;
const TABLE_MASK: usize = TABLE_SIZE - 1;
const MAX_MATCH_LENGTH: i32 = 258;
const MAX_MATCH_OFFSET: i32 = 1 << 15;
/// Offsets are rebased before `cur` can overflow an `i32`.
const BUFFER_RESET: i32 = i32::MAX - MAX_STORE_BLOCK_SIZE as i32 * 2;
/// Blocks shorter than this are all literals.
const MIN_NON_LITERAL_BLOCK_SIZE: usize = 1 + 1 + INPUT_MARGIN;
const INPUT_MARGIN: usize = 16 - 1;

/// The last position (plus `cur`) of a hash, and the 4 bytes found there.
#[derive(Clone, Copy, Default)]
struct TableEntry {
    val: u32,
    offset: i32,
}

#[inline(always)]
fn load32(b: &[u8], i: i32) -> u32 {
    match b.get(i as usize..).and_then(|s| s.first_chunk::<4>()) {
        Some(&bytes) => u32::from_le_bytes(bytes),
        None => 0,
    }
}

#[inline(always)]
fn load64(b: &[u8], i: i32) -> u64 {
    match b.get(i as usize..).and_then(|s| s.first_chunk::<8>()) {
        Some(&bytes) => u64::from_le_bytes(bytes),
        None => 0,
    }
}

#[inline(always)]
fn hash(u: u32) -> usize {
    (u.wrapping_mul(0x1e35_a7bd) >> (32 - TABLE_BITS)) as usize & TABLE_MASK
}

/// Count of equal leading bytes of `a` and `b`, up to the shorter.
#[inline(always)]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (ca, ra) = a.as_chunks::<8>();
    let (cb, rb) = b.as_chunks::<8>();
    let mut len = 0;
    for (x, y) in ca.iter().zip(cb) {
        let diff = u64::from_le_bytes(*x) ^ u64::from_le_bytes(*y);
        if diff != 0 {
            return len + (diff.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    len + ra.iter().zip(rb).take_while(|(x, y)| x == y).count()
}

/// Go's `deflateFast`.
struct DeflateFast {
    table: Box<[TableEntry; TABLE_SIZE]>,
    /// The previous block, empty if unknown.
    prev: Vec<u8>,
    /// Position of the current block's start in table offsets.
    cur: i32,
}

impl DeflateFast {
    fn new() -> DeflateFast {
        let table = match vec![TableEntry::default(); TABLE_SIZE]
            .into_boxed_slice()
            .try_into()
        {
            Ok(table) => table,
            Err(_) => unreachable!("a vec of TABLE_SIZE entries converts to an array"),
        };
        DeflateFast {
            table,
            prev: Vec::with_capacity(MAX_STORE_BLOCK_SIZE),
            cur: MAX_STORE_BLOCK_SIZE as i32,
        }
    }

    /// Appends the tokens of `src` (at most 65535 bytes) to `dst`.
    fn encode(&mut self, dst: &mut Vec<Token>, src: &[u8]) {
        if self.cur >= BUFFER_RESET {
            self.shift_offsets();
        }
        if src.len() < MIN_NON_LITERAL_BLOCK_SIZE {
            self.cur += MAX_STORE_BLOCK_SIZE as i32;
            self.prev.clear();
            emit_literal(dst, src);
            return;
        }
        let next_emit = self.encode_matches(dst, src) as usize;
        if next_emit < src.len() {
            emit_literal(dst, &src[next_emit..]);
        }
        self.cur += src.len() as i32;
        self.prev.clear();
        self.prev.extend_from_slice(src);
    }

    /// The match loop of `encode`; returns where the trailing literals
    /// start.
    fn encode_matches(&mut self, dst: &mut Vec<Token>, src: &[u8]) -> i32 {
        // Stop looking for matches this close to the end.
        let s_limit = (src.len() - INPUT_MARGIN) as i32;
        let cur = self.cur;
        let mut next_emit = 0i32;
        let mut s = 0i32;
        let mut cv = load32(src, s);
        let mut next_hash = hash(cv);
        loop {
            // Look at every byte for 32 bytes, then every other byte for
            // 32 more, and so on, until a 4-byte match turns up.
            let mut skip = 32i32;
            let mut next_s = s;
            let mut candidate;
            loop {
                s = next_s;
                let step = skip >> 5;
                next_s = s + step;
                skip += step;
                if next_s > s_limit {
                    return next_emit;
                }
                candidate = self.table[next_hash];
                let now = load32(src, next_s);
                self.table[next_hash] = TableEntry {
                    offset: s + cur,
                    val: cv,
                };
                next_hash = hash(now);
                let offset = s - (candidate.offset - cur);
                if offset <= MAX_MATCH_OFFSET && cv == candidate.val {
                    break;
                }
                cv = now;
            }
            emit_literal(dst, &src[next_emit as usize..s as usize]);

            // Emit matches for as long as the bytes right after one start
            // another.
            loop {
                s += 4;
                let t = candidate.offset - cur + 4;
                let l = self.match_len(s, t, src);
                dst.push(match_token((l + 4 - 3) as u32, (s - t - 1) as u32));
                s += l;
                next_emit = s;
                if s >= s_limit {
                    return next_emit;
                }
                // Hash s - 1 and s, and look for a match at s.
                let mut x = load64(src, s - 1);
                let prev_hash = hash(x as u32);
                self.table[prev_hash] = TableEntry {
                    offset: cur + s - 1,
                    val: x as u32,
                };
                x >>= 8;
                let curr_hash = hash(x as u32);
                candidate = self.table[curr_hash];
                self.table[curr_hash] = TableEntry {
                    offset: cur + s,
                    val: x as u32,
                };
                let offset = s - (candidate.offset - cur);
                if offset > MAX_MATCH_OFFSET || x as u32 != candidate.val {
                    cv = (x >> 8) as u32;
                    next_hash = hash(cv);
                    s += 1;
                    break;
                }
            }
        }
    }

    /// Length of the match between `src[s..]` and `src[t..]` (at most 254
    /// more bytes); a negative `t` starts in the previous block and may run
    /// on into this one.
    fn match_len(&self, s: i32, t: i32, src: &[u8]) -> i32 {
        let s = s as usize;
        let s1 = (s + MAX_MATCH_LENGTH as usize - 4).min(src.len());
        let a = &src[s..s1];
        if t >= 0 {
            return common_prefix(a, &src[t as usize..]) as i32;
        }
        let tp = self.prev.len() as i32 + t;
        if tp < 0 {
            return 0;
        }
        let b = &self.prev[tp as usize..];
        let n = common_prefix(a, b);
        if n < a.len().min(b.len()) {
            return n as i32;
        }
        if s + n == s1 {
            return n as i32;
        }
        // The match ran to the end of the previous block; continue at the
        // start of this one.
        (n + common_prefix(&src[s + n..s1], src)) as i32
    }

    /// Forgets the history so no match reaches before the next block.
    fn reset(&mut self) {
        self.prev.clear();
        self.cur += MAX_MATCH_OFFSET;
        if self.cur >= BUFFER_RESET {
            self.shift_offsets();
        }
    }

    /// Rebases every table offset so `cur` restarts near zero.
    fn shift_offsets(&mut self) {
        if self.prev.is_empty() {
            self.table.fill(TableEntry::default());
        } else {
            let base = self.cur - MAX_MATCH_OFFSET - 1;
            for e in self.table.iter_mut() {
                e.offset = (e.offset - base).max(0);
            }
        }
        self.cur = MAX_MATCH_OFFSET + 1;
    }
}

fn emit_literal(dst: &mut Vec<Token>, lit: &[u8]) {
    dst.extend(lit.iter().map(|&b| literal_token(b)));
}

/// The level 1 compressor: a 65535-byte input block and the matcher.
pub(super) struct Fast {
    window: Vec<u8>,
    window_end: usize,
    tokens: Vec<Token>,
    matcher: DeflateFast,
}

impl Fast {
    pub(super) fn new() -> Fast {
        Fast {
            window: vec![0; MAX_STORE_BLOCK_SIZE],
            window_end: 0,
            tokens: Vec::with_capacity(MAX_STORE_BLOCK_SIZE + 1),
            matcher: DeflateFast::new(),
        }
    }

    /// Copies as much of `b` as fits into the block; returns the count.
    pub(super) fn fill(&mut self, b: &[u8]) -> usize {
        let free = &mut self.window[self.window_end..];
        let n = free.len().min(b.len());
        free[..n].copy_from_slice(&b[..n]);
        self.window_end += n;
        n
    }

    /// Go's `encSpeed`: compresses the block once it is full (or at
    /// `sync`, whatever it holds).
    pub(super) fn step(&mut self, sync: bool, w: &mut BitWriter, out: &mut Vec<u8>) {
        let end = self.window_end;
        if end < MAX_STORE_BLOCK_SIZE {
            if !sync {
                return;
            }
            if end < 128 {
                // Small final pieces: stored or Huffman-only, no history.
                match end {
                    0 => return,
                    1..=16 => w.write_stored_block(&self.window[..end], out),
                    _ => w.write_block_huff(false, &self.window[..end], out),
                }
                self.window_end = 0;
                self.matcher.reset();
                return;
            }
        }
        let block = &self.window[..end];
        self.tokens.clear();
        self.matcher.encode(&mut self.tokens, block);
        // Barely compressible (under 1/16 removed): Huffman-code the bytes.
        if self.tokens.len() > end - (end >> 4) {
            w.write_block_huff(false, block, out);
        } else {
            w.write_block_dynamic(&self.tokens, false, Some(block), out);
        }
        self.window_end = 0;
    }
}
