//! Tar-header deltas: a piece of a snapshot's headers stream, compressed
//! against the old headers after each tar header's time and checksum are
//! turned into what the old header of the same file holds there when they
//! changed as predicted. A rebuilt layer's headers usually differ from the
//! old ones only in their modification time and the checksum derived from
//! it, so the piece then reads like the old headers and compresses to
//! almost nothing against them.
//!
//! The frame is exact for any bytes: both fields are carried as an XOR
//! with their prediction, so a wrong prediction costs bytes, never
//! correctness. docs/FORMAT.md ("Header-delta frames") is the spec.

use std::collections::HashMap;
use std::ops::Range;

/// First byte of a header-delta frame (a zstd frame starts with 0x28).
pub const MARK: u8 = 0x01;
/// A tar record.
const RECORD: usize = 512;
const MTIME: Range<usize> = 136..148;
const CHKSUM: Range<usize> = 148..156;
const MAGIC: Range<usize> = 257..262;
/// Fewer headers with an old version than this: a plain delta frame does
/// as well.
const MIN_MATCHED: usize = 4;

/// The checksum field a tar writer puts in `rec`: the unsigned sum of its
/// bytes with the field read as spaces, in octal. Laid out as in `old`:
/// seven digits and NUL when `old`'s field ends in NUL (Rust's tar crate),
/// else six digits, NUL and space (GNU tar, Go, Python).
fn checksum_field(rec: &[u8], old: &[u8]) -> [u8; 8] {
    let sum: u32 = rec
        .iter()
        .enumerate()
        .map(|(i, &b)| if CHKSUM.contains(&i) { 32 } else { b as u32 })
        .sum();
    let digits = if old[CHKSUM.end - 1] == 0 { 7 } else { 6 };
    let mut f = [0, 0, 0, 0, 0, 0, 0, b' '];
    f[digits] = 0;
    // 512 · 255 < 8^6: six digits always suffice.
    for (i, d) in f[..digits].iter_mut().rev().enumerate() {
        *d = b'0' + ((sum >> (3 * i)) & 7) as u8;
    }
    f
}

/// Start of every tar header in `bytes`: each record holding `ustar` at
/// offset 257, in order, skipping any that overlaps the one before.
fn header_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut free = 0;
    for at in memchr::memmem::find_iter(bytes, b"ustar") {
        let Some(start) = at.checked_sub(MAGIC.start) else {
            continue;
        };
        if start >= free && start + RECORD <= bytes.len() {
            starts.push(start);
            free = start + RECORD;
        }
    }
    starts
}

/// What names a header's file: its name field and its type flag.
fn key(rec: &[u8]) -> (&[u8], u8) {
    (&rec[..100], rec[156])
}

/// The old headers of a base by file name, each name's offsets in order.
struct Old<'a> {
    base: &'a [u8],
    by_name: HashMap<(&'a [u8], u8), Vec<usize>>,
}

impl<'a> Old<'a> {
    fn new(base: &'a [u8]) -> Self {
        let mut by_name: HashMap<(&[u8], u8), Vec<usize>> = HashMap::new();
        for start in header_starts(base) {
            let rec = &base[start..start + RECORD];
            by_name.entry(key(rec)).or_default().push(start);
        }
        Old { base, by_name }
    }

    /// Where the old header of the file `rec` names starts: the first at
    /// or after `predicted` (where the old stream is if it runs in step
    /// with the new one), else the last before it.
    fn of(&self, rec: &[u8], predicted: usize) -> Option<usize> {
        let at = self.by_name.get(&key(rec))?;
        let i = at.partition_point(|&o| o < predicted);
        Some(at.get(i).copied().unwrap_or(at[at.len() - 1]))
    }
}

/// Walks the headers of `piece` that have an old version in `old`, in
/// order, handing each to `turn` with its old header and the time of the
/// header before (the old header's own time for the first). Returns how
/// many there were. The walk reads only bytes that turning leaves alone
/// (magic, name, type flag), so it finds the same headers both ways.
fn walk(
    old: &Old<'_>,
    piece: &mut [u8],
    mut turn: impl FnMut(&mut [u8], &[u8], &[u8]) -> [u8; 12],
) -> usize {
    let (mut matched, mut last, mut time) = (0, None::<(usize, usize)>, None::<[u8; 12]>);
    for p in header_starts(piece) {
        let predicted = last.map_or(0, |(lp, lo)| lo + (p - lp));
        let Some(at) = old.of(&piece[p..p + RECORD], predicted) else {
            continue;
        };
        let o = &old.base[at..at + RECORD];
        let before = time.unwrap_or_else(|| o[MTIME].try_into().expect("12 bytes"));
        time = Some(turn(&mut piece[p..p + RECORD], o, &before));
        last = Some((p, at));
        matched += 1;
    }
    matched
}

/// Turns a new header into what is compressed: its time XOR the time
/// before XOR the old time, its checksum XOR the derived one XOR the old
/// one. Returns the new time.
fn forward(rec: &mut [u8], old: &[u8], before: &[u8]) -> [u8; 12] {
    let time: [u8; 12] = rec[MTIME].try_into().expect("12 bytes");
    let derived = checksum_field(rec, old);
    for i in MTIME {
        rec[i] ^= before[i - MTIME.start] ^ old[i];
    }
    for i in CHKSUM {
        rec[i] ^= derived[i - CHKSUM.start] ^ old[i];
    }
    time
}

/// Undoes [`forward`]: the time first, since the derived checksum sums it.
fn backward(rec: &mut [u8], old: &[u8], before: &[u8]) -> [u8; 12] {
    for i in MTIME {
        rec[i] ^= before[i - MTIME.start] ^ old[i];
    }
    // The checksum field does not count in the sum it holds.
    let derived = checksum_field(rec, old);
    for i in CHKSUM {
        rec[i] ^= derived[i - CHKSUM.start] ^ old[i];
    }
    rec[MTIME].try_into().expect("12 bytes")
}

/// `data` (a piece of a headers stream) as a header-delta frame against
/// `base` (the old headers' bytes), or `None` when too few of its headers
/// have an old version there.
pub fn encode(base: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let old = Old::new(base);
    let mut turned = data.to_vec();
    if walk(&old, &mut turned, forward) < MIN_MATCHED {
        return None;
    }
    let mut out = vec![MARK];
    out.extend_from_slice(&crate::similarity::encode(base, &turned));
    // A turned field that happens to spell `ustar` where the walk looks
    // would lead the reader astray: such a piece goes as a plain delta.
    (decode(base, &out, data.len()).as_deref() == Ok(data)).then_some(out)
}

/// Rebuilds exactly `len` bytes from a frame made by [`encode`] against
/// the same `base`; anything else is an error.
pub fn decode(base: &[u8], payload: &[u8], len: usize) -> Result<Vec<u8>, String> {
    let Some((&MARK, frame)) = payload.split_first() else {
        return Err("header-delta frame: wrong mark".into());
    };
    let mut out = crate::similarity::decode(base, frame, len)?;
    walk(&Old::new(base), &mut out, backward);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A headers stream as tar splitting makes one: each file's ustar
    /// header and padding, and before every seventh a PAX header and its
    /// data block.
    fn headers(files: &[(String, u64)], mtime: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (name, size)) in files.iter().enumerate() {
            if i % 7 == 0 {
                let mut pax = tar::Header::new_ustar();
                pax.set_path(format!("PaxHeaders.0/{name}")).unwrap();
                pax.set_entry_type(tar::EntryType::XHeader);
                pax.set_size(512);
                pax.set_mtime(mtime);
                pax.set_cksum();
                out.extend_from_slice(pax.as_bytes());
                let mut data = format!("40 path=usr/lib/node_modules/{name}\n").into_bytes();
                data.resize(512, 0);
                out.extend_from_slice(&data);
            }
            let mut h = tar::Header::new_ustar();
            h.set_path(name).unwrap();
            h.set_size(*size);
            h.set_mode(0o644);
            h.set_mtime(mtime);
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            // The padding after the file's contents, which tar splitting
            // keeps with the headers.
            out.resize(out.len() + (512 - *size as usize % 512) % 512, 0);
        }
        out
    }

    fn files(n: usize) -> Vec<(String, u64)> {
        (0..n)
            .map(|i| {
                (
                    format!("app/pkg{}/lib/file{i}.js", i % 13),
                    100 + 37 * i as u64,
                )
            })
            .collect()
    }

    /// A rebuild: every time moves, one file grows, one is new, one gone;
    /// each side cut off the record grid, as chunks are.
    fn rebuilt() -> (Vec<u8>, Vec<u8>) {
        let old_files = files(300);
        let mut new_files = old_files.clone();
        new_files[40].1 += 1000;
        new_files.insert(120, ("app/NEW.js".into(), 5));
        new_files.remove(200);
        let old = headers(&old_files, 1_700_000_000);
        let new = headers(&new_files, 1_700_003_600);
        (
            old[700..old.len() - 100].to_vec(),
            new[1000..new.len() - 300].to_vec(),
        )
    }

    #[test]
    fn rebuilt_headers_cost_a_fraction_of_a_plain_delta_and_come_back_exact() {
        let (base, data) = rebuilt();
        let plain = crate::similarity::encode(&base, &data);
        let frame = encode(&base, &data).expect("headers matched");
        assert_eq!(frame[0], MARK);
        assert_eq!(decode(&base, &frame, data.len()).unwrap(), data);
        assert!(
            frame.len() * 3 < plain.len(),
            "header delta {} bytes, plain delta {}",
            frame.len(),
            plain.len()
        );
    }

    #[test]
    fn headers_whose_checksum_or_layout_is_unusual_still_come_back_exact() {
        let (base, mut data) = rebuilt();
        // A signed checksum, a checksum with spaces first, a v7 header
        // (no magic) and garbage where a data block was.
        let first = header_starts(&data)[0];
        data[first + 148..first + 156].copy_from_slice(b" 012345 ");
        data[first + 512 * 3 + 257..first + 512 * 3 + 262].copy_from_slice(b"\0\0\0\0\0");
        data[first + 512 * 9 + 5] ^= 0x55;
        let frame = encode(&base, &data).expect("headers matched");
        assert_eq!(decode(&base, &frame, data.len()).unwrap(), data);
    }

    #[test]
    fn bytes_that_are_not_tar_headers_are_left_to_plain_deltas() {
        let text: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        assert!(encode(&text[..50_000], &text[50_000..]).is_none());
        let (base, _) = rebuilt();
        assert!(encode(&text, &base).is_none(), "no old headers to match");
    }

    #[test]
    fn a_damaged_frame_or_other_bases_are_refused_without_panic() {
        let (base, data) = rebuilt();
        let frame = encode(&base, &data).unwrap();
        for cut in [0, 1, 2, frame.len() / 2, frame.len() - 1] {
            assert!(
                decode(&base, &frame[..cut], data.len()).is_err(),
                "cut {cut}"
            );
        }
        assert!(decode(&base, &frame, data.len() + 1).is_err());
        assert!(decode(&base[..base.len() / 2], &frame, data.len()).is_err());
        let mut wrong = frame.clone();
        wrong[0] = 0x28; // not the mark
        assert!(decode(&base, &wrong, data.len()).is_err());
        for i in 2..frame.len().min(64) {
            let mut flipped = frame.clone();
            flipped[i] ^= 0x10;
            // Either refused or some bytes of the right length (which the
            // chunk id check then refuses).
            if let Ok(out) = decode(&base, &flipped, data.len()) {
                assert_eq!(out.len(), data.len());
            }
        }
    }

    #[test]
    fn the_derived_checksum_is_what_tar_writers_write() {
        let mut h = tar::Header::new_ustar();
        h.set_path("etc/os-release").unwrap();
        h.set_size(42);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        let rust = h.as_bytes();
        assert_eq!(&checksum_field(rust, rust), &rust[CHKSUM]);
        // GNU tar, Go and Python: six digits, NUL, space.
        let mut gnu = *rust;
        gnu[CHKSUM].copy_from_slice(b"0000000 ");
        let field = checksum_field(&gnu, &gnu);
        assert_eq!(&field[..6], &rust[CHKSUM.start + 1..CHKSUM.start + 7]);
        assert_eq!(&field[6..], b"\0 ");
    }
}
