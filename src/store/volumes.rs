//! The index side of moving packs: volume sets being gathered by `unpack`
//! (which volumes arrived, their chunks' places in the set's table, the
//! snapshot records they carried, delta chunks waiting for a base in
//! another volume) and the counts an imported snapshot learns only once
//! its recipe is placed.

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
    /// Row ids of this volume's chunks by place in the set's table (delta
    /// chunks waiting for another volume have none yet), and whether this
    /// volume stored the chunk.
    pub rows: &'a [(u64, ChunkRow, bool)],
    /// The snapshot records it carried (name and encoded record), in order.
    pub records: &'a [(String, Vec<u8>)],
}

/// A base of a waiting delta chunk: a chunk this store holds, or a place in
/// the set's chunk table that another volume fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitBase {
    /// A stored chunk.
    Chunk(ChunkRow),
    /// A place in the set's chunk table.
    Pos(u64),
}

/// A delta chunk whose bases are all here now (see [`Store::ready_delta`]).
pub struct ReadyDelta {
    /// The chunk it rebuilds to.
    pub id: [u8; 32],
    /// Its length.
    pub len: u32,
    /// The delta frame.
    pub payload: Vec<u8>,
    /// Its bases, in order, as stored chunks.
    pub bases: Vec<ChunkRow>,
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

    /// The chunk at place `pos` of the set's table, once its volume is here.
    pub fn volume_chunk(&self, set: &[u8; 16], pos: u64) -> Result<Option<ChunkRow>> {
        Ok(self
            .conn
            .prepare_cached("SELECT chunk FROM volume_chunks WHERE set_id = ?1 AND pos = ?2")?
            .query_row(params![&set[..], pos], |r| r.get(0))
            .optional()?)
    }

    /// Places in the set's table of delta chunks waiting for bases, every
    /// base of which is here now.
    pub fn ready_deltas(&self, set: &[u8; 16]) -> Result<Vec<u64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.pos FROM volume_deltas d WHERE d.set_id = ?1 AND NOT EXISTS (
               SELECT 1 FROM volume_delta_bases b
               WHERE b.set_id = d.set_id AND b.pos = d.pos AND b.chunk IS NULL
                 AND NOT EXISTS (SELECT 1 FROM volume_chunks c
                                 WHERE c.set_id = b.set_id AND c.pos = b.base_pos))
             ORDER BY d.pos",
        )?;
        let ready = stmt
            .query_map([&set[..]], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ready)
    }

    /// The waiting delta chunk at place `pos`, its bases resolved to stored
    /// chunks (`None` while one is still missing).
    pub fn ready_delta(&self, set: &[u8; 16], pos: u64) -> Result<Option<ReadyDelta>> {
        let found: Option<(Vec<u8>, u32, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT id, len, payload FROM volume_deltas WHERE set_id = ?1 AND pos = ?2",
                params![&set[..], pos],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((id, len, payload)) = found else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT coalesce(b.chunk, c.chunk) FROM volume_delta_bases b
             LEFT JOIN volume_chunks c ON c.set_id = b.set_id AND c.pos = b.base_pos
             WHERE b.set_id = ?1 AND b.pos = ?2 ORDER BY b.seq",
        )?;
        let bases: Vec<Option<ChunkRow>> = stmt
            .query_map(params![&set[..], pos], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let Some(bases) = bases.into_iter().collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        let id = id.try_into().map_err(|_| {
            Error::Invalid("a waiting delta chunk's id is damaged: run 'ferry verify'".into())
        })?;
        Ok(Some(ReadyDelta {
            id,
            len,
            payload,
            bases,
        }))
    }

    /// How many delta chunks of the set still wait for a base.
    pub fn waiting_deltas(&self, set: &[u8; 16]) -> Result<u64> {
        if !self.schema.has(Table::VolumeDeltas) {
            return Ok(0);
        }
        Ok(self.conn.query_row(
            "SELECT count(*) FROM volume_deltas WHERE set_id = ?1",
            [&set[..]],
            |r| r.get(0),
        )?)
    }

    /// Chunks the set's volumes stored, with their encoded sizes.
    pub fn volume_set_fresh(&self, set: &[u8; 16]) -> Result<Vec<(ChunkRow, u64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT v.chunk, c.clen FROM volume_fresh f
             JOIN volume_chunks v ON v.set_id = f.set_id AND v.pos = f.pos
             JOIN chunks c ON c.rowid = v.chunk
             WHERE f.set_id = ?1",
        )?;
        let rows = stmt
            .query_map([&set[..]], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
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
            let mut new = conn.prepare_cached(
                "INSERT OR REPLACE INTO volume_fresh (set_id, pos) VALUES (?1, ?2)",
            )?;
            for (pos, row, fresh) in v.rows {
                ins.execute(params![&v.set[..], pos, row])?;
                if *fresh {
                    new.execute(params![&v.set[..], pos])?;
                }
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

    /// Keeps a delta chunk of the set, at place `pos` of its table, until
    /// its bases are here (see [`Store::ready_deltas`]).
    pub fn wait_delta(
        &mut self,
        set: &[u8; 16],
        pos: u64,
        id: &[u8; 32],
        len: u32,
        payload: &[u8],
        bases: &[WaitBase],
    ) -> Result<()> {
        let conn = &self.store.conn;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO volume_deltas (set_id, pos, id, len, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![&set[..], pos, &id[..], len, payload])?;
        let mut ins = conn.prepare_cached(
            "INSERT OR REPLACE INTO volume_delta_bases (set_id, pos, seq, chunk, base_pos) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (seq, b) in bases.iter().enumerate() {
            let (chunk, base_pos) = match *b {
                WaitBase::Chunk(row) => (Some(row), None),
                WaitBase::Pos(p) => (None, Some(p)),
            };
            ins.execute(params![&set[..], pos, seq as i64, chunk, base_pos])?;
        }
        Ok(())
    }

    /// A waiting delta chunk was rebuilt as `chunk` (`fresh` when it was
    /// stored now): it takes its place in the set's table and waits no more.
    pub fn place_delta(
        &mut self,
        set: &[u8; 16],
        pos: u64,
        chunk: ChunkRow,
        fresh: bool,
    ) -> Result<()> {
        let conn = &self.store.conn;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO volume_chunks (set_id, pos, chunk) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![&set[..], pos, chunk])?;
        if fresh {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO volume_fresh (set_id, pos) VALUES (?1, ?2)",
            )?
            .execute(params![&set[..], pos])?;
        }
        conn.prepare_cached("DELETE FROM volume_deltas WHERE set_id = ?1 AND pos = ?2")?
            .execute(params![&set[..], pos])?;
        conn.prepare_cached("DELETE FROM volume_delta_bases WHERE set_id = ?1 AND pos = ?2")?
            .execute(params![&set[..], pos])?;
        Ok(())
    }

    /// Marks a set complete: drops its chunk table and waiting records.
    pub fn finish_volume_set(&mut self, set: &[u8; 16]) -> Result<()> {
        self.store.conn.execute_batch(&format!(
            "DELETE FROM volume_chunks WHERE set_id = x'{0}';
             DELETE FROM pending WHERE set_id = x'{0}';
             DELETE FROM volume_deltas WHERE set_id = x'{0}';
             DELETE FROM volume_delta_bases WHERE set_id = x'{0}';
             DELETE FROM volume_fresh WHERE set_id = x'{0}';
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
        conn.execute("DELETE FROM volume_deltas WHERE set_id = ?1", [set])?;
        conn.execute("DELETE FROM volume_delta_bases WHERE set_id = ?1", [set])?;
        conn.execute("DELETE FROM volume_fresh WHERE set_id = ?1", [set])?;
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
