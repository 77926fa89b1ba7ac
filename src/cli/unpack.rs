//! `ferry unpack`: its flags and its report.

use std::io::BufReader;
use std::path::PathBuf;

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, say};
use crate::Result;
use crate::output::is_dash;
use crate::receive::UnpackReport;

/// Flags of `ferry unpack`.
#[derive(clap::Args)]
pub struct Args {
    /// The pack file
    pack: PathBuf,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

/// Imports the pack and reports what it added.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let pack = &a.pack;
    let mut store;
    let r = if is_dash(pack) {
        store = ctx.open_writer()?;
        let stdin = std::io::stdin().lock();
        crate::receive::unpack(
            &mut store,
            BufReader::with_capacity(1 << 20, stdin),
            pack,
            &ctx.bar,
        )?
    } else {
        let f = crate::add::open_input(pack)?;
        store = ctx.open_writer()?;
        crate::receive::unpack_file(&mut store, f, pack, &ctx.bar)?
    };
    if a.json {
        return print_json(&r);
    }
    report(&r, pack)?;
    for m in &r.moved {
        say!(
            "{}: was {:.16}, now {:.16}; the old snapshot stays as {} until 'ferry rm' or 'ferry gc --untagged'",
            m.name,
            m.from,
            m.to,
            m.kept_as
        )?;
    }
    Ok(())
}

fn report(r: &UnpackReport, pack: &std::path::Path) -> Result<()> {
    if let Some(v) = r.volume.as_ref().filter(|v| v.already) {
        say!(
            "{}: volume {} of {} was imported before; {}",
            pack.display(),
            v.index,
            v.count,
            waiting(&v.missing)
        )
    } else if let Some(v) = r.volume.as_ref().filter(|v| !v.missing.is_empty()) {
        say!(
            "unpacked volume {} of {} ({}): {} chunks, {} new ({}); {}",
            v.index,
            v.count,
            pack.display(),
            r.chunks,
            r.new_chunks,
            HumanBytes(r.new_bytes),
            waiting(&v.missing)
        )
    } else {
        say!(
            "unpacked {}: {} chunks, {} new ({}); {}{}",
            pack.display(),
            r.chunks,
            r.new_chunks,
            HumanBytes(r.new_bytes),
            if r.added.is_empty() {
                "no new snapshots".to_string()
            } else {
                format!("added {}", r.added.join(", "))
            },
            if r.present.is_empty() {
                String::new()
            } else {
                format!("; already had {}", r.present.join(", "))
            }
        )
    }
}

/// "its snapshots appear once volume 2, 3 arrive" or "the set is complete".
fn waiting(missing: &[u32]) -> String {
    if missing.is_empty() {
        "the set is complete".into()
    } else {
        format!(
            "its snapshots appear once volume {} arrive{}",
            missing
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if missing.len() == 1 { "s" } else { "" }
        )
    }
}
