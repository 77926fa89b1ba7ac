//! Encoding the chunk records of a pack: each chunk sent is read back and
//! checked against its id, then goes whole (as stored, or squeezed with a
//! stronger zstd level), as a delta against its similar chunks, or, for a
//! group, as one frame against the old version of its file.

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::codec;
use crate::error::{Error, Result};
use crate::pack::{PackWriter, chunk_record_len, recipe};
use crate::progress::Progress;
use crate::store::data::DataReader;
use crate::store::{ChunkEntry, Store};

use super::io_out;
use super::plan::Plan;
use super::spool::Spool;

/// Sends encoded together (in parallel) at most, by count and bytes.
const BATCH_CHUNKS: usize = 1024;
const BATCH_BYTES: u64 = 64 << 20;

/// How one send goes into the pack on its own.
pub(super) enum Single {
    Stored,
    Squeezed(Vec<u8>),
    Delta(Vec<u8>),
}

/// A group's record: its chunks' lengths, their digest, its bases and frame.
pub(super) struct GroupOut {
    pub lens: Vec<u32>,
    pub digest: [u8; 32],
    pub refs: Vec<recipe::TableRef>,
    pub frame: Vec<u8>,
}

/// How an item (one send, or a group of sends) goes into the pack.
pub(super) enum Encoded {
    Group(GroupOut),
    /// One record per send of the item.
    Singles(Vec<Single>),
}

/// Writes the chunk records of a plan, volume by volume.
pub(super) struct Encoder<'a> {
    plan: &'a Plan,
    reader: DataReader,
    store_dir: PathBuf,
    /// Whole chunks are worth a stronger zstd level (a delta pack is small).
    squeeze: bool,
    progress: &'a dyn Progress,
}

impl<'a> Encoder<'a> {
    pub fn new(store: &Store, plan: &'a Plan, squeeze: bool, progress: &'a dyn Progress) -> Self {
        Encoder {
            plan,
            reader: store.data_reader(),
            store_dir: store.dir().to_path_buf(),
            squeeze,
            progress,
        }
    }

    /// Writes the records of sends `range` (whole items), in batches
    /// encoded in parallel.
    pub fn write<W: Write>(
        &mut self,
        w: &mut PackWriter<W>,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        let items: Vec<(usize, usize)> = self
            .plan
            .items()
            .filter(|&(i, _)| range.contains(&i))
            .collect();
        for batch in self.batches(&items) {
            self.write_batch(w, batch)?;
        }
        Ok(())
    }

    /// Cuts `items` into batches of at most [`BATCH_CHUNKS`] chunks or
    /// [`BATCH_BYTES`] bytes (the item that reaches either ends its batch).
    fn batches<'i>(&self, items: &'i [(usize, usize)]) -> Vec<&'i [(usize, usize)]> {
        let mut batches = Vec::new();
        let (mut from, mut chunks, mut bytes) = (0usize, 0usize, 0u64);
        for (k, &(i, n)) in items.iter().enumerate() {
            chunks += n;
            bytes += self.plan.sends[i..i + n]
                .iter()
                .map(|c| c.len as u64)
                .sum::<u64>();
            if chunks >= BATCH_CHUNKS || bytes >= BATCH_BYTES || k + 1 == items.len() {
                batches.push(&items[from..=k]);
                from = k + 1;
                chunks = 0;
                bytes = 0;
            }
        }
        batches
    }

    fn write_batch<W: Write>(
        &mut self,
        w: &mut PackWriter<W>,
        batch: &[(usize, usize)],
    ) -> Result<()> {
        self.ensure_batch(batch)?;
        let encoded = self.encode_batch(batch)?;
        for (&(i, n), out) in batch.iter().zip(encoded) {
            self.write_item(w, i, n, out)?;
            self.progress.advance(self.raw(i, n));
        }
        self.reader.release();
        Ok(())
    }

    /// Maps what a batch reads: its sends and their bases.
    fn ensure_batch(&mut self, batch: &[(usize, usize)]) -> Result<()> {
        let plan = self.plan;
        for &(i, n) in batch {
            for c in &plan.sends[i..i + n] {
                self.reader.ensure(c.loc)?;
            }
            for b in plan.similar[i].iter().chain(plan.group_bases(i)) {
                self.reader.ensure(b.loc)?;
            }
        }
        Ok(())
    }

    /// Plain bytes of an item's sends (what progress counts).
    fn raw(&self, i: usize, n: usize) -> u64 {
        self.plan.sends[i..i + n].iter().map(|c| c.len as u64).sum()
    }

    /// Encodes every item of the plan into `spool`; returns each item's
    /// first send and the exact bytes of its records.
    pub fn spool_all(&mut self, spool: &mut Spool) -> Result<Vec<(usize, u64)>> {
        let items: Vec<(usize, usize)> = self.plan.items().collect();
        let mut sizes = Vec::with_capacity(items.len());
        for batch in self.batches(&items) {
            self.ensure_batch(batch)?;
            let encoded = self.encode_batch(batch)?;
            for (&(i, n), out) in batch.iter().zip(encoded) {
                let mut stored = Vec::new();
                if let Encoded::Singles(singles) = &out {
                    for (c, s) in self.plan.sends[i..i + n].iter().zip(singles) {
                        if let Single::Stored = s {
                            stored.push(*blake3::hash(self.reader.get(&c.id, c.loc)?).as_bytes());
                        }
                    }
                }
                sizes.push((i, self.record_len(i, n, &out)));
                spool.put(&out, &mut stored.into_iter())?;
                self.progress.advance(self.raw(i, n));
            }
            self.reader.release();
        }
        Ok(sizes)
    }

    /// Writes the records of sends `range` (whole items) from `spool`,
    /// which [`Self::spool_all`] filled and which is read in order. A chunk
    /// that goes as stored must still hash as it did when it was encoded.
    pub fn replay<W: Write>(
        &mut self,
        w: &mut PackWriter<W>,
        spool: &mut Spool,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        let plan = self.plan;
        let items: Vec<(usize, usize)> =
            plan.items().filter(|&(i, _)| range.contains(&i)).collect();
        for batch in self.batches(&items) {
            for &(i, n) in batch {
                let (mut out, stored) = spool.next()?;
                match &mut out {
                    Encoded::Group(g) => g.refs = plan.refs(plan.group_bases(i)),
                    Encoded::Singles(singles) => {
                        let mut hashes = stored.iter();
                        for (c, s) in plan.sends[i..i + n].iter().zip(singles.iter()) {
                            if let Single::Stored = s {
                                self.reader.ensure(c.loc)?;
                                let now = blake3::hash(self.reader.get(&c.id, c.loc)?);
                                if Some(now.as_bytes()) != hashes.next() {
                                    return Err(Error::BadStore {
                                        store: self.store_dir.clone(),
                                        msg: format!(
                                            "chunk {} changed in data file {:08}.dat while it was packed: run 'ferry verify --full', then pack again",
                                            c.id, c.loc.file
                                        ),
                                    });
                                }
                            }
                        }
                    }
                }
                self.write_item(w, i, n, out)?;
            }
            self.reader.release();
        }
        Ok(())
    }

    /// Bytes the records of an encoded item take.
    fn record_len(&self, i: usize, n: usize, out: &Encoded) -> u64 {
        let plan = self.plan;
        match out {
            Encoded::Group(g) => crate::pack::group_record_len(&g.lens, &g.refs, g.frame.len()),
            Encoded::Singles(singles) => plan.sends[i..i + n]
                .iter()
                .zip(singles)
                .map(|(c, s)| match s {
                    Single::Stored => chunk_record_len(c.loc.clen),
                    Single::Squeezed(p) => chunk_record_len(p.len() as u32),
                    Single::Delta(p) => {
                        crate::pack::delta_record_len(&plan.refs(&plan.similar[i]), p.len())
                    }
                })
                .sum(),
        }
    }

    /// Encodes a batch in parallel, costliest items first, one task each,
    /// so no core idles at the end of the batch behind one large group.
    fn encode_batch(&self, batch: &[(usize, usize)]) -> Result<Vec<Encoded>> {
        let plan = self.plan;
        let cost = |&(i, n): &(usize, usize)| -> u64 {
            let own: u64 = plan.sends[i..i + n].iter().map(|c| c.len as u64).sum();
            let base: u64 = plan.similar[i]
                .iter()
                .chain(plan.group_bases(i))
                .map(|c| c.len as u64)
                .sum();
            own + base
        };
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(cost(&batch[k])));
        let encoded: Vec<(usize, Encoded)> = order
            .par_iter()
            .with_max_len(1)
            .map(|&k| self.encode_item(batch[k]).map(|out| (k, out)))
            .collect::<Result<_>>()?;
        let mut outs: Vec<Option<Encoded>> = (0..batch.len()).map(|_| None).collect();
        for (k, out) in encoded {
            outs[k] = Some(out);
        }
        Ok(outs.into_iter().flatten().collect())
    }

    /// A group is kept when its record is smaller than its chunks' records.
    fn encode_item(&self, (i, n): (usize, usize)) -> Result<Encoded> {
        let plan = self.plan;
        let members = &plan.sends[i..i + n];
        let Some(g) = plan.groups.get(&i) else {
            return Ok(Encoded::Singles(vec![
                self.single(&members[0], &plan.similar[i])?,
            ]));
        };
        let mut data = Vec::new();
        for c in members {
            data.extend_from_slice(&self.read(c)?);
        }
        let mut base = Vec::new();
        for b in &g.bases {
            base.extend_from_slice(&self.read(b)?);
        }
        let frame = crate::similarity::encode_group(&base, &data);
        let lens: Vec<u32> = members.iter().map(|c| c.len).collect();
        let refs = plan.refs(&g.bases);
        let digest = *blake3::hash(&data).as_bytes();
        let record = crate::pack::group_record_len(&lens, &refs, frame.len());
        let plain: u64 = members.iter().map(|c| chunk_record_len(c.loc.clen)).sum();
        if record < plain {
            return Ok(Encoded::Group(GroupOut {
                lens,
                digest,
                refs,
                frame,
            }));
        }
        members
            .iter()
            .map(|c| self.single(c, &[]))
            .collect::<Result<_>>()
            .map(Encoded::Singles)
    }

    /// A chunk with similar bases is delta-encoded against them, and kept
    /// as a delta when that is clearly smaller.
    fn single(&self, c: &ChunkEntry, bases: &[ChunkEntry]) -> Result<Single> {
        let data = self.read(c)?;
        let clen = c.loc.clen as usize;
        if !bases.is_empty() {
            let mut base = Vec::new();
            for b in bases {
                base.extend_from_slice(&self.read(b)?);
            }
            let delta = crate::similarity::encode(&base, &data);
            if delta.len() + 31 < clen && delta.len() < clen / 10 * 9 {
                return Ok(Single::Delta(delta));
            }
        }
        // A delta pack is small: what goes whole is worth a stronger zstd
        // level than the store's.
        if self.squeeze && c.codec == codec::Codec::Zstd {
            let tight = crate::similarity::squeeze(&data);
            if tight.len() < clen {
                return Ok(Single::Squeezed(tight));
            }
        }
        Ok(Single::Stored)
    }

    fn read(&self, c: &ChunkEntry) -> Result<Vec<u8>> {
        read_verified(&self.reader, &self.store_dir, c)
    }

    fn write_item<W: Write>(
        &self,
        w: &mut PackWriter<W>,
        i: usize,
        n: usize,
        out: Encoded,
    ) -> Result<()> {
        let plan = self.plan;
        match out {
            Encoded::Group(g) => {
                w.group(&g.lens, &g.digest, &g.refs, &g.frame)
                    .map_err(io_out)?;
            }
            Encoded::Singles(outs) => {
                for (c, out) in plan.sends[i..i + n].iter().zip(outs) {
                    match out {
                        Single::Delta(delta) => {
                            w.delta(&c.id, c.len, &plan.refs(&plan.similar[i]), &delta)
                        }
                        Single::Squeezed(payload) => {
                            w.chunk(&c.id, codec::Codec::Zstd, c.len, &payload)
                        }
                        Single::Stored => {
                            w.chunk(&c.id, c.codec, c.len, self.reader.get(&c.id, c.loc)?)
                        }
                    }
                    .map_err(io_out)?;
                }
            }
        }
        Ok(())
    }
}

/// A chunk's bytes, checked against its id before they leave: a damaged
/// store is caught here, not after the air gap. The chunk must be in the
/// reader's window (see [`DataReader::ensure`]).
fn read_verified(reader: &DataReader, store_dir: &Path, c: &ChunkEntry) -> Result<Vec<u8>> {
    crate::store::read_verified_in(reader, c).map_err(|f| match f.damage {
        // The data file's own error names the file and offset.
        crate::store::Damage::Unreadable(e) => e,
        _ => Error::BadStore {
            store: store_dir.to_path_buf(),
            msg: format!(
                "chunk {} in data file {:08}.dat is damaged, so it cannot be packed: run 'ferry verify --full' to see which snapshots it breaks",
                c.id,
                c.loc.file,
            ),
        },
    })
}
