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
use crate::pack::{
    BaseRef, Header, PackReader, PackTotals, PackWriter, PieceRef, Record, SnapshotRecord,
};
use crate::progress::Progress;
use crate::store::{NewSnapshot, Piece, Store};

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
    let base_set = store.chunk_set(&bases.iter().map(|b| b.rowid).collect::<Vec<_>>())?;
    let header = Header {
        algorithm: chunker::ALGORITHM.to_string(),
        params: store.params(),
        created: crate::store::now(),
        writer: format!("ferry {}", env!("CARGO_PKG_VERSION")),
        bases: bases
            .iter()
            .map(|b| BaseRef {
                name: b.name.clone(),
                size: b.size,
                hash: crate::unhex32(&b.blake3).expect("stored hash"),
            })
            .collect(),
        snapshots: snaps.iter().map(|s| s.name.clone()).collect(),
    };
    let logical: u64 = snaps.iter().map(|s| s.size).sum();
    progress.start("packing", Some(logical));
    let mut w = PackWriter::new(out, &header).map_err(io_out)?;
    let mut reader = store.data_reader();
    let mut seen: HashSet<i64> = HashSet::new();
    let mut skipped = 0u64;
    let mut records = Vec::with_capacity(snaps.len());
    for s in &snaps {
        let mut pieces = Vec::with_capacity(s.entries as usize);
        store.for_each_piece_batch(s.rowid, 1024, |batch| {
            for (p, c) in batch {
                pieces.push(if p.off == 0 && p.len == c.len {
                    PieceRef::Whole(c.id)
                } else {
                    PieceRef::Slice {
                        id: c.id,
                        off: p.off,
                        len: p.len,
                    }
                });
                progress.advance(p.len as u64);
                if !seen.insert(c.rowid) {
                    continue;
                }
                if base_set.contains(&c.rowid) {
                    skipped += 1;
                    continue;
                }
                reader.ensure(c.loc)?;
                let payload = reader.get(&c.id, c.loc)?;
                w.chunk(&c.id, c.codec, c.len, payload).map_err(io_out)?;
            }
            reader.release();
            Ok(())
        })?;
        records.push(SnapshotRecord {
            name: s.name.clone(),
            size: s.size,
            hash: crate::unhex32(&s.blake3).expect("stored hash"),
            added_at: s.added_at,
            meta: s.meta.to_string(),
            pieces,
        });
    }
    for r in &records {
        w.snapshot(r).map_err(io_out)?;
    }
    drop(records);
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

/// Verifies and imports a pack read from `input` (`label` names it in
/// messages). Either everything in the pack lands or nothing does.
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
        if store.snapshot_by_hash(&b.hash)?.is_none() {
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
    progress.start("unpacking", None);
    store
        .write(|txn| {
            let mut report = UnpackReport::default();
            let mut pending: Vec<crate::pack::ChunkRecord> = Vec::new();
            // Encoded sizes of chunks this unpack stored, for new_bytes per snapshot.
            let mut stored_here: HashMap<i64, u64> = HashMap::new();
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
                    verify_chunks(&batch).map_err(|m| Error::pack(label, m))?;
                    for c in batch {
                        report.chunks += 1;
                        progress.advance(c.len as u64);
                        if txn.chunk_rowid(&c.id)?.is_some() {
                            continue;
                        }
                        let row = txn.insert_chunk(&c.id, c.codec, c.len, &c.payload)?;
                        stored_here.insert(row, c.payload.len() as u64);
                        report.new_chunks += 1;
                        report.new_bytes += c.payload.len() as u64;
                    }
                }
                if let Some(s) = rec {
                    import_snapshot(txn, s, label, &mut stored_here, &mut report)?;
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
            report.pack_bytes = reader.get_ref().n;
            Ok(report)
        })
        .inspect(|_| progress.finish())
}

/// Decodes every chunk of the batch in parallel and checks its BLAKE3.
fn verify_chunks(batch: &[crate::pack::ChunkRecord]) -> std::result::Result<(), String> {
    batch.par_iter().try_for_each(|c| {
        let data = codec::decode(c.codec, &c.payload, c.len as usize)
            .map_err(|e| format!("pack is corrupt: chunk {} cannot be decoded ({e}): copy it again from the source", crate::hex(&c.id)))?;
        if blake3::hash(&data).as_bytes() != &c.id {
            return Err(format!(
                "pack is corrupt: chunk {} does not match its BLAKE3: copy it again from the source",
                crate::hex(&c.id)
            ));
        }
        Ok(())
    })
}

fn import_snapshot(
    txn: &mut crate::store::Txn<'_>,
    s: SnapshotRecord,
    label: &Path,
    stored_here: &mut HashMap<i64, u64>,
    report: &mut UnpackReport,
) -> Result<()> {
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
    let mut lookup: HashMap<ChunkId, (i64, u32)> = HashMap::new();
    let mut new_bytes = 0u64;
    for (seq, p) in s.pieces.iter().enumerate() {
        let id = p.id();
        let (row, clen) = match lookup.get(id) {
            Some(&v) => v,
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
                new_bytes += stored_here.remove(&c.rowid).unwrap_or(0);
                lookup.insert(*id, (c.rowid, c.len));
                (c.rowid, c.len)
            }
        };
        let (off, len) = match *p {
            PieceRef::Whole(_) => (0, clen),
            PieceRef::Slice { off, len, .. } => {
                if off as u64 + len as u64 > clen as u64 {
                    return Err(Error::pack(
                        label,
                        format!(
                            "pack is corrupt: snapshot {} reads past the end of a chunk",
                            s.name
                        ),
                    ));
                }
                (off, len)
            }
        };
        txn.push_piece(
            snap,
            seq as u64,
            Piece {
                chunk: row,
                off,
                len,
            },
        )?;
    }
    txn.store().conn().execute(
        "UPDATE snapshots SET new_bytes = ?2 WHERE rowid = ?1",
        rusqlite::params![snap, new_bytes],
    )?;
    txn.finish_snapshot(snap)
        .map_err(|e| Error::pack(label, format!("pack is corrupt: snapshot {}: {e}", s.name)))?;
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
