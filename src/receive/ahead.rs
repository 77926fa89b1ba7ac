//! Reading ahead: a thread reads (and hashes) the next records of a pack
//! while the current ones are verified and stored, and decodes solid
//! blocks there, so that the storing side only hashes, compresses and
//! writes. It keeps the last block while the next record may continue it.

use std::io::Read;
use std::sync::Arc;

use super::VERIFY_BATCH;
use super::block::{self, Decoded};
use crate::counting::Counting;
use crate::pack::{PackReader, Record};

/// A record read from a pack (`None`: the trailer).
pub(super) type ReadResult = std::result::Result<Option<Record>, crate::pack::ReadError>;

/// What the reading thread hands over.
pub(super) enum Arrived {
    /// A record as read.
    Record(ReadResult),
    /// A solid block, decoded (or what is wrong with it).
    Block(Result<Decoded, String>),
}

/// Reads records in batches (up to [`VERIFY_BATCH`] chunk records, or one
/// other record), each with the pack bytes read so far, until the trailer
/// or an error, or until the receiving side is gone. Blocks are decoded
/// into the buffers of blocks the receiving side is done with (`spare`).
pub(super) fn read_ahead<R: Read>(
    reader: &mut PackReader<Counting<R>>,
    tx: &std::sync::mpsc::SyncSender<Vec<(Arrived, u64)>>,
    spare: &std::sync::mpsc::Receiver<Vec<u8>>,
) {
    // The last record, while it was a block.
    let mut last: Option<Arc<Vec<u8>>> = None;
    // Buffers of blocks done with, for the next blocks to be decoded into.
    let mut buffers: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut batch = Vec::with_capacity(VERIFY_BATCH);
        let last_record = loop {
            let record = reader.next_record();
            let more = matches!(record, Ok(Some(Record::Chunk(_) | Record::Delta(_))));
            let end = !matches!(record, Ok(Some(_)));
            let before = last.take();
            let arrived = match record {
                Ok(Some(Record::Block(b))) => {
                    buffers.extend(spare.try_iter());
                    let into = buffers.pop().unwrap_or_default();
                    let decoded = block::open(b, before.as_deref().map(Vec::as_slice), into);
                    last = decoded.as_ref().ok().map(Decoded::shared);
                    Arrived::Block(decoded)
                }
                other => Arrived::Record(other),
            };
            // Whichever side lets go of a block last keeps its buffer.
            buffers.extend(before.and_then(|b| Arc::try_unwrap(b).ok()));
            // One spare is all the next block needs.
            buffers.truncate(1);
            batch.push((arrived, reader.get_ref().count()));
            if end || !more || batch.len() == VERIFY_BATCH {
                break end;
            }
        };
        if tx.send(batch).is_err() || last_record {
            return;
        }
    }
}
