//! Moving snapshots between stores: [`write_pack`] selects the chunks a
//! receiver lacks and writes them with the recipes into a pack;
//! [`unpack`] verifies a pack and imports it as one all-or-nothing write.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use crate::chunker::{self, ChunkId};
use crate::codec;
use crate::error::{Error, Result};
use crate::pack::recipe::{self, IndexedPiece, Src};
use crate::pack::{
    BaseRef, Header, PackReader, PackTotals, PackWriter, PieceRef, Pieces, Record, SnapshotRecord,
};
use crate::progress::Progress;
use crate::store::{NewSnapshot, Op, Piece, Store};

/// What goes into a pack.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// Snapshots to carry.
    pub snapshots: Vec<String>,
    /// Snapshots the receiver already holds.
    pub bases: Vec<String>,
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
    /// Of those, chunks left out because the bases hold them.
    pub skipped_chunks: u64,
    /// Counts and sizes of what was written.
    #[serde(flatten)]
    pub totals: PackTotals,
}

fn io_out(e: std::io::Error) -> Error {
    Error::io("writing pack", e)
}

/// Writes a pack of `opts.snapshots` holding only chunks the `opts.bases`
/// lack. Memory is bounded by the batch size plus the recipes' chunk ids.
pub fn write_pack<W: Write>(
    store: &Store,
    opts: &PackOptions,
    out: W,
    progress: &dyn Progress,
) -> Result<(W, PackReport)> {
    if opts.snapshots.is_empty() {
        return Err(Error::Invalid("name at least one snapshot to pack".into()));
    }
    // One consistent view of the index for the whole pack.
    let _view = store.read_view()?;
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
    let summaries = bases
        .iter()
        .map(|b| store.recipe_summary(b.rowid))
        .collect::<Result<Vec<_>>>()?;
    let mut base_index: HashMap<i64, u64> = HashMap::new();
    let mut n = 0u64;
    for sum in &summaries {
        for &row in &sum.order {
            base_index.entry(row).or_insert(n);
            n += 1;
        }
    }
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
    };
    let logical: u64 = snaps.iter().map(|s| s.size).sum();
    progress.start("packing", Some(logical));
    let mut w = PackWriter::new(out, &header).map_err(io_out)?;
    let mut reader = store.data_reader();
    let store_dir = store.dir().to_path_buf();
    let mut seen: HashSet<i64> = HashSet::new();
    let mut pack_index: HashMap<i64, u64> = HashMap::new();
    let mut skipped = 0u64;
    let mut recipes = Vec::with_capacity(snaps.len());
    for s in &snaps {
        // Each piece and whether it takes its chunk whole; indexed once
        // every chunk is placed.
        let mut pieces: Vec<(Piece, bool)> = Vec::with_capacity(s.entries as usize);
        let mut total = 0u64;
        store.for_each_piece_batch(s.rowid, 1024, |batch| {
            let mut send = Vec::new();
            for (p, c) in batch {
                let whole = p.off == 0 && p.len == c.len;
                pieces.push((*p, whole));
                total += p.output();
                progress.advance(p.output());
                if !seen.insert(c.rowid) {
                    continue;
                }
                if base_index.contains_key(&c.rowid) {
                    skipped += 1;
                    continue;
                }
                reader.ensure(c.loc)?;
                send.push(c);
            }
            // Check every chunk against its id before it leaves (in
            // parallel): a damaged store is caught here, not after the
            // air gap.
            let reader_ref = &reader;
            send.par_iter().try_for_each(|c| -> Result<()> {
                let payload = reader_ref.get(&c.id, c.loc)?;
                let ok = codec::decode(c.codec, payload, c.len as usize)
                    .map(|d| blake3::hash(&d).as_bytes() == &c.id)
                    .unwrap_or(false);
                if ok {
                    Ok(())
                } else {
                    Err(Error::BadStore {
                        store: store_dir.clone(),
                        msg: format!(
                            "chunk {} in data file {:08}.dat is damaged, so {} cannot be packed: add or unpack it again",
                            crate::hex(&c.id),
                            c.loc.file,
                            s.name
                        ),
                    })
                }
            })?;
            for c in send {
                let payload = reader.get(&c.id, c.loc)?;
                w.chunk(&c.id, c.codec, c.len, payload).map_err(io_out)?;
                pack_index.insert(c.rowid, pack_index.len() as u64);
            }
            reader.release();
            Ok(())
        })?;
        recipes.push((pieces, total));
    }
    for (s, (pieces, total)) in snaps.iter().zip(recipes) {
        if total != s.size {
            return Err(Error::BadStore {
                store: store.dir().to_path_buf(),
                msg: format!(
                    "the recipe of {} adds up to {total} bytes, not {}: the index is damaged",
                    s.name, s.size
                ),
            });
        }
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
        let record = SnapshotRecord {
            name: s.name.clone(),
            size: s.size,
            hash: crate::unhex32(&s.blake3).expect("stored hash"),
            added_at: s.added_at,
            meta: s.meta.to_string(),
            pieces: Pieces::Compact {
                count: indexed.len() as u64,
                ops: true,
                data: recipe::encode(&indexed),
            },
        };
        w.snapshot(&record).map_err(io_out)?;
    }
    let (out, totals) = w.finish().map_err(io_out)?;
    progress.finish();
    Ok((
        out,
        PackReport {
            snapshots: opts.snapshots.clone(),
            bases: opts.bases.clone(),
            logical_bytes: logical,
            referenced_chunks: seen.len() as u64,
            skipped_chunks: skipped,
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
    let mut pack_rows: Vec<i64> = Vec::new();
    progress.start("unpacking", None);
    store
        .write(|txn| {
            let mut report = UnpackReport::default();
            let mut pending: Vec<crate::pack::ChunkRecord> = Vec::new();
            // Encoded sizes of chunks this unpack stored, for new_bytes per snapshot.
            let mut stored_here: HashMap<i64, u64> = HashMap::new();
            let mut since_checkpoint = 0u64;
            let mut end = false;
            loop {
                let rec = match reader.next_record().map_err(bad)? {
                    Some(Record::Chunk(c)) => {
                        pending.push(c);
                        if pending.len() < VERIFY_BATCH {
                            continue;
                        }
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
                        progress.advance(c.len as u64);
                        match txn.chunk_rowid(&c.id)? {
                            Some(row) => pack_rows.push(row),
                            None => {
                                pack_rows.push(-1);
                                fresh.push((pack_rows.len() - 1, c));
                            }
                        }
                    }
                    let records: Vec<&crate::pack::ChunkRecord> = fresh.iter().map(|(_, c)| c).collect();
                    verify_chunks(&records).map_err(|m| Error::pack(label, m))?;
                    for (at, c) in fresh {
                        // A chunk repeated within the pack is stored once.
                        let row = match txn.chunk_rowid(&c.id)? {
                            Some(row) => row,
                            None => {
                                let row = txn.insert_chunk(&c.id, c.codec, c.len, &c.payload)?;
                                stored_here.insert(row, c.payload.len() as u64);
                                report.new_chunks += 1;
                                report.new_bytes += c.payload.len() as u64;
                                since_checkpoint += c.payload.len() as u64;
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
                if let Some(s) = rec {
                    let tables = Tables {
                        pack: &pack_rows,
                        base: &base_rows,
                    };
                    import_snapshot(txn, s, label, &tables, &mut stored_here, &mut report)?;
                }
                if end {
                    break;
                }
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
    let meta: serde_json::Value = serde_json::from_str(&s.meta).unwrap_or(serde_json::Value::Null);
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
        Pieces::Compact { count, ops, data } => {
            recipe::decode_each(data, *count, *ops, corrupt, |p| {
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
