//! `ferry key`: its subcommands and what they print.

use std::path::PathBuf;

use clap::Subcommand;

use super::output::say;
use crate::Result;
use crate::keys::public_path;

/// Flags of `ferry key`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: KeyCmd,
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

/// Runs the key subcommand.
pub fn run(a: &Args) -> Result<()> {
    let KeyCmd::Generate { output, comment } = &a.cmd;
    let comment = comment.clone().unwrap_or_else(|| {
        output
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let key = crate::keys::generate(output, &comment)?;
    say!(
        "wrote secret key {} (keep it on the sending side) and public key {} (trust it on the receiving side: ferry trust add {}); key {}",
        output.display(),
        public_path(output).display(),
        public_path(output).display(),
        &crate::hex(key.as_bytes())[..16]
    )
}
