//! Length-limited canonical Huffman codes, built exactly as Go's
//! `compress/flate/huffman_code.go` builds them (a package-merge style
//! level walk), so that every code length, and so every emitted bit,
//! matches Go's.

use super::token::MAX_NUM_LIT;

/// One Huffman code: `code` holds the bits already reversed for LSB-first
/// output, `len` their count (0 for an unused symbol).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(super) struct HCode {
    pub(super) code: u16,
    pub(super) len: u16,
}

/// A symbol with a non-zero frequency.
#[derive(Clone, Copy, Default)]
struct LiteralNode {
    literal: u16,
    freq: i32,
}

/// The sentinel that ends the sorted symbol list.
const MAX_NODE: LiteralNode = LiteralNode {
    literal: u16::MAX,
    freq: i32::MAX,
};

/// Go's `maxBitsLimit`: code lengths stay below this.
const MAX_BITS_LIMIT: usize = 16;

/// State of one depth of the tree while counting code lengths.
#[derive(Clone, Copy, Default)]
struct LevelInfo {
    /// Frequency of the last node placed at this level.
    last_freq: i32,
    /// Frequency of the next leaf that could join this level.
    next_char_freq: i32,
    /// Frequency of the next pair from the level below.
    next_pair_freq: i32,
    /// Chains still to generate at this level before moving up.
    needed: i32,
}

/// A Huffman code table over an alphabet of up to 286 symbols.
pub(super) struct HuffmanEncoder {
    /// Code of every symbol; only the first `freq.len()` of the last
    /// [`HuffmanEncoder::generate`] call are meaningful.
    pub(super) codes: [HCode; MAX_NUM_LIT],
    list: [LiteralNode; MAX_NUM_LIT + 1],
    bit_count: [i32; 17],
}

impl HuffmanEncoder {
    /// An encoder with every code unused.
    pub(super) fn new() -> HuffmanEncoder {
        HuffmanEncoder {
            codes: [HCode::default(); MAX_NUM_LIT],
            list: [LiteralNode::default(); MAX_NUM_LIT + 1],
            bit_count: [0; 17],
        }
    }

    /// Bits needed to write symbols with frequencies `freq` in this code.
    pub(super) fn bit_length(&self, freq: &[i32]) -> usize {
        freq.iter()
            .zip(self.codes.iter())
            .map(|(&f, c)| f as usize * usize::from(c.len))
            .sum()
    }

    /// Makes this the minimum code for `freq` (symbol `i` seen `freq[i]`
    /// times) with no code longer than `max_bits`.
    pub(super) fn generate(&mut self, freq: &[i32], max_bits: i32) {
        let mut count = 0;
        for (i, (&f, code)) in freq.iter().zip(self.codes.iter_mut()).enumerate() {
            if f != 0 {
                self.list[count] = LiteralNode {
                    literal: i as u16,
                    freq: f,
                };
                count += 1;
            } else {
                code.len = 0;
            }
        }
        if count <= 2 {
            // With two or fewer symbols every code is one bit long, in
            // symbol order.
            for (i, node) in self.list[..count].iter().enumerate() {
                self.codes[usize::from(node.literal)] = HCode {
                    code: i as u16,
                    len: 1,
                };
            }
            return;
        }
        self.list[..count].sort_unstable_by_key(|n| (n.freq, n.literal));
        let max_bits = self.bit_counts(count, max_bits);
        self.assign_encoding_and_size(count, max_bits);
    }

    /// Fills `bit_count[1..=result]` with how many of the `n` (≥ 3) sorted
    /// symbols get each code length, and returns the largest length
    /// considered.
    fn bit_counts(&mut self, n: usize, max_bits: i32) -> usize {
        let list = &mut self.list;
        list[n] = MAX_NODE;
        let n32 = n as i32;
        // The tree can't be deeper than n - 1.
        let max_bits = max_bits.min(n32 - 1).clamp(1, MAX_BITS_LIMIT as i32 - 1) as usize;

        // Level 0 is a placeholder whose `needed` stays 0.
        let mut levels = [LevelInfo::default(); MAX_BITS_LIMIT + 1];
        // leaf_counts[i][j]: leaves left of the level-j ancestor of the
        // rightmost node at level i.
        let mut leaf_counts = [[0i32; MAX_BITS_LIMIT + 1]; MAX_BITS_LIMIT + 1];
        for (level, info) in levels.iter_mut().enumerate().take(max_bits + 1).skip(1) {
            *info = LevelInfo {
                last_freq: list[1].freq,
                next_char_freq: list[2].freq,
                next_pair_freq: if level == 1 {
                    i32::MAX
                } else {
                    list[0].freq.wrapping_add(list[1].freq)
                },
                needed: 0,
            };
            leaf_counts[level][level] = 2;
        }
        // 2n - 2 items are needed at the top level; two are already there.
        levels[max_bits].needed = 2 * n32 - 4;

        let mut level = max_bits;
        loop {
            let l = levels[level];
            if l.next_pair_freq == i32::MAX && l.next_char_freq == i32::MAX {
                // Out of both leaves and pairs: this level and those below
                // are finished.
                levels[level].needed = 0;
                levels[level + 1].next_pair_freq = i32::MAX;
                level += 1;
                continue;
            }
            let prev_freq = l.last_freq;
            if l.next_char_freq < l.next_pair_freq {
                // The next node at this level is a leaf.
                let next = leaf_counts[level][level] + 1;
                levels[level].last_freq = l.next_char_freq;
                leaf_counts[level][level] = next;
                levels[level].next_char_freq = list[next as usize].freq;
            } else {
                // The next node is a pair from the level below, which must
                // now make two more.
                levels[level].last_freq = l.next_pair_freq;
                let (below, here) = leaf_counts.split_at_mut(level);
                here[0][..level].copy_from_slice(&below[level - 1][..level]);
                levels[level - 1].needed = 2;
            }
            levels[level].needed -= 1;
            if levels[level].needed == 0 {
                if level == max_bits {
                    break;
                }
                levels[level + 1].next_pair_freq = prev_freq.wrapping_add(levels[level].last_freq);
                level += 1;
            } else {
                // Replenish the levels below that we took pairs from.
                while levels[level - 1].needed > 0 {
                    level -= 1;
                }
            }
        }
        debug_assert_eq!(leaf_counts[max_bits][max_bits], n32);

        let counts = &leaf_counts[max_bits];
        for (bits, level) in (1..=max_bits).rev().enumerate() {
            self.bit_count[bits + 1] = counts[level] - counts[level - 1];
        }
        max_bits
    }

    /// Gives the sorted symbols `list[..n]` their codes: the least frequent
    /// get the longest, and within one length codes rise with the symbol
    /// (RFC 1951 3.2.2).
    fn assign_encoding_and_size(&mut self, n: usize, max_bits: usize) {
        let mut code = 0u16;
        let mut end = n;
        for bits in 1..=max_bits {
            code <<= 1;
            let count = self.bit_count[bits] as usize;
            if count == 0 {
                continue;
            }
            let chunk = &mut self.list[end - count..end];
            chunk.sort_unstable_by_key(|n| n.literal);
            for node in chunk.iter() {
                self.codes[usize::from(node.literal)] = HCode {
                    code: reverse_bits(code, bits as u32),
                    len: bits as u16,
                };
                code = code.wrapping_add(1);
            }
            end -= count;
        }
    }
}

/// The low `bit_length` bits of `number`, reversed.
pub(super) const fn reverse_bits(number: u16, bit_length: u32) -> u16 {
    (number << (16 - bit_length)).reverse_bits()
}

/// The fixed literal/length code of RFC 1951 3.2.6.
pub(super) const fn fixed_literal_codes() -> [HCode; MAX_NUM_LIT] {
    let mut codes = [HCode { code: 0, len: 0 }; MAX_NUM_LIT];
    let mut ch = 0;
    while ch < MAX_NUM_LIT {
        let c = ch as u16;
        let (bits, size) = if ch < 144 {
            (c + 48, 8)
        } else if ch < 256 {
            (c + 400 - 144, 9)
        } else if ch < 280 {
            (c - 256, 7)
        } else {
            (c + 192 - 280, 8)
        };
        codes[ch] = HCode {
            code: reverse_bits(bits, size as u32),
            len: size,
        };
        ch += 1;
    }
    codes
}

/// The fixed distance code of RFC 1951 3.2.6 (five bits each).
pub(super) const fn fixed_offset_codes() -> [HCode; MAX_NUM_LIT] {
    let mut codes = [HCode { code: 0, len: 0 }; MAX_NUM_LIT];
    let mut ch = 0;
    while ch < 30 {
        codes[ch] = HCode {
            code: reverse_bits(ch as u16, 5),
            len: 5,
        };
        ch += 1;
    }
    codes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kraft sum of the used code lengths, scaled by 2^15.
    fn kraft(h: &HuffmanEncoder, n: usize) -> u32 {
        h.codes[..n]
            .iter()
            .filter(|c| c.len > 0)
            .map(|c| 1u32 << (15 - c.len))
            .sum()
    }

    #[test]
    fn complete_code_within_limit() {
        let mut h = HuffmanEncoder::new();
        // Fibonacci frequencies force deep trees, so the limit bites.
        let mut freq = [0i32; 40];
        let (mut a, mut b) = (1i32, 1i32);
        for f in freq.iter_mut() {
            *f = a;
            let c = a.saturating_add(b);
            a = b;
            b = c.min(1 << 28);
        }
        h.generate(&freq, 15);
        assert_eq!(kraft(&h, 40), 1 << 15);
        assert!(h.codes[..40].iter().all(|c| (1..=15).contains(&c.len)));
    }

    #[test]
    fn small_alphabets_get_one_bit_codes() {
        let mut h = HuffmanEncoder::new();
        h.generate(&[0, 5, 0, 9], 15);
        assert_eq!(h.codes[1], HCode { code: 0, len: 1 });
        assert_eq!(h.codes[3], HCode { code: 1, len: 1 });
        assert_eq!(h.codes[0].len, 0);
    }

    #[test]
    fn fixed_codes_follow_rfc() {
        let lit = fixed_literal_codes();
        assert_eq!(lit[0].len, 8);
        assert_eq!(lit[144].len, 9);
        assert_eq!(lit[256], HCode { code: 0, len: 7 });
        assert_eq!(lit[280].len, 8);
        // 'A' (65) is 0b01110001, written LSB first.
        assert_eq!(lit[65].code, reverse_bits(0b0111_0001, 8));
    }
}
