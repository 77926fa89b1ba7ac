//! `ferry pull`: its flags and its report.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::HumanBytes;

use super::Context;
use super::output::{print_json, rate, say, short_id};
use crate::registry::{self, Platforms, Remote, RemoteOptions};
use crate::{Error, Result};

/// Flags of `ferry pull`.
#[derive(clap::Args)]
pub struct Args {
    /// Images to pull (REGISTRY/REPOSITORY:TAG or @sha256:DIGEST)
    #[arg(required = true)]
    references: Vec<String>,
    /// Snapshot name [default: the first image's tag]
    #[arg(long)]
    name: Option<String>,
    /// From a multi-platform image, take this platform (OS/ARCH[/VARIANT])
    /// [default: this machine's]
    #[arg(long, value_name = "OS/ARCH", conflicts_with = "all_platforms")]
    platform: Option<String>,
    /// From a multi-platform image, take every platform
    #[arg(long)]
    all_platforms: bool,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

/// How to reach a registry: `pull` and `push` share these.
#[derive(clap::Args)]
pub struct RemoteArgs {
    /// Registry user name (the password comes from --password-stdin);
    /// default: the credentials 'docker login' stored
    #[arg(long, requires = "password_stdin")]
    username: Option<String>,
    /// Read the password or token for --username from standard input
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// Talk plain HTTP to the registry (no TLS)
    #[arg(long)]
    insecure: bool,
    /// Also trust this CA certificate (PEM) for the registry's TLS
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

impl RemoteArgs {
    /// How to reach the registry: the transport flags and credentials.
    pub fn options(&self) -> Result<RemoteOptions> {
        Ok(RemoteOptions {
            insecure: self.insecure,
            ca_cert: self.ca_cert.clone(),
            username: self.username.clone(),
            password: if self.password_stdin {
                Some(read_password()?)
            } else {
                None
            },
        })
    }
}

/// One line of standard input, without its line end.
pub fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        Error::Invalid(format!("cannot read the password from standard input: {e}"))
    })?;
    let p = line.trim_end_matches(['\n', '\r']).to_string();
    if p.is_empty() {
        return Err(Error::Invalid(
            "--password-stdin read an empty password: pipe the password or token in".into(),
        ));
    }
    Ok(p)
}

/// Pulls the images into the store and reports what it added.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    let remote = Remote::new(&a.remote.options()?)?;
    let platforms = if a.all_platforms {
        Platforms::All
    } else {
        Platforms::One(a.platform.clone().unwrap_or_else(registry::host_platform))
    };
    let mut store = ctx.open_writer()?;
    let t = Instant::now();
    let r = registry::pull(
        &mut store,
        &remote,
        &a.references,
        a.name.clone(),
        &platforms,
        &ctx.bar,
    )?;
    if a.json {
        return print_json(&r);
    }
    let ids = r
        .images
        .iter()
        .map(|i| short_id(&i.id))
        .collect::<Vec<_>>()
        .join(", ");
    if r.add.unchanged {
        say!(
            "{}: already in the store with the same content ({ids}), nothing to do",
            r.add.name
        )
    } else {
        say!(
            "pulled {} ({ids}) as {}: {} blobs, {} in {} chunks, {} new ({} stored), {}",
            a.references.join(", "),
            r.add.name,
            r.blobs,
            HumanBytes(r.add.size),
            r.add.chunks,
            r.add.new_chunks,
            HumanBytes(r.add.new_bytes),
            rate(r.add.size, t)
        )?;
        super::add::tag_moved(&r.add)
    }
}
