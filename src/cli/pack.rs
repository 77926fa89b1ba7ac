//! `ferry pack`: its flags, the files it writes, and its report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::HumanBytes;

use super::Context;
use super::output::{note, print_json, rate, say};
use crate::inventory::Receiver;
use crate::output::{AtomicFile, check_target, is_dash};
use crate::progress::Progress;
use crate::send::{Level, PackOptions, PackReport};
use crate::store::Store;
use crate::{Error, Result};

/// Flags of `ferry pack`.
#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to carry
    #[arg(required = true)]
    snapshots: Vec<String>,
    /// Snapshots the receiving side already has (repeatable)
    #[arg(long)]
    base: Vec<String>,
    /// Output file ('-' = stdout)
    #[arg(short, long, required_unless_present = "dry_run")]
    output: Option<PathBuf>,
    /// Only report what the pack would hold
    #[arg(long)]
    dry_run: bool,
    /// Split into volumes of at most this size (bytes, or K/M/G/T, or
    /// 'fat32' = 4 GiB - 1; at least 384K), filled evenly and written as
    /// OUTPUT.001, OUTPUT.002, ...; stale OUTPUT.NNN and OUTPUT files of
    /// an earlier pack are removed
    #[arg(long, value_name = "SIZE")]
    volume_size: Option<String>,
    /// Leave out what the receiver's inventory (from 'ferry inventory') lists
    #[arg(long, value_name = "FILE")]
    have: Option<PathBuf>,
    /// Record in this store what peer NAME receives, and leave out what
    /// it is already known to hold
    #[arg(long, value_name = "NAME")]
    to: Option<String>,
    /// Sign the pack with this secret key (from 'ferry key generate')
    #[arg(long, value_name = "KEYFILE")]
    sign: Option<PathBuf>,
    /// Send new chunks whole, never as deltas against similar ones
    #[arg(long)]
    no_deltas: bool,
    /// How hard to compress the chunks that go whole (in solid blocks of
    /// chunks compressed together). fast: zstd 3, about 0.87x the bytes of
    /// gzip -6 in a tenth of its time. default: zstd 10, about 0.74x
    /// gzip -6's bytes in about 0.4x its time. max: zstd 19 in 48 MiB
    /// blocks, each compressed after the end of the one before: about
    /// 0.99x zstd -19 --long=27's bytes in about its time (a minute per
    /// 250 MB on two cores, and 1.5 GB of memory). Unpacking costs about
    /// the same at every level.
    #[arg(long, value_enum, default_value_t = LevelArg::Default)]
    level: LevelArg,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

/// The values of `--level`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LevelArg {
    Fast,
    Default,
    Max,
}

impl From<LevelArg> for Level {
    fn from(l: LevelArg) -> Level {
        match l {
            LevelArg::Fast => Level::Fast,
            LevelArg::Default => Level::Default,
            LevelArg::Max => Level::Max,
        }
    }
}

impl Args {
    fn to_stdout(&self) -> bool {
        self.output.as_deref().is_some_and(is_dash) && !self.dry_run
    }
}

/// Writes the pack (or only plans it) and reports what it holds.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let receiver = Receiver {
        have: a.have.as_deref(),
        peer: a.to.as_deref(),
        dry_run: a.dry_run,
    };
    let mut store = if receiver.writes_ledger() {
        ctx.open_writer()?
    } else {
        ctx.open()?
    };
    let volume_size = a
        .volume_size
        .as_deref()
        .map(crate::send::parse_size)
        .transpose()?;
    if volume_size.is_some() && a.output.as_deref().is_some_and(is_dash) {
        return Err(Error::Invalid(
            "--volume-size writes files: give -o FILE, not '-'".into(),
        ));
    }
    let sign = a
        .sign
        .as_deref()
        .map(crate::keys::load_secret)
        .transpose()?;
    let known = receiver.known_chunks(&mut store)?;
    let (bases, chosen) = choose_bases(&store, a, known.as_ref().map(|k| k.1.as_slice()))?;
    let opts = PackOptions {
        snapshots: a.snapshots.clone(),
        bases,
        have: known.map(|k| k.0),
        volume_size,
        sign,
        no_deltas: a.no_deltas,
        level: a.level.into(),
    };
    let t = Instant::now();
    let (written, report) = write(&store, &opts, a, &ctx.bar)?;
    receiver.record_pack(&mut store, &a.snapshots, &report.receiver_chunks)?;
    let removed = match (&a.output, a.dry_run || a.to_stdout()) {
        (Some(out), false) => remove_stale(out, &written),
        _ => Vec::new(),
    };
    if let Some(note) = chosen {
        // On stderr: it explains the pack, it is not the report.
        note!("{note}");
    }
    if a.json && !a.to_stdout() {
        let mut v = serde_json::to_value(&report).expect("report serializes");
        v["files"] = serde_json::json!(written);
        v["removed"] = serde_json::json!(removed);
        return print_json(&v);
    }
    let target = if written.len() > 1 {
        format!(
            "{} volumes ({} .. {})",
            written.len(),
            written[0].display(),
            written[written.len() - 1].display()
        )
    } else {
        a.output
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "pack".into())
    };
    let line = format!(
        "{} {target}: {} ({} chunks, {} as deltas, {} already at the receiver) for {} of snapshots{}{}, {}",
        if a.dry_run { "would write" } else { "wrote" },
        HumanBytes(report.totals.pack_bytes),
        report.totals.chunks,
        report.totals.delta_chunks,
        report.skipped_chunks,
        HumanBytes(report.logical_bytes),
        if opts.bases.is_empty() {
            String::new()
        } else {
            format!(" (delta against {})", opts.bases.join(", "))
        },
        if opts.sign.is_some() { ", signed" } else { "" },
        rate(report.logical_bytes, t)
    );
    if a.to_stdout() {
        // Standard output carries the pack itself.
        note!("{line}");
        return Ok(());
    }
    say!("{line}")?;
    for r in &removed {
        say!(
            "removed stale {} from an earlier {}",
            r.display(),
            if Some(r.as_path()) == a.output.as_deref() {
                "pack (these volumes replace it)"
            } else {
                "set"
            }
        )?;
    }
    Ok(())
}

/// The bases of the pack: `--base`, else the snapshots the receiver is
/// known to hold (`held`, from `--have` or `--to`) that share the most
/// with what is packed. With nothing known of the receiver, a snapshot
/// that would help is named in a warning. Returns the bases and what to
/// tell the user about them.
fn choose_bases(
    store: &Store,
    a: &Args,
    held: Option<&[crate::store::SnapshotDigest]>,
) -> Result<(Vec<String>, Option<String>)> {
    use crate::send::suggest;
    if !a.base.is_empty() || a.no_deltas {
        return Ok((a.base.clone(), None));
    }
    let Some(held) = held else {
        // An older snapshot sharing much is likely what the receiver runs:
        // a first transfer (nothing older shares much) needs no warning.
        let best = suggest::older_candidates(store, &a.snapshots)?;
        let note = best.first().filter(|c| c.percent() >= 10.0).map(|c| {
            format!(
                "warning: no --base, so the pack carries all of {}; this store's older '{}' holds {:.0}% of it: if the receiver has it, add --base '{}'",
                a.snapshots.join(", "),
                c.name,
                c.percent(),
                c.name
            )
        });
        return Ok((Vec::new(), note));
    };
    let bases = suggest::receiver_bases(store, &a.snapshots, held)?;
    if bases.is_empty() {
        return Ok((Vec::new(), None));
    }
    let names: Vec<String> = bases.iter().map(|c| c.name.clone()).collect();
    let note = format!(
        "delta against {} ({}), which the receiver holds",
        names.join(", "),
        if a.have.is_some() {
            "from its inventory"
        } else {
            "from the peer ledger"
        }
    );
    Ok((names, Some(note)))
}

/// Removes the pack files an earlier pack to `out` left beside it that
/// this one did not write: volumes `OUT.NNN` not in this set, and the
/// single file `OUT` when volumes were written. Only files that start as a
/// ferry pack go; one that cannot be removed is reported on stderr.
fn remove_stale(out: &Path, written: &[PathBuf]) -> Vec<PathBuf> {
    let Some(name) = out.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    // A device or a pipe written in place has no siblings of its own.
    if !written
        .first()
        .and_then(|w| std::fs::metadata(w).ok())
        .is_some_and(|m| m.is_file())
    {
        return Vec::new();
    }
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut stale: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let volume = n
                .strip_prefix(name.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|d| d.len() >= 3 && d.bytes().all(|b| b.is_ascii_digit()));
            (n == name || volume)
                && !written
                    .iter()
                    .any(|w| w.file_name() == Some(&e.file_name()))
        })
        .map(|e| out.with_file_name(e.file_name()))
        .filter(|p| is_pack(p))
        .collect();
    stale.sort();
    stale.retain(|p| match std::fs::remove_file(p) {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "ferry: warning: could not remove stale {} from an earlier pack ({e}): remove it by hand",
                p.display()
            );
            false
        }
    });
    stale
}

/// True when `p` is a regular file that starts as a ferry pack does.
fn is_pack(p: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::metadata(p).is_ok_and(|m| m.is_file())
        && std::fs::File::open(p)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && &magic == crate::pack::format::MAGIC
}

/// Writes the pack where `-o` says (nowhere on a dry run); returns the
/// files written.
fn write(
    store: &Store,
    opts: &PackOptions,
    a: &Args,
    bar: &dyn Progress,
) -> Result<(Vec<PathBuf>, PackReport)> {
    if a.dry_run {
        let (_, r) = crate::send::write_pack(store, opts, std::io::sink(), bar)?;
        return Ok((Vec::new(), r));
    }
    let out = a.output.as_deref().expect("clap requires -o");
    if is_dash(out) {
        let (_, r) = crate::send::write_pack(store, opts, crate::output::stream(), bar)?;
        return Ok((Vec::new(), r));
    }
    write_files(store, opts, out, bar)
}

/// Writes a pack to `path` (or volumes `path.001`, `path.002`, ... with
/// `--volume-size`), each through a temporary file beside it, renamed into
/// place once all are complete (a device or pipe is written in place). On
/// failure no output file is left behind.
fn write_files(
    store: &Store,
    opts: &PackOptions,
    path: &Path,
    bar: &dyn Progress,
) -> Result<(Vec<PathBuf>, PackReport)> {
    let volumes = opts.volume_size.is_some();
    let name = |i: u32, n: u32| -> PathBuf {
        if !volumes {
            return path.to_path_buf();
        }
        let width = n.to_string().len().max(3);
        let mut p = path.as_os_str().to_os_string();
        p.push(format!(".{i:0width$}"));
        PathBuf::from(p)
    };
    // Refuse a name that cannot be written before the work of packing.
    check_target(path)?;
    let (files, report) = crate::send::write_volumes(
        store,
        opts,
        &mut |i, n| {
            if i == 1 {
                // Every volume's name, before the first volume is written.
                for k in 1..=n {
                    check_target(&name(k, n))?;
                }
            }
            AtomicFile::create(&name(i, n))
        },
        bar,
    )?;
    Ok((AtomicFile::commit_all(files)?, report))
}
