//! Chunk bytes out of the store: every chunk is decoded and checked against
//! its BLAKE3 id before its bytes are handed out, so a damaged data file is
//! caught at the chunk it damaged, never passed on. The one exception,
//! [`read_decoded_in`], serves computations whose own result is checked
//! against a digest before anything is written (a delta's bases, the
//! rebuild check of a snapshot); when that check fails, the caller reads
//! the same chunks verified to name a damaged one.

use std::path::Path;

use rayon::prelude::*;

use super::data::DataReader;
use super::{ChunkEntry, Store};
use crate::chunker::ChunkId;
use crate::codec;
use crate::error::{Error, Result};

/// What is wrong with a chunk whose bytes could not be handed out.
#[derive(Debug)]
pub enum Damage {
    /// Its entry in the data file is missing, cut short or holds another
    /// chunk (the error says which).
    Unreadable(Error),
    /// Its encoded bytes do not decode.
    Undecodable(String),
    /// Its decoded bytes do not hash to its id.
    WrongHash,
}

/// A chunk that failed [`Store::read_verified`].
#[derive(Debug)]
pub struct ChunkFault {
    /// The chunk's id.
    pub id: ChunkId,
    /// The data file it is in.
    pub file: u32,
    /// What is wrong.
    pub damage: Damage,
}

impl ChunkFault {
    /// The error for this fault in the store at `store`, naming the chunk.
    pub fn into_error(self, store: &Path) -> Error {
        let id = self.id;
        match self.damage {
            Damage::Unreadable(e) => e,
            Damage::Undecodable(e) => Error::BadStore {
                store: store.to_path_buf(),
                msg: format!("chunk {id} cannot be decoded ({e}): the store is damaged"),
            },
            Damage::WrongHash => Error::Integrity(format!(
                "chunk {id} in data file {:08}.dat does not match its BLAKE3: the store is damaged",
                self.file
            )),
        }
    }
}

/// The decoded bytes of chunk `c`, checked against its id, from a reader
/// whose window already holds it ([`DataReader::ensure`]). It takes the
/// reader shared, so encoders working in parallel can call it;
/// [`Store::read_verified`] is the form that maps files itself.
pub fn read_verified_in(
    reader: &DataReader,
    c: &ChunkEntry,
) -> std::result::Result<Vec<u8>, ChunkFault> {
    let data = read_decoded_in(reader, c)?;
    if ChunkId::of(&data) != c.id {
        return Err(ChunkFault {
            id: c.id,
            file: c.loc.file,
            damage: Damage::WrongHash,
        });
    }
    Ok(data)
}

/// The decoded bytes of chunk `c`, not checked against its id, from a
/// reader whose window already holds it. Only for bytes that feed a result
/// which is itself checked against a digest before it is stored or written
/// out; when that check fails, read the chunks again with
/// [`read_verified_in`] to tell a damaged store from a bad input.
pub fn read_decoded_in(
    reader: &DataReader,
    c: &ChunkEntry,
) -> std::result::Result<Vec<u8>, ChunkFault> {
    reader
        .get(&c.id, c.loc)
        .map_err(Damage::Unreadable)
        .and_then(|payload| {
            codec::decode(c.codec, payload, c.len as usize)
                .map_err(|e| Damage::Undecodable(e.to_string()))
        })
        .map_err(|damage| ChunkFault {
            id: c.id,
            file: c.loc.file,
            damage,
        })
}

impl Store {
    /// The decoded bytes of chunk `c`, checked against its id; an error
    /// names the chunk when they are missing, do not decode or do not match.
    pub fn read_verified(&self, reader: &mut DataReader, c: &ChunkEntry) -> Result<Vec<u8>> {
        let mut out = self.read_verified_batch(reader, std::slice::from_ref(c), |c| c, |_, r| r);
        out.pop()
            .expect("one result")
            .map_err(|f| f.into_error(&self.dir))
    }

    /// Reads a batch of chunks as [`Store::read_verified`] does, decoding and
    /// checking them in parallel: `entry` names the chunk of each item, and
    /// `each` (also run in parallel) gets each item with its chunk's bytes
    /// or what is wrong with them. The results come back in item order.
    pub fn read_verified_batch<T: Sync, R: Send>(
        &self,
        reader: &mut DataReader,
        items: &[T],
        entry: impl Fn(&T) -> &ChunkEntry + Sync,
        each: impl Fn(&T, std::result::Result<Vec<u8>, ChunkFault>) -> R + Sync,
    ) -> Vec<R> {
        read_batch(reader, items, entry, each, read_verified_in)
    }

    /// Reads a batch as [`Store::read_verified_batch`] does, without
    /// checking each chunk against its id: see [`read_decoded_in`] for the
    /// only use it may have.
    pub fn read_decoded_batch<T: Sync, R: Send>(
        &self,
        reader: &mut DataReader,
        items: &[T],
        entry: impl Fn(&T) -> &ChunkEntry + Sync,
        each: impl Fn(&T, std::result::Result<Vec<u8>, ChunkFault>) -> R + Sync,
    ) -> Vec<R> {
        read_batch(reader, items, entry, each, read_decoded_in)
    }
}

/// A chunk reader: [`read_verified_in`] or [`read_decoded_in`].
type ReadIn = fn(&DataReader, &ChunkEntry) -> std::result::Result<Vec<u8>, ChunkFault>;

/// Maps the data files a batch needs, then reads its chunks in parallel.
fn read_batch<T: Sync, R: Send>(
    reader: &mut DataReader,
    items: &[T],
    entry: impl Fn(&T) -> &ChunkEntry + Sync,
    each: impl Fn(&T, std::result::Result<Vec<u8>, ChunkFault>) -> R + Sync,
    read: ReadIn,
) -> Vec<R> {
    // Map the data files first; reading them then needs no `&mut`.
    let unmapped: Vec<Option<Error>> = items
        .iter()
        .map(|t| reader.ensure(entry(t).loc).err())
        .collect();
    let reader = &*reader;
    items
        .par_iter()
        .zip(unmapped)
        .map(|(t, unmapped)| {
            let c = entry(t);
            let bytes = match unmapped {
                Some(e) => Err(ChunkFault {
                    id: c.id,
                    file: c.loc.file,
                    damage: Damage::Unreadable(e),
                }),
                None => read(reader, c),
            };
            each(t, bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use std::time::Duration;

    #[test]
    fn bytes_that_do_not_match_their_id_never_leave_the_store() {
        let t = tempfile::tempdir().unwrap();
        let mut store = Store::open_writer(t.path(), Duration::ZERO).unwrap();
        let good = b"the bytes of a chunk".to_vec();
        let good_id = ChunkId::of(&good);
        let bad_id = ChunkId::of(b"other bytes");
        let odd_id = ChunkId([7; 32]);
        store
            .write(|txn| {
                txn.insert_chunk(&good_id, Codec::Raw, good.len() as u32, &good)?;
                txn.insert_chunk(&bad_id, Codec::Raw, good.len() as u32, &good)?;
                txn.insert_chunk(&odd_id, Codec::Zstd, 100, b"not zstd")
            })
            .unwrap();
        let mut reader = store.data_reader();
        let entry = |id: &ChunkId| store.chunk(id).unwrap().unwrap();
        assert_eq!(
            store.read_verified(&mut reader, &entry(&good_id)).unwrap(),
            good
        );
        let err = store
            .read_verified(&mut reader, &entry(&bad_id))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&bad_id.to_string()), "{err}");
        assert!(err.contains("does not match its BLAKE3"), "{err}");
        let err = store
            .read_verified(&mut reader, &entry(&odd_id))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&odd_id.to_string()), "{err}");
        assert!(err.contains("cannot be decoded"), "{err}");
        // The batch form says which one failed and how, in item order.
        let entries = [entry(&bad_id), entry(&good_id), entry(&odd_id)];
        let got = store.read_verified_batch(
            &mut reader,
            &entries,
            |c| c,
            |_, r| match r {
                Ok(b) => Ok(b),
                Err(f) => Err((f.id, matches!(f.damage, Damage::WrongHash))),
            },
        );
        assert_eq!(
            got,
            vec![Err((bad_id, true)), Ok(good), Err((odd_id, false))]
        );
    }
}
