//! Re-creating compressed layers at checkout: deflate streams come back
//! from their part records and plain text, through preflate-rs for a part
//! with correction data ([`Part`]) or through the Go encoder a [`GoPart`]
//! names. Each part's output length is checked against the recipe before a
//! byte of it is handed on; the stream's digest is checked by the caller.

use std::collections::VecDeque;
use std::io;

use preflate_rs::RecreateStreamProcessor;

use super::goenc::{Deflater, Encoder, GO_PART_VERSION, GoPart, GoPartError, Model};
use super::gzip::Part;
use super::split::{Kind, Sink};

/// pgzip parts re-created together (their 1 MiB blocks in parallel).
const PGZIP_BATCH: usize = 8;

/// A part waiting for its plain text, and the output bytes it must make.
enum Waiting {
    Preflate(Part, u64),
    Go(GoPart, u64),
}

impl Waiting {
    fn plain_len(&self) -> u64 {
        match self {
            Waiting::Preflate(p, _) => p.plain_len,
            Waiting::Go(p, _) => p.plain_len,
        }
    }
    fn first(&self) -> bool {
        match self {
            Waiting::Preflate(p, _) => p.first,
            Waiting::Go(p, _) => p.first,
        }
    }
}

/// Re-creates deflate streams from parts and plain text (the checkout side).
/// Feed it pieces in recipe order; it hands back compressed bytes as soon as
/// a part has all its plain text.
#[derive(Default)]
pub struct Recreator {
    parts: VecDeque<Waiting>,
    plain: Vec<u8>,
    /// Plain bytes at the front of `plain` already used.
    used: usize,
    rec: Option<RecreateStreamProcessor>,
    go: Option<(Model, Deflater)>,
    out: Vec<u8>,
    /// Re-create every part that can be (else pgzip parts wait for
    /// company, so that their blocks are compressed in parallel).
    flushing: bool,
}

impl Recreator {
    /// True when no part or plain text is waiting.
    pub fn idle(&self) -> bool {
        self.parts.is_empty() && self.plain.len() == self.used
    }

    /// A part record producing `out` compressed bytes.
    pub fn part(
        &mut self,
        data: &[u8],
        out: u64,
        emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), RecreateError> {
        let waiting = if data.first() == Some(&GO_PART_VERSION) {
            Waiting::Go(
                GoPart::decode(data).map_err(|e| match e {
                    GoPartError::Bad(m) => RecreateError::Bad(m),
                    GoPartError::Unknown(m) => RecreateError::Unknown(m),
                })?,
                out,
            )
        } else {
            Waiting::Preflate(Part::decode(data).map_err(RecreateError::Bad)?, out)
        };
        if waiting.first() {
            // Parts held back for company are due before a new stream.
            self.flushing = true;
            let ran = self.run(emit);
            self.flushing = false;
            ran?;
            if !self.idle() {
                return Err(RecreateError::Bad(
                    "a deflate stream starts before the previous one is complete".into(),
                ));
            }
            self.rec = None;
            self.go = None;
        }
        self.parts.push_back(waiting);
        self.run(emit)
    }

    /// Plain text for the waiting parts.
    pub fn plain(
        &mut self,
        data: &[u8],
        emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), RecreateError> {
        if self.parts.is_empty() {
            return Err(RecreateError::Bad(
                "plain text without a deflate part".into(),
            ));
        }
        self.plain.extend_from_slice(data);
        self.run(emit)
    }

    /// The recipe moves on to plain output (or ends): the parts held back
    /// are re-created, and then everything must be used up.
    pub fn end(
        &mut self,
        emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), RecreateError> {
        self.flushing = true;
        let ran = self.run(emit);
        self.flushing = false;
        ran?;
        if self.idle() {
            Ok(())
        } else {
            Err(RecreateError::Bad(format!(
                "a deflate stream ends with {} parts and {} plain bytes unused",
                self.parts.len(),
                self.plain.len() - self.used
            )))
        }
    }

    fn run(&mut self, emit: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> Result<(), RecreateError> {
        while let Some(part) = self.parts.front() {
            let (ready, closes) = self.pgzip_ready();
            if ready > 0 && !closes && !self.flushing && ready < PGZIP_BATCH {
                break;
            }
            if ready > 0 {
                self.pgzip_parts(ready, emit)?;
                continue;
            }
            let have = (self.plain.len() - self.used) as u64;
            if have < part.plain_len() {
                break;
            }
            let end = self.used + part.plain_len() as usize;
            let part = self.parts.pop_front().expect("just looked");
            self.out.clear();
            let out = match part {
                Waiting::Preflate(p, out) => {
                    self.preflate(&p, end)?;
                    out
                }
                Waiting::Go(p, out) => {
                    self.go(&p, end)?;
                    out
                }
            };
            if self.out.len() as u64 != out {
                return Err(RecreateError::Bad(format!(
                    "deflate part re-created {} bytes, the recipe says {out}",
                    self.out.len()
                )));
            }
            self.used = end;
            emit(&self.out).map_err(RecreateError::Io)?;
        }
        if self.used > (1 << 20) || self.used == self.plain.len() {
            self.plain.drain(..self.used);
            self.used = 0;
        }
        Ok(())
    }

    /// How many pgzip parts at the front have all their plain text (they
    /// can be re-created together, their blocks in parallel).
    fn pgzip_ready(&self) -> (usize, bool) {
        let mut have = self.plain.len() - self.used;
        let mut n = 0;
        for w in &self.parts {
            match w {
                Waiting::Go(p, _)
                    if p.model.encoder == Encoder::Pgzip
                        && (n == 0 || !p.first)
                        && p.plain_len as usize <= have =>
                {
                    have -= p.plain_len as usize;
                    n += 1;
                    if p.last {
                        return (n, true);
                    }
                }
                _ => break,
            }
        }
        (n, false)
    }

    /// Re-creates the first `n` parts, all pgzip parts of one stream whose
    /// plain text is here, and hands their bytes on in order.
    fn pgzip_parts(
        &mut self,
        n: usize,
        emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), RecreateError> {
        let parts: Vec<(GoPart, u64)> = self
            .parts
            .drain(..n)
            .map(|w| match w {
                Waiting::Go(p, out) => (p, out),
                Waiting::Preflate(..) => unreachable!("pgzip_ready counts Go parts only"),
            })
            .collect();
        let (first, _) = parts[0];
        if first.first {
            self.go = first
                .model
                .encoder
                .deflater(first.model.level)
                .map(|d| (first.model, d));
        }
        let Some((model, Deflater::Pgzip(stream))) = self.go.as_mut() else {
            return Err(RecreateError::Bad(
                "a pgzip deflate stream does not start with its first part".into(),
            ));
        };
        let mut slices = Vec::with_capacity(n);
        let mut at = self.used;
        for (p, _) in &parts {
            slices.push(&self.plain[at..at + p.plain_len as usize]);
            at += p.plain_len as usize;
        }
        let last = parts[n - 1].0.last;
        if parts.iter().any(|(p, _)| p.model != *model) {
            return Err(RecreateError::Bad(
                "a Go deflate part does not continue a stream of its encoder and level".into(),
            ));
        }
        let outs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            stream.write_parts(&slices, last)
        }));
        let Ok(outs) = outs else {
            self.go = None;
            return Err(RecreateError::Bad(
                "a Go deflate part does not re-create".into(),
            ));
        };
        if last {
            self.go = None;
        }
        for ((p, out), bytes) in parts.iter().zip(outs) {
            if bytes.len() as u64 != *out {
                return Err(RecreateError::Bad(format!(
                    "deflate part re-created {} bytes, the recipe says {out}",
                    bytes.len()
                )));
            }
            self.used += p.plain_len as usize;
            emit(&bytes).map_err(RecreateError::Io)?;
        }
        Ok(())
    }

    /// Re-creates a preflate part from `plain[used..end]` into `out`.
    fn preflate(&mut self, part: &Part, end: usize) -> Result<(), RecreateError> {
        if part.first {
            self.rec = Some(RecreateStreamProcessor::new());
        }
        let rec = self.rec.as_mut().ok_or_else(|| {
            RecreateError::Bad("a deflate stream does not start with its first part".into())
        })?;
        // preflate-rs can panic on correction data it did not write (an
        // arithmetic overflow in its decoder): a damaged part is an
        // error, not a crash. The processor is dropped with the part.
        let plain = &self.plain[self.used..end];
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rec.recompress(&mut &plain[..], &part.corrections)
        }));
        match result {
            Ok(r) => {
                let (bytes, _) = r.map_err(|e| {
                    RecreateError::Bad(format!("deflate part does not re-create: {e}"))
                })?;
                self.out = bytes;
                Ok(())
            }
            Err(_) => {
                self.rec = None;
                Err(RecreateError::Bad(
                    "deflate part does not re-create: its correction data is damaged".into(),
                ))
            }
        }
    }

    /// Re-compresses a Go part's plain text `plain[used..end]` into `out`.
    fn go(&mut self, part: &GoPart, end: usize) -> Result<(), RecreateError> {
        if part.first {
            self.go = part
                .model
                .encoder
                .deflater(part.model.level)
                .map(|d| (part.model, d));
        }
        let go = match self.go.as_mut() {
            Some((model, go)) if *model == part.model => go,
            _ => {
                return Err(RecreateError::Bad(
                    "a Go deflate part does not continue a stream of its encoder and level".into(),
                ));
            }
        };
        let (plain, out) = (&self.plain[self.used..end], &mut self.out);
        // A model that panics (on a recipe no ferry wrote) is a damaged
        // part, not a crash; its encoder is dropped with it.
        let wrote = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            go.write(plain, out);
            if part.last {
                go.close(out);
            }
        }));
        if wrote.is_err() || part.last {
            self.go = None;
        }
        wrote.map_err(|_| RecreateError::Bad("a Go deflate part does not re-create".into()))
    }
}

/// Why re-creating failed.
#[derive(Debug)]
pub enum RecreateError {
    /// The recipe or a part record is wrong.
    Bad(String),
    /// A part names an encoder this ferry does not model.
    Unknown(String),
    /// Writing the output failed.
    Io(io::Error),
}

impl From<io::Error> for RecreateError {
    fn from(e: io::Error) -> Self {
        RecreateError::Io(e)
    }
}

/// A [`Sink`] that puts a split back together in memory: the bytes it is
/// handed, in order, with deflate streams re-created from their parts and
/// plain text. It checks the order of the calls as it goes; for fuzzing and
/// tests, where the result is compared with the input.
#[derive(Default)]
pub struct Reassemble {
    /// The bytes so far.
    pub out: Vec<u8>,
    /// A file or plain stream is open.
    pub open: bool,
    /// Bytes are plain text of a deflate stream.
    pub inflated: bool,
    deflate: Recreator,
}

impl Reassemble {
    fn bytes(&mut self, b: &[u8]) {
        if self.inflated {
            let out = &mut self.out;
            self.deflate
                .plain(b, &mut |x| {
                    out.extend_from_slice(x);
                    Ok(())
                })
                .expect("plain text follows its part");
        } else {
            self.out.extend_from_slice(b);
        }
    }
}

impl Sink for Reassemble {
    fn meta(&mut self, b: &[u8]) {
        assert!(!self.open, "structure bytes inside a file");
        self.bytes(b);
    }
    fn begin(&mut self, _: Kind) {
        assert!(!self.open, "file begun twice");
        self.open = true;
    }
    fn data(&mut self, b: &[u8]) {
        assert!(self.open, "data outside a file");
        self.bytes(b);
    }
    fn end(&mut self) {
        self.open = false;
    }
    fn inflate(&mut self, on: bool) {
        assert!(!self.open, "deflate stream starts or ends inside a file");
        if !on {
            let out = &mut self.out;
            self.deflate
                .end(&mut |x| {
                    out.extend_from_slice(x);
                    Ok(())
                })
                .expect("every part used up");
        }
        self.inflated = on;
    }
    fn part(&mut self, record: Vec<u8>, out_len: u64) {
        assert!(self.inflated, "part outside a deflate stream");
        let out = &mut self.out;
        self.deflate
            .part(&record, out_len, &mut |x| {
                out.extend_from_slice(x);
                Ok(())
            })
            .expect("part re-creates");
    }
}

#[cfg(test)]
mod damaged_parts {
    use super::*;

    /// Damaged correction data that makes preflate-rs 0.7.6 overflow inside
    /// its decoder (found by the deflate_part fuzz target; pieces framed as
    /// that target frames them). With overflow checks on, as in tests and
    /// debug builds, this panicked; it must be an error.
    #[test]
    fn correction_data_that_panics_the_decoder_is_an_error() {
        let data: &[u8] = include_bytes!("../../tests/data/preflate-overflow.bin");
        let mut rec = Recreator::default();
        let mut emit = |_: &[u8]| -> io::Result<()> { Ok(()) };
        let mut rest = data;
        let mut failed = None;
        while rest.len() >= 3 && failed.is_none() {
            let kind = rest[0];
            let len = u16::from_le_bytes([rest[1], rest[2]]) as usize;
            rest = &rest[3..];
            let out = if kind & 1 == 0 {
                let (out, more) = rest.split_first_chunk::<4>().expect("framed");
                rest = more;
                Some(u32::from_le_bytes(*out) as u64)
            } else {
                None
            };
            let (piece, more) = rest.split_at(len.min(rest.len()));
            rest = more;
            let result = match out {
                Some(out) => rec.part(piece, out, &mut emit),
                None => rec.plain(piece, &mut emit),
            };
            failed = result.err();
        }
        match failed {
            Some(RecreateError::Bad(m)) => assert!(m.contains("deflate part"), "{m}"),
            other => panic!("expected a refused part, got {other:?}"),
        }
    }
}
