//! `ferry bench`: what shipping NEW to a side that has OLD costs, by every
//! way a user would ship it (full tar, gzip, zstd, layer-level delta,
//! `zstd --patch-from`, ferry without and with tar-aware splitting), and
//! where ferry's bytes go (file contents, headers, plain fallback; top
//! layers and paths). Works in temporary stores only.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::add::{AddOptions, Source};
use crate::archive::split::{self, Kind, Sink, is_tar_header};
use crate::chunker::{ChunkId, Cutter, Params};
use crate::counting::Counting;
use crate::error::{Error, IoContext, Result};
use crate::pack::{PackReader, Record};
use crate::progress::Progress;
use crate::send::{PackOptions, write_pack};
use crate::store::Store;

/// One way of shipping NEW.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What it is.
    pub method: String,
    /// Bytes shipped.
    pub bytes: u64,
    /// Of the full tar.
    pub percent: f64,
    /// Seconds to produce (None: nothing to do).
    pub seconds: Option<f64>,
    /// Seconds to unpack and rebuild NEW on the receiving side (ferry rows).
    pub unpack_seconds: Option<f64>,
}

/// Where the bytes of the ferry delta pack went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Breakdown {
    /// New file contents sent whole (encoded chunk bytes).
    pub contents: u64,
    /// Chunks sent as similarity deltas against chunks OLD has, and their bytes.
    pub delta_chunks: u64,
    /// Bytes of those deltas.
    pub deltas: u64,
    /// Tar headers, padding and archive structure.
    pub headers: u64,
    /// Bytes kept as plain streams (not understood, or gzip'd layers
    /// preflate could not re-create).
    pub raw: u64,
    /// Deflate re-creation data of gzip'd layers.
    pub deflate: u64,
    /// Recipes, record framing, header and trailer.
    pub recipes_and_framing: u64,
}

/// A layer or path and the bytes the ferry delta ships for it.
#[derive(Debug, Clone, Serialize)]
pub struct Share {
    /// Layer (archive entry) or file path.
    pub name: String,
    /// Encoded bytes shipped.
    pub bytes: u64,
}

/// The result of [`bench`].
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// What OLD was.
    pub old: String,
    /// What NEW was.
    pub new: String,
    /// Bytes of the NEW archive.
    pub full_bytes: u64,
    /// One row per way of shipping.
    pub rows: Vec<Row>,
    /// Where the ferry delta's bytes went.
    pub breakdown: Breakdown,
    /// The ten layers with the most shipped bytes.
    pub top_layers: Vec<Share>,
    /// The ten files with the most shipped bytes.
    pub top_paths: Vec<Share>,
}

fn secs(t: Instant) -> Option<f64> {
    Some(t.elapsed().as_secs_f64())
}

fn open(p: &Path) -> Result<BufReader<std::fs::File>> {
    Ok(BufReader::with_capacity(
        1 << 20,
        crate::add::open_input(p)?,
    ))
}

/// Compares ways of shipping `new` to a holder of `old` (archive files;
/// `old_label`/`new_label` name them in the report). `work` is a scratch
/// directory for temporary stores and packs. Memory: `zstd --patch-from`
/// holds OLD in memory, as the zstd tool does; everything else streams.
pub fn bench(
    old: &Path,
    new: &Path,
    old_label: &str,
    new_label: &str,
    work: &Path,
    progress: &dyn Progress,
) -> Result<BenchReport> {
    let full = std::fs::metadata(new)
        .ctx(|| format!("reading {}", new.display()))?
        .len();
    let pct = |b: u64| {
        if full == 0 {
            0.0
        } else {
            100.0 * b as f64 / full as f64
        }
    };
    let mut rows = Vec::new();
    let mut row = |method: &str, bytes: u64, seconds: Option<f64>, unpack: Option<f64>| {
        rows.push(Row {
            method: method.into(),
            bytes,
            percent: pct(bytes),
            seconds,
            unpack_seconds: unpack,
        })
    };
    row("full tar", full, None, None);

    progress.start("gzip -6", Some(full));
    let t = Instant::now();
    let mut gz =
        flate2::write::GzEncoder::new(Counting::new(std::io::sink()), flate2::Compression::new(6));
    copy_progress(&mut open(new)?, &mut gz, progress)?;
    let n = gz.finish().ctx(|| "gzip".to_string())?.count();
    row("gzip -6", n, secs(t), None);

    progress.start("zstd -19", Some(full));
    let t = Instant::now();
    let mut z = zstd::stream::write::Encoder::new(Counting::new(std::io::sink()), 19)
        .ctx(|| "zstd".to_string())?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    z.multithread(threads).ctx(|| "zstd".to_string())?;
    copy_progress(&mut open(new)?, &mut z, progress)?;
    let n = z.finish().ctx(|| "zstd".to_string())?.count();
    row("zstd -19", n, secs(t), None);

    progress.start("layers", None);
    let t = Instant::now();
    let old_layers: HashSet<[u8; 32]> = layers(old, false)?.into_iter().map(|l| l.digest).collect();
    let shipped: u64 = layers(new, true)?
        .into_iter()
        .filter(|l| !old_layers.contains(&l.digest))
        .map(|l| l.gzip_bytes)
        .sum();
    row("layer-level (new layers, gzip -6)", shipped, secs(t), None);

    progress.start("zstd --patch-from", Some(full));
    let t = Instant::now();
    let mut reference = Vec::new();
    open(old)?
        .read_to_end(&mut reference)
        .ctx(|| format!("reading {}", old.display()))?;
    let window = (64 - (reference.len() as u64 + full).max(1 << 20).leading_zeros()).min(31);
    let mut z = zstd::stream::write::Encoder::with_ref_prefix(
        Counting::new(std::io::sink()),
        3,
        &reference,
    )
    .ctx(|| "zstd".to_string())?;
    z.window_log(window).ctx(|| "zstd".to_string())?;
    z.long_distance_matching(true).ctx(|| "zstd".to_string())?;
    copy_progress(&mut open(new)?, &mut z, progress)?;
    let n = z.finish().ctx(|| "zstd".to_string())?.count();
    row("zstd -3 --long=31 --patch-from", n, secs(t), None);
    progress.start("zstd -19 --patch-from", Some(full));
    let t = Instant::now();
    let mut z = zstd::stream::write::Encoder::with_ref_prefix(
        Counting::new(std::io::sink()),
        19,
        &reference,
    )
    .ctx(|| "zstd".to_string())?;
    z.window_log(window).ctx(|| "zstd".to_string())?;
    z.long_distance_matching(true).ctx(|| "zstd".to_string())?;
    copy_progress(&mut open(new)?, &mut z, progress)?;
    let n = z.finish().ctx(|| "zstd".to_string())?.count();
    drop(reference);
    row("zstd -19 --long=31 --patch-from", n, secs(t), None);
    progress.finish();

    let mut delta_pack = PathBuf::new();
    let mut sent: Vec<ChunkId> = Vec::new();
    for (tar_split, deltas) in [(false, false), (true, false), (true, true)] {
        let tag = match (tar_split, deltas) {
            (false, _) => "plain",
            (true, false) => "split",
            (true, true) => "deltas",
        };
        let dir = work.join(format!("store-{tag}"));
        let mut store = Store::open_writer(&dir, std::time::Duration::ZERO)?;
        let add = |store: &mut Store, p: &Path, name: &str| -> Result<()> {
            let opts = AddOptions {
                name: Some(name.into()),
                replace: false,
                tar_split,
            };
            crate::add::add(store, Source::Path(p.to_path_buf()), &opts, progress).map(|_| ())
        };
        add(&mut store, old, "old")?;
        let t = Instant::now();
        add(&mut store, new, "new")?;
        let pack = work.join(format!("delta-{tag}.ferry"));
        let opts = PackOptions {
            snapshots: vec!["new".into()],
            bases: vec!["old".into()],
            no_deltas: !deltas,
            ..PackOptions::default()
        };
        let f = std::fs::File::create(&pack).ctx(|| format!("creating {}", pack.display()))?;
        let report = write_pack(&store, &opts, BufWriter::new(f), progress)?;
        let made = secs(t);
        let bytes = std::fs::metadata(&pack).ctx(|| "pack".to_string())?.len();
        // The receiving side: holds OLD, unpacks the delta and rebuilds NEW.
        let full_pack = work.join(format!("old-{tag}.ferry"));
        let f = std::fs::File::create(&full_pack).ctx(|| "pack".to_string())?;
        let opts = PackOptions {
            snapshots: vec!["old".into()],
            ..PackOptions::default()
        };
        write_pack(&store, &opts, BufWriter::new(f), progress)?;
        drop(store);
        let mut receiver = Store::open_writer(
            &work.join(format!("receiver-{tag}")),
            std::time::Duration::ZERO,
        )?;
        crate::receive::unpack(&mut receiver, open(&full_pack)?, &full_pack, progress)?;
        std::fs::remove_file(&full_pack).ctx(|| "cleaning up".to_string())?;
        let t = Instant::now();
        crate::receive::unpack(&mut receiver, open(&pack)?, &pack, progress)?;
        crate::checkout::checkout(&receiver, "new", &mut std::io::sink(), progress)?;
        let unpacked = secs(t);
        let method = match tag {
            "plain" => "ferry without tar-aware splitting",
            "split" => "ferry without similarity deltas",
            _ => "ferry",
        };
        row(method, bytes, made, unpacked);
        if deltas {
            delta_pack = pack;
            sent = report.1.sent;
        }
    }

    // Where the ferry delta's bytes went.
    progress.start("attributing", Some(full));
    let mut classes = Classify::new(crate::chunker::PARAMS);
    let mut input = ProgressRead {
        inner: open(new)?,
        progress,
    };
    split::split(&mut input, &mut classes, true).ctx(|| format!("reading {}", new.display()))?;
    classes.finish();
    progress.finish();
    let mut reader =
        PackReader::new(open(&delta_pack)?).map_err(|e| Error::pack(&delta_pack, e.to_string()))?;
    let mut breakdown = Breakdown::default();
    let mut by_layer: HashMap<u32, u64> = HashMap::new();
    let mut by_path: HashMap<u32, u64> = HashMap::new();
    let mut chunk_bytes = 0u64;
    let mut position = 0usize;
    while let Some(rec) = reader
        .next_record()
        .map_err(|e| Error::pack(&delta_pack, e.to_string()))?
    {
        // Each chunk with its share of the record's payload (a group's
        // frame is shared out by decoded length).
        let shares: Vec<(ChunkId, u64, bool)> = match rec {
            Record::Chunk(c) => vec![(c.id, c.payload.len() as u64, false)],
            Record::Delta(d) => vec![(d.id, d.payload.len() as u64, true)],
            Record::Group(g) => {
                let total = g.out_len().max(1);
                let frame = g.payload.len() as u64;
                let mut given = 0u64;
                let mut out = Vec::with_capacity(g.lens.len());
                for (k, &l) in g.lens.iter().enumerate() {
                    let n = if k + 1 == g.lens.len() {
                        frame - given
                    } else {
                        frame * l as u64 / total
                    };
                    given += n;
                    let id = sent.get(position + k).copied().unwrap_or([0; 32]);
                    out.push((id, n, true));
                }
                out
            }
            Record::Snapshot(_) => continue,
        };
        for (id, n, delta) in shares {
            position += 1;
            chunk_bytes += n;
            if delta {
                breakdown.deltas += n;
                breakdown.delta_chunks += 1;
            }
            let Some(&(class, layer, path)) = classes.map.get(&id) else {
                breakdown.raw += n;
                continue;
            };
            match class {
                _ if delta => {}
                Class::Content => breakdown.contents += n,
                Class::Raw => breakdown.raw += n,
                Class::Header => breakdown.headers += n,
                Class::Part => breakdown.deflate += n,
            }
            *by_layer.entry(layer).or_default() += n;
            let path = match class {
                Class::Header => classes.intern("(tar headers)"),
                Class::Part => classes.intern("(deflate re-creation data)"),
                _ => path,
            };
            *by_path.entry(path).or_default() += n;
        }
    }
    let pack_bytes = std::fs::metadata(&delta_pack)
        .ctx(|| "pack".to_string())?
        .len();
    breakdown.recipes_and_framing = pack_bytes.saturating_sub(chunk_bytes);
    let top = |m: HashMap<u32, u64>| -> Vec<Share> {
        let mut v: Vec<Share> = m
            .into_iter()
            .map(|(k, bytes)| Share {
                name: classes.names[k as usize].clone(),
                bytes,
            })
            .collect();
        v.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
        v.truncate(10);
        v
    };
    Ok(BenchReport {
        old: old_label.into(),
        new: new_label.into(),
        full_bytes: full,
        rows,
        breakdown,
        top_layers: top(by_layer),
        top_paths: top(by_path),
    })
}

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

struct ProgressRead<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for ProgressRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Content,
    Raw,
    Header,
    Part,
}

/// Cuts NEW exactly as `ferry add` does and notes, for every chunk, what
/// it holds and which layer and file it came from.
struct Classify {
    params: Params,
    headers: Cutter,
    file: Option<(Class, Cutter)>,
    /// Structure bytes since the last file began (to read its header).
    tail: Vec<u8>,
    layer: u32,
    /// Layers of the tars we are inside.
    outer: Vec<u32>,
    path: u32,
    names: Vec<String>,
    index: HashMap<String, u32>,
    map: HashMap<ChunkId, (Class, u32, u32)>,
}

impl Classify {
    fn new(params: Params) -> Classify {
        let mut c = Classify {
            params,
            headers: Cutter::new(params),
            file: None,
            tail: Vec::new(),
            layer: 0,
            outer: Vec::new(),
            path: 0,
            names: Vec::new(),
            index: HashMap::new(),
            map: HashMap::new(),
        };
        c.layer = c.intern("(archive)");
        c.path = c.layer;
        c
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.names.push(name.to_string());
        self.index
            .insert(name.to_string(), self.names.len() as u32 - 1);
        self.names.len() as u32 - 1
    }

    fn note(&mut self, data: &[u8], class: Class) {
        let id = *blake3::hash(data).as_bytes();
        let at = (class, self.layer, self.path);
        self.map.entry(id).or_insert(at);
    }

    /// The entry name in the header that ends `tail` at or before `back`
    /// bytes from its end (PAX `path` records win).
    fn entry_name(&self, slack: usize) -> Option<String> {
        let t = &self.tail;
        if t.len() < 512 {
            return None;
        }
        for back in 0..=slack.min(t.len() - 512) {
            let end = t.len() - back;
            let block = &t[end - 512..end];
            if is_tar_header(block) {
                let before = &t[..end - 512];
                if let Some(p) = before
                    .windows(6)
                    .rposition(|w| w == b" path=")
                    .and_then(|i| {
                        let rest = &before[i + 6..];
                        let stop = rest.iter().position(|&b| b == b'\n')?;
                        String::from_utf8(rest[..stop].to_vec()).ok()
                    })
                {
                    return Some(p);
                }
                let h = tar::Header::from_byte_slice(block);
                return h.path().ok().map(|p| p.display().to_string());
            }
        }
        None
    }

    fn finish(&mut self) {
        let mut out = Vec::new();
        self.headers.finish(&mut |c| out.push(c));
        for c in out {
            self.note(&c, Class::Header);
        }
    }
}

impl Sink for Classify {
    fn meta(&mut self, bytes: &[u8]) {
        let mut out = Vec::new();
        self.headers.push(bytes, &mut |c| out.push(c));
        for c in out {
            self.note(&c, Class::Header);
        }
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 256 << 10 {
            self.tail.drain(..self.tail.len() - (64 << 10));
        }
    }

    fn begin(&mut self, kind: Kind) {
        let class = match kind {
            Kind::Content => Class::Content,
            Kind::Raw => Class::Raw,
        };
        if let Some(name) = (class == Class::Content)
            .then(|| self.entry_name(0))
            .flatten()
        {
            self.path = self.intern(&name);
        } else if class == Class::Raw {
            self.path = self.intern("(plain stream)");
        }
        self.tail.clear();
        self.file = Some((class, Cutter::new(self.params)));
    }

    fn data(&mut self, bytes: &[u8]) {
        if let Some((class, cutter)) = self.file.as_mut() {
            let class = *class;
            let mut out = Vec::new();
            cutter.push(bytes, &mut |c| out.push(c));
            for c in out {
                self.note(&c, class);
            }
        }
    }

    fn end(&mut self) {
        if let Some((class, mut cutter)) = self.file.take() {
            let mut out = Vec::new();
            cutter.finish(&mut |c| out.push(c));
            for c in out {
                self.note(&c, class);
            }
        }
    }

    fn tar(&mut self) {
        // A nested tar: its archive entry (the header before it, perhaps
        // followed by a gzip header) names the layer.
        self.outer.push(self.layer);
        // Only tars directly inside the archive are layers; a tar inside a
        // layer stays part of it.
        if self.outer.len() == 2
            && let Some(name) = self.entry_name(1024)
        {
            self.layer = self.intern(&name);
        }
        self.tail.clear();
    }

    fn tar_end(&mut self) {
        if let Some(l) = self.outer.pop() {
            self.layer = l;
        }
    }

    fn part(&mut self, record: Vec<u8>, _out: u64) {
        self.note(&record, Class::Part);
    }
}

/// A bench input as an archive file: `what` is a file, used as it is; a
/// snapshot of the store in `store_dir`, checked out into `work`; or
/// `docker:IMAGE`, saved from the daemon at `docker_host` through a
/// temporary store in `work`. `tag` ("old" or "new") names what it writes.
pub fn input(
    what: &str,
    store_dir: &Path,
    docker_host: Option<&str>,
    work: &Path,
    tag: &str,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let out = work.join(format!("{tag}.tar"));
    if let Some(image) = what.strip_prefix("docker:") {
        let daemon = crate::docker::Daemon::connect(docker_host)?;
        let scratch = work.join(format!("docker-{tag}"));
        let mut store = Store::open_writer(&scratch, std::time::Duration::ZERO)?;
        let images = [image.to_string()];
        let r = crate::docker::save(&mut store, &daemon, &images, None, true, progress)?;
        crate::checkout::checkout_to_path(&store, &r.add.name, &out, progress)?;
        return Ok(out);
    }
    let p = Path::new(what);
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    match Store::open(store_dir) {
        Ok(store) if store.snapshot(what)?.is_some() => {
            crate::checkout::checkout_to_path(&store, what, &out, progress)?;
            Ok(out)
        }
        _ => Err(Error::Invalid(format!(
            "'{what}' is neither a file, nor a snapshot in {}, nor docker:IMAGE",
            store_dir.display()
        ))),
    }
}
