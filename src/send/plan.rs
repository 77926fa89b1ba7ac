//! Planning a pack from the index alone: which chunks go and in what
//! order, where each recipe piece points, and, for each chunk sent, what
//! the receiver will hold that it is encoded against. Bases are chosen in
//! three ways, tried in this order: the old version of the same file (a
//! group), the old tar headers at the same place in the stream, and the
//! chunks sharing the most super-features.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use crate::chunker::{self, ChunkId};
use crate::error::{Error, Result};
use crate::pack::recipe::{self, IndexedPiece, Src};
use crate::pack::{BaseRef, Header, Pieces, SnapshotRecord};
use crate::samepath::BaseFiles;
use crate::store::{ChunkEntry, ChunkRow, Piece, RecipeSummary, Snapshot, Store};

use super::PackOptions;
use super::walk::{FileAt, Place, Walk};

/// What a pack will hold, worked out from the index alone.
pub(super) struct Plan {
    pub header: Header,
    /// Chunks to send, in pack-table order.
    pub sends: Vec<ChunkEntry>,
    /// For each, chunks the receiver will hold that it likely resembles.
    pub similar: Vec<Vec<ChunkEntry>>,
    /// Runs of sends that go as one group record, or (without bases) as
    /// one solid block record, by first send index.
    pub groups: HashMap<usize, PlanGroup>,
    /// Row id to place in the pack table / the base table.
    pub pack_index: HashMap<ChunkRow, u64>,
    pub base_index: HashMap<ChunkRow, u64>,
    pub records: Vec<SnapshotRecord>,
    pub referenced: u64,
    pub skipped: u64,
    pub known: u64,
    pub logical: u64,
    pub receiver: Vec<ChunkRow>,
}

impl Plan {
    /// Sends in pack order as (first index, count): a group, or one send.
    pub fn items(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut i = 0;
        std::iter::from_fn(move || {
            if i >= self.sends.len() {
                return None;
            }
            let n = self.groups.get(&i).map_or(1, |g| g.n);
            let item = (i, n);
            i += n;
            Some(item)
        })
    }

    /// The bases of the group starting at send `i` (none when it is not one).
    pub fn group_bases(&self, i: usize) -> &[ChunkEntry] {
        self.groups.get(&i).map_or(&[], |g| &g.bases)
    }

    /// Chunks the receiver will hold, by their place in the pack or base table.
    pub fn refs(&self, chunks: &[ChunkEntry]) -> Vec<recipe::TableRef> {
        chunks
            .iter()
            .map(|b| match self.pack_index.get(&b.rowid) {
                Some(&index) => recipe::TableRef {
                    src: Src::Pack,
                    index,
                },
                None => recipe::TableRef {
                    src: Src::Base,
                    index: self.base_index[&b.rowid],
                },
            })
            .collect()
    }
}

/// Consecutive sends (new contents of one file) encoded as one frame
/// against the old version of the file.
pub(super) struct PlanGroup {
    /// How many sends, from the group's first.
    pub n: usize,
    /// The old file's chunks, in order.
    pub bases: Vec<ChunkEntry>,
}

/// Decoded bytes a group record carries at most when the sender builds it.
const GROUP_OUT: u64 = 4 << 20;

/// Plans a pack of `opts.snapshots` for a receiver holding `opts.bases`
/// (and `opts.have`).
pub(super) fn plan(store: &Store, opts: &PackOptions) -> Result<Plan> {
    if opts.snapshots.is_empty() {
        return Err(Error::Invalid("name at least one snapshot to pack".into()));
    }
    let snaps = opts
        .snapshots
        .iter()
        .map(|n| store.require(n))
        .collect::<Result<Vec<_>>>()?;
    let bases = opts
        .bases
        .iter()
        .map(|n| store.require(n))
        .collect::<Result<Vec<_>>>()?;
    own_base(&snaps, &bases)?;
    let mut planner = Planner::new(store, opts, &bases)?;
    let mut recipes = Vec::with_capacity(snaps.len());
    for s in &snaps {
        recipes.push(planner.walk(s)?);
    }
    planner.order_blocks()?;
    Ok(planner.finish(&snaps, &bases, recipes))
}

/// Refuses a snapshot named both to pack and as a base: the receiver
/// would already hold it, and the pack would carry nothing of it.
fn own_base(snaps: &[Snapshot], bases: &[Snapshot]) -> Result<()> {
    let is_base = |s: &Snapshot| bases.iter().any(|b| b.rowid == s.rowid);
    let Some(first) = snaps.iter().find(|s| is_base(s)) else {
        return Ok(());
    };
    let name = first.name.escape_debug();
    Err(Error::Invalid(if snaps.iter().all(is_base) {
        format!(
            "nothing is left to send: '{name}' is also a --base, so the receiver already has it (a snapshot cannot be its own base): pack a newer snapshot with --base '{name}'"
        )
    } else {
        format!(
            "'{name}' is both a snapshot to pack and a --base: a snapshot cannot be its own base; drop it from --base or from the snapshots to pack"
        )
    }))
}

/// The state of planning, gathered while the new snapshots are walked.
struct Planner<'a> {
    store: &'a Store,
    opts: &'a PackOptions,
    /// The old versions of the bases' files, by path (empty without deltas).
    old_files: BaseFiles,
    /// Each base's chunk table and recipe digest.
    summaries: Vec<RecipeSummary>,
    /// Row id to place in the receiver's chunk table (the bases' chunk
    /// tables, then `extra`), and the next free place.
    base_index: HashMap<ChunkRow, u64>,
    next_base: u64,
    /// Chunks the receiver holds beyond the bases', named in the header.
    extra: Vec<ChunkId>,
    /// The bases' chunk table in order: a new chunk that follows chunk X in
    /// the new stream most likely replaces what followed X in the old one.
    base_order: Vec<ChunkRow>,
    /// The last held chunk the walk passed (whole), if any.
    anchor: Option<ChunkRow>,
    sends: Vec<ChunkEntry>,
    similar: Vec<Vec<ChunkEntry>>,
    pack_index: HashMap<ChunkRow, u64>,
    groups: HashMap<usize, PlanGroup>,
    /// The group being gathered.
    open: Option<OpenGroup>,
    /// Every chunk the new snapshots reference.
    seen: HashSet<ChunkRow>,
    skipped: u64,
    known: u64,
    /// A group goes whole into one volume: volumes plan with the plain size
    /// of its chunks, so a group holds at most half a volume of new bytes.
    group_cap: u64,
    /// A full pack (no bases, no inventory) in full-size blocks sends no
    /// similarity deltas but for chunks the store keeps raw (which no
    /// block takes): its solid blocks find what a delta against an earlier
    /// chunk of the pack would, without cutting the runs short. Volumes
    /// too small for full blocks keep them (across volumes).
    blocks_suffice: bool,
}

/// A group being gathered while the new snapshot is walked.
struct OpenGroup {
    start: usize,
    n: usize,
    out: u64,
    /// Which new file (its recipe row) and which old file.
    file: u64,
    old: usize,
    /// The new file's bytes covered, and its size.
    from: u64,
    to: u64,
    size: u64,
}

impl<'a> Planner<'a> {
    /// The receiver holds the bases: their chunks are left out, and pieces
    /// name them by their index in the bases' chunk tables. One walk of
    /// each base's recipe gives its chunk table and (for deltas against the
    /// same file) the old versions of its files, by path.
    fn new(store: &'a Store, opts: &'a PackOptions, bases: &[Snapshot]) -> Result<Self> {
        let mut old_files = BaseFiles::default();
        let summaries = bases
            .iter()
            .map(|b| {
                if opts.no_deltas {
                    store.recipe_summary(b.rowid)
                } else {
                    old_files.load(store, b.rowid)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let mut base_index: HashMap<ChunkRow, u64> = HashMap::new();
        let mut next_base = 0u64;
        for sum in &summaries {
            for &row in &sum.order {
                base_index.entry(row).or_insert(next_base);
                next_base += 1;
            }
        }
        let base_order = summaries
            .iter()
            .flat_map(|s| s.order.iter().copied())
            .collect();
        Ok(Planner {
            store,
            opts,
            old_files,
            summaries,
            base_index,
            next_base,
            extra: Vec::new(),
            base_order,
            anchor: None,
            sends: Vec::new(),
            similar: Vec::new(),
            pack_index: HashMap::new(),
            groups: HashMap::new(),
            open: None,
            seen: HashSet::new(),
            skipped: 0,
            known: 0,
            group_cap: opts.volume_size.map_or(GROUP_OUT, |v| GROUP_OUT.min(v / 2)),
            blocks_suffice: bases.is_empty()
                && opts.have.is_none()
                && opts
                    .volume_size
                    .is_none_or(|v| v / 2 >= opts.level.block_bytes()),
        })
    }

    /// Walks one new snapshot's recipe; returns each piece and whether it
    /// takes its chunk whole.
    fn walk(&mut self, s: &Snapshot) -> Result<Vec<(Piece, bool)>> {
        let store = self.store;
        let files = if self.old_files.is_empty() {
            Vec::new()
        } else {
            store.files(s.rowid)?
        };
        let mut walk = Walk::new(&files, s.entries as usize);
        store.for_each_piece_batch(s.rowid, 4096, |batch| {
            for (p, c) in batch {
                let at = walk.step(p, c, &self.old_files);
                self.piece(c, at)?;
            }
            Ok(())
        })?;
        self.close_group();
        if walk.total != s.size {
            return Err(Error::BadStore {
                store: store.dir().to_path_buf(),
                msg: format!(
                    "the recipe of {} adds up to {} bytes, not {}: the index is damaged",
                    s.name, walk.total, s.size
                ),
            });
        }
        Ok(walk.pieces)
    }

    /// Decides what becomes of one piece's chunk: already seen, held by the
    /// receiver, or sent (in a group, or against the bases chosen for it).
    fn piece(&mut self, c: &ChunkEntry, at: Place) -> Result<()> {
        if !self.seen.insert(c.rowid) {
            if at.whole && self.base_index.contains_key(&c.rowid) {
                self.anchor = Some(c.rowid);
            }
            return Ok(());
        }
        let known_here = self.opts.have.as_ref().is_some_and(|h| h.contains(&c.id));
        if let Entry::Vacant(slot) = self.base_index.entry(c.rowid)
            && known_here
        {
            self.skipped += 1;
            self.known += 1;
            slot.insert(self.next_base);
            self.next_base += 1;
            self.extra.push(c.id);
        } else if self.base_index.contains_key(&c.rowid) {
            self.skipped += 1;
            if at.whole {
                self.anchor = Some(c.rowid);
            }
        } else if let Some(FileAt {
            file,
            at,
            size,
            old: Some(old),
        }) = at.file
        {
            self.same_path(c, file, at, size, old);
            self.send(c, Vec::new());
        } else {
            let mut bases = self.header_bases(at.header, c);
            if bases.is_empty()
                && !self.opts.no_deltas
                && (!self.blocks_suffice
                    || (c.codec == crate::codec::Codec::Raw
                        && c.len >= super::blocks::RAW_OUT_FROM))
                && c.len as usize >= crate::similarity::MIN_LEN
            {
                bases = self.similarity_bases(c)?;
            }
            self.send(c, bases);
        }
        Ok(())
    }

    /// Appends `c` to the pack table, to be encoded against `bases`.
    fn send(&mut self, c: &ChunkEntry, bases: Vec<ChunkEntry>) {
        self.similar.push(bases);
        self.pack_index.insert(c.rowid, self.sends.len() as u64);
        self.sends.push(*c);
    }

    /// Same-path groups: new contents of a file whose old version the
    /// receiver holds are gathered into a group against it. `at` is where
    /// `c` starts in the new file (recipe row `file`, `size` bytes), `old`
    /// the old file.
    fn same_path(&mut self, c: &ChunkEntry, file: u64, at: u64, size: u64, old: usize) {
        let len = c.len as u64;
        let next = self.sends.len();
        let cap = self.group_cap;
        let extend = self.open.as_ref().is_some_and(|g| {
            g.file == file
                && g.start + g.n == next
                && g.out + len <= cap
                && g.n < crate::pack::format::MAX_GROUP_CHUNKS
        });
        if let Some(g) = self.open.as_mut().filter(|_| extend) {
            g.n += 1;
            g.out += len;
            g.to = at + len;
            return;
        }
        self.close_group();
        self.open = Some(OpenGroup {
            start: next,
            n: 1,
            out: len,
            file,
            old,
            from: at,
            to: at + len,
            size,
        });
    }

    /// Ends the group being gathered; it stays a group when the old file
    /// has chunks around the part it covers.
    fn close_group(&mut self) {
        if let Some(g) = self.open.take() {
            let bases = self.old_files.window(g.old, g.from, g.to, g.size);
            if !bases.is_empty() {
                self.groups.insert(g.start, PlanGroup { n: g.n, bases });
            }
        }
    }

    /// Header deltas: a tar-header chunk goes against the old headers
    /// around `header_at`, where the bases' headers streams hold the
    /// headers it replaces (lined up by the old version of its first file).
    fn header_bases(&self, header_at: Option<u64>, c: &ChunkEntry) -> Vec<ChunkEntry> {
        header_at
            .map(|at| self.old_files.headers_around(at, c.len))
            .unwrap_or_default()
    }

    /// Similarity: the held chunk sharing the most super-features with `c`,
    /// and up to three chunks that followed the last held chunk in the old
    /// stream. Bases known only from the inventory or ledger join the
    /// header's extra list.
    fn similarity_bases(&mut self, c: &ChunkEntry) -> Result<Vec<ChunkEntry>> {
        let mut bases: Vec<ChunkEntry> = self.most_similar(c)?.into_iter().collect();
        let next = self
            .anchor
            .and_then(|a| self.base_index.get(&a))
            .map(|&i| i as usize + 1);
        if let Some(i) = next {
            for &row in self.base_order.iter().skip(i).take(3) {
                if bases.len() < 4
                    && !bases.iter().any(|b| b.rowid == row)
                    && let Some(e) = self.store.chunk_by_row(row)?
                {
                    bases.push(e);
                }
            }
        }
        for b in &bases {
            if !self.base_index.contains_key(&b.rowid) && !self.pack_index.contains_key(&b.rowid) {
                self.base_index.insert(b.rowid, self.next_base);
                self.next_base += 1;
                self.extra.push(b.id);
            }
        }
        self.anchor = bases
            .first()
            .map(|b| b.rowid)
            .filter(|r| self.base_index.contains_key(r))
            .or_else(|| next.and_then(|i| self.base_order.get(i).copied()));
        Ok(bases)
    }

    /// The stored chunk that most resembles `c` (sharing the most
    /// super-features) among those the receiver will hold when `c` arrives.
    fn most_similar(&self, c: &ChunkEntry) -> Result<Option<ChunkEntry>> {
        let store = self.store;
        let sfs = store.features(c.rowid)?;
        if sfs.is_empty() {
            return Ok(None);
        }
        let mut votes: HashMap<ChunkRow, u32> = HashMap::new();
        for sf in sfs {
            for row in store.chunks_with_feature(sf)? {
                if row != c.rowid {
                    *votes.entry(row).or_default() += 1;
                }
            }
        }
        let mut candidates: Vec<(ChunkRow, u32)> = votes.into_iter().collect();
        // Most shared features first; among equals, the oldest chunk.
        candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let have = self.opts.have.as_ref();
        for (row, _) in candidates {
            // What the receiver holds, or what this pack sends before `c`
            // (in a volume set, perhaps in another volume: the delta then
            // waits there for it).
            let held = self.base_index.contains_key(&row) || self.pack_index.contains_key(&row);
            if held {
                return store.chunk_by_row(row);
            }
            if let Some(have) = have
                && let Some(e) = store.chunk_by_row(row)?
                && have.contains(&e.id)
            {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// In a full pack, chunks alike are brought together before the runs
    /// are cut into blocks (see [`super::blocks::order`]); the recipes name
    /// chunks by their place in the table, so they follow.
    fn order_blocks(&mut self) -> Result<()> {
        if !self.blocks_suffice {
            return Ok(());
        }
        let store = self.store;
        let perm = super::blocks::order(&self.sends, &self.similar, &self.groups, |row| {
            store.features(row)
        })?;
        let sends: Vec<ChunkEntry> = perm.iter().map(|&i| self.sends[i]).collect();
        let similar = perm.iter().map(|&i| std::mem::take(&mut self.similar[i]));
        self.similar = similar.collect();
        for (k, c) in sends.iter().enumerate() {
            self.pack_index.insert(c.rowid, k as u64);
        }
        self.sends = sends;
        Ok(())
    }

    /// The plan: the snapshot records with their recipes indexed into the
    /// pack and base tables, the header, and what the receiver will hold.
    fn finish(
        mut self,
        snaps: &[Snapshot],
        bases: &[Snapshot],
        recipes: Vec<Vec<(Piece, bool)>>,
    ) -> Plan {
        // Chunks of an old file that the new snapshots still use unchanged
        // are rarely what its changed chunks resemble: they leave the prefix
        // (a group may end up with none, and is then one plain frame).
        for g in self.groups.values_mut() {
            g.bases.retain(|b| !self.seen.contains(&b.rowid));
        }
        // A group left with no bases is whole chunks: it joins the blocks.
        self.groups.retain(|_, g| !g.bases.is_empty());
        let cap = self.opts.level.block_bytes();
        let cap = self.opts.volume_size.map_or(cap, |v| cap.min(v / 2));
        let blocks = super::blocks::cut(&self.sends, &self.similar, &self.groups, cap);
        self.groups.extend(blocks);
        let records = snaps
            .iter()
            .zip(recipes)
            .map(|(s, pieces)| self.record(s, pieces))
            .collect();
        // After this pack the receiver holds the bases' chunks and these.
        let mut receiver: Vec<ChunkRow> = self.seen.iter().copied().collect();
        for sum in &self.summaries {
            receiver.extend(sum.order.iter().filter(|r| !self.seen.contains(r)));
        }
        receiver.sort_unstable();
        receiver.dedup();
        let header = Header {
            algorithm: chunker::ALGORITHM.to_string(),
            params: self.store.params(),
            created: crate::store::now(),
            writer: format!("ferry {}", env!("CARGO_PKG_VERSION")),
            bases: bases
                .iter()
                .zip(&self.summaries)
                .map(|(b, sum)| BaseRef {
                    name: b.name.clone(),
                    size: b.size,
                    hash: b.blake3,
                    recipe: sum.digest,
                })
                .collect(),
            snapshots: snaps.iter().map(|s| s.name.clone()).collect(),
            volume: None,
            signer: self
                .opts
                .sign
                .as_ref()
                .map(|k| k.verifying_key().to_bytes()),
            extra: self.extra,
            encoders: encoders(snaps),
        };
        Plan {
            header,
            sends: self.sends,
            similar: self.similar,
            groups: self.groups,
            pack_index: self.pack_index,
            base_index: self.base_index,
            records,
            referenced: self.seen.len() as u64,
            skipped: self.skipped,
            known: self.known,
            logical: snaps.iter().map(|s| s.size).sum(),
            receiver,
        }
    }

    /// A snapshot's record, its pieces naming chunks by table place.
    fn record(&self, s: &Snapshot, pieces: Vec<(Piece, bool)>) -> SnapshotRecord {
        let indexed: Vec<IndexedPiece> = pieces
            .into_iter()
            .map(|(p, whole)| {
                let (src, index) = match self.pack_index.get(&p.chunk) {
                    Some(&index) => (Src::Pack, index),
                    None => (Src::Base, self.base_index[&p.chunk]),
                };
                IndexedPiece {
                    src,
                    index,
                    slice: (!whole).then_some((p.off, p.len)),
                    op: p.op,
                    out: p.out,
                }
            })
            .collect();
        SnapshotRecord {
            name: s.name.clone(),
            size: s.size,
            hash: s.blake3,
            added_at: s.added_at,
            meta: s.meta.to_json(),
            pieces: Pieces::Compact {
                count: indexed.len() as u64,
                encoding: crate::pack::format::RECIPE_COMPACT_REL,
                data: recipe::encode(&indexed),
            },
        }
    }
}

/// The compression encoders the layers of `snaps` are re-created with.
fn encoders(snaps: &[Snapshot]) -> Vec<String> {
    let mut names: Vec<String> = snaps
        .iter()
        .filter_map(|s| s.meta.split.as_ref())
        .flat_map(|split| split.gzip_encoders.names())
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}
