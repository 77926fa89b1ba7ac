//! The ferry command line: parses arguments (as given, or as the docker CLI
//! passes them to ferry run as `docker ferry`), hands them to
//! [`ferry::cli::run`], and turns the outcome into an exit status.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let result = ferry::cli::plugin::args(std::env::args_os().collect())
        .and_then(|args| ferry::cli::run(ferry::cli::Cli::parse_from(args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of standard output went away (`ferry ls | head -1`):
        // nothing is left to say to anyone, and nothing went wrong.
        Err(e) if ferry::output::is_closed_stdout(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!, which panics when standard error is closed too.
            let _ = writeln!(std::io::stderr(), "ferry: error: {e}");
            ExitCode::FAILURE
        }
    }
}
