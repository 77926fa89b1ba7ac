//! gzip-compressed tars (the layers of OCI archives and of `docker save`
//! from containerd's image store): decompressed so their files are split
//! like any other tar's, and re-created byte-exact from the plain text plus
//! preflate-rs reconstruction data ("corrections").
//!
//! The deflate stream is analysed in parts of at most [`WINDOW`] compressed
//! bytes. Each part becomes a [`Part`] record, handed to the sink before the
//! plain text it covers; re-creating the parts in order from the plain text
//! gives back exactly the compressed bytes they consumed. preflate-rs checks
//! every part by re-creating it while analysing, so a part that would not
//! come back byte-exact is never recorded: the stream from that point on is
//! kept as it is, as plain compressed bytes.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::rc::Rc;

use preflate_rs::{ExitCode, PreflateConfig, PreflateStreamProcessor};

use super::split::{self, Kind, Sink};

/// Compressed bytes analysed per part (the window grows when one deflate
/// block is larger).
pub const WINDOW: usize = 512 << 10;
/// Largest window tried for a single deflate block before giving up.
const MAX_WINDOW: usize = 16 << 20;
/// Plain text one part may expand to (bounds memory on both sides).
pub const MAX_PLAIN: usize = 32 << 20;
/// Largest part record (it is stored as one chunk).
pub const MAX_PART: usize = 256 << 10;
/// Version byte of part records.
const PART_VERSION: u8 = 1;
/// The crate whose correction data a part record holds, at the exact
/// version pinned in Cargo.toml (`preflate-rs = "=0.7.6"`). Corrections are
/// only meaningful to the predictor that wrote them: another version could
/// re-create different bytes from the same record, so this crate is part of
/// the store and pack formats, and changing it needs a new part record
/// version. The golden packs in `tests/data/golden` hold parts written by it.
pub const PREFLATE_CRATE: &str = "preflate-rs =0.7.6";
/// Part flag: the first part of a deflate stream (starts a new re-creator).
const FIRST: u8 = 1;

/// One deflate part's re-creation record, as stored in a chunk:
/// `version u8, flags u8, plain_len varint, corrections...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The first part of a deflate stream.
    pub first: bool,
    /// Plain-text bytes this part re-compresses.
    pub plain_len: u64,
    /// preflate-rs correction data.
    pub corrections: Vec<u8>,
}

impl Part {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.corrections.len());
        out.push(PART_VERSION);
        out.push(if self.first { FIRST } else { 0 });
        crate::varint::put(&mut out, self.plain_len);
        out.extend_from_slice(&self.corrections);
        out
    }

    /// Parses a record.
    pub fn decode(data: &[u8]) -> Result<Part, String> {
        match data {
            [PART_VERSION, flags, rest @ ..] => {
                if flags & !FIRST != 0 {
                    return Err(format!("deflate part has unknown flags {flags:#x}"));
                }
                let mut at = 0;
                let plain_len = crate::varint::get(rest, &mut at).map_err(|e| match e {
                    crate::varint::VarintError::Truncated => "deflate part ends inside its length",
                    crate::varint::VarintError::TooLong => "deflate part length too long",
                })?;
                if plain_len > MAX_PLAIN as u64 {
                    return Err(format!("deflate part claims {plain_len} plain bytes"));
                }
                Ok(Part {
                    first: flags & FIRST != 0,
                    plain_len,
                    corrections: rest[at..].to_vec(),
                })
            }
            [v, ..] => Err(format!(
                "deflate part version {v} is not known to this ferry"
            )),
            [] => Err("empty deflate part".into()),
        }
    }
}

/// What re-creates a gzip'd layer's deflate stream (or its start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// preflate-rs correction data.
    Preflate,
    /// A model of the Go encoder that wrote it.
    Go(super::goenc::Encoder),
}

/// What happened to one gzip entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not a gzip'd tar (or a header this code does not parse): kept as a file.
    NotTar,
    /// Every deflate part was recorded.
    Rebuilt(Via),
    /// Re-creation stopped part-way (after parts of this kind), or never
    /// started (`None`): the rest is plain compressed bytes.
    Fallback(Option<Via>),
}

/// Reads a gzip member header (RFC 1952), returning its bytes, or `Err`
/// with the bytes read so far when it is not one this code understands.
fn read_header(r: &mut dyn Read) -> io::Result<Result<Vec<u8>, Vec<u8>>> {
    let mut head = vec![0u8; 10];
    let n = split::read_full(r, &mut head)?;
    head.truncate(n);
    if n < 10 || head[..3] != [0x1f, 0x8b, 8] || head[3] & 0xe0 != 0 {
        return Ok(Err(head));
    }
    let flags = head[3];
    let mut byte = |head: &mut Vec<u8>| -> io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        if split::read_full(r, &mut b)? == 0 {
            return Ok(None);
        }
        head.push(b[0]);
        Ok(Some(b[0]))
    };
    if flags & 4 != 0 {
        // FEXTRA: a little-endian length and that many bytes.
        let (Some(a), Some(b)) = (byte(&mut head)?, byte(&mut head)?) else {
            return Ok(Err(head));
        };
        for _ in 0..u16::from_le_bytes([a, b]) {
            if byte(&mut head)?.is_none() {
                return Ok(Err(head));
            }
        }
    }
    for flag in [8u8, 16] {
        // FNAME, FCOMMENT: zero-terminated.
        if flags & flag != 0 {
            loop {
                match byte(&mut head)? {
                    None => return Ok(Err(head)),
                    Some(0) => break,
                    Some(_) => {}
                }
            }
        }
    }
    if flags & 2 != 0 {
        // FHCRC
        for _ in 0..2 {
            if byte(&mut head)?.is_none() {
                return Ok(Err(head));
            }
        }
    }
    Ok(Ok(head))
}

/// The parts recorded but not yet handed to the sink.
pub(super) type Queue = Rc<RefCell<VecDeque<(Vec<u8>, u64)>>>;

/// Reads the plain text of a deflate stream, recording a part for each
/// piece it analyses.
struct Inflater<'a> {
    input: &'a mut dyn Read,
    /// Compressed bytes read and not yet recorded in a part.
    pending: Vec<u8>,
    /// Bytes at the front of `pending` consumed by the last part.
    consumed: usize,
    eof: bool,
    proc: PreflateStreamProcessor,
    window: usize,
    text: Vec<u8>,
    pos: usize,
    first: bool,
    state: Outcome,
    done: bool,
    queue: Queue,
    /// Hold the first part's consumed bytes in `pending` (until it is
    /// known the stream is a tar).
    probing: bool,
}

impl Inflater<'_> {
    /// Stops analysing: from the last recorded part on, the stream is kept
    /// as compressed bytes.
    fn fall_back(&mut self) {
        self.state = Outcome::Fallback((!self.first).then_some(Via::Preflate));
    }

    /// Analyses the next part; false when there is no more plain text.
    fn next_part(&mut self) -> io::Result<bool> {
        if self.done || matches!(self.state, Outcome::Fallback(_)) {
            return Ok(false);
        }
        if !self.probing {
            self.pending.drain(..self.consumed);
            self.consumed = 0;
        }
        loop {
            while !self.eof && self.pending.len() - self.consumed < self.window {
                let at = self.pending.len();
                let want = self.window - (at - self.consumed);
                self.pending.resize(at + want, 0);
                let n = split::read_full(self.input, &mut self.pending[at..])?;
                self.pending.truncate(at + n);
                if n < want {
                    self.eof = true;
                }
            }
            let data = &self.pending[self.consumed..];
            let result = self.proc.decompress(data);
            match result {
                Ok(r) if r.compressed_size > 0 || self.proc.is_done() => {
                    let part = Part {
                        first: self.first,
                        plain_len: self.proc.plain_text().text().len() as u64,
                        corrections: r.corrections,
                    };
                    let record = part.encode();
                    if record.len() > MAX_PART {
                        self.fall_back();
                        return Ok(false);
                    }
                    self.text.clear();
                    self.text.extend_from_slice(self.proc.plain_text().text());
                    self.pos = 0;
                    self.proc.shrink_to_dictionary();
                    self.first = false;
                    self.consumed += r.compressed_size;
                    self.queue
                        .borrow_mut()
                        .push_back((record, r.compressed_size as u64));
                    self.window = WINDOW;
                    if self.proc.is_done() {
                        self.done = true;
                    }
                    return Ok(true);
                }
                Ok(_) => {}
                Err(e) if e.exit_code() == ExitCode::ShortRead => {}
                Err(_) => {
                    self.fall_back();
                    return Ok(false);
                }
            }
            // No whole deflate block in the window: read more, if there is more.
            if self.eof || self.window >= MAX_WINDOW {
                self.fall_back();
                return Ok(false);
            }
            self.window *= 2;
        }
    }
}

impl Read for Inflater<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.text.len() {
            if !self.next_part()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.text.len() - self.pos);
        buf[..n].copy_from_slice(&self.text[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Hands queued parts to the sink before any plain text that follows them.
pub(super) struct PartSink<'a> {
    inner: &'a mut dyn Sink,
    queue: Queue,
}

impl<'a> PartSink<'a> {
    /// Hands `queue`'s parts to `inner` as plain text follows them.
    pub(super) fn new(inner: &'a mut dyn Sink, queue: Queue) -> Self {
        PartSink { inner, queue }
    }

    /// Hands on every queued part.
    pub(super) fn flush(&mut self) {
        let parts: Vec<_> = self.queue.borrow_mut().drain(..).collect();
        for (record, out) in parts {
            self.inner.part(record, out);
        }
    }
}

impl Sink for PartSink<'_> {
    fn meta(&mut self, bytes: &[u8]) {
        self.flush();
        self.inner.meta(bytes);
    }
    fn path(&mut self, path: &[u8], size: u64) {
        self.flush();
        self.inner.path(path, size);
    }
    fn begin(&mut self, kind: Kind) {
        self.flush();
        self.inner.begin(kind);
    }
    fn data(&mut self, bytes: &[u8]) {
        self.flush();
        self.inner.data(bytes);
    }
    fn end(&mut self) {
        self.flush();
        self.inner.end();
    }
    fn tar(&mut self) {
        self.inner.tar();
    }
    fn tar_end(&mut self) {
        self.inner.tar_end();
    }
}

/// Splits one gzip entry of `size` bytes read from `r` (exactly its bytes):
/// a gzip'd tar is decompressed and split, with its deflate stream recorded
/// as parts; anything else goes to the sink as one file's contents.
pub(super) fn entry(
    r: &mut dyn Read,
    sink: &mut dyn Sink,
    depth: u32,
    size: u64,
) -> io::Result<Outcome> {
    let head = match read_header(r)? {
        Ok(h) => h,
        Err(read) => return whole(sink, Kind::Content, &[&read], r).map(|_| Outcome::NotTar),
    };
    // Only tars are worth re-creating, and analysing a deflate stream is
    // slow: look at the first plain bytes (cheaply) before anything else.
    let mut peek = vec![0u8; 64 << 10];
    let got = split::read_full(r, &mut peek)?;
    peek.truncate(got);
    let mut probe = [0u8; 512];
    let n = split::read_full(
        &mut flate2::read::DeflateDecoder::new(&peek[..]),
        &mut probe,
    )
    .unwrap_or(0);
    if n < 512 || !split::is_tar_header(&probe) {
        return whole(sink, Kind::Content, &[&head, &peek], r).map(|_| Outcome::NotTar);
    }
    // A header Go writes: try its encoders before preflate, which cannot
    // model them.
    if let Some(model) = super::gostream::detect(&head, &mut peek, r)? {
        return super::gostream::entry(model, &head, peek, r, sink, depth, size);
    }
    let config = PreflateConfig {
        max_chain_length: 4096,
        plain_text_limit: MAX_PLAIN,
        verify_compression: true,
    };
    let queue: Queue = Rc::default();
    let mut inf = Inflater {
        input: r,
        pending: peek,
        consumed: 0,
        eof: false,
        proc: PreflateStreamProcessor::new(&config),
        window: WINDOW,
        text: Vec::new(),
        pos: 0,
        first: true,
        state: Outcome::Rebuilt(Via::Preflate),
        done: false,
        queue: queue.clone(),
        probing: true,
    };
    let got = inf.next_part()?;
    if !got {
        // preflate cannot take it from the start. Still a tar? Then it is a
        // layer kept as compressed bytes, and says so.
        let mut probe = [0u8; 512];
        let n = split::read_full(
            &mut flate2::read::DeflateDecoder::new(&inf.pending[..]),
            &mut probe,
        )
        .unwrap_or(0);
        let pending = std::mem::take(&mut inf.pending);
        if n == 512 && split::is_tar_header(&probe) {
            let raw = whole(sink, Kind::Raw, &[&head, &pending], inf.input)?;
            sink.gzip(Outcome::Fallback(None), size, raw);
            return Ok(Outcome::Fallback(None));
        }
        return whole(sink, Kind::Content, &[&head, &pending], inf.input).map(|_| Outcome::NotTar);
    }
    if inf.text.len() < 512 || !split::is_tar_header(&inf.text[..512]) {
        let pending = std::mem::take(&mut inf.pending);
        return whole(sink, Kind::Content, &[&head, &pending], inf.input).map(|_| Outcome::NotTar);
    }
    inf.probing = false;
    sink.meta(&head);
    sink.inflate(true);
    let mut parts = PartSink { inner: sink, queue };
    split::tar(&mut inf, &mut parts, depth + 1, true)?;
    // The splitter reads its input to the end; anything it left is kept plain.
    let mut rest = Vec::new();
    inf.read_to_end(&mut rest)?;
    if !rest.is_empty() {
        parts.begin(Kind::Raw);
        parts.data(&rest);
        parts.end();
    }
    parts.flush();
    sink.inflate(false);
    // The gzip trailer (CRC-32 and size), or everything from where preflate
    // gave up, as it is.
    let outcome = inf.state;
    inf.pending.drain(..inf.consumed);
    let tail = std::mem::take(&mut inf.pending);
    let raw = if outcome == Outcome::Rebuilt(Via::Preflate) && tail.len() <= 64 && inf.eof {
        sink.meta(&tail);
        0
    } else {
        whole(sink, Kind::Raw, &[&tail], inf.input)?
    };
    sink.gzip(
        outcome,
        size,
        if outcome == Outcome::Rebuilt(Via::Preflate) {
            0
        } else {
            raw
        },
    );
    Ok(outcome)
}

/// Hands `read` and the rest of `r` to the sink as one stream of `kind`;
/// returns its length.
pub(super) fn whole(
    sink: &mut dyn Sink,
    kind: Kind,
    read: &[&[u8]],
    r: &mut dyn Read,
) -> io::Result<u64> {
    let mut n: u64 = read.iter().map(|b| b.len() as u64).sum();
    let mut started = false;
    if n > 0 {
        sink.begin(kind);
        started = true;
        for b in read {
            sink.data(b);
        }
    }
    n += split::copy(r, u64::MAX, &mut |b| {
        if !started {
            sink.begin(kind);
            started = true;
        }
        sink.data(b)
    })?;
    if started {
        sink.end();
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_records_round_trip_and_bad_ones_are_refused() {
        let p = Part {
            first: true,
            plain_len: 300_000,
            corrections: vec![1, 2, 3],
        };
        assert_eq!(Part::decode(&p.encode()).unwrap(), p);
        assert!(Part::decode(&[]).is_err());
        assert!(Part::decode(&[9, 0, 0]).is_err());
        assert!(Part::decode(&[1, 4, 0]).is_err());
        assert!(Part::decode(&[1, 0, 0x80]).is_err());
        assert!(Part::decode(&[1, 0, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err());
    }
}
