//! Reclaiming space: removing snapshots, and `gc`, which drops the chunks
//! nothing needs any more and rewrites the data files that are mostly dead.
//!
//! A chunk is live while a snapshot's recipe names it, a volume set waiting
//! for its other volumes holds it, or (unless told otherwise) the peer
//! ledger says a peer holds it, since later packs for that peer use it as a
//! delta base. Everything else, including the tail a killed write left in a
//! data file, is dead space.
//!
//! gc is crash-safe at every step: live chunks are copied (each checked
//! against its BLAKE3 first) into new data files, which are fsynced; then
//! one index transaction moves their rows and deletes the dead ones; only
//! then are the old files removed, under the readers' lock, so a reader
//! that started before gc keeps reading them. A crash before the commit
//! leaves new files no row names; a crash after it leaves old files no row
//! names. Either is dead space the next gc removes.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use rusqlite::{Connection, params};
use serde::Serialize;

use super::data::{self, DataWriter};
use super::queries::chunk_from_row;
use super::{ChunkEntry, ChunkRow, Store, read_verified_in};
use crate::error::{Error, IoContext, Result};
use crate::progress::Progress;

/// What to reclaim.
#[derive(Debug, Clone, Copy)]
pub struct GcOptions {
    /// Rewrite a data file once at least this share of it is dead (0 to 1).
    pub threshold: f64,
    /// Also drop chunks only the ledger's peers need (their later packs
    /// then ship those chunks whole instead of as deltas).
    pub ignore_peers: bool,
    /// Also remove the snapshots whose tag moved on (`TAG@DIGEST`).
    pub untagged: bool,
    /// Work out what would be done and change nothing.
    pub dry_run: bool,
}

/// What a gc did (or, for a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Untagged snapshots removed (with `untagged`).
    pub untagged_removed: Vec<String>,
    /// Chunks no longer needed, whose index rows were dropped.
    pub dead_chunks: u64,
    /// Their bytes in the data files (entry headers included).
    pub dead_bytes: u64,
    /// Chunks kept only because peers hold them (see `--ignore-peers`).
    pub peer_chunks_kept: u64,
    /// Their bytes.
    pub peer_bytes_kept: u64,
    /// Data files before.
    pub files_before: u64,
    /// Their total size.
    pub bytes_before: u64,
    /// Data files removed whole (nothing in them was live).
    pub files_removed: u64,
    /// Data files whose live chunks were copied into new files.
    pub files_rewritten: u64,
    /// Live chunk bytes copied.
    pub moved_bytes: u64,
    /// Data files after.
    pub files_after: u64,
    /// Their total size.
    pub bytes_after: u64,
    /// Data files no row names that readers kept open: the next gc removes them.
    pub files_left_for_readers: u64,
    /// Bytes freed on disk (`bytes_before - bytes_after`).
    pub freed: u64,
}

/// A live chunk's row and its new place (data file, offset).
type Move = (ChunkRow, u32, u64);

/// Live and total entry bytes of one data file.
#[derive(Debug, Default, Clone, Copy)]
struct FileUse {
    size: u64,
    live: u64,
}

/// Fills the temporary table `live` with every chunk something needs, not
/// counting the snapshots in `removed` (and `peer_only` with chunks only
/// peers need). Returns the number of those and their bytes.
fn mark_live(conn: &Connection, removed: &[i64], ignore_peers: bool) -> Result<(u64, u64)> {
    let removed: Vec<String> = removed.iter().map(|r| r.to_string()).collect();
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS temp.live; DROP TABLE IF EXISTS temp.peer_only;
         CREATE TEMP TABLE live (chunk INTEGER PRIMARY KEY);
         INSERT OR IGNORE INTO live SELECT chunk FROM recipe WHERE snapshot NOT IN ({});
         INSERT OR IGNORE INTO live SELECT chunk FROM volume_chunks;
         INSERT OR IGNORE INTO live SELECT chunk FROM volume_delta_bases WHERE chunk IS NOT NULL;
         CREATE TEMP TABLE peer_only (chunk INTEGER PRIMARY KEY);
         INSERT OR IGNORE INTO peer_only SELECT chunk FROM peer_chunks
           WHERE chunk NOT IN (SELECT chunk FROM live);",
        removed.join(",")
    ))?;
    let peers: (u64, u64) = conn.query_row(
        "SELECT count(*), coalesce(sum(c.clen + ?1), 0) FROM peer_only p JOIN chunks c ON c.rowid = p.chunk",
        [data::ENTRY_HEADER_LEN],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if !ignore_peers {
        conn.execute_batch("INSERT OR IGNORE INTO live SELECT chunk FROM peer_only")?;
    }
    Ok(peers)
}

fn drop_marks(conn: &Connection) {
    let _ =
        conn.execute_batch("DROP TABLE IF EXISTS temp.live; DROP TABLE IF EXISTS temp.peer_only;");
}

/// Dead chunks and their bytes, given `live`.
fn dead(conn: &Connection) -> Result<(u64, u64)> {
    Ok(conn.query_row(
        "SELECT count(*), coalesce(sum(clen + ?1), 0) FROM chunks WHERE rowid NOT IN (SELECT chunk FROM live)",
        [data::ENTRY_HEADER_LEN],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Checks every chunk of `batch` against its BLAKE3, in parallel.
fn check(store: &Path, reader: &data::DataReader, batch: &[ChunkEntry]) -> Result<()> {
    batch.par_iter().try_for_each(|c| {
        read_verified_in(reader, c).map(|_| ()).map_err(|f| {
            Error::Invalid(format!(
                "{}; gc stopped and changed nothing: run 'ferry verify' to see what is damaged",
                f.into_error(store)
            ))
        })
    })
}

/// Appends the (checked) chunks of `batch` to `out`, noting where each went.
fn append_all(
    out: &mut DataWriter,
    reader: &data::DataReader,
    batch: &[ChunkEntry],
    moves: &mut Vec<Move>,
) -> Result<()> {
    for c in batch {
        let loc = out.append(&c.id, c.codec, c.len, reader.get(&c.id, c.loc)?)?;
        moves.push((c.rowid, loc.file, loc.offset));
    }
    // Syncing as it goes lets the disk write while the next batch is
    // checked, instead of all at the end.
    out.sync()
}

/// Every data file with its size and live bytes.
fn file_use(store: &Store) -> Result<BTreeMap<u32, FileUse>> {
    let dir = store.data_dir();
    let mut files = BTreeMap::new();
    for num in data::list(&dir)? {
        let size = data::file_len(&dir, num).unwrap_or(0);
        files.insert(num, FileUse { size, live: 0 });
    }
    let mut stmt = store.conn.prepare(
        "SELECT c.file, sum(c.clen + ?1) FROM chunks c JOIN live l ON l.chunk = c.rowid GROUP BY c.file",
    )?;
    let mut rows = stmt.query([data::ENTRY_HEADER_LEN])?;
    while let Some(r) = rows.next()? {
        let (num, live): (u32, u64) = (r.get(0)?, r.get(1)?);
        files.entry(num).or_default().live = live;
    }
    Ok(files)
}

impl Store {
    /// What removing the snapshots `removed` would let gc free: the chunks
    /// only they use (and that no waiting volume set or peer needs), as
    /// (chunks, bytes).
    pub fn exclusive_use(&self, removed: &[i64]) -> Result<(u64, u64)> {
        let _view = self.read_view()?;
        mark_live(&self.conn, removed, false)?;
        let found = dead(&self.conn);
        drop_marks(&self.conn);
        let (all_dead, all_bytes) = {
            mark_live(&self.conn, &[], false)?;
            let d = dead(&self.conn);
            drop_marks(&self.conn);
            d?
        };
        let (c, b) = found?;
        Ok((c - all_dead, b - all_bytes))
    }

    /// Removes the snapshots named `names` (all of them, or none when one is
    /// missing); their chunks stay until gc. Returns their rows.
    pub fn remove_snapshots(&mut self, rows: &[i64]) -> Result<()> {
        self.write(|txn| {
            for &r in rows {
                txn.delete_snapshot(r)?;
            }
            Ok(())
        })
    }

    /// Reclaims space; see the module doc. Needs the store opened for writing.
    pub fn gc(&mut self, opts: GcOptions, progress: &dyn Progress) -> Result<GcReport> {
        assert!(self._lock.is_some(), "gc on a store opened for reading");
        let mut report = GcReport {
            dry_run: opts.dry_run,
            ..GcReport::default()
        };
        let mut untagged = Vec::new();
        if opts.untagged {
            for s in self.snapshots()? {
                if s.meta.untagged.is_some() {
                    untagged.push(s.rowid);
                    report.untagged_removed.push(s.name);
                }
            }
        }
        if !opts.dry_run && !untagged.is_empty() {
            self.remove_snapshots(&untagged)?;
            untagged.clear();
        }
        let (pc, pb) = mark_live(&self.conn, &untagged, opts.ignore_peers)?;
        if !opts.ignore_peers {
            (report.peer_chunks_kept, report.peer_bytes_kept) = (pc, pb);
        }
        let result = self.gc_marked(opts, &mut report, progress);
        drop_marks(&self.conn);
        report.freed = report.bytes_before.saturating_sub(report.bytes_after);
        result.map(|()| report)
    }

    fn gc_marked(
        &mut self,
        opts: GcOptions,
        report: &mut GcReport,
        progress: &dyn Progress,
    ) -> Result<()> {
        (report.dead_chunks, report.dead_bytes) = dead(&self.conn)?;
        let files = file_use(self)?;
        report.files_before = files.len() as u64;
        report.bytes_before = files.values().map(|f| f.size).sum();
        let mut gone = Vec::new();
        let mut rewrite = Vec::new();
        for (&num, f) in &files {
            if f.live == 0 {
                gone.push(num);
            } else {
                let dead_share =
                    1.0 - (f.live + data::FILE_HEADER_LEN) as f64 / f.size.max(1) as f64;
                if dead_share >= opts.threshold && dead_share > 0.0 {
                    rewrite.push(num);
                }
            }
        }
        report.files_removed = gone.len() as u64;
        report.files_rewritten = rewrite.len() as u64;
        report.moved_bytes = rewrite.iter().map(|n| files[n].live).sum();
        let untouched: u64 = files
            .iter()
            .filter(|(n, _)| !gone.contains(n) && !rewrite.contains(n))
            .map(|(_, f)| f.size)
            .sum();
        if opts.dry_run {
            let out_files = report.moved_bytes.div_ceil(data::MAX_FILE_LEN);
            report.files_after =
                report.files_before - report.files_removed - report.files_rewritten + out_files;
            report.bytes_after = untouched + report.moved_bytes + out_files * data::FILE_HEADER_LEN;
            return Ok(());
        }
        let (moves, created) = self.copy_live(&rewrite, report.moved_bytes, progress)?;
        self.switch(&moves, opts.ignore_peers, &created)?;
        let mut old: Vec<u32> = gone;
        old.extend(&rewrite);
        report.files_left_for_readers = self.remove_files(&old)?;
        let after = data::list(&self.data_dir())?;
        report.files_after = after.len() as u64;
        report.bytes_after = after
            .iter()
            .filter_map(|&n| data::file_len(&self.data_dir(), n))
            .sum();
        Ok(())
    }

    /// Copies the live chunks of the data files `rewrite` into new files,
    /// each checked against its BLAKE3 first, and makes them durable.
    /// Returns each moved row with its new place, and the new files.
    fn copy_live(
        &self,
        rewrite: &[u32],
        total: u64,
        progress: &dyn Progress,
    ) -> Result<(Vec<Move>, Vec<u32>)> {
        let mut moves = Vec::new();
        if rewrite.is_empty() {
            return Ok((moves, Vec::new()));
        }
        progress.start("gc: moving live chunks", Some(total));
        let mut out = DataWriter::fresh(&self.data_dir())?;
        let copied = self.copy_into(&mut out, rewrite, &mut moves, progress);
        let synced = copied.and_then(|()| out.sync());
        if let Err(e) = synced {
            let _ = out.rollback();
            return Err(e);
        }
        progress.finish();
        let created = out.created().to_vec();
        Ok((moves, created))
    }

    fn copy_into(
        &self,
        out: &mut DataWriter,
        rewrite: &[u32],
        moves: &mut Vec<Move>,
        progress: &dyn Progress,
    ) -> Result<()> {
        /// Encoded bytes read, checked and written per batch.
        const BATCH_BYTES: u64 = 16 << 20;
        let mut reader = self.data_reader();
        let mut stmt = self.conn.prepare(
            "SELECT c.rowid, c.id, c.file, c.offset, c.clen, c.len, c.codec FROM chunks c
             JOIN live l ON l.chunk = c.rowid WHERE c.file = ?1 ORDER BY c.offset",
        )?;
        for &num in rewrite {
            // One file's live entries (about 64 bytes each, a few MB at most).
            let entries: Vec<ChunkEntry> = stmt
                .query_map([num], |r| chunk_from_row(r, 1, r.get(0)?))?
                .collect::<rusqlite::Result<_>>()?;
            let mut batches: Vec<&[ChunkEntry]> = Vec::new();
            let (mut start, mut bytes) = (0, 0u64);
            for (i, c) in entries.iter().enumerate() {
                bytes += c.loc.clen as u64;
                if bytes >= BATCH_BYTES || i + 1 == entries.len() {
                    batches.push(&entries[start..=i]);
                    (start, bytes) = (i + 1, 0);
                }
            }
            // Each batch is checked while the one before it is written.
            let mut checked: Option<&[ChunkEntry]> = None;
            for batch in batches.into_iter().map(Some).chain([None]) {
                for c in batch.unwrap_or_default() {
                    reader.ensure(c.loc)?;
                }
                let shared = &reader;
                let store_dir = self.dir.as_path();
                let (ok, written) = rayon::join(
                    || batch.map_or(Ok(()), |b| check(store_dir, shared, b)),
                    || checked.map_or(Ok(()), |b| append_all(out, shared, b, moves)),
                );
                ok?;
                written?;
                if let Some(b) = checked {
                    progress.advance(b.iter().map(|c| c.loc.clen as u64).sum());
                    // The written batch's pages leave this process's memory
                    // (the page cache keeps them); the next one's stay mapped
                    // for its write.
                    let (first, last) = (&b[0].loc, &b[b.len() - 1].loc);
                    let end = last.offset + data::ENTRY_HEADER_LEN + last.clen as u64;
                    reader.release_range(num, first.offset, end);
                }
                checked = batch;
            }
        }
        Ok(())
    }

    /// One transaction: moved rows take their new places, dead rows go.
    fn switch(&mut self, moves: &[Move], ignore_peers: bool, created: &[u32]) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut stmt =
                tx.prepare("UPDATE chunks SET file = ?2, offset = ?3 WHERE rowid = ?1")?;
            for (row, file, offset) in moves {
                stmt.execute(params![row, file, offset])?;
            }
        }
        tx.execute_batch(
            "DELETE FROM features WHERE chunk NOT IN (SELECT chunk FROM live);
             DELETE FROM chunks WHERE rowid NOT IN (SELECT chunk FROM live);",
        )?;
        if ignore_peers {
            tx.execute_batch(
                "DELETE FROM peer_chunks WHERE chunk NOT IN (SELECT chunk FROM live);",
            )?;
        }
        if let Err(e) = tx.commit() {
            let dir = self.data_dir();
            for &n in created {
                let _ = std::fs::remove_file(data::file_path(&dir, n));
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Removes data files no row names any more, once no reader has the
    /// store open; returns how many it had to leave for the next gc.
    fn remove_files(&self, old: &[u32]) -> Result<u64> {
        if old.is_empty() {
            return Ok(0);
        }
        let Some(_readers) = super::readers::exclusive(&self.dir, self.removal_wait()) else {
            return Ok(old.len() as u64);
        };
        let dir = self.data_dir();
        for &n in old {
            let path = data::file_path(&dir, n);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("removing {}", path.display()), e)),
            }
        }
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .ctx(|| format!("syncing {}", dir.display()))?;
        Ok(0)
    }
}
