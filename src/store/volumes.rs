//! The index side of moving packs: volume sets being gathered by `unpack`
//! (which volumes arrived, their chunks' places in the set's table, the
//! snapshot records they carried) and the counts an imported snapshot
//! learns only once its recipe is placed.

use std::collections::HashSet;

use rusqlite::{OptionalExtension, params};

use super::schema::Table;
use super::{ChunkRow, Store, Txn};
use crate::error::{Error, Result};

/// A volume of a set, as [`Txn::record_volume`] stores it.
pub struct NewVolume<'a> {
    /// The set's id.
    pub set: &'a [u8; 16],
    /// This volume's number, from 1.
    pub index: u32,
    /// Volumes in the set.
    pub count: u32,
    /// Position of this volume's first chunk in the set's chunk table.
    pub first: u64,
    /// Chunk records this volume holds.
    pub chunks: u64,
    /// The names of the snapshots the set adds.
    pub snapshots: &'a [String],
    /// Row ids of this volume's chunks, in pack-table order.
    pub rows: &'a [ChunkRow],
    /// The snapshot records it carried (name and encoded record), in order.
    pub records: &'a [(String, Vec<u8>)],
}

/// One imported volume of a set still waiting for others.
pub struct WaitingVolume {
    /// The set's id.
    pub set: Vec<u8>,
    /// The volume's number.
    pub index: u32,
    /// Volumes in the set.
    pub count: u32,
    /// The names of the snapshots the set adds.
    pub snapshots: Vec<String>,
}

impl Store {
    /// True when volume `index` of `set` was imported before (false when
    /// the index predates volume sets).
    pub fn volume_received(&self, set: &[u8; 16], index: u32) -> Result<bool> {
        if !self.schema.has(Table::Volumes) {
            return Ok(false);
        }
        let seen: Option<i64> = self
            .conn
            .query_row(
                "SELECT idx FROM volumes WHERE set_id = ?1 AND idx = ?2",
                params![&set[..], index],
                |r| r.get(0),
            )
            .optional()?;
        Ok(seen.is_some())
    }

    /// Numbers of the volumes of `set` imported so far.
    pub fn volumes_received(&self, set: &[u8; 16]) -> Result<HashSet<u32>> {
        let mut stmt = self
            .conn
            .prepare("SELECT idx FROM volumes WHERE set_id = ?1")?;
        let have = stmt
            .query_map([&set[..]], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(have)
    }

    /// The set's chunk table (row ids by position), which must be complete.
    pub fn volume_set_rows(&self, set: &[u8; 16]) -> Result<Vec<ChunkRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT pos, chunk FROM volume_chunks WHERE set_id = ?1 ORDER BY pos")?;
        let mut rows = Vec::new();
        for r in stmt.query_map([&set[..]], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, ChunkRow>(1)?))
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

    /// The encoded snapshot records the set's volumes carried, in order.
    pub fn pending_records(&self, set: &[u8; 16]) -> Result<Vec<Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM pending WHERE set_id = ?1 ORDER BY seq")?;
        let blobs = stmt
            .query_map([&set[..]], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(blobs)
    }

    /// Volumes of sets not yet complete, oldest arrival first (none when
    /// the index predates volume sets).
    pub fn waiting_volumes(&self) -> Result<Vec<WaitingVolume>> {
        if !self.schema.has(Table::Volumes) {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare(
            "SELECT set_id, idx, count, snapshots FROM volumes WHERE done = 0 ORDER BY received_at, set_id, idx",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(WaitingVolume {
                    set: r.get(0)?,
                    index: r.get(1)?,
                    count: r.get(2)?,
                    snapshots: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

impl Txn<'_> {
    /// Records an imported volume: its chunks' positions in the set's
    /// table, the snapshot records it carried, and its arrival. Returns how
    /// many volumes of the set have arrived, this one included.
    pub fn record_volume(&mut self, v: &NewVolume<'_>) -> Result<u32> {
        let conn = &self.store.conn;
        {
            let mut ins = conn.prepare_cached(
                "INSERT OR REPLACE INTO volume_chunks (set_id, pos, chunk) VALUES (?1, ?2, ?3)",
            )?;
            for (i, row) in v.rows.iter().enumerate() {
                ins.execute(params![&v.set[..], v.first + i as u64, row])?;
            }
            let mut pend = conn.prepare_cached(
                "INSERT OR REPLACE INTO pending (set_id, seq, name, record) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (i, (name, bytes)) in v.records.iter().enumerate() {
                pend.execute(params![&v.set[..], i as i64, name, bytes])?;
            }
        }
        conn.execute(
            "INSERT INTO volumes (set_id, idx, count, first, chunks, snapshots, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                &v.set[..],
                v.index,
                v.count,
                v.first,
                v.chunks,
                serde_json::to_string(v.snapshots).expect("names serialize"),
                super::now()
            ],
        )?;
        let have: u32 = conn.query_row(
            "SELECT count(*) FROM volumes WHERE set_id = ?1",
            [&v.set[..]],
            |r| r.get(0),
        )?;
        Ok(have)
    }

    /// Marks a set complete: drops its chunk table and waiting records.
    pub fn finish_volume_set(&mut self, set: &[u8; 16]) -> Result<()> {
        self.store.conn.execute_batch(&format!(
            "DELETE FROM volume_chunks WHERE set_id = x'{0}';
             DELETE FROM pending WHERE set_id = x'{0}';
             UPDATE volumes SET done = 1 WHERE set_id = x'{0}';",
            crate::hex(set)
        ))?;
        Ok(())
    }

    /// Forgets a set waiting for volumes: its volumes, its chunk table and
    /// its waiting records (its chunks stay until `gc` finds them unused).
    /// Returns the volumes dropped.
    pub fn discard_volume_set(&mut self, set: &[u8]) -> Result<u64> {
        let conn = &self.store.conn;
        conn.execute("DELETE FROM volume_chunks WHERE set_id = ?1", [set])?;
        conn.execute("DELETE FROM pending WHERE set_id = ?1", [set])?;
        let n = conn.execute("DELETE FROM volumes WHERE set_id = ?1 AND done = 0", [set])?;
        Ok(n as u64)
    }

    /// Sets the encoded bytes a snapshot added to the store.
    pub fn set_new_bytes(&mut self, snapshot: i64, new_bytes: u64) -> Result<()> {
        self.store.conn.execute(
            "UPDATE snapshots SET new_bytes = ?2 WHERE rowid = ?1",
            params![snapshot, new_bytes],
        )?;
        Ok(())
    }
}
