//! The token buffer one block is gathered in, with the histograms the block
//! writer builds its Huffman tables from (Go's `token.go`).
//!
//! A token is a `u32`: literals are the byte value; matches carry
//! `MATCH_TYPE | xlength << 22 | offset_code << 16 | xoffset`, where
//! `xlength = length - 3` and `xoffset = distance - 1`.

/// Tag bit of a match token.
pub(super) const MATCH_TYPE: u32 = 1 << 30;
/// Shift of the length field inside a match token.
pub(super) const LENGTH_SHIFT: u32 = 22;
/// The end-of-block symbol.
pub(super) const END_BLOCK_MARKER: usize = 256;
/// Number of literal/length symbols.
pub(super) const LITERAL_COUNT: usize = 286;
/// Number of offset symbols.
pub(super) const OFFSET_CODE_COUNT: usize = 30;
/// Shortest match length deflate can express.
pub(super) const BASE_MATCH_LENGTH: i32 = 3;
/// Longest match length deflate can express.
pub(super) const MAX_MATCH_LENGTH: i32 = 258;

/// Number of extra bits of each length code (code index, not symbol).
pub(super) const LENGTH_EXTRA_BITS: [u8; 32] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0, 0, 0, 0,
];

/// Length (minus 3) each length code starts at.
pub(super) const LENGTH_BASE: [u8; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128,
    160, 192, 224, 255, 0, 0, 0,
];

/// Number of extra bits of each offset code.
pub(super) const OFFSET_EXTRA_BITS: [u8; 32] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13, 14, 14,
];

/// Distance (minus 1) each offset code starts at.
pub(super) const OFFSET_BASE: [u32; 32] = [
    0x0000, 0x0001, 0x0002, 0x0003, 0x0004, 0x0006, 0x0008, 0x000c, 0x0010, 0x0018, 0x0020, 0x0030,
    0x0040, 0x0060, 0x0080, 0x00c0, 0x0100, 0x0180, 0x0200, 0x0300, 0x0400, 0x0600, 0x0800, 0x0c00,
    0x1000, 0x1800, 0x2000, 0x3000, 0x4000, 0x6000, 0x8000, 0xc000,
];

/// Length code of each `xlength` (0..=255).
pub(super) const LENGTH_CODES: [u8; 256] = build_length_codes();

/// Offset code of each `xoffset` below 256.
const OFFSET_CODES: [u8; 256] = build_offset_codes();
/// Offset code of `xoffset >> 7` for `xoffset` of 256 and more: Go's
/// `offsetCodes14`, the low table plus 14 (which also decides what
/// out-of-range values such as 32768 map to).
const OFFSET_CODES_HIGH: [u8; 256] = {
    let mut t = build_offset_codes();
    let mut i = 0;
    while i < 256 {
        t[i] += 14;
        i += 1;
    }
    t
};

const fn build_length_codes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut code = 0;
    while code < 29 {
        let start = LENGTH_BASE[code] as usize;
        let end = if code == 28 {
            256
        } else {
            LENGTH_BASE[code + 1] as usize
        };
        let mut i = start;
        while i < end {
            t[i] = code as u8;
            i += 1;
        }
        code += 1;
    }
    t
}

/// Offset codes of every `xoffset` below 256.
const fn build_offset_codes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let off = i as u32;
        let mut code = 0;
        while code + 1 < 30 && OFFSET_BASE[code + 1] <= off {
            code += 1;
        }
        t[i] = code as u8;
        i += 1;
    }
    t
}

/// Offset code of `xoffset` (distance - 1), as Go's `offsetCode`.
#[inline(always)]
pub(super) fn offset_code(xoffset: u32) -> u32 {
    let lo = u32::from(OFFSET_CODES[(xoffset & 255) as usize]);
    let hi = u32::from(OFFSET_CODES_HIGH[((xoffset >> 7) & 255) as usize]);
    if xoffset < 256 { lo } else { hi }
}

/// One block's worth of tokens plus their histograms.
pub(super) struct Tokens {
    /// Counts of symbols 256.. (index 0 is end of block, i is length code i-1).
    pub(super) extra_hist: [u16; 32],
    /// Counts of offset codes.
    pub(super) off_hist: [u16; 32],
    /// Counts of literal bytes.
    pub(super) lit_hist: [u16; 256],
    /// Number of tokens.
    pub(super) n: usize,
    /// The tokens; a block never holds more than 65536.
    pub(super) tokens: Box<[u32; 65536]>,
}

impl Tokens {
    /// An empty token buffer.
    pub(super) fn new() -> Tokens {
        Tokens {
            extra_hist: [0; 32],
            off_hist: [0; 32],
            lit_hist: [0; 256],
            n: 0,
            tokens: super::fast::boxed_array(),
        }
    }

    /// Empties the buffer (histograms only need clearing when tokens were added).
    pub(super) fn reset(&mut self) {
        if self.n == 0 {
            return;
        }
        self.n = 0;
        self.lit_hist = [0; 256];
        self.extra_hist = [0; 32];
        self.off_hist = [0; 32];
    }

    /// Appends one literal.
    #[inline(always)]
    pub(super) fn add_literal(&mut self, lit: u8) {
        self.tokens[self.n & 0xffff] = u32::from(lit);
        self.lit_hist[lit as usize] += 1;
        self.n += 1;
    }

    /// Appends every byte of `lits` as a literal.
    #[inline(always)]
    pub(super) fn add_literals(&mut self, lits: &[u8]) {
        let start = self.n;
        let end = start + lits.len();
        if let Some(dst) = self.tokens.get_mut(start..end) {
            for (d, &v) in dst.iter_mut().zip(lits) {
                *d = u32::from(v);
                self.lit_hist[v as usize] += 1;
            }
            self.n = end;
        }
    }

    /// Appends a match of `xlength` = length - 3 (at most 255) and
    /// `xoffset` = distance - 1.
    #[inline(always)]
    pub(super) fn add_match(&mut self, xlength: u32, xoffset: u32) {
        let oc = offset_code(xoffset);
        self.extra_hist[usize::from(LENGTH_CODES[(xlength & 255) as usize]) + 1] += 1;
        self.off_hist[(oc & 31) as usize] += 1;
        self.tokens[self.n & 0xffff] = MATCH_TYPE | xlength << LENGTH_SHIFT | xoffset | oc << 16;
        self.n += 1;
    }

    /// Appends a match of any `length` (not reduced by 3), split into
    /// matches deflate can express the way Go splits it.
    #[inline(always)]
    pub(super) fn add_match_long(&mut self, mut length: i32, xoffset: u32) {
        let oc = offset_code(xoffset);
        let tok_off = xoffset | oc << 16;
        if length <= MAX_MATCH_LENGTH {
            let xl = (length - BASE_MATCH_LENGTH) as u32;
            self.extra_hist[usize::from(LENGTH_CODES[(xl & 255) as usize]) + 1] += 1;
            self.off_hist[(oc & 31) as usize] += 1;
            self.tokens[self.n & 0xffff] = MATCH_TYPE | xl << LENGTH_SHIFT | tok_off;
            self.n += 1;
            return;
        }
        while length > 0 {
            let mut xl = length;
            if xl > MAX_MATCH_LENGTH {
                xl = if xl > MAX_MATCH_LENGTH + BASE_MATCH_LENGTH {
                    MAX_MATCH_LENGTH
                } else {
                    MAX_MATCH_LENGTH - BASE_MATCH_LENGTH
                };
            }
            length -= xl;
            let xl = (xl - BASE_MATCH_LENGTH) as u32;
            self.extra_hist[usize::from(LENGTH_CODES[(xl & 255) as usize]) + 1] += 1;
            self.off_hist[(oc & 31) as usize] += 1;
            self.tokens[self.n & 0xffff] = MATCH_TYPE | xl << LENGTH_SHIFT | tok_off;
            self.n += 1;
        }
    }

    /// Appends the end-of-block marker.
    pub(super) fn add_eob(&mut self) {
        self.tokens[self.n & 0xffff] = END_BLOCK_MARKER as u32;
        self.extra_hist[0] += 1;
        self.n += 1;
    }

    /// The tokens gathered so far.
    pub(super) fn slice(&self) -> &[u32] {
        &self.tokens[..self.n.min(65536)]
    }

    /// Go's estimate of the bits an optimal code for these tokens needs
    /// (`EstimatedBits`), computed in `f32` exactly as Go does.
    pub(super) fn estimated_bits(&self) -> i32 {
        let mut shannon = 0f32;
        let mut bits = 0i32;
        let mut n_matches = 0i32;
        let total = self.n as i32;
        if total > 0 {
            let inv_total = 1.0f32 / total as f32;
            for &v in &self.lit_hist {
                if v > 0 {
                    let n = f32::from(v);
                    shannon += symbol_bits(n * inv_total) * n;
                }
            }
            shannon += 15.0;
            for (i, &v) in self.extra_hist[1..LITERAL_COUNT - 256].iter().enumerate() {
                if v > 0 {
                    let n = f32::from(v);
                    shannon += symbol_bits(n * inv_total) * n;
                    bits += i32::from(LENGTH_EXTRA_BITS[i & 31]) * i32::from(v);
                    n_matches += i32::from(v);
                }
            }
        }
        if n_matches > 0 {
            let inv_total = 1.0f32 / n_matches as f32;
            for (i, &v) in self.off_hist[..OFFSET_CODE_COUNT].iter().enumerate() {
                if v > 0 {
                    let n = f32::from(v);
                    shannon += symbol_bits(n * inv_total) * n;
                    bits += i32::from(OFFSET_EXTRA_BITS[i & 31]) * i32::from(v);
                }
            }
        }
        shannon as i32 + bits
    }
}

/// `min(15, max(1, -log2(p)))` with Go's fast log2 approximation.
#[inline]
fn symbol_bits(p: f32) -> f32 {
    let l = -fast_log2(p);
    let l = if l > 1.0 { l } else { 1.0 };
    if l < 15.0 { l } else { 15.0 }
}

/// Go's `mFastLog2`: a polynomial approximation of log2 on the mantissa.
#[allow(clippy::excessive_precision)]
fn fast_log2(val: f32) -> f32 {
    let mut ux = val.to_bits() as i32;
    let mut log2 = (((ux >> 23) & 255) - 128) as f32;
    ux &= -0x7f80_0001;
    ux += 127 << 23;
    let uval = f32::from_bits(ux as u32);
    log2 += ((-0.34484843f32) * uval + 2.02466578f32) * uval - 0.67487759f32;
    log2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_codes_follow_rfc1951() {
        for xoff in 0u32..32768 {
            let code = offset_code(xoff) as usize;
            assert!(OFFSET_BASE[code] <= xoff);
            assert!(xoff < OFFSET_BASE[code] + (1 << OFFSET_EXTRA_BITS[code]));
        }
    }

    #[test]
    fn length_codes_follow_rfc1951() {
        for xl in 0u32..255 {
            let code = LENGTH_CODES[xl as usize] as usize;
            assert!(u32::from(LENGTH_BASE[code]) <= xl);
            assert!(xl < u32::from(LENGTH_BASE[code]) + (1 << LENGTH_EXTRA_BITS[code]));
        }
        assert_eq!(LENGTH_CODES[255], 28);
    }

    #[test]
    fn offset_code_wraps_like_go() {
        // Go indexes its high table with uint8(x >> 7), so 32768 maps to 14.
        assert_eq!(offset_code(32768), 14);
    }
}
