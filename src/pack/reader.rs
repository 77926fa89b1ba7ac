//! Reading packs: [`PackReader`] checks the preamble and each record's
//! length against its type's limit, has each payload decoded (`decode`)
//! as its bytes arrive, and verifies the trailer (and the signature) at
//! the end.

use std::io::{self, Read};

use super::decode::{Fields, decode_group, decode_header, read_snapshot};
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
    /// The header names a signer, and the pack ends right after its
    /// trailer: the signature was removed (or never written).
    SignatureMissing,
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
            ReadError::SignatureMissing => write!(
                f,
                "pack is unsigned, but its header names a signer: its signature was removed after signing (or the copy was cut short right after its trailer); do not trust it; get a fresh copy from the sender"
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

    /// Reads a record's frame and checks its length against its type's
    /// limit; the frame is hashed, except a trailer's.
    fn record_head(&mut self) -> Result<(u8, u32), ReadError> {
        let mut head = [0u8; 5];
        self.input.read_exact(&mut head)?;
        let kind = head[0];
        let len = u32::from_le_bytes(head[1..].try_into().unwrap());
        let limit = match kind {
            REC_HEADER => MAX_HEADER,
            REC_CHUNK => MAX_CHUNK_RECORD,
            REC_DELTA if self.version >= 4 => MAX_DELTA_RECORD,
            REC_GROUP if self.version >= 5 => MAX_GROUP_RECORD,
            REC_BLOCK if self.version >= 8 => MAX_BLOCK_RECORD,
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
        Ok((kind, len))
    }

    /// Reads a record's payload whole (every type but snapshots, whose
    /// limits are small); the buffer grows with the bytes that arrive.
    fn payload(&mut self, kind: u8, len: u32) -> Result<Vec<u8>, ReadError> {
        let hasher = (kind != REC_TRAILER).then_some(&mut self.hasher);
        Fields::new(&mut self.input, hasher, len as u64).bytes(len as u64, "payload")
    }

    fn raw_record(&mut self) -> Result<(u8, Vec<u8>), ReadError> {
        let (kind, len) = self.record_head()?;
        Ok((kind, self.payload(kind, len)?))
    }

    /// The next chunk or snapshot record; `None` once the trailer has been
    /// read and verified (counts, BLAKE3, and nothing after it).
    pub fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let (kind, len) = self.record_head()?;
        if kind == REC_SNAPSHOT {
            // Read field by field: up to 1 GiB may be claimed.
            let mut f = Fields::new(&mut self.input, Some(&mut self.hasher), len as u64);
            let s = read_snapshot(&mut f, self.version)?;
            self.snapshots += 1;
            return Ok(Some(Record::Snapshot(s)));
        }
        let payload = self.payload(kind, len)?;
        match kind {
            REC_CHUNK => {
                let mut d = Dec::new(&payload);
                let id = d.id("chunk id").map_err(corrupt)?;
                let codec = d.u8("chunk codec").map_err(corrupt)?;
                let codec = Codec::in_pack(codec)
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
                let wire_len = payload.len() as u32;
                let payload =
                    frame_from_wire(payload, len as u64, self.version).map_err(corrupt)?;
                self.chunks += 1;
                Ok(Some(Record::Delta(DeltaRecord {
                    id,
                    len,
                    bases,
                    payload,
                    wire_len,
                })))
            }
            REC_GROUP => {
                let mut g = decode_group(&payload, self.max_chunk_len).map_err(corrupt)?;
                g.payload =
                    frame_from_wire(std::mem::take(&mut g.payload), g.out_len(), self.version)
                        .map_err(corrupt)?;
                self.chunks += g.lens.len() as u64;
                Ok(Some(Record::Group(g)))
            }
            REC_BLOCK => {
                let b = decode_block(payload, self.max_chunk_len, self.version).map_err(corrupt)?;
                self.chunks += b.lens.len() as u64;
                Ok(Some(Record::Block(b)))
            }
            REC_TRAILER => {
                self.trailer(&payload)?;
                self.done = true;
                Ok(None)
            }
            _ => Err(corrupt("a second header record".into())),
        }
    }

    /// Checks the trailer (counts and the pack's BLAKE3), the signature
    /// when the header names a signer, and that nothing follows.
    fn trailer(&mut self, payload: &[u8]) -> Result<(), ReadError> {
        let mut d = Dec::new(payload);
        let chunks = d.u64("trailer").map_err(corrupt)?;
        let snapshots = d.u64("trailer").map_err(corrupt)?;
        let digest: [u8; 32] = d.id("trailer").map_err(corrupt)?;
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
            self.signature(&signer, &digest)?;
        }
        let mut extra = [0u8; 1];
        if self.input.read(&mut extra)? != 0 {
            return Err(corrupt("unexpected bytes after the trailer".into()));
        }
        Ok(())
    }

    /// Reads the signature record after the trailer and checks it against
    /// the signer's key and the pack's BLAKE3.
    fn signature(&mut self, signer: &[u8; 32], digest: &[u8; 32]) -> Result<(), ReadError> {
        let mut sig = [0u8; 5 + SIGNATURE_LEN as usize];
        let mut got = 0;
        while got < sig.len() {
            match self.input.read(&mut sig[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if got == 0 {
            return Err(ReadError::SignatureMissing);
        }
        if got < sig.len() {
            return Err(corrupt("it ends inside its signature record".into()));
        }
        if sig[0] != REC_SIGNATURE || sig[1..5] != SIGNATURE_LEN.to_le_bytes() {
            return Err(corrupt(
                "the record after the trailer is not a signature record".into(),
            ));
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(signer)
            .map_err(|_| corrupt("the signer's public key is not valid".into()))?;
        let sig = ed25519_dalek::Signature::from_bytes(sig[5..].try_into().unwrap());
        key.verify_strict(&signed_message(digest), &sig)
            .map_err(|_| ReadError::BadSignature)
    }
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
    fn delta_frames_go_with_a_kind_byte_for_what_they_leave_out_and_older_packs_keep_theirs() {
        let base = [TableRef {
            src: Src::Base,
            index: 0,
        }];
        // A frame whose zstd header is the one its length gives goes
        // without it; any other without zstd's magic.
        let (sized, n) = canonical_zstd_header(600);
        let zstd = [&ZSTD_MAGIC[..], &[7, 7, 7]].concat();
        let headers = [&[crate::tardelta::MARK][..], &zstd].concat();
        let sized_zstd = [&sized[..n], &[7, 7, 7]].concat();
        let sized_headers = [&[crate::tardelta::MARK][..], &sized_zstd].concat();
        for (frame, kind) in [
            (&zstd, 0),
            (&headers, FRAME_HEADERS),
            (&sized_zstd, FRAME_SIZED),
            (&sized_headers, FRAME_HEADERS | FRAME_SIZED),
        ] {
            let mut w = PackWriter::new(Vec::new(), &header()).unwrap();
            w.delta(&ChunkId([3; 32]), 600, &base, frame).unwrap();
            let (mut bytes, totals) = w.finish().unwrap();
            assert_eq!(totals.delta_bytes, 4);
            let mut r = PackReader::new(&bytes[..]).unwrap();
            let Some(Record::Delta(d)) = r.next_record().unwrap() else {
                panic!("a delta record");
            };
            assert_eq!(&d.payload, frame);
            // On the wire: the kind byte, then the frame without zstd's magic.
            let at = bytes.windows(4).position(|w| w == [kind, 7, 7, 7]).unwrap();
            assert!(!bytes.windows(4).any(|w| w == ZSTD_MAGIC));
            // An unknown kind is refused.
            let mut bad = bytes.clone();
            bad[at] = 9;
            let e = PackReader::new(&bad[..])
                .unwrap()
                .next_record()
                .unwrap_err();
            assert!(e.to_string().contains("unknown delta frame kind 9"), "{e}");
            // A version 10 pack's frame is held as it was written; a
            // header-delta frame in a version 9 pack is refused.
            bytes[8] = 10;
            let mut r = PackReader::new(&bytes[..]).unwrap();
            let Some(Record::Delta(d)) = r.next_record().unwrap() else {
                panic!("a delta record");
            };
            assert_eq!(d.payload, [kind, 7, 7, 7]);
            bytes[8] = 9;
            let got = PackReader::new(&bytes[..]).unwrap().next_record();
            if kind == FRAME_HEADERS {
                let e = got.unwrap_err().to_string();
                assert!(e.contains("header-delta frame in a version 9 pack"), "{e}");
            } else {
                assert!(got.is_ok());
            }
        }
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
        let frame = [&ZSTD_MAGIC[..], b"frame"].concat();
        w.group(&[100, 2000, 5], &[9; 32], &bases, &frame).unwrap();
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
        assert_eq!(g.payload, frame);
        assert!(r.next_record().unwrap().is_none());
        // Bytes after the record framing: count, lens, digest, runs.
        let head = group_head(&[100, 2000, 5], &[9; 32], &bases);
        assert_eq!(
            head.len() as u64 + 5 + 1 + 5,
            group_record_len(&[100, 2000, 5], &bases, &frame)
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
