//! Solid blocks: which runs of a pack's chunks are compressed together.
//! Every run of consecutive sends that go whole (in no group, with no
//! similar chunk to go against) is cut, in pack-table order, into blocks
//! of at most a cap of bytes and [`MAX_BLOCK_CHUNKS`] chunks.

use std::collections::HashMap;

use super::plan::PlanGroup;
use crate::pack::format::MAX_BLOCK_CHUNKS;
use crate::store::ChunkEntry;

/// The blocks of a plan's `sends`, as groups without bases keyed by their
/// first send; `similar` and `groups` are the plan's.
pub(super) fn cut(
    sends: &[ChunkEntry],
    similar: &[Vec<ChunkEntry>],
    groups: &HashMap<usize, PlanGroup>,
    cap: u64,
) -> Vec<(usize, PlanGroup)> {
    let mut blocks = Vec::new();
    let mut close = |open: Option<(usize, usize, u64)>| {
        if let Some((start, n, _)) = open {
            let bases = Vec::new();
            blocks.push((start, PlanGroup { n, bases }));
        }
    };
    let mut open: Option<(usize, usize, u64)> = None;
    let mut i = 0;
    while i < sends.len() {
        let whole = !groups.contains_key(&i) && similar[i].is_empty();
        let len = sends[i].len as u64;
        match open {
            Some((start, n, out)) if whole && out + len <= cap && n < MAX_BLOCK_CHUNKS => {
                open = Some((start, n + 1, out + len));
            }
            _ => {
                close(open.take());
                open = whole.then_some((i, 1, len));
            }
        }
        i += groups.get(&i).map_or(1, |g| g.n);
    }
    close(open);
    blocks
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
}
