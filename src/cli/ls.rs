//! `ferry ls`: its flags and its table.

use std::time::{Duration, UNIX_EPOCH};

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, say, short_id};
use crate::archive::image::ImageInfo;
use crate::store::{self, Store};
use crate::{Error, Result};

/// Flags of `ferry ls`.
#[derive(clap::Args)]
pub struct Args {
    /// Print as JSON
    #[arg(long)]
    json: bool,
}

/// Lists the store's snapshots (none for a store not made yet).
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let dir = &ctx.dir;
    let snaps = match Store::open(dir) {
        Ok(s) => s.snapshots()?,
        Err(Error::BadStore { .. }) if store::is_uninitialised(dir) => {
            store::check_damage(dir)?;
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    if a.json {
        return print_json(&serde_json::json!({ "store": dir, "snapshots": snaps }));
    }
    if snaps.is_empty() {
        return say!("no snapshots in {}", dir.display());
    }
    let w = snaps
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    say!(
        "{:<w$}  {:>11}  {:>11}  {:>11}  {:>7}  {:<20}  {:<12}  TAGS",
        "NAME",
        "SIZE",
        "STORED",
        "ADDED",
        "CHUNKS",
        "DATE",
        "IMAGE ID"
    )?;
    for s in &snaps {
        let when = UNIX_EPOCH + Duration::from_secs(s.added_at.max(0) as u64);
        let images = crate::docker::snapshot_images(s);
        say!(
            "{:<w$}  {:>11}  {:>11}  {:>11}  {:>7}  {:<20}  {:<12}  {}",
            s.name,
            HumanBytes(s.size).to_string(),
            HumanBytes(s.stored).to_string(),
            HumanBytes(s.new_bytes).to_string(),
            s.chunks,
            humantime::format_rfc3339_seconds(when).to_string(),
            ids(&images),
            tags(&images)
        )?;
    }
    Ok(())
}

/// The IMAGE ID cell: the first image's short ID, `+N` for the others.
fn ids(images: &[ImageInfo]) -> String {
    match images {
        [] => String::new(),
        [one] => short_id(&one.id),
        [first, rest @ ..] => format!("{}+{}", short_id(&first.id), rest.len()),
    }
}

/// The TAGS cell: every tag, or the first few and how many more.
fn tags(images: &[ImageInfo]) -> String {
    const SHOWN: usize = 4;
    let all: Vec<&str> = images
        .iter()
        .flat_map(|i| i.tags.iter().map(String::as_str))
        .collect();
    if all.len() <= SHOWN {
        return all.join(", ");
    }
    format!(
        "{}, +{} more",
        all[..SHOWN - 1].join(", "),
        all.len() - (SHOWN - 1)
    )
}
