//! `ferry checkout`: its flags and its report (on stderr, since standard
//! output may carry the snapshot itself).

use std::path::PathBuf;
use std::time::Instant;

use indicatif::HumanBytes;

use super::Context;
use super::output::{note, rate};
use crate::Result;
use crate::output::is_dash;

/// Flags of `ferry checkout`.
#[derive(clap::Args)]
pub struct Args {
    /// Snapshot name
    snapshot: String,
    /// Output file ('-' = stdout)
    #[arg(short, long)]
    output: PathBuf,
}

/// Writes the snapshot out and reports it verified.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let store = ctx.open()?;
    let t = Instant::now();
    let snap = if is_dash(&a.output) {
        crate::checkout::checkout(&store, &a.snapshot, &mut crate::output::stream(), &ctx.bar)?
    } else {
        crate::checkout::checkout_to_path(&store, &a.snapshot, &a.output, &ctx.bar)?
    };
    note!(
        "checked out {} to {}: {}, blake3 {} verified, {}",
        snap.name,
        a.output.display(),
        HumanBytes(snap.size),
        snap.blake3.short(),
        rate(snap.size, t)
    );
    if let Some(c) = &snap.meta.compressed {
        note!(
            "note: {} was added from a {}-compressed file; this is the decompressed tar (docker load accepts it)",
            snap.name,
            c.format
        );
    }
    Ok(())
}
