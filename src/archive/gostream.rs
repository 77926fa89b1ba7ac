//! Adding a gzip layer a Go encoder wrote: find the encoder and level that
//! reproduce its first bytes, then inflate the layer and re-compress the
//! plain text alongside, comparing every byte with the layer as it streams.
//! The layer is recorded as Go part records plus its plain text; a part's
//! plain text reaches the tar splitter only once the part is recorded, and
//! a part is recorded only when everything its encoder wrote matched.
//!
//! A stream that stops matching part-way (a near miss) keeps everything
//! from the last recorded part on as plain compressed bytes, like a layer
//! preflate gives up on, so the result is always byte-exact.

use std::io::{self, Read};
use std::sync::mpsc;

use flate2::{Decompress, FlushDecompress, Status};

use super::goenc::{self, Deflater, GoPart, Model};
use super::gzip::{self, Outcome, PartSink, Queue, Via};
use super::split::{self, Kind, Sink};

/// Plain text each part covers (the last one may be shorter).
const PART_PLAIN: usize = 1 << 20;
/// Plain text a trial re-compresses at most.
const TRIAL_PLAIN: usize = 8 << 20;
/// Compressed bytes a trial reads at most (it reads more than the first
/// peek only while no candidate has written a byte; more than pgzip's 1 MiB
/// block, before which pgzip writes nothing).
const TRIAL_COMP: usize = 2 << 20;
/// Matching output that settles a trial for a candidate.
const DECIDED: usize = 64 << 10;
/// Plain text a trial feeds its candidate between checks.
const TRIAL_STEP: usize = 32 << 10;
/// Plain text inflated per step.
const STEP: usize = 64 << 10;
/// Compressed bytes read per refill.
const READ: usize = 256 << 10;

/// The model among `models` that reproduces the most of `comp` (the start
/// of a raw deflate stream, up to [`DECIDED`] bytes), over at most
/// [`TRIAL_PLAIN`] of its plain text; the first such model on a tie.
pub fn trial(models: &[Model], comp: &[u8]) -> Trial {
    let mut plain = Vec::with_capacity(TRIAL_PLAIN);
    let mut dec = Decompress::new(false);
    let mut ended = false;
    while plain.len() < TRIAL_PLAIN {
        let before = (dec.total_in(), plain.len());
        let input = &comp[dec.total_in() as usize..];
        let status = dec.decompress_vec(input, &mut plain, FlushDecompress::None);
        match status {
            Ok(Status::StreamEnd) => {
                ended = true;
                break;
            }
            Ok(_) if (dec.total_in(), plain.len()) != before => {
                if plain.len() == plain.capacity() {
                    break;
                }
            }
            _ => break,
        }
    }
    let mut best: Option<(usize, Model)> = None;
    for &model in models {
        let tried = std::panic::catch_unwind(|| reproduced(model, &plain, ended, comp));
        let Ok(Some(n)) = tried else {
            continue;
        };
        if ended && n < DECIDED && n != dec.total_in() as usize {
            continue;
        }
        if best.is_none_or(|(m, _)| n > m) {
            best = Some((n, model));
        }
    }
    match best {
        Some((0, _)) => Trial::Silent,
        Some((_, m)) => Trial::Found(m),
        None => Trial::None,
    }
}

/// What a trial found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trial {
    /// This model wrote the most of the stream.
    Found(Model),
    /// Every candidate wrote a different byte.
    None,
    /// No candidate wrote a byte yet: more of the stream is needed.
    Silent,
}

/// How many bytes of `comp` `model` writes for `plain` (and its close,
/// when `ended`), or `None` once a byte differs: fed a step at a time, so a
/// wrong candidate stops at its first block.
fn reproduced(model: Model, plain: &[u8], ended: bool, comp: &[u8]) -> Option<usize> {
    let mut d = model.encoder.deflater(model.level)?;
    let mut out = Vec::new();
    let mut steps = plain.chunks(TRIAL_STEP).peekable();
    while let Some(step) = steps.next() {
        d.write(step, &mut out);
        if ended && steps.peek().is_none() {
            d.close(&mut out);
        }
        if out.len() > comp.len() || out[..] != comp[..out.len()] {
            return None;
        }
        if out.len() >= DECIDED {
            return Some(DECIDED);
        }
    }
    if plain.is_empty() && ended {
        d.close(&mut out);
        if out.len() > comp.len() || out[..] != comp[..out.len()] {
            return None;
        }
    }
    Some(out.len())
}

/// Plain text handed to the encoder thread and not yet answered, at most.
const IN_FLIGHT: usize = 8 << 20;
/// Steps handed to the encoder thread and not yet answered, at most.
const IN_FLIGHT_STEPS: usize = 256;
/// Compressed bytes read past the last recorded part, at most: a stream
/// that inflates to almost nothing (empty blocks) falls back here instead
/// of being read into memory.
const AHEAD: u64 = 32 << 20;

/// The encoder, on a thread of its own: it is the slow stage, so inflating,
/// splitting and chunking go on beside it. Each job is a step of plain text
/// (and whether the stream closes after it); each answer is the job handed
/// back with what the encoder wrote for it, in order.
fn encoder_thread(
    enc: Deflater,
    jobs: mpsc::Receiver<(Vec<u8>, bool)>,
    answers: mpsc::Sender<Answer>,
) {
    // A model that panics drops its answers channel: the stream falls back
    // to compressed bytes, and ferry goes on.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        encode_jobs(enc, jobs, answers)
    }));
}

fn encode_jobs(
    mut enc: Deflater,
    jobs: mpsc::Receiver<(Vec<u8>, bool)>,
    answers: mpsc::Sender<Answer>,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        if let Deflater::Pgzip(stream) = &mut enc {
            // pgzip blocks are independent: compress those of every waiting
            // job together, in parallel.
            let mut bytes = batch[0].0.len();
            while bytes < IN_FLIGHT && !batch[batch.len() - 1].1 {
                match jobs.try_recv() {
                    Ok(job) => {
                        bytes += job.0.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            let slices: Vec<&[u8]> = batch.iter().map(|(d, _)| &d[..]).collect();
            let close = batch[batch.len() - 1].1;
            let outs = stream.write_parts(&slices, close);
            for (out, (data, close)) in outs.into_iter().zip(batch) {
                if answers.send((out, data, close)).is_err() {
                    return;
                }
            }
            continue;
        }
        let (data, close) = batch.pop().expect("one job");
        let mut out = Vec::new();
        enc.write(&data, &mut out);
        if close {
            enc.close(&mut out);
        }
        if answers.send((out, data, close)).is_err() {
            return;
        }
    }
}

/// What the encoder wrote for a job, and the job (its plain text and
/// whether it closed the stream) handed back.
type Answer = (Vec<u8>, Vec<u8>, bool);

/// Reads a Go-written deflate stream's plain text, recording a part for
/// each [`PART_PLAIN`] of it once its re-compression matched.
struct GoInflater<'a> {
    input: &'a mut dyn Read,
    eof: bool,
    /// Compressed bytes from absolute offset `start` on.
    comp: Vec<u8>,
    start: u64,
    dec: Decompress,
    /// The inflater reached the end of the deflate stream (and the job
    /// that closes the encoder is sent).
    ended: bool,
    /// The inflater failed (damaged or cut-short stream).
    broken: bool,
    jobs: Option<mpsc::SyncSender<(Vec<u8>, bool)>>,
    answers: mpsc::Receiver<Answer>,
    /// Steps sent to the encoder and not yet answered, and their bytes.
    in_flight: usize,
    in_flight_bytes: usize,
    model: Model,
    /// Compressed bytes the encoder wrote (and matched) so far.
    matched: u64,
    /// Where the last recorded part ended (compressed offset).
    boundary: u64,
    /// Matched plain text since the last part, not yet released.
    plain: Vec<u8>,
    /// The encoder closed and everything it wrote matched.
    done: bool,
    text: Vec<u8>,
    pos: usize,
    first: bool,
    state: Outcome,
    queue: Queue,
}

impl GoInflater<'_> {
    /// Makes sure `comp` holds the compressed stream up to absolute `upto`
    /// (or the whole input); false when the input ends first.
    fn fill(&mut self, upto: u64) -> io::Result<bool> {
        while self.start + (self.comp.len() as u64) < upto && !self.eof {
            let at = self.comp.len();
            self.comp.resize(at + READ, 0);
            let n = split::read_full(self.input, &mut self.comp[at..])?;
            self.comp.truncate(at + n);
            if n < READ {
                self.eof = true;
            }
        }
        Ok(self.start + (self.comp.len() as u64) >= upto)
    }

    /// Inflates one step and hands it to the encoder.
    fn inflate(&mut self) -> io::Result<()> {
        let at = self.dec.total_in();
        self.fill(at + READ as u64)?;
        let from = (at - self.start) as usize;
        let mut step = Vec::with_capacity(STEP);
        let status = self
            .dec
            .decompress_vec(&self.comp[from..], &mut step, FlushDecompress::None);
        let progressed = self.dec.total_in() != at || !step.is_empty();
        match status {
            Ok(Status::StreamEnd) => self.ended = true,
            Ok(_) if progressed => {}
            // Damaged or cut short: not this stream's encoder any more.
            _ => {
                self.broken = true;
                return Ok(());
            }
        }
        let len = step.len();
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|j| j.send((step, self.ended)).is_ok());
        if !sent {
            self.broken = true;
            return Ok(());
        }
        self.in_flight += 1;
        self.in_flight_bytes += len;
        Ok(())
    }

    /// Takes the encoder's answer for the oldest step and checks it against
    /// the stream; false on a mismatch.
    fn check(&mut self) -> io::Result<bool> {
        let Ok((out, step, close)) = self.answers.recv() else {
            return Ok(false);
        };
        self.in_flight -= 1;
        self.in_flight_bytes -= step.len();
        let end = self.matched + out.len() as u64;
        if !self.fill(end)? {
            return Ok(false);
        }
        let from = (self.matched - self.start) as usize;
        if self.comp[from..from + out.len()] != out[..] {
            return Ok(false);
        }
        self.matched = end;
        self.plain.extend_from_slice(&step);
        if close {
            // The close wrote the rest of the deflate stream, exactly.
            if self.matched != self.dec.total_in() {
                return Ok(false);
            }
            self.done = true;
        }
        Ok(true)
    }

    /// Records a part for the plain text since the last one.
    fn cut(&mut self) {
        let part = GoPart {
            first: self.first,
            last: self.done,
            model: self.model,
            plain_len: self.plain.len() as u64,
        };
        self.first = false;
        self.queue
            .borrow_mut()
            .push_back((part.encode(), self.matched - self.boundary));
        self.boundary = self.matched;
        let keep = self.boundary.min(self.dec.total_in());
        self.comp.drain(..(keep - self.start) as usize);
        self.start = keep;
        std::mem::swap(&mut self.text, &mut self.plain);
        self.plain.clear();
        self.pos = 0;
    }

    /// Stops matching: the encoder thread is let go.
    fn fall_back(&mut self) {
        let via = Via::Go(self.model.encoder);
        self.state = Outcome::Fallback((!self.first).then_some(via));
        self.jobs = None;
        // Its answers are not wanted either: the thread stops at its next.
        self.answers = mpsc::channel().1;
    }

    /// Works until a part is recorded; false when there is no more plain
    /// text (the stream ended, or stopped matching).
    fn next_part(&mut self) -> io::Result<bool> {
        if self.done || matches!(self.state, Outcome::Fallback(_)) {
            return Ok(false);
        }
        loop {
            while !self.ended
                && !self.broken
                && self.in_flight_bytes < IN_FLIGHT
                && self.in_flight < IN_FLIGHT_STEPS
                && self.dec.total_in() - self.boundary < AHEAD
            {
                self.inflate()?;
            }
            if self.in_flight == 0 || !self.check()? {
                self.fall_back();
                return Ok(false);
            }
            if self.done || self.plain.len() >= PART_PLAIN {
                self.cut();
                if self.done {
                    self.jobs = None;
                }
                return Ok(true);
            }
        }
    }
}

impl Read for GoInflater<'_> {
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

/// Splits a gzip'd tar that `model` wrote: `head` is its gzip header,
/// `peek` the compressed bytes read after it, `r` the rest of the entry.
pub(super) fn entry(
    model: Model,
    head: &[u8],
    peek: Vec<u8>,
    r: &mut dyn Read,
    sink: &mut dyn Sink,
    depth: u32,
    size: u64,
) -> io::Result<Outcome> {
    let enc = model
        .encoder
        .deflater(model.level)
        .expect("trial models are modelled");
    let (jobs, job_rx) = mpsc::sync_channel(IN_FLIGHT / STEP + 2);
    let (answer_tx, answers) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(move || encoder_thread(enc, job_rx, answer_tx));
        let queue: Queue = Queue::default();
        let mut inf = GoInflater {
            input: r,
            eof: false,
            comp: peek,
            start: 0,
            dec: Decompress::new(false),
            ended: false,
            broken: false,
            jobs: Some(jobs),
            answers,
            in_flight: 0,
            in_flight_bytes: 0,
            model,
            matched: 0,
            boundary: 0,
            plain: Vec::new(),
            done: false,
            text: Vec::new(),
            pos: 0,
            first: true,
            state: Outcome::Rebuilt(Via::Go(model.encoder)),
            queue: queue.clone(),
        };
        let result = split_stream(&mut inf, head, sink, queue, depth, size);
        // Whatever happened, the encoder thread stops with its job queue.
        inf.jobs = None;
        result
    })
}

/// Splits the plain text `inf` gives as a tar, then hands on the rest of
/// the entry: the gzip trailer, or the compressed bytes from the last
/// recorded part on.
fn split_stream(
    inf: &mut GoInflater<'_>,
    head: &[u8],
    sink: &mut dyn Sink,
    queue: Queue,
    depth: u32,
    size: u64,
) -> io::Result<Outcome> {
    sink.meta(head);
    sink.inflate(true);
    let mut parts = PartSink::new(sink, queue);
    split::tar(inf, &mut parts, depth + 1, true)?;
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
    let outcome = inf.state;
    let from = (inf.boundary - inf.start) as usize;
    let mut tail = inf.comp.split_off(from);
    let mut raw = 0;
    if !matches!(outcome, Outcome::Fallback(_)) && tail.len() <= 64 {
        let mut more = vec![0u8; 65 - tail.len()];
        let n = split::read_full(inf.input, &mut more)?;
        tail.extend_from_slice(&more[..n]);
    }
    if !matches!(outcome, Outcome::Fallback(_)) && tail.len() <= 64 {
        sink.meta(&tail);
    } else {
        raw = gzip::whole(sink, Kind::Raw, &[&tail], inf.input)?;
    }
    sink.gzip(outcome, size, raw);
    Ok(outcome)
}

/// The encoders a gzip header can point at, tried on `peek` (the deflate
/// bytes after it, read from `r`; more are read into it while no candidate
/// has written a byte): the model to re-create the layer with, if any.
pub(super) fn detect(
    head: &[u8],
    peek: &mut Vec<u8>,
    r: &mut dyn Read,
) -> io::Result<Option<Model>> {
    let models = goenc::candidates(head);
    if models.is_empty() {
        return Ok(None);
    }
    loop {
        match trial(&models, peek) {
            Trial::Found(m) => return Ok(Some(m)),
            Trial::None => return Ok(None),
            Trial::Silent if peek.len() >= TRIAL_COMP => return Ok(None),
            Trial::Silent => {
                let at = peek.len();
                peek.resize(TRIAL_COMP, 0);
                let n = split::read_full(r, &mut peek[at..])?;
                peek.truncate(at + n);
                if n == 0 {
                    return Ok(None);
                }
            }
        }
    }
}
