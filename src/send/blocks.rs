//! Solid blocks: which runs of a pack's chunks are compressed together.
//! Every run of consecutive sends that go whole (in no group, with no
//! similar chunk to go against, not kept raw by the store) is cut, in pack-table order, into the
//! fewest blocks of at most a cap of bytes and [`MAX_BLOCK_CHUNKS`] chunks,
//! of about the same size.

use std::collections::HashMap;

use super::plan::PlanGroup;
use crate::pack::format::MAX_BLOCK_CHUNKS;
use crate::store::ChunkEntry;

/// Chunks kept raw by the store from this length on stay out of blocks.
pub(super) const RAW_OUT_FROM: u32 = 16 << 10;

/// The blocks of a plan's `sends`, as groups without bases keyed by their
/// first send; `similar` and `groups` are the plan's.
pub(super) fn cut(
    sends: &[ChunkEntry],
    similar: &[Vec<ChunkEntry>],
    groups: &HashMap<usize, PlanGroup>,
    cap: u64,
) -> Vec<(usize, PlanGroup)> {
    let mut blocks = Vec::new();
    // The run of whole sends being gathered: (send index, length).
    let mut run: Vec<(usize, u64)> = Vec::new();
    let mut i = 0;
    while i < sends.len() {
        // A large chunk the store keeps raw (zstd could not shrink it
        // alone: compressed or random data) is left out: compressing it
        // again costs time and rarely pays. Small ones (a tiny file, too
        // short for zstd alone) compress well among others.
        let raw = sends[i].codec == crate::codec::Codec::Raw && sends[i].len >= RAW_OUT_FROM;
        if !groups.contains_key(&i) && similar[i].is_empty() && !raw {
            run.push((i, sends[i].len as u64));
            i += 1;
            continue;
        }
        split(&run, cap, &mut blocks);
        run.clear();
        i += groups.get(&i).map_or(1, |g| g.n);
    }
    split(&run, cap, &mut blocks);
    blocks
}

/// Cuts a run of consecutive sends into the fewest blocks of at most `cap`
/// bytes, all of about the same size: a run of 2.1 caps goes as three
/// blocks of 0.7, not two full ones and a scrap, so that the cores that
/// compress them in parallel finish together.
fn split(run: &[(usize, u64)], cap: u64, blocks: &mut Vec<(usize, PlanGroup)>) {
    let total: u64 = run.iter().map(|&(_, l)| l).sum();
    let target = total.div_ceil(total.div_ceil(cap).max(1));
    let mut open: Option<(usize, usize, u64)> = None;
    for &(i, len) in run {
        if let Some((start, n, out)) = open
            && (out >= target || out + len > cap || n == MAX_BLOCK_CHUNKS)
        {
            blocks.push((
                start,
                PlanGroup {
                    n,
                    bases: Vec::new(),
                },
            ));
            open = None;
        }
        let (start, n, out) = open.unwrap_or((i, 0, 0));
        open = Some((start, n + 1, out + len));
    }
    if let Some((start, n, _)) = open {
        blocks.push((
            start,
            PlanGroup {
                n,
                bases: Vec::new(),
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunker::ChunkId;
    use crate::store::ChunkRow;
    use crate::store::data::Location;

    fn entry(len: u32) -> ChunkEntry {
        ChunkEntry {
            rowid: ChunkRow(len as i64),
            id: ChunkId([0; 32]),
            codec: crate::codec::Codec::Zstd,
            len,
            loc: Location {
                file: 1,
                offset: 0,
                clen: len,
            },
        }
    }

    #[test]
    fn runs_of_whole_sends_are_cut_at_the_cap_and_around_groups_and_deltas() {
        let sends: Vec<ChunkEntry> = (0..10).map(|_| entry(100)).collect();
        let mut similar = vec![Vec::new(); 10];
        similar[6] = vec![entry(50)];
        let mut groups = HashMap::new();
        groups.insert(
            2,
            PlanGroup {
                n: 2,
                bases: vec![entry(7)],
            },
        );
        let mut got: Vec<(usize, usize)> = cut(&sends, &similar, &groups, 250)
            .into_iter()
            .map(|(s, g)| (s, g.n))
            .collect();
        got.sort();
        // 0-1 (before the group), 4-5 (before the delta), 7-8 then 9 (cap).
        assert_eq!(got, [(0, 2), (4, 2), (7, 2), (9, 1)]);
    }

    #[test]
    fn a_long_run_is_cut_into_blocks_of_about_the_same_size() {
        let sends: Vec<ChunkEntry> = (0..21).map(|_| entry(100)).collect();
        let similar = vec![Vec::new(); 21];
        let mut got: Vec<(usize, usize)> = cut(&sends, &similar, &HashMap::new(), 1000)
            .into_iter()
            .map(|(s, g)| (s, g.n))
            .collect();
        got.sort();
        // 2,100 bytes under a cap of 1,000: three blocks of 700, not
        // 1,000 + 1,000 + 100.
        assert_eq!(got, [(0, 7), (7, 7), (14, 7)]);
    }
}
