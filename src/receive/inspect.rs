//! Looking into a pack without importing it: [`inspect`] reads a pack (or
//! one volume of a set) through the reader `unpack` uses, so its trailer
//! and signature are verified and a damaged pack fails with unpack's
//! line, and reports what it holds and, given a store, what that store
//! has of what the pack needs. It never writes to the store.

use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::counting::Counting;
use crate::error::Result;
use crate::pack::{PackReader, Record, SnapshotRecord};
use crate::progress::Progress;
use crate::store::SnapshotMeta;
use crate::store::Store;

use super::accept::{BaseMatch, find_base};
use super::bad;

/// What a pack holds, as [`inspect`] found it. Fields that compare the
/// pack with a store are `None` when there was no store to check.
#[derive(Debug, Clone, Serialize)]
pub struct PackInfo {
    /// The file, as given.
    pub file: String,
    /// Pack format version.
    pub version: u32,
    /// The ferry that wrote it (`ferry 0.1.0`).
    pub writer: String,
    /// When it was written (Unix seconds).
    pub created: i64,
    /// Every byte of the file.
    pub pack_bytes: u64,
    /// Chunker algorithm and parameters.
    pub chunker: String,
    /// Whether they are the store's (a pack cut otherwise is refused).
    pub chunker_matches: Option<bool>,
    /// The snapshots it carries (every volume names them all).
    pub snapshots: Vec<SnapshotInfo>,
    /// Its chunk records.
    pub chunks: ChunkCounts,
    /// Snapshots the receiver must hold already (none: a full pack).
    pub bases: Vec<BaseInfo>,
    /// Chunks of the receiver's inventory the pack relies on.
    pub inventory_chunks: u64,
    /// Of those, how many the store lacks.
    pub inventory_missing: Option<u64>,
    /// The signer, when the pack is signed (its signature verified).
    pub signer: Option<SignerInfo>,
    /// Whether the store accepts only signed packs (it trusts some key).
    pub signature_required: Option<bool>,
    /// Where this volume sits in its set.
    pub volume: Option<VolumeInfo>,
    /// Go encoders its layers are re-created with.
    pub encoders: Vec<String>,
    /// The store compared against.
    pub store: Option<String>,
}

/// A snapshot a pack carries.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    /// Its name.
    pub name: String,
    /// Bytes of its stream (`None` in a volume without its record: the
    /// set's last volume carries the snapshot records).
    pub size: Option<u64>,
    /// BLAKE3 of its stream, hex.
    pub blake3: Option<String>,
    /// The docker tags it holds.
    pub tags: Vec<String>,
    /// Snapshots of the store holding the same bytes.
    pub in_store: Option<Vec<String>>,
}

/// A pack's chunk records, by kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChunkCounts {
    /// Chunks in all (a group counts each chunk it carries).
    pub total: u64,
    /// Chunks carried whole (alone, or in solid blocks).
    pub whole: u64,
    /// Of those, chunks carried in solid blocks.
    pub blocked: u64,
    /// Solid block records.
    pub blocks: u64,
    /// Chunk records carried as a delta against chunks the receiver holds.
    pub delta: u64,
    /// Chunks carried in delta groups.
    pub grouped: u64,
    /// Delta group records.
    pub groups: u64,
    /// Bytes of their payloads (as carried).
    pub payload_bytes: u64,
    /// Bytes they decode to.
    pub decoded_bytes: u64,
}

/// A base snapshot a delta pack needs.
#[derive(Debug, Clone, Serialize)]
pub struct BaseInfo {
    /// Its name on the sending side.
    pub name: String,
    /// Bytes of its stream.
    pub size: u64,
    /// BLAKE3 of its stream, hex.
    pub blake3: String,
    /// `present`, `missing` or `split differently` in the store; `None`
    /// without one.
    pub status: Option<&'static str>,
}

/// Who signed a pack.
#[derive(Debug, Clone, Serialize)]
pub struct SignerInfo {
    /// The ed25519 public key, hex.
    pub key: String,
    /// Whether the store trusts it.
    pub trusted: Option<bool>,
    /// `verified`: a pack whose signature does not hold fails to inspect.
    pub signature: &'static str,
}

/// One volume of a set.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeInfo {
    /// The set's id, hex.
    pub set: String,
    /// This volume's number, from 1.
    pub index: u32,
    /// Volumes in the set.
    pub count: u32,
    /// Whether the store has imported this volume already.
    pub received: Option<bool>,
}

/// Reads the pack in `input` (of `total` bytes, when known; `label` names
/// it) through to its trailer and signature, and reports what it holds,
/// checked against `store` when there is one. A pack that is damaged,
/// truncated or whose signature does not hold fails with the line
/// `unpack` would give.
pub fn inspect<R: Read>(
    input: R,
    total: Option<u64>,
    label: &Path,
    store: Option<&Store>,
    progress: &dyn Progress,
) -> Result<PackInfo> {
    let mut reader = PackReader::new(Counting::new(input)).map_err(|e| bad(label, e))?;
    let h = reader.header().clone();
    let mut chunks = ChunkCounts::default();
    let mut records = Vec::new();
    progress.start("reading the pack", total);
    let mut seen = 0;
    while let Some(rec) = reader.next_record().map_err(|e| bad(label, e))? {
        count(&mut chunks, &mut records, rec);
        let n = reader.get_ref().count();
        progress.advance(n - seen);
        seen = n;
    }
    progress.finish();
    let version = reader.version();
    let mut info = PackInfo {
        file: label.display().to_string(),
        version,
        writer: h.writer.clone(),
        created: h.created,
        pack_bytes: reader.get_ref().count(),
        chunker: format!(
            "{} min={} avg={} max={}",
            h.algorithm, h.params.min, h.params.avg, h.params.max
        ),
        chunker_matches: None,
        snapshots: Vec::new(),
        chunks,
        bases: Vec::new(),
        inventory_chunks: h.extra.len() as u64,
        inventory_missing: None,
        signer: h.signer.map(|k| SignerInfo {
            key: crate::hex(&k),
            trusted: None,
            signature: "verified",
        }),
        signature_required: None,
        volume: h.volume.map(|v| VolumeInfo {
            set: crate::hex(&v.set),
            index: v.index,
            count: v.count,
            received: None,
        }),
        encoders: h.encoders.clone(),
        store: store.map(|s| s.dir().display().to_string()),
    };
    for name in &h.snapshots {
        let rec = records.iter().find(|r: &&SnapshotRecord| r.name == *name);
        info.snapshots.push(SnapshotInfo {
            name: name.clone(),
            size: rec.map(|r| r.size),
            blake3: rec.map(|r| r.hash.to_string()),
            tags: rec.map(tags).unwrap_or_default(),
            in_store: None,
        });
    }
    info.bases = h
        .bases
        .iter()
        .map(|b| BaseInfo {
            name: b.name.clone(),
            size: b.size,
            blake3: b.hash.to_string(),
            status: None,
        })
        .collect();
    if let Some(store) = store {
        against_store(&mut info, &h, &records, version, store)?;
    }
    Ok(info)
}

/// Counts a record (chunks by kind) or keeps it (snapshots).
fn count(c: &mut ChunkCounts, snapshots: &mut Vec<SnapshotRecord>, rec: Record) {
    match rec {
        Record::Chunk(r) => {
            c.total += 1;
            c.whole += 1;
            c.payload_bytes += r.payload.len() as u64;
            c.decoded_bytes += r.len as u64;
        }
        Record::Delta(r) => {
            c.total += 1;
            c.delta += 1;
            c.payload_bytes += r.wire_len as u64;
            c.decoded_bytes += r.len as u64;
        }
        Record::Group(g) => {
            let n = g.lens.len() as u64;
            c.total += n;
            c.grouped += n;
            c.groups += 1;
            c.payload_bytes += g.wire_len as u64;
            c.decoded_bytes += g.out_len();
        }
        Record::Block(b) => {
            let n = b.lens.len() as u64;
            c.total += n;
            c.whole += n;
            c.blocked += n;
            c.blocks += 1;
            c.payload_bytes += b.payload.len() as u64;
            c.decoded_bytes += b.out_len();
        }
        Record::Snapshot(s) => snapshots.push(s),
    }
}

/// The docker tags a snapshot record's metadata names.
fn tags(r: &SnapshotRecord) -> Vec<String> {
    let meta = SnapshotMeta::from_json(&r.meta);
    let mut tags: Vec<String> = meta
        .images()
        .iter()
        .flat_map(|i| i.tags.iter().cloned())
        .collect();
    if tags.is_empty() {
        tags = meta.repo_tags.unwrap_or_default();
    }
    tags
}

/// Fills in what the store has of what the pack needs: bases, inventory
/// chunks, trust, this volume, the snapshots themselves. Reads only.
fn against_store(
    info: &mut PackInfo,
    h: &crate::pack::Header,
    records: &[SnapshotRecord],
    version: u32,
    store: &Store,
) -> Result<()> {
    info.chunker_matches =
        Some(h.algorithm == crate::chunker::ALGORITHM && h.params == store.params());
    for (b, out) in h.bases.iter().zip(&mut info.bases) {
        out.status = Some(match find_base(store, b, version)? {
            BaseMatch::Found(_) => "present",
            BaseMatch::SplitDifferently(_) => "split differently",
            BaseMatch::Missing => "missing",
        });
    }
    let mut missing = 0;
    for id in &h.extra {
        if store.chunk(id)?.is_none() {
            missing += 1;
        }
    }
    info.inventory_missing = Some(missing);
    let trusted = crate::keys::trusted(store)?;
    info.signature_required = Some(!trusted.is_empty());
    if let (Some(signer), Some(key)) = (&mut info.signer, &h.signer) {
        signer.trusted = Some(trusted.iter().any(|t| t.key == *key));
    }
    if let (Some(out), Some(v)) = (&mut info.volume, &h.volume) {
        out.received = Some(store.volume_received(&v.set, v.index)?);
    }
    for s in &mut info.snapshots {
        let Some(r) = records.iter().find(|r| r.name == s.name) else {
            continue;
        };
        let held = store.snapshots_by_hash(&r.hash)?;
        s.in_store = Some(held.into_iter().map(|h| h.name).collect());
    }
    Ok(())
}
