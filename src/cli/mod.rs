//! The `ferry` command line: the argument types, one module per
//! subcommand (its flags and how it prints), and the dispatch between them.
//! The engine's work is done by the library modules they call.

pub mod add;
pub mod bench;
pub mod checkout;
pub mod completions;
pub mod demo;
pub mod gc;
pub mod images;
pub mod inspect;
pub mod inventory;
pub mod key;
pub mod load;
pub mod ls;
pub mod man;
pub mod output;
pub mod pack;
pub mod peers;
pub mod plugin;
pub mod pull;
pub mod push;
pub mod rm;
pub mod save;
pub mod status;
pub mod trust;
pub mod unpack;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::Result;
use crate::store::{self, Store};
use output::Bar;

/// Move Docker images and large files across an air gap with the fewest bytes.
#[derive(Parser)]
#[command(name = "ferry", version, about, max_term_width = 100)]
pub struct Cli {
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
    Add(add::Args),
    /// Write a pack of snapshots, leaving out chunks the --base snapshots hold
    Pack(pack::Args),
    /// Verify a pack and import it into the store ('-' = stdin)
    Unpack(unpack::Args),
    /// Show what packs or volumes hold and what this store has of what they need (imports nothing)
    Inspect(inspect::Args),
    /// Write a snapshot out, byte-identical to what was added, and verify it
    Checkout(checkout::Args),
    /// Save images from the Docker daemon into the store (one snapshot; shared layers stored once)
    Save(save::Args),
    /// Load snapshots into the Docker daemon, verified before and confirmed after
    Load(load::Args),
    /// Pull images from a registry into the store, without a Docker daemon (one snapshot)
    Pull(pull::Args),
    /// Push a snapshot's images to a registry (blobs it has are skipped; manifests byte-exact)
    Push(push::Args),
    /// List the Docker daemon's images, marking those already in the store
    Images(images::Args),
    /// List the snapshots in the store
    Ls(ls::Args),
    /// Remove snapshots from the store (their chunks stay until 'ferry gc')
    Rm(rm::Args),
    /// Reclaim the space of chunks no snapshot needs, and of interrupted writes
    Gc(gc::Args),
    /// Compare what shipping NEW to a side that has OLD costs with ferry and
    /// with the usual tools (works in temporary stores; yours is untouched)
    Bench(bench::Args),
    /// Show volume sets still waiting for volumes, and what they will add
    Status(status::Args),
    /// Write a checksummed summary of every chunk and snapshot in this store,
    /// for the sending side's 'ferry pack --have'
    Inventory(inventory::Args),
    /// List the peers packs were made for with --to, and what they hold
    Peers(peers::Args),
    /// Manage pack signing keys
    Key(key::Args),
    /// Manage the keys whose signed packs this store accepts
    Trust(trust::Args),
    /// Check the store: index against data files, recipes against chunks (--full: rehash every chunk)
    Verify(verify::Args),
    /// Run the whole flow on built-in sample images in a temporary directory
    Demo(demo::Args),
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell)
    Completions(completions::Args),
    /// Print ferry's manual page, or write every page into a directory with -o
    Man(man::Args),
    /// What the docker CLI asks a plugin (ferry linked as docker-ferry)
    #[command(name = plugin::METADATA, hide = true)]
    PluginMetadata,
}

/// What every subcommand gets from the global options.
pub struct Context {
    /// The store directory.
    pub dir: PathBuf,
    /// How long to wait for another process's store lock.
    pub lock_wait: Duration,
    /// The Docker daemon to talk to, if given.
    pub docker_host: Option<String>,
    /// Progress reporting.
    pub bar: Bar,
}

impl Context {
    /// Opens the store for reading.
    pub fn open(&self) -> Result<Store> {
        Store::open(&self.dir)
    }

    /// Opens the store for writing, waiting for its lock as `--lock-wait` says.
    pub fn open_writer(&self) -> Result<Store> {
        Store::open_writer(&self.dir, self.lock_wait)
    }

    /// Connects to the Docker daemon.
    pub fn daemon(&self) -> Result<crate::docker::Daemon> {
        crate::docker::Daemon::connect(self.docker_host.as_deref())
    }
}

/// Runs the command `cli` describes.
pub fn run(cli: Cli) -> Result<()> {
    let ctx = Context {
        dir: cli.store.unwrap_or_else(store::default_dir),
        lock_wait: Duration::from_secs(cli.lock_wait),
        docker_host: cli.docker_host,
        bar: Bar::new(cli.quiet),
    };
    match &cli.cmd {
        Cmd::Add(a) => add::run(a, &ctx),
        Cmd::Pack(a) => pack::run(a, &ctx),
        Cmd::Unpack(a) => unpack::run(a, &ctx),
        Cmd::Inspect(a) => inspect::run(a, &ctx),
        Cmd::Checkout(a) => checkout::run(a, &ctx),
        Cmd::Save(a) => save::run(a, &ctx),
        Cmd::Load(a) => load::run(a, &ctx),
        Cmd::Pull(a) => pull::run(a, &ctx),
        Cmd::Push(a) => push::run(a, &ctx),
        Cmd::Images(a) => images::run(a, &ctx),
        Cmd::Ls(a) => ls::run(a, &ctx),
        Cmd::Rm(a) => rm::run(a, &ctx),
        Cmd::Gc(a) => gc::run(a, &ctx),
        Cmd::Bench(a) => bench::run(a, &ctx),
        Cmd::Status(a) => status::run(a, &ctx),
        Cmd::Inventory(a) => inventory::run(a, &ctx),
        Cmd::Peers(a) => peers::run(a, &ctx),
        Cmd::Key(a) => key::run(a),
        Cmd::Trust(a) => trust::run(a, &ctx),
        Cmd::Verify(a) => verify::run(a, &ctx),
        Cmd::Demo(a) => demo::run(a, &ctx),
        Cmd::Completions(a) => completions::run(a),
        Cmd::Man(a) => man::run(a),
        Cmd::PluginMetadata => plugin::print_metadata(),
    }
}
