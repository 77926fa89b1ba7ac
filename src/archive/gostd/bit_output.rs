//! The bit-level output of Go's `huffmanBitWriter`: bits are packed LSB
//! first and leave for the caller's `out` in the same pieces, at the same
//! moments, as Go hands them to its `io.Writer`.
//!
//! Go moves six whole bytes at a time from its 64-bit accumulator into a
//! 248-byte buffer, and writes that buffer out each time it reaches 240
//! bytes. Counted from the last flush (a stored block or the end of the
//! stream), its writer therefore receives the stream in 240-byte pieces:
//! piece `k` leaves as soon as bit `1920 k` has been written. Here whole
//! bytes leave the accumulator after every put (so a put may carry up to
//! 56 bits, e.g. a whole match) and 240 bytes go to `out` as soon as that
//! many are complete. At every put boundary — in particular whenever
//! control returns to the caller — `out` holds exactly what Go's writer
//! holds.

/// Go writes its buffer out once it holds this many bytes.
const FLUSH_SIZE: usize = 240;
/// Room for a full buffer plus one 8-byte store past it.
const BUF_LEN: usize = 256 + 8;

/// Pending bits and bytes not yet handed to `out`.
pub(super) struct BitOut {
    /// Bits not yet in `buf`, LSB first; fewer than 8 between puts.
    bits: u64,
    nbits: u32,
    /// Complete bytes not yet in `out`: `buf[..pos]`, `pos < FLUSH_SIZE`.
    buf: [u8; BUF_LEN],
    pos: usize,
}

/// A [`BitOut`] opened for a run of puts, its state held in locals (so in
/// registers) until [`Cursor::close`].
pub(super) struct Cursor<'a> {
    bits: u64,
    nbits: u32,
    pos: usize,
    buf: &'a mut [u8; BUF_LEN],
    out: &'a mut Vec<u8>,
}

impl Cursor<'_> {
    /// Appends the `n` (at most 56) low bits of `value`; higher bits of
    /// `value` must be zero.
    #[inline(always)]
    pub(super) fn put(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 56 && value >> n == 0);
        self.bits |= value << self.nbits;
        self.nbits += n;
        // Store all eight bytes; only the whole ones count.
        let p = self.pos & 0xff;
        self.buf[p..p + 8].copy_from_slice(&self.bits.to_le_bytes());
        let whole = self.nbits >> 3;
        self.pos = p + whole as usize;
        self.bits >>= whole * 8;
        self.nbits &= 7;
        if self.pos >= FLUSH_SIZE {
            self.pos = spill(self.buf, self.pos, self.out);
        }
    }
}

/// Hands the first 240 of the `pos` buffered bytes to `out`; returns how
/// many stay.
#[cold]
#[inline(never)]
fn spill(buf: &mut [u8; BUF_LEN], pos: usize, out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(&buf[..FLUSH_SIZE]);
    buf.copy_within(FLUSH_SIZE..pos, 0);
    pos - FLUSH_SIZE
}

impl BitOut {
    /// Empty output.
    pub(super) fn new() -> BitOut {
        BitOut {
            bits: 0,
            nbits: 0,
            buf: [0; BUF_LEN],
            pos: 0,
        }
    }

    /// Runs `f` with a cursor over this output, writing into `out`.
    #[inline(always)]
    pub(super) fn with<R>(&mut self, out: &mut Vec<u8>, f: impl FnOnce(&mut Cursor) -> R) -> R {
        let mut c = Cursor {
            bits: self.bits,
            nbits: self.nbits,
            pos: self.pos,
            buf: &mut self.buf,
            out,
        };
        let r = f(&mut c);
        let (bits, nbits, pos) = (c.bits, c.nbits, c.pos);
        self.bits = bits;
        self.nbits = nbits;
        self.pos = pos;
        r
    }

    /// Appends the `n` (at most 56) low bits of `value`.
    #[inline(always)]
    pub(super) fn put(&mut self, value: u64, n: u32, out: &mut Vec<u8>) {
        self.with(out, |c| c.put(value, n));
    }

    /// Go's `flush`: writes out everything, the last partial byte padded
    /// with zero bits.
    pub(super) fn flush(&mut self, out: &mut Vec<u8>) {
        if self.nbits > 0 {
            self.buf[self.pos] = self.bits as u8;
            self.pos += 1;
        }
        out.extend_from_slice(&self.buf[..self.pos]);
        self.pos = 0;
        self.bits = 0;
        self.nbits = 0;
    }

    /// Go's `writeBytes`: writes out the buffer, then `data`. The bit
    /// position must be at a byte boundary.
    pub(super) fn write_bytes(&mut self, data: &[u8], out: &mut Vec<u8>) {
        debug_assert_eq!(self.nbits, 0, "write_bytes with unfinished bits");
        out.extend_from_slice(&self.buf[..self.pos]);
        self.pos = 0;
        out.extend_from_slice(data);
    }
}
