//! `ferry load`: its flags and its report.

use std::time::Instant;

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, rate, say, short_id};
use crate::Result;

/// Flags of `ferry load`.
#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to load
    #[arg(required = true)]
    snapshots: Vec<String>,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

/// Loads each snapshot into the daemon, reporting each as it is confirmed.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let store = ctx.open()?;
    for s in &a.snapshots {
        store.require(s)?;
    }
    let daemon = ctx.daemon()?;
    let mut reports = Vec::new();
    // Every snapshot is loaded even if the lines can no longer be printed.
    let mut printed = Ok(());
    for s in &a.snapshots {
        let t = Instant::now();
        let r = crate::docker::load(&store, &daemon, s, &ctx.bar)?;
        if !a.json {
            for i in &r.images {
                printed = printed.and_then(|()| say!(
                    "loaded {} into {}: image {} with tags {} confirmed ({} layers verified, {}, {})",
                    r.snapshot,
                    daemon.host(),
                    short_id(&i.id),
                    if i.tags.is_empty() {
                        "(none)".into()
                    } else {
                        i.tags.join(", ")
                    },
                    r.layers_verified,
                    HumanBytes(r.size),
                    rate(r.size, t)
                ));
            }
        }
        reports.push(r);
    }
    if a.json {
        print_json(&reports)?;
    }
    printed
}
