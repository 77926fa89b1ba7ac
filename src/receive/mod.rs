//! Receiving: [`unpack`] verifies a pack and imports it as one
//! all-or-nothing write. Its header is checked first (`accept`); chunk
//! records are verified in batches and delta records rebuilt
//! (`rebuild`); snapshot records are imported (`import`) once every
//! chunk is in, for a volume once its whole set is (`volumes`).
//! [`inspect`](inspect::inspect) reads a pack the same way and reports what it holds,
//! importing nothing.

mod accept;
mod ahead;
mod authenticate;
mod block;
mod groups;
mod import;
pub mod inspect;
mod rebuild;
mod volumes;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use serde::Serialize;

use crate::chunker::ChunkId;
use crate::codec::{self, Codec};
use crate::counting::Counting;
use crate::error::{Error, IoContext, Result};
use crate::pack::{
    ChunkRecord, DeltaRecord, GroupRecord, Header, PackReader, Record, SnapshotRecord,
};
use crate::progress::Progress;
use crate::store::Txn;
use crate::store::data::DataReader;
use crate::store::volumes::WaitBase;
use crate::store::{ChunkRow, Store};

use ahead::{Arrived, read_ahead};
use import::import_snapshot;
pub use inspect::PackInfo;
use rebuild::{Standing, Tables};
pub use volumes::{VolumeStatus, WaitingSet, discard_sets, waiting_sets};

/// What [`unpack`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnpackReport {
    /// Chunk records read.
    pub chunks: u64,
    /// Chunks stored (the rest were already there).
    pub new_chunks: u64,
    /// Encoded bytes stored.
    pub new_bytes: u64,
    /// Snapshots that became visible.
    pub added: Vec<String>,
    /// Snapshots the store already had (unpacking again is a no-op).
    pub present: Vec<String>,
    /// Bytes of the pack.
    pub pack_bytes: u64,
    /// Chunks that arrived as similarity deltas (rebuilt here, or waiting).
    pub delta_chunks: u64,
    /// Bytes of the pack that carried them (delta frames).
    pub delta_bytes: u64,
    /// Delta chunks of this volume that wait for a base in a volume of its
    /// set not yet unpacked (rebuilt when it arrives).
    #[serde(skip_serializing_if = "is_zero")]
    pub waiting_deltas: u64,
    /// Delta chunks that had waited for this volume and were rebuilt now.
    #[serde(skip_serializing_if = "is_zero")]
    pub resolved_deltas: u64,
    /// For a volume: which one, and what its set still needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeStatus>,
    /// Public key (hex) of the trusted key that signed the pack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// Names (tags) the pack moved from other content to its snapshots.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<TagMove>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A name that moved to another snapshot (see [`UnpackReport::moved`]).
#[derive(Debug, Clone, Serialize)]
pub struct TagMove {
    /// The name.
    pub name: String,
    /// The BLAKE3 it named before (hex).
    pub from: String,
    /// The BLAKE3 it names now (hex).
    pub to: String,
    /// The name the old content keeps.
    pub kept_as: String,
}

/// Chunk records verified together (in parallel) before they are stored.
const VERIFY_BATCH: usize = 64;
/// Delta chunks rebuilt in parallel at once (each holds up to 1 MiB of
/// bases and its result).
const DELTAS_AT_ONCE: usize = 8;
/// New chunk bytes stored before the first commit of an unpack; each
/// commit after it waits for twice as many, up to [`MAX_CHECKPOINT_BYTES`].
/// A commit waits for the disk (every byte before it synced), so on a
/// large import this keeps those waits few (three for 450 MB of new
/// chunks, not fourteen), while a killed unpack still loses at most as
/// much as it had kept.
const CHECKPOINT_BYTES: u64 = 32 << 20;
/// The most new chunk bytes stored between two commits of an unpack (what
/// a killed unpack may have to read again).
const MAX_CHECKPOINT_BYTES: u64 = 256 << 20;

/// Verifies and imports a pack read from `input` (`label` names it in
/// messages). Either everything in the pack lands or nothing does; if the
/// process is killed part-way, the chunks verified so far stay, and running
/// it again skips them. When the store trusts keys, the pack is first
/// copied to a temporary file beside the store as its signature is
/// checked, and imported from there once it holds (see [`unpack_file`]).
pub fn unpack<R: Read + Send>(
    store: &mut Store,
    input: R,
    label: &Path,
    progress: &dyn Progress,
) -> Result<UnpackReport> {
    if !authenticate::needed(store)? {
        return import(store, input, None, label, progress);
    }
    let copy = authenticate::spool(store, input, label, progress)?;
    let size = copy.metadata().ok().map(|m| m.len());
    import(
        store,
        BufReader::with_capacity(1 << 20, copy),
        size,
        label,
        progress,
    )
}

/// [`unpack`] of a pack file. When the store trusts keys, the file is read
/// through to its signature first, and imported only once that holds, so
/// nothing of a forged pack is ever written (not even by an unpack killed
/// part-way).
pub fn unpack_file(
    store: &mut Store,
    mut file: File,
    label: &Path,
    progress: &dyn Progress,
) -> Result<UnpackReport> {
    let size = match file.metadata() {
        Ok(m) if m.is_file() => m.len(),
        // A pipe or a device: it can be read only once.
        _ => {
            return unpack(
                store,
                BufReader::with_capacity(1 << 20, file),
                label,
                progress,
            );
        }
    };
    if authenticate::needed(store)? {
        let input = BufReader::with_capacity(1 << 20, &file);
        authenticate::check(store, input, Some(size), label, progress)?;
        file.rewind()
            .ctx(|| format!("reading {} again", label.display()))?;
    }
    import(
        store,
        BufReader::with_capacity(1 << 20, file),
        Some(size),
        label,
        progress,
    )
}

/// Verifies and imports a pack (see [`unpack`]) of `size` bytes when known
/// (progress counts pack bytes read); a signature is checked only at the end.
fn import<R: Read + Send>(
    store: &mut Store,
    input: R,
    size: Option<u64>,
    label: &Path,
    progress: &dyn Progress,
) -> Result<UnpackReport> {
    let counted = Counting::new(input);
    let mut reader = PackReader::new(counted).map_err(|e| bad(label, e))?;
    let h = reader.header().clone();
    accept::check_chunker(store, &h, label)?;
    accept::check_names(&h, label)?;
    accept::check_bases(store, &h, label)?;
    let base = accept::base_table(store, &h, reader.version(), label)?;
    let signed_by = accept::check_trust(store, &h, label)?;
    if let Some(v) = h.volume
        && store.volume_received(&v.set, v.index)?
    {
        let missing = volumes::missing_volumes(store, &v.set, v.count)?;
        return Ok(UnpackReport {
            volume: Some(VolumeStatus::new(&v, missing, true)),
            signed_by,
            ..UnpackReport::default()
        });
    }
    progress.start("unpacking", size);
    store
        .write(|txn| {
            let mut unpacker = Unpacker {
                data: txn.store().data_reader(),
                txn,
                label,
                header: &h,
                progress,
                tables: Tables {
                    pack: Vec::new(),
                    base,
                    first: h.volume.map_or(0, |v| v.first),
                    set: h.volume.map(|v| v.set),
                    waiting: HashSet::new(),
                },
                report: UnpackReport::default(),
                pending: Vec::new(),
                groups: Vec::new(),
                stored_here: HashMap::new(),
                since_checkpoint: 0,
                next_checkpoint: CHECKPOINT_BYTES,
                records: Vec::new(),
                read: 0,
            };
            unpacker.read_all(&mut reader)?;
            let mut report = unpacker.finish(signed_by)?;
            report.pack_bytes = reader.get_ref().count();
            Ok(report)
        })
        .inspect(|_| progress.finish())
}

fn bad(label: &Path, e: crate::pack::ReadError) -> Error {
    Error::pack(label, e.to_string())
}

/// A chunk record as it arrives.
enum Incoming {
    Plain(ChunkRecord),
    Delta(DeltaRecord),
}

impl Incoming {
    fn id(&self) -> &ChunkId {
        match self {
            Incoming::Plain(c) => &c.id,
            Incoming::Delta(d) => &d.id,
        }
    }
}

/// An unpack in progress, inside the store's write operation.
struct Unpacker<'a, 's> {
    txn: &'a mut Txn<'s>,
    data: DataReader,
    label: &'a Path,
    header: &'a Header,
    progress: &'a dyn Progress,
    tables: Tables,
    report: UnpackReport,
    /// Chunk records waiting to be verified and stored as one batch.
    pending: Vec<Incoming>,
    /// Group records waiting to be rebuilt together (see [`groups`]).
    groups: Vec<GroupRecord>,
    /// Encoded sizes of chunks this unpack stored, for new_bytes per snapshot.
    stored_here: HashMap<ChunkRow, u64>,
    since_checkpoint: u64,
    /// New chunk bytes after which the next commit is due.
    next_checkpoint: u64,
    /// A volume's snapshot records, placed once its whole set is here.
    records: Vec<SnapshotRecord>,
    /// Pack bytes read so far (what the progress bar counts).
    read: u64,
}

impl Unpacker<'_, '_> {
    /// Reads every record up to the trailer, storing chunks as they come.
    /// A reader thread reads (and hashes) the next batch of records while
    /// this one is verified and stored; at most one batch waits.
    fn read_all<R: Read + Send>(&mut self, reader: &mut PackReader<Counting<R>>) -> Result<()> {
        // A rendezvous: the reader holds at most one batch (one solid block
        // of up to 64 MiB) while this one is stored.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(Arrived, u64)>>(0);
        // Buffers of stored blocks go back to the reader for the next ones.
        let (done, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::scope(|scope| {
            scope.spawn(move || read_ahead(reader, &tx, &spare));
            for batch in rx {
                for (record, read) in batch {
                    self.progress.advance(read.saturating_sub(self.read));
                    self.read = read;
                    let record = match record {
                        Arrived::Block(b) => {
                            self.flush()?;
                            let corrupt = |m| bad(self.label, crate::pack::ReadError::Corrupt(m));
                            let opened = b.and_then(block::Decoded::check);
                            let bytes = self.block(opened.map_err(corrupt)?)?;
                            // The reader stops (and drops its end) at the trailer.
                            if let Some(bytes) = bytes {
                                let _ = done.send(bytes);
                            }
                            continue;
                        }
                        Arrived::Record(r) => r,
                    };
                    match record.map_err(|e| bad(self.label, e))? {
                        Some(Record::Chunk(c)) => self.queue(Incoming::Plain(c))?,
                        Some(Record::Delta(d)) => self.queue(Incoming::Delta(d))?,
                        Some(Record::Group(g)) => {
                            // After the records before it, so pack-table bases resolve.
                            self.store_batch()?;
                            self.queue_group(g)?;
                        }
                        Some(Record::Block(_)) => unreachable!("blocks arrive opened"),
                        Some(Record::Snapshot(s)) => {
                            self.flush()?;
                            self.snapshot(s)?;
                        }
                        None => return self.flush(),
                    }
                }
            }
            // The reader sends the trailer or an error before it stops; only
            // a panic there ends the batches early.
            Err(Error::pack(
                self.label,
                "the pack reader stopped unexpectedly",
            ))
        })
    }

    fn queue(&mut self, c: Incoming) -> Result<()> {
        // Groups before it take their places in the pack's table first.
        self.store_groups()?;
        self.pending.push(c);
        if self.pending.len() < VERIFY_BATCH {
            return Ok(());
        }
        self.store_batch()
    }

    /// Stores every record waiting: groups or chunk records (one of the
    /// two queues is empty).
    fn flush(&mut self) -> Result<()> {
        self.store_groups()?;
        self.store_batch()
    }

    /// Verifies and stores the waiting chunk records. Chunks the store
    /// already has (from another pack, or from a run of this one that was
    /// killed) are neither verified nor written again.
    fn store_batch(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let mut fresh = Vec::with_capacity(batch.len());
        for c in batch {
            self.report.chunks += 1;
            match self.txn.chunk_rowid(c.id())? {
                Some(row) => self.tables.pack.push(Some(row)),
                None => {
                    self.tables.pack.push(None);
                    fresh.push((self.tables.pack.len() - 1, c));
                }
            }
        }
        let plain: Vec<&ChunkRecord> = fresh
            .iter()
            .filter_map(|(_, c)| match c {
                Incoming::Plain(c) => Some(c),
                Incoming::Delta(_) => None,
            })
            .collect();
        rebuild::verify_chunks(&plain).map_err(|m| Error::pack(self.label, m))?;
        let mut deltas = Vec::new();
        for (at, c) in fresh {
            match c {
                Incoming::Plain(p) => {
                    // A chunk repeated within the pack is stored once.
                    let row = match self.txn.chunk_rowid(&p.id)? {
                        Some(row) => row,
                        None => self.store_new(&p.id, p.codec, p.len, &p.payload)?,
                    };
                    self.tables.pack[at] = Some(row);
                }
                Incoming::Delta(d) => deltas.push((at, d)),
            }
        }
        self.store_deltas(deltas)?;
        self.checkpoint_if_due()
    }

    /// Keeps verified chunks durable as they come, so a killed unpack
    /// resumes where it was (until a snapshot is placed, or a delta waits:
    /// only chunks may be committed early).
    fn checkpoint_if_due(&mut self) -> Result<()> {
        if self.since_checkpoint >= self.next_checkpoint
            && self.report.added.is_empty()
            && self.report.present.is_empty()
            && self.tables.waiting.is_empty()
        {
            self.txn.checkpoint()?;
            self.since_checkpoint = 0;
            self.next_checkpoint = (self.next_checkpoint * 2).min(MAX_CHECKPOINT_BYTES);
        }
        Ok(())
    }

    /// Rebuilds and stores the batch's delta chunks: those whose bases are
    /// stored go in parallel, in waves (a delta may be the base of another
    /// in the same batch); in a volume, a delta with a base another volume
    /// brings waits.
    fn store_deltas(&mut self, mut deltas: Vec<(usize, DeltaRecord)>) -> Result<()> {
        while !deltas.is_empty() {
            let later: HashSet<usize> = deltas.iter().map(|(at, _)| *at).collect();
            let mut ready = Vec::new();
            let mut rest = Vec::new();
            let before = deltas.len();
            for (at, d) in deltas {
                if let Some(row) = self.txn.chunk_rowid(&d.id)? {
                    self.tables.pack[at] = Some(row);
                    continue;
                }
                match rebuild::standing(
                    self.txn.store(),
                    (at, &d),
                    &self.tables,
                    &later,
                    self.label,
                )? {
                    Standing::Ready(rows) => ready.push((at, d, rows)),
                    Standing::Waits(bases) => {
                        self.count_delta(&d);
                        self.wait(&d, at, &bases)?;
                    }
                    Standing::Later => rest.push((at, d)),
                }
            }
            if rest.len() == before {
                // Bases are earlier records, so each wave rebuilds at least
                // the first delta left; a wave that does not is a bug.
                let d = &rest[0].1;
                return Err(Error::pack(
                    self.label,
                    format!(
                        "delta chunk {} could not be ordered after its bases: please report this",
                        d.id.short()
                    ),
                ));
            }
            // A few at a time: each holds its bases and its result.
            for part in ready.chunks(DELTAS_AT_ONCE) {
                let work = part.iter().map(|(_, d, rows)| (d, rows.as_slice()));
                let built = rebuild::rebuild_ready(self.txn, &mut self.data, work, self.label)?;
                for ((at, d, _), (codec, payload)) in part.iter().zip(built) {
                    // The same chunk may arrive twice as a delta.
                    let row = match self.txn.chunk_rowid(&d.id)? {
                        Some(row) => row,
                        None => {
                            self.count_delta(d);
                            self.store_new(&d.id, codec, d.len, &payload)?
                        }
                    };
                    self.tables.pack[*at] = Some(row);
                }
            }
            deltas = rest;
        }
        Ok(())
    }

    fn count_delta(&mut self, d: &DeltaRecord) {
        self.report.delta_chunks += 1;
        self.report.delta_bytes += d.wire_len as u64;
    }

    /// Keeps a delta chunk of a volume (at `at` in this volume's table)
    /// until the volumes holding its bases are here.
    fn wait(&mut self, d: &DeltaRecord, at: usize, bases: &[WaitBase]) -> Result<()> {
        let set = self.tables.set.expect("only a volume's deltas wait");
        let pos = self.tables.first + at as u64;
        self.txn
            .wait_delta(&set, pos, d.id.as_bytes(), d.len, &d.payload, bases)?;
        self.tables.waiting.insert(pos);
        self.report.waiting_deltas += 1;
        Ok(())
    }

    /// Rebuilds the set's waiting delta chunks whose bases are all here
    /// now (each may be the base of another), until none is left ready.
    fn resolve_waiting(&mut self, set: &[u8; 16]) -> Result<()> {
        loop {
            let ready = self.txn.store().ready_deltas(set)?;
            if ready.is_empty() {
                return Ok(());
            }
            for pos in ready {
                let Some(d) = self.txn.store().ready_delta(set, pos)? else {
                    continue;
                };
                let id = ChunkId(d.id);
                let row = match self.txn.chunk_rowid(&id)? {
                    Some(row) => row,
                    None => {
                        let bytes = rebuild::apply_ready(self.txn, &mut self.data, &d, self.label)?;
                        let (codec, payload) = codec::encode(bytes);
                        self.store_new(&id, codec, d.len, &payload)?
                    }
                };
                let fresh = self.stored_here.contains_key(&row);
                self.txn.place_delta(set, pos, row, fresh)?;
                self.report.resolved_deltas += 1;
            }
        }
    }

    /// Stores a chunk this store lacks, and counts it.
    fn store_new(
        &mut self,
        id: &ChunkId,
        codec: Codec,
        len: u32,
        payload: &[u8],
    ) -> Result<ChunkRow> {
        let row = self.txn.insert_chunk(id, codec, len, payload)?;
        let n = payload.len() as u64;
        self.stored_here.insert(row, n);
        self.report.new_chunks += 1;
        self.report.new_bytes += n;
        self.since_checkpoint += n;
        Ok(row)
    }

    /// Imports a snapshot record now, or for a volume keeps it until the
    /// set is complete.
    fn snapshot(&mut self, s: SnapshotRecord) -> Result<()> {
        if self.header.volume.is_some() {
            self.records.push(s);
            return Ok(());
        }
        self.import(s)
    }

    /// Places one snapshot record against the current tables.
    fn import(&mut self, s: SnapshotRecord) -> Result<()> {
        import_snapshot(
            self.txn,
            s,
            self.label,
            &self.tables,
            &mut self.stored_here,
            &mut self.report,
        )
    }

    /// After the trailer: records a volume (importing its set's snapshots
    /// when it completes the set), checks the snapshots against the
    /// header, and has every new one rebuild to its BLAKE3.
    fn finish(mut self, signed_by: Option<String>) -> Result<UnpackReport> {
        self.report.signed_by = signed_by;
        if let Some(v) = self.header.volume {
            if self.report.chunks != v.chunks {
                return Err(Error::pack(
                    self.label,
                    format!(
                        "pack is corrupt: volume {} says it holds {} chunks, it holds {}",
                        v.index, v.chunks, self.report.chunks
                    ),
                ));
            }
            let h = self.header;
            let complete = volumes::record_volume(
                self.txn,
                h,
                &v,
                &self.tables,
                &self.stored_here,
                &self.records,
            )?;
            self.resolve_waiting(&v.set)?;
            if !complete {
                let missing = volumes::missing_volumes(self.txn.store(), &v.set, v.count)?;
                self.report.volume = Some(VolumeStatus::new(&v, missing, false));
                return Ok(self.report);
            }
            self.import_set(&v.set)?;
            self.report.volume = Some(VolumeStatus::new(&v, Vec::new(), false));
        }
        self.check_carried()?;
        self.verify_added()?;
        Ok(self.report)
    }

    /// The last volume of a set arrived: places the set's snapshots
    /// against the set's whole chunk table, and closes the set.
    fn import_set(&mut self, set: &[u8; 16]) -> Result<()> {
        let stuck = self.txn.store().waiting_deltas(set)?;
        if stuck > 0 {
            return Err(Error::pack(
                self.label,
                format!(
                    "volume set {} is corrupt: {stuck} delta chunks name bases none of its volumes holds; copy the volumes again from the source",
                    crate::hex(set)
                ),
            ));
        }
        // What every volume of the set stored counts as added by its
        // snapshots, not only what this one did.
        self.stored_here
            .extend(self.txn.store().volume_set_fresh(set)?);
        self.tables.first = 0;
        self.tables.pack = (self.txn.store().volume_set_rows(set)?)
            .into_iter()
            .map(Some)
            .collect();
        for s in volumes::pending_records(self.txn.store(), set)? {
            self.import(s)?;
        }
        self.txn.finish_volume_set(set)
    }

    /// The snapshot records must be exactly those the header announced.
    fn check_carried(&self) -> Result<()> {
        let r = &self.report;
        let mut carried: Vec<&String> = r.added.iter().chain(&r.present).collect();
        let mut announced: Vec<&String> = self.header.snapshots.iter().collect();
        carried.sort();
        announced.sort();
        if carried != announced {
            return Err(Error::pack(
                self.label,
                "pack is corrupt: its snapshot records do not match its header",
            ));
        }
        Ok(())
    }

    /// Every new snapshot must rebuild to the BLAKE3 it claims before it
    /// becomes visible: reassemble each once (in this transaction) and
    /// compare, so the store never holds a snapshot that lies.
    fn verify_added(&mut self) -> Result<()> {
        self.txn.flush_data()?;
        self.progress.finish();
        for name in &self.report.added {
            // The rebuild check is a phase of its own, sized by the stream.
            let phase =
                crate::progress::Relabel::new(self.progress, format!("verifying {name}"), None);
            crate::checkout::check_rebuilds(self.txn.store(), name, &phase)
            .map_err(|e| match e {
                Error::Integrity(_) => Error::pack(
                    self.label,
                    format!(
                        "pack is corrupt: snapshot {name} does not rebuild to the BLAKE3 it claims: copy the pack again; if that fails too, re-pack it on the sending side"
                    ),
                ),
                other => other,
            })?;
        }
        Ok(())
    }
}
