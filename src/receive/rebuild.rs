//! Rebuilding what arrives encoded: delta chunks and delta groups are
//! decoded against their bases (chunks in the store, earlier records of
//! the pack, or chunks of another volume of its set) and checked against
//! their BLAKE3 before anything is stored; plain chunk records are decoded
//! and checked in parallel batches.

use std::collections::HashSet;
use std::path::Path;

use rayon::prelude::*;

use crate::chunker::ChunkId;
use crate::codec::{self, Codec};
use crate::error::{Error, Result};
use crate::pack::recipe::{Src, TableRef};
use crate::pack::{ChunkRecord, DeltaRecord, GroupRecord};
use crate::store::data::DataReader;
use crate::store::volumes::{ReadyDelta, WaitBase};
use crate::store::{ChunkEntry, ChunkRow, Store, Txn};

/// Where compact recipe indices and delta bases point: rows of this
/// pack's chunk records, in order (`None` for a chunk of the batch being
/// stored, or one waiting for a base; for a complete volume set, the
/// set's whole table), and of the bases' chunk tables.
pub(super) struct Tables {
    pub pack: Vec<Option<ChunkRow>>,
    pub base: Vec<ChunkRow>,
    /// Place of `pack[0]` in the pack's table: for a volume, where its
    /// chunks start in its set's table (0 once the set is whole).
    pub first: u64,
    /// For a volume, its set: a delta may name a chunk of another volume.
    pub set: Option<[u8; 16]>,
    /// Places (in the set's table) of this volume's delta chunks that wait
    /// for a base in another volume.
    pub waiting: HashSet<u64>,
}

/// Where a delta's base is.
enum BaseAt {
    /// Stored here.
    Row(ChunkRow),
    /// Another volume of the set brings it (or a delta that waits itself).
    Waits(u64),
    /// Nowhere: the pack is corrupt or made for another store.
    Absent,
}

impl Tables {
    /// Entries of the table `src` names.
    pub fn len(&self, src: Src) -> usize {
        match src {
            Src::Pack => self.pack.len(),
            Src::Base => self.base.len(),
        }
    }

    /// Entry `index` of the table `src` names: `None` past its end,
    /// `Some(None)` for a chunk of the batch being stored.
    pub fn row(&self, src: Src, index: usize) -> Option<Option<ChunkRow>> {
        match src {
            Src::Pack => self.pack.get(index).copied(),
            Src::Base => self.base.get(index).map(|&r| Some(r)),
        }
    }

    /// Where a delta base is. Pack-table bases must be records before this
    /// one: in this pack (or volume), or for a volume in another volume of
    /// its set, which may not have arrived yet.
    fn locate(&self, store: &Store, b: &TableRef) -> Result<BaseAt> {
        if b.src == Src::Base {
            return Ok(self
                .base
                .get(b.index as usize)
                .map_or(BaseAt::Absent, |&r| BaseAt::Row(r)));
        }
        let pos = b.index;
        if pos >= self.first {
            return Ok(match self.pack.get((pos - self.first) as usize) {
                Some(Some(r)) => BaseAt::Row(*r),
                Some(None) if self.waiting.contains(&pos) => BaseAt::Waits(pos),
                _ => BaseAt::Absent,
            });
        }
        let Some(set) = &self.set else {
            return Ok(BaseAt::Absent);
        };
        Ok(match store.volume_chunk(set, pos)? {
            Some(r) => BaseAt::Row(r),
            None => BaseAt::Waits(pos),
        })
    }
}

/// A delta frame and what it must rebuild to.
struct Frame<'a> {
    payload: &'a [u8],
    len: usize,
    digest: &'a [u8; 32],
    /// Names the record in errors.
    what: String,
}

/// Rebuilds a delta chunk that waited for bases in other volumes, now all
/// stored as `bases`, and checks it against its BLAKE3.
pub(super) fn apply_ready(
    txn: &mut Txn<'_>,
    data: &mut DataReader,
    d: &ReadyDelta,
    label: &Path,
) -> Result<Vec<u8>> {
    let frame = Frame {
        payload: &d.payload,
        len: d.len as usize,
        digest: &d.id,
        what: format!(
            "delta chunk {} kept from another volume of this set (if fresh copies fail too, 'ferry status --discard' the set and unpack it again)",
            &crate::hex(&d.id)[..16]
        ),
    };
    rebuild(txn, data, &frame, &d.bases, label)
}

/// A delta group rebuilt: its chunks' ids and their bytes encoded for
/// the store, in order.
pub(super) struct RebuiltGroup {
    pub ids: Vec<ChunkId>,
    pub encoded: Vec<(Codec, Vec<u8>)>,
}

/// Bases and output of the groups rebuilt in parallel at once, at most
/// (one group larger than this goes alone).
const GROUPS_IN_MEMORY: u64 = 48 << 20;

/// Rebuilds groups (a group's bases are always held, or earlier in this
/// pack) in parallel: each decoded against its bases, checked against its
/// BLAKE3, cut into its chunks, each hashed for its id and encoded for
/// the store. Results are in input order; the error is that of the first
/// group in order that fails, as if they were rebuilt one by one.
pub(super) fn rebuild_groups(
    txn: &mut Txn<'_>,
    data: &mut DataReader,
    groups: &[GroupRecord],
    tables: &Tables,
    label: &Path,
) -> Result<Vec<RebuiltGroup>> {
    txn.flush_data()?;
    // Bases are located and mapped in order, up to the first group whose
    // bases are not here; its error comes after those of the groups
    // before it.
    let mut work = Vec::with_capacity(groups.len());
    let mut unplaced = None;
    'groups: for g in groups {
        let what = format!("delta group {}", &crate::hex(&g.digest)[..16]);
        let mut rows = Vec::with_capacity(g.bases.len());
        for b in &g.bases {
            match tables.locate(txn.store(), b)? {
                BaseAt::Row(r) => rows.push(r),
                _ => {
                    unplaced = Some(absent(label, &what, b));
                    break 'groups;
                }
            }
        }
        match gather(txn, data, &what, &rows, label) {
            Ok(bases) => work.push((g, what, bases)),
            Err(e) => {
                unplaced = Some(e);
                break;
            }
        }
    }
    let data = &*data;
    let mut out = Vec::with_capacity(work.len());
    while !work.is_empty() {
        let (mut n, mut bytes) = (0, 0u64);
        while n < work.len() && (n == 0 || bytes < GROUPS_IN_MEMORY) {
            let (g, _, bases) = &work[n];
            bytes += g.out_len() + bases.iter().map(|b| b.len as u64).sum::<u64>();
            n += 1;
        }
        let part: Vec<_> = work.drain(..n).collect();
        let built: Vec<Result<RebuiltGroup>> = part
            .into_par_iter()
            .map(|(g, what, bases)| {
                let frame = Frame {
                    payload: &g.payload,
                    len: g.out_len() as usize,
                    digest: &g.digest,
                    what,
                };
                let bytes = decode_frame(data, &frame, &bases, label)?;
                let mut at = 0usize;
                let pieces: Vec<&[u8]> = g
                    .lens
                    .iter()
                    .map(|&l| {
                        at += l as usize;
                        &bytes[at - l as usize..at]
                    })
                    .collect();
                let (ids, encoded) = pieces
                    .into_par_iter()
                    .map(|p| (ChunkId::of(p), codec::encode_slice(p)))
                    .unzip();
                Ok(RebuiltGroup { ids, encoded })
            })
            .collect();
        for b in built {
            out.push(b?);
        }
    }
    match unplaced {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The error for a base that is nowhere.
fn absent(label: &Path, what: &str, b: &TableRef) -> Error {
    Error::pack(
        label,
        format!(
            "pack sends {what} against {} chunk {}, which neither this store nor the pack holds there: it is corrupt, or was made for another store; copy it again, or ask for a pack made against what this store has ('ferry inventory')",
            if b.src == Src::Pack { "pack" } else { "base" },
            b.index
        ),
    )
}

/// Decodes a frame against its bases (chunks in the store, possibly
/// written earlier in this transaction) and checks the result against
/// its digest.
fn rebuild(
    txn: &mut Txn<'_>,
    data: &mut DataReader,
    f: &Frame<'_>,
    rows: &[ChunkRow],
    label: &Path,
) -> Result<Vec<u8>> {
    txn.flush_data()?;
    let bases = gather(txn, data, &f.what, rows, label)?;
    decode_frame(data, f, &bases, label)
}

/// The store entries of a frame's bases, their data files mapped so that
/// reading them needs no `&mut` (the caller flushes the transaction's
/// written bytes first).
fn gather(
    txn: &mut Txn<'_>,
    data: &mut DataReader,
    what: &str,
    rows: &[ChunkRow],
    label: &Path,
) -> Result<Vec<ChunkEntry>> {
    let mut total = 0u64;
    let mut bases = Vec::with_capacity(rows.len());
    for &r in rows {
        let Some(base) = txn.store().chunk_by_row(r)? else {
            return Err(Error::Integrity(format!(
                "{what} is rebuilt against a chunk this store no longer has: run 'ferry verify'"
            )));
        };
        total += base.len as u64;
        if total > crate::pack::format::MAX_GROUP_PREFIX {
            return Err(Error::pack(
                label,
                format!("pack is corrupt: {what} names more than 32 MiB of bases"),
            ));
        }
        data.ensure(base.loc)?;
        bases.push(base);
    }
    Ok(bases)
}

/// Decodes a frame against its gathered bases and checks its digest. The
/// bases are read without checking each against its id, since the result
/// is checked; when it fails, they are read again checked, so that a
/// damaged base is named as the store's fault, not the pack's.
fn decode_frame(
    data: &DataReader,
    f: &Frame<'_>,
    bases: &[ChunkEntry],
    label: &Path,
) -> Result<Vec<u8>> {
    let what = &f.what;
    let mut base_bytes = Vec::with_capacity(bases.iter().map(|b| b.len as usize).sum());
    for base in bases {
        match crate::store::read_decoded_in(data, base) {
            Ok(bytes) => base_bytes.extend_from_slice(&bytes),
            Err(fault) => {
                // A checked read fails where an unchecked one did.
                return Err(damaged_base(data, bases).err().unwrap_or_else(|| {
                    Error::Integrity(format!(
                        "chunk {} of this store cannot be read: run 'ferry verify --full'",
                        fault.id
                    ))
                }));
            }
        }
    }
    // A delta frame is a zstd frame, or (version 10) a header-delta frame.
    let decode = match f.payload.first() {
        Some(&crate::tardelta::MARK) => crate::tardelta::decode,
        _ => crate::similarity::decode,
    };
    let bytes = decode(&base_bytes, f.payload, f.len).map_err(|m| {
        damaged_base(data, bases).err().unwrap_or_else(|| {
            Error::pack(
                label,
                format!("pack is corrupt: {what}: {m}: copy it again from the source"),
            )
        })
    })?;
    if blake3::hash(&bytes).as_bytes() != f.digest {
        damaged_base(data, bases)?;
        return Err(Error::pack(
            label,
            format!(
                "pack is corrupt: {what} does not rebuild to its BLAKE3: copy it again from the source"
            ),
        ));
    }
    Ok(bytes)
}

/// Reads every base checked: the error of the first damaged one.
fn damaged_base(data: &DataReader, bases: &[ChunkEntry]) -> Result<()> {
    for base in bases {
        read_base(data, base)?;
    }
    Ok(())
}

/// Where a delta chunk of the batch being stored stands.
pub(super) enum Standing {
    /// Its bases are stored: it can be rebuilt.
    Ready(Vec<ChunkRow>),
    /// In a volume: it waits for bases another volume brings.
    Waits(Vec<WaitBase>),
    /// A base is another delta of the batch, not rebuilt yet.
    Later,
}

/// Where delta `d`, entry `me` of the pack table, stands; `later` holds
/// the pack-table entries (of this volume's table) of the batch's deltas
/// not rebuilt yet. Only records before it may be its bases.
pub(super) fn standing(
    store: &Store,
    (me, d): (usize, &DeltaRecord),
    tables: &Tables,
    later: &HashSet<usize>,
    label: &Path,
) -> Result<Standing> {
    let mut at = Vec::with_capacity(d.bases.len());
    let mut waits = false;
    for b in &d.bases {
        let own = (b.src == Src::Pack && b.index >= tables.first)
            .then(|| (b.index - tables.first) as usize);
        if own.is_some_and(|i| i < me && later.contains(&i)) {
            return Ok(Standing::Later);
        }
        at.push(match tables.locate(store, b)? {
            BaseAt::Row(r) => WaitBase::Chunk(r),
            BaseAt::Waits(p) => {
                waits = true;
                WaitBase::Pos(p)
            }
            BaseAt::Absent => {
                return Err(absent(label, &format!("delta chunk {}", d.id.short()), b));
            }
        });
    }
    if waits {
        return Ok(Standing::Waits(at));
    }
    Ok(Standing::Ready(
        at.into_iter()
            .map(|b| match b {
                WaitBase::Chunk(r) => r,
                WaitBase::Pos(_) => unreachable!("no base waits"),
            })
            .collect(),
    ))
}

/// Rebuilds delta chunks whose bases are all stored, in parallel, each
/// checked against its BLAKE3 and encoded for the store, in input order.
pub(super) fn rebuild_ready<'a>(
    txn: &mut Txn<'_>,
    data: &mut DataReader,
    ready: impl Iterator<Item = (&'a DeltaRecord, &'a [ChunkRow])>,
    label: &Path,
) -> Result<Vec<(Codec, Vec<u8>)>> {
    txn.flush_data()?;
    let mut work = Vec::new();
    for (d, rows) in ready {
        let what = format!("delta chunk {}", d.id.short());
        let bases = gather(txn, data, &what, rows, label)?;
        work.push((d, what, bases));
    }
    let data = &*data;
    work.par_iter()
        .map(|(d, what, bases)| {
            let frame = Frame {
                payload: &d.payload,
                len: d.len as usize,
                digest: d.id.as_bytes(),
                what: what.clone(),
            };
            decode_frame(data, &frame, bases, label).map(codec::encode)
        })
        .collect()
}

/// A base chunk's bytes from this store, checked against its id.
fn read_base(data: &DataReader, base: &ChunkEntry) -> Result<Vec<u8>> {
    crate::store::read_verified_in(data, base).map_err(|f| match f.damage {
        // The data file's own error names the file and offset.
        crate::store::Damage::Unreadable(e) => e,
        _ => Error::Integrity(format!(
            "chunk {} in this store is damaged, so nothing can be rebuilt against it: run 'ferry verify --full'",
            base.id
        )),
    })
}

/// Decodes every chunk of the batch in parallel and checks its BLAKE3.
pub(super) fn verify_chunks(batch: &[&ChunkRecord]) -> std::result::Result<(), String> {
    batch.par_iter().try_for_each(|c| {
        let data = codec::decode(c.codec, &c.payload, c.len as usize).map_err(|e| {
            format!(
                "pack is corrupt: chunk {} cannot be decoded ({e}): copy it again from the source",
                c.id
            )
        })?;
        if ChunkId::of(&data) != c.id {
            return Err(format!(
                "pack is corrupt: chunk {} does not match its BLAKE3: copy it again from the source; if a fresh copy fails the same way, the sending store is damaged (a 'ferry checkout' there will say so)",
                c.id
            ));
        }
        Ok(())
    })
}
