//! `ferry unpack`: its flags and its report.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, say};
use crate::output::is_dash;
use crate::receive::UnpackReport;
use crate::{Error, Result};

/// Flags of `ferry unpack`.
#[derive(clap::Args)]
pub struct Args {
    /// Pack files or volumes, in any order, or a directory (every *.ferry
    /// and *.ferry.NNN file in it, by name); '-' = stdin, alone
    #[arg(required = true, value_name = "PACK")]
    packs: Vec<PathBuf>,
    /// Print the result as JSON (an array when several files are given)
    #[arg(long)]
    json: bool,
}

/// Imports the packs one after the other and reports what each added.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    if let [pack] = a.packs.as_slice()
        && (is_dash(pack) || !pack.is_dir())
    {
        return one(pack, a.json, ctx);
    }
    if a.packs.iter().any(|p| is_dash(p)) {
        return Err(Error::Invalid(
            "'-' (standard input) is one pack: give it alone, not with files".into(),
        ));
    }
    let mut files = Vec::new();
    for p in &a.packs {
        if p.is_dir() {
            let found = packs_in(p)?;
            if !a.json {
                say!(
                    "{}: taking {}",
                    p.display(),
                    found
                        .iter()
                        .map(|f| f.file_name().unwrap_or_default().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
            }
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    // Every file opens before anything is imported: a typo changes nothing.
    let opened = files
        .iter()
        .map(|f| crate::add::open_input(f))
        .collect::<Result<Vec<_>>>()?;
    let mut store = ctx.open_writer()?;
    let mut reports = Vec::new();
    let mut sets: Vec<String> = Vec::new();
    for (i, (f, pack)) in opened.into_iter().zip(&files).enumerate() {
        let r = crate::receive::unpack_file(&mut store, f, pack, &ctx.bar)
            .map_err(|e| stopped(e, pack, i))?;
        if a.json {
            let mut v = serde_json::to_value(&r).expect("report serializes");
            v["file"] = serde_json::json!(pack);
            reports.push(v);
        } else {
            report(&r, pack)?;
            if let Some(v) = &r.volume {
                match sets.first() {
                    Some(first) if !sets.contains(&v.set) => say!(
                        "{}: a volume of set {}, not of set {} before it: the sets are separate ('ferry status' lists each)",
                        pack.display(),
                        &v.set[..12],
                        &first[..12]
                    )?,
                    _ => {}
                }
                if !sets.contains(&v.set) {
                    sets.push(v.set.clone());
                }
            }
        }
    }
    if a.json {
        return print_json(&reports);
    }
    Ok(())
}

/// The error of the file at `i` of several: naming the file, and what the
/// files before it did.
fn stopped(e: Error, pack: &Path, i: usize) -> Error {
    let name = pack.display().to_string();
    let text = e.to_string();
    let text = if text.contains(&name) {
        text
    } else {
        format!("{name}: {text}")
    };
    if i == 0 {
        return Error::Invalid(text);
    }
    Error::Invalid(format!(
        "{text} (stopped there; the {i} file{} before it stay imported)",
        if i == 1 { "" } else { "s" }
    ))
}

/// The pack files of `dir`: `*.ferry` and `*.ferry.NNN`, sorted by name.
fn packs_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let volume = name.rsplit_once('.').is_some_and(|(stem, n)| {
            stem.ends_with(".ferry") && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        });
        if (name.ends_with(".ferry") || volume) && entry.path().is_file() {
            found.push(entry.path());
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(Error::Invalid(format!(
            "{} holds no pack files (*.ferry or *.ferry.001, ...): give the files or the directory that holds them",
            dir.display()
        )));
    }
    Ok(found)
}

/// One pack (or standard input), reported as before.
fn one(pack: &Path, json: bool, ctx: &Context) -> Result<()> {
    let mut store;
    let r = if is_dash(pack) {
        store = ctx.open_writer()?;
        let stdin = std::io::stdin();
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
    if json {
        return print_json(&r);
    }
    report(&r, pack)
}

/// The report line of one pack, then the names it moved.
fn report(r: &UnpackReport, pack: &std::path::Path) -> Result<()> {
    report_line(r, pack)?;
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

fn report_line(r: &UnpackReport, pack: &std::path::Path) -> Result<()> {
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
            "unpacked volume {} of {} ({}): {} chunks, {} new ({}){}; {}",
            v.index,
            v.count,
            pack.display(),
            r.chunks,
            r.new_chunks,
            HumanBytes(r.new_bytes),
            if r.waiting_deltas > 0 {
                format!(
                    ", {} delta chunks kept until the volumes with their bases arrive",
                    r.waiting_deltas
                )
            } else {
                String::new()
            },
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
