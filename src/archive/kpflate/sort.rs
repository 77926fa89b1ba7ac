//! The two sorts of klauspost's Huffman builder (`huffman_sortByFreq.go`,
//! `huffman_sortByLiteral.go`).
//!
//! Sorting by literal has unique keys, so any correct sort gives Go's order.
//! Sorting by (frequency, literal) also has unique keys, but Go's quicksort falls
//! back to a heap sort *by literal* when its depth budget runs out, which yields
//! a different order; the quicksort is therefore mirrored step by step so the
//! fallback happens exactly when Go's does.

/// A symbol and its frequency, packed as `freq << 16 | literal` so that the
/// (frequency, literal) order is plain integer order.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(super) struct LiteralNode(u32);

impl LiteralNode {
    /// Go's `maxNode()`: literal and frequency both `u16::MAX`.
    pub(super) const MAX: LiteralNode = LiteralNode(u32::MAX);

    pub(super) fn new(literal: u16, freq: u16) -> LiteralNode {
        LiteralNode((u32::from(freq) << 16) | u32::from(literal))
    }

    #[inline(always)]
    pub(super) fn literal(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    #[inline(always)]
    pub(super) fn freq(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// Sorts by literal value.
pub(super) fn sort_by_literal(data: &mut [LiteralNode]) {
    data.sort_unstable_by_key(|n| n.literal());
}

/// Go's `maxDepth`: 2 * ceil(lg(n + 1)).
fn max_depth(n: usize) -> usize {
    let mut depth = 0;
    let mut i = n;
    while i > 0 {
        depth += 1;
        i >>= 1;
    }
    depth * 2
}

/// (freq, literal) order.
#[inline(always)]
fn lt(a: LiteralNode, b: LiteralNode) -> bool {
    a.0 < b.0
}

/// Sorts by frequency, then literal, exactly as klauspost's `sortByFreq`.
pub(super) fn sort_by_freq(data: &mut [LiteralNode]) {
    let n = data.len();
    quick_sort_by_freq(data, 0, n, max_depth(n));
}

fn quick_sort_by_freq(data: &mut [LiteralNode], mut a: usize, mut b: usize, mut depth: usize) {
    while b - a > 12 {
        if depth == 0 {
            // Go calls the literal-ordered heap sort here.
            sort_by_literal(&mut data[a..b]);
            return;
        }
        depth -= 1;
        let (mlo, mhi) = do_pivot_by_freq(data, a, b);
        if mlo - a < b - mhi {
            quick_sort_by_freq(data, a, mlo, depth);
            a = mhi;
        } else {
            quick_sort_by_freq(data, mhi, b, depth);
            b = mlo;
        }
    }
    if b - a > 1 {
        // Shell sort pass with gap 6, then insertion sort.
        for i in a + 6..b {
            if lt(data[i], data[i - 6]) {
                data.swap(i, i - 6);
            }
        }
        for i in a + 1..b {
            let mut j = i;
            while j > a && lt(data[j], data[j - 1]) {
                data.swap(j, j - 1);
                j -= 1;
            }
        }
    }
}

fn median_of_three(data: &mut [LiteralNode], m1: usize, m0: usize, m2: usize) {
    if lt(data[m1], data[m0]) {
        data.swap(m1, m0);
    }
    if lt(data[m2], data[m1]) {
        data.swap(m2, m1);
        if lt(data[m1], data[m0]) {
            data.swap(m1, m0);
        }
    }
}

fn do_pivot_by_freq(data: &mut [LiteralNode], lo: usize, hi: usize) -> (usize, usize) {
    let m = (lo + hi) >> 1;
    if hi - lo > 40 {
        let s = (hi - lo) / 8;
        median_of_three(data, lo, lo + s, lo + 2 * s);
        median_of_three(data, m, m - s, m + s);
        median_of_three(data, hi - 1, hi - 1 - s, hi - 1 - 2 * s);
    }
    median_of_three(data, lo, m, hi - 1);

    let pivot = lo;
    let (mut a, mut c) = (lo + 1, hi - 1);
    while a < c && lt(data[a], data[pivot]) {
        a += 1;
    }
    let mut b = a;
    loop {
        while b < c && lt(data[b], data[pivot]) {
            b += 1;
        }
        while b < c && lt(data[pivot], data[c - 1]) {
            c -= 1;
        }
        if b >= c {
            break;
        }
        data.swap(b, c - 1);
        b += 1;
        c -= 1;
    }
    let mut protect = hi - c < 5;
    if !protect && hi - c < (hi - lo) / 4 {
        let mut dups = 0;
        if lt(data[hi - 1], data[pivot]) {
            data.swap(c, hi - 1);
            c += 1;
            dups += 1;
        }
        if lt(data[pivot], data[b - 1]) {
            b -= 1;
            dups += 1;
        }
        if lt(data[pivot], data[m]) {
            data.swap(m, b - 1);
            b -= 1;
            dups += 1;
        }
        protect = dups > 1;
    }
    if protect {
        loop {
            while a < b && lt(data[pivot], data[b - 1]) {
                b -= 1;
            }
            while a < b && lt(data[a], data[pivot]) {
                a += 1;
            }
            if a >= b {
                break;
            }
            data.swap(a, b - 1);
            a += 1;
            b -= 1;
        }
    }
    data.swap(pivot, b - 1);
    (b - 1, c)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn sorts_small_and_large() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for n in [3usize, 13, 41, 100, 286] {
            let mut v: Vec<LiteralNode> = (0..n)
                .map(|i| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    LiteralNode::new(i as u16, (state % 7) as u16 + 1)
                })
                .collect();
            sort_by_freq(&mut v);
            for w in v.windows(2) {
                assert!(lt(w[0], w[1]));
            }
        }
    }
}
