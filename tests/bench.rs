//! `ferry bench` on the real binary: every row present and consistent,
//! ferry's bytes accounted for, the changed files named, the chart written,
//! and the user's store left alone.

mod common;

use common::*;

#[cfg(feature = "chart")]
#[test]
fn bench_compares_every_method_and_explains_where_the_bytes_went() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let v1 = image(t.path(), "v1.tar", "app:1", 1);
    let v2 = image(t.path(), "v2.tar", "app:2", 2);
    // Snapshot names work as inputs too.
    ok(ferry(&store).arg("add").arg(&v1));
    let before = state(&store);
    let chart = t.path().join("savings.svg");
    let out = ok(ferry(&store)
        .args(["bench", "app:1"])
        .arg(&v2)
        .args(["--json", "--all"])
        .arg("--chart")
        .arg(&chart));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(state(&store), before, "bench changed the user's store");
    let rows = r["rows"].as_array().unwrap();
    let get = |m: &str| {
        rows.iter()
            .find(|row| row["method"] == m)
            .unwrap_or_else(|| panic!("no row {m}: {r}"))
            .clone()
    };
    let full = std::fs::metadata(&v2).unwrap().len();
    assert_eq!(get("full tar")["bytes"], full);
    let bytes = |m: &str| get(m)["bytes"].as_u64().unwrap();
    for m in [
        "gzip -6",
        "zstd -19",
        "ferry full pack (first transfer)",
        "layer-level (new layers, gzip -6)",
        "zstd -3 --long=31 --patch-from",
        "zstd -19 --long=31 --patch-from",
        "ferry without tar-aware splitting",
        "ferry without similarity deltas",
        "ferry",
    ] {
        let b = bytes(m);
        assert!(b > 0 && b < full, "{m}: {b}");
        let pct = get(m)["percent"].as_f64().unwrap();
        assert!((pct - 100.0 * b as f64 / full as f64).abs() < 1e-6, "{m}");
    }
    // Three files changed in the dependency layer: ferry ships a small
    // fraction of it; layer-level ships that whole layer.
    assert!(
        bytes("ferry") * 20 < bytes("layer-level (new layers, gzip -6)"),
        "{r}"
    );
    assert!(bytes("ferry") * 20 < bytes("gzip -6"), "{r}");
    // The first transfer: ferry's full pack of v2 sits beside gzip -6 and
    // zstd -19 of the archive, and ships less than gzip -6.
    let first = "ferry full pack (first transfer)";
    let at = |m: &str| rows.iter().position(|row| row["method"] == m).unwrap();
    assert_eq!(at(first), at("zstd -19") + 1, "{r}");
    assert!(bytes(first) < bytes("gzip -6"), "{r}");
    assert!(bytes(first) > bytes("ferry"), "{r}");
    assert!(get(first)["unpack_seconds"].as_f64().unwrap() > 0.0);
    assert!(get("ferry")["unpack_seconds"].as_f64().unwrap() > 0.0);
    // The breakdown adds up to the pack.
    let b = &r["breakdown"];
    let sum: u64 = [
        "contents",
        "deltas",
        "headers",
        "raw",
        "deflate",
        "recipes_and_framing",
    ]
    .iter()
    .map(|k| b[k].as_u64().unwrap())
    .sum();
    assert_eq!(sum, bytes("ferry"), "{b}");
    // The three edited files differ from their old versions in 500 bytes:
    // they go out as deltas, smaller than without.
    assert!(b["delta_chunks"].as_u64().unwrap() >= 3, "{b}");
    assert!(
        bytes("ferry") < bytes("ferry without similarity deltas"),
        "{r}"
    );
    // The changed files (site-packages/.../file0003, 0060, 0099) are named.
    let paths: Vec<&str> = r["top_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for n in ["file0003", "file0060", "file0099"] {
        assert!(
            paths.iter().any(|p| p.contains(n)),
            "{n} not among {paths:?}"
        );
    }
    assert!(
        r["top_layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"].as_str().unwrap().ends_with("layer.tar")),
        "{r}"
    );
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg"));
    for row in rows {
        assert!(
            svg.contains(row["method"].as_str().unwrap()),
            "chart lacks {}",
            row["method"]
        );
    }
    chart_is_fit_for_a_slide(&svg);
    // The table form.
    let text = ok(ferry(&store).arg("bench").arg(&v1).arg(&v2));
    assert!(
        text.contains("zstd -3 --long=31 --patch-from") && text.contains("top paths"),
        "{text}"
    );
}

#[test]
fn bench_refuses_inputs_it_cannot_find_with_one_line() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let v1 = image(t.path(), "v1.tar", "app:1", 1);
    fails(
        ferry(&store).arg("bench").arg(&v1).arg("nope:9"),
        &["nope:9", "neither a file"],
    );
}

/// A ferry built without the `chart` feature refuses `--chart` in one line,
/// before any work.
#[cfg(not(feature = "chart"))]
#[test]
fn chart_without_the_feature_is_refused_clearly() {
    let t = tempfile::tempdir().unwrap();
    let chart = t.path().join("savings.svg");
    fails(
        ferry(&t.path().join("s"))
            .args(["bench", "old.tar", "new.tar", "--chart"])
            .arg(&chart),
        &["without the 'chart' feature", "--chart"],
    );
    assert!(!chart.exists());
}

/// The chart's value axis is logarithmic with real units, ferry's bar
/// stands out, every bar says its size, and the callout says how much
/// smaller than gzip ferry is.
#[cfg(feature = "chart")]
fn chart_is_fit_for_a_slide(svg: &str) {
    let texts: Vec<&str> = svg
        .split("<text")
        .skip(1)
        .map(|t| t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()].trim())
        .collect();
    // Tick labels are powers of ten spanning at least two decades.
    let ticks: Vec<&str> = texts
        .iter()
        .copied()
        .filter(|t| {
            let (n, unit) = t.split_once(' ').unwrap_or_default();
            ["1", "10", "100"].contains(&n) && ["B", "kB", "MB", "GB"].contains(&unit)
        })
        .collect();
    assert!(
        ticks.len() >= 3,
        "not a log axis over two decades: {texts:?}"
    );
    assert!(svg.contains("log scale"), "{svg}");
    // Bars: one fill for ferry's, another shared by the rest.
    let mut fills: std::collections::BTreeMap<&str, usize> = Default::default();
    for rect in svg.split("<rect").skip(1) {
        let tag = &rect[..rect.find('>').unwrap()];
        if let Some(f) = tag.split("fill=\"").nth(1) {
            let f = &f[..f.find('"').unwrap()];
            if !f.eq_ignore_ascii_case("#ffffff") {
                *fills.entry(f).or_default() += 1;
            }
        }
    }
    assert!(
        fills.len() == 2 && fills.values().any(|&n| n == 1) && fills.values().any(|&n| n > 1),
        "ferry's bar is not the one distinct bar: {fills:?}"
    );
    assert!(svg.contains("smaller than gzip"), "{svg}");
    assert!(
        !texts
            .iter()
            .any(|t| t.starts_with("0.0") || t.contains(" 0.0")),
        "a label reads 0.0: {texts:?}"
    );
}

#[test]
fn bench_methods_picks_rows_and_refuses_unknown_names() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let v1 = image(t.path(), "v1.tar", "app:1", 1);
    let v2 = image(t.path(), "v2.tar", "app:2", 2);
    fails(
        ferry(&store)
            .arg("bench")
            .arg(&v1)
            .arg(&v2)
            .args(["--methods", "gzip,rsync"]),
        &["unknown bench method 'rsync'", "gzip", "ferry-no-deltas"],
    );
    let out = ok(ferry(&store).arg("bench").arg(&v1).arg(&v2).args([
        "--methods",
        "gzip,ferry",
        "--json",
    ]));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let methods: Vec<&str> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["gzip -6", "ferry"], "{r}");
    // Without --all the ablations stay out.
    let text = ok(ferry(&store).arg("bench").arg(&v1).arg(&v2));
    assert!(!text.contains("without similarity deltas"), "{text}");
}
