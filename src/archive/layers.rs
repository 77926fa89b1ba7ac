//! Compressed layer blobs of an image archive, one at a time: a blob named
//! `blobs/sha256/<digest>` that the store already holds is only hashed and
//! taken from the store (an unchanged layer of the next version needs no
//! analysis); any other is split by [`super::gzip`], with its sha256 and
//! BLAKE3 taken as it streams, so the store can find it next time.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

use super::gzip;
use super::split::{self, Layer, Sink};

/// The sha256 a blob's path names (`blobs/sha256/<hex>`, or `./blobs/...`).
pub fn blob_digest(path: &[u8]) -> Option<[u8; 32]> {
    let path = path.strip_prefix(b"./").unwrap_or(path);
    let hex = path.strip_prefix(b"blobs/sha256/")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Hashes what is read through it.
struct Tap<R> {
    inner: R,
    sha: Option<Sha256>,
    blake3: blake3::Hasher,
    count: u64,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(sha) = &mut self.sha {
            sha.update(&buf[..n]);
        }
        self.blake3.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// One gzip'd entry of `size` bytes of the outer archive, whose first
/// bytes `head` were read from `r`; returns the bytes it consumed.
pub(super) fn gzip_entry(
    head: &[u8],
    r: &mut dyn Read,
    sink: &mut dyn Sink,
    size: u64,
    path: &[u8],
) -> io::Result<u64> {
    let digest = blob_digest(path);
    if let Some(d) = digest {
        if let Some(blake3) = sink.known_layer(&d, size) {
            return reuse(head, r, sink, size, path, d, blake3);
        }
        sink.layer(Layer::Start(d));
    }
    let rest = size - head.len() as u64;
    let mut tap = Tap {
        inner: head.chain(r.take(rest)),
        sha: digest.map(|_| Sha256::new()),
        blake3: blake3::Hasher::new(),
        count: 0,
    };
    let outcome = gzip::entry(&mut tap, sink, 0, size)?;
    if let (Some(d), Some(sha)) = (digest, tap.sha.take()) {
        let named = tap.count == size && sha.finalize()[..] == d[..];
        sink.layer(Layer::End {
            digest: d,
            named,
            blake3: *tap.blake3.finalize().as_bytes(),
            size: tap.count,
            outcome,
        });
    }
    Ok(tap.count)
}

/// A blob the store holds: hashed, checked, and reported reused.
fn reuse(
    head: &[u8],
    r: &mut dyn Read,
    sink: &mut dyn Sink,
    size: u64,
    path: &[u8],
    digest: [u8; 32],
    blake3: [u8; 32],
) -> io::Result<u64> {
    let mut h = blake3::Hasher::new();
    h.update(head);
    let got = head.len() as u64
        + split::copy(r, size - head.len() as u64, &mut |b| {
            h.update(b);
        })?;
    if got < size || h.finalize().as_bytes() != &blake3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "layer {} is not the blob its sha256 name says (the store holds that blob, with other bytes): the archive is damaged; save it again",
                String::from_utf8_lossy(path)
            ),
        ));
    }
    sink.layer(Layer::Reused { digest, size });
    Ok(size)
}
