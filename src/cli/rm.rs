//! `ferry rm`: its flags, and what it says it removed and what gc will free.

use indicatif::HumanBytes;
use serde::Serialize;

use super::Context;
use super::output::{print_json, say};
use crate::{Error, Result};

/// Flags of `ferry rm`.
#[derive(clap::Args)]
pub struct Args {
    /// Snapshots to remove
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
    /// Say what would be removed and freed, and change nothing
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

/// What `ferry rm` did.
#[derive(Serialize)]
struct Removed<'a> {
    removed: &'a [String],
    dry_run: bool,
    /// Chunks only these snapshots used, which `ferry gc` reclaims.
    chunks_freed_by_gc: u64,
    /// Their bytes in the data files.
    bytes_freed_by_gc: u64,
}

/// Removes the named snapshots (all or none); their chunks wait for gc.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let mut store = if a.dry_run {
        ctx.open()?
    } else {
        ctx.open_writer()?
    };
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for name in &a.names {
        match store.snapshot(name)? {
            Some(s) => {
                if !rows.contains(&s.rowid) {
                    rows.push(s.rowid);
                }
            }
            None => missing.push(name.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "no snapshot named {} in {}: nothing was removed ('ferry ls' lists them)",
            missing
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", "),
            ctx.dir.display()
        )));
    }
    let (chunks, bytes) = store.exclusive_use(&rows)?;
    if !a.dry_run {
        store.remove_snapshots(&rows)?;
    }
    if a.json {
        return print_json(&Removed {
            removed: &a.names,
            dry_run: a.dry_run,
            chunks_freed_by_gc: chunks,
            bytes_freed_by_gc: bytes,
        });
    }
    let verb = if a.dry_run { "would remove" } else { "removed" };
    say!(
        "{verb} {}; 'ferry gc' {} {} in {chunks} chunks only {} used",
        a.names.join(", "),
        if a.dry_run {
            "would then free"
        } else {
            "frees"
        },
        HumanBytes(bytes),
        if rows.len() == 1 { "it" } else { "they" }
    )
}
