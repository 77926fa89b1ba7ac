//! `ferry verify`: checks the index against the data files (every chunk's
//! entry is where the index says, with the right id and sizes; every recipe
//! names existing chunks, stays inside them and adds up to its snapshot's
//! size) and, with `full`, decodes and rehashes every chunk. Problems are
//! reported by snapshot.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::error::Result;
use crate::progress::Progress;
use crate::store::{ChunkEntry, ChunkRow, Damage, Store};

/// What [`verify`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Chunks checked.
    pub chunks: u64,
    /// Encoded bytes checked.
    pub bytes: u64,
    /// Chunks were decoded and rehashed.
    pub full: bool,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Damaged chunks: id (hex) and what is wrong.
    pub bad_chunks: Vec<BadChunk>,
    /// Problems per snapshot name (a snapshot using a damaged chunk, or a
    /// recipe that does not add up).
    pub problems: BTreeMap<String, Vec<String>>,
}

/// A chunk that failed a check.
#[derive(Debug, Clone, Serialize)]
pub struct BadChunk {
    /// Chunk id, hex.
    pub id: String,
    /// Data file number.
    pub file: u32,
    /// What is wrong.
    pub problem: String,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.bad_chunks.is_empty() && self.problems.is_empty()
    }
}

/// Chunks checked per batch.
const BATCH: usize = 1024;

/// Checks the store; see the module doc. Reading only: the store is not changed.
pub fn verify(store: &Store, full: bool, progress: &dyn Progress) -> Result<VerifyReport> {
    let _view = store.read_view()?;
    let mut report = VerifyReport {
        full,
        ..VerifyReport::default()
    };
    let total = store.encoded_bytes()?;
    progress.start(
        if full {
            "verifying (full)"
        } else {
            "verifying"
        },
        Some(total),
    );
    let mut reader = store.data_reader();
    let mut bad_rows: HashMap<ChunkRow, String> = HashMap::new();
    store.for_each_chunk_batch(BATCH, |batch| {
        let mut ok: Vec<&ChunkEntry> = Vec::with_capacity(batch.len());
        for c in batch {
            report.chunks += 1;
            report.bytes += c.loc.clen as u64;
            let found = reader
                .ensure(c.loc)
                .and_then(|()| reader.get(&c.id, c.loc).map(|_| ()));
            match found {
                Ok(()) => ok.push(c),
                Err(e) => {
                    bad_rows.insert(c.rowid, e.to_string());
                    report.bad_chunks.push(BadChunk {
                        id: c.id.to_string(),
                        file: c.loc.file,
                        problem: "its entry in the data file is missing or holds another chunk"
                            .into(),
                    });
                }
            }
        }
        if full {
            let bad = store.read_verified_batch(
                &mut reader,
                &ok,
                |c| *c,
                |c, bytes| {
                    let problem = match bytes.err()?.damage {
                        Damage::Unreadable(e) => format!("it cannot be read ({e})"),
                        Damage::Undecodable(e) => format!("it does not decode ({e})"),
                        Damage::WrongHash => "its bytes do not match its BLAKE3".to_string(),
                    };
                    Some((
                        c.rowid,
                        BadChunk {
                            id: c.id.to_string(),
                            file: c.loc.file,
                            problem,
                        },
                    ))
                },
            );
            for (row, b) in bad.into_iter().flatten() {
                bad_rows.insert(row, b.problem.clone());
                report.bad_chunks.push(b);
            }
        }
        progress.advance(batch.iter().map(|c| c.loc.clen as u64).sum());
        reader.release();
        Ok(())
    })?;
    progress.finish();
    // Recipes: every piece inside an existing chunk, sizes adding up, and
    // which snapshots the damaged chunks break.
    for snap in store.snapshots()? {
        report.snapshots += 1;
        let mut problems = Vec::new();
        let mut total = 0u64;
        let mut damaged = 0u64;
        let mut past_end = 0u64;
        store.for_each_piece_batch(snap.rowid, 4096, |batch| {
            for (p, c) in batch {
                total += p.output();
                if bad_rows.contains_key(&p.chunk) {
                    damaged += 1;
                }
                if p.off as u64 + p.len as u64 > c.len as u64 {
                    past_end += 1;
                }
            }
            Ok(())
        })?;
        if damaged > 0 {
            problems.push(format!("{damaged} pieces use damaged chunks"));
        }
        if past_end > 0 {
            problems.push(format!(
                "{past_end} pieces read past the end of their chunk"
            ));
        }
        if total != snap.size {
            problems.push(format!(
                "its recipe adds up to {total} bytes, not {}",
                snap.size
            ));
        }
        let missing = store.pieces_without_chunk(snap.rowid)?;
        if missing > 0 {
            problems.push(format!(
                "{missing} pieces name chunks the index does not have"
            ));
        }
        if !problems.is_empty() {
            report.problems.insert(snap.name, problems);
        }
    }
    Ok(report)
}
