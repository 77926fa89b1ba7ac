//! `ferry add`: reads a stream (a file, a compressed file, or stdin), cuts it
//! into chunks, stores the chunks it has not seen before and records the
//! snapshot's recipe, all in one write operation that commits or leaves the
//! store untouched.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::archive::{self, Compression, Watch};
use crate::chunker::{self, ChunkId};
use crate::codec;
use crate::error::{Error, IoContext, Result};
use crate::progress::Progress;
use crate::store::{NewSnapshot, Piece, Store, now};

/// Where the bytes come from.
pub enum Source {
    /// A file.
    Path(PathBuf),
    /// Standard input.
    Stdin,
    /// Any reader (a Docker export stream, say), named by `label` in
    /// messages and metadata. Like stdin, it needs a name from `--name` or
    /// the archive's RepoTags.
    Reader {
        /// What the stream is, e.g. `docker:app:2`.
        label: String,
        /// The bytes.
        reader: Box<dyn Read + Send>,
    },
}

/// Options of [`add`].
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    /// Snapshot name; else the archive's first RepoTag, else the file name.
    pub name: Option<String>,
    /// Replace a snapshot of the same name with different content.
    pub replace: bool,
}

/// What [`add`] did.
#[derive(Debug, Clone, Serialize)]
pub struct AddReport {
    /// Snapshot name.
    pub name: String,
    /// Bytes of the (decompressed) stream.
    pub size: u64,
    /// BLAKE3 of the stream, hex.
    pub blake3: String,
    /// Chunks in the recipe.
    pub chunks: u64,
    /// Chunks the store did not have.
    pub new_chunks: u64,
    /// Encoded bytes those new chunks occupy.
    pub new_bytes: u64,
    /// Compression undone while reading ("none", "gzip", "zstd").
    pub compression: &'static str,
    /// The same snapshot was already stored; nothing changed.
    pub unchanged: bool,
    /// An older snapshot of this name was replaced.
    pub replaced: bool,
}

/// Checks a snapshot name: printable, no leading dash, at most 512 bytes.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 512
        || name.starts_with('-')
        || name.chars().any(|c| c.is_control())
    {
        return Err(Error::Invalid(format!(
            "'{}' is not a usable snapshot name: use 1-512 printable characters, not starting with '-'",
            name.escape_debug()
        )));
    }
    Ok(())
}

const PENDING: &str = "\u{1}pending";

/// Adds `source` to the store as a snapshot.
pub fn add(
    store: &mut Store,
    source: Source,
    opts: &AddOptions,
    progress: &dyn Progress,
) -> Result<AddReport> {
    if let Some(n) = &opts.name {
        validate_name(n)?;
    }
    let mut file_name = None;
    let (input, total, label): (Box<dyn Read + Send>, Option<u64>, String) = match source {
        Source::Path(p) => {
            let file = open_input(&p)?;
            let len = file.metadata().ok().map(|m| m.len());
            file_name = Some(derive_name(&p)?);
            (Box::new(file), len, p.display().to_string())
        }
        Source::Stdin => (Box::new(std::io::stdin()), None, "-".to_string()),
        Source::Reader { label, reader } => (reader, None, label),
    };
    let (reader, compression, raw) =
        archive::decompressed(input).ctx(|| format!("reading {label}"))?;
    let total = if compression == Compression::None {
        total
    } else {
        None
    };
    let params = store.params();
    progress.start("adding", total);

    let report = store.write(|txn| {
        let snap = txn.create_snapshot(&NewSnapshot {
            name: PENDING,
            size: 0,
            hash: &[0; 32],
            new_bytes: 0,
            added_at: now(),
            meta: &serde_json::Value::Null,
        })?;
        let mut seq = 0u64;
        let mut new_chunks = 0u64;
        let mut new_bytes = 0u64;
        let watch = chunker::for_each_batch(Watch::new(reader), params, |chunks| {
            // Which chunks are new? (Duplicates within the batch count once.)
            let mut fresh: HashMap<ChunkId, Option<i64>> = HashMap::new();
            let mut known = Vec::with_capacity(chunks.len());
            for c in &chunks {
                let row = match fresh.get(&c.id) {
                    Some(_) => None,
                    None => {
                        let row = txn.chunk_rowid(&c.id)?;
                        if row.is_none() {
                            fresh.insert(c.id, None);
                        }
                        row
                    }
                };
                known.push(row);
            }
            let bytes: u64 = chunks.iter().map(|c| c.data.len() as u64).sum();
            let lens: Vec<u32> = chunks.iter().map(|c| c.data.len() as u32).collect();
            let ids: Vec<ChunkId> = chunks.iter().map(|c| c.id).collect();
            let encoded: Vec<Option<(codec::Codec, Vec<u8>)>> = chunks
                .into_par_iter()
                .zip(known.par_iter())
                .map(|(c, k)| k.is_none().then(|| codec::encode(c.data)))
                .collect();
            for (i, enc) in encoded.into_iter().enumerate() {
                let id = &ids[i];
                let row = match (known[i], enc) {
                    (Some(row), _) => row,
                    (None, Some((codec, payload))) => match fresh[id] {
                        Some(row) => row,
                        None => {
                            let row = txn.insert_chunk(id, codec, lens[i], &payload)?;
                            fresh.insert(*id, Some(row));
                            new_chunks += 1;
                            new_bytes += payload.len() as u64;
                            row
                        }
                    },
                    (None, None) => unreachable!("unknown chunk left unencoded"),
                };
                txn.push_piece(
                    snap,
                    seq,
                    Piece {
                        chunk: row,
                        off: 0,
                        len: lens[i],
                    },
                )?;
                seq += 1;
            }
            progress.advance(bytes);
            Ok(())
        })?;
        let (size, hash, facts) = watch.finish();
        let tags = facts.repo_tags();
        let name = match (&opts.name, tags.first(), file_name) {
            (Some(n), _, _) => n.clone(),
            (None, Some(tag), _) => tag.clone(),
            (None, None, Some(f)) => f,
            (None, None, None) => {
                let what = if label == "-" { "standard input".to_string() } else { label.clone() };
                return Err(Error::Invalid(format!(
                    "{what} is not a docker archive with RepoTags: give the snapshot a name with --name"
                )));
            }
        };
        validate_name(&name)?;
        let hash = *hash.as_bytes();
        let mut replaced = false;
        if let Some(old) = txn.store().snapshot(&name)? {
            if old.blake3 == crate::hex(&hash) {
                txn.delete_snapshot(snap)?;
                return Ok(AddReport {
                    name,
                    size,
                    blake3: old.blake3,
                    chunks: seq,
                    new_chunks: 0,
                    new_bytes: 0,
                    compression: compression.name(),
                    unchanged: true,
                    replaced: false,
                });
            }
            if !opts.replace {
                return Err(Error::NameConflict(format!(
                    "the store already has a snapshot named '{name}' with other content (blake3 {}): pass --replace to replace it, or --name to add this one under another name",
                    &old.blake3[..16]
                )));
            }
            txn.delete_snapshot(old.rowid)?;
            replaced = true;
        }
        let mut meta = serde_json::json!({ "source": label });
        if facts.entries > 0 {
            meta["tar_entries"] = facts.entries.into();
        }
        if !tags.is_empty() {
            meta["repo_tags"] = tags.clone().into();
        }
        let images = facts.images();
        if !images.is_empty() {
            meta["docker"] = serde_json::json!({
                "layout": if facts.oci_layout { "oci" } else { "legacy" },
                "images": images,
            });
        }
        if let Some(raw) = raw {
            let raw = raw.lock().expect("digest lock");
            meta["compressed"] = serde_json::json!({
                "format": compression.name(),
                "size": raw.size(),
                "blake3": raw.hash().to_hex().to_string(),
            });
        }
        txn.store()
            .conn()
            .execute(
                "UPDATE snapshots SET name = ?2, size = ?3, hash = ?4, new_bytes = ?5, meta = ?6 WHERE rowid = ?1",
                rusqlite::params![snap, name, size, &hash[..], new_bytes, meta.to_string()],
            )?;
        txn.finish_snapshot(snap)?;
        Ok(AddReport {
            name,
            size,
            blake3: crate::hex(&hash),
            chunks: seq,
            new_chunks,
            new_bytes,
            compression: compression.name(),
            unchanged: false,
            replaced,
        })
    });
    progress.finish();
    report
}

/// Opens an input file with a clear message when it is missing or a directory.
pub fn open_input(p: &Path) -> Result<File> {
    match File::open(p) {
        Ok(f) => {
            if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                return Err(Error::Invalid(format!(
                    "{} is a directory: give an archive file (docker save -o app.tar IMAGE makes one)",
                    p.display()
                )));
            }
            Ok(f)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound(p.to_path_buf())),
        Err(e) => Err(Error::io(format!("opening {}", p.display()), e)),
    }
}

fn derive_name(p: &Path) -> Result<String> {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "cannot derive a snapshot name from {}: pass --name",
                p.display()
            ))
        })
}
