//! `ferry completions`: the shell completion script for ferry's commands
//! and flags, on standard output.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::output::Stdout;
use crate::{Error, Result};

/// Flags of `ferry completions`.
#[derive(clap::Args)]
pub struct Args {
    /// The shell to complete for
    shell: Shell,
}

/// Prints the completion script for `a.shell`.
pub fn run(a: &Args) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut super::Cli::command(), "ferry", &mut script);
    Stdout::new()
        .write_all(&script)
        .map_err(|e| Error::io("writing the completion script", e))
}
