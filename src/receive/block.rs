//! Solid blocks as they arrive: the frame decoded to exactly its length
//! (after the end of the block right before it, when it names a prefix),
//! cut into its chunks, each hashed for its id, and the ids checked
//! against the block's digest, all before any chunk of it is stored.

use rayon::prelude::*;

use crate::chunker::ChunkId;
use crate::codec::{self, Codec};
use crate::pack::format::MAX_BLOCK_PREFIX;
use crate::pack::{BlockRecord, block_digest};

/// A block whose chunks matched its digest.
pub(super) struct Opened {
    bytes: Vec<u8>,
    /// Where each chunk starts in `bytes`, and where the last one ends.
    starts: Vec<usize>,
    /// Each chunk's id, in order.
    pub ids: Vec<ChunkId>,
}

impl Opened {
    /// Chunk `k`'s bytes.
    pub fn chunk(&self, k: usize) -> &[u8] {
        &self.bytes[self.starts[k]..self.starts[k + 1]]
    }

    /// Puts the last `MAX_BLOCK_PREFIX` bytes (at most) of the block, what
    /// the next block may name as its prefix, in `tail` (reused, so that
    /// one buffer serves every block).
    pub fn tail_into(&self, tail: &mut Vec<u8>) {
        let keep = self.bytes.len().min(MAX_BLOCK_PREFIX as usize);
        tail.clear();
        tail.extend_from_slice(&self.bytes[self.bytes.len() - keep..]);
    }

    /// The block's bytes, for the next block to be decoded into.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Chunks `which` encoded for the store, in parallel.
    pub fn encode(&self, which: &[usize]) -> Vec<(Codec, Vec<u8>)> {
        which
            .par_iter()
            .map(|&k| codec::encode_slice(self.chunk(k)))
            .collect()
    }
}

/// Decodes and checks a block into `into` (a buffer of a block done
/// with, or empty); `before` is the end of the block record right before
/// it (`None`: the record before was not a block). The error is what is
/// wrong with it.
pub(super) fn open(b: BlockRecord, before: Option<&[u8]>, into: Vec<u8>) -> Result<Opened, String> {
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
    let ids: Vec<ChunkId> = starts
        .par_windows(2)
        .map(|w| ChunkId::of(&bytes[w[0]..w[1]]))
        .collect();
    if block_digest(&ids) != b.digest {
        return Err(format!("{what} does not match its digest"));
    }
    Ok(Opened { bytes, starts, ids })
}
