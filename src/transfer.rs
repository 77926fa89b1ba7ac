//! Moving snapshots between stores: [`write_pack`] selects the chunks a
//! receiver lacks and writes them with the recipes into a pack;
//! [`unpack`] verifies a pack and imports it as one all-or-nothing write.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;

use rayon::prelude::*;
use rusqlite::OptionalExtension;
use serde::Serialize;

use crate::chunker::{self, ChunkId};
use crate::codec;
use crate::error::{Error, Result};
use crate::pack::recipe::{self, IndexedPiece, Src};
use crate::pack::{
    BaseRef, Header, PackReader, PackTotals, PackWriter, PieceRef, Pieces, Record, SnapshotRecord,
    VolumeInfo, chunk_record_len, encode_snapshot, overhead,
};
use crate::progress::Progress;
use crate::store::{ChunkEntry, NewSnapshot, Op, Piece, Store};

/// What goes into a pack.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// Snapshots to carry.
    pub snapshots: Vec<String>,
    /// Snapshots the receiver already holds.
    pub bases: Vec<String>,
    /// Chunks the receiver is known to hold besides the bases (from its
    /// inventory or the peer ledger): left out, and named in the header.
    pub have: Option<HashSet<ChunkId>>,
    /// Split the pack into self-contained volumes of at most this many bytes.
    pub volume_size: Option<u64>,
    /// Sign the pack (each volume) with this key.
    pub sign: Option<ed25519_dalek::SigningKey>,
    /// Send every chunk whole, never as a similarity delta.
    pub no_deltas: bool,
}

/// What [`write_pack`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct PackReport {
    /// Snapshots carried.
    pub snapshots: Vec<String>,
    /// Bases assumed.
    pub bases: Vec<String>,
    /// Sum of the carried snapshots' sizes.
    pub logical_bytes: u64,
    /// Distinct chunks the snapshots reference.
    pub referenced_chunks: u64,
    /// Of those, chunks left out because the receiver holds them.
    pub skipped_chunks: u64,
    /// Of those, chunks known from an inventory or the peer ledger.
    pub known_chunks: u64,
    /// Volumes written (1 without --volume-size).
    pub volumes: u32,
    /// Chunks (row ids here) the receiver holds once it has this pack
    /// (what the peer ledger records); not serialized.
    #[serde(skip)]
    pub receiver_chunks: Vec<i64>,
    /// Ids of the chunks carried, in pack-table order; not serialized.
    #[serde(skip)]
    pub sent: Vec<ChunkId>,
    /// Counts and sizes of what was written, all volumes together.
    #[serde(flatten)]
    pub totals: PackTotals,
}

fn io_out(e: std::io::Error) -> Error {
    Error::io("writing pack", e)
}

/// What a pack will hold, worked out from the index alone.
struct Plan {
    header: Header,
    /// Chunks to send, in pack-table order.
    sends: Vec<ChunkEntry>,
    /// For each, chunks the receiver will hold that it likely resembles.
    similar: Vec<Vec<ChunkEntry>>,
    /// Runs of sends that go as one group record, by first send index.
    groups: HashMap<usize, PlanGroup>,
    /// Row id to place in the pack table / the base table.
    pack_index: HashMap<i64, u64>,
    base_index: HashMap<i64, u64>,
    records: Vec<SnapshotRecord>,
    referenced: u64,
    skipped: u64,
    known: u64,
    logical: u64,
    receiver: Vec<i64>,
}

/// How one send, or one group of sends, goes into the pack.
enum Out {
    Stored,
    Squeezed(Vec<u8>),
    Delta(Vec<u8>),
    Group {
        lens: Vec<u32>,
        digest: [u8; 32],
        refs: Vec<recipe::TableRef>,
        frame: Vec<u8>,
    },
}

impl Plan {
    /// Sends in pack order as (first index, count): a group, or one send.
    fn items(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
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
    fn group_bases(&self, i: usize) -> &[ChunkEntry] {
        self.groups.get(&i).map_or(&[], |g| &g.bases)
    }

    /// Chunks the receiver will hold, by their place in the pack or base table.
    fn refs(&self, chunks: &[ChunkEntry]) -> Vec<recipe::TableRef> {
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
struct PlanGroup {
    /// How many sends, from the group's first.
    n: usize,
    /// The old file's chunks, in order.
    bases: Vec<ChunkEntry>,
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

/// Decoded bytes a group record carries at most when the sender builds it.
const GROUP_OUT: u64 = 4 << 20;

/// The file the walk of a new snapshot is in.
struct InFile {
    seq: u64,
    size: u64,
    at: u64,
    old: Option<usize>,
}

fn plan(store: &Store, opts: &PackOptions) -> Result<Plan> {
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
    // The receiver holds the bases: their chunks are left out, and pieces
    // name them by their index in the bases' chunk tables.
    // One walk of each base's recipe gives its chunk table and (for deltas
    // against the same file) the old versions of its files, by path.
    let mut old_files = crate::samepath::BaseFiles::default();
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
    let mut groups: HashMap<usize, PlanGroup> = HashMap::new();
    let mut open: Option<OpenGroup> = None;
    let close = |g: OpenGroup, groups: &mut HashMap<usize, PlanGroup>| {
        let bases = old_files.window(g.old, g.from, g.to, g.size);
        if !bases.is_empty() {
            groups.insert(g.start, PlanGroup { n: g.n, bases });
        }
    };
    let mut base_index: HashMap<i64, u64> = HashMap::new();
    let mut n = 0u64;
    for sum in &summaries {
        for &row in &sum.order {
            base_index.entry(row).or_insert(n);
            n += 1;
        }
    }
    let mut extra: Vec<ChunkId> = Vec::new();
    let mut sends: Vec<ChunkEntry> = Vec::new();
    let mut pack_index: HashMap<i64, u64> = HashMap::new();
    let mut seen: HashSet<i64> = HashSet::new();
    let (mut skipped, mut known) = (0u64, 0u64);
    // Chunks a delta may use as its base: what the receiver holds, and
    // (outside volumes, which may arrive in any order) what this pack
    // sends before it.
    let intra = opts.volume_size.is_none();
    // A group goes whole into one volume: volumes plan with the plain size
    // of its chunks, so a group holds at most half a volume of new bytes.
    let group_cap = opts.volume_size.map_or(GROUP_OUT, |v| GROUP_OUT.min(v / 2));
    let mut similar: Vec<Vec<ChunkEntry>> = Vec::new();
    // The bases' chunk table in order: a new chunk that follows chunk X in
    // the new stream most likely replaces what followed X in the old one.
    let base_order: Vec<i64> = summaries
        .iter()
        .flat_map(|s| s.order.iter().copied())
        .collect();
    let mut anchor: Option<i64> = None;
    let mut recipes = Vec::with_capacity(snaps.len());
    for s in &snaps {
        // Each piece and whether it takes its chunk whole.
        let mut pieces: Vec<(Piece, bool)> = Vec::with_capacity(s.entries as usize);
        let mut total = 0u64;
        let files = if old_files.is_empty() {
            Vec::new()
        } else {
            store.files(s.rowid)?
        };
        let mut next_file = 0usize;
        let mut occurrences: HashMap<&[u8], usize> = HashMap::new();
        let mut in_file: Option<InFile> = None;
        let mut seq = 0u64;
        // Where each headers-stream chunk starts in this snapshot's stream.
        let mut header_seen: HashSet<i64> = HashSet::new();
        let mut header_end = 0u64;
        store.for_each_piece_batch(s.rowid, 4096, |batch| {
            for (p, c) in batch {
                let whole = p.off == 0 && p.len == c.len;
                pieces.push((*p, whole));
                total += p.output();
                if next_file < files.len() && files[next_file].seq == seq {
                    let f = &files[next_file];
                    let k = occurrences.entry(&f.path[..]).or_default();
                    in_file = Some(InFile {
                        seq,
                        size: f.size,
                        at: 0,
                        old: old_files.find(&f.path, *k, f.size),
                    });
                    *k += 1;
                    next_file += 1;
                }
                seq += 1;
                // Where this piece sits in the current file's contents.
                let file_at = match in_file.as_mut() {
                    Some(f) if p.op != Op::Part => {
                        if !whole {
                            in_file = None;
                            None
                        } else {
                            let at = f.at;
                            f.at += p.len as u64;
                            let here = (f.seq, at, f.size, f.old);
                            if f.at >= f.size {
                                in_file = None;
                            }
                            Some(here)
                        }
                    }
                    _ => None,
                };
                let header_at =
                    (p.op != Op::Part && !whole && header_seen.insert(c.rowid)).then(|| {
                        header_end += c.len as u64;
                        header_end - c.len as u64
                    });
                if !seen.insert(c.rowid) {
                    if whole && base_index.contains_key(&c.rowid) {
                        anchor = Some(c.rowid);
                    }
                    continue;
                }
                let known_here = opts.have.as_ref().is_some_and(|h| h.contains(&c.id));
                if let std::collections::hash_map::Entry::Vacant(slot) = base_index.entry(c.rowid)
                    && known_here
                {
                    skipped += 1;
                    known += 1;
                    slot.insert(n);
                    n += 1;
                    extra.push(c.id);
                } else if base_index.contains_key(&c.rowid) {
                    skipped += 1;
                    if whole {
                        anchor = Some(c.rowid);
                    }
                } else if let Some((file, at, size, Some(old))) = file_at {
                    // New contents of a file whose old version the
                    // receiver holds: gathered into a group against it.
                    let len = c.len as u64;
                    let extend = open.as_ref().is_some_and(|g| {
                        g.file == file
                            && g.start + g.n == sends.len()
                            && g.out + len <= group_cap
                            && g.n < crate::pack::format::MAX_GROUP_CHUNKS
                    });
                    if extend {
                        let g = open.as_mut().expect("open group");
                        g.n += 1;
                        g.out += len;
                        g.to = at + len;
                    } else {
                        if let Some(g) = open.take() {
                            close(g, &mut groups);
                        }
                        open = Some(OpenGroup {
                            start: sends.len(),
                            n: 1,
                            out: len,
                            file,
                            old,
                            from: at,
                            to: at + len,
                            size,
                        });
                    }
                    similar.push(Vec::new());
                    pack_index.insert(c.rowid, sends.len() as u64);
                    sends.push(*c);
                } else {
                    let mut bases: Vec<ChunkEntry> = Vec::new();
                    let old_headers = header_at
                        .map(|at| old_files.headers_around(at, c.len))
                        .unwrap_or_default();
                    if !old_headers.is_empty() {
                        // Tar headers against the old headers at the same
                        // place in the stream.
                        bases = old_headers;
                    } else if !opts.no_deltas && c.len as usize >= crate::similarity::MIN_LEN {
                        let best = find_similar(
                            store,
                            c,
                            &base_index,
                            &pack_index,
                            intra,
                            opts.have.as_ref(),
                        )?;
                        bases.extend(best);
                        // What followed the last held chunk in the old stream.
                        let next = anchor
                            .and_then(|a| base_index.get(&a))
                            .map(|&i| i as usize + 1);
                        if let Some(i) = next {
                            for &row in base_order.iter().skip(i).take(3) {
                                if bases.len() < 4
                                    && !bases.iter().any(|b| b.rowid == row)
                                    && let Some(e) = store.chunk_by_row(row)?
                                {
                                    bases.push(e);
                                }
                            }
                        }
                        // A base known from the inventory or ledger only
                        // joins the header's extra list.
                        for b in &bases {
                            if !base_index.contains_key(&b.rowid)
                                && !pack_index.contains_key(&b.rowid)
                            {
                                base_index.insert(b.rowid, n);
                                n += 1;
                                extra.push(b.id);
                            }
                        }
                        anchor = bases
                            .first()
                            .map(|b| b.rowid)
                            .filter(|r| base_index.contains_key(r))
                            .or_else(|| next.and_then(|i| base_order.get(i).copied()));
                    }
                    similar.push(bases);
                    pack_index.insert(c.rowid, sends.len() as u64);
                    sends.push(*c);
                }
            }
            Ok(())
        })?;
        if let Some(g) = open.take() {
            close(g, &mut groups);
        }
        if total != s.size {
            return Err(Error::BadStore {
                store: store.dir().to_path_buf(),
                msg: format!(
                    "the recipe of {} adds up to {total} bytes, not {}: the index is damaged",
                    s.name, s.size
                ),
            });
        }
        recipes.push(pieces);
    }
    // Chunks of an old file that the new snapshots still use unchanged are
    // rarely what its changed chunks resemble: they leave the prefix (a
    // group may end up with none, and is then one plain frame).
    for g in groups.values_mut() {
        g.bases.retain(|b| !seen.contains(&b.rowid));
    }
    let records = snaps
        .iter()
        .zip(recipes)
        .map(|(s, pieces)| {
            let indexed: Vec<IndexedPiece> = pieces
                .into_iter()
                .map(|(p, whole)| {
                    let (src, index) = match pack_index.get(&p.chunk) {
                        Some(&index) => (Src::Pack, index),
                        None => (Src::Base, base_index[&p.chunk]),
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
                hash: crate::unhex32(&s.blake3).expect("stored hash"),
                added_at: s.added_at,
                meta: s.meta.to_string(),
                pieces: Pieces::Compact {
                    count: indexed.len() as u64,
                    encoding: crate::pack::format::RECIPE_COMPACT_REL,
                    data: recipe::encode(&indexed),
                },
            }
        })
        .collect();
    // After this pack the receiver holds the bases' chunks and these.
    let mut receiver: Vec<i64> = seen.iter().copied().collect();
    for sum in &summaries {
        receiver.extend(sum.order.iter().filter(|r| !seen.contains(r)));
    }
    receiver.sort_unstable();
    receiver.dedup();
    let header = Header {
        algorithm: chunker::ALGORITHM.to_string(),
        params: store.params(),
        created: crate::store::now(),
        writer: format!("ferry {}", env!("CARGO_PKG_VERSION")),
        bases: bases
            .iter()
            .zip(&summaries)
            .map(|(b, sum)| BaseRef {
                name: b.name.clone(),
                size: b.size,
                hash: crate::unhex32(&b.blake3).expect("stored hash"),
                recipe: sum.digest,
            })
            .collect(),
        snapshots: snaps.iter().map(|s| s.name.clone()).collect(),
        volume: None,
        signer: opts.sign.as_ref().map(|k| k.verifying_key().to_bytes()),
        extra,
    };
    Ok(Plan {
        header,
        sends,
        similar,
        groups,
        pack_index,
        base_index,
        records,
        referenced: seen.len() as u64,
        skipped,
        known,
        logical: snaps.iter().map(|s| s.size).sum(),
        receiver,
    })
}

/// The stored chunk that most resembles `c` (sharing the most
/// super-features) among those the receiver will hold when `c` arrives.
fn find_similar(
    store: &Store,
    c: &ChunkEntry,
    base_index: &HashMap<i64, u64>,
    sent: &HashMap<i64, u64>,
    intra: bool,
    have: Option<&HashSet<ChunkId>>,
) -> Result<Option<ChunkEntry>> {
    let sfs = store.features(c.rowid)?;
    if sfs.is_empty() {
        return Ok(None);
    }
    let mut votes: HashMap<i64, u32> = HashMap::new();
    for sf in sfs {
        for row in store.chunks_with_feature(sf)? {
            if row != c.rowid {
                *votes.entry(row).or_default() += 1;
            }
        }
    }
    let mut candidates: Vec<(i64, u32)> = votes.into_iter().collect();
    // Most shared features first; among equals, the oldest chunk.
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (row, _) in candidates {
        let held = base_index.contains_key(&row) || (intra && sent.contains_key(&row));
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

/// Parses a volume size: a number of bytes with an optional K, M, G or T
/// suffix (powers of 1024), or `fat32` (4 GiB - 1, FAT32's largest file).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("fat32") {
        return Ok((4 << 30) - 1);
    }
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => 0,
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .filter(|_| mult > 0)
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "'{text}' is not a size: give bytes, or a number with K, M, G or T (1024-based), or 'fat32'"
            ))
        })
}

/// Writes a pack of `opts.snapshots` holding only chunks the receiver
/// lacks (see [`PackOptions`]). Memory is bounded by the batch size plus
/// the recipes' pieces. With `opts.volume_size`, see [`write_volumes`].
pub fn write_pack<W: Write>(
    store: &Store,
    opts: &PackOptions,
    out: W,
    progress: &dyn Progress,
) -> Result<(W, PackReport)> {
    let mut out = Some(out);
    let opts = PackOptions {
        volume_size: None,
        ..opts.clone()
    };
    let (mut outs, report) = write_volumes(
        store,
        &opts,
        &mut |_, _| Ok(out.take().expect("one output")),
        progress,
    )?;
    Ok((outs.pop().expect("one pack"), report))
}

/// Like [`write_pack`], split into volumes of at most `opts.volume_size`
/// bytes (one volume without it): `open(index, count)` gives the output of
/// each volume, numbered from 1. Each volume is a complete pack: header,
/// its share of the chunks, the snapshot records in the last one, trailer
/// (and signature).
pub fn write_volumes<W: Write>(
    store: &Store,
    opts: &PackOptions,
    open: &mut dyn FnMut(u32, u32) -> Result<W>,
    progress: &dyn Progress,
) -> Result<(Vec<W>, PackReport)> {
    // One consistent view of the index for the whole pack.
    let _view = store.read_view()?;
    let plan = plan(store, opts)?;
    let signed = opts.sign.is_some();
    // Which chunks go in which volume.
    let snapshot_bytes: u64 = plan
        .records
        .iter()
        .map(|r| encode_snapshot(r).map(|e| 5 + e.len() as u64))
        .sum::<std::io::Result<u64>>()
        .map_err(io_out)?;
    let mut cuts: Vec<usize> = vec![0]; // first send index of each volume
    if let Some(limit) = opts.volume_size {
        let mut header = plan.header.clone();
        header.volume = Some(VolumeInfo {
            set: [0; 16],
            index: 1,
            count: 1,
            first: 0,
            chunks: 0,
        });
        let base = overhead(&header, signed).map_err(io_out)?;
        let too_small = |need: u64| {
            Error::Invalid(format!(
                "volume size {limit} is too small: one volume needs at least {need} bytes here; give a larger --volume-size"
            ))
        };
        let mut used = base;
        let mut in_volume = 0u64;
        // A group is never split across volumes: it goes as one record, or
        // as plain records that are never larger.
        for (i, n) in plan.items() {
            let rec: u64 = plan.sends[i..i + n]
                .iter()
                .map(|c| chunk_record_len(c.loc.clen))
                .sum();
            if base + rec > limit {
                return Err(too_small(base + rec));
            }
            if used + rec > limit {
                cuts.push(i);
                used = base;
                in_volume = 0;
            }
            used += rec;
            in_volume += 1;
        }
        if used + snapshot_bytes > limit {
            if base + snapshot_bytes > limit {
                return Err(too_small(base + snapshot_bytes));
            }
            if in_volume > 0 {
                cuts.push(plan.sends.len());
            }
        }
    }
    let count = cuts.len() as u32;
    let set: [u8; 16] = {
        let mut h = blake3::Hasher::new();
        h.update(&std::process::id().to_le_bytes());
        h.update(&format!("{:?}", std::time::SystemTime::now()).into_bytes());
        for r in &plan.records {
            h.update(&r.hash);
        }
        h.finalize().as_bytes()[..16].try_into().unwrap()
    };
    progress.start("packing", Some(plan.logical));
    let squeeze = !opts.no_deltas && !plan.base_index.is_empty();
    let mut reader = store.data_reader();
    let store_dir = store.dir().to_path_buf();
    let mut totals = PackTotals::default();
    let mut outs = Vec::with_capacity(cuts.len());
    for (v, &start) in cuts.iter().enumerate() {
        let end = cuts.get(v + 1).copied().unwrap_or(plan.sends.len());
        let mut header = plan.header.clone();
        if opts.volume_size.is_some() {
            header.volume = Some(VolumeInfo {
                set,
                index: v as u32 + 1,
                count,
                first: start as u64,
                chunks: (end - start) as u64,
            });
        }
        let out = open(v as u32 + 1, count)?;
        let mut w = PackWriter::new(out, &header).map_err(io_out)?;
        // Items (a send, or a group of sends) in batches encoded in parallel.
        let items: Vec<(usize, usize)> = plan
            .items()
            .filter(|&(i, _)| i >= start && i < end)
            .collect();
        let mut batches: Vec<&[(usize, usize)]> = Vec::new();
        let (mut from, mut chunks, mut bytes) = (0usize, 0usize, 0u64);
        for (k, &(i, n)) in items.iter().enumerate() {
            chunks += n;
            bytes += plan.sends[i..i + n]
                .iter()
                .map(|c| c.len as u64)
                .sum::<u64>();
            if chunks >= 1024 || bytes >= 64 << 20 || k + 1 == items.len() {
                batches.push(&items[from..=k]);
                from = k + 1;
                chunks = 0;
                bytes = 0;
            }
        }
        for batch in batches {
            for &(i, n) in batch {
                for c in &plan.sends[i..i + n] {
                    reader.ensure(c.loc)?;
                }
                for b in plan.similar[i].iter().chain(plan.group_bases(i)) {
                    reader.ensure(b.loc)?;
                }
            }
            // Check every chunk against its id before it leaves (in
            // parallel): a damaged store is caught here, not after the
            // air gap. Chunks with a similar base are delta-encoded against
            // it, and kept as deltas when that is clearly smaller; a group
            // is kept when its record is smaller than its chunks' records.
            let reader_ref = &reader;
            let damaged = |c: &ChunkEntry| Error::BadStore {
                store: store_dir.clone(),
                msg: format!(
                    "chunk {} in data file {:08}.dat is damaged, so it cannot be packed: run 'ferry verify --full' to see which snapshots it breaks",
                    crate::hex(&c.id),
                    c.loc.file,
                ),
            };
            let decode = |c: &ChunkEntry| -> Result<Vec<u8>> {
                let payload = reader_ref.get(&c.id, c.loc)?;
                codec::decode(c.codec, payload, c.len as usize)
                    .ok()
                    .filter(|d| blake3::hash(d).as_bytes() == &c.id)
                    .ok_or_else(|| damaged(c))
            };
            let single = |c: &ChunkEntry, bases: &[ChunkEntry]| -> Result<Out> {
                let data = decode(c)?;
                let clen = c.loc.clen as usize;
                if !bases.is_empty() {
                    let mut base = Vec::new();
                    for b in bases {
                        base.extend_from_slice(&decode(b)?);
                    }
                    let delta = crate::similarity::encode(&base, &data);
                    if delta.len() + 31 < clen && delta.len() < clen / 10 * 9 {
                        return Ok(Out::Delta(delta));
                    }
                }
                // A delta pack is small: what goes whole is worth a
                // stronger zstd level than the store's.
                if squeeze && c.codec == codec::Codec::Zstd {
                    let tight = crate::similarity::squeeze(&data);
                    if tight.len() < clen {
                        return Ok(Out::Squeezed(tight));
                    }
                }
                Ok(Out::Stored)
            };
            // Costliest items first, one task each, so no core idles at
            // the end of the batch behind one large group.
            let cost = |&(i, n): &(usize, usize)| -> u64 {
                let own: u64 = plan.sends[i..i + n].iter().map(|c| c.len as u64).sum();
                let base: u64 = plan.similar[i]
                    .iter()
                    .chain(plan.group_bases(i))
                    .map(|c| c.len as u64)
                    .sum();
                own + base
            };
            let mut order: Vec<usize> = (0..batch.len()).collect();
            order.sort_by_key(|&k| std::cmp::Reverse(cost(&batch[k])));
            let encode_item = |(i, n): (usize, usize)| -> Result<Vec<Out>> {
                let members = &plan.sends[i..i + n];
                let Some(g) = plan.groups.get(&i) else {
                    return Ok(vec![single(&members[0], &plan.similar[i])?]);
                };
                let mut data = Vec::new();
                for c in members {
                    data.extend_from_slice(&decode(c)?);
                }
                let mut base = Vec::new();
                for b in &g.bases {
                    base.extend_from_slice(&decode(b)?);
                }
                let frame = crate::similarity::encode_group(&base, &data);
                let lens: Vec<u32> = members.iter().map(|c| c.len).collect();
                let refs = plan.refs(&g.bases);
                let digest = *blake3::hash(&data).as_bytes();
                let record = crate::pack::group_record_len(&lens, &refs, frame.len());
                let plain: u64 = members.iter().map(|c| chunk_record_len(c.loc.clen)).sum();
                if record < plain {
                    return Ok(vec![Out::Group {
                        lens,
                        digest,
                        refs,
                        frame,
                    }]);
                }
                members.iter().map(|c| single(c, &[])).collect()
            };
            let encoded: Vec<(usize, Vec<Out>)> = order
                .par_iter()
                .with_max_len(1)
                .map(|&k| encode_item(batch[k]).map(|outs| (k, outs)))
                .collect::<Result<_>>()?;
            let mut outs: Vec<Vec<Out>> = (0..batch.len()).map(|_| Vec::new()).collect();
            for (k, o) in encoded {
                outs[k] = o;
            }
            for (&(i, n), outs) in batch.iter().zip(outs) {
                let members = &plan.sends[i..i + n];
                if let [Out::Group { .. }] = &outs[..] {
                    let Some(Out::Group {
                        lens,
                        digest,
                        refs,
                        frame,
                    }) = outs.into_iter().next()
                    else {
                        unreachable!()
                    };
                    w.group(&lens, &digest, &refs, &frame).map_err(io_out)?;
                    progress.advance(lens.iter().map(|&l| l as u64).sum());
                    continue;
                }
                for (c, out) in members.iter().zip(outs) {
                    match out {
                        Out::Delta(delta) => {
                            w.delta(&c.id, c.len, &plan.refs(&plan.similar[i]), &delta)
                        }
                        Out::Squeezed(payload) => {
                            w.chunk(&c.id, codec::Codec::Zstd, c.len, &payload)
                        }
                        Out::Stored => w.chunk(&c.id, c.codec, c.len, reader.get(&c.id, c.loc)?),
                        Out::Group { .. } => unreachable!("a group is written whole"),
                    }
                    .map_err(io_out)?;
                    progress.advance(c.len as u64);
                }
            }
            reader.release();
        }
        if v + 1 == cuts.len() {
            for r in &plan.records {
                w.snapshot(r).map_err(io_out)?;
            }
        }
        let (out, t) = match &opts.sign {
            Some(key) => w.finish_signed(key),
            None => w.finish(),
        }
        .map_err(io_out)?;
        if let Some(limit) = opts.volume_size {
            assert!(t.pack_bytes <= limit, "volume of {} bytes", t.pack_bytes);
        }
        totals.chunks += t.chunks;
        totals.snapshots += t.snapshots;
        totals.chunk_bytes += t.chunk_bytes;
        totals.raw_bytes += t.raw_bytes;
        totals.pack_bytes += t.pack_bytes;
        totals.delta_chunks += t.delta_chunks;
        totals.delta_bytes += t.delta_bytes;
        totals.groups += t.groups;
        outs.push(out);
    }
    progress.finish();
    Ok((
        outs,
        PackReport {
            snapshots: opts.snapshots.clone(),
            bases: opts.bases.clone(),
            logical_bytes: plan.logical,
            referenced_chunks: plan.referenced,
            skipped_chunks: plan.skipped,
            known_chunks: plan.known,
            volumes: count,
            receiver_chunks: plan.receiver,
            sent: plan.sends.iter().map(|c| c.id).collect(),
            totals,
        },
    ))
}

/// What [`unpack`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnpackReport {
    /// Chunk records read.
    pub chunks: u64,
    /// Chunks stored (the rest were already there).
    pub new_chunks: u64,
    /// Encoded bytes stored.
    pub new_bytes: u64,
    /// Snapshots that became visible.
    pub added: Vec<String>,
    /// Snapshots the store already had (unpacking again is a no-op).
    pub present: Vec<String>,
    /// Bytes of the pack.
    pub pack_bytes: u64,
    /// Chunks that arrived as similarity deltas and were rebuilt here.
    pub delta_chunks: u64,
    /// Bytes of the pack that carried them (delta frames).
    pub delta_bytes: u64,
    /// For a volume: which one, and what its set still needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeStatus>,
    /// Public key (hex) of the trusted key that signed the pack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
}

/// A volume's place in its set after an unpack.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeStatus {
    /// The set (hex).
    pub set: String,
    /// This volume's number.
    pub index: u32,
    /// Volumes in the set.
    pub count: u32,
    /// Volumes of the set not yet imported.
    pub missing: Vec<u32>,
    /// The volume had been imported before: nothing was done.
    pub already: bool,
}

/// Chunk records verified together (in parallel) before they are stored.
const VERIFY_BATCH: usize = 64;
/// New chunk bytes stored between commits of an unpack (what a killed
/// unpack may have to read again).
const CHECKPOINT_BYTES: u64 = 32 << 20;

/// Verifies and imports a pack read from `input` (`label` names it in
/// messages). Either everything in the pack lands or nothing does; if the
/// process is killed part-way, the chunks verified so far stay, and running
/// it again skips them.
pub fn unpack<R: Read>(
    store: &mut Store,
    input: R,
    label: &Path,
    progress: &dyn Progress,
) -> Result<UnpackReport> {
    let counted = CountingReader { inner: input, n: 0 };
    let bad = |e: crate::pack::ReadError| Error::pack(label, e.to_string());
    let mut reader = PackReader::new(counted).map_err(bad)?;
    let h = reader.header().clone();
    if h.algorithm != chunker::ALGORITHM || h.params != store.params() {
        return Err(Error::pack(
            label,
            format!(
                "pack was cut with chunker {} min={} avg={} max={}, this store uses {}: it came from an incompatible ferry",
                h.algorithm,
                h.params.min,
                h.params.avg,
                h.params.max,
                store.params()
            ),
        ));
    }
    let mut missing = Vec::new();
    for b in &h.bases {
        if store.snapshots_by_hash(&b.hash)?.is_empty() {
            missing.push(b);
        }
    }
    if !missing.is_empty() {
        let list = |f: &dyn Fn(&BaseRef) -> String| {
            missing.iter().map(|b| f(b)).collect::<Vec<_>>().join(", ")
        };
        return Err(Error::MissingBase {
            path: label.to_path_buf(),
            missing: list(&|b| format!("{} (blake3 {})", b.name, &crate::hex(&b.hash)[..16])),
            names: list(&|b| b.name.clone()),
        });
    }
    // The bases' chunk tables, for compact recipes: the same order the
    // sender indexed, which needs the same recipe on both sides.
    let mut base_rows: Vec<i64> = Vec::new();
    // Only version-1 packs come without base recipe digests.
    let any_recipe = reader.version() == 1;
    for b in &h.bases {
        // Several snapshots may hold the same bytes; any stored the way the
        // sender stored its base will do.
        let mut found = None;
        let mut first = None;
        for snap in store.snapshots_by_hash(&b.hash)? {
            let sum = store.recipe_summary(snap.rowid)?;
            if (any_recipe && b.recipe == [0; 32]) || sum.digest == b.recipe {
                found = Some(sum);
                break;
            }
            first.get_or_insert(snap);
        }
        let Some(sum) = found else {
            let snap = first.expect("checked above");
            return Err(Error::pack(
                label,
                format!(
                    "this store's copy of {} holds the same bytes but was split differently (for example with --no-tar-split), so this delta cannot refer to it: ask for a pack without --base {}, or add {} here the way the sender did",
                    snap.name, b.name, snap.name
                ),
            ));
        };
        base_rows.extend(sum.order);
    }
    // Chunks the sender knew this store holds (from its inventory).
    for id in &h.extra {
        match store.chunk(id)? {
            Some(c) => base_rows.push(c.rowid),
            None => {
                return Err(Error::pack(
                    label,
                    format!(
                        "pack relies on chunk {} from this store's inventory, but the store does not hold it: the inventory came from another store; ask for a pack made with a fresh 'ferry inventory' of this one",
                        &crate::hex(id)[..16]
                    ),
                ));
            }
        }
    }
    let signed_by = check_trust(store, &h, label)?;
    if let Some(v) = h.volume
        && store.has_table("volumes")?
    {
        let seen: Option<i64> = store
            .conn()
            .query_row(
                "SELECT idx FROM volumes WHERE set_id = ?1 AND idx = ?2",
                rusqlite::params![&v.set[..], v.index],
                |r| r.get(0),
            )
            .optional()?;
        if seen.is_some() {
            let missing = missing_volumes(store, &v.set, v.count)?;
            return Ok(UnpackReport {
                volume: Some(VolumeStatus {
                    set: crate::hex(&v.set),
                    index: v.index,
                    count: v.count,
                    missing,
                    already: true,
                }),
                signed_by,
                ..UnpackReport::default()
            });
        }
    }
    let mut pack_rows: Vec<i64> = Vec::new();
    progress.start("unpacking", None);
    store
        .write(|txn| {
            let mut report = UnpackReport::default();
            let mut pending: Vec<Incoming> = Vec::new();
            let mut data = txn.store().data_reader();
            // Encoded sizes of chunks this unpack stored, for new_bytes per snapshot.
            let mut stored_here: HashMap<i64, u64> = HashMap::new();
            let mut since_checkpoint = 0u64;
            let mut records: Vec<SnapshotRecord> = Vec::new();
            let mut end = false;
            loop {
                let mut group = None;
                let rec = match reader.next_record().map_err(bad)? {
                    Some(Record::Chunk(c)) => {
                        pending.push(Incoming::Plain(c));
                        if pending.len() < VERIFY_BATCH {
                            continue;
                        }
                        None
                    }
                    Some(Record::Delta(d)) => {
                        pending.push(Incoming::Delta(d));
                        if pending.len() < VERIFY_BATCH {
                            continue;
                        }
                        None
                    }
                    Some(Record::Group(g)) => {
                        group = Some(g);
                        None
                    }
                    Some(Record::Snapshot(s)) => Some(s),
                    None => {
                        end = true;
                        None
                    }
                };
                if !pending.is_empty() {
                    let batch = std::mem::take(&mut pending);
                    // Chunks the store already has (from another pack, or
                    // from a run of this one that was killed) are neither
                    // verified nor written again.
                    let mut fresh = Vec::with_capacity(batch.len());
                    for c in batch {
                        report.chunks += 1;
                        progress.advance(c.len() as u64);
                        match txn.chunk_rowid(c.id())? {
                            Some(row) => pack_rows.push(row),
                            None => {
                                pack_rows.push(-1);
                                fresh.push((pack_rows.len() - 1, c));
                            }
                        }
                    }
                    let records: Vec<&crate::pack::ChunkRecord> = fresh
                        .iter()
                        .filter_map(|(_, c)| match c {
                            Incoming::Plain(c) => Some(c),
                            Incoming::Delta(_) => None,
                        })
                        .collect();
                    verify_chunks(&records).map_err(|m| Error::pack(label, m))?;
                    for (at, c) in fresh {
                        // A chunk repeated within the pack is stored once.
                        let row = match txn.chunk_rowid(c.id())? {
                            Some(row) => row,
                            None => {
                                let (codec, payload) = match &c {
                                    Incoming::Plain(c) => (c.codec, std::borrow::Cow::Borrowed(&c.payload)),
                                    Incoming::Delta(d) => {
                                        let tables = Tables {
                                            pack: if h.volume.is_some() { &[] } else { &pack_rows },
                                            base: &base_rows,
                                        };
                                        let bytes = apply_delta(txn, &mut data, d, &tables, label)?;
                                        report.delta_chunks += 1;
                                        report.delta_bytes += d.payload.len() as u64;
                                        let (codec, payload) = codec::encode(bytes);
                                        (codec, std::borrow::Cow::Owned(payload))
                                    }
                                };
                                let row = txn.insert_chunk(c.id(), codec, c.len(), &payload)?;
                                stored_here.insert(row, payload.len() as u64);
                                report.new_chunks += 1;
                                report.new_bytes += payload.len() as u64;
                                since_checkpoint += payload.len() as u64;
                                row
                            }
                        };
                        pack_rows[at] = row;
                    }
                    // Keep verified chunks durable as they come, so a killed
                    // unpack resumes where it was (until a snapshot is placed).
                    if since_checkpoint >= CHECKPOINT_BYTES && report.added.is_empty() && report.present.is_empty() {
                        txn.checkpoint()?;
                        since_checkpoint = 0;
                    }
                }
                if let Some(g) = group {
                    // After the records before it, so pack-table bases resolve.
                    let tables = Tables {
                        pack: if h.volume.is_some() { &[] } else { &pack_rows },
                        base: &base_rows,
                    };
                    let bytes = apply_group(txn, &mut data, &g, &tables, label)?;
                    report.delta_bytes += g.payload.len() as u64;
                    let mut pieces = Vec::with_capacity(g.lens.len());
                    let mut at = 0usize;
                    for &l in &g.lens {
                        pieces.push(&bytes[at..at + l as usize]);
                        at += l as usize;
                    }
                    let ids: Vec<ChunkId> = pieces.par_iter().map(|p| *blake3::hash(p).as_bytes()).collect();
                    for (p, id) in pieces.into_iter().zip(&ids) {
                        report.chunks += 1;
                        report.delta_chunks += 1;
                        progress.advance(p.len() as u64);
                        let row = match txn.chunk_rowid(id)? {
                            Some(row) => row,
                            None => {
                                let (codec, payload) = codec::encode(p.to_vec());
                                let row = txn.insert_chunk(id, codec, p.len() as u32, &payload)?;
                                stored_here.insert(row, payload.len() as u64);
                                report.new_chunks += 1;
                                report.new_bytes += payload.len() as u64;
                                since_checkpoint += payload.len() as u64;
                                row
                            }
                        };
                        pack_rows.push(row);
                    }
                }
                if let Some(s) = rec {
                    if h.volume.is_some() {
                        // Placed once every volume of the set is here.
                        records.push(s);
                    } else {
                        let tables = Tables {
                            pack: &pack_rows,
                            base: &base_rows,
                        };
                        import_snapshot(txn, s, label, &tables, &mut stored_here, &mut report)?;
                    }
                }
                if end {
                    break;
                }
            }
            report.signed_by = signed_by.clone();
            if let Some(v) = h.volume {
                if report.chunks != v.chunks {
                    return Err(Error::pack(
                        label,
                        format!("pack is corrupt: volume {} says it holds {} chunks, it holds {}", v.index, v.chunks, report.chunks),
                    ));
                }
                let complete = record_volume(txn, &h, &v, &pack_rows, &records)?;
                let mut status = VolumeStatus {
                    set: crate::hex(&v.set),
                    index: v.index,
                    count: v.count,
                    missing: Vec::new(),
                    already: false,
                };
                if !complete {
                    status.missing = missing_volumes(txn.store(), &v.set, v.count)?;
                    report.volume = Some(status);
                    report.pack_bytes = reader.get_ref().n;
                    return Ok(report);
                }
                // The last volume arrived: place the set's snapshots.
                let set_rows = set_rows(txn.store(), &v.set)?;
                for s in pending_records(txn.store(), &v.set)? {
                    let tables = Tables {
                        pack: &set_rows,
                        base: &base_rows,
                    };
                    import_snapshot(txn, s, label, &tables, &mut stored_here, &mut report)?;
                }
                txn.store().conn().execute_batch(&format!(
                    "DELETE FROM volume_chunks WHERE set_id = x'{0}';
                     DELETE FROM pending WHERE set_id = x'{0}';
                     UPDATE volumes SET done = 1 WHERE set_id = x'{0}';",
                    crate::hex(&v.set)
                ))?;
                report.volume = Some(status);
            }
            let mut carried: Vec<&String> = report.added.iter().chain(&report.present).collect();
            let mut announced: Vec<&String> = h.snapshots.iter().collect();
            carried.sort();
            announced.sort();
            if carried != announced {
                return Err(Error::pack(
                    label,
                    "pack is corrupt: its snapshot records do not match its header",
                ));
            }
            // Every new snapshot must rebuild to the BLAKE3 it claims before
            // it becomes visible: reassemble each once (in this transaction)
            // and compare, so the store never holds a snapshot that lies.
            txn.flush_data()?;
            for name in &report.added {
                crate::checkout::checkout(txn.store(), name, &mut std::io::sink(), &crate::progress::Quiet)
                    .map_err(|e| match e {
                        Error::Integrity(_) => Error::pack(
                            label,
                            format!(
                                "pack is corrupt: snapshot {name} does not rebuild to the BLAKE3 it claims: copy the pack again; if that fails too, re-pack it on the sending side"
                            ),
                        ),
                        other => other,
                    })?;
            }
            report.pack_bytes = reader.get_ref().n;
            Ok(report)
        })
        .inspect(|_| progress.finish())
}

/// A chunk record as it arrives.
enum Incoming {
    Plain(crate::pack::ChunkRecord),
    Delta(crate::pack::DeltaRecord),
}

impl Incoming {
    fn id(&self) -> &ChunkId {
        match self {
            Incoming::Plain(c) => &c.id,
            Incoming::Delta(d) => &d.id,
        }
    }
    fn len(&self) -> u32 {
        match self {
            Incoming::Plain(c) => c.len,
            Incoming::Delta(d) => d.len,
        }
    }
}

/// Rebuilds a delta chunk from its bases and checks it against its BLAKE3.
fn apply_delta(
    txn: &mut crate::store::Txn<'_>,
    data: &mut crate::store::data::DataReader,
    d: &crate::pack::DeltaRecord,
    tables: &Tables<'_>,
    label: &Path,
) -> Result<Vec<u8>> {
    let what = format!("delta chunk {}", &crate::hex(&d.id)[..16]);
    rebuild(
        txn,
        data,
        &d.bases,
        &d.payload,
        d.len as usize,
        &d.id,
        &what,
        tables,
        label,
    )
}

/// Rebuilds a group's chunks (concatenated) from its bases and checks
/// them against the group's BLAKE3.
fn apply_group(
    txn: &mut crate::store::Txn<'_>,
    data: &mut crate::store::data::DataReader,
    g: &crate::pack::GroupRecord,
    tables: &Tables<'_>,
    label: &Path,
) -> Result<Vec<u8>> {
    let what = format!("delta group {}", &crate::hex(&g.digest)[..16]);
    let len = g.out_len() as usize;
    rebuild(
        txn, data, &g.bases, &g.payload, len, &g.digest, &what, tables, label,
    )
}

/// Decodes `len` bytes from a delta frame against `bases` (chunks in the
/// store, possibly written earlier in this transaction) and checks them
/// against `digest`; `what` names the record in errors.
#[allow(clippy::too_many_arguments)]
fn rebuild(
    txn: &mut crate::store::Txn<'_>,
    data: &mut crate::store::data::DataReader,
    bases: &[recipe::TableRef],
    payload: &[u8],
    len: usize,
    digest: &[u8; 32],
    what: &str,
    tables: &Tables<'_>,
    label: &Path,
) -> Result<Vec<u8>> {
    txn.flush_data()?;
    let mut base_bytes = Vec::new();
    for b in bases {
        // Pack-table bases must be records before this one (never in a
        // volume, whose set may arrive in any order); base-table ones come
        // from the store's copies of the bases.
        let table = match b.src {
            Src::Pack => tables.pack,
            Src::Base => tables.base,
        };
        let row = table.get(b.index as usize).copied().filter(|&r| r >= 0);
        let base = match row {
            Some(r) => txn.store().chunk_by_row(r)?,
            None => None,
        };
        let Some(base) = base else {
            return Err(Error::pack(
                label,
                format!(
                    "pack sends {what} against {} chunk {}, which neither this store nor the pack holds there: it is corrupt, or was made for another store; copy it again, or ask for a pack made against what this store has ('ferry inventory')",
                    if b.src == Src::Pack { "pack" } else { "base" },
                    b.index
                ),
            ));
        };
        if base_bytes.len() as u64 + base.len as u64 > crate::pack::format::MAX_GROUP_PREFIX {
            return Err(Error::pack(
                label,
                format!("pack is corrupt: {what} names more than 32 MiB of bases"),
            ));
        }
        data.ensure(base.loc)?;
        let stored = data.get(&base.id, base.loc)?;
        let bytes = codec::decode(base.codec, stored, base.len as usize).map_err(|e| {
            Error::Integrity(format!(
                "chunk {} in this store cannot be decoded ({e}): run 'ferry verify --full'",
                crate::hex(&base.id)
            ))
        })?;
        base_bytes.extend_from_slice(&bytes);
    }
    let bytes = crate::similarity::decode(&base_bytes, payload, len).map_err(|m| {
        Error::pack(
            label,
            format!("pack is corrupt: {what}: {m}: copy it again from the source"),
        )
    })?;
    if blake3::hash(&bytes).as_bytes() != digest {
        return Err(Error::pack(
            label,
            format!(
                "pack is corrupt: {what} does not rebuild to its BLAKE3: copy it again from the source"
            ),
        ));
    }
    Ok(bytes)
}

/// Refuses a pack the store's trust list does not accept; returns the
/// signer's key (hex) when a trusted key signed it. The signature itself is
/// checked by the reader when it reaches the trailer.
fn check_trust(store: &Store, h: &Header, label: &Path) -> Result<Option<String>> {
    let trusted = crate::keys::trusted(store)?;
    let signer = h.signer.map(|k| crate::hex(&k));
    if trusted.is_empty() {
        return Ok(None);
    }
    match &h.signer {
        None => Err(Error::pack(
            label,
            "pack is not signed, and this store accepts only packs signed by a trusted key (see 'ferry trust list'): ask the sender for a pack made with --sign",
        )),
        Some(k) if !trusted.iter().any(|t| t.key == *k) => Err(Error::pack(
            label,
            format!(
                "pack is signed by key {}, which this store does not trust: if it is the sender's, add its .pub file with 'ferry trust add'",
                &crate::hex(k)[..16]
            ),
        )),
        Some(_) => Ok(signer),
    }
}

/// Volumes of `set` not yet imported.
fn missing_volumes(store: &Store, set: &[u8; 16], count: u32) -> Result<Vec<u32>> {
    let mut stmt = store
        .conn()
        .prepare("SELECT idx FROM volumes WHERE set_id = ?1")?;
    let have: HashSet<u32> = stmt
        .query_map([&set[..]], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((1..=count).filter(|i| !have.contains(i)).collect())
}

/// Records an imported volume (its chunks' positions in the set's table,
/// and the snapshot records it carried); true when the set is complete.
fn record_volume(
    txn: &mut crate::store::Txn<'_>,
    h: &Header,
    v: &VolumeInfo,
    rows: &[i64],
    records: &[SnapshotRecord],
) -> Result<bool> {
    let conn = txn.store().conn();
    {
        let mut ins = conn.prepare_cached(
            "INSERT OR REPLACE INTO volume_chunks (set_id, pos, chunk) VALUES (?1, ?2, ?3)",
        )?;
        for (i, row) in rows.iter().enumerate() {
            ins.execute(rusqlite::params![&v.set[..], v.first + i as u64, row])?;
        }
        let mut pend = conn.prepare_cached(
            "INSERT OR REPLACE INTO pending (set_id, seq, name, record) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (i, r) in records.iter().enumerate() {
            let bytes = encode_snapshot(r).map_err(|e| Error::Invalid(e.to_string()))?;
            pend.execute(rusqlite::params![&v.set[..], i as i64, r.name, bytes])?;
        }
    }
    conn.execute(
        "INSERT INTO volumes (set_id, idx, count, first, chunks, snapshots, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        rusqlite::params![
            &v.set[..],
            v.index,
            v.count,
            v.first,
            v.chunks,
            serde_json::to_string(&h.snapshots).expect("names serialize"),
            crate::store::now()
        ],
    )?;
    let have: u32 = conn.query_row(
        "SELECT count(*) FROM volumes WHERE set_id = ?1",
        [&v.set[..]],
        |r| r.get(0),
    )?;
    Ok(have >= v.count)
}

/// The set's chunk table (row ids by position), which must be complete.
fn set_rows(store: &Store, set: &[u8; 16]) -> Result<Vec<i64>> {
    let mut stmt = store
        .conn()
        .prepare("SELECT pos, chunk FROM volume_chunks WHERE set_id = ?1 ORDER BY pos")?;
    let mut rows = Vec::new();
    for r in stmt.query_map([&set[..]], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })? {
        let (pos, chunk) = r?;
        if pos != rows.len() as i64 {
            return Err(Error::Invalid(format!(
                "volume set {} has a gap in its chunk table at {}: its volumes do not belong together",
                crate::hex(set),
                rows.len()
            )));
        }
        rows.push(chunk);
    }
    Ok(rows)
}

/// Snapshot records the set's volumes carried.
fn pending_records(store: &Store, set: &[u8; 16]) -> Result<Vec<SnapshotRecord>> {
    let mut stmt = store
        .conn()
        .prepare("SELECT record FROM pending WHERE set_id = ?1 ORDER BY seq")?;
    let blobs: Vec<Vec<u8>> = stmt
        .query_map([&set[..]], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    blobs
        .iter()
        .map(|b| {
            crate::pack::decode_snapshot(b, crate::pack::format::VERSION)
                .map_err(|e| Error::Invalid(format!("a waiting snapshot record is damaged: {e}")))
        })
        .collect()
}

/// Decodes every chunk of the batch in parallel and checks its BLAKE3.
fn verify_chunks(batch: &[&crate::pack::ChunkRecord]) -> std::result::Result<(), String> {
    batch.par_iter().try_for_each(|c| {
        let data = codec::decode(c.codec, &c.payload, c.len as usize)
            .map_err(|e| format!("pack is corrupt: chunk {} cannot be decoded ({e}): copy it again from the source", crate::hex(&c.id)))?;
        if blake3::hash(&data).as_bytes() != &c.id {
            return Err(format!(
                "pack is corrupt: chunk {} does not match its BLAKE3: copy it again from the source; if a fresh copy fails the same way, the sending store is damaged (a 'ferry checkout' there will say so)",
                crate::hex(&c.id)
            ));
        }
        Ok(())
    })
}

/// Where compact recipe indices point: row ids of this pack's chunk
/// records, in order, and of the bases' chunk tables.
struct Tables<'a> {
    pack: &'a [i64],
    base: &'a [i64],
}

fn import_snapshot(
    txn: &mut crate::store::Txn<'_>,
    s: SnapshotRecord,
    label: &Path,
    tables: &Tables<'_>,
    stored_here: &mut HashMap<i64, u64>,
    report: &mut UnpackReport,
) -> Result<()> {
    let corrupt =
        |m: String| Error::pack(label, format!("pack is corrupt: snapshot {}: {m}", s.name));
    crate::add::validate_name(&s.name)
        .map_err(|e| Error::pack(label, format!("pack is corrupt: {e}")))?;
    if let Some(old) = txn.store().snapshot(&s.name)? {
        if old.blake3 == crate::hex(&s.hash) {
            report.present.push(s.name);
            return Ok(());
        }
        return Err(Error::NameConflict(format!(
            "this store already has a snapshot named '{}' with other content (blake3 {}); the pack's is {}: nothing was imported",
            s.name,
            &old.blake3[..16],
            &crate::hex(&s.hash)[..16]
        )));
    }
    let mut meta: serde_json::Value =
        serde_json::from_str(&s.meta).unwrap_or(serde_json::Value::Null);
    // How it arrived (for `ls --json`): the pack, and, when this unpack
    // read every chunk of the pack table (not so for the last volume of a
    // set), how many of them and how many bytes came as deltas.
    if let serde_json::Value::Object(m) = &mut meta {
        let mut received = serde_json::json!({
            "pack": label.file_name().map(|n| n.to_string_lossy().into_owned()),
            "at": crate::store::now(),
        });
        if tables.pack.len() as u64 == report.chunks {
            received["chunks"] = report.chunks.into();
            received["delta_chunks"] = report.delta_chunks.into();
            received["delta_bytes"] = report.delta_bytes.into();
        }
        m.insert("received".into(), received);
    }
    let snap = txn.create_snapshot(&NewSnapshot {
        name: &s.name,
        size: s.size,
        hash: &s.hash,
        new_bytes: 0,
        added_at: crate::store::now(),
        meta: &meta,
    })?;
    // Each piece is resolved and written as it is decoded: memory stays
    // bounded whatever the record claims, and a recipe that runs past the
    // snapshot's size is stopped at once.
    let mut lens: HashMap<i64, u32> = HashMap::new();
    let mut new_bytes = 0u64;
    let mut seq = 0u64;
    let mut total = 0u64;
    let mut place = |txn: &mut crate::store::Txn<'_>,
                     row: i64,
                     slice: Option<(u32, u32)>,
                     op: Op,
                     out: u64|
     -> Result<()> {
        let clen = match lens.get(&row) {
            Some(&l) => l,
            None => {
                let l = txn
                    .store()
                    .chunk_len(row)?
                    .ok_or_else(|| corrupt("recipe names a missing chunk".into()))?;
                new_bytes += stored_here.remove(&row).unwrap_or(0);
                lens.insert(row, l);
                l
            }
        };
        let (off, len) = match slice {
            None => (0, clen),
            Some((off, len)) => {
                if len == 0 || off as u64 + len as u64 > clen as u64 {
                    return Err(corrupt("a piece reads past the end of its chunk".into()));
                }
                (off, len)
            }
        };
        let piece = Piece {
            chunk: row,
            off,
            len,
            op,
            out,
        };
        total = total.saturating_add(piece.output());
        if total > s.size {
            return Err(corrupt("the recipe runs past the snapshot's size".into()));
        }
        txn.push_piece(snap, seq, piece)?;
        seq += 1;
        Ok(())
    };
    match &s.pieces {
        Pieces::Ids(pieces) => {
            let mut lookup: HashMap<ChunkId, i64> = HashMap::new();
            for p in pieces {
                let id = p.id();
                let row = match lookup.get(id) {
                    Some(&r) => r,
                    None => {
                        let Some(c) = txn.store().chunk(id)? else {
                            return Err(Error::pack(
                                label,
                                format!(
                                    "snapshot {} needs chunk {} which neither this pack nor the store holds: unpack the pack it is a delta against first",
                                    s.name,
                                    &crate::hex(id)[..16]
                                ),
                            ));
                        };
                        lookup.insert(*id, c.rowid);
                        c.rowid
                    }
                };
                let slice = match *p {
                    PieceRef::Whole(_) => None,
                    PieceRef::Slice { off, len, .. } => Some((off, len)),
                };
                place(txn, row, slice, Op::Out, 0)?;
            }
        }
        Pieces::Compact {
            count,
            encoding,
            data,
        } => {
            recipe::decode_each(data, *count, *encoding, corrupt, |p| {
                let table = match p.src {
                    Src::Pack => tables.pack,
                    Src::Base => tables.base,
                };
                let row = *table.get(p.index as usize).ok_or_else(|| {
                    corrupt(format!("recipe names chunk {} of {}", p.index, table.len()))
                })?;
                place(txn, row, p.slice, p.op, p.out)
            })?;
        }
    }
    txn.store().conn().execute(
        "UPDATE snapshots SET new_bytes = ?2 WHERE rowid = ?1",
        rusqlite::params![snap, new_bytes],
    )?;
    txn.finish_snapshot(snap)
        .map_err(|e| corrupt(e.to_string()))?;
    report.added.push(s.name);
    Ok(())
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// A volume set some of whose volumes have been unpacked here.
#[derive(Debug, Clone, Serialize)]
pub struct WaitingSet {
    /// The set (hex).
    pub set: String,
    /// Snapshots it will add.
    pub snapshots: Vec<String>,
    /// Volumes in the set.
    pub count: u32,
    /// Volumes unpacked.
    pub received: Vec<u32>,
    /// Volumes still needed.
    pub missing: Vec<u32>,
}

/// Volume sets still waiting for volumes (what `ferry status` shows).
pub fn waiting_sets(store: &Store) -> Result<Vec<WaitingSet>> {
    if !store.has_table("volumes")? {
        return Ok(Vec::new());
    }
    let mut stmt = store.conn().prepare(
        "SELECT set_id, idx, count, snapshots FROM volumes WHERE done = 0 ORDER BY received_at, set_id, idx",
    )?;
    let rows: Vec<(Vec<u8>, u32, u32, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut sets: Vec<WaitingSet> = Vec::new();
    for (set, idx, count, names) in rows {
        let set = crate::hex(&set);
        match sets.iter_mut().find(|s| s.set == set) {
            Some(s) => s.received.push(idx),
            None => sets.push(WaitingSet {
                set,
                snapshots: serde_json::from_str(&names).unwrap_or_default(),
                count,
                received: vec![idx],
                missing: Vec::new(),
            }),
        }
    }
    for s in &mut sets {
        s.received.sort_unstable();
        s.missing = (1..=s.count).filter(|i| !s.received.contains(i)).collect();
    }
    Ok(sets)
}
