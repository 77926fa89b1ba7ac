//! The walk of a new snapshot's recipe while a pack is planned: for each
//! piece, whether it takes its chunk whole, which file it is in and where,
//! and where the old headers a tar-header chunk replaces are.

use std::collections::{HashMap, HashSet};

use crate::samepath::BaseFiles;
use crate::store::{ChunkEntry, ChunkRow, FileEntry, Op, Piece};

/// Where a piece sits: whether it takes its chunk whole, its place in the
/// current file's contents, and (for a tar-header chunk met the first
/// time) where in the bases' headers streams the headers it replaces are.
pub(super) struct Place {
    pub whole: bool,
    pub file: Option<FileAt>,
    pub header: Option<u64>,
}

/// A piece's place in a file: the file (its recipe row), the offset, the
/// file's size, and the old version of the file in the bases, if any.
pub(super) struct FileAt {
    pub file: u64,
    pub at: u64,
    pub size: u64,
    pub old: Option<usize>,
}

/// The file the walk of a new snapshot is in.
struct InFile {
    seq: u64,
    size: u64,
    at: u64,
    old: Option<usize>,
}

/// The walk of one new snapshot's recipe: the pieces so far, and where
/// the current piece sits in the snapshot's files and headers stream.
pub(super) struct Walk<'f> {
    pub pieces: Vec<(Piece, bool)>,
    pub total: u64,
    files: &'f [FileEntry],
    next_file: usize,
    /// Files met so far, by path (a path may appear in several layers).
    occurrences: HashMap<&'f [u8], usize>,
    in_file: Option<InFile>,
    seq: u64,
    /// Headers-stream chunks met so far, and where the next one starts.
    header_seen: HashSet<ChunkRow>,
    header_end: u64,
}

impl<'f> Walk<'f> {
    pub fn new(files: &'f [FileEntry], entries: usize) -> Self {
        Walk {
            pieces: Vec::with_capacity(entries),
            total: 0,
            files,
            next_file: 0,
            occurrences: HashMap::new(),
            in_file: None,
            seq: 0,
            header_seen: HashSet::new(),
            header_end: 0,
        }
    }

    /// Takes the next piece and says where it sits.
    pub fn step(&mut self, p: &Piece, c: &ChunkEntry, old_files: &BaseFiles) -> Place {
        let whole = p.off == 0 && p.len == c.len;
        self.pieces.push((*p, whole));
        self.total += p.output();
        self.enter_file(old_files);
        self.seq += 1;
        let file = self.file_at(p, whole);
        let header = (p.op != Op::Part && !whole && self.header_seen.insert(c.rowid)).then(|| {
            self.header_end += c.len as u64;
            self.in_old_headers(self.header_end - c.len as u64, p, old_files)
        });
        Place {
            whole,
            file,
            header,
        }
    }

    /// Where the new headers-stream chunk at `at`, first sliced by `p`,
    /// most likely sits in the bases' headers streams: the slice ends where
    /// the next file's contents start, so it lines up with where the tar
    /// structure before the old version of that file ends. Without an old
    /// version, the same offset.
    fn in_old_headers(&self, at: u64, p: &Piece, old_files: &BaseFiles) -> u64 {
        let old_end = self.files.get(self.next_file).and_then(|f| {
            let k = self.occurrences.get(&f.path[..]).copied().unwrap_or(0);
            old_files.header_end(old_files.find(&f.path, k, f.size)?)
        });
        // The chunk starts `p.off + p.len` bytes before the slice's end.
        old_end.map_or(at, |end| end.saturating_sub(p.off as u64 + p.len as u64))
    }

    /// Enters the next file when its contents start at this piece.
    fn enter_file(&mut self, old_files: &BaseFiles) {
        let files = self.files;
        if self.next_file < files.len() && files[self.next_file].seq == self.seq {
            let f = &files[self.next_file];
            let k = self.occurrences.entry(&f.path[..]).or_default();
            self.in_file = Some(InFile {
                seq: self.seq,
                size: f.size,
                at: 0,
                old: old_files.find(&f.path, *k, f.size),
            });
            *k += 1;
            self.next_file += 1;
        }
    }

    /// Where this piece sits in the current file's contents.
    fn file_at(&mut self, p: &Piece, whole: bool) -> Option<FileAt> {
        match self.in_file.as_mut() {
            Some(f) if p.op != Op::Part => {
                if !whole {
                    self.in_file = None;
                    return None;
                }
                let at = f.at;
                f.at += p.len as u64;
                let here = FileAt {
                    file: f.seq,
                    at,
                    size: f.size,
                    old: f.old,
                };
                if f.at >= f.size {
                    self.in_file = None;
                }
                Some(here)
            }
            _ => None,
        }
    }
}
