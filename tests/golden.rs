//! Golden tests: the formats pinned to fixed values. The engine's cut
//! points, chunk ids, super-features and recipe bytes for fixed inputs are
//! compared with values recorded once, and the committed packs of every
//! format version (tests/data/golden, written by the ferry of their time)
//! must unpack and check out byte-exact forever. A failure here means a
//! change would make stores or packs mean something else: that needs a new
//! format version (and a new golden pack), never an updated constant.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use ferry::chunker::{Cutter, PARAMS};
use ferry::similarity::super_features;

/// A fixed xorshift64 stream, independent of the crate's own generators.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn fill(&mut self, out: &mut [u8]) {
        for c in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
    fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: [&str; 16] = [
            "ferry", "chunk", "layer", "stream", "recipe", "store", "pack", "delta", "image",
            "config", "header", "offline", "gzip", "tar", "volume", "digest",
        ];
        let mut out = Vec::with_capacity(len + 16);
        let mut line = 0u64;
        while out.len() < len {
            out.extend_from_slice(format!("{line:06}").as_bytes());
            for _ in 0..4 + self.next() % 9 {
                out.push(b' ');
                out.extend_from_slice(WORDS[(self.next() % 16) as usize].as_bytes());
            }
            out.push(b'\n');
            line += 1;
        }
        out.truncate(len);
        out
    }
}

/// About 4.3 MiB: random bytes, text, a repeat of the first random stretch,
/// zeros (cut at the maximum size), random bytes again.
fn engine_input() -> Vec<u8> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut random = vec![0u8; 1 << 20];
    rng.fill(&mut random);
    let text = rng.text(1 << 20);
    let mut tail = vec![0u8; 900_000];
    rng.fill(&mut tail);
    let mut data = random.clone();
    data.extend_from_slice(&text);
    data.extend_from_slice(&random[..700_000]);
    data.extend(std::iter::repeat_n(0u8, 600_000));
    data.extend_from_slice(&tail);
    data
}

fn cut(data: &[u8]) -> Vec<&[u8]> {
    let mut lens = Vec::new();
    let mut c = Cutter::new(PARAMS);
    for piece in data.chunks(1 << 20) {
        c.push(piece, &mut |ch| lens.push(ch.len()));
    }
    c.finish(&mut |ch| lens.push(ch.len()));
    let mut at = 0;
    lens.iter()
        .map(|&n| {
            at += n;
            &data[at - n..at]
        })
        .collect()
}

#[test]
fn cut_points_ids_and_super_features_are_golden() {
    let data = engine_input();
    assert_eq!(
        blake3::hash(&data).to_hex().as_str(),
        GOLDEN_INPUT,
        "the test's own input changed"
    );
    let chunks = cut(&data);
    let mut ends = Vec::new();
    let mut at = 0u64;
    for c in &chunks {
        at += c.len() as u64;
        ends.push(at);
    }
    assert_eq!(ends, GOLDEN_CUTS, "chunk boundaries (end offsets)");
    let ids: Vec<blake3::Hash> = chunks.iter().map(|c| blake3::hash(c)).collect();
    let first: Vec<String> = ids[..3].iter().map(|h| h.to_hex().to_string()).collect();
    assert_eq!(first, GOLDEN_FIRST_IDS, "ids of the first chunks");
    let mut all = blake3::Hasher::new();
    for id in &ids {
        all.update(id.as_bytes());
    }
    assert_eq!(all.finalize().to_hex().as_str(), GOLDEN_ALL_IDS, "all ids");
    let features: Vec<_> = GOLDEN_FEATURES
        .iter()
        .map(|(i, _)| (*i, super_features(chunks[*i])))
        .collect();
    assert_eq!(features, GOLDEN_FEATURES, "super-features of some chunks");
}

#[test]
fn format_defining_crates_are_pinned_to_the_recorded_versions() {
    let toml = include_str!("../Cargo.toml");
    let lock = include_str!("../Cargo.lock");
    for (name, recorded) in [
        ("fastcdc", ferry::chunker::FASTCDC_CRATE),
        ("preflate-rs", ferry::archive::gzip::PREFLATE_CRATE),
    ] {
        let version = recorded
            .strip_prefix(name)
            .and_then(|r| r.trim_start().strip_prefix('='))
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("{recorded:?} does not name {name} =VERSION"));
        let pin = format!("{name} = \"={version}\"");
        assert!(toml.contains(&pin), "Cargo.toml lacks {pin}");
        let locked = format!("name = \"{name}\"\nversion = \"{version}\"");
        assert!(
            lock.contains(&locked),
            "Cargo.lock does not lock {name} {version}"
        );
    }
}

/// The records of a pack, per docs/FORMAT.md: (type, frame start, payload).
fn records(pack: &[u8]) -> Vec<(u8, usize, &[u8])> {
    let mut out = Vec::new();
    let mut at = 12;
    while at < pack.len() {
        let n = u32::from_le_bytes(pack[at + 1..at + 5].try_into().unwrap()) as usize;
        out.push((pack[at], at, &pack[at + 5..at + 5 + n]));
        at += 5 + n;
    }
    out
}

/// Length of a `str` field (u32 length and bytes) at `at`.
fn str_len(b: &[u8], at: usize) -> usize {
    4 + u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

/// A fixed docker-save-like archive: an OS layer, a gzip'd dependency
/// layer (so the recipe holds deflate parts) and an app layer.
fn fixed_archive(dir: &Path) -> PathBuf {
    use std::io::Write;
    let os = layer_tar(&sample_files(21, "usr/lib", 40, 64 << 10), 1_600_000_000);
    let deps = layer_tar(
        &sample_files(22, "site-packages", 30, 96 << 10),
        1_600_000_000,
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&deps).unwrap();
    let deps = gz.finish().unwrap();
    let app = layer_tar(&sample_files(23, "app", 12, 200 << 10), 1_600_000_000);
    let p = dir.join("golden.tar");
    write_docker_archive(&p, "golden:recipe", &[os, deps, app]).unwrap();
    p
}

#[test]
fn recipe_and_pack_bytes_of_a_fixed_archive_are_golden() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let archive = fixed_archive(t.path());
    let input = std::fs::read(&archive).unwrap();
    assert_eq!(
        blake3::hash(&input).to_hex().as_str(),
        GOLDEN_ARCHIVE,
        "the test's own input changed (ferry::demo or flate2 output)"
    );
    // A relative path, so the metadata's `source` is the same everywhere.
    ok(ferry(&store)
        .current_dir(t.path())
        .args(["add", "golden.tar"]));
    let pack_path = t.path().join("p.ferry");
    ok(ferry(&store)
        .args(["pack", "golden:recipe", "-o"])
        .arg(&pack_path));
    let pack = std::fs::read(&pack_path).unwrap();
    assert_eq!(&pack[..12], b"FERRYPAK\x0b\0\0\0");
    let recs = records(&pack);
    // The header's creation time and writer vary; the rest is pinned.
    let (kind, _, header) = recs[0];
    assert_eq!(kind, 1);
    let created = str_len(header, 0) + 12;
    let after_writer = created + 8 + str_len(header, created + 8);
    let mut stable = blake3::Hasher::new();
    stable.update(&pack[..12]);
    stable.update(&header[..created]);
    stable.update(&header[after_writer..]);
    assert!(recs.iter().any(|r| r.0 == 6), "no solid block record");
    let mut snapshot = None;
    for &(kind, at, payload) in &recs[1..recs.len() - 1] {
        if kind == 3 {
            // The snapshot record's `added_at` is when it was added, and
            // its metadata's `tagged_at_ms` when its name was set.
            let added = str_len(payload, 0) + 8 + 32;
            let rest = zero_tag_time(&payload[added + 8..]);
            stable.update(&pack[at..at + 5]);
            stable.update(&payload[..added]);
            stable.update(&rest);
            snapshot = Some(payload);
        } else {
            stable.update(&pack[at..at + 5 + payload.len()]);
        }
    }
    let (kind, _, trailer) = recs[recs.len() - 1];
    assert_eq!(kind, 0xFF);
    stable.update(&trailer[..16]);
    let s = snapshot.expect("a snapshot record");
    let meta_at = str_len(s, 0) + 8 + 32 + 8;
    let recipe_at = meta_at + str_len(s, meta_at);
    let meta: serde_json::Value = serde_json::from_slice(&s[meta_at + 4..recipe_at]).unwrap();
    assert!(
        meta["split"]["deflate_parts"].as_u64().unwrap() > 0,
        "{meta}"
    );
    let encoding = s[recipe_at];
    let count = u64::from_le_bytes(s[recipe_at + 1..recipe_at + 9].try_into().unwrap());
    let data = &s[recipe_at + 9..];
    let raw = zstd::decode_all(data).unwrap();
    let got = (
        encoding,
        count,
        blake3::hash(&raw).to_hex().to_string(),
        blake3::hash(data).to_hex().to_string(),
        blake3::hash(meta["split"].to_string().as_bytes())
            .to_hex()
            .to_string(),
        stable.finalize().to_hex().to_string(),
    );
    let want = GOLDEN_RECIPE;
    assert_eq!(
        got,
        (
            want.0,
            want.1,
            want.2.to_string(),
            want.3.to_string(),
            want.4.to_string(),
            want.5.to_string()
        ),
        "(encoding, pieces, BLAKE3 of the decoded recipe, of its zstd frame, of meta.split, of the pack without times and writer)"
    );
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(name)
}

/// The BLAKE3 of input `name` (`a` or `b`) of `variant`, from inputs.b3.
fn input_digest(variant: &str, name: &str) -> String {
    let text = std::fs::read_to_string(golden("inputs.b3")).unwrap();
    text.lines()
        .find_map(|l| match l.split(' ').collect::<Vec<_>>()[..] {
            [v, n, h] if v == variant && n == name => Some(h.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("inputs.b3 has no {variant} {name}"))
}

fn checkout_digest(store: &Path, name: &str) -> String {
    let out = run(ferry(store).args(["checkout", name, "-o", "-"]));
    assert!(
        out.status.success(),
        "checkout {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    blake3::hash(&out.stdout).to_hex().to_string()
}

/// Unpacks the golden full and delta packs of `version` into a fresh
/// store, checks both snapshots out byte-exact and verifies the store.
/// Returns the two packs' records, for checks of what they hold.
fn golden_version(version: u32, variant: &str) -> (Vec<u8>, Vec<u8>) {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let full = golden(&format!("v{version}-full.ferry"));
    let delta = golden(&format!("v{version}-delta.ferry"));
    let (full_bytes, delta_bytes) = (
        std::fs::read(&full).unwrap(),
        std::fs::read(&delta).unwrap(),
    );
    for p in [&full_bytes, &delta_bytes] {
        assert_eq!(&p[..8], b"FERRYPAK");
        assert_eq!(u32::from_le_bytes(p[8..12].try_into().unwrap()), version);
    }
    ok(ferry(&store).arg("unpack").arg(&full));
    assert_eq!(
        checkout_digest(&store, "golden:a"),
        input_digest(variant, "a")
    );
    ok(ferry(&store).arg("unpack").arg(&delta));
    assert_eq!(
        checkout_digest(&store, "golden:b"),
        input_digest(variant, "b")
    );
    assert_eq!(
        checkout_digest(&store, "golden:a"),
        input_digest(variant, "a")
    );
    ok(ferry(&store).args(["verify", "--full"]));
    (full_bytes, delta_bytes)
}

fn kinds(pack: &[u8]) -> Vec<u8> {
    records(pack).iter().map(|r| r.0).collect()
}

fn split_meta(store_pack: &[u8]) -> serde_json::Value {
    let (_, _, s) = *records(store_pack).iter().find(|r| r.0 == 3).unwrap();
    let meta_at = str_len(s, 0) + 8 + 32 + 8;
    let meta: serde_json::Value =
        serde_json::from_slice(&s[meta_at + 4..meta_at + str_len(s, meta_at)]).unwrap();
    meta["split"].clone()
}

#[test]
fn golden_packs_of_version_1_read() {
    let (full, delta) = golden_version(1, "plain");
    assert!(split_meta(&full)["files"].as_u64().unwrap() > 10);
    assert!(kinds(&delta).contains(&2));
}

#[test]
fn golden_packs_of_version_2_read() {
    let (full, delta) = golden_version(2, "plain");
    assert!(split_meta(&full)["files"].as_u64().unwrap() > 10);
    // A delta pack names its base's recipe digest and uses compact recipes.
    assert!(kinds(&delta).contains(&3));
}

#[test]
fn golden_packs_of_version_3_read() {
    let (full, delta) = golden_version(3, "gz");
    assert!(split_meta(&full)["deflate_parts"].as_u64().unwrap() > 0);
    assert!(split_meta(&delta)["deflate_parts"].as_u64().unwrap() > 0);
}

#[test]
fn golden_packs_of_version_4_read() {
    let (full, delta) = golden_version(4, "gz");
    assert!(split_meta(&full)["deflate_parts"].as_u64().unwrap() > 0);
    assert!(kinds(&delta).contains(&4), "no delta chunk record");
}

#[test]
fn golden_packs_of_version_5_read() {
    let (full, delta) = golden_version(5, "gz");
    assert!(split_meta(&full)["deflate_parts"].as_u64().unwrap() > 0);
    assert!(kinds(&delta).contains(&5), "no delta group record");
}

/// A store holding something unrelated to the golden packs, and a
/// fingerprint of it: the snapshot list, the data files' sizes and the
/// BLAKE3 of each data file's bytes.
fn bystander_store(dir: &Path) -> PathBuf {
    let store = dir.join("s");
    let f = write(dir, "other.bin", &random_bytes(77, 300_000));
    ok(ferry(&store).arg("add").arg(&f));
    store
}

fn fingerprint(store: &Path) -> (StoreState, Vec<(String, String)>) {
    let mut files = Vec::new();
    for e in std::fs::read_dir(store.join("data")).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        files.push((
            e.file_name().to_string_lossy().into_owned(),
            blake3::hash(&bytes).to_hex().to_string(),
        ));
    }
    files.sort();
    (state(store), files)
}

/// Unpacking `pack` fails with one line holding `needles`, and leaves the
/// store exactly as it was.
fn refused(pack: &Path, needles: &[&str]) -> String {
    let t = tempfile::tempdir().unwrap();
    let store = bystander_store(t.path());
    let before = fingerprint(&store);
    let line = fails(ferry(&store).arg("unpack").arg(pack), needles);
    assert_eq!(fingerprint(&store), before, "the store changed");
    ok(ferry(&store).args(["verify", "--full"]));
    line
}

#[test]
fn a_golden_pack_with_a_corrupt_header_is_refused() {
    refused(
        &golden("broken-header.ferry"),
        &["pack is corrupt", "header"],
    );
}

#[test]
fn a_truncated_golden_pack_is_refused() {
    refused(&golden("broken-truncated.ferry"), &["pack is truncated"]);
}

#[test]
fn a_golden_pack_with_a_damaged_chunk_is_refused_naming_the_chunk() {
    // make.sh flipped a byte in the payload of the first chunk record
    // longer than 137 bytes, and recomputed the trailer's digest.
    let pack = std::fs::read(golden("broken-chunk.ferry")).unwrap();
    let recs = records(&pack);
    let (_, _, chunk) = *recs.iter().find(|r| r.0 == 2 && r.2.len() > 137).unwrap();
    let id = blake3::Hash::from_bytes(chunk[..32].try_into().unwrap()).to_hex();
    refused(
        &golden("broken-chunk.ferry"),
        &["pack is corrupt", "chunk", id.as_str()],
    );
}

#[test]
fn a_pack_of_a_newer_version_is_refused_with_upgrade_ferry() {
    let t = tempfile::tempdir().unwrap();
    let mut pack = std::fs::read(golden("v5-full.ferry")).unwrap();
    let newer = ferry::pack::format::VERSION + 1;
    pack[8..12].copy_from_slice(&newer.to_le_bytes());
    let p = write(t.path(), "newer.ferry", &pack);
    refused(&p, &["upgrade ferry", &format!("version {newer}")]);
}

// Recorded once from the engine of this commit (fastcdc =5.0.0; the
// super-features agree with their one-pass definition in similarity.rs).

const GOLDEN_INPUT: &str = "5d228ed0bc3ca229ec25ea914a9bf578335a4a1fab9e8fcdc3c6e56342d9a050";

/// End offsets of the 48 chunks (two of them cut at the 256 KiB maximum in
/// the run of zeros; chunks 5 and 30 are the same bytes, repeated).
const GOLDEN_CUTS: &[u64] = &[
    44750, 264712, 364837, 393237, 484666, 513133, 532150, 646885, 735049, 801916, 954199, 1059963,
    1134203, 1168653, 1238011, 1305142, 1414990, 1479035, 1544678, 1730532, 1798116, 1877146,
    1916919, 1991453, 2253597, 2272836, 2361864, 2461989, 2490389, 2581818, 2610285, 2629302,
    2744037, 3006181, 3268325, 3428174, 3529351, 3622947, 3644887, 3696929, 3767445, 3875927,
    3979304, 4050234, 4119217, 4198830, 4250742, 4297152,
];

const GOLDEN_FIRST_IDS: &[&str] = &[
    "17a7780627d726889a48a1907222404a0ed1f28a14348a807559396514d42edc",
    "61121aea29eb27f89907c6074a21d554108bc5f0f161b0118f22194b32111f2a",
    "1bcce12e84c93e23143bce7ad678e418df5f4bd174fb1e55e571828c894150d0",
];

/// BLAKE3 over the 48 chunk ids, in order.
const GOLDEN_ALL_IDS: &str = "2db076e4c343c9d69ec3a2aa78fc0585eda483b4856673584a273e38683e66d0";

/// Super-features of chunks in the random, text, repeated and tail parts.
const GOLDEN_FEATURES: &[(usize, Option<[i64; 6]>)] = &[
    (
        0,
        Some([
            -7675124819939618323,
            7459675233012794712,
            3220047821323208164,
            2088839351865941841,
            -6756802461638490713,
            5517168791270912442,
        ]),
    ),
    (
        5,
        Some([
            4577244390325941993,
            -6815188671739980850,
            590060284995864505,
            4384848318199664769,
            -3882984485986932580,
            -2464874570216388784,
        ]),
    ),
    (
        10,
        Some([
            -490803822831478803,
            -5788358279062334318,
            2173647594017913480,
            -5098043871855139011,
            -5068717001409832729,
            8696975390003087093,
        ]),
    ),
    (
        17,
        Some([
            -2047210554751144261,
            1086017608219880293,
            -5254315856381156310,
            5961277287030666264,
            8455269003460906947,
            -649302500778292327,
        ]),
    ),
    (
        20,
        Some([
            5478554366568555772,
            -8172867329775517459,
            -3970543101569477862,
            781703685490265007,
            -8600799451320065695,
            4453299710399361868,
        ]),
    ),
    (
        25,
        Some([
            -3897591351160952507,
            2908896934059526673,
            7762977203396777783,
            -6410940212332533114,
            8590899021303890766,
            7396747965570278975,
        ]),
    ),
    (
        30,
        Some([
            4577244390325941993,
            -6815188671739980850,
            590060284995864505,
            4384848318199664769,
            -3882984485986932580,
            -2464874570216388784,
        ]),
    ),
    (
        40,
        Some([
            -1906052054783376271,
            1039956853264682071,
            7853174623671957436,
            -6562028827253657515,
            7316785777530161375,
            -5222894558065869326,
        ]),
    ),
    (
        45,
        Some([
            4205737153696621648,
            813309019360931958,
            -6781380575257205298,
            -5058912856073534712,
            5979829585368638451,
            -4154624810114454853,
        ]),
    ),
];

/// BLAKE3 of the archive [`fixed_archive`] writes.
const GOLDEN_ARCHIVE: &str = "0f886839e6661f421d752fd586f76c6cc1cfcb882f4a354e31f81b9921fdbfa4";

/// Its snapshot record's recipe encoding, piece count, BLAKE3 of the
/// decompressed pieces and of the zstd frame as written, BLAKE3 of
/// `meta.split`, and BLAKE3 of the whole pack without the header's creation
/// time and writer, the snapshot's `added_at` and the digits of its
/// metadata's `tagged_at_ms` (and without the trailer's digest, which
/// covers them). The pack's hash was recorded with pack format 11, whose
/// full packs differ from format 9's only in the version (format 8 put the
/// chunks in solid blocks at the default level, 9 gave a block a prefix);
/// the metadata's keys are
/// those of format 6 (the header's encoder list, `meta.split`'s
/// `reused_layers` and `gzip_encoders`, `tagged_at_ms`). The recipe's
/// encoding is format 5's; its pieces name the chunks in the order a full
/// pack gives them since chunks alike are ordered together for the blocks.
const GOLDEN_RECIPE: (u8, u64, &str, &str, &str, &str) = (
    3,
    186,
    "21f0f263ba2d1323bcfe4e47a78c3085a22392cb3266f9becda3971f7eb49e46",
    "f4e8fecf33aca21d1c58a77c6da509cee4afbdb5e47e9b562af4f43a4264d2b2",
    "b3c92f3f3a68f46c7d33a1050923562f1ac6280ade268224b7a57d1b48f91905",
    "30585416fcaf34ffd4d14f31a4e5f5b9fe0b65b0a702b044e6b6f7546f46906f",
);

#[test]
fn golden_packs_of_version_6_read() {
    // Layers gzip'd by Go 1.8-1.26, pgzip and Go 1.27, re-created from
    // plain text by ferry's models of those encoders; b's unchanged layer
    // was taken from the store.
    let (full, delta) = golden_version(6, "go");
    let enc = &split_meta(&full)["gzip_encoders"];
    for name in ["go-stdlib", "pgzip", "go1.27"] {
        assert_eq!(enc[name], 1, "{enc}");
    }
    assert_eq!(split_meta(&delta)["reused_layers"], 1);
}

#[test]
fn golden_packs_of_version_7_read() {
    let (full, _) = golden_version(7, "go");
    let enc = &split_meta(&full)["gzip_encoders"];
    assert_eq!(enc["go1.27"], 1, "{enc}");
}

#[test]
fn golden_packs_of_version_8_read() {
    let (full, delta) = golden_version(8, "go");
    assert!(kinds(&full).contains(&6), "no solid block record");
    assert!(kinds(&delta).contains(&5), "no delta group record");
    let enc = &split_meta(&full)["gzip_encoders"];
    assert_eq!(enc["go1.27"], 1, "{enc}");
}

#[test]
fn golden_packs_of_version_9_read() {
    let (full, delta) = golden_version(9, "go");
    assert!(kinds(&full).contains(&6), "no solid block record");
    assert!(kinds(&delta).contains(&5), "no delta group record");
    let enc = &split_meta(&full)["gzip_encoders"];
    assert_eq!(enc["go1.27"], 1, "{enc}");
}

#[test]
fn golden_packs_of_version_10_read() {
    golden_header_frames_read(10);
}

#[test]
fn golden_packs_of_version_11_read() {
    // Every delta frame starts with its kind byte, not zstd's magic, and
    // some leave out the zstd header their length gives.
    use ferry::pack::format::{FRAME_SIZED, ZSTD_MAGIC};
    let (_, delta) = golden_header_frames_read(11);
    let frames: Vec<&[u8]> = records(&delta)
        .iter()
        .filter(|r| r.0 == 4)
        .map(|r| delta_frame(r.2))
        .collect();
    assert!(frames.iter().all(|f| f[0] <= 3 && f[1..5] != ZSTD_MAGIC));
    assert!(frames.iter().any(|f| f[0] & FRAME_SIZED != 0));
}

/// The golden packs of `version` (10 on) made from "gotime", where every
/// file of b is an hour newer than a's: the delta pack carries the tar
/// headers as header-delta frames (from 11 on, the kind byte's bit
/// [`MARK`](ferry::tardelta::MARK) marks them).
fn golden_header_frames_read(version: u32) -> (Vec<u8>, Vec<u8>) {
    use ferry::tardelta::MARK;
    let (full, delta) = golden_version(version, "gotime");
    assert!(kinds(&full).contains(&6), "no solid block record");
    let header_frames = records(&delta)
        .iter()
        .filter(|r| r.0 == 4)
        .map(|r| delta_frame(r.2)[0])
        .filter(|&kind| kind == MARK || version >= 11 && kind & MARK != 0)
        .count();
    assert!(header_frames > 0, "no header-delta frame");
    let enc = &split_meta(&full)["gzip_encoders"];
    assert_eq!(enc["go1.27"], 1, "{enc}");
    (full, delta)
}

/// A delta chunk record's frame: its payload after the id, the length,
/// the base count and the bases (varints).
fn delta_frame(record: &[u8]) -> &[u8] {
    let mut at = 37;
    for _ in 0..record[36] {
        while record[at] & 0x80 != 0 {
            at += 1;
        }
        at += 1;
    }
    &record[at..]
}

#[test]
fn golden_volumes_of_version_11_read_in_any_order_their_deltas_waiting_for_bases() {
    golden_volumes_read(11);
}

#[test]
fn golden_volumes_of_version_10_read_in_any_order_their_deltas_waiting_for_bases() {
    golden_volumes_read(10);
}

#[test]
fn golden_volumes_of_version_9_read_in_any_order_their_deltas_waiting_for_bases() {
    golden_volumes_read(9);
}

#[test]
fn golden_volumes_of_version_8_read_in_any_order_their_deltas_waiting_for_bases() {
    golden_volumes_read(8);
}

#[test]
fn golden_volumes_of_version_7_read_in_any_order_their_deltas_waiting_for_bases() {
    golden_volumes_read(7);
}

/// The golden volume set of `version`, unpacked last volume first.
fn golden_volumes_read(version: u32) {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let mut vols: Vec<PathBuf> = (1..)
        .map(|i| golden(&format!("v{version}-volumes.ferry.{i:03}")))
        .take_while(|p| p.exists())
        .collect();
    assert!(vols.len() >= 2, "{vols:?}");
    // The last volume first: its deltas' bases are in the others.
    vols.reverse();
    let first = ok(ferry(&store).arg("unpack").arg(&vols[0]));
    assert!(first.contains("delta chunks kept until"), "{first}");
    let mut cmd = ferry(&store);
    cmd.arg("unpack").args(&vols[1..]);
    assert!(ok(&mut cmd).contains("added golden:twins"));
    assert_eq!(
        checkout_digest(&store, "golden:twins"),
        input_digest("twins", "a")
    );
    ok(ferry(&store).args(["verify", "--full"]));
}

/// `bytes` with the digits of the metadata's `"tagged_at_ms":N` zeroed.
fn zero_tag_time(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let key = b"\"tagged_at_ms\":";
    if let Some(at) = out.windows(key.len()).position(|w| w == key) {
        for b in out[at + key.len()..].iter_mut() {
            if !b.is_ascii_digit() {
                break;
            }
            *b = b'0';
        }
    }
    out
}
