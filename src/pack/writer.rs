//! Writing packs: [`PackWriter`] frames records, keeps the running BLAKE3
//! and the totals, and ends with the trailer (and a signature); the
//! encoders here give the exact bytes of each record.

use std::io::{self, Write};

use super::format::*;
use super::*;

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
        if Codec::in_pack(codec as u8).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("chunk {id}: a pack carries no {codec:?} chunks"),
            ));
        }
        let mut head = [0u8; 37];
        head[..32].copy_from_slice(id.as_bytes());
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
        let head = delta_head(id, len, bases);
        let (kind, frame) = wire(payload, len as u64)?;
        self.record(REC_DELTA, &[&head, &[kind], frame])?;
        let n = 1 + frame.len() as u64;
        self.totals.chunks += 1;
        self.totals.chunk_bytes += n;
        self.totals.raw_bytes += len as u64;
        self.totals.delta_chunks += 1;
        self.totals.delta_bytes += n;
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
        let raw: u64 = lens.iter().map(|&l| l as u64).sum();
        let (kind, frame) = wire(payload, raw)?;
        self.record(REC_GROUP, &[&head, &[kind], frame])?;
        let n = lens.len() as u64;
        let bytes = 1 + frame.len() as u64;
        self.totals.chunks += n;
        self.totals.chunk_bytes += bytes;
        self.totals.raw_bytes += raw;
        self.totals.delta_chunks += n;
        self.totals.delta_bytes += bytes;
        self.totals.groups += 1;
        Ok(())
    }

    /// Writes consecutive whole chunks as one block record (format 8):
    /// `payload` is a zstd frame of their bytes, concatenated; `digest` is
    /// [`super::block_digest`] of their ids.
    pub fn block(
        &mut self,
        lens: &[u32],
        digest: &[u8; 32],
        prefix: u32,
        payload: &[u8],
    ) -> io::Result<()> {
        assert!((1..=MAX_BLOCK_CHUNKS).contains(&lens.len()), "block size");
        assert!(prefix <= MAX_BLOCK_PREFIX, "block prefix");
        self.record(REC_BLOCK, &[&block_head(lens, digest, prefix), payload])?;
        self.totals.chunks += lens.len() as u64;
        self.totals.chunk_bytes += payload.len() as u64;
        self.totals.raw_bytes += lens.iter().map(|&l| l as u64).sum::<u64>();
        self.totals.blocks += 1;
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

/// The wire form ([`frame_to_wire`]) of a delta or group frame of `len`
/// bytes; anything but a frame ferry makes is refused, never written.
fn wire(frame: &[u8], len: u64) -> io::Result<(u8, &[u8])> {
    frame_to_wire(frame, len).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a delta frame that is not a zstd frame",
        )
    })
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
        e.str(&b.name)
            .u64(b.size)
            .bytes(b.hash.as_bytes())
            .bytes(&b.recipe);
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
        e.bytes(id.as_bytes());
    }
    e.u32(header.encoders.len() as u32);
    for name in &header.encoders {
        e.str(name);
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
    if s.meta.len() > MAX_META as usize {
        return Err(io::Error::other(format!(
            "snapshot {} has metadata too large for a pack ({} bytes, at most {MAX_META})",
            s.name,
            s.meta.len()
        )));
    }
    let mut e = Enc(Vec::with_capacity(256 + s.meta.len()));
    e.str(&s.name)
        .u64(s.size)
        .bytes(s.hash.as_bytes())
        .i64(s.added_at)
        .str(&s.meta);
    match &s.pieces {
        Pieces::Ids(pieces) => {
            e.u8(RECIPE_IDS).u64(pieces.len() as u64);
            for p in pieces {
                match p {
                    PieceRef::Whole(id) => {
                        e.u8(PIECE_WHOLE).bytes(id.as_bytes());
                    }
                    PieceRef::Slice { id, off, len } => {
                        e.u8(PIECE_SLICE).bytes(id.as_bytes()).u32(*off).u32(*len);
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

/// A group record's fields before its frame.
pub(super) fn group_head(lens: &[u32], digest: &[u8; 32], bases: &[recipe::TableRef]) -> Vec<u8> {
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

/// A block record's fields before its frame.
fn block_head(lens: &[u32], digest: &[u8; 32], prefix: u32) -> Vec<u8> {
    let mut head = Vec::with_capacity(47 + 5 * lens.len());
    crate::varint::put(&mut head, lens.len() as u64);
    for &l in lens {
        crate::varint::put(&mut head, l as u64);
    }
    head.extend_from_slice(digest);
    crate::varint::put(&mut head, prefix as u64);
    head
}

/// Bytes of a block record (framing included) with a frame of `frame` bytes.
pub fn block_record_len(lens: &[u32], prefix: u32, frame: usize) -> u64 {
    5 + block_head(lens, &[0; 32], prefix).len() as u64 + frame as u64
}

/// A delta record's fields before its payload.
fn delta_head(id: &ChunkId, len: u32, bases: &[recipe::TableRef]) -> Vec<u8> {
    let mut head = Vec::with_capacity(37 + 10 * bases.len());
    head.extend_from_slice(id.as_bytes());
    head.extend_from_slice(&len.to_le_bytes());
    head.push(bases.len() as u8);
    for b in bases {
        crate::varint::put(
            &mut head,
            b.index << 1 | (b.src == recipe::Src::Base) as u64,
        );
    }
    head
}

/// Bytes of a delta record (framing included) of a chunk of `len` bytes
/// whose frame, as ferry holds it, is `payload`.
pub fn delta_record_len(bases: &[recipe::TableRef], payload: &[u8], len: u32) -> u64 {
    5 + delta_head(&ChunkId([0; 32]), 0, bases).len() as u64
        + frame_wire_len(payload, len as u64) as u64
}

/// Bytes of a group record (framing included) whose frame, as ferry holds
/// it, is `frame`.
pub fn group_record_len(lens: &[u32], bases: &[recipe::TableRef], frame: &[u8]) -> u64 {
    let out: u64 = lens.iter().map(|&l| l as u64).sum();
    5 + group_head(lens, &[0; 32], bases).len() as u64 + frame_wire_len(frame, out) as u64
}
