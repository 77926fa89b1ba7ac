//! Content-defined chunking: cuts byte streams into FastCDC (v2020) chunks,
//! names each by its BLAKE3 hash, and hands them on in ordered batches while
//! a background thread keeps reading and splitting. Memory is bounded by the
//! batch size.
//!
//! With tar-aware splitting ([`crate::archive::split`]), one input becomes
//! several streams cut independently: each file's contents (so an identical
//! file gives identical chunks wherever it sits), and one "headers stream"
//! holding every tar header and padding byte. [`Unit`]s describe how they
//! interleave, so the recipe can put the original bytes back in order.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::archive::gzip::Via;
use crate::archive::split::{self, Kind, Layer, Sink};
use crate::error::{Error, Result};
use crate::store::KnownLayers;

/// A chunk's name: the BLAKE3 hash of its uncompressed bytes.
pub use crate::id::ChunkId;

/// The chunker's parameters. They are fixed for a store and recorded in the
/// store and in every pack, because other parameters cut other chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Smallest chunk, except the last one of a stream.
    pub min: u32,
    /// Target average chunk size.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

/// Identifies the cutting algorithm in stores and packs.
pub const ALGORITHM: &str = "fastcdc-v2020-level1-seed0";

/// The crate that defines where chunks are cut, at the exact version pinned
/// in Cargo.toml (`fastcdc = "=5.0.0"`). Its v2020 algorithm (Gear table,
/// masks of normalization level 1) decides every cut, so another version
/// could cut the same stream differently and give chunks other ids: it is
/// part of the store and pack formats, and changing it needs a new
/// [`ALGORITHM`] id. The golden tests (`tests/golden.rs` and this module's)
/// pin its cut points.
pub const FASTCDC_CRATE: &str = "fastcdc =5.0.0 (v2020 algorithm, normalization level 1)";

/// The one set of parameters this version of ferry uses: 16 KiB / 64 KiB / 256 KiB.
pub const PARAMS: Params = Params {
    min: 16 * 1024,
    avg: 64 * 1024,
    max: 256 * 1024,
};

impl std::fmt::Display for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{ALGORITHM} min={} avg={} max={}",
            self.min, self.avg, self.max
        )
    }
}

/// One chunk of a stream, hashed.
pub struct Chunk {
    /// BLAKE3 of `data`.
    pub id: ChunkId,
    /// The chunk's bytes.
    pub data: Vec<u8>,
}

/// Cuts one stream into chunks as its bytes arrive, exactly as FastCDC
/// would over the whole stream: a cut is only made once `max` bytes past
/// the chunk's start are known (or the stream has ended).
pub struct Cutter {
    params: Params,
    masks: (u64, u64),
    buf: Vec<u8>,
}

impl Cutter {
    /// A cutter for a new stream.
    pub fn new(params: Params) -> Cutter {
        Cutter {
            params,
            masks: fastcdc::v2020::select_masks(
                params.avg as usize,
                fastcdc::v2020::Normalization::Level1,
            ),
            buf: Vec::new(),
        }
    }

    fn cut(&self, from: usize) -> usize {
        let p = self.params;
        let (s, l) = self.masks;
        let (_, n) = fastcdc::v2020::cut(
            &self.buf[from..],
            p.min as usize,
            p.avg as usize,
            p.max as usize,
            s,
            l,
            s << 1,
            l << 1,
        );
        n
    }

    /// Adds bytes; calls `out` with every chunk whose end is now decided.
    pub fn push(&mut self, data: &[u8], out: &mut impl FnMut(Vec<u8>)) {
        self.buf.extend_from_slice(data);
        let max = self.params.max as usize;
        if self.buf.len() < 2 * max {
            return;
        }
        let mut at = 0;
        while self.buf.len() - at >= max {
            let n = self.cut(at);
            out(self.buf[at..at + n].to_vec());
            at += n;
        }
        self.buf.drain(..at);
    }

    /// Ends the stream; calls `out` with the remaining chunks.
    pub fn finish(&mut self, out: &mut impl FnMut(Vec<u8>)) {
        let mut at = 0;
        while at < self.buf.len() {
            let n = self.cut(at);
            out(self.buf[at..at + n].to_vec());
            at += n;
        }
        self.buf.clear();
    }
}

/// One step of a split stream, in stream order.
pub enum Unit {
    /// A chunk of file contents (or of a stream read as plain bytes): the
    /// recipe takes it whole, as `op` says (input bytes, or plain text of
    /// a deflate stream).
    Chunk(Chunk, Op),
    /// The next chunk of the headers stream; the recipe takes slices of it.
    Header(Chunk),
    /// The next `n` bytes come from the headers stream, used as `op` says.
    Meta(u64, Op),
    /// A deflate part record (see [`crate::archive::gzip`]), re-creating
    /// `out` input bytes from the plain text that follows.
    Part(Chunk, u64),
    /// The chunks that follow are the contents of the file at this path
    /// (as its tar entry names it), of this size.
    File(Vec<u8>, u64),
    /// A compressed layer blob starts, ends, or is one the store holds
    /// (whose pieces the recipe then copies).
    Layer(Layer),
}

use crate::store::Op;

/// Where the bytes of an input went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SplitStats {
    /// Tar header, padding and end-of-archive bytes (the headers stream).
    pub header_bytes: u64,
    /// File contents inside tars, chunked per file.
    pub content_bytes: u64,
    /// Bytes chunked as a plain stream: non-tar input, or what the tar
    /// parser did not fully understand.
    pub raw_bytes: u64,
    /// Files whose contents were chunked on their own.
    pub files: u64,
    /// Tar streams understood (the outer archive and each layer).
    pub tars: u64,
    /// gzip'd tars (compressed layers) decompressed, split, and re-created
    /// from plain text (and preflate data); their files count in
    /// `content_bytes`.
    pub gzip_layers: u64,
    /// Compressed bytes of those layers.
    pub gzip_layer_bytes: u64,
    /// gzip'd tars preflate could not (wholly) analyse: from where it gave
    /// up, kept as compressed bytes.
    pub gzip_fallback_layers: u64,
    /// Compressed bytes kept that way (they count in `raw_bytes`).
    pub gzip_fallback_bytes: u64,
    /// Deflate part records and their bytes (the re-creation data).
    pub deflate_parts: u64,
    /// Bytes of those records.
    pub deflate_part_bytes: u64,
    /// gzip'd tars the store already held (same sha256 and bytes): their
    /// pieces were copied, without analysis. They count in `gzip_layers`
    /// and `gzip_encoders` too.
    pub reused_layers: u64,
    /// gzip'd tars by what re-creates them.
    pub gzip_encoders: EncoderCounts,
}

/// gzip'd tars counted by what re-creates them (`ls --json`
/// `meta.split.gzip_encoders`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EncoderCounts {
    /// Go 1.8–1.26 `compress/gzip`, from plain text alone.
    #[serde(rename = "go-stdlib")]
    pub go_stdlib: u64,
    /// Go 1.27+ `compress/gzip`, from plain text alone.
    #[serde(rename = "go1.27")]
    pub go127: u64,
    /// klauspost/pgzip, from plain text alone.
    pub pgzip: u64,
    /// preflate-rs correction data and plain text.
    pub preflate: u64,
    /// Kept as compressed bytes from the start (a layer kept so from some
    /// point on counts under what re-creates its start, and in
    /// `gzip_fallback_layers`).
    pub raw: u64,
}

impl EncoderCounts {
    /// Counts one layer.
    pub fn count(&mut self, outcome: split::Outcome) {
        use crate::archive::goenc::Encoder;
        let via = match outcome {
            split::Outcome::Rebuilt(via) | split::Outcome::Fallback(Some(via)) => via,
            split::Outcome::Fallback(None) => {
                self.raw += 1;
                return;
            }
            split::Outcome::NotTar => return,
        };
        match via {
            Via::Preflate => self.preflate += 1,
            Via::Go(Encoder::GoStdlib) => self.go_stdlib += 1,
            Via::Go(Encoder::Go127) => self.go127 += 1,
            Via::Go(Encoder::Pgzip) => self.pgzip += 1,
        }
    }

    /// The names of the encoders counted (not `raw`), as pack headers list them.
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("go-stdlib", self.go_stdlib),
            ("go1.27", self.go127),
            ("pgzip", self.pgzip),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, _)| name)
        .collect()
    }
}

/// How a layer's deflate stream is kept, as the store's `layers` table
/// numbers it: what re-creates it (0 preflate, else an encoder's number),
/// plus 0x80 when it is kept as compressed bytes from some point on; 255
/// when it is kept as compressed bytes from the start.
pub fn kind_of(outcome: split::Outcome) -> Option<u8> {
    match outcome {
        split::Outcome::Rebuilt(via) => Some(code(via)),
        split::Outcome::Fallback(Some(via)) => Some(FELL_BACK | code(via)),
        split::Outcome::Fallback(None) => Some(255),
        split::Outcome::NotTar => None,
    }
}

/// `layers` kind bit: kept as compressed bytes from some point on.
const FELL_BACK: u8 = 0x80;

fn code(via: Via) -> u8 {
    match via {
        Via::Preflate => 0,
        Via::Go(e) => e as u8,
    }
}

/// The outcome a `layers` kind stands for.
fn outcome_of(kind: u8) -> split::Outcome {
    let via = match kind & !FELL_BACK {
        0 => Some(Via::Preflate),
        n => crate::archive::goenc::Encoder::from_number(n).map(Via::Go),
    };
    match (kind, via) {
        (255, _) | (_, None) => split::Outcome::Fallback(None),
        (k, via) if k & FELL_BACK != 0 => split::Outcome::Fallback(via),
        (_, Some(via)) => split::Outcome::Rebuilt(via),
    }
}

/// How many bytes of chunks the reader thread gathers before handing a batch
/// over; two batches may be in flight, so this bounds memory at about 3x.
pub const BATCH_BYTES: usize = 8 << 20;
/// Units per batch at most (many tiny files make many small units).
const BATCH_UNITS: usize = 8192;

/// The reader-side sink: cuts contents and headers, batches units.
struct Batcher<'a> {
    stop: &'a AtomicBool,
    params: Params,
    tx: &'a mpsc::SyncSender<Vec<RawUnit>>,
    batch: Vec<RawUnit>,
    bytes: usize,
    headers: Cutter,
    file: Option<(Kind, Cutter)>,
    meta: u64,
    /// Bytes are deflate plain text ([`Sink::inflate`]).
    plain: bool,
    stats: SplitStats,
    closed: bool,
    known: &'a KnownLayers,
}

enum RawUnit {
    Layer(Layer),
    Chunk(Vec<u8>, Op),
    Header(Vec<u8>),
    Meta(u64, Op),
    Part(Vec<u8>, u64),
    File(Vec<u8>, u64),
}

impl Batcher<'_> {
    fn op(&self) -> Op {
        if self.plain { Op::Plain } else { Op::Out }
    }
}

impl Batcher<'_> {
    fn emit(&mut self, u: RawUnit) {
        if let RawUnit::Chunk(d, _) | RawUnit::Header(d) | RawUnit::Part(d, _) = &u {
            self.bytes += d.len();
        }
        self.batch.push(u);
        if self.bytes >= BATCH_BYTES || self.batch.len() >= BATCH_UNITS {
            self.send();
        }
    }

    fn send(&mut self) {
        if self.closed {
            self.batch.clear();
            self.bytes = 0;
            return;
        }
        if self.batch.is_empty() {
            return;
        }
        if self.tx.send(std::mem::take(&mut self.batch)).is_err() {
            // The consumer stopped (an error there): stop reading too.
            self.closed = true;
            self.stop.store(true, Ordering::Relaxed);
        }
        self.bytes = 0;
    }

    fn flush_meta(&mut self) {
        if self.meta > 0 {
            let n = std::mem::take(&mut self.meta);
            let op = self.op();
            self.emit(RawUnit::Meta(n, op));
        }
    }

    fn finish(&mut self) {
        self.flush_meta();
        let mut out = Vec::new();
        self.headers.finish(&mut |c| out.push(c));
        for c in out {
            self.emit(RawUnit::Header(c));
        }
        self.send();
    }
}

impl Sink for Batcher<'_> {
    fn path(&mut self, path: &[u8], size: u64) {
        self.flush_meta();
        self.emit(RawUnit::File(path.to_vec(), size));
    }

    fn meta(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.stats.header_bytes += bytes.len() as u64;
        self.meta += bytes.len() as u64;
        let mut out = Vec::new();
        self.headers.push(bytes, &mut |c| out.push(c));
        for c in out {
            self.emit(RawUnit::Header(c));
        }
    }

    fn begin(&mut self, kind: Kind) {
        self.flush_meta();
        if kind == Kind::Content {
            self.stats.files += 1;
        }
        self.file = Some((kind, Cutter::new(self.params)));
    }

    fn data(&mut self, bytes: &[u8]) {
        let Some((kind, cutter)) = self.file.as_mut() else {
            return;
        };
        match kind {
            Kind::Content => self.stats.content_bytes += bytes.len() as u64,
            Kind::Raw => self.stats.raw_bytes += bytes.len() as u64,
        }
        let mut out = Vec::new();
        cutter.push(bytes, &mut |c| out.push(c));
        let op = self.op();
        for c in out {
            self.emit(RawUnit::Chunk(c, op));
        }
    }

    fn end(&mut self) {
        if let Some((_, mut cutter)) = self.file.take() {
            let mut out = Vec::new();
            cutter.finish(&mut |c| out.push(c));
            let op = self.op();
            for c in out {
                self.emit(RawUnit::Chunk(c, op));
            }
        }
    }

    fn tar(&mut self) {
        self.stats.tars += 1;
    }

    fn inflate(&mut self, on: bool) {
        // A headers-stream run never mixes input bytes and plain text.
        self.flush_meta();
        self.plain = on;
    }

    fn part(&mut self, record: Vec<u8>, out: u64) {
        self.flush_meta();
        self.stats.deflate_parts += 1;
        self.stats.deflate_part_bytes += record.len() as u64;
        self.emit(RawUnit::Part(record, out));
    }

    fn known_layer(&mut self, digest: &[u8; 32], size: u64) -> Option<[u8; 32]> {
        self.known
            .get(digest)
            .filter(|k| k.size == size)
            .map(|k| k.blake3)
    }

    fn layer(&mut self, event: Layer) {
        self.flush_meta();
        if let Layer::Reused { digest, size } = event {
            let kind = self.known.get(&digest).map_or(0, |k| k.kind);
            let outcome = outcome_of(kind);
            self.stats.reused_layers += 1;
            self.stats.gzip_encoders.count(outcome);
            if matches!(outcome, split::Outcome::Fallback(_)) {
                self.stats.gzip_fallback_layers += 1;
            } else {
                self.stats.gzip_layers += 1;
                self.stats.gzip_layer_bytes += size;
            }
        }
        self.emit(RawUnit::Layer(event));
    }

    fn gzip(&mut self, outcome: split::Outcome, size: u64, raw: u64) {
        self.stats.gzip_encoders.count(outcome);
        match outcome {
            split::Outcome::Rebuilt(_) => {
                self.stats.gzip_layers += 1;
                self.stats.gzip_layer_bytes += size;
            }
            split::Outcome::Fallback(_) => {
                self.stats.gzip_fallback_layers += 1;
                self.stats.gzip_fallback_bytes += raw;
            }
            split::Outcome::NotTar => {}
        }
    }
}

/// Splits `source` on a background thread (tar-aware when `tar_aware`,
/// else one plain stream) and calls `each` with ordered batches of units,
/// their chunks hashed in parallel on the rayon pool. Returns the source
/// once it is exhausted, so wrappers around it can hand back what they
/// observed, and the split statistics.
pub fn for_each_batch<R, F>(
    source: R,
    params: Params,
    tar_aware: bool,
    each: F,
) -> Result<(R, SplitStats)>
where
    R: Read + Send,
    F: FnMut(Vec<Unit>) -> Result<()>,
{
    for_each_batch_known(source, params, tar_aware, &KnownLayers::new(), each)
}

/// [`for_each_batch`], taking the compressed layer blobs in `known` from
/// the store ([`Unit::Layer`] says where) instead of splitting them again.
pub fn for_each_batch_known<R, F>(
    source: R,
    params: Params,
    tar_aware: bool,
    known: &KnownLayers,
    mut each: F,
) -> Result<(R, SplitStats)>
where
    R: Read + Send,
    F: FnMut(Vec<Unit>) -> Result<()>,
{
    let (tx, rx) = mpsc::sync_channel::<Vec<RawUnit>>(1);
    let stop = AtomicBool::new(false);
    let stop = &stop;
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut source = source;
            let mut sink = Batcher {
                stop,
                params,
                tx: &tx,
                batch: Vec::new(),
                bytes: 0,
                headers: Cutter::new(params),
                file: None,
                meta: 0,
                plain: false,
                stats: SplitStats::default(),
                closed: false,
                known,
            };
            let mut stoppable = Stoppable {
                inner: &mut source,
                stop,
            };
            let result = split::split(&mut stoppable, &mut sink, tar_aware);
            if result.is_ok() {
                sink.finish();
            }
            let stats = sink.stats;
            drop(tx);
            (source, stats, result)
        });
        // Hashing runs on its own stage, so the next batch is hashed while
        // the consumer stores this one.
        let (htx, hrx) = mpsc::sync_channel::<Vec<Unit>>(1);
        let hasher = scope.spawn(move || {
            for batch in rx.iter() {
                let units: Vec<Unit> = batch
                    .into_par_iter()
                    .map(|u| match u {
                        RawUnit::Chunk(data, op) => Unit::Chunk(
                            Chunk {
                                id: ChunkId::of(&data),
                                data,
                            },
                            op,
                        ),
                        RawUnit::Header(data) => Unit::Header(Chunk {
                            id: ChunkId::of(&data),
                            data,
                        }),
                        RawUnit::Meta(n, op) => Unit::Meta(n, op),
                        RawUnit::Layer(l) => Unit::Layer(l),
                        RawUnit::File(path, size) => Unit::File(path, size),
                        RawUnit::Part(data, out) => Unit::Part(
                            Chunk {
                                id: ChunkId::of(&data),
                                data,
                            },
                            out,
                        ),
                    })
                    .collect();
                if htx.send(units).is_err() {
                    // The consumer stopped; dropping `rx` stops the reader.
                    break;
                }
            }
        });
        let mut outcome = Ok(());
        for units in hrx.iter() {
            if let Err(e) = each(units) {
                outcome = Err(e);
                break;
            }
        }
        // Dropping the receiver unblocks the stages still trying to send.
        drop(hrx);
        hasher.join().expect("hashing thread panicked");
        let (source, stats, read) = reader.join().expect("chunker thread panicked");
        outcome?;
        read.map_err(|e| Error::io("reading input", e))?;
        Ok((source, stats))
    })
}

/// Ends the input early (with an error) once the consumer has stopped, so
/// a failed add does not read the rest of a long stream for nothing.
struct Stoppable<'a, R> {
    inner: &'a mut R,
    stop: &'a AtomicBool,
}

impl<R: Read> Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("stopped: the store write failed"));
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_cdc(data: &[u8]) -> Vec<usize> {
        fastcdc::v2020::StreamCDC::new(
            data,
            PARAMS.min as usize,
            PARAMS.avg as usize,
            PARAMS.max as usize,
        )
        .map(|c| c.unwrap().length)
        .collect()
    }

    #[test]
    fn cutter_cuts_exactly_like_streaming_fastcdc_whatever_the_pieces() {
        let mut data = vec![0u8; 3 << 20];
        crate::demo::Rng::new(5).fill(&mut data);
        data[1 << 20..(1 << 20) + 300_000].fill(0); // a run that forces max-size cuts
        let expected = stream_cdc(&data);
        for piece in [1usize, 511, 4096, 100_000, 3 << 20] {
            let mut c = Cutter::new(PARAMS);
            let mut got = Vec::new();
            for p in data.chunks(piece) {
                c.push(p, &mut |ch| got.push(ch.len()));
            }
            c.finish(&mut |ch| got.push(ch.len()));
            assert_eq!(got, expected, "pieces of {piece}");
        }
    }
}
