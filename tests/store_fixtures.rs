//! Stores written by earlier releases (tests/data/stores) read the same
//! with this ferry: readers take them as they are and leave them untouched,
//! and the first writer brings the index up to the current schema.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// The key trusted in the version-2 fixture, and its comment.
const FIXTURE_KEY: &str = "b43cd66c383e85152d2da84220c2eed5256bb965d7479a751be661e813265078  k";
/// The key trusted in the version-4 fixture, and its comment.
const FIXTURE_KEY_V4: &str = "4698c281aca6ca7c9ef7d54785a45ecc0fb07f5849316e89efa163ad5dba9524  k";
/// The key trusted in the version-5 fixture, and its comment.
const FIXTURE_KEY_V5: &str = "2b71d88038e750bedce98338d5595995bff6f5ee2728cae7d0f6884194f4b5da  k";
/// The key trusted in the version-3 fixture, and its comment.
const FIXTURE_KEY_V3: &str = "a7661d7b7eda519df7145dac1475fb9a62e2da0c91d1aad4067855ab0b4cc15f  k";

/// A copy of fixture store `name` in a new temporary directory.
fn fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/stores")
        .join(name);
    let to = t.path().join(name);
    std::fs::create_dir_all(to.join("data")).unwrap();
    std::fs::copy(from.join("index.sqlite"), to.join("index.sqlite")).unwrap();
    for e in std::fs::read_dir(from.join("data")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join("data").join(e.file_name())).unwrap();
    }
    (t, to)
}

fn input() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/stores/v2-input.txt"))
        .unwrap()
}

fn user_version(store: &Path) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        store.join("index.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// Checks out `input.txt` byte for byte, verifies the store in full, and
/// checks the ledger and trust list that the fixture holds.
fn reads_everything(t: &Path, store: &Path, ledger: bool) {
    reads_everything_with(t, store, ledger, FIXTURE_KEY)
}

fn reads_everything_with(t: &Path, store: &Path, ledger: bool, key: &str) {
    let snaps = state(store).snapshots;
    let blake3 = blake3::hash(&input()).to_hex().to_string();
    assert!(
        snaps.contains(&("input.txt".to_string(), blake3)),
        "{snaps:?}"
    );
    let out = t.join("out.txt");
    let _ = std::fs::remove_file(&out);
    ok(ferry(store).args(["checkout", "input.txt", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == input());
    let verified = ok(ferry(store).args(["verify", "--full"]));
    assert!(verified.contains("store ok"), "{verified}");
    let trusted = ok(ferry(store).args(["trust", "list"]));
    let peers = ok(ferry(store).arg("peers"));
    if ledger {
        assert!(trusted.contains(key), "{trusted}");
        assert!(
            peers
                .lines()
                .any(|l| l.starts_with("peer1 ") && l.contains("input.txt")),
            "{peers}"
        );
    } else {
        assert!(!trusted.contains(&key[..8]), "{trusted}");
        assert!(!peers.contains("peer1"), "{peers}");
    }
}

#[test]
fn a_version_2_store_is_read_as_it_is_and_left_unchanged() {
    let (t, store) = fixture("v2");
    let before = std::fs::read(store.join("index.sqlite")).unwrap();
    reads_everything(t.path(), &store, true);
    // A read that fails changes nothing either.
    fails(
        ferry(&store)
            .args(["checkout", "nothing", "-o"])
            .arg(t.path().join("x")),
        &["nothing"],
    );
    assert_eq!(user_version(&store), 2);
    assert!(std::fs::read(store.join("index.sqlite")).unwrap() == before);
}

#[test]
fn a_writer_migrates_a_version_2_store() {
    let (t, store) = fixture("v2");
    let codecs = |store: &Path| -> Vec<i64> {
        let conn = rusqlite::Connection::open(store.join("index.sqlite")).unwrap();
        let mut q = conn
            .prepare("SELECT DISTINCT codec FROM chunks ORDER BY codec")
            .unwrap();
        q.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert!(!codecs(&store).contains(&2), "the fixture predates LZ4");
    // Random bytes (kept raw) and text (kept as LZ4 from version 6 on).
    let mut data = random_bytes(7, 50_000);
    data.extend(b"fn main() { println!(\"ferry\"); }\n".repeat(3_000));
    let other = write(t.path(), "other.bin", &data);
    ok(ferry(&store).arg("add").arg(&other));
    assert_eq!(user_version(&store), ferry::store::SCHEMA_VERSION);
    assert!(codecs(&store).contains(&2), "{:?}", codecs(&store));
    // The chunks the old version stored read as before, beside LZ4 ones.
    reads_everything(t.path(), &store, true);
    let out = t.path().join("other.out");
    ok(ferry(&store)
        .args(["checkout", "other.bin", "-o"])
        .arg(&out));
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&other).unwrap());
}

#[test]
fn a_version_2_store_without_the_newer_tables_reads_them_as_empty_and_migrates() {
    let (t, store) = fixture("v2");
    // What a schema-2 ferry from before volumes, ledger, trust and file
    // lists wrote.
    let conn = rusqlite::Connection::open(store.join("index.sqlite")).unwrap();
    conn.execute_batch(
        "DROP TABLE volumes; DROP TABLE volume_chunks; DROP TABLE pending; DROP TABLE peers;
         DROP TABLE peer_chunks; DROP TABLE peer_snapshots; DROP TABLE features;
         DROP TABLE trusted_keys; DROP TABLE files;",
    )
    .unwrap();
    drop(conn);
    reads_everything(t.path(), &store, false);
    let status = ok(ferry(&store).arg("status"));
    assert!(status.starts_with("nothing waiting"), "{status}");
    assert_eq!(user_version(&store), 2);
    // The first writer creates them.
    let key = t.path().join("key");
    ok(ferry(&store).args(["key", "generate", "-o"]).arg(&key));
    ok(ferry(&store)
        .args(["trust", "add"])
        .arg(t.path().join("key.pub")));
    assert_eq!(user_version(&store), ferry::store::SCHEMA_VERSION);
    let trusted = ok(ferry(&store).args(["trust", "list"]));
    assert_eq!(trusted.lines().count(), 1, "{trusted}");
    reads_everything(t.path(), &store, false);
}

#[test]
fn a_store_from_a_newer_ferry_is_refused_unchanged() {
    let (t, store) = fixture("v2");
    let conn = rusqlite::Connection::open(store.join("index.sqlite")).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let before = std::fs::read(store.join("index.sqlite")).unwrap();
    fails(
        ferry(&store).arg("ls"),
        &["schema version 99", "upgrade ferry"],
    );
    let other = write(t.path(), "other.bin", b"more");
    fails(
        ferry(&store).arg("add").arg(&other),
        &["schema version 99", "upgrade ferry"],
    );
    assert!(std::fs::read(store.join("index.sqlite")).unwrap() == before);
}

#[test]
fn a_damaged_chunk_is_named_by_checkout_and_verify() {
    let (t, store) = fixture("v2");
    let conn = rusqlite::Connection::open(store.join("index.sqlite")).unwrap();
    let id: String = conn
        .query_row("SELECT lower(hex(id)) FROM chunks", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    // The entry header (id and lengths) stays; one byte of its payload flips.
    let data = store.join("data").join("00000001.dat");
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0x55;
    std::fs::write(&data, &bytes).unwrap();
    let out = t.path().join("out.txt");
    fails(
        ferry(&store)
            .args(["checkout", "input.txt", "-o"])
            .arg(&out),
        &[&id, "damaged"],
    );
    assert!(!out.exists());
    let report = run(ferry(&store).args(["verify", "--full"]));
    assert!(!report.status.success());
    assert!(String::from_utf8_lossy(&report.stdout).contains(&id));
}

#[test]
fn a_writer_refusing_a_store_of_another_chunker_does_not_migrate_it() {
    let (t, store) = fixture("v2");
    let conn = rusqlite::Connection::open(store.join("index.sqlite")).unwrap();
    conn.execute(
        "UPDATE config SET value = '12345' WHERE key = 'chunk_avg'",
        [],
    )
    .unwrap();
    drop(conn);
    let before = std::fs::read(store.join("index.sqlite")).unwrap();
    let other = write(t.path(), "other.bin", b"more");
    fails(
        ferry(&store).arg("add").arg(&other),
        &["store was made with chunker", "avg=12345"],
    );
    assert_eq!(user_version(&store), 2);
    assert!(std::fs::read(store.join("index.sqlite")).unwrap() == before);
}

#[test]
fn a_version_3_store_reads_as_it_is_and_a_writer_keeps_it() {
    let (t, store) = fixture("v3");
    let before = std::fs::read(store.join("index.sqlite")).unwrap();
    assert_eq!(user_version(&store), 3);
    reads_everything_with(t.path(), &store, true, FIXTURE_KEY_V3);
    assert!(std::fs::read(store.join("index.sqlite")).unwrap() == before);
    // A writer brings it up to date, and everything still reads.
    ok(ferry(&store)
        .args(["add", "--name", "again"])
        .arg(t.path().join("out.txt")));
    assert_eq!(user_version(&store), ferry::store::SCHEMA_VERSION);
    reads_everything_with(t.path(), &store, true, FIXTURE_KEY_V3);
}

#[test]
fn a_version_4_store_with_go_layers_reads_as_it_is_and_a_writer_keeps_it() {
    let (t, store) = fixture("v4");
    let before = std::fs::read(store.join("index.sqlite")).unwrap();
    assert_eq!(user_version(&store), 4);
    reads_everything_with(t.path(), &store, true, FIXTURE_KEY_V4);
    // golden:a's three layers come back from Go part records of each
    // encoder; the checkout is checked against the digest recorded at add.
    let ls: serde_json::Value =
        serde_json::from_str(&ok(ferry(&store).args(["ls", "--json"]))).unwrap();
    let golden = ls["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "golden:a")
        .unwrap()
        .clone();
    let enc = &golden["meta"]["split"]["gzip_encoders"];
    for name in ["go-stdlib", "pgzip", "go1.27"] {
        assert_eq!(enc[name], 1, "{enc}");
    }
    let out = t.path().join("golden.tar");
    ok(ferry(&store).args(["checkout", "golden:a", "-o"]).arg(&out));
    let got = blake3::hash(&std::fs::read(&out).unwrap())
        .to_hex()
        .to_string();
    assert_eq!(golden["blake3"], got.as_str());
    assert!(std::fs::read(store.join("index.sqlite")).unwrap() == before);
    // A writer brings it up to date; adding the same archive again takes
    // its three layer blobs from the store.
    ok(ferry(&store).args(["add", "--name", "again"]).arg(&out));
    assert_eq!(user_version(&store), ferry::store::SCHEMA_VERSION);
    let ls: serde_json::Value =
        serde_json::from_str(&ok(ferry(&store).args(["ls", "--json"]))).unwrap();
    let again = ls["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "again")
        .unwrap()
        .clone();
    assert_eq!(again["meta"]["split"]["reused_layers"], 3, "{again}");
    reads_everything_with(t.path(), &store, true, FIXTURE_KEY_V4);
}

#[test]
fn a_version_5_store_with_waiting_deltas_completes_their_set() {
    let (t, store) = fixture("v5");
    let before = std::fs::read(store.join("index.sqlite")).unwrap();
    assert_eq!(user_version(&store), 5);
    reads_everything_with(t.path(), &store, true, FIXTURE_KEY_V5);
    let status: serde_json::Value =
        serde_json::from_str(&ok(ferry(&store).args(["status", "--json"]))).unwrap();
    let waiting = status["waiting"].as_array().unwrap();
    assert_eq!(waiting.len(), 1, "{status}");
    assert_eq!(waiting[0]["missing"], serde_json::json!([1]), "{status}");
    assert!(std::fs::read(store.join("index.sqlite")).unwrap() == before);
    // Volume 1 brings the bases its waiting deltas need (the golden
    // volumes are unsigned, so the fixture's key is dropped first).
    ok(ferry(&store).args(["trust", "remove", &FIXTURE_KEY_V5[..16]]));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden");
    let out = ok(ferry(&store)
        .arg("unpack")
        .arg(golden.join("v7-volumes.ferry.001")));
    assert!(out.contains("added golden:twins"), "{out}");
    // It added what both volumes stored, the one unpacked before too.
    let ls: serde_json::Value =
        serde_json::from_str(&ok(ferry(&store).args(["ls", "--json"]))).unwrap();
    let snap = ls["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "golden:twins")
        .unwrap()
        .clone();
    assert_eq!(snap["new_bytes"], snap["stored"], "{snap}");
    let twins = t.path().join("twins");
    ok(ferry(&store)
        .args(["checkout", "golden:twins", "-o"])
        .arg(&twins));
    let digests = std::fs::read_to_string(golden.join("inputs.b3")).unwrap();
    let want = blake3::hash(&std::fs::read(&twins).unwrap())
        .to_hex()
        .to_string();
    assert!(
        digests.lines().any(|l| l == format!("twins a {want}")),
        "{digests}"
    );
    ok(ferry(&store).args(["verify", "--full"]));
}
