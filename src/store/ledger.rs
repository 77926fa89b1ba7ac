//! The peer ledger: which chunks and snapshots each peer holds, as recorded
//! from the packs made for it (`ferry pack --to`) and the inventories it
//! sent back.

use std::collections::HashSet;

use rusqlite::params;
use serde::Serialize;

use super::schema::Table;
use super::{ChunkRow, SnapshotDigest, Store, Txn, now};
use crate::chunker::ChunkId;
use crate::error::Result;

/// A peer as the ledger knows it.
#[derive(Debug, Clone, Serialize)]
pub struct Peer {
    /// Name given with `--to`.
    pub name: String,
    /// Last change (Unix seconds).
    pub updated: i64,
    /// Where the record comes from: "packs" (what was shipped) or
    /// "inventory" (what the peer reported, plus what was shipped since).
    pub source: String,
    /// Chunks of this store the peer holds.
    pub chunks: u64,
    /// Decoded bytes of those chunks.
    pub bytes: u64,
    /// Snapshots it holds.
    pub snapshots: Vec<String>,
}

impl Store {
    /// Chunk ids the ledger says `peer` holds.
    pub fn peer_chunks(&self, peer: &str) -> Result<HashSet<ChunkId>> {
        let mut out = HashSet::new();
        if !self.schema.has(Table::PeerChunks) {
            return Ok(out);
        }
        let mut stmt = self.conn.prepare(
            "SELECT c.id FROM peer_chunks p JOIN chunks c ON c.rowid = p.chunk WHERE p.peer = ?1",
        )?;
        for id in stmt.query_map([peer], |r| r.get::<_, Vec<u8>>(0))? {
            if let Ok(id) = id?.as_slice().try_into() {
                out.insert(id);
            }
        }
        Ok(out)
    }

    /// Every peer in the ledger, by name.
    pub fn peers(&self) -> Result<Vec<Peer>> {
        if !self.schema.has(Table::Peers) {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare(
            "SELECT p.name, p.updated, p.source,
                    (SELECT count(*) FROM peer_chunks k WHERE k.peer = p.name),
                    (SELECT coalesce(sum(c.len), 0) FROM peer_chunks k JOIN chunks c ON c.rowid = k.chunk WHERE k.peer = p.name)
             FROM peers p ORDER BY p.name",
        )?;
        let rows: Vec<(String, i64, String, u64, u64)> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(rows.len());
        let mut snaps = self
            .conn
            .prepare("SELECT name FROM peer_snapshots WHERE peer = ?1 ORDER BY name")?;
        for (name, updated, source, chunks, bytes) in rows {
            let snapshots = snaps
                .query_map([&name], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            out.push(Peer {
                name,
                updated,
                source,
                chunks,
                bytes,
                snapshots,
            });
        }
        Ok(out)
    }
}

impl Store {
    /// The BLAKE3 of every snapshot the ledger says `peer` holds.
    pub fn peer_snapshot_hashes(&self, peer: &str) -> Result<Vec<SnapshotDigest>> {
        if !self.schema.has(Table::PeerSnapshots) {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT hash FROM peer_snapshots WHERE peer = ?1 ORDER BY name")?;
        let rows: Vec<Vec<u8>> = stmt
            .query_map([peer], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows
            .iter()
            .filter_map(|h| SnapshotDigest::try_from(h.as_slice()).ok())
            .collect())
    }

    /// For each other snapshot, the encoded bytes of the distinct chunks it
    /// shares with the snapshots `rows`, most first (at most `limit`).
    pub fn sharing(&self, rows: &[i64], limit: usize) -> Result<Vec<(i64, u64)>> {
        let list: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
        let list = list.join(",");
        let mut stmt = self.conn.prepare(&format!(
            "WITH t AS (SELECT DISTINCT chunk FROM recipe WHERE snapshot IN ({list})),
                  o AS (SELECT DISTINCT snapshot, chunk FROM recipe WHERE snapshot NOT IN ({list}))
             SELECT o.snapshot, sum(c.clen) AS shared FROM o JOIN t ON t.chunk = o.chunk
             JOIN chunks c ON c.rowid = o.chunk
             GROUP BY o.snapshot ORDER BY shared DESC LIMIT ?1"
        ))?;
        let out = stmt
            .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(out)
    }
}

impl Txn<'_> {
    /// Replaces what the ledger knows of `peer` with what its inventory
    /// lists: `chunks` (those this store has) and `snapshots` (name, BLAKE3).
    pub fn record_peer_inventory<'a>(
        &mut self,
        peer: &str,
        chunks: impl IntoIterator<Item = &'a ChunkId>,
        snapshots: impl IntoIterator<Item = (&'a str, &'a SnapshotDigest)>,
    ) -> Result<()> {
        let conn = &self.store.conn;
        conn.execute("DELETE FROM peer_chunks WHERE peer = ?1", [peer])?;
        conn.execute("DELETE FROM peer_snapshots WHERE peer = ?1", [peer])?;
        let mut ins = conn.prepare_cached(
            "INSERT OR IGNORE INTO peer_chunks (peer, chunk) SELECT ?1, rowid FROM chunks WHERE id = ?2",
        )?;
        for id in chunks {
            ins.execute(params![peer, &id.as_bytes()[..]])?;
        }
        let mut snap = conn.prepare_cached(
            "INSERT OR REPLACE INTO peer_snapshots (peer, name, hash) VALUES (?1, ?2, ?3)",
        )?;
        for (name, hash) in snapshots {
            snap.execute(params![peer, name, &hash.as_bytes()[..]])?;
        }
        conn.execute(
            "INSERT OR REPLACE INTO peers (name, updated, source) VALUES (?1, ?2, 'inventory')",
            params![peer, now()],
        )?;
        Ok(())
    }

    /// Records that a pack carrying `snapshots` (name, BLAKE3) went to
    /// `peer`, who then holds the chunks `rows`.
    pub fn record_peer_shipment<'a>(
        &mut self,
        peer: &str,
        rows: &[ChunkRow],
        snapshots: impl IntoIterator<Item = (&'a str, SnapshotDigest)>,
    ) -> Result<()> {
        let conn = &self.store.conn;
        let mut ins =
            conn.prepare_cached("INSERT OR IGNORE INTO peer_chunks (peer, chunk) VALUES (?1, ?2)")?;
        for row in rows {
            ins.execute(params![peer, row])?;
        }
        let mut snap = conn.prepare_cached(
            "INSERT OR REPLACE INTO peer_snapshots (peer, name, hash) VALUES (?1, ?2, ?3)",
        )?;
        for (name, hash) in snapshots {
            snap.execute(params![peer, name, &hash.as_bytes()[..]])?;
        }
        conn.execute(
            "INSERT INTO peers (name, updated, source) VALUES (?1, ?2, 'packs')
             ON CONFLICT(name) DO UPDATE SET updated = excluded.updated",
            params![peer, now()],
        )?;
        Ok(())
    }
}
