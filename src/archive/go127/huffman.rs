//! Length-limited canonical Huffman code construction (Go's `huffman_code.go`).
//!
//! A code is stored as one `u32`: the bit length in the low 8 bits and the
//! bit-reversed code word above it, ready to be OR-ed into the bit buffer.

/// Literal/length table size (`literalCount`).
const LITERAL_COUNT: usize = super::tokens::LITERAL_COUNT;
/// Longest code length the construction can be asked for, plus one.
const MAX_BITS_LIMIT: usize = 16;

/// Packs a code word (already reversed) and its length.
#[inline(always)]
pub(super) const fn new_hcode(code: u16, len: u8) -> u32 {
    len as u32 | (code as u32) << 8
}

/// The bit length of a packed code.
#[inline(always)]
pub(super) const fn hlen(c: u32) -> u32 {
    c & 0xff
}

/// Reverses the low `b` bits of `x`.
const fn reverse_bits(x: u16, b: u8) -> u16 {
    (x << ((16 - b as u32) & 15)).reverse_bits()
}

/// A symbol with its frequency, as sorted while building a code.
#[derive(Clone, Copy, Default)]
struct LiteralNode {
    literal: u16,
    freq: u16,
}

/// The state of one tree level while counting code lengths.
#[derive(Clone, Copy, Default)]
struct LevelInfo {
    last_freq: i32,
    next_char_freq: i32,
    next_pair_freq: i32,
    needed: i32,
}

/// A Huffman code over up to `LITERAL_COUNT` symbols.
#[derive(Clone)]
pub(super) struct HuffmanEncoder {
    /// Packed codes; zero means the symbol has no code.
    pub(super) codes: [u32; LITERAL_COUNT],
    bit_count: [i32; 17],
    freq_cache: [LiteralNode; LITERAL_COUNT + 1],
    sort_tmp: [LiteralNode; LITERAL_COUNT],
}

impl HuffmanEncoder {
    /// An encoder with no codes assigned.
    pub(super) fn new() -> HuffmanEncoder {
        HuffmanEncoder {
            codes: [0; LITERAL_COUNT],
            bit_count: [0; 17],
            freq_cache: [LiteralNode::default(); LITERAL_COUNT + 1],
            sort_tmp: [LiteralNode::default(); LITERAL_COUNT],
        }
    }

    /// The fixed literal/length code of RFC 1951.
    pub(super) const fn fixed_literal() -> [u32; LITERAL_COUNT] {
        let mut codes = [0u32; LITERAL_COUNT];
        let mut ch = 0;
        while ch < LITERAL_COUNT {
            let (bits, size) = if ch < 144 {
                (ch + 48, 8)
            } else if ch < 256 {
                (ch + 400 - 144, 9)
            } else if ch < 280 {
                (ch - 256, 7)
            } else {
                (ch + 192 - 280, 8)
            };
            codes[ch] = new_hcode(reverse_bits(bits as u16, size), size);
            ch += 1;
        }
        codes
    }

    /// The fixed offset code of RFC 1951.
    pub(super) const fn fixed_offset() -> [u32; LITERAL_COUNT] {
        let mut codes = [0u32; LITERAL_COUNT];
        let mut ch = 0;
        while ch < 30 {
            codes[ch] = new_hcode(reverse_bits(ch as u16, 5), 5);
            ch += 1;
        }
        codes
    }

    /// Bits needed to code `freq` with this code.
    pub(super) fn bit_length(&self, freq: &[u16]) -> i32 {
        bit_length(&self.codes, freq)
    }

    /// Bits needed to code the bytes `b`, counting 1 for bytes without a code.
    pub(super) fn bit_length_raw(&self, b: &[u8]) -> i32 {
        let codes = &self.codes[..256];
        b.iter()
            .map(|&v| hlen(codes[v as usize]).max(1) as i32)
            .sum()
    }

    /// Bits needed to code `freq`, or `i32::MAX` when a used symbol has no code.
    pub(super) fn can_encode_len(&self, freq: &[u16]) -> i32 {
        let mut total = 0i32;
        for (&f, &c) in freq.iter().zip(self.codes.iter()) {
            if f != 0 {
                if c == 0 {
                    return i32::MAX;
                }
                total += i32::from(f) * hlen(c) as i32;
            }
        }
        total
    }

    /// Rebuilds the code for the frequencies `freq` with at most `max_bits`
    /// bits per symbol. Codes past `freq.len()` are left as they were.
    pub(super) fn generate(&mut self, freq: &[u16], max_bits: i32) {
        let mut count = 0;
        for (i, &f) in freq.iter().enumerate() {
            if f != 0 {
                self.freq_cache[count] = LiteralNode {
                    literal: i as u16,
                    freq: f,
                };
                count += 1;
            } else {
                self.codes[i] = 0;
            }
        }
        if count <= 2 {
            // With two or fewer symbols every code is one bit long.
            for i in 0..count {
                let lit = self.freq_cache[i].literal as usize;
                self.codes[lit] = new_hcode(i as u16, 1);
            }
            return;
        }
        // The list is in symbol order, so a stable sort by frequency gives
        // Go's order by (frequency, symbol).
        sort_by_freq(&mut self.freq_cache[..count], &mut self.sort_tmp[..count]);
        let max_bits = self.bit_counts(count, max_bits);
        self.assign_encoding_and_size(max_bits, count);
    }

    /// Counts how many symbols get each code length (package-merge over
    /// the sorted list, as Go's `bitCounts`). Returns the top level used.
    fn bit_counts(&mut self, n: usize, mut max_bits: i32) -> usize {
        let list = &mut self.freq_cache;
        list[n] = LiteralNode {
            literal: u16::MAX,
            freq: u16::MAX,
        };
        let n32 = n as i32;
        if max_bits > n32 - 1 {
            max_bits = n32 - 1;
        }
        let max_bits = max_bits as usize;
        let mut levels = [LevelInfo::default(); MAX_BITS_LIMIT + 1];
        let mut leaf_counts = [[0i32; MAX_BITS_LIMIT]; MAX_BITS_LIMIT];
        for level in 1..=max_bits {
            levels[level] = LevelInfo {
                last_freq: i32::from(list[1].freq),
                next_char_freq: i32::from(list[2].freq),
                next_pair_freq: if level == 1 {
                    i32::MAX
                } else {
                    i32::from(list[0].freq) + i32::from(list[1].freq)
                },
                needed: 0,
            };
            leaf_counts[level][level] = 2;
        }
        levels[max_bits].needed = 2 * n32 - 4;

        let mut level = max_bits;
        while level < 16 {
            let l = levels[level];
            if l.next_pair_freq == i32::MAX && l.next_char_freq == i32::MAX {
                levels[level].needed = 0;
                levels[level + 1].next_pair_freq = i32::MAX;
                level += 1;
                continue;
            }
            let prev_freq = l.last_freq;
            if l.next_char_freq < l.next_pair_freq {
                let nn = leaf_counts[level][level] + 1;
                levels[level].last_freq = l.next_char_freq;
                leaf_counts[level][level] = nn;
                let e = list[nn as usize];
                levels[level].next_char_freq = if e.literal < u16::MAX {
                    i32::from(e.freq)
                } else {
                    i32::MAX
                };
            } else {
                levels[level].last_freq = l.next_pair_freq;
                let save = leaf_counts[level][level];
                leaf_counts[level] = leaf_counts[level - 1];
                leaf_counts[level][level] = save;
                levels[level - 1].needed = 2;
            }
            levels[level].needed -= 1;
            if levels[level].needed == 0 {
                if level == max_bits {
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

        // Symbols needing `bits` bits are those added at level max_bits + 1 - bits.
        let counts = &leaf_counts[max_bits];
        for (bits, level) in (1..).zip((1..=max_bits).rev()) {
            self.bit_count[bits] = counts[level] - counts[level - 1];
        }
        max_bits
    }

    /// Hands out canonical codes: the most frequent symbols get the shortest
    /// codes, and within one length codes ascend with the symbol value.
    fn assign_encoding_and_size(&mut self, max_bits: usize, count: usize) {
        // Lengths first: the last bit_count[1] symbols of the list get 1
        // bit, the bit_count[2] before them 2 bits, and so on.
        let mut lens = [0u8; LITERAL_COUNT];
        let mut end = count;
        for n in 1..=max_bits {
            let bits = self.bit_count[n] as usize;
            for node in &self.freq_cache[end - bits..end] {
                lens[node.literal as usize] = n as u8;
            }
            end -= bits;
        }
        // Then codes, ascending within each length in symbol order.
        let mut next = [0u16; MAX_BITS_LIMIT + 1];
        let mut code = 0u16;
        for (n, start) in next.iter_mut().enumerate().take(max_bits + 1).skip(1) {
            code = (code + self.bit_count[n - 1] as u16) << 1;
            *start = code;
        }
        for (lit, &n) in lens.iter().enumerate() {
            if n != 0 {
                let c = next[n as usize];
                next[n as usize] = c.wrapping_add(1);
                self.codes[lit] = new_hcode(reverse_bits(c, n), n);
            }
        }
    }
}

/// Stable LSD radix sort of `list` by frequency, using `tmp` as scratch.
fn sort_by_freq(list: &mut [LiteralNode], tmp: &mut [LiteralNode]) {
    let mut hi_used = false;
    let mut counts = [0usize; 256];
    for n in list.iter() {
        counts[(n.freq & 255) as usize] += 1;
        hi_used |= n.freq > 255;
    }
    scatter(list, tmp, &mut counts, |n| (n.freq & 255) as usize);
    if !hi_used {
        list.copy_from_slice(tmp);
        return;
    }
    let mut counts = [0usize; 256];
    for n in tmp.iter() {
        counts[(n.freq >> 8) as usize] += 1;
    }
    scatter(tmp, list, &mut counts, |n| (n.freq >> 8) as usize);
}

/// One counting-sort pass: moves `from` into `to` ordered by `key`, stably.
fn scatter(
    from: &[LiteralNode],
    to: &mut [LiteralNode],
    counts: &mut [usize; 256],
    key: impl Fn(&LiteralNode) -> usize,
) {
    let mut pos = 0;
    for c in counts.iter_mut() {
        let n = *c;
        *c = pos;
        pos += n;
    }
    for n in from {
        let k = key(n);
        if let Some(d) = to.get_mut(counts[k]) {
            *d = *n;
        }
        counts[k] += 1;
    }
}

/// Bits needed to code `freq` with `codes`.
#[inline]
pub(super) fn bit_length(codes: &[u32], freq: &[u16]) -> i32 {
    let mut total = 0i32;
    for (&f, &c) in freq.iter().zip(codes.iter()) {
        total += i32::from(f) * hlen(c) as i32;
    }
    total
}

/// Adds the byte histogram of `b` to `h`.
pub(super) fn histogram(b: &[u8], h: &mut [u16; 256]) {
    // Four counters avoid store-to-load stalls on runs of equal bytes; the
    // sum is the same as counting one by one.
    let mut c = [[0u32; 256]; 4];
    let mut chunks = b.chunks_exact(4);
    for ch in &mut chunks {
        c[0][ch[0] as usize] += 1;
        c[1][ch[1] as usize] += 1;
        c[2][ch[2] as usize] += 1;
        c[3][ch[3] as usize] += 1;
    }
    for &v in chunks.remainder() {
        c[0][v as usize] += 1;
    }
    for (i, out) in h.iter_mut().enumerate() {
        let sum = c[0][i] + c[1][i] + c[2][i] + c[3][i];
        *out = out.wrapping_add(sum as u16);
    }
}
