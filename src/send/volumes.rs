//! Splitting a pack into volumes of at most a given size: which sends
//! each volume carries (a group never straddles two), the set id they
//! share, and each volume's header.

use crate::error::{Error, Result};
use crate::pack::{Header, VolumeInfo, overhead};

use super::io_out;
use super::plan::Plan;

/// How a pack is laid out in volumes.
pub(super) struct Volumes {
    /// First send index of each volume.
    cuts: Vec<usize>,
    /// Sends in the whole pack.
    sends: usize,
    /// Whether the pack is split (its headers then name their volume).
    split: bool,
    /// The set's id, shared by its volumes.
    set: [u8; 16],
}

impl Volumes {
    /// Lays `plan` out in volumes of at most `limit` bytes (one volume
    /// without a limit). `sizes` gives each item's first send and the bytes
    /// of its records as encoded (needed with a limit); `snapshot_bytes` is
    /// what the snapshot records take in the last volume.
    pub fn new(
        plan: &Plan,
        limit: Option<u64>,
        signed: bool,
        sizes: Vec<(usize, u64)>,
        snapshot_bytes: u64,
    ) -> Result<Self> {
        let cuts = match limit {
            None => vec![0],
            Some(limit) => {
                let mut header = plan.header.clone();
                header.volume = Some(VolumeInfo {
                    set: [0; 16],
                    index: 1,
                    count: 1,
                    first: 0,
                    chunks: 0,
                });
                let base = overhead(&header, signed).map_err(io_out)?;
                // A group is never split across volumes.
                let mut items = sizes;
                // The snapshot records go last, in the last volume.
                items.push((plan.sends.len(), snapshot_bytes));
                cut(&items, limit, base)?
            }
        };
        Ok(Volumes {
            cuts,
            sends: plan.sends.len(),
            split: limit.is_some(),
            set: set_id(plan),
        })
    }

    /// Volumes in the set.
    pub fn count(&self) -> u32 {
        self.cuts.len() as u32
    }

    /// The sends volume `v` (from 0) carries, as a range of send indices.
    pub fn range(&self, v: usize) -> std::ops::Range<usize> {
        let end = self.cuts.get(v + 1).copied().unwrap_or(self.sends);
        self.cuts[v]..end
    }

    /// True for the last volume, which carries the snapshot records.
    pub fn is_last(&self, v: usize) -> bool {
        v + 1 == self.cuts.len()
    }

    /// The header of volume `v` (from 0): the pack's, naming its volume
    /// when the pack is split.
    pub fn header(&self, pack: &Header, v: usize) -> Header {
        let mut header = pack.clone();
        if self.split {
            let r = self.range(v);
            header.volume = Some(VolumeInfo {
                set: self.set,
                index: v as u32 + 1,
                count: self.count(),
                first: r.start as u64,
                chunks: (r.end - r.start) as u64,
            });
        }
        header
    }
}

/// A set id unique to this run: the process, the time and the snapshots.
fn set_id(plan: &Plan) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(&std::process::id().to_le_bytes());
    h.update(&format!("{:?}", std::time::SystemTime::now()).into_bytes());
    for r in &plan.records {
        h.update(r.hash.as_bytes());
    }
    h.finalize().as_bytes()[..16].try_into().unwrap()
}

/// Cuts `items` (first send index, bytes of records) into volumes of at
/// most `limit` bytes, each taking `base` bytes besides its records: the
/// fewest volumes the items fit in, filled evenly (each about the mean,
/// an item going where most of it falls).
fn cut(items: &[(usize, u64)], limit: u64, base: u64) -> Result<Vec<usize>> {
    let (snapshots, records) = items.split_last().expect("the snapshot records");
    let largest = records.iter().map(|i| i.1).max().unwrap_or(0);
    for (need, what) in [
        (largest, "the header and the largest record"),
        (snapshots.1, "the header and the snapshot records"),
    ] {
        if base + need > limit {
            return Err(Error::Invalid(format!(
                "volume size {limit} is too small for this pack: {what} need {} bytes in one volume; give a larger --volume-size",
                base + need
            )));
        }
    }
    let cap = limit - base;
    let total: u64 = items.iter().map(|i| i.1).sum();
    let mut n = total.div_ceil(cap).max(1) as usize;
    loop {
        if let Some(cuts) = cut_in(items, cap, total, n) {
            return Ok(cuts);
        }
        n += 1;
    }
}

/// `items` in at most `n` volumes of at most `cap` bytes of records,
/// aiming each at an even share of what is left (None when they do not
/// fit in `n`). Every item is at most `cap`.
fn cut_in(items: &[(usize, u64)], cap: u64, total: u64, n: usize) -> Option<Vec<usize>> {
    let mut cuts = vec![0];
    let mut left = total;
    let mut target = left.div_ceil(n as u64);
    let mut used = 0u64;
    for &(start, bytes) in items {
        let full = used + bytes > cap;
        let past = cuts.len() < n && used + bytes / 2 > target;
        if used > 0 && (full || past) {
            if cuts.len() == n {
                return None;
            }
            cuts.push(start);
            left -= used;
            target = left.div_ceil((n + 1 - cuts.len()) as u64);
            used = 0;
        }
        used += bytes;
    }
    Some(cuts)
}
