//! `ferry inspect`: its flags, and a short aligned block (or JSON) per
//! pack saying what it holds and what this store has of what it needs.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, say};
use crate::output::is_dash;
use crate::receive::PackInfo;
use crate::receive::inspect::{BaseInfo, SignerInfo, SnapshotInfo};
use crate::store::{self, Store};
use crate::{Error, Result};

/// Flags of `ferry inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// Pack files or volumes ('-' = stdin)
    #[arg(required = true)]
    packs: Vec<PathBuf>,
    /// Print as JSON (an array, one object per file)
    #[arg(long)]
    json: bool,
}

/// Reads every pack (verifying it) and prints what each holds.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let store = open_store(&ctx.dir)?;
    let mut infos = Vec::new();
    for pack in &a.packs {
        infos.push(inspect_one(pack, store.as_ref(), ctx)?);
    }
    if a.json {
        return print_json(&infos);
    }
    for (i, info) in infos.iter().enumerate() {
        if i > 0 {
            say!("")?;
        }
        block(info, &ctx.dir)?;
    }
    Ok(())
}

/// The store to compare with, for reading only; none when there is no
/// store yet.
fn open_store(dir: &Path) -> Result<Option<Store>> {
    match Store::open(dir) {
        Ok(s) => Ok(Some(s)),
        Err(Error::BadStore { .. }) if store::is_uninitialised(dir) => {
            store::check_damage(dir)?;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn inspect_one(pack: &Path, store: Option<&Store>, ctx: &Context) -> Result<PackInfo> {
    if is_dash(pack) {
        let stdin = BufReader::with_capacity(1 << 20, std::io::stdin().lock());
        return crate::receive::inspect::inspect(stdin, None, pack, store, &ctx.bar);
    }
    let f = crate::add::open_input(pack)?;
    let size = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
    let input = BufReader::with_capacity(1 << 20, f);
    crate::receive::inspect::inspect(input, size, pack, store, &ctx.bar)
}

/// Prints one pack's block: a label column, then its values.
fn block(p: &PackInfo, dir: &Path) -> Result<()> {
    let row = |label: &str, value: &str| say!("  {label:<10}  {value}");
    say!("{}", p.file)?;
    let created = UNIX_EPOCH + Duration::from_secs(p.created.max(0) as u64);
    row(
        "format",
        &format!(
            "version {}, written by {} at {}",
            p.version,
            p.writer,
            humantime::format_rfc3339_seconds(created)
        ),
    )?;
    if let Some(v) = &p.volume {
        row(
            "set",
            &format!(
                "{}: volume {} of {}{}",
                &v.set[..12],
                v.index,
                v.count,
                match v.received {
                    Some(true) => ", already unpacked here",
                    _ => "",
                }
            ),
        )?;
    }
    for (i, s) in p.snapshots.iter().enumerate() {
        row(if i == 0 { "snapshots" } else { "" }, &snapshot(s))?;
    }
    let mut size = format!(
        "{} in the pack ({} of chunk payloads, {} decoded)",
        HumanBytes(p.pack_bytes),
        HumanBytes(p.chunks.payload_bytes),
        HumanBytes(p.chunks.decoded_bytes),
    );
    let sizes: Vec<u64> = p.snapshots.iter().filter_map(|s| s.size).collect();
    if !sizes.is_empty() {
        let streams = HumanBytes(sizes.iter().sum());
        size.push_str(&format!("; snapshots {streams}"));
    }
    row("size", &size)?;
    let c = &p.chunks;
    let mut chunks = format!("{}: {} whole", c.total, c.whole);
    if c.blocks > 0 {
        let s = if c.blocks == 1 { "" } else { "s" };
        chunks.push_str(&format!(" ({} in {} solid block{s})", c.blocked, c.blocks));
    }
    chunks.push_str(&format!(", {} delta", c.delta));
    if c.groups > 0 {
        let s = if c.groups == 1 { "" } else { "s" };
        chunks.push_str(&format!(", {} in {} group{s}", c.grouped, c.groups));
    }
    row("chunks", &chunks)?;
    if p.bases.is_empty() {
        row("bases", "none (a full pack)")?;
    }
    for (i, b) in p.bases.iter().enumerate() {
        row(if i == 0 { "bases" } else { "" }, &base(b))?;
    }
    if p.inventory_chunks > 0 {
        row(
            "inventory",
            &format!(
                "{} chunks of the receiver's inventory{}",
                p.inventory_chunks,
                match p.inventory_missing {
                    Some(0) => ": all present".to_string(),
                    Some(n) => format!(": {n} missing"),
                    None => ": not checked".to_string(),
                }
            ),
        )?;
    }
    row("signer", &signer(p.signer.as_ref(), p.signature_required))?;
    if !p.encoders.is_empty() {
        row("encoders", &p.encoders.join(", "))?;
    }
    if p.chunker_matches == Some(false) {
        row(
            "chunker",
            &format!("{}: not this store's, unpack would refuse it", p.chunker),
        )?;
    }
    match &p.store {
        Some(s) => row("store", &format!("checked against {s}")),
        None => row(
            "store",
            &format!("not checked (no store at {})", dir.display()),
        ),
    }
}

fn snapshot(s: &SnapshotInfo) -> String {
    let mut out = s.name.clone();
    match s.size {
        Some(size) => out.push_str(&format!("  {}", HumanBytes(size))),
        None => out.push_str("  (its record travels in the set's last volume)"),
    }
    if !s.tags.is_empty() && s.tags != [s.name.clone()] {
        out.push_str(&format!("  tags {}", s.tags.join(", ")));
    }
    match &s.in_store {
        Some(names) if names.is_empty() => out.push_str("  new here"),
        Some(names) => out.push_str(&format!("  already here as {}", names.join(", "))),
        None => {}
    }
    out
}

fn base(b: &BaseInfo) -> String {
    format!(
        "{}  {}  blake3 {}  {}",
        b.name,
        HumanBytes(b.size),
        &b.blake3[..16],
        b.status.unwrap_or("not checked")
    )
}

fn signer(s: Option<&SignerInfo>, required: Option<bool>) -> String {
    match s {
        Some(s) => format!(
            "{} (signature {}; {})",
            &s.key[..16],
            s.signature,
            match (s.trusted, required) {
                (Some(true), _) => "trusted here",
                (Some(false), Some(true)) =>
                    "not trusted here, so unpack refuses it: 'ferry trust add KEY.pub' trusts it",
                (Some(false), _) =>
                    "not trusted here, where unsigned packs are accepted too: 'ferry trust add KEY.pub' trusts it",
                (None, _) => "trust not checked",
            }
        ),
        None if required == Some(true) => {
            "unsigned (this store accepts only signed packs)".to_string()
        }
        None => "unsigned".to_string(),
    }
}
