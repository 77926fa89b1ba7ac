//! Read queries of the index: snapshots, recipes, chunks, super-features
//! and split-out files.

use rusqlite::{OptionalExtension, params};

use super::data::Location;
use super::schema::Table;
use super::{
    ChunkEntry, ChunkRow, FileEntry, Op, Piece, RecipeSummary, Snapshot, SnapshotDigest,
    SnapshotMeta, Store,
};
use crate::chunker::ChunkId;
use crate::codec::Codec;
use crate::error::{Error, Result};

impl Store {
    /// All snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let mut stmt = self.conn.prepare(
            "SELECT rowid, name, size, hash, entries, chunks, stored, new_bytes, added_at, meta
             FROM snapshots ORDER BY added_at, rowid",
        )?;
        let rows = stmt.query_map([], row_to_snapshot)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The snapshot called `name`, if any.
    pub fn snapshot(&self, name: &str) -> Result<Option<Snapshot>> {
        Ok(self
            .conn
            .query_row(
                "SELECT rowid, name, size, hash, entries, chunks, stored, new_bytes, added_at, meta
                 FROM snapshots WHERE name = ?1",
                [name],
                row_to_snapshot,
            )
            .optional()?)
    }

    /// The snapshot called `name`, or [`Error::UnknownSnapshot`].
    ///
    /// A name no snapshot has may be an image tag inside one: an image of
    /// a multi-image snapshot, or one whose archive had several tags. The
    /// most recently tagged snapshot holding it is found. A name still
    /// waiting for volumes says so.
    pub fn require(&self, name: &str) -> Result<Snapshot> {
        if let Some(s) = self.snapshot(name)? {
            return Ok(s);
        }
        let latest = format!("{name}:latest");
        let wanted = |t: &String| t == name || (!name.contains(':') && *t == latest);
        let mut found: Option<Snapshot> = None;
        for s in self.snapshots()? {
            let carries = s.meta.images().iter().any(|i| i.tags.iter().any(wanted))
                || s.meta.repo_tags.iter().flatten().any(wanted);
            let newer = found
                .as_ref()
                .is_none_or(|f| s.meta.tag_time_ms(s.added_at) > f.meta.tag_time_ms(f.added_at));
            if carries && s.meta.untagged.is_none() && newer {
                found = Some(s);
            }
        }
        if let Some(s) = found {
            return Ok(s);
        }
        let waiting = self
            .waiting_volumes()?
            .iter()
            .any(|v| v.snapshots.iter().any(|s| s == name));
        if waiting {
            return Err(Error::Invalid(format!(
                "snapshot '{name}' is still waiting for volumes of its set: 'ferry status' says which, then unpack them"
            )));
        }
        Err(Error::UnknownSnapshot(name.to_string()))
    }

    /// Every snapshot with this stream hash, oldest first.
    pub fn snapshots_by_hash(&self, hash: &SnapshotDigest) -> Result<Vec<Snapshot>> {
        let mut stmt = self.conn.prepare(
            "SELECT rowid, name, size, hash, entries, chunks, stored, new_bytes, added_at, meta
             FROM snapshots WHERE hash = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([&hash.as_bytes()[..]], row_to_snapshot)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Calls `each` with the snapshot's recipe, in order, as batches of
    /// pieces with their chunks' index entries. Memory stays bounded by
    /// `batch` whatever the snapshot's size.
    pub fn for_each_piece_batch(
        &self,
        snapshot: i64,
        batch: usize,
        mut each: impl FnMut(&[(Piece, ChunkEntry)]) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(if self.schema.has_ops() {
            "SELECT r.seq, r.chunk, r.off, r.len, c.id, c.file, c.offset, c.clen, c.len, c.codec, r.op, r.out
             FROM recipe r JOIN chunks c ON c.rowid = r.chunk
             WHERE r.snapshot = ?1 AND r.seq >= ?2 ORDER BY r.seq LIMIT ?3"
        } else {
            "SELECT r.seq, r.chunk, r.off, r.len, c.id, c.file, c.offset, c.clen, c.len, c.codec, 0, 0
             FROM recipe r JOIN chunks c ON c.rowid = r.chunk
             WHERE r.snapshot = ?1 AND r.seq >= ?2 ORDER BY r.seq LIMIT ?3"
        })?;
        let mut next_seq = 0i64;
        loop {
            let mut rows = stmt.query(params![snapshot, next_seq, batch as i64])?;
            let mut out = Vec::with_capacity(batch);
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                next_seq = seq + 1;
                let op: u8 = row.get(10)?;
                let piece = Piece {
                    chunk: row.get(1)?,
                    off: row.get(2)?,
                    len: row.get(3)?,
                    op: Op::from_u8(op).ok_or_else(|| Error::BadStore {
                        store: self.dir.clone(),
                        msg: format!("recipe row {seq} has unknown op {op}: the index is damaged"),
                    })?,
                    out: row.get(11)?,
                };
                out.push((piece, chunk_from_row(row, 4, piece.chunk)?));
            }
            drop(rows);
            if out.is_empty() {
                return Ok(());
            }
            each(&out)?;
            if out.len() < batch {
                return Ok(());
            }
        }
    }

    /// The snapshot's distinct chunks in first-use order, and a BLAKE3 over
    /// its recipe (chunk id, offset and length of every piece). Compact pack
    /// recipes index into this order, so both sides compute it the same way.
    pub fn recipe_summary(&self, snapshot: i64) -> Result<RecipeSummary> {
        self.recipe_summary_with(snapshot, |_, _| {})
    }

    /// [`Store::recipe_summary`], showing every piece to `visit` on the way.
    pub fn recipe_summary_with(
        &self,
        snapshot: i64,
        mut visit: impl FnMut(&Piece, &ChunkEntry),
    ) -> Result<RecipeSummary> {
        let mut hasher = blake3::Hasher::new();
        let mut seen = std::collections::HashSet::new();
        let mut order = Vec::new();
        self.for_each_piece_batch(snapshot, 4096, |batch| {
            for (p, c) in batch {
                visit(p, c);
                hasher.update(c.id.as_bytes());
                hasher.update(&p.off.to_le_bytes());
                hasher.update(&p.len.to_le_bytes());
                if p.op != Op::Out {
                    // Recipes of plain pieces hash as they did before ops existed.
                    hasher.update(&[p.op as u8]);
                    hasher.update(&p.out.to_le_bytes());
                }
                if seen.insert(p.chunk) {
                    order.push(p.chunk);
                }
            }
            Ok(())
        })?;
        Ok(RecipeSummary {
            order,
            digest: *hasher.finalize().as_bytes(),
        })
    }

    /// Calls `each` with every chunk of the index, in the order they were
    /// stored (which is data-file order), in batches of at most `batch`.
    pub fn for_each_chunk_batch(
        &self,
        batch: usize,
        mut each: impl FnMut(&[ChunkEntry]) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT rowid, id, file, offset, clen, len, codec FROM chunks
             WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        )?;
        let mut last = ChunkRow(0);
        loop {
            let mut rows = stmt.query(params![last, batch as i64])?;
            let mut out = Vec::with_capacity(batch);
            while let Some(row) = rows.next()? {
                last = row.get(0)?;
                out.push(chunk_from_row(row, 1, last)?);
            }
            drop(rows);
            if out.is_empty() {
                return Ok(());
            }
            each(&out)?;
            if out.len() < batch {
                return Ok(());
            }
        }
    }

    /// Encoded bytes of every chunk in the index.
    pub fn encoded_bytes(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT coalesce(sum(clen), 0) FROM chunks", [], |r| {
                r.get(0)
            })?)
    }

    /// Recipe rows of `snapshot` that name a chunk the index does not have.
    pub fn pieces_without_chunk(&self, snapshot: i64) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM recipe r LEFT JOIN chunks c ON c.rowid = r.chunk
             WHERE r.snapshot = ?1 AND c.rowid IS NULL",
            [snapshot],
            |r| r.get(0),
        )?)
    }

    /// Decoded length of a chunk, by row id.
    pub fn chunk_len(&self, rowid: ChunkRow) -> Result<Option<u32>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT len FROM chunks WHERE rowid = ?1")?;
        Ok(stmt.query_row([rowid], |r| r.get(0)).optional()?)
    }

    /// A chunk's super-features (empty when none were recorded).
    pub fn features(&self, chunk: ChunkRow) -> Result<Vec<i64>> {
        if !self.schema.has(Table::Features) {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT sf FROM features WHERE chunk = ?1")?;
        let rows = stmt.query_map([chunk], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Chunks sharing super-feature `sf`.
    pub fn chunks_with_feature(&self, sf: i64) -> Result<Vec<ChunkRow>> {
        if !self.schema.has(Table::Features) {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT chunk FROM features WHERE sf = ?1 LIMIT 64")?;
        let rows = stmt.query_map([sf], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The files of a snapshot that `add` split out of tars, in recipe
    /// order: the recipe row where each one's contents start, its size and
    /// its path (empty for a snapshot that came in a pack).
    pub fn files(&self, snapshot: i64) -> Result<Vec<FileEntry>> {
        if !self.schema.has(Table::Files) {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, size, path FROM files WHERE snapshot = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([snapshot], |r| {
            Ok(FileEntry {
                seq: r.get(0)?,
                size: r.get(1)?,
                path: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A chunk's index entry by row id.
    pub fn chunk_by_row(&self, rowid: ChunkRow) -> Result<Option<ChunkEntry>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT rowid, id, file, offset, clen, len, codec FROM chunks WHERE rowid = ?1",
        )?;
        Ok(stmt
            .query_row([rowid], |row| chunk_from_row(row, 1, rowid))
            .optional()?)
    }

    /// Looks a chunk up by id.
    pub fn chunk(&self, id: &ChunkId) -> Result<Option<ChunkEntry>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT rowid, id, file, offset, clen, len, codec FROM chunks WHERE id = ?1",
        )?;
        Ok(stmt
            .query_row([&id.as_bytes()[..]], |row| {
                let rowid = row.get(0)?;
                chunk_from_row(row, 1, rowid)
            })
            .optional()?)
    }
}

pub(super) fn chunk_from_row(
    row: &rusqlite::Row<'_>,
    at: usize,
    rowid: ChunkRow,
) -> rusqlite::Result<ChunkEntry> {
    let id: Vec<u8> = row.get(at)?;
    let codec: u8 = row.get(at + 5)?;
    Ok(ChunkEntry {
        rowid,
        id: id.as_slice().try_into().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                at,
                rusqlite::types::Type::Blob,
                "chunk id".into(),
            )
        })?,
        loc: Location {
            file: row.get(at + 1)?,
            offset: row.get(at + 2)?,
            clen: row.get(at + 3)?,
        },
        len: row.get(at + 4)?,
        codec: Codec::from_u8(codec).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                at + 5,
                rusqlite::types::Type::Integer,
                "codec".into(),
            )
        })?,
    })
}

fn row_to_snapshot(row: &rusqlite::Row<'_>) -> rusqlite::Result<Snapshot> {
    let hash: [u8; 32] = row.get(3)?;
    let meta: String = row.get(9)?;
    Ok(Snapshot {
        rowid: row.get(0)?,
        name: row.get(1)?,
        size: row.get(2)?,
        blake3: SnapshotDigest(hash),
        entries: row.get(4)?,
        chunks: row.get(5)?,
        stored: row.get(6)?,
        new_bytes: row.get(7)?,
        added_at: row.get(8)?,
        meta: SnapshotMeta::from_json(&meta),
    })
}
