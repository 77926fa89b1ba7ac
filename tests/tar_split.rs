//! Tar-aware splitting: byte-exact round trips on hand-crafted tars of
//! every header kind (tests/data/tars, made by make-tricky-tars.sh) and on
//! generated ones, and the property that a layer rebuilt with new mtimes
//! costs almost nothing.

mod common;

use std::time::Duration;

use ferry::add::{AddOptions, Source, add};
use ferry::progress::Quiet;
use ferry::send::{PackOptions, write_pack};
use ferry::store::Store;
use proptest::prelude::*;

fn checkout(store: &Store, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    ferry::checkout::checkout(store, name, &mut out, &Quiet).unwrap();
    out
}

fn add_bytes(
    store: &mut Store,
    dir: &std::path::Path,
    name: &str,
    data: &[u8],
) -> serde_json::Value {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    let opts = AddOptions {
        name: Some(name.to_string()),
        ..AddOptions::default()
    };
    add(store, Source::Path(p), &opts, &Quiet).unwrap();
    serde_json::to_value(store.require(name).unwrap().meta.split).unwrap()
}

#[test]
fn hand_crafted_tars_round_trip_and_are_fully_understood() {
    let t = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&t.path().join("s"), Duration::ZERO).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tars");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let split = add_bytes(&mut store, t.path(), &name, &data);
        assert!(checkout(&store, &name) == data, "{name}: checkout differs");
        let raw = split["raw_bytes"].as_u64().unwrap();
        let content = split["content_bytes"].as_u64().unwrap();
        match name.as_str() {
            "trailing-garbage.tar" => assert_eq!(raw, 29 * 50, "{name}: only the garbage is plain"),
            // Cut inside the first file: the bytes that are there are its contents.
            "truncated.tar" => assert_eq!((raw, content), (0, 3000 - 512), "{name}: {split}"),
            // Nothing but zero blocks is indistinguishable from a file of zeros.
            "empty-archive.tar" => assert_eq!(raw, 1024),
            _ => assert_eq!(raw, 0, "{name}: parts of it were not understood: {split}"),
        }
        if name.starts_with("sparse") {
            // The stored data of the sparse file is found as contents.
            assert!((1_000..100_000).contains(&content), "{name}: {split}");
        }
        if name == "pax-global.tar" {
            assert_eq!(content, 1513, "{name}: {split}");
        }
        seen += 1;
    }
    assert!(seen >= 12, "tests/data/tars holds {seen} tars");
}

/// gzip -LEVEL -n of `data` with GNU gzip, or flate2 at that level when
/// gzip is not installed (the test says which it used).
fn gzip(level: u32, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    if let Ok(mut child) = Command::new("gzip")
        .args([format!("-{level}").as_str(), "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        let mut stdin = child.stdin.take().unwrap();
        let data = data.to_vec();
        let feed = std::thread::spawn(move || stdin.write_all(&data));
        let out = child.wait_with_output().unwrap();
        feed.join().unwrap().unwrap();
        assert!(out.status.success());
        return out.stdout;
    }
    common::skip(
        &format!("GNU gzip -{level} layers"),
        "gzip not installed (apt-get install gzip): flate2 stands in",
    );
    flate2_gzip(level, data)
}

fn flate2_gzip(level: u32, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[test]
fn gzip_layers_are_split_into_files_and_recreated_byte_exact() {
    let t = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&t.path().join("s"), Duration::ZERO).unwrap();
    // A big layer (several deflate parts) and small ones, from several compressors.
    let big = ferry::demo::layer_tar(&ferry::demo::sample_files(3, "usr", 300, 64 << 10), 1);
    let small = ferry::demo::layer_tar(&ferry::demo::sample_files(4, "opt", 30, 16 << 10), 2);
    // A plain layer holding a gzip'd file that is not a tar: it stays a file.
    let mut plain_files = ferry::demo::sample_files(5, "doc", 5, 8 << 10);
    plain_files.push(ferry::demo::SampleFile {
        path: "doc/changelog.gz".into(),
        data: gzip(9, &b"version 1.2.3: fixed things\n".repeat(200)),
    });
    let plain = ferry::demo::layer_tar(&plain_files, 3);
    let layers = vec![
        gzip(6, &big),
        gzip(1, &small),
        gzip(9, &small),
        flate2_gzip(6, &big),
        plain.clone(),
    ];
    let archive = t.path().join("oci.tar");
    ferry::demo::write_oci_docker_archive(&archive, "gz:1", &layers).unwrap();
    let data = std::fs::read(&archive).unwrap();
    let split = add_bytes(&mut store, t.path(), "gz.tar", &data);
    assert!(checkout(&store, "gz.tar") == data, "checkout differs");
    assert_eq!(split["gzip_layers"], 4, "{split}");
    assert_eq!(split["gzip_fallback_layers"], 0, "{split}");
    let gz_bytes: u64 = layers[..4].iter().map(|l| l.len() as u64).sum();
    assert_eq!(split["gzip_layer_bytes"].as_u64().unwrap(), gz_bytes);
    // Every byte was understood: the layers' files are contents.
    assert_eq!(split["raw_bytes"], 0, "{split}");
    let content = split["content_bytes"].as_u64().unwrap();
    assert!(content > 2 * big.len() as u64 * 9 / 10, "{split}");
    // The big layers took several parts; re-creation data is small.
    let parts = split["deflate_parts"].as_u64().unwrap();
    assert!(parts > 6, "{split}");
    let part_bytes = split["deflate_part_bytes"].as_u64().unwrap();
    assert!(
        part_bytes * 20 < gz_bytes,
        "{part_bytes} bytes of re-creation data for {gz_bytes}"
    );
}

#[test]
fn a_gzip_layer_rebuilt_with_new_mtimes_costs_little() {
    let t = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&t.path().join("s"), Duration::ZERO).unwrap();
    let files = ferry::demo::sample_files(7, "usr/lib/python3", 200, 64 << 10);
    let base = ferry::demo::layer_tar(&ferry::demo::sample_files(8, "etc", 20, 8 << 10), 1);
    let v1 = gzip(6, &ferry::demo::layer_tar(&files, 1_700_000_000));
    let v2 = gzip(6, &ferry::demo::layer_tar(&files, 1_700_123_456));
    assert_ne!(v1, v2);
    for (name, layer) in [("v1", &v1), ("v2", &v2)] {
        let p = t.path().join(name);
        ferry::demo::write_oci_docker_archive(&p, name, &[gzip(6, &base), layer.clone()]).unwrap();
        add_bytes(&mut store, t.path(), name, &std::fs::read(&p).unwrap());
    }
    let opts = PackOptions {
        snapshots: vec!["v2".into()],
        bases: vec!["v1".into()],
        ..Default::default()
    };
    let (_, r) = write_pack(&store, &opts, std::io::sink(), &Quiet).unwrap();
    let pct = 100.0 * r.totals.pack_bytes as f64 / v2.len() as f64;
    assert!(
        pct < 5.0,
        "delta {} bytes = {pct:.2}% of the {}-byte gzip'd layer",
        r.totals.pack_bytes,
        v2.len()
    );
}

#[test]
fn a_gzip_layer_preflate_cannot_finish_is_kept_as_is_and_ls_json_says_so() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let layer = ferry::demo::layer_tar(&ferry::demo::sample_files(9, "srv", 200, 64 << 10), 1);
    let whole = gzip(6, &layer);
    // Cut short: the deflate stream never ends, so preflate gives up at the
    // cut and the rest stays compressed bytes. Cut within the first block,
    // it gives up at once.
    let late = whole[..whole.len() * 3 / 5].to_vec();
    let early = whole[..3000].to_vec();
    let archive = t.path().join("cut.tar");
    ferry::demo::write_oci_docker_archive(&archive, "cut:1", &[late.clone(), early.clone()])
        .unwrap();
    common::ok(common::ferry(&store).arg("add").arg(&archive));
    let out = t.path().join("back.tar");
    common::ok(
        common::ferry(&store)
            .args(["checkout", "cut:1", "-o"])
            .arg(&out),
    );
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&archive).unwrap());
    let ls: serde_json::Value =
        serde_json::from_str(&common::ok(common::ferry(&store).args(["ls", "--json"]))).unwrap();
    let split = &ls["snapshots"][0]["meta"]["split"];
    assert_eq!(split["gzip_fallback_layers"], 2, "{split}");
    assert_eq!(split["gzip_layers"], 0, "{split}");
    let kept = split["gzip_fallback_bytes"].as_u64().unwrap();
    // All of the early one, and the late one from some way in.
    assert!(
        kept > early.len() as u64 && kept < (late.len() + early.len()) as u64,
        "{split}"
    );
    assert!(
        split["content_bytes"].as_u64().unwrap() > layer.len() as u64 / 4,
        "{split}"
    );
}

/// A random tar: files of random sizes, directories, symlinks, hardlinks,
/// long names (GNU or PAX), empty files.
fn random_tar(seed: u64, entries: usize, pax: bool) -> Vec<u8> {
    let mut rng = ferry::demo::Rng::new(seed);
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..entries {
        let long = rng.below(5) == 0;
        let name = if long {
            format!("deep/{}/f{i}", "x".repeat(90 + rng.below(80) as usize))
        } else {
            format!("d{}/f{i}", i % 7)
        };
        let mut h = if pax {
            tar::Header::new_ustar()
        } else {
            tar::Header::new_gnu()
        };
        h.set_mtime(rng.below(1 << 31));
        h.set_mode(0o644);
        match rng.below(8) {
            0 => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, format!("dir{i}/"), &[][..]).unwrap();
            }
            1 => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(
                    &mut h,
                    format!("link{i}"),
                    if long {
                        "t".repeat(150)
                    } else {
                        "target".into()
                    },
                )
                .unwrap();
            }
            2 => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, format!("hard{i}"), "d0/f0").unwrap();
            }
            _ => {
                let size = [0, 1, 511, 512, 513, 4096, 70_000][rng.below(7) as usize]
                    + rng.below(3) as usize;
                let data = ferry::demo::file_content(&mut rng, size, i % 2 == 0);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(size as u64);
                if pax && long {
                    b.append_pax_extensions([("path", name.as_bytes())])
                        .unwrap();
                    b.append_data(&mut h, format!("short{i}"), data.as_slice())
                        .unwrap();
                } else {
                    b.append_data(&mut h, &name, data.as_slice()).unwrap();
                }
            }
        }
    }
    b.into_inner().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn generated_tars_round_trip_fully_understood(seed in any::<u64>(), entries in 0usize..60, pax in any::<bool>()) {
        let t = tempfile::tempdir().unwrap();
        let mut store = Store::open_writer(&t.path().join("s"), Duration::ZERO).unwrap();
        let data = random_tar(seed, entries, pax);
        let split = add_bytes(&mut store, t.path(), "t.tar", &data);
        prop_assert!(checkout(&store, "t.tar") == data);
        if entries > 0 {
            prop_assert_eq!(split["raw_bytes"].as_u64().unwrap(), 0, "{}", split);
        }
        let total = split["raw_bytes"].as_u64().unwrap() + split["content_bytes"].as_u64().unwrap() + split["header_bytes"].as_u64().unwrap();
        prop_assert_eq!(total, data.len() as u64);
    }

    #[test]
    fn new_mtimes_on_every_entry_cost_under_two_percent(seed in any::<u64>()) {
        let t = tempfile::tempdir().unwrap();
        let mut store = Store::open_writer(&t.path().join("s"), Duration::ZERO).unwrap();
        let files = ferry::demo::sample_files(seed, "usr/lib/python3/site-packages", 300, 256 << 10);
        let v1 = ferry::demo::layer_tar(&files, 1_700_000_000);
        // Rebuild: same files, every entry with its own new mtime.
        let mut rng = ferry::demo::Rng::new(seed ^ 1);
        let mut b = tar::Builder::new(Vec::new());
        for f in &files {
            let mut h = tar::Header::new_gnu();
            h.set_size(f.data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000 + 1 + rng.below(10_000_000));
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, &f.path, f.data.as_slice()).unwrap();
        }
        let v2 = b.into_inner().unwrap();
        prop_assert_eq!(v1.len(), v2.len());
        prop_assert!(v1 != v2);
        add_bytes(&mut store, t.path(), "v1", &v1);
        add_bytes(&mut store, t.path(), "v2", &v2);
        let opts = PackOptions { snapshots: vec!["v2".into()], bases: vec!["v1".into()], ..Default::default() };
        let (_, r) = write_pack(&store, &opts, std::io::sink(), &Quiet).unwrap();
        let pct = 100.0 * r.totals.pack_bytes as f64 / v2.len() as f64;
        prop_assert!(pct < 2.0, "delta {} bytes = {:.2}% of the {}-byte layer", r.totals.pack_bytes, pct, v2.len());
        prop_assert!(checkout(&store, "v2") == v2);
    }
}
