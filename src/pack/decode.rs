//! Decoding record payloads: the header and group records from their
//! bytes, and snapshot records field by field as they arrive, so that no
//! allocation is sized by a length the pack claims before those bytes are
//! there (docs/FORMAT.md gives every limit checked here).

use std::io::Read;

use super::format::*;
use super::reader::ReadError;
use super::*;

/// Reads the chunk count and lengths that open a group or block (`what`)
/// record: 1 to `max_n` chunks of 1 to `max_chunk_len` bytes, at most
/// `max_out` in all.
fn chunk_lens(
    d: &mut Dec<'_>,
    what: &str,
    max_n: usize,
    max_out: u64,
    max_chunk_len: u32,
) -> Result<Vec<u32>, String> {
    let n = d.varint(&format!("{what} chunk count"))?;
    if n == 0 || n > max_n as u64 {
        return Err(format!("{what} of {n} chunks"));
    }
    let mut lens = Vec::with_capacity(n as usize);
    let mut out = 0u64;
    let field = format!("{what} chunk length");
    for _ in 0..n {
        let l = d.varint(&field)?;
        if l == 0 || l > max_chunk_len as u64 {
            return Err(format!(
                "{what} chunk length {l} outside 1..={max_chunk_len}"
            ));
        }
        out += l;
        lens.push(l as u32);
    }
    if out > max_out {
        return Err(format!("{what} of {out} bytes (at most {max_out})"));
    }
    Ok(lens)
}

/// Decodes a block record's payload of a pack of `version`, checking every
/// count and length.
pub fn decode_block(
    mut buf: Vec<u8>,
    max_chunk_len: u32,
    version: u32,
) -> Result<BlockRecord, String> {
    let mut d = Dec::new(&buf);
    let lens = chunk_lens(
        &mut d,
        "block",
        MAX_BLOCK_CHUNKS,
        MAX_BLOCK_OUT,
        max_chunk_len,
    )?;
    let digest = d.id("block digest")?;
    let prefix = if version >= 9 {
        d.varint("block prefix")?
    } else {
        0
    };
    if prefix > MAX_BLOCK_PREFIX as u64 {
        return Err(format!(
            "block prefix of {prefix} bytes (at most {MAX_BLOCK_PREFIX})"
        ));
    }
    let at = buf.len() - d.remaining();
    // The frame stays where it is (up to 64 MiB): no copy.
    buf.drain(..at);
    Ok(BlockRecord {
        lens,
        digest,
        prefix: prefix as u32,
        payload: buf,
    })
}

/// Decodes a group record's payload, checking every count and length.
pub fn decode_group(buf: &[u8], max_chunk_len: u32) -> Result<GroupRecord, String> {
    let mut d = Dec::new(buf);
    let lens = chunk_lens(
        &mut d,
        "group",
        MAX_GROUP_CHUNKS,
        MAX_GROUP_OUT,
        max_chunk_len,
    )?;
    let digest = d.id("group digest")?;
    let runs = d.varint("group base runs")?;
    if runs > MAX_GROUP_RUNS as u64 {
        return Err(format!("group names {runs} base runs"));
    }
    let mut bases = Vec::new();
    for _ in 0..runs {
        let v = d.varint("group base")?;
        let count = d.varint("group base run")?;
        if v >> 1 >= recipe::MAX_INDEX || count == 0 || count > MAX_GROUP_BASES {
            return Err("group base run out of range".into());
        }
        if bases.len() as u64 + count > MAX_GROUP_BASES {
            return Err(format!("group names more than {MAX_GROUP_BASES} bases"));
        }
        let src = if v & 1 == 1 {
            recipe::Src::Base
        } else {
            recipe::Src::Pack
        };
        for i in 0..count {
            bases.push(recipe::TableRef {
                src,
                index: (v >> 1) + i,
            });
        }
    }
    let at = buf.len() - d.remaining();
    Ok(GroupRecord {
        lens,
        digest,
        bases,
        payload: buf[at..].to_vec(),
        wire_len: (buf.len() - at) as u32,
    })
}

pub(super) fn decode_header(buf: &[u8], version: u32) -> Result<Header, String> {
    let mut d = Dec::new(buf);
    let algorithm = d.str("chunker name")?;
    let params = Params {
        min: d.u32("chunker min")?,
        avg: d.u32("chunker avg")?,
        max: d.u32("chunker max")?,
    };
    if params.max == 0 || params.max > 16 << 20 {
        return Err(format!("chunker maximum {} is out of range", params.max));
    }
    let created = d.i64("creation time")?;
    let writer = d.str("writer")?;
    let n = d.u32("base count")? as usize;
    if n > d.remaining() / 44 {
        return Err(format!("header claims {n} bases, more than it can hold"));
    }
    let mut bases = Vec::with_capacity(n);
    for _ in 0..n {
        bases.push(BaseRef {
            name: d.str("base name")?,
            size: d.u64("base size")?,
            hash: d.id("base hash")?,
            recipe: if version >= 2 {
                d.id("base recipe digest")?
            } else {
                [0; 32]
            },
        });
    }
    let n = d.u32("snapshot count")? as usize;
    if n > d.remaining() / 4 {
        return Err(format!(
            "header claims {n} snapshots, more than it can hold"
        ));
    }
    let mut snapshots = Vec::with_capacity(n);
    for _ in 0..n {
        snapshots.push(d.str("snapshot name")?);
    }
    let mut volume = None;
    let mut signer = None;
    let mut extra = Vec::new();
    if version >= 3 {
        volume = match d.u8("volume flag")? {
            0 => None,
            1 => {
                let v = VolumeInfo {
                    set: d.take(16, "volume set")?.try_into().unwrap(),
                    index: d.u32("volume index")?,
                    count: d.u32("volume count")?,
                    first: d.u64("volume first chunk")?,
                    chunks: d.u64("volume chunks")?,
                };
                if v.index == 0 || v.index > v.count || v.first > 1 << 48 || v.chunks > 1 << 48 {
                    return Err(format!("volume {} of {} is out of range", v.index, v.count));
                }
                Some(v)
            }
            f => return Err(format!("unknown volume flag {f}")),
        };
        signer = match d.u8("signer flag")? {
            0 => None,
            1 => Some(d.id("signer key")?),
            f => return Err(format!("unknown signer flag {f}")),
        };
        let n = d.u32("extra chunk count")? as usize;
        if n > d.remaining() / 32 {
            return Err(format!(
                "header claims {n} extra chunks, more than it can hold"
            ));
        }
        extra.reserve(n);
        for _ in 0..n {
            extra.push(d.id("extra chunk id")?);
        }
    }
    let mut encoders = Vec::new();
    if version >= 6 {
        let n = d.u32("encoder count")? as usize;
        if n > d.remaining() / 4 {
            return Err(format!("header claims {n} encoders, more than it can hold"));
        }
        for _ in 0..n {
            encoders.push(d.str("encoder name")?);
        }
    }
    d.end("header")?;
    Ok(Header {
        algorithm,
        params,
        created,
        writer,
        bases,
        snapshots,
        volume,
        signer,
        extra,
        encoders,
    })
}

/// A record's payload read field by field from a stream, each field
/// hashed into the pack's BLAKE3 as it arrives. A field longer than what
/// is left of the record is corrupt; a stream that ends early is
/// truncated. Buffers grow with the bytes read, never with a claimed
/// length.
pub(super) struct Fields<'a, R: Read> {
    input: &'a mut R,
    hasher: Option<&'a mut blake3::Hasher>,
    left: u64,
}

impl<'a, R: Read> Fields<'a, R> {
    /// The `len` payload bytes that follow in `input`.
    pub fn new(input: &'a mut R, hasher: Option<&'a mut blake3::Hasher>, len: u64) -> Self {
        Fields {
            input,
            hasher,
            left: len,
        }
    }

    /// Bytes of the record not yet read.
    pub fn left(&self) -> u64 {
        self.left
    }

    fn claim(&mut self, n: u64, what: &str) -> Result<(), ReadError> {
        if n > self.left {
            return Err(ReadError::Corrupt(format!("record ends inside its {what}")));
        }
        self.left -= n;
        Ok(())
    }

    /// Reads `n` bytes into a vector that grows as they arrive.
    pub fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, ReadError> {
        self.claim(n, what)?;
        let mut v = Vec::with_capacity(n.min(1 << 20) as usize);
        (&mut *self.input).take(n).read_to_end(&mut v)?;
        if (v.len() as u64) < n {
            return Err(ReadError::Truncated);
        }
        if let Some(h) = self.hasher.as_deref_mut() {
            h.update(&v);
        }
        Ok(v)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ReadError> {
        self.claim(N as u64, what)?;
        let mut a = [0u8; N];
        self.input.read_exact(&mut a)?;
        if let Some(h) = self.hasher.as_deref_mut() {
            h.update(&a);
        }
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ReadError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u32(&mut self, what: &str) -> Result<u32, ReadError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, ReadError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn i64(&mut self, what: &str) -> Result<i64, ReadError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    fn id<T: From<[u8; 32]>>(&mut self, what: &str) -> Result<T, ReadError> {
        Ok(T::from(self.array::<32>(what)?))
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes.
    fn str(&mut self, max: u32, what: &str) -> Result<String, ReadError> {
        let n = self.u32(what)?;
        if n > max {
            return Err(ReadError::Corrupt(format!(
                "{what} of {n} bytes (at most {max})"
            )));
        }
        let b = self.bytes(n as u64, what)?;
        String::from_utf8(b).map_err(|_| ReadError::Corrupt(format!("{what} is not UTF-8")))
    }
}

/// Reads a snapshot record's payload (as [`encode_snapshot`] makes it)
/// from `f`. Each field is checked as it arrives: a name or metadata over
/// its limit, or a compact recipe longer than its piece count can
/// compress to, is refused before its bytes are read, so memory stays
/// bounded by what a genuine record needs, whatever the record claims.
pub(super) fn read_snapshot<R: Read>(
    f: &mut Fields<'_, R>,
    version: u32,
) -> Result<SnapshotRecord, ReadError> {
    let corrupt = ReadError::Corrupt;
    let name = f.str(MAX_NAME, "snapshot name")?;
    if name.is_empty() {
        return Err(corrupt("a snapshot record has an empty name".into()));
    }
    let size = f.u64("snapshot size")?;
    if size > i64::MAX as u64 {
        return Err(corrupt(format!("snapshot {name} claims {size} bytes")));
    }
    let hash: SnapshotDigest = f.id("snapshot hash")?;
    let added_at = f.i64("snapshot time")?;
    let meta = f.str(MAX_META, "snapshot metadata")?;
    let encoding = if version >= 2 {
        f.u8("recipe encoding")?
    } else {
        RECIPE_IDS
    };
    let n = f.u64("piece count")?;
    let pieces = match encoding {
        RECIPE_IDS => {
            if n > f.left() / 33 {
                return Err(corrupt(format!(
                    "snapshot {name} claims {n} pieces, more than its record holds"
                )));
            }
            let mut pieces = Vec::with_capacity((n as usize).min(1 << 16));
            for _ in 0..n {
                let kind = f.u8("piece kind")?;
                let id = f.id("piece chunk id")?;
                pieces.push(match kind {
                    PIECE_WHOLE => PieceRef::Whole(id),
                    PIECE_SLICE => PieceRef::Slice {
                        id,
                        off: f.u32("piece offset")?,
                        len: f.u32("piece length")?,
                    },
                    k => return Err(corrupt(format!("unknown piece kind {k}"))),
                });
            }
            Pieces::Ids(pieces)
        }
        RECIPE_COMPACT | RECIPE_COMPACT_OPS | RECIPE_COMPACT_REL => {
            if encoding == RECIPE_COMPACT_REL && version < 5 {
                return Err(corrupt(format!(
                    "recipe encoding {encoding} in a version {version} pack"
                )));
            }
            let rest = f.left();
            let most = recipe::max_frame(n);
            if rest > most {
                return Err(corrupt(format!(
                    "snapshot {name}: its recipe takes {rest} bytes, more than {n} pieces compress to (at most {most})"
                )));
            }
            Pieces::Compact {
                count: n,
                encoding,
                data: f.bytes(rest, "recipe")?,
            }
        }
        e => return Err(corrupt(format!("unknown recipe encoding {e}"))),
    };
    if f.left() != 0 {
        return Err(corrupt(format!(
            "snapshot record has {} unexpected trailing bytes",
            f.left()
        )));
    }
    Ok(SnapshotRecord {
        name,
        size,
        hash,
        added_at,
        meta,
        pieces,
    })
}

/// Parses a snapshot record's payload (as [`encode_snapshot`] makes it).
pub fn decode_snapshot(buf: &[u8], version: u32) -> Result<SnapshotRecord, String> {
    let mut input = buf;
    let mut f = Fields::new(&mut input, None, buf.len() as u64);
    read_snapshot(&mut f, version).map_err(|e| match e {
        ReadError::Corrupt(m) => m,
        other => other.to_string(),
    })
}
