//! How a chunk's bytes are encoded at rest and in packs: zstd, or raw when
//! zstd would not make them smaller. Compression contexts are kept per thread.

use std::cell::RefCell;

/// Chunk encodings. The numbers are part of the store and pack formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// The chunk's bytes as they are.
    Raw = 0,
    /// One zstd frame holding the chunk's bytes.
    Zstd = 1,
}

impl Codec {
    /// Parses a stored codec number.
    pub fn from_u8(v: u8) -> Option<Codec> {
        match v {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// zstd level used for chunks: level 1 keeps adding new data fast (level 3
/// stores about 5% less for about twice the compression time); delta packs
/// re-compress what they send at a higher level anyway.
pub const ZSTD_LEVEL: i32 = 1;

thread_local! {
    static COMPRESSOR: RefCell<zstd::bulk::Compressor<'static>> =
        RefCell::new(zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("zstd context"));
    static DECOMPRESSOR: RefCell<zstd::bulk::Decompressor<'static>> =
        RefCell::new(zstd::bulk::Decompressor::new().expect("zstd context"));
}

/// Encodes a chunk, choosing raw when compression does not pay.
pub fn encode(data: Vec<u8>) -> (Codec, Vec<u8>) {
    let z = COMPRESSOR.with(|c| c.borrow_mut().compress(&data));
    match z {
        Ok(z) if z.len() < data.len() => (Codec::Zstd, z),
        _ => (Codec::Raw, data),
    }
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
    }
}
