//! Volume sets on the receiving side: recording each volume as it is
//! unpacked, and what a set still waits for ([`VolumeStatus`] after an
//! unpack, [`waiting_sets`] for `ferry status`).

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::pack::{Header, SnapshotRecord, VolumeInfo, encode_snapshot};
use crate::store::volumes::NewVolume;
use crate::store::{ChunkRow, Store, Txn};

use super::rebuild::Tables;

/// A volume's place in its set after an unpack.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeStatus {
    /// The set (hex).
    pub set: String,
    /// This volume's number.
    pub index: u32,
    /// Volumes in the set.
    pub count: u32,
    /// Volumes of the set not yet imported.
    pub missing: Vec<u32>,
    /// The volume had been imported before: nothing was done.
    pub already: bool,
}

impl VolumeStatus {
    /// Volume `v`, its set still missing `missing`.
    pub(super) fn new(v: &VolumeInfo, missing: Vec<u32>, already: bool) -> Self {
        VolumeStatus {
            set: crate::hex(&v.set),
            index: v.index,
            count: v.count,
            missing,
            already,
        }
    }
}

/// A volume set some of whose volumes have been unpacked here.
#[derive(Debug, Clone, Serialize)]
pub struct WaitingSet {
    /// The set (hex).
    pub set: String,
    /// The set's id.
    #[serde(skip)]
    pub id: Vec<u8>,
    /// Snapshots it will add.
    pub snapshots: Vec<String>,
    /// Volumes in the set.
    pub count: u32,
    /// Volumes unpacked.
    pub received: Vec<u32>,
    /// Volumes still needed.
    pub missing: Vec<u32>,
}

/// Volume sets still waiting for volumes (what `ferry status` shows).
pub fn waiting_sets(store: &Store) -> Result<Vec<WaitingSet>> {
    let mut sets: Vec<WaitingSet> = Vec::new();
    for v in store.waiting_volumes()? {
        let set = crate::hex(&v.set);
        match sets.iter_mut().find(|s| s.set == set) {
            Some(s) => s.received.push(v.index),
            None => sets.push(WaitingSet {
                set,
                id: v.set,
                snapshots: v.snapshots,
                count: v.count,
                received: vec![v.index],
                missing: Vec::new(),
            }),
        }
    }
    for s in &mut sets {
        s.received.sort_unstable();
        s.missing = (1..=s.count).filter(|i| !s.received.contains(i)).collect();
    }
    Ok(sets)
}

/// Forgets the waiting sets `which` names (a prefix of a set id as
/// `ferry status` prints it, at least 8 hex digits, or `all`), in one
/// transaction; returns what was dropped. Their chunks stay in the store
/// until `ferry gc` finds nothing else uses them.
pub fn discard_sets(store: &mut Store, which: &str) -> Result<Vec<WaitingSet>> {
    let sets = waiting_sets(store)?;
    let chosen: Vec<WaitingSet> = if which == "all" {
        sets
    } else {
        let prefix = which.to_ascii_lowercase();
        if prefix.len() < 8 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "'{which}' is not a volume set: give at least 8 hex digits of a set id as 'ferry status' prints it, or 'all'"
            )));
        }
        let found: Vec<WaitingSet> = sets
            .into_iter()
            .filter(|s| s.set.starts_with(&prefix))
            .collect();
        match found.len() {
            0 => {
                return Err(Error::Invalid(format!(
                    "no waiting volume set starts with {which}: run 'ferry status' to see the sets"
                )));
            }
            1 => found,
            n => {
                return Err(Error::Invalid(format!(
                    "{n} waiting volume sets start with {which}: give more digits of the set id"
                )));
            }
        }
    };
    store.write(|txn| {
        for s in &chosen {
            txn.discard_volume_set(&s.id)?;
        }
        Ok(())
    })?;
    Ok(chosen)
}

/// Volumes of `set` not yet imported.
pub(super) fn missing_volumes(store: &Store, set: &[u8; 16], count: u32) -> Result<Vec<u32>> {
    let have = store.volumes_received(set)?;
    Ok((1..=count).filter(|i| !have.contains(i)).collect())
}

/// Records an imported volume (its chunks' positions in the set's table,
/// and the snapshot records it carried); true when the set is complete.
pub(super) fn record_volume(
    txn: &mut Txn<'_>,
    h: &Header,
    v: &VolumeInfo,
    tables: &Tables,
    stored_here: &HashMap<ChunkRow, u64>,
    records: &[SnapshotRecord],
) -> Result<bool> {
    let records = records
        .iter()
        .map(|r| {
            let bytes = encode_snapshot(r).map_err(|e| Error::Invalid(e.to_string()))?;
            Ok((r.name.clone(), bytes))
        })
        .collect::<Result<Vec<_>>>()?;
    // The trailer comes after the last batch of chunks was stored; only
    // delta chunks waiting for another volume have no row yet.
    let mut rows: Vec<(u64, ChunkRow, bool)> = Vec::with_capacity(tables.pack.len());
    for (i, r) in tables.pack.iter().enumerate() {
        let pos = v.first + i as u64;
        match r {
            Some(r) => rows.push((pos, *r, stored_here.contains_key(r))),
            None if tables.waiting.contains(&pos) => {}
            None => {
                return Err(Error::Integrity(
                    "a chunk of this volume was read but not stored: nothing was imported; unpack the volume again".into(),
                ));
            }
        }
    }
    let have = txn.record_volume(&NewVolume {
        set: &v.set,
        index: v.index,
        count: v.count,
        first: v.first,
        chunks: v.chunks,
        snapshots: &h.snapshots,
        rows: &rows,
        records: &records,
    })?;
    Ok(have >= v.count)
}

/// Snapshot records the set's volumes carried.
pub(super) fn pending_records(store: &Store, set: &[u8; 16]) -> Result<Vec<SnapshotRecord>> {
    store
        .pending_records(set)?
        .iter()
        .map(|b| {
            crate::pack::decode_snapshot(b, crate::pack::format::VERSION)
                .map_err(|e| Error::Invalid(format!("a waiting snapshot record is damaged: {e}")))
        })
        .collect()
}
