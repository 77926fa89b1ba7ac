//! A snapshot's recipe as `add` writes it: the stored units of a split, in
//! order, become recipe rows; a headers-stream run becomes slices of the
//! header chunks that cover it, and a known layer blob the rows copied from
//! the snapshot that holds it.

use std::collections::VecDeque;

use super::Stored;
use crate::archive::split::Layer;
use crate::chunker;
use crate::error::{Error, Result};
use crate::store::{ChunkRow, KnownLayer, KnownLayers, Piece, Txn};

/// Builds a snapshot's recipe from stored units: whole chunks go in as they
/// come; a headers-stream run becomes slices of header chunks, written once
/// the chunks covering it have been cut.
pub(super) struct Recipe<'k> {
    snap: i64,
    pub(super) seq: u64,
    /// Layer blobs the store held when the add began.
    known: &'k KnownLayers,
    /// The layer blob being split: its sha256 and first recipe row.
    layer: Option<([u8; 32], u64)>,
    /// Layer blobs of this snapshot, for the `layers` table.
    layers: Vec<([u8; 32], KnownLayer)>,
    pending: VecDeque<Stored>,
    /// Header chunks not yet fully used: row, start in the headers stream, length.
    headers: VecDeque<(ChunkRow, u64, u32)>,
    /// Headers-stream bytes cut into chunks so far.
    header_end: u64,
    /// Headers-stream offset of the next run to place.
    next_meta: u64,
}

impl<'k> Recipe<'k> {
    pub(super) fn new(snap: i64, known: &'k KnownLayers) -> Recipe<'k> {
        Recipe {
            snap,
            seq: 0,
            known,
            layer: None,
            layers: Vec::new(),
            pending: VecDeque::new(),
            headers: VecDeque::new(),
            header_end: 0,
            next_meta: 0,
        }
    }

    pub(super) fn push(&mut self, s: Stored) {
        match s {
            Stored::Header(row, len) => {
                self.headers.push_back((row, self.header_end, len));
                self.header_end += len as u64;
            }
            other => self.pending.push_back(other),
        }
    }

    fn piece(&mut self, txn: &mut Txn<'_>, piece: Piece) -> Result<()> {
        txn.push_piece(self.snap, self.seq, piece)?;
        self.seq += 1;
        Ok(())
    }

    /// Writes every pending piece that can be placed now.
    pub(super) fn drain(&mut self, txn: &mut Txn<'_>) -> Result<()> {
        while let Some(front) = self.pending.front() {
            match *front {
                Stored::File(..) => {
                    if let Some(Stored::File(path, size)) = self.pending.pop_front() {
                        txn.push_file(self.snap, self.seq, size, &path)?;
                    }
                }
                Stored::Whole(row, len, op, out) => {
                    self.pending.pop_front();
                    self.piece(
                        txn,
                        Piece {
                            chunk: row,
                            off: 0,
                            len,
                            op,
                            out,
                        },
                    )?;
                }
                Stored::Meta(n, op) => {
                    if self.next_meta + n > self.header_end {
                        return Ok(());
                    }
                    self.pending.pop_front();
                    let end = self.next_meta + n;
                    while self.next_meta < end {
                        let (row, start, len) =
                            *self.headers.front().expect("header chunk covers the run");
                        let off = self.next_meta - start;
                        let take = (len as u64 - off).min(end - self.next_meta);
                        self.piece(
                            txn,
                            Piece {
                                chunk: row,
                                off: off as u32,
                                len: take as u32,
                                op,
                                out: 0,
                            },
                        )?;
                        self.next_meta += take;
                        if self.next_meta == start + len as u64 {
                            self.headers.pop_front();
                        }
                    }
                }
                Stored::Layer(_) => {
                    if let Some(Stored::Layer(l)) = self.pending.pop_front() {
                        self.layer_event(txn, l)?;
                    }
                }
                Stored::Header(..) => unreachable!("header chunks are not queued"),
            }
        }
        Ok(())
    }

    /// Notes where a layer blob's pieces are, or copies a known one's.
    fn layer_event(&mut self, txn: &mut Txn<'_>, event: Layer) -> Result<()> {
        match event {
            Layer::Start(digest) => self.layer = Some((digest, self.seq)),
            Layer::End {
                digest,
                named,
                blake3,
                size,
                outcome,
            } => {
                let start = self.layer.take().filter(|(d, _)| *d == digest);
                if let (Some((_, seq)), true, Some(kind)) =
                    (start, named, chunker::kind_of(outcome))
                {
                    let layer = KnownLayer {
                        snapshot: self.snap,
                        blake3,
                        size,
                        seq,
                        count: self.seq - seq,
                        kind,
                    };
                    self.layers.push((digest, layer));
                }
            }
            Layer::Reused { digest, .. } => {
                let Some(known) = self.known.get(&digest) else {
                    return Err(Error::Integrity(
                        "a reused layer is not in the store (a ferry bug)".into(),
                    ));
                };
                txn.copy_layer(known, self.snap, self.seq)?;
                self.layers.push((
                    digest,
                    KnownLayer {
                        snapshot: self.snap,
                        seq: self.seq,
                        ..*known
                    },
                ));
                self.seq += known.count;
            }
        }
        Ok(())
    }

    /// Places what is left; after the last batch every run is covered.
    /// Then records the snapshot's layer blobs.
    pub(super) fn finish(&mut self, txn: &mut Txn<'_>) -> Result<()> {
        self.drain(txn)?;
        if !self.pending.is_empty() || self.next_meta != self.header_end {
            return Err(Error::Integrity(
                "the headers stream does not cover the recipe (a ferry bug)".into(),
            ));
        }
        for (digest, layer) in &self.layers {
            txn.insert_layer(digest, layer)?;
        }
        Ok(())
    }
}
