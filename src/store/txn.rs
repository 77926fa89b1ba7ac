//! Write operations and read views: [`Store::write`] runs a closure as one
//! index transaction plus appends to the data files, committed together or
//! undone together; [`Txn`] holds the writes an operation may make.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};

use super::data::{self, DataWriter};
use super::{ChunkRow, NewSnapshot, Piece, Snapshot, Store};
use crate::chunker::ChunkId;
use crate::codec::Codec;
use crate::error::{Error, Result};

impl Store {
    /// Runs `f` as one write operation: an index transaction plus appends to
    /// the data files. On success the data is fsynced and then the
    /// transaction commits; on failure both are undone.
    pub fn write<T>(&mut self, f: impl FnOnce(&mut Txn<'_>) -> Result<T>) -> Result<T> {
        self.write_or_discard(|txn| f(txn).map(|v| (v, true)))
    }

    /// Like [`Store::write`], but the operation may decide to keep nothing:
    /// when `f` returns `(value, false)` everything it wrote is undone and
    /// `value` is returned.
    pub fn write_or_discard<T>(
        &mut self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<(T, bool)>,
    ) -> Result<T> {
        assert!(self._lock.is_some(), "write on a store opened for reading");
        let data = DataWriter::open(&self.data_dir())?;
        let last_chunk: i64 =
            self.conn
                .query_row("SELECT coalesce(max(rowid), 0) FROM chunks", [], |r| {
                    r.get(0)
                })?;
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut txn = Txn {
            store: self,
            data: Some(data),
            checkpoints: 0,
            last_chunk: ChunkRow(last_chunk),
            file_lens: HashMap::new(),
            repaired: HashSet::new(),
        };
        let result = f(&mut txn);
        let checkpoints = txn.checkpoints;
        let mut data = txn.data.take().expect("data writer");
        if checkpoints > 0 && !matches!(result, Ok((_, true))) {
            // Undo what earlier checkpoints committed too: only chunks, which
            // this operation appended after every row that existed before.
            let _ = self.conn.execute_batch("ROLLBACK");
            let undone = self
                .conn
                .execute_batch(&format!(
                    "BEGIN IMMEDIATE; DELETE FROM chunks WHERE rowid > {last_chunk};
                     DELETE FROM features WHERE chunk > {last_chunk}; COMMIT;"
                ))
                .map_err(Error::from)
                .and_then(|()| data.undo_all(self.removal_wait()).map(|_| ()));
            return match (result, undone) {
                (Ok((v, _)), Ok(())) => Ok(v),
                (Ok(_), Err(u)) => Err(u),
                (Err(e), Ok(())) => Err(e),
                (Err(e), Err(u)) => Err(Error::Invalid(format!(
                    "{e} (and undoing the partial write failed: {u})"
                ))),
            };
        }
        let undo = |conn: &Connection, data: DataWriter, e: Error| -> Error {
            let _ = conn.execute_batch("ROLLBACK");
            match data.rollback() {
                Ok(()) => e,
                // Keep the first error; say the undo failed too.
                Err(r) => {
                    Error::Invalid(format!("{e} (and undoing the partial write failed: {r})"))
                }
            }
        };
        match result {
            Ok((v, false)) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                data.rollback()?;
                Ok(v)
            }
            Ok((v, true)) => match data.sync() {
                Err(e) => Err(undo(&self.conn, data, e)),
                Ok(()) => match self.conn.execute_batch("COMMIT") {
                    Ok(()) => Ok(v),
                    Err(e) => Err(undo(&self.conn, data, e.into())),
                },
            },
            Err(e) => Err(undo(&self.conn, data, e)),
        }
    }

    /// Starts a read transaction, so that every query until the returned
    /// guard is dropped sees the same state of the index (WAL keeps it even
    /// while a writer commits). Nested calls share the outer one.
    pub fn read_view(&self) -> Result<ReadView<'_>> {
        if !self.conn.is_autocommit() {
            return Ok(ReadView { conn: None });
        }
        self.conn.execute_batch("BEGIN DEFERRED")?;
        Ok(ReadView {
            conn: Some(&self.conn),
        })
    }
}

/// See [`Store::read_view`]; ends the read transaction when dropped.
pub struct ReadView<'a> {
    conn: Option<&'a Connection>,
}

impl Drop for ReadView<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn {
            let _ = c.execute_batch("COMMIT");
        }
    }
}

/// A write operation in progress; see [`Store::write`].
pub struct Txn<'s> {
    pub(super) store: &'s mut Store,
    data: Option<DataWriter>,
    checkpoints: u32,
    /// The newest chunk row before this operation: rows after it are its own.
    last_chunk: ChunkRow,
    /// Lengths of the data files older rows name, each read once (`None`:
    /// the file is missing).
    file_lens: HashMap<u32, Option<u64>>,
    /// Rows whose data was missing and that this operation wrote again.
    repaired: HashSet<ChunkRow>,
}

impl Txn<'_> {
    /// The store being written.
    pub fn store(&self) -> &Store {
        self.store
    }

    /// Looks a chunk up by id, seeing this transaction's own inserts. A row
    /// whose data file no longer covers its bytes (a file deleted or cut
    /// short) counts as absent, so that the operation writes the chunk again
    /// and [`Txn::insert_chunk`] repairs the row: one `stat` per data file
    /// per operation, no read.
    pub fn chunk_rowid(&mut self, id: &ChunkId) -> Result<Option<ChunkRow>> {
        let mut stmt = self
            .store
            .conn
            .prepare_cached("SELECT rowid, file, offset, clen FROM chunks WHERE id = ?1")?;
        let found: Option<(ChunkRow, u32, u64, u64)> = stmt
            .query_row([&id.as_bytes()[..]], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        let Some((row, file, offset, clen)) = found else {
            return Ok(None);
        };
        if row > self.last_chunk || self.repaired.contains(&row) {
            return Ok(Some(row));
        }
        let dir = self.store.data_dir();
        let len = *self
            .file_lens
            .entry(file)
            .or_insert_with(|| data::file_len(&dir, file));
        let end = offset + data::ENTRY_HEADER_LEN + clen;
        Ok(len.filter(|&l| l >= end).map(|_| row))
    }

    /// How many chunks whose data was missing this operation wrote again.
    pub fn repaired(&self) -> usize {
        self.repaired.len()
    }

    /// Commits the chunks stored so far (data fsynced first) and goes on in
    /// a new transaction: if the process dies, they stay and a rerun finds
    /// them. Only chunk inserts may precede a checkpoint: when the operation
    /// later fails, every chunk it stored is removed again.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.data.as_mut().expect("data writer").checkpoint()?;
        self.store.conn.execute_batch("COMMIT; BEGIN IMMEDIATE")?;
        self.checkpoints += 1;
        Ok(())
    }

    /// Pushes buffered chunk bytes to the data files (not yet fsynced), so
    /// that this transaction can read back what it wrote.
    pub fn flush_data(&mut self) -> Result<()> {
        self.data.as_mut().expect("data writer").flush()
    }

    /// Appends an encoded chunk to the data files and indexes it.
    pub fn insert_chunk(
        &mut self,
        id: &ChunkId,
        codec: Codec,
        len: u32,
        payload: &[u8],
    ) -> Result<ChunkRow> {
        let loc = self
            .data
            .as_mut()
            .expect("data writer")
            .append(id, codec, len, payload)?;
        // A row whose data was missing (see `chunk_rowid`) keeps its rowid,
        // which recipes name, and takes the new location.
        let mut stmt = self.store.conn.prepare_cached(
            "INSERT INTO chunks (id, file, offset, clen, len, codec) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET file = excluded.file, offset = excluded.offset,
               clen = excluded.clen, len = excluded.len, codec = excluded.codec
             RETURNING rowid",
        )?;
        let row: ChunkRow = stmt.query_row(
            params![
                &id.as_bytes()[..],
                loc.file,
                loc.offset,
                loc.clen,
                len,
                codec as u8
            ],
            |r| r.get(0),
        )?;
        if row <= self.last_chunk {
            self.repaired.insert(row);
        }
        Ok(row)
    }

    /// Records a chunk's super-features (see [`crate::similarity`]), all
    /// in one statement: a chunk's rows cost one step of SQLite, not six.
    pub fn insert_features(
        &mut self,
        chunk: ChunkRow,
        sfs: &[i64; crate::similarity::SUPER_FEATURES],
    ) -> Result<()> {
        const _: () = assert!(
            crate::similarity::SUPER_FEATURES == 6,
            "one placeholder each"
        );
        let mut stmt = self.store.conn.prepare_cached(
            "INSERT OR IGNORE INTO features (sf, chunk)
             VALUES (?1, ?7), (?2, ?7), (?3, ?7), (?4, ?7), (?5, ?7), (?6, ?7)",
        )?;
        stmt.execute(params![
            sfs[0], sfs[1], sfs[2], sfs[3], sfs[4], sfs[5], chunk
        ])?;
        Ok(())
    }

    /// Creates a snapshot row; its recipe follows with [`Txn::push_piece`],
    /// and [`Txn::finish_snapshot`] fills in the counts.
    pub fn create_snapshot(&mut self, s: &NewSnapshot<'_>) -> Result<i64> {
        self.store.conn.execute(
            "INSERT INTO snapshots (name, size, hash, entries, chunks, stored, new_bytes, added_at, meta)
             VALUES (?1, ?2, ?3, 0, 0, 0, ?4, ?5, ?6)",
            params![s.name, s.size, &s.hash.as_bytes()[..], s.new_bytes, s.added_at, s.meta.to_json()],
        )?;
        Ok(self.store.conn.last_insert_rowid())
    }

    /// Sets what a snapshot created as a placeholder turned out to be: its
    /// name, size, hash, new bytes and metadata. Its `added_at` stays as it
    /// was created (`s.added_at` is not used).
    pub fn describe_snapshot(&mut self, snapshot: i64, s: &NewSnapshot<'_>) -> Result<()> {
        self.store.conn.execute(
            "UPDATE snapshots SET name = ?2, size = ?3, hash = ?4, new_bytes = ?5, meta = ?6 WHERE rowid = ?1",
            params![snapshot, s.name, s.size, &s.hash.as_bytes()[..], s.new_bytes, s.meta.to_json()],
        )?;
        Ok(())
    }

    /// Records that the file at `path`, `size` bytes, starts at recipe row
    /// `seq` of the snapshot.
    pub fn push_file(&mut self, snapshot: i64, seq: u64, size: u64, path: &[u8]) -> Result<()> {
        let mut stmt = self.store.conn.prepare_cached(
            "INSERT OR REPLACE INTO files (snapshot, seq, size, path) VALUES (?1, ?2, ?3, ?4)",
        )?;
        stmt.execute(params![snapshot, seq, size, path])?;
        Ok(())
    }

    /// Appends one recipe row.
    pub fn push_piece(&mut self, snapshot: i64, seq: u64, piece: Piece) -> Result<()> {
        let mut stmt = self.store.conn.prepare_cached(
            "INSERT INTO recipe (snapshot, seq, chunk, off, len, op, out) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        stmt.execute(params![
            snapshot,
            seq,
            piece.chunk,
            piece.off,
            piece.len,
            piece.op as u8,
            piece.out
        ])?;
        Ok(())
    }

    /// Fills in a snapshot's entry, chunk and stored-byte counts from its
    /// recipe, and checks that the recipe adds up to the snapshot's size.
    pub fn finish_snapshot(&mut self, snapshot: i64) -> Result<()> {
        let (entries, total): (u64, Option<u64>) = self.store.conn.query_row(
            "SELECT count(*), sum(CASE op WHEN 0 THEN len WHEN 2 THEN out ELSE 0 END) FROM recipe WHERE snapshot = ?1",
            [snapshot],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (chunks, stored): (u64, Option<u64>) = self.store.conn.query_row(
            "SELECT count(*), sum(c.clen) FROM (SELECT DISTINCT chunk FROM recipe WHERE snapshot = ?1) r
             JOIN chunks c ON c.rowid = r.chunk",
            [snapshot],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let size: u64 = self.store.conn.query_row(
            "SELECT size FROM snapshots WHERE rowid = ?1",
            [snapshot],
            |r| r.get(0),
        )?;
        if total.unwrap_or(0) != size {
            return Err(Error::Integrity(format!(
                "recipe adds up to {} bytes but the snapshot is {size} bytes",
                total.unwrap_or(0)
            )));
        }
        self.store.conn.execute(
            "UPDATE snapshots SET entries = ?2, chunks = ?3, stored = ?4 WHERE rowid = ?1",
            params![snapshot, entries, chunks, stored.unwrap_or(0)],
        )?;
        Ok(())
    }

    /// Moves the tag that names snapshot `old` off it: the snapshot is
    /// renamed `TAG@DIGEST` (the first 16 hex digits of its BLAKE3) and
    /// marked untagged, and stays until removed. When a snapshot of that
    /// name already keeps the same content, this one is removed instead.
    /// Returns the name the content keeps.
    pub fn untag_snapshot(&mut self, old: &Snapshot) -> Result<String> {
        let tag: String = old.name.chars().take(480).collect();
        let kept = format!("{tag}@{}", old.blake3.short());
        if let Some(same) = self.store.snapshot(&kept)?
            && same.blake3 == old.blake3
        {
            self.delete_snapshot(old.rowid)?;
            return Ok(kept);
        }
        let mut meta = old.meta.clone();
        meta.set_untagged(&old.name, super::now());
        self.store.conn.execute(
            "UPDATE snapshots SET name = ?2, meta = ?3 WHERE rowid = ?1",
            params![old.rowid, kept, meta.to_json()],
        )?;
        Ok(kept)
    }

    /// Removes a snapshot and its recipe (its chunks stay for a later gc).
    pub fn delete_snapshot(&mut self, snapshot: i64) -> Result<()> {
        self.store
            .conn
            .execute("DELETE FROM recipe WHERE snapshot = ?1", [snapshot])?;
        self.store
            .conn
            .execute("DELETE FROM files WHERE snapshot = ?1", [snapshot])?;
        self.store
            .conn
            .execute("DELETE FROM layers WHERE snapshot = ?1", [snapshot])?;
        self.store
            .conn
            .execute("DELETE FROM snapshots WHERE rowid = ?1", [snapshot])?;
        Ok(())
    }
}
