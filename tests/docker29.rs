//! Archives as Docker 29 saves them (OCI layout plus manifest.json, every
//! layer the gzip stream a Go encoder wrote), made here with Go's own
//! encoders: ferry keeps their layers as plain text, ships deltas about as
//! small as for the same images saved uncompressed, re-creates every layer
//! byte for byte, and loads them into Docker. Near misses fall back without
//! a wrong byte.

mod common;
#[path = "common/dockerd.rs"]
#[allow(dead_code)]
mod dockerd;

use common::gotools::{GoRef, go_compress, go_ref_or_skip};
use common::*;
use dockerd::Dockerd;
use std::path::{Path, PathBuf};

/// The layer tars of two versions of a service: an OS layer that does not
/// change, a dependencies layer where a few files do, and an app layer.
fn layers(version: u64) -> Vec<Vec<u8>> {
    let os = sample_files(41, "usr/lib", 100, 256 << 10);
    let mut deps = sample_files(42, "site-packages", 120, 128 << 10);
    let mut app = sample_files(43, "app", 20, 32 << 10);
    if version > 1 {
        let mut rng = Rng::new(version);
        let (d5, rest) = deps[5..].split_first_mut().unwrap();
        for f in [d5, &mut rest[64], &mut app[3]] {
            let at = rng.below(f.data.len() as u64) as usize;
            let n = 400.min(f.data.len() - at);
            rng.fill(&mut f.data[at..at + n]);
        }
    }
    vec![
        layer_tar(&os, 1_600_000_000),
        layer_tar(&deps, 1_600_000_000),
        layer_tar(&app, 1_600_000_000),
    ]
}

/// Writes v1 and v2 of `app` with layers compressed by `bin` at `level`.
fn docker29_pair(dir: &Path, bin: &Path, level: i32) -> (PathBuf, PathBuf) {
    let compress = |plain: &[u8]| go_compress(bin, level, false, 32 << 10, plain);
    let (v1, v2) = (dir.join("v1.tar"), dir.join("v2.tar"));
    ferry::demo::write_docker29_archive(&v1, "app:1", &layers(1), &compress).unwrap();
    ferry::demo::write_docker29_archive(&v2, "app:2", &layers(2), &compress).unwrap();
    (v1, v2)
}

/// The `meta.split` of snapshot `name`.
fn split_of(store: &Path, name: &str) -> serde_json::Value {
    let ls: serde_json::Value =
        serde_json::from_str(&ok(ferry(store).args(["ls", "--json"]))).unwrap();
    ls["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()["meta"]["split"]
        .clone()
}

/// Size of the delta pack app:2 over app:1 made in a new store from the
/// two archives.
fn delta_size(dir: &Path, v1: &Path, v2: &Path) -> u64 {
    let s = dir.join("delta-store");
    ok(ferry(&s).arg("add").arg(v1));
    ok(ferry(&s).arg("add").arg(v2));
    let p = dir.join("delta.ferry");
    ok(ferry(&s)
        .args(["pack", "app:2", "--base", "app:1", "-o"])
        .arg(&p));
    let n = file_size(&p);
    std::fs::remove_dir_all(&s).unwrap();
    n
}

/// The whole journey for one encoder: add both versions (the unchanged
/// layer taken from the store), a delta about as small as the uncompressed
/// pair's, unpack on the other side, byte-exact checkout.
fn journey(test: &str, which: GoRef, level: i32, encoder: &str) {
    let Some(bin) = go_ref_or_skip(test, which) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (v1, v2) = docker29_pair(dir, &bin, level);
    let (a, b) = (dir.join("a"), dir.join("b"));
    ok(ferry(&a).arg("add").arg(&v1));
    ok(ferry(&a).arg("add").arg(&v2));
    let split = split_of(&a, "app:2");
    assert_eq!(split["gzip_encoders"][encoder], 3, "{encoder}: {split}");
    assert_eq!(split["gzip_encoders"]["raw"], 0, "{split}");
    assert_eq!(
        split["reused_layers"], 1,
        "the OS layer is unchanged: {split}"
    );
    let (full, update) = (dir.join("full.ferry"), dir.join("update.ferry"));
    ok(ferry(&a).args(["pack", "app:1", "-o"]).arg(&full));
    ok(ferry(&a)
        .args(["pack", "app:2", "--base", "app:1", "-o"])
        .arg(&update));
    ok(ferry(&b).arg("unpack").arg(&full));
    ok(ferry(&b).arg("unpack").arg(&update));
    for (name, archive) in [("app:1", &v1), ("app:2", &v2)] {
        let out = dir.join("out.tar");
        ok(ferry(&b).args(["checkout", name, "-o"]).arg(&out));
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(archive).unwrap(),
            "{encoder}: {name} checked out differently"
        );
    }
    // The same pair saved uncompressed, for scale.
    let plain = dir.join("plain");
    std::fs::create_dir(&plain).unwrap();
    let (p1, p2) = (plain.join("v1.tar"), plain.join("v2.tar"));
    ferry::demo::write_oci_docker_archive(&p1, "app:1", &layers(1)).unwrap();
    ferry::demo::write_oci_docker_archive(&p2, "app:2", &layers(2)).unwrap();
    let (gz, raw) = (file_size(&update), delta_size(&plain, &p1, &p2));
    assert!(
        gz as f64 <= raw as f64 * 1.05 + 4096.0,
        "{encoder}: the delta is {gz} bytes, the uncompressed pair's {raw}"
    );
}

#[test]
fn go_stdlib_layers_ship_as_deltas_and_check_out_byte_exact() {
    journey(
        "go_stdlib_layers_ship_as_deltas_and_check_out_byte_exact",
        GoRef::Stdlib,
        6,
        "go-stdlib",
    );
}

#[test]
fn go_1_27_layers_ship_as_deltas_and_check_out_byte_exact() {
    journey(
        "go_1_27_layers_ship_as_deltas_and_check_out_byte_exact",
        GoRef::Go127,
        6,
        "go1.27",
    );
}

#[test]
fn pgzip_layers_ship_as_deltas_and_check_out_byte_exact() {
    let test = "pgzip_layers_ship_as_deltas_and_check_out_byte_exact";
    journey(test, GoRef::Pgzip, 5, "pgzip");
    journey(test, GoRef::Pgzip, 1, "pgzip");
}

/// Adds one gzip'd layer as the only layer of an archive, checks it out,
/// and returns its split.
fn add_one_layer(dir: &Path, blob: &[u8]) -> serde_json::Value {
    let s = dir.join("s");
    let archive = dir.join("one.tar");
    ferry::demo::write_docker29_archive(&archive, "one:1", &[Vec::new()], &|_| blob.to_vec())
        .unwrap();
    ok(ferry(&s).arg("add").arg(&archive));
    let out = dir.join("out.tar");
    ok(ferry(&s).args(["checkout", "one:1", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&archive).unwrap());
    split_of(&s, "one:1")
}

#[test]
fn a_stream_that_matches_for_megabytes_then_differs_comes_back_exact() {
    let Some(bin) = go_ref_or_skip(
        "a_stream_that_matches_for_megabytes_then_differs_comes_back_exact",
        GoRef::Pgzip,
    ) else {
        return;
    };
    use ferry::archive::kpflate::pgzip::{PGZIP_BLOCK, PGZIP_TAIL, pgzip_block};
    let plain = layer_tar(&sample_files(44, "opt", 160, 512 << 10), 1_600_000_000);
    assert!(plain.len() > 5 * PGZIP_BLOCK, "{}", plain.len());
    let go = go_compress(&bin, 5, false, 32 << 10, &plain);
    // pgzip's blocks, as ferry's model of it cuts them (the whole stream
    // matching Go's is checked elsewhere); block 3 is swapped for the
    // level-1 encoding of the same text, which inflates the same.
    let mut spliced = go[..10].to_vec();
    let blocks: Vec<&[u8]> = plain.chunks(PGZIP_BLOCK).collect();
    for (i, block) in blocks.iter().enumerate() {
        let dict = if i == 0 {
            &[][..]
        } else {
            &blocks[i - 1][PGZIP_BLOCK - PGZIP_TAIL..]
        };
        let last = i + 1 == blocks.len();
        assert!(pgzip_block(
            if i == 3 { 1 } else { 5 },
            dict,
            block,
            last,
            &mut spliced
        ));
    }
    if plain.len().is_multiple_of(PGZIP_BLOCK) {
        let dict = &blocks[blocks.len() - 1][PGZIP_BLOCK - PGZIP_TAIL..];
        assert!(pgzip_block(5, dict, &[], true, &mut spliced));
    }
    spliced.extend_from_slice(&go[go.len() - 8..]);
    assert_ne!(spliced, go);
    let t = tempfile::tempdir().unwrap();
    let split = add_one_layer(t.path(), &spliced);
    // Its start is pgzip's (and a pack of it names pgzip); from the
    // spliced block on it is kept as compressed bytes.
    assert_eq!(split["gzip_encoders"]["pgzip"], 1, "{split}");
    assert_eq!(split["gzip_fallback_layers"], 1, "{split}");
    assert!(
        split["deflate_parts"].as_u64().unwrap() >= 3,
        "the first blocks are parts: {split}"
    );
}

#[test]
fn a_header_that_claims_go_but_is_not_comes_back_exact() {
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;
    let plain = layer_tar(&sample_files(45, "etc", 40, 64 << 10), 1_600_000_000);
    let mut z = GzEncoder::new(Vec::new(), Compression::new(6));
    z.write_all(&plain).unwrap();
    let mut blob = z.finish().unwrap();
    // Go's fingerprint: MTIME 0, XFL 0, OS 255.
    blob[4..10].copy_from_slice(&[0, 0, 0, 0, 0, 0xff]);
    let t = tempfile::tempdir().unwrap();
    let split = add_one_layer(t.path(), &blob);
    let e = &split["gzip_encoders"];
    assert_eq!(
        e["go-stdlib"].as_u64().unwrap() + e["go1.27"].as_u64().unwrap(),
        0,
        "{split}"
    );
}

#[test]
fn a_damaged_blob_named_like_a_stored_one_is_refused() {
    let Some(bin) = go_ref_or_skip(
        "a_damaged_blob_named_like_a_stored_one_is_refused",
        GoRef::Stdlib,
    ) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let (v1, v2) = docker29_pair(t.path(), &bin, 6);
    let s = t.path().join("s");
    ok(ferry(&s).arg("add").arg(&v1));
    // Flip a byte inside v2's first layer blob (the unchanged OS layer):
    // its name still says the stored blob.
    let mut bytes = std::fs::read(&v2).unwrap();
    let at = bytes
        .windows(13)
        .position(|w| w == b"blobs/sha256/")
        .unwrap()
        + 512
        + 5000;
    bytes[at] ^= 0x40;
    let bad = write(t.path(), "bad.tar", &bytes);
    let before = state(&s);
    fails(
        ferry(&s).arg("add").arg(&bad),
        &["not the blob its sha256 name says", "damaged"],
    );
    assert_eq!(state(&s), before);
}

#[test]
fn docker29_archives_load_into_docker() {
    let test = "docker29_archives_load_into_docker";
    let Some(bin) = go_ref_or_skip(test, GoRef::Stdlib) else {
        return;
    };
    let Some(d) = Dockerd::start(test) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let (_, v2) = docker29_pair(t.path(), &bin, 6);
    let s = t.path().join("s");
    ok(ferry(&s).arg("add").arg(&v2));
    let out = ok(ferry(&s).args(["--docker-host", &d.host, "load", "app:2"]));
    assert!(out.contains("3 layers verified"), "{out}");
    let ls: serde_json::Value =
        serde_json::from_str(&ok(ferry(&s).args(["ls", "--json"]))).unwrap();
    let id = ls["snapshots"][0]["meta"]["docker"]["images"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(d.inspect("app:2")["Id"].as_str().unwrap(), id);
}

#[test]
fn a_pack_naming_an_unknown_encoder_asks_for_an_upgrade() {
    let header = ferry::pack::Header {
        algorithm: ferry::chunker::ALGORITHM.into(),
        params: ferry::chunker::PARAMS,
        created: 0,
        writer: "a newer ferry".into(),
        bases: vec![],
        snapshots: vec![],
        volume: None,
        signer: None,
        extra: vec![],
        encoders: vec!["go-stdlib".into(), "zopfli-9000".into()],
    };
    let w = ferry::pack::PackWriter::new(Vec::new(), &header).unwrap();
    let (bytes, _) = w.finish().unwrap();
    let t = tempfile::tempdir().unwrap();
    let p = write(t.path(), "new.ferry", &bytes);
    let s = t.path().join("s");
    ok(ferry(&s)
        .arg("add")
        .arg(write(t.path(), "x.bin", b"something")));
    unpack_refused(&s, &p, &["zopfli-9000", "upgrade ferry"]);
}

#[test]
fn a_load_that_fails_verification_late_leaves_no_image() {
    let test = "a_load_that_fails_verification_late_leaves_no_image";
    let Some(d) = Dockerd::start(test) else {
        return;
    };
    // Megabytes of good layer reach the daemon before the damaged last
    // layer is read: the archive's tail is held back, the load aborted.
    let t = tempfile::tempdir().unwrap();
    let big = layer_tar(&sample_files(46, "usr/lib", 120, 512 << 10), 1_600_000_000);
    let last = layer_tar(&sample_files(47, "app", 8, 8 << 10), 1_600_000_000);
    assert!(big.len() > 4 << 20, "{}", big.len());
    let archive = t.path().join("late.tar");
    ferry::demo::write_docker_archive(&archive, "late:1", &[big, last.clone()]).unwrap();
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes.windows(64).rposition(|w| w == &last[..64]).unwrap() + 700;
    bytes[at] ^= 1;
    let archive = write(t.path(), "late-bad.tar", &bytes);
    let s = t.path().join("s");
    ok(ferry(&s).arg("add").arg(&archive));
    fails(
        ferry(&s).args(["--docker-host", &d.host, "load", "late:1"]),
        &["integrity check failed", "the image config names"],
    );
    let inspect = d
        .docker()
        .args(["image", "inspect", "late:1"])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "the image was loaded");
}
