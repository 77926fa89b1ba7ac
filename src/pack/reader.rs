//! Reading packs: [`PackReader`] checks the preamble, bounds-checks every
//! field before allocating for it, and verifies the trailer (and the
//! signature) at the end; the decoders here parse each record's payload.

use std::io::{self, Read};

use super::format::*;
use super::*;

/// Why a pack could not be read. `Io` keeps the underlying error (a read
/// failure of the medium); the rest describe the bytes.
#[derive(Debug)]
pub enum ReadError {
    /// Not a ferry pack at all.
    NotAPack,
    /// A version this ferry cannot read.
    Version(u32),
    /// The stream ended early.
    Truncated,
    /// The bytes are damaged or inconsistent.
    Corrupt(String),
    /// Reading failed.
    Io(io::Error),
    /// The signature does not match the pack and its signer's key.
    BadSignature,
    /// The pack's layers need a compression encoder this ferry does not
    /// model (format 6).
    Encoder(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotAPack => {
                write!(f, "not a ferry pack (bad magic): is this the right file?")
            }
            ReadError::Version(v) if *v > VERSION => write!(
                f,
                "pack format version {v} is newer than this ferry reads ({MIN_VERSION}..{VERSION}): upgrade ferry on this side"
            ),
            ReadError::Version(v) => write!(f, "pack format version {v} is not supported"),
            ReadError::Truncated => write!(
                f,
                "pack is truncated (it ends before its trailer): copy it again from the source"
            ),
            ReadError::Corrupt(m) => {
                write!(f, "pack is corrupt: {m}: copy it again from the source")
            }
            ReadError::Io(e) => write!(f, "reading pack: {e}"),
            ReadError::Encoder(name) => write!(
                f,
                "pack holds layers compressed by `{name}`, which this ferry cannot re-create: upgrade ferry on this side"
            ),
            ReadError::BadSignature => write!(
                f,
                "pack signature does not match (the pack was altered after signing, or signed with another key): do not trust it; get a fresh copy from the sender"
            ),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ReadError::Truncated
        } else {
            ReadError::Io(e)
        }
    }
}

fn corrupt(m: String) -> ReadError {
    ReadError::Corrupt(m)
}

/// Reads a pack record by record, verifying the trailer at the end.
pub struct PackReader<R: Read> {
    input: R,
    hasher: blake3::Hasher,
    header: Header,
    version: u32,
    chunks: u64,
    snapshots: u64,
    done: bool,
    max_chunk_len: u32,
}

impl<R: Read> PackReader<R> {
    /// Reads and checks the magic, version and header record.
    pub fn new(mut input: R) -> Result<Self, ReadError> {
        let mut pre = [0u8; 12];
        let mut got = 0;
        while got < pre.len() {
            let n = input.read(&mut pre[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got < 8 || &pre[..8] != MAGIC {
            return Err(if got < 8 && MAGIC.starts_with(&pre[..got]) && got > 0 {
                ReadError::Truncated
            } else {
                ReadError::NotAPack
            });
        }
        if got < 12 {
            return Err(ReadError::Truncated);
        }
        let version = u32::from_le_bytes(pre[8..12].try_into().unwrap());
        if !(MIN_VERSION..=VERSION).contains(&version) {
            return Err(ReadError::Version(version));
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(&pre);
        let mut r = PackReader {
            input,
            hasher,
            header: Header {
                algorithm: String::new(),
                params: Params {
                    min: 0,
                    avg: 0,
                    max: 0,
                },
                created: 0,
                writer: String::new(),
                bases: Vec::new(),
                snapshots: Vec::new(),
                volume: None,
                signer: None,
                extra: Vec::new(),
                encoders: Vec::new(),
            },
            version,
            chunks: 0,
            snapshots: 0,
            done: false,
            max_chunk_len: 0,
        };
        let (kind, payload) = r.raw_record()?;
        if kind != REC_HEADER {
            return Err(corrupt(format!(
                "first record has type {kind}, not a header"
            )));
        }
        r.header = decode_header(&payload, version).map_err(corrupt)?;
        if let Some(name) = r
            .header
            .encoders
            .iter()
            .find(|n| crate::archive::goenc::Encoder::from_name(n).is_none())
        {
            return Err(ReadError::Encoder(name.clone()));
        }
        r.max_chunk_len = r.header.params.max;
        Ok(r)
    }

    /// The pack's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.input
    }

    /// The pack's format version.
    pub fn version(&self) -> u32 {
        self.version
    }

    fn raw_record(&mut self) -> Result<(u8, Vec<u8>), ReadError> {
        let mut head = [0u8; 5];
        self.input.read_exact(&mut head)?;
        let kind = head[0];
        let len = u32::from_le_bytes(head[1..].try_into().unwrap());
        let limit = match kind {
            REC_HEADER => MAX_HEADER,
            REC_CHUNK => MAX_CHUNK_RECORD,
            REC_DELTA if self.version >= 4 => MAX_DELTA_RECORD,
            REC_GROUP if self.version >= 5 => MAX_GROUP_RECORD,
            REC_SNAPSHOT => MAX_SNAPSHOT_RECORD,
            REC_TRAILER => TRAILER_LEN,
            other => return Err(corrupt(format!("unknown record type {other}"))),
        };
        if len > limit || (kind == REC_TRAILER && len != TRAILER_LEN) {
            return Err(corrupt(format!(
                "record of type {kind} claims {len} bytes (at most {limit} allowed)"
            )));
        }
        if kind != REC_TRAILER {
            self.hasher.update(&head);
        }
        // Grow with the data actually read, never trusting `len` up front.
        let mut payload = Vec::with_capacity((len as usize).min(1 << 20));
        (&mut self.input)
            .take(len as u64)
            .read_to_end(&mut payload)?;
        if payload.len() < len as usize {
            return Err(ReadError::Truncated);
        }
        if kind != REC_TRAILER {
            self.hasher.update(&payload);
        }
        Ok((kind, payload))
    }

    /// The next chunk or snapshot record; `None` once the trailer has been
    /// read and verified (counts, BLAKE3, and nothing after it).
    pub fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let (kind, payload) = self.raw_record()?;
        match kind {
            REC_CHUNK => {
                let mut d = Dec::new(&payload);
                let id = d.id("chunk id").map_err(corrupt)?;
                let codec = d.u8("chunk codec").map_err(corrupt)?;
                let codec = Codec::from_u8(codec)
                    .ok_or_else(|| corrupt(format!("unknown chunk codec {codec}")))?;
                let len = d.u32("chunk length").map_err(corrupt)?;
                if len == 0 || len > self.max_chunk_len {
                    return Err(corrupt(format!(
                        "chunk length {len} outside 1..={}",
                        self.max_chunk_len
                    )));
                }
                let at = payload.len() - d.remaining();
                let mut payload = payload;
                payload.drain(..at);
                self.chunks += 1;
                Ok(Some(Record::Chunk(ChunkRecord {
                    id,
                    codec,
                    len,
                    payload,
                })))
            }
            REC_DELTA => {
                let mut d = Dec::new(&payload);
                let id = d.id("delta chunk id").map_err(corrupt)?;
                let len = d.u32("delta chunk length").map_err(corrupt)?;
                let n = d.u8("delta base count").map_err(corrupt)? as usize;
                if !(1..=MAX_DELTA_BASES).contains(&n) {
                    return Err(corrupt(format!("delta chunk names {n} bases")));
                }
                let mut bases = Vec::with_capacity(n);
                for _ in 0..n {
                    let v = d.varint("delta base").map_err(corrupt)?;
                    if v >> 1 >= recipe::MAX_INDEX {
                        return Err(corrupt("delta base index out of range".into()));
                    }
                    bases.push(recipe::TableRef {
                        src: if v & 1 == 1 {
                            recipe::Src::Base
                        } else {
                            recipe::Src::Pack
                        },
                        index: v >> 1,
                    });
                }
                if len == 0 || len > self.max_chunk_len {
                    return Err(corrupt(format!(
                        "delta chunk length {len} outside 1..={}",
                        self.max_chunk_len
                    )));
                }
                let at = payload.len() - d.remaining();
                let mut payload = payload;
                payload.drain(..at);
                self.chunks += 1;
                Ok(Some(Record::Delta(DeltaRecord {
                    id,
                    len,
                    bases,
                    payload,
                })))
            }
            REC_GROUP => {
                let g = decode_group(&payload, self.max_chunk_len).map_err(corrupt)?;
                self.chunks += g.lens.len() as u64;
                Ok(Some(Record::Group(g)))
            }
            REC_SNAPSHOT => {
                let s = decode_snapshot(&payload, self.version).map_err(corrupt)?;
                self.snapshots += 1;
                Ok(Some(Record::Snapshot(s)))
            }
            REC_TRAILER => {
                let mut d = Dec::new(&payload);
                let chunks = d.u64("trailer").map_err(corrupt)?;
                let snapshots = d.u64("trailer").map_err(corrupt)?;
                let digest = d.id("trailer").map_err(corrupt)?;
                if chunks != self.chunks || snapshots != self.snapshots {
                    return Err(corrupt(format!(
                        "trailer counts {chunks} chunks and {snapshots} snapshots, the pack holds {} and {}",
                        self.chunks, self.snapshots
                    )));
                }
                if digest != *self.hasher.finalize().as_bytes() {
                    return Err(corrupt(
                        "BLAKE3 of the pack does not match its trailer".into(),
                    ));
                }
                if let Some(signer) = self.header.signer {
                    let mut sig = [0u8; 5 + SIGNATURE_LEN as usize];
                    self.input.read_exact(&mut sig)?;
                    if sig[0] != REC_SIGNATURE || sig[1..5] != SIGNATURE_LEN.to_le_bytes() {
                        return Err(corrupt(
                            "the signature record after the trailer is missing".into(),
                        ));
                    }
                    let key = ed25519_dalek::VerifyingKey::from_bytes(&signer)
                        .map_err(|_| corrupt("the signer's public key is not valid".into()))?;
                    let sig = ed25519_dalek::Signature::from_bytes(sig[5..].try_into().unwrap());
                    key.verify_strict(&signed_message(&digest), &sig)
                        .map_err(|_| ReadError::BadSignature)?;
                }
                let mut extra = [0u8; 1];
                if self.input.read(&mut extra)? != 0 {
                    return Err(corrupt("unexpected bytes after the trailer".into()));
                }
                self.done = true;
                Ok(None)
            }
            _ => Err(corrupt("a second header record".into())),
        }
    }
}

/// Decodes a group record's payload, checking every count and length.
pub fn decode_group(buf: &[u8], max_chunk_len: u32) -> Result<GroupRecord, String> {
    let mut d = Dec::new(buf);
    let n = d.varint("group chunk count")?;
    if n == 0 || n > MAX_GROUP_CHUNKS as u64 {
        return Err(format!("group of {n} chunks"));
    }
    let mut lens = Vec::with_capacity(n as usize);
    let mut out = 0u64;
    for _ in 0..n {
        let l = d.varint("group chunk length")?;
        if l == 0 || l > max_chunk_len as u64 {
            return Err(format!(
                "group chunk length {l} outside 1..={max_chunk_len}"
            ));
        }
        out += l;
        lens.push(l as u32);
    }
    if out > MAX_GROUP_OUT {
        return Err(format!("group of {out} bytes (at most {MAX_GROUP_OUT})"));
    }
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
    })
}

fn decode_header(buf: &[u8], version: u32) -> Result<Header, String> {
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

/// Parses a snapshot record's payload (as [`encode_snapshot`] makes it).
pub fn decode_snapshot(buf: &[u8], version: u32) -> Result<SnapshotRecord, String> {
    let mut d = Dec::new(buf);
    let name = d.str("snapshot name")?;
    let size = d.u64("snapshot size")?;
    if size > i64::MAX as u64 {
        return Err(format!("snapshot {name} claims {size} bytes"));
    }
    let hash: SnapshotDigest = d.id("snapshot hash")?;
    let added_at = d.i64("snapshot time")?;
    let meta = d.str("snapshot metadata")?;
    let encoding = if version >= 2 {
        d.u8("recipe encoding")?
    } else {
        RECIPE_IDS
    };
    let n = d.u64("piece count")?;
    let pieces = match encoding {
        RECIPE_IDS => {
            if n > (d.remaining() / 33) as u64 {
                return Err(format!(
                    "snapshot {name} claims {n} pieces, more than its record holds"
                ));
            }
            let mut pieces = Vec::with_capacity((n as usize).min(1 << 16));
            for _ in 0..n {
                let kind = d.u8("piece kind")?;
                let id = d.id("piece chunk id")?;
                pieces.push(match kind {
                    PIECE_WHOLE => PieceRef::Whole(id),
                    PIECE_SLICE => PieceRef::Slice {
                        id,
                        off: d.u32("piece offset")?,
                        len: d.u32("piece length")?,
                    },
                    k => return Err(format!("unknown piece kind {k}")),
                });
            }
            Pieces::Ids(pieces)
        }
        RECIPE_COMPACT | RECIPE_COMPACT_OPS | RECIPE_COMPACT_REL => {
            if encoding == RECIPE_COMPACT_REL && version < 5 {
                return Err(format!(
                    "recipe encoding {encoding} in a version {version} pack"
                ));
            }
            let rest = d.remaining();
            Pieces::Compact {
                count: n,
                encoding,
                data: d.take(rest, "recipe")?.to_vec(),
            }
        }
        e => return Err(format!("unknown recipe encoding {e}")),
    };
    d.end("snapshot")?;
    Ok(SnapshotRecord {
        name,
        size,
        hash,
        added_at,
        meta,
        pieces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::recipe::{Src, TableRef};
    use crate::pack::writer::group_head;

    fn header() -> Header {
        Header {
            algorithm: crate::chunker::ALGORITHM.into(),
            params: crate::chunker::PARAMS,
            created: 0,
            writer: "test".into(),
            bases: vec![],
            snapshots: vec![],
            volume: None,
            signer: None,
            extra: vec![],
            encoders: vec![],
        }
    }

    #[test]
    fn relative_slice_recipes_are_refused_in_packs_older_than_version_5() {
        let s = SnapshotRecord {
            name: "x".into(),
            size: 0,
            hash: SnapshotDigest::default(),
            added_at: 0,
            meta: "{}".into(),
            pieces: Pieces::Compact {
                count: 0,
                encoding: RECIPE_COMPACT_REL,
                data: recipe::encode(&[]),
            },
        };
        let buf = encode_snapshot(&s).unwrap();
        assert_eq!(decode_snapshot(&buf, 5).unwrap(), s);
        assert!(decode_snapshot(&buf, 4).unwrap_err().contains("encoding 3"));
    }

    #[test]
    fn group_records_read_back_with_their_base_runs_and_bad_ones_are_refused() {
        let bases: Vec<TableRef> = [
            (Src::Base, 7),
            (Src::Base, 8),
            (Src::Base, 9),
            (Src::Pack, 2),
            (Src::Base, 3),
        ]
        .into_iter()
        .map(|(src, index)| TableRef { src, index })
        .collect();
        let mut w = PackWriter::new(Vec::new(), &header()).unwrap();
        w.group(&[100, 2000, 5], &[9; 32], &bases, b"frame")
            .unwrap();
        let (bytes, totals) = w.finish().unwrap();
        assert_eq!(
            (totals.chunks, totals.groups, totals.delta_chunks),
            (3, 1, 3)
        );
        let mut r = PackReader::new(&bytes[..]).unwrap();
        let Some(Record::Group(g)) = r.next_record().unwrap() else {
            panic!("a group record");
        };
        assert_eq!(g.lens, vec![100, 2000, 5]);
        assert_eq!(g.digest, [9; 32]);
        assert_eq!(g.bases, bases);
        assert_eq!(g.payload, b"frame");
        assert!(r.next_record().unwrap().is_none());
        // Bytes after the record framing: count, lens, digest, runs.
        let head = group_head(&[100, 2000, 5], &[9; 32], &bases);
        assert_eq!(
            head.len() as u64 + 5 + 5,
            group_record_len(&[100, 2000, 5], &bases, 5)
        );
        let max = crate::chunker::PARAMS.max;
        assert!(decode_group(&head, max).is_ok());
        for bad in [
            vec![0u8],                       // no chunks
            vec![1, 0],                      // a chunk of length 0
            vec![1, 0x81, 0x80, 0x80, 0x01], // longer than the chunker's maximum
            head[..head.len() - 1].to_vec(), // cut inside the runs
        ] {
            assert!(decode_group(&bad, max).is_err(), "{bad:?}");
        }
        let mut zero_run = group_head(&[1], &[0; 32], &[]);
        zero_run.pop();
        zero_run.extend_from_slice(&[1, 1, 0]); // one run of length 0
        assert!(decode_group(&zero_run, max).is_err());
    }
}
