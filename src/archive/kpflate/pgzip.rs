//! The block framing of klauspost/pgzip **v1.2.5** (`gzip.go`) over the
//! klauspost flate port of this module.
//!
//! What pgzip writes for `NewWriterLevel(w, level)`, `Write`…, `Close` (no
//! `Flush`, default header, default `SetConcurrency`):
//!
//! * a 10-byte gzip header, [`pgzip_header`]: `1f 8b 08 00`, MTIME of Go's zero
//!   `time.Time` (`00 09 6e 88`), XFL 4 for level 1, 2 for level 9, else 0, OS `ff`;
//! * the input cut at fixed [`PGZIP_BLOCK`] (1 MiB) offsets, whatever the `Write`
//!   sizes (a straddling write is split at the boundary). Each full block is
//!   compressed as soon as it is complete, as a *non-last* block; `Close` then
//!   compresses whatever remains as the *last* block — which is empty when the
//!   input length is a multiple of 1 MiB, including empty input;
//! * block `i` is independent deflate output from a fresh/reset compressor
//!   given the last [`PGZIP_TAIL`] (16 KiB) bytes of block `i - 1` as
//!   dictionary (none for block 0), then `Flush` (a sync marker
//!   `00 00 00 ff ff`-style empty stored block), and for the last block also
//!   `Close` (an empty final fixed block, `03 00`): see [`pgzip_block`];
//! * the gzip trailer: CRC-32 (IEEE) of the input and its length mod 2^32,
//!   both little endian.

use std::cell::RefCell;

use super::Encoder;

/// Input bytes per pgzip block (`defaultBlockSize`).
pub const PGZIP_BLOCK: usize = 1 << 20;
/// Bytes of the previous block used as dictionary (`tailSize`).
pub const PGZIP_TAIL: usize = 16384;

/// The deflate bytes pgzip writes for one block: klauspost flate at `level`, reset with
/// `dict` (the previous block's last 16 KiB, empty for the first block), fed `block`, then
/// Flush (sync marker), and for the last block also Close — exactly as pgzip's compressBlock does.
///
/// The compressor is kept per thread and reused (after `ResetDict`, as pgzip's
/// pool does), which avoids allocating and zeroing ~2 MiB of tables per block.
pub fn pgzip_block(level: i32, dict: &[u8], block: &[u8], last: bool, out: &mut Vec<u8>) -> bool {
    let cached = CACHE.with(|c| c.borrow_mut().take());
    let mut enc = match cached {
        Some((l, enc)) if l == level => enc,
        _ => match Encoder::new(level) {
            Some(enc) => enc,
            None => return false,
        },
    };
    enc.reset_dict(dict);
    enc.write(block, out);
    enc.flush(out);
    if last {
        enc.close(out);
    }
    CACHE.with(|c| *c.borrow_mut() = Some((level, enc)));
    true
}

thread_local! {
    /// The last block compressor of this thread, with its level.
    static CACHE: RefCell<Option<(i32, Encoder)>> = const { RefCell::new(None) };
}

/// The 10-byte gzip header pgzip writes for `level` with a default `Header`
/// (no name, comment or extra; zero `ModTime`; OS 255).
pub const fn pgzip_header(level: i32) -> [u8; 10] {
    // Go's zero time.Time has Unix() == -62135596800; pgzip stores it as u32.
    let mtime = (-62_135_596_800i64 as u64 as u32).to_le_bytes();
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    [
        0x1f, 0x8b, 8, 0, mtime[0], mtime[1], mtime[2], mtime[3], xfl, 255,
    ]
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn header_matches_pgzip() {
        assert_eq!(
            pgzip_header(5),
            [0x1f, 0x8b, 8, 0, 0x00, 0x09, 0x6e, 0x88, 0, 0xff]
        );
        assert_eq!(pgzip_header(1)[8], 4);
        assert_eq!(pgzip_header(9)[8], 2);
        assert_eq!(pgzip_header(-1)[8], 0);
    }
}
