//! `ferry inspect` through the real binary: what full packs, delta packs
//! and signed volumes hold, checked against stores that have or lack what
//! they need, the same one-line errors as `unpack` for damaged packs, and
//! never a change to the store.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `ferry inspect PACKS...`.
fn cmd(store: &Path, packs: &[impl AsRef<Path>]) -> std::process::Command {
    let mut c = ferry(store);
    c.arg("inspect");
    for p in packs {
        c.arg(p.as_ref());
    }
    c
}

/// `ferry inspect --json` of `packs`, parsed.
fn inspect_json(store: &Path, packs: &[impl AsRef<Path>]) -> Vec<Value> {
    let out = ok(cmd(store, packs).arg("--json"));
    let v: Value = serde_json::from_str(&out).expect("inspect --json is JSON");
    v.as_array().expect("an array").clone()
}

/// `ferry inspect` of `packs`, as printed.
fn inspect(store: &Path, packs: &[impl AsRef<Path>]) -> String {
    ok(&mut cmd(store, packs))
}

/// The volumes `ferry pack -o DIR/STEM --volume-size` wrote, in order.
fn volumes_of(dir: &Path, stem: &str) -> Vec<PathBuf> {
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
fn full_and_delta_packs_show_their_snapshots_chunks_and_bases_against_the_store() {
    let s = setup();
    let none = s.dir.join("no-store");
    // No store: everything in the pack, nothing checked, nothing created.
    let full = &inspect_json(&none, &[&s.full])[0];
    assert_eq!(full["version"], ferry::pack::format::VERSION);
    assert!(full["writer"].as_str().unwrap().starts_with("ferry "));
    assert!(full["created"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(full["pack_bytes"], file_size(&s.full));
    assert_eq!(full["bases"], serde_json::json!([]));
    assert_eq!(full["signer"], Value::Null);
    assert_eq!(full["volume"], Value::Null);
    assert_eq!(full["store"], Value::Null);
    let snap = &full["snapshots"][0];
    assert_eq!(snap["name"], "app:1");
    assert_eq!(snap["tags"], serde_json::json!(["app:1"]));
    assert_eq!(snap["in_store"], Value::Null);
    let ls: Value = serde_json::from_str(&ok(ferry(&s.offline).args(["ls", "--json"]))).unwrap();
    assert_eq!(snap["size"], ls["snapshots"][0]["size"]);
    assert_eq!(snap["blake3"], ls["snapshots"][0]["blake3"]);
    let c = &full["chunks"];
    let total = c["total"].as_u64().unwrap();
    assert!(total > 10, "{c}");
    assert_eq!(
        c["whole"].as_u64().unwrap()
            + c["delta"].as_u64().unwrap()
            + c["grouped"].as_u64().unwrap(),
        total
    );
    assert!(c["payload_bytes"].as_u64().unwrap() < file_size(&s.full));
    let text = inspect(&none, &[&s.full]);
    let version = format!("version {}", ferry::pack::format::VERSION);
    for want in [
        version.as_str(),
        "app:1",
        "none (a full pack)",
        "unsigned",
        "not checked (no store at",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(!none.exists(), "inspect created a store");

    // The delta against a store holding its base, and one lacking it.
    let before = fingerprint(&s.offline);
    let both = inspect_json(&s.offline, &[&s.full, &s.update]);
    assert_eq!(both.len(), 2);
    assert_eq!(
        both[0]["snapshots"][0]["in_store"],
        serde_json::json!(["app:1"])
    );
    let delta = &both[1];
    assert_eq!(delta["snapshots"][0]["name"], "app:2");
    assert_eq!(delta["snapshots"][0]["in_store"], serde_json::json!([]));
    assert_eq!(delta["bases"][0]["name"], "app:1");
    assert_eq!(delta["bases"][0]["status"], "present");
    assert_eq!(delta["bases"][0]["blake3"], snap["blake3"]);
    assert!(
        delta["chunks"]["total"].as_u64().unwrap() < total / 2,
        "{}",
        delta["chunks"]
    );
    assert_eq!(delta["store"], s.offline.display().to_string());
    let text = inspect(&s.offline, &[&s.update]);
    assert!(
        text.lines()
            .any(|l| l.contains("bases") && l.contains("app:1") && l.ends_with("present")),
        "{text}"
    );
    assert_eq!(fingerprint(&s.offline), before, "inspect changed the store");

    let lacking = s.dir.join("lacking");
    ok(ferry(&lacking)
        .arg("add")
        .arg(write(&s.dir, "other.bin", &random_bytes(5, 50_000))));
    let before = fingerprint(&lacking);
    let delta = &inspect_json(&lacking, &[&s.update])[0];
    assert_eq!(delta["bases"][0]["status"], "missing");
    let text = inspect(&lacking, &[&s.update]);
    assert!(
        text.lines()
            .any(|l| l.contains("app:1") && l.ends_with("missing")),
        "{text}"
    );
    assert_eq!(fingerprint(&lacking), before, "inspect changed the store");
    // The same bytes as app:1, split otherwise: unpack would refuse it.
    let other = s.dir.join("other");
    ok(ferry(&other)
        .args(["add", "--no-tar-split"])
        .arg(s.dir.join("v1.tar")));
    let delta = &inspect_json(&other, &[&s.update])[0];
    assert_eq!(delta["bases"][0]["status"], "split differently");
    // Against no store, a base is not checked.
    let text = inspect(&none, &[&s.update]);
    assert!(
        text.lines()
            .any(|l| l.contains("app:1") && l.ends_with("not checked")),
        "{text}"
    );
}

#[test]
fn a_signed_volume_shows_its_set_its_place_and_whether_its_signer_is_trusted() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let key = t.path().join("site.key");
    ok(ferry(&a).args(["key", "generate", "-o"]).arg(&key));
    ok(ferry(&a)
        .arg("add")
        .arg(write(t.path(), "app.bin", &random_bytes(7, 4608 << 10))));
    ok(ferry(&a)
        .args(["pack", "app.bin", "--volume-size", "2M", "--sign"])
        .arg(&key)
        .arg("-o")
        .arg(t.path().join("set.ferry")));
    let vols = volumes_of(t.path(), "set.ferry");
    assert_eq!(vols.len(), 3, "{vols:?}");
    let public = std::fs::read_to_string(t.path().join("site.key.pub")).unwrap();
    let key_hex = public.split(' ').nth(1).unwrap().to_string();

    ok(ferry(&b)
        .arg("add")
        .arg(write(t.path(), "x.bin", &random_bytes(3, 100_000))));
    let before = fingerprint(&b);
    let all = inspect_json(&b, &[&vols[0], &vols[1], &vols[2]]);
    let v2 = &all[1];
    assert_eq!(v2["volume"]["index"], 2);
    assert_eq!(v2["volume"]["count"], 3);
    assert_eq!(v2["volume"]["received"], false);
    assert_eq!(v2["volume"]["set"], all[0]["volume"]["set"]);
    assert_eq!(v2["volume"]["set"], all[2]["volume"]["set"]);
    assert_eq!(v2["volume"]["set"].as_str().unwrap().len(), 32);
    assert_eq!(v2["signer"]["key"], key_hex.as_str());
    assert_eq!(v2["signer"]["signature"], "verified");
    assert_eq!(v2["signer"]["trusted"], false);
    assert_eq!(v2["signature_required"], false);
    // Every volume names the snapshot; only the last carries its record.
    assert_eq!(v2["snapshots"][0]["name"], "app.bin");
    assert_eq!(v2["snapshots"][0]["size"], Value::Null);
    assert_eq!(all[2]["snapshots"][0]["size"], 4608 << 10);
    let text = inspect(&b, &[&vols[1]]);
    for want in [
        "volume 2 of 3",
        &key_hex[..16],
        "signature verified",
        "not trusted here",
        "ferry trust add",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }

    ok(ferry(&b)
        .args(["trust", "add"])
        .arg(t.path().join("site.key.pub")));
    let before_trusted = fingerprint(&b);
    assert_ne!(before_trusted, before);
    let v2 = &inspect_json(&b, &[&vols[1]])[0];
    assert_eq!(v2["signer"]["trusted"], true);
    assert_eq!(v2["signature_required"], true);
    let text = inspect(&b, &[&vols[1]]);
    assert!(
        text.contains("trusted here") && !text.contains("not trusted"),
        "{text}"
    );
    // An unsigned pack, against a store that requires signatures.
    ok(ferry(&a)
        .args(["pack", "app.bin", "-o"])
        .arg(t.path().join("plain.ferry")));
    let text = inspect(&b, &[&t.path().join("plain.ferry")]);
    assert!(text.contains("accepts only signed packs"), "{text}");
    assert_eq!(fingerprint(&b), before_trusted, "inspect changed the store");

    // Once unpacked, the volume says so.
    ok(ferry(&b).arg("unpack").arg(&vols[1]));
    let v2 = &inspect_json(&b, &[&vols[1]])[0];
    assert_eq!(v2["volume"]["received"], true);

    // A signature that does not hold is unpack's line.
    let forged = t.path().join("forged.ferry");
    let mut bytes = std::fs::read(&vols[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&forged, &bytes).unwrap();
    fails(
        ferry(&b).arg("inspect").arg(&forged),
        &["signature does not match", "forged.ferry"],
    );
}

#[test]
fn damaged_packs_fail_with_unpacks_one_line_and_the_store_unchanged() {
    let s = setup();
    let bytes = std::fs::read(&s.update).unwrap();
    let cut = write(&s.dir, "cut.ferry", &bytes[..bytes.len() / 2]);
    let before = fingerprint(&s.offline);
    let line = fails(
        ferry(&s.offline).arg("inspect").arg(&cut),
        &["truncated", "cut.ferry"],
    );
    let scratch = s.dir.join("scratch");
    ok(ferry(&scratch).arg("unpack").arg(&s.full));
    let unpack_line = fails(ferry(&scratch).arg("unpack").arg(&cut), &["truncated"]);
    assert_eq!(line, unpack_line);
    // Among good ones, the damaged file fails the whole command.
    fails(
        ferry(&s.offline)
            .args(["inspect", "--json"])
            .arg(&s.full)
            .arg(&cut),
        &["truncated", "cut.ferry"],
    );
    // A byte of the trailer's digest.
    let mut flipped = bytes.clone();
    flipped[bytes.len() - 1] ^= 1;
    let bad = write(&s.dir, "bad.ferry", &flipped);
    fails(
        ferry(&s.offline).arg("inspect").arg(&bad),
        &["corrupt", "bad.ferry"],
    );
    fails(
        ferry(&s.offline)
            .arg("inspect")
            .arg(s.dir.join("nothere.ferry")),
        &["nothere.ferry"],
    );
    assert_eq!(fingerprint(&s.offline), before, "inspect changed the store");
}

#[test]
fn every_golden_pack_version_is_inspected_and_the_broken_ones_refused() {
    let t = tempfile::tempdir().unwrap();
    let none = t.path().join("no-store");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden");
    let newest = ferry::pack::format::VERSION;
    for v in 1..=newest {
        let full = golden.join(format!("v{v}-full.ferry"));
        let delta = golden.join(format!("v{v}-delta.ferry"));
        let both = inspect_json(&none, &[&full, &delta]);
        assert_eq!(both[0]["version"], v);
        assert_eq!(both[1]["version"], v);
        assert_eq!(both[0]["bases"], serde_json::json!([]));
        let base = &both[1]["bases"][0];
        assert_eq!(base["name"], both[0]["snapshots"][0]["name"], "v{v}");
        assert_eq!(base["blake3"], both[0]["snapshots"][0]["blake3"], "v{v}");
        assert_eq!(base["status"], Value::Null);
        assert!(both[0]["chunks"]["total"].as_u64().unwrap() > 0, "v{v}");
    }
    fails(
        ferry(&none)
            .arg("inspect")
            .arg(golden.join("broken-header.ferry")),
        &["pack is corrupt", "header"],
    );
    fails(
        ferry(&none)
            .arg("inspect")
            .arg(golden.join("broken-truncated.ferry")),
        &["pack is truncated"],
    );
    assert!(!none.exists(), "inspect created a store");
}
