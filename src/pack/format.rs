//! The pack format's building blocks: magic, version, record types, limits,
//! and a bounds-checked little-endian decoder. docs/FORMAT.md is the spec.

/// First eight bytes of every pack.
pub const MAGIC: &[u8; 8] = b"FERRYPAK";
/// Format version this ferry writes. Version 2 added compact recipes
/// (snapshot records with an encoding byte) and base recipe digests;
/// version 3 added recipe ops (deflate re-creation of gzip'd layers),
/// volumes, signatures and extra base chunks; version 4 added delta chunk
/// records; version 5 added delta group records; version 6 added layers
/// re-created by Go encoders (Go part records) and the header's encoder
/// list; version 7 lets a volume's delta chunks name chunks of other
/// volumes of its set; version 8 added solid blocks (block records);
/// version 9 lets a block continue the block before it (its prefix);
/// version 10 added header-delta frames; version 11 leads each delta and
/// group frame with a kind byte in place of zstd's magic.
pub const VERSION: u32 = 11;
/// Oldest format version this ferry reads.
pub const MIN_VERSION: u32 = 1;

/// Record type: pack header (always the first record).
pub const REC_HEADER: u8 = 1;
/// Record type: one chunk, encoded.
pub const REC_CHUNK: u8 = 2;
/// Record type: one chunk as a delta against a chunk the receiver holds
/// (format 4).
pub const REC_DELTA: u8 = 4;
/// Most reference chunks one delta names.
pub const MAX_DELTA_BASES: usize = 4;
/// Largest delta chunk record accepted (id, length, base ids, and a zstd
/// frame of at most the chunker's maximum plus zstd's worst-case growth).
pub const MAX_DELTA_RECORD: u32 = 37 + 10 * MAX_DELTA_BASES as u32 + (256 << 10) + (64 << 10);
/// Record type: consecutive chunks (one file's new contents) as one zstd
/// frame against a run of chunks the receiver holds (format 5).
pub const REC_GROUP: u8 = 5;
/// Most chunks one group carries.
pub const MAX_GROUP_CHUNKS: usize = 4096;
/// Most decoded bytes one group carries.
pub const MAX_GROUP_OUT: u64 = 8 << 20;
/// Most base runs one group names.
pub const MAX_GROUP_RUNS: usize = 4096;
/// Most reference chunks one group names (all runs together).
pub const MAX_GROUP_BASES: u64 = 8192;
/// Most reference bytes one group may use (checked by the receiver, which
/// knows the bases' lengths).
pub const MAX_GROUP_PREFIX: u64 = 32 << 20;
/// Largest group record accepted: its lists, and a frame of at most
/// [`MAX_GROUP_OUT`] plus zstd's worst-case growth.
pub const MAX_GROUP_RECORD: u32 = (MAX_GROUP_CHUNKS as u32) * 5
    + 32
    + 10
    + (MAX_GROUP_RUNS as u32) * 20
    + (MAX_GROUP_OUT as u32)
    + (256 << 10);
/// zstd's magic: the first four bytes of every zstd frame.
pub const ZSTD_MAGIC: [u8; 4] = 0xFD2F_B528u32.to_le_bytes();
/// Delta frame kind bit (format 11): a header-delta frame
/// ([`crate::tardelta`]), not a plain zstd frame.
pub const FRAME_HEADERS: u8 = crate::tardelta::MARK;
/// Delta frame kind bit (format 11): the zstd frame's header is the one
/// its record's length gives ([`canonical_zstd_header`]), and is left out.
pub const FRAME_SIZED: u8 = 2;

/// The zstd frame header (magic, descriptor, content size) of a
/// single-segment frame of `len` bytes with no checksum and no dictionary:
/// what ferry's delta frames start with when zstd needs no window field.
pub fn canonical_zstd_header(len: u64) -> ([u8; 13], usize) {
    let mut h = [0u8; 13];
    h[..4].copy_from_slice(&ZSTD_MAGIC);
    let (code, size) = match len {
        0..256 => (0u8, 1),
        256..65_792 => (1, 2),
        65_792..=0xFFFF_FFFF => (2, 4),
        _ => (3, 8),
    };
    h[4] = code << 6 | 0x20;
    let value = if code == 1 { len - 256 } else { len };
    h[5..5 + size].copy_from_slice(&value.to_le_bytes()[..size]);
    (h, 5 + size)
}

/// A delta or group frame of a record of `len` bytes, as ferry holds it (a
/// zstd frame, or [`crate::tardelta::MARK`] and a zstd frame), in its
/// format 11 wire form: a kind byte, then the zstd frame without its magic,
/// or without its whole header when that is the one `len` gives. `None`
/// when the frame is neither.
pub fn frame_to_wire(frame: &[u8], len: u64) -> Option<(u8, &[u8])> {
    let (kind, zstd) = match frame.first() {
        Some(&FRAME_HEADERS) => (FRAME_HEADERS, &frame[1..]),
        _ => (0, frame),
    };
    let (canonical, n) = canonical_zstd_header(len);
    if zstd.starts_with(&canonical[..n]) {
        Some((kind | FRAME_SIZED, &zstd[n..]))
    } else if zstd.starts_with(&ZSTD_MAGIC) {
        Some((kind, &zstd[ZSTD_MAGIC.len()..]))
    } else {
        None
    }
}

/// Bytes a frame of a record of `len` bytes takes on the wire.
pub fn frame_wire_len(frame: &[u8], len: u64) -> usize {
    frame_to_wire(frame, len).map_or(frame.len(), |(_, rest)| 1 + rest.len())
}

/// A delta or group frame of a record of `len` bytes read from a pack of
/// `version`, in the form ferry holds it: format 11's kind byte gives back
/// what it left out; older frames are held as they were written, and a
/// header-delta frame is refused before format 10.
pub fn frame_from_wire(mut wire: Vec<u8>, len: u64, version: u32) -> Result<Vec<u8>, String> {
    if version < 11 {
        if version < 10 && wire.first() == Some(&crate::tardelta::MARK) {
            return Err(format!(
                "a header-delta frame in a version {version} pack (they start with version 10)"
            ));
        }
        return Ok(wire);
    }
    let kind = *wire.first().ok_or("record ends before its frame")?;
    if kind > (FRAME_HEADERS | FRAME_SIZED) {
        return Err(format!("unknown delta frame kind {kind}"));
    }
    let (canonical, n) = canonical_zstd_header(len);
    let left_out = if kind & FRAME_SIZED != 0 {
        &canonical[..n]
    } else {
        &ZSTD_MAGIC[..]
    };
    // The kind byte gives way to the mark (if any) and what was left out.
    let mark = (kind & FRAME_HEADERS != 0).then_some(FRAME_HEADERS);
    wire.splice(0..1, mark.into_iter().chain(left_out.iter().copied()));
    Ok(wire)
}

/// Record type: a solid block (format 8): consecutive whole chunks
/// compressed together as one zstd frame whose window spans the block.
pub const REC_BLOCK: u8 = 6;
/// Most chunks one block carries.
pub const MAX_BLOCK_CHUNKS: usize = 1 << 16;
/// Most decoded bytes one block carries.
pub const MAX_BLOCK_OUT: u64 = 64 << 20;
/// Largest block record accepted: its length list, digest, and a frame of
/// at most [`MAX_BLOCK_OUT`] plus zstd's worst-case growth.
pub const MAX_BLOCK_RECORD: u32 =
    (MAX_BLOCK_CHUNKS as u32) * 5 + 10 + 32 + 5 + (MAX_BLOCK_OUT as u32) + (1 << 20);
/// Most bytes of the block before it that a block (format 9) may take as
/// its frame's prefix.
pub const MAX_BLOCK_PREFIX: u32 = 8 << 20;
/// Record type: one snapshot and its recipe.
pub const REC_SNAPSHOT: u8 = 3;
/// Record type: trailer (the last record, unless a signature follows).
pub const REC_TRAILER: u8 = 0xFF;
/// Record type: ed25519 signature, right after the trailer of a pack whose
/// header names a signer (format 3).
pub const REC_SIGNATURE: u8 = 0xFE;
/// Signature payload size.
pub const SIGNATURE_LEN: u32 = 64;

/// Largest header record accepted.
pub const MAX_HEADER: u32 = 16 << 20;
/// Largest chunk record accepted (id, codec, length, and an encoded
/// chunk of at most the chunker's maximum plus zstd's worst-case growth).
pub const MAX_CHUNK_RECORD: u32 = 37 + (256 << 10) + (64 << 10);
/// Largest snapshot record accepted.
pub const MAX_SNAPSHOT_RECORD: u32 = 1 << 30;
/// Longest snapshot name a snapshot record may carry (bytes).
pub const MAX_NAME: u32 = 512;
/// Largest snapshot metadata a snapshot record may carry (bytes of JSON).
pub const MAX_META: u32 = 16 << 20;
/// Trailer payload size: chunk count, snapshot count, BLAKE3.
pub const TRAILER_LEN: u32 = 8 + 8 + 32;

/// Recipe piece kind: a whole chunk.
pub const PIECE_WHOLE: u8 = 0;
/// Recipe piece kind: a byte range of a chunk.
pub const PIECE_SLICE: u8 = 1;

/// Snapshot recipe encoding (v2): pieces listed with full chunk ids.
pub const RECIPE_IDS: u8 = 0;
/// Snapshot recipe encoding (v2): compact, table-indexed and compressed.
pub const RECIPE_COMPACT: u8 = 1;
/// Snapshot recipe encoding (v3): compact, with an op per piece.
pub const RECIPE_COMPACT_OPS: u8 = 2;
/// Snapshot recipe encoding (v5): as 2, with each slice's offset relative
/// to where the previous slice ended when both read the same chunk.
pub const RECIPE_COMPACT_REL: u8 = 3;

/// A little-endian encoder into a byte vector.
#[derive(Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    /// Appends a byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    /// Appends a u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends an i64.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends raw bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// Appends a string with a u32 length prefix.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.u32(v.len() as u32);
        self.bytes(v.as_bytes())
    }
}

/// A bounds-checked decoder over a record's payload. Every read checks
/// what is left before touching it; errors say which field was cut short.
pub struct Dec<'a> {
    buf: &'a [u8],
}

impl<'a> Dec<'a> {
    /// Decodes `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Dec { buf }
    }
    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
    /// Reads a varint ([`crate::varint`]).
    pub fn varint(&mut self, what: &str) -> Result<u64, String> {
        let mut at = 0;
        let v = crate::varint::get(self.buf, &mut at).map_err(|e| match e {
            crate::varint::VarintError::Truncated => format!("record ends inside its {what}"),
            crate::varint::VarintError::TooLong => format!("{what}: number too long"),
        })?;
        self.buf = &self.buf[at..];
        Ok(v)
    }

    /// Takes `n` raw bytes.
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!("record ends inside its {what}"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    /// Reads a byte.
    pub fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }
    /// Reads a u32.
    pub fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    /// Reads a u64.
    pub fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    /// Reads an i64.
    pub fn i64(&mut self, what: &str) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    /// Reads a 32-byte id or digest.
    pub fn id<T: From<[u8; 32]>>(&mut self, what: &str) -> Result<T, String> {
        let bytes: [u8; 32] = self.take(32, what)?.try_into().unwrap();
        Ok(T::from(bytes))
    }
    /// Reads a length-prefixed UTF-8 string.
    pub fn str(&mut self, what: &str) -> Result<String, String> {
        let n = self.u32(what)? as usize;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
    /// Fails unless every byte was read.
    pub fn end(&self, what: &str) -> Result<(), String> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{what} record has {} unexpected trailing bytes",
                self.buf.len()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zstd_header_a_length_gives_is_the_one_zstd_writes() {
        // Sizes on each side of the content-size field's steps.
        for len in [1usize, 255, 256, 65_791, 65_792, 300_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let base = &data[..len / 2];
            for frame in [
                crate::similarity::encode(base, &data),
                crate::similarity::encode_group(base, &data),
            ] {
                let (kind, rest) = frame_to_wire(&frame, len as u64).unwrap();
                assert_eq!(kind, FRAME_SIZED, "{len}");
                let wire = [&[kind][..], rest].concat();
                assert_eq!(frame_from_wire(wire, len as u64, VERSION).unwrap(), frame);
                // Another length's header is not this frame's.
                let (kind, _) = frame_to_wire(&frame, len as u64 + 1).unwrap();
                assert_eq!(kind, 0, "{len}");
            }
        }
        assert_eq!(frame_to_wire(b"not zstd", 8), None);
    }
}
