//! `ferry add`: reads a stream (a file, a compressed file, or stdin), cuts it
//! into chunks, stores the chunks it has not seen before and records the
//! snapshot's recipe, all in one write operation that commits or leaves the
//! store untouched.

mod recipe;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::archive::split::Layer;
use crate::archive::{self, Compression, Watch};
use crate::chunker::{self, ChunkId, Unit};
use crate::codec;
use crate::error::{Error, IoContext, Result};
use crate::progress::Progress;
use crate::store::{
    ChunkRow, CompressedMeta, DockerMeta, NewSnapshot, Op, SnapshotDigest, SnapshotMeta, Store,
    Txn, now,
};
use recipe::Recipe;

/// Where the bytes come from.
pub enum Source {
    /// A file.
    Path(PathBuf),
    /// Standard input.
    Stdin,
    /// Any reader (a Docker export stream, say), named by `label` in
    /// messages and metadata. Like stdin, it needs a name from `--name` or
    /// the archive's RepoTags.
    Reader {
        /// What the stream is, e.g. `docker:app:2`.
        label: String,
        /// The bytes.
        reader: Box<dyn Read + Send>,
    },
}

/// Options of [`add`].
#[derive(Debug, Clone)]
pub struct AddOptions {
    /// Snapshot name; else the archive's first RepoTag, else the file name.
    pub name: Option<String>,
    /// Replace a snapshot of the same name with different content.
    pub replace: bool,
    /// Split tars into headers and per-file contents (the default); off,
    /// the input is chunked as one plain stream.
    pub tar_split: bool,
}

impl Default for AddOptions {
    fn default() -> Self {
        AddOptions {
            name: None,
            replace: false,
            tar_split: true,
        }
    }
}

/// What [`add`] did.
#[derive(Debug, Clone, Serialize)]
pub struct AddReport {
    /// Snapshot name.
    pub name: String,
    /// Bytes of the (decompressed) stream.
    pub size: u64,
    /// BLAKE3 of the stream (hex in JSON).
    pub blake3: SnapshotDigest,
    /// Chunks in the recipe.
    pub chunks: u64,
    /// Chunks the store did not have.
    pub new_chunks: u64,
    /// Encoded bytes those new chunks occupy.
    pub new_bytes: u64,
    /// Compression undone while reading ("none", "gzip", "zstd").
    pub compression: &'static str,
    /// The same snapshot was already stored; nothing changed.
    pub unchanged: bool,
    /// Chunks the index had but whose data file no longer held them, written again.
    pub repaired: u64,
    /// The name (a tag) named other content before, and now names this.
    pub replaced: bool,
    /// What the name named before, when it moved.
    pub previous: Option<SnapshotDigest>,
    /// The name the previous content keeps (`TAG@DIGEST`), unless
    /// `--replace` removed it.
    pub kept_as: Option<String>,
}

/// Milliseconds since the Unix epoch, for tag times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Checks a snapshot name: printable, no leading dash, at most 512 bytes.
pub fn validate_name(name: &str) -> Result<()> {
    match name_problem(name) {
        Some(why) => Err(Error::Invalid(format!(
            "'{}' is not a usable snapshot name: {why}",
            name.escape_debug()
        ))),
        None => Ok(()),
    }
}

/// What is wrong with a snapshot name, if anything: the first control or
/// bidirectional-text character (by code point), an empty or overlong
/// name, or a leading dash.
pub fn name_problem(name: &str) -> Option<String> {
    const RULE: &str = "use 1-512 printable characters, not starting with '-'";
    if let Some((c, what)) = name.chars().find_map(|c| unprintable(c).map(|w| (c, w))) {
        return Some(format!("it holds U+{:04X} ({what}): {RULE}", c as u32));
    }
    if name.is_empty() || name.len() > 512 || name.starts_with('-') {
        return Some(RULE.into());
    }
    None
}

/// Characters a name may not hold: controls, and the invisible ones that
/// reorder or break the text around them.
fn unprintable(c: char) -> Option<&'static str> {
    match c {
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => Some("a control character"),
        '\u{200e}' | '\u{200f}' | '\u{61c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
            Some("a bidirectional text control")
        }
        '\u{2028}' | '\u{2029}' => Some("a line separator"),
        _ => None,
    }
}

const PENDING: &str = "\u{1}pending";

/// Adds `source` to the store as a snapshot.
pub fn add(
    store: &mut Store,
    source: Source,
    opts: &AddOptions,
    progress: &dyn Progress,
) -> Result<AddReport> {
    if let Some(n) = &opts.name {
        validate_name(n)?;
    }
    let Input {
        reader: input,
        total,
        label,
        file_name,
    } = Input::open(source)?;
    let (reader, compression, raw) =
        archive::decompressed(input).ctx(|| format!("reading {label}"))?;
    let total = if compression == Compression::None {
        total
    } else {
        None
    };
    let params = store.params();
    progress.start("adding", total);

    let report = store.write_or_discard(|txn| {
        let snap = txn.create_snapshot(&NewSnapshot {
            name: PENDING,
            size: 0,
            hash: SnapshotDigest::default(),
            new_bytes: 0,
            added_at: now(),
            meta: &SnapshotMeta::default(),
        })?;
        let c = chunk_stream(
            txn,
            snap,
            Watch::new(reader),
            params,
            opts.tar_split,
            progress,
        )?;
        let tags = c.facts.repo_tags();
        let name = snapshot_name(opts, tags.first(), file_name, &label)?;
        let hash = SnapshotDigest::from(c.hash);
        let mut replaced = false;
        let mut moved_from = None;
        let repaired = txn.repaired() as u64;
        if let Some(old) = txn.store().snapshot(&name)? {
            if old.blake3 == hash && repaired == 0 {
                // Already stored: keep nothing of this run (not even chunks
                // a different split may have produced).
                let report = AddReport {
                    name,
                    size: c.size,
                    blake3: old.blake3,
                    chunks: c.seq,
                    new_chunks: 0,
                    new_bytes: 0,
                    compression: compression.name(),
                    unchanged: true,
                    replaced: false,
                    repaired: 0,
                    previous: None,
                    kept_as: None,
                };
                return Ok((report, false));
            }
            if old.blake3 == hash || opts.replace {
                // The same content whose stored chunks were damaged is added
                // again in full (the new recipe names only chunks this run
                // saw); with --replace the old content goes.
                txn.delete_snapshot(old.rowid)?;
            } else {
                // The name is a tag: it moves to the new content, and the
                // old snapshot stays under TAG@DIGEST until removed.
                moved_from = Some((old.blake3, txn.untag_snapshot(&old)?));
            }
            replaced = old.blake3 != hash;
        }
        let mut meta = snapshot_meta(&label, &c, &tags, raw, compression);
        meta.tagged_at_ms = Some(now_ms());
        txn.describe_snapshot(
            snap,
            &NewSnapshot {
                name: &name,
                size: c.size,
                hash,
                new_bytes: c.new_bytes,
                added_at: 0,
                meta: &meta,
            },
        )?;
        txn.finish_snapshot(snap)?;
        let report = AddReport {
            name,
            size: c.size,
            blake3: hash,
            chunks: c.seq,
            new_chunks: c.new_chunks,
            new_bytes: c.new_bytes,
            compression: compression.name(),
            unchanged: false,
            replaced,
            repaired,
            previous: moved_from.as_ref().map(|(h, _)| *h),
            kept_as: moved_from.map(|(_, n)| n),
        };
        Ok((report, true))
    });
    progress.finish();
    report
}

/// An opened source: its bytes, their size when known, how messages name
/// it, and the snapshot name its file name gives.
struct Input {
    reader: Box<dyn Read + Send>,
    total: Option<u64>,
    label: String,
    file_name: Option<String>,
}

impl Input {
    fn open(source: Source) -> Result<Input> {
        Ok(match source {
            Source::Path(p) => {
                let file = open_input(&p)?;
                Input {
                    total: file.metadata().ok().map(|m| m.len()),
                    file_name: Some(derive_name(&p)?),
                    label: p.display().to_string(),
                    reader: Box::new(file),
                }
            }
            Source::Stdin => Input {
                reader: Box::new(std::io::stdin()),
                total: None,
                label: "-".to_string(),
                file_name: None,
            },
            Source::Reader { label, reader } => Input {
                reader,
                total: None,
                label,
                file_name: None,
            },
        })
    }
}

/// What chunking a stream into the store gave.
struct Chunked {
    /// Recipe rows written.
    seq: u64,
    new_chunks: u64,
    new_bytes: u64,
    /// Size and BLAKE3 of the (decompressed) stream.
    size: u64,
    hash: blake3::Hash,
    facts: archive::TarFacts,
    split: chunker::SplitStats,
}

/// Cuts the stream into chunks, stores the new ones and writes the recipe
/// of snapshot row `snap`.
fn chunk_stream<R: Read + Send>(
    txn: &mut Txn<'_>,
    snap: i64,
    reader: Watch<R>,
    params: chunker::Params,
    tar_split: bool,
    progress: &dyn Progress,
) -> Result<Chunked> {
    let known = txn.store().known_layers()?;
    let mut recipe = Recipe::new(snap, &known);
    let mut new_chunks = 0u64;
    let mut new_bytes = 0u64;
    let mut in_flight: Option<InFlight> = None;
    let mut in_flight_ids: HashSet<ChunkId> = HashSet::new();
    let mut rows: HashMap<ChunkId, ChunkRow> = HashMap::new();
    let (watch, split) =
        chunker::for_each_batch_known(reader, params, tar_split, &known, |units| {
            // Progress counts input bytes (not deflate plain text).
            let bytes: u64 = units
                .iter()
                .map(|u| match u {
                    Unit::Meta(n, Op::Out) => *n,
                    Unit::Chunk(c, Op::Out) => c.data.len() as u64,
                    Unit::Part(_, out) => *out,
                    Unit::Layer(Layer::Reused { size, .. }) => *size,
                    _ => 0,
                })
                .sum();
            // This batch's chunks encode on the pool while the previous
            // batch is written.
            let (next, fresh) = start_batch(txn, units, &in_flight_ids, bytes)?;
            if let Some(prev) = in_flight.replace(next) {
                let done = prev.bytes;
                for s in finish_batch(txn, prev, &mut rows, &mut new_chunks, &mut new_bytes)? {
                    recipe.push(s);
                }
                recipe.drain(txn)?;
                progress.advance(done);
            }
            in_flight_ids = fresh;
            Ok(())
        })?;
    if let Some(last) = in_flight.take() {
        let done = last.bytes;
        for s in finish_batch(txn, last, &mut rows, &mut new_chunks, &mut new_bytes)? {
            recipe.push(s);
        }
        progress.advance(done);
    }
    recipe.finish(txn)?;
    let (size, hash, facts) = watch.finish();
    Ok(Chunked {
        seq: recipe.seq,
        new_chunks,
        new_bytes,
        size,
        hash,
        facts,
        split,
    })
}

/// The snapshot's name: `--name`, else the archive's first RepoTag, else
/// the file name.
fn snapshot_name(
    opts: &AddOptions,
    first_tag: Option<&String>,
    file_name: Option<String>,
    label: &str,
) -> Result<String> {
    let name = match (&opts.name, first_tag, file_name) {
        (Some(n), _, _) => n.clone(),
        (None, Some(tag), _) => tag.clone(),
        (None, None, Some(f)) => f,
        (None, None, None) => {
            let what = if label == "-" {
                "standard input"
            } else {
                label
            };
            return Err(Error::Invalid(format!(
                "{what} is not a docker archive with RepoTags: give the snapshot a name with --name"
            )));
        }
    };
    validate_name(&name)?;
    Ok(name)
}

/// The metadata recorded with a snapshot: where it came from, how it was
/// split, its tags and images, and the compressed stream it was read from.
fn snapshot_meta(
    label: &str,
    c: &Chunked,
    tags: &[String],
    raw: Option<std::sync::Arc<std::sync::Mutex<archive::RawDigest>>>,
    compression: Compression,
) -> SnapshotMeta {
    let images = c.facts.images();
    SnapshotMeta {
        source: Some(label.to_string()),
        tar_entries: (c.facts.entries > 0).then_some(c.facts.entries),
        split: Some(c.split),
        repo_tags: (!tags.is_empty()).then(|| tags.to_vec()),
        docker: (!images.is_empty()).then(|| DockerMeta {
            layout: if c.facts.oci_layout { "oci" } else { "legacy" }.into(),
            images,
        }),
        compressed: raw.map(|raw| {
            let raw = raw.lock().expect("digest lock");
            CompressedMeta {
                format: compression.name().into(),
                size: raw.size(),
                blake3: raw.hash().to_hex().to_string(),
            }
        }),
        ..SnapshotMeta::default()
    }
}

/// Opens an input file with a clear message when it is missing or a directory.
pub fn open_input(p: &Path) -> Result<File> {
    match File::open(p) {
        Ok(f) => {
            if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                return Err(Error::Invalid(format!(
                    "{} is a directory: give an archive file (docker save -o app.tar IMAGE makes one)",
                    p.display()
                )));
            }
            Ok(f)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound(p.to_path_buf())),
        Err(e) => Err(Error::io(format!("opening {}", p.display()), e)),
    }
}

fn derive_name(p: &Path) -> Result<String> {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "cannot derive a snapshot name from {}: pass --name",
                p.display()
            ))
        })
}

/// A unit after storing: its chunk's row and length, or a headers-stream run.
enum Stored {
    /// A whole chunk: row, length, op, and (for a deflate part) output bytes.
    Whole(ChunkRow, u32, Op, u64),
    Header(ChunkRow, u32),
    Meta(u64, Op),
    /// The next whole pieces are the contents of this file (path, size).
    File(Vec<u8>, u64),
    /// A compressed layer blob starts, ends or is taken from the store.
    Layer(Layer),
}

/// What a unit of a batch is, once looked up in the index.
enum Step {
    Meta(u64, Op),
    File(Vec<u8>, u64),
    Layer(Layer),
    Chunk {
        id: ChunkId,
        len: u32,
        kind: Kind,
        /// Its row, when the index had it at lookup time.
        row: Option<ChunkRow>,
    },
}

#[derive(Clone, Copy)]
enum Kind {
    Whole(Op),
    Header,
    Part(u64),
}

/// A new chunk encoded for the store: its step, payload, and (for content
/// chunks) super-features.
type Encoded = (
    usize,
    (codec::Codec, Vec<u8>),
    Option<[i64; crate::similarity::SUPER_FEATURES]>,
);

/// A batch whose new chunks are being encoded on the rayon pool while the
/// next batch is looked up and the previous one written.
struct InFlight {
    steps: Vec<Step>,
    encoded: std::sync::mpsc::Receiver<Vec<Encoded>>,
    /// Input bytes it covers (for progress).
    bytes: u64,
}

/// Looks a batch's chunks up and starts encoding the new ones (a chunk
/// repeated within the batch, or new in the batch still in flight, is
/// encoded once).
fn start_batch(
    txn: &mut Txn<'_>,
    units: Vec<Unit>,
    in_flight: &HashSet<ChunkId>,
    bytes: u64,
) -> Result<(InFlight, HashSet<ChunkId>)> {
    let mut steps: Vec<Step> = Vec::with_capacity(units.len());
    let mut todo: Vec<(usize, Vec<u8>, bool)> = Vec::new();
    let mut fresh: HashSet<ChunkId> = HashSet::new();
    for u in units {
        let (c, kind) = match u {
            Unit::Meta(n, op) => {
                steps.push(Step::Meta(n, op));
                continue;
            }
            Unit::File(path, size) => {
                steps.push(Step::File(path, size));
                continue;
            }
            Unit::Layer(l) => {
                steps.push(Step::Layer(l));
                continue;
            }
            Unit::Chunk(c, op) => (c, Kind::Whole(op)),
            Unit::Header(c) => (c, Kind::Header),
            Unit::Part(c, out) => (c, Kind::Part(out)),
        };
        let len = c.data.len() as u32;
        let pending = fresh.contains(&c.id) || in_flight.contains(&c.id);
        let row = if pending {
            None
        } else {
            txn.chunk_rowid(&c.id)?
        };
        if row.is_none() && !pending {
            fresh.insert(c.id);
            // New content chunks also get their super-features, so later
            // packs can ship similar chunks as deltas against them.
            todo.push((steps.len(), c.data, matches!(kind, Kind::Whole(_))));
        }
        steps.push(Step::Chunk {
            id: c.id,
            len,
            kind,
            row,
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    rayon::spawn(move || {
        let encoded: Vec<Encoded> = todo
            .into_par_iter()
            .map(|(i, data, whole)| {
                let sf = if whole {
                    crate::similarity::super_features(&data)
                } else {
                    None
                };
                (i, codec::encode(data), sf)
            })
            .collect();
        // The receiver is gone only when the add already failed.
        let _ = tx.send(encoded);
    });
    Ok((
        InFlight {
            steps,
            encoded: rx,
            bytes,
        },
        fresh,
    ))
}

/// Writes a batch's new chunks (once encoded) and returns every unit with
/// its chunk's row id. `rows` holds the rows of chunks new in the batch
/// written before, and gets this batch's.
fn finish_batch(
    txn: &mut Txn<'_>,
    batch: InFlight,
    rows: &mut HashMap<ChunkId, ChunkRow>,
    new_chunks: &mut u64,
    new_bytes: &mut u64,
) -> Result<Vec<Stored>> {
    let encoded = batch
        .encoded
        .recv()
        .map_err(|_| Error::Invalid("encoding chunks failed (a ferry bug)".into()))?;
    let mut encoded = encoded.into_iter().peekable();
    let previous = std::mem::take(rows);
    let mut out = Vec::with_capacity(batch.steps.len());
    for (i, step) in batch.steps.into_iter().enumerate() {
        let (id, len, kind, row) = match step {
            Step::Meta(n, op) => {
                out.push(Stored::Meta(n, op));
                continue;
            }
            Step::File(path, size) => {
                out.push(Stored::File(path, size));
                continue;
            }
            Step::Layer(l) => {
                out.push(Stored::Layer(l));
                continue;
            }
            Step::Chunk { id, len, kind, row } => (id, len, kind, row),
        };
        let row = match row {
            Some(r) => r,
            None => match encoded.next_if(|(j, _, _)| *j == i) {
                Some((_, (codec, payload), sf)) => {
                    let r = txn.insert_chunk(&id, codec, len, &payload)?;
                    if let Some(sf) = sf {
                        txn.insert_features(r, &sf)?;
                    }
                    *new_chunks += 1;
                    *new_bytes += payload.len() as u64;
                    rows.insert(id, r);
                    r
                }
                None => match rows.get(&id).or_else(|| previous.get(&id)) {
                    Some(&r) => r,
                    None => {
                        return Err(Error::Integrity(
                            "a chunk of this batch was neither stored nor new (a ferry bug)".into(),
                        ));
                    }
                },
            },
        };
        out.push(match kind {
            Kind::Whole(op) => Stored::Whole(row, len, op, 0),
            Kind::Header => Stored::Header(row, len),
            Kind::Part(n) => Stored::Whole(row, len, Op::Part, n),
        });
    }
    Ok(out)
}
