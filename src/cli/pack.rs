//! `ferry pack`: its flags, the files it writes, and its report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::HumanBytes;

use super::Context;
use super::output::{note, print_json, rate, say};
use crate::inventory::Receiver;
use crate::output::{AtomicFile, check_target, is_dash};
use crate::progress::Progress;
use crate::send::{PackOptions, PackReport};
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
    /// 'fat32' = 4 GiB - 1), written as OUTPUT.001, OUTPUT.002, ...
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
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
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
    let opts = PackOptions {
        snapshots: a.snapshots.clone(),
        bases: a.base.clone(),
        have: receiver.known_chunks(&mut store)?,
        volume_size,
        sign,
        no_deltas: a.no_deltas,
    };
    let t = Instant::now();
    let (written, report) = write(&store, &opts, a, &ctx.bar)?;
    receiver.record_pack(&mut store, &a.snapshots, &report.receiver_chunks)?;
    if a.json && !a.to_stdout() {
        let mut v = serde_json::to_value(&report).expect("report serializes");
        v["files"] = serde_json::json!(written);
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
        if a.base.is_empty() {
            String::new()
        } else {
            format!(" (delta against {})", a.base.join(", "))
        },
        if opts.sign.is_some() { ", signed" } else { "" },
        rate(report.logical_bytes, t)
    );
    if a.to_stdout() {
        // Standard output carries the pack itself.
        note!("{line}");
        Ok(())
    } else {
        say!("{line}")
    }
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
