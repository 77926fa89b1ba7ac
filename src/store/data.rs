//! Append-only data files holding encoded chunks, written with fsync before
//! the index references them and read back through memory maps.
//!
//! Layout (see docs/FORMAT.md): a 16-byte file header (`FERRYDAT`, version),
//! then entries of a 44-byte header (BLAKE3 id, codec, length, encoded length)
//! followed by the encoded bytes.
//!
//! This is the one module allowed `unsafe` code (the crate denies it
//! elsewhere): mapping a file is unsafe because another process could
//! change it under the map. ferry's rule (docs/FORMAT.md, "Data files and
//! readers"): bytes an index row has named are never rewritten, and are
//! removed (a file deleted or cut back) only under the readers' lock held
//! exclusively, which every reading process holds shared while it has the
//! store open. Bytes no committed row has named yet (a write in progress)
//! may be cut back at any time: no reader looks at them.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::chunker::ChunkId;
use crate::codec::Codec;
use crate::error::{Error, IoContext, Result};

/// Magic at the start of every data file.
pub const MAGIC: &[u8; 8] = b"FERRYDAT";
/// Data file layout version.
pub const VERSION: u32 = 1;
/// Bytes before the first entry.
pub const FILE_HEADER_LEN: u64 = 16;
/// Bytes of an entry header.
pub const ENTRY_HEADER_LEN: u64 = 44;
/// A data file is closed and a new one begun once it reaches this size.
pub const MAX_FILE_LEN: u64 = 1 << 30;

/// Where a chunk lives.
#[derive(Debug, Clone, Copy)]
pub struct Location {
    /// Data file number.
    pub file: u32,
    /// Offset of the entry header within it.
    pub offset: u64,
    /// Encoded length.
    pub clen: u32,
}

/// Path of data file `num` under `dir`.
pub fn file_path(dir: &Path, num: u32) -> PathBuf {
    dir.join(format!("{num:08}.dat"))
}

/// Numbers of the data files present in `dir`, ascending.
pub fn list(dir: &Path) -> Result<Vec<u32>> {
    let mut nums = Vec::new();
    for entry in std::fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))? {
        let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".dat").and_then(|n| n.parse().ok()) {
            nums.push(n);
        }
    }
    nums.sort_unstable();
    Ok(nums)
}

fn write_file_header(file: &mut File) -> std::io::Result<()> {
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    file.write_all(&header)?;
    file.sync_data()
}

/// Checks a data file's magic and version.
fn check_file_header(dir: &Path, path: &Path) -> Result<()> {
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
        .ctx(|| format!("reading {}", path.display()))?;
    check_header_bytes(dir, path, &header)
}

fn check_header_bytes(dir: &Path, path: &Path, header: &[u8]) -> Result<()> {
    let bad = |msg: String| Error::BadStore {
        store: dir.parent().unwrap_or(dir).to_path_buf(),
        msg,
    };
    if header.len() < FILE_HEADER_LEN as usize || &header[..8] != MAGIC {
        return Err(bad(format!("{} is not a ferry data file", path.display())));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(format!(
            "{} has data file version {version}, this ferry reads version {VERSION}: upgrade ferry",
            path.display()
        )));
    }
    Ok(())
}

/// Appends entries to the newest data file, and can undo everything it
/// wrote since it was opened.
pub struct DataWriter {
    dir: PathBuf,
    num: u32,
    out: BufWriter<File>,
    len: u64,
    /// The file that existed before and its length then (to truncate back to).
    resumed: Option<(u32, u64)>,
    /// Files this writer created (to delete on rollback).
    created: Vec<u32>,
    /// Files written to and not yet synced.
    dirty: Vec<u32>,
    /// The newest file and its length when this writer opened (None: there
    /// was none), for [`DataWriter::undo_all`] after checkpoints.
    origin: Option<(u32, u64)>,
    /// Bytes appended to the current file since it was last synced, or
    /// since an early sync started.
    unsynced: u64,
    /// A sync of the current file running on its own thread while appends
    /// go on ([`EARLY_SYNC`]).
    early: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

/// Bytes appended after which the current file is synced on a thread of
/// its own, while appends go on: the disk writes what a long add or unpack
/// made as it goes, so the final sync, which a commit waits for, finds
/// little left to write (on an 87 MB add it waited 95 ms for all of it).
/// Durability still comes from that final sync.
const EARLY_SYNC: u64 = 16 << 20;

impl DataWriter {
    /// Opens the newest data file in `dir` for appending, or starts one.
    pub fn open(dir: &Path) -> Result<DataWriter> {
        let nums = list(dir)?;
        match nums.last() {
            Some(&num) => {
                let path = file_path(dir, num);
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .ctx(|| format!("opening {}", path.display()))?;
                let mut file = file;
                let mut len = file
                    .metadata()
                    .ctx(|| format!("reading {}", path.display()))?
                    .len();
                if len < FILE_HEADER_LEN {
                    // A crash right after creating the file: nothing in it is
                    // referenced, so it is started again.
                    file.set_len(0)
                        .and_then(|()| write_file_header(&mut file))
                        .ctx(|| format!("repairing {}", path.display()))?;
                    len = FILE_HEADER_LEN;
                } else {
                    check_file_header(dir, &path)?;
                }
                let mut w = DataWriter {
                    dir: dir.to_path_buf(),
                    num,
                    out: BufWriter::with_capacity(1 << 20, file),
                    len,
                    resumed: Some((num, len)),
                    created: Vec::new(),
                    dirty: Vec::new(),
                    origin: Some((num, len)),
                    unsynced: 0,
                    early: None,
                };
                if len >= MAX_FILE_LEN {
                    w.start_file(num + 1)?;
                }
                Ok(w)
            }
            None => {
                let (out, len) = Self::create(dir, 1)?;
                Ok(DataWriter {
                    dir: dir.to_path_buf(),
                    num: 1,
                    out,
                    len,
                    resumed: None,
                    created: vec![1],
                    dirty: vec![1],
                    origin: None,
                    unsynced: 0,
                    early: None,
                })
            }
        }
    }

    fn create(dir: &Path, num: u32) -> Result<(BufWriter<File>, u64)> {
        let path = file_path(dir, num);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .ctx(|| format!("creating {}", path.display()))?;
        let mut file = file;
        write_file_header(&mut file).ctx(|| format!("writing {}", path.display()))?;
        Ok((BufWriter::with_capacity(1 << 20, file), FILE_HEADER_LEN))
    }

    fn start_file(&mut self, num: u32) -> Result<()> {
        self.sync_current()?;
        let (out, len) = Self::create(&self.dir, num)?;
        self.out = out;
        self.len = len;
        self.unsynced = 0;
        self.num = num;
        self.created.push(num);
        self.dirty.push(num);
        Ok(())
    }

    fn sync_current(&mut self) -> Result<()> {
        let path = file_path(&self.dir, self.num);
        self.wait_early()?;
        self.out
            .flush()
            .ctx(|| format!("writing {}", path.display()))?;
        self.out
            .get_ref()
            .sync_data()
            .ctx(|| format!("syncing {}", path.display()))?;
        self.dirty.retain(|&n| n != self.num);
        self.unsynced = 0;
        Ok(())
    }

    /// Waits for the early sync in flight, if any: its error is this
    /// writer's.
    fn wait_early(&mut self) -> Result<()> {
        let Some(early) = self.early.take() else {
            return Ok(());
        };
        let path = file_path(&self.dir, self.num);
        early
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the syncing thread panicked")))
            .ctx(|| format!("syncing {}", path.display()))
    }

    /// Starts syncing the current file on a thread of its own once
    /// [`EARLY_SYNC`] bytes were appended since the last sync began (and
    /// the one before has ended).
    fn sync_early(&mut self) -> Result<()> {
        if self.unsynced < EARLY_SYNC || self.early.as_ref().is_some_and(|e| !e.is_finished()) {
            return Ok(());
        }
        self.wait_early()?;
        let path = file_path(&self.dir, self.num);
        self.out
            .flush()
            .ctx(|| format!("writing {}", path.display()))?;
        let file = self
            .out
            .get_ref()
            .try_clone()
            .ctx(|| format!("opening {}", path.display()))?;
        self.early = Some(std::thread::spawn(move || file.sync_data()));
        self.unsynced = 0;
        Ok(())
    }

    /// Appends one chunk and returns where it went.
    pub fn append(
        &mut self,
        id: &ChunkId,
        codec: Codec,
        len: u32,
        payload: &[u8],
    ) -> Result<Location> {
        if self.len >= MAX_FILE_LEN {
            self.start_file(self.num + 1)?;
        }
        if !self.dirty.contains(&self.num) {
            self.dirty.push(self.num);
        }
        let mut header = [0u8; ENTRY_HEADER_LEN as usize];
        header[..32].copy_from_slice(id.as_bytes());
        header[32] = codec as u8;
        header[36..40].copy_from_slice(&len.to_le_bytes());
        header[40..44].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        let loc = Location {
            file: self.num,
            offset: self.len,
            clen: payload.len() as u32,
        };
        let num = self.num;
        let dir = &self.dir;
        self.out
            .write_all(&header)
            .and_then(|()| self.out.write_all(payload))
            .ctx(|| format!("writing {}", file_path(dir, num).display()))?;
        self.len += ENTRY_HEADER_LEN + payload.len() as u64;
        self.unsynced += ENTRY_HEADER_LEN + payload.len() as u64;
        self.sync_early()?;
        Ok(loc)
    }

    /// Hands buffered bytes to the operating system (readable through a
    /// fresh map), without waiting for the disk.
    pub fn flush(&mut self) -> Result<()> {
        let path = file_path(&self.dir, self.num);
        self.out
            .flush()
            .ctx(|| format!("writing {}", path.display()))
    }

    /// Makes everything appended durable (flush + fsync of every file
    /// touched, and of the directory when files were created).
    pub fn sync(&mut self) -> Result<()> {
        self.sync_current()?;
        for num in std::mem::take(&mut self.dirty) {
            let path = file_path(&self.dir, num);
            File::open(&path)
                .and_then(|f| f.sync_data())
                .ctx(|| format!("syncing {}", path.display()))?;
        }
        if !self.created.is_empty() {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .ctx(|| format!("syncing {}", self.dir.display()))?;
        }
        Ok(())
    }

    /// Makes everything so far durable and the new starting point for
    /// [`DataWriter::rollback`].
    pub fn checkpoint(&mut self) -> Result<()> {
        self.sync()?;
        self.resumed = Some((self.num, self.len));
        self.created.clear();
        Ok(())
    }

    /// Undoes every append since this writer opened, across checkpoints:
    /// deletes newer files and truncates the one that was newest then.
    /// Checkpoints committed some of those bytes, so readers may have them
    /// mapped: this waits up to `wait` for the readers' lock, and without
    /// it leaves the bytes as dead space for `ferry gc` (returning false).
    pub fn undo_all(mut self, wait: std::time::Duration) -> Result<bool> {
        let _ = self.wait_early();
        let DataWriter {
            dir, out, origin, ..
        } = self;
        let (file, _) = out.into_parts();
        drop(file);
        let Some(_readers) = super::readers::exclusive(dir.parent().unwrap_or(&dir), wait) else {
            return Ok(false);
        };
        let keep = origin.map(|(n, _)| n).unwrap_or(0);
        for num in list(&dir)? {
            if num > keep {
                let path = file_path(&dir, num);
                std::fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
            }
        }
        if let Some((num, len)) = origin {
            truncate(&dir, num, len)?;
        }
        Ok(true)
    }

    /// A writer that appends only to new files, numbered after every file
    /// in `dir` (for gc, which must not touch the files it rewrites).
    pub fn fresh(dir: &Path) -> Result<DataWriter> {
        let num = list(dir)?.last().map_or(1, |n| n + 1);
        let (out, len) = Self::create(dir, num)?;
        Ok(DataWriter {
            dir: dir.to_path_buf(),
            num,
            out,
            len,
            resumed: None,
            created: vec![num],
            dirty: vec![num],
            origin: None,
            unsynced: 0,
            early: None,
        })
    }

    /// Numbers of the files this writer created.
    pub fn created(&self) -> &[u32] {
        &self.created
    }

    /// Bytes in the file being written, counting what is still buffered.
    pub fn current(&self) -> (u32, u64) {
        (self.num, self.len)
    }

    /// Undoes every append since open (or the last checkpoint): truncates the file
    /// that was being extended back to its old length and deletes new files.
    pub fn rollback(mut self) -> Result<()> {
        // What the early sync made durable is cut back all the same.
        let _ = self.wait_early();
        let DataWriter {
            dir,
            out,
            resumed,
            created,
            ..
        } = self;
        // Whatever is still buffered is dropped, not written.
        let (file, _) = out.into_parts();
        drop(file);
        for num in created {
            let path = file_path(&dir, num);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("removing {}", path.display()), e)),
            }
        }
        if let Some((num, len)) = resumed {
            truncate(&dir, num, len)?;
        }
        Ok(())
    }
}

/// Cuts data file `num` back to `len` bytes, durably.
fn truncate(dir: &Path, num: u32, len: u64) -> Result<()> {
    let path = file_path(dir, num);
    let f = OpenOptions::new()
        .write(true)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))?;
    f.set_len(len)
        .and_then(|()| f.sync_all())
        .ctx(|| format!("truncating {}", path.display()))
}

/// The length of data file `num` in `dir`, or `None` when it is missing.
pub fn file_len(dir: &Path, num: u32) -> Option<u64> {
    std::fs::metadata(file_path(dir, num)).ok().map(|m| m.len())
}

/// Reads entries through memory maps of the data files.
pub struct DataReader {
    dir: PathBuf,
    maps: HashMap<u32, Mmap>,
}

impl DataReader {
    /// A reader over the data files in `dir`.
    pub fn new(dir: &Path) -> DataReader {
        DataReader {
            dir: dir.to_path_buf(),
            maps: HashMap::new(),
        }
    }

    fn map(&mut self, num: u32, need: u64) -> Result<&Mmap> {
        let stale = match self.maps.get(&num) {
            Some(m) => (m.len() as u64) < need,
            None => true,
        };
        if stale {
            let path = file_path(&self.dir, num);
            let file = File::open(&path).ctx(|| format!("opening data file {}", path.display()))?;
            // SAFETY: the ranges ferry reads are named by committed index
            // rows, which are never rewritten, and are removed only under
            // the readers' lock held exclusively (see the module doc), which
            // this process holds shared while its store is open for reading.
            // A writer reads only its own store's files while it holds the
            // writer lock, which every remover also needs.
            let map = unsafe { Mmap::map(&file) }.ctx(|| format!("mapping {}", path.display()))?;
            check_header_bytes(
                &self.dir,
                &path,
                &map[..map.len().min(FILE_HEADER_LEN as usize)],
            )?;
            self.maps.insert(num, map);
        }
        Ok(&self.maps[&num])
    }

    /// Maps (or remaps) the data file holding `loc` so that [`Self::get`] can read it.
    pub fn ensure(&mut self, loc: Location) -> Result<()> {
        let end = loc.offset + ENTRY_HEADER_LEN + loc.clen as u64;
        self.map(loc.file, end).map(|_| ())
    }

    /// The encoded bytes of the chunk at `loc` (mapped by [`Self::ensure`]),
    /// after checking that the entry header there names `id`.
    pub fn get(&self, id: &ChunkId, loc: Location) -> Result<&[u8]> {
        let start = loc.offset as usize;
        let end = start + ENTRY_HEADER_LEN as usize + loc.clen as usize;
        match self.maps.get(&loc.file) {
            Some(map) if map.len() >= end && &map[start..start + 32] == id.as_bytes() => {
                Ok(&map[start + ENTRY_HEADER_LEN as usize..end])
            }
            _ => Err(Error::BadStore {
                store: self.dir.parent().unwrap_or(&self.dir).to_path_buf(),
                msg: format!(
                    "data file {:08}.dat does not hold chunk {} at offset {}: the store is damaged",
                    loc.file, id, loc.offset
                ),
            }),
        }
    }

    /// Drops the mapped pages from this process's resident set (the page
    /// cache keeps them), so reading a large snapshot does not grow memory.
    pub fn release(&self) {
        for map in self.maps.values() {
            // SAFETY: the maps are read-only and file-backed; dropped pages
            // are read back from the file on the next access.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// Like [`Self::release`], for the pages of data file `num` holding
    /// bytes `start..end` only (whole pages inside the range).
    pub fn release_range(&self, num: u32, start: u64, end: u64) {
        const PAGE: u64 = 4096;
        let Some(map) = self.maps.get(&num) else {
            return;
        };
        let start = start.div_ceil(PAGE) * PAGE;
        let end = (end / PAGE * PAGE).min(map.len() as u64);
        if end > start {
            // SAFETY: as in `release`.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start as usize,
                    (end - start) as usize,
                )
            };
        }
    }
}
