//! `ferry trust`: its subcommands and what they print.

use std::path::PathBuf;

use clap::Subcommand;

use super::Context;
use super::output::{print_json, say};
use crate::store::Store;
use crate::{Error, Result};

/// Flags of `ferry trust`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: TrustCmd,
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

/// Runs the trust subcommand.
pub fn run(a: &Args, ctx: &Context) -> Result<()> {
    match &a.cmd {
        TrustCmd::Add { pubkey } => {
            let (key, comment) = crate::keys::load_public(pubkey)?;
            let mut store = ctx.open_writer()?;
            let new = store.write(|txn| crate::keys::trust(txn, &key, &comment))?;
            say!(
                "{} key {} ({comment}); unsigned packs and packs signed by other keys are now refused",
                if new { "trusting" } else { "already trusted:" },
                &crate::hex(key.as_bytes())[..16]
            )
        }
        TrustCmd::List { json } => {
            let keys = match Store::open(&ctx.dir) {
                Ok(s) => crate::keys::trusted(&s)?,
                Err(Error::BadStore { .. }) if !ctx.dir.join("index.sqlite").exists() => Vec::new(),
                Err(e) => return Err(e),
            };
            if *json {
                return print_json(&serde_json::json!({ "keys": keys }));
            }
            if keys.is_empty() {
                return say!("no trusted keys: any pack is accepted, signed or not");
            }
            for k in &keys {
                say!("{}  {}", crate::hex(&k.key), k.comment)?;
            }
            Ok(())
        }
        TrustCmd::Remove { key } => {
            let mut store = ctx.open_writer()?;
            let k = store.write(|txn| crate::keys::untrust(txn, key))?;
            say!(
                "no longer trusting {} ({})",
                &crate::hex(&k.key)[..16],
                k.comment
            )
        }
    }
}
