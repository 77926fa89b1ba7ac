//! Reading ahead: a thread reads (and hashes) the next records of a pack
//! while the current ones are verified and stored, and opens solid blocks
//! there (decode, chunk ids, digest check) so that the storing side only
//! compresses and writes. It keeps the end of the last block while the
//! next record may continue it.

use std::io::Read;

use super::VERIFY_BATCH;
use super::block::{self, Opened};
use crate::counting::Counting;
use crate::pack::{PackReader, Record};

/// A record read from a pack (`None`: the trailer).
pub(super) type ReadResult = std::result::Result<Option<Record>, crate::pack::ReadError>;

/// What the reading thread hands over.
pub(super) enum Arrived {
    /// A record as read.
    Record(ReadResult),
    /// A solid block, decoded and checked (or what is wrong with it).
    Block(Result<Opened, String>),
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
    // The end of the last record if it was a block (else `after_block`
    // is false).
    let (mut tail, mut after_block) = (Vec::new(), false);
    loop {
        let mut batch = Vec::with_capacity(VERIFY_BATCH);
        let last = loop {
            let record = reader.next_record();
            let more = matches!(record, Ok(Some(Record::Chunk(_) | Record::Delta(_))));
            let last = !matches!(record, Ok(Some(_)));
            let arrived = match record {
                Ok(Some(Record::Block(b))) => {
                    let into = spare.try_recv().unwrap_or_default();
                    let opened = block::open(b, after_block.then_some(&tail[..]), into);
                    after_block = false;
                    if let Ok(o) = &opened {
                        o.tail_into(&mut tail);
                        after_block = true;
                    }
                    Arrived::Block(opened)
                }
                other => {
                    after_block = false;
                    Arrived::Record(other)
                }
            };
            batch.push((arrived, reader.get_ref().count()));
            if last || !more || batch.len() == VERIFY_BATCH {
                break last;
            }
        };
        if tx.send(batch).is_err() || last {
            return;
        }
    }
}
