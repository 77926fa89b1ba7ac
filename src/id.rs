//! The identities ferry passes around: a chunk's row in the store's index.

use std::fmt;

/// A chunk's row in the store's index (`chunks.rowid`). Rows are never
/// reused while the store lives, so a row names one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkRow(pub i64);

impl fmt::Display for ChunkRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
