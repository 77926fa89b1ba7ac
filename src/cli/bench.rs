//! `ferry bench`: its flags and its report table.

use std::path::PathBuf;

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, say};
use crate::bench::BenchReport;
use crate::{Error, Result};

/// Flags of `ferry bench`.
#[derive(clap::Args)]
pub struct Args {
    /// The old version: an archive file, a snapshot in the store, or docker:IMAGE
    old: String,
    /// The new version: an archive file, a snapshot in the store, or docker:IMAGE
    new: String,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
    /// Also write an SVG bar chart of the bytes shipped
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
    /// Also measure ferry taken apart: without tar-aware splitting, and
    /// without similarity deltas (what each of them saves)
    #[arg(long, conflicts_with = "methods")]
    all: bool,
    /// Measure only these rows, comma-separated: full, gzip, zstd,
    /// ferry-full, layers, zstd-patch, zstd19-patch, ferry-no-tar-split,
    /// ferry-no-deltas, ferry
    #[arg(long, value_name = "A,B,C")]
    methods: Option<String>,
}

/// Runs the comparison and prints it (and draws the chart).
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let wanted = match &a.methods {
        Some(list) => crate::bench::Selection::parse(list)?,
        None => crate::bench::Selection::default_rows(a.all),
    };
    if let Some(c) = &a.chart {
        crate::chart::available()?;
        crate::output::check_target(c)?;
    }
    let tmp = tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?;
    let host = ctx.docker_host.as_deref();
    let input = |what: &str, tag: &str| {
        crate::bench::input(what, &ctx.dir, host, tmp.path(), tag, &ctx.bar)
    };
    let old_path = input(&a.old, "old")?;
    let new_path = input(&a.new, "new")?;
    let r = crate::bench::bench(
        &old_path,
        &new_path,
        &a.old,
        &a.new,
        tmp.path(),
        &wanted,
        &ctx.bar,
    )?;
    if let Some(c) = &a.chart {
        crate::chart::write(&r, c)?;
    }
    if a.json {
        return print_json(&r);
    }
    print(&r)?;
    if let Some(c) = &a.chart {
        say!("\nchart: {}", c.display())?;
    }
    Ok(())
}

fn print(r: &BenchReport) -> Result<()> {
    say!("shipping {} to a side that has {}:\n", r.new, r.old)?;
    say!(
        "{:<36} {:>14} {:>8} {:>9} {:>9}",
        "method",
        "bytes",
        "% full",
        "time",
        "unpack"
    )?;
    let t = |s: Option<f64>| s.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into());
    for row in &r.rows {
        say!(
            "{:<36} {:>14} {:>7.2}% {:>9} {:>9}",
            row.method,
            row.bytes,
            row.percent,
            t(row.seconds),
            t(row.unpack_seconds)
        )?;
    }
    let b = &r.breakdown;
    say!(
        "\nferry's bytes: {} new file contents, {} in {} similarity deltas, {} tar headers, {} plain streams, {} deflate re-creation data, {} recipes and framing",
        HumanBytes(b.contents),
        HumanBytes(b.deltas),
        b.delta_chunks,
        HumanBytes(b.headers),
        HumanBytes(b.raw),
        HumanBytes(b.deflate),
        HumanBytes(b.recipes_and_framing)
    )?;
    let g = &b.gzip_layers;
    if g.go_stdlib + g.go127 + g.pgzip + g.preflate + g.raw > 0 {
        say!(
            "gzip'd layers of NEW, by what re-creates them: {} go-stdlib, {} go1.27, {} pgzip, {} preflate, {} kept compressed",
            g.go_stdlib,
            g.go127,
            g.pgzip,
            g.preflate,
            g.raw
        )?;
    }
    for (title, list) in [("layers", &r.top_layers), ("paths", &r.top_paths)] {
        if list.is_empty() {
            continue;
        }
        say!("\ntop {title} by bytes shipped:")?;
        for s in list {
            say!("  {:>11}  {}", HumanBytes(s.bytes).to_string(), s.name)?;
        }
    }
    Ok(())
}
