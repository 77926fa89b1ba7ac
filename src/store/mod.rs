//! The chunk store: a directory of append-only data files plus a SQLite
//! index (chunks, snapshots, recipes), guarded by a lock file for writers.
//!
//! Crash safety comes from ordering: chunk bytes are fsynced before the
//! index transaction that references them commits, so after a crash the
//! index only names bytes that are on disk. A failed write operation is
//! rolled back completely: the transaction is dropped and the data files are
//! truncated back to where they were.

pub mod data;
pub mod volumes;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::chunker::{self, ChunkId, Params};
use crate::codec::Codec;
use crate::error::{Error, IoContext, Result};
use data::{DataReader, DataWriter, Location};

/// Version of the index schema (also kept in SQLite's `user_version`).
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE config (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE chunks (
    rowid  INTEGER PRIMARY KEY,
    id     BLOB    NOT NULL UNIQUE,
    file   INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    clen   INTEGER NOT NULL,
    len    INTEGER NOT NULL,
    codec  INTEGER NOT NULL
);
CREATE TABLE snapshots (
    rowid     INTEGER PRIMARY KEY,
    name      TEXT    NOT NULL UNIQUE,
    size      INTEGER NOT NULL,
    hash      BLOB    NOT NULL,
    entries   INTEGER NOT NULL,
    chunks    INTEGER NOT NULL,
    stored    INTEGER NOT NULL,
    new_bytes INTEGER NOT NULL,
    added_at  INTEGER NOT NULL,
    meta      TEXT    NOT NULL
);
CREATE TABLE recipe (
    snapshot INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    chunk    INTEGER NOT NULL,
    off      INTEGER NOT NULL,
    len      INTEGER NOT NULL,
    op       INTEGER NOT NULL DEFAULT 0,
    out      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (snapshot, seq)
) WITHOUT ROWID;
";

/// Tables for volume sets, the peer ledger and trusted keys (schema 2).
/// Created by every writer if missing, so readers treat their absence as
/// empty.
const AIRGAP_TABLES: &str = "
CREATE TABLE IF NOT EXISTS volumes (
    set_id      BLOB    NOT NULL,
    idx         INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    first       INTEGER NOT NULL,
    chunks      INTEGER NOT NULL,
    snapshots   TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (set_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS volume_chunks (
    set_id BLOB    NOT NULL,
    pos    INTEGER NOT NULL,
    chunk  INTEGER NOT NULL,
    PRIMARY KEY (set_id, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    set_id BLOB    NOT NULL,
    seq    INTEGER NOT NULL,
    name   TEXT    NOT NULL,
    record BLOB    NOT NULL,
    PRIMARY KEY (set_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS peers (
    name    TEXT    PRIMARY KEY,
    updated INTEGER NOT NULL,
    source  TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS peer_chunks (
    peer  TEXT    NOT NULL,
    chunk INTEGER NOT NULL,
    PRIMARY KEY (peer, chunk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS peer_snapshots (
    peer TEXT NOT NULL,
    name TEXT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (peer, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS features (
    sf    INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    PRIMARY KEY (sf, chunk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS features_chunk ON features (chunk);
CREATE TABLE IF NOT EXISTS trusted_keys (
    key      BLOB    PRIMARY KEY,
    comment  TEXT    NOT NULL,
    added_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    snapshot INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    path     BLOB    NOT NULL,
    PRIMARY KEY (snapshot, seq)
) WITHOUT ROWID;
";

/// A file split out of a snapshot's tars (see [`Store::files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Recipe row where its contents start.
    pub seq: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its path, as its tar entry names it.
    pub path: Vec<u8>,
}

/// A snapshot as listed by `ferry ls`.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Index row id.
    #[serde(skip)]
    pub rowid: i64,
    /// Name (`app:2`, a file name, or `--name`).
    pub name: String,
    /// Bytes of the reassembled stream.
    pub size: u64,
    /// BLAKE3 of the reassembled stream, hex.
    pub blake3: String,
    /// Recipe entries.
    pub entries: u64,
    /// Distinct chunks referenced.
    pub chunks: u64,
    /// Encoded bytes of the distinct chunks it references.
    pub stored: u64,
    /// Encoded bytes this snapshot added to the store when it arrived.
    pub new_bytes: u64,
    /// Seconds since the Unix epoch when it was added or unpacked.
    pub added_at: i64,
    /// Free-form metadata: source, compression, docker tags.
    pub meta: serde_json::Value,
}

/// What a recipe piece's bytes are for (see docs/FORMAT.md, "Recipes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Bytes of the snapshot's stream, copied out as they are.
    Out = 0,
    /// Plain text of a deflate stream, fed to the part that re-creates it.
    Plain = 1,
    /// A deflate part: the chunk holds its re-creation data (see
    /// [`crate::archive::gzip`]); it turns plain text into `out` bytes.
    Part = 2,
}

impl Op {
    /// From its number in the index or a pack.
    pub fn from_u8(v: u8) -> Option<Op> {
        match v {
            0 => Some(Op::Out),
            1 => Some(Op::Plain),
            2 => Some(Op::Part),
            _ => None,
        }
    }
}

/// One piece of a snapshot's recipe: `len` bytes of a chunk from `off`,
/// used as `op` says.
#[derive(Debug, Clone, Copy)]
pub struct Piece {
    /// Chunk row id in the index.
    pub chunk: i64,
    /// Offset within the chunk.
    pub off: u32,
    /// Bytes taken.
    pub len: u32,
    /// What the bytes are for.
    pub op: Op,
    /// Stream bytes a [`Op::Part`] piece produces (0 for other ops).
    pub out: u64,
}

impl Piece {
    /// Bytes of plain stream output.
    pub fn copied(chunk: i64, off: u32, len: u32) -> Piece {
        Piece {
            chunk,
            off,
            len,
            op: Op::Out,
            out: 0,
        }
    }

    /// Bytes this piece adds to the snapshot's stream.
    pub fn output(&self) -> u64 {
        match self.op {
            Op::Out => self.len as u64,
            Op::Plain => 0,
            Op::Part => self.out,
        }
    }
}

/// See [`Store::recipe_summary`].
#[derive(Debug, Clone)]
pub struct RecipeSummary {
    /// Distinct chunk row ids in first-use order.
    pub order: Vec<i64>,
    /// BLAKE3 over the recipe.
    pub digest: [u8; 32],
}

/// A chunk's index entry.
#[derive(Debug, Clone, Copy)]
pub struct ChunkEntry {
    /// Row id.
    pub rowid: i64,
    /// BLAKE3 id.
    pub id: ChunkId,
    /// Where its bytes are.
    pub loc: Location,
    /// Decoded length.
    pub len: u32,
    /// Encoding.
    pub codec: Codec,
}

/// An open store. Read operations need no lock; [`Store::open_writer`]
/// takes the store's exclusive lock for the life of the value.
pub struct Store {
    dir: PathBuf,
    conn: Connection,
    params: Params,
    /// The recipe table has `op` and `out` (schema 2 and later).
    has_ops: bool,
    /// The index has the `features` table (written by this ferry).
    has_features: bool,
    has_files: bool,
    _lock: Option<File>,
}

/// True when `dir` holds no initialised store: no index, or an index a
/// first write never finished setting up (a writer killed at that moment).
pub fn is_uninitialised(dir: &Path) -> bool {
    let path = dir.join("index.sqlite");
    if !path.exists() {
        return true;
    }
    Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)))
        .map(|v| v == 0)
        .unwrap_or(false)
}

/// Where the store lives when neither `--store` nor `$FERRY_STORE` says.
pub fn default_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("ferry")
}

impl Store {
    /// Opens an existing store for reading.
    pub fn open(dir: &Path) -> Result<Store> {
        if !dir.join("index.sqlite").exists() {
            return Err(Error::BadStore {
                store: dir.to_path_buf(),
                msg: "no ferry store here yet: 'ferry add' or 'ferry unpack' creates one".into(),
            });
        }
        Self::open_inner(dir, None)
    }

    /// Opens the store for writing, creating it on first use. Fails with
    /// [`Error::Locked`] when another process holds the lock for longer
    /// than `lock_wait`.
    pub fn open_writer(dir: &Path, lock_wait: Duration) -> Result<Store> {
        std::fs::create_dir_all(dir.join("data"))
            .ctx(|| format!("creating store directory {}", dir.display()))?;
        let lock = acquire_lock(dir, lock_wait)?;
        Self::open_inner(dir, Some(lock))
    }

    fn open_inner(dir: &Path, lock: Option<File>) -> Result<Store> {
        let path = dir.join("index.sqlite");
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        if lock.is_some() {
            // WAL mode is persistent; readers find it set and need no write access.
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let bad = |msg: String| Error::BadStore {
            store: dir.to_path_buf(),
            msg,
        };
        if version == 0 {
            if lock.is_none() {
                return Err(bad("index is empty: the store was never initialised".into()));
            }
            conn.execute_batch(&format!(
                "BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION};"
            ))?;
            let p = chunker::PARAMS;
            let mut ins = conn.prepare("INSERT INTO config (key, value) VALUES (?1, ?2)")?;
            ins.execute(params!["format", "ferry-store"])?;
            ins.execute(params!["chunker", chunker::ALGORITHM])?;
            ins.execute(params!["chunk_min", p.min.to_string()])?;
            ins.execute(params!["chunk_avg", p.avg.to_string()])?;
            ins.execute(params!["chunk_max", p.max.to_string()])?;
            ins.execute(params!["created", now().to_string()])?;
            drop(ins);
            conn.execute_batch("COMMIT")?;
        } else if version == 1 && lock.is_some() {
            // Schema 2 adds recipe ops (deflate re-creation); older rows are plain output.
            conn.execute_batch(
                "BEGIN;
                 ALTER TABLE recipe ADD COLUMN op INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE recipe ADD COLUMN out INTEGER NOT NULL DEFAULT 0;
                 PRAGMA user_version = 2;
                 COMMIT;",
            )?;
        } else if version > SCHEMA_VERSION {
            return Err(bad(format!(
                "index schema version {version} is newer than this ferry understands ({SCHEMA_VERSION}): upgrade ferry"
            )));
        }
        let get = |key: &str| -> Result<String> {
            conn.query_row("SELECT value FROM config WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| bad(format!("index has no '{key}' setting: not a ferry store")))
        };
        let algo = get("chunker")?;
        let num = |key: &str| -> Result<u32> {
            get(key)?
                .parse()
                .map_err(|_| bad(format!("index setting '{key}' is not a number")))
        };
        let params = Params {
            min: num("chunk_min")?,
            avg: num("chunk_avg")?,
            max: num("chunk_max")?,
        };
        if algo != chunker::ALGORITHM || params != chunker::PARAMS {
            return Err(bad(format!(
                "store was made with chunker {algo} min={} avg={} max={}, this ferry uses {}: use a ferry of the store's version or a new store",
                params.min,
                params.avg,
                params.max,
                chunker::PARAMS
            )));
        }
        let has_ops = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? >= 2;
        if lock.is_some() {
            conn.execute_batch(AIRGAP_TABLES)?;
        }
        let has_features = table_exists(&conn, "features")?;
        let has_files = table_exists(&conn, "files")?;
        Ok(Store {
            has_files,
            dir: dir.to_path_buf(),
            conn,
            params,
            has_ops,
            has_features,
            _lock: lock,
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of data files.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Chunker parameters of this store.
    pub fn params(&self) -> Params {
        self.params
    }

    /// A reader over this store's data files.
    pub fn data_reader(&self) -> DataReader {
        DataReader::new(&self.data_dir())
    }

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
                .and_then(|()| data.undo_all());
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

    /// The index connection, for queries.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

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
    pub fn require(&self, name: &str) -> Result<Snapshot> {
        self.snapshot(name)?
            .ok_or_else(|| Error::UnknownSnapshot(name.to_string()))
    }

    /// Every snapshot with this stream hash, oldest first.
    pub fn snapshots_by_hash(&self, hash: &[u8; 32]) -> Result<Vec<Snapshot>> {
        let mut stmt = self.conn.prepare(
            "SELECT rowid, name, size, hash, entries, chunks, stored, new_bytes, added_at, meta
             FROM snapshots WHERE hash = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([&hash[..]], row_to_snapshot)?;
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
        let mut stmt = self.conn.prepare_cached(if self.has_ops {
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
                hasher.update(&c.id);
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
        let mut last = 0i64;
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

    /// Decoded length of a chunk, by row id.
    pub fn chunk_len(&self, rowid: i64) -> Result<Option<u32>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT len FROM chunks WHERE rowid = ?1")?;
        Ok(stmt.query_row([rowid], |r| r.get(0)).optional()?)
    }

    /// True when the index has `table` (the air-gap tables appear with the
    /// first write by a ferry that knows them).
    pub fn has_table(&self, table: &str) -> Result<bool> {
        table_exists(&self.conn, table)
    }

    /// A chunk's super-features (empty when none were recorded).
    pub fn features(&self, chunk: i64) -> Result<Vec<i64>> {
        if !self.has_features {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT sf FROM features WHERE chunk = ?1")?;
        let rows = stmt.query_map([chunk], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Chunks sharing super-feature `sf`.
    pub fn chunks_with_feature(&self, sf: i64) -> Result<Vec<i64>> {
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
        if !self.has_files {
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
    pub fn chunk_by_row(&self, rowid: i64) -> Result<Option<ChunkEntry>> {
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
            .query_row([&id[..]], |row| {
                let rowid = row.get(0)?;
                chunk_from_row(row, 1, rowid)
            })
            .optional()?)
    }
}

fn chunk_from_row(row: &rusqlite::Row<'_>, at: usize, rowid: i64) -> rusqlite::Result<ChunkEntry> {
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
    let hash: Vec<u8> = row.get(3)?;
    let meta: String = row.get(9)?;
    Ok(Snapshot {
        rowid: row.get(0)?,
        name: row.get(1)?,
        size: row.get(2)?,
        blake3: crate::hex(&hash),
        entries: row.get(4)?,
        chunks: row.get(5)?,
        stored: row.get(6)?,
        new_bytes: row.get(7)?,
        added_at: row.get(8)?,
        meta: serde_json::from_str(&meta).unwrap_or(serde_json::Value::Null),
    })
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

/// What a new snapshot row holds before its recipe is written.
pub struct NewSnapshot<'a> {
    /// Name.
    pub name: &'a str,
    /// Stream size.
    pub size: u64,
    /// Stream BLAKE3.
    pub hash: &'a [u8; 32],
    /// Encoded bytes this snapshot added.
    pub new_bytes: u64,
    /// Added at (Unix seconds).
    pub added_at: i64,
    /// Metadata.
    pub meta: &'a serde_json::Value,
}

/// A write operation in progress; see [`Store::write`].
pub struct Txn<'s> {
    store: &'s mut Store,
    data: Option<DataWriter>,
    checkpoints: u32,
}

impl Txn<'_> {
    /// The store being written.
    pub fn store(&self) -> &Store {
        self.store
    }

    /// Looks a chunk up by id, seeing this transaction's own inserts.
    pub fn chunk_rowid(&self, id: &ChunkId) -> Result<Option<i64>> {
        let mut stmt = self
            .store
            .conn
            .prepare_cached("SELECT rowid FROM chunks WHERE id = ?1")?;
        Ok(stmt.query_row([&id[..]], |r| r.get(0)).optional()?)
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
    ) -> Result<i64> {
        let loc = self
            .data
            .as_mut()
            .expect("data writer")
            .append(id, codec, len, payload)?;
        let mut stmt = self.store.conn.prepare_cached(
            "INSERT INTO chunks (id, file, offset, clen, len, codec) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        stmt.execute(params![
            &id[..],
            loc.file,
            loc.offset,
            loc.clen,
            len,
            codec as u8
        ])?;
        Ok(self.store.conn.last_insert_rowid())
    }

    /// Records a chunk's super-features (see [`crate::similarity`]).
    pub fn insert_features(&mut self, chunk: i64, sfs: &[i64]) -> Result<()> {
        let mut stmt = self
            .store
            .conn
            .prepare_cached("INSERT OR IGNORE INTO features (sf, chunk) VALUES (?1, ?2)")?;
        for sf in sfs {
            stmt.execute(params![sf, chunk])?;
        }
        Ok(())
    }

    /// Creates a snapshot row; its recipe follows with [`Txn::push_piece`],
    /// and [`Txn::finish_snapshot`] fills in the counts.
    pub fn create_snapshot(&mut self, s: &NewSnapshot<'_>) -> Result<i64> {
        self.store.conn.execute(
            "INSERT INTO snapshots (name, size, hash, entries, chunks, stored, new_bytes, added_at, meta)
             VALUES (?1, ?2, ?3, 0, 0, 0, ?4, ?5, ?6)",
            params![s.name, s.size, &s.hash[..], s.new_bytes, s.added_at, s.meta.to_string()],
        )?;
        Ok(self.store.conn.last_insert_rowid())
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
            .execute("DELETE FROM snapshots WHERE rowid = ?1", [snapshot])?;
        Ok(())
    }
}

/// True when the index has `table`.
fn table_exists(conn: &Connection, table: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn acquire_lock(dir: &Path, wait: Duration) -> Result<File> {
    let path = dir.join("lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .ctx(|| format!("opening lock file {}", path.display()))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    let holder = if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" ({holder})")
                    };
                    return Err(Error::Locked {
                        store: dir.to_path_buf(),
                        holder,
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("locking {}", path.display()), e));
            }
        }
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "pid {}", std::process::id());
    let _ = file.flush();
    Ok(file)
}
