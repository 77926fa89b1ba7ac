//! ferry moves Docker images (and any large file) across an air gap with
//! the fewest bytes possible: content-defined chunks kept once in a local
//! store, delta packs carrying only what the other side lacks, and
//! byte-exact, BLAKE3-verified reassembly.
//!
//! Modules, one job each:
//! - [`chunker`]: FastCDC cutting and BLAKE3 naming, in parallel batches.
//! - [`id`]: the typed identities of chunks, snapshots and index rows.
//! - [`codec`]: how chunk bytes are encoded (zstd or raw).
//! - [`counting`]: counting the bytes through a reader or writer.
//! - [`store`]: data files plus the SQLite index, with locking and rollback.
//! - [`archive`]: compression detection and tar/docker-archive awareness;
//!   [`archive::image`] is the layout of image archives (legacy `docker save`
//!   and OCI) and the verification of their digests.
//! - [`add`], [`checkout`]: streams into and out of the store.
//! - [`pack`]: the pack file format (reader and writer).
//! - [`send`]: planning and writing packs (and volumes) from a store.
//! - [`receive`]: verifying packs and importing them into a store.
//! - [`docker`]: save, load and list images through the Docker Engine API.
//! - [`demo`]: sample image-like archives and the end-to-end demo.
//! - [`output`]: output files written whole or not at all, and stdout.
//! - [`chart`]: the SVG chart of a bench report (feature `chart`).
//! - [`cli`]: the `ferry` command line, one module per subcommand.
//! - [`similarity`], [`samepath`]: delta bases (super-features, old
//!   versions of files by path) and delta frames.
//! - [`inventory`], [`keys`]: what a peer holds; signing keys and trust.
//! - [`verify`]: the index checked against the data files.
//! - [`bench`]: what shipping costs against other tools.
//! - [`varint`], [`progress`], [`error`]: shared building blocks.
//!
//! docs/ARCHITECTURE.md draws the rooms and the path of a chunk;
//! docs/FORMAT.md specifies every byte.

pub mod add;
pub mod archive;
pub mod bench;
pub mod chart;
pub mod checkout;
pub mod chunker;
pub mod cli;
pub mod codec;
pub mod counting;
pub mod demo;
pub mod docker;
pub mod error;
pub mod id;
pub mod inventory;
pub mod keys;
pub mod output;
pub mod pack;
pub mod progress;
pub mod receive;
pub mod registry;
pub mod samepath;
pub mod send;
pub mod similarity;
pub mod store;
pub mod tardelta;
pub mod varint;
pub mod verify;

pub use error::{Error, Result};

/// Lower-case hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses 64 hex digits into 32 bytes.
pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
