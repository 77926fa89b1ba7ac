//! `ferry add`: its flags and its report.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, rate, say};
use crate::Result;
use crate::add::{AddOptions, Source};
use crate::output::is_dash;

/// Flags of `ferry add`.
#[derive(clap::Args)]
pub struct Args {
    /// The file to add, or '-' for standard input
    input: PathBuf,
    /// Snapshot name [default: the archive's first RepoTag, else the file name]
    #[arg(long)]
    name: Option<String>,
    /// When the name already names other content, remove that snapshot
    /// instead of keeping it as NAME@DIGEST (names are tags: they move)
    #[arg(long)]
    replace: bool,
    /// Chunk the input as one plain stream instead of splitting tars
    /// into headers and per-file contents
    #[arg(long)]
    no_tar_split: bool,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

/// Adds the input and reports what it added.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let source = if is_dash(&a.input) {
        Source::Stdin
    } else {
        // Check the input before creating or locking a store.
        crate::add::open_input(&a.input)?;
        Source::Path(a.input.clone())
    };
    let mut store = ctx.open_writer()?;
    let t = Instant::now();
    let opts = AddOptions {
        name: a.name.clone(),
        replace: a.replace,
        tar_split: !a.no_tar_split,
    };
    let r = crate::add::add(&mut store, source, &opts, &ctx.bar)?;
    if a.json {
        return print_json(&r);
    }
    if r.unchanged {
        return say!(
            "{}: already in the store with the same content, nothing to do",
            r.name
        );
    }
    say!(
        "added {}: {} in {} chunks, {} new ({} stored), {}",
        r.name,
        HumanBytes(r.size),
        r.chunks,
        r.new_chunks,
        HumanBytes(r.new_bytes),
        rate(r.size, t)
    )?;
    tag_moved(&r)?;
    if r.repaired > 0 {
        say!(
            "wrote again {} chunks the index named but the data files no longer held",
            r.repaired
        )?;
    }
    if r.compression != "none" {
        say!(
            "note: the input was {}-compressed; ferry stores and checks out the decompressed stream (docker load accepts it)",
            r.compression
        )?;
    }
    Ok(())
}

/// Says that a name (a tag) moved to new content, and what became of the old.
pub(super) fn tag_moved(r: &crate::add::AddReport) -> Result<()> {
    let (Some(prev), true) = (r.previous.as_ref(), r.replaced) else {
        if r.replaced {
            return say!(
                "{}: the snapshot it named before was removed (--replace)",
                r.name
            );
        }
        return Ok(());
    };
    say!(
        "{}: was {}, now {}; the old snapshot stays as {} (a delta base) until 'ferry rm' or 'ferry gc --untagged'",
        r.name,
        prev.short(),
        r.blake3.short(),
        r.kept_as.as_deref().unwrap_or("?")
    )
}
