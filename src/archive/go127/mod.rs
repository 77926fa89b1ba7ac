//! A byte-exact Rust port of the deflate encoder in Go 1.27.3's standard
//! library `compress/flate` (`deflate.go`, `deflatefast.go`, `level1.go` …
//! `level6.go`, `huffman_bit_writer.go`, `huffman_code.go`, `token.go`,
//! `load_store.go`), the rewrite of the package derived from
//! klauspost/compress.
//!
//! [`Encoder`] writes the raw deflate stream `flate.NewWriter(w, level)`
//! followed by `Write` calls and `Close` writes, bit for bit. It models
//! levels -2 (Huffman only), -1 (default, which is level 6), 0 (stored) and
//! 1 to 9. Go's output does not depend on how the input is split across
//! `Write` calls at any level: input is gathered into a fixed window
//! (64 KiB - 1 for levels 0–6, 32 KiB for -2, 64 KiB for 7–9) that is only
//! compressed when full or at `Close`. `Flush` and `Reset` are not modelled.

mod bitwriter;
mod blocks;
mod fast;
mod huffman;
mod lazy;
mod level1;
mod level2;
mod level3;
mod level4;
mod level5;
mod level6;
mod tokens;

use blocks::BlockWriter;
use tokens::Tokens;

/// Largest stored block, and the window size of levels 0 to 6.
const MAX_STORE_BLOCK_SIZE: usize = 65535;

/// The level 1–6 match finder in use.
enum Fast {
    L1(level1::Level1),
    L2(level2::Level2),
    L3(level3::Level3),
    L4(level4::Level4),
    L5(level5::Level5),
    L6(level6::Level6),
}

impl Fast {
    /// Adds the `len` pending bytes to the history and finds their tokens.
    fn encode(&mut self, dst: &mut Tokens, len: usize) {
        match self {
            Fast::L1(e) => e.encode(dst, len),
            Fast::L2(e) => e.encode(dst, len),
            Fast::L3(e) => e.encode(dst, len),
            Fast::L4(e) => e.encode(dst, len),
            Fast::L5(e) => e.encode(dst, len),
            Fast::L6(e) => e.encode(dst, len),
        }
    }

    /// The history, which also holds the pending block.
    fn history(&mut self) -> &mut fast::FastGen {
        match self {
            Fast::L1(e) => e.history(),
            Fast::L2(e) => e.history(),
            Fast::L3(e) => e.history(),
            Fast::L4(e) => e.history(),
            Fast::L5(e) => e.history(),
            Fast::L6(e) => e.history(),
        }
    }
}

/// How the window is turned into blocks.
enum Mode {
    /// Level 0: stored blocks only.
    Store,
    /// Level -2: Huffman-coded literals only.
    Huff,
    /// Levels 1–6.
    Fast(Box<Fast>),
    /// Levels 7–9.
    Lazy(Box<lazy::Lazy>),
}

/// A streaming deflate encoder that writes what Go 1.27.3's
/// `compress/flate` `Writer` writes.
pub struct Encoder {
    w: BlockWriter,
    /// The window of levels other than 1–6 (those gather it in their history).
    window: Vec<u8>,
    /// Window size.
    window_len: usize,
    window_end: usize,
    tokens: Tokens,
    mode: Mode,
    sync: bool,
    closed: bool,
}

impl Encoder {
    /// `None` when this encoder does not model `level` (Go accepts -2 to 9;
    /// -1 means 6).
    pub fn new(level: i32) -> Option<Encoder> {
        let (mode, window, penalty) = match level {
            0 => (Mode::Store, MAX_STORE_BLOCK_SIZE, 0),
            -2 => (Mode::Huff, 32 << 10, 10),
            -1 | 1..=6 => {
                let fast = match level {
                    1 => Fast::L1(level1::Level1::new()),
                    2 => Fast::L2(level2::Level2::new()),
                    3 => Fast::L3(level3::Level3::new()),
                    4 => Fast::L4(level4::Level4::new()),
                    5 => Fast::L5(level5::Level5::new()),
                    _ => Fast::L6(level6::Level6::new()),
                };
                (Mode::Fast(Box::new(fast)), MAX_STORE_BLOCK_SIZE, 7)
            }
            7..=9 => (
                Mode::Lazy(Box::new(lazy::Lazy::new(level))),
                lazy::WINDOW_LEN,
                8,
            ),
            _ => return None,
        };
        let fast = matches!(mode, Mode::Fast(_));
        Some(Encoder {
            w: BlockWriter::new(penalty),
            window: if fast { Vec::new() } else { vec![0; window] },
            window_len: window,
            window_end: 0,
            tokens: Tokens::new(),
            mode,
            sync: false,
            closed: false,
        })
    }

    /// Compresses `data`, appending whatever output is complete to `out`.
    pub fn write(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.closed || data.is_empty() {
            return;
        }
        self.w.bw.out = std::mem::take(out);
        let mut b = data;
        while !b.is_empty() {
            if self.window_end == self.window_len || self.sync {
                self.step();
            }
            let n = self.fill(b);
            b = &b[n..];
        }
        self.w.bw.drain();
        *out = std::mem::take(&mut self.w.bw.out);
    }

    /// Ends the stream exactly as Go's `Close` does, appending the rest to `out`.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        if self.closed {
            return;
        }
        self.w.bw.out = std::mem::take(out);
        self.sync = true;
        self.step();
        self.w.write_stored_header(0, true);
        self.w.flush();
        self.closed = true;
        *out = std::mem::take(&mut self.w.bw.out);
    }

    /// Copies as much of `b` into the window as fits.
    fn fill(&mut self, b: &[u8]) -> usize {
        if let Mode::Lazy(lz) = &mut self.mode {
            return lz.fill(&mut self.window, &mut self.window_end, b);
        }
        let window = match &mut self.mode {
            Mode::Fast(f) => f.history().pending_mut(),
            _ => &mut self.window[..],
        };
        let n = b.len().min(self.window_len - self.window_end);
        window[self.window_end..self.window_end + n].copy_from_slice(&b[..n]);
        self.window_end += n;
        n
    }

    /// Compresses the window if it is full, or whatever it holds when syncing.
    fn step(&mut self) {
        match &mut self.mode {
            Mode::Store => {
                if self.window_end > 0 && (self.window_end == MAX_STORE_BLOCK_SIZE || self.sync) {
                    self.w.write_stored(&self.window[..self.window_end], false);
                    self.window_end = 0;
                }
            }
            Mode::Huff => {
                if (self.window_end < self.window_len && !self.sync) || self.window_end == 0 {
                    return;
                }
                self.w
                    .write_block_huff(false, &self.window[..self.window_end], self.sync);
                self.window_end = 0;
            }
            Mode::Fast(_) => self.deflate_fast(),
            Mode::Lazy(lz) => lz.deflate(
                &mut self.w,
                &mut self.tokens,
                &self.window,
                self.window_end,
                self.sync,
            ),
        }
    }

    /// Levels 1–6: encodes a full window (or the rest, when syncing) as one block.
    fn deflate_fast(&mut self) {
        let Mode::Fast(fast) = &mut self.mode else {
            return;
        };
        let end = self.window_end;
        if end < self.window_len {
            if !self.sync {
                return;
            }
            if end < 128 {
                // Tiny final blocks are stored or Huffman coded without searching.
                if end == 0 {
                    return;
                }
                let window = fast.history().pending(end);
                if end <= 32 {
                    self.w.write_stored(window, false);
                } else {
                    self.w.write_block_huff(false, window, true);
                }
                self.tokens.reset();
                self.window_end = 0;
                return;
            }
        }
        fast.encode(&mut self.tokens, end);
        let window = fast.history().last(end);
        if self.tokens.n == 0 {
            // No match at all.
            self.w.write_stored(window, false);
        } else if self.tokens.n > end - (end >> 4) {
            // Matches removed less than 1/16 of the bytes.
            self.w.write_block_huff(false, window, self.sync);
        } else {
            self.w
                .write_block_dynamic(&mut self.tokens, false, Some(window), self.sync);
        }
        self.tokens.reset();
        self.window_end = 0;
    }
}
