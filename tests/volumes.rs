//! Volume sets end to end: unpacking several files or a directory, stale
//! volumes of an earlier pack to the same name, discarding a waiting set,
//! and the minimum volume size with evenly filled volumes.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The volumes `dir/stem.NNN`, sorted.
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

/// A store holding `app.bin`, `mib` MiB of random bytes.
fn store_with(dir: &Path, mib: usize) -> PathBuf {
    let a = dir.join("a");
    let input = write(dir, "app.bin", &random_bytes(mib as u64, mib << 20));
    ok(ferry(&a).arg("add").arg(&input));
    a
}

/// Packs app.bin into volumes of `size` at `dir/out/name`; returns them.
fn pack(a: &Path, dir: &Path, name: &str, size: &str) -> (String, Vec<PathBuf>) {
    let out = dir.join(name);
    let text = ok(ferry(a)
        .args(["pack", "app.bin", "--volume-size", size, "-o"])
        .arg(&out));
    (text, volumes_of(out.parent().unwrap(), name))
}

fn waiting(store: &Path) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&ok(ferry(store).args(["status", "--json"]))).unwrap();
    v["waiting"].as_array().unwrap().clone()
}

#[test]
fn unpack_takes_several_files_in_any_order_or_a_directory_and_stops_at_a_bad_one() {
    let t = tempfile::tempdir().unwrap();
    let a = store_with(t.path(), 3);
    std::fs::create_dir(t.path().join("usb")).unwrap();
    let (_, vols) = pack(&a, &t.path().join("usb"), "update.ferry", "1M");
    assert!(vols.len() >= 3, "{vols:?}");

    // Several files, as a shell glob gives them, in reverse order.
    let b = t.path().join("b");
    let mut cmd = ferry(&b);
    cmd.arg("unpack");
    for v in vols.iter().rev() {
        cmd.arg(v);
    }
    let out = ok(&mut cmd);
    assert_eq!(out.lines().count(), vols.len(), "{out}");
    assert!(out.contains("added app.bin"), "{out}");
    assert!(waiting(&b).is_empty());
    assert!(ok(ferry(&b).args(["ls"])).contains("app.bin"));

    // A directory, as JSON: an array, one object per file, by name.
    let c = t.path().join("c");
    let out = ok(ferry(&c)
        .arg("unpack")
        .arg(t.path().join("usb"))
        .arg("--json"));
    let arr: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(arr.len(), vols.len());
    for (r, v) in arr.iter().zip(&vols) {
        assert_eq!(r["file"], v.to_str().unwrap());
    }
    assert_eq!(arr.last().unwrap()["added"], serde_json::json!(["app.bin"]));
    // The text form says which files the directory gave.
    let e = t.path().join("e");
    let out = ok(ferry(&e).arg("unpack").arg(t.path().join("usb")));
    assert!(
        out.contains("taking update.ferry.001, update.ferry.002"),
        "{out}"
    );

    // One file prints what it always did: an object, no "file".
    let d = t.path().join("d");
    let one: serde_json::Value =
        serde_json::from_str(&ok(ferry(&d).arg("unpack").arg(&vols[0]).arg("--json"))).unwrap();
    assert!(one.is_object() && one.get("file").is_none(), "{one}");

    // A bad file stops the run, named; the file before it stays imported.
    let bad = write(t.path(), "bad.ferry", b"not a pack at all, just text");
    let f = t.path().join("f");
    let line = fails(
        ferry(&f)
            .arg("unpack")
            .arg(&vols[0])
            .arg(&bad)
            .arg(&vols[1]),
        &["bad.ferry", "1 file before it"],
    );
    assert!(!line.contains("update.ferry.002"), "{line}");
    let w = waiting(&f);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0]["received"], serde_json::json!([1]));

    // A missing file among several changes nothing.
    let before = fingerprint(&f);
    fails(
        ferry(&f)
            .arg("unpack")
            .arg(&vols[1])
            .arg(t.path().join("nope.ferry")),
        &["nope.ferry"],
    );
    assert_eq!(fingerprint(&f), before);
    // '-' is one pack, alone; a directory without packs is refused.
    fails(
        ferry(&f).args(["unpack", "-"]).arg(&vols[1]),
        &["'-'", "alone"],
    );
    std::fs::create_dir(t.path().join("empty")).unwrap();
    fails(
        ferry(&f).arg("unpack").arg(t.path().join("empty")),
        &["no pack files"],
    );
    assert_eq!(fingerprint(&f), before);
}

#[test]
fn repacking_to_the_same_name_removes_stale_volumes_and_status_tells_sets_apart() {
    let t = tempfile::tempdir().unwrap();
    let a = store_with(t.path(), 3);
    let dir = t.path();
    let (_, first) = pack(&a, dir, "update.ferry", "512K");
    assert!(first.len() >= 6, "{first:?}");
    let old_last = dir.join("old-last");
    std::fs::copy(first.last().unwrap(), &old_last).unwrap();
    // Something else with a volume-like name stays.
    let other = write(dir, "update.ferry.999", b"my notes, not a pack");

    let (text, second) = pack(&a, dir, "update.ferry", "1M");
    let second: Vec<PathBuf> = second.into_iter().filter(|p| *p != other).collect();
    assert!(second.len() < first.len(), "{second:?}");
    let gone = first.last().unwrap().file_name().unwrap().to_string_lossy();
    assert!(
        text.contains(&format!(
            "removed stale {}",
            first.last().unwrap().display()
        )),
        "{text}"
    );
    assert!(text.contains("from an earlier set"), "{text}");
    assert!(!dir.join(&*gone).exists());
    assert!(other.exists());
    assert_eq!(
        volumes_of(dir, "update.ferry"),
        [second.clone(), vec![other.clone()]].concat()
    );

    // The directory now unpacks to a complete set (the non-pack file aside).
    std::fs::remove_file(&other).unwrap();
    let b = t.path().join("b");
    ok(ferry(&b).arg("unpack").arg(dir.join("update.ferry.001")));
    // A volume of the earlier set, given with the new set's, is its own set.
    let mut cmd = ferry(&b);
    cmd.arg("unpack").arg(&old_last);
    for v in &second[1..] {
        cmd.arg(v);
    }
    let out = ok(&mut cmd);
    assert!(out.contains("the sets are separate"), "{out}");
    let w = waiting(&b);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0]["count"].as_u64().unwrap(), first.len() as u64);
    let status = ok(ferry(&b).arg("status"));
    assert!(
        status.contains(&format!("set {}", &w[0]["set"].as_str().unwrap()[..12])),
        "{status}"
    );

    // A single pack to the name removes the volumes, and volumes the single pack.
    let single = dir.join("update.ferry");
    let text = ok(ferry(&a).args(["pack", "app.bin", "-o"]).arg(&single));
    assert!(volumes_of(dir, "update.ferry").is_empty(), "{text}");
    assert!(text.contains("removed stale"), "{text}");
    let (text, vols) = pack(&a, dir, "update.ferry", "1M");
    assert!(!single.exists(), "{text}");
    assert!(text.contains("these volumes replace it"), "{text}");
    assert_eq!(vols.len(), second.len());
}

#[test]
fn two_waiting_sets_of_the_same_snapshots_are_told_apart_and_one_discarded() {
    let t = tempfile::tempdir().unwrap();
    let a = store_with(t.path(), 2);
    let (_, x) = pack(&a, t.path(), "x.ferry", "512K");
    let (_, y) = pack(&a, t.path(), "y.ferry", "1M");
    let b = t.path().join("b");
    ok(ferry(&b).arg("unpack").arg(&x[0]).arg(&y[0]));
    let w = waiting(&b);
    assert_eq!(w.len(), 2, "{w:?}");
    let text = ok(ferry(&b).arg("status"));
    let (sx, sy) = (
        w[0]["set"].as_str().unwrap().to_string(),
        w[1]["set"].as_str().unwrap().to_string(),
    );
    assert!(text.contains(&format!("set {}", &sx[..12])), "{text}");
    assert!(text.contains(&format!("set {}", &sy[..12])), "{text}");
    assert!(text.contains("carry the same snapshots"), "{text}");
    let out = ok(ferry(&b).args(["status", "--discard", &sx[..8]]));
    assert!(
        out.contains(&format!("discarded set {}", &sx[..12])),
        "{out}"
    );
    let w = waiting(&b);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0]["set"], sy.as_str());
    let out = ok(ferry(&b).args(["status", "--discard", "all"]));
    assert!(out.contains(&sy[..12]), "{out}");
    assert!(waiting(&b).is_empty());
}

#[test]
fn status_discard_drops_a_waiting_set_and_gc_reclaims_its_chunks() {
    let t = tempfile::tempdir().unwrap();
    let a = store_with(t.path(), 2);
    let (_, vols) = pack(&a, t.path(), "up.ferry", "1M");
    assert!(vols.len() >= 3, "{vols:?}");
    let b = t.path().join("b");
    ok(ferry(&b).arg("unpack").arg(&vols[0]));
    let w = waiting(&b);
    assert_eq!(w.len(), 1);
    let set = w[0]["set"].as_str().unwrap().to_string();

    // Unknown, too short or not hex: one line, the store unchanged.
    let before = fingerprint(&b);
    let other = format!(
        "{}{}",
        if set.starts_with('0') { "1" } else { "0" },
        &set[1..8]
    );
    fails(
        ferry(&b).args(["status", "--discard", &other]),
        &["no waiting volume set", &other],
    );
    fails(
        ferry(&b).args(["status", "--discard", &set[..6]]),
        &["at least 8 hex digits"],
    );
    fails(
        ferry(&b).args(["status", "--discard", "zzzzzzzz"]),
        &["at least 8 hex digits"],
    );
    assert_eq!(fingerprint(&b), before);

    let out = ok(ferry(&b).args(["status", "--discard", &set[..8]]));
    assert!(
        out.contains(&format!("discarded set {}", &set[..12])),
        "{out}"
    );
    assert!(out.contains("app.bin"), "{out}");
    assert!(waiting(&b).is_empty());
    assert!(ok(ferry(&b).arg("status")).contains("nothing waiting"));
    let gc: serde_json::Value =
        serde_json::from_str(&ok(ferry(&b).args(["gc", "--json"]))).unwrap();
    assert!(gc["dead_chunks"].as_u64().unwrap() > 0, "{gc}");
    // Discarding again finds nothing.
    fails(
        ferry(&b).args(["status", "--discard", &set[..8]]),
        &["no waiting volume set"],
    );
    // The set can still be unpacked whole afterwards.
    let mut cmd = ferry(&b);
    cmd.arg("unpack").args(&vols);
    assert!(ok(&mut cmd).contains("added app.bin"));
}

#[test]
fn volumes_are_filled_evenly_and_a_size_below_the_minimum_is_refused_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let a = store_with(t.path(), 9);
    let limit: u64 = 2 << 20;
    let (_, vols) = pack(&a, t.path(), "even.ferry", "2M");
    assert!(vols.len() >= 4, "{vols:?}");
    let sizes: Vec<u64> = vols.iter().map(|p| file_size(p)).collect();
    let mean = sizes.iter().sum::<u64>() as f64 / sizes.len() as f64;
    for (i, &s) in sizes.iter().enumerate() {
        assert!(s <= limit, "volume {} is {s} bytes: {sizes:?}", i + 1);
        // The last one too: it is not what is left over.
        assert!(
            (s as f64 - mean).abs() <= 0.25 * mean,
            "volume {} is {s} bytes, the mean {mean}: {sizes:?}",
            i + 1
        );
    }
    // No more volumes than the total needs.
    let total: u64 = sizes.iter().sum();
    assert!(
        (sizes.len() as u64) <= total.div_ceil(limit - 4096),
        "{sizes:?}"
    );
    let b = t.path().join("b");
    ok(ferry(&b).arg("unpack").args(&vols));
    ok(ferry(&b).args(["verify", "--full"]));

    // One minimum, whatever the pack: 384 KiB.
    for size in ["20K", "25K", "383K"] {
        let before = fingerprint(&a);
        fails(
            ferry(&a)
                .args(["pack", "app.bin", "--volume-size", size, "-o"])
                .arg(t.path().join("small.ferry")),
            &["too small", "393216", "--volume-size"],
        );
        assert_eq!(fingerprint(&a), before);
    }
    assert!(volumes_of(t.path(), "small.ferry").is_empty());
    let (_, vols) = pack(&a, t.path(), "small.ferry", "384K");
    assert!(vols.iter().all(|v| file_size(v) <= 384 << 10));
    let help = ok(ferry(&a).args(["pack", "--help"]));
    assert!(help.contains("at least 384K"), "{help}");
}

/// Packs `name` from store `a` to `out` (with `--volume-size size`, if
/// any) and returns the report.
fn pack_json(a: &Path, name: &str, out: &Path, size: Option<&str>) -> serde_json::Value {
    let mut cmd = ferry(a);
    cmd.args(["pack", name, "--json", "-o"]).arg(out);
    if let Some(size) = size {
        cmd.args(["--volume-size", size]);
    }
    serde_json::from_str(&ok(&mut cmd)).unwrap()
}

#[test]
fn a_delta_keeps_its_base_in_another_volume_and_waits_for_it_in_any_order() {
    let t = tempfile::tempdir().unwrap();
    // Two near copies of 1.5 MiB of random bytes: the second one's chunks
    // go as deltas against the first one's, sent earlier in the pack.
    let first = random_bytes(41, 3 << 19);
    let mut second = first.clone();
    for i in (0..second.len()).step_by(9000) {
        second[i] ^= 0xff;
    }
    let input = write(t.path(), "twins.bin", &[first, second].concat());
    let a = t.path().join("a");
    ok(ferry(&a).arg("add").arg(&input));

    let whole = pack_json(&a, "twins.bin", &t.path().join("whole.ferry"), None);
    let split = pack_json(&a, "twins.bin", &t.path().join("v.ferry"), Some("400K"));
    let vols = volumes_of(t.path(), "v.ferry");
    assert!(vols.len() >= 4, "{vols:?}");
    // Random bytes stay out of solid blocks: the near copy goes as deltas
    // against the first copy's chunks, whole or split, and splitting keeps
    // every delta and costs only the volumes' own headers.
    assert!(whole["delta_chunks"].as_u64().unwrap() >= 10, "{whole}");
    assert_eq!(split["delta_chunks"], whole["delta_chunks"], "{split}");
    let (w, s) = (
        whole["pack_bytes"].as_u64().unwrap(),
        split["pack_bytes"].as_u64().unwrap(),
    );
    assert!(s <= w + 2048 * vols.len() as u64, "{s} against {w}");
    let sizes: Vec<u64> = vols.iter().map(|p| file_size(p)).collect();
    assert_eq!(sizes.iter().sum::<u64>(), s);
    assert!(sizes.iter().all(|&v| v <= 400 << 10), "{sizes:?}");

    // The volume with the deltas first: they wait for their bases.
    let b = t.path().join("b");
    let last = vols.last().unwrap();
    let out = ok(ferry(&b).arg("unpack").arg(last));
    assert!(out.contains("delta chunks kept until"), "{out}");
    // What they wait for stays through a gc (which may not drop a base).
    ok(ferry(&b).arg("gc"));
    ok(ferry(&b).args(["verify", "--full"]));
    for v in vols[..vols.len() - 1].iter().rev() {
        ok(ferry(&b).arg("unpack").arg(v));
    }
    assert!(waiting(&b).is_empty());
    // The snapshot added everything its set's volumes stored, not only
    // what the last one did (the store held nothing before).
    let ls: serde_json::Value =
        serde_json::from_str(&ok(ferry(&b).args(["ls", "--json"]))).unwrap();
    let snap = &ls["snapshots"][0];
    assert_eq!(snap["new_bytes"], snap["stored"], "{snap}");
    let back = t.path().join("back.bin");
    ok(ferry(&b).args(["checkout", "twins.bin", "-o"]).arg(&back));
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(&input).unwrap()
    );
    ok(ferry(&b).args(["verify", "--full"]));

    // A set discarded while deltas wait leaves nothing waiting behind.
    let c = t.path().join("c");
    ok(ferry(&c).arg("unpack").arg(last));
    ok(ferry(&c).args(["status", "--discard", "all"]));
    let mut cmd = ferry(&c);
    cmd.arg("unpack").args(vols.iter().rev());
    assert!(ok(&mut cmd).contains("added twins.bin"));
    ok(ferry(&c).args(["verify", "--full"]));
}
