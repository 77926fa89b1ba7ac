//! Tar-aware splitting: byte-exact round trips on hand-crafted tars of
//! every header kind (tests/data/tars, made by make-tricky-tars.sh) and on
//! generated ones, and the property that a layer rebuilt with new mtimes
//! costs almost nothing.

use std::time::Duration;

use ferry::add::{AddOptions, Source, add};
use ferry::progress::Quiet;
use ferry::store::Store;
use ferry::transfer::{PackOptions, write_pack};
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
    store.require(name).unwrap().meta["split"].clone()
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

#[test]
fn gzip_layers_are_kept_as_plain_streams_and_reported() {
    use std::io::Write;
    let t = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&t.path().join("s"), Duration::ZERO).unwrap();
    let layer = ferry::demo::layer_tar(&ferry::demo::sample_files(3, "usr", 40, 32 << 10), 1);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&layer).unwrap();
    let gz = gz.finish().unwrap();
    let archive = t.path().join("oci.tar");
    ferry::demo::write_oci_docker_archive(&archive, "gz:1", &[gz.clone(), layer.clone()]).unwrap();
    let data = std::fs::read(&archive).unwrap();
    let split = add_bytes(&mut store, t.path(), "gz.tar", &data);
    assert!(checkout(&store, "gz.tar") == data);
    assert_eq!(split["compressed_layers"], 1, "{split}");
    assert_eq!(
        split["compressed_layer_bytes"].as_u64().unwrap(),
        gz.len() as u64
    );
    assert_eq!(
        split["raw_bytes"].as_u64().unwrap(),
        gz.len() as u64,
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
        let opts = PackOptions { snapshots: vec!["v2".into()], bases: vec!["v1".into()] };
        let (_, r) = write_pack(&store, &opts, std::io::sink(), &Quiet).unwrap();
        let pct = 100.0 * r.totals.pack_bytes as f64 / v2.len() as f64;
        prop_assert!(pct < 2.0, "delta {} bytes = {:.2}% of the {}-byte layer", r.totals.pack_bytes, pct, v2.len());
        prop_assert!(checkout(&store, "v2") == v2);
    }
}
