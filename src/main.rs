//! The ferry command line: parses arguments, calls the library, prints.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use ferry::add::{AddOptions, Source};
use ferry::progress::Progress;
use ferry::send::PackOptions;
use ferry::store::{self, Store};
use ferry::{Error, Result};

/// Move Docker images and large files across an air gap with the fewest bytes.
#[derive(Parser)]
#[command(name = "ferry", version, about, max_term_width = 100)]
struct Cli {
    /// Store directory [default: $FERRY_STORE, else the XDG data dir]/ferry
    #[arg(long, global = true, env = "FERRY_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
    /// Wait up to this many seconds for another ferry process to release the store
    #[arg(long, global = true, default_value_t = 0, value_name = "SECONDS")]
    lock_wait: u64,
    /// No progress bars
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Docker daemon to talk to (unix:///path/docker.sock or tcp://host:port)
    #[arg(long, global = true, env = "DOCKER_HOST", value_name = "HOST")]
    docker_host: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Add a docker archive (.tar, .tar.gz, .tar.zst) or any file to the store ('-' = stdin)
    Add {
        /// The file to add, or '-' for standard input
        input: PathBuf,
        /// Snapshot name [default: the archive's first RepoTag, else the file name]
        #[arg(long)]
        name: Option<String>,
        /// Replace a snapshot of the same name that has other content
        #[arg(long)]
        replace: bool,
        /// Chunk the input as one plain stream instead of splitting tars
        /// into headers and per-file contents
        #[arg(long)]
        no_tar_split: bool,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Write a pack of snapshots, leaving out chunks the --base snapshots hold
    Pack {
        /// Snapshots to carry
        #[arg(required = true)]
        snapshots: Vec<String>,
        /// Snapshots the receiving side already has (repeatable)
        #[arg(long)]
        base: Vec<String>,
        /// Output file ('-' = stdout)
        #[arg(short, long, required_unless_present = "dry_run")]
        output: Option<PathBuf>,
        /// Only report what the pack would hold
        #[arg(long)]
        dry_run: bool,
        /// Split into volumes of at most this size (bytes, or K/M/G/T, or
        /// 'fat32' = 4 GiB - 1), written as OUTPUT.001, OUTPUT.002, ...
        #[arg(long, value_name = "SIZE")]
        volume_size: Option<String>,
        /// Leave out what the receiver's inventory (from 'ferry inventory') lists
        #[arg(long, value_name = "FILE")]
        have: Option<PathBuf>,
        /// Record in this store what peer NAME receives, and leave out what
        /// it is already known to hold
        #[arg(long, value_name = "NAME")]
        to: Option<String>,
        /// Sign the pack with this secret key (from 'ferry key generate')
        #[arg(long, value_name = "KEYFILE")]
        sign: Option<PathBuf>,
        /// Send new chunks whole, never as deltas against similar ones
        #[arg(long)]
        no_deltas: bool,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Verify a pack and import it into the store ('-' = stdin)
    Unpack {
        /// The pack file
        pack: PathBuf,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Write a snapshot out, byte-identical to what was added, and verify it
    Checkout {
        /// Snapshot name
        snapshot: String,
        /// Output file ('-' = stdout)
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Save images from the Docker daemon into the store (one snapshot; shared layers stored once)
    Save {
        /// Images to save (name:tag or ID)
        #[arg(required = true)]
        images: Vec<String>,
        /// Snapshot name [default: the first image's tag]
        #[arg(long)]
        name: Option<String>,
        /// Chunk the archive as one plain stream instead of splitting tars
        #[arg(long)]
        no_tar_split: bool,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// Load snapshots into the Docker daemon, verified before and confirmed after
    Load {
        /// Snapshots to load
        #[arg(required = true)]
        snapshots: Vec<String>,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// List the Docker daemon's images, marking those already in the store
    Images {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// List the snapshots in the store
    Ls {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Compare what shipping NEW to a side that has OLD costs with ferry and
    /// with the usual tools (works in temporary stores; yours is untouched)
    Bench {
        /// The old version: an archive file, a snapshot in the store, or docker:IMAGE
        old: String,
        /// The new version: an archive file, a snapshot in the store, or docker:IMAGE
        new: String,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
        /// Also write an SVG bar chart of the bytes shipped
        #[arg(long, value_name = "FILE")]
        chart: Option<PathBuf>,
    },
    /// Show volume sets still waiting for volumes, and what they will add
    Status {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Write a checksummed summary of every chunk and snapshot in this store,
    /// for the sending side's 'ferry pack --have'
    Inventory {
        /// Output file
        #[arg(short, long)]
        output: PathBuf,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    /// List the peers packs were made for with --to, and what they hold
    Peers {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Manage pack signing keys
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Manage the keys whose signed packs this store accepts
    Trust {
        #[command(subcommand)]
        cmd: TrustCmd,
    },
    /// Check the store: index against data files, recipes against chunks (--full: rehash every chunk)
    Verify {
        /// Also decode every chunk and check its BLAKE3
        #[arg(long)]
        full: bool,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Run the whole flow on built-in sample images in a temporary directory
    Demo {
        /// Work in this directory and keep the files
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Make an ed25519 key pair: the secret key in FILE (mode 0600), the public one in FILE.pub
    Generate {
        /// Secret key file to write
        #[arg(short, long)]
        output: PathBuf,
        /// Comment stored in the .pub file [default: the file name]
        #[arg(long)]
        comment: Option<String>,
    },
}

#[derive(Subcommand)]
enum TrustCmd {
    /// Accept packs signed by this public key; from then on unsigned packs are refused
    Add {
        /// A .pub file from 'ferry key generate'
        pubkey: PathBuf,
    },
    /// List trusted keys
    List {
        /// Print as JSON
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting a key (give the start of its hex, as 'trust list' shows it)
    Remove {
        /// Key prefix
        key: String,
    },
}

/// Progress through indicatif, drawn only when stderr is a terminal.
struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new(quiet: bool) -> Bar {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Bar {
            bar: ProgressBar::with_draw_target(None, target),
        }
    }
}

impl Progress for Bar {
    fn start(&self, what: &str, total: Option<u64>) {
        self.bar.reset();
        self.bar.set_length(total.unwrap_or(0));
        let style = if total.is_some() {
            "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{msg:>10} {spinner} {bytes} {bytes_per_sec}"
        };
        self.bar.set_style(
            ProgressStyle::with_template(style)
                .expect("template")
                .progress_chars("=> "),
        );
        self.bar.set_message(what.to_string());
    }
    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn store_dir(cli: &Cli) -> PathBuf {
    cli.store.clone().unwrap_or_else(store::default_dir)
}

fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("json"));
}

/// The 12-hex-digit form docker shows.
fn short_id(id: &str) -> String {
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

fn rate(bytes: u64, since: Instant) -> String {
    let secs = since.elapsed().as_secs_f64().max(1e-6);
    format!("{}/s", HumanBytes((bytes as f64 / secs) as u64))
}

fn run(cli: Cli) -> Result<()> {
    let dir = store_dir(&cli);
    let wait = Duration::from_secs(cli.lock_wait);
    let bar = Bar::new(cli.quiet);
    match &cli.cmd {
        Cmd::Add {
            input,
            name,
            replace,
            no_tar_split,
            json,
        } => {
            let source = if is_dash(input) {
                Source::Stdin
            } else {
                // Check the input before creating or locking a store.
                ferry::add::open_input(input)?;
                Source::Path(input.clone())
            };
            let mut store = Store::open_writer(&dir, wait)?;
            let t = Instant::now();
            let opts = AddOptions {
                name: name.clone(),
                replace: *replace,
                tar_split: !no_tar_split,
            };
            let r = ferry::add::add(&mut store, source, &opts, &bar)?;
            if *json {
                print_json(&r);
            } else if r.unchanged {
                println!(
                    "{}: already in the store with the same content, nothing to do",
                    r.name
                );
            } else {
                println!(
                    "added {}: {} in {} chunks, {} new ({} stored), {}{}",
                    r.name,
                    HumanBytes(r.size),
                    r.chunks,
                    r.new_chunks,
                    HumanBytes(r.new_bytes),
                    rate(r.size, t),
                    if r.replaced {
                        ", replacing the old snapshot"
                    } else {
                        ""
                    }
                );
                if r.compression != "none" {
                    println!(
                        "note: the input was {}-compressed; ferry stores and checks out the decompressed stream (docker load accepts it)",
                        r.compression
                    );
                }
            }
        }
        Cmd::Pack {
            snapshots,
            base,
            output,
            dry_run,
            volume_size,
            have,
            to,
            sign,
            no_deltas,
            json,
        } => {
            // Recording what a peer receives writes to the store.
            let mut store = if to.is_some() && !dry_run {
                Store::open_writer(&dir, wait)?
            } else {
                Store::open(&dir)?
            };
            let volume_size = volume_size
                .as_deref()
                .map(ferry::send::parse_size)
                .transpose()?;
            if volume_size.is_some() && output.as_deref().is_some_and(is_dash) {
                return Err(Error::Invalid(
                    "--volume-size writes files: give -o FILE, not '-'".into(),
                ));
            }
            let sign = sign.as_deref().map(ferry::keys::load_secret).transpose()?;
            let inventory = have
                .as_deref()
                .map(|p| ferry::inventory::read(p, &store))
                .transpose()?;
            let mut known: Option<std::collections::HashSet<ferry::chunker::ChunkId>> =
                inventory.as_ref().map(|i| i.chunks.clone());
            if let Some(peer) = to {
                if let Some(inv) = &inventory {
                    if !dry_run {
                        // The peer's own report replaces what we recorded.
                        store.write(|txn| ferry::inventory::record_inventory(txn, peer, inv))?;
                    }
                } else {
                    known = Some(ferry::inventory::peer_chunks(&store, peer)?);
                }
            }
            let opts = PackOptions {
                snapshots: snapshots.clone(),
                bases: base.clone(),
                have: known,
                volume_size,
                sign,
                no_deltas: *no_deltas,
            };
            let t = Instant::now();
            let mut written: Vec<PathBuf> = Vec::new();
            let report = if *dry_run {
                ferry::send::write_pack(&store, &opts, std::io::sink(), &bar)?.1
            } else {
                let out = output.as_ref().expect("clap requires -o");
                if is_dash(out) {
                    let stdout = std::io::stdout().lock();
                    ferry::send::write_pack(
                        &store,
                        &opts,
                        BufWriter::with_capacity(1 << 20, stdout),
                        &bar,
                    )?
                    .1
                } else {
                    let (paths, r) = write_pack_files(&store, &opts, out, &bar)?;
                    written = paths;
                    r
                }
            };
            if let (Some(peer), false) = (to, dry_run) {
                let snaps: Vec<(String, String)> = snapshots
                    .iter()
                    .map(|n| store.require(n).map(|s| (s.name, s.blake3)))
                    .collect::<Result<_>>()?;
                store.write(|txn| {
                    ferry::inventory::record_shipment(txn, peer, &report.receiver_chunks, &snaps)
                })?;
            }
            let to_stdout = output.as_deref().is_some_and(is_dash) && !dry_run;
            if *json && !to_stdout {
                let mut v = serde_json::to_value(&report).expect("report serializes");
                v["files"] = serde_json::json!(written);
                print_json(&v);
            } else {
                let target = if written.len() > 1 {
                    format!(
                        "{} volumes ({} .. {})",
                        written.len(),
                        written[0].display(),
                        written[written.len() - 1].display()
                    )
                } else {
                    output
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "pack".into())
                };
                let line = format!(
                    "{} {target}: {} ({} chunks, {} as deltas, {} already at the receiver) for {} of snapshots{}{}, {}",
                    if *dry_run { "would write" } else { "wrote" },
                    HumanBytes(report.totals.pack_bytes),
                    report.totals.chunks,
                    report.totals.delta_chunks,
                    report.skipped_chunks,
                    HumanBytes(report.logical_bytes),
                    if base.is_empty() {
                        String::new()
                    } else {
                        format!(" (delta against {})", base.join(", "))
                    },
                    if opts.sign.is_some() { ", signed" } else { "" },
                    rate(report.logical_bytes, t)
                );
                if to_stdout {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            }
        }
        Cmd::Unpack { pack, json } => {
            let mut store;
            let r = if is_dash(pack) {
                store = Store::open_writer(&dir, wait)?;
                let stdin = std::io::stdin().lock();
                ferry::receive::unpack(
                    &mut store,
                    BufReader::with_capacity(1 << 20, stdin),
                    pack,
                    &bar,
                )?
            } else {
                let f = ferry::add::open_input(pack)?;
                store = Store::open_writer(&dir, wait)?;
                ferry::receive::unpack(
                    &mut store,
                    BufReader::with_capacity(1 << 20, f),
                    pack,
                    &bar,
                )?
            };
            if *json {
                print_json(&r);
            } else if let Some(v) = r.volume.as_ref().filter(|v| v.already) {
                println!(
                    "{}: volume {} of {} was imported before; {}",
                    pack.display(),
                    v.index,
                    v.count,
                    waiting(&v.missing)
                );
            } else if let Some(v) = r.volume.as_ref().filter(|v| !v.missing.is_empty()) {
                println!(
                    "unpacked volume {} of {} ({}): {} chunks, {} new ({}); {}",
                    v.index,
                    v.count,
                    pack.display(),
                    r.chunks,
                    r.new_chunks,
                    HumanBytes(r.new_bytes),
                    waiting(&v.missing)
                );
            } else {
                println!(
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
                );
            }
        }
        Cmd::Checkout { snapshot, output } => {
            let store = Store::open(&dir)?;
            let t = Instant::now();
            let snap = if is_dash(output) {
                let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout());
                ferry::checkout::checkout(&store, snapshot, &mut out, &bar)?
            } else {
                ferry::checkout::checkout_to_path(&store, snapshot, output, &bar)?
            };
            eprintln!(
                "checked out {} to {}: {}, blake3 {} verified, {}",
                snap.name,
                output.display(),
                HumanBytes(snap.size),
                &snap.blake3[..16],
                rate(snap.size, t)
            );
            if let Some(c) = snap.meta.get("compressed").and_then(|c| c.get("format")) {
                eprintln!(
                    "note: {} was added from a {}-compressed file; this is the decompressed tar (docker load accepts it)",
                    snap.name,
                    c.as_str().unwrap_or("?")
                );
            }
        }
        Cmd::Save {
            images,
            name,
            no_tar_split,
            json,
        } => {
            let daemon = ferry::docker::Daemon::connect(cli.docker_host.as_deref())?;
            let mut store = Store::open_writer(&dir, wait)?;
            let t = Instant::now();
            let r = ferry::docker::save(
                &mut store,
                &daemon,
                images,
                name.clone(),
                !no_tar_split,
                &bar,
            )?;
            if *json {
                print_json(&r);
            } else if r.add.unchanged {
                println!(
                    "{}: already in the store with the same image ID ({}), nothing to do",
                    r.add.name,
                    short_id(&r.images[0].id)
                );
            } else {
                println!(
                    "saved {} ({}) as {}: {} in {} chunks, {} new ({} stored), {}",
                    images.join(", "),
                    r.images
                        .iter()
                        .map(|i| short_id(&i.id))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.add.name,
                    HumanBytes(r.add.size),
                    r.add.chunks,
                    r.add.new_chunks,
                    HumanBytes(r.add.new_bytes),
                    rate(r.add.size, t)
                );
            }
        }
        Cmd::Load { snapshots, json } => {
            let store = Store::open(&dir)?;
            for s in snapshots {
                store.require(s)?;
            }
            let daemon = ferry::docker::Daemon::connect(cli.docker_host.as_deref())?;
            let mut reports = Vec::new();
            for s in snapshots {
                let t = Instant::now();
                let r = ferry::docker::load(&store, &daemon, s, &bar)?;
                if !json {
                    for i in &r.images {
                        println!(
                            "loaded {} into {}: image {} with tags {} confirmed ({} layers verified, {}, {})",
                            r.snapshot,
                            daemon.host(),
                            short_id(&i.id),
                            if i.tags.is_empty() {
                                "(none)".into()
                            } else {
                                i.tags.join(", ")
                            },
                            r.layers_verified,
                            HumanBytes(r.size),
                            rate(r.size, t)
                        );
                    }
                }
                reports.push(r);
            }
            if *json {
                print_json(&reports);
            }
        }
        Cmd::Images { json } => {
            let daemon = ferry::docker::Daemon::connect(cli.docker_host.as_deref())?;
            let store = if dir.join("index.sqlite").exists() {
                Some(Store::open(&dir)?)
            } else {
                None
            };
            let rows = ferry::docker::images(&daemon, store.as_ref())?;
            if *json {
                print_json(&rows);
            } else {
                println!(
                    "{:<12}  {:>11}  {:<30}  IN STORE",
                    "IMAGE ID", "SIZE", "TAGS"
                );
                for r in &rows {
                    println!(
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
                    );
                }
            }
        }
        Cmd::Ls { json } => {
            let snaps = match Store::open(&dir) {
                Ok(s) => s.snapshots()?,
                Err(Error::BadStore { .. }) if store::is_uninitialised(&dir) => Vec::new(),
                Err(e) => return Err(e),
            };
            if *json {
                print_json(&serde_json::json!({ "store": dir, "snapshots": snaps }));
            } else if snaps.is_empty() {
                println!("no snapshots in {}", dir.display());
            } else {
                let w = snaps.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
                println!(
                    "{:<w$}  {:>11}  {:>11}  {:>7}  {:<20}  {:<12}  TAGS",
                    "NAME", "SIZE", "STORED", "CHUNKS", "ADDED", "IMAGE ID"
                );
                for s in &snaps {
                    let added =
                        std::time::UNIX_EPOCH + Duration::from_secs(s.added_at.max(0) as u64);
                    let images = ferry::docker::snapshot_images(s);
                    println!(
                        "{:<w$}  {:>11}  {:>11}  {:>7}  {:<20}  {:<12}  {}",
                        s.name,
                        HumanBytes(s.size).to_string(),
                        HumanBytes(s.stored).to_string(),
                        s.chunks,
                        humantime::format_rfc3339_seconds(added).to_string(),
                        images
                            .iter()
                            .map(|i| short_id(&i.id))
                            .collect::<Vec<_>>()
                            .join(","),
                        images
                            .iter()
                            .flat_map(|i| i.tags.iter().cloned())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
        }
        Cmd::Bench {
            old,
            new,
            json,
            chart,
        } => {
            let tmp =
                tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?;
            let old_path = bench_input(&cli, &dir, old, tmp.path(), "old", &bar)?;
            let new_path = bench_input(&cli, &dir, new, tmp.path(), "new", &bar)?;
            let r = ferry::bench::bench(&old_path, &new_path, old, new, tmp.path(), &bar)?;
            if let Some(c) = chart {
                ferry::bench::chart(&r, c)?;
            }
            if *json {
                print_json(&r);
            } else {
                print_bench(&r);
                if let Some(c) = chart {
                    println!("\nchart: {}", c.display());
                }
            }
        }
        Cmd::Status { json } => {
            let store = Store::open(&dir)?;
            let sets = ferry::receive::waiting_sets(&store)?;
            if *json {
                print_json(&serde_json::json!({ "waiting": sets }));
            } else if sets.is_empty() {
                println!("nothing waiting: every volume set unpacked here is complete");
            } else {
                for s in &sets {
                    println!(
                        "{} waiting for volume {} of {} (have {}; set {})",
                        s.snapshots.join(", "),
                        s.missing
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        s.count,
                        s.received
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        &s.set[..12]
                    );
                }
            }
        }
        Cmd::Inventory { output, json } => {
            let store = Store::open(&dir)?;
            let mut partial = output.as_os_str().to_os_string();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            let mut f = File::create(&partial)
                .map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;
            let r = ferry::inventory::write(&store, &mut f)
                .and_then(|r| {
                    f.sync_all()
                        .map_err(|e| Error::io(format!("syncing {}", partial.display()), e))?;
                    std::fs::rename(&partial, output)
                        .map_err(|e| Error::io(format!("renaming to {}", output.display()), e))?;
                    Ok(r)
                })
                .inspect_err(|_| {
                    let _ = std::fs::remove_file(&partial);
                })?;
            if *json {
                print_json(&r);
            } else {
                println!(
                    "wrote {}: {} chunks and {} snapshots in {}; give it to the sending side for 'ferry pack --have {}'",
                    output.display(),
                    r.chunks,
                    r.snapshots,
                    HumanBytes(r.bytes),
                    output.display()
                );
            }
        }
        Cmd::Peers { json } => {
            let store = Store::open(&dir)?;
            let peers = ferry::inventory::peers(&store)?;
            if *json {
                print_json(&serde_json::json!({ "peers": peers }));
            } else if peers.is_empty() {
                println!("no peers: 'ferry pack ... --to NAME' records one");
            } else {
                println!(
                    "{:<16}  {:<9}  {:>8}  {:>10}  SNAPSHOTS",
                    "PEER", "SOURCE", "CHUNKS", "BYTES"
                );
                for p in &peers {
                    println!(
                        "{:<16}  {:<9}  {:>8}  {:>10}  {}",
                        p.name,
                        p.source,
                        p.chunks,
                        HumanBytes(p.bytes).to_string(),
                        p.snapshots.join(", ")
                    );
                }
            }
        }
        Cmd::Key {
            cmd: KeyCmd::Generate { output, comment },
        } => {
            let comment = comment.clone().unwrap_or_else(|| {
                output
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let key = ferry::keys::generate(output, &comment)?;
            println!(
                "wrote secret key {} (keep it on the sending side) and public key {} (trust it on the receiving side: ferry trust add {}); key {}",
                output.display(),
                ferry::keys::public_path(output).display(),
                ferry::keys::public_path(output).display(),
                &ferry::hex(key.as_bytes())[..16]
            );
        }
        Cmd::Trust { cmd } => match cmd {
            TrustCmd::Add { pubkey } => {
                let (key, comment) = ferry::keys::load_public(pubkey)?;
                let mut store = Store::open_writer(&dir, wait)?;
                let new = store.write(|txn| ferry::keys::trust(txn, &key, &comment))?;
                println!(
                    "{} key {} ({comment}); unsigned packs and packs signed by other keys are now refused",
                    if new { "trusting" } else { "already trusted:" },
                    &ferry::hex(key.as_bytes())[..16]
                );
            }
            TrustCmd::List { json } => {
                let keys = match Store::open(&dir) {
                    Ok(s) => ferry::keys::trusted(&s)?,
                    Err(Error::BadStore { .. }) if !dir.join("index.sqlite").exists() => Vec::new(),
                    Err(e) => return Err(e),
                };
                if *json {
                    print_json(&serde_json::json!({ "keys": keys }));
                } else if keys.is_empty() {
                    println!("no trusted keys: any pack is accepted, signed or not");
                } else {
                    for k in &keys {
                        println!("{}  {}", ferry::hex(&k.key), k.comment);
                    }
                }
            }
            TrustCmd::Remove { key } => {
                let mut store = Store::open_writer(&dir, wait)?;
                let k = store.write(|txn| ferry::keys::untrust(txn, key))?;
                println!(
                    "no longer trusting {} ({})",
                    &ferry::hex(&k.key)[..16],
                    k.comment
                );
            }
        },
        Cmd::Verify { full, json } => {
            if store::is_uninitialised(&dir) {
                if *json {
                    print_json(&ferry::verify::VerifyReport::default());
                } else {
                    println!("store ok: {} holds nothing yet", dir.display());
                }
                return Ok(());
            }
            let store = Store::open(&dir)?;
            let r = ferry::verify::verify(&store, *full, &bar)?;
            if *json {
                print_json(&r);
            } else {
                for b in &r.bad_chunks {
                    println!(
                        "damaged chunk {} in data file {:08}.dat: {}",
                        b.id, b.file, b.problem
                    );
                }
                for (name, problems) in &r.problems {
                    println!("snapshot {name}: {}", problems.join("; "));
                }
                if r.ok() {
                    println!(
                        "store ok: {} chunks ({}){}, {} snapshots",
                        r.chunks,
                        HumanBytes(r.bytes),
                        if *full { " rehashed" } else { " located" },
                        r.snapshots
                    );
                }
            }
            if !r.ok() {
                let names: Vec<&str> = r.problems.keys().map(String::as_str).collect();
                return Err(Error::BadStore {
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
                });
            }
        }
        Cmd::Demo { dir: demo_dir } => {
            let tmp;
            let work = match demo_dir {
                Some(d) => {
                    std::fs::create_dir_all(d)
                        .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
                    d.clone()
                }
                None => {
                    tmp = tempfile::tempdir()
                        .map_err(|e| Error::io("creating a temporary directory", e))?;
                    tmp.path().to_path_buf()
                }
            };
            let mut out = std::io::stdout().lock();
            ferry::demo::run(&work, &mut out)?;
            let _ = writeln!(out, "\ndemo finished: every step verified");
        }
    }
    Ok(())
}

/// A bench input as an archive file: a file as it is, a snapshot checked
/// out of the store, or an image saved from the Docker daemon.
fn bench_input(
    cli: &Cli,
    dir: &Path,
    what: &str,
    tmp: &Path,
    tag: &str,
    bar: &Bar,
) -> Result<PathBuf> {
    let out = tmp.join(format!("{tag}.tar"));
    if let Some(image) = what.strip_prefix("docker:") {
        let daemon = ferry::docker::Daemon::connect(cli.docker_host.as_deref())?;
        let mut store = Store::open_writer(&tmp.join(format!("docker-{tag}")), Duration::ZERO)?;
        let r = ferry::docker::save(&mut store, &daemon, &[image.to_string()], None, true, bar)?;
        ferry::checkout::checkout_to_path(&store, &r.add.name, &out, bar)?;
        return Ok(out);
    }
    let p = Path::new(what);
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    match Store::open(dir) {
        Ok(store) if store.snapshot(what)?.is_some() => {
            ferry::checkout::checkout_to_path(&store, what, &out, bar)?;
            Ok(out)
        }
        _ => Err(Error::Invalid(format!(
            "'{what}' is neither a file, nor a snapshot in {}, nor docker:IMAGE",
            dir.display()
        ))),
    }
}

fn print_bench(r: &ferry::bench::BenchReport) {
    println!("shipping {} to a side that has {}:\n", r.new, r.old);
    println!(
        "{:<36} {:>14} {:>8} {:>9} {:>9}",
        "method", "bytes", "% full", "time", "unpack"
    );
    let t = |s: Option<f64>| s.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into());
    for row in &r.rows {
        println!(
            "{:<36} {:>14} {:>7.2}% {:>9} {:>9}",
            row.method,
            row.bytes,
            row.percent,
            t(row.seconds),
            t(row.unpack_seconds)
        );
    }
    let b = &r.breakdown;
    println!(
        "\nferry's bytes: {} new file contents, {} in {} similarity deltas, {} tar headers, {} plain streams, {} deflate re-creation data, {} recipes and framing",
        HumanBytes(b.contents),
        HumanBytes(b.deltas),
        b.delta_chunks,
        HumanBytes(b.headers),
        HumanBytes(b.raw),
        HumanBytes(b.deflate),
        HumanBytes(b.recipes_and_framing)
    );
    for (title, list) in [("layers", &r.top_layers), ("paths", &r.top_paths)] {
        if list.is_empty() {
            continue;
        }
        println!("\ntop {title} by bytes shipped:");
        for s in list {
            println!("  {:>11}  {}", HumanBytes(s.bytes).to_string(), s.name);
        }
    }
}

/// "waiting for volumes 2, 3" or "the set is complete".
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

/// Writes a pack to `path` (or volumes `path.001`, `path.002`, ... with
/// `--volume-size`), each through `<file>.partial`, renamed into place once
/// complete. On failure no output file is left behind.
fn write_pack_files(
    store: &Store,
    opts: &PackOptions,
    path: &Path,
    bar: &Bar,
) -> Result<(Vec<PathBuf>, ferry::send::PackReport)> {
    let volumes = opts.volume_size.is_some();
    let name = |i: u32, n: u32| -> PathBuf {
        if !volumes {
            return path.to_path_buf();
        }
        let width = n.to_string().len().max(3);
        let mut p = path.as_os_str().to_os_string();
        p.push(format!(".{i:0width$}"));
        PathBuf::from(p)
    };
    let partial = |p: &Path| -> PathBuf {
        let mut s = p.as_os_str().to_os_string();
        s.push(".partial");
        PathBuf::from(s)
    };
    let mut opened: Vec<PathBuf> = Vec::new();
    let result = ferry::send::write_volumes(
        store,
        opts,
        &mut |i, n| {
            let final_path = name(i, n);
            let tmp = partial(&final_path);
            let f = File::create(&tmp)
                .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
            opened.push(final_path);
            Ok(BufWriter::with_capacity(1 << 20, f))
        },
        bar,
    )
    .and_then(|(outs, r)| {
        for (w, p) in outs.into_iter().zip(&opened) {
            let tmp = partial(p);
            let f = w
                .into_inner()
                .map_err(|e| Error::io(format!("writing {}", tmp.display()), e.into_error()))?;
            f.sync_all()
                .map_err(|e| Error::io(format!("syncing {}", tmp.display()), e))?;
        }
        for p in &opened {
            std::fs::rename(partial(p), p)
                .map_err(|e| Error::io(format!("renaming to {}", p.display()), e))?;
        }
        Ok(r)
    });
    match result {
        Ok(r) => Ok((opened, r)),
        Err(e) => {
            for p in &opened {
                let _ = std::fs::remove_file(partial(p));
            }
            Err(e)
        }
    }
}
