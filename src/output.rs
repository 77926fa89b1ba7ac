//! Where command output goes: files written whole or not at all (a
//! temporary file beside the target, synced, then renamed into place),
//! devices and pipes written in place, or standard output for `-`, noting
//! when its reader has gone away.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tempfile::NamedTempFile;

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

/// A command's output file. A regular file (or a new name) is written
/// through a temporary file beside it, created afresh (never through a
/// link planted there): on [`AtomicFile::commit`] it is flushed, synced and
/// renamed over `path`; dropped uncommitted, it is removed, so a failed
/// command never leaves output under the requested name. A device, pipe or
/// socket is written in place: there is no file to rename over it.
pub struct AtomicFile {
    path: PathBuf,
    sink: Option<Sink>,
}

/// Where an [`AtomicFile`]'s bytes go.
enum Sink {
    /// A temporary file in the target's directory.
    Temp(BufWriter<NamedTempFile>),
    /// The target itself, not a regular file.
    Direct(BufWriter<File>),
}

impl AtomicFile {
    /// Starts writing `path`. Refuses a directory and a path without a
    /// file name with one clear line, before anything is written.
    pub fn create(path: &Path) -> Result<AtomicFile> {
        if check_target(path)?
            && let Some(file) = open_in_place(path)?
        {
            return Ok(AtomicFile {
                path: path.to_path_buf(),
                sink: Some(Sink::Direct(BufWriter::with_capacity(BUFFER, file))),
            });
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(path.file_name().expect("checked by check_target"));
        prefix.push(".");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".partial");
        #[cfg(unix)]
        {
            // What `File::create` gives: 0666 less the umask.
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let temp = builder.tempfile_in(dir).ctx(|| {
            format!(
                "creating a temporary file in {} to write {}",
                dir.display(),
                path.display()
            )
        })?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            sink: Some(Sink::Temp(BufWriter::with_capacity(BUFFER, temp))),
        })
    }

    /// The path it will have once committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and syncs the file, leaving a temporary file unrenamed: for
    /// a set of files that should all be on disk before any takes its name.
    pub fn sync(&mut self) -> Result<()> {
        let path = &self.path;
        let writing = || format!("writing {}", path.display());
        let syncing = || format!("syncing {}", path.display());
        match self.sink.as_mut().expect("written before commit") {
            Sink::Temp(out) => {
                out.flush().ctx(writing)?;
                out.get_ref().as_file().sync_all().ctx(syncing)
            }
            Sink::Direct(out) => {
                out.flush().ctx(writing)?;
                match out.get_ref().sync_all() {
                    // Pipes and most character devices cannot be synced.
                    Err(e) if cannot_sync(&e) => Ok(()),
                    r => r.ctx(syncing),
                }
            }
        }
    }

    /// Syncs the file and renames it into place (then syncs its directory,
    /// so the new name survives a crash); returns the path.
    pub fn commit(mut self) -> Result<PathBuf> {
        self.sync()?;
        if self.rename()? {
            sync_dir(&self.path)?;
        }
        Ok(std::mem::take(&mut self.path))
    }

    /// Syncs every file, then renames each into place, so that no file
    /// takes its name before all are complete on disk.
    pub fn commit_all(mut files: Vec<AtomicFile>) -> Result<Vec<PathBuf>> {
        for f in &mut files {
            f.sync()?;
        }
        let mut renamed = Vec::new();
        for f in &mut files {
            if f.rename()? {
                renamed.push(f.path.clone());
            }
        }
        let mut dirs_synced: Vec<PathBuf> = Vec::new();
        for p in renamed {
            let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
            if !dirs_synced.contains(&dir) {
                sync_dir(&p)?;
                dirs_synced.push(dir);
            }
        }
        Ok(files
            .iter_mut()
            .map(|f| std::mem::take(&mut f.path))
            .collect())
    }

    /// Renames a synced temporary file over the target (true), or lets go
    /// of a target written in place (false).
    fn rename(&mut self) -> Result<bool> {
        match self.sink.take().expect("committed once") {
            Sink::Direct(_) => Ok(false),
            Sink::Temp(out) => {
                let (temp, _) = out.into_parts();
                let from = temp.path().to_path_buf();
                // On failure the temporary file comes back and is removed.
                temp.persist(&self.path).map_err(|e| {
                    Error::io(
                        format!("renaming {} to {}", from.display(), self.path.display()),
                        e.error,
                    )
                })?;
                Ok(true)
            }
        }
    }
}

/// Checks that `path` can name an output file: not a directory (nor a
/// name ending in `/`, which only a directory has), and with a file name.
/// Returns whether it exists and is not a regular file (a device, pipe or
/// socket, written in place).
pub fn check_target(path: &Path) -> Result<bool> {
    let meta = std::fs::metadata(path).ok();
    let slash = {
        let s = path.as_os_str().as_encoded_bytes();
        s.ends_with(b"/") || s.ends_with(b"/.") || s == b"."
    };
    if meta.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(Error::Invalid(format!(
            "{} is a directory: give the path of a file to write",
            path.display()
        )));
    }
    if slash {
        return Err(Error::Invalid(format!(
            "{} names a directory (it ends in '/'): give the path of a file to write",
            path.display()
        )));
    }
    if path.file_name().is_none() {
        return Err(Error::Invalid(format!(
            "{} is not a file path: give the path of a file to write",
            path.display()
        )));
    }
    Ok(meta.is_some_and(|m| !m.is_file()))
}

/// Opens the existing non-regular file `path` for writing as it is (no
/// truncation, nothing created). `None` when it turned into a regular file
/// meanwhile, which is then written through a temporary file instead.
fn open_in_place(path: &Path) -> Result<Option<File>> {
    let file = match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::FileTypeExt;
                if std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                    return Err(Error::Invalid(format!(
                        "{} is a socket, not a regular file, device or pipe, and cannot be opened ({e}): give the path of a file to write",
                        path.display()
                    )));
                }
            }
            return Err(Error::io(format!("opening {}", path.display()), e));
        }
    };
    let regular = file
        .metadata()
        .ctx(|| format!("reading the type of {}", path.display()))?
        .is_file();
    Ok((!regular).then_some(file))
}

/// Whether a failed sync only means the file cannot be synced (a pipe, a
/// character device), not that written bytes were lost.
fn cannot_sync(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
    )
}

/// Syncs the directory holding `path`, so a rename into it is durable.
fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let synced = File::open(dir).and_then(|d| d.sync_all());
    match synced {
        Err(e) if !cannot_sync(&e) => Err(Error::io(format!("syncing {}", dir.display()), e)),
        _ => Ok(()),
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.sink.as_mut().expect("not committed") {
            Sink::Temp(out) => out.write(buf),
            Sink::Direct(out) => out.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self.sink.as_mut().expect("not committed") {
            Sink::Temp(out) => out.write_all(buf),
            Sink::Direct(out) => out.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.sink.as_mut().expect("not committed") {
            Sink::Temp(out) => out.flush(),
            Sink::Direct(out) => out.flush(),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Unwritten buffered bytes are of no use: discard them unflushed.
        // A temporary file is removed as it drops.
        match self.sink.take() {
            Some(Sink::Temp(out)) => drop(out.into_parts()),
            Some(Sink::Direct(out)) => drop(out.into_parts()),
            None => {}
        }
    }
}
