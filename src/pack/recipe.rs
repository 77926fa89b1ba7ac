//! Compact recipes in packs (format version 2). A piece names its chunk not
//! by its 32-byte id but by an index into a table both sides can build: the
//! chunk records of this pack in order ("pack" indices), then the distinct
//! chunks of each base snapshot in first-use order ("base" indices). Each
//! piece is one varint holding the zigzag delta from the previous index of
//! the same kind, so runs in the base's order cost about a byte, and the
//! whole list is zstd-compressed. Format 3 adds each piece's op (see
//! [`Op`]) to the token, and a deflate part's output length after it.

use std::io::Read;

use crate::store::Op;
use crate::varint::{self, VarintError};

/// Where a piece's chunk is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Src {
    /// The n-th chunk record of this pack.
    Pack,
    /// The n-th distinct chunk of the base snapshots, in header order.
    Base,
}

/// A chunk named by its place in one of the two tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableRef {
    /// Which table.
    pub src: Src,
    /// Index into it.
    pub index: u64,
}

/// One piece of a compact recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedPiece {
    /// Which table.
    pub src: Src,
    /// Index into it.
    pub index: u64,
    /// A byte range of the chunk, or the whole chunk.
    pub slice: Option<(u32, u32)>,
    /// What the bytes are for.
    pub op: Op,
    /// Output bytes of an [`Op::Part`] piece (0 otherwise).
    pub out: u64,
}

/// Indices above this are refused (keeps the arithmetic far from overflow).
pub const MAX_INDEX: u64 = 1 << 48;
/// Largest decoded recipe accepted (tens of millions of pieces).
pub const MAX_RAW: u64 = 64 << 20;
/// Most bytes the zstd frame of a compact recipe of `count` pieces may
/// take: zstd's worst case for the most its content may decode to
/// ([`decode_each`] refuses more than `40 × count`, and more than
/// [`MAX_RAW`]).
pub fn max_frame(count: u64) -> u64 {
    let raw = count.saturating_mul(40).min(MAX_RAW);
    zstd::zstd_safe::compress_bound(raw as usize) as u64
}

/// zstd level for recipes: they are small and worth squeezing.
const LEVEL: i32 = 19;

/// Reads one number of a recipe at `at`, advancing it.
fn number(buf: &[u8], at: &mut usize) -> Result<u64, String> {
    varint::get(buf, at).map_err(|e| match e {
        VarintError::Truncated => "recipe ends inside a number".to_string(),
        VarintError::TooLong => "recipe number too long".to_string(),
    })
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encodes and compresses pieces, with ops and relative slice offsets
/// (encoding 3 of format 5).
pub fn encode(pieces: &[IndexedPiece]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(pieces.len() * 2);
    let mut prev = [0i64; 2];
    let mut last_slice: Option<(usize, u64, u32)> = None;
    for p in pieces {
        let k = p.src as usize;
        let delta = p.index as i64 - prev[k];
        prev[k] = p.index as i64;
        let token = (zigzag(delta) << 4)
            | ((p.op as u64) << 2)
            | ((k as u64) << 1)
            | p.slice.is_some() as u64;
        varint::put(&mut raw, token);
        if let Some((off, len)) = p.slice {
            let expected = match last_slice {
                Some((kk, index, end)) if kk == k && index == p.index => end,
                _ => 0,
            };
            varint::put(&mut raw, zigzag(off as i64 - expected as i64));
            varint::put(&mut raw, len as u64);
            last_slice = Some((k, p.index, off.wrapping_add(len)));
        }
        if p.op == Op::Part {
            varint::put(&mut raw, p.out);
        }
    }
    zstd::bulk::compress(&raw, LEVEL).expect("zstd in memory")
}

/// Decompresses and decodes `count` pieces of `encoding` into a vector
/// (for tests and small recipes; [`decode_each`] streams).
pub fn decode(data: &[u8], count: u64, encoding: u8) -> Result<Vec<IndexedPiece>, String> {
    let mut out = Vec::new();
    decode_each(
        data,
        count,
        encoding,
        |m| m,
        |p| {
            out.push(p);
            Ok(())
        },
    )?;
    Ok(out)
}

/// Decompresses `count` pieces of `encoding` (1 plain, 2 with ops, 3 with
/// ops and relative slice offsets) and hands each to `each` as it is decoded,
/// so memory stays bounded by the compressed frame's content (at most
/// [`MAX_RAW`]) whatever `count` claims. Every field is range-checked;
/// `bad` turns a decoding problem into the caller's error type.
pub fn decode_each<E>(
    data: &[u8],
    count: u64,
    encoding: u8,
    bad: impl Fn(String) -> E,
    mut each: impl FnMut(IndexedPiece) -> Result<(), E>,
) -> Result<(), E> {
    // Each piece takes at least one byte and at most 4 varints of 10 bytes;
    // the output grows with what actually decompresses, up to that bound.
    let bound = count.saturating_mul(40).min(MAX_RAW);
    let mut raw = Vec::new();
    zstd::stream::read::Decoder::new(data)
        .and_then(|d| d.take(bound + 1).read_to_end(&mut raw))
        .map_err(|e| bad(format!("recipe does not decompress: {e}")))?;
    if raw.len() as u64 > bound {
        return Err(bad(format!("recipe holds more than {count} pieces")));
    }
    if count > raw.len() as u64 {
        return Err(bad(format!("recipe claims {count} pieces but holds fewer")));
    }
    let ops = encoding >= 2;
    let rel = encoding >= 3;
    let mut at = 0;
    let mut prev = [0i64; 2];
    let mut last_slice: Option<(usize, i64, u64)> = None;
    for _ in 0..count {
        let mut token = number(&raw, &mut at).map_err(&bad)?;
        let mut op = Op::Out;
        if ops {
            op = Op::from_u8(((token >> 2) & 3) as u8)
                .ok_or_else(|| bad("recipe piece has an unknown op".into()))?;
            token = (token >> 4) << 2 | (token & 3);
        }
        let k = ((token >> 1) & 1) as usize;
        let index = prev[k]
            .checked_add(unzigzag(token >> 2))
            .filter(|&i| (0..MAX_INDEX as i64).contains(&i))
            .ok_or_else(|| bad("recipe index out of range".into()))?;
        prev[k] = index;
        let slice = if token & 1 == 1 {
            let field = number(&raw, &mut at).map_err(&bad)?;
            let len = number(&raw, &mut at).map_err(&bad)?;
            let off = if rel {
                let expected = match last_slice {
                    Some((kk, i, end)) if kk == k && i == index => end as i64,
                    _ => 0,
                };
                expected.checked_add(unzigzag(field)).unwrap_or(-1)
            } else {
                i64::try_from(field).unwrap_or(-1)
            };
            if !(0..=u32::MAX as i64).contains(&off) || len > u32::MAX as u64 {
                return Err(bad("recipe slice out of range".into()));
            }
            last_slice = Some((k, index, (off as u32).wrapping_add(len as u32) as u64));
            Some((off as u32, len as u32))
        } else {
            None
        };
        let out = if op == Op::Part {
            number(&raw, &mut at).map_err(&bad)?
        } else {
            0
        };
        each(IndexedPiece {
            src: if k == 0 { Src::Pack } else { Src::Base },
            index: index as u64,
            slice,
            op,
            out,
        })?;
    }
    if at != raw.len() {
        return Err(bad("recipe has trailing bytes".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_runs_are_cheap() {
        let mut pieces = Vec::new();
        for i in 0..5000u64 {
            pieces.push(IndexedPiece {
                src: Src::Base,
                index: 100 + i,
                slice: None,
                op: Op::Out,
                out: 0,
            });
            pieces.push(IndexedPiece {
                src: Src::Pack,
                index: i / 8,
                slice: Some(((i % 8 * 600) as u32, 600)),
                op: if i % 3 == 0 { Op::Plain } else { Op::Out },
                out: 0,
            });
            if i % 100 == 0 {
                pieces.push(IndexedPiece {
                    src: Src::Pack,
                    index: i,
                    slice: None,
                    op: Op::Part,
                    out: 500_000 + i,
                });
            }
        }
        let data = encode(&pieces);
        let n = pieces.len() as u64;
        assert_eq!(decode(&data, n, 3).unwrap(), pieces);
        assert!(data.len() < 2500, "10050 pieces took {} bytes", data.len());
        assert!(decode(&data, n + 1, 3).is_err());
        assert!(decode(&data[..data.len() - 1], n, 3).is_err());
        // Read as an older encoding, the same bytes mean other pieces.
        assert_ne!(decode(&data, n, 2).ok(), Some(pieces.clone()));
        assert_ne!(decode(&data, n, 1).ok(), Some(pieces));
    }
}
