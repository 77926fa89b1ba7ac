//! `ferry push`: its flags and its report.

use std::time::Instant;

use indicatif::HumanBytes;

use super::Context;
use super::output::{note, print_json, rate, say};
use super::pull::RemoteArgs;
use crate::Result;
use crate::registry::push::PushOptions;
use crate::registry::{self, Remote};

/// Flags of `ferry push`.
#[derive(clap::Args)]
pub struct Args {
    /// Snapshot (or an image tag inside one) to push
    name: String,
    /// REGISTRY/REPOSITORY[:TAG] to push to (for a snapshot of several
    /// images, REGISTRY[/PREFIX]) [default: where the images' tags point]
    reference: Option<String>,
    /// Push under this tag instead of the image's own (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

/// Pushes the snapshot's images and reports what went.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let remote = Remote::new(&a.remote.options()?)?;
    let store = ctx.open()?;
    let t = Instant::now();
    let opts = PushOptions {
        target: a.reference.clone(),
        tags: a.tags.clone(),
    };
    let r = registry::push(&store, &remote, &a.name, &opts, &ctx.bar)?;
    if a.json {
        return print_json(&r);
    }
    for n in &r.notes {
        note!("{n}");
    }
    say!(
        "pushed {} to {}: {} blobs sent ({}), {} already there, {}",
        r.snapshot,
        r.pushed
            .iter()
            .map(|p| format!("{} ({})", p.reference, &p.digest[..19]))
            .collect::<Vec<_>>()
            .join(", "),
        r.blobs_sent,
        HumanBytes(r.bytes_sent),
        r.blobs_skipped,
        rate(r.bytes_sent, t)
    )
}
