//! The pack format: a self-checking stream of typed records that carries
//! chunks and snapshot recipes from one store to another. [`PackWriter`]
//! writes one to any `Write` (a file or a pipe); [`PackReader`] reads one
//! from any `Read`, bounds-checking every field before allocating for it.

pub mod format;
pub mod recipe;

use std::io::{self, Read, Write};

use crate::chunker::{ChunkId, Params};
use crate::codec::Codec;
use format::*;

/// A snapshot a delta pack assumes the receiver already holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseRef {
    /// Its name on the sending side.
    pub name: String,
    /// Its stream size.
    pub size: u64,
    /// Its stream BLAKE3.
    pub hash: [u8; 32],
    /// BLAKE3 of its recipe as the sender stores it (see
    /// [`crate::store::Store::recipe_summary`]); compact recipes index into
    /// it, so the receiver's copy must match. Zero in version-1 packs.
    pub recipe: [u8; 32],
}

/// The first record of a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Chunker algorithm name.
    pub algorithm: String,
    /// Chunker parameters.
    pub params: Params,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Writing program and version.
    pub writer: String,
    /// Snapshots the receiver must already hold.
    pub bases: Vec<BaseRef>,
    /// Names of the snapshots this pack carries.
    pub snapshots: Vec<String>,
    /// Set when this pack is one volume of several (format 3).
    pub volume: Option<VolumeInfo>,
    /// Public key (ed25519) of the signer; the pack then ends with a
    /// signature after its trailer (format 3).
    pub signer: Option<[u8; 32]>,
    /// Chunks the receiver holds outside the bases (from its inventory):
    /// they follow the bases' chunk tables in the base index (format 3).
    pub extra: Vec<ChunkId>,
}

/// Where a volume sits in its set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeInfo {
    /// Identifies the set (the same in every volume).
    pub set: [u8; 16],
    /// This volume's number, from 1.
    pub index: u32,
    /// Volumes in the set.
    pub count: u32,
    /// Position of this volume's first chunk record in the set's chunk
    /// table (what compact recipes call the pack table).
    pub first: u64,
    /// Chunk records in this volume.
    pub chunks: u64,
}

/// One piece of a snapshot's recipe, by chunk id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceRef {
    /// The whole chunk.
    Whole(ChunkId),
    /// `len` bytes of the chunk from `off`.
    Slice {
        /// Chunk id.
        id: ChunkId,
        /// Offset in the chunk.
        off: u32,
        /// Length.
        len: u32,
    },
}

impl PieceRef {
    /// The chunk this piece reads.
    pub fn id(&self) -> &ChunkId {
        match self {
            PieceRef::Whole(id) | PieceRef::Slice { id, .. } => id,
        }
    }
}

/// A chunk as carried in a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecord {
    /// BLAKE3 of the decoded bytes.
    pub id: ChunkId,
    /// Encoding of `payload`.
    pub codec: Codec,
    /// Decoded length.
    pub len: u32,
    /// Encoded bytes.
    pub payload: Vec<u8>,
}

/// A chunk carried as a delta: a zstd frame whose reference prefix is the
/// decoded bytes of the `bases`, concatenated in order, which the receiver
/// holds or earlier records of the pack carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRecord {
    /// BLAKE3 of the decoded bytes.
    pub id: ChunkId,
    /// Decoded length.
    pub len: u32,
    /// The reference chunks (1 to [`MAX_DELTA_BASES`]), by their place in
    /// the tables compact recipes use.
    pub bases: Vec<recipe::TableRef>,
    /// The zstd frame.
    pub payload: Vec<u8>,
}

/// Consecutive chunks carried as one zstd frame (format 5): the new
/// contents of one file, compressed against the old version's chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Decoded length of each chunk, in order.
    pub lens: Vec<u32>,
    /// BLAKE3 of all of them, concatenated.
    pub digest: [u8; 32],
    /// The reference chunks, in order (possibly none).
    pub bases: Vec<recipe::TableRef>,
    /// The zstd frame.
    pub payload: Vec<u8>,
}

impl GroupRecord {
    /// Decoded bytes of all its chunks.
    pub fn out_len(&self) -> u64 {
        self.lens.iter().map(|&l| l as u64).sum()
    }
}

/// A snapshot as carried in a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// Name.
    pub name: String,
    /// Stream size.
    pub size: u64,
    /// Stream BLAKE3.
    pub hash: [u8; 32],
    /// When it was added on the sending side.
    pub added_at: i64,
    /// Metadata as JSON text.
    pub meta: String,
    /// The recipe.
    pub pieces: Pieces,
}

/// A snapshot's recipe as a pack carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pieces {
    /// Pieces naming their chunks by id.
    Ids(Vec<PieceRef>),
    /// Compact pieces (see [`recipe`]): `count` pieces in `data`, resolved
    /// against the pack's chunk records and the bases' chunk tables.
    Compact {
        /// Number of pieces.
        count: u64,
        /// [`RECIPE_COMPACT`], [`RECIPE_COMPACT_OPS`] (format 3) or
        /// [`RECIPE_COMPACT_REL`] (format 5).
        encoding: u8,
        /// zstd-compressed piece list.
        data: Vec<u8>,
    },
}

/// A record read from a pack.
#[derive(Debug)]
pub enum Record {
    /// A chunk.
    Chunk(ChunkRecord),
    /// A chunk as a delta against another chunk (format 4).
    Delta(DeltaRecord),
    /// Several chunks as one frame (format 5).
    Group(GroupRecord),
    /// A snapshot.
    Snapshot(SnapshotRecord),
}

/// Totals of a pack written or read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PackTotals {
    /// Chunk records.
    pub chunks: u64,
    /// Snapshot records.
    pub snapshots: u64,
    /// Encoded chunk bytes.
    pub chunk_bytes: u64,
    /// Decoded bytes of those chunks.
    pub raw_bytes: u64,
    /// Every byte of the pack.
    pub pack_bytes: u64,
    /// Of the chunk records, those carried as deltas.
    pub delta_chunks: u64,
    /// Their payload bytes (counted in `chunk_bytes` too).
    pub delta_bytes: u64,
    /// Group records (each carries several of the delta chunks).
    pub groups: u64,
}

/// Writes a pack record by record; call [`PackWriter::finish`] to write the trailer.
pub struct PackWriter<W: Write> {
    out: W,
    hasher: blake3::Hasher,
    totals: PackTotals,
    signed: bool,
}

impl<W: Write> PackWriter<W> {
    /// Writes the magic, version and header record.
    pub fn new(out: W, header: &Header) -> io::Result<Self> {
        let mut w = PackWriter {
            out,
            hasher: blake3::Hasher::new(),
            totals: PackTotals::default(),
            signed: header.signer.is_some(),
        };
        let mut pre = Vec::with_capacity(12);
        pre.extend_from_slice(MAGIC);
        pre.extend_from_slice(&VERSION.to_le_bytes());
        w.put(&pre)?;
        let e = Enc(encode_header(header)?);
        w.record(REC_HEADER, &[&e.0])?;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.hasher.update(b);
        self.totals.pack_bytes += b.len() as u64;
        self.out.write_all(b)
    }

    fn record(&mut self, kind: u8, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut head = [0u8; 5];
        head[0] = kind;
        head[1..].copy_from_slice(&(len as u32).to_le_bytes());
        self.put(&head)?;
        for p in parts {
            self.put(p)?;
        }
        Ok(())
    }

    /// Writes one chunk record.
    pub fn chunk(
        &mut self,
        id: &ChunkId,
        codec: Codec,
        len: u32,
        payload: &[u8],
    ) -> io::Result<()> {
        let mut head = [0u8; 37];
        head[..32].copy_from_slice(id);
        head[32] = codec as u8;
        head[33..].copy_from_slice(&len.to_le_bytes());
        self.record(REC_CHUNK, &[&head, payload])?;
        self.totals.chunks += 1;
        self.totals.chunk_bytes += payload.len() as u64;
        self.totals.raw_bytes += len as u64;
        Ok(())
    }

    /// Writes one chunk as a delta against `bases` (format 4).
    pub fn delta(
        &mut self,
        id: &ChunkId,
        len: u32,
        bases: &[recipe::TableRef],
        payload: &[u8],
    ) -> io::Result<()> {
        assert!(
            (1..=MAX_DELTA_BASES).contains(&bases.len()),
            "1 to 4 delta bases"
        );
        let mut head = Vec::with_capacity(37 + 10 * bases.len());
        head.extend_from_slice(id);
        head.extend_from_slice(&len.to_le_bytes());
        head.push(bases.len() as u8);
        for b in bases {
            crate::varint::put(
                &mut head,
                b.index << 1 | (b.src == recipe::Src::Base) as u64,
            );
        }
        self.record(REC_DELTA, &[&head, payload])?;
        self.totals.chunks += 1;
        self.totals.chunk_bytes += payload.len() as u64;
        self.totals.raw_bytes += len as u64;
        self.totals.delta_chunks += 1;
        self.totals.delta_bytes += payload.len() as u64;
        Ok(())
    }

    /// Writes consecutive chunks as one group record (format 5): `payload`
    /// is a zstd frame of their bytes, concatenated, with the `bases`'
    /// bytes as reference prefix (none: a plain frame).
    pub fn group(
        &mut self,
        lens: &[u32],
        digest: &[u8; 32],
        bases: &[recipe::TableRef],
        payload: &[u8],
    ) -> io::Result<()> {
        assert!((1..=MAX_GROUP_CHUNKS).contains(&lens.len()), "group size");
        let head = group_head(lens, digest, bases);
        self.record(REC_GROUP, &[&head, payload])?;
        let n = lens.len() as u64;
        let raw: u64 = lens.iter().map(|&l| l as u64).sum();
        self.totals.chunks += n;
        self.totals.chunk_bytes += payload.len() as u64;
        self.totals.raw_bytes += raw;
        self.totals.delta_chunks += n;
        self.totals.delta_bytes += payload.len() as u64;
        self.totals.groups += 1;
        Ok(())
    }

    /// Writes one snapshot record.
    pub fn snapshot(&mut self, s: &SnapshotRecord) -> io::Result<()> {
        let e = Enc(encode_snapshot(s)?);
        self.record(REC_SNAPSHOT, &[&e.0])?;
        self.totals.snapshots += 1;
        Ok(())
    }

    /// Writes the trailer (counts and the BLAKE3 of everything before it),
    /// flushes, and returns the output and totals.
    pub fn finish(self) -> io::Result<(W, PackTotals)> {
        assert!(
            !self.signed,
            "a pack with a signer in its header needs finish_signed"
        );
        self.finish_inner(None)
    }

    /// Like [`PackWriter::finish`], then signs the trailer's digest with
    /// `key` (whose public key the header names).
    pub fn finish_signed(self, key: &ed25519_dalek::SigningKey) -> io::Result<(W, PackTotals)> {
        self.finish_inner(Some(key))
    }

    fn finish_inner(
        mut self,
        key: Option<&ed25519_dalek::SigningKey>,
    ) -> io::Result<(W, PackTotals)> {
        use ed25519_dalek::Signer;
        let digest = self.hasher.finalize();
        let mut t = Enc::default();
        t.u8(REC_TRAILER)
            .u32(TRAILER_LEN)
            .u64(self.totals.chunks)
            .u64(self.totals.snapshots)
            .bytes(digest.as_bytes());
        if let Some(key) = key {
            let sig = key.sign(&signed_message(digest.as_bytes()));
            t.u8(REC_SIGNATURE)
                .u32(SIGNATURE_LEN)
                .bytes(&sig.to_bytes());
        }
        self.out.write_all(&t.0)?;
        self.totals.pack_bytes += t.0.len() as u64;
        self.out.flush()?;
        Ok((self.out, self.totals))
    }
}

/// The header record's payload.
pub fn encode_header(header: &Header) -> io::Result<Vec<u8>> {
    let mut e = Enc::default();
    e.str(&header.algorithm)
        .u32(header.params.min)
        .u32(header.params.avg)
        .u32(header.params.max)
        .i64(header.created)
        .str(&header.writer)
        .u32(header.bases.len() as u32);
    for b in &header.bases {
        e.str(&b.name).u64(b.size).bytes(&b.hash).bytes(&b.recipe);
    }
    e.u32(header.snapshots.len() as u32);
    for s in &header.snapshots {
        e.str(s);
    }
    match &header.volume {
        None => {
            e.u8(0);
        }
        Some(v) => {
            e.u8(1)
                .bytes(&v.set)
                .u32(v.index)
                .u32(v.count)
                .u64(v.first)
                .u64(v.chunks);
        }
    }
    match &header.signer {
        None => {
            e.u8(0);
        }
        Some(k) => {
            e.u8(1).bytes(k);
        }
    }
    e.u32(header.extra.len() as u32);
    for id in &header.extra {
        e.bytes(id);
    }
    if e.0.len() > MAX_HEADER as usize {
        return Err(io::Error::other(
            "pack header too large: pack fewer snapshots at once",
        ));
    }
    Ok(e.0)
}

/// Bytes a pack takes besides its chunk and snapshot records: preamble,
/// header record, trailer, and the signature when `signed`.
pub fn overhead(header: &Header, signed: bool) -> io::Result<u64> {
    let sig = if signed { 5 + SIGNATURE_LEN as u64 } else { 0 };
    Ok(12 + 5 + encode_header(header)?.len() as u64 + 5 + TRAILER_LEN as u64 + sig)
}

/// Bytes a chunk record of `clen` encoded bytes takes.
pub fn chunk_record_len(clen: u32) -> u64 {
    5 + 37 + clen as u64
}

/// A snapshot record's payload.
pub fn encode_snapshot(s: &SnapshotRecord) -> io::Result<Vec<u8>> {
    let mut e = Enc(Vec::with_capacity(256 + s.meta.len()));
    e.str(&s.name)
        .u64(s.size)
        .bytes(&s.hash)
        .i64(s.added_at)
        .str(&s.meta);
    match &s.pieces {
        Pieces::Ids(pieces) => {
            e.u8(RECIPE_IDS).u64(pieces.len() as u64);
            for p in pieces {
                match p {
                    PieceRef::Whole(id) => {
                        e.u8(PIECE_WHOLE).bytes(id);
                    }
                    PieceRef::Slice { id, off, len } => {
                        e.u8(PIECE_SLICE).bytes(id).u32(*off).u32(*len);
                    }
                }
            }
        }
        Pieces::Compact {
            count,
            encoding,
            data,
        } => {
            e.u8(*encoding).u64(*count).bytes(data);
        }
    }
    if e.0.len() > MAX_SNAPSHOT_RECORD as usize {
        return Err(io::Error::other(format!(
            "snapshot {} has a recipe too large for one pack record",
            s.name
        )));
    }
    Ok(e.0)
}

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
}

/// What a pack signature signs: a domain tag and the trailer's digest
/// (the BLAKE3 of every byte before the trailer, header included).
fn signed_message(digest: &[u8; 32]) -> Vec<u8> {
    let mut m = b"ferry pack signature v1\0".to_vec();
    m.extend_from_slice(digest);
    m
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

/// A group record's fields before its frame.
fn group_head(lens: &[u32], digest: &[u8; 32], bases: &[recipe::TableRef]) -> Vec<u8> {
    let mut head = Vec::with_capacity(48 + 5 * lens.len() + 4 * bases.len());
    crate::varint::put(&mut head, lens.len() as u64);
    for &l in lens {
        crate::varint::put(&mut head, l as u64);
    }
    head.extend_from_slice(digest);
    // Bases as runs of consecutive indices in one table.
    let mut runs: Vec<(recipe::TableRef, u64)> = Vec::new();
    for b in bases {
        match runs.last_mut() {
            Some((start, n)) if start.src == b.src && start.index + *n == b.index => *n += 1,
            _ => runs.push((*b, 1)),
        }
    }
    assert!(runs.len() <= MAX_GROUP_RUNS, "group base runs");
    crate::varint::put(&mut head, runs.len() as u64);
    for (start, n) in &runs {
        crate::varint::put(
            &mut head,
            start.index << 1 | (start.src == recipe::Src::Base) as u64,
        );
        crate::varint::put(&mut head, *n);
    }
    head
}

/// Bytes of a group record (framing included) with a frame of `frame` bytes.
pub fn group_record_len(lens: &[u32], bases: &[recipe::TableRef], frame: usize) -> u64 {
    5 + group_head(lens, &[0; 32], bases).len() as u64 + frame as u64
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
    let hash = d.id("snapshot hash")?;
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
    use recipe::{Src, TableRef};

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
        }
    }

    #[test]
    fn relative_slice_recipes_are_refused_in_packs_older_than_version_5() {
        let s = SnapshotRecord {
            name: "x".into(),
            size: 0,
            hash: [0; 32],
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
