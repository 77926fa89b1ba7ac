//! A byte stream from one thread to another in 1 MiB buffers, that ends
//! either cleanly or with the writer's error (never a silent short read).

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// What goes through the pipe: a buffer, an empty one at the end, or the
/// writer's error.
pub type Piece = io::Result<Vec<u8>>;

/// A pipe's two ends, four buffers deep.
pub fn channel() -> (SyncSender<Piece>, Receiver<Piece>) {
    sync_channel(4)
}

/// The writing end of the archive: 1 MiB buffers to the reader.
pub struct ChannelWriter {
    tx: SyncSender<Piece>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub fn new(tx: SyncSender<Piece>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(1 << 20),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let b = std::mem::replace(&mut self.buf, Vec::with_capacity(1 << 20));
        self.tx
            .send(Ok(b))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the store stopped reading"))
    }

    /// Sends what is left and the end.
    pub fn finish(&mut self) -> io::Result<()> {
        self.send()?;
        let _ = self.tx.send(Ok(Vec::new()));
        Ok(())
    }

    /// Tells the reader the archive failed.
    pub fn fail(&mut self, e: io::Error) {
        let _ = self.tx.send(Err(e));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 1 << 20 {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reading end: the archive as it arrives; an empty buffer ends it.
pub struct ChannelReader {
    rx: Receiver<Piece>,
    buf: Vec<u8>,
    at: usize,
    done: bool,
}

impl ChannelReader {
    pub fn new(rx: Receiver<Piece>) -> Self {
        ChannelReader {
            rx,
            buf: Vec::new(),
            at: 0,
            done: false,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) if b.is_empty() => self.done = true,
                Ok(Ok(b)) => {
                    self.buf = b;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(io::Error::other(
                        "the download from the registry stopped before the image was complete",
                    ));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
