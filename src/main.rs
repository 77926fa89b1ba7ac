//! The ferry command line: parses arguments, hands them to
//! [`ferry::cli::run`], and turns the outcome into an exit status.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = ferry::cli::Cli::parse();
    match ferry::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of standard output went away (`ferry ls | head -1`):
        // nothing is left to say to anyone, and nothing went wrong.
        Err(e) if ferry::output::is_closed_stdout(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry: error: {e}");
            ExitCode::FAILURE
        }
    }
}
