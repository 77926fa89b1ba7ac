//! Compressed layer blobs by content digest: where an added layer's pieces
//! sit in its snapshot's recipe, so that the same blob in the next version
//! of an image is taken from there instead of being inflated and matched
//! against an encoder again.

use std::collections::HashMap;

use rusqlite::params;

use super::schema::Table;
use super::{Store, Txn};
use crate::error::{Error, Result};

/// A layer blob the store holds, by the sha256 its archive named it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownLayer {
    /// Snapshot whose recipe holds it.
    pub snapshot: i64,
    /// BLAKE3 of the blob's bytes.
    pub blake3: [u8; 32],
    /// Its size.
    pub size: u64,
    /// Recipe row of its first piece.
    pub seq: u64,
    /// Its pieces.
    pub count: u64,
    /// How its deflate stream is kept ([`crate::chunker::kind_of`]).
    pub kind: u8,
}

/// Known layers by sha256.
pub type KnownLayers = HashMap<[u8; 32], KnownLayer>;

impl Store {
    /// Every layer blob recorded (one place for each, the newest).
    pub fn known_layers(&self) -> Result<KnownLayers> {
        let mut out = KnownLayers::new();
        if !self.schema.has(Table::Layers) {
            return Ok(out);
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT digest, snapshot, blake3, size, seq, count, kind FROM layers ORDER BY snapshot",
        )?;
        let rows = stmt.query_map([], |r| {
            let digest: Vec<u8> = r.get(0)?;
            let blake3: Vec<u8> = r.get(2)?;
            Ok((
                digest,
                blake3,
                KnownLayer {
                    snapshot: r.get(1)?,
                    blake3: [0; 32],
                    size: r.get(3)?,
                    seq: r.get(4)?,
                    count: r.get(5)?,
                    kind: r.get(6)?,
                },
            ))
        })?;
        for row in rows {
            let (digest, blake3, mut layer) = row?;
            let (Ok(digest), Ok(blake3)) = (<[u8; 32]>::try_from(digest), blake3.try_into()) else {
                continue;
            };
            layer.blake3 = blake3;
            out.insert(digest, layer);
        }
        Ok(out)
    }
}

impl Txn<'_> {
    /// Records that `layer` (its snapshot and place) is the blob `digest`.
    pub fn insert_layer(&mut self, digest: &[u8; 32], layer: &KnownLayer) -> Result<()> {
        let mut stmt = self.store.conn.prepare_cached(
            "INSERT OR REPLACE INTO layers (digest, snapshot, blake3, size, seq, count, kind)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        stmt.execute(params![
            &digest[..],
            layer.snapshot,
            &layer.blake3[..],
            layer.size,
            layer.seq,
            layer.count,
            layer.kind
        ])?;
        Ok(())
    }

    /// Copies `layer`'s recipe rows (and the files split out of it) into
    /// snapshot `to` from row `seq` on.
    pub fn copy_layer(&mut self, layer: &KnownLayer, to: i64, seq: u64) -> Result<()> {
        let shift = seq as i64 - layer.seq as i64;
        let end = layer.seq + layer.count;
        let copied = self.store.conn.execute(
            "INSERT INTO recipe (snapshot, seq, chunk, off, len, op, out)
             SELECT ?1, seq + ?2, chunk, off, len, op, out FROM recipe
             WHERE snapshot = ?3 AND seq >= ?4 AND seq < ?5",
            params![to, shift, layer.snapshot, layer.seq, end],
        )?;
        if copied as u64 != layer.count {
            return Err(Error::BadStore {
                store: self.store.dir().to_path_buf(),
                msg: format!(
                    "a layer's recipe rows are missing ({copied} of {}): run 'ferry verify'",
                    layer.count
                ),
            });
        }
        self.store.conn.execute(
            "INSERT OR REPLACE INTO files (snapshot, seq, size, path)
             SELECT ?1, seq + ?2, size, path FROM files
             WHERE snapshot = ?3 AND seq >= ?4 AND seq < ?5",
            params![to, shift, layer.snapshot, layer.seq, end],
        )?;
        Ok(())
    }
}
