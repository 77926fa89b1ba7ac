//! A small progress interface the engine reports through, so that the
//! library stays free of terminal code; the CLI plugs in indicatif.

/// Receives progress of a long operation, in bytes.
pub trait Progress: Sync {
    /// A phase starts; `total` is known for files, not for pipes.
    fn start(&self, _what: &str, _total: Option<u64>) {}
    /// `bytes` more were processed.
    fn advance(&self, _bytes: u64) {}
    /// The phase is over.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {}
