//! A byte-exact Rust model of the deflate encoder of Go's standard library
//! `compress/flate` as shipped in Go 1.8 through Go 1.26 (checked against
//! Go 1.19's `deflate.go`, `deflatefast.go`, `huffman_bit_writer.go`,
//! `huffman_code.go` and `token.go`).
//!
//! Every level Go accepts is modelled:
//!
//! * `-2` (HuffmanOnly): each 65535-byte block Huffman-coded as literals,
//! * `0` (NoCompression): 65535-byte stored blocks,
//! * `1` (BestSpeed): Go's Snappy-style matcher on 65535-byte blocks,
//! * `2..=9` and `-1` (= 6): Go's hash-chain matcher over a sliding
//!   64 KiB window, a block every 16384 tokens.
//!
//! Given the same input and the same sequence of writes, the bytes produced
//! are identical to Go's `flate.Writer` (raw deflate, no gzip framing), and
//! they reach `out` at the same moments Go hands them to its `io.Writer`
//! (Go's 240-byte output buffer is modelled too).
//!
//! How the input is split across writes: at levels -2, 0 and 1 it cannot
//! change the output (every block but the last holds exactly 65535 input
//! bytes). At levels 2–9 the split decides only whether the window slides
//! a few hundred bytes earlier or later; that could matter solely for a
//! block of 16384 tokens that spans more than 32 KiB of input, ends within
//! those bytes and would be smaller stored than Huffman-coded. That does
//! not happen in practice: such a block is mostly matches, which cost far
//! less than 8 bits a byte. The tests check many splits on both sides;
//! either way this model follows Go's write loop, so the same splits give
//! the same bytes.
//!
//! Memory is fixed: the window, hash tables and one block of tokens.

mod bit_output;
mod bit_writer;
mod deflate;
mod fast;
mod huffman_code;
mod token;
mod window;

use bit_writer::{BitWriter, MAX_STORE_BLOCK_SIZE};
use deflate::Deflate;
use fast::Fast;

/// A streaming deflate encoder that writes what Go 1.8–1.26's
/// `compress/flate.NewWriter(w, level)` writes.
pub struct Encoder {
    w: Box<BitWriter>,
    engine: Engine,
    closed: bool,
}

/// What runs on the buffered input: Go's `fill` / `step` pair.
enum Engine {
    /// Level 0: stored blocks.
    Store(Block),
    /// Level -2: Huffman-only blocks.
    Huffman(Block),
    /// Level 1.
    Fast(Box<Fast>),
    /// Levels 2..=9.
    Deflate(Box<Deflate>),
}

/// A 65535-byte input buffer (levels 0 and -2).
struct Block {
    window: Vec<u8>,
    end: usize,
}

impl Block {
    fn new() -> Block {
        Block {
            window: vec![0; MAX_STORE_BLOCK_SIZE],
            end: 0,
        }
    }

    fn fill(&mut self, b: &[u8]) -> usize {
        let free = &mut self.window[self.end..];
        let n = free.len().min(b.len());
        free[..n].copy_from_slice(&b[..n]);
        self.end += n;
        n
    }

    /// The buffered bytes, if a block is due (full, or `sync` and not
    /// empty); the buffer is then emptied.
    fn take(&mut self, sync: bool) -> Option<&[u8]> {
        if self.end > 0 && (self.end == MAX_STORE_BLOCK_SIZE || sync) {
            let end = std::mem::take(&mut self.end);
            Some(&self.window[..end])
        } else {
            None
        }
    }
}

impl Encoder {
    /// An encoder for Go level `level` (-2..=9, -1 meaning 6); `None` for
    /// any other level, which Go rejects too.
    pub fn new(level: i32) -> Option<Encoder> {
        let engine = match level {
            0 => Engine::Store(Block::new()),
            -2 => Engine::Huffman(Block::new()),
            1 => Engine::Fast(Box::new(Fast::new())),
            -1 => Engine::Deflate(Box::new(Deflate::new(6)?)),
            _ => Engine::Deflate(Box::new(Deflate::new(level)?)),
        };
        Some(Encoder {
            w: Box::new(BitWriter::new()),
            engine,
            closed: false,
        })
    }

    /// Compresses `data`, appending whatever output is complete to `out`.
    ///
    /// Writing after [`Encoder::close`] does nothing (Go returns an error).
    pub fn write(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        let mut rest = data;
        while !rest.is_empty() {
            self.step(false, out);
            let n = match &mut self.engine {
                Engine::Store(b) | Engine::Huffman(b) => b.fill(rest),
                Engine::Fast(f) => f.fill(rest),
                Engine::Deflate(d) => d.fill(rest),
            };
            rest = &rest[n..];
        }
    }

    /// Ends the stream exactly as Go's `Close` does, appending the rest to
    /// `out`: the buffered input, then an empty final stored block.
    ///
    /// Closing again does nothing.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        self.step(true, out);
        self.w.write_stored_header(0, true, out);
        self.w.flush(out);
        self.closed = true;
    }

    /// Go's `step`: encodes what the buffered input allows (everything
    /// when `sync`).
    fn step(&mut self, sync: bool, out: &mut Vec<u8>) {
        let w = &mut self.w;
        match &mut self.engine {
            Engine::Store(b) => {
                if let Some(block) = b.take(sync) {
                    w.write_stored_block(block, out);
                }
            }
            Engine::Huffman(b) => {
                if let Some(block) = b.take(sync) {
                    w.write_block_huff(false, block, out);
                }
            }
            Engine::Fast(f) => f.step(sync, w, out),
            Engine::Deflate(d) => d.step(sync, w, out),
        }
    }
}
