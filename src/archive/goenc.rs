//! The Go-written gzip streams ferry re-creates without correction data:
//! which encoders they are, how a gzip header points at them, the part
//! record that names one, and a [`Deflater`] that writes a stream exactly
//! as that encoder did.
//!
//! Three encoders are modelled, each in its own module:
//! - [`Encoder::GoStdlib`]: Go's `compress/flate` as in Go 1.8 to 1.26
//!   ([`super::gostd`]), every level;
//! - [`Encoder::Go127`]: the rewritten `compress/flate` of Go 1.27
//!   ([`super::go127`]);
//! - [`Encoder::Pgzip`]: klauspost/pgzip 1.2.5 over klauspost/compress
//!   1.15.12 ([`super::kpflate`]): 1 MiB blocks, each primed with the last
//!   16 KiB of the one before and ended by a sync flush.
//!
//! The numbers of [`Encoder`] are written into part records and pack
//! headers: they are part of the store and pack formats (docs/FORMAT.md),
//! and so is every byte the encoders write, which the golden packs pin.

use super::{go127, gostd, kpflate};

/// Version byte of a Go part record (a preflate part record is version 1).
pub const GO_PART_VERSION: u8 = 2;
/// Go part flag: the first part of a deflate stream (a new encoder).
const FIRST: u8 = 1;
/// Go part flag: the last part of a deflate stream (the encoder closes
/// after its plain text).
const LAST: u8 = 2;
/// Plain text one Go part may cover (bounds memory on both sides).
pub const MAX_GO_PLAIN: u64 = 16 << 20;

/// A modelled encoder, as numbered in part records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encoder {
    /// Go 1.8–1.26 `compress/flate`.
    GoStdlib = 1,
    /// Go 1.27+ `compress/flate`.
    Go127 = 2,
    /// klauspost/pgzip 1.2.5 over klauspost/compress 1.15.12.
    Pgzip = 3,
}

impl Encoder {
    /// Every encoder this ferry knows.
    pub const ALL: [Encoder; 3] = [Encoder::GoStdlib, Encoder::Go127, Encoder::Pgzip];

    /// The encoder numbered `n`.
    pub fn from_number(n: u8) -> Option<Encoder> {
        Encoder::ALL.into_iter().find(|e| *e as u8 == n)
    }

    /// Its name in reports, metadata and pack headers.
    pub fn name(self) -> &'static str {
        match self {
            Encoder::GoStdlib => "go-stdlib",
            Encoder::Go127 => "go1.27",
            Encoder::Pgzip => "pgzip",
        }
    }

    /// The encoder named `name`.
    pub fn from_name(name: &str) -> Option<Encoder> {
        Encoder::ALL.into_iter().find(|e| e.name() == name)
    }

    /// True when this encoder is modelled at `level` (every level Go
    /// accepts but -1, which Go maps to 6, and klauspost to 5).
    pub fn models(self, level: i8) -> bool {
        (-2..=9).contains(&level) && level != -1
    }

    /// A deflater for `level`, or `None` when it is not modelled.
    pub fn deflater(self, level: i8) -> Option<Deflater> {
        if !self.models(level) {
            return None;
        }
        let level = i32::from(level);
        match self {
            Encoder::GoStdlib => {
                gostd::Encoder::new(level).map(|e| Deflater::GoStdlib(Box::new(e)))
            }
            Encoder::Go127 => go127::Encoder::new(level).map(|e| Deflater::Go127(Box::new(e))),
            Encoder::Pgzip => kpflate::Encoder::new(level)
                .map(|_| Deflater::Pgzip(Box::new(PgzipStream::new(level)))),
        }
    }
}

/// An encoder and level: what a Go part re-creates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Model {
    /// The encoder.
    pub encoder: Encoder,
    /// Its compression level, -2 to 9 (Go's default, -1, is the level it
    /// stands for).
    pub level: i8,
}

/// A streaming deflate writer that writes exactly what one Go encoder wrote.
pub enum Deflater {
    /// Go 1.8–1.26.
    GoStdlib(Box<gostd::Encoder>),
    /// Go 1.27+.
    Go127(Box<go127::Encoder>),
    /// pgzip.
    Pgzip(Box<PgzipStream>),
}

impl Deflater {
    /// Compresses `data`, appending the output that is complete to `out`.
    pub fn write(&mut self, data: &[u8], out: &mut Vec<u8>) {
        match self {
            Deflater::GoStdlib(e) => e.write(data, out),
            Deflater::Go127(e) => e.write(data, out),
            Deflater::Pgzip(e) => e.write(data, out),
        }
    }

    /// Ends the stream as the Go program's `Close` does.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        match self {
            Deflater::GoStdlib(e) => e.close(out),
            Deflater::Go127(e) => e.close(out),
            Deflater::Pgzip(e) => e.close(out),
        }
    }
}

/// pgzip's framing: input cut at fixed 1 MiB offsets, each full block
/// compressed at once (the dictionary is the last 16 KiB of the block
/// before, when that block was longer than 16 KiB) and sync-flushed; `Close`
/// compresses what is left, possibly nothing, and also closes.
pub struct PgzipStream {
    level: i32,
    dict: Vec<u8>,
    block: Vec<u8>,
}

impl PgzipStream {
    /// A stream at `level`.
    pub fn new(level: i32) -> PgzipStream {
        PgzipStream {
            level,
            dict: Vec::new(),
            block: Vec::new(),
        }
    }

    /// Compresses `data`.
    pub fn write(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() {
            let take = data
                .len()
                .min(kpflate::pgzip::PGZIP_BLOCK - self.block.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() == kpflate::pgzip::PGZIP_BLOCK {
                self.compress(false, out);
            }
        }
    }

    /// Compresses what is left and closes.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        self.compress(true, out);
    }

    /// Writes `parts` one after the other (and closes after the last when
    /// `close`), returning what each one's write (and the close) emitted,
    /// exactly as part-by-part [`PgzipStream::write`] calls would; the
    /// blocks are compressed in parallel.
    pub fn write_parts(&mut self, parts: &[&[u8]], close: bool) -> Vec<Vec<u8>> {
        use rayon::prelude::*;
        // Every block completed on the way: its dictionary, its bytes,
        // whether it closes the stream, and the part that completes it.
        let mut jobs: Vec<(Vec<u8>, Vec<u8>, bool, usize)> = Vec::new();
        let mut block = std::mem::take(&mut self.block);
        let mut dict = std::mem::take(&mut self.dict);
        for (i, data) in parts.iter().enumerate() {
            let mut rest = *data;
            while !rest.is_empty() {
                let take = rest.len().min(kpflate::pgzip::PGZIP_BLOCK - block.len());
                block.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if block.len() == kpflate::pgzip::PGZIP_BLOCK {
                    let next = block[block.len() - kpflate::pgzip::PGZIP_TAIL..].to_vec();
                    jobs.push((std::mem::replace(&mut dict, next), block, false, i));
                    block = Vec::with_capacity(kpflate::pgzip::PGZIP_BLOCK);
                }
            }
        }
        if close {
            let at = parts.len().saturating_sub(1);
            jobs.push((
                std::mem::take(&mut dict),
                std::mem::take(&mut block),
                true,
                at,
            ));
        }
        self.block = block;
        self.dict = dict;
        let level = self.level;
        let written: Vec<Vec<u8>> = jobs
            .par_iter()
            .map(|(dict, block, last, _)| {
                let mut out = Vec::with_capacity(block.len() / 2);
                kpflate::pgzip::pgzip_block(level, dict, block, *last, &mut out);
                out
            })
            .collect();
        let mut outs = vec![Vec::new(); parts.len().max(1)];
        for ((_, _, _, part), bytes) in jobs.iter().zip(written) {
            outs[*part].extend_from_slice(&bytes);
        }
        outs
    }

    fn compress(&mut self, last: bool, out: &mut Vec<u8>) {
        let modelled = kpflate::pgzip::pgzip_block(self.level, &self.dict, &self.block, last, out);
        debug_assert!(modelled, "level checked when the stream was made");
        self.dict.clear();
        if self.block.len() > kpflate::pgzip::PGZIP_TAIL {
            self.dict
                .extend_from_slice(&self.block[self.block.len() - kpflate::pgzip::PGZIP_TAIL..]);
        }
        self.block.clear();
    }
}

/// One Go part's record, as stored in a chunk:
/// `version u8 (2), flags u8, encoder u8, level i8, plain_len varint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoPart {
    /// The first part of a deflate stream.
    pub first: bool,
    /// The last part: the encoder closes after this part's plain text.
    pub last: bool,
    /// Who wrote the stream, at which level.
    pub model: Model,
    /// Plain-text bytes this part compresses.
    pub plain_len: u64,
}

/// Why a Go part record cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoPartError {
    /// Damaged or not a Go part record.
    Bad(String),
    /// Written by a newer ferry, which knows an encoder this one does not.
    Unknown(String),
}

impl GoPart {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![
            GO_PART_VERSION,
            (u8::from(self.first) * FIRST) | (u8::from(self.last) * LAST),
            self.model.encoder as u8,
            self.model.level as u8,
        ];
        crate::varint::put(&mut out, self.plain_len);
        out
    }

    /// Parses a record.
    pub fn decode(data: &[u8]) -> Result<GoPart, GoPartError> {
        let bad = |m: String| Err(GoPartError::Bad(m));
        let [GO_PART_VERSION, flags, encoder, level, rest @ ..] = data else {
            return bad("Go deflate part record is cut short or not one".into());
        };
        if flags & !(FIRST | LAST) != 0 {
            return bad(format!("Go deflate part has unknown flags {flags:#x}"));
        }
        let Some(enc) = Encoder::from_number(*encoder) else {
            return Err(GoPartError::Unknown(format!(
                "a layer was compressed by encoder {encoder}, which this ferry does not know: upgrade ferry"
            )));
        };
        let level = *level as i8;
        if !enc.models(level) {
            return Err(GoPartError::Unknown(format!(
                "a layer was compressed by {} at level {level}, which this ferry does not model: upgrade ferry",
                enc.name()
            )));
        }
        let mut at = 0;
        let plain_len = crate::varint::get(rest, &mut at)
            .map_err(|_| GoPartError::Bad("Go deflate part ends inside its length".into()))?;
        if at != rest.len() {
            return bad("Go deflate part has trailing bytes".into());
        }
        if plain_len > MAX_GO_PLAIN {
            return bad(format!("Go deflate part claims {plain_len} plain bytes"));
        }
        Ok(GoPart {
            first: flags & FIRST != 0,
            last: flags & LAST != 0,
            model: Model {
                encoder: enc,
                level,
            },
            plain_len,
        })
    }
}

/// The gzip header Go writes for a stream at `level` with nothing set but
/// the level: `1f 8b 08 00`, MTIME, XFL, OS 255.
pub fn header(model: Model) -> [u8; 10] {
    let mtime: [u8; 4] = match model.encoder {
        Encoder::Pgzip => [0x00, 0x09, 0x6e, 0x88],
        _ => [0; 4],
    };
    let xfl = match model.level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    [
        0x1f, 0x8b, 8, 0, mtime[0], mtime[1], mtime[2], mtime[3], xfl, 0xff,
    ]
}

/// The whole gzip stream `model` writes for `data` (as Go's gzip writer
/// does with nothing set but the level), or `None` when it is not modelled.
pub fn gzip(model: Model, data: &[u8]) -> Option<Vec<u8>> {
    let mut d = model.encoder.deflater(model.level)?;
    let mut out = header(model).to_vec();
    d.write(data, &mut out);
    d.close(&mut out);
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Some(out)
}

/// Levels to try, most likely first, for a stream whose gzip header is
/// `head` (exactly 10 bytes, no optional fields, OS 255). Empty when the
/// header is not one Go writes.
pub fn candidates(head: &[u8]) -> Vec<Model> {
    let [0x1f, 0x8b, 8, 0, m0, m1, m2, m3, xfl, 0xff] = *head else {
        return Vec::new();
    };
    let encoders: &[Encoder] = match [m0, m1, m2, m3] {
        [0, 0, 0, 0] => &[Encoder::GoStdlib, Encoder::Go127],
        [0x00, 0x09, 0x6e, 0x88] => &[Encoder::Pgzip],
        _ => return Vec::new(),
    };
    let levels: &[i8] = match xfl {
        2 => &[9],
        4 => &[1],
        0 => &[6, 5, 2, 3, 4, 7, 8, 0, -2],
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    for &encoder in encoders {
        for &level in levels {
            let model = Model { encoder, level };
            if header(model) == head && encoder.models(level) {
                out.push(model);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_part_records_round_trip_and_bad_ones_are_refused() {
        let p = GoPart {
            first: true,
            last: false,
            model: Model {
                encoder: Encoder::GoStdlib,
                level: 6,
            },
            plain_len: 1 << 20,
        };
        assert_eq!(GoPart::decode(&p.encode()), Ok(p));
        let mut unknown = p.encode();
        unknown[2] = 99;
        assert!(
            matches!(GoPart::decode(&unknown), Err(GoPartError::Unknown(m)) if m.contains("upgrade ferry"))
        );
        let mut flags = p.encode();
        flags[1] = 0x80;
        assert!(matches!(GoPart::decode(&flags), Err(GoPartError::Bad(_))));
        assert!(matches!(
            GoPart::decode(&[2, 0, 1]),
            Err(GoPartError::Bad(_))
        ));
        let mut long = p.encode();
        long.push(0);
        assert!(matches!(GoPart::decode(&long), Err(GoPartError::Bad(_))));
    }

    #[test]
    fn headers_point_at_their_encoders() {
        let std6 = Model {
            encoder: Encoder::GoStdlib,
            level: 6,
        };
        assert_eq!(candidates(&header(std6))[0], std6);
        let pg = Model {
            encoder: Encoder::Pgzip,
            level: 1,
        };
        assert_eq!(candidates(&header(pg)), vec![pg]);
        // GNU gzip (OS 3) and a header with a file name are not Go's.
        let mut gnu = header(std6);
        gnu[9] = 3;
        assert!(candidates(&gnu).is_empty());
        assert!(candidates(&[0x1f, 0x8b, 8, 8, 0, 0, 0, 0, 0, 0xff]).is_empty());
    }
}
