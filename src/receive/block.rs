//! Solid blocks as they arrive: the frame decoded to exactly its length
//! (after the end of the block right before it, when it names a prefix)
//! and cut into its chunks by the reading thread ([`open`]); then, on the
//! storing side, each chunk hashed for its id and the ids checked against
//! the block's digest ([`Decoded::check`]), all before any chunk of it is
//! stored; then the chunks the store lacks are compressed for it and
//! written (`Unpacker::block`).

use std::sync::Arc;

use rayon::prelude::*;

use super::Unpacker;
use crate::chunker::ChunkId;
use crate::codec::{self, Codec};
use crate::error::Result;
use crate::pack::{BlockRecord, block_digest};

/// Chunks of a solid block encoded for the store at once.
const BLOCK_SLICE: usize = 256;

/// A block's frame decoded, its chunks not yet checked.
pub(super) struct Decoded {
    /// Shared with the reading thread while the next record may continue
    /// the block (as its prefix).
    bytes: Arc<Vec<u8>>,
    /// Where each chunk starts in `bytes`, and where the last one ends.
    starts: Vec<usize>,
    digest: [u8; 32],
    what: String,
}

impl Decoded {
    /// The decoded bytes, for the next block to name the end of as its
    /// prefix.
    pub fn shared(&self) -> Arc<Vec<u8>> {
        Arc::clone(&self.bytes)
    }

    /// Hashes every chunk for its id (in parallel) and checks the ids
    /// against the block's digest; the error is what is wrong.
    pub fn check(self) -> Result<Opened, String> {
        let Decoded {
            bytes,
            starts,
            digest,
            what,
        } = self;
        let ids: Vec<ChunkId> = starts
            .par_windows(2)
            .map(|w| ChunkId::of(&bytes[w[0]..w[1]]))
            .collect();
        if block_digest(&ids) != digest {
            return Err(format!("{what} does not match its digest"));
        }
        Ok(Opened { bytes, starts, ids })
    }
}

/// A block whose chunks matched its digest.
pub(super) struct Opened {
    bytes: Arc<Vec<u8>>,
    starts: Vec<usize>,
    /// Each chunk's id, in order.
    pub ids: Vec<ChunkId>,
}

impl Opened {
    /// Chunk `k`'s bytes.
    pub fn chunk(&self, k: usize) -> &[u8] {
        &self.bytes[self.starts[k]..self.starts[k + 1]]
    }

    /// The block's buffer, for another block to be decoded into, unless
    /// the reading thread still holds it (as the next block's prefix).
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        Arc::try_unwrap(self.bytes).ok()
    }

    /// Chunks `which` encoded for the store, in parallel.
    pub fn encode(&self, which: &[usize]) -> Vec<(Codec, Vec<u8>)> {
        which
            .par_iter()
            .map(|&k| codec::encode_slice(self.chunk(k)))
            .collect()
    }
}

/// Decodes a block into `into` (a buffer of a block done with, or empty);
/// `before` is the block record right before it (`None`: the record
/// before was not a block). The error is what is wrong with it.
pub(super) fn open(
    b: BlockRecord,
    before: Option<&[u8]>,
    into: Vec<u8>,
) -> Result<Decoded, String> {
    let what = format!("solid block {}", &crate::hex(&b.digest)[..16]);
    let want = b.prefix as usize;
    let prefix = match before {
        _ if want == 0 => &[][..],
        Some(tail) if tail.len() >= want => &tail[tail.len() - want..],
        _ => {
            return Err(format!(
                "{what} continues {want} bytes of a block that is not right before it"
            ));
        }
    };
    let bytes = codec::decode_block_into(&b.payload, b.out_len() as usize, prefix, into)
        .map_err(|m| format!("{what}: {m}"))?;
    let mut starts = Vec::with_capacity(b.lens.len() + 1);
    let mut at = 0usize;
    starts.push(at);
    for &l in &b.lens {
        at += l as usize;
        starts.push(at);
    }
    Ok(Decoded {
        bytes: Arc::new(bytes),
        starts,
        digest: b.digest,
        what,
    })
}

impl Unpacker<'_, '_> {
    /// Stores the chunks of a checked solid block that the store lacks,
    /// compressed for the store in parallel; returns the block's buffer,
    /// for another block to be decoded into (unless the reader still
    /// holds it).
    pub(super) fn block(&mut self, b: Opened) -> Result<Option<Vec<u8>>> {
        let mut fresh = Vec::new();
        for (k, id) in b.ids.iter().enumerate() {
            self.report.chunks += 1;
            let row = self.txn.chunk_rowid(id)?;
            if row.is_none() {
                fresh.push((self.tables.pack.len(), k));
            }
            self.tables.pack.push(row);
        }
        // Encoded in slices, each on both cores while the one before is
        // written, so that a slice's encoded bytes are written and dropped
        // soon after they are made.
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let (b, fresh) = (&b, &fresh);
            scope.spawn(move || {
                for slice in fresh.chunks(BLOCK_SLICE) {
                    let which: Vec<usize> = slice.iter().map(|&(_, k)| k).collect();
                    if tx.send(b.encode(&which)).is_err() {
                        return;
                    }
                }
            });
            for (slice, encoded) in fresh.chunks(BLOCK_SLICE).zip(rx) {
                for (&(at, k), (codec, payload)) in slice.iter().zip(encoded) {
                    let id = &b.ids[k];
                    // A chunk repeated within the block is stored once.
                    let row = match self.txn.chunk_rowid(id)? {
                        Some(row) => row,
                        None => self.store_new(id, codec, b.chunk(k).len() as u32, &payload)?,
                    };
                    self.tables.pack[at] = Some(row);
                }
            }
            Ok(())
        })?;
        self.checkpoint_if_due()?;
        Ok(b.into_bytes())
    }
}
