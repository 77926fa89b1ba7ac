//! Similarity deltas on the real binary: changed files ship as small
//! deltas against what the receiver holds, rebuild byte-exact (also when a
//! delta's base arrived as a delta itself), and a pack whose delta base is
//! missing, or whose delta is damaged, is refused with the store unchanged.

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
    let pack = t.path().join("pair.ferry");
    let r = pack_json(&a, &["pair:1"], &pack);
    assert!(r["delta_chunks"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["pack_bytes"].as_u64().unwrap() < 150_000, "{r}");
    ok(ferry(&b).arg("unpack").arg(&pack));
    let out = t.path().join("out.tar");
    ok(ferry(&b).args(["checkout", "pair:1", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&p).unwrap());
}

use ferry::demo::SampleFile;

/// A hand-made pack carrying one delta chunk against `base` and a snapshot
/// made of that chunk.
fn delta_pack(data: &[u8], base: &[u8], damage: bool, name_base: bool) -> Vec<u8> {
    use ferry::pack::{Header, PackWriter, PieceRef, Pieces, SnapshotRecord};
    let header = Header {
        algorithm: ferry::chunker::ALGORITHM.into(),
        params: ferry::chunker::PARAMS,
        created: 0,
        writer: "test".into(),
        bases: vec![],
        snapshots: vec!["d".into()],
        volume: None,
        signer: None,
        // The receiver's inventory named the base (or, for the test of a
        // missing base, nothing did).
        extra: if name_base {
            vec![*blake3::hash(base).as_bytes()]
        } else {
            vec![]
        },
    };
    let mut w = PackWriter::new(Vec::new(), &header).unwrap();
    let id = *blake3::hash(data).as_bytes();
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
        hash: id,
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
    ok(ferry(&s).arg("unpack").arg(&good));
    let out = t.path().join("d.out");
    ok(ferry(&s).args(["checkout", "d", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == data);
}
