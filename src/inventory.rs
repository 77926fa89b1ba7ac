//! What a receiver holds: `ferry inventory` writes a checksummed summary of
//! a store (every chunk id and snapshot) that the sending side reads with
//! `ferry pack --have`; and the peer ledger, where `ferry pack --to NAME`
//! records what was shipped to a peer so later packs leave it out.
//!
//! Inventory file: `FERRYINV`, `u32` version (1), then one zstd frame of
//! `str params, i64 created, u64 chunk count, ids (sorted), u32 snapshot
//! count, (str name, u64 size, id hash)*`, then the BLAKE3 (32 bytes) of
//! every byte before it.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;

use serde::Serialize;

use crate::chunker::{self, ChunkId};
use crate::error::{Error, IoContext, Result};
use crate::pack::format::{Dec, Enc};
use crate::store::{ChunkRow, SnapshotDigest, Store, Txn};

const MAGIC: &[u8; 8] = b"FERRYINV";
const VERSION: u32 = 1;
/// Largest decompressed inventory accepted (about 30 million chunks).
const MAX_RAW: u64 = 1 << 30;

/// A receiver's holdings, as read from an inventory file.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Chunker of the store it describes.
    pub params: String,
    /// When it was taken (Unix seconds).
    pub created: i64,
    /// Every chunk id.
    pub chunks: HashSet<ChunkId>,
    /// Every snapshot: name, size, BLAKE3.
    pub snapshots: Vec<(String, u64, SnapshotDigest)>,
}

/// What [`write`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryReport {
    /// Chunks listed.
    pub chunks: u64,
    /// Snapshots listed.
    pub snapshots: u64,
    /// Bytes of the file.
    pub bytes: u64,
}

fn params_text(store: &Store) -> String {
    format!("{} {}", chunker::ALGORITHM, store.params())
}

/// Writes the inventory of `store` to `out`.
pub fn write(store: &Store, out: &mut dyn Write) -> Result<InventoryReport> {
    let _view = store.read_view()?;
    let mut ids: Vec<ChunkId> = Vec::new();
    store.for_each_chunk_batch(8192, |batch| {
        ids.extend(batch.iter().map(|c| c.id));
        Ok(())
    })?;
    ids.sort_unstable();
    let snaps = store.snapshots()?;
    let mut e = Enc::default();
    e.str(&params_text(store))
        .i64(crate::store::now())
        .u64(ids.len() as u64);
    for id in &ids {
        e.bytes(id.as_bytes());
    }
    e.u32(snaps.len() as u32);
    for s in &snaps {
        e.str(&s.name).u64(s.size).bytes(s.blake3.as_bytes());
    }
    let body = zstd::bulk::compress(&e.0, 3).map_err(|e| Error::io("compressing inventory", e))?;
    let mut file = Vec::with_capacity(body.len() + 44);
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&VERSION.to_le_bytes());
    file.extend_from_slice(&body);
    let digest = blake3::hash(&file);
    file.extend_from_slice(digest.as_bytes());
    out.write_all(&file)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing inventory", e))?;
    Ok(InventoryReport {
        chunks: ids.len() as u64,
        snapshots: snaps.len() as u64,
        bytes: file.len() as u64,
    })
}

/// Reads and checks an inventory file; `store` must use the same chunker.
pub fn read(path: &Path, store: &Store) -> Result<Inventory> {
    let mut f = crate::add::open_input(path)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .ctx(|| format!("reading {}", path.display()))?;
    let inv = parse(&bytes).map_err(|m| {
        Error::Invalid(format!(
            "{} is not a usable inventory ({m}): run 'ferry inventory -o FILE' on the receiving side again and bring the file over",
            path.display()
        ))
    })?;
    if inv.params != params_text(store) {
        return Err(Error::Invalid(format!(
            "{} describes a store cut with {}, this one uses {}: its chunks cannot match",
            path.display(),
            inv.params,
            params_text(store)
        )));
    }
    Ok(inv)
}

/// Parses and checks the bytes of an inventory file (untrusted input: every
/// count is checked against what the file holds before anything is
/// allocated for it).
pub fn parse(bytes: &[u8]) -> std::result::Result<Inventory, String> {
    if bytes.len() < 12 + 32 || &bytes[..8] != MAGIC {
        return Err("not a ferry inventory file".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    if version != VERSION {
        return Err(format!(
            "inventory version {version}, this ferry reads {VERSION}"
        ));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != digest {
        return Err("its checksum does not match: the file is damaged or truncated".into());
    }
    let mut raw = Vec::new();
    zstd::stream::read::Decoder::new(&body[12..])
        .and_then(|d| d.take(MAX_RAW + 1).read_to_end(&mut raw))
        .map_err(|_| "it does not decompress".to_string())?;
    if raw.len() as u64 > MAX_RAW {
        return Err("it is too large".into());
    }
    let mut d = Dec::new(&raw);
    let params = d.str("chunker")?;
    let created = d.i64("time")?;
    let n = d.u64("chunk count")?;
    if n > (d.remaining() / 32) as u64 {
        return Err("chunk count exceeds the file".into());
    }
    let mut chunks = HashSet::with_capacity(n as usize);
    for _ in 0..n {
        chunks.insert(d.id("chunk id")?);
    }
    let n = d.u32("snapshot count")?;
    if n as usize > d.remaining() / 44 {
        return Err("snapshot count exceeds the file".into());
    }
    let mut snapshots = Vec::with_capacity(n as usize);
    for _ in 0..n {
        snapshots.push((d.str("name")?, d.u64("size")?, d.id("hash")?));
    }
    d.end("inventory")?;
    Ok(Inventory {
        params,
        created,
        chunks,
        snapshots,
    })
}

pub use crate::store::Peer;

/// Chunk ids the ledger says `peer` holds.
pub fn peer_chunks(store: &Store, peer: &str) -> Result<HashSet<ChunkId>> {
    store.peer_chunks(peer)
}

/// Replaces what the ledger knows of `peer` with its inventory.
pub fn record_inventory(txn: &mut Txn<'_>, peer: &str, inv: &Inventory) -> Result<()> {
    let snapshots = inv
        .snapshots
        .iter()
        .map(|(name, _, hash)| (name.as_str(), hash));
    txn.record_peer_inventory(peer, &inv.chunks, snapshots)
}

/// Records that a pack carrying `snapshots` (name, BLAKE3) went to
/// `peer`, who then holds the chunks `rows`.
pub fn record_shipment(
    txn: &mut Txn<'_>,
    peer: &str,
    rows: &[ChunkRow],
    snapshots: &[(String, SnapshotDigest)],
) -> Result<()> {
    let snapshots = snapshots.iter().map(|(name, hash)| (name.as_str(), *hash));
    txn.record_peer_shipment(peer, rows, snapshots)
}

/// Every peer in the ledger.
pub fn peers(store: &Store) -> Result<Vec<Peer>> {
    store.peers()
}

/// The receiving side of a pack, as `ferry pack --have FILE --to NAME`
/// describe it: what it already holds, and whether the ledger records
/// what it is sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Receiver<'a> {
    /// Its inventory file (`--have`).
    pub have: Option<&'a Path>,
    /// Its name in the peer ledger (`--to`).
    pub peer: Option<&'a str>,
    /// Only reporting what the pack would hold: the ledger stays as it is.
    pub dry_run: bool,
}

impl Receiver<'_> {
    /// Whether packing for this receiver writes to the ledger, so the
    /// store must be opened for writing.
    pub fn writes_ledger(&self) -> bool {
        self.peer.is_some() && !self.dry_run
    }

    /// Chunks the receiver already holds, which the pack leaves out: those
    /// its inventory lists, else those the ledger records for the peer;
    /// `None` when nothing is known. Given both, the inventory replaces
    /// what the ledger knew of the peer (the peer's own report wins).
    ///
    /// With them come the BLAKE3 of the snapshots it holds (which `pack`
    /// may use as delta bases).
    pub fn known_chunks(
        &self,
        store: &mut Store,
    ) -> Result<Option<(HashSet<ChunkId>, Vec<SnapshotDigest>)>> {
        let inventory = self.have.map(|p| read(p, store)).transpose()?;
        let hashes = |inv: &Inventory| inv.snapshots.iter().map(|s| s.2).collect::<Vec<_>>();
        match (self.peer, inventory) {
            (Some(peer), Some(inv)) => {
                if self.writes_ledger() {
                    store.write(|txn| record_inventory(txn, peer, &inv))?;
                }
                let held = hashes(&inv);
                Ok(Some((inv.chunks, held)))
            }
            (Some(peer), None) => {
                let held = store.peer_snapshot_hashes(peer)?;
                Ok(Some((peer_chunks(store, peer)?, held)))
            }
            (None, Some(inv)) => {
                let held = hashes(&inv);
                Ok(Some((inv.chunks, held)))
            }
            (None, None) => Ok(None),
        }
    }

    /// Records that a pack of `snapshots` went to the peer, who then holds
    /// the chunk rows `rows`; does nothing without a peer or on a dry run.
    pub fn record_pack(
        &self,
        store: &mut Store,
        snapshots: &[String],
        rows: &[ChunkRow],
    ) -> Result<()> {
        let Some(peer) = self.peer.filter(|_| self.writes_ledger()) else {
            return Ok(());
        };
        let snaps: Vec<(String, SnapshotDigest)> = snapshots
            .iter()
            .map(|n| store.require(n).map(|s| (s.name, s.blake3)))
            .collect::<Result<_>>()?;
        store.write(|txn| record_shipment(txn, peer, rows, &snaps))
    }
}
