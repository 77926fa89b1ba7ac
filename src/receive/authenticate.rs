//! Signature first: a store that trusts keys takes nothing from a pack
//! until the pack's signature has been checked. A pack file is read once
//! through to its signature before the import reads it again; a pack on a
//! pipe is copied, as it is checked, to a temporary file beside the store
//! (unlinked from the start, so nothing stays behind whatever happens),
//! and the import reads that copy. Either way no chunk reaches the data
//! files or the index before the signature holds, so not even a killed
//! unpack leaves anything of a forged pack.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::Path;

use crate::counting::Counting;
use crate::error::{Error, IoContext, Result};
use crate::pack::PackReader;
use crate::progress::Progress;
use crate::store::Store;

use super::{accept, bad};

/// True when the store accepts only signed packs (some key is trusted).
pub(super) fn needed(store: &Store) -> Result<bool> {
    Ok(!crate::keys::trusted(store)?.is_empty())
}

/// Reads the whole pack (of `total` bytes, when known) without writing
/// anything: its header (checked against the trust list and the store),
/// then every record up to the trailer and the signature, which must
/// verify.
pub(super) fn check<R: Read>(
    store: &Store,
    input: R,
    total: Option<u64>,
    label: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let mut reader = PackReader::new(Counting::new(input)).map_err(|e| bad(label, e))?;
    accept::check_header(store, reader.header(), label)?;
    progress.start("checking the signature", total);
    let mut seen = 0;
    while reader.next_record().map_err(|e| bad(label, e))?.is_some() {
        let n = reader.get_ref().count();
        progress.advance(n - seen);
        seen = n;
    }
    progress.finish();
    Ok(())
}

/// Checks a pack read from a pipe as [`check`] does, copying it to a
/// temporary file in the store's directory; returns that file, rewound,
/// once the signature verified.
pub(super) fn spool<R: Read>(
    store: &Store,
    input: R,
    label: &Path,
    progress: &dyn Progress,
) -> Result<File> {
    let dir = store.dir();
    let what = || format!("copying the pack to a temporary file in {}", dir.display());
    let mut file = tempfile::tempfile_in(dir).ctx(what)?;
    let mut tee = Tee {
        input,
        out: BufWriter::with_capacity(1 << 20, &file),
        failed: None,
    };
    let checked = check(store, &mut tee, None, label, progress);
    if let Some(e) = tee.failed.take() {
        return Err(Error::io(what(), e));
    }
    checked?;
    tee.out.flush().ctx(what)?;
    drop(tee);
    file.rewind().ctx(what)?;
    Ok(file)
}

/// A reader that copies what it reads to `out`; a failed copy ends the
/// reading, and is kept in `failed` (so that a full disk is reported as
/// such, not as a damaged pack).
struct Tee<'a, R> {
    input: R,
    out: BufWriter<&'a File>,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            self.failed = Some(e);
            return Err(io::Error::other("the temporary copy of the pack failed"));
        }
        Ok(n)
    }
}
