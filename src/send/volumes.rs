//! Splitting a pack into volumes of at most a given size: which sends
//! each volume carries (a group never straddles two), the set id they
//! share, and each volume's header.

use crate::error::{Error, Result};
use crate::pack::{Header, VolumeInfo, chunk_record_len, overhead};

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
    /// without a limit). `snapshot_bytes` is what the snapshot records take
    /// in the last volume.
    pub fn new(plan: &Plan, limit: Option<u64>, signed: bool, snapshot_bytes: u64) -> Result<Self> {
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
                let mut fill = Fill::new(limit, base);
                // A group is never split across volumes: it goes as one
                // record, or as plain records that are never larger.
                for (i, n) in plan.items() {
                    let rec: u64 = plan.sends[i..i + n]
                        .iter()
                        .map(|c| chunk_record_len(c.loc.clen))
                        .sum();
                    fill.add(i, rec)?;
                }
                fill.finish(plan.sends.len(), snapshot_bytes)?
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

/// Volumes being filled in pack order.
struct Fill {
    limit: u64,
    /// What every volume takes besides its chunk records.
    base: u64,
    /// Bytes the current volume takes so far, and the items in it.
    used: u64,
    in_volume: u64,
    /// First send index of each volume.
    cuts: Vec<usize>,
}

impl Fill {
    fn new(limit: u64, base: u64) -> Self {
        Fill {
            limit,
            base,
            used: base,
            in_volume: 0,
            cuts: vec![0],
        }
    }

    fn too_small(&self, need: u64) -> Error {
        Error::Invalid(format!(
            "volume size {} is too small: one volume needs at least {need} bytes here; give a larger --volume-size",
            self.limit
        ))
    }

    /// Adds the item starting at send `i`, `rec` bytes of records, starting
    /// a new volume when it does not fit in this one.
    fn add(&mut self, i: usize, rec: u64) -> Result<()> {
        if self.base + rec > self.limit {
            return Err(self.too_small(self.base + rec));
        }
        if self.used + rec > self.limit {
            self.cuts.push(i);
            self.used = self.base;
            self.in_volume = 0;
        }
        self.used += rec;
        self.in_volume += 1;
        Ok(())
    }

    /// Places the snapshot records (in a volume of their own when they do
    /// not fit in the last one); returns each volume's first send index.
    fn finish(mut self, sends: usize, snapshot_bytes: u64) -> Result<Vec<usize>> {
        if self.used + snapshot_bytes > self.limit {
            if self.base + snapshot_bytes > self.limit {
                return Err(self.too_small(self.base + snapshot_bytes));
            }
            if self.in_volume > 0 {
                self.cuts.push(sends);
            }
        }
        Ok(self.cuts)
    }
}
