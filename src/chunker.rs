//! Content-defined chunking: cuts a byte stream into FastCDC (v2020) chunks,
//! names each by its BLAKE3 hash, and hands them on in ordered batches while
//! a background thread keeps reading. Memory is bounded by the batch size.

use std::io::Read;
use std::sync::mpsc;

use rayon::prelude::*;

use crate::error::{Error, Result};

/// A chunk's name: the BLAKE3 hash of its uncompressed bytes.
pub type ChunkId = [u8; 32];

/// The chunker's parameters. They are fixed for a store and recorded in the
/// store and in every pack, because other parameters cut other chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Smallest chunk, except the last one of a stream.
    pub min: u32,
    /// Target average chunk size.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

/// Identifies the cutting algorithm in stores and packs.
pub const ALGORITHM: &str = "fastcdc-v2020-level1-seed0";

/// The one set of parameters this version of ferry uses: 16 KiB / 64 KiB / 256 KiB.
pub const PARAMS: Params = Params {
    min: 16 * 1024,
    avg: 64 * 1024,
    max: 256 * 1024,
};

impl std::fmt::Display for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{ALGORITHM} min={} avg={} max={}",
            self.min, self.avg, self.max
        )
    }
}

/// One chunk of a stream, hashed.
pub struct Chunk {
    /// BLAKE3 of `data`.
    pub id: ChunkId,
    /// The chunk's bytes.
    pub data: Vec<u8>,
}

/// How many bytes of chunks the reader thread gathers before handing a batch
/// over; two batches may be in flight, so this bounds memory at about 3x.
pub const BATCH_BYTES: usize = 8 << 20;

/// Chunks `source` on a background thread and calls `each` with ordered
/// batches of hashed chunks (hashing runs in parallel on the rayon pool).
/// Returns the source once it is exhausted, so that wrappers around it can
/// hand back what they observed.
pub fn for_each_batch<R, F>(source: R, params: Params, mut each: F) -> Result<R>
where
    R: Read + Send,
    F: FnMut(Vec<Chunk>) -> Result<()>,
{
    let (tx, rx) = mpsc::sync_channel::<std::io::Result<Vec<Vec<u8>>>>(1);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut source = source;
            let mut cdc = fastcdc::v2020::StreamCDC::new(
                &mut source,
                params.min as usize,
                params.avg as usize,
                params.max as usize,
            );
            let mut batch = Vec::new();
            let mut bytes = 0;
            for item in &mut cdc {
                match item {
                    Ok(c) => {
                        bytes += c.length;
                        batch.push(c.data);
                        if bytes >= BATCH_BYTES {
                            if tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                                break;
                            }
                            bytes = 0;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        break;
                    }
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(Ok(batch));
            }
            drop(tx);
            drop(cdc);
            source
        });
        let mut outcome = Ok(());
        for batch in rx.iter() {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    outcome = Err(Error::io("reading input", e));
                    break;
                }
            };
            let chunks: Vec<Chunk> = batch
                .into_par_iter()
                .map(|data| Chunk {
                    id: *blake3::hash(&data).as_bytes(),
                    data,
                })
                .collect();
            if let Err(e) = each(chunks) {
                outcome = Err(e);
                break;
            }
        }
        // Dropping the receiver unblocks a reader still trying to send.
        drop(rx);
        let source = reader.join().expect("chunker thread panicked");
        outcome.map(|()| source)
    })
}
