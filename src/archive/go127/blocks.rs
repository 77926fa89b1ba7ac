//! Block encoding choices (Go's `huffmanBitWriter`): stored, fixed or dynamic
//! Huffman blocks, and when a dynamic table is kept open and reused for the
//! next block instead of writing a new header.

use super::bitwriter::BitWriter;
use super::huffman::{HuffmanEncoder, bit_length, histogram, hlen, new_hcode};
use super::tokens::{
    END_BLOCK_MARKER, LENGTH_EXTRA_BITS, LITERAL_COUNT, OFFSET_CODE_COUNT, OFFSET_EXTRA_BITS,
    Tokens,
};

/// Number of code length codes.
const CODEGEN_CODE_COUNT: usize = 19;
/// End marker inside the code length sequence.
const BAD_CODE: u8 = 255;
/// Blocks with fewer tokens also try the fixed code.
const MAX_PREDEFINED_TOKENS: usize = 250;
/// Largest stored block.
const MAX_STORE_BLOCK_SIZE: usize = 65535;
/// Order the code length code lengths are sent in.
const CODEGEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// The fixed literal/length code.
const FIXED_LIT: [u32; LITERAL_COUNT] = HuffmanEncoder::fixed_literal();
/// The fixed offset code.
const FIXED_OFF: [u32; LITERAL_COUNT] = HuffmanEncoder::fixed_offset();
/// The one-symbol offset code Huffman-only blocks declare.
const HUFF_OFFSET: [u32; OFFSET_CODE_COUNT] = {
    let mut c = [0u32; OFFSET_CODE_COUNT];
    c[0] = new_hcode(0, 1);
    c
};

/// Writes blocks and remembers the open dynamic table between them.
pub(super) struct BlockWriter {
    /// The bit sink.
    pub(super) bw: BitWriter,
    /// The open table was made for literals only (offsets are unusable).
    wrote_huffman: bool,
    lit_enc: Box<HuffmanEncoder>,
    tmp_lit_enc: Box<HuffmanEncoder>,
    off_enc: Box<HuffmanEncoder>,
    codegen_enc: Box<HuffmanEncoder>,
    /// Header size in bits of the open table; non-zero means an end of block is owed.
    prev_header: i32,
    /// log2 of the penalty divisor applied to the size estimate of a new table.
    pub(super) log_new_table_penalty: u32,
    literal_freq: [u16; 257 + 32],
    offset_freq: [u16; 32],
    codegen_freq: [u16; CODEGEN_CODE_COUNT],
    codegen: [u8; LITERAL_COUNT + OFFSET_CODE_COUNT + 1],
}

/// Stored size in bits of `input`, and whether it fits one stored block.
fn stored_size(input: Option<&[u8]>) -> (i32, bool) {
    match input {
        Some(b) if b.len() <= MAX_STORE_BLOCK_SIZE => ((b.len() as i32 + 5) * 8, true),
        _ => (0, false),
    }
}

impl BlockWriter {
    /// A writer with no open table.
    pub(super) fn new(log_new_table_penalty: u32) -> BlockWriter {
        BlockWriter {
            bw: BitWriter::new(),
            wrote_huffman: false,
            lit_enc: Box::new(HuffmanEncoder::new()),
            tmp_lit_enc: Box::new(HuffmanEncoder::new()),
            off_enc: Box::new(HuffmanEncoder::new()),
            codegen_enc: Box::new(HuffmanEncoder::new()),
            prev_header: 0,
            log_new_table_penalty,
            literal_freq: [0; 257 + 32],
            offset_freq: [0; 32],
            codegen_freq: [0; CODEGEN_CODE_COUNT],
            codegen: [0; LITERAL_COUNT + OFFSET_CODE_COUNT + 1],
        }
    }

    /// Ends the open dynamic block, if any.
    fn end_open_block(&mut self) {
        if self.prev_header > 0 {
            self.bw.write_code(self.lit_enc.codes[END_BLOCK_MARKER]);
            self.prev_header = 0;
        }
    }

    /// Ends any open block and pads the stream to a byte boundary.
    pub(super) fn flush(&mut self) {
        self.end_open_block();
        self.bw.flush_align();
    }

    /// Whether every symbol the tokens use has a code in the open table.
    fn can_reuse(&self, t: &Tokens) -> bool {
        let offs = &self.off_enc.codes[..OFFSET_CODE_COUNT];
        if t.off_hist[..OFFSET_CODE_COUNT]
            .iter()
            .zip(offs)
            .any(|(&v, &c)| v != 0 && c == 0)
        {
            return false;
        }
        let extra = &self.lit_enc.codes[256..LITERAL_COUNT];
        if t.extra_hist[..LITERAL_COUNT - 256]
            .iter()
            .zip(extra)
            .any(|(&v, &c)| v != 0 && c == 0)
        {
            return false;
        }
        let lits = &self.lit_enc.codes[..256];
        !t.lit_hist.iter().zip(lits).any(|(&v, &c)| v != 0 && c == 0)
    }

    /// Builds the run-length coded sequence of code lengths (RFC 1951
    /// 3.2.7) for the first `num_literals` literal and `num_offsets` offset
    /// codes, counting code length symbols in `codegen_freq`.
    fn generate_codegen(&mut self, num_literals: usize, num_offsets: usize, huff_offsets: bool) {
        self.codegen_freq = [0; CODEGEN_CODE_COUNT];
        let off_codes: &[u32] = if huff_offsets {
            &HUFF_OFFSET
        } else {
            &self.off_enc.codes
        };
        let codegen = &mut self.codegen;
        for (dst, &c) in codegen[..num_literals].iter_mut().zip(&self.lit_enc.codes) {
            *dst = hlen(c) as u8;
        }
        for (dst, &c) in codegen[num_literals..num_literals + num_offsets]
            .iter_mut()
            .zip(off_codes)
        {
            *dst = hlen(c) as u8;
        }
        codegen[num_literals + num_offsets] = BAD_CODE;

        let freq = &mut self.codegen_freq;
        let mut size = codegen[0];
        let mut count: i32 = 1;
        let mut out = 0;
        let mut in_index = 1;
        while size != BAD_CODE {
            let next_size = codegen[in_index];
            in_index += 1;
            if next_size == size {
                count += 1;
                continue;
            }
            if size != 0 {
                codegen[out] = size;
                out += 1;
                freq[size as usize] += 1;
                count -= 1;
                while count >= 3 {
                    let n = count.min(6);
                    codegen[out] = 16;
                    codegen[out + 1] = (n - 3) as u8;
                    out += 2;
                    freq[16] += 1;
                    count -= n;
                }
            } else {
                while count >= 11 {
                    let n = count.min(138);
                    codegen[out] = 18;
                    codegen[out + 1] = (n - 11) as u8;
                    out += 2;
                    freq[18] += 1;
                    count -= n;
                }
                if count >= 3 {
                    codegen[out] = 17;
                    codegen[out + 1] = (count - 3) as u8;
                    out += 2;
                    freq[17] += 1;
                    count = 0;
                }
            }
            while count > 0 {
                codegen[out] = size;
                out += 1;
                freq[size as usize] += 1;
                count -= 1;
            }
            size = next_size;
            count = 1;
        }
        codegen[out] = BAD_CODE;
    }

    /// Number of code length codes the header must list.
    fn codegens(&self) -> usize {
        let mut n = CODEGEN_CODE_COUNT;
        while n > 4 && self.codegen_freq[CODEGEN_ORDER[n - 1]] == 0 {
            n -= 1;
        }
        n
    }

    /// Size in bits of a dynamic header for the current code lengths.
    fn header_size(&self) -> (i32, usize) {
        let n = self.codegens();
        let size = 3
            + 5
            + 5
            + 4
            + 3 * n as i32
            + self.codegen_enc.bit_length(&self.codegen_freq)
            + i32::from(self.codegen_freq[16]) * 2
            + i32::from(self.codegen_freq[17]) * 3
            + i32::from(self.codegen_freq[18]) * 7;
        (size, n)
    }

    /// Size in bits of the block data with the open table.
    fn dynamic_reuse_size(&self) -> i32 {
        self.lit_enc.bit_length(&self.literal_freq) + self.off_enc.bit_length(&self.offset_freq)
    }

    /// Size in bits of a new dynamic block, and its number of code length codes.
    fn dynamic_size(&self, extra_bits: i32) -> (i32, usize) {
        let (header, n) = self.header_size();
        (header + self.dynamic_reuse_size() + extra_bits, n)
    }

    /// Extra bits all matches of the block need.
    fn extra_bit_size(&self) -> i32 {
        let mut total = 0i32;
        for (i, &n) in self.literal_freq[257..LITERAL_COUNT].iter().enumerate() {
            total += i32::from(n) * i32::from(LENGTH_EXTRA_BITS[i & 31]);
        }
        for (i, &n) in self.offset_freq[..OFFSET_CODE_COUNT].iter().enumerate() {
            total += i32::from(n) * i32::from(OFFSET_EXTRA_BITS[i & 31]);
        }
        total
    }

    /// Size in bits of the block with the fixed code.
    fn fixed_size(&self, extra_bits: i32) -> i32 {
        3 + bit_length(&FIXED_LIT, &self.literal_freq)
            + bit_length(&FIXED_OFF, &self.offset_freq)
            + extra_bits
    }

    /// Writes a dynamic block header from `codegen`.
    fn write_dynamic_header(
        &mut self,
        num_literals: usize,
        num_offsets: usize,
        num_codegens: usize,
        eof: bool,
    ) {
        let bw = &mut self.bw;
        bw.write_bits(if eof { 5 } else { 4 }, 3);
        bw.write_bits(num_literals as u32 - 257, 5);
        bw.write_bits(num_offsets as u32 - 1, 5);
        bw.write_bits(num_codegens as u32 - 4, 4);
        for &sym in &CODEGEN_ORDER[..num_codegens] {
            bw.write_bits(hlen(self.codegen_enc.codes[sym]), 3);
        }
        let mut i = 0;
        loop {
            let code = self.codegen[i];
            i += 1;
            if code == BAD_CODE {
                break;
            }
            bw.write_code(self.codegen_enc.codes[code as usize]);
            let extra = match code {
                16 => 2,
                17 => 3,
                18 => 7,
                _ => continue,
            };
            bw.write_bits(u32::from(self.codegen[i]), extra);
            i += 1;
        }
    }

    /// Writes a stored block header; an empty final block is written as a
    /// fixed block instead (10 bits rather than 5 bytes).
    pub(super) fn write_stored_header(&mut self, length: usize, eof: bool) {
        self.end_open_block();
        if length == 0 && eof {
            self.write_fixed_header(true);
            self.bw.write_bits(0, 7);
            self.flush();
            return;
        }
        self.bw.write_bits(u32::from(eof), 3);
        self.flush();
        self.bw.write_bits(length as u32, 16);
        self.bw.write_bits(u32::from(!(length as u16)), 16);
    }

    /// Writes `input` as one stored block.
    pub(super) fn write_stored(&mut self, input: &[u8], eof: bool) {
        self.write_stored_header(input.len(), eof);
        self.bw.write_bytes(input);
    }

    /// Writes a fixed Huffman block header.
    fn write_fixed_header(&mut self, eof: bool) {
        self.end_open_block();
        self.bw.write_bits(if eof { 3 } else { 2 }, 3);
    }

    /// Copies the token histograms into the frequency tables and returns
    /// the number of literal/length and offset codes the header must declare.
    fn index_tokens(&mut self, t: &Tokens) -> (usize, usize) {
        self.literal_freq[..256].copy_from_slice(&t.lit_hist);
        self.literal_freq[256..288].copy_from_slice(&t.extra_hist);
        self.offset_freq = t.off_hist;
        if t.n == 0 {
            return (0, 0);
        }
        let mut num_literals = self.literal_freq.len();
        while num_literals > 0 && self.literal_freq[num_literals - 1] == 0 {
            num_literals -= 1;
        }
        let mut num_offsets = self.offset_freq.len();
        while num_offsets > 0 && self.offset_freq[num_offsets - 1] == 0 {
            num_offsets -= 1;
        }
        if num_offsets == 0 {
            // A dynamic header must declare at least one offset code.
            self.offset_freq[0] = 1;
            num_offsets = 1;
        }
        (num_literals, num_offsets)
    }

    /// Builds new literal/length and offset codes from the frequencies.
    fn generate(&mut self) {
        self.lit_enc
            .generate(&self.literal_freq[..LITERAL_COUNT], 15);
        self.off_enc
            .generate(&self.offset_freq[..OFFSET_CODE_COUNT], 15);
    }

    /// Writes the tokens as a fixed Huffman block.
    fn write_fixed_block(&mut self, tokens: &mut Tokens, eof: bool, sync: bool) {
        self.write_fixed_header(eof);
        if !sync {
            tokens.add_eob();
        }
        self.bw.write_tokens(tokens.slice(), &FIXED_LIT, &FIXED_OFF);
    }

    /// Writes the tokens, preferring to continue the open dynamic table,
    /// and otherwise choosing the smallest of a new dynamic table, the fixed
    /// code or a stored block of `input` (Go's `writeBlockDynamic`).
    /// Unless `sync` or `eof`, the block is left open for the next one.
    pub(super) fn write_block_dynamic(
        &mut self,
        tokens: &mut Tokens,
        eof: bool,
        input: Option<&[u8]>,
        sync: bool,
    ) {
        let sync = sync || eof;
        if sync {
            tokens.add_eob();
        } else {
            // Make sure an end of block can always be coded.
            tokens.extra_hist[0] = 1;
        }
        if (self.wrote_huffman || eof) && self.prev_header > 0 {
            self.end_open_block();
            self.wrote_huffman = false;
        }
        if self.prev_header > 0 && !self.can_reuse(tokens) {
            self.end_open_block();
        }
        let (num_literals, num_offsets) = self.index_tokens(tokens);
        let (ssize, storable) = stored_size(input);
        let extra_bits = if storable || self.prev_header > 0 {
            self.extra_bit_size()
        } else {
            0
        };

        if self.prev_header > 0 && self.try_reuse(tokens, eof, input, sync, extra_bits) {
            return;
        }

        if self.prev_header == 0 {
            self.literal_freq[END_BLOCK_MARKER] = 1;
            self.generate();
            self.generate_codegen(num_literals, num_offsets, false);
            self.codegen_enc.generate(&self.codegen_freq, 7);
            let (size, num_codegens) = self.dynamic_size(extra_bits);
            if tokens.n < MAX_PREDEFINED_TOKENS {
                let pre_size = self.fixed_size(extra_bits);
                if pre_size <= size {
                    match input {
                        Some(b) if storable && ssize <= pre_size => self.write_stored(b, eof),
                        _ => self.write_fixed_block(tokens, eof, sync),
                    }
                    return;
                }
            }
            if let Some(b) = input.filter(|_| storable && ssize <= size) {
                self.write_stored(b, eof);
                return;
            }
            self.write_dynamic_header(num_literals, num_offsets, num_codegens, eof);
            if !sync {
                self.prev_header = self.header_size().0;
            }
            self.wrote_huffman = false;
        }
        if sync {
            self.prev_header = 0;
        }
        self.bw
            .write_tokens(tokens.slice(), &self.lit_enc.codes, &self.off_enc.codes);
    }

    /// With a table open: decides between reusing it and a new one, and
    /// writes the block itself when fixed or stored coding wins. Returns
    /// whether the block was written.
    fn try_reuse(
        &mut self,
        tokens: &mut Tokens,
        eof: bool,
        input: Option<&[u8]>,
        sync: bool,
        extra_bits: i32,
    ) -> bool {
        let (ssize, storable) = stored_size(input);
        let mut new_size = self.prev_header + tokens.estimated_bits();
        new_size += hlen(self.lit_enc.codes[END_BLOCK_MARKER]) as i32
            + (new_size >> self.log_new_table_penalty);
        let reuse_size = self.dynamic_reuse_size() + extra_bits;
        let size = if new_size < reuse_size {
            self.end_open_block();
            new_size
        } else {
            reuse_size
        };
        if tokens.n < MAX_PREDEFINED_TOKENS && self.fixed_size(extra_bits) + 7 < size {
            match input {
                Some(b) if storable && ssize <= size => self.write_stored(b, eof),
                _ => self.write_fixed_block(tokens, eof, sync),
            }
            return true;
        }
        if let Some(b) = input.filter(|_| storable && ssize <= size) {
            self.write_stored(b, eof);
            return true;
        }
        false
    }

    /// Writes `input` as literals only, with a table made for it or the open
    /// literal table, or stored when coding gains too little (Go's `writeBlockHuff`).
    pub(super) fn write_block_huff(&mut self, eof: bool, input: &[u8], sync: bool) {
        const NUM_LITERALS: usize = END_BLOCK_MARKER + 1;
        const GUESS_HEADER_SIZE_BITS: i32 = 70 * 8;
        self.literal_freq = [0; 257 + 32];
        if !self.wrote_huffman {
            self.offset_freq = [0; 32];
        }
        let mut hist = [0u16; 256];
        histogram(input, &mut hist);
        self.literal_freq[..256].copy_from_slice(&hist);
        let (ssize, storable) = stored_size(Some(input));
        if storable && input.len() > 1024 && looks_random(&hist, input.len()) {
            self.write_stored(input, eof);
            return;
        }
        self.literal_freq[END_BLOCK_MARKER] = 1;
        self.tmp_lit_enc
            .generate(&self.literal_freq[..NUM_LITERALS], 15);
        let mut est_bits = self
            .tmp_lit_enc
            .can_encode_len(&self.literal_freq[..NUM_LITERALS]);
        if est_bits < i32::MAX {
            est_bits += self.prev_header;
            if self.prev_header == 0 {
                est_bits += GUESS_HEADER_SIZE_BITS;
            }
            est_bits += est_bits >> self.log_new_table_penalty;
        }
        if storable && ssize <= est_bits {
            self.write_stored(input, eof);
            return;
        }
        if self.prev_header > 0 {
            let reuse_size = self.lit_enc.can_encode_len(&self.literal_freq[..256]);
            if est_bits < reuse_size {
                self.end_open_block();
            }
        }
        if self.prev_header == 0 {
            std::mem::swap(&mut self.lit_enc, &mut self.tmp_lit_enc);
            self.generate_codegen(NUM_LITERALS, 1, true);
            self.codegen_enc.generate(&self.codegen_freq, 7);
            let num_codegens = self.codegens();
            self.write_dynamic_header(NUM_LITERALS, 1, num_codegens, eof);
            self.wrote_huffman = true;
            self.prev_header = self.header_size().0;
        }
        self.bw.write_literals(input, &self.lit_enc.codes);
        if eof || sync {
            self.bw.write_code(self.lit_enc.codes[END_BLOCK_MARKER]);
            self.prev_header = 0;
            self.wrote_huffman = false;
        }
    }
}

/// Go's quick incompressibility test: every byte count lies close to the
/// average (the squared deviations, summed in `f64`, stay below `2 * len`).
fn looks_random(hist: &[u16; 256], len: usize) -> bool {
    let mut abs = 0f64;
    let avg = len as f64 / 256.0;
    let max = (len * 2) as f64;
    for &v in hist {
        let diff = f64::from(v) - avg;
        abs += diff * diff;
        if abs >= max {
            break;
        }
    }
    abs < max
}
