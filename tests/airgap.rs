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
    while kills < 20 && round < 12 {
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
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(kept > 0, "no chunk was committed before the kill");
    let out = ok(ferry(&b).arg("unpack").arg(&pack).arg("--json"));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let total = r["chunks"].as_u64().unwrap();
    let new = r["new_chunks"].as_u64().unwrap();
    assert!(
        new + kept as u64 <= total,
        "{r}: {kept} were kept by the killed run"
    );
    assert!(new < total, "{r}");
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
