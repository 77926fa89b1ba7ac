//! Encoding the chunk records of a pack: each chunk sent is read back and
//! checked against its id, then goes whole (as stored, or squeezed with a
//! stronger zstd level), as a delta against its similar chunks, for a
//! group, as one frame against the old version of its file, or, for a run
//! of whole chunks, as one solid block.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::codec;
use crate::error::{Error, Result};
use crate::pack::{PackWriter, chunk_record_len, recipe};
use crate::progress::Progress;
use crate::store::data::DataReader;
use crate::store::{ChunkEntry, Store};

use super::io_out;
use super::plan::Plan;
use super::spool::Spool;

/// Bytes that the items being encoded, or encoded and waiting to be
/// written, may read at most (at least one item is always under way):
/// three default-level blocks, so both cores stay busy.
const IN_FLIGHT: u64 = 128 << 20;

/// What [`Encoder::spool_all`] returns: each item's first send and record
/// bytes, and the first sends of blocks that went as chunk records.
pub(super) type Spooled = (Vec<(usize, u64)>, Vec<usize>);

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
    /// A block's prefix: bytes of the block before it (0: none).
    pub prefix: u32,
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
    /// zstd level of solid blocks.
    level: i32,
    /// Bytes of the block before it that a block right after another is
    /// compressed after (0: none).
    prefix: usize,
    progress: &'a dyn Progress,
}

impl<'a> Encoder<'a> {
    pub fn new(
        store: &Store,
        plan: &'a Plan,
        squeeze: bool,
        level: i32,
        prefix: usize,
        progress: &'a dyn Progress,
    ) -> Self {
        Encoder {
            plan,
            reader: store.data_reader(),
            store_dir: store.dir().to_path_buf(),
            squeeze,
            level,
            prefix,
            progress,
        }
    }

    /// Writes the records of sends `range` (whole items), encoded in
    /// parallel and written in order.
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
        self.ensure_all(&items)?;
        // A block encoded after the block before it must follow that block's
        // record; if that one went as chunk records, it is encoded again
        // alone (rare: the one before did not compress).
        let mut after_block = false;
        self.encode_in_order(&items, |this, (i, n), mut out| {
            if matches!(&out, Encoded::Group(g) if g.prefix > 0) && !after_block {
                out = this.encode_item((i, n), None)?;
            }
            after_block = matches!(&out, Encoded::Group(g) if g.refs.is_empty());
            this.write_item(w, i, n, out)
        })
    }

    /// Whether the item starting at send `i` is a solid block.
    fn is_block(&self, i: usize) -> bool {
        self.plan.groups.get(&i).is_some_and(|g| g.bases.is_empty())
    }

    /// The block item before item `k` of `items` that item `k`, a block
    /// too, is compressed after; `None` without a prefix.
    fn block_before(&self, items: &[(usize, usize)], k: usize) -> Option<(usize, usize)> {
        let before = *items.get(k.checked_sub(1)?)?;
        (self.prefix > 0 && self.is_block(before.0) && self.is_block(items[k].0)).then_some(before)
    }

    /// The last [`Self::prefix`] bytes (at most) of block item `(i, n)`.
    fn block_tail(&self, (i, n): (usize, usize)) -> Result<Vec<u8>> {
        let mut parts = Vec::new();
        let mut got = 0;
        for c in self.plan.sends[i..i + n].iter().rev() {
            if got >= self.prefix {
                break;
            }
            got += c.len as usize;
            parts.push(self.read(c)?);
        }
        let mut tail: Vec<u8> = parts.into_iter().rev().flatten().collect();
        tail.drain(..tail.len().saturating_sub(self.prefix));
        Ok(tail)
    }

    /// Maps the data files that `items` read: their sends and bases.
    fn ensure_all(&mut self, items: &[(usize, usize)]) -> Result<()> {
        let plan = self.plan;
        for &(i, n) in items {
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

    /// Bytes an item's encoding reads: its sends and their bases.
    fn cost(&self, (i, n): (usize, usize)) -> u64 {
        let plan = self.plan;
        let base: u64 = plan.similar[i]
            .iter()
            .chain(plan.group_bases(i))
            .map(|c| c.len as u64)
            .sum();
        self.raw(i, n) + base
    }

    /// Encodes `items` on every core, one task each, and hands each result
    /// to `each` in order, as soon as it and those before it are done.
    /// Tasks start in order while the items started but not yet handed
    /// over read at most [`IN_FLIGHT`] bytes (always at least one), so
    /// memory stays bounded and no core waits for a batch to end behind a
    /// large block. Mapped pages are dropped every [`IN_FLIGHT`] bytes.
    fn encode_in_order(
        &self,
        items: &[(usize, usize)],
        mut each: impl FnMut(&Self, (usize, usize), Encoded) -> Result<()>,
    ) -> Result<()> {
        type Done = std::thread::Result<Result<Encoded>>;
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Done)>();
        rayon::in_place_scope_fifo(|scope| {
            let (mut started, mut handed, mut ahead, mut since_release) = (0, 0, 0u64, 0u64);
            let mut done: HashMap<usize, Done> = HashMap::new();
            while handed < items.len() {
                while started < items.len() && (started == handed || ahead < IN_FLIGHT) {
                    let (k, item, tx) = (started, items[started], tx.clone());
                    let before = self.block_before(items, k);
                    ahead += self.cost(item);
                    scope.spawn_fifo(move |_| {
                        // A panic is sent on too, or the loop would wait
                        // forever; the receiver is gone only when an error
                        // ended the loop.
                        let encode =
                            std::panic::AssertUnwindSafe(|| self.encode_item(item, before));
                        let _ = tx.send((k, std::panic::catch_unwind(encode)));
                    });
                    started += 1;
                }
                let (k, out) = rx.recv().expect("every task sends its result");
                done.insert(k, out);
                while let Some(out) = done.remove(&handed) {
                    let (i, n) = items[handed];
                    ahead -= self.cost(items[handed]);
                    let out = out.unwrap_or_else(|p| std::panic::resume_unwind(p));
                    each(self, (i, n), out?)?;
                    self.progress.advance(self.raw(i, n));
                    since_release += self.raw(i, n);
                    if since_release >= IN_FLIGHT {
                        self.reader.release();
                        since_release = 0;
                    }
                    handed += 1;
                }
            }
            self.reader.release();
            Ok(())
        })
    }

    /// Encodes every item of the plan into `spool`; returns each item's
    /// first send and the exact bytes of its records, and the blocks that
    /// did not pay and went as chunk records: each of their sends is an
    /// item of its own in the spool, so volumes may be cut between them
    /// (the caller drops those blocks from the plan before replaying).
    pub fn spool_all(&mut self, spool: &mut Spool) -> Result<Spooled> {
        let items: Vec<(usize, usize)> = self.plan.items().collect();
        self.ensure_all(&items)?;
        let mut sizes = Vec::with_capacity(items.len());
        let mut unblocked = Vec::new();
        self.encode_in_order(&items, |this, (i, n), out| {
            let block = n > 1 && this.plan.group_bases(i).is_empty();
            let parts: Vec<(usize, usize, Encoded)> = match out {
                Encoded::Singles(singles) if block => {
                    unblocked.push(i);
                    let each = singles.into_iter().enumerate();
                    each.map(|(k, s)| (i + k, 1, Encoded::Singles(vec![s])))
                        .collect()
                }
                out => vec![(i, n, out)],
            };
            for (i, n, out) in parts {
                let mut stored = Vec::new();
                if let Encoded::Singles(singles) = &out {
                    for (c, s) in this.plan.sends[i..i + n].iter().zip(singles) {
                        if let Single::Stored = s {
                            stored.push(*blake3::hash(this.reader.get(&c.id, c.loc)?).as_bytes());
                        }
                    }
                }
                sizes.push((i, this.record_len(i, n, &out)));
                spool.put(&out, &mut stored.into_iter())?;
            }
            Ok(())
        })?;
        Ok((sizes, unblocked))
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
        self.ensure_all(&items)?;
        let mut since_release = 0u64;
        for (i, n) in items {
            let (mut out, stored) = spool.next()?;
            match &mut out {
                Encoded::Group(g) => g.refs = plan.refs(plan.group_bases(i)),
                Encoded::Singles(singles) => {
                    let mut hashes = stored.iter();
                    for (c, s) in plan.sends[i..i + n].iter().zip(singles.iter()) {
                        if let Single::Stored = s {
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
            since_release += self.raw(i, n);
            if since_release >= IN_FLIGHT {
                self.reader.release();
                since_release = 0;
            }
        }
        self.reader.release();
        Ok(())
    }

    /// Bytes the records of an encoded item take.
    fn record_len(&self, i: usize, n: usize, out: &Encoded) -> u64 {
        let plan = self.plan;
        match out {
            Encoded::Group(g) if g.refs.is_empty() => {
                crate::pack::block_record_len(&g.lens, g.prefix, g.frame.len())
            }
            Encoded::Group(g) => crate::pack::group_record_len(&g.lens, &g.refs, &g.frame),
            Encoded::Singles(singles) => plan.sends[i..i + n]
                .iter()
                .zip(singles)
                .map(|(c, s)| match s {
                    Single::Stored => chunk_record_len(c.loc.clen),
                    Single::Squeezed(p) => chunk_record_len(p.len() as u32),
                    Single::Delta(p) => {
                        crate::pack::delta_record_len(&plan.refs(&plan.similar[i]), p, c.len)
                    }
                })
                .sum(),
        }
    }

    /// A group is kept when its record is smaller than its chunks' records.
    /// A block is compressed after the end of block item `before`, if any.
    fn encode_item(
        &self,
        (i, n): (usize, usize),
        before: Option<(usize, usize)>,
    ) -> Result<Encoded> {
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
        let lens: Vec<u32> = members.iter().map(|c| c.len).collect();
        let mut prefix = Vec::new();
        let (frame, digest, record) = if g.bases.is_empty() {
            // A solid block: its chunks' ids, checked as they were read,
            // are what the receiver checks.
            if let Some(before) = before {
                prefix = self.block_tail(before)?;
            }
            let frame = codec::encode_block(&data, self.level, &prefix);
            let digest = crate::pack::block_digest(members.iter().map(|c| &c.id));
            let record = crate::pack::block_record_len(&lens, prefix.len() as u32, frame.len());
            (frame, digest, record)
        } else {
            let mut base = Vec::new();
            for b in &g.bases {
                base.extend_from_slice(&self.read(b)?);
            }
            let frame = crate::similarity::encode_group(&base, &data);
            let refs = plan.refs(&g.bases);
            let record = crate::pack::group_record_len(&lens, &refs, &frame);
            (frame, *blake3::hash(&data).as_bytes(), record)
        };
        let refs = plan.refs(&g.bases);
        let plain: u64 = members.iter().map(|c| chunk_record_len(c.loc.clen)).sum();
        // A block must save more than 1/32 of its chunks' records: one that
        // only drops their ids (incompressible data) would cost the
        // receiver a decode and a re-encode for nothing, and cut volumes
        // in coarser steps.
        let worth = if g.bases.is_empty() {
            plain - plain / 32
        } else {
            plain
        };
        if record < worth {
            return Ok(Encoded::Group(GroupOut {
                lens,
                digest,
                refs,
                prefix: prefix.len() as u32,
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
        // Packs carry no LZ4: a chunk the store keeps so goes as a zstd
        // frame at the level of the store's zstd chunks (the frame a store
        // of zstd chunks held for it), and is judged by that frame's size.
        let recoded = (c.codec == codec::Codec::Lz4).then(|| codec::zstd_frame(&data));
        let clen = recoded.as_ref().map_or(c.loc.clen as usize, Vec::len);
        if !bases.is_empty() {
            let mut base = Vec::new();
            for b in bases {
                base.extend_from_slice(&self.read(b)?);
            }
            let mut delta = crate::similarity::encode(&base, &data);
            // Tar headers go as differences from the old headers when
            // that is smaller.
            if let Some(headers) = crate::tardelta::encode(&base, &data)
                && headers.len() < delta.len()
            {
                delta = headers;
            }
            if delta.len() + 31 < clen && delta.len() < clen / 10 * 9 {
                return Ok(Single::Delta(delta));
            }
        }
        // A delta pack is small: what goes whole is worth a stronger zstd
        // level than the store's.
        if self.squeeze && c.codec != codec::Codec::Raw {
            let tight = crate::similarity::squeeze(&data);
            if tight.len() < clen {
                return Ok(Single::Squeezed(tight));
            }
        }
        Ok(recoded.map_or(Single::Stored, Single::Squeezed))
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
            Encoded::Group(g) if g.refs.is_empty() => {
                w.block(&g.lens, &g.digest, g.prefix, &g.frame)
                    .map_err(io_out)?;
            }
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
