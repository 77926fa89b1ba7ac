//! Tar-header deltas: a piece of a snapshot's headers stream, sent as the
//! difference of each 512-byte record from the old record of the same file.
//! A rebuilt layer's headers usually differ from the old ones only in their
//! modification time and the checksum derived from it; here the time is
//! taken from the header before and the checksum is derived, so such a
//! header leaves 512 zero bytes and costs almost nothing once compressed.
//!
//! The frame is exact for any bytes: every field is carried as an XOR
//! against what the reader predicts, so a wrong prediction costs bytes,
//! never correctness. docs/FORMAT.md ("Header-delta frames") is the spec.

use std::collections::HashMap;
use std::ops::Range;

use crate::varint;

/// First byte of a header-delta frame (a zstd frame starts with 0x28).
pub const MARK: u8 = 0x01;
/// A tar record.
const RECORD: usize = 512;
const MTIME: Range<usize> = 136..148;
const CHKSUM: Range<usize> = 148..156;
const MAGIC: Range<usize> = 257..262;
/// Fewer matched headers than this: a plain delta frame does as well.
const MIN_MATCHED: usize = 4;
/// A record that is not a header is taken against the old record after
/// the last one matched when at most this many of its bytes differ.
const NEAR: usize = 32;

/// True when `rec` holds the ustar magic (POSIX `ustar\0` or GNU `ustar `):
/// its time and checksum fields are then predicted.
fn is_header(rec: &[u8]) -> bool {
    &rec[MAGIC] == b"ustar"
}

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

/// What a record is XORed with: the old record, with the time of the last
/// header before it (if any) when the old record is a header.
fn prediction(old: &[u8], mtime: &Option<[u8; 12]>) -> ([u8; RECORD], bool) {
    let mut p = [0u8; RECORD];
    p.copy_from_slice(old);
    let header = is_header(old);
    if let (true, Some(m)) = (header, mtime) {
        p[MTIME].copy_from_slice(m);
    }
    (p, header)
}

/// Turns the new record `rec` into its difference from `old`, in place.
fn forward(rec: &mut [u8], old: &[u8], mtime: &mut Option<[u8; 12]>) {
    let (p, header) = prediction(old, mtime);
    let derived = checksum_field(rec, old);
    let new_time: [u8; 12] = rec[MTIME].try_into().expect("12 bytes");
    for (b, q) in rec.iter_mut().zip(p) {
        *b ^= q;
    }
    if header {
        for (i, d) in CHKSUM.zip(derived) {
            rec[i] ^= p[i] ^ d;
        }
        *mtime = Some(new_time);
    }
}

/// Undoes [`forward`] in place.
fn backward(rec: &mut [u8], old: &[u8], mtime: &mut Option<[u8; 12]>) {
    let (p, header) = prediction(old, mtime);
    let carried: [u8; 8] = rec[CHKSUM].try_into().expect("8 bytes");
    for (b, q) in rec.iter_mut().zip(p) {
        *b ^= q;
    }
    if header {
        // The checksum field does not count in the sum it holds.
        let derived = checksum_field(rec, old);
        for (k, i) in CHKSUM.enumerate() {
            rec[i] = carried[k] ^ derived[k];
        }
        *mtime = Some(rec[MTIME].try_into().expect("12 bytes"));
    }
}

/// Old headers by file name and type, each name's offsets in order.
fn old_headers(base: &[u8]) -> HashMap<Vec<u8>, Vec<usize>> {
    let mut map: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for start in header_starts(base) {
        map.entry(key(&base[start..start + RECORD]))
            .or_default()
            .push(start);
    }
    map
}

/// What names a header's file: its name field and its type flag.
fn key(rec: &[u8]) -> Vec<u8> {
    [&rec[..100], &rec[156..157]].concat()
}

/// Start of every tar header in `bytes`, in order, none overlapping.
fn header_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut free = 0;
    for at in memchr::memmem::find_iter(bytes, b"ustar") {
        let Some(start) = at.checked_sub(MAGIC.start) else {
            continue;
        };
        if start >= free
            && start + RECORD <= bytes.len()
            && crate::archive::split::is_tar_header(&bytes[start..start + RECORD])
        {
            starts.push(start);
            free = start + RECORD;
        }
    }
    starts
}

/// The old record to take the new header `rec` against: the old header of
/// the same name nearest at or after `predicted` (where the old stream is
/// if it runs in step with the new one), else the last one before it.
fn old_header_of(
    rec: &[u8],
    old: &HashMap<Vec<u8>, Vec<usize>>,
    predicted: Option<usize>,
) -> Option<usize> {
    let at = old.get(&key(rec))?;
    let i = at.partition_point(|&o| o < predicted.unwrap_or(0));
    Some(at.get(i).copied().unwrap_or(at[at.len() - 1]))
}

/// True when the record at `old` in `base` differs from `rec` in at most
/// [`NEAR`] bytes.
fn near(rec: &[u8], base: &[u8], old: usize) -> bool {
    old + RECORD <= base.len()
        && rec
            .iter()
            .zip(&base[old..old + RECORD])
            .filter(|(a, b)| a != b)
            .count()
            <= NEAR
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// The records of `data` taken against old ones: (new start, old start),
/// in order, none overlapping. Each tar header goes against the old header
/// of its name; a record right after one taken (a PAX or long-name block)
/// goes against the old record right after that one when nearly equal.
fn pairs(base: &[u8], data: &[u8]) -> Vec<(usize, usize)> {
    let old = old_headers(base);
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut headers = header_starts(data).into_iter().peekable();
    loop {
        let last = pairs.last().copied();
        let next_header = headers.peek().copied();
        // A continuation must end before the next header starts.
        let room = next_header.unwrap_or(data.len());
        if let Some((p, o)) = last
            && p + 2 * RECORD <= room
            && near(&data[p + RECORD..p + 2 * RECORD], base, o + RECORD)
        {
            pairs.push((p + RECORD, o + RECORD));
            continue;
        }
        let Some(h) = headers.next() else {
            return pairs;
        };
        let predicted = last.map(|(p, o)| o + (h - p));
        if let Some(o) = old_header_of(&data[h..h + RECORD], &old, predicted) {
            pairs.push((h, o));
        }
    }
}

/// `data` (a piece of a headers stream) as a header-delta frame against
/// `base` (the old headers' bytes), or `None` when it holds too few
/// headers with an old version there.
pub fn encode(base: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let pairs = pairs(base, data);
    let headers = pairs
        .iter()
        .filter(|&&(_, o)| is_header(&base[o..o + RECORD]))
        .count();
    if headers < MIN_MATCHED {
        return None;
    }
    let mut inner = Vec::with_capacity(12 + 4 * pairs.len() + data.len());
    varint::put(&mut inner, pairs.len() as u64);
    let mut body = data.to_vec();
    let (mut last, mut mtime): (Option<(usize, usize)>, _) = (None, None);
    for &(p, o) in &pairs {
        let (end, predicted) = last.map_or((0, 0), |(lp, lo)| (lp + RECORD, lo + (p - lp)));
        varint::put(&mut inner, (p - end) as u64);
        varint::put(&mut inner, zigzag(o as i64 - predicted as i64));
        forward(&mut body[p..p + RECORD], &base[o..o + RECORD], &mut mtime);
        last = Some((p, o));
    }
    let table_len = inner.len();
    inner.extend_from_slice(&body);
    let mut out = vec![MARK];
    varint::put(&mut out, table_len as u64);
    out.extend_from_slice(&crate::similarity::encode(base, &inner));
    Some(out)
}

/// Most bytes the record table of a `len`-byte piece may take: the count,
/// then two varints per record.
fn max_table(len: usize) -> usize {
    varint::MAX_LEN * (1 + 2 * (len / RECORD))
}

/// Rebuilds exactly `len` bytes from a frame made by [`encode`] against
/// the same `base`; anything else is an error.
pub fn decode(base: &[u8], payload: &[u8], len: usize) -> Result<Vec<u8>, String> {
    let bad = |m: &str| format!("header-delta frame: {m}");
    if payload.first() != Some(&MARK) {
        return Err(bad("wrong mark"));
    }
    let mut at = 1;
    let table_len = varint::get(payload, &mut at).map_err(|_| bad("bad table length"))?;
    if table_len > max_table(len) as u64 {
        return Err(bad("record table too long"));
    }
    let table_len = table_len as usize;
    let inner = crate::similarity::decode(base, &payload[at..], table_len + len)?;
    let (table, body) = inner.split_at(table_len);
    let mut t = 0;
    let mut next = |what: &str| varint::get(table, &mut t).map_err(|_| bad(what));
    let count = next("bad count")?;
    if count > (len / RECORD) as u64 {
        return Err(bad("more records than the piece holds"));
    }
    let mut out = body.to_vec();
    let (mut last, mut mtime): (Option<(usize, usize)>, _) = (None, None);
    for _ in 0..count {
        let gap = next("bad record gap")?;
        let shift = unzigzag(next("bad record offset")?);
        let end = last.map_or(0, |(lp, _)| lp + RECORD) as u64;
        let p = end.saturating_add(gap);
        if p.saturating_add(RECORD as u64) > len as u64 {
            return Err(bad("a record past the end of the piece"));
        }
        let p = p as usize;
        let predicted = last.map_or(0, |(lp, lo)| lo + (p - lp)) as i64;
        let o = predicted
            .checked_add(shift)
            .filter(|&o| o >= 0 && o as usize + RECORD <= base.len())
            .ok_or_else(|| bad("an old record outside the bases"))? as usize;
        backward(&mut out[p..p + RECORD], &base[o..o + RECORD], &mut mtime);
        last = Some((p, o));
    }
    if t != table.len() {
        return Err(bad("record table has bytes left over"));
    }
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
        wrong[1] = 0x7f; // a record table longer than any piece's
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
        assert_eq!(unzigzag(zigzag(-5)), -5);
        assert_eq!(unzigzag(zigzag(i64::MAX)), i64::MAX);
    }
}
