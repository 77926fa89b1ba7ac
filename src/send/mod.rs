//! Sending: a pack of snapshots holding only the chunks a receiver lacks.
//! [`write_pack`] writes one pack, [`write_volumes`] splits it into
//! self-contained volumes. The pack is planned from the index alone
//! (`plan`), split into volumes (`volumes`), and its chunk records
//! encoded in parallel (`encode`).

mod blocks;
mod encode;
mod plan;
mod spool;
pub mod suggest;
mod volumes;
mod walk;

use std::collections::HashSet;
use std::io::Write;

use serde::Serialize;

use crate::chunker::ChunkId;
use crate::error::{Error, Result};
use crate::pack::{PackTotals, PackWriter, encode_snapshot};
use crate::progress::Progress;
use crate::store::{ChunkRow, Store};

use encode::Encoder;
use spool::Spool;
use volumes::Volumes;

/// What goes into a pack.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// Snapshots to carry.
    pub snapshots: Vec<String>,
    /// Snapshots the receiver already holds.
    pub bases: Vec<String>,
    /// Chunks the receiver is known to hold besides the bases (from its
    /// inventory or the peer ledger): left out, and named in the header.
    pub have: Option<HashSet<ChunkId>>,
    /// Split the pack into self-contained volumes of at most this many bytes.
    pub volume_size: Option<u64>,
    /// Sign the pack (each volume) with this key.
    pub sign: Option<ed25519_dalek::SigningKey>,
    /// Send every chunk whole, never as a similarity delta.
    pub no_deltas: bool,
    /// How hard whole chunks are compressed (in solid blocks).
    pub level: Level,
}

/// How hard a pack compresses the chunks it carries whole: they go in
/// solid blocks, runs of chunks compressed together at one zstd level with
/// a window spanning the block. Figures are for the Python and Node
/// service images of docs/BENCHMARKS.md on two cores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// zstd level 3 in 40 MiB blocks: about 0.87x the bytes of gzip -6 in
    /// a tenth of its time.
    Fast,
    /// zstd level 10 in 40 MiB blocks: about 0.74x the bytes of gzip -6 in
    /// about 0.4x its time.
    #[default]
    Default,
    /// zstd level 19 with larger match tables in 48 MiB blocks, each
    /// compressed after the last 8 MiB of the one before: about 0.99x the
    /// bytes of `zstd -19 --long=27`, in about its time.
    Max,
}

impl Level {
    /// The zstd level of its blocks.
    pub fn zstd_level(self) -> i32 {
        match self {
            Level::Fast => 3,
            Level::Default => 10,
            Level::Max => 19,
        }
    }

    /// Decoded bytes a block of this level holds at most: 40 MiB measured
    /// smaller than 32 (a window of 2^26) and unpacks in under 200 MB. At
    /// level 19, 48 MiB blocks made smaller packs sooner than 64 MiB
    /// ones: with prefixes the window loses little, and more blocks keep
    /// both cores busy to the end.
    pub fn block_bytes(self) -> u64 {
        match self {
            Level::Fast | Level::Default => 40 << 20,
            Level::Max => 48 << 20,
        }
    }

    /// Bytes of the block before it that a block is compressed after (its
    /// prefix), when it follows a block directly in a pack that is not
    /// cut into volumes. At `max`, 8 MiB: about 0.5% fewer bytes; at
    /// level 10 a prefix did not pay.
    pub fn block_prefix(self) -> usize {
        match self {
            Level::Fast | Level::Default => 0,
            Level::Max => crate::pack::format::MAX_BLOCK_PREFIX as usize,
        }
    }
}

/// What [`write_pack`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct PackReport {
    /// Snapshots carried.
    pub snapshots: Vec<String>,
    /// Bases assumed.
    pub bases: Vec<String>,
    /// Sum of the carried snapshots' sizes.
    pub logical_bytes: u64,
    /// Distinct chunks the snapshots reference.
    pub referenced_chunks: u64,
    /// Of those, chunks left out because the receiver holds them.
    pub skipped_chunks: u64,
    /// Of those, chunks known from an inventory or the peer ledger.
    pub known_chunks: u64,
    /// Volumes written (1 without --volume-size).
    pub volumes: u32,
    /// Chunks (row ids here) the receiver holds once it has this pack
    /// (what the peer ledger records); not serialized.
    #[serde(skip)]
    pub receiver_chunks: Vec<ChunkRow>,
    /// Ids of the chunks carried, in pack-table order; not serialized.
    #[serde(skip)]
    pub sent: Vec<ChunkId>,
    /// Counts and sizes of what was written, all volumes together.
    #[serde(flatten)]
    pub totals: PackTotals,
}

/// The smallest volume `--volume-size` accepts: a record of the largest
/// chunk (256 KiB, 327,717 bytes at most) with room for a volume's header,
/// trailer and signature.
pub const MIN_VOLUME_SIZE: u64 = 384 << 10;

fn io_out(e: std::io::Error) -> Error {
    Error::io("writing pack", e)
}

/// Parses a volume size: a number of bytes with an optional K, M, G or T
/// suffix (powers of 1024), or `fat32` (4 GiB - 1, FAT32's largest file).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("fat32") {
        return Ok((4 << 30) - 1);
    }
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => 0,
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .filter(|_| mult > 0)
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "'{text}' is not a size: give bytes, or a number with K, M, G or T (1024-based), or 'fat32'"
            ))
        })
}

/// Writes a pack of `opts.snapshots` holding only chunks the receiver
/// lacks (see [`PackOptions`]). Memory is bounded by the batch size plus
/// the recipes' pieces. With `opts.volume_size`, see [`write_volumes`].
pub fn write_pack<W: Write>(
    store: &Store,
    opts: &PackOptions,
    out: W,
    progress: &dyn Progress,
) -> Result<(W, PackReport)> {
    let mut out = Some(out);
    let opts = PackOptions {
        volume_size: None,
        ..opts.clone()
    };
    let (mut outs, report) = write_volumes(
        store,
        &opts,
        &mut |_, _| Ok(out.take().expect("one output")),
        progress,
    )?;
    Ok((outs.pop().expect("one pack"), report))
}

/// Like [`write_pack`], split into volumes of at most `opts.volume_size`
/// bytes (one volume without it): `open(index, count)` gives the output of
/// each volume, numbered from 1. Each volume is a complete pack: header,
/// its share of the chunks, the snapshot records in the last one, trailer
/// (and signature).
pub fn write_volumes<W: Write>(
    store: &Store,
    opts: &PackOptions,
    open: &mut dyn FnMut(u32, u32) -> Result<W>,
    progress: &dyn Progress,
) -> Result<(Vec<W>, PackReport)> {
    if let Some(limit) = opts.volume_size.filter(|&l| l < MIN_VOLUME_SIZE) {
        return Err(Error::Invalid(format!(
            "volume size {limit} is too small: a volume must be at least {MIN_VOLUME_SIZE} bytes (384K), to hold the largest chunk; give a larger --volume-size"
        )));
    }
    // One consistent view of the index for the whole pack.
    let _view = store.read_view()?;
    let mut plan = plan::plan(store, opts)?;
    let snapshot_bytes: u64 = plan
        .records
        .iter()
        .map(|r| encode_snapshot(r).map(|e| 5 + e.len() as u64))
        .sum::<std::io::Result<u64>>()
        .map_err(io_out)?;
    progress.start("packing", Some(plan.logical));
    let squeeze = !opts.no_deltas && !plan.base_index.is_empty();
    let level = opts.level.zstd_level();
    // A split pack is encoded first, so that volumes are cut by the exact
    // size of each record (deltas come out much smaller than their chunks).
    let mut spool = None;
    let mut sizes = Vec::new();
    if opts.volume_size.is_some() {
        let mut s = Spool::new()?;
        let unblocked;
        (sizes, unblocked) =
            Encoder::new(store, &plan, squeeze, level, 0, progress).spool_all(&mut s)?;
        for i in unblocked {
            plan.groups.remove(&i);
        }
        s.rewind()?;
        spool = Some(s);
    }
    // Volumes are cut after encoding, so their blocks cannot count on the
    // block before them being in the same volume: they take no prefix.
    let prefix = match opts.volume_size {
        Some(_) => 0,
        None => opts.level.block_prefix(),
    };
    let mut encoder = Encoder::new(store, &plan, squeeze, level, prefix, progress);
    let volumes = Volumes::new(
        &plan,
        opts.volume_size,
        opts.sign.is_some(),
        sizes,
        snapshot_bytes,
    )?;
    let mut totals = PackTotals::default();
    let mut outs = Vec::with_capacity(volumes.count() as usize);
    for v in 0..volumes.count() as usize {
        let header = volumes.header(&plan.header, v);
        let out = open(v as u32 + 1, volumes.count())?;
        let mut w = PackWriter::new(out, &header).map_err(io_out)?;
        match spool.as_mut() {
            Some(s) => encoder.replay(&mut w, s, volumes.range(v))?,
            None => encoder.write(&mut w, volumes.range(v))?,
        }
        if volumes.is_last(v) {
            for r in &plan.records {
                w.snapshot(r).map_err(io_out)?;
            }
        }
        let (out, t) = match &opts.sign {
            Some(key) => w.finish_signed(key),
            None => w.finish(),
        }
        .map_err(io_out)?;
        if let Some(limit) = opts.volume_size {
            assert!(t.pack_bytes <= limit, "volume of {} bytes", t.pack_bytes);
        }
        add_totals(&mut totals, &t);
        outs.push(out);
    }
    progress.finish();
    Ok((
        outs,
        PackReport {
            snapshots: opts.snapshots.clone(),
            bases: opts.bases.clone(),
            logical_bytes: plan.logical,
            referenced_chunks: plan.referenced,
            skipped_chunks: plan.skipped,
            known_chunks: plan.known,
            volumes: volumes.count(),
            receiver_chunks: plan.receiver,
            sent: plan.sends.iter().map(|c| c.id).collect(),
            totals,
        },
    ))
}

/// Adds a volume's counts to the pack's.
fn add_totals(totals: &mut PackTotals, t: &PackTotals) {
    totals.chunks += t.chunks;
    totals.snapshots += t.snapshots;
    totals.chunk_bytes += t.chunk_bytes;
    totals.raw_bytes += t.raw_bytes;
    totals.pack_bytes += t.pack_bytes;
    totals.delta_chunks += t.delta_chunks;
    totals.delta_bytes += t.delta_bytes;
    totals.groups += t.groups;
    totals.blocks += t.blocks;
}
