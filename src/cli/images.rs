//! `ferry images`: its flags and its table.

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, say, short_id};
use crate::Result;
use crate::store::Store;

/// Flags of `ferry images`.
#[derive(clap::Args)]
pub struct Args {
    /// Print as JSON
    #[arg(long)]
    json: bool,
}

/// Lists the daemon's images, marking those in the store.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let daemon = ctx.daemon()?;
    let store = if ctx.dir.join("index.sqlite").exists() {
        Some(Store::open(&ctx.dir)?)
    } else {
        None
    };
    let rows = crate::docker::images(&daemon, store.as_ref())?;
    if a.json {
        return print_json(&rows);
    }
    say!(
        "{:<12}  {:>11}  {:<30}  IN STORE",
        "IMAGE ID",
        "SIZE",
        "TAGS"
    )?;
    for r in &rows {
        say!(
            "{:<12}  {:>11}  {:<30}  {}",
            short_id(&r.id),
            HumanBytes(r.size.max(0) as u64).to_string(),
            if r.tags.is_empty() {
                "<none>".to_string()
            } else {
                r.tags.join(", ")
            },
            if r.in_store.is_empty() {
                "-".to_string()
            } else {
                r.in_store.join(", ")
            }
        )?;
    }
    Ok(())
}
