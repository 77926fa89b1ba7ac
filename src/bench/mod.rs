//! `ferry bench`: what shipping NEW to a side that has OLD costs, by every
//! way a user would ship it (full tar, gzip, zstd, layer-level delta,
//! `zstd --patch-from`, ferry without and with tar-aware splitting), what
//! a first transfer of NEW ships (ferry's full pack beside gzip and zstd of
//! the archive), and where ferry's bytes go (file contents, headers, plain fallback; top
//! layers and paths). Works in temporary stores only.
//!
//! The other tools' rows are measured in `baselines`; the attribution of
//! the ferry delta's bytes is made in `breakdown`.

mod baselines;
mod breakdown;

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

pub use baselines::{Layer, layers};

use crate::add::{AddOptions, Source};
use crate::chunker::ChunkId;
use crate::error::{Error, IoContext, Result};
use crate::progress::Progress;
use crate::send::{PackOptions, write_pack};
use crate::store::Store;

/// The rows `ferry bench` can measure: the name `--methods` takes, and
/// the row's label in the report.
pub const METHODS: &[(&str, &str)] = &[
    ("full", "full tar"),
    ("gzip", "gzip -6"),
    ("zstd", "zstd -19"),
    ("ferry-full", FIRST_TRANSFER),
    ("layers", "layer-level (new layers, gzip -6)"),
    ("zstd-patch", "zstd -3 --long=31 --patch-from"),
    ("zstd19-patch", "zstd -19 --long=31 --patch-from"),
    ("ferry-no-tar-split", "ferry without tar-aware splitting"),
    ("ferry-no-deltas", "ferry without similarity deltas"),
    ("ferry", "ferry"),
];

/// The row of ferry's full pack of NEW: what a first transfer ships.
const FIRST_TRANSFER: &str = "ferry full pack (first transfer)";

/// Rows that take ferry apart (what each of its ideas saves): measured
/// only when asked for (`--all`, or by name).
const ABLATIONS: &[&str] = &["ferry-no-tar-split", "ferry-no-deltas"];

/// Which rows to measure, by their [`METHODS`] names.
#[derive(Debug, Clone)]
pub struct Selection(Vec<&'static str>);

impl Selection {
    /// Every row but the ablations (`all`: every row).
    pub fn default_rows(all: bool) -> Selection {
        Selection(
            METHODS
                .iter()
                .map(|m| m.0)
                .filter(|m| all || !ABLATIONS.contains(m))
                .collect(),
        )
    }

    /// The rows a comma-separated list names.
    pub fn parse(list: &str) -> Result<Selection> {
        let mut picked = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Some(m) = METHODS.iter().find(|m| m.0 == name) else {
                let valid: Vec<&str> = METHODS.iter().map(|m| m.0).collect();
                return Err(Error::Invalid(format!(
                    "unknown bench method '{name}': choose from {}",
                    valid.join(", ")
                )));
            };
            picked.push(m.0);
        }
        if picked.is_empty() {
            return Err(Error::Invalid(
                "--methods names no method: give a comma-separated list, e.g. gzip,ferry".into(),
            ));
        }
        Ok(Selection(picked))
    }

    /// Whether the row named `name` is measured.
    pub fn wants(&self, name: &str) -> bool {
        self.0.contains(&name)
    }
}

/// One way of shipping NEW.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What it is.
    pub method: String,
    /// Bytes shipped.
    pub bytes: u64,
    /// Of the full tar.
    pub percent: f64,
    /// Seconds to produce (None: nothing to do).
    pub seconds: Option<f64>,
    /// Seconds to unpack and rebuild NEW on the receiving side (ferry rows).
    pub unpack_seconds: Option<f64>,
}

/// Where the bytes of the ferry delta pack went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Breakdown {
    /// New file contents sent whole (encoded chunk bytes).
    pub contents: u64,
    /// Chunks sent as similarity deltas against chunks OLD has, and their bytes.
    pub delta_chunks: u64,
    /// Bytes of those deltas.
    pub deltas: u64,
    /// Tar headers, padding and archive structure.
    pub headers: u64,
    /// Bytes kept as plain streams (not understood, or gzip'd layers
    /// preflate could not re-create).
    pub raw: u64,
    /// Deflate re-creation data of gzip'd layers.
    pub deflate: u64,
    /// Recipes, record framing, header and trailer.
    pub recipes_and_framing: u64,
    /// NEW's gzip'd layers, by what re-creates them.
    pub gzip_layers: crate::chunker::EncoderCounts,
}

/// A layer or path and the bytes the ferry delta ships for it.
#[derive(Debug, Clone, Serialize)]
pub struct Share {
    /// Layer (archive entry) or file path.
    pub name: String,
    /// Encoded bytes shipped.
    pub bytes: u64,
}

/// The result of [`bench`].
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// What OLD was.
    pub old: String,
    /// What NEW was.
    pub new: String,
    /// Bytes of the NEW archive.
    pub full_bytes: u64,
    /// One row per way of shipping.
    pub rows: Vec<Row>,
    /// Where the ferry delta's bytes went.
    pub breakdown: Breakdown,
    /// The ten layers with the most shipped bytes.
    pub top_layers: Vec<Share>,
    /// The ten files with the most shipped bytes.
    pub top_paths: Vec<Share>,
}

fn secs(t: Instant) -> Option<f64> {
    Some(t.elapsed().as_secs_f64())
}

fn open(p: &Path) -> Result<BufReader<std::fs::File>> {
    Ok(BufReader::with_capacity(
        1 << 20,
        crate::add::open_input(p)?,
    ))
}

/// Compares ways of shipping `new` to a holder of `old` (archive files;
/// `old_label`/`new_label` name them in the report). `work` is a scratch
/// directory for temporary stores and packs. Memory: `zstd --patch-from`
/// holds OLD in memory, as the zstd tool does; everything else streams.
pub fn bench(
    old: &Path,
    new: &Path,
    old_label: &str,
    new_label: &str,
    work: &Path,
    rows_wanted: &Selection,
    progress: &dyn Progress,
) -> Result<BenchReport> {
    let full = std::fs::metadata(new)
        .ctx(|| format!("reading {}", new.display()))?
        .len();
    let mut rows = Rows {
        full,
        rows: Vec::new(),
    };
    if rows_wanted.wants("full") {
        rows.push("full tar", full, None, None);
    }
    baselines::measure(old, new, full, &mut rows, rows_wanted, progress)?;

    let mut delta = None;
    for variant in [Variant::Plain, Variant::Split, Variant::Deltas] {
        // ferry itself is always measured: the breakdown is of its pack.
        if variant != Variant::Deltas && !rows_wanted.wants(variant.name()) {
            continue;
        }
        let phase = crate::progress::Prefixed::new(progress, variant.method());
        let first = variant == Variant::Deltas && rows_wanted.wants("ferry-full");
        let run = ferry_delta(old, new, work, variant, first, &phase)?;
        if rows_wanted.wants(variant.name()) {
            rows.push(variant.method(), run.bytes, run.made, run.unpacked);
        }
        if variant == Variant::Deltas {
            delta = Some(run);
        }
    }
    let delta = delta.expect("the ferry row is always measured");
    if let Some((bytes, made, unpacked)) = delta.first {
        // Beside the other first-transfer rows (the archive compressed).
        rows.push(FIRST_TRANSFER, bytes, made, unpacked);
        let row = rows.rows.pop().expect("just pushed");
        let at = ["zstd -19", "gzip -6", "full tar"]
            .iter()
            .find_map(|m| rows.rows.iter().position(|r| r.method == *m))
            .map_or(0, |k| k + 1);
        rows.rows.insert(at, row);
    }

    let attributed = breakdown::attribute(new, full, &delta.pack, &delta.sent, progress)?;
    Ok(BenchReport {
        old: old_label.into(),
        new: new_label.into(),
        full_bytes: full,
        rows: rows.rows,
        breakdown: attributed.breakdown,
        top_layers: attributed.top_layers,
        top_paths: attributed.top_paths,
    })
}

/// The report's rows, as a percentage of the full tar's `full` bytes.
struct Rows {
    full: u64,
    rows: Vec<Row>,
}

impl Rows {
    /// Adds a row: `bytes` shipped by `method`, made in `seconds` and
    /// unpacked in `unpack`.
    fn push(&mut self, method: &str, bytes: u64, seconds: Option<f64>, unpack: Option<f64>) {
        let percent = if self.full == 0 {
            0.0
        } else {
            100.0 * bytes as f64 / self.full as f64
        };
        self.rows.push(Row {
            method: method.into(),
            bytes,
            percent,
            seconds,
            unpack_seconds: unpack,
        })
    }
}

/// The ways ferry is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// Plain content-defined chunks (`--no-tar-split`), no deltas.
    Plain,
    /// Tar-aware splitting, no similarity deltas.
    Split,
    /// Tar-aware splitting and similarity deltas: ferry as it ships.
    Deltas,
}

impl Variant {
    /// Names its scratch stores and packs.
    fn tag(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Split => "split",
            Variant::Deltas => "deltas",
        }
    }

    /// Its name in [`METHODS`].
    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "ferry-no-tar-split",
            Variant::Split => "ferry-no-deltas",
            Variant::Deltas => "ferry",
        }
    }

    /// Its row in the report.
    fn method(self) -> &'static str {
        match self {
            Variant::Plain => "ferry without tar-aware splitting",
            Variant::Split => "ferry without similarity deltas",
            Variant::Deltas => "ferry",
        }
    }
}

/// One measured ferry delta.
struct FerryRun {
    /// Size of the delta pack.
    bytes: u64,
    /// Seconds to add NEW and write the delta.
    made: Option<f64>,
    /// Seconds to unpack the delta and rebuild NEW on the receiving side.
    unpacked: Option<f64>,
    /// The delta pack.
    pack: PathBuf,
    /// The chunks the pack sent, in the order it sent them.
    sent: Vec<ChunkId>,
    /// When asked: the full pack of NEW, its seconds to write, and to
    /// unpack and rebuild NEW.
    first: Option<(u64, Option<f64>, Option<f64>)>,
}

/// Adds OLD and then NEW to a scratch store the way `variant` says, writes
/// the delta of NEW against OLD, and times a receiver that holds OLD
/// unpacking it and rebuilding NEW.
fn ferry_delta(
    old: &Path,
    new: &Path,
    work: &Path,
    variant: Variant,
    first: bool,
    progress: &dyn Progress,
) -> Result<FerryRun> {
    let tag = variant.tag();
    let tar_split = variant != Variant::Plain;
    let dir = work.join(format!("store-{tag}"));
    let mut store = Store::open_writer(&dir, std::time::Duration::ZERO)?;
    let add = |store: &mut Store, p: &Path, name: &str| -> Result<()> {
        let opts = AddOptions {
            name: Some(name.into()),
            replace: false,
            tar_split,
        };
        crate::add::add(store, Source::Path(p.to_path_buf()), &opts, progress).map(|_| ())
    };
    add(&mut store, old, "old")?;
    let t = Instant::now();
    add(&mut store, new, "new")?;
    let pack = work.join(format!("delta-{tag}.ferry"));
    let opts = PackOptions {
        snapshots: vec!["new".into()],
        bases: vec!["old".into()],
        no_deltas: variant != Variant::Deltas,
        ..PackOptions::default()
    };
    let f = std::fs::File::create(&pack).ctx(|| format!("creating {}", pack.display()))?;
    let report = write_pack(&store, &opts, BufWriter::new(f), progress)?;
    let made = secs(t);
    let bytes = std::fs::metadata(&pack).ctx(|| "pack".to_string())?.len();
    // The receiving side: holds OLD, unpacks the delta and rebuilds NEW.
    let full_pack = work.join(format!("old-{tag}.ferry"));
    let f = std::fs::File::create(&full_pack).ctx(|| "pack".to_string())?;
    let opts = PackOptions {
        snapshots: vec!["old".into()],
        ..PackOptions::default()
    };
    write_pack(&store, &opts, BufWriter::new(f), progress)?;
    let first = match first {
        true => Some(first_transfer(&store, work, progress)?),
        false => None,
    };
    drop(store);
    let mut receiver = Store::open_writer(
        &work.join(format!("receiver-{tag}")),
        std::time::Duration::ZERO,
    )?;
    crate::receive::unpack(&mut receiver, open(&full_pack)?, &full_pack, progress)?;
    std::fs::remove_file(&full_pack).ctx(|| "cleaning up".to_string())?;
    let t = Instant::now();
    crate::receive::unpack(&mut receiver, open(&pack)?, &pack, progress)?;
    crate::checkout::checkout(&receiver, "new", &mut std::io::sink(), progress)?;
    let unpacked = secs(t);
    Ok(FerryRun {
        bytes,
        made,
        unpacked,
        pack,
        sent: report.1.sent,
        first,
    })
}

/// A first transfer of NEW from `store`, which holds it: the bytes of its
/// full pack (the default level), the seconds to write it, and the seconds
/// for an empty store to unpack it and rebuild NEW.
fn first_transfer(
    store: &Store,
    work: &Path,
    progress: &dyn Progress,
) -> Result<(u64, Option<f64>, Option<f64>)> {
    let pack = work.join("first.ferry");
    let opts = PackOptions {
        snapshots: vec!["new".into()],
        ..PackOptions::default()
    };
    let t = Instant::now();
    let f = std::fs::File::create(&pack).ctx(|| format!("creating {}", pack.display()))?;
    write_pack(store, &opts, BufWriter::new(f), progress)?;
    let made = secs(t);
    let bytes = std::fs::metadata(&pack).ctx(|| "pack".to_string())?.len();
    let dir = work.join("receiver-first");
    let mut receiver = Store::open_writer(&dir, std::time::Duration::ZERO)?;
    let t = Instant::now();
    crate::receive::unpack(&mut receiver, open(&pack)?, &pack, progress)?;
    crate::checkout::checkout(&receiver, "new", &mut std::io::sink(), progress)?;
    let unpacked = secs(t);
    drop(receiver);
    std::fs::remove_file(&pack).ctx(|| "cleaning up".to_string())?;
    std::fs::remove_dir_all(&dir).ctx(|| "cleaning up".to_string())?;
    Ok((bytes, made, unpacked))
}

/// A bench input as an archive file: `what` is a file, used as it is; a
/// snapshot of the store in `store_dir`, checked out into `work`; or
/// `docker:IMAGE`, saved from the daemon at `docker_host` through a
/// temporary store in `work`. `tag` ("old" or "new") names what it writes.
pub fn input(
    what: &str,
    store_dir: &Path,
    docker_host: Option<&str>,
    work: &Path,
    tag: &str,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let out = work.join(format!("{tag}.tar"));
    if let Some(image) = what.strip_prefix("docker:") {
        let daemon = crate::docker::Daemon::connect(docker_host)?;
        let scratch = work.join(format!("docker-{tag}"));
        let mut store = Store::open_writer(&scratch, std::time::Duration::ZERO)?;
        let images = [image.to_string()];
        let r = crate::docker::save(&mut store, &daemon, &images, None, true, progress)?;
        crate::checkout::checkout_to_path(&store, &r.add.name, &out, progress)?;
        return Ok(out);
    }
    let p = Path::new(what);
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    match Store::open(store_dir) {
        Ok(store) if store.snapshot(what)?.is_some() => {
            crate::checkout::checkout_to_path(&store, what, &out, progress)?;
            Ok(out)
        }
        _ => Err(Error::Invalid(format!(
            "'{what}' is neither a file, nor a snapshot in {}, nor docker:IMAGE",
            store_dir.display()
        ))),
    }
}
