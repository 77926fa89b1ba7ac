//! Where command output goes: files written whole or not at all (a
//! `<name>.partial` beside the target, synced, then renamed into place),
//! or standard output for `-`, noting when its reader has gone away.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, IoContext, Result};

/// Buffer size for output files and standard output.
const BUFFER: usize = 1 << 20;

/// Set once a write to standard output failed because its reader closed
/// the pipe.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether `p` is `-`, the name for standard output (or input).
pub fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// True once standard output's reader has closed the pipe: what was left
/// to write has no one to read it, which is not a failure of ferry.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Whether `e` is standard output's reader having closed the pipe: a
/// broken pipe somewhere in its causes, after a write to standard output
/// met one. A broken pipe elsewhere (a daemon that stopped reading) is a
/// real failure and does not count.
pub fn is_closed_stdout(e: &Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
        {
            return stdout_closed();
        }
        cause = c.source();
    }
    false
}

/// Standard output that notes a closed pipe (see [`stdout_closed`]).
pub struct Stdout(io::Stdout);

impl Stdout {
    /// Standard output, unbuffered beyond what the standard library does.
    pub fn new() -> Stdout {
        Stdout(io::stdout())
    }

    /// Standard output behind a 1 MiB buffer, for streams of data.
    pub fn buffered() -> BufWriter<Stdout> {
        BufWriter::with_capacity(BUFFER, Stdout::new())
    }
}

/// Standard output carrying a data stream (a pack, a snapshot) behind a
/// 1 MiB buffer. Unlike a report, a stream whose reader went away is cut
/// short, which is a failure: a closed pipe here is an error that says so.
pub fn stream() -> BufWriter<StreamOut> {
    BufWriter::with_capacity(BUFFER, StreamOut(io::stdout()))
}

/// Standard output for a data stream (see [`stream`]).
pub struct StreamOut(io::Stdout);

fn cut_short(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return io::Error::other(
            "the reader of standard output closed it before the stream ended, so what it got is cut short",
        );
    }
    e
}

impl Write for StreamOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(cut_short)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).map_err(cut_short)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(cut_short)
    }
}

impl Default for Stdout {
    fn default() -> Stdout {
        Stdout::new()
    }
}

fn note(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
    e
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(note)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).map_err(note)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(note)
    }
}

/// A file written through `<path>.partial` in the same directory: on
/// [`AtomicFile::commit`] it is flushed, synced and renamed over `path`;
/// dropped uncommitted, the partial file is removed, so a failed command
/// never leaves output under the requested name.
pub struct AtomicFile {
    path: PathBuf,
    partial: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path`. Refuses a directory, a device, pipe or
    /// socket, and a path without a file name, with one clear line.
    pub fn create(path: &Path) -> Result<AtomicFile> {
        if let Ok(m) = std::fs::metadata(path) {
            if m.is_dir() {
                return Err(Error::Invalid(format!(
                    "{} is a directory: give the path of a file to write",
                    path.display()
                )));
            }
            if !m.is_file() {
                return Err(Error::Invalid(format!(
                    "{} is a device, pipe or socket, not a regular file: give the path of a file to write",
                    path.display()
                )));
            }
        }
        let mut name = path
            .file_name()
            .ok_or_else(|| Error::Invalid(format!("{} is not a file path", path.display())))?
            .to_os_string();
        name.push(".partial");
        let partial = path.with_file_name(name);
        let file = File::create(&partial).ctx(|| format!("creating {}", partial.display()))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            partial,
            out: Some(BufWriter::with_capacity(BUFFER, file)),
        })
    }

    /// The path it will have once committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and syncs the partial file, leaving it unrenamed: for a set
    /// of files that should all be on disk before any takes its name.
    pub fn sync(&mut self) -> Result<()> {
        let out = self.out.as_mut().expect("written before commit");
        out.flush()
            .ctx(|| format!("writing {}", self.partial.display()))?;
        out.get_ref()
            .sync_all()
            .ctx(|| format!("syncing {}", self.partial.display()))
    }

    /// Syncs the file and renames it into place; returns the path.
    pub fn commit(mut self) -> Result<PathBuf> {
        self.sync()?;
        std::fs::rename(&self.partial, &self.path).ctx(|| {
            format!(
                "renaming {} to {}",
                self.partial.display(),
                self.path.display()
            )
        })?;
        self.out = None;
        Ok(std::mem::take(&mut self.path))
    }

    /// Syncs every file, then renames each into place, so that no file
    /// takes its name before all are complete on disk.
    pub fn commit_all(mut files: Vec<AtomicFile>) -> Result<Vec<PathBuf>> {
        for f in &mut files {
            f.sync()?;
        }
        files.into_iter().map(AtomicFile::commit).collect()
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.as_mut().expect("not committed").write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.as_mut().expect("not committed").write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            // Unwritten buffered bytes are of no use: discard them unflushed.
            drop(out.into_parts());
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}
