//! `ferry status`: its flags, its list of waiting volume sets, and
//! `--discard`, which forgets one.

use super::Context;
use super::output::{print_json, say};
use crate::Result;
use crate::receive::WaitingSet;

/// Flags of `ferry status`.
#[derive(clap::Args)]
pub struct Args {
    /// Forget a waiting volume set: the set id status prints (at least 8
    /// hex digits) or 'all'; 'ferry gc' then reclaims its chunks
    #[arg(long, value_name = "SET")]
    discard: Option<String>,
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

/// Lists the volume sets still waiting for volumes, or discards one.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    if let Some(which) = &a.discard {
        return discard(which, a.json, ctx);
    }
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
            "set {}: {} waiting for volume {} of {} (have {})",
            &s.set[..12],
            s.snapshots.join(", "),
            list(&s.missing),
            s.count,
            list(&s.received),
        )?;
    }
    for (i, s) in sets.iter().enumerate() {
        let same: Vec<&str> = sets[i + 1..]
            .iter()
            .filter(|o| o.snapshots == s.snapshots)
            .map(|o| &o.set[..12])
            .collect();
        let first = !sets[..i].iter().any(|o| o.snapshots == s.snapshots);
        if first && !same.is_empty() {
            say!(
                "sets {} and {} carry the same snapshots (packed separately): keep the one you are moving, drop the other with 'ferry status --discard SET'",
                &s.set[..12],
                same.join(", ")
            )?;
        }
    }
    Ok(())
}

/// Forgets the sets `which` names and says what went.
fn discard(which: &str, json: bool, ctx: &Context) -> Result<()> {
    let mut store = ctx.open_writer()?;
    let gone: Vec<WaitingSet> = crate::receive::discard_sets(&mut store, which)?;
    if json {
        return print_json(&serde_json::json!({ "discarded": gone }));
    }
    if gone.is_empty() {
        return say!("nothing waiting: no volume set to discard");
    }
    for s in &gone {
        say!(
            "discarded set {} ({}; had volume {} of {}): its chunks are reclaimed by 'ferry gc'",
            &s.set[..12],
            s.snapshots.join(", "),
            list(&s.received),
            s.count
        )?;
    }
    Ok(())
}
