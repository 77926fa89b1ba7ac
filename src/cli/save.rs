//! `ferry save`: its flags and its report.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, rate, say, short_id};
use crate::docker::compose;
use crate::{Error, Result};

/// Flags of `ferry save`.
#[derive(clap::Args)]
pub struct Args {
    /// Images to save (name:tag or ID)
    #[arg(required_unless_present_any = ["compose", "images_from"])]
    images: Vec<String>,
    /// Also save every image a compose file names (services.*.image),
    /// variables resolved from the environment and a .env beside it;
    /// repeat for override files
    #[arg(long, value_name = "FILE")]
    compose: Vec<PathBuf>,
    /// Also save the images listed in FILE, one a line ('#' comments;
    /// '-' reads standard input)
    #[arg(long, value_name = "FILE")]
    images_from: Vec<PathBuf>,
    /// Snapshot name [default: the compose project name, else the first
    /// image's tag]
    #[arg(long)]
    name: Option<String>,
    /// Chunk the archive as one plain stream instead of splitting tars
    #[arg(long)]
    no_tar_split: bool,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

/// The references to save and the snapshot name, from the arguments, the
/// lists and the compose files (read before the daemon is asked anything).
fn references(a: &Args) -> Result<(Vec<String>, Option<String>)> {
    let mut refs = a.images.clone();
    for file in &a.images_from {
        refs.extend(compose::image_list(file)?);
    }
    let mut name = a.name.clone();
    if !a.compose.is_empty() {
        let stack = compose::read(&a.compose)?;
        for v in &stack.unset {
            eprintln!(
                "ferry: warning: the {v} variable is not set: it resolves to an empty string"
            );
        }
        refs.extend(stack.images);
        if name.is_none() {
            crate::add::validate_name(&stack.project)
                .map_err(|e| Error::Invalid(format!("compose project name: {e}; pass --name")))?;
            name = Some(stack.project);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    refs.retain(|r| seen.insert(r.clone()));
    Ok((refs, name))
}

/// Saves the images into the store and reports what it added.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let (images, name) = references(a)?;
    let daemon = ctx.daemon()?;
    let mut store = ctx.open_writer()?;
    let t = Instant::now();
    let r = crate::docker::save(
        &mut store,
        &daemon,
        &images,
        name,
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
            images.join(", "),
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
