//! The bit-level output stage of klauspost's `huffmanBitWriter`: the 64-bit
//! accumulator, the 264-byte staging buffer (handed to the output every
//! 246 bytes, as Go does), stored/fixed headers, and the dynamic-header codegen.
//! The block-level decisions live in [`super::blocks`].

use super::MAX_STORE_BLOCK_SIZE;
use super::huffman::{HuffmanEncoder, hcode64, hlen};
use super::token_writer::{Scratch, new_scratch};
use super::tokens::{
    END_BLOCK_MARKER, LENGTH_EXTRA_BITS, LITERAL_COUNT, OFFSET_CODE_COUNT, OFFSET_EXTRA_BITS,
    Tokens,
};

/// Number of code-length codes.
pub(super) const CODEGEN_CODE_COUNT: usize = 19;
/// End marker in the codegen array.
const BAD_CODE: u8 = 255;
/// Staged bytes are handed over once this many are buffered.
pub(super) const BUFFER_FLUSH_SIZE: usize = 246;
/// Order in which code-length code lengths are written.
const CODEGEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// State of the Huffman bit writer (`huffmanBitWriter`).
pub(super) struct BitWriter {
    pub(super) bits: u64,
    pub(super) nbits: u32,
    pub(super) nbytes: usize,
    /// The current (reusable) table was made for literals only.
    pub(super) last_huff_man: bool,
    pub(super) literal_encoding: Box<HuffmanEncoder>,
    pub(super) tmp_lit_encoding: Box<HuffmanEncoder>,
    pub(super) offset_encoding: Box<HuffmanEncoder>,
    pub(super) codegen_encoding: Box<HuffmanEncoder>,
    pub(super) fixed_literal: Box<HuffmanEncoder>,
    pub(super) fixed_offset: Box<HuffmanEncoder>,
    /// Literal-only offset table (`huffOffset`).
    pub(super) huff_offset: Box<HuffmanEncoder>,
    /// Header size (bits) of the table still open for reuse; 0 = none open.
    pub(super) last_header: i64,
    pub(super) log_new_table_penalty: u32,
    pub(super) bytes: [u8; 256 + 8],
    pub(super) literal_freq: [u16; 257 + 32],
    pub(super) offset_freq: [u16; 32],
    pub(super) codegen_freq: [u16; CODEGEN_CODE_COUNT],
    pub(super) codegen: [u8; LITERAL_COUNT + OFFSET_CODE_COUNT + 1],
    /// Scratch space of the token writer.
    pub(super) scratch: Box<Scratch>,
}

impl BitWriter {
    pub(super) fn new(log_new_table_penalty: u32) -> BitWriter {
        let mut huff_offset = Box::new(HuffmanEncoder::new());
        let mut freq = [0u16; OFFSET_CODE_COUNT];
        freq[0] = 1;
        huff_offset.generate(&freq, 15);
        BitWriter {
            bits: 0,
            nbits: 0,
            nbytes: 0,
            last_huff_man: false,
            literal_encoding: Box::new(HuffmanEncoder::new()),
            tmp_lit_encoding: Box::new(HuffmanEncoder::new()),
            offset_encoding: Box::new(HuffmanEncoder::new()),
            codegen_encoding: Box::new(HuffmanEncoder::new()),
            fixed_literal: Box::new(HuffmanEncoder::fixed_literal()),
            fixed_offset: Box::new(HuffmanEncoder::fixed_offset()),
            huff_offset,
            last_header: 0,
            log_new_table_penalty,
            bytes: [0; 256 + 8],
            literal_freq: [0; 257 + 32],
            offset_freq: [0; 32],
            codegen_freq: [0; CODEGEN_CODE_COUNT],
            codegen: [0; LITERAL_COUNT + OFFSET_CODE_COUNT + 1],
            scratch: new_scratch(),
        }
    }

    /// `reset`: forgets pending bits and any open table.
    pub(super) fn reset(&mut self) {
        self.bits = 0;
        self.nbits = 0;
        self.nbytes = 0;
        self.last_header = 0;
        self.last_huff_man = false;
    }

    /// True when every symbol used by `t` has a code in the open table.
    pub(super) fn can_reuse(&self, t: &Tokens) -> bool {
        let off = &self.offset_encoding.codes;
        if t.off_hist[..OFFSET_CODE_COUNT]
            .iter()
            .zip(off.iter())
            .any(|(&v, &c)| v != 0 && c == 0)
        {
            return false;
        }
        let lit = &self.literal_encoding.codes;
        if t.extra_hist[..LITERAL_COUNT - 256]
            .iter()
            .zip(lit[256..LITERAL_COUNT].iter())
            .any(|(&v, &c)| v != 0 && c == 0)
        {
            return false;
        }
        !t.lit_hist
            .iter()
            .zip(lit[..256].iter())
            .any(|(&v, &c)| v != 0 && c == 0)
    }

    /// Writes out everything pending (including an owed end-of-block), byte aligned.
    pub(super) fn flush(&mut self, out: &mut Vec<u8>) {
        if self.last_header > 0 {
            let eob = self.literal_encoding.codes[END_BLOCK_MARKER as usize];
            self.write_code(eob, out);
            self.last_header = 0;
        }
        let mut n = self.nbytes;
        while self.nbits != 0 {
            self.bytes[n] = self.bits as u8;
            self.bits >>= 8;
            self.nbits = self.nbits.saturating_sub(8);
            n += 1;
        }
        self.bits = 0;
        out.extend_from_slice(&self.bytes[..n]);
        self.nbytes = 0;
    }

    #[inline(always)]
    pub(super) fn write_bits(&mut self, b: u32, nb: u32, out: &mut Vec<u8>) {
        self.bits |= u64::from(b) << (self.nbits & 63);
        self.nbits += nb;
        if self.nbits >= 48 {
            self.write_out_bits(out);
        }
    }

    #[inline(always)]
    pub(super) fn write_code(&mut self, c: u32, out: &mut Vec<u8>) {
        self.bits |= hcode64(c) << (self.nbits & 63);
        self.nbits += hlen(c);
        if self.nbits >= 48 {
            self.write_out_bits(out);
        }
    }

    /// Moves 48 bits into the staging buffer, handing it over when full.
    pub(super) fn write_out_bits(&mut self, out: &mut Vec<u8>) {
        let bits = self.bits;
        self.bits >>= 48;
        self.nbits -= 48;
        let mut n = self.nbytes;
        self.bytes[n..n + 8].copy_from_slice(&bits.to_le_bytes());
        n += 6;
        if n >= BUFFER_FLUSH_SIZE {
            out.extend_from_slice(&self.bytes[..n]);
            n = 0;
        }
        self.nbytes = n;
    }

    /// Writes raw bytes; the bit position must be byte aligned.
    pub(super) fn write_bytes(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut n = self.nbytes;
        while self.nbits != 0 {
            self.bytes[n] = self.bits as u8;
            self.bits >>= 8;
            self.nbits -= 8;
            n += 1;
        }
        out.extend_from_slice(&self.bytes[..n]);
        self.nbytes = 0;
        out.extend_from_slice(data);
    }

    /// Writes the header of a stored block (or, for an empty final block, a
    /// fixed-Huffman block holding only end-of-block).
    pub(super) fn write_stored_header(&mut self, length: usize, is_eof: bool, out: &mut Vec<u8>) {
        if self.last_header > 0 {
            let eob = self.literal_encoding.codes[END_BLOCK_MARKER as usize];
            self.write_code(eob, out);
            self.last_header = 0;
        }
        if length == 0 && is_eof {
            self.write_fixed_header(is_eof, out);
            self.write_bits(0, 7, out);
            self.flush(out);
            return;
        }
        self.write_bits(u32::from(is_eof), 3, out);
        self.flush(out);
        self.write_bits(length as u32 & 0xffff, 16, out);
        self.write_bits(u32::from(!(length as u16)), 16, out);
    }

    pub(super) fn write_fixed_header(&mut self, is_eof: bool, out: &mut Vec<u8>) {
        if self.last_header > 0 {
            let eob = self.literal_encoding.codes[END_BLOCK_MARKER as usize];
            self.write_code(eob, out);
            self.last_header = 0;
        }
        self.write_bits(if is_eof { 3 } else { 2 }, 3, out);
    }

    /// Writes `input` as a stored block.
    pub(super) fn write_stored(&mut self, input: &[u8], eof: bool, out: &mut Vec<u8>) {
        self.write_stored_header(input.len(), eof, out);
        self.write_bytes(input, out);
    }

    /// RFC 1951 3.2.7 run-length coding of the code lengths of the literal table
    /// (first `num_literals`) and the offset table (first `num_offsets`; the
    /// literal-only `huff_offset` table when `huff_only`) into `codegen`,
    /// counting code frequencies in `codegen_freq`.
    pub(super) fn generate_codegen(
        &mut self,
        num_literals: usize,
        num_offsets: usize,
        huff_only: bool,
    ) {
        self.codegen_freq = [0; CODEGEN_CODE_COUNT];
        let lit = &self.literal_encoding;
        let off = if huff_only {
            &self.huff_offset
        } else {
            &self.offset_encoding
        };
        let codegen = &mut self.codegen;
        let freq = &mut self.codegen_freq;
        for (dst, &c) in codegen[..num_literals].iter_mut().zip(lit.codes.iter()) {
            *dst = hlen(c) as u8;
        }
        for (dst, &c) in codegen[num_literals..num_literals + num_offsets]
            .iter_mut()
            .zip(off.codes.iter())
        {
            *dst = hlen(c) as u8;
        }
        codegen[num_literals + num_offsets] = BAD_CODE;

        let mut size = codegen[0];
        let mut count: i32 = 1;
        let mut out_index = 0usize;
        let mut in_index = 1usize;
        while size != BAD_CODE {
            let next_size = codegen[in_index];
            in_index += 1;
            if next_size == size {
                count += 1;
                continue;
            }
            if size != 0 {
                codegen[out_index] = size;
                out_index += 1;
                freq[usize::from(size)] += 1;
                count -= 1;
                while count >= 3 {
                    let n = count.min(6);
                    codegen[out_index] = 16;
                    codegen[out_index + 1] = (n - 3) as u8;
                    out_index += 2;
                    freq[16] += 1;
                    count -= n;
                }
            } else {
                while count >= 11 {
                    let n = count.min(138);
                    codegen[out_index] = 18;
                    codegen[out_index + 1] = (n - 11) as u8;
                    out_index += 2;
                    freq[18] += 1;
                    count -= n;
                }
                if count >= 3 {
                    codegen[out_index] = 17;
                    codegen[out_index + 1] = (count - 3) as u8;
                    out_index += 2;
                    freq[17] += 1;
                    count = 0;
                }
            }
            count -= 1;
            while count >= 0 {
                codegen[out_index] = size;
                out_index += 1;
                freq[usize::from(size)] += 1;
                count -= 1;
            }
            size = next_size;
            count = 1;
        }
        codegen[out_index] = BAD_CODE;
    }

    /// Number of code-length codes that must be sent.
    pub(super) fn codegens(&self) -> usize {
        let mut num = CODEGEN_CODE_COUNT;
        while num > 4 && self.codegen_freq[CODEGEN_ORDER[num - 1]] == 0 {
            num -= 1;
        }
        num
    }

    /// Size in bits of the dynamic header, and the number of codegens.
    pub(super) fn header_size(&self) -> (i64, usize) {
        let num = self.codegens();
        let f = &self.codegen_freq;
        let size = 3
            + 5
            + 5
            + 4
            + (3 * num as i64)
            + self.codegen_encoding.bit_length(f)
            + i64::from(f[16]) * 2
            + i64::from(f[17]) * 3
            + i64::from(f[18]) * 7;
        (size, num)
    }

    /// Bits of the extra length/offset bits of the current histograms.
    pub(super) fn extra_bit_size(&self) -> i64 {
        let mut total = 0i64;
        for (i, &n) in self.literal_freq[257..LITERAL_COUNT].iter().enumerate() {
            total += i64::from(n) * i64::from(LENGTH_EXTRA_BITS[i & 31]);
        }
        for (i, &n) in self.offset_freq[..OFFSET_CODE_COUNT].iter().enumerate() {
            total += i64::from(n) * i64::from(OFFSET_EXTRA_BITS[i & 31]);
        }
        total
    }

    /// Size in bits of the block with the fixed tables.
    pub(super) fn fixed_size(&self, extra_bits: i64) -> i64 {
        3 + self.fixed_literal.bit_length(&self.literal_freq)
            + self.fixed_offset.bit_length(&self.offset_freq)
            + extra_bits
    }

    /// Writes the dynamic block header from `codegen`.
    pub(super) fn write_dynamic_header(
        &mut self,
        num_literals: usize,
        num_offsets: usize,
        num_codegens: usize,
        is_eof: bool,
        out: &mut Vec<u8>,
    ) {
        self.write_bits(if is_eof { 5 } else { 4 }, 3, out);
        self.write_bits((num_literals - 257) as u32, 5, out);
        self.write_bits((num_offsets - 1) as u32, 5, out);
        self.write_bits((num_codegens - 4) as u32, 4, out);
        for &ord in &CODEGEN_ORDER[..num_codegens] {
            let value = hlen(self.codegen_encoding.codes[ord]);
            self.write_bits(value, 3, out);
        }
        let mut i = 0usize;
        loop {
            let code_word = self.codegen[i];
            i += 1;
            if code_word == BAD_CODE {
                break;
            }
            let c = self.codegen_encoding.codes[usize::from(code_word)];
            self.write_code(c, out);
            let extra = match code_word {
                16 => 2,
                17 => 3,
                18 => 7,
                _ => 0,
            };
            if extra > 0 {
                let v = u32::from(self.codegen[i]);
                self.write_bits(v, extra, out);
                i += 1;
            }
        }
    }
}

/// Stored size in bits (with header) of `input`, and whether it fits one stored block.
pub(super) fn stored_size(len: usize) -> (i64, bool) {
    if len <= MAX_STORE_BLOCK_SIZE {
        ((len as i64 + 5) * 8, true)
    } else {
        (0, false)
    }
}
