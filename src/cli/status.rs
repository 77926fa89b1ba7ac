//! `ferry status`: its flags and its list of waiting volume sets.

use super::Context;
use super::output::{print_json, say};
use crate::Result;

/// Flags of `ferry status`.
#[derive(clap::Args)]
pub struct Args {
    /// Print as JSON
    #[arg(long)]
    json: bool,
}

fn list(numbers: &[u32]) -> String {
    numbers
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lists the volume sets still waiting for volumes.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let store = ctx.open()?;
    let sets = crate::receive::waiting_sets(&store)?;
    if a.json {
        return print_json(&serde_json::json!({ "waiting": sets }));
    }
    if sets.is_empty() {
        return say!("nothing waiting: every volume set unpacked here is complete");
    }
    for s in &sets {
        say!(
            "{} waiting for volume {} of {} (have {}; set {})",
            s.snapshots.join(", "),
            list(&s.missing),
            s.count,
            list(&s.received),
            &s.set[..12]
        )?;
    }
    Ok(())
}
