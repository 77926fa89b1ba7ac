//! ferry's Go encoders against Go's own: every level each one models, on
//! inputs of the shapes layers have (empty, tiny, block-boundary sizes,
//! zeros, random bytes, text, a tar of real files, a mix), written in one
//! piece and through many small writes. A single differing byte fails.

mod common;

use common::gotools::{GoRef, go_compress, go_ref_or_skip};
use common::*;
use ferry::archive::goenc::{self, Encoder, Model};
use std::path::Path;

/// A tar of this repository's own sources and docs (real files).
fn real_tar() -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    for dir in ["src", "docs", "tests/go"] {
        b.append_dir_all(dir, root.join(dir)).unwrap();
    }
    b.into_inner().unwrap()
}

/// Text: the repository's Rust sources, concatenated.
fn text(n: usize) -> Vec<u8> {
    let tar = real_tar();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.extend(
            tar.iter()
                .filter(|b| b.is_ascii_graphic() || **b == b'\n' || **b == b' '),
        );
    }
    out.truncate(n);
    out
}

/// The inputs every level is checked on, by name.
fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let t = text(1 << 20);
    let mut mixed = t[..300_000].to_vec();
    mixed.extend(random_bytes(7, 200_000));
    mixed.extend(vec![0u8; 500_000]);
    mixed.extend_from_slice(&t[300_000..600_000]);
    vec![
        ("empty", Vec::new()),
        ("one byte", vec![b'x']),
        ("64 KiB - 1", t[..65535].to_vec()),
        ("64 KiB", t[..65536].to_vec()),
        ("64 KiB + 1", random_bytes(2, 65537)),
        ("1 MiB - 1", text((1 << 20) - 1)),
        ("1 MiB", t.clone()),
        ("1 MiB + 1", text((1 << 20) + 1)),
        ("zeros", vec![0u8; 4 << 20]),
        ("random", random_bytes(3, 3 << 20)),
        ("tar of real files", real_tar()),
        ("mixed", mixed),
    ]
}

/// Every level Go accepts.
const LEVELS: [i32; 12] = [-2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

/// The model for a Go level (-1 is the default: 6 for the standard
/// library, 5 for klauspost).
fn model(encoder: Encoder, level: i32) -> Model {
    let level = match (encoder, level) {
        (Encoder::Pgzip, -1) => 5,
        (_, -1) => 6,
        (_, l) => l,
    };
    Model {
        encoder,
        level: level as i8,
    }
}

/// Compares ferry's gzip stream with Go's at every modelled level; returns
/// the levels checked.
fn compare(test: &str, encoder: Encoder, which: GoRef) -> Vec<i32> {
    let Some(bin) = go_ref_or_skip(test, which) else {
        return Vec::new();
    };
    let mut checked = Vec::new();
    for level in LEVELS {
        let m = model(encoder, level);
        if m.encoder.deflater(m.level).is_none() {
            continue;
        }
        checked.push(level);
        for (name, data) in inputs() {
            let go = go_compress(&bin, level, false, 32 << 10, &data);
            let ours = goenc::gzip(m, &data).unwrap();
            assert!(
                ours == go,
                "{} level {level} on {name} ({} bytes): ferry wrote {} bytes, Go {}; first difference at {:?}",
                encoder.name(),
                data.len(),
                ours.len(),
                go.len(),
                ours.iter().zip(&go).position(|(a, b)| a != b)
            );
        }
    }
    checked
}

/// Compresses through many small writes of the given sizes, in turn.
fn in_writes(m: Model, data: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut d = m.encoder.deflater(m.level).unwrap();
    let mut out = Vec::new();
    let mut rest = data;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at((*size).min(rest.len()));
        d.write(now, &mut out);
        rest = later;
    }
    d.close(&mut out);
    out
}

/// Small writes on both sides give what one write gives.
fn compare_writes(test: &str, encoder: Encoder, which: GoRef, levels: &[i32]) {
    let Some(bin) = go_ref_or_skip(test, which) else {
        return;
    };
    let data = real_tar();
    for &level in levels {
        let m = model(encoder, level);
        let go = go_compress(&bin, level, true, 1000, &data);
        for sizes in [&[1usize, 7, 4096][..], &[100_000], &[65535, 1]] {
            let ours = in_writes(m, &data[..data.len().min(600_000)], sizes);
            let go_part = go_compress(&bin, level, true, 1000, &data[..data.len().min(600_000)]);
            assert!(
                ours == go_part,
                "{} level {level} in writes of {sizes:?}",
                encoder.name()
            );
        }
        assert_eq!(
            in_writes(m, &data, &[32 << 10]),
            go,
            "{} level {level}",
            encoder.name()
        );
    }
}

#[test]
fn go_stdlib_matches_go_1_19_at_every_level() {
    let levels = compare(
        "go_stdlib_matches_go_1_19_at_every_level",
        Encoder::GoStdlib,
        GoRef::Stdlib,
    );
    if !levels.is_empty() {
        assert_eq!(
            levels, LEVELS,
            "the standard library encoder models every level"
        );
    }
}

#[test]
fn go_1_27_matches_go_1_27() {
    let levels = compare("go_1_27_matches_go_1_27", Encoder::Go127, GoRef::Go127);
    if !levels.is_empty() {
        for l in [1, 6] {
            assert!(levels.contains(&l), "Go 1.27 level {l} is modelled");
        }
    }
}

#[test]
fn pgzip_matches_klauspost_pgzip() {
    let levels = compare(
        "pgzip_matches_klauspost_pgzip",
        Encoder::Pgzip,
        GoRef::Pgzip,
    );
    if !levels.is_empty() {
        for l in [1, 5] {
            assert!(levels.contains(&l), "pgzip level {l} is modelled");
        }
    }
}

#[test]
fn small_writes_give_go_stdlib_output() {
    compare_writes(
        "small_writes_give_go_stdlib_output",
        Encoder::GoStdlib,
        GoRef::Stdlib,
        &[1, 6, 9],
    );
}

#[test]
fn small_writes_give_go_1_27_output() {
    compare_writes(
        "small_writes_give_go_1_27_output",
        Encoder::Go127,
        GoRef::Go127,
        &[1, 6],
    );
}
