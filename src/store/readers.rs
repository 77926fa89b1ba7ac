//! The readers' lock, which makes removing committed data-file bytes safe
//! for processes that have them mapped: every process that opens a store to
//! read holds `readers.lock` shared for as long as it has the store open,
//! and a writer that removes bytes an index row once named (gc removing
//! rewritten files, the undo of a failed write that had checkpointed)
//! first holds it exclusively. A writer that cannot get it in time leaves
//! those bytes in place as dead space for the next `ferry gc`.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

/// Name of the lock file in the store directory.
const NAME: &str = "readers.lock";

fn open(dir: &Path) -> Option<File> {
    let path = dir.join(NAME);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .or_else(|_| File::open(&path))
        .ok()
}

/// Takes the lock shared, waiting while a writer removes bytes (which takes
/// milliseconds). `None` when the lock file cannot be opened or created: the
/// store is then read-only to this process, and to every writer too.
pub(super) fn shared(dir: &Path) -> Option<File> {
    let file = open(dir)?;
    file.lock_shared().ok()?;
    Some(file)
}

/// Takes the lock exclusively, trying for up to `wait`; `None` when readers
/// still hold it then (or it cannot be opened), and the caller must leave
/// committed bytes where they are.
pub(super) fn exclusive(dir: &Path, wait: Duration) -> Option<File> {
    let file = open(dir)?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Some(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => return None,
        }
    }
}
