//! `ferry verify`: its flags, its report, and the exit status it implies.

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, say};
use crate::store;
use crate::verify::VerifyReport;
use crate::{Error, Result};

/// Flags of `ferry verify`.
#[derive(clap::Args)]
pub struct Args {
    /// Also decode every chunk and check its BLAKE3
    #[arg(long)]
    full: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

/// Checks the store; fails, naming what is damaged, unless it is sound.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let dir = &ctx.dir;
    if store::is_uninitialised(dir) {
        store::check_damage(dir)?;
        if !dir.is_dir() {
            // A mistyped --store: say so rather than call nothing sound.
            return ctx.open().map(|_| ());
        }
        if a.json {
            return print_json(&VerifyReport::default());
        }
        return say!("store ok: {} holds nothing yet", dir.display());
    }
    let store = ctx.open()?;
    let r = crate::verify::verify(&store, a.full, &ctx.bar)?;
    let printed = if a.json {
        print_json(&r)
    } else {
        report(&r, a.full)
    };
    if r.ok() {
        return printed;
    }
    // A damaged store fails even if no one read the report.
    let names: Vec<&str> = r.problems.keys().map(String::as_str).collect();
    Err(Error::BadStore {
        store: dir.clone(),
        msg: format!(
            "{} damaged chunks; snapshots affected: {}. Check the disk, then add or unpack those snapshots into a new store",
            r.bad_chunks.len(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ),
    })
}

fn report(r: &VerifyReport, full: bool) -> Result<()> {
    for b in &r.bad_chunks {
        say!(
            "damaged chunk {} in data file {:08}.dat: {}",
            b.id,
            b.file,
            b.problem
        )?;
    }
    for (name, problems) in &r.problems {
        say!("snapshot {name}: {}", problems.join("; "))?;
    }
    if r.ok() {
        say!(
            "store ok: {} chunks ({}){}, {} snapshots",
            r.chunks,
            HumanBytes(r.bytes),
            if full { " rehashed" } else { " located" },
            r.snapshots
        )?;
    }
    Ok(())
}
