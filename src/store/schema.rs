//! The index schema as numbered migrations behind SQLite's `user_version`.
//!
//! Migration N takes an index from version N-1 to N. A writer runs every
//! pending migration (and, for a new store, the initial settings) in one
//! transaction when it opens the store, so an index is always at exactly one
//! version. Readers never change the index: a store at the current version
//! has every table; an older one, not yet opened by a writer of this ferry,
//! is read as it is, and a table it lacks reads as empty. A store at a
//! version newer than this ferry's is refused.
//!
//! Migrations are append-only: once released, a migration's text never
//! changes, and a schema change is a new migration at the end of the list.

use rusqlite::{Connection, params};

use crate::chunker;
use crate::error::Result;

/// Version 1: settings, chunks, snapshots and recipes.
const BASE: &str = "
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
    PRIMARY KEY (snapshot, seq)
) WITHOUT ROWID;
";

/// Version 2: recipe ops for deflate re-creation; older rows are plain output.
const RECIPE_OPS: &str = "
ALTER TABLE recipe ADD COLUMN op INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipe ADD COLUMN out INTEGER NOT NULL DEFAULT 0;
";

/// Version 3: volume sets, the peer ledger, super-features, trusted keys
/// and split-out files. Writers at version 2 created these one by one as
/// they appeared, so a version-2 index may hold any of them already.
const AIRGAP: &str = "
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

/// Version 4: compressed layer blobs by their content digest, so an
/// unchanged layer of the next version reuses its recipe pieces without
/// being analysed again. Recipes from this version on may hold Go part
/// records (re-created by a Go encoder model), which older ferries cannot
/// re-create. (`IF NOT EXISTS`: an index whose version was set back by hand
/// keeps its tables, and must still migrate.)
const LAYERS: &str = "
CREATE TABLE IF NOT EXISTS layers (
    digest   BLOB    NOT NULL,
    snapshot INTEGER NOT NULL,
    blake3   BLOB    NOT NULL,
    size     INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    count    INTEGER NOT NULL,
    kind     INTEGER NOT NULL,
    PRIMARY KEY (digest, snapshot)
) WITHOUT ROWID;
";

/// Version 5: delta chunks of a volume that wait for a base in another
/// volume of their set (`volume_deltas`), and those bases, each a stored
/// chunk or a place in the set's chunk table (`volume_delta_bases`); and
/// which places of a set's table its volumes stored a chunk for
/// (`volume_fresh`), so its snapshots count what the whole set added.
const WAITING_DELTAS: &str = "
CREATE TABLE IF NOT EXISTS volume_fresh (
    set_id BLOB    NOT NULL,
    pos    INTEGER NOT NULL,
    PRIMARY KEY (set_id, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS volume_deltas (
    set_id  BLOB    NOT NULL,
    pos     INTEGER NOT NULL,
    id      BLOB    NOT NULL,
    len     INTEGER NOT NULL,
    payload BLOB    NOT NULL,
    PRIMARY KEY (set_id, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS volume_delta_bases (
    set_id   BLOB    NOT NULL,
    pos      INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    chunk    INTEGER,
    base_pos INTEGER,
    PRIMARY KEY (set_id, pos, seq)
) WITHOUT ROWID;
";

/// Version 6: chunks may be stored as LZ4 blocks (codec 2). No table
/// changes: the version alone keeps an older ferry, which cannot decode
/// them, from reading a store that may hold some.
const LZ4_CHUNKS: &str = "-- chunks.codec may be 2 (LZ4)";

/// Every migration, in order: entry `i` takes the index to version `i + 1`.
const MIGRATIONS: [&str; 6] = [BASE, RECIPE_OPS, AIRGAP, LAYERS, WAITING_DELTAS, LZ4_CHUNKS];

/// Version of the index schema this ferry writes (SQLite's `user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// First version whose recipe table has `op` and `out`.
const OPS_VERSION: i64 = 2;

/// Tables that came after the base schema; an index older than
/// [`SCHEMA_VERSION`] may lack them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Volume sets being received.
    Volumes,
    /// Chunk order of a volume set.
    VolumeChunks,
    /// Snapshots of a volume set waiting for their chunks.
    Pending,
    /// Peers of the ledger.
    Peers,
    /// Chunks the ledger says a peer holds.
    PeerChunks,
    /// Snapshots the ledger says a peer holds.
    PeerSnapshots,
    /// Chunk super-features.
    Features,
    /// Keys whose signed packs the store accepts.
    TrustedKeys,
    /// Files split out of snapshots' tars.
    Files,
    /// Compressed layer blobs and where their pieces are.
    Layers,
    /// Delta chunks of a volume waiting for a base in another volume.
    VolumeDeltas,
    /// Their bases.
    VolumeDeltaBases,
    /// Places of a set's table whose chunk a volume of the set stored.
    VolumeFresh,
}

impl Table {
    pub(super) const ALL: [Table; 13] = [
        Table::Volumes,
        Table::VolumeChunks,
        Table::Pending,
        Table::Peers,
        Table::PeerChunks,
        Table::PeerSnapshots,
        Table::Features,
        Table::TrustedKeys,
        Table::Files,
        Table::Layers,
        Table::VolumeDeltas,
        Table::VolumeDeltaBases,
        Table::VolumeFresh,
    ];

    /// Its name in the index.
    pub fn name(self) -> &'static str {
        match self {
            Table::Volumes => "volumes",
            Table::VolumeChunks => "volume_chunks",
            Table::Pending => "pending",
            Table::Peers => "peers",
            Table::PeerChunks => "peer_chunks",
            Table::PeerSnapshots => "peer_snapshots",
            Table::Features => "features",
            Table::TrustedKeys => "trusted_keys",
            Table::Files => "files",
            Table::Layers => "layers",
            Table::VolumeDeltas => "volume_deltas",
            Table::VolumeDeltaBases => "volume_delta_bases",
            Table::VolumeFresh => "volume_fresh",
        }
    }

    fn named(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// What an open index holds, fixed when the store is opened.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schema {
    /// Its `user_version`.
    pub version: i64,
    /// Bit `t as u32` is set when table `t` exists.
    tables: u32,
}

impl Schema {
    /// The schema of an index at `version` (at most [`SCHEMA_VERSION`]).
    /// At the current version every table exists; an older index, which a
    /// reader must not change, is read as whichever tables it has.
    pub fn read(conn: &Connection, version: i64) -> Result<Schema> {
        let mut tables = 0;
        if version >= SCHEMA_VERSION {
            tables = Table::ALL.iter().fold(0, |m, &t| m | bit(t));
        } else {
            let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
            for name in stmt.query_map([], |r| r.get::<_, String>(0))? {
                if let Some(t) = Table::named(&name?) {
                    tables |= bit(t);
                }
            }
        }
        Ok(Schema { version, tables })
    }

    /// True when the index has table `t`.
    pub fn has(&self, t: Table) -> bool {
        self.tables & bit(t) != 0
    }

    /// True when recipe rows have `op` and `out`.
    pub fn has_ops(&self) -> bool {
        self.version >= OPS_VERSION
    }
}

fn bit(t: Table) -> u32 {
    1 << t as u32
}

/// Brings an index at `version` (at most [`SCHEMA_VERSION`]) up to date in
/// one transaction; for a new index (`version` 0) that includes its
/// settings. Called only with the store's lock held.
pub(super) fn migrate(conn: &Connection, version: i64) -> Result<()> {
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let run = || -> Result<()> {
        for sql in &MIGRATIONS[version as usize..] {
            conn.execute_batch(sql)?;
        }
        if version == 0 {
            write_settings(conn)?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        conn.execute_batch("COMMIT")?;
        Ok(())
    };
    run().inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })
}

/// The settings of a new store: its format and chunker.
fn write_settings(conn: &Connection) -> Result<()> {
    let p = chunker::PARAMS;
    let mut ins = conn.prepare("INSERT INTO config (key, value) VALUES (?1, ?2)")?;
    ins.execute(params!["format", "ferry-store"])?;
    ins.execute(params!["chunker", chunker::ALGORITHM])?;
    ins.execute(params!["chunk_min", p.min.to_string()])?;
    ins.execute(params!["chunk_avg", p.avg.to_string()])?;
    ins.execute(params!["chunk_max", p.max.to_string()])?;
    ins.execute(params!["created", super::now().to_string()])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns, indexes and table options of every table, as SQLite reports them.
    fn layout(conn: &Connection) -> Vec<String> {
        let mut names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        names.retain(|n| !n.starts_with("sqlite_"));
        let mut out = Vec::new();
        for t in names {
            let q = |sql: String| -> Vec<String> {
                let mut stmt = conn.prepare(&sql).unwrap();
                let n = stmt.column_count();
                stmt.query_map([], |r| {
                    let cols: Vec<String> = (0..n)
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect();
                    Ok(cols.join(","))
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
            };
            out.push(format!("table {t}"));
            out.extend(q(format!("PRAGMA table_xinfo({t})")));
            out.extend(q(format!("PRAGMA index_list({t})")));
            out.extend(q(format!(
                "SELECT name FROM pragma_table_list WHERE name = '{t}' AND wr = 1"
            )));
        }
        out
    }

    /// The index a writer of schema version 2 created for a new store.
    fn version2_index() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        let recipe_with_ops = BASE.replace(
            "    len      INTEGER NOT NULL,\n    PRIMARY KEY",
            "    len      INTEGER NOT NULL,\n    op       INTEGER NOT NULL DEFAULT 0,\n    out      INTEGER NOT NULL DEFAULT 0,\n    PRIMARY KEY",
        );
        assert_ne!(recipe_with_ops, BASE);
        conn.execute_batch(&recipe_with_ops).unwrap();
        conn.execute_batch(AIRGAP).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn
    }

    /// A version-2 writer's new index, with the migrations since applied.
    fn current_index() -> Connection {
        let conn = version2_index();
        for sql in &MIGRATIONS[3..] {
            conn.execute_batch(sql).unwrap();
        }
        conn
    }

    #[test]
    fn migrations_give_the_layout_of_a_new_version_2_index() {
        let fresh = Connection::open_in_memory().unwrap();
        migrate(&fresh, 0).unwrap();
        assert_eq!(layout(&fresh), layout(&current_index()));
        let v: i64 = fresh
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn version_2_indexes_with_some_or_all_new_tables_migrate() {
        for drop in [
            &[][..],
            &["files", "trusted_keys"],
            &["volumes", "features"],
        ] {
            let conn = version2_index();
            for t in drop {
                conn.execute_batch(&format!("DROP TABLE {t}")).unwrap();
            }
            let before = Schema::read(&conn, 2).unwrap();
            for t in Table::ALL {
                // Tables of migrations 4 and later came after version 2.
                let later = matches!(
                    t,
                    Table::Layers
                        | Table::VolumeDeltas
                        | Table::VolumeDeltaBases
                        | Table::VolumeFresh
                );
                let in_v2 = !later && !drop.contains(&t.name());
                assert_eq!(before.has(t), in_v2, "{}", t.name());
            }
            migrate(&conn, 2).unwrap();
            assert_eq!(layout(&conn), layout(&current_index()));
            let after = Schema::read(&conn, SCHEMA_VERSION).unwrap();
            assert!(Table::ALL.iter().all(|&t| after.has(t)));
        }
    }

    #[test]
    fn a_failed_migration_leaves_the_index_unchanged() {
        let conn = version2_index();
        // The migration creates `volumes`, then fails on a `features` table
        // in a layout it cannot index.
        conn.execute_batch("DROP TABLE volumes; DROP TABLE features; CREATE TABLE features (x);")
            .unwrap();
        let before = layout(&conn);
        assert!(migrate(&conn, 2).is_err());
        assert_eq!(layout(&conn), before);
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 2);
        assert!(conn.is_autocommit());
    }
}
