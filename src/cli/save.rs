//! `ferry save`: its flags and its report.

use std::time::Instant;

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, rate, say, short_id};
use crate::Result;

/// Flags of `ferry save`.
#[derive(clap::Args)]
pub struct Args {
    /// Images to save (name:tag or ID)
    #[arg(required = true)]
    images: Vec<String>,
    /// Snapshot name [default: the first image's tag]
    #[arg(long)]
    name: Option<String>,
    /// Chunk the archive as one plain stream instead of splitting tars
    #[arg(long)]
    no_tar_split: bool,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

/// Saves the images into the store and reports what it added.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let daemon = ctx.daemon()?;
    let mut store = ctx.open_writer()?;
    let t = Instant::now();
    let r = crate::docker::save(
        &mut store,
        &daemon,
        &a.images,
        a.name.clone(),
        !a.no_tar_split,
        &ctx.bar,
    )?;
    if a.json {
        print_json(&r)
    } else if r.add.unchanged {
        say!(
            "{}: already in the store with the same image ID ({}), nothing to do",
            r.add.name,
            short_id(&r.images[0].id)
        )
    } else {
        say!(
            "saved {} ({}) as {}: {} in {} chunks, {} new ({} stored), {}",
            a.images.join(", "),
            r.images
                .iter()
                .map(|i| short_id(&i.id))
                .collect::<Vec<_>>()
                .join(", "),
            r.add.name,
            HumanBytes(r.add.size),
            r.add.chunks,
            r.add.new_chunks,
            HumanBytes(r.add.new_bytes),
            rate(r.add.size, t)
        )?;
        super::add::tag_moved(&r.add)
    }
}
