//! Error type of the ferry library: every variant renders as one line that
//! says what is wrong and, where there is one, what to do about it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ferry, each with a one-line message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file or directory does not exist.
    #[error("{}: no such file or directory", .0.display())]
    NotFound(PathBuf),

    /// The disk holding the store or the output filled up.
    #[error(
        "disk full while {0}: free some space and run the command again (the store was left as it was)"
    )]
    DiskFull(String),

    /// Any other I/O failure, with what ferry was doing at the time.
    #[error("{context}: {source}")]
    Io {
        /// What ferry was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The SQLite index failed.
    #[error("store index: {0}")]
    Index(#[from] rusqlite::Error),

    /// Another ferry process holds the store's write lock (and still did
    /// after `waited`).
    #[error("{}", locked(store, holder, *waited))]
    Locked {
        /// The store directory.
        store: PathBuf,
        /// Who holds it, as recorded in the lock file (may be empty).
        holder: String,
        /// How long this process waited for it (`--lock-wait`).
        waited: Duration,
    },

    /// The store was made by an incompatible ferry, or is damaged.
    #[error("store {}: {msg}", store.display())]
    BadStore {
        /// The store directory.
        store: PathBuf,
        /// What is wrong.
        msg: String,
    },

    /// No snapshot of that name is in the store.
    #[error("no snapshot named '{0}' in the store: run 'ferry ls' to see what it holds")]
    UnknownSnapshot(String),

    /// A snapshot of that name already exists with other content.
    #[error("{0}")]
    NameConflict(String),

    /// A pack (or a file given as one) cannot be read.
    #[error("{}: {msg}", path.display())]
    BadPack {
        /// The pack file ('-' for standard input).
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },

    /// A pack assumes base snapshots that the store lacks.
    #[error("{}: this pack is a delta against {missing}, which this store does not have: unpack the pack that carries {names} first", path.display())]
    MissingBase {
        /// The pack file.
        path: PathBuf,
        /// The missing base snapshot(s), with their hashes.
        missing: String,
        /// Their names alone.
        names: String,
    },

    /// Reassembled data did not match the BLAKE3 recorded at ingest.
    #[error("integrity check failed: {0}")]
    Integrity(String),

    /// The Docker daemon could not be reached or refused a request.
    #[error("{0}")]
    Docker(String),

    /// A registry could not be reached, refused a request, or served
    /// something wrong.
    #[error("{0}")]
    Registry(String),

    /// The command was given something it cannot work with.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Wraps an I/O error with what ferry was doing, recognising a full disk
    /// and a missing file so that they get their own clear messages.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        let context = context.into();
        if source.raw_os_error() == Some(28) || source.kind() == io::ErrorKind::StorageFull {
            return Error::DiskFull(context);
        }
        Error::Io { context, source }
    }

    /// Maps an error raised while reading a pack into a [`Error::BadPack`].
    pub fn pack(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
        Error::BadPack {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// The message of [`Error::Locked`]: what to do depends on whether this
/// process already waited.
fn locked(store: &Path, holder: &str, waited: Duration) -> String {
    let store = store.display();
    if waited.is_zero() {
        return format!(
            "store {store} is locked by another ferry process{holder}: wait for it to finish, or pass --lock-wait SECONDS"
        );
    }
    let secs = waited.as_secs_f64();
    format!(
        "store {store} is still locked by another ferry process{holder} after waiting {secs} s for it: let that process finish, then run this command again"
    )
}

/// Adds context to I/O results.
pub trait IoContext<T> {
    /// Wraps the error with a description of what was being done.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}
