//! Similarity deltas on the real binary: changed files ship as small
//! deltas (delta groups against the file at the same path, or delta chunks
//! against a resembling chunk) against what the receiver holds, rebuild
//! byte-exact (also when a delta's base arrived as a delta itself, and when
//! the receiver relays them on), and a pack whose delta base is missing, or
//! whose delta is damaged, is refused with the store unchanged.

mod common;

use common::*;

/// An archive whose one layer holds `files`, each edited in place by `edit`.
fn archive(
    dir: &std::path::Path,
    name: &str,
    tag: &str,
    seed: u64,
    edit: &[(usize, u8)],
) -> std::path::PathBuf {
    let mut files = sample_files(seed, "srv/lib", 60, 128 << 10);
    for &(i, b) in edit {
        let f = &mut files[i];
        let at = f.data.len() / 2;
        let end = (at + 40).min(f.data.len());
        f.data[at..end].fill(b);
    }
    let p = dir.join(name);
    write_docker_archive(&p, tag, &[layer_tar(&files, 1_700_000_000)]).unwrap();
    p
}

fn pack_json(store: &std::path::Path, args: &[&str], out: &std::path::Path) -> serde_json::Value {
    let s = ok(ferry(store)
        .arg("pack")
        .args(args)
        .arg("--json")
        .arg("-o")
        .arg(out));
    serde_json::from_str(&s).unwrap()
}

#[test]
fn edited_files_ship_as_deltas_and_rebuild_byte_exact_across_versions() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let big: Vec<usize> = (0..60).filter(|i| i % 7 == 0).collect();
    let v1 = archive(t.path(), "v1.tar", "app:1", 3, &[]);
    let e2: Vec<(usize, u8)> = big.iter().map(|&i| (i, 0xAA)).collect();
    let v2 = archive(t.path(), "v2.tar", "app:2", 3, &e2);
    // v3 edits the same files again: their bases on the receiver are the
    // chunks that arrived as deltas in the v2 pack.
    let e3: Vec<(usize, u8)> = big.iter().map(|&i| (i, 0x55)).collect();
    let v3 = archive(t.path(), "v3.tar", "app:3", 3, &e3);
    for v in [&v1, &v2, &v3] {
        ok(ferry(&a).arg("add").arg(v));
    }
    let full = t.path().join("full.ferry");
    ok(ferry(&a).args(["pack", "app:1", "-o"]).arg(&full));
    let p2 = t.path().join("p2.ferry");
    let with = pack_json(&a, &["app:2", "--base", "app:1"], &p2);
    let without = pack_json(
        &a,
        &["app:2", "--base", "app:1", "--no-deltas", "--dry-run"],
        &t.path().join("x"),
    );
    assert!(
        with["delta_chunks"].as_u64().unwrap() >= big.len() as u64 / 2,
        "{with}"
    );
    assert_eq!(without["delta_chunks"], 0);
    assert!(
        with["pack_bytes"].as_u64().unwrap() * 5 < without["pack_bytes"].as_u64().unwrap(),
        "with deltas {with}\nwithout {without}"
    );
    let p3 = t.path().join("p3.ferry");
    let r3 = pack_json(&a, &["app:3", "--base", "app:2"], &p3);
    assert!(r3["delta_chunks"].as_u64().unwrap() > 0, "{r3}");
    for p in [&full, &p2, &p3] {
        let r: serde_json::Value =
            serde_json::from_str(&ok(ferry(&b).arg("unpack").arg(p).arg("--json"))).unwrap();
        assert_eq!(r["added"].as_array().unwrap().len(), 1, "{r}");
    }
    for (tag, v) in [("app:2", &v2), ("app:3", &v3)] {
        let out = t.path().join("out.tar");
        ok(ferry(&b).args(["checkout", tag, "-o"]).arg(&out));
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(v).unwrap(),
            "{tag}"
        );
    }
    ok(ferry(&b).args(["verify", "--full"]));
}

#[test]
fn within_one_pack_a_delta_may_build_on_a_chunk_sent_earlier() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    // Two near-identical files in one archive, nothing at the receiver.
    let one = random_bytes(21, 100_000);
    let mut two = one.clone();
    two[50_000..50_040].fill(9);
    let files = vec![
        SampleFile {
            path: "a/one.bin".into(),
            data: one,
        },
        SampleFile {
            path: "b/two.bin".into(),
            data: two,
        },
    ];
    let p = t.path().join("pair.tar");
    write_docker_archive(&p, "pair:1", &[layer_tar(&files, 1)]).unwrap();
    ok(ferry(&a).arg("add").arg(&p));
    // The receiver holds something unrelated: a delta pack (a full pack
    // leaves this to its solid blocks, tested in tests/blocks.rs).
    let other = write(t.path(), "other.bin", &random_bytes(22, 50_000));
    ok(ferry(&a).arg("add").arg(&other));
    ok(ferry(&b).arg("add").arg(&other));
    let pack = t.path().join("pair.ferry");
    let r = pack_json(&a, &["pair:1", "--base", "other.bin"], &pack);
    assert!(r["delta_chunks"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["pack_bytes"].as_u64().unwrap() < 150_000, "{r}");
    ok(ferry(&b).arg("unpack").arg(&pack));
    let out = t.path().join("out.tar");
    ok(ferry(&b).args(["checkout", "pair:1", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&p).unwrap());
}

use ferry::demo::SampleFile;

/// The header of a hand-made pack carrying `snapshot`, whose first
/// base-table chunk is `base` when the receiver's inventory named it (or,
/// for the tests of a missing base, nothing when it did not).
fn hand_made_header(snapshot: &str, base: &[u8], name_base: bool) -> ferry::pack::Header {
    ferry::pack::Header {
        algorithm: ferry::chunker::ALGORITHM.into(),
        params: ferry::chunker::PARAMS,
        created: 0,
        writer: "test".into(),
        bases: vec![],
        snapshots: vec![snapshot.into()],
        volume: None,
        signer: None,
        extra: if name_base {
            vec![ferry::id::ChunkId::of(base)]
        } else {
            vec![]
        },
        encoders: vec![],
    }
}

/// Flips a bit of the stored (raw) bytes where `needle` is, in whichever
/// data file of `store` holds it; the returned closure flips it back.
fn flip_in_store(store: &std::path::Path, needle: &[u8]) -> impl FnOnce() {
    for entry in std::fs::read_dir(store.join("data")).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[at + 7] ^= 0x04;
            std::fs::write(&path, &bytes).unwrap();
            return move || {
                bytes[at + 7] ^= 0x04;
                std::fs::write(&path, &bytes).unwrap();
            };
        }
    }
    panic!("the bytes are not stored raw in {}", store.display());
}

#[test]
fn a_snapshot_built_on_a_damaged_chunk_of_the_store_blames_the_store() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let old = random_bytes(41, 400_000);
    let mut new = old.clone();
    new.extend_from_slice(&random_bytes(42, 100_000));
    let x = write(t.path(), "x.bin", &old);
    for s in [&a, &b] {
        ok(ferry(s).arg("add").arg(&x).args(["--name", "x"]));
    }
    ok(ferry(&a)
        .arg("add")
        .arg(write(t.path(), "y.bin", &new))
        .args(["--name", "y"]));
    let p = t.path().join("y.ferry");
    ok(ferry(&a).args(["pack", "y", "--base", "x", "-o"]).arg(&p));
    // y reuses x's chunks as they are: one of them damaged in b.
    let undo = flip_in_store(&b, &old[200_000..200_064]);
    let before = state(&b);
    let said = fails(
        ferry(&b).arg("unpack").arg(&p),
        &["damaged", "ferry verify --full"],
    );
    assert!(!said.contains("corrupt"), "{said}");
    assert_eq!(state(&b), before);
    undo();
    ok(ferry(&b).arg("unpack").arg(&p));
    let out = t.path().join("y.out");
    ok(ferry(&b).args(["checkout", "y", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == new);
}

/// A hand-made pack carrying one delta chunk against `base` and a snapshot
/// made of that chunk.
fn delta_pack(data: &[u8], base: &[u8], damage: bool, name_base: bool) -> Vec<u8> {
    use ferry::pack::{PackWriter, PieceRef, Pieces, SnapshotRecord};
    let header = hand_made_header("d", base, name_base);
    let mut w = PackWriter::new(Vec::new(), &header).unwrap();
    let id = ferry::id::ChunkId::of(data);
    let mut payload = ferry::similarity::encode(base, data);
    if damage {
        let n = payload.len();
        payload[n / 2] ^= 0x10;
    }
    // The base: the first chunk of the base table (the header's `extra`).
    let base_ref = ferry::pack::recipe::TableRef {
        src: ferry::pack::recipe::Src::Base,
        index: 0,
    };
    w.delta(&id, data.len() as u32, &[base_ref], &payload)
        .unwrap();
    w.snapshot(&SnapshotRecord {
        name: "d".into(),
        size: data.len() as u64,
        hash: ferry::id::SnapshotDigest(id.0),
        added_at: 0,
        meta: "{}".into(),
        pieces: Pieces::Ids(vec![PieceRef::Whole(id)]),
    })
    .unwrap();
    w.finish().unwrap().0
}

#[test]
fn a_delta_whose_base_is_missing_or_that_is_damaged_is_refused_and_nothing_changes() {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    let base = random_bytes(31, 60_000);
    let mut data = base.clone();
    data[100..140].fill(1);
    // The receiver lacks the base.
    ok(ferry(&s)
        .arg("add")
        .arg(write(t.path(), "other.bin", &random_bytes(32, 5000))));
    let before = state(&s);
    let p = write(
        t.path(),
        "missing.ferry",
        &delta_pack(&data, &base, false, false),
    );
    fails(
        ferry(&s).arg("unpack").arg(&p),
        &["delta", "neither this store nor the pack"],
    );
    assert_eq!(state(&s), before);
    // With the base present it imports; damaged, it is refused.
    ok(ferry(&s).arg("add").arg(write(t.path(), "base.bin", &base)));
    let before = state(&s);
    let bad = write(t.path(), "bad.ferry", &delta_pack(&data, &base, true, true));
    fails(
        ferry(&s).arg("unpack").arg(&bad),
        &["corrupt", "delta chunk"],
    );
    assert_eq!(state(&s), before);
    let good = write(
        t.path(),
        "good.ferry",
        &delta_pack(&data, &base, false, true),
    );
    // A base damaged in this store is the store's fault, not the pack's.
    let undo = flip_in_store(&s, &base[30_000..30_064]);
    let said = fails(
        ferry(&s).arg("unpack").arg(&good),
        &["is damaged", "ferry verify --full"],
    );
    assert!(!said.contains("corrupt"), "{said}");
    assert_eq!(state(&s), before);
    undo();
    ok(ferry(&s).arg("unpack").arg(&good));
    let out = t.path().join("d.out");
    ok(ferry(&s).args(["checkout", "d", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == data);
}

/// A site-packages layer: package `pkg` at `version`, its module files
/// edited in a few places per `version`, its dist-info directory named
/// after the version (as pip lays it out), and a large shared library that
/// changes throughout (every chunk new, as a rebuilt binary does).
fn site_layer(version: &str, seed: u8, mtime: u64) -> Vec<u8> {
    let mut files = sample_files(40, "usr/lib/python3/site-packages/pkg", 40, 96 << 10);
    for (k, f) in files.iter_mut().enumerate() {
        if k % 3 == 0 {
            let at = f.data.len() / 3;
            let end = (at + 24).min(f.data.len());
            f.data[at..end].fill(seed);
        }
    }
    let mut lib = random_bytes(41, 3 << 20);
    // A rebuild: small edits every 32 KiB, so no chunk survives.
    for at in (1000..lib.len()).step_by(32 << 10) {
        lib[at..at + 16].fill(seed);
    }
    files.push(SampleFile {
        path: "usr/lib/python3/site-packages/pkg/_core.so".into(),
        data: lib,
    });
    let record: String = files
        .iter()
        .map(|f| format!("{},sha256={},{}\n", f.path, seed, f.data.len()))
        .collect();
    files.push(SampleFile {
        path: format!("usr/lib/python3/site-packages/pkg-{version}.dist-info/RECORD"),
        data: record.into_bytes(),
    });
    layer_tar(&files, mtime)
}

#[test]
fn a_bumped_package_ships_as_groups_against_the_files_at_the_same_path() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let base_layer = layer_tar(&sample_files(42, "usr/bin", 20, 64 << 10), 1);
    let v1 = t.path().join("v1.tar");
    let v2 = t.path().join("v2.tar");
    write_docker_archive(
        &v1,
        "svc:1",
        &[base_layer.clone(), site_layer("1.4.2", 1, 1_700_000_000)],
    )
    .unwrap();
    // v2: the package bumped one release, the layer rebuilt (new mtimes).
    write_docker_archive(
        &v2,
        "svc:2",
        &[base_layer, site_layer("1.4.3", 2, 1_710_000_000)],
    )
    .unwrap();
    for v in [&v1, &v2] {
        ok(ferry(&a).arg("add").arg(v));
    }
    let full = t.path().join("full.ferry");
    ok(ferry(&a).args(["pack", "svc:1", "-o"]).arg(&full));
    let p = t.path().join("update.ferry");
    let with = pack_json(&a, &["svc:2", "--base", "svc:1"], &p);
    let plain = pack_json(
        &a,
        &["svc:2", "--base", "svc:1", "--no-deltas", "--dry-run"],
        &t.path().join("x"),
    );
    assert!(with["groups"].as_u64().unwrap() >= 10, "{with}");
    assert_eq!(plain["groups"], 0);
    // The 3 MiB library alone is 3 MiB of new chunks without deltas.
    assert!(
        plain["pack_bytes"].as_u64().unwrap() > 3 << 20,
        "without deltas {plain}"
    );
    assert!(
        with["pack_bytes"].as_u64().unwrap() < 200_000,
        "with deltas {with}"
    );
    ok(ferry(&b).arg("unpack").arg(&full));
    // A receiver known only by its inventory gets the same groups.
    let have = t.path().join("have.ferry");
    ok(ferry(&b).args(["inventory", "-o"]).arg(&have));
    let by_have = pack_json(
        &a,
        &["svc:2", "--have", have.to_str().unwrap(), "--dry-run"],
        &t.path().join("y"),
    );
    assert_eq!(by_have["groups"], with["groups"], "{by_have}");
    assert_eq!(by_have["delta_chunks"], with["delta_chunks"], "{by_have}");
    let r: serde_json::Value =
        serde_json::from_str(&ok(ferry(&b).arg("unpack").arg(&p).arg("--json"))).unwrap();
    assert_eq!(r["added"][0], "svc:2", "{r}");
    assert_eq!(r["delta_chunks"], with["delta_chunks"], "{r}");
    assert_eq!(r["delta_bytes"], with["delta_bytes"], "{r}");
    // `ls --json` keeps how it arrived.
    let ls: serde_json::Value =
        serde_json::from_str(&ok(ferry(&b).args(["ls", "--json"]))).unwrap();
    let got = ls["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "svc:2")
        .unwrap()["meta"]["received"]
        .clone();
    assert_eq!(got["pack"], "update.ferry", "{got}");
    assert_eq!(got["delta_chunks"], with["delta_chunks"], "{got}");
    assert_eq!(got["delta_bytes"], r["delta_bytes"], "{got}");
    assert!(got["delta_bytes"].as_u64().unwrap() > 0, "{got}");
    let out = t.path().join("out.tar");
    ok(ferry(&b).args(["checkout", "svc:2", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&v2).unwrap());
    ok(ferry(&b).args(["verify", "--full"]));
    // In volumes of 400 KiB (groups then hold at most half a volume), in
    // any order, to a store holding v1: the same bytes.
    let v = t.path().join("v");
    ok(ferry(&v).arg("unpack").arg(&full));
    ok(ferry(&a)
        .args([
            "pack",
            "svc:2",
            "--base",
            "svc:1",
            "--volume-size",
            "400K",
            "-o",
        ])
        .arg(t.path().join("vol.ferry")));
    let mut vols: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vol.ferry.")
        })
        .collect();
    vols.sort();
    vols.reverse();
    // Volumes are cut by the records' encoded sizes: a pack that fits in
    // one volume takes one.
    let fits = with["pack_bytes"].as_u64().unwrap() + 4096 <= 400 << 10;
    assert_eq!(vols.len() == 1, fits, "{vols:?} {with}");
    for p in &vols {
        assert!(std::fs::metadata(p).unwrap().len() <= 400 << 10);
        ok(ferry(&v).arg("unpack").arg(p));
    }
    ok(ferry(&v).args(["checkout", "svc:2", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&v2).unwrap());
    // The receiver stored plain chunks: it can pack v2 on (as a relay) to
    // a third store that holds v1, and that rebuilds too.
    let c = t.path().join("c");
    ok(ferry(&c).arg("unpack").arg(&full));
    let relay = t.path().join("relay.ferry");
    ok(ferry(&b)
        .args(["pack", "svc:2", "--base", "svc:1", "-o"])
        .arg(&relay));
    ok(ferry(&c).arg("unpack").arg(&relay));
    ok(ferry(&c).args(["checkout", "svc:2", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&v2).unwrap());
}

/// A hand-made pack of three groups: `a` against the store's `base`, `b`
/// against `base` too, then `c` against the two chunks of `a` (pack table
/// entries 0 and 1, or `c_base` instead), and a snapshot of all seven
/// chunks.
fn chained_groups_pack(
    base: &[u8],
    a: &[&[u8]; 2],
    b: &[&[u8]; 2],
    c: &[&[u8]; 3],
    c_base: u64,
) -> Vec<u8> {
    use ferry::pack::PackWriter;
    use ferry::pack::recipe::{Src, TableRef};
    let header = hand_made_header("chain", base, true);
    let mut w = PackWriter::new(Vec::new(), &header).unwrap();
    let on_base = [TableRef {
        src: Src::Base,
        index: 0,
    }];
    let on_a = [
        TableRef {
            src: Src::Pack,
            index: c_base,
        },
        TableRef {
            src: Src::Pack,
            index: c_base + 1,
        },
    ];
    let a_all = a.concat();
    // Each group: its chunks, the bytes it goes against, where they are.
    type Group<'a> = (&'a [&'a [u8]], &'a [u8], &'a [TableRef]);
    let groups: [Group; 3] = [(a, base, &on_base), (b, base, &on_base), (c, &a_all, &on_a)];
    for (parts, against, refs) in groups {
        let all = parts.concat();
        let frame = ferry::similarity::encode_group(against, &all);
        let lens: Vec<u32> = parts.iter().map(|p| p.len() as u32).collect();
        w.group(&lens, blake3::hash(&all).as_bytes(), refs, &frame)
            .unwrap();
    }
    let every: Vec<&[u8]> = a.iter().chain(b).chain(c).copied().collect();
    finish_with_snapshot(w, "chain", &every)
}

/// Groups are rebuilt several at once: one built on the chunks of a group
/// before it in the pack waits for that one to be stored.
#[test]
fn a_group_may_build_on_the_chunks_of_a_group_earlier_in_the_pack() {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    let base = random_bytes(31, 60_000); // one chunk, as in the tests above
    let edit = |from: &[u8], at: usize, v: u8| {
        let mut x = from.to_vec();
        x[at..at + 40].fill(v);
        x
    };
    let a = edit(&base, 20_000, 1);
    let b = edit(&base, 40_000, 2);
    let c = edit(&a, 5_000, 3);
    ok(ferry(&s).arg("add").arg(write(t.path(), "base.bin", &base)));
    let before = state(&s);
    // `c` named against pack entries that are not there: refused, and
    // nothing of `a` or `b` stays.
    let bad = chained_groups_pack(
        &base,
        &[&a[..30_000], &a[30_000..]],
        &[&b[..25_000], &b[25_000..]],
        &[&c[..10_000], &c[10_000..35_000], &c[35_000..]],
        6,
    );
    let p = write(t.path(), "bad.ferry", &bad);
    fails(
        ferry(&s).arg("unpack").arg(&p),
        &["delta group", "neither this store nor the pack"],
    );
    assert_eq!(state(&s), before);
    let good = chained_groups_pack(
        &base,
        &[&a[..30_000], &a[30_000..]],
        &[&b[..25_000], &b[25_000..]],
        &[&c[..10_000], &c[10_000..35_000], &c[35_000..]],
        0,
    );
    let p = write(t.path(), "good.ferry", &good);
    let r: serde_json::Value =
        serde_json::from_str(&ok(ferry(&s).arg("unpack").arg(&p).arg("--json"))).unwrap();
    assert_eq!(r["delta_chunks"], 7, "{r}");
    let out = t.path().join("chain.out");
    ok(ferry(&s).args(["checkout", "chain", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == [a, b, c].concat());
    ok(ferry(&s).args(["verify", "--full"]));
}

/// A hand-made pack carrying `parts` (consecutive chunks) as one group
/// against `base` (named by the header's `extra`, or not at all), and a
/// snapshot made of them.
fn group_pack(parts: &[&[u8]], base: &[u8], damage: Option<usize>, name_base: bool) -> Vec<u8> {
    use ferry::pack::PackWriter;
    let header = hand_made_header("g", base, name_base);
    let mut w = PackWriter::new(Vec::new(), &header).unwrap();
    let all: Vec<u8> = parts.concat();
    let mut frame = ferry::similarity::encode_group(base, &all);
    if let Some(at) = damage {
        frame[at] ^= 0x10;
    }
    let lens: Vec<u32> = parts.iter().map(|p| p.len() as u32).collect();
    let base_ref = ferry::pack::recipe::TableRef {
        src: ferry::pack::recipe::Src::Base,
        index: 0,
    };
    w.group(&lens, blake3::hash(&all).as_bytes(), &[base_ref], &frame)
        .unwrap();
    finish_with_snapshot(w, "g", parts)
}

/// Ends a hand-made pack with snapshot `name`: `parts`, each a whole chunk.
fn finish_with_snapshot(
    mut w: ferry::pack::PackWriter<Vec<u8>>,
    name: &str,
    parts: &[&[u8]],
) -> Vec<u8> {
    use ferry::pack::{PieceRef, Pieces, SnapshotRecord};
    let whole = parts.concat();
    w.snapshot(&SnapshotRecord {
        name: name.into(),
        size: whole.len() as u64,
        hash: ferry::id::SnapshotDigest::of(&whole),
        added_at: 0,
        meta: "{}".into(),
        pieces: Pieces::Ids(
            parts
                .iter()
                .map(|p| PieceRef::Whole(ferry::id::ChunkId::of(p)))
                .collect(),
        ),
    })
    .unwrap();
    w.finish().unwrap().0
}

#[test]
fn a_group_whose_base_is_missing_or_that_is_damaged_is_refused_and_nothing_changes() {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    // One chunk of base (as the other delta test's), two chunks of new.
    let base = random_bytes(31, 60_000);
    let mut new = base.clone();
    new[10_000..10_030].fill(3);
    new[50_000..50_030].fill(4);
    let parts: Vec<&[u8]> = vec![&new[..30_000], &new[30_000..]];
    ok(ferry(&s)
        .arg("add")
        .arg(write(t.path(), "other.bin", &random_bytes(52, 5000))));
    let before = state(&s);
    let p = write(t.path(), "m.ferry", &group_pack(&parts, &base, None, false));
    fails(
        ferry(&s).arg("unpack").arg(&p),
        &["delta group", "neither this store nor the pack"],
    );
    assert_eq!(state(&s), before);
    ok(ferry(&s).arg("add").arg(write(t.path(), "base.bin", &base)));
    let before = state(&s);
    let good = group_pack(&parts, &base, None, true);
    // A flipped bit anywhere in the frame after its zstd header (which the
    // pack does not carry: its length gives it): it does not decode, or it
    // decodes to other bytes, which the group's BLAKE3 catches.
    let all = parts.concat();
    let frame_len = ferry::similarity::encode_group(&base, &all).len();
    let header = ferry::pack::format::canonical_zstd_header(all.len() as u64).1;
    for at in [header, frame_len / 2, frame_len - 1] {
        let bad = write(
            t.path(),
            "bad.ferry",
            &group_pack(&parts, &base, Some(at), true),
        );
        fails(
            ferry(&s).arg("unpack").arg(&bad),
            &["corrupt", "delta group"],
        );
        assert_eq!(state(&s), before, "damage at {at}");
    }
    let p = write(t.path(), "good.ferry", &good);
    let r: serde_json::Value =
        serde_json::from_str(&ok(ferry(&s).arg("unpack").arg(&p).arg("--json"))).unwrap();
    assert_eq!(r["delta_chunks"], 2, "{r}");
    let out = t.path().join("g.out");
    ok(ferry(&s).args(["checkout", "g", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == new);
}

/// The frames of a pack's delta chunk records (after id, length, bases).
fn delta_frames(pack: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 12;
    while at < pack.len() {
        let n = u32::from_le_bytes(pack[at + 1..at + 5].try_into().unwrap()) as usize;
        let r = &pack[at + 5..at + 5 + n];
        if pack[at] == 4 {
            let mut f = 37;
            for _ in 0..r[36] {
                while r[f] & 0x80 != 0 {
                    f += 1;
                }
                f += 1;
            }
            out.push(&r[f..]);
        }
        at += 5 + n;
    }
    out
}

#[test]
fn a_rebuilt_layer_ships_its_tar_headers_as_header_deltas_even_when_the_stream_moved() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    // v2's first layer gains 300 files, so the second layer's headers sit
    // some 200 KB later in v2's headers stream than in v1's; that layer is
    // rebuilt: its 2000 files keep their bytes and take a new time.
    let (v1, v2) = (t.path().join("v1.tar"), t.path().join("v2.tar"));
    let docs = |n| layer_tar(&sample_files(7, "usr/share/doc", n, 2048), 1);
    let app = |mtime| layer_tar(&sample_files(8, "app/node_modules", 2000, 1024), mtime);
    write_docker_archive(&v1, "svc:1", &[docs(300), app(1_700_000_000)]).unwrap();
    write_docker_archive(&v2, "svc:2", &[docs(600), app(1_710_000_000)]).unwrap();
    for v in [&v1, &v2] {
        ok(ferry(&a).arg("add").arg(v));
    }
    let p = t.path().join("update.ferry");
    let with = pack_json(&a, &["svc:2", "--base", "svc:1"], &p);
    let pack = std::fs::read(&p).unwrap();
    let frames = delta_frames(&pack);
    let header_frames: Vec<_> = frames
        .iter()
        .filter(|f| f[0] & ferry::pack::format::FRAME_HEADERS != 0)
        .collect();
    assert!(!header_frames.is_empty(), "{with}");
    // Under two bytes a header (plain zstd deltas against the old headers
    // at the same offset took over 11).
    let header_bytes: usize = header_frames.iter().map(|f| f.len()).sum();
    assert!(
        header_bytes < 4000,
        "{header_bytes} B of header deltas: {with}"
    );
    let full = t.path().join("full.ferry");
    ok(ferry(&a).args(["pack", "svc:1", "-o"]).arg(&full));
    ok(ferry(&b).arg("unpack").arg(&full));
    ok(ferry(&b).arg("unpack").arg(&p));
    let out = t.path().join("out.tar");
    ok(ferry(&b).args(["checkout", "svc:2", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&v2).unwrap());
}
