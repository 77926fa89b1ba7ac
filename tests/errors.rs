//! Bad packs get one clear line, a non-zero exit, and a store left exactly
//! as it was (same snapshots, same data file sizes): corrupt, truncated,
//! foreign, forged or inconsistent packs, and packs made for another store.

mod common;

use common::*;
use std::path::Path;

#[test]
fn corrupt_packs_are_refused_at_any_byte() {
    let s = setup();
    let pack = std::fs::read(&s.update).unwrap();
    // Flip one byte at 24 spread positions: preamble, header, chunk
    // records, snapshot record and trailer alike.
    let mut positions: Vec<usize> = (0..24).map(|i| i * (pack.len() - 1) / 23).collect();
    positions.extend([9, 13, 20, pack.len() - 40, pack.len() - 1]);
    for pos in positions {
        let mut bad = pack.clone();
        bad[pos] ^= 0x40;
        let p = write(&s.dir, "bad.ferry", &bad);
        let before = state(&s.offline);
        let out = run(ferry(&s.offline).arg("unpack").arg(&p));
        assert!(
            !out.status.success(),
            "flipped byte {pos} of {} went unnoticed",
            pack.len()
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("bad.ferry"), "{err}");
        assert_eq!(
            state(&s.offline),
            before,
            "store changed after corrupt byte {pos}"
        );
    }
    // The intact pack still goes in afterwards.
    ok(ferry(&s.offline).arg("unpack").arg(&s.update));
}

/// The records of a pack as (type, offset of the payload, payload length),
/// walked by the framing docs/FORMAT.md gives: a 12-byte preamble, then
/// records of a type byte, a little-endian u32 length and the payload.
fn records(pack: &[u8]) -> Vec<(u8, usize, usize)> {
    let mut at = 12;
    let mut v = Vec::new();
    while at < pack.len() {
        let kind = pack[at];
        let len = u32::from_le_bytes(pack[at + 1..at + 5].try_into().unwrap()) as usize;
        v.push((kind, at + 5, len));
        at += 5 + len;
    }
    assert_eq!(at, pack.len(), "records do not add up to the pack");
    v
}

#[test]
fn corrupt_chunk_names_the_chunk_and_trailer_damage_is_caught() {
    let s = setup();
    // Incompressible bytes travel as chunk records (a solid block of them
    // would not pay).
    let a = s.dir.join("random-store");
    ok(ferry(&a)
        .arg("add")
        .arg(write(&s.dir, "random.bin", &random_bytes(9, 3 << 20))));
    let p = s.dir.join("random.ferry");
    ok(ferry(&a).args(["pack", "random.bin", "-o"]).arg(&p));
    let pack = std::fs::read(&p).unwrap();
    // A chunk record (type 2: id, codec, length, payload) from the middle of
    // the pack; damage a byte of its stored bytes.
    let chunks: Vec<(usize, usize)> = records(&pack)
        .into_iter()
        .filter(|&(kind, _, len)| kind == 2 && len > 37 + 100)
        .map(|(_, at, len)| (at, len))
        .collect();
    assert!(chunks.len() > 10, "{} chunk records", chunks.len());
    let (at, len) = chunks[chunks.len() / 2];
    let id = blake3::Hash::from_bytes(pack[at..at + 32].try_into().unwrap()).to_hex();
    let mut bad = pack.clone();
    bad[at + 37 + (len - 37) / 2] ^= 1;
    let fresh = s.dir.join("fresh");
    ok(ferry(&fresh)
        .arg("add")
        .arg(write(&s.dir, "other.bin", &random_bytes(3, 10_000))));
    unpack_refused(
        &fresh,
        &write(&s.dir, "mid.ferry", &bad),
        &["pack is corrupt", &format!("chunk {id}"), "copy it again"],
    );
    let pack = std::fs::read(&s.full).unwrap();
    let mut bad = pack.clone();
    let last = pack.len() - 1;
    bad[last] ^= 1;
    unpack_refused(
        &s.offline,
        &write(&s.dir, "tail.ferry", &bad),
        &["does not match its trailer"],
    );
}

#[test]
fn truncated_packs_are_refused() {
    let s = setup();
    let pack = std::fs::read(&s.update).unwrap();
    for cut in [5, 12, 40, pack.len() / 3, pack.len() - 49, pack.len() - 1] {
        unpack_refused(
            &s.offline,
            &write(&s.dir, "cut.ferry", &pack[..cut]),
            &["truncated"],
        );
    }
    // Extra bytes after the trailer are damage too.
    let mut long = pack.clone();
    long.extend_from_slice(b"junk");
    unpack_refused(
        &s.offline,
        &write(&s.dir, "long.ferry", &long),
        &["after the trailer"],
    );
}

#[test]
fn foreign_files_and_other_versions_are_refused() {
    let s = setup();
    unpack_refused(&s.offline, &s.dir.join("v1.tar"), &["not a ferry pack"]);
    unpack_refused(
        &s.offline,
        &write(&s.dir, "empty.ferry", b""),
        &["not a ferry pack"],
    );
    let mut newer = std::fs::read(&s.full).unwrap();
    newer[8..12].copy_from_slice(&(ferry::pack::format::VERSION + 1).to_le_bytes());
    let version = format!("version {}", ferry::pack::format::VERSION + 1);
    unpack_refused(
        &s.offline,
        &write(&s.dir, "newer.ferry", &newer),
        &[&version, "upgrade ferry"],
    );
}

#[test]
fn delta_without_its_base_names_what_to_unpack_first() {
    let s = setup();
    let fresh = s.dir.join("fresh");
    let before = state(&fresh);
    fails(
        ferry(&fresh).arg("unpack").arg(&s.update),
        &[
            "delta against app:1",
            "unpack the pack that carries app:1 first",
        ],
    );
    assert_eq!(state(&fresh), before);
}

#[test]
fn other_chunker_parameters_are_refused_in_packs_and_stores() {
    let s = setup();
    // The header's chunk_min field sits after the preamble (12), the record
    // frame (5) and the algorithm string (4 + its length).
    let mut pack = std::fs::read(&s.update).unwrap();
    let at = 12 + 5 + 4 + ferry::chunker::ALGORITHM.len();
    pack[at..at + 4].copy_from_slice(&8192u32.to_le_bytes());
    unpack_refused(
        &s.offline,
        &write(&s.dir, "params.ferry", &pack),
        &["pack was cut with chunker", "min=8192"],
    );

    let conn = rusqlite::Connection::open(s.offline.join("index.sqlite")).unwrap();
    conn.execute(
        "UPDATE config SET value = '32768' WHERE key = 'chunk_avg'",
        [],
    )
    .unwrap();
    drop(conn);
    fails(
        ferry(&s.offline).arg("ls"),
        &["store was made with chunker", "avg=32768"],
    );
    fails(
        ferry(&s.offline).arg("unpack").arg(&s.update),
        &["store was made with chunker"],
    );
}

/// A pack writer for a hand-made full pack announcing one snapshot.
fn hand_made_pack(snapshot: &str) -> ferry::pack::PackWriter<Vec<u8>> {
    let header = ferry::pack::Header {
        algorithm: ferry::chunker::ALGORITHM.into(),
        params: ferry::chunker::PARAMS,
        created: 0,
        writer: "test".into(),
        bases: vec![],
        snapshots: vec![snapshot.into()],
        volume: None,
        signer: None,
        extra: vec![],
        encoders: vec![],
    };
    ferry::pack::PackWriter::new(Vec::new(), &header).unwrap()
}

/// Ends a hand-made pack with snapshot `name` of `size` bytes claiming
/// BLAKE3 `hash`, built from whole chunks `ids`; returns the pack's bytes.
fn finish_with_snapshot(
    mut w: ferry::pack::PackWriter<Vec<u8>>,
    name: &str,
    size: u64,
    hash: ferry::id::SnapshotDigest,
    ids: &[ferry::id::ChunkId],
) -> Vec<u8> {
    use ferry::pack::{PieceRef, Pieces, SnapshotRecord};
    w.snapshot(&SnapshotRecord {
        name: name.into(),
        size,
        hash,
        added_at: 0,
        meta: "{}".into(),
        pieces: Pieces::Ids(ids.iter().map(|&id| PieceRef::Whole(id)).collect()),
    })
    .unwrap();
    w.finish().unwrap().0
}

#[test]
fn a_pack_referencing_chunks_it_does_not_carry_is_refused() {
    let s = setup();
    let mut w = hand_made_pack("orphan");
    let data = b"hello";
    let id = ferry::id::ChunkId::of(data);
    w.chunk(&id, ferry::codec::Codec::Raw, 5, data).unwrap();
    let missing = ferry::id::ChunkId([7u8; 32]);
    let bytes = finish_with_snapshot(
        w,
        "orphan",
        10,
        ferry::id::SnapshotDigest::default(),
        &[id, missing],
    );
    let p = write(&s.dir, "orphan.ferry", &bytes);
    unpack_refused(
        &s.offline,
        &p,
        &[
            "snapshot orphan needs chunk 0707070707070707",
            "unpack the pack it is a delta against first",
        ],
    );
}

#[test]
fn a_delta_against_a_base_stored_differently_is_refused_clearly() {
    let s = setup();
    // The same bytes as app:1, but chunked as one plain stream on this side.
    let other = s.dir.join("other");
    ok(ferry(&other)
        .args(["add", "--no-tar-split"])
        .arg(s.dir.join("v1.tar")));
    unpack_refused(&other, &s.update, &["split differently", "--no-tar-split"]);
    // Once a copy stored the sender's way is there too, the delta applies.
    ok(ferry(&other)
        .arg("add")
        .arg(s.dir.join("v1.tar"))
        .args(["--name", "app:1-split"]));
    ok(ferry(&other).arg("unpack").arg(&s.update));
    let out = ferry(&other)
        .args(["checkout", "app:2", "-o", "-"])
        .output()
        .unwrap();
    assert!(out.stdout == std::fs::read(s.dir.join("v2.tar")).unwrap());
}

/// Writes a format-version-1 pack by hand (ids inline, no recipe digests),
/// as ferry 0.1 wrote them: newer ferry must keep reading it.
#[test]
fn version_1_packs_stay_readable() {
    use ferry::pack::format::Enc;
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let data = random_bytes(8, 100_000);
    let id = *blake3::hash(&data).as_bytes();
    let mut body = Enc::default();
    body.bytes(b"FERRYPAK").u32(1);
    let mut header = Enc::default();
    let p = ferry::chunker::PARAMS;
    header
        .str(ferry::chunker::ALGORITHM)
        .u32(p.min)
        .u32(p.avg)
        .u32(p.max)
        .i64(0)
        .str("ferry 0.1.0")
        .u32(0)
        .u32(1)
        .str("old");
    body.u8(1).u32(header.0.len() as u32).bytes(&header.0);
    body.u8(2)
        .u32(37 + data.len() as u32)
        .bytes(&id)
        .u8(0)
        .u32(data.len() as u32)
        .bytes(&data);
    let mut snap = Enc::default();
    snap.str("old")
        .u64(data.len() as u64)
        .bytes(blake3::hash(&data).as_bytes())
        .i64(0)
        .str("{}")
        .u64(2);
    snap.u8(1).bytes(&id).u32(0).u32(50_000);
    snap.u8(1).bytes(&id).u32(50_000).u32(50_000);
    body.u8(3).u32(snap.0.len() as u32).bytes(&snap.0);
    let digest = blake3::hash(&body.0);
    body.u8(0xFF).u32(48).u64(1).u64(1).bytes(digest.as_bytes());
    let pack = write(t.path(), "v1.ferry", &body.0);
    ok(ferry(&store).arg("unpack").arg(&pack));
    let out = ferry(&store)
        .args(["checkout", "old", "-o", "-"])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout == data);
}

#[test]
fn a_recipe_claiming_huge_counts_is_refused_without_allocating_them() {
    use ferry::pack::{Pieces, SnapshotRecord};
    let time = Path::new("/usr/bin/time");
    if !time.is_file() {
        skip(
            "a_recipe_claiming_huge_counts_is_refused_without_allocating_them",
            "GNU time is not installed (apt-get install time)",
        );
        return;
    }
    let s = setup();
    let mut w = hand_made_pack("bomb");
    // 64 MiB of zero tokens compress to a few KiB: 67 million claimed pieces.
    let data = zstd::encode_all(&vec![0u8; 64 << 20][..], 19).unwrap();
    assert!(data.len() < 100_000);
    w.snapshot(&SnapshotRecord {
        name: "bomb".into(),
        size: 1 << 40,
        hash: ferry::id::SnapshotDigest::default(),
        added_at: 0,
        meta: "{}".into(),
        pieces: Pieces::Compact {
            count: 64 << 20,
            encoding: ferry::pack::format::RECIPE_COMPACT_REL,
            data,
        },
    })
    .unwrap();
    let (bytes, _) = w.finish().unwrap();
    let p = write(&s.dir, "bomb.ferry", &bytes);
    let before = state(&s.offline);
    let out = std::process::Command::new(time)
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .arg("--store")
        .arg(&s.offline)
        .arg("unpack")
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("pack is corrupt"),
        "{err}"
    );
    // GNU time prints the peak RSS (KB) as the last line of stderr.
    let last = err.lines().last().unwrap_or_default().trim();
    let rss_kb: u64 = last
        .parse()
        .unwrap_or_else(|e| panic!("no peak RSS from /usr/bin/time in {last:?} ({e}): {err}"));
    assert!(rss_kb > 0, "{err}");
    assert!(
        rss_kb < 400 << 10,
        "unpack of a recipe bomb used {rss_kb} KB"
    );
    assert_eq!(state(&s.offline), before);
}

#[test]
fn a_snapshot_that_does_not_rebuild_to_its_hash_is_refused_at_unpack() {
    let s = setup();
    let mut w = hand_made_pack("liar");
    let data = b"hello, world";
    let id = ferry::id::ChunkId::of(data);
    w.chunk(&id, ferry::codec::Codec::Raw, data.len() as u32, data)
        .unwrap();
    let bytes = finish_with_snapshot(
        w,
        "liar",
        data.len() as u64,
        ferry::id::SnapshotDigest::of(b"something else"),
        &[id],
    );
    let p = write(&s.dir, "liar.ferry", &bytes);
    unpack_refused(
        &s.offline,
        &p,
        &["snapshot liar does not rebuild to the BLAKE3 it claims"],
    );
}

#[test]
fn a_pack_chunk_in_the_stores_lz4_codec_is_refused_and_never_written() {
    use ferry::codec::Codec;
    let s = setup();
    let mut w = hand_made_pack("lz4");
    let data = b"hello hello hello hello";
    let id = ferry::id::ChunkId::of(data);
    let (codec, payload) = ferry::codec::encode_slice(data);
    assert_eq!(codec, Codec::Lz4);
    // The writer refuses a codec that only stores use.
    let err = w
        .chunk(&id, codec, data.len() as u32, &payload)
        .unwrap_err();
    assert!(
        err.to_string().contains("a pack carries no Lz4 chunks"),
        "{err}"
    );
    w.chunk(&id, Codec::Raw, data.len() as u32, data).unwrap();
    let bytes = finish_with_snapshot(
        w,
        "lz4",
        data.len() as u64,
        ferry::id::SnapshotDigest::from(blake3::hash(data)),
        &[id],
    );
    ok(ferry(&s.offline)
        .arg("unpack")
        .arg(write(&s.dir, "raw.ferry", &bytes)));
    // The same record naming codec 2 with an LZ4 payload: refused, though
    // this ferry could decode it.
    let (_, at, _) = records(&bytes)
        .into_iter()
        .find(|&(kind, _, _)| kind == 2)
        .unwrap();
    let mut head = bytes[..at + 32].to_vec();
    head.push(Codec::Lz4 as u8);
    head.extend_from_slice(&(data.len() as u32).to_le_bytes());
    head.extend_from_slice(&payload);
    let len = (head.len() - at) as u32;
    head[at - 4..at].copy_from_slice(&len.to_le_bytes());
    head.extend_from_slice(&bytes[at + 37 + data.len()..]);
    let fresh = s.dir.join("fresh");
    ok(ferry(&fresh)
        .arg("add")
        .arg(write(&s.dir, "other.bin", &random_bytes(3, 10_000))));
    unpack_refused(
        &fresh,
        &write(&s.dir, "lz4.ferry", &head),
        &["pack is corrupt", "unknown chunk codec 2"],
    );
}
