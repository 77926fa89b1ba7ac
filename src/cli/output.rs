//! What every subcommand shares for output: the progress bar, lines and
//! JSON on standard output, and the short forms of ids, sizes and rates.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::time::Instant;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{Error, Result};
use crate::output::Stdout;
use crate::progress::Progress;

/// Prints one line on standard output, like `println!`, but returns an
/// error instead of panicking when the output is closed.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// Prints one line on standard error, like `eprintln!`, but never panics:
/// a report for people whose reader went away is no reason to fail.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::cli::output::note_line(format_args!($($arg)*))
    };
}
pub(crate) use note;

/// Writes `args` and a newline to standard error in one write, ignoring
/// a closed standard error.
pub fn note_line(args: fmt::Arguments<'_>) {
    let mut text = args.to_string();
    text.push('\n');
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Writes `args` and a newline to standard output in one write.
pub fn line(args: fmt::Arguments<'_>) -> Result<()> {
    let mut text = args.to_string();
    text.push('\n');
    Stdout::new()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("writing output", e))
}

/// Prints `v` as pretty JSON on standard output.
pub fn print_json(v: &impl serde::Serialize) -> Result<()> {
    say!("{}", serde_json::to_string_pretty(v).expect("json"))
}

/// The 12-hex-digit form docker shows.
pub fn short_id(id: &str) -> String {
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

/// `bytes` over the time since `since`, as "12.3 MiB/s".
pub fn rate(bytes: u64, since: Instant) -> String {
    let secs = since.elapsed().as_secs_f64().max(1e-6);
    format!("{}/s", HumanBytes((bytes as f64 / secs) as u64))
}

/// Progress through indicatif, drawn only when stderr is a terminal and
/// `--quiet` was not given. A phase with a total is a bar with an ETA; one
/// without is a spinner with the time elapsed (it ticks on its own, so a
/// phase that reports nothing for a while still shows it is alive). A
/// total that proves too small (an estimate) grows, so the bar never shows
/// more than 100%.
pub struct Bar {
    bar: ProgressBar,
    /// The phase's label, which a detail goes beside.
    label: std::sync::Mutex<String>,
}

impl Bar {
    /// A bar, hidden when `quiet` or when stderr is not a terminal.
    pub fn new(quiet: bool) -> Bar {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Bar {
            bar: ProgressBar::with_draw_target(None, target),
            label: std::sync::Mutex::new(String::new()),
        }
    }
}

impl Progress for Bar {
    fn start(&self, what: &str, total: Option<u64>) {
        self.bar.reset();
        self.bar.set_length(total.unwrap_or(0));
        let style = if total.is_some() {
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{msg} {spinner} {bytes} {bytes_per_sec} {elapsed}"
        };
        self.bar.set_style(
            ProgressStyle::with_template(style)
                .expect("template")
                .progress_chars("=> "),
        );
        self.bar.set_message(what.to_string());
        *self.label.lock().unwrap_or_else(|p| p.into_inner()) = what.to_string();
        if total.is_some() {
            self.bar.disable_steady_tick();
        } else {
            self.bar
                .enable_steady_tick(std::time::Duration::from_millis(120));
        }
    }
    fn advance(&self, bytes: u64) {
        let at = self.bar.position().saturating_add(bytes);
        if let Some(len) = self.bar.length()
            && len > 0
            && at > len
        {
            self.bar.set_length(at);
        }
        self.bar.inc(bytes);
    }
    fn finish(&self) {
        self.bar.disable_steady_tick();
        self.bar.finish_and_clear();
    }
    fn detail(&self, what: &str) {
        let label = self.label.lock().unwrap_or_else(|p| p.into_inner());
        self.bar.set_message(format!("{label}: {what}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_total_that_is_exceeded_grows() {
        let b = Bar::new(true);
        b.start("saving app:2 (estimated size)", Some(100));
        b.advance(60);
        assert_eq!(b.bar.length(), Some(100));
        b.advance(90);
        assert_eq!(b.bar.position(), 150);
        assert_eq!(b.bar.length(), Some(150), "the bar would show 150%");
        b.finish();
        // The next phase starts from its own total.
        b.start("verifying app:2", Some(40));
        assert_eq!((b.bar.position(), b.bar.length()), (0, Some(40)));
        b.finish();
    }

    #[test]
    fn a_phase_without_a_total_stays_a_spinner() {
        let b = Bar::new(true);
        b.start("daemon importing", None);
        b.advance(10);
        assert_eq!(b.bar.length(), Some(0), "a spinner was given a total");
        b.finish();
    }
}
