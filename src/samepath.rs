//! Same-path bases: the old version of a file, found by its path in the
//! base snapshots. A bumped package rewrites its files in place (often
//! under a directory whose name carries the version, such as
//! `numpy-2.1.0.dist-info` -> `numpy-2.1.1.dist-info`), so the file at the
//! same path, modulo version numbers, is the best reference for a delta.

use std::collections::HashMap;

use crate::error::Result;
use crate::store::{ChunkEntry, Op, Store};

/// A file's contents in a base snapshot: its chunks in order.
#[derive(Debug, Clone)]
pub struct OldFile {
    /// Its size.
    pub size: u64,
    /// Its content chunks, in order.
    pub chunks: Vec<ChunkEntry>,
    /// Where the tar structure before its contents (its header) ends in
    /// the bases' headers streams.
    pub header_end: Option<u64>,
}

/// The files of the base snapshots, by path.
#[derive(Default)]
pub struct BaseFiles {
    files: Vec<OldFile>,
    /// Exact path -> files with it, in stream order (a path may appear in
    /// several layers).
    exact: HashMap<Vec<u8>, Vec<usize>>,
    /// Path with version numbers blanked -> files.
    loose: HashMap<Vec<u8>, Vec<usize>>,
    /// The bases' headers streams (tar headers and padding, cut into
    /// chunks): each chunk with its offset, in stream order.
    headers: Vec<(u64, ChunkEntry)>,
}

/// Reference bytes a group may use at most; a larger old file contributes
/// the window around the part that changed.
pub const PREFIX_CAP: u64 = 16 << 20;

impl BaseFiles {
    /// Reads the files of a base snapshot and its recipe summary (one walk
    /// of its recipe for both). A snapshot that came in a pack carries no
    /// file list and contributes no files.
    pub fn load(&mut self, store: &Store, snap: i64) -> Result<crate::store::RecipeSummary> {
        let files = store.files(snap)?;
        let first = self.files.len();
        let mut next = 0usize;
        let mut open: Option<(usize, u64)> = None; // file index, bytes left
        let mut seq = 0u64;
        let out = &mut self.files;
        let headers = &mut self.headers;
        // Each headers-stream chunk's offset, and where the last slice of
        // one ended.
        let mut header_at = HashMap::new();
        let mut slice_end = None;
        let mut header_end = headers
            .last()
            .map_or(0, |(at, c): &(u64, ChunkEntry)| at + c.len as u64);
        let sum = store.recipe_summary_with(snap, |p, c| {
            if p.op != Op::Part && (p.off != 0 || p.len != c.len) {
                let at = *header_at.entry(c.rowid).or_insert_with(|| {
                    headers.push((header_end, *c));
                    header_end += c.len as u64;
                    header_end - c.len as u64
                });
                slice_end = Some(at + p.off as u64 + p.len as u64);
            }
            if next < files.len() && files[next].seq == seq {
                out.push(OldFile {
                    size: files[next].size,
                    chunks: Vec::new(),
                    header_end: slice_end,
                });
                open = Some((out.len() - 1, files[next].size));
                next += 1;
            }
            seq += 1;
            let Some((f, left)) = open.as_mut() else {
                return;
            };
            if p.op == Op::Part {
                return;
            }
            if p.off != 0 || p.len != c.len {
                // A header slice: the file ended early (not expected).
                open = None;
                return;
            }
            out[*f].chunks.push(*c);
            *left = left.saturating_sub(p.len as u64);
            if *left == 0 {
                open = None;
            }
        })?;
        for (i, f) in files.iter().enumerate().take(self.files.len() - first) {
            let idx = first + i;
            self.exact.entry(f.path.clone()).or_default().push(idx);
            self.loose.entry(loosen(&f.path)).or_default().push(idx);
        }
        Ok(sum)
    }

    /// Chunks of the bases' headers streams around offset `at` (the new
    /// headers stream's chunk of `len` bytes there most likely replaces
    /// them: the same files in the same order, with new times): at most 4
    /// chunks and 1 MiB.
    pub fn headers_around(&self, at: u64, len: u32) -> Vec<ChunkEntry> {
        let lo = at.saturating_sub(64 << 10);
        let hi = at + len as u64 + (64 << 10);
        let first = self
            .headers
            .partition_point(|(o, c)| o + c.len as u64 <= lo);
        let mut taken = 0u64;
        let mut out = Vec::new();
        for (o, c) in &self.headers[first..] {
            if *o >= hi
                || taken + c.len as u64 > 1 << 20
                || out.len() == crate::pack::format::MAX_DELTA_BASES
            {
                break;
            }
            taken += c.len as u64;
            out.push(*c);
        }
        out
    }

    /// Where the tar structure before old file `file`'s contents ends in
    /// the bases' headers streams.
    pub fn header_end(&self, file: usize) -> Option<u64> {
        self.files[file].header_end
    }

    /// True when no base has a file list.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The old version of the `occurrence`-th file at `path` in the new
    /// snapshot: the same occurrence of the same path, else of the path
    /// with version numbers blanked (the one closest in size when several
    /// match and occurrences do not line up).
    pub fn find(&self, path: &[u8], occurrence: usize, size: u64) -> Option<usize> {
        let pick = |list: &Vec<usize>| -> Option<usize> {
            if let Some(&i) = list.get(occurrence) {
                return Some(i);
            }
            list.iter()
                .copied()
                .min_by_key(|&i| self.files[i].size.abs_diff(size))
        };
        let found = match self.exact.get(path) {
            Some(list) => pick(list),
            None => self.loose.get(&loosen(path)).and_then(pick),
        };
        found.filter(|&i| !self.files[i].chunks.is_empty())
    }

    /// The old file's chunks to use as reference for the new bytes
    /// `from..to` of a file of `new_size` bytes: all of them when the old
    /// file fits in [`PREFIX_CAP`], else those around the same relative
    /// position.
    pub fn window(&self, file: usize, from: u64, to: u64, new_size: u64) -> Vec<ChunkEntry> {
        let old = &self.files[file];
        if old.size <= PREFIX_CAP {
            return old.chunks.clone();
        }
        let mid = (from + to) / 2;
        let centre = (mid as u128 * old.size as u128 / new_size.max(1) as u128) as u64;
        let lo = centre
            .saturating_sub(PREFIX_CAP / 2)
            .min(old.size - PREFIX_CAP);
        let hi = lo + PREFIX_CAP;
        let (mut at, mut taken) = (0u64, 0u64);
        let mut out = Vec::new();
        for c in &old.chunks {
            let end = at + c.len as u64;
            if end > lo && at < hi {
                if taken + c.len as u64 > PREFIX_CAP {
                    break;
                }
                taken += c.len as u64;
                out.push(*c);
            }
            at = end;
        }
        out
    }
}

/// `path` with every run of digits (and the dots between them) replaced by
/// `#`: `numpy-2.1.0.dist-info/RECORD` -> `numpy-#.dist-info/RECORD`.
pub fn loosen(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i].is_ascii_digit() {
            while i < path.len()
                && (path[i].is_ascii_digit()
                    || (path[i] == b'.' && path.get(i + 1).is_some_and(u8::is_ascii_digit)))
            {
                i += 1;
            }
            out.push(b'#');
        } else {
            out.push(path[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::loosen;

    #[test]
    fn version_numbers_are_blanked() {
        assert_eq!(
            loosen(b"site/numpy-2.1.0.dist-info/RECORD"),
            b"site/numpy-#.dist-info/RECORD"
        );
        assert_eq!(
            loosen(b"site/numpy-2.1.1.dist-info/RECORD"),
            loosen(b"site/numpy-2.1.0.dist-info/RECORD")
        );
        assert_eq!(loosen(b"lib/libssl.so.3"), b"lib/libssl.so.#");
        assert_ne!(loosen(b"a/x.py"), loosen(b"a/y.py"));
        assert_eq!(loosen(b"v10.2.tar"), b"v#.tar");
    }
}
