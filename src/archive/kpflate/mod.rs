//! Byte-exact port of the klauspost/compress **v1.15.12** `flate` encoder
//! (`github.com/klauspost/compress/flate`: `deflate.go`, `fast_encoder.go`,
//! `level1.go`…`level6.go`, `huffman_bit_writer.go`, `huffman_code.go`,
//! `huffman_sortByFreq.go`, `huffman_sortByLiteral.go`, `token.go`), as
//! Debian packages it and as klauspost/pgzip 1.2.5 uses it.
//!
//! Modelled: `flate.NewWriter` at every level it accepts — -2 (`HuffmanOnly`),
//! -1 (`DefaultCompression`, which klauspost maps to 5), 0 (`NoCompression`),
//! 1–6 (the fast match finders) and 7–9 (lazy matching) — plus `ResetDict`,
//! `Flush` and `Close`. [`Encoder::new`] returns `None` for other levels.
//!
//! How Go behaves, and so how this does: input is collected in a window
//! (65535 bytes at 0–6, 32 KiB at -2, a sliding 64 KiB at 7–9); a window is
//! compressed only once it is full and more input arrives, or on flush/close,
//! so the output never depends on how the input is split across `write`
//! calls. At levels 1–6 each window is tokenised by the level's match finder
//! (which keeps up to 32 KiB of history across windows) and written as a
//! stored, literal-only Huffman, fixed or dynamic block; dynamic tables may
//! stay open and be reused by the next window. `close` ends with an empty
//! final fixed block. Output bytes are handed over in the same 246-byte steps
//! as Go's bit writer.
//!
//! [`pgzip`] models pgzip's per-block framing on top of this.

mod bit_writer;
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
pub mod pgzip;
mod sort;
mod token_writer;
mod tokens;

use bit_writer::BitWriter;
use fast::{FastGen, Input};
use lazy::{LAZY_WINDOW, Lazy, Sink};
use level1::FastEncL1;
use level2::FastEncL2;
use level3::FastEncL3;
use level4::FastEncL4;
use level5::FastEncL5;
use level6::FastEncL6;
use tokens::Tokens;

/// Go's `maxStoreBlockSize`: the window size of the fast levels.
const MAX_STORE_BLOCK_SIZE: usize = 65535;
/// Window size of level -2 (Huffman only).
const HUFF_WINDOW: usize = 32 << 10;
/// Go's `maxMatchOffset` as a length (history kept for dictionaries).
const MAX_MATCH_OFFSET_LEN: usize = 1 << 15;

/// The level-specific match finder (`fastEnc`).
enum FastEnc {
    L1(Box<FastEncL1>),
    L2(Box<FastEncL2>),
    L3(Box<FastEncL3>),
    L4(Box<FastEncL4>),
    L5(Box<FastEncL5>),
    L6(Box<FastEncL6>),
}

/// Runs `$body` with `$e` bound to whichever level encoder `$fast` holds.
macro_rules! each_level {
    ($fast:expr, $e:ident => $body:expr) => {
        match $fast {
            FastEnc::L1($e) => $body,
            FastEnc::L2($e) => $body,
            FastEnc::L3($e) => $body,
            FastEnc::L4($e) => $body,
            FastEnc::L5($e) => $body,
            FastEnc::L6($e) => $body,
        }
    };
}

impl FastEnc {
    fn new(level: i32) -> Option<FastEnc> {
        Some(match level {
            1 => FastEnc::L1(Box::new(FastEncL1::new())),
            2 => FastEnc::L2(Box::new(FastEncL2::new())),
            3 => FastEnc::L3(Box::new(FastEncL3::new())),
            4 => FastEnc::L4(Box::new(FastEncL4::new())),
            5 => FastEnc::L5(Box::new(FastEncL5::new())),
            6 => FastEnc::L6(Box::new(FastEncL6::new())),
            _ => return None,
        })
    }

    fn encode(&mut self, dst: &mut Tokens, input: Input<'_>) {
        each_level!(self, e => e.encode(dst, input))
    }

    /// The history, which also holds the compressor's window.
    fn fgen(&mut self) -> &mut FastGen {
        each_level!(self, e => &mut e.fgen)
    }
}

/// What compresses the window (Go's `step`).
enum Engine {
    /// Levels 1-6: a match finder; the window lives in its history.
    Fast(FastEnc),
    /// Level 0 (`store`): stored blocks of up to 65535 bytes.
    Stored(Box<[u8]>),
    /// Level -2 (`storeHuff`): literal-only Huffman blocks of up to 32 KiB.
    HuffOnly(Box<[u8]>),
    /// Levels 7-9 (`deflateLazy`): hash chains over a sliding window.
    Lazy(Box<Lazy>),
}

/// A streaming deflate encoder that writes what klauspost/compress v1.15.12
/// `flate.NewWriter(w, level)` writes, for every level it accepts (-2 to 9).
pub struct Encoder {
    w: BitWriter,
    engine: Engine,
    /// Bytes in the window (`windowEnd`).
    window_len: usize,
    tokens: Tokens,
    sync: bool,
}

impl Encoder {
    /// `None` when this encoder does not model `level`.
    pub fn new(level: i32) -> Option<Encoder> {
        let (engine, penalty) = match level {
            0 => (Engine::Stored(vec![0; MAX_STORE_BLOCK_SIZE].into()), 0),
            -2 => (Engine::HuffOnly(vec![0; HUFF_WINDOW].into()), 10),
            -1 => (Engine::Fast(FastEnc::new(5)?), 7),
            7..=9 => (Engine::Lazy(Box::new(Lazy::new(level)?)), 8),
            _ => (Engine::Fast(FastEnc::new(level)?), 7),
        };
        Some(Encoder {
            w: BitWriter::new(penalty),
            engine,
            window_len: 0,
            tokens: Tokens::new(),
            sync: false,
        })
    }

    /// Size of the window.
    fn window_cap(&self) -> usize {
        match self.engine {
            Engine::HuffOnly(_) => HUFF_WINDOW,
            Engine::Lazy(_) => LAZY_WINDOW,
            _ => MAX_STORE_BLOCK_SIZE,
        }
    }

    /// The whole window buffer.
    fn window_buf(&mut self) -> &mut [u8] {
        match &mut self.engine {
            Engine::Fast(f) => f.fgen().staging(),
            Engine::Stored(w) | Engine::HuffOnly(w) => w,
            // Not used: the lazy levels fill their window themselves.
            Engine::Lazy(_) => &mut [],
        }
    }

    /// Compresses `data`, appending whatever output is complete to `out`.
    pub fn write(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if matches!(self.engine, Engine::Lazy(_)) {
            return self.write_lazy(data, out);
        }
        let cap = self.window_cap();
        let mut b = data;
        while !b.is_empty() {
            if self.window_len == cap || self.sync {
                self.step(out);
            }
            let start = self.window_len;
            let n = b.len().min(cap - start);
            self.window_buf()[start..start + n].copy_from_slice(&b[..n]);
            self.window_len += n;
            b = &b[n..];
        }
    }

    /// `write` for the lazy levels, whose window slides (`fillDeflate`).
    fn write_lazy(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut b = data;
        while !b.is_empty() {
            let Engine::Lazy(lazy) = &mut self.engine else {
                return;
            };
            if lazy.window_end == LAZY_WINDOW as i64 || self.sync {
                self.step(out);
            }
            let Engine::Lazy(lazy) = &mut self.engine else {
                return;
            };
            let n = lazy.fill(b);
            b = &b[n..];
        }
    }

    /// Go's `Flush`: compresses everything buffered and writes a sync marker
    /// (an empty stored block), so the output so far is byte aligned.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        self.sync = true;
        self.step(out);
        self.w.write_stored_header(0, false, out);
        self.w.flush(out);
        self.sync = false;
    }

    /// Ends the stream exactly as Go's `Close` does, appending the rest to `out`.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        self.sync = true;
        self.step(out);
        self.w.write_stored_header(0, true, out);
        self.w.flush(out);
        self.w.reset();
    }

    /// Go's `ResetDict`: starts a new stream whose matches may refer to `dict`
    /// (only its last 32 KiB are used; levels 0 and -2 ignore it).
    pub fn reset_dict(&mut self, dict: &[u8]) {
        self.w.reset();
        self.sync = false;
        self.window_len = 0;
        self.tokens.reset();
        match &mut self.engine {
            Engine::Fast(fast) => {
                fast.fgen().reset();
                // fillWindow: run the encoder over the dictionary, discard the tokens.
                let dict = &dict[dict.len().saturating_sub(MAX_MATCH_OFFSET_LEN)..];
                fast.encode(&mut self.tokens, Input::Slice(dict));
                self.tokens.reset();
            }
            Engine::Lazy(lazy) => {
                lazy.reset();
                lazy.fill_window(dict);
            }
            Engine::Stored(_) | Engine::HuffOnly(_) => {}
        }
    }

    /// Go's `step`: compresses the window if it is full or a sync is requested.
    fn step(&mut self, out: &mut Vec<u8>) {
        let end = self.window_len;
        match &mut self.engine {
            Engine::Fast(_) => self.store_fast(out),
            Engine::Stored(window) => {
                // `store`
                if end > 0 && (end == MAX_STORE_BLOCK_SIZE || self.sync) {
                    self.w.write_stored(&window[..end], false, out);
                    self.window_len = 0;
                }
            }
            Engine::Lazy(lazy) => lazy.step(&mut Sink {
                tokens: &mut self.tokens,
                w: &mut self.w,
                out,
                sync: self.sync,
            }),
            Engine::HuffOnly(window) => {
                // `storeHuff`
                if (end < HUFF_WINDOW && !self.sync) || end == 0 {
                    return;
                }
                self.w
                    .write_block_huff(false, &window[..end], self.sync, out);
                self.window_len = 0;
            }
        }
    }

    /// `storeFast`: compresses the window if it is full or a sync is requested.
    fn store_fast(&mut self, out: &mut Vec<u8>) {
        let Engine::Fast(fast) = &mut self.engine else {
            return;
        };
        let end = self.window_len;
        if end < MAX_STORE_BLOCK_SIZE {
            if !self.sync {
                return;
            }
            // Extremely small sizes.
            if end < 128 {
                if end == 0 {
                    return;
                }
                let window = fast.fgen().staged(end);
                if end <= 32 {
                    self.w.write_stored(window, false, out);
                } else {
                    self.w.write_block_huff(false, window, true, out);
                }
                self.tokens.reset();
                self.window_len = 0;
                fast.fgen().reset();
                return;
            }
        }
        fast.encode(&mut self.tokens, Input::Staged(end));
        let hist = fast.fgen().hist();
        let window = &hist[hist.len() - end..];
        let n = self.tokens.n();
        if n == 0 {
            // No matches: store the block as is.
            self.w.write_stored(window, false, out);
        } else if n > end - (end >> 4) {
            // Less than 1/16th removed: literals only.
            self.w.write_block_huff(false, window, self.sync, out);
        } else {
            self.w
                .write_block_dynamic(&mut self.tokens, false, Some(window), self.sync, out);
        }
        self.tokens.reset();
        self.window_len = 0;
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// Word salad with repeats near and far, `n` bytes.
    fn text(n: usize) -> Vec<u8> {
        let words: Vec<&[u8]> = vec![
            b"deflate ",
            b"window ",
            b"match ",
            b"the ",
            b"history ",
            b"of ",
            b"tokens ",
            b"\n",
            b"offset ",
            b"length ",
            b"0123456789 ",
            b"Huffman ",
            b"block ",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut v = Vec::with_capacity(n + 16);
        while v.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            v.extend_from_slice(words[(state % words.len() as u64) as usize]);
            if state.is_multiple_of(97) {
                v.extend_from_slice(&state.to_le_bytes());
            }
        }
        v.truncate(n);
        v
    }

    fn compress(level: i32, data: &[u8], cur: Option<i32>) -> Vec<u8> {
        let mut enc = Encoder::new(level).expect("modelled level");
        if let (Some(cur), Engine::Fast(fast)) = (cur, &mut enc.engine) {
            fast.fgen().cur = cur;
        }
        let mut out = Vec::new();
        enc.write(data, &mut out);
        enc.close(&mut out);
        out
    }

    /// Go rebases its hash tables when the position base `cur` nears 2^31
    /// (after ~2 GiB); that must not change the output. Start just below the
    /// limit so the rebase happens a few windows in, with history present.
    #[test]
    fn table_rebase_does_not_change_output() {
        let data = text(1 << 20);
        for level in 1..=6 {
            let want = compress(level, &data, None);
            let got = compress(level, &data, Some(fast::BUFFER_RESET - 1));
            assert!(got == want, "level {level}, rebase with history");
            let got = compress(level, &data, Some(fast::BUFFER_RESET + 5));
            assert!(got == want, "level {level}, clear without history");
        }
    }

    /// Levels 7-9 rebase their hash chains when positions near 2^28 (after
    /// ~256 MiB); that must not change the output either.
    #[test]
    fn hash_chain_rebase_does_not_change_output() {
        let data = text(1 << 20);
        for level in 7..=9 {
            let want = compress(level, &data, None);
            let mut enc = Encoder::new(level).expect("modelled level");
            if let Engine::Lazy(lazy) = &mut enc.engine {
                lazy.set_hash_offset(lazy::MAX_HASH_OFFSET - 200_000);
            }
            let mut got = Vec::new();
            enc.write(&data, &mut got);
            enc.close(&mut got);
            assert!(got == want, "level {level}");
        }
    }
}
