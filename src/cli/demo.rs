//! `ferry demo`: its flags and where it works.

use std::io::Write;
use std::path::PathBuf;

use crate::output::Stdout;
use crate::{Error, Result};

/// Flags of `ferry demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Work in this directory and keep the files
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Runs the demo in `--dir` or a temporary directory removed afterwards.
pub fn run(a: &Args, ctx: &super::Context) -> Result<()> {
    let tmp;
    let work = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
            d.clone()
        }
        None => {
            tmp =
                tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?;
            tmp.path().to_path_buf()
        }
    };
    let mut out = Stdout::new();
    crate::demo::run(&work, &mut out, &ctx.bar)?;
    let _ = writeln!(out, "\ndemo finished: every step verified");
    Ok(())
}
