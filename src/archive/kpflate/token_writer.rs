//! Fast emission of a block's tokens (Go's `writeTokens`).
//!
//! Go adds one code at a time to a 64-bit accumulator, moving 6 bytes to its
//! 264-byte staging buffer whenever 48 bits are pending, and handing the
//! staging buffer to the output whenever it holds 246 bytes or more. Because
//! every code is shorter than 48 bits, Go's state after any run of codes depends
//! only on the total number of bits `T` written since the last reset: `T / 48`
//! spills happened, `T % 48` bits are pending, and the hand-overs follow from
//! the spill count. So this writer packs each token (a literal, or a whole
//! match with its extra bits) without branches into a scratch buffer, and then
//! rebuilds Go's exact accumulator, staging buffer and output from `T`.

use super::bit_writer::{BUFFER_FLUSH_SIZE, BitWriter};
use super::fast::zeroed_box;
use super::huffman::{hcode64, hlen};
use super::tokens::{
    END_BLOCK_MARKER, LENGTH_BASE, LENGTH_CODES, LENGTH_EXTRA_BITS, OFFSET_COMBINED,
};

/// Index mask for the scratch buffer: a block has at most 65536 tokens of at
/// most 48 bits, well below this many bytes.
const SCRATCH_MASK: usize = (1 << 19) - 1;
/// Scratch buffer for packed token bits, with room for an 8-byte store at any
/// masked index.
pub(super) type Scratch = [u8; SCRATCH_MASK + 1 + 8];

/// A new zeroed scratch buffer.
pub(super) fn new_scratch() -> Box<Scratch> {
    zeroed_box()
}

/// Per-block lookup tables: every symbol as (bits << 8 | bit count).
struct Tables {
    lit: [u64; 256],
    /// Length code plus its extra bits, per (length - 3).
    len: [u64; 256],
    /// Offset code bits << 16 | extra bit count << 8 | code length.
    off: [u64; 32],
    /// Base of each offset code.
    off_base: [u32; 32],
}

fn tables(le: &[u32; 320], oe: &[u32; 320]) -> Tables {
    let mut t = Tables {
        lit: [0; 256],
        len: [0; 256],
        off: [0; 32],
        off_base: [0; 32],
    };
    for (dst, &c) in t.lit.iter_mut().zip(le.iter()) {
        *dst = (hcode64(c) << 8) | u64::from(hlen(c));
    }
    for (i, dst) in t.len.iter_mut().enumerate() {
        let lc = usize::from(LENGTH_CODES[i] & 31);
        let c = le[257 + lc];
        let mut v = hcode64(c);
        let mut n = hlen(c);
        if lc >= 8 {
            v |= ((i as u64) - u64::from(LENGTH_BASE[lc])) << n;
            n += u32::from(LENGTH_EXTRA_BITS[lc]);
        }
        *dst = (v << 8) | u64::from(n);
    }
    for (oc, dst) in t.off.iter_mut().enumerate() {
        let c = oe[oc];
        let (nb, base) = if oc >= 4 {
            (OFFSET_COMBINED[oc] & 255, OFFSET_COMBINED[oc] >> 8)
        } else {
            (0, 0)
        };
        *dst = (hcode64(c) << 16) | (u64::from(nb) << 8) | u64::from(hlen(c));
        t.off_base[oc] = base;
    }
    t
}

/// Bits and bit count of one token.
#[inline(always)]
fn pack(t: u32, tab: &Tables) -> (u64, u32) {
    let lit = tab.lit[(t & 255) as usize];
    let len = tab.len[((t >> 22) & 255) as usize];
    let oc = ((t >> 16) & 31) as usize;
    let off = tab.off[oc];
    let lnb = (len & 255) as u32;
    let ocl = (off & 255) as u32;
    let onb = ((off >> 8) & 255) as u32;
    let extra = u64::from((t & 0xffff).wrapping_sub(tab.off_base[oc])) & ((1u64 << onb) - 1);
    let mval = (len >> 8) | ((off >> 16) << lnb) | (extra << (lnb + ocl));
    // Select without a branch: literal/match alternation is unpredictable.
    let m = u64::from(t >= 256).wrapping_neg();
    let v = (mval & m) | ((lit >> 8) & !m);
    let n = (u64::from(lnb + ocl + onb) & m) | ((lit & 255) & !m);
    (v, n as u32)
}

/// Bit packer writing whole bytes into the scratch buffer.
struct Packer<'a> {
    buf: &'a mut Scratch,
    pos: usize,
    acc: u64,
    nacc: u32,
}

impl Packer<'_> {
    /// Adds `n` (at most 48) bits; at most 7 bits stay pending.
    #[inline(always)]
    fn put(&mut self, v: u64, n: u32) {
        self.acc |= v << self.nacc;
        self.nacc += n;
        let p = self.pos & SCRATCH_MASK;
        self.buf[p..p + 8].copy_from_slice(&self.acc.to_le_bytes());
        let nb = self.nacc >> 3;
        self.pos += nb as usize;
        self.acc >>= nb * 8;
        self.nacc &= 7;
    }
}

impl BitWriter {
    /// `writeTokens`: emits `toks` with the dynamic tables, or the fixed ones.
    /// A trailing end-of-block token is written through `write_code`, as in Go.
    pub(super) fn write_tokens(&mut self, toks: &[u32], fixed: bool, out: &mut Vec<u8>) {
        let Some((&last, rest)) = toks.split_last() else {
            return;
        };
        let (toks, defer_eob) = if last == END_BLOCK_MARKER {
            (rest, true)
        } else {
            (toks, false)
        };
        let (le, oe) = if fixed {
            (&self.fixed_literal.codes, &self.fixed_offset.codes)
        } else {
            (&self.literal_encoding.codes, &self.offset_encoding.codes)
        };
        let tab = tables(le, oe);
        let eob = le[END_BLOCK_MARKER as usize];

        // The pending bits start the packed stream.
        let mut p = Packer {
            buf: &mut self.scratch,
            pos: 0,
            acc: 0,
            nacc: 0,
        };
        p.put(self.bits, self.nbits);
        for &t in toks {
            let (v, n) = pack(t, &tab);
            p.put(v, n);
        }
        let (pos, acc, nacc) = (p.pos, p.acc, p.nacc);
        self.settle(pos, acc, nacc, out);
        if defer_eob {
            self.write_code(eob, out);
        }
    }

    /// Rebuilds Go's state from `pos` packed bytes in the scratch buffer plus
    /// `nacc` pending bits in `acc`.
    fn settle(&mut self, pos: usize, acc: u64, nacc: u32, out: &mut Vec<u8>) {
        let total_bits = pos * 8 + nacc as usize;
        let spills = total_bits / 48;
        let spilled = spills * 6;
        // Pending bits: the packed bytes after the spilled ones, then `acc`.
        let mut bits = 0u64;
        for (i, &b) in self.scratch[spilled..pos].iter().enumerate() {
            bits |= u64::from(b) << (8 * i);
        }
        bits |= acc << (8 * (pos - spilled));
        self.bits = bits;
        self.nbits = (total_bits % 48) as u32;

        // Staging buffer and hand-overs.
        let staged = self.nbytes;
        let total = staged + spilled;
        let keep = if total < BUFFER_FLUSH_SIZE {
            total
        } else {
            let first = (BUFFER_FLUSH_SIZE - staged).div_ceil(6);
            6 * ((spills - first) % (BUFFER_FLUSH_SIZE / 6))
        };
        if keep == total {
            self.bytes[staged..total].copy_from_slice(&self.scratch[..spilled]);
        } else {
            let handed = total - keep;
            out.extend_from_slice(&self.bytes[..staged]);
            out.extend_from_slice(&self.scratch[..handed - staged]);
            self.bytes[..keep].copy_from_slice(&self.scratch[handed - staged..spilled]);
        }
        self.nbytes = keep;
    }
}

#[cfg(test)]
mod test {
    use super::super::tokens::{LENGTH_SHIFT, MATCH_TYPE, offset_code};
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn writer(rng: &mut Rng) -> BitWriter {
        let mut w = BitWriter::new(7);
        let mut lit = [0u16; 286];
        for f in lit.iter_mut() {
            *f = rng.below(50) as u16;
        }
        lit[256] = 1;
        let mut off = [0u16; 30];
        for f in off.iter_mut() {
            *f = rng.below(20) as u16 + 1;
        }
        w.literal_encoding.generate(&lit, 15);
        w.offset_encoding.generate(&off, 15);
        w.nbits = rng.below(48) as u32;
        w.bits = rng.next() & ((1u64 << w.nbits) - 1);
        w.nbytes = rng.below(246) as usize;
        for b in w.bytes.iter_mut() {
            *b = rng.next() as u8;
        }
        w
    }

    #[test]
    fn fast_writer_matches_go_transcription() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let fixed = round % 3 == 0;
            let n = rng.below(if round % 2 == 0 { 40 } else { 5000 }) as usize;
            let mut toks: Vec<u32> = (0..n)
                .map(|_| {
                    if rng.below(2) == 0 {
                        rng.below(256) as u32
                    } else {
                        let xl = rng.below(256) as u32;
                        let xoff = rng.below(32768) as u32;
                        MATCH_TYPE | (xl << LENGTH_SHIFT) | (offset_code(xoff) << 16) | xoff
                    }
                })
                .collect();
            if rng.below(2) == 0 {
                toks.push(END_BLOCK_MARKER);
            }
            let seed = rng.next();
            let mut a = writer(&mut Rng(seed));
            let mut b = writer(&mut Rng(seed));
            let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
            a.write_tokens(&toks, fixed, &mut out_a);
            b.write_tokens_reference(&toks, fixed, &mut out_b);
            assert_eq!(out_a, out_b, "round {round}");
            assert_eq!(
                (a.bits, a.nbits, a.nbytes),
                (b.bits, b.nbits, b.nbytes),
                "round {round}"
            );
            assert_eq!(a.bytes[..a.nbytes], b.bytes[..b.nbytes], "round {round}");
        }
    }
}
