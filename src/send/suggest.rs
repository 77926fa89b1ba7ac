//! Choosing delta bases when `pack` is not given `--base`: the snapshots
//! the receiver is known to hold (its inventory, or the peer ledger) that
//! share the most with what is packed become bases, so the pack can carry
//! deltas and same-file groups as with `--base`; with nothing known of the
//! receiver, the snapshot that would help most is named in a warning.

use crate::error::Result;
use crate::store::{Snapshot, SnapshotDigest, Store};

/// At most this many bases are taken from what the receiver holds.
const MAX_BASES: usize = 2;

/// A snapshot that shares chunks with what is packed.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its name in this store.
    pub name: String,
    /// Encoded bytes of the chunks it shares with the packed snapshots.
    pub shared: u64,
    /// Encoded bytes the packed snapshots reference in all.
    pub total: u64,
}

impl Candidate {
    /// The share of the packed snapshots' bytes it holds, in percent.
    pub fn percent(&self) -> f64 {
        100.0 * self.shared as f64 / self.total.max(1) as f64
    }
}

/// Snapshots of this store sharing chunks with `snapshots`, best first;
/// only those whose BLAKE3 is in `held` when it is given.
pub fn candidates(
    store: &Store,
    snapshots: &[String],
    held: Option<&[SnapshotDigest]>,
) -> Result<Vec<Candidate>> {
    let packed: Vec<Snapshot> = snapshots
        .iter()
        .map(|n| store.require(n))
        .collect::<Result<_>>()?;
    let rows: Vec<i64> = packed.iter().map(|s| s.rowid).collect();
    let total: u64 = packed.iter().map(|s| s.stored).sum();
    let all = store.snapshots()?;
    let mut out = Vec::new();
    for (row, shared) in store.sharing(&rows, 64)? {
        let Some(s) = all.iter().find(|s| s.rowid == row) else {
            continue;
        };
        if packed.iter().any(|p| p.blake3 == s.blake3) {
            continue;
        }
        if held.is_some_and(|h| !h.contains(&s.blake3)) {
            continue;
        }
        out.push(Candidate {
            name: s.name.clone(),
            shared,
            total,
        });
    }
    Ok(out)
}

/// Snapshots stored before every one of `snapshots` (older versions, most
/// likely what a receiver already runs) that share chunks with them, best
/// first.
pub fn older_candidates(store: &Store, snapshots: &[String]) -> Result<Vec<Candidate>> {
    let first = snapshots
        .iter()
        .map(|n| store.require(n).map(|s| s.rowid))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .min()
        .unwrap_or(0);
    let older: Vec<SnapshotDigest> = store
        .snapshots()?
        .into_iter()
        .filter(|s| s.rowid < first)
        .map(|s| s.blake3)
        .collect();
    candidates(store, snapshots, Some(&older))
}

/// The bases to use for a receiver known to hold `held`: the best few
/// that share anything.
pub fn receiver_bases(
    store: &Store,
    snapshots: &[String],
    held: &[SnapshotDigest],
) -> Result<Vec<Candidate>> {
    let mut c = candidates(store, snapshots, Some(held))?;
    c.retain(|c| c.shared > 0);
    c.truncate(MAX_BASES);
    Ok(c)
}
