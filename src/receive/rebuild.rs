//! Rebuilding what arrives encoded: delta chunks and delta groups are
//! decoded against their bases (chunks in the store, or earlier records of
//! the pack) and checked against their BLAKE3 before anything is stored;
//! plain chunk records are decoded and checked in parallel batches.

use std::path::Path;

use rayon::prelude::*;

use crate::chunker::ChunkId;
use crate::codec;
use crate::error::{Error, Result};
use crate::pack::recipe::{Src, TableRef};
use crate::pack::{ChunkRecord, DeltaRecord, GroupRecord};
use crate::store::data::DataReader;
use crate::store::{ChunkEntry, ChunkRow, Txn};

/// Where compact recipe indices and delta bases point: rows of this
/// pack's chunk records, in order (`None` for a chunk of the batch being
/// stored; for a complete volume set, the set's whole table), and of the
/// bases' chunk tables.
pub(super) struct Tables {
    pub pack: Vec<Option<ChunkRow>>,
    pub base: Vec<ChunkRow>,
    /// Deltas may name earlier records of this pack (never so in a
    /// volume, whose set may arrive in any order).
    pub pack_bases: bool,
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

    /// The stored chunk a delta base names, when it is there.
    fn base_row(&self, b: &TableRef) -> Option<ChunkRow> {
        if b.src == Src::Pack && !self.pack_bases {
            return None;
        }
        self.row(b.src, b.index as usize).flatten()
    }
}

/// A delta frame and what it must rebuild to.
struct Frame<'a> {
    bases: &'a [TableRef],
    payload: &'a [u8],
    len: usize,
    digest: &'a [u8; 32],
    /// Names the record in errors.
    what: String,
}

/// Rebuilds a delta chunk from its bases and checks it against its BLAKE3.
pub(super) fn apply_delta(
    txn: &mut Txn<'_>,
    data: &mut DataReader,
    d: &DeltaRecord,
    tables: &Tables,
    label: &Path,
) -> Result<Vec<u8>> {
    let frame = Frame {
        bases: &d.bases,
        payload: &d.payload,
        len: d.len as usize,
        digest: d.id.as_bytes(),
        what: format!("delta chunk {}", d.id.short()),
    };
    rebuild(txn, data, &frame, tables, label)
}

/// Rebuilds a group's chunks (concatenated) from its bases and checks
/// them against the group's BLAKE3.
pub(super) fn apply_group(
    txn: &mut Txn<'_>,
    data: &mut DataReader,
    g: &GroupRecord,
    tables: &Tables,
    label: &Path,
) -> Result<Vec<u8>> {
    let frame = Frame {
        bases: &g.bases,
        payload: &g.payload,
        len: g.out_len() as usize,
        digest: &g.digest,
        what: format!("delta group {}", &crate::hex(&g.digest)[..16]),
    };
    rebuild(txn, data, &frame, tables, label)
}

/// Decodes a frame against its bases (chunks in the store, possibly
/// written earlier in this transaction) and checks the result against
/// its digest.
fn rebuild(
    txn: &mut Txn<'_>,
    data: &mut DataReader,
    f: &Frame<'_>,
    tables: &Tables,
    label: &Path,
) -> Result<Vec<u8>> {
    let what = &f.what;
    txn.flush_data()?;
    let mut base_bytes = Vec::new();
    for b in f.bases {
        // Pack-table bases must be records before this one; base-table
        // ones come from the store's copies of the bases.
        let base = match tables.base_row(b) {
            Some(r) => txn.store().chunk_by_row(r)?,
            None => None,
        };
        let Some(base) = base else {
            return Err(Error::pack(
                label,
                format!(
                    "pack sends {what} against {} chunk {}, which neither this store nor the pack holds there: it is corrupt, or was made for another store; copy it again, or ask for a pack made against what this store has ('ferry inventory')",
                    if b.src == Src::Pack { "pack" } else { "base" },
                    b.index
                ),
            ));
        };
        if base_bytes.len() as u64 + base.len as u64 > crate::pack::format::MAX_GROUP_PREFIX {
            return Err(Error::pack(
                label,
                format!("pack is corrupt: {what} names more than 32 MiB of bases"),
            ));
        }
        base_bytes.extend_from_slice(&read_base(data, &base)?);
    }
    let bytes = crate::similarity::decode(&base_bytes, f.payload, f.len).map_err(|m| {
        Error::pack(
            label,
            format!("pack is corrupt: {what}: {m}: copy it again from the source"),
        )
    })?;
    if blake3::hash(&bytes).as_bytes() != f.digest {
        return Err(Error::pack(
            label,
            format!(
                "pack is corrupt: {what} does not rebuild to its BLAKE3: copy it again from the source"
            ),
        ));
    }
    Ok(bytes)
}

/// A base chunk's bytes from this store, checked against its id.
fn read_base(data: &mut DataReader, base: &ChunkEntry) -> Result<Vec<u8>> {
    data.ensure(base.loc)?;
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
