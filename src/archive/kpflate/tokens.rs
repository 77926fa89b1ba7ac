//! The token buffer the fast encoders fill (klauspost `token.go`): literals and
//! matches packed into `u32`s, plus the per-block histograms the Huffman
//! writer reads, and the Shannon size estimate used to decide on table reuse.

use super::MAX_STORE_BLOCK_SIZE;
use super::fast::zeroed_box;

/// Bit position of the (length - 3) field in a match token.
pub(super) const LENGTH_SHIFT: u32 = 22;
/// Type bits of a match token.
pub(super) const MATCH_TYPE: u32 = 1 << 30;
/// Mask of the offset (without offset code) in a match token.
#[cfg(test)]
pub(super) const MATCH_OFFSET_ONLY_MASK: u32 = 0xffff;
/// Mask of offset code plus offset in a match token.
#[cfg(test)]
pub(super) const OFFSET_MASK: u32 = (1 << LENGTH_SHIFT) - 1;
/// The end-of-block symbol.
pub(super) const END_BLOCK_MARKER: u32 = 256;

/// Number of literal/length codes, and of offset codes (RFC 1951).
pub(super) const LITERAL_COUNT: usize = 286;
pub(super) const OFFSET_CODE_COUNT: usize = 30;

/// Extra bits per length code (indexed by code - 257).
pub(super) const LENGTH_EXTRA_BITS: [u8; 32] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0, 0, 0, 0,
];

/// Base (length - 3) per length code.
pub(super) const LENGTH_BASE: [u8; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128,
    160, 192, 224, 255, 0, 0, 0,
];

/// Extra bits per offset code.
pub(super) const OFFSET_EXTRA_BITS: [i8; 32] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13, 14, 14,
];

const OFFSET_BASE: [u32; 32] = [
    0x000000, 0x000001, 0x000002, 0x000003, 0x000004, 0x000006, 0x000008, 0x00000c, 0x000010,
    0x000018, 0x000020, 0x000030, 0x000040, 0x000060, 0x000080, 0x0000c0, 0x000100, 0x000180,
    0x000200, 0x000300, 0x000400, 0x000600, 0x000800, 0x000c00, 0x001000, 0x001800, 0x002000,
    0x003000, 0x004000, 0x006000, 0x008000, 0x00c000,
];

const fn offset_combined() -> [u32; 32] {
    let mut out = [0u32; 32];
    let mut i = 0;
    while i < 32 {
        if OFFSET_EXTRA_BITS[i] != 0 && OFFSET_BASE[i] <= 0x006000 {
            out[i] = OFFSET_EXTRA_BITS[i] as u32 | (OFFSET_BASE[i] << 8);
        }
        i += 1;
    }
    out
}

/// Per offset code: extra bit count in the low byte, base offset above it.
pub(super) const OFFSET_COMBINED: [u32; 32] = offset_combined();

/// Length code (0-based, i.e. code - 257) for (length - 3).
const fn length_codes(start: u8) -> [u8; 256] {
    let mut out = [0u8; 256];
    let mut code = 0usize;
    let mut i = 0usize;
    while i < 256 {
        // Advance to the code whose range holds i.
        while code + 1 < 29 && LENGTH_BASE[code + 1] as usize <= i {
            code += 1;
        }
        out[i] = code as u8 + start;
        i += 1;
    }
    out
}

/// `lengthCodes`: code - 257 for (length - 3).
pub(super) const LENGTH_CODES: [u8; 256] = length_codes(0);
/// `lengthCodes1`: same, plus one (index into `extra_hist`, where 0 is EOB).
pub(super) const LENGTH_CODES1: [u8; 256] = length_codes(1);

const fn offset_codes(add: u32) -> [u32; 256] {
    let mut out = [0u32; 256];
    let mut code = 0usize;
    let mut i = 0usize;
    while i < 256 {
        while code + 1 < 16 && OFFSET_BASE[code + 1] as usize <= i {
            code += 1;
        }
        out[i] = code as u32 + add;
        i += 1;
    }
    out
}

const OFFSET_CODES: [u32; 256] = offset_codes(0);
const OFFSET_CODES14: [u32; 256] = offset_codes(14);

/// The deflate offset code for `off` (= distance - 1).
#[inline(always)]
pub(super) fn offset_code(off: u32) -> u32 {
    // Both lookups, then a select: the branch would be unpredictable.
    let near = OFFSET_CODES[(off & 255) as usize];
    let far = OFFSET_CODES14[((off >> 7) & 255) as usize];
    if off < 256 { near } else { far }
}

/// Token capacity: Go's `maxStoreBlockSize + 1`, rounded to a power of two.
const TOKENS_CAP: usize = MAX_STORE_BLOCK_SIZE + 1;

/// Queued tokens of one block plus their histograms.
pub(super) struct Tokens {
    /// Counts of length codes + 1 (index 0 counts end-of-block).
    pub(super) extra_hist: [u16; 32],
    /// Counts of offset codes.
    pub(super) off_hist: [u16; 32],
    /// Counts of literal bytes.
    pub(super) lit_hist: [u16; 256],
    /// Token storage; `toks[..n]` are queued.
    toks: Box<[u32; TOKENS_CAP]>,
    /// Go's `n`.
    n: usize,
}

impl Tokens {
    pub(super) fn new() -> Tokens {
        Tokens {
            extra_hist: [0; 32],
            off_hist: [0; 32],
            lit_hist: [0; 256],
            toks: zeroed_box(),
            n: 0,
        }
    }

    /// Number of queued tokens.
    #[inline(always)]
    pub(super) fn n(&self) -> usize {
        self.n
    }

    /// The queued tokens.
    #[inline(always)]
    pub(super) fn slice(&self) -> &[u32] {
        &self.toks[..self.n.min(TOKENS_CAP)]
    }

    /// Appends one token. A block never holds more than `TOKENS_CAP` tokens
    /// (at most one per input byte plus end-of-block); the mask only spares
    /// the bounds check.
    #[inline(always)]
    fn push(&mut self, t: u32) {
        self.toks[self.n & (TOKENS_CAP - 1)] = t;
        self.n += 1;
    }

    pub(super) fn reset(&mut self) {
        if self.n == 0 {
            return;
        }
        self.n = 0;
        self.lit_hist = [0; 256];
        self.extra_hist = [0; 32];
        self.off_hist = [0; 32];
    }

    /// Appends literal tokens for every byte of `lits`.
    #[inline(always)]
    pub(super) fn emit_literals(&mut self, lits: &[u8]) {
        for &v in lits {
            self.toks[self.n & (TOKENS_CAP - 1)] = u32::from(v);
            self.n += 1;
            self.lit_hist[usize::from(v)] += 1;
        }
    }

    /// `AddLiteral`: one literal byte.
    #[inline(always)]
    pub(super) fn add_literal(&mut self, lit: u8) {
        self.push(u32::from(lit));
        self.lit_hist[usize::from(lit)] += 1;
    }

    /// `AddMatch`: a match of `xlength + 3` bytes (at most 258) at distance
    /// `xoffset + 1`.
    #[inline(always)]
    pub(super) fn add_match(&mut self, xlength: u32, xoffset: u32) {
        let oc = offset_code(xoffset);
        self.extra_hist[usize::from(LENGTH_CODES1[(xlength & 255) as usize])] += 1;
        self.off_hist[(oc & 31) as usize] += 1;
        self.push(MATCH_TYPE | (xlength << LENGTH_SHIFT) | xoffset | (oc << 16));
    }

    /// `AddMatchLong`: a match of `length` bytes (any length >= 3) at
    /// distance `xoffset + 1`, split into pieces of at most 258.
    #[inline(always)]
    pub(super) fn add_match_long(&mut self, mut length: i32, xoffset: u32) {
        let oc = offset_code(xoffset);
        let xoffset = xoffset | (oc << 16);
        while length > 0 {
            let mut xl = length;
            if xl > 258 {
                xl = if xl > 258 + 3 { 258 } else { 258 - 3 };
            }
            length -= xl;
            let xl = (xl - 3) as u32;
            self.extra_hist[usize::from(LENGTH_CODES1[(xl & 255) as usize])] += 1;
            self.off_hist[(oc & 31) as usize] += 1;
            self.push(MATCH_TYPE | (xl << LENGTH_SHIFT) | xoffset);
        }
    }

    /// Appends the end-of-block token.
    pub(super) fn add_eob(&mut self) {
        self.push(END_BLOCK_MARKER);
        self.extra_hist[0] += 1;
    }

    /// `EstimatedBits`: a size estimate (bits) of an optimal encoding of the block.
    pub(super) fn estimated_bits(&self) -> i64 {
        let mut shannon = 0f32;
        let mut bits = 0i64;
        let mut n_matches = 0i64;
        let total = self.n();
        if total > 0 {
            let inv_total = 1.0f32 / total as f32;
            for &v in &self.lit_hist {
                if v > 0 {
                    let n = f32::from(v);
                    shannon += at_least_one(-m_fast_log2(n * inv_total)) * n;
                }
            }
            shannon += 15.0;
            for (i, &v) in self.extra_hist[1..LITERAL_COUNT - 256].iter().enumerate() {
                if v > 0 {
                    let n = f32::from(v);
                    shannon += at_least_one(-m_fast_log2(n * inv_total)) * n;
                    bits += i64::from(LENGTH_EXTRA_BITS[i & 31]) * i64::from(v);
                    n_matches += i64::from(v);
                }
            }
        }
        if n_matches > 0 {
            let inv_total = 1.0f32 / n_matches as f32;
            for (i, &v) in self.off_hist[..OFFSET_CODE_COUNT].iter().enumerate() {
                if v > 0 {
                    let n = f32::from(v);
                    shannon += at_least_one(-m_fast_log2(n * inv_total)) * n;
                    bits += i64::from(OFFSET_EXTRA_BITS[i & 31]) * i64::from(v);
                }
            }
        }
        shannon as i64 + bits
    }
}

/// Clamps to [1, 15].
fn at_least_one(v: f32) -> f32 {
    v.clamp(1.0, 15.0)
}

/// Fast approximate log2 (same bit tricks and float32 steps as Go's `mFastLog2`).
/// The constants are Go's decimal literals, rounded to `f32` exactly as Go does.
#[allow(clippy::excessive_precision)]
fn m_fast_log2(val: f32) -> f32 {
    let mut ux = val.to_bits() as i32;
    let mut log2 = (((ux >> 23) & 255) - 128) as f32;
    ux &= -0x7f80_0001;
    ux = ux.wrapping_add(127 << 23);
    let uval = f32::from_bits(ux as u32);
    log2 += ((-0.344_848_43_f32) * uval + 2.024_665_78_f32) * uval - 0.674_877_59_f32;
    log2
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn tables_match_go() {
        assert_eq!(LENGTH_CODES[0..10], [0, 1, 2, 3, 4, 5, 6, 7, 8, 8]);
        assert_eq!(LENGTH_CODES[254], 27);
        assert_eq!(LENGTH_CODES[255], 28);
        assert_eq!(LENGTH_CODES1[255], 29);
        assert_eq!(offset_code(0), 0);
        assert_eq!(offset_code(4), 4);
        assert_eq!(offset_code(255), 15);
        assert_eq!(offset_code(256), 16);
        assert_eq!(offset_code(32767), 29);
        assert_eq!(OFFSET_COMBINED[29], 13 | (0x6000 << 8));
        assert_eq!(OFFSET_COMBINED[3], 0);
    }
}
