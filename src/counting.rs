//! Counting the bytes that pass through a reader or a writer: one small
//! adapter for pack sizes, nested tar entries and compressed-size
//! measurements alike.

use std::io::{self, Read, Write};

/// Wraps a reader or a writer and counts the bytes that go through it:
/// bytes read when `T: Read`, bytes accepted by the inner writer when
/// `T: Write`. Over [`io::Sink`] it measures what would be written, as in
/// `Counting::new(io::sink())` behind an encoder.
#[derive(Debug, Default)]
pub struct Counting<T> {
    inner: T,
    count: u64,
}

impl<T> Counting<T> {
    /// Wraps `inner`, with the count at zero.
    pub fn new(inner: T) -> Counting<T> {
        Counting { inner, count: 0 }
    }

    /// Bytes read or written through this adapter so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The wrapped reader or writer.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped reader or writer, mutably. Bytes moved through it
    /// directly are not counted.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps the adapter, giving back the inner reader or writer.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_is_read_including_short_reads() {
        let data = vec![7u8; 10_000];
        let mut r = Counting::new(&data[..]);
        let mut buf = [0u8; 3000];
        assert_eq!(r.read(&mut buf).unwrap(), 3000);
        assert_eq!(r.count(), 3000);
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest.len(), 7000);
        assert_eq!(r.count(), 10_000);
        assert_eq!(r.read(&mut buf).unwrap(), 0);
        assert_eq!(r.count(), 10_000);
    }

    #[test]
    fn counts_only_what_the_inner_writer_accepts() {
        // A fixed 5-byte buffer accepts 5 bytes and then refuses more.
        let mut space = [0u8; 5];
        let mut w = Counting::new(&mut space[..]);
        assert_eq!(w.write(b"abcdefgh").unwrap(), 5);
        assert_eq!(w.write(b"ijk").unwrap(), 0);
        assert_eq!(w.count(), 5);
        assert!(w.write_all(b"x").is_err());
        assert_eq!(w.count(), 5);
        assert_eq!(&space, b"abcde");
    }

    #[test]
    fn over_a_sink_it_measures_an_encoder_output() {
        let input = vec![0u8; 1 << 16];
        let mut e =
            flate2::write::GzEncoder::new(Counting::new(io::sink()), flate2::Compression::new(6));
        e.write_all(&input).unwrap();
        let measured = e.finish().unwrap().count();
        let mut real = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        real.write_all(&input).unwrap();
        assert_eq!(measured, real.finish().unwrap().len() as u64);
    }
}
