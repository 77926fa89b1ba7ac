//! `ferry gc`: its flags and its report of what was reclaimed.

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, say};
use crate::Result;
use crate::store::{GcOptions, GcReport};

/// Flags of `ferry gc`.
#[derive(clap::Args)]
pub struct Args {
    /// Rewrite a data file once at least this percentage of it is dead
    #[arg(long, default_value_t = 10, value_name = "PERCENT",
          value_parser = clap::value_parser!(u8).range(0..=100))]
    threshold: u8,
    /// Also reclaim chunks kept only because the peer ledger says a peer
    /// holds them (later packs for that peer ship them whole, not as deltas)
    #[arg(long)]
    ignore_peers: bool,
    /// Also remove snapshots whose name (tag) moved to newer content
    /// (listed as NAME@DIGEST)
    #[arg(long)]
    untagged: bool,
    /// Say what would be freed, and change nothing
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

/// Reclaims the space of chunks nothing needs.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let mut store = ctx.open_writer()?;
    let opts = GcOptions {
        threshold: a.threshold as f64 / 100.0,
        ignore_peers: a.ignore_peers,
        untagged: a.untagged,
        dry_run: a.dry_run,
    };
    let r = store.gc(opts, &ctx.bar)?;
    if a.json {
        return print_json(&r);
    }
    report(&r)
}

fn report(r: &GcReport) -> Result<()> {
    if !r.untagged_removed.is_empty() {
        say!(
            "{} untagged snapshots: {}",
            if r.dry_run { "would remove" } else { "removed" },
            r.untagged_removed.join(", ")
        )?;
    }
    if r.dead_chunks == 0 && r.files_removed == 0 && r.files_rewritten == 0 {
        say!(
            "nothing to reclaim: {} in {} data files, all needed",
            HumanBytes(r.bytes_after),
            r.files_after
        )?;
        return report_kept(r);
    }
    let verb = if r.dry_run { "would free" } else { "freed" };
    say!(
        "{verb} {} ({} → {} in data files): {} unneeded chunks ({}) dropped, {} data files removed, {} rewritten ({} of live chunks moved)",
        HumanBytes(r.freed),
        HumanBytes(r.bytes_before),
        HumanBytes(r.bytes_after),
        r.dead_chunks,
        HumanBytes(r.dead_bytes),
        r.files_removed,
        r.files_rewritten,
        HumanBytes(r.moved_bytes)
    )?;
    report_kept(r)
}

fn report_kept(r: &GcReport) -> Result<()> {
    let freed = if r.dry_run { "would be" } else { "were" };
    if r.peer_chunks_kept > 0 {
        say!(
            "kept {} chunks ({}) only peers hold, as delta bases for their next packs (--ignore-peers reclaims them)",
            r.peer_chunks_kept,
            HumanBytes(r.peer_bytes_kept)
        )?;
    }
    if r.files_left_for_readers > 0 {
        say!(
            "{} old data files {freed} left in place because other ferry processes are reading the store: the next 'ferry gc' removes them",
            r.files_left_for_readers
        )?;
    }
    Ok(())
}
