//! How a chunk's bytes are encoded at rest and in packs. The store keeps a
//! chunk as LZ4 (fast to write and read), as zstd when only zstd's entropy
//! coding makes it smaller, or raw; packs carry zstd or raw only.
//! Compression contexts are kept per thread.

use std::cell::RefCell;

/// Chunk encodings. The numbers are part of the store and pack formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// The chunk's bytes as they are.
    Raw = 0,
    /// One zstd frame holding the chunk's bytes.
    Zstd = 1,
    /// One LZ4 block (no frame) holding the chunk's bytes: in the store
    /// only, never in a pack.
    Lz4 = 2,
}

impl Codec {
    /// Parses a stored codec number.
    pub fn from_u8(v: u8) -> Option<Codec> {
        match v {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::Lz4),
            _ => None,
        }
    }

    /// Parses the codec number of a pack's chunk record.
    pub fn in_pack(v: u8) -> Option<Codec> {
        Codec::from_u8(v).filter(|&c| c != Codec::Lz4)
    }
}

/// zstd level of the chunks the store keeps as zstd and of the frames a
/// pack carries for chunks stored as LZ4. The store prefers LZ4: on the
/// service images of docs/BENCHMARKS.md it compresses about twice and
/// decodes about three times as fast as zstd level 1 per chunk, for about
/// a third more bytes at rest; packs re-compress what they send anyway.
pub const ZSTD_LEVEL: i32 = 1;

thread_local! {
    static COMPRESSOR: RefCell<zstd::bulk::Compressor<'static>> =
        RefCell::new(zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd context"));
    static DECOMPRESSOR: RefCell<zstd::bulk::Decompressor<'static>> =
        RefCell::new(zstd::bulk::Decompressor::new().expect("zstd context"));
}

/// Encodes a chunk for the store: LZ4 when that makes it smaller, else
/// zstd when that does (text-like bytes without repeats, which only an
/// entropy coder shrinks), else raw. So a chunk is raw exactly when zstd
/// could not shrink it either: what packs judge incompressible.
pub fn encode(data: Vec<u8>) -> (Codec, Vec<u8>) {
    match encode_compressed(&data) {
        Some(encoded) => encoded,
        None => (Codec::Raw, data),
    }
}

/// Like [`encode`], for borrowed bytes (copied only when stored raw).
pub fn encode_slice(data: &[u8]) -> (Codec, Vec<u8>) {
    encode_compressed(data).unwrap_or_else(|| (Codec::Raw, data.to_vec()))
}

fn encode_compressed(data: &[u8]) -> Option<(Codec, Vec<u8>)> {
    let lz4 = lz4_flex::block::compress(data);
    if lz4.len() < data.len() {
        return Some((Codec::Lz4, lz4));
    }
    let z = zstd_frame(data);
    (z.len() < data.len()).then_some((Codec::Zstd, z))
}

/// The chunk as one zstd frame at [`ZSTD_LEVEL`]: how a pack carries a
/// chunk the store keeps as LZ4 (the frame a store of zstd chunks held).
pub fn zstd_frame(data: &[u8]) -> Vec<u8> {
    COMPRESSOR
        .with(|c| c.borrow_mut().compress(data))
        .expect("zstd in memory")
}

/// Decodes a chunk of known length `len`. Never allocates more than `len`,
/// so a hostile frame cannot inflate beyond the size the caller accepted.
pub fn decode(codec: Codec, payload: &[u8], len: usize) -> Result<Vec<u8>, String> {
    match codec {
        Codec::Raw => {
            if payload.len() != len {
                return Err(format!(
                    "raw chunk holds {} bytes, {} expected",
                    payload.len(),
                    len
                ));
            }
            Ok(payload.to_vec())
        }
        Codec::Zstd => {
            let mut out = Vec::with_capacity(len);
            DECOMPRESSOR
                .with(|d| d.borrow_mut().decompress_to_buffer(payload, &mut out))
                .map_err(|e| format!("zstd: {e}"))?;
            if out.len() != len {
                return Err(format!(
                    "chunk decodes to {} bytes, {} expected",
                    out.len(),
                    len
                ));
            }
            Ok(out)
        }
        Codec::Lz4 => {
            let mut out = vec![0u8; len];
            let n = lz4_flex::block::decompress_into(payload, &mut out)
                .map_err(|e| format!("lz4: {e}"))?;
            if n != len {
                return Err(format!("chunk decodes to {n} bytes, {len} expected"));
            }
            Ok(out)
        }
    }
}

/// Largest window a solid block's frame may need (64 MiB: the largest
/// block), which is what a reader allows of a block without a prefix.
pub const BLOCK_WINDOW_LOG_MAX: u32 = 26;

/// Largest window of a block with a prefix (the prefix and the block).
pub const CHAINED_WINDOW_LOG_MAX: u32 = 27;

/// Largest window a block's frame may use: the block, or with a prefix
/// the prefix and the block.
fn block_window_log_max(prefix: &[u8]) -> u32 {
    if prefix.is_empty() {
        BLOCK_WINDOW_LOG_MAX
    } else {
        CHAINED_WINDOW_LOG_MAX
    }
}

/// The zstd level from which a block's match tables are enlarged.
const MAX_TABLES_FROM: i32 = 19;

/// Compresses a solid block (chunks of a pack, concatenated) at zstd
/// `level`, with a window that spans the whole block so that any chunk may
/// match any earlier one, and, when `prefix` is not empty, the bytes just
/// before the block too (zstd's prefix: what the receiver decoded last).
pub fn encode_block(data: &[u8], level: i32, prefix: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use zstd::stream::raw::CParameter;
    let mut e = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), level, prefix)
        .expect("zstd context");
    let span = ((data.len() + prefix.len()) as u64).max(1 << 10);
    let window = (64 - (span - 1).leading_zeros()).clamp(10, block_window_log_max(prefix));
    e.window_log(window).expect("zstd parameter");
    if level >= MAX_TABLES_FROM {
        // Level 19's match tables are sized for an 8 MiB window. Tables of
        // 2^26 and 2^25 entries took about 1.1% off the service images of
        // docs/BENCHMARKS.md, for a sixth more time; sizing the binary tree
        // to twice the window (at most 2^27 entries: 512 MiB), so that it
        // reaches back over the whole block, took 0.03-0.1% more. Up to
        // 650 MB per block being compressed.
        e.set_parameter(CParameter::ChainLog(
            (window + 1).min(BLOCK_WINDOW_LOG_MAX + 1),
        ))
        .expect("zstd parameter");
        e.set_parameter(CParameter::HashLog(24.min(window)))
            .expect("zstd parameter");
    }
    e.include_checksum(false).expect("zstd parameter");
    e.include_contentsize(true).expect("zstd parameter");
    e.set_pledged_src_size(Some(data.len() as u64))
        .expect("zstd parameter");
    e.write_all(data).expect("writing to memory");
    e.finish().expect("writing to memory")
}

/// Decodes a solid block's frame, compressed after `prefix` (empty:
/// none), to exactly `len` bytes; anything else (a frame that needs a
/// larger window, decodes short or long, or is not zstd) is an error.
pub fn decode_block(payload: &[u8], len: usize, prefix: &[u8]) -> Result<Vec<u8>, String> {
    decode_block_into(payload, len, prefix, Vec::new())
}

/// Like [`decode_block`], into `into` (emptied first): a buffer of an
/// earlier block, so that each block does not take fresh pages (a fault
/// and a zeroing per 4 KiB).
pub fn decode_block_into(
    payload: &[u8],
    len: usize,
    prefix: &[u8],
    into: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let log = block_window_log_max(prefix);
    decode_exact_into(payload, prefix, log, len, "block frame", into)
}

/// Decodes the zstd frame `payload`, compressed after `prefix` (zstd's
/// reference prefix; empty: none) with a window of at most 2^`window_log`,
/// to exactly `len` bytes; a frame that needs a larger window, decodes
/// short or long, or is not zstd is an error naming `what`. Never
/// allocates more than `len`: the frame is decoded in one call straight
/// into the output, so no window buffer is kept beside it (a solid block
/// would need one of up to 64 MiB) and no byte is copied twice.
pub fn decode_exact(
    payload: &[u8],
    prefix: &[u8],
    window_log: u32,
    len: usize,
    what: &str,
) -> Result<Vec<u8>, String> {
    decode_exact_into(payload, prefix, window_log, len, what, Vec::new())
}

/// Like [`decode_exact`], into `out` (emptied first; it grows to `len`
/// if it holds less).
fn decode_exact_into(
    payload: &[u8],
    prefix: &[u8],
    window_log: u32,
    len: usize,
    what: &str,
    mut out: Vec<u8>,
) -> Result<Vec<u8>, String> {
    use zstd::zstd_safe::{DCtx, get_error_name};
    // zstd checks a window limit only when it streams: the header says
    // what the frame needs.
    match frame_window(payload) {
        None => return Err(format!("{what} cannot be read: it is not a zstd frame")),
        Some(w) if w > 1u64 << window_log => {
            return Err(format!(
                "{what} cannot be read: it needs a window of {w} bytes, more than 2^{window_log}"
            ));
        }
        Some(_) => {}
    }
    let mut d = DCtx::create();
    d.ref_prefix(prefix)
        .map_err(|c| format!("{what} cannot be read: {}", get_error_name(c)))?;
    out.clear();
    out.reserve_exact(len);
    match d.decompress(&mut out, payload) {
        Ok(n) if n == len => Ok(out),
        Ok(n) => Err(format!("{what} decodes to {n} bytes, not {len}")),
        Err(c) => Err(format!(
            "{what} does not decode to {len} bytes: {}",
            get_error_name(c)
        )),
    }
}

/// The window a zstd frame's header declares (RFC 8878, section 3.1.1.1),
/// or `None` when `frame` does not start with a whole zstd frame header.
fn frame_window(frame: &[u8]) -> Option<u64> {
    const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
    let (&descriptor, rest) = frame.strip_prefix(&MAGIC)?.split_first()?;
    if descriptor & 0x20 == 0 {
        // A window descriptor: exponent and mantissa.
        let w = *rest.first()?;
        let base = 1u64 << (10 + u32::from(w >> 3));
        return Some(base + base / 8 * u64::from(w & 7));
    }
    // A single segment: the window is the content size, after the
    // dictionary id.
    let skip = [0usize, 1, 2, 4][usize::from(descriptor & 3)];
    let size_len = [1usize, 2, 4, 8][usize::from(descriptor >> 6)];
    let mut size = [0u8; 8];
    size[..size_len].copy_from_slice(rest.get(skip..skip + size_len)?);
    let size = u64::from_le_bytes(size);
    Some(if size_len == 2 { size + 256 } else { size })
}

#[cfg(test)]
mod block_tests {
    /// `len` pseudo-random bytes (xorshift from `seed`): nothing for zstd
    /// to find inside them.
    pub(super) fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// zstd's streaming decoder, which checks a window limit itself: does
    /// it decode `frame` with a window of at most 2^`log`?
    fn streams_within(frame: &[u8], log: u32) -> bool {
        use std::io::Read;
        let mut d = zstd::stream::read::Decoder::new(frame).unwrap();
        d.window_log_max(log).unwrap();
        d.read_to_end(&mut Vec::new()).is_ok()
    }

    #[test]
    fn the_window_a_header_declares_is_the_one_zstd_checks_when_it_streams() {
        use std::io::Write;
        let noise = noise(0x2545_f491_4f6c_dd1d, 300_000);
        // Content sizes of each field width (1, 2, 4 bytes), windows
        // smaller and larger than the content, with and without a size.
        for (len, log, sized) in [
            (200, 10, true),
            (5_000, 17, true),
            (5_000, 10, true),
            (100_000, 17, true),
            (300_000, 16, true),
            (300_000, 19, false),
            (70_000, 20, false),
        ] {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            e.window_log(log).unwrap();
            e.include_contentsize(sized).unwrap();
            if sized {
                e.set_pledged_src_size(Some(len as u64)).unwrap();
            }
            e.write_all(&noise[..len]).unwrap();
            let frame = e.finish().unwrap();
            let window = super::frame_window(&frame).unwrap();
            for limit in 10..=22 {
                let within = window <= 1 << limit;
                let what = format!(
                    "{len} bytes, window log {log}, sized {sized}: header says {window}, limit 2^{limit}"
                );
                assert_eq!(within, streams_within(&frame, limit), "{what}");
                let decoded = super::decode_exact(&frame, &[], limit, len, "frame");
                assert_eq!(within, decoded.is_ok(), "{what}");
                if within {
                    assert_eq!(decoded.unwrap(), &noise[..len]);
                }
            }
        }
        assert_eq!(super::frame_window(b"\x28\xb5\x2f"), None);
        assert_eq!(super::frame_window(b"not zstd at all"), None);
    }

    #[test]
    fn a_block_round_trips_and_a_wrong_length_or_frame_is_refused() {
        let mut data = Vec::new();
        for i in 0..200_000u32 {
            data.extend_from_slice(&(i % 977).to_le_bytes());
        }
        let frame = super::encode_block(&data, 3, &[]);
        assert!(frame.len() < data.len() / 4);
        assert_eq!(super::decode_block(&frame, data.len(), &[]).unwrap(), data);
        assert!(super::decode_block(&frame, data.len() - 1, &[]).is_err());
        assert!(super::decode_block(&frame, data.len() + 1, &[]).is_err());
        assert!(super::decode_block(&frame[..frame.len() / 2], data.len(), &[]).is_err());
        assert!(super::decode_block(b"not zstd", 8, &[]).is_err());
    }

    #[test]
    fn a_block_after_a_prefix_needs_that_prefix_to_decode() {
        // Pseudo-random bytes: nothing to gain inside the block, all to
        // gain from a prefix that holds them.
        let prefix = noise(0x9e37_79b9_7f4a_7c15, 300_000);
        let data = prefix[100_000..].to_vec();
        let alone = super::encode_block(&data, 19, &[]);
        let after = super::encode_block(&data, 19, &prefix);
        assert!(
            after.len() * 20 < alone.len(),
            "{} {}",
            after.len(),
            alone.len()
        );
        assert_eq!(
            super::decode_block(&after, data.len(), &prefix).unwrap(),
            data
        );
        let mut other = prefix.clone();
        other[150_000] ^= 1;
        assert_ne!(
            super::decode_block(&after, data.len(), &other)
                .ok()
                .as_ref(),
            Some(&data)
        );
        assert!(super::decode_block(&after, data.len(), &[]).is_err());
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::{Codec, decode, encode, encode_slice, zstd_frame};

    /// Pseudo-random bytes drawn from `symbols` values (0: all 256): no
    /// four-byte repeats for LZ4 to find when `symbols` is large, but fewer
    /// than eight bits each for an entropy coder to take off.
    fn drawn(seed: u64, len: usize, symbols: u8) -> Vec<u8> {
        let noise = super::block_tests::noise(seed, len);
        let pick = |b: u8| b' '.wrapping_add(b.checked_rem(symbols).unwrap_or(b));
        noise.into_iter().map(pick).collect()
    }

    #[test]
    fn the_store_keeps_a_chunk_as_lz4_zstd_or_raw_and_reads_each_back() {
        let repeats: Vec<u8> = (0..20_000u32)
            .flat_map(|i| (i % 977).to_le_bytes())
            .collect();
        let cases = [
            (repeats, Codec::Lz4),
            (drawn(7, 20_000, 64), Codec::Zstd),
            (drawn(9, 20_000, 0), Codec::Raw),
        ];
        for (data, want) in cases {
            let (codec, payload) = encode_slice(&data);
            assert_eq!(codec, want);
            assert_eq!(encode(data.clone()), (codec, payload.clone()));
            if codec != Codec::Raw {
                assert!(payload.len() < data.len());
            }
            assert_eq!(decode(codec, &payload, data.len()).unwrap(), data);
            // What a pack carries instead of LZ4.
            let frame = zstd_frame(&data);
            assert_eq!(decode(Codec::Zstd, &frame, data.len()).unwrap(), data);
        }
        assert_eq!(Codec::in_pack(2), None);
        assert_eq!(Codec::from_u8(2), Some(Codec::Lz4));
    }

    #[test]
    fn a_damaged_lz4_chunk_is_an_error_or_other_bytes_never_a_panic() {
        let data: Vec<u8> = (0..3_000u32).flat_map(|i| (i % 97).to_le_bytes()).collect();
        let (codec, payload) = encode_slice(&data);
        assert_eq!(codec, Codec::Lz4);
        let len = data.len();
        assert!(decode(codec, &payload, len - 1).is_err());
        assert!(decode(codec, &payload, len + 1).is_err());
        assert!(decode(codec, &payload[..payload.len() - 1], len).is_err());
        assert!(decode(codec, b"", len).is_err());
        for at in 0..payload.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = payload.clone();
                bad[at] ^= flip;
                // Bytes that still decode to the length come out other
                // than the chunk (and fail its BLAKE3); none may panic.
                if let Ok(out) = decode(codec, &bad, len) {
                    assert_eq!(out.len(), len);
                }
            }
        }
    }
}
