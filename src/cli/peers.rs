//! `ferry peers`: its flags and its table.

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, say};
use crate::Result;

/// Flags of `ferry peers`.
#[derive(clap::Args)]
pub struct Args {
    /// Print as JSON
    #[arg(long)]
    json: bool,
}

/// Lists the peers in the ledger.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let store = ctx.open()?;
    let peers = crate::inventory::peers(&store)?;
    if a.json {
        return print_json(&serde_json::json!({ "peers": peers }));
    }
    if peers.is_empty() {
        return say!("no peers: 'ferry pack ... --to NAME' records one");
    }
    say!(
        "{:<16}  {:<9}  {:>8}  {:>10}  SNAPSHOTS",
        "PEER",
        "SOURCE",
        "CHUNKS",
        "BYTES"
    )?;
    for p in &peers {
        say!(
            "{:<16}  {:<9}  {:>8}  {:>10}  {}",
            p.name,
            p.source,
            p.chunks,
            HumanBytes(p.bytes).to_string(),
            p.snapshots.join(", ")
        )?;
    }
    Ok(())
}
