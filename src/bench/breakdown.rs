//! Where the bytes of ferry's delta pack go: NEW is cut again exactly as
//! `ferry add` cuts it, each chunk noted with what it holds (file contents,
//! tar headers, plain stream, deflate re-creation data) and the layer and
//! file it came from; then every chunk record of the pack is charged to
//! its chunk's class, layer and path.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use super::{Breakdown, Share, open};
use crate::archive::split::{self, Kind, Sink, is_tar_header};
use crate::chunker::{ChunkId, Cutter, Params};
use crate::error::{Error, IoContext, Result};
use crate::pack::{PackReader, Record};
use crate::progress::Progress;

/// The attribution of a delta pack's bytes.
pub(super) struct Attributed {
    /// By class.
    pub breakdown: Breakdown,
    /// The ten layers with the most shipped bytes.
    pub top_layers: Vec<Share>,
    /// The ten files with the most shipped bytes.
    pub top_paths: Vec<Share>,
}

/// Attributes the bytes of `delta_pack` (the delta of `new`, `full` bytes
/// long, that sent the chunks `sent` in order).
pub(super) fn attribute(
    new: &Path,
    full: u64,
    delta_pack: &Path,
    sent: &[ChunkId],
    progress: &dyn Progress,
) -> Result<Attributed> {
    progress.start("ferry: attributing its bytes", Some(full));
    let mut classes = Classify::new(crate::chunker::PARAMS);
    let mut input = ProgressRead {
        inner: open(new)?,
        progress,
    };
    split::split(&mut input, &mut classes, true).ctx(|| format!("reading {}", new.display()))?;
    classes.finish();
    progress.finish();
    let mut reader =
        PackReader::new(open(delta_pack)?).map_err(|e| Error::pack(delta_pack, e.to_string()))?;
    let mut charges = Charges::default();
    while let Some(rec) = reader
        .next_record()
        .map_err(|e| Error::pack(delta_pack, e.to_string()))?
    {
        let Some(shares) = shares(rec, sent, charges.position) else {
            continue;
        };
        for (id, n, delta) in shares {
            charges.charge(&mut classes, id, n, delta);
        }
    }
    let pack_bytes = std::fs::metadata(delta_pack)
        .ctx(|| "pack".to_string())?
        .len();
    let mut breakdown = charges.breakdown;
    breakdown.recipes_and_framing = pack_bytes.saturating_sub(charges.chunk_bytes);
    breakdown.gzip_layers = classes.gzip_layers;
    Ok(Attributed {
        breakdown,
        top_layers: top(charges.by_layer, &classes.names),
        top_paths: top(charges.by_path, &classes.names),
    })
}

/// The chunks of a frame of `frame` bytes carrying chunks of `lens`, each
/// with its share of the frame by decoded length (the chunks are the next
/// ones of `sent` from `position`).
fn share_frame(
    lens: &[u32],
    frame: u64,
    sent: &[ChunkId],
    position: usize,
    delta: bool,
) -> Vec<(ChunkId, u64, bool)> {
    let total: u64 = lens.iter().map(|&l| l as u64).sum::<u64>().max(1);
    let mut given = 0u64;
    let mut out = Vec::with_capacity(lens.len());
    for (k, &l) in lens.iter().enumerate() {
        let n = if k + 1 == lens.len() {
            frame - given
        } else {
            frame * l as u64 / total
        };
        given += n;
        let id = sent.get(position + k).copied().unwrap_or_default();
        out.push((id, n, delta));
    }
    out
}

/// Each chunk of a record with its share of the record's payload and
/// whether it travels as a delta (a group's frame is shared out by decoded
/// length; its chunks are the next ones of `sent` from `position`). None
/// for a record that carries no chunk.
fn shares(rec: Record, sent: &[ChunkId], position: usize) -> Option<Vec<(ChunkId, u64, bool)>> {
    Some(match rec {
        Record::Chunk(c) => vec![(c.id, c.payload.len() as u64, false)],
        Record::Delta(d) => vec![(d.id, d.wire_len as u64, true)],
        Record::Group(g) => share_frame(&g.lens, g.wire_len as u64, sent, position, true),
        Record::Block(b) => share_frame(&b.lens, b.payload.len() as u64, sent, position, false),
        Record::Snapshot(_) => return None,
    })
}

/// The pack's chunk bytes, charged so far.
#[derive(Default)]
struct Charges {
    breakdown: Breakdown,
    /// Bytes by layer name (interned).
    by_layer: HashMap<u32, u64>,
    /// Bytes by path name (interned).
    by_path: HashMap<u32, u64>,
    /// All chunk payload bytes.
    chunk_bytes: u64,
    /// Chunks seen so far.
    position: usize,
}

impl Charges {
    /// Charges `n` bytes of chunk `id` (sent as a delta or not) to its
    /// class, layer and path; a chunk the cut of NEW never made is plain.
    fn charge(&mut self, classes: &mut Classify, id: ChunkId, n: u64, delta: bool) {
        self.position += 1;
        self.chunk_bytes += n;
        if delta {
            self.breakdown.deltas += n;
            self.breakdown.delta_chunks += 1;
        }
        let Some(&(class, layer, path)) = classes.map.get(&id) else {
            self.breakdown.raw += n;
            return;
        };
        match class {
            _ if delta => {}
            Class::Content => self.breakdown.contents += n,
            Class::Raw => self.breakdown.raw += n,
            Class::Header => self.breakdown.headers += n,
            Class::Part => self.breakdown.deflate += n,
        }
        *self.by_layer.entry(layer).or_default() += n;
        let path = match class {
            Class::Header => classes.intern("(tar headers)"),
            Class::Part => classes.intern("(deflate re-creation data)"),
            _ => path,
        };
        *self.by_path.entry(path).or_default() += n;
    }
}

/// The ten names with the most bytes, largest first (ties by name).
fn top(m: HashMap<u32, u64>, names: &[String]) -> Vec<Share> {
    let mut v: Vec<Share> = m
        .into_iter()
        .map(|(k, bytes)| Share {
            name: names[k as usize].clone(),
            bytes,
        })
        .collect();
    v.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
    v.truncate(10);
    v
}

/// Reports every read to a [`Progress`]. Not a counter: the attribution
/// pass needs no byte count, only the progress bar moving as NEW is read.
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
    gzip_layers: crate::chunker::EncoderCounts,
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
            gzip_layers: Default::default(),
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
        let id = ChunkId::of(data);
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

    fn gzip(&mut self, outcome: split::Outcome, _size: u64, _raw: u64) {
        self.gzip_layers.count(outcome);
    }

    fn part(&mut self, record: Vec<u8>, _out: u64) {
        self.note(&record, Class::Part);
    }
}
