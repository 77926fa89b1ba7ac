//! `ferry checkout`: streams a snapshot back out, byte for byte, decoding
//! chunks in parallel and checking the BLAKE3 of the whole stream against
//! the one recorded when it was added.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc;

use crate::archive::recreate::{RecreateError, Recreator};
use crate::chunker::ChunkId;
use crate::error::{Error, Result};
use crate::output::AtomicFile;
use crate::progress::Progress;
use crate::store::{ChunkEntry, Damage, Op, Piece, Snapshot, SnapshotDigest, Store};

/// A decoded recipe piece.
pub struct Decoded {
    /// What its bytes are for.
    pub op: Op,
    /// Output bytes of a deflate part.
    pub out: u64,
    /// The piece's bytes.
    pub data: Vec<u8>,
}

impl Decoded {
    /// Bytes it adds to the output stream.
    pub fn output(&self) -> u64 {
        match self.op {
            Op::Out => self.data.len() as u64,
            Op::Plain => 0,
            Op::Part => self.out,
        }
    }
}

/// Bytes of small pieces gathered before they are hashed and written.
const GATHER: usize = 256 << 10;
/// Pieces shorter than this are gathered; longer ones go straight out.
const SMALL_PIECE: usize = 16 << 10;

/// Stored bytes read between two drops of the data files' mapped pages:
/// bounds what reading adds to the resident set.
const RELEASE_EVERY: u64 = 32 << 20;

/// Pieces decoded per batch: bounds memory to about 2 x 256 x 256 KiB.
const BATCH: usize = 256;

/// Writes snapshot `name` to `out` and verifies it. On a mismatch the bytes
/// already written are wrong: callers writing to a file should use
/// [`checkout_to_path`], which only keeps verified output.
pub fn checkout(
    store: &Store,
    name: &str,
    out: &mut (dyn Write + Send),
    progress: &dyn Progress,
) -> Result<Snapshot> {
    stream(store, name, out, progress, true)
}

/// Checks that snapshot `name` rebuilds to the BLAKE3 recorded for it,
/// writing it nowhere. The stream's digest covers every byte, so chunks are
/// decoded without checking each against its id; when the digest does not
/// match, a second pass that checks every chunk tells damaged chunks of
/// the store (a store error) from a wrong recipe (the first error).
pub fn check_rebuilds(store: &Store, name: &str, progress: &dyn Progress) -> Result<Snapshot> {
    let first = match stream(store, name, &mut std::io::sink(), progress, false) {
        Err(e @ (Error::Integrity(_) | Error::BadStore { .. })) => e,
        other => return other,
    };
    let quiet = &crate::progress::Quiet;
    match stream(store, name, &mut std::io::sink(), quiet, true) {
        // The same failure from checked chunks: the same bytes came out,
        // so no chunk is damaged and the snapshot's recipe is at fault.
        Err(again) if again.to_string() == first.to_string() => Err(first),
        Err(Error::Integrity(_) | Error::BadStore { .. }) => Err(Error::BadStore {
            store: store.dir().to_path_buf(),
            msg: format!(
                "chunks {name} is built from are damaged (they do not match their BLAKE3): run 'ferry verify --full' to see which, then unpack again the packs that carried them"
            ),
        }),
        Err(other) => Err(other),
        Ok(_) => Err(first),
    }
}

/// Writes snapshot `name` to `out`; `checked`: each chunk is checked
/// against its id before its bytes go out (the stream always is).
fn stream(
    store: &Store,
    name: &str,
    out: &mut (dyn Write + Send),
    progress: &dyn Progress,
    checked: bool,
) -> Result<Snapshot> {
    let snap = store.require(name)?;
    progress.start("checkout", Some(snap.size));
    let mut reader = store.data_reader();
    let (tx, rx) = mpsc::sync_channel::<Vec<Decoded>>(2);
    let result: Result<(u64, blake3::Hash)> = std::thread::scope(|scope| {
        let writer = scope.spawn(
            move || -> std::result::Result<(u64, blake3::Hash), RecreateError> {
                let mut hasher = blake3::Hasher::new();
                let mut size = 0u64;
                // Small pieces (tar headers, small files) are gathered so the
                // stream hash takes large inputs, which BLAKE3 hashes many
                // 1 KiB chunks at a time (SIMD) instead of one block at a time.
                let mut gathered: Vec<u8> = Vec::with_capacity(GATHER);
                let mut emit = |b: &[u8]| -> std::io::Result<()> {
                    size += b.len() as u64;
                    let small = b.len() < SMALL_PIECE;
                    if !gathered.is_empty() && (!small || gathered.len() + b.len() > GATHER) {
                        hasher.update(&gathered);
                        out.write_all(&gathered)?;
                        gathered.clear();
                    }
                    if small {
                        gathered.extend_from_slice(b);
                        return Ok(());
                    }
                    hasher.update(b);
                    out.write_all(b)
                };
                // Deflate streams are re-created from their parts and plain text.
                let mut deflate = Recreator::default();
                for batch in rx {
                    for d in batch {
                        match d.op {
                            Op::Out => {
                                deflate.end(&mut emit)?;
                                emit(&d.data).map_err(RecreateError::Io)?;
                            }
                            Op::Plain => deflate.plain(&d.data, &mut emit)?,
                            Op::Part => deflate.part(&d.data, d.out, &mut emit)?,
                        }
                    }
                }
                deflate.end(&mut emit)?;
                hasher.update(&gathered);
                out.write_all(&gathered).map_err(RecreateError::Io)?;
                out.flush().map_err(RecreateError::Io)?;
                Ok((size, hasher.finalize()))
            },
        );
        let mut mapped = 0u64;
        let fed = store.for_each_piece_batch(snap.rowid, BATCH, |batch| {
            let decoded = decode_batch(store, &mut reader, batch, name, checked)?;
            let bytes: u64 = decoded.iter().map(Decoded::output).sum();
            // Dropping the mapped pages walks every map: once per
            // RELEASE_EVERY bytes read, not once per batch.
            mapped += batch
                .iter()
                .map(|(_, c)| u64::from(c.loc.clen))
                .sum::<u64>();
            if mapped >= RELEASE_EVERY {
                reader.release();
                mapped = 0;
            }
            if tx.send(decoded).is_err() {
                // The writer failed: stop decoding; its error is reported below.
                return Err(Error::Invalid("output closed".into()));
            }
            progress.advance(bytes);
            Ok(())
        });
        drop(tx);
        let written = writer.join().expect("writer thread panicked");
        // A write error explains a stopped feed; report it first.
        let written = written.map_err(|e| match e {
            RecreateError::Io(e) => Error::io("writing output", e),
            RecreateError::Unknown(msg) => Error::Invalid(format!("{name} cannot be re-created: {msg}")),
            RecreateError::Bad(msg) => Error::Integrity(format!(
                "{name} cannot be re-created: {msg}: the store is damaged; unpack a pack that carries {name} again"
            )),
        })?;
        fed?;
        Ok(written)
    });
    progress.finish();
    let (size, hash) = result?;
    if size != snap.size || SnapshotDigest::from(hash) != snap.blake3 {
        // Every chunk matched its id, so the recipe itself is wrong.
        return Err(Error::Integrity(format!(
            "{name} reassembled to {size} bytes with blake3 {}, but it was added as {} bytes with blake3 {}: the store is damaged; unpack a pack that carries {name} again",
            &hash.to_hex()[..16],
            snap.size,
            snap.blake3.short()
        )));
    }
    Ok(snap)
}

/// Decodes a batch of pieces of snapshot `name`: each distinct chunk once,
/// in parallel and (when `checked`) checked against its id (the slices of
/// a tar's headers stream share a chunk), then every piece is cut from its
/// chunk's bytes.
fn decode_batch(
    store: &Store,
    reader: &mut crate::store::data::DataReader,
    batch: &[(Piece, ChunkEntry)],
    name: &str,
    checked: bool,
) -> Result<Vec<Decoded>> {
    let dir = store.dir();
    let mut slot_of: HashMap<ChunkId, usize> = HashMap::with_capacity(batch.len());
    let mut distinct: Vec<&ChunkEntry> = Vec::with_capacity(batch.len());
    let mut uses: Vec<usize> = Vec::with_capacity(batch.len());
    let slots: Vec<usize> = batch
        .iter()
        .map(|(_, c)| {
            let slot = *slot_of.entry(c.id).or_insert_with(|| {
                distinct.push(c);
                uses.push(0);
                distinct.len() - 1
            });
            uses[slot] += 1;
            slot
        })
        .collect();
    let read = if checked {
        store.read_verified_batch(reader, &distinct, |c| c, |_, bytes| bytes)
    } else {
        store.read_decoded_batch(reader, &distinct, |c| c, |_, bytes| bytes)
    };
    let mut chunks: Vec<Option<Vec<u8>>> = read
        .into_iter()
        .map(|bytes| match bytes {
            Ok(data) => Ok(Some(data)),
            Err(f) if matches!(f.damage, Damage::WrongHash) => Err(Error::Integrity(format!(
                "{name} cannot be checked out: chunk {} in data file {:08}.dat is damaged (its bytes do not match its BLAKE3): the store is damaged; unpack a pack that carries {name} again",
                f.id,
                f.file
            ))),
            Err(f) => Err(f.into_error(dir)),
        })
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(batch.len());
    for ((p, c), slot) in batch.iter().zip(slots) {
        uses[slot] -= 1;
        let (off, len) = (p.off as usize, p.len as usize);
        let chunk = chunks[slot].as_ref().expect("taken only at its last use");
        let data = if off == 0 && len == chunk.len() {
            if uses[slot] == 0 {
                chunks[slot].take().expect("present until its last use")
            } else {
                chunk.clone()
            }
        } else if off + len <= chunk.len() {
            chunk[off..off + len].to_vec()
        } else {
            return Err(Error::BadStore {
                store: dir.to_path_buf(),
                msg: format!("recipe reads past the end of chunk {}", c.id),
            });
        };
        out.push(Decoded {
            op: p.op,
            out: p.out,
            data,
        });
    }
    Ok(out)
}

/// Checks out to a file: writes a temporary file beside it and renames it
/// into place only once the stream verified, so a failed checkout never
/// leaves a wrong file under the requested name. A device or pipe is
/// written in place (see [`AtomicFile`]).
pub fn checkout_to_path(
    store: &Store,
    name: &str,
    path: &Path,
    progress: &dyn Progress,
) -> Result<Snapshot> {
    let mut out = AtomicFile::create(path)?;
    let snap = checkout(store, name, &mut out, progress)?;
    out.commit()?;
    Ok(snap)
}
