//! Length-limited Huffman code construction (klauspost `huffman_code.go`).
//!
//! Codes are stored as Go's `hcode`: bit length in the low byte, the
//! bit-reversed code above it. Tie-breaking follows Go exactly, including the
//! quirky sort in [`super::sort`].

use super::sort::{LiteralNode, sort_by_freq, sort_by_literal};
use super::tokens::LITERAL_COUNT;

/// Go's `maxBitsLimit`.
const MAX_BITS_LIMIT: usize = 16;

/// Bit length of an `hcode`.
#[inline(always)]
pub(super) fn hlen(h: u32) -> u32 {
    h & 0xff
}

/// Bit pattern (already reversed) of an `hcode`.
#[inline(always)]
pub(super) fn hcode64(h: u32) -> u64 {
    u64::from(h >> 8)
}

fn newhcode(code: u16, length: u8) -> u32 {
    u32::from(length) | (u32::from(code) << 8)
}

fn reverse_bits(number: u16, bit_length: u8) -> u16 {
    (number << ((16 - u32::from(bit_length)) & 15)).reverse_bits()
}

/// One Huffman code table (`huffmanEncoder`).
pub(super) struct HuffmanEncoder {
    /// `hcode` per symbol; only the first `size` are meaningful, the rest stay zero.
    pub(super) codes: [u32; 320],
    bit_count: [i32; 17],
    freqcache: [LiteralNode; LITERAL_COUNT + 1],
    /// Chain nodes of [`HuffmanEncoder::bit_counts`], kept to reuse the allocation.
    chain: Vec<(i32, u32)>,
}

impl HuffmanEncoder {
    pub(super) fn new() -> HuffmanEncoder {
        HuffmanEncoder {
            codes: [0; 320],
            bit_count: [0; 17],
            freqcache: [LiteralNode::default(); LITERAL_COUNT + 1],
            chain: Vec::new(),
        }
    }

    /// The fixed literal/length code of RFC 1951.
    pub(super) fn fixed_literal() -> HuffmanEncoder {
        let mut h = HuffmanEncoder::new();
        for ch in 0..LITERAL_COUNT as u16 {
            let (bits, size) = match ch {
                0..=143 => (ch + 48, 8),
                144..=255 => (ch + 400 - 144, 9),
                256..=279 => (ch - 256, 7),
                _ => (ch + 192 - 280, 8),
            };
            h.codes[usize::from(ch)] = newhcode(reverse_bits(bits, size), size);
        }
        h
    }

    /// The fixed offset code of RFC 1951.
    pub(super) fn fixed_offset() -> HuffmanEncoder {
        let mut h = HuffmanEncoder::new();
        for ch in 0..30u16 {
            h.codes[usize::from(ch)] = newhcode(reverse_bits(ch, 5), 5);
        }
        h
    }

    /// Total bits to code `freq` with this table.
    pub(super) fn bit_length(&self, freq: &[u16]) -> i64 {
        let mut total = 0i64;
        for (&f, &c) in freq.iter().zip(self.codes.iter()) {
            if f != 0 {
                total += i64::from(f) * i64::from(hlen(c));
            }
        }
        total
    }

    /// Bits to code `freq`, or `i32::MAX` when some used symbol has no code.
    pub(super) fn can_reuse_bits(&self, freq: &[u16]) -> i64 {
        let mut total = 0i64;
        for (&f, &c) in freq.iter().zip(self.codes.iter()) {
            if f != 0 {
                if c == 0 {
                    return i64::from(i32::MAX);
                }
                total += i64::from(f) * i64::from(hlen(c));
            }
        }
        total
    }

    /// Builds the minimum code for `freq` with at most `max_bits` bits per code.
    pub(super) fn generate(&mut self, freq: &[u16], max_bits: i32) {
        let mut count = 0usize;
        for (i, &f) in freq.iter().enumerate() {
            if f != 0 {
                self.freqcache[count] = LiteralNode::new(i as u16, f);
                count += 1;
            } else {
                self.codes[i] = 0;
            }
        }
        self.freqcache[count] = LiteralNode::default();
        if count <= 2 {
            // With two or fewer literals, everything has bit length 1.
            for i in 0..count {
                let lit = usize::from(self.freqcache[i].literal());
                self.codes[lit] = newhcode(i as u16, 1);
            }
            return;
        }
        sort_by_freq(&mut self.freqcache[..count]);
        let max_bits = self.bit_counts(count, max_bits);
        self.assign_encoding_and_size(max_bits, count);
    }

    /// Go's `bitCounts` (boundary package-merge): fills `bit_count[1..=max_bits]`
    /// from the sorted `freqcache[..n]` and returns the (possibly lowered)
    /// `max_bits`.
    ///
    /// Go keeps, per level, a row of leaf counts and copies the row below on
    /// every "pair" step. Here each level instead points at an immutable chain
    /// node (its leaf count plus the node of the level below at the time of the
    /// last pair), which gives the same counts without the row copies.
    fn bit_counts(&mut self, n: usize, mut max_bits: i32) -> usize {
        let list = &mut self.freqcache[..=n];
        list[n] = LiteralNode::MAX;
        let n = n as i32;
        if max_bits > n - 1 {
            max_bits = n - 1;
        }
        let mb = max_bits as usize;
        const L: usize = MAX_BITS_LIMIT + 1;
        let mut last_freq = [0i32; L];
        let mut next_char = [0i32; L];
        let mut next_pair = [0i32; L];
        let mut needed = [0i32; L];
        // Chain nodes: (leaf count, node of the level below); node 0 is all zeros.
        let chain = &mut self.chain;
        chain.clear();
        chain.push((0, 0));
        let mut cur = [0u32; L];

        let l2f = i32::from(list[2].freq());
        let l1f = i32::from(list[1].freq());
        let l0f = i32::from(list[0].freq()) + i32::from(list[1].freq());
        for level in 1..=mb {
            last_freq[level] = l1f;
            next_char[level] = l2f;
            next_pair[level] = if level == 1 { i32::MAX } else { l0f };
            cur[level] = chain.len() as u32;
            chain.push((2, 0));
        }
        needed[mb] = 2 * n - 4;

        let mut level = mb;
        while level < 16 {
            if next_pair[level] == i32::MAX && next_char[level] == i32::MAX {
                // Out of both leaves and pairs: finish this level for good.
                needed[level] = 0;
                next_pair[level + 1] = i32::MAX;
                level += 1;
                continue;
            }
            let prev_freq = last_freq[level];
            let (count, tail) = chain[cur[level] as usize];
            cur[level] = chain.len() as u32;
            if next_char[level] < next_pair[level] {
                // The next item on this row is a leaf node.
                last_freq[level] = next_char[level];
                chain.push((count + 1, tail));
                let e = list
                    .get((count + 1) as usize)
                    .copied()
                    .unwrap_or(LiteralNode::MAX);
                next_char[level] = if e.literal() < u16::MAX {
                    i32::from(e.freq())
                } else {
                    i32::MAX
                };
            } else {
                // The next item on this row is a pair from the previous row.
                last_freq[level] = next_pair[level];
                chain.push((count, cur[level - 1]));
                needed[level - 1] = 2;
            }
            needed[level] -= 1;
            if needed[level] == 0 {
                if level as i32 == max_bits {
                    break;
                }
                next_pair[level + 1] = prev_freq + last_freq[level];
                level += 1;
            } else {
                while needed[level - 1] > 0 {
                    level -= 1;
                }
            }
        }

        // Walk the top chain: counts[level] for level = mb down to 0.
        let mut counts = [0i32; L];
        let mut node = cur[mb] as usize;
        for level in (0..=mb).rev() {
            let (count, tail) = chain[node];
            counts[level] = count;
            node = tail as usize;
        }
        for (bits, level) in (1usize..).zip((1..=mb).rev()) {
            self.bit_count[bits] = counts[level] - counts[level - 1];
        }
        mb
    }

    #[cfg(test)]
    /// Go's `bitCounts` transcribed with its leaf-count rows, kept as the
    /// reference for [`HuffmanEncoder::bit_counts`]. Fills `bit_count[1..=max_bits]` from the sorted
    /// `freqcache[..n]` and returns the (possibly lowered) `max_bits`.
    fn bit_counts_reference(&mut self, n: usize, mut max_bits: i32) -> usize {
        #[derive(Clone, Copy, Default)]
        struct LevelInfo {
            last_freq: i32,
            next_char_freq: i32,
            next_pair_freq: i32,
            needed: i32,
        }
        let list = &mut self.freqcache[..=n];
        list[n] = LiteralNode::MAX;
        let n = n as i32;
        if max_bits > n - 1 {
            max_bits = n - 1;
        }
        let mb = max_bits as usize;
        let mut levels = [LevelInfo::default(); MAX_BITS_LIMIT + 1];
        let mut leaf_counts = [[0i32; MAX_BITS_LIMIT]; MAX_BITS_LIMIT + 1];

        let l2f = i32::from(list[2].freq());
        let l1f = i32::from(list[1].freq());
        let l0f = i32::from(list[0].freq()) + i32::from(list[1].freq());
        for level in 1..=mb {
            levels[level] = LevelInfo {
                last_freq: l1f,
                next_char_freq: l2f,
                next_pair_freq: if level == 1 { i32::MAX } else { l0f },
                needed: 0,
            };
            leaf_counts[level][level] = 2;
        }
        levels[mb].needed = 2 * n - 4;

        let mut level = mb;
        while level < 16 {
            if levels[level].next_pair_freq == i32::MAX && levels[level].next_char_freq == i32::MAX
            {
                // Out of both leaves and pairs: finish this level for good.
                levels[level].needed = 0;
                levels[level + 1].next_pair_freq = i32::MAX;
                level += 1;
                continue;
            }
            let prev_freq = levels[level].last_freq;
            if levels[level].next_char_freq < levels[level].next_pair_freq {
                // The next item on this row is a leaf node.
                let nn = leaf_counts[level][level] + 1;
                levels[level].last_freq = levels[level].next_char_freq;
                leaf_counts[level][level] = nn;
                let e = list[nn as usize];
                levels[level].next_char_freq = if e.literal() < u16::MAX {
                    i32::from(e.freq())
                } else {
                    i32::MAX
                };
            } else {
                // The next item on this row is a pair from the previous row;
                // take its leaf counts (only entries below `level` matter).
                levels[level].last_freq = levels[level].next_pair_freq;
                let (lower, upper) = leaf_counts.split_at_mut(level);
                upper[0][..level].copy_from_slice(&lower[level - 1][..level]);
                levels[level - 1].needed = 2;
            }
            levels[level].needed -= 1;
            if levels[level].needed == 0 {
                if level as i32 == max_bits {
                    break;
                }
                levels[level + 1].next_pair_freq = prev_freq + levels[level].last_freq;
                level += 1;
            } else {
                while levels[level - 1].needed > 0 {
                    level -= 1;
                }
            }
        }

        let counts = &leaf_counts[mb];
        for (bits, level) in (1usize..).zip((1..=mb).rev()) {
            self.bit_count[bits] = counts[level] - counts[level - 1];
        }
        mb
    }

    /// Go's `assignEncodingAndSize` over `bit_count[..=max_bits]` and `freqcache[..n]`.
    fn assign_encoding_and_size(&mut self, max_bits: usize, n: usize) {
        let mut code = 0u16;
        let mut len = n;
        for nbits in 0..=max_bits {
            code <<= 1;
            let bits = self.bit_count[nbits];
            if nbits == 0 || bits == 0 {
                continue;
            }
            let bits = bits as usize;
            let chunk = &mut self.freqcache[len - bits..len];
            sort_by_literal(chunk);
            for node in chunk.iter() {
                self.codes[usize::from(node.literal())] =
                    newhcode(reverse_bits(code, nbits as u8), nbits as u8);
                code = code.wrapping_add(1);
            }
            len -= bits;
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn chain_bit_counts_match_go_rows() {
        let mut state = 0x1234_5678_9abc_def1u64;
        let mut a = HuffmanEncoder::new();
        let mut b = HuffmanEncoder::new();
        for round in 0..20000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = 3 + (state % 284) as usize;
            let spread = [2u64, 5, 30, 1000, 65535][round % 5];
            let skew = round % 7 == 0;
            let mut nodes: Vec<LiteralNode> = (0..n)
                .map(|i| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let mut f = 1 + state % spread;
                    if skew {
                        // Exponential-ish weights push codes against the limit.
                        f = 1 + (1u64 << (state % 16)).min(65534);
                    }
                    LiteralNode::new(i as u16, f as u16)
                })
                .collect();
            super::super::sort::sort_by_freq(&mut nodes);
            for max_bits in [7, 15] {
                a.freqcache[..n].copy_from_slice(&nodes);
                b.freqcache[..n].copy_from_slice(&nodes);
                let ma = a.bit_counts(n, max_bits);
                let mb = b.bit_counts_reference(n, max_bits);
                assert_eq!(ma, mb);
                assert_eq!(a.bit_count[1..=ma], b.bit_count[1..=mb], "round {round}");
            }
        }
    }
}
