//! The chunk store: a directory of append-only data files plus a SQLite
//! index (chunks, snapshots, recipes), guarded by a lock file for writers.
//!
//! Crash safety comes from ordering: chunk bytes are fsynced before the
//! index transaction that references them commits, so after a crash the
//! index only names bytes that are on disk. A failed write operation is
//! rolled back completely: the transaction is dropped and the data files are
//! truncated back to where they were.
//!
//! Every SQL statement of ferry lives under this module: `schema` (the
//! numbered migrations), `txn` (write operations), `queries` (reads),
//! `ledger` (what peers hold), `trust` (trusted keys); chunk bytes leave
//! the store only through [`Store::read_verified`], which checks each chunk
//! against its id; `lock` is the writer lock and [`data`] the data files.

pub mod data;
mod gc;
mod layers;
mod ledger;
mod lock;
mod meta;
mod queries;
mod readers;
mod schema;
mod trust;
mod txn;
mod verified;
pub mod volumes;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::chunker::{self, ChunkId, Params};
use crate::codec::Codec;
use crate::error::{Error, IoContext, Result};
pub use crate::id::{ChunkRow, SnapshotDigest};
use data::{DataReader, Location};
pub use gc::{GcOptions, GcReport};
pub use layers::{KnownLayer, KnownLayers};
pub use ledger::Peer;
pub use meta::{CompressedMeta, DockerMeta, ReceivedMeta, SnapshotMeta};
pub use schema::SCHEMA_VERSION;
use schema::Schema;
pub use trust::TrustedKey;
pub use txn::{ReadView, Txn};
pub use verified::{ChunkFault, Damage, read_decoded_in, read_verified_in};

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
    /// BLAKE3 of the reassembled stream (hex in JSON).
    pub blake3: SnapshotDigest,
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
    /// Metadata: source, split, compression, docker images, arrival.
    pub meta: SnapshotMeta,
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
    /// Chunk row in the index.
    pub chunk: ChunkRow,
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
    pub fn copied(chunk: ChunkRow, off: u32, len: u32) -> Piece {
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
    /// Distinct chunk rows in first-use order.
    pub order: Vec<ChunkRow>,
    /// BLAKE3 over the recipe.
    pub digest: [u8; 32],
}

/// A chunk's index entry.
#[derive(Debug, Clone, Copy)]
pub struct ChunkEntry {
    /// Row in the index.
    pub rowid: ChunkRow,
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
    /// What the index holds, read when the store was opened.
    schema: Schema,
    _lock: Option<File>,
    /// The readers' lock, held shared by a store opened for reading.
    _readers: Option<File>,
    /// How long a writer waits for readers before removing committed bytes.
    lock_wait: Duration,
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
        check_index(dir)?;
        let readers = readers::shared(dir);
        Self::open_inner(dir, None, readers, Duration::ZERO)
    }

    /// Opens the store for writing, creating it on first use. Fails with
    /// [`Error::Locked`] when another process holds the lock for longer
    /// than `lock_wait`.
    pub fn open_writer(dir: &Path, lock_wait: Duration) -> Result<Store> {
        check_damage(dir)?;
        std::fs::create_dir_all(dir.join("data"))
            .ctx(|| format!("creating store directory {}", dir.display()))?;
        let lock = lock::acquire(dir, lock_wait).map_err(|e| match e {
            Error::Io { ref source, .. }
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                Error::BadStore {
                    store: dir.to_path_buf(),
                    msg: format!(
                        "the store is read-only to this user ({source}): ferry can read it (ls, checkout, pack, verify) but not change it"
                    ),
                }
            }
            e => e,
        })?;
        Self::open_inner(dir, Some(lock), None, lock_wait)
    }

    /// How long a writer waits for the readers' lock before it leaves
    /// committed bytes it no longer needs to the next gc.
    pub(crate) fn removal_wait(&self) -> Duration {
        self.lock_wait.max(Duration::from_secs(2))
    }

    fn open_inner(
        dir: &Path,
        lock: Option<File>,
        readers: Option<File>,
        lock_wait: Duration,
    ) -> Result<Store> {
        let path = dir.join("index.sqlite");
        let conn = if lock.is_some() {
            Connection::open(&path)?
        } else {
            open_read_only(&path)?
        };
        conn.busy_timeout(Duration::from_secs(30))?;
        if lock.is_some() {
            // WAL mode is persistent; readers find it set and need no write access.
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        let mut version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let bad = |msg: String| Error::BadStore {
            store: dir.to_path_buf(),
            msg,
        };
        if version > SCHEMA_VERSION {
            return Err(bad(format!(
                "index schema version {version} is newer than this ferry understands ({SCHEMA_VERSION}): upgrade ferry"
            )));
        }
        if version == 0 && lock.is_none() {
            return Err(bad("index is empty: the store was never initialised".into()));
        }
        // A store made with another chunker is refused before a writer
        // migrates it, so that the refusal leaves it as it was.
        let params = if version == 0 {
            None
        } else {
            Some(read_params(&conn, &bad)?)
        };
        if lock.is_some() {
            schema::migrate(&conn, version)?;
            version = SCHEMA_VERSION;
        }
        let params = match params {
            Some(p) => p,
            None => read_params(&conn, &bad)?,
        };
        let schema = Schema::read(&conn, version)?;
        Ok(Store {
            dir: dir.to_path_buf(),
            conn,
            params,
            schema,
            _lock: lock,
            _readers: readers,
            lock_wait,
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
}

/// Opens the index for a reader. Where the store can be written, this is
/// an ordinary connection (which can also recover the WAL a killed writer
/// left, as SQLite needs a writable `-shm` for that); on read-only media or
/// in a directory this user cannot write, it is read-only, and where SQLite
/// cannot even create the WAL's `-shm` there (so no writer can change the
/// store either), the index is opened as immutable.
fn open_read_only(path: &Path) -> Result<Connection> {
    use rusqlite::OpenFlags;
    let readable = |c: &Connection| {
        c.busy_timeout(Duration::from_secs(30))
            .and_then(|()| c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)))
            .is_ok()
    };
    let conn = Connection::open(path)?;
    if readable(&conn) {
        return Ok(conn);
    }
    drop(conn);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    if readable(&conn) {
        return Ok(conn);
    }
    drop(conn);
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'?' | b'#' | b'%' => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(*b as char),
        }
    }
    uri.push_str("?immutable=1");
    Ok(Connection::open_with_flags(
        &uri,
        flags | OpenFlags::SQLITE_OPEN_URI,
    )?)
}

/// Refuses a store whose data files hold chunks but whose index is missing
/// or empty: starting a new index beside them would silently drop every
/// snapshot, and calling the store sound would hide the loss.
pub fn check_damage(dir: &Path) -> Result<()> {
    if !is_uninitialised(dir) {
        return Ok(());
    }
    let data = dir.join("data");
    let held = data::list(&data)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| data::file_len(&data, n))
        .filter(|&l| l > data::FILE_HEADER_LEN)
        .count();
    if held == 0 {
        return Ok(());
    }
    let path = dir.join("index.sqlite");
    Err(Error::BadStore {
        store: dir.to_path_buf(),
        msg: format!(
            "its index ({}) is {} but {held} data files hold chunks: the store is damaged. \
             Restore index.sqlite from a backup, or move the store away and add or unpack into a new one",
            path.display(),
            if path.exists() { "empty" } else { "missing" }
        ),
    })
}

/// What [`Store::open`] needs: an index beside the data files.
fn check_index(dir: &Path) -> Result<()> {
    check_damage(dir)?;
    if dir.join("index.sqlite").exists() {
        return Ok(());
    }
    Err(Error::BadStore {
        store: dir.to_path_buf(),
        msg: if dir.exists() {
            "no ferry store here yet: 'ferry add' or 'ferry unpack' creates one".into()
        } else {
            "no such directory: check --store (or $FERRY_STORE); 'ferry add' or 'ferry unpack' creates a store".into()
        },
    })
}

/// The chunker settings of an initialised index, refused unless they are
/// this ferry's.
fn read_params(conn: &Connection, bad: &dyn Fn(String) -> Error) -> Result<Params> {
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
    Ok(params)
}

/// What a new snapshot row holds before its recipe is written.
pub struct NewSnapshot<'a> {
    /// Name.
    pub name: &'a str,
    /// Stream size.
    pub size: u64,
    /// Stream BLAKE3.
    pub hash: SnapshotDigest,
    /// Encoded bytes this snapshot added.
    pub new_bytes: u64,
    /// Added at (Unix seconds).
    pub added_at: i64,
    /// Metadata.
    pub meta: &'a SnapshotMeta,
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl rusqlite::ToSql for ChunkRow {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl rusqlite::types::FromSql for ChunkRow {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        i64::column_result(v).map(ChunkRow)
    }
}
