//! Air-gap operations on the real binary: interrupted imports resume, and
//! `ferry verify` checks what is stored.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn verify_passes_on_a_good_store_and_names_the_snapshot_a_damaged_chunk_breaks() {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    let a = write(t.path(), "a.bin", &random_bytes(1, 3 << 20));
    let b = write(t.path(), "b.bin", &random_bytes(2, 2 << 20));
    ok(ferry(&s).arg("add").arg(&a));
    ok(ferry(&s).arg("add").arg(&b));
    let out = ok(ferry(&s).args(["verify", "--full"]));
    assert!(out.contains("store ok"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(ferry(&s).args(["verify", "--json"]))).unwrap();
    assert!(json["chunks"].as_u64().unwrap() > 40, "{json}");
    assert_eq!(json["snapshots"], 2);
    // Flip one byte in the middle of the data file: inside some chunk's payload
    // of a.bin (added first, so stored first).
    let data = s.join("data/00000001.dat");
    let mut bytes = std::fs::read(&data).unwrap();
    let at = bytes.len() / 4;
    bytes[at] ^= 0x40;
    std::fs::write(&data, &bytes).unwrap();
    // Locating chunks does not read payloads: the quick check still passes.
    ok(ferry(&s).arg("verify"));
    let line = fails(ferry(&s).args(["verify", "--full"]), &["damaged", "a.bin"]);
    assert!(!line.contains("b.bin"), "{line}");
    let json: serde_json::Value = serde_json::from_str(
        &String::from_utf8(run(ferry(&s).args(["verify", "--full", "--json"])).stdout).unwrap(),
    )
    .unwrap();
    assert_eq!(json["bad_chunks"].as_array().unwrap().len(), 1, "{json}");
    assert!(json["problems"]["a.bin"].is_array(), "{json}");
    assert!(json["problems"].get("b.bin").is_none(), "{json}");
}

#[test]
fn an_unpack_killed_at_any_point_completes_when_run_again_and_the_store_verifies() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    // Incompressible, so the pack is large enough for several commits.
    let data = random_bytes(7, 100 << 20);
    let input = write(t.path(), "big.bin", &data);
    ok(ferry(&a).arg("add").arg(&input));
    let pack = t.path().join("big.ferry");
    ok(ferry(&a).args(["pack", "big.bin", "-o"]).arg(&pack));
    // How long an uninterrupted unpack takes here.
    let probe = t.path().join("probe");
    let start = Instant::now();
    ok(ferry(&probe).arg("unpack").arg(&pack));
    let full = start.elapsed();
    let mut rng = Rng::new(99);
    let mut kills = 0;
    let mut round = 0;
    // Rounds go on until 20 kills landed: a resumed unpack skips what the
    // killed one kept, so later attempts of a round often finish first.
    while kills < 20 && round < 40 {
        round += 1;
        let b = t.path().join(format!("b{round}"));
        for _ in 0..6 {
            let delay = Duration::from_micros(rng.below(full.as_micros() as u64 * 9 / 10 + 1));
            let mut child = ferry(&b)
                .arg("unpack")
                .arg(&pack)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(delay);
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
            }
            child.wait().unwrap();
            // Whatever the moment, what the index holds is sound.
            if b.join("index.sqlite").exists() {
                let out = ok(ferry(&b).args(["verify", "--full"]));
                assert!(out.contains("store ok"), "{out}");
            }
        }
        let out = ok(ferry(&b).arg("unpack").arg(&pack).arg("--json"));
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            r["added"] == serde_json::json!(["big.bin"])
                || r["present"] == serde_json::json!(["big.bin"]),
            "{r}"
        );
        ok(ferry(&b).args(["verify", "--full"]));
        let back = t.path().join("back.bin");
        ok(ferry(&b).args(["checkout", "big.bin", "-o"]).arg(&back));
        assert!(std::fs::read(&back).unwrap() == data);
        std::fs::remove_file(&back).unwrap();
    }
    assert!(
        kills >= 20,
        "only {kills} runs were killed before they finished"
    );
}

#[test]
fn a_resumed_unpack_does_not_store_again_what_the_killed_one_kept() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let b = t.path().join("b");
    let data = random_bytes(8, 100 << 20);
    let input = write(t.path(), "big.bin", &data);
    ok(ferry(&a).arg("add").arg(&input));
    let pack = t.path().join("big.ferry");
    ok(ferry(&a).args(["pack", "big.bin", "-o"]).arg(&pack));
    // Kill once some chunks are committed (the data file has grown past a commit).
    let mut child = ferry(&b)
        .arg("unpack")
        .arg(&pack)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let kept = loop {
        let n: i64 = std::fs::metadata(b.join("index.sqlite"))
            .ok()
            .and_then(|_| rusqlite::Connection::open(b.join("index.sqlite")).ok())
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
                    .ok()
            })
            .unwrap_or(0);
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // It must still be running: a finished unpack would leave nothing to resume.
    assert!(
        child.try_wait().unwrap().is_none(),
        "the unpack finished before it could be killed ({kept} chunks seen)"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(kept > 0, "no chunk was committed before the kill");
    // What the killed run left is partial: chunks, but no snapshot yet.
    let kept_now: i64 = rusqlite::Connection::open(b.join("index.sqlite"))
        .unwrap()
        .query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
        .unwrap();
    assert!(
        kept_now >= kept,
        "{kept_now} chunks after the kill, {kept} before"
    );
    assert!(
        state(&b).snapshots.is_empty(),
        "the killed run imported big.bin"
    );
    let out = ok(ferry(&b).arg("unpack").arg(&pack).arg("--json"));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let total = r["chunks"].as_u64().unwrap();
    let new = r["new_chunks"].as_u64().unwrap();
    assert_eq!(
        new + kept_now as u64,
        total,
        "{r}: {kept_now} were kept by the killed run"
    );
    assert!(new > 0 && new < total, "{r}");
    assert_eq!(r["added"], serde_json::json!(["big.bin"]), "{r}");
    ok(ferry(&b).args(["verify", "--full"]));
}

#[test]
fn a_pack_found_corrupt_after_commits_leaves_the_store_exactly_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let b = t.path().join("b");
    let input = write(t.path(), "big.bin", &random_bytes(9, 90 << 20));
    ok(ferry(&a).arg("add").arg(&input));
    let pack = t.path().join("big.ferry");
    ok(ferry(&a).args(["pack", "big.bin", "-o"]).arg(&pack));
    let small = write(t.path(), "small.bin", &random_bytes(10, 1 << 20));
    ok(ferry(&b).arg("add").arg(&small));
    let before = state(&b);
    // Damage a chunk near the end: the chunks before it were committed on
    // the way, and must go again.
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = bytes.len() * 9 / 10;
    bytes[at] ^= 1;
    let bad = write(t.path(), "bad.ferry", &bytes);
    fails(ferry(&b).arg("unpack").arg(&bad), &["corrupt"]);
    assert_eq!(state(&b), before);
    ok(ferry(&b).args(["verify", "--full"]));
    let chunks: i64 = rusqlite::Connection::open(b.join("index.sqlite"))
        .unwrap()
        .query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
        .unwrap();
    assert!(chunks < 40, "{chunks} chunks left behind");
}

fn volumes_of(dir: &std::path::Path, stem: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(&format!("{stem}."))
                && n[stem.len() + 1..].chars().all(|c| c.is_ascii_digit())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn volumes_respect_the_size_exactly_and_unpack_in_any_order_with_status_showing_what_is_missing() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let data = random_bytes(11, 12 << 20);
    let input = write(t.path(), "app.bin", &data);
    ok(ferry(&a).arg("add").arg(&input));
    let limit: u64 = 3 << 20;
    let out = ok(ferry(&a)
        .args(["pack", "app.bin", "--volume-size", "3M", "--json", "-o"])
        .arg(t.path().join("up.ferry")));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let vols = volumes_of(t.path(), "up.ferry");
    assert!(vols.len() >= 4, "{vols:?}");
    assert_eq!(report["volumes"], vols.len());
    assert!(!t.path().join("up.ferry").exists());
    let sizes: Vec<u64> = vols.iter().map(|p| file_size(p)).collect();
    for (i, s) in sizes.iter().enumerate() {
        assert!(*s <= limit, "volume {} is {s} bytes", i + 1);
        if i + 1 < sizes.len() {
            // Filled evenly: within one chunk record of an even share.
            let even = report["pack_bytes"].as_u64().unwrap() / sizes.len() as u64;
            assert!(
                s.abs_diff(even) < (256 << 10) + 64,
                "volume {} is {s} bytes, an even share {even}",
                i + 1
            );
        }
    }
    assert_eq!(
        sizes.iter().sum::<u64>(),
        report["pack_bytes"].as_u64().unwrap()
    );
    // Out of order, with a duplicate; the snapshot appears with the last one.
    let order = [2usize, 0, 2, 3];
    for &i in &order {
        ok(ferry(&b).arg("unpack").arg(&vols[i]));
        let ls = ok(ferry(&b).args(["ls", "--json"]));
        assert!(
            !ls.contains("app.bin"),
            "visible before every volume arrived"
        );
    }
    let status: serde_json::Value =
        serde_json::from_str(&ok(ferry(&b).args(["status", "--json"]))).unwrap();
    let waiting = &status["waiting"][0];
    assert_eq!(waiting["snapshots"], serde_json::json!(["app.bin"]));
    let missing: Vec<u64> = waiting["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let expect: Vec<u64> = (1..=vols.len() as u64)
        .filter(|i| ![1, 3, 4].contains(i))
        .collect();
    assert_eq!(missing, expect);
    let text = ok(ferry(&b).arg("status"));
    assert!(text.contains("app.bin waiting for volume 2"), "{text}");
    for (i, v) in vols.iter().enumerate() {
        if !order.contains(&i) {
            ok(ferry(&b).arg("unpack").arg(v));
        }
    }
    assert!(ok(ferry(&b).arg("status")).contains("nothing waiting"));
    let back = t.path().join("back.bin");
    ok(ferry(&b).args(["checkout", "app.bin", "-o"]).arg(&back));
    assert!(std::fs::read(&back).unwrap() == data);
    ok(ferry(&b).args(["verify", "--full"]));
    // A volume of a complete set changes nothing.
    let before = state(&b);
    let again = ok(ferry(&b).arg("unpack").arg(&vols[1]));
    assert!(again.contains("imported before"), "{again}");
    assert_eq!(state(&b), before);
}

#[test]
fn volume_sizes_are_parsed_and_a_size_too_small_for_one_chunk_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let input = write(t.path(), "x.bin", &random_bytes(12, 2 << 20));
    ok(ferry(&a).arg("add").arg(&input));
    let o = t.path().join("x.ferry");
    fails(
        ferry(&a)
            .args(["pack", "x.bin", "--volume-size", "100K", "-o"])
            .arg(&o),
        &["too small", "--volume-size"],
    );
    fails(
        ferry(&a)
            .args(["pack", "x.bin", "--volume-size", "12Q", "-o"])
            .arg(&o),
        &["not a size"],
    );
    fails(
        ferry(&a).args(["pack", "x.bin", "--volume-size", "1M", "-o", "-"]),
        &["-o FILE"],
    );
    assert!(volumes_of(t.path(), "x.ferry").is_empty());
    // fat32: everything fits in one volume, still numbered.
    ok(ferry(&a)
        .args(["pack", "x.bin", "--volume-size", "fat32", "-o"])
        .arg(&o));
    assert_eq!(volumes_of(t.path(), "x.ferry").len(), 1);
}

#[test]
fn signed_packs_are_required_once_a_key_is_trusted_and_any_altered_byte_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let key = t.path().join("site.key");
    let other = t.path().join("other.key");
    let out = ok(ferry(&a).args(["key", "generate", "-o"]).arg(&key));
    assert!(out.contains("site.key.pub"), "{out}");
    ok(ferry(&a).args(["key", "generate", "-o"]).arg(&other));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    fails(
        ferry(&a).args(["key", "generate", "-o"]).arg(&key),
        &["exists"],
    );
    let img = image(t.path(), "app.tar", "app:1", 1);
    ok(ferry(&a).arg("add").arg(&img));
    let signed = t.path().join("signed.ferry");
    ok(ferry(&a)
        .args(["pack", "app:1", "--volume-size", "2M", "--sign"])
        .arg(&key)
        .arg("-o")
        .arg(&signed));
    let vols = volumes_of(t.path(), "signed.ferry");
    assert!(vols.len() >= 2);
    let unsigned = t.path().join("plain.ferry");
    ok(ferry(&a).args(["pack", "app:1", "-o"]).arg(&unsigned));
    let wrong = t.path().join("wrong.ferry");
    ok(ferry(&a)
        .args(["pack", "app:1", "--sign"])
        .arg(&other)
        .arg("-o")
        .arg(&wrong));
    // Nothing trusted yet: an unsigned pack is fine (checked on a scratch store).
    ok(ferry(&t.path().join("scratch"))
        .arg("unpack")
        .arg(&unsigned));
    // A secret key is not a trust anchor.
    fails(
        ferry(&b).args(["trust", "add"]).arg(&key),
        &["secret key", ".pub"],
    );
    ok(ferry(&b)
        .args(["trust", "add"])
        .arg(t.path().join("site.key.pub")));
    // Give the store something, so "unchanged" means something.
    ok(ferry(&b)
        .arg("add")
        .arg(write(t.path(), "x.bin", &random_bytes(3, 100_000))));
    let before = state(&b);
    fails(
        ferry(&b).arg("unpack").arg(&unsigned),
        &["not signed", "--sign"],
    );
    fails(
        ferry(&b).arg("unpack").arg(&wrong),
        &["does not trust", "ferry trust add"],
    );
    assert_eq!(state(&b), before);
    // A volume altered after signing, with its checksum recomputed so that
    // only the signature can tell: a byte of the snapshot record's metadata.
    let last = vols.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    let sig_and_trailer = 5 + 64 + 5 + 48;
    let body_len = bytes.len() - sig_and_trailer;
    let at = bytes[..body_len]
        .windows(8)
        .position(|w| w == b"app.tar\"")
        .expect("the snapshot's metadata names its source");
    bytes[at] = b'b';
    let digest = *blake3::hash(&bytes[..body_len]).as_bytes();
    bytes[body_len + 5 + 16..body_len + 5 + 48].copy_from_slice(&digest);
    let tampered = write(t.path(), "tampered.ferry", &bytes);
    for v in &vols[..vols.len() - 1] {
        ok(ferry(&b).arg("unpack").arg(v));
    }
    let before = state(&b);
    fails(
        ferry(&b).arg("unpack").arg(&tampered),
        &["signature does not match"],
    );
    assert_eq!(state(&b), before);
    assert!(!ok(ferry(&b).args(["ls"])).contains("app:1"));
    // The genuine last volume completes the set.
    let out = ok(ferry(&b).arg("unpack").arg(last).arg("--json"));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["added"], serde_json::json!(["app:1"]));
    assert!(r["signed_by"].as_str().unwrap().len() == 64, "{r}");
    let list: serde_json::Value =
        serde_json::from_str(&ok(ferry(&b).args(["trust", "list", "--json"]))).unwrap();
    let k = list["keys"][0]["key"].as_str().unwrap().to_string();
    ok(ferry(&b).args(["trust", "remove", &k[..10]]));
    assert!(ok(ferry(&b).args(["trust", "list"])).contains("no trusted keys"));
}

/// A sending store `a` holding app:1 and app:2 (their archives `v1`, `v2`)
/// and the path of an empty receiving store `b`.
fn two_versions() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let v1 = image(t.path(), "v1.tar", "app:1", 1);
    let v2 = image(t.path(), "v2.tar", "app:2", 2);
    ok(ferry(&a).arg("add").arg(&v1));
    ok(ferry(&a).arg("add").arg(&v2));
    (t, a, b, v1, v2)
}

#[test]
fn an_inventory_makes_a_pack_carry_only_what_the_receiver_lacks_whatever_the_image_came_from() {
    let (t, a, b, v1, v2) = two_versions();
    // The receiver got app:1 some other way, under another name.
    ok(ferry(&b)
        .arg("add")
        .arg(&v1)
        .args(["--name", "base-from-usb"]));
    let have = t.path().join("have.ferry");
    let out = ok(ferry(&b).args(["inventory", "--json", "-o"]).arg(&have));
    let inv: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(inv["chunks"].as_u64().unwrap() > 10);
    let full = t.path().join("full.ferry");
    let delta = t.path().join("delta.ferry");
    ok(ferry(&a).args(["pack", "app:2", "-o"]).arg(&full));
    let r: serde_json::Value = serde_json::from_str(&ok(ferry(&a)
        .args(["pack", "app:2", "--json", "--have"])
        .arg(&have)
        .arg("-o")
        .arg(&delta)))
    .unwrap();
    // The receiver holds app:1's content (under another name): the pack
    // uses it as the base, and leaves out what the inventory lists.
    assert_eq!(r["bases"], serde_json::json!(["app:1"]), "{r}");
    assert!(
        r["known_chunks"].as_u64().unwrap() + r["skipped_chunks"].as_u64().unwrap() > 0,
        "{r}"
    );
    assert!(
        file_size(&delta) * 10 < file_size(&full),
        "{} vs {}",
        file_size(&delta),
        file_size(&full)
    );
    ok(ferry(&b).arg("unpack").arg(&delta));
    let back = t.path().join("back.tar");
    ok(ferry(&b).args(["checkout", "app:2", "-o"]).arg(&back));
    assert!(std::fs::read(&back).unwrap() == std::fs::read(&v2).unwrap());
    // Another store lacks the base the inventory showed: refused, nothing
    // changed.
    let c = t.path().join("c");
    ok(ferry(&c)
        .arg("add")
        .arg(write(t.path(), "y.bin", &random_bytes(5, 10_000))));
    let before = state(&c);
    fails(
        ferry(&c).arg("unpack").arg(&delta),
        &["delta against app:1", "does not have"],
    );
    assert_eq!(state(&c), before);
    // A pack made from the inventory alone (no base to use: --no-deltas)
    // names the inventory when it does not fit.
    let known_only = t.path().join("known.ferry");
    ok(ferry(&a)
        .args(["pack", "app:2", "--no-deltas", "--have"])
        .arg(&have)
        .arg("-o")
        .arg(&known_only));
    fails(
        ferry(&c).arg("unpack").arg(&known_only),
        &["inventory", "ferry inventory"],
    );
    assert_eq!(state(&c), before);
    // A damaged inventory is refused with a clear line.
    let mut bytes = std::fs::read(&have).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    let bad = write(t.path(), "bad-have.ferry", &bytes);
    fails(
        ferry(&a)
            .args(["pack", "app:2", "--have"])
            .arg(&bad)
            .arg("-o")
            .arg(t.path().join("z.ferry")),
        &["inventory", "checksum"],
    );
}

#[test]
fn the_peer_ledger_skips_what_was_shipped_and_a_newer_inventory_replaces_it() {
    let (t, a, b, _v1, v2) = two_versions();
    let p1 = t.path().join("p1.ferry");
    let p2 = t.path().join("p2.ferry");
    ok(ferry(&a)
        .args(["pack", "app:1", "--to", "plant", "-o"])
        .arg(&p1));
    // No --base: the ledger knows what plant got.
    let r: serde_json::Value = serde_json::from_str(&ok(ferry(&a)
        .args(["pack", "app:2", "--to", "plant", "--json", "-o"])
        .arg(&p2)))
    .unwrap();
    assert!(file_size(&p2) * 10 < file_size(&p1), "{r}");
    ok(ferry(&b).arg("unpack").arg(&p1));
    ok(ferry(&b).arg("unpack").arg(&p2));
    let back = t.path().join("back.tar");
    ok(ferry(&b).args(["checkout", "app:2", "-o"]).arg(&back));
    assert!(std::fs::read(&back).unwrap() == std::fs::read(&v2).unwrap());
    let peers: serde_json::Value =
        serde_json::from_str(&ok(ferry(&a).args(["peers", "--json"]))).unwrap();
    let plant = &peers["peers"][0];
    assert_eq!(plant["name"], "plant");
    assert_eq!(plant["snapshots"], serde_json::json!(["app:1", "app:2"]));
    assert_eq!(plant["source"], "packs");
    // The plant's store was lost and rebuilt empty: its inventory says so,
    // and replaces the record.
    let fresh = t.path().join("fresh");
    ok(ferry(&fresh)
        .arg("add")
        .arg(write(t.path(), "z.bin", &random_bytes(6, 1000))));
    let have = t.path().join("have.ferry");
    ok(ferry(&fresh).args(["inventory", "-o"]).arg(&have));
    let p3 = t.path().join("p3.ferry");
    ok(ferry(&a)
        .args(["pack", "app:2", "--to", "plant", "--have"])
        .arg(&have)
        .arg("-o")
        .arg(&p3));
    assert!(
        file_size(&p3) > file_size(&p1) / 2,
        "the whole image ships again"
    );
    let peers: serde_json::Value =
        serde_json::from_str(&ok(ferry(&a).args(["peers", "--json"]))).unwrap();
    assert_eq!(
        peers["peers"][0]["snapshots"],
        serde_json::json!(["app:2", "z.bin"])
    );
    assert_eq!(peers["peers"][0]["source"], "inventory");
    ok(ferry(&fresh).arg("unpack").arg(&p3));
}
