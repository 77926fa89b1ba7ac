//! Understanding what is being added: detects gzip/zstd compression and
//! undoes it, and watches the byte stream go by for a tar's entries so that
//! a `docker save` archive's manifest.json (its RepoTags) is picked up
//! without a second read.

pub mod go127;
pub mod goenc;
pub mod gostd;
mod gostream;
pub mod gzip;
pub mod image;
pub mod kpflate;
mod layers;
pub mod recreate;
pub mod split;

use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

/// How an input was compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (one or more members).
    Gzip,
    /// zstd (one or more frames).
    Zstd,
}

impl Compression {
    /// Name used in metadata and messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// Size and BLAKE3 of the bytes as they were read, before decompression.
#[derive(Default)]
pub struct RawDigest {
    hasher: blake3::Hasher,
    size: u64,
}

impl RawDigest {
    /// Bytes read.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// BLAKE3 of the bytes read.
    pub fn hash(&self) -> blake3::Hash {
        self.hasher.finalize()
    }
}

struct RawTap<R> {
    inner: R,
    digest: Arc<Mutex<RawDigest>>,
}

impl<R: Read> Read for RawTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut d = self.digest.lock().expect("digest lock");
        d.hasher.update(&buf[..n]);
        d.size += n as u64;
        Ok(n)
    }
}

/// A decompressing reader, the compression found, and (when compressed)
/// the digest of the original bytes, filled in as they are read.
pub type Decompressed = (
    Box<dyn Read + Send>,
    Compression,
    Option<Arc<Mutex<RawDigest>>>,
);

/// Opens `input` with its compression (found by magic bytes) undone.
/// For compressed inputs, the returned digest tracks the original bytes.
pub fn decompressed<R: Read + Send + 'static>(input: R) -> io::Result<Decompressed> {
    let mut buf = BufReader::with_capacity(1 << 20, input);
    let head = buf.fill_buf()?;
    let kind = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    };
    if kind == Compression::None {
        return Ok((Box::new(buf), kind, None));
    }
    let digest = Arc::new(Mutex::new(RawDigest::default()));
    let tap = RawTap {
        inner: buf,
        digest: digest.clone(),
    };
    let reader: Box<dyn Read + Send> = match kind {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(tap)),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(tap)?;
            d.window_log_max(31)?;
            Box::new(d)
        }
        Compression::None => unreachable!(),
    };
    Ok((reader, kind, Some(digest)))
}

/// What the tar watcher saw.
#[derive(Debug, Default, Clone)]
pub struct TarFacts {
    /// Valid tar headers seen (0 when the stream is not a tar).
    pub entries: u64,
    /// The bytes of a top-level `manifest.json`, if one was seen.
    pub manifest: Option<Vec<u8>>,
    /// An `oci-layout` file was seen (Docker 25+ OCI archive layout).
    pub oci_layout: bool,
}

impl TarFacts {
    /// The images a docker-archive manifest.json names (empty otherwise).
    pub fn images(&self) -> Vec<image::ImageInfo> {
        self.manifest
            .as_deref()
            .and_then(|m| image::parse_manifest(m).ok())
            .map(|m| image::images(&m))
            .unwrap_or_default()
    }

    /// RepoTags of every image in a docker-archive manifest.json, in order.
    pub fn repo_tags(&self) -> Vec<String> {
        self.images().into_iter().flat_map(|i| i.tags).collect()
    }
}

const MAX_MANIFEST: u64 = 16 << 20;

enum State {
    Header { buf: Box<[u8; 512]>, have: usize },
    Body { left: u64, pad: u64, capture: bool },
    Done,
}

/// Hashes a stream on its own thread, so hashing does not slow the
/// thread that reads (and splits) it: bytes are staged in 1 MiB buffers.
struct StreamHash {
    buf: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    /// Buffers the hashing thread is done with, to be filled again (a
    /// fresh 1 MiB buffer is fresh pages: a fault and a zeroing each).
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<blake3::Hasher>>,
}

const STAGE: usize = 1 << 20;

impl StreamHash {
    fn new() -> StreamHash {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let (back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        let thread = std::thread::spawn(move || {
            let mut hasher = blake3::Hasher::new();
            for mut buf in rx {
                hasher.update(&buf);
                buf.clear();
                // The reader may be gone already (at the end).
                let _ = back.send(buf);
            }
            hasher
        });
        StreamHash {
            buf: Vec::with_capacity(STAGE),
            tx: Some(tx),
            spare,
            thread: Some(thread),
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = (STAGE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == STAGE {
                self.send();
            }
        }
    }

    fn send(&mut self) {
        let next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(STAGE));
        let full = std::mem::replace(&mut self.buf, next);
        if let Some(tx) = &self.tx {
            tx.send(full).expect("hashing thread alive");
        }
    }

    fn finalize(mut self) -> blake3::Hash {
        self.send();
        drop(self.tx.take());
        let hasher = self
            .thread
            .take()
            .expect("hashing thread")
            .join()
            .expect("hashing thread panicked");
        hasher.finalize()
    }
}

/// A reader that passes bytes through unchanged, hashing the stream and
/// following tar headers as they go by.
pub struct Watch<R> {
    inner: R,
    hasher: StreamHash,
    size: u64,
    state: State,
    facts: TarFacts,
    captured: Vec<u8>,
}

impl<R: Read> Watch<R> {
    /// Watches `inner`.
    pub fn new(inner: R) -> Self {
        Watch {
            inner,
            hasher: StreamHash::new(),
            size: 0,
            state: State::Header {
                buf: Box::new([0; 512]),
                have: 0,
            },
            facts: TarFacts::default(),
            captured: Vec::new(),
        }
    }

    /// Size, BLAKE3 and tar facts of everything read.
    pub fn finish(self) -> (u64, blake3::Hash, TarFacts) {
        (self.size, self.hasher.finalize(), self.facts)
    }

    fn observe(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Done => return,
                State::Header { buf, have } => {
                    let n = (512 - *have).min(data.len());
                    buf[*have..*have + n].copy_from_slice(&data[..n]);
                    *have += n;
                    data = &data[n..];
                    if *have == 512 {
                        let block = std::mem::replace(buf, Box::new([0; 512]));
                        self.state = self.parse_header(&block);
                    }
                }
                State::Body { left, pad, capture } => {
                    let n = (*left).min(data.len() as u64) as usize;
                    if *capture {
                        self.captured.extend_from_slice(&data[..n]);
                    }
                    *left -= n as u64;
                    data = &data[n..];
                    if *left == 0 {
                        if *capture {
                            self.facts.manifest = Some(std::mem::take(&mut self.captured));
                        }
                        self.state = if *pad > 0 {
                            State::Body {
                                left: *pad,
                                pad: 0,
                                capture: false,
                            }
                        } else {
                            State::Header {
                                buf: Box::new([0; 512]),
                                have: 0,
                            }
                        };
                    }
                }
            }
        }
    }

    fn parse_header(&mut self, block: &[u8; 512]) -> State {
        if block.iter().all(|&b| b == 0) {
            return State::Done;
        }
        if !split::is_tar_header(block) {
            return State::Done;
        }
        let header = tar::Header::from_byte_slice(block);
        match header.entry_size().ok() {
            Some(size) => {
                self.facts.entries += 1;
                let path = header.path_bytes();
                let path = path.strip_prefix(b"./").unwrap_or(&path);
                if path == b"oci-layout" {
                    self.facts.oci_layout = true;
                }
                let is_manifest = path == b"manifest.json";
                let Some(padded) = size.div_ceil(512).checked_mul(512) else {
                    return State::Done;
                };
                let capture = header.entry_type().is_file() && is_manifest && size <= MAX_MANIFEST;
                if size == 0 {
                    if capture {
                        self.facts.manifest = Some(Vec::new());
                    }
                    State::Header {
                        buf: Box::new([0; 512]),
                        have: 0,
                    }
                } else {
                    self.captured.clear();
                    State::Body {
                        left: size,
                        pad: padded - size,
                        capture,
                    }
                }
            }
            _ => State::Done,
        }
    }
}

impl<R: Read> Read for Watch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        self.observe(&buf[..n]);
        Ok(n)
    }
}
