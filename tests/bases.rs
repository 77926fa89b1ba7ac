//! Delta bases without `--base`: a pack for a receiver known through its
//! inventory or the peer ledger uses the snapshots it holds as bases, and
//! is as small as a `--base` pack; with nothing known, pack warns that it
//! ships everything and names the base that would help.

mod common;

use common::*;

fn bytes(cmd: &mut std::process::Command) -> u64 {
    let v: serde_json::Value = serde_json::from_str(&ok(cmd)).expect("JSON");
    v["pack_bytes"].as_u64().expect("pack_bytes")
}

#[test]
fn have_and_to_packs_are_as_small_as_base_packs_and_no_base_is_named() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (a, b) = (dir.join("a"), dir.join("b"));
    ok(ferry(&a).arg("add").arg(image(dir, "v1.tar", "app:1", 1)));
    let v2 = image(dir, "v2.tar", "app:2", 2);
    ok(ferry(&a).arg("add").arg(&v2));
    let full = dir.join("full.ferry");
    ok(ferry(&a)
        .args(["pack", "app:1", "--to", "site", "-o"])
        .arg(&full));
    ok(ferry(&b).arg("unpack").arg(&full));
    let have = dir.join("have.ferry");
    ok(ferry(&b).args(["inventory", "-o"]).arg(&have));

    let dry = ["pack", "app:2", "--dry-run", "--json"];
    let with_base = bytes(ferry(&a).args(dry).args(["--base", "app:1"]));
    let with_have = bytes(ferry(&a).args(dry).arg("--have").arg(&have));
    let with_to = bytes(ferry(&a).args(dry).args(["--to", "site"]));
    let whole = bytes(ferry(&a).args(dry));
    assert!(with_base * 10 < whole, "base {with_base} whole {whole}");
    for (how, n) in [("--have", with_have), ("--to", with_to)] {
        assert!(
            n as f64 <= 1.1 * with_base as f64,
            "{how} pack {n} bytes, --base pack {with_base}"
        );
    }
    // The --have pack unpacks on the receiver and rebuilds v2 exactly.
    let update = dir.join("update.ferry");
    let out = run(ferry(&a)
        .args(["pack", "app:2", "--have"])
        .arg(&have)
        .arg("-o")
        .arg(&update));
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("delta against app:1") && said.contains("inventory"),
        "{said}"
    );
    ok(ferry(&b).arg("unpack").arg(&update));
    let back = dir.join("v2.out");
    ok(ferry(&b).args(["checkout", "app:2", "-o"]).arg(&back));
    assert!(std::fs::read(back).unwrap() == std::fs::read(&v2).unwrap());

    // With nothing known of the receiver, pack says what would help.
    let out = run(ferry(&a)
        .args(["pack", "app:2", "-o"])
        .arg(dir.join("all.ferry")));
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("warning: no --base") && said.contains("--base 'app:1'"),
        "{said}"
    );
    // A first transfer (nothing older shares much with it) needs no warning.
    let out = run(ferry(&a)
        .args(["pack", "app:1", "-o"])
        .arg(dir.join("first.ferry")));
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}
