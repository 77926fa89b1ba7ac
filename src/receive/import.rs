//! Importing a snapshot record: its name checked, its recipe resolved to
//! stored chunks piece by piece and written, and its arrival noted in its
//! metadata.

use std::collections::HashMap;
use std::path::Path;

use crate::chunker::ChunkId;
use crate::error::{Error, Result};
use crate::pack::recipe;
use crate::pack::{PieceRef, Pieces, SnapshotRecord};
use crate::store::{ChunkRow, NewSnapshot, Op, Piece, ReceivedMeta, SnapshotMeta, Txn};

use super::UnpackReport;
use super::rebuild::Tables;

/// Imports snapshot record `s`: added (to `report.added`), or already here
/// with the same content (`report.present`). `stored_here` holds the
/// encoded sizes of chunks this unpack stored; the snapshot claims those
/// it uses as its new bytes.
pub(super) fn import_snapshot(
    txn: &mut Txn<'_>,
    s: SnapshotRecord,
    label: &Path,
    tables: &Tables,
    stored_here: &mut HashMap<ChunkRow, u64>,
    report: &mut UnpackReport,
) -> Result<()> {
    let corrupt =
        |m: String| Error::pack(label, format!("pack is corrupt: snapshot {}: {m}", s.name));
    crate::add::validate_name(&s.name)
        .map_err(|e| Error::pack(label, format!("pack is corrupt: {e}")))?;
    let mut meta = received_meta(&s.meta, label, tables, report);
    // The sender's time for the tag, kept on its clock for later packs.
    let tagged_at = meta.tag_time_ms(s.added_at);
    meta.tagged_at_ms = Some(tagged_at);
    if let Some(old) = txn.store().snapshot(&s.name)? {
        if old.blake3 == s.hash {
            report.present.push(s.name);
            return Ok(());
        }
        // Names are tags: the pack moves this one, unless what the store
        // has was tagged later (an old pack replayed, or packs out of order).
        let current = old.meta.tag_time_ms(old.added_at);
        if tagged_at <= current {
            return Err(Error::NameConflict(format!(
                "the pack would move '{}' from {} back to {}, which the sender tagged earlier ({}) than this store's ({}): an old pack replayed? Nothing was imported; 'ferry rm {}' first to take it anyway",
                s.name,
                old.blake3.short(),
                s.hash.short(),
                when(tagged_at),
                when(current),
                s.name
            )));
        }
        let kept_as = txn.untag_snapshot(&old)?;
        report.moved.push(super::TagMove {
            name: s.name.clone(),
            from: old.blake3.to_string(),
            to: s.hash.to_string(),
            kept_as,
        });
    }
    let snap = txn.create_snapshot(&NewSnapshot {
        name: &s.name,
        size: s.size,
        hash: s.hash,
        new_bytes: 0,
        added_at: crate::store::now(),
        meta: &meta,
    })?;
    let mut placer = Placer {
        snap,
        size: s.size,
        stored_here,
        lens: HashMap::new(),
        new_bytes: 0,
        seq: 0,
        total: 0,
    };
    match &s.pieces {
        Pieces::Ids(pieces) => {
            let mut lookup: HashMap<ChunkId, ChunkRow> = HashMap::new();
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
                                    id.short()
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
                placer.place(txn, row, slice, Op::Out, 0, &corrupt)?;
            }
        }
        Pieces::Compact {
            count,
            encoding,
            data,
        } => {
            recipe::decode_each(data, *count, *encoding, corrupt, |p| {
                let row = tables.row(p.src, p.index as usize).ok_or_else(|| {
                    corrupt(format!(
                        "recipe names chunk {} of {}",
                        p.index,
                        tables.len(p.src)
                    ))
                })?;
                let row = row.ok_or_else(|| corrupt("recipe names a missing chunk".into()))?;
                placer.place(txn, row, p.slice, p.op, p.out, &corrupt)
            })?;
        }
    }
    txn.set_new_bytes(snap, placer.new_bytes)?;
    txn.finish_snapshot(snap)
        .map_err(|e| corrupt(e.to_string()))?;
    report.added.push(s.name);
    Ok(())
}

/// The record's metadata with how it arrived (for `ls --json`): the pack,
/// and, when this unpack read every chunk of the pack table (not so for
/// the last volume of a set), how many of them and how many bytes came as
/// deltas.
/// A tag time (milliseconds since the epoch) as UTC, to the second.
fn when(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn received_meta(meta: &str, label: &Path, tables: &Tables, report: &UnpackReport) -> SnapshotMeta {
    let mut meta = SnapshotMeta::from_json(meta);
    let whole = tables.pack.len() as u64 == report.chunks;
    meta.set_received(ReceivedMeta {
        pack: label.file_name().map(|n| n.to_string_lossy().into_owned()),
        at: crate::store::now(),
        chunks: whole.then_some(report.chunks),
        delta_chunks: whole.then_some(report.delta_chunks),
        delta_bytes: whole.then_some(report.delta_bytes),
    });
    meta
}

/// Writes a snapshot's recipe as each piece is decoded: memory stays
/// bounded whatever the record claims, and a recipe that runs past the
/// snapshot's size is stopped at once.
struct Placer<'a> {
    snap: i64,
    size: u64,
    stored_here: &'a mut HashMap<ChunkRow, u64>,
    /// Decoded lengths of the chunks met so far.
    lens: HashMap<ChunkRow, u32>,
    new_bytes: u64,
    seq: u64,
    total: u64,
}

impl Placer<'_> {
    /// Resolves and writes one piece: chunk row `row`, the whole chunk or
    /// `slice` (offset, length) of it.
    fn place(
        &mut self,
        txn: &mut Txn<'_>,
        row: ChunkRow,
        slice: Option<(u32, u32)>,
        op: Op,
        out: u64,
        corrupt: &dyn Fn(String) -> Error,
    ) -> Result<()> {
        let clen = match self.lens.get(&row) {
            Some(&l) => l,
            None => {
                let l = txn
                    .store()
                    .chunk_len(row)?
                    .ok_or_else(|| corrupt("recipe names a missing chunk".into()))?;
                self.new_bytes += self.stored_here.remove(&row).unwrap_or(0);
                self.lens.insert(row, l);
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
        self.total = self.total.saturating_add(piece.output());
        if self.total > self.size {
            return Err(corrupt("the recipe runs past the snapshot's size".into()));
        }
        txn.push_piece(self.snap, self.seq, piece)?;
        self.seq += 1;
        Ok(())
    }
}
