//! Block-level encoding decisions of klauspost's `huffmanBitWriter`:
//! `writeBlockDynamic` (tokens, with table reuse across blocks),
//! `writeBlockHuff` (literals only) and the token/literal emit loops.

use super::bit_writer::{BUFFER_FLUSH_SIZE, BitWriter, stored_size};
use super::huffman::{hcode64, hlen};
use super::tokens::{END_BLOCK_MARKER, LITERAL_COUNT, OFFSET_CODE_COUNT, Tokens};
#[cfg(test)]
use super::tokens::{
    LENGTH_BASE, LENGTH_CODES, LENGTH_EXTRA_BITS, LENGTH_SHIFT, MATCH_OFFSET_ONLY_MASK,
    OFFSET_COMBINED, OFFSET_MASK,
};

/// Blocks with fewer tokens are also sized with the fixed tables.
const MAX_PREDEFINED_TOKENS: usize = 250;
/// Assumed size (bits) of a fresh literal-only header.
const GUESS_HEADER_SIZE_BITS: i64 = 70 * 8;

/// Moves 48 bits of `bits` into `bytes`, handing the buffer to `out` when full.
macro_rules! spill48 {
    ($bytes:expr, $bits:ident, $nbits:ident, $nbytes:ident, $out:expr) => {
        if $nbits >= 48 {
            $bytes[$nbytes..$nbytes + 8].copy_from_slice(&$bits.to_le_bytes());
            $bits >>= 48;
            $nbits -= 48;
            $nbytes += 6;
            if $nbytes >= BUFFER_FLUSH_SIZE {
                $out.extend_from_slice(&$bytes[..$nbytes]);
                $nbytes = 0;
            }
        }
    };
}

impl BitWriter {
    /// Copies the token histograms into the writer (`indexTokens`) and returns
    /// the number of literal/length and offset codes to send.
    fn index_tokens(&mut self, t: &Tokens, filled: bool) -> (usize, usize) {
        self.literal_freq[..256].copy_from_slice(&t.lit_hist);
        self.literal_freq[256..288].copy_from_slice(&t.extra_hist);
        self.offset_freq = t.off_hist;
        if t.n() == 0 {
            return (0, 0);
        }
        if filled {
            return (LITERAL_COUNT, OFFSET_CODE_COUNT);
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
            self.offset_freq[0] = 1;
            num_offsets = 1;
        }
        (num_literals, num_offsets)
    }

    /// Writes `input` as a stored block if it fits one and its stored size
    /// (bits, with header) is at most `limit`. Returns whether it did.
    fn try_stored(
        &mut self,
        input: Option<&[u8]>,
        limit: i64,
        eof: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        match input {
            Some(b) if stored_size(b.len()).1 && stored_size(b.len()).0 <= limit => {
                self.write_stored(b, eof, out);
                true
            }
            _ => false,
        }
    }

    fn write_eob(&mut self, out: &mut Vec<u8>) {
        let eob = self.literal_encoding.codes[END_BLOCK_MARKER as usize];
        self.write_code(eob, out);
    }

    /// Writes the block with the fixed tables.
    fn write_fixed_block(&mut self, tokens: &mut Tokens, eof: bool, sync: bool, out: &mut Vec<u8>) {
        self.write_fixed_header(eof, out);
        if !sync {
            tokens.add_eob();
        }
        self.write_tokens(tokens.slice(), true, out);
    }

    /// `writeBlockDynamic`: encodes `tokens` (made from `input`) with a new or
    /// reused dynamic table, the fixed table, or as a stored block.
    pub(super) fn write_block_dynamic(
        &mut self,
        tokens: &mut Tokens,
        eof: bool,
        input: Option<&[u8]>,
        sync: bool,
        out: &mut Vec<u8>,
    ) {
        let sync = sync || eof;
        if sync {
            tokens.add_eob();
        }
        // A literal-only table cannot be reused; nor can anything at EOF.
        if (self.last_huff_man || eof) && self.last_header > 0 {
            self.write_eob(out);
            self.last_header = 0;
            self.last_huff_man = false;
        }
        if self.last_header > 0 && !self.can_reuse(tokens) {
            self.write_eob(out);
            self.last_header = 0;
        }
        let (num_literals, num_offsets) = self.index_tokens(tokens, !sync);
        let mut extra_bits = 0;
        let storable = input.is_some_and(|b| stored_size(b.len()).1);
        if storable || self.last_header > 0 {
            extra_bits = self.extra_bit_size();
        }

        if self.last_header > 0 {
            // Estimate a new table against reusing the open one.
            let mut new_size = self.last_header + tokens.estimated_bits();
            let eob_len = i64::from(hlen(self.literal_encoding.codes[END_BLOCK_MARKER as usize]));
            new_size += eob_len + (new_size >> self.log_new_table_penalty);
            let reuse_size = self.literal_encoding.bit_length(&self.literal_freq)
                + self.offset_encoding.bit_length(&self.offset_freq)
                + extra_bits;
            let size = if new_size < reuse_size {
                self.write_eob(out);
                self.last_header = 0;
                new_size
            } else {
                reuse_size
            };
            if tokens.n() < MAX_PREDEFINED_TOKENS && self.fixed_size(extra_bits) + 7 < size {
                if self.try_stored(input, size, eof, out) {
                    return;
                }
                self.write_fixed_block(tokens, eof, sync, out);
                return;
            }
            if self.try_stored(input, size, eof, out) {
                return;
            }
        }

        if self.last_header == 0
            && !self.write_new_table(
                tokens,
                input,
                (num_literals, num_offsets),
                extra_bits,
                eof,
                sync,
                out,
            )
        {
            return;
        }
        if sync {
            self.last_header = 0;
        }
        self.write_tokens(tokens.slice(), false, out);
    }

    /// The "new table" half of `writeBlockDynamic`. Returns false when the
    /// block was completely written (fixed or stored) and nothing remains.
    #[allow(clippy::too_many_arguments)]
    fn write_new_table(
        &mut self,
        tokens: &mut Tokens,
        input: Option<&[u8]>,
        (num_literals, num_offsets): (usize, usize),
        extra_bits: i64,
        eof: bool,
        sync: bool,
        out: &mut Vec<u8>,
    ) -> bool {
        self.literal_freq[END_BLOCK_MARKER as usize] = 1;
        self.literal_encoding
            .generate(&self.literal_freq[..LITERAL_COUNT], 15);
        self.offset_encoding
            .generate(&self.offset_freq[..OFFSET_CODE_COUNT], 15);
        self.generate_codegen(num_literals, num_offsets, false);
        self.codegen_encoding.generate(&self.codegen_freq, 7);
        let (header, num_codegens) = self.header_size();
        let size = header
            + self.literal_encoding.bit_length(&self.literal_freq)
            + self.offset_encoding.bit_length(&self.offset_freq)
            + extra_bits;

        if tokens.n() < MAX_PREDEFINED_TOKENS {
            let pre_size = self.fixed_size(extra_bits);
            if pre_size <= size {
                if self.try_stored(input, pre_size, eof, out) {
                    return false;
                }
                self.write_fixed_block(tokens, eof, sync, out);
                return false;
            }
        }
        if self.try_stored(input, size, eof, out) {
            return false;
        }
        self.write_dynamic_header(num_literals, num_offsets, num_codegens, eof, out);
        if !sync {
            self.last_header = self.header_size().0;
        }
        self.last_huff_man = false;
        true
    }

    /// Go's `writeTokens` transcribed literally (code by code, spilling every
    /// 48 bits). Kept as the reference the fast [`BitWriter::write_tokens`] is
    /// tested against.
    #[cfg(test)]
    pub(super) fn write_tokens_reference(&mut self, toks: &[u32], fixed: bool, out: &mut Vec<u8>) {
        if toks.is_empty() {
            return;
        }
        let (toks, defer_eob) = match toks.split_last() {
            Some((&last, rest)) if last == END_BLOCK_MARKER => (rest, true),
            _ => (toks, false),
        };
        let (le, oe) = if fixed {
            (&self.fixed_literal.codes, &self.fixed_offset.codes)
        } else {
            (&self.literal_encoding.codes, &self.offset_encoding.codes)
        };
        let lits: &[u32; 256] = le.first_chunk::<256>().unwrap_or(&[0; 256]);
        let lengths: &[u32; 32] = le[257..].first_chunk::<32>().unwrap_or(&[0; 32]);
        let offs: &[u32; 32] = oe.first_chunk::<32>().unwrap_or(&[0; 32]);
        let bytes = &mut self.bytes;
        let (mut bits, mut nbits, mut nbytes) = (self.bits, self.nbits, self.nbytes);

        for &t in toks {
            if t < 256 {
                let c = lits[t as usize];
                bits |= hcode64(c) << (nbits & 63);
                nbits += hlen(c);
                spill48!(bytes, bits, nbits, nbytes, out);
                continue;
            }
            // Length code, then its extra bits.
            let length = (t >> LENGTH_SHIFT) & 255;
            let length_code = (LENGTH_CODES[length as usize] & 31) as usize;
            let c = lengths[length_code];
            bits |= hcode64(c) << (nbits & 63);
            nbits += hlen(c);
            spill48!(bytes, bits, nbits, nbytes, out);
            if length_code >= 8 {
                let extra = length - u32::from(LENGTH_BASE[length_code]);
                bits |= u64::from(extra) << (nbits & 63);
                nbits += u32::from(LENGTH_EXTRA_BITS[length_code]);
                spill48!(bytes, bits, nbits, nbytes, out);
            }
            // Offset code, then its extra bits.
            let offset = t & OFFSET_MASK;
            let offset_code = ((offset >> 16) & 31) as usize;
            let c = offs[offset_code];
            bits |= hcode64(c) << (nbits & 63);
            nbits += hlen(c);
            spill48!(bytes, bits, nbits, nbytes, out);
            if offset_code >= 4 {
                let comb = OFFSET_COMBINED[offset_code];
                let extra = offset.wrapping_sub(comb >> 8) & MATCH_OFFSET_ONLY_MASK;
                bits |= u64::from(extra) << (nbits & 63);
                nbits += comb & 255;
                spill48!(bytes, bits, nbits, nbytes, out);
            }
        }
        self.bits = bits;
        self.nbits = nbits;
        self.nbytes = nbytes;
        if defer_eob {
            let eob = le[END_BLOCK_MARKER as usize];
            self.write_code(eob, out);
        }
    }

    /// `writeBlockHuff`: encodes `input` as literals only (or stored).
    pub(super) fn write_block_huff(
        &mut self,
        eof: bool,
        input: &[u8],
        sync: bool,
        out: &mut Vec<u8>,
    ) {
        self.literal_freq = [0; 257 + 32];
        if !self.last_huff_man {
            self.offset_freq = [0; 32];
        }
        for &b in input {
            self.literal_freq[usize::from(b)] += 1;
        }
        let (ssize, storable) = stored_size(input.len());
        if storable && input.len() > 1024 {
            // Quick check for incompressible content.
            let mut abs = 0f64;
            let avg = input.len() as f64 / 256.0;
            let max = (input.len() * 2) as f64;
            for &v in &self.literal_freq[..256] {
                let diff = f64::from(v) - avg;
                abs += diff * diff;
                if abs > max {
                    break;
                }
            }
            if abs < max {
                self.write_stored(input, eof, out);
                return;
            }
        }
        self.literal_freq[END_BLOCK_MARKER as usize] = 1;
        self.tmp_lit_encoding
            .generate(&self.literal_freq[..257], 15);
        let mut est_bits = self
            .tmp_lit_encoding
            .can_reuse_bits(&self.literal_freq[..257]);
        if est_bits < i64::from(i32::MAX) {
            est_bits += self.last_header;
            if self.last_header == 0 {
                est_bits += GUESS_HEADER_SIZE_BITS;
            }
            est_bits += est_bits >> self.log_new_table_penalty;
        }
        if storable && ssize <= est_bits {
            self.write_stored(input, eof, out);
            return;
        }
        if self.last_header > 0 {
            let reuse_size = self
                .literal_encoding
                .can_reuse_bits(&self.literal_freq[..256]);
            if est_bits < reuse_size {
                self.write_eob(out);
                self.last_header = 0;
            }
        }
        if self.last_header == 0 {
            std::mem::swap(&mut self.literal_encoding, &mut self.tmp_lit_encoding);
            self.generate_codegen(257, 1, true);
            self.codegen_encoding.generate(&self.codegen_freq, 7);
            let num_codegens = self.codegens();
            self.write_dynamic_header(257, 1, num_codegens, eof, out);
            self.last_huff_man = true;
            self.last_header = self.header_size().0;
        }
        self.write_literals(input, out);
        if self.nbits >= 48 {
            self.write_out_bits(out);
        }
        if eof || sync {
            self.write_eob(out);
            self.last_header = 0;
            self.last_huff_man = false;
        }
    }

    /// The emit loop of `writeBlockHuff`, three codes per round.
    fn write_literals(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let enc: &[u32; 256] = self
            .literal_encoding
            .codes
            .first_chunk::<256>()
            .unwrap_or(&[0; 256]);
        let bytes = &mut self.bytes;
        let (mut bits, mut nbits, mut nbytes) = (self.bits, self.nbits, self.nbytes);
        let mut input = input;
        while input.len() > 3 {
            if nbits >= 8 {
                let n = nbits >> 3;
                bytes[nbytes..nbytes + 8].copy_from_slice(&bits.to_le_bytes());
                bits >>= (n * 8) & 63;
                nbits -= n * 8;
                nbytes += n as usize;
            }
            if nbytes >= BUFFER_FLUSH_SIZE {
                out.extend_from_slice(&bytes[..nbytes]);
                nbytes = 0;
            }
            let (a, b, c) = (
                enc[usize::from(input[0])],
                enc[usize::from(input[1])],
                enc[usize::from(input[2])],
            );
            bits |= hcode64(a) << (nbits & 63);
            bits |= hcode64(b) << ((nbits + hlen(a)) & 63);
            nbits += hlen(b) + hlen(a);
            bits |= hcode64(c) << (nbits & 63);
            nbits += hlen(c);
            input = &input[3..];
        }
        for &t in input {
            spill48!(bytes, bits, nbits, nbytes, out);
            let c = enc[usize::from(t)];
            bits |= hcode64(c) << (nbits & 63);
            nbits += hlen(c);
        }
        self.bits = bits;
        self.nbits = nbits;
        self.nbytes = nbytes;
    }
}
