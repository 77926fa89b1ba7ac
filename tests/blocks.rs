//! Solid blocks: full packs carry the chunks that go whole as runs
//! compressed together, at the level `pack --level` asks for; they unpack
//! byte-exact, volumes hold whole blocks, and a damaged block is refused
//! with the store left as it was.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The records of a pack: (type, frame start, payload length).
fn records(pack: &[u8]) -> Vec<(u8, usize, usize)> {
    assert_eq!(&pack[..8], b"FERRYPAK");
    let mut out = Vec::new();
    let mut at = 12;
    while at < pack.len() {
        let n = u32::from_le_bytes(pack[at + 1..at + 5].try_into().unwrap()) as usize;
        out.push((pack[at], at, n));
        at += 5 + n;
    }
    out
}

const BLOCK: u8 = 6;
const CHUNK: u8 = 2;

/// A store holding app:1 (an image of compressible text and binary files).
fn store(dir: &Path) -> (PathBuf, PathBuf) {
    let a = dir.join("a");
    let archive = image(dir, "v1.tar", "app:1", 1);
    ok(ferry(&a).arg("add").arg(&archive));
    (a, archive)
}

fn checkout_hash(store: &Path, name: &str) -> blake3::Hash {
    let out = run(ferry(store).args(["checkout", name, "-o", "-"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    blake3::hash(&out.stdout)
}

#[test]
fn each_level_packs_solid_blocks_smaller_as_it_rises_and_unpacks_byte_exact() {
    let t = tempfile::tempdir().unwrap();
    let (a, archive) = store(t.path());
    let want = blake3::hash(&std::fs::read(&archive).unwrap());
    let data_bytes: u64 = std::fs::read_dir(a.join("data"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let mut sizes = Vec::new();
    for level in ["fast", "default", "max"] {
        let p = t.path().join(format!("{level}.ferry"));
        ok(ferry(&a)
            .args(["pack", "app:1", "--level", level, "-o"])
            .arg(&p));
        let bytes = std::fs::read(&p).unwrap();
        // On these files level 3 gains too little over the store's level 1
        // for a block to pay; the higher levels use blocks.
        if level != "fast" {
            let recs = records(&bytes);
            assert!(recs.iter().any(|r| r.0 == BLOCK), "{level}: no solid block");
            let info: serde_json::Value =
                serde_json::from_str(&ok(ferry(&a).args(["inspect", "--json"]).arg(&p))).unwrap();
            let chunks = &info[0]["chunks"];
            assert!(chunks["blocks"].as_u64().unwrap() >= 1, "{info}");
            assert!(chunks["blocked"].as_u64().unwrap() > 10, "{level}: {info}");
            let text = ok(ferry(&a).arg("inspect").arg(&p));
            assert!(text.contains("solid block"), "{text}");
        }
        let b = t.path().join(format!("b-{level}"));
        ok(ferry(&b).arg("unpack").arg(&p));
        assert_eq!(checkout_hash(&b, "app:1"), want, "{level}");
        ok(ferry(&b).args(["verify", "--full"]));
        sizes.push(bytes.len() as u64);
    }
    // Compressing across chunks beats the store's chunk-by-chunk level 1;
    // each level is at least as small as the one below it.
    assert!(
        sizes[1] < data_bytes,
        "default {} vs store {data_bytes}",
        sizes[1]
    );
    assert!(sizes[1] < sizes[0], "{sizes:?}");
    assert!(sizes[2] <= sizes[1], "{sizes:?}");
}

/// `n` bytes of text-like lines (compressible, as source files are).
fn text(seed: u64, n: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "import", "layer", "return", "self", "value", "config", "for", "in", "range", "def",
        "chunk", "None",
    ];
    let picks = random_bytes(seed, n);
    let mut out = Vec::with_capacity(n + 16);
    for (k, &b) in picks.iter().enumerate() {
        if out.len() >= n {
            break;
        }
        out.extend_from_slice(WORDS[b as usize % WORDS.len()].as_bytes());
        out.push(if k % 9 == 8 { b'\n' } else { b' ' });
    }
    out.truncate(n);
    out
}

#[test]
fn a_full_pack_finds_a_near_copy_in_its_block_instead_of_sending_a_delta() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    // Two near copies of 1.5 MB of text, one byte in 9,000 changed in the
    // second (so no chunk of it is shared), nothing at the receiver.
    let one = text(31, 1_500_000);
    let mut two = one.clone();
    for i in (0..two.len()).step_by(9000) {
        two[i] ^= 0x20;
    }
    let input = write(t.path(), "pair.txt", &[one, two].concat());
    ok(ferry(&a).arg("add").arg(&input));
    let stored: u64 = std::fs::read_dir(a.join("data"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let p = t.path().join("pair.ferry");
    let r: serde_json::Value = serde_json::from_str(&ok(ferry(&a)
        .args(["pack", "pair.txt", "--json", "-o"])
        .arg(&p)))
    .unwrap();
    assert_eq!(r["delta_chunks"], 0, "{r}");
    assert!(r["blocks"].as_u64().unwrap() >= 1, "{r}");
    // The store keeps each chunk compressed alone; the block finds much
    // of the second copy in the first.
    assert!(
        r["pack_bytes"].as_u64().unwrap() < stored * 8 / 10,
        "{r} vs {stored}"
    );
    let b = t.path().join("b");
    ok(ferry(&b).arg("unpack").arg(&p));
    let out = run(ferry(&b).args(["checkout", "pair.txt", "-o", "-"]));
    assert!(out.stdout == std::fs::read(&input).unwrap());
}

#[test]
fn volumes_hold_whole_blocks_and_unpack_in_any_order() {
    let t = tempfile::tempdir().unwrap();
    let (a, archive) = store(t.path());
    let want = blake3::hash(&std::fs::read(&archive).unwrap());
    std::fs::create_dir(t.path().join("usb")).unwrap();
    let out = t.path().join("usb/full.ferry");
    ok(ferry(&a)
        .args(["pack", "app:1", "--volume-size", "1M", "-o"])
        .arg(&out));
    let mut vols: Vec<PathBuf> = std::fs::read_dir(t.path().join("usb"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    vols.sort();
    assert!(vols.len() >= 3, "{vols:?}");
    let mut blocks = 0;
    for v in &vols {
        let bytes = std::fs::read(v).unwrap();
        assert!(bytes.len() <= 1 << 20, "{}", v.display());
        // Every record lies inside its volume (no block straddles two).
        let recs = records(&bytes);
        let (_, at, n) = *recs.last().unwrap();
        assert_eq!(recs[0].0, 1);
        assert!(at + 5 + n <= bytes.len());
        blocks += recs.iter().filter(|r| r.0 == BLOCK).count();
    }
    assert!(
        blocks >= vols.len(),
        "{blocks} blocks in {} volumes",
        vols.len()
    );
    let b = t.path().join("b");
    vols.reverse();
    for v in &vols {
        ok(ferry(&b).arg("unpack").arg(v));
    }
    assert_eq!(checkout_hash(&b, "app:1"), want);
    ok(ferry(&b).args(["verify", "--full"]));
}

/// Recomputes a pack's trailer digest after an edit, as a forger can, so
/// only the block's own checks can tell.
fn redigest(pack: &mut [u8]) {
    let (kind, at, n) = *records(pack).last().unwrap();
    assert_eq!((kind, n), (0xFF, 48));
    let digest = *blake3::hash(&pack[..at]).as_bytes();
    pack[at + 5 + 16..at + 5 + 48].copy_from_slice(&digest);
}

#[test]
fn a_damaged_block_is_refused_and_the_store_is_left_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    let (a, _) = store(t.path());
    let p = t.path().join("full.ferry");
    ok(ferry(&a).args(["pack", "app:1", "-o"]).arg(&p));
    let pack = std::fs::read(&p).unwrap();
    let (_, at, n) = *records(&pack)
        .iter()
        .find(|r| r.0 == BLOCK)
        .expect("a solid block");
    // The block's fields: count, lengths (varints), digest, prefix, then
    // the frame.
    let (prefix, k) = block_prefix(&pack[at + 5..at + 5 + n]);
    assert_eq!(prefix, 0, "a default-level block has no prefix");
    let digest_at = at + 5 + k - 32;
    let frame_at = at + 5 + k + 1;
    let b = t.path().join("b");
    ok(ferry(&b)
        .arg("add")
        .arg(write(t.path(), "other.bin", &random_bytes(5, 100_000))));

    // A byte of the frame flipped: it decodes wrong or not at all.
    let mut bad = pack.clone();
    bad[frame_at + (at + 5 + n - frame_at) / 2] ^= 0x20;
    redigest(&mut bad);
    let f = write(t.path(), "frame.ferry", &bad);
    unpack_refused(&b, &f, &["pack is corrupt", "solid block"]);

    // The digest changed: the frame decodes, its chunks do not match.
    let mut bad = pack.clone();
    bad[digest_at] ^= 0x01;
    redigest(&mut bad);
    let f = write(t.path(), "digest.ferry", &bad);
    unpack_refused(
        &b,
        &f,
        &[
            "pack is corrupt",
            "solid block",
            "does not match its digest",
        ],
    );

    // Cut inside the block: truncated.
    let f = write(t.path(), "cut.ferry", &pack[..frame_at + 100]);
    unpack_refused(&b, &f, &["pack is truncated"]);
    ok(ferry(&b).args(["verify", "--full"]));
}

/// The LEB128 varint at `payload[*k..]`; `*k` moves past it.
fn varint(payload: &[u8], k: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = payload[*k];
        *k += 1;
        v |= ((b & 0x7F) as u64) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// A block record's prefix (format 9) and where it starts in the payload,
/// after the chunk count, the lengths and the digest.
fn block_prefix(payload: &[u8]) -> (u64, usize) {
    let mut k = 0;
    for _ in 0..varint(payload, &mut k) {
        varint(payload, &mut k);
    }
    k += 32;
    let at = k;
    (varint(payload, &mut k), at)
}

#[test]
fn at_max_a_block_continues_the_one_before_and_is_refused_without_it() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    // 60 MB of text: more than one max-level block, no chunk shared.
    let input = write(t.path(), "big.txt", &text(77, 60 << 20));
    ok(ferry(&a).arg("add").arg(&input));
    let p = t.path().join("max.ferry");
    ok(ferry(&a)
        .args(["pack", "big.txt", "--level", "max", "-o"])
        .arg(&p));
    let pack = std::fs::read(&p).unwrap();
    let blocks: Vec<(usize, usize)> = records(&pack)
        .iter()
        .filter(|r| r.0 == BLOCK)
        .map(|r| (r.1, r.2))
        .collect();
    assert!(blocks.len() >= 2, "{blocks:?}");
    let prefixes: Vec<u64> = blocks
        .iter()
        .map(|&(at, n)| block_prefix(&pack[at + 5..at + 5 + n]).0)
        .collect();
    assert_eq!(prefixes[0], 0);
    assert!(prefixes[1..].iter().all(|&p| p > 0), "{prefixes:?}");
    let b = t.path().join("b");
    ok(ferry(&b).arg("unpack").arg(&p));
    let out = run(ferry(&b).args(["checkout", "big.txt", "-o", "-"]));
    assert!(out.stdout == std::fs::read(&input).unwrap());

    let c = t.path().join("c");
    ok(ferry(&c)
        .arg("add")
        .arg(write(t.path(), "other.bin", &random_bytes(5, 100_000))));
    // The block before the second one taken out: the second has nothing
    // to continue.
    let (first, n) = blocks[0];
    let mut cut = pack[..first].to_vec();
    cut.extend_from_slice(&pack[first + 5 + n..]);
    redigest(&mut cut);
    let f = write(t.path(), "cut.ferry", &cut);
    unpack_refused(
        &c,
        &f,
        &["pack is corrupt", "solid block", "not right before it"],
    );
    // A prefix of another length: the frame does not decode to its chunks.
    let (second, n) = blocks[1];
    let (prefix, at) = block_prefix(&pack[second + 5..second + 5 + n]);
    assert_eq!(prefix, 8 << 20, "the 4-byte varint edited below");
    let mut bad = pack.clone();
    bad[second + 5 + at + 3] = 0x02;
    redigest(&mut bad);
    let f = write(t.path(), "prefix.ferry", &bad);
    unpack_refused(&c, &f, &["pack is corrupt", "solid block"]);
    ok(ferry(&c).args(["verify", "--full"]));
}

/// A tar of `rough` files (each 5,000 random bytes three times: zstd
/// shrinks it alone as much as among others), then `alike` files of one
/// 4 KiB pattern at their own phase (shrinking far more together).
fn rough_then_alike(rough: usize, alike: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: String, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        b.append_data(&mut h, name, data).unwrap();
    };
    for i in 0..rough {
        add(
            format!("rough/{i:05}"),
            &random_bytes(1000 + i as u64, 5000).repeat(3),
        );
    }
    let pattern = random_bytes(7, 4096).repeat(17);
    for i in 0..alike {
        let phase = i * 37 % 4096;
        let mut data = format!("file {i}\n").into_bytes();
        data.extend_from_slice(&pattern[phase..phase + 64_000]);
        add(format!("alike/{i:03}"), &data);
    }
    b.into_inner().unwrap()
}

#[test]
fn at_max_a_block_after_chunk_records_is_compressed_alone() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    // Over one max-level block of chunks that go whole: cut into two
    // blocks, the first all rough files. That one saves too little as a
    // block and goes as chunk records, so the second, compressed after
    // its end, has to be compressed again without it.
    let input = write(t.path(), "mix.tar", &rough_then_alike(1700, 420));
    ok(ferry(&a).arg("add").arg(&input));
    let p = t.path().join("max.ferry");
    ok(ferry(&a)
        .args(["pack", "mix.tar", "--level", "max", "-o"])
        .arg(&p));
    let pack = std::fs::read(&p).unwrap();
    let recs = records(&pack);
    let blocks: Vec<usize> = (0..recs.len()).filter(|&k| recs[k].0 == BLOCK).collect();
    assert_eq!(blocks.len(), 1, "the rough half went as chunk records");
    let chunks_before = recs[..blocks[0]].iter().filter(|r| r.0 == CHUNK).count();
    assert!(chunks_before >= 1700, "{chunks_before} chunk records first");
    let (_, at, n) = recs[blocks[0]];
    assert_eq!(block_prefix(&pack[at + 5..at + 5 + n]).0, 0);
    let b = t.path().join("b");
    ok(ferry(&b).arg("unpack").arg(&p));
    let out = run(ferry(&b).args(["checkout", "mix.tar", "-o", "-"]));
    assert!(out.stdout == std::fs::read(&input).unwrap());
    ok(ferry(&b).args(["verify", "--full"]));
}
