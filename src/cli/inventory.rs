//! `ferry inventory`: its flags and its report.

use std::path::PathBuf;

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, say};
use crate::Result;
use crate::output::AtomicFile;

/// Flags of `ferry inventory`.
#[derive(clap::Args)]
pub struct Args {
    /// Output file
    #[arg(short, long)]
    output: PathBuf,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

/// Writes the store's inventory file and reports its size.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let store = ctx.open()?;
    let mut f = AtomicFile::create(&a.output)?;
    let r = crate::inventory::write(&store, &mut f)?;
    f.commit()?;
    if a.json {
        return print_json(&r);
    }
    say!(
        "wrote {}: {} chunks and {} snapshots in {}; give it to the sending side for 'ferry pack --have {}'",
        a.output.display(),
        r.chunks,
        r.snapshots,
        HumanBytes(r.bytes),
        a.output.display()
    )
}
