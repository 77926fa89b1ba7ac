//! The block writer of Go's `compress/flate/huffman_bit_writer.go`: picks
//! stored, fixed or dynamic Huffman coding for each block by Go's size
//! rules and writes it bit for bit as Go does (Go's output buffering is
//! modelled by [`BitOut`]).

use super::bit_output::BitOut;
use super::huffman_code::{HCode, HuffmanEncoder, fixed_literal_codes, fixed_offset_codes};
use super::token::{
    END_BLOCK_MARKER, LENGTH_CODES_START, LENGTH_EXTRA_BITS, MAX_NUM_LIT, OFFSET_CODE_COUNT,
    OFFSET_EXTRA_BITS, Token, TokenCoder,
};

/// Largest stored block.
pub(super) const MAX_STORE_BLOCK_SIZE: usize = 65535;
/// Symbols of the code-length alphabet.
const CODEGEN_CODE_COUNT: usize = 19;
/// Ends the run-length coded code lengths in `codegen`.
const BAD_CODE: u8 = 255;

/// The order in which code-length code lengths are written.
const CODEGEN_ORDER: [usize; CODEGEN_CODE_COUNT] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

static FIXED_LITERAL: [HCode; MAX_NUM_LIT] = fixed_literal_codes();
static FIXED_OFFSET: [HCode; MAX_NUM_LIT] = fixed_offset_codes();

/// Go's `huffOffset`: the distance code of a block without matches (a
/// single one-bit code for distance code 0).
static HUFF_OFFSET: [HCode; OFFSET_CODE_COUNT] = {
    let mut codes = [HCode { code: 0, len: 0 }; OFFSET_CODE_COUNT];
    codes[0].len = 1;
    codes
};

/// Go's `huffmanBitWriter`, writing into a caller's `Vec<u8>`.
pub(super) struct BitWriter {
    bits: BitOut,
    codegen_freq: [i32; CODEGEN_CODE_COUNT],
    literal_freq: [i32; MAX_NUM_LIT],
    offset_freq: [i32; OFFSET_CODE_COUNT],
    codegen: [u8; MAX_NUM_LIT + OFFSET_CODE_COUNT + 1],
    literal_encoding: HuffmanEncoder,
    offset_encoding: HuffmanEncoder,
    codegen_encoding: HuffmanEncoder,
}

/// Bits a block of `input` takes when stored, if it fits one stored block.
fn stored_size(input: Option<&[u8]>) -> Option<usize> {
    match input {
        Some(b) if b.len() <= MAX_STORE_BLOCK_SIZE => Some((b.len() + 5) * 8),
        _ => None,
    }
}

/// Extra bits written for symbols seen `freq[i]` times that carry
/// `extra[i]` extra bits each.
fn extra_bit_count(freq: &[i32], extra: &[u8]) -> usize {
    freq.iter()
        .zip(extra)
        .map(|(&f, &e)| f as usize * usize::from(e))
        .sum()
}

/// Bits taken by symbols with frequencies `freq` under `codes`.
fn bit_length(codes: &[HCode], freq: &[i32]) -> usize {
    freq.iter()
        .zip(codes)
        .map(|(&f, c)| f as usize * usize::from(c.len))
        .sum()
}

impl BitWriter {
    /// A writer at the start of a stream.
    pub(super) fn new() -> BitWriter {
        BitWriter {
            bits: BitOut::new(),
            codegen_freq: [0; CODEGEN_CODE_COUNT],
            literal_freq: [0; MAX_NUM_LIT],
            offset_freq: [0; OFFSET_CODE_COUNT],
            codegen: [0; MAX_NUM_LIT + OFFSET_CODE_COUNT + 1],
            literal_encoding: HuffmanEncoder::new(),
            offset_encoding: HuffmanEncoder::new(),
            codegen_encoding: HuffmanEncoder::new(),
        }
    }

    /// Writes out every buffered bit, the last byte padded with zeros.
    pub(super) fn flush(&mut self, out: &mut Vec<u8>) {
        self.bits.flush(out);
    }

    /// Appends the low `nb` bits of `b`.
    #[inline(always)]
    fn write_bits(&mut self, b: u32, nb: u32, out: &mut Vec<u8>) {
        self.bits.put(u64::from(b), nb, out);
    }

    /// Appends one Huffman code.
    #[inline(always)]
    fn write_code(&mut self, c: HCode, out: &mut Vec<u8>) {
        self.bits.put(u64::from(c.code), u32::from(c.len), out);
    }

    /// Writes `data` after the pending (byte-aligned) bits.
    fn write_bytes(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.bits.write_bytes(data, out);
    }

    /// Writes a stored block header for `length` bytes.
    pub(super) fn write_stored_header(&mut self, length: usize, eof: bool, out: &mut Vec<u8>) {
        self.write_bits(u32::from(eof), 3, out);
        self.flush(out);
        let length = length as u16;
        self.write_bits(u32::from(length), 16, out);
        self.write_bits(u32::from(!length), 16, out);
    }

    /// Writes `data` as one stored block (not the last).
    pub(super) fn write_stored_block(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.write_stored_header(data.len(), false, out);
        self.write_bytes(data, out);
    }

    /// Run-length codes the code lengths of the first `num_literals`
    /// literal and `num_offsets` distance codes into `codegen` (RFC 1951
    /// 3.2.7), counting each code-length symbol in `codegen_freq`.
    fn generate_codegen(
        &mut self,
        num_literals: usize,
        num_offsets: usize,
        offset_codes: Option<&[HCode]>,
    ) {
        self.codegen_freq = [0; CODEGEN_CODE_COUNT];
        let freq = &mut self.codegen_freq;
        let codegen = &mut self.codegen;
        let offset_codes = offset_codes.unwrap_or(&self.offset_encoding.codes);
        let lits = self.literal_encoding.codes[..num_literals].iter();
        let offs = offset_codes[..num_offsets].iter();
        for (dst, c) in codegen.iter_mut().zip(lits.chain(offs)) {
            *dst = c.len as u8;
        }
        codegen[num_literals + num_offsets] = BAD_CODE;

        // The output never overtakes the input, so it is written in place.
        let mut size = codegen[0];
        let mut count = 1;
        let mut out_index = 0;
        let mut in_index = 1;
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
            for _ in 0..count {
                codegen[out_index] = size;
                out_index += 1;
                freq[usize::from(size)] += 1;
            }
            size = next_size;
            count = 1;
        }
        codegen[out_index] = BAD_CODE;
    }

    /// Size in bits of a dynamic block with the current frequencies, and
    /// how many code-length code lengths its header carries.
    fn dynamic_size(&self, offset_codes: &[HCode], extra_bits: usize) -> (usize, usize) {
        let freq = &self.codegen_freq;
        let mut num_codegens = CODEGEN_CODE_COUNT;
        while num_codegens > 4 && freq[CODEGEN_ORDER[num_codegens - 1]] == 0 {
            num_codegens -= 1;
        }
        let header = 3
            + 5
            + 5
            + 4
            + 3 * num_codegens
            + self.codegen_encoding.bit_length(freq)
            + freq[16] as usize * 2
            + freq[17] as usize * 3
            + freq[18] as usize * 7;
        let size = header
            + self.literal_encoding.bit_length(&self.literal_freq)
            + bit_length(offset_codes, &self.offset_freq)
            + extra_bits;
        (size, num_codegens)
    }

    /// Size in bits of a fixed-code block with the current frequencies.
    fn fixed_size(&self, extra_bits: usize) -> usize {
        3 + bit_length(&FIXED_LITERAL, &self.literal_freq)
            + bit_length(&FIXED_OFFSET, &self.offset_freq)
            + extra_bits
    }

    /// Writes the header of a dynamic block whose codes are in
    /// `codegen`.
    fn write_dynamic_header(
        &mut self,
        num_literals: usize,
        num_offsets: usize,
        num_codegens: usize,
        eof: bool,
        out: &mut Vec<u8>,
    ) {
        self.write_bits(if eof { 5 } else { 4 }, 3, out);
        self.write_bits((num_literals - 257) as u32, 5, out);
        self.write_bits((num_offsets - 1) as u32, 5, out);
        self.write_bits((num_codegens - 4) as u32, 4, out);
        for &sym in &CODEGEN_ORDER[..num_codegens] {
            let len = self.codegen_encoding.codes[sym].len;
            self.write_bits(u32::from(len), 3, out);
        }
        let mut i = 0;
        loop {
            let code_word = self.codegen[i];
            i += 1;
            if code_word == BAD_CODE {
                break;
            }
            let code = self.codegen_encoding.codes[usize::from(code_word)];
            self.write_code(code, out);
            let extra = match code_word {
                16 => 2,
                17 => 3,
                18 => 7,
                _ => continue,
            };
            let value = self.codegen[i];
            self.write_bits(u32::from(value), extra, out);
            i += 1;
        }
    }

    /// Counts the symbols of `tokens` plus an end-of-block marker and
    /// builds the dynamic codes for them. Returns how many literal/length
    /// and distance codes the block header must carry.
    fn index_tokens(&mut self, tokens: &[Token]) -> (usize, usize) {
        TokenCoder::histogram(tokens, &mut self.literal_freq, &mut self.offset_freq);
        self.literal_freq[END_BLOCK_MARKER] += 1;

        let mut num_literals = MAX_NUM_LIT;
        while self.literal_freq[num_literals - 1] == 0 {
            num_literals -= 1;
        }
        let mut num_offsets = OFFSET_CODE_COUNT;
        while num_offsets > 0 && self.offset_freq[num_offsets - 1] == 0 {
            num_offsets -= 1;
        }
        if num_offsets == 0 {
            // A dynamic header needs at least one distance code.
            self.offset_freq[0] = 1;
            num_offsets = 1;
        }
        self.literal_encoding.generate(&self.literal_freq, 15);
        self.offset_encoding.generate(&self.offset_freq, 15);
        (num_literals, num_offsets)
    }

    /// Writes `tokens` and the end-of-block marker with the fixed codes or
    /// the dynamic ones just built.
    fn write_tokens(&mut self, tokens: &[Token], fixed: bool, out: &mut Vec<u8>) {
        let coder = if fixed {
            TokenCoder::new(&FIXED_LITERAL, &FIXED_OFFSET)
        } else {
            TokenCoder::new(&self.literal_encoding.codes, &self.offset_encoding.codes)
        };
        coder.write(tokens, &mut self.bits, out);
    }

    /// Writes `tokens` as one block in whichever of stored (when `input`,
    /// the bytes they encode, is given and fits), fixed or dynamic coding
    /// is smallest — Go's `writeBlock`.
    pub(super) fn write_block(
        &mut self,
        tokens: &[Token],
        eof: bool,
        input: Option<&[u8]>,
        out: &mut Vec<u8>,
    ) {
        let (num_literals, num_offsets) = self.index_tokens(tokens);
        let stored = stored_size(input);
        let mut extra_bits = 0;
        if stored.is_some() {
            // Extra bits are the same under fixed and dynamic codes; they
            // only matter when comparing with a stored block.
            let lengths = &self.literal_freq[LENGTH_CODES_START..num_literals];
            let offsets = &self.offset_freq[..num_offsets];
            extra_bits = extra_bit_count(lengths, &LENGTH_EXTRA_BITS)
                + extra_bit_count(offsets, &OFFSET_EXTRA_BITS);
        }
        let mut size = self.fixed_size(extra_bits);

        self.generate_codegen(num_literals, num_offsets, None);
        self.codegen_encoding.generate(&self.codegen_freq, 7);
        let (dynamic_size, num_codegens) =
            self.dynamic_size(&self.offset_encoding.codes, extra_bits);
        let dynamic = dynamic_size < size;
        if dynamic {
            size = dynamic_size;
        }

        if let (Some(stored), Some(input)) = (stored, input)
            && stored < size
        {
            self.write_stored_header(input.len(), eof, out);
            self.write_bytes(input, out);
            return;
        }
        if dynamic {
            self.write_dynamic_header(num_literals, num_offsets, num_codegens, eof, out);
        } else {
            self.write_bits(if eof { 3 } else { 2 }, 3, out);
        }
        self.write_tokens(tokens, !dynamic, out);
    }

    /// Writes `tokens` with dynamic codes, or `input` stored when that is
    /// not at least 1/16 larger — Go's `writeBlockDynamic`.
    pub(super) fn write_block_dynamic(
        &mut self,
        tokens: &[Token],
        eof: bool,
        input: Option<&[u8]>,
        out: &mut Vec<u8>,
    ) {
        let (num_literals, num_offsets) = self.index_tokens(tokens);
        self.generate_codegen(num_literals, num_offsets, None);
        self.codegen_encoding.generate(&self.codegen_freq, 7);
        let (size, num_codegens) = self.dynamic_size(&self.offset_encoding.codes, 0);

        if let (Some(stored), Some(input)) = (stored_size(input), input)
            && stored < size + (size >> 4)
        {
            self.write_stored_header(input.len(), eof, out);
            self.write_bytes(input, out);
            return;
        }
        self.write_dynamic_header(num_literals, num_offsets, num_codegens, eof, out);
        self.write_tokens(tokens, false, out);
    }

    /// Writes `input` as literals under a dynamic code, or stored when that
    /// is not at least 1/16 larger — Go's `writeBlockHuff`.
    pub(super) fn write_block_huff(&mut self, eof: bool, input: &[u8], out: &mut Vec<u8>) {
        self.literal_freq = [0; MAX_NUM_LIT];
        for &b in input {
            self.literal_freq[usize::from(b)] += 1;
        }
        self.literal_freq[END_BLOCK_MARKER] = 1;
        const NUM_LITERALS: usize = END_BLOCK_MARKER + 1;
        self.offset_freq[0] = 1;
        const NUM_OFFSETS: usize = 1;

        self.literal_encoding.generate(&self.literal_freq, 15);
        self.generate_codegen(NUM_LITERALS, NUM_OFFSETS, Some(&HUFF_OFFSET));
        self.codegen_encoding.generate(&self.codegen_freq, 7);
        let (size, num_codegens) = self.dynamic_size(&HUFF_OFFSET, 0);

        if let Some(stored) = stored_size(Some(input))
            && stored < size + (size >> 4)
        {
            self.write_stored_header(input.len(), eof, out);
            self.write_bytes(input, out);
            return;
        }
        self.write_dynamic_header(NUM_LITERALS, NUM_OFFSETS, num_codegens, eof, out);
        let codes = &self.literal_encoding.codes;
        self.bits.with(out, |c| {
            // Three codes of at most 15 bits fit one put.
            let (triples, rest) = input.as_chunks::<3>();
            for &[a, b, d] in triples {
                let (a, b, d) = (
                    codes[usize::from(a)],
                    codes[usize::from(b)],
                    codes[usize::from(d)],
                );
                let (la, lb) = (u32::from(a.len), u32::from(b.len));
                let value =
                    u64::from(a.code) | u64::from(b.code) << la | u64::from(d.code) << (la + lb);
                c.put(value, la + lb + u32::from(d.len));
            }
            for &b in rest {
                let code = codes[usize::from(b)];
                c.put(u64::from(code.code), u32::from(code.len));
            }
            let eob = codes[END_BLOCK_MARKER];
            c.put(u64::from(eob.code), u32::from(eob.len));
        });
    }
}
