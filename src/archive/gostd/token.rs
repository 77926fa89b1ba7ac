//! LZ77 tokens as Go's `compress/flate` packs them into a `u32`, and the
//! RFC 1951 length / distance code tables the bit writer needs.
//!
//! A token is either a literal byte (`0..=255`, or 256 for the end-of-block
//! marker) or a match: bit 30 set, `length - 3` in bits 22..30 and
//! `distance - 1` in bits 0..22.

use super::bit_output::BitOut;
use super::huffman_code::HCode;

/// A packed literal or match.
pub(super) type Token = u32;

/// Bits below the match length field.
const LENGTH_SHIFT: u32 = 22;
/// Mask of the distance field of a match token.
const OFFSET_MASK: u32 = (1 << LENGTH_SHIFT) - 1;
/// Every match token is at least this; every literal is below it.
pub(super) const MATCH_TYPE: u32 = 1 << 30;

/// The end-of-block symbol of the literal/length alphabet.
pub(super) const END_BLOCK_MARKER: usize = 256;
/// The first length symbol of the literal/length alphabet.
pub(super) const LENGTH_CODES_START: usize = 257;
/// Size of the literal/length alphabet Go counts (0..=285).
pub(super) const MAX_NUM_LIT: usize = 286;
/// Size of the distance alphabet.
pub(super) const OFFSET_CODE_COUNT: usize = 30;

/// A literal token.
#[inline(always)]
pub(super) fn literal_token(literal: u8) -> Token {
    Token::from(literal)
}

/// A match token from `length - 3` and `distance - 1`.
#[inline(always)]
pub(super) fn match_token(xlength: u32, xoffset: u32) -> Token {
    MATCH_TYPE + (xlength << LENGTH_SHIFT) + xoffset
}

/// `length - 3` of a match token (garbage, but below 256, for a literal).
#[inline(always)]
pub(super) fn token_length(t: Token) -> u32 {
    (t >> LENGTH_SHIFT) & 0xff
}

/// `distance - 1` of a match token.
#[inline(always)]
pub(super) fn token_offset(t: Token) -> u32 {
    t & OFFSET_MASK
}

/// Extra bits of each length code (symbol 257 + index).
pub(super) const LENGTH_EXTRA_BITS: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];

/// Smallest `length - 3` of each length code.
pub(super) const LENGTH_BASE: [u32; 29] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128,
    160, 192, 224, 255,
];

/// Extra bits of each distance code.
pub(super) const OFFSET_EXTRA_BITS: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// Smallest `distance - 1` of each distance code.
pub(super) const OFFSET_BASE: [u32; 30] = [
    0x0000, 0x0001, 0x0002, 0x0003, 0x0004, 0x0006, 0x0008, 0x000c, 0x0010, 0x0018, 0x0020, 0x0030,
    0x0040, 0x0060, 0x0080, 0x00c0, 0x0100, 0x0180, 0x0200, 0x0300, 0x0400, 0x0600, 0x0800, 0x0c00,
    0x1000, 0x1800, 0x2000, 0x3000, 0x4000, 0x6000,
];

/// Length code (0..=28) of every `length - 3` (0..=255).
static LENGTH_CODES: [u8; 256] = length_codes();

/// Distance code of every `distance - 1` below 256; larger distances use the
/// entry of `(distance - 1) >> 7`, plus 14.
static OFFSET_CODES: [u8; 256] = offset_codes();

const fn length_codes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut code = 0;
    while code < 28 {
        let mut l = LENGTH_BASE[code];
        while l < LENGTH_BASE[code + 1] {
            table[l as usize] = code as u8;
            l += 1;
        }
        code += 1;
    }
    table[255] = 28;
    table
}

const fn offset_codes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut code = 0;
    while code < 16 {
        let mut o = OFFSET_BASE[code];
        while o < OFFSET_BASE[code + 1] {
            table[o as usize] = code as u8;
            o += 1;
        }
        code += 1;
    }
    table
}

/// Length code (0..=28) of `length - 3`.
#[inline(always)]
pub(super) fn length_code(xlength: u32) -> usize {
    usize::from(LENGTH_CODES[(xlength & 0xff) as usize])
}

/// Distance code (0..=29) of `distance - 1` (below 32768).
#[inline(always)]
pub(super) fn offset_code(xoffset: u32) -> usize {
    // Branch-free: both lookups, then a mask picks one.
    let near = u32::from(OFFSET_CODES[(xoffset & 0xff) as usize]);
    let far = u32::from(OFFSET_CODES[((xoffset >> 7) & 0xff) as usize]) + 14;
    let far_mask = 0u32.wrapping_sub(u32::from(xoffset >= 256));
    (near ^ ((near ^ far) & far_mask)) as usize
}

/// One distance code with its extra bits, for [`TokenCoder`].
#[derive(Clone, Copy, Default)]
struct OffsetCode {
    code: u32,
    len: u32,
    extra: u32,
    base: u32,
}

/// A block's codes arranged so that each token goes out in one put.
pub(super) struct TokenCoder {
    /// `(bits, count)` of literal `i` (`i < 256`) or of the length code
    /// and extra bits of `length - 3 = i - 256`.
    lit_len: [(u32, u32); 512],
    /// Indexed by distance code; 32 entries so a 5-bit mask is in range.
    offsets: [OffsetCode; 32],
    end_block: HCode,
}

impl TokenCoder {
    /// Tables for literal/length codes `lit` and distance codes `off`.
    pub(super) fn new(lit: &[HCode; MAX_NUM_LIT], off: &[HCode; MAX_NUM_LIT]) -> TokenCoder {
        let mut lit_len = [(0u32, 0u32); 512];
        for (entry, c) in lit_len.iter_mut().zip(&lit[..256]) {
            *entry = (u32::from(c.code), u32::from(c.len));
        }
        for (xlength, entry) in lit_len[256..].iter_mut().enumerate() {
            let lc = length_code(xlength as u32);
            let c = lit[LENGTH_CODES_START + lc];
            let extra = xlength as u32 - LENGTH_BASE[lc];
            let len = u32::from(c.len);
            *entry = (
                u32::from(c.code) | extra << len,
                len + u32::from(LENGTH_EXTRA_BITS[lc]),
            );
        }
        let mut offsets = [OffsetCode::default(); 32];
        for (oc, entry) in offsets.iter_mut().enumerate().take(OFFSET_CODE_COUNT) {
            *entry = OffsetCode {
                code: u32::from(off[oc].code),
                len: u32::from(off[oc].len),
                extra: u32::from(OFFSET_EXTRA_BITS[oc]),
                base: OFFSET_BASE[oc],
            };
        }
        TokenCoder {
            lit_len,
            offsets,
            end_block: lit[END_BLOCK_MARKER],
        }
    }

    /// Writes `tokens`, then the end-of-block code.
    pub(super) fn write(&self, tokens: &[Token], bits: &mut BitOut, out: &mut Vec<u8>) {
        bits.with(out, |c| {
            for &t in tokens {
                let (value, n) = self.code(t);
                c.put(value, n);
            }
            let eob = self.end_block;
            c.put(u64::from(eob.code), u32::from(eob.len));
        });
    }

    /// The bits of token `t` and their count. Literals and matches mix
    /// unpredictably, so both are worked out and one is picked by masking
    /// rather than branching.
    #[inline(always)]
    fn code(&self, t: Token) -> (u64, u32) {
        let match_mask = 0u32.wrapping_sub(t >> 30);
        let literal = t & 0xff;
        let length = 256 + token_length(t);
        let index = literal ^ ((literal ^ length) & match_mask);
        let (lv, ln) = self.lit_len[index as usize];
        // A literal's "distance" is its byte: still a valid table index.
        let x = token_offset(t);
        let o = self.offsets[offset_code(x) & 31];
        let ov = (o.code | (x - o.base) << o.len) & match_mask;
        let on = (o.len + o.extra) & match_mask;
        (u64::from(lv) | u64::from(ov) << ln, ln + on)
    }

    /// Counts the literal/length and distance symbols of `tokens` into
    /// `lit` and `off` (zeroing them first).
    pub(super) fn histogram(
        tokens: &[Token],
        lit: &mut [i32; MAX_NUM_LIT],
        off: &mut [i32; OFFSET_CODE_COUNT],
    ) {
        *lit = [0; MAX_NUM_LIT];
        // Literals count in a spare distance slot, so nothing branches.
        let mut offsets = [0i32; OFFSET_CODE_COUNT + 2];
        for &t in tokens {
            let is_match = t >= MATCH_TYPE;
            let lc = LENGTH_CODES_START + length_code(token_length(t));
            let li = if is_match { lc } else { (t & 0xff) as usize };
            lit[li] += 1;
            let oc = offset_code(token_offset(t));
            offsets[if is_match { oc } else { OFFSET_CODE_COUNT }] += 1;
        }
        off.copy_from_slice(&offsets[..OFFSET_CODE_COUNT]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_rfc_1951_ranges() {
        // Every length and distance falls into the code whose base is the
        // largest base not above it.
        for x in 0..256u32 {
            let c = length_code(x);
            assert!(LENGTH_BASE[c] <= x);
            assert!(c == 28 || x < LENGTH_BASE[c + 1]);
        }
        for x in 0..32768u32 {
            let c = offset_code(x);
            assert!(OFFSET_BASE[c] <= x);
            assert!(c == 29 || x < OFFSET_BASE[c + 1]);
        }
    }

    #[test]
    fn match_token_round_trips() {
        let t = match_token(255, 32767);
        assert!(t >= MATCH_TYPE);
        assert_eq!(token_length(t), 255);
        assert_eq!(token_offset(t), 32767);
    }
}
