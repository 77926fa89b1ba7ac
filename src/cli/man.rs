//! `ferry man`: ferry's manual pages (roff), `ferry.1` on standard output
//! or, with `-o DIR`, `ferry.1` and one page per subcommand in DIR.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::Man;

use super::output::say;
use crate::output::{AtomicFile, Stdout};
use crate::{Error, Result};

/// Flags of `ferry man`.
#[derive(clap::Args)]
pub struct Args {
    /// Write ferry.1 and a page per subcommand (ferry-add.1, ...) into this
    /// directory (made if missing) instead of printing ferry.1
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
}

/// Prints ferry.1, or writes every page into `-o DIR`.
pub fn run(a: &Args) -> Result<()> {
    // `ferry help` is what --help prints: no page of its own.
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = &a.output else {
        let mut page = Vec::new();
        render(&cmd, &mut page)?;
        return Stdout::new()
            .write_all(&page)
            .map_err(|e| Error::io("writing the manual page", e));
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut files = Vec::new();
    write_pages(&cmd, dir, &mut files)?;
    let written = AtomicFile::commit_all(files)?;
    say!("wrote {} manual pages in {}", written.len(), dir.display())
}

/// Renders the page of `cmd` (and, through clap_mangen, its subcommand
/// list) into `out`.
fn render(cmd: &clap::Command, out: &mut Vec<u8>) -> Result<()> {
    Man::new(cmd.clone())
        .render(out)
        .map_err(|e| Error::io("rendering a manual page", e))
}

/// Starts a page file in `dir` for `cmd` and each of its visible
/// subcommands, depth first.
fn write_pages(cmd: &clap::Command, dir: &Path, files: &mut Vec<AtomicFile>) -> Result<()> {
    let man = Man::new(cmd.clone());
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    render(cmd, &mut page)?;
    let mut file = AtomicFile::create(&path)?;
    file.write_all(&page)
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    files.push(file);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, files)?;
    }
    Ok(())
}
