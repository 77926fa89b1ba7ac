//! The rows of `ferry bench` that other tools would ship: gzip and zstd of
//! the whole tar, the new layers only (what a registry pull costs), and
//! `zstd --patch-from` against OLD.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::Selection;
use super::{Rows, open, secs};
use crate::archive::split::is_tar_header;
use crate::counting::Counting;
use crate::error::{Error, IoContext, Result};
use crate::progress::Progress;

/// Measures the other tools' ways of shipping `new` (of `full` bytes) to a
/// holder of `old`, one row each.
pub(super) fn measure(
    old: &Path,
    new: &Path,
    full: u64,
    rows: &mut Rows,
    wanted: &Selection,
    progress: &dyn Progress,
) -> Result<()> {
    let mut row = |method: &str, bytes: u64, seconds: Option<f64>, unpack: Option<f64>| {
        rows.push(method, bytes, seconds, unpack)
    };
    if wanted.wants("gzip") {
        progress.start("gzip -6", Some(full));
        let t = Instant::now();
        let mut gz = flate2::write::GzEncoder::new(
            Counting::new(std::io::sink()),
            flate2::Compression::new(6),
        );
        copy_progress(&mut open(new)?, &mut gz, progress)?;
        let n = gz.finish().ctx(|| "gzip".to_string())?.count();
        row("gzip -6", n, secs(t), None);
    }
    if wanted.wants("zstd") {
        // The multithreaded encoder takes the input long before it has
        // compressed it: its progress cannot be measured, only timed.
        progress.start("zstd -19", None);
        let t = Instant::now();
        let mut z = zstd::stream::write::Encoder::new(Counting::new(std::io::sink()), 19)
            .ctx(|| "zstd".to_string())?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        z.multithread(threads).ctx(|| "zstd".to_string())?;
        copy_progress(&mut open(new)?, &mut z, progress)?;
        let n = z.finish().ctx(|| "zstd".to_string())?.count();
        row("zstd -19", n, secs(t), None);
    }
    if wanted.wants("layers") {
        progress.start("layer-level: reading layers", None);
        let t = Instant::now();
        let old_layers: HashSet<[u8; 32]> =
            layers(old, false)?.into_iter().map(|l| l.digest).collect();
        let shipped: u64 = layers(new, true)?
            .into_iter()
            .filter(|l| !old_layers.contains(&l.digest))
            .map(|l| l.gzip_bytes)
            .sum();
        row("layer-level (new layers, gzip -6)", shipped, secs(t), None);
    }
    patch_rows(old, new, full, wanted, rows, progress)?;
    progress.finish();
    Ok(())
}

/// The `zstd --patch-from` rows `wanted` names.
fn patch_rows(
    old: &Path,
    new: &Path,
    full: u64,
    wanted: &Selection,
    rows: &mut Rows,
    progress: &dyn Progress,
) -> Result<()> {
    if !wanted.wants("zstd-patch") && !wanted.wants("zstd19-patch") {
        return Ok(());
    }
    progress.start("zstd --patch-from: reading OLD", None);
    let t = Instant::now();
    let mut reference = Vec::new();
    open(old)?
        .read_to_end(&mut reference)
        .ctx(|| format!("reading {}", old.display()))?;
    let window = (64 - (reference.len() as u64 + full).max(1 << 20).leading_zeros()).min(31);
    if wanted.wants("zstd-patch") {
        progress.start("zstd -3 --patch-from", Some(full));
        let n = patch_from(new, &reference, 3, window, progress)?;
        rows.push("zstd -3 --long=31 --patch-from", n, secs(t), None);
    }
    if wanted.wants("zstd19-patch") {
        progress.start("zstd -19 --patch-from", Some(full));
        let t = Instant::now();
        let n = patch_from(new, &reference, 19, window, progress)?;
        rows.push("zstd -19 --long=31 --patch-from", n, secs(t), None);
    }
    Ok(())
}

/// Bytes of `zstd -<level> --long --patch-from=OLD` of `new`, with OLD's
/// bytes in `reference` and a window of 2^`window` bytes.
fn patch_from(
    new: &Path,
    reference: &[u8],
    level: i32,
    window: u32,
    progress: &dyn Progress,
) -> Result<u64> {
    let mut z = zstd::stream::write::Encoder::with_ref_prefix(
        Counting::new(std::io::sink()),
        level,
        reference,
    )
    .ctx(|| "zstd".to_string())?;
    z.window_log(window).ctx(|| "zstd".to_string())?;
    z.long_distance_matching(true).ctx(|| "zstd".to_string())?;
    copy_progress(&mut open(new)?, &mut z, progress)?;
    Ok(z.finish().ctx(|| "zstd".to_string())?.count())
}

/// Copies `r` into `w`, moving the progress bar as it goes.
fn copy_progress(r: &mut dyn Read, w: &mut dyn Write, progress: &dyn Progress) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading input", e)),
        };
        w.write_all(&buf[..n]).ctx(|| "compressing".to_string())?;
        progress.advance(n as u64);
    }
    Ok(())
}

/// A layer of a docker archive.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Its archive entry.
    pub path: String,
    /// sha256 of the entry (its digest, or its diff_id when uncompressed).
    pub digest: [u8; 32],
    /// Entry size.
    pub bytes: u64,
    /// gzip -6 size (its own size when it is gzip'd already).
    pub gzip_bytes: u64,
}

/// The layers of a docker archive: every top-level entry that is a tar or
/// a gzip'd tar, found by content; `gzip_bytes` is measured only with
/// `measure` (else 0).
pub fn layers(path: &Path, measure: bool) -> Result<Vec<Layer>> {
    let mut a = tar::Archive::new(open(path)?);
    let mut out = Vec::new();
    let entries = a.entries().ctx(|| format!("reading {}", path.display()))?;
    for e in entries {
        let mut e = e.ctx(|| format!("reading {}", path.display()))?;
        if !e.header().entry_type().is_file() || e.size() < 1024 {
            continue;
        }
        let name = e
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut head = [0u8; 512];
        e.read_exact(&mut head)
            .ctx(|| format!("reading {}", path.display()))?;
        let gzipped = head.starts_with(&[0x1f, 0x8b]);
        let is_layer = if gzipped {
            let mut plain = [0u8; 512];
            let mut d = flate2::read::GzDecoder::new(&head[..]);
            // 512 compressed bytes rarely hold fewer than 512 plain ones;
            // when they do, the entry counts as a layer.
            let n = read_some(&mut d, &mut plain);
            n < 512 || is_tar_header(&plain)
        } else {
            is_tar_header(&head)
        };
        if !is_layer {
            continue;
        }
        let mut sha = Sha256::new();
        sha.update(head);
        let mut gz = flate2::write::GzEncoder::new(
            Counting::new(std::io::sink()),
            flate2::Compression::new(6),
        );
        if measure && !gzipped {
            gz.write_all(&head).ctx(|| "gzip".to_string())?;
        }
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = e
                .read(&mut buf)
                .ctx(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            if measure && !gzipped {
                gz.write_all(&buf[..n]).ctx(|| "gzip".to_string())?;
            }
        }
        let size = e.size();
        out.push(Layer {
            path: name,
            digest: sha.finalize().into(),
            bytes: size,
            gzip_bytes: match (measure, gzipped) {
                (false, _) => 0,
                (true, true) => size,
                (true, false) => gz.finish().ctx(|| "gzip".to_string())?.count(),
            },
        });
    }
    Ok(out)
}

fn read_some(r: &mut dyn Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}
