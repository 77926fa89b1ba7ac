//! Names are tags: adding new content under a name moves the name and keeps
//! the old snapshot (usable as a delta base) until it is removed; a pack
//! moves the name on the receiving side, and a replayed older pack cannot
//! move it back.

mod common;

use std::path::Path;

use common::*;

fn json(cmd: &mut std::process::Command) -> serde_json::Value {
    serde_json::from_str(&ok(cmd)).expect("JSON output")
}

fn names(store: &Path) -> Vec<String> {
    state(store).snapshots.into_iter().map(|(n, _)| n).collect()
}

fn exact(store: &Path, name: &str, original: &Path) {
    let out = original.with_extension("out");
    ok(ferry(store).args(["checkout", name, "-o"]).arg(&out));
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(original).unwrap(),
        "{name} is not {}",
        original.display()
    );
    std::fs::remove_file(out).unwrap();
}

#[test]
fn adding_new_content_under_a_name_moves_it_and_keeps_the_old_snapshot() {
    let t = tempfile::tempdir().unwrap();
    let (dir, s) = (t.path(), t.path().join("s"));
    let v1 = image(dir, "v1.tar", "app:latest", 1);
    let v2 = image(dir, "v2.tar", "app:latest", 2);
    let first = json(ferry(&s).arg("add").arg(&v1).arg("--json"));
    let old = first["blake3"].as_str().unwrap().to_string();
    let out = ok(ferry(&s).arg("add").arg(&v2));
    let kept = format!("app:latest@{}", &old[..16]);
    assert!(
        out.contains(&format!("app:latest: was {}", &old[..16])) && out.contains(&kept),
        "{out}"
    );
    assert_eq!(names(&s), vec![kept.clone(), "app:latest".to_string()]);
    exact(&s, "app:latest", &v2);
    exact(&s, &kept, &v1);
    // The old snapshot is a delta base for the new one.
    let pack = json(ferry(&s).args(["pack", "app:latest", "--base", &kept, "--dry-run", "--json"]));
    let full = json(ferry(&s).args(["pack", "app:latest", "--dry-run", "--json"]));
    assert!(
        pack["pack_bytes"].as_u64().unwrap() * 20 < full["pack_bytes"].as_u64().unwrap(),
        "{pack} {full}"
    );
    // Adding v1 again moves the name back; v1's content is still kept once.
    ok(ferry(&s).arg("add").arg(&v1));
    exact(&s, "app:latest", &v1);
    // --replace removes what the name named instead of keeping it.
    let out = ok(ferry(&s).arg("add").arg(&v2).arg("--replace"));
    assert!(out.contains("removed (--replace)"), "{out}");
    // gc --untagged removes the untagged snapshots, and their space.
    let r = json(ferry(&s).args(["gc", "--untagged", "--json"]));
    // v1's and v2's first snapshots: both lost the name once.
    assert_eq!(r["untagged_removed"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(names(&s), vec!["app:latest".to_string()]);
    exact(&s, "app:latest", &v2);
    ok(ferry(&s).args(["verify", "--full"]));
}

#[test]
fn a_pack_moves_the_name_on_the_receiver_and_a_replayed_older_pack_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (a, b) = (dir.join("a"), dir.join("b"));
    let v1 = image(dir, "v1.tar", "app:stable", 1);
    let v2 = image(dir, "v2.tar", "app:stable", 2);
    let (full1, update) = (dir.join("full1.ferry"), dir.join("update.ferry"));
    let old = json(ferry(&a).arg("add").arg(&v1).arg("--json"))["blake3"]
        .as_str()
        .unwrap()
        .to_string();
    ok(ferry(&a).args(["pack", "app:stable", "-o"]).arg(&full1));
    ok(ferry(&a).arg("add").arg(&v2));
    let kept = format!("app:stable@{}", &old[..16]);
    ok(ferry(&a)
        .args(["pack", "app:stable", "--base", &kept, "-o"])
        .arg(&update));
    assert!(file_size(&update) * 20 < file_size(&full1));

    ok(ferry(&b).arg("unpack").arg(&full1));
    exact(&b, "app:stable", &v1);
    let out = ok(ferry(&b).arg("unpack").arg(&update));
    assert!(
        out.contains(&format!("app:stable: was {}", &old[..16])) && out.contains(&kept),
        "{out}"
    );
    exact(&b, "app:stable", &v2);
    exact(&b, &kept, &v1);

    // The first pack again would move the name back to older content.
    let before = fingerprint(&b);
    fails(
        ferry(&b).arg("unpack").arg(&full1),
        &[
            "app:stable",
            "tagged earlier",
            "replayed",
            "Nothing was imported",
        ],
    );
    assert_eq!(fingerprint(&b), before);
    // The update again is a no-op.
    let again = json(ferry(&b).arg("unpack").arg(&update).arg("--json"));
    assert_eq!(again["present"][0], "app:stable");
}

#[test]
fn a_name_still_waiting_for_volumes_says_so() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (a, b) = (dir.join("a"), dir.join("b"));
    let f = write(dir, "blob", &random_bytes(5, 6 << 20));
    ok(ferry(&a).arg("add").arg(&f).args(["--name", "blob:1"]));
    let out = dir.join("v.ferry");
    ok(ferry(&a)
        .args(["pack", "blob:1", "--volume-size", "4M", "-o"])
        .arg(&out));
    ok(ferry(&b).arg("unpack").arg(dir.join("v.ferry.001")));
    fails(
        ferry(&b).args(["checkout", "blob:1", "-o", "-"]),
        &["'blob:1' is still waiting for volumes", "ferry status"],
    );
    fails(
        ferry(&b).args(["checkout", "blob:2", "-o", "-"]),
        &["no snapshot named 'blob:2'"],
    );
}
