//! Seed inputs for the fuzz targets, committed under `fuzz/seeds/<target>/`:
//! packs, group records, delta frames, inventories and tars made by ferry's
//! own writers, so that fuzzing starts past the magic numbers and
//! checksums instead of having to find them. `cargo test --test fuzz_seeds
//! -- --ignored` writes them again; the test that always runs checks that
//! the committed seeds are still what ferry's readers accept, so a format
//! change cannot leave the fuzzers starting from dead inputs.

mod common;

use common::*;
use std::path::{Path, PathBuf};

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds")
}

/// The records of a pack as (type, payload), by the framing of
/// docs/FORMAT.md: a 12-byte preamble, then a type byte, a little-endian
/// u32 length and the payload per record.
fn records(pack: &[u8]) -> Vec<(u8, &[u8])> {
    let mut at = 12;
    let mut v = Vec::new();
    while at + 5 <= pack.len() {
        let kind = pack[at];
        let len = u32::from_le_bytes(pack[at + 1..at + 5].try_into().unwrap()) as usize;
        v.push((kind, &pack[at + 5..at + 5 + len]));
        at += 5 + len;
    }
    v
}

/// Small text-heavy files (so packs of them are small), `edit`ed in place.
fn files(edit: u8) -> Vec<ferry::demo::SampleFile> {
    let mut rng = ferry::demo::Rng::new(5);
    let mut v: Vec<ferry::demo::SampleFile> = (0..4)
        .map(|i| ferry::demo::SampleFile {
            path: format!("app/mod{i}.py"),
            data: file_content(&mut rng, 18_000 + 6_000 * i, true),
        })
        .collect();
    if edit > 0 {
        for i in [1, 3] {
            v[i].data[10_000..10_030].fill(b'a' + edit);
        }
    }
    v
}

#[test]
#[ignore = "writes fuzz/seeds; run when the formats change"]
fn write_fuzz_seeds() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let v1 = t.path().join("v1.tar");
    let v2 = t.path().join("v2.tar");
    write_docker_archive(&v1, "seed:1", &[layer_tar(&files(0), 1_700_000_000)]).unwrap();
    write_docker_archive(&v2, "seed:2", &[layer_tar(&files(1), 1_700_000_500)]).unwrap();
    ok(ferry(&a).arg("add").arg(&v1));
    ok(ferry(&a).arg("add").arg(&v2));
    let full = t.path().join("full");
    let delta = t.path().join("delta");
    let signed = t.path().join("signed");
    let key = t.path().join("k.key");
    ok(ferry(&a).args(["pack", "seed:1", "-o"]).arg(&full));
    ok(ferry(&a)
        .args(["pack", "seed:2", "--base", "seed:1", "-o"])
        .arg(&delta));
    ok(ferry(&a).args(["key", "generate", "-o"]).arg(&key));
    ok(ferry(&a)
        .args(["pack", "seed:1", "--sign"])
        .arg(&key)
        .arg("-o")
        .arg(&signed));
    ok(ferry(&b).arg("add").arg(&v1));
    let inv = t.path().join("inv");
    ok(ferry(&b).args(["inventory", "-o"]).arg(&inv));

    let root = seeds_dir();
    let _ = std::fs::remove_dir_all(&root);
    let put = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    let (full, delta, signed) = (
        std::fs::read(full).unwrap(),
        std::fs::read(delta).unwrap(),
        std::fs::read(signed).unwrap(),
    );
    for target in ["pack_reader", "pack_unpack"] {
        put(target, "full.pack", &full);
        put(target, "signed.pack", &signed);
    }
    put_hostile(&root, &full);
    // A delta pack needs its base in the store: only the reader gets past
    // its header in a fresh store.
    put("pack_reader", "delta.pack", &delta);
    let groups: Vec<&[u8]> = records(&delta)
        .into_iter()
        .filter(|(k, _)| *k == 5)
        .map(|(_, p)| p)
        .collect();
    assert!(!groups.is_empty(), "the delta pack has no group record");
    for (i, g) in groups.iter().enumerate() {
        put("delta_group", &format!("group{i}"), g);
    }
    // delta_chunk: length (u16 LE), base length (u16 BE), base, frame.
    let base = file_content(&mut Rng::new(6), 3000, true);
    let mut new = base.clone();
    new[1000..1040].fill(b'#');
    let frame = ferry::similarity::encode(&base, &new);
    let mut seed = (new.len() as u16).to_le_bytes().to_vec();
    seed.extend_from_slice(&(base.len() as u16).to_be_bytes());
    seed.extend_from_slice(&base);
    seed.extend_from_slice(&frame);
    put("delta_chunk", "frame", &seed);
    // A layer rebuilt with a new time for every file: a header-delta frame.
    let layer = |mtime| layer_tar(&sample_files(9, "app", 20, 1500), mtime);
    let (base, new) = (layer(1_700_000_000), layer(1_700_003_600));
    let frame = ferry::tardelta::encode(&base, &new).expect("a header-delta frame");
    let mut seed = (new.len() as u16).to_le_bytes().to_vec();
    seed.extend_from_slice(&(base.len() as u16).to_be_bytes());
    seed.extend_from_slice(&base);
    seed.extend_from_slice(&frame);
    put("delta_chunk", "headers", &seed);
    // inventory: the file, and its decompressed body (the target wraps
    // arbitrary bytes in a valid file too).
    let inv = std::fs::read(inv).unwrap();
    put("inventory", "inventory", &inv);
    put(
        "inventory",
        "body",
        &zstd::decode_all(&inv[12..inv.len() - 32]).unwrap(),
    );
    // tar_split: a plain layer, and an archive holding a gzip'd one.
    let tar = layer_tar(&ferry::demo::sample_files(7, "etc", 6, 4 << 10), 1);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    let oci = t.path().join("oci.tar");
    ferry::demo::write_oci_docker_archive(&oci, "gz:1", std::slice::from_ref(&gz)).unwrap();
    let oci = std::fs::read(oci).unwrap();
    put("tar_split", "layer.tar", &tar);
    put("tar_split", "gzip-layer.tar", &oci);
    // deflate_part: the part records and plain text the splitter makes of
    // that gzip'd layer, in the target's framing.
    let mut sink = Parts::default();
    ferry::archive::split::split(&mut &oci[..], &mut sink, true).unwrap();
    assert!(sink.0.iter().any(|p| p.starts_with(&[0])), "no part record");
    let seed = sink.0.concat();
    assert_eq!(
        recreate(&seed).unwrap(),
        gz.len() - 18,
        "not the deflate stream"
    );
    put("deflate_part", "layer", &seed);
}

/// Seeds that claim what they do not hold, each as (name, bytes, what
/// the refusal says): `full`'s preamble and header, then a record frame
/// claiming up to 1 GiB followed by a few bytes. The pack targets must
/// refuse them quickly, allocating by the bytes given, not those claimed.
fn hostile_seeds(full: &[u8]) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let head_len = 17 + u32::from_le_bytes(full[13..17].try_into().unwrap()) as usize;
    let frame = |kind: u8, len: u32, body: &[u8], zeros: usize| {
        let mut v = full[..head_len].to_vec();
        v.push(kind);
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(body);
        v.resize(v.len() + zeros, 0);
        v
    };
    let gib = 1u32 << 30;
    // A snapshot record's fields up to its metadata: name "x", size,
    // hash, time.
    let mut named = vec![1, 0, 0, 0, b'x'];
    named.resize(named.len() + 8 + 32 + 8, 0);
    let mut recipe = named.clone();
    recipe.extend_from_slice(&[0, 0, 0, 0, 3]); // no metadata; encoding 3
    recipe.extend_from_slice(&1u64.to_le_bytes()); // one piece
    let mut meta = named.clone();
    meta.extend_from_slice(&(gib - 100).to_le_bytes());
    let mut header = full[..12].to_vec();
    header.push(1);
    header.extend_from_slice(&(16u32 << 20).to_le_bytes());
    header.resize(header.len() + 256, 0);
    vec![
        (
            "hostile-snapshot-1gib-zeros",
            frame(3, gib, &[], 256),
            "a snapshot record has an empty name",
        ),
        (
            "hostile-snapshot-1gib-recipe",
            frame(3, gib, &recipe, 256),
            "more than 1 pieces compress to",
        ),
        (
            "hostile-snapshot-1gib-meta",
            frame(3, gib, &meta, 256),
            "snapshot metadata of 1073741724 bytes",
        ),
        (
            "hostile-chunk-1gib",
            frame(2, gib, &[], 256),
            "claims 1073741824 bytes",
        ),
        (
            "hostile-group-at-its-limit",
            frame(5, ferry::pack::format::MAX_GROUP_RECORD, &[], 256),
            "truncated",
        ),
        ("hostile-header-16mib", header, "truncated"),
    ]
}

/// Writes [`hostile_seeds`] of `full` for both pack targets.
fn put_hostile(root: &Path, full: &[u8]) {
    for target in ["pack_reader", "pack_unpack"] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, data, _) in hostile_seeds(full) {
            std::fs::write(dir.join(name), data).unwrap();
        }
    }
}

#[test]
#[ignore = "writes fuzz/seeds/*/hostile-*; run when the formats change"]
fn write_hostile_fuzz_seeds() {
    let full = std::fs::read(seeds_dir().join("pack_reader/full.pack")).unwrap();
    put_hostile(&seeds_dir(), &full);
}

/// Collects what the splitter hands out for a deflate stream, framed as the
/// deflate_part target reads it: kind (0 part, 1 plain text), u16 length,
/// for a part its output length (u32), the bytes.
#[derive(Default)]
struct Parts(Vec<Vec<u8>>, bool);

impl Parts {
    fn plain(&mut self, b: &[u8]) {
        if self.1 {
            for piece in b.chunks(u16::MAX as usize) {
                let mut v = vec![1];
                v.extend_from_slice(&(piece.len() as u16).to_le_bytes());
                v.extend_from_slice(piece);
                self.0.push(v);
            }
        }
    }
}

impl ferry::archive::split::Sink for Parts {
    fn meta(&mut self, b: &[u8]) {
        self.plain(b);
    }
    fn begin(&mut self, _: ferry::archive::split::Kind) {}
    fn data(&mut self, b: &[u8]) {
        self.plain(b);
    }
    fn end(&mut self) {}
    fn inflate(&mut self, on: bool) {
        self.1 = on;
    }
    fn part(&mut self, record: Vec<u8>, out: u64) {
        let mut v = vec![0];
        v.extend_from_slice(&u16::try_from(record.len()).unwrap().to_le_bytes());
        v.extend_from_slice(&u32::try_from(out).unwrap().to_le_bytes());
        v.extend_from_slice(&record);
        self.0.push(v);
    }
}

/// Replays a deflate_part seed through the re-creator; the bytes it emits.
fn recreate(mut rest: &[u8]) -> Result<usize, String> {
    let mut rec = ferry::archive::recreate::Recreator::default();
    let mut emitted = 0;
    let mut emit = |b: &[u8]| -> std::io::Result<()> {
        emitted += b.len();
        Ok(())
    };
    while !rest.is_empty() {
        let kind = rest[0];
        let len = u16::from_le_bytes([rest[1], rest[2]]) as usize;
        if kind == 0 {
            let out = u32::from_le_bytes(rest[3..7].try_into().unwrap()) as u64;
            rec.part(&rest[7..7 + len], out, &mut emit)
                .map_err(|e| format!("{e:?}"))?;
            rest = &rest[7 + len..];
        } else {
            rec.plain(&rest[3..3 + len], &mut emit)
                .map_err(|e| format!("{e:?}"))?;
            rest = &rest[3 + len..];
        }
    }
    rec.end(&mut emit).map_err(|e| format!("{e:?}"))?;
    Ok(emitted)
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = seeds_dir().join(target);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no seeds for {target}");
    v
}

#[test]
fn committed_fuzz_seeds_get_past_the_checksums() {
    let t = tempfile::tempdir().unwrap();
    let mut total = 0;
    // Every pack is read to its trailer; the full ones import into a fresh
    // store and verify.
    let full = std::fs::read(seeds_dir().join("pack_reader/full.pack")).unwrap();
    let hostile = hostile_seeds(&full);
    for (name, pack) in seeds("pack_reader") {
        total += pack.len();
        if name.starts_with("hostile-") {
            continue;
        }
        let mut r = ferry::pack::PackReader::new(&pack[..]).unwrap();
        while r
            .next_record()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .is_some()
        {}
    }
    for (name, pack) in seeds("pack_unpack") {
        total += pack.len();
        if name.starts_with("hostile-") {
            continue;
        }
        let s = t.path().join(&name);
        let r: serde_json::Value = serde_json::from_str(&ok(ferry(&s)
            .args(["unpack", "--json"])
            .arg(write(t.path(), &format!("{name}.in"), &pack))))
        .unwrap();
        assert_eq!(r["added"].as_array().unwrap().len(), 1, "{name}: {r}");
        assert!(r["chunks"].as_u64().unwrap() >= 4, "{name}: {r}");
        ok(ferry(&s).args(["verify", "--full"]));
    }
    // The hostile seeds are what `hostile_seeds` makes of full.pack, and
    // are refused at once, by the reader and by an unpack.
    for target in ["pack_reader", "pack_unpack"] {
        let committed: Vec<(String, Vec<u8>)> = seeds(target)
            .into_iter()
            .filter(|(n, _)| n.starts_with("hostile-"))
            .collect();
        let names: Vec<&str> = committed.iter().map(|(n, _)| n.as_str()).collect();
        let mut want: Vec<&str> = hostile.iter().map(|h| h.0).collect();
        want.sort_unstable();
        assert_eq!(names, want, "{target}: run write_hostile_fuzz_seeds");
    }
    for (name, data, says) in &hostile {
        let committed = std::fs::read(seeds_dir().join("pack_reader").join(name)).unwrap();
        assert!(committed == *data, "{name}: run write_hostile_fuzz_seeds");
        let started = std::time::Instant::now();
        let err = ferry::pack::PackReader::new(&data[..])
            .and_then(|mut r| {
                while r.next_record()?.is_some() {}
                Ok(())
            })
            .expect_err(name)
            .to_string();
        assert!(err.contains(says), "{name}: {err}");
        let s = t.path().join(name);
        fails(
            ferry(&s)
                .arg("unpack")
                .arg(write(t.path(), &format!("{name}.in"), data)),
            &[says],
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{name} took {:?}",
            started.elapsed()
        );
    }
    let max = ferry::chunker::PARAMS.max;
    for (name, g) in seeds("delta_group") {
        total += g.len();
        let g = ferry::pack::decode_group(&g, max).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!g.bases.is_empty() && !g.payload.is_empty(), "{name}");
    }
    for (name, s) in seeds("delta_chunk") {
        total += s.len();
        let len = u16::from_le_bytes([s[0], s[1]]) as usize;
        let split = u16::from_be_bytes([s[2], s[3]]) as usize;
        let (base, frame) = s[4..].split_at(split);
        let decode = match frame[0] {
            ferry::tardelta::MARK => ferry::tardelta::decode,
            _ => ferry::similarity::decode,
        };
        decode(base, frame, len).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let inv = seeds("inventory");
    for (name, data) in &inv {
        total += data.len();
        if name == "inventory" {
            ferry::inventory::parse(data).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            // As the target wraps it: magic, version, zstd, BLAKE3.
            let mut file = b"FERRYINV\x01\0\0\0".to_vec();
            file.extend_from_slice(&zstd::bulk::compress(data, 1).unwrap());
            let digest = blake3::hash(&file);
            file.extend_from_slice(digest.as_bytes());
            ferry::inventory::parse(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    for (_, tar) in seeds("tar_split") {
        total += tar.len();
    }
    for (name, seed) in seeds("deflate_part") {
        total += seed.len();
        let n = recreate(&seed).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(n > 0, "{name}");
    }
    assert!(total < 200 << 10, "fuzz seeds take {total} bytes");
}
