//! The LSB-first bit sink every block is written through.
//!
//! Go buffers whole 48-bit groups in a small byte array before handing them
//! to its writer; the byte stream is the same however it is chunked, so this
//! writer appends finished bytes straight to an output vector.

use super::huffman::hlen;
use super::tokens::{LENGTH_BASE, LENGTH_CODES, LENGTH_EXTRA_BITS, OFFSET_BASE, OFFSET_EXTRA_BITS};

/// Size of the staging buffer whole bytes are gathered in.
const BUF_LEN: usize = 8192;
/// The staging buffer is moved to `out` once it holds this many bytes; the
/// rest is headroom for one token's bytes plus an 8-byte store.
const BUF_FLUSH: usize = BUF_LEN - 64;

/// Accumulates bits and moves whole bytes to `out`.
pub(super) struct BitWriter {
    /// Finished output bytes not yet handed to the caller.
    pub(super) out: Vec<u8>,
    buf: Box<[u8; BUF_LEN]>,
    nbytes: usize,
    bits: u64,
    nbits: u32,
}

/// Stores the low 6 bytes of `bits` at `buf[*p..]` (writing 8) and advances `p`.
#[inline(always)]
fn put6(buf: &mut [u8; BUF_LEN], p: &mut usize, bits: u64) {
    if let Some(d) = buf.get_mut(*p..*p + 8) {
        d.copy_from_slice(&bits.to_le_bytes());
    }
    *p += 6;
}

/// Stores the whole bytes of the `nbits` pending bits at `buf[*p..]`
/// (writing 8) and drops them, leaving fewer than 8 bits pending.
#[inline(always)]
fn put_bytes(buf: &mut [u8; BUF_LEN], p: &mut usize, bits: &mut u64, nbits: &mut u32) {
    if let Some(d) = buf.get_mut(*p..*p + 8) {
        d.copy_from_slice(&bits.to_le_bytes());
    }
    let n = *nbits >> 3;
    *p += n as usize;
    *bits >>= (n * 8) & 63;
    *nbits -= n * 8;
}

impl BitWriter {
    /// An empty writer.
    pub(super) fn new() -> BitWriter {
        BitWriter {
            out: Vec::new(),
            buf: Box::new([0; BUF_LEN]),
            nbytes: 0,
            bits: 0,
            nbits: 0,
        }
    }

    /// Moves the staged bytes to `out`.
    pub(super) fn drain(&mut self) {
        self.out.extend_from_slice(&self.buf[..self.nbytes]);
        self.nbytes = 0;
    }

    /// Moves 48 finished bits to the staging buffer.
    #[inline(always)]
    fn flush_bits(&mut self) {
        put6(&mut self.buf, &mut self.nbytes, self.bits);
        self.bits >>= 48;
        self.nbits -= 48;
        if self.nbytes >= BUF_FLUSH {
            self.drain();
        }
    }

    /// Writes the low `nb` bits of `b`.
    #[inline]
    pub(super) fn write_bits(&mut self, b: u32, nb: u32) {
        self.bits |= u64::from(b) << self.nbits;
        self.nbits += nb;
        if self.nbits >= 48 {
            self.flush_bits();
        }
    }

    /// Writes one packed Huffman code.
    #[inline]
    pub(super) fn write_code(&mut self, c: u32) {
        self.bits |= u64::from(c >> 8) << self.nbits;
        self.nbits += hlen(c);
        if self.nbits >= 48 {
            self.flush_bits();
        }
    }

    /// Pads the pending bits with zeros to a byte boundary and moves
    /// everything to `out`.
    pub(super) fn flush_align(&mut self) {
        self.drain();
        while self.nbits != 0 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.nbits = self.nbits.saturating_sub(8);
        }
        self.bits = 0;
    }

    /// Writes raw bytes; the stream must be byte aligned (it is after a
    /// stored block header).
    pub(super) fn write_bytes(&mut self, bytes: &[u8]) {
        self.flush_align();
        self.out.extend_from_slice(bytes);
    }

    /// Writes the codes of the literal bytes `input` with `codes` (`writeBlockHuff`'s loop).
    pub(super) fn write_literals(&mut self, input: &[u8], codes: &[u32]) {
        let codes: &[u32; 256] = match codes.get(..256).and_then(|c| c.try_into().ok()) {
            Some(c) => c,
            None => return,
        };
        let (mut bits, mut nbits, mut p) = (self.bits, self.nbits, self.nbytes);
        let buf = &mut *self.buf;
        let mut chunks = input.chunks_exact(3);
        for ch in &mut chunks {
            // Fewer than 8 pending bits leave room for 3 codes of at most 15 bits.
            put_bytes(buf, &mut p, &mut bits, &mut nbits);
            if p >= BUF_FLUSH {
                self.out.extend_from_slice(&buf[..p]);
                p = 0;
            }
            for &v in ch {
                let a = codes[v as usize];
                bits |= u64::from(a >> 8) << nbits;
                nbits += a & 0xff;
            }
        }
        for &v in chunks.remainder() {
            if nbits >= 48 {
                put6(buf, &mut p, bits);
                bits >>= 48;
                nbits -= 48;
            }
            let a = codes[v as usize];
            bits |= u64::from(a >> 8) << nbits;
            nbits += a & 0xff;
        }
        self.bits = bits;
        self.nbits = nbits;
        self.nbytes = p;
        while self.nbits >= 48 {
            self.flush_bits();
        }
    }

    /// Writes `tokens` with the literal/length codes `lit` and offset codes
    /// `off` (Go's `writeTokens`). A trailing end-of-block token is written last.
    pub(super) fn write_tokens(&mut self, tokens: &[u32], lit: &[u32], off: &[u32]) {
        let Some(lits) = lit.get(..256).and_then(|c| <&[u32; 256]>::try_from(c).ok()) else {
            return;
        };
        // Code and extra bits of every length and offset code, packed as
        // `bits << 8 | bit count`.
        let mut len_tab = [0u64; 256];
        for (xl, e) in len_tab.iter_mut().enumerate() {
            let code = LENGTH_CODES[xl] as usize;
            let c = lit.get(257 + code).copied().unwrap_or(0);
            let extra = xl as u64 - u64::from(LENGTH_BASE[code]);
            let clen = u64::from(hlen(c));
            *e = (u64::from(c >> 8) | extra << clen) << 8
                | (clen + u64::from(LENGTH_EXTRA_BITS[code]));
        }
        // Per offset code: code bits << 32 | base << 16 | code length << 8 | bit count.
        let mut off_tab = [0u64; 32];
        for (code, e) in off_tab.iter_mut().enumerate().take(30) {
            let c = off.get(code).copied().unwrap_or(0);
            *e = u64::from(c >> 8) << 32
                | u64::from(OFFSET_BASE[code]) << 16
                | u64::from(hlen(c)) << 8
                | (u64::from(hlen(c)) + u64::from(OFFSET_EXTRA_BITS[code]));
        }

        let (tokens, defer_eob) = match tokens.split_last() {
            Some((&256, rest)) => (rest, true),
            _ => (tokens, false),
        };
        let (mut bits, mut nbits, mut p) = (self.bits, self.nbits, self.nbytes);
        let buf = &mut *self.buf;
        for &t in tokens {
            if p >= BUF_FLUSH {
                self.out.extend_from_slice(&buf[..p]);
                p = 0;
            }
            // Fewer than 8 pending bits leave room for a whole match (at
            // most 15 + 5 bits of length and 15 + 13 bits of offset).
            put_bytes(buf, &mut p, &mut bits, &mut nbits);
            // Both codings are worked out and one is selected without a
            // branch: literals and matches alternate unpredictably.
            let lit = u64::from(lits[(t & 255) as usize]);
            let lc = len_tab[((t >> 22) & 255) as usize];
            let oc = off_tab[((t >> 16) & 31) as usize];
            let extra = u64::from(t.wrapping_sub((oc >> 16) as u32) & 0xffff);
            let off_bits = (oc >> 32) | extra << ((oc >> 8) & 0xff);
            let m_bits = (lc >> 8) | off_bits << (lc & 0xff);
            let m_len = (lc & 0xff) + (oc & 0xff);
            let (v, n) = if t < 256 {
                (lit >> 8, lit & 0xff)
            } else {
                (m_bits, m_len)
            };
            bits |= v << nbits;
            nbits += n as u32;
        }
        self.bits = bits;
        self.nbits = nbits;
        self.nbytes = p;
        while self.nbits >= 48 {
            self.flush_bits();
        }
        if defer_eob {
            self.write_code(lit[256]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::huffman::new_hcode;
    use super::super::tokens::{MATCH_TYPE, offset_code};
    use super::*;

    /// Appends bits one at a time, LSB first.
    struct Naive {
        out: Vec<u8>,
        n: usize,
    }

    impl Naive {
        fn put(&mut self, v: u64, len: u32) {
            for i in 0..len {
                if self.n & 7 == 0 {
                    self.out.push(0);
                }
                if v >> i & 1 == 1 {
                    *self.out.last_mut().expect("pushed above") |= 1 << (self.n % 8);
                }
                self.n += 1;
            }
        }
        fn code(&mut self, c: u32) {
            self.put(u64::from(c >> 8), hlen(c));
        }
    }

    /// xorshift64 stream.
    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    fn codes(n: usize, next: &mut impl FnMut() -> u64, max_len: bool) -> Vec<u32> {
        (0..n)
            .map(|_| {
                let len = if max_len { 15 } else { 1 + (next() % 15) as u8 };
                new_hcode((next() & ((1 << len) - 1)) as u16, len)
            })
            .collect()
    }

    #[test]
    fn tokens_pack_like_a_bit_by_bit_writer() {
        for (seed, max_len) in [(1, false), (2, true), (3, false)] {
            let mut next = rng(seed);
            let lit = codes(286, &mut next, max_len);
            let off = codes(30, &mut next, max_len);
            let mut tokens = Vec::new();
            let mut naive = Naive {
                out: Vec::new(),
                n: 0,
            };
            // A 3-bit header first, so tokens start unaligned.
            naive.put(5, 3);
            for _ in 0..20_000 {
                if next() % 3 == 1 {
                    let xl = (next() % 256) as u32;
                    let xoff = (next() % 32768) as u32;
                    let oc = offset_code(xoff);
                    tokens.push(MATCH_TYPE | xl << 22 | oc << 16 | xoff);
                    let lc = LENGTH_CODES[xl as usize] as usize;
                    naive.code(lit[257 + lc]);
                    naive.put(
                        u64::from(xl - u32::from(LENGTH_BASE[lc])),
                        u32::from(LENGTH_EXTRA_BITS[lc]),
                    );
                    naive.code(off[oc as usize]);
                    let extra = xoff - OFFSET_BASE[oc as usize];
                    naive.put(u64::from(extra), u32::from(OFFSET_EXTRA_BITS[oc as usize]));
                } else {
                    let b = (next() % 256) as u32;
                    tokens.push(b);
                    naive.code(lit[b as usize]);
                }
            }
            tokens.push(256);
            naive.code(lit[256]);
            let mut w = BitWriter::new();
            w.write_bits(5, 3);
            w.write_tokens(&tokens, &lit, &off);
            let bytes: Vec<u8> = (0..4000).map(|i| (i * 7) as u8).collect();
            w.write_literals(&bytes, &lit);
            for &b in &bytes {
                naive.code(lit[b as usize]);
            }
            w.flush_align();
            let at = w.out.iter().zip(&naive.out).position(|(a, b)| a != b);
            assert!(
                w.out == naive.out,
                "seed {seed}: lengths {} {}, first difference at {at:?}",
                w.out.len(),
                naive.out.len()
            );
        }
    }
}
