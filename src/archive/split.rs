//! Tar-aware splitting: walks a tar stream (and tars found inside it by
//! content, such as the layers of a `docker save` archive) and tells a
//! [`Sink`] which bytes are tar structure (headers, PAX/GNU extension
//! records, padding, end-of-archive blocks) and which are file contents.
//!
//! Every input byte is handed to the sink exactly once and in order, so the
//! split can never change a byte; the parser only decides where contents
//! start and end. What it does not fully understand (a bad checksum, bytes
//! after the end marker, a truncated entry) goes out as a plain stream.

use std::io::{self, Read};

use crate::counting::Counting;

/// What a run of [`Sink::data`] bytes is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One file's contents.
    Content,
    /// Bytes read as a plain stream.
    Raw,
}

/// Receives the split, in input order.
pub trait Sink {
    /// Tar structure bytes (they go to the headers stream).
    fn meta(&mut self, bytes: &[u8]);
    /// The next [`Kind::Content`] run is the file at `path` (as its tar
    /// entry names it, inside whatever tar it was found) of `size` bytes.
    fn path(&mut self, _path: &[u8], _size: u64) {}
    /// A file's contents (or a plain stream) begin.
    fn begin(&mut self, kind: Kind);
    /// Bytes of the current file or plain stream.
    fn data(&mut self, bytes: &[u8]);
    /// The current file or plain stream ends.
    fn end(&mut self);
    /// A tar stream was recognised.
    fn tar(&mut self) {}
    /// The tar stream last recognised (and not yet ended) has ended.
    fn tar_end(&mut self) {}
    /// From `true` until `false`, meta and data bytes are the plain text of
    /// a deflate stream (see [`super::gzip`]), not bytes of the input.
    fn inflate(&mut self, _on: bool) {}
    /// A deflate part record re-creating `out` input bytes from the plain
    /// text that follows it.
    fn part(&mut self, _record: Vec<u8>, _out: u64) {}
    /// A gzip'd tar of `size` bytes was handled; `raw` of its compressed
    /// bytes are kept as they are (all of them when preflate could not
    /// analyse it, none when every part was recorded).
    fn gzip(&mut self, _outcome: Outcome, _size: u64, _raw: u64) {}
    /// A compressed layer blob named `blobs/sha256/<digest>` of `size`
    /// bytes is next: the BLAKE3 of the blob of that name the store holds,
    /// if it holds one of that size (then the blob is only hashed, and
    /// [`Sink::layer`] reports it reused).
    fn known_layer(&mut self, _digest: &[u8; 32], _size: u64) -> Option<[u8; 32]> {
        None
    }
    /// A compressed layer blob starts or ends, or came again (see [`Layer`]).
    fn layer(&mut self, _event: Layer) {}
}

/// Where a compressed layer blob named by its sha256 sits in the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Its bytes are split from here on.
    Start([u8; 32]),
    /// They ended.
    End {
        /// The sha256 its name gives.
        digest: [u8; 32],
        /// True when its bytes have that sha256.
        named: bool,
        /// BLAKE3 of its bytes.
        blake3: [u8; 32],
        /// Its size.
        size: u64,
        /// How its deflate stream is kept.
        outcome: Outcome,
    },
    /// A blob the store holds came again, byte for byte (its BLAKE3 was
    /// checked): its pieces are the stored ones.
    Reused {
        /// Its sha256.
        digest: [u8; 32],
        /// Its size.
        size: u64,
    },
}

pub use super::gzip::Outcome;

const BLOCK: usize = 512;
/// Tars inside tars are followed this deep (docker archive > layer > a tar file in a layer).
const MAX_DEPTH: u32 = 3;
/// PAX extended headers larger than this are not searched for a size.
const MAX_PAX: u64 = 1 << 20;

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(super) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// True when `block` is a tar header with a valid checksum (unsigned or
/// signed sum, as POSIX and old tars compute it).
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < BLOCK || block.iter().all(|&b| b == 0) {
        return false;
    }
    let field = &block[148..156];
    // Octal digits, possibly after leading spaces, ended by NUL or space.
    let text: String = field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| b != 0 && b != b' ')
        .map(|&b| b as char)
        .collect();
    let Ok(stored) = u32::from_str_radix(&text, 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u32, 0i32);
    for (i, &b) in block[..BLOCK].iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += b as u32;
        signed += b as i8 as i32;
    }
    stored == unsigned || stored as i32 == signed
}

/// Size of the data that follows a header: the size field (octal or
/// base-256), or a PAX `size` override.
fn entry_size(block: &[u8]) -> Option<u64> {
    let header = tar::Header::from_byte_slice(block);
    header.entry_size().ok()
}

/// Parses a PAX extended header's records for `size`.
fn pax_size(records: &[u8]) -> Option<u64> {
    std::str::from_utf8(pax_field(records, b"size=")?)
        .ok()?
        .parse()
        .ok()
}

/// The value of the last PAX record starting with `key` (which ends in `=`).
fn pax_field<'a>(records: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut found = None;
    let mut rest = records;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return None;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(v) = record.strip_prefix(key) {
            found = Some(v);
        }
        rest = &rest[len..];
    }
    found
}

/// Splits `input` into `sink`: tar-aware when `tar_aware` and the input
/// starts with a tar header, else as one plain stream.
pub fn split(input: &mut dyn Read, sink: &mut dyn Sink, tar_aware: bool) -> io::Result<()> {
    let mut head = [0u8; BLOCK];
    let n = read_full(input, &mut head)?;
    if tar_aware && n == BLOCK && is_tar_header(&head) {
        let mut chained = (&head[..]).chain(input);
        tar(&mut chained, sink, 0, false)
    } else {
        raw(&head[..n], input, sink)
    }
}

/// Everything from here on as one plain stream.
fn raw(prefix: &[u8], rest: &mut dyn Read, sink: &mut dyn Sink) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = read_full(rest, &mut buf)?;
    if prefix.is_empty() && n == 0 {
        return Ok(());
    }
    sink.begin(Kind::Raw);
    sink.data(prefix);
    while n > 0 {
        sink.data(&buf[..n]);
        n = read_full(rest, &mut buf)?;
    }
    sink.end();
    Ok(())
}

thread_local! {
    /// [`copy`]'s buffer, kept between calls: a fresh one per file cost a
    /// zeroed allocation (and, over 128 KiB, fresh pages) for every file.
    static COPY_BUF: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Copies exactly `n` bytes (fewer if the input ends) to `to`.
pub(super) fn copy(r: &mut dyn Read, n: u64, to: &mut dyn FnMut(&[u8])) -> io::Result<u64> {
    // Taken, not borrowed: a copy that `to` starts (a nested stream) gets
    // a buffer of its own.
    let mut buf = COPY_BUF.take();
    let want = n.min(1 << 20) as usize;
    if buf.len() < want {
        buf.resize(want, 0);
    }
    let done = copy_with(r, n, &mut buf[..want], to);
    COPY_BUF.set(buf);
    done
}

fn copy_with(
    r: &mut dyn Read,
    mut n: u64,
    buf: &mut [u8],
    to: &mut dyn FnMut(&[u8]),
) -> io::Result<u64> {
    let mut done = 0;
    while n > 0 {
        let want = n.min(buf.len() as u64) as usize;
        let got = read_full(r, &mut buf[..want])?;
        if got == 0 {
            break;
        }
        to(&buf[..got]);
        n -= got as u64;
        done += got as u64;
        if got < want {
            break;
        }
    }
    Ok(done)
}

/// A tar stream, read to the end of `r`; `inflated` when it is the plain
/// text of a deflate stream (whose gzip'd entries are then kept as files).
pub(super) fn tar(
    r: &mut dyn Read,
    sink: &mut dyn Sink,
    depth: u32,
    inflated: bool,
) -> io::Result<()> {
    sink.tar();
    let result = tar_entries(r, sink, depth, inflated);
    sink.tar_end();
    result
}

fn tar_entries(
    r: &mut dyn Read,
    sink: &mut dyn Sink,
    depth: u32,
    inflated: bool,
) -> io::Result<()> {
    let mut next_size: Option<u64> = None;
    let mut next_path: Option<Vec<u8>> = None;
    let mut block = [0u8; BLOCK];
    loop {
        let n = read_full(r, &mut block)?;
        if n == 0 {
            return Ok(());
        }
        if n < BLOCK {
            // A truncated tar: keep the bytes, as they are.
            return raw(&block[..n], r, sink);
        }
        if block.iter().all(|&b| b == 0) {
            // End of archive: the zero blocks are structure; anything after
            // them is kept as a plain stream.
            sink.meta(&block);
            loop {
                let n = read_full(r, &mut block)?;
                if n == BLOCK && block.iter().all(|&b| b == 0) {
                    sink.meta(&block);
                    continue;
                }
                return raw(&block[..n], r, sink);
            }
        }
        if !is_tar_header(&block) {
            return raw(&block, r, sink);
        }
        let kind = block[156];
        let size = match next_size.take() {
            Some(s) => s,
            None => match entry_size(&block) {
                Some(s) => s,
                None => return raw(&block, r, sink),
            },
        };
        sink.meta(&block);
        // Old GNU sparse headers may continue in extension blocks.
        if kind == b'S' && block[482] != 0 {
            loop {
                let n = read_full(r, &mut block)?;
                sink.meta(&block[..n]);
                if n < BLOCK || block[504] == 0 {
                    break;
                }
            }
        }
        let padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        let got = match kind {
            // Extension records: PAX ('x' per entry, 'g' global), GNU long
            // names and link names ('L', 'K'), Solaris ('X'): structure.
            b'x' | b'g' | b'L' | b'K' | b'X' => {
                let mut records = Vec::new();
                let got = copy(r, size, &mut |b| {
                    sink.meta(b);
                    if size <= MAX_PAX {
                        records.extend_from_slice(b);
                    }
                })?;
                if kind == b'x' || kind == b'X' {
                    next_size = pax_size(&records);
                    next_path = pax_field(&records, b"path=").map(<[u8]>::to_vec);
                } else if kind == b'L' {
                    let end = records
                        .iter()
                        .position(|&b| b == 0)
                        .unwrap_or(records.len());
                    next_path = Some(records[..end].to_vec());
                }
                got
            }
            _ => {
                let path = next_path.take().unwrap_or_else(|| {
                    tar::Header::from_byte_slice(&block)
                        .path_bytes()
                        .into_owned()
                });
                file(r, size, sink, depth, inflated, &path)?
            }
        };
        if got < size {
            return Ok(()); // the input ended inside this entry
        }
        let mut pad = [0u8; BLOCK];
        let n = read_full(r, &mut pad[..padding as usize])?;
        sink.meta(&pad[..n]);
        if n < padding as usize {
            return Ok(());
        }
    }
}

/// One entry's data: a nested tar, or one file's contents.
fn file(
    r: &mut dyn Read,
    size: u64,
    sink: &mut dyn Sink,
    depth: u32,
    inflated: bool,
    path: &[u8],
) -> io::Result<u64> {
    if size == 0 {
        return Ok(0);
    }
    let mut head = [0u8; BLOCK];
    let want = size.min(BLOCK as u64) as usize;
    let n = read_full(r, &mut head[..want])?;
    if depth < MAX_DEPTH && size >= 2 * BLOCK as u64 && n == BLOCK && is_tar_header(&head) {
        let mut counted = Counting::new((&head[..]).chain(r.take(size - BLOCK as u64)));
        tar(&mut counted, sink, depth + 1, inflated)?;
        // The nested parser reads its input to the end.
        return Ok(counted.count());
    }
    // Compressed layers (OCI archives from skopeo, containerd's store):
    // decompressed, split, and re-created from preflate data. Only entries
    // of the outer archive: a .tar.gz inside a layer is an image's file,
    // rarely worth the (slow) deflate analysis.
    if depth == 0 && !inflated && n >= 18 && head.starts_with(&[0x1f, 0x8b, 0x08]) {
        return super::layers::gzip_entry(&head[..n], r, sink, size, path);
    }
    sink.path(path, size);
    sink.begin(Kind::Content);
    sink.data(&head[..n]);
    let mut got = n as u64;
    if n == want {
        got += copy(r, size - n as u64, &mut |b| sink.data(b))?;
    }
    sink.end();
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the split and rebuilds the input from it.
    #[derive(Default)]
    struct Rebuild {
        out: Vec<u8>,
        files: Vec<Vec<u8>>,
        meta: usize,
        open: bool,
    }

    impl Sink for Rebuild {
        fn meta(&mut self, b: &[u8]) {
            assert!(!self.open, "meta inside a file");
            self.meta += b.len();
            self.out.extend_from_slice(b);
        }
        fn begin(&mut self, _: Kind) {
            self.open = true;
            self.files.push(Vec::new());
        }
        fn data(&mut self, b: &[u8]) {
            self.out.extend_from_slice(b);
            self.files.last_mut().unwrap().extend_from_slice(b);
        }
        fn end(&mut self) {
            self.open = false;
        }
    }

    fn run(input: &[u8]) -> Rebuild {
        let mut s = Rebuild::default();
        split(&mut &input[..], &mut s, true).unwrap();
        assert!(s.out == input, "split changed bytes");
        s
    }

    #[test]
    fn files_are_cut_out_of_a_tar_and_nested_tars_are_followed() {
        let inner = crate::demo::layer_tar(
            &[crate::demo::SampleFile {
                path: "a/b.txt".into(),
                data: b"hello world".repeat(100),
            }],
            5,
        );
        let outer = crate::demo::layer_tar(
            &[
                crate::demo::SampleFile {
                    path: "layer.tar".into(),
                    data: inner,
                },
                crate::demo::SampleFile {
                    path: "x.json".into(),
                    data: b"{}".to_vec(),
                },
            ],
            6,
        );
        let s = run(&outer);
        assert_eq!(s.files, vec![b"hello world".repeat(100), b"{}".to_vec()]);
    }

    #[test]
    fn non_tars_and_damaged_tars_stay_byte_exact() {
        let s = run(b"just some bytes");
        assert_eq!(s.files.len(), 1);
        let mut t = crate::demo::layer_tar(
            &[crate::demo::SampleFile {
                path: "f".into(),
                data: vec![7; 3000],
            }],
            1,
        );
        t[600] ^= 0xff; // inside the file: still parsed
        run(&t);
        t[10] ^= 0xff; // header checksum now wrong: plain stream
        let s = run(&t);
        assert_eq!(s.meta, 0);
        let mut cut = t.clone();
        cut.truncate(1500);
        run(&cut);
        run(&[]);
    }

    #[test]
    fn space_padded_checksums_are_accepted() {
        let mut t = crate::demo::layer_tar(
            &[crate::demo::SampleFile {
                path: "f".into(),
                data: vec![1; 100],
            }],
            1,
        );
        assert!(is_tar_header(&t[..512]));
        let sum: u32 = t[..512]
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as u32
                }
            })
            .sum();
        let padded = format!("{sum:>6o}\0 ");
        t[148..156].copy_from_slice(padded.as_bytes());
        assert!(is_tar_header(&t[..512]), "{padded:?}");
    }

    #[test]
    fn pax_size_is_read() {
        assert_eq!(
            pax_size(b"12 path=abc\n19 size=1234567890\n"),
            Some(1234567890)
        );
        assert_eq!(pax_size(b"12 path=abc\n"), None);
        assert_eq!(pax_size(b"99 size=1\n"), None);
    }
}
