//! End-to-end behaviour of the real binary: add, pack, unpack, checkout and
//! ls across two stores, on the data shapes ferry meets in practice.

mod common;

use common::*;
use std::io::Write;
use std::process::Stdio;

/// Adds `data` to store A, ships it through a pack into store B, checks it
/// out of both, and asserts both are byte-identical to the input.
fn round_trip(data: &[u8], name: &str) {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let input = write(t.path(), "input.bin", data);
    ok(ferry(&a).arg("add").arg(&input).args(["--name", name]));
    let pack = t.path().join("p.ferry");
    ok(ferry(&a).args(["pack", name, "-o"]).arg(&pack));
    ok(ferry(&b).arg("unpack").arg(&pack));
    for store in [&a, &b] {
        let out = t.path().join("out.bin");
        ok(ferry(store).args(["checkout", name, "-o"]).arg(&out));
        let got = std::fs::read(&out).unwrap();
        assert_eq!(got.len(), data.len(), "{name}: length");
        assert!(got == data, "{name}: bytes differ after round trip");
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn round_trips_random_empty_and_tiny_inputs() {
    round_trip(&random_bytes(1, 3 << 20), "random");
    round_trip(b"", "empty");
    round_trip(b"x", "one-byte");
}

#[test]
fn round_trips_sizes_around_chunk_boundaries() {
    let (min, avg, max) = (16 << 10, 64 << 10, 256 << 10);
    for (i, n) in [
        min - 1,
        min,
        min + 1,
        avg,
        max - 1,
        max,
        max + 1,
        2 * max + 1,
    ]
    .into_iter()
    .enumerate()
    {
        // Zeros never find a cut point, so every chunk is cut at the maximum.
        round_trip(&vec![0u8; n], &format!("zeros-{n}"));
        round_trip(&random_bytes(100 + i as u64, n), &format!("random-{n}"));
    }
}

#[test]
fn round_trips_content_repeated_across_batches_stored_once() {
    // 3 MiB of new chunks, repeated: each copy lands in another batch of
    // the add pipeline, while the batch that first held them is still
    // being encoded or written.
    let block = random_bytes(77, 3 << 20);
    let mut data = Vec::new();
    for i in 0..8u8 {
        data.extend_from_slice(&block);
        data.extend_from_slice(&[i; 1000]);
    }
    round_trip(&data, "repeated");
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    ok(ferry(&s).arg("add").arg(write(t.path(), "r.bin", &data)));
    let ls: serde_json::Value =
        serde_json::from_str(&ok(ferry(&s).args(["ls", "--json"]))).unwrap();
    let stored = ls["snapshots"][0]["stored"].as_u64().unwrap();
    // Random data does not compress: 24 MiB stored once is about 3 MiB,
    // plus the chunks around each separator (cut where the copy starts).
    assert!(stored < 6 << 20, "stored {stored} bytes");
    ok(ferry(&s).args(["verify", "--full"]));
}

#[test]
fn round_trips_tar_with_many_small_files() {
    let mut rng = Rng::new(7);
    let files: Vec<_> = (0..3000)
        .map(|i| {
            let size = rng.below(3000) as usize;
            ferry::demo::SampleFile {
                path: format!("dir{}/f{i}.txt", i % 40),
                data: file_content(&mut rng, size, i % 2 == 0),
            }
        })
        .collect();
    round_trip(&layer_tar(&files, 1_234_567), "small-files.tar");
}

#[test]
fn delta_pack_carries_only_what_the_base_lacks_and_rebuilds_byte_exact() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("connected"), t.path().join("offline"));
    let v1 = image(t.path(), "app-v1.tar", "app:1", 1);
    let v2 = image(t.path(), "app-v2.tar", "app:2", 2);

    // Names come from the archives' RepoTags.
    assert!(ok(ferry(&a).arg("add").arg(&v1)).contains("added app:1"));
    assert!(ok(ferry(&a).arg("add").arg(&v2)).contains("added app:2"));
    let full = t.path().join("full.ferry");
    let update = t.path().join("update.ferry");
    ok(ferry(&a).args(["pack", "app:1", "-o"]).arg(&full));
    ok(ferry(&a)
        .args(["pack", "app:2", "--base", "app:1", "-o"])
        .arg(&update));

    // The dry run reports exactly what the real pack holds.
    let dry: serde_json::Value = serde_json::from_str(&ok(ferry(&a).args([
        "pack",
        "app:2",
        "--base",
        "app:1",
        "--dry-run",
        "--json",
    ])))
    .unwrap();
    assert_eq!(dry["pack_bytes"].as_u64().unwrap(), file_size(&update));
    assert!(dry["skipped_chunks"].as_u64().unwrap() > 0);

    // The update is a small fraction of the full pack.
    assert!(
        file_size(&update) * 4 < file_size(&full),
        "update {} vs full {}",
        file_size(&update),
        file_size(&full)
    );

    ok(ferry(&b).arg("unpack").arg(&full));
    ok(ferry(&b).arg("unpack").arg(&update));
    let out = t.path().join("rebuilt.tar");
    ok(ferry(&b).args(["checkout", "app:2", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&v2).unwrap());

    // Both stores list the same snapshots with the same hashes.
    assert_eq!(state(&a).snapshots, state(&b).snapshots);
    let ls = ok(ferry(&b).arg("ls"));
    assert!(
        ls.contains("app:1") && ls.contains("app:2") && ls.contains("CHUNKS"),
        "{ls}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(ferry(&b).args(["ls", "--json"]))).unwrap();
    let snaps = json["snapshots"].as_array().unwrap();
    assert_eq!(snaps[1]["size"].as_u64().unwrap(), file_size(&v2));
    assert_eq!(snaps[1]["meta"]["repo_tags"][0], "app:2");
}

#[test]
fn unpacking_the_same_pack_twice_is_a_no_op() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let v1 = image(t.path(), "v1.tar", "app:1", 1);
    ok(ferry(&a).arg("add").arg(&v1));
    let pack = t.path().join("full.ferry");
    ok(ferry(&a).args(["pack", "app:1", "-o"]).arg(&pack));
    ok(ferry(&b).arg("unpack").arg(&pack));
    let before = state(&b);
    let again = ok(ferry(&b).args(["unpack", "--json"]).arg(&pack));
    let r: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(r["new_chunks"], 0);
    assert_eq!(r["present"][0], "app:1");
    assert_eq!(state(&b), before);
}

#[test]
fn packs_and_inputs_stream_through_pipes() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let data = random_bytes(9, 700_000);
    // add from stdin
    let mut child = ferry(&a)
        .args(["add", "-", "--name", "piped"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    assert!(child.wait().unwrap().success());
    // pack to stdout, unpack from stdin
    let pack = ferry(&a)
        .args(["pack", "piped", "-o", "-"])
        .output()
        .unwrap();
    assert!(pack.status.success());
    let mut child = ferry(&b)
        .args(["unpack", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&pack.stdout).unwrap();
    assert!(child.wait().unwrap().success());
    // checkout to stdout
    let out = ferry(&b)
        .args(["checkout", "piped", "-o", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout == data);
}

/// Output whose reader has gone (`ferry ls | head -0`, `ferry checkout X
/// -o - | head -c1`) is not a failure: exit 0 and nothing on stderr. The
/// pipe's read end is closed before ferry starts, so every write fails.
#[test]
fn a_closed_stdout_ends_reports_quietly_and_fails_streams_cut_short() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let data = random_bytes(10, 300_000);
    let input = write(t.path(), "input.bin", &data);
    ok(ferry(&a).arg("add").arg(&input).args(["--name", "big"]));
    let into_closed_pipe = |args: &[&str]| {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        ferry(&a)
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    // A report nobody reads any more is not a failure.
    for args in [&["ls"][..], &["ls", "--json"], &["peers"]] {
        let out = into_closed_pipe(args);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "ferry {args:?} into a closed pipe: {:?}, stderr {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A data stream cut short is: its reader got less than all of it.
    for args in [
        &["checkout", "big", "-o", "-"][..],
        &["pack", "big", "-o", "-"],
    ] {
        let out = into_closed_pipe(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.lines().count() == 1 && err.contains("cut short"),
            "ferry {args:?} into a closed pipe: {:?}, stderr {err}",
            out.status,
        );
    }
    // Also when the reader goes away after ferry started.
    let mut child = ferry(&a)
        .args(["checkout", "big", "-o", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cut short"),
        "{:?}: {err}",
        out.status,
    );
    // A damaged store still fails verify when no one reads the report.
    let data = a.join("data").join("00000001.dat");
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = ferry(&a)
        .args(["verify", "--full"])
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("damaged chunks"),
        "{err}"
    );
}

#[test]
fn compressed_archives_are_stored_decompressed() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let v1 = image(t.path(), "app.tar", "app:1", 1);
    let tar = std::fs::read(&v1).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz_path = write(t.path(), "app.tar.gz", &gz.finish().unwrap());
    let zst_path = write(
        t.path(),
        "app.tar.zst",
        &zstd::encode_all(&tar[..], 3).unwrap(),
    );

    let out = ok(ferry(&a).arg("add").arg(&gz_path).args(["--name", "gz"]));
    assert!(out.contains("gzip-compressed"), "{out}");
    ok(ferry(&a).arg("add").arg(&zst_path).args(["--name", "zst"]));
    for name in ["gz", "zst"] {
        let o = t.path().join(format!("{name}.tar"));
        let run = run(ferry(&a).args(["checkout", name, "-o"]).arg(&o));
        assert!(run.status.success());
        assert!(String::from_utf8_lossy(&run.stderr).contains("decompressed tar"));
        assert!(
            std::fs::read(&o).unwrap() == tar,
            "{name} checkout is the decompressed tar"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&ok(ferry(&a).args(["ls", "--json"]))).unwrap();
    let gz = &json["snapshots"][0]["meta"]["compressed"];
    assert_eq!(gz["format"], "gzip");
    assert_eq!(gz["size"].as_u64().unwrap(), file_size(&gz_path));
    assert_eq!(
        gz["blake3"].as_str().unwrap(),
        blake3::hash(&std::fs::read(&gz_path).unwrap())
            .to_hex()
            .as_str()
    );
    // The compressed copies dedup against each other: same stream, no new chunks.
    let j: serde_json::Value = serde_json::from_str(&ok(ferry(&a)
        .arg("add")
        .arg(&v1)
        .args(["--name", "plain", "--json"])))
    .unwrap();
    assert_eq!(j["new_chunks"], 0);
}

#[test]
fn names_fall_back_to_the_file_name_and_other_content_moves_the_name() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    let f = write(t.path(), "blob.bin", &random_bytes(3, 100_000));
    assert!(ok(ferry(&a).arg("add").arg(&f)).contains("added blob.bin"));
    // The same content again is a no-op, even split another way: nothing
    // of the second run is kept.
    assert!(ok(ferry(&a).arg("add").arg(&f)).contains("already in the store"));
    let tar = write(
        t.path(),
        "t.tar",
        &layer_tar(&sample_files(4, "x", 50, 64 << 10), 1),
    );
    ok(ferry(&a).arg("add").arg(&tar));
    let kept = state(&a);
    assert!(
        ok(ferry(&a).args(["add", "--no-tar-split"]).arg(&tar)).contains("already in the store")
    );
    assert_eq!(state(&a), kept, "a no-op add left data behind");
    // Other content under the same name moves the name; the old content
    // stays under NAME@DIGEST.
    let before = state(&a);
    write(t.path(), "blob.bin", &random_bytes(4, 100_000));
    let out = ok(ferry(&a).arg("add").arg(&f));
    assert!(out.contains("blob.bin: was "), "{out}");
    let after = state(&a);
    assert_eq!(after.snapshots.len(), 3);
    let old = &before
        .snapshots
        .iter()
        .find(|(n, _)| n == "blob.bin")
        .unwrap()
        .1;
    assert!(
        after
            .snapshots
            .contains(&(format!("blob.bin@{}", &old[..16]), old.clone())),
        "{after:?}"
    );
    // --replace removes what the name named instead.
    write(t.path(), "blob.bin", &random_bytes(5, 100_000));
    ok(ferry(&a).arg("add").arg(&f).arg("--replace"));
    assert_eq!(state(&a).snapshots.len(), 3);
}

fn gz(level: u32, data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_layer_archives_ship_as_deltas_and_rebuild_byte_exact_on_the_other_side() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let base = layer_tar(&sample_files(1, "usr/lib", 60, 64 << 10), 1);
    let mut files = sample_files(2, "app", 150, 32 << 10);
    let v1_app = layer_tar(&files, 1_700_000_000);
    files[10].data.extend_from_slice(b"# patched\n");
    let v2_app = layer_tar(&files, 1_700_000_999);
    let mut archives = Vec::new();
    for (tag, app) in [("gz:1", &v1_app), ("gz:2", &v2_app)] {
        let p = t.path().join(format!("{}.tar", tag.replace(':', "-")));
        ferry::demo::write_oci_docker_archive(&p, tag, &[gz(6, &base), gz(6, app)]).unwrap();
        ok(ferry(&a).arg("add").arg(&p));
        archives.push(p);
    }
    let full = t.path().join("full.ferry");
    let delta = t.path().join("delta.ferry");
    ok(ferry(&a).args(["pack", "gz:1", "-o"]).arg(&full));
    ok(ferry(&a)
        .args(["pack", "gz:2", "--base", "gz:1", "-o"])
        .arg(&delta));
    let v2_len = std::fs::metadata(&archives[1]).unwrap().len();
    let delta_len = std::fs::metadata(&delta).unwrap().len();
    assert!(
        delta_len * 20 < v2_len,
        "delta of {delta_len} bytes for a {v2_len}-byte archive"
    );
    ok(ferry(&b).arg("unpack").arg(&full));
    ok(ferry(&b).arg("unpack").arg(&delta));
    let out = t.path().join("out.tar");
    ok(ferry(&b).args(["checkout", "gz:2", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&archives[1]).unwrap());
}

#[test]
fn a_store_from_before_recipe_ops_is_read_and_upgraded() {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    let data = layer_tar(&sample_files(3, "etc", 40, 16 << 10), 5);
    let input = write(t.path(), "old.tar", &data);
    ok(ferry(&s).arg("add").arg(&input));
    // Make it what the first release wrote: schema 1, no op/out columns.
    let conn = rusqlite::Connection::open(s.join("index.sqlite")).unwrap();
    conn.execute_batch(
        "ALTER TABLE recipe DROP COLUMN op; ALTER TABLE recipe DROP COLUMN out; PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    let out = t.path().join("out.tar");
    // A reader takes it as it is.
    ok(ferry(&s).args(["checkout", "old.tar", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == data);
    // A writer upgrades it, and everything still reads.
    let other = write(t.path(), "new.bin", &random_bytes(4, 100_000));
    ok(ferry(&s).arg("add").arg(&other));
    let conn = rusqlite::Connection::open(s.join("index.sqlite")).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, ferry::store::SCHEMA_VERSION);
    std::fs::remove_file(&out).unwrap();
    ok(ferry(&s).args(["checkout", "old.tar", "-o"]).arg(&out));
    assert!(std::fs::read(&out).unwrap() == data);
}
