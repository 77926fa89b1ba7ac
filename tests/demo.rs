//! `ferry demo`, the README's first command, on the real binary: it exits
//! 0, its rebuilt image is byte-identical to the one it made, the BLAKE3 it
//! reports is that image's, and with `--dir` it keeps every file it names,
//! stores included, in a state the other commands accept.

mod common;

use common::*;
use std::path::Path;

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The line of `out` that contains `needle`.
fn line<'a>(out: &'a str, needle: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
}

#[test]
fn demo_runs_the_whole_flow_and_keeps_its_files() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("demo");
    let out = ok(std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .env_remove("FERRY_STORE")
        .env("HOME", t.path())
        .args(["demo", "--dir"])
        .arg(&d));
    assert!(
        out.trim_end()
            .ends_with("demo finished: every step verified"),
        "{out}"
    );
    for f in [
        "app-v1.tar",
        "app-v2.tar",
        "full.ferry",
        "update.ferry",
        "app-v2.rebuilt.tar",
        "connected-store",
        "offline-store",
        "plain-store",
    ] {
        assert!(d.join(f).exists(), "demo did not keep {f}");
    }
    // The images are the documented sample images.
    let v1 = read(&d.join("app-v1.tar"));
    let v2 = read(&d.join("app-v2.tar"));
    let sample = t.path().join("sample.tar");
    ferry::demo::write_sample_image(&sample, 2).unwrap();
    assert!(read(&sample) == v2, "app-v2.tar is not sample image 2");
    assert!(v1 != v2);
    // The byte-exact check it reports is true, and the BLAKE3 is v2's.
    assert!(read(&d.join("app-v2.rebuilt.tar")) == v2);
    let checkout = line(&out, "ferry checkout demo/app:2");
    let v2_hash = blake3::hash(&v2).to_hex().to_string();
    assert!(
        checkout.contains(&format!("BLAKE3 {}", &v2_hash[..16]))
            && checkout.contains("verified, byte-identical to app-v2.tar"),
        "{checkout}"
    );
    // The offline store got both images from the packs and holds them intact.
    let unpacked = line(&out, "ferry unpack update.ferry");
    assert!(unpacked.ends_with("snapshots demo/app:2"), "{unpacked}");
    let offline = d.join("offline-store");
    let snaps = state(&offline).snapshots;
    let v1_hash = blake3::hash(&v1).to_hex().to_string();
    assert_eq!(
        snaps,
        vec![
            ("demo/app:1".to_string(), v1_hash),
            ("demo/app:2".to_string(), v2_hash)
        ]
    );
    assert!(ok(ferry(&offline).args(["verify", "--full"])).contains("store ok"));
    // The update is the delta it claims: a small fraction of the image.
    let update = file_size(&d.join("update.ferry"));
    let full = file_size(&d.join("full.ferry"));
    assert!(update * 20 < v2.len() as u64, "update of {update} bytes");
    assert!(update * 10 < full, "update {update}, full {full}");
    let shown = ferry::chart::human(update);
    assert!(
        line(&out, "ferry delta pack").contains(&shown),
        "the delta size is not {shown}:\n{out}"
    );
    // The summary says what each of ferry's ideas saved, as measured, and
    // no share is rounded away to nothing.
    let summary = line(&out, "update: ");
    for part in [
        "with ferry;",
        "without tar-aware splitting;",
        "without similarity deltas;",
        "without either;",
        "gzip: ",
    ] {
        assert!(summary.contains(part), "{summary}");
    }
    assert!(!out.contains("0.0%") && !out.contains(" 0.0 "), "{out}");
    let pct = line(&out, "ferry delta pack");
    assert!(pct.contains("% of the full tar"), "{pct}");
}
