//! Encoded records kept on disk between measuring and writing volumes.
//!
//! A volume's header names how many volumes its set has, so the cut must be
//! known before the first byte is written; but how large a delta or a group
//! comes out is known only once it is encoded. A split pack is therefore
//! encoded once into a spool (an unlinked temporary file), which gives each
//! item's exact record bytes for an even cut, and the volumes are then
//! written from the spool. Only what encoding made is spooled: a chunk that
//! goes as stored is read from the store again, and must hash to what it
//! hashed to the first time.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};

use crate::error::{Error, IoContext, Result};

use super::encode::{Encoded, GroupOut, Single};

const GROUP: u8 = 1;
const SINGLES: u8 = 2;
const STORED: u8 = 0;
const SQUEEZED: u8 = 1;
const DELTA: u8 = 2;

/// Where encoded items wait, in plan order.
pub(super) struct Spool {
    out: Option<BufWriter<File>>,
    input: Option<BufReader<File>>,
}

impl Spool {
    /// An empty spool in the system's temporary directory.
    pub fn new() -> Result<Self> {
        let file = tempfile::tempfile().ctx(|| {
            format!(
                "creating a temporary file in {} to plan volumes (set TMPDIR to a directory with room)",
                std::env::temp_dir().display()
            )
        })?;
        Ok(Spool {
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            input: None,
        })
    }

    /// Appends one encoded item; `stored` gives the BLAKE3 of each stored
    /// chunk's bytes, in order.
    pub fn put(
        &mut self,
        item: &Encoded,
        stored: &mut dyn Iterator<Item = [u8; 32]>,
    ) -> Result<()> {
        let w = self.out.as_mut().expect("spool being written");
        let mut buf = Vec::new();
        match item {
            Encoded::Group(g) => {
                assert_eq!(g.prefix, 0, "a spooled block has no prefix");
                buf.push(GROUP);
                put_u32s(&mut buf, &g.lens);
                buf.extend_from_slice(&g.digest);
                put_bytes(&mut buf, &g.frame);
            }
            Encoded::Singles(singles) => {
                buf.push(SINGLES);
                buf.extend_from_slice(&(singles.len() as u32).to_le_bytes());
                for s in singles {
                    match s {
                        Single::Stored => {
                            buf.push(STORED);
                            buf.extend_from_slice(&stored.next().expect("a hash per stored chunk"));
                        }
                        Single::Squeezed(p) => {
                            buf.push(SQUEEZED);
                            put_bytes(&mut buf, p);
                        }
                        Single::Delta(p) => {
                            buf.push(DELTA);
                            put_bytes(&mut buf, p);
                        }
                    }
                }
            }
        }
        w.write_all(&buf).map_err(spool_err)
    }

    /// Switches from writing to reading from the start.
    pub fn rewind(&mut self) -> Result<()> {
        let w = self.out.take().expect("spool being written");
        let mut file = w.into_inner().map_err(|e| spool_err(e.into_error()))?;
        file.rewind().map_err(spool_err)?;
        self.input = Some(BufReader::with_capacity(1 << 20, file));
        Ok(())
    }

    /// The next item, with the BLAKE3 recorded for each stored chunk.
    pub fn next(&mut self) -> Result<(Encoded, Vec<[u8; 32]>)> {
        let r = self.input.as_mut().expect("spool being read");
        let mut stored = Vec::new();
        let item = match byte(r)? {
            GROUP => {
                let lens = get_u32s(r)?;
                let digest = array(r)?;
                let frame = get_bytes(r)?;
                Encoded::Group(GroupOut {
                    lens,
                    digest,
                    refs: Vec::new(),
                    // Spooled packs are cut into volumes: no prefixes.
                    prefix: 0,
                    frame,
                })
            }
            SINGLES => {
                let n = u32::from_le_bytes(array(r)?);
                let mut singles = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    singles.push(match byte(r)? {
                        STORED => {
                            stored.push(array(r)?);
                            Single::Stored
                        }
                        SQUEEZED => Single::Squeezed(get_bytes(r)?),
                        DELTA => Single::Delta(get_bytes(r)?),
                        k => return Err(damaged(k)),
                    });
                }
                Encoded::Singles(singles)
            }
            k => return Err(damaged(k)),
        };
        Ok((item, stored))
    }
}

fn put_u32s(buf: &mut Vec<u8>, v: &[u32]) {
    buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
    for x in v {
        buf.extend_from_slice(&x.to_le_bytes());
    }
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
    buf.extend_from_slice(b);
}

fn byte(r: &mut impl Read) -> Result<u8> {
    Ok(array::<1>(r)?[0])
}

fn array<const N: usize>(r: &mut impl Read) -> Result<[u8; N]> {
    let mut a = [0u8; N];
    r.read_exact(&mut a).map_err(spool_err)?;
    Ok(a)
}

fn get_u32s(r: &mut impl Read) -> Result<Vec<u32>> {
    let n = u32::from_le_bytes(array(r)?);
    (0..n).map(|_| Ok(u32::from_le_bytes(array(r)?))).collect()
}

fn get_bytes(r: &mut impl Read) -> Result<Vec<u8>> {
    let n = u64::from_le_bytes(array(r)?);
    let mut b = vec![0u8; n as usize];
    r.read_exact(&mut b).map_err(spool_err)?;
    Ok(b)
}

fn spool_err(e: std::io::Error) -> Error {
    Error::Invalid(format!(
        "the temporary file that plans volumes failed: {e}; set TMPDIR to a directory with room"
    ))
}

fn damaged(kind: u8) -> Error {
    Error::Invalid(format!(
        "the temporary file that plans volumes holds an unknown item ({kind}): the temporary directory is not reliable; set TMPDIR elsewhere"
    ))
}
