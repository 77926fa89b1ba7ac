//! ferry against real Docker daemons (no mocks): save from one private
//! daemon, ship through packs, load into a second one, and the failure
//! cases. Without dockerd or root each test reports a skip on the real
//! stderr (a failure under `FERRY_TEST_REQUIRE_ALL=1`, as in CI, which
//! installs docker.io and runs as root).

mod common;
#[path = "common/dockerd.rs"]
mod dockerd;

use common::*;
use dockerd::Dockerd;
use std::path::Path;

fn f(host: &str, store: &Path) -> std::process::Command {
    let mut c = ferry(store);
    c.args(["--docker-host", host]);
    c
}

/// Builds base:1, app:1 and app:2 (app:2 rebuilds the app layer with one
/// file changed and a new ENV) on `d`.
fn build_images(d: &Dockerd) {
    d.import(
        "base:1",
        &[
            ("etc/os-release", b"ID=ferrytest\n".to_vec()),
            ("usr/lib/libbig.so", random_bytes(1, 3 << 20)),
            (
                "usr/share/doc/readme.txt",
                file_content(&mut Rng::new(2), 200_000, true),
            ),
        ],
    );
    let lib = random_bytes(3, 2 << 20);
    let mut code = file_content(&mut Rng::new(4), 300_000, true);
    d.build(
        "app:1",
        "base:1",
        &[("/app/lib.so", lib.clone()), ("/app/main.py", code.clone())],
        &["V=1"],
    );
    code.splice(1000..1000, b"# bumped\n".iter().copied());
    d.build(
        "app:2",
        "base:1",
        &[("/app/lib.so", lib), ("/app/main.py", code)],
        &["V=2"],
    );
}

#[test]
fn save_ship_and_load_between_two_daemons() {
    let Some(a) = Dockerd::start("save_ship_and_load_between_two_daemons") else {
        return;
    };
    let Some(b) = Dockerd::start("save_ship_and_load_between_two_daemons") else {
        return;
    };
    build_images(&a);
    let t = tempfile::tempdir().unwrap();
    let (sa, sb) = (t.path().join("connected"), t.path().join("offline"));

    let out = ok(f(&a.host, &sa).args(["save", "app:1"]));
    assert!(out.contains("saved app:1"), "{out}");
    ok(f(&a.host, &sa).args(["save", "app:2"]));
    // Saving an image already stored with the same image ID is a no-op.
    assert!(
        ok(f(&a.host, &sa).args(["save", "app:2"]))
            .contains("already in the store with the same image ID")
    );
    // ls shows tags and the Docker image ID; images marks what is stored.
    let id1 = a.inspect("app:1")["Id"].as_str().unwrap().to_string();
    let id2 = a.inspect("app:2")["Id"].as_str().unwrap().to_string();
    let ls = ok(ferry(&sa).arg("ls"));
    assert!(ls.contains(&id2[7..19]) && ls.contains("app:2"), "{ls}");
    let images: serde_json::Value =
        serde_json::from_str(&ok(f(&a.host, &sa).args(["images", "--json"]))).unwrap();
    let row = |id: &str| {
        images
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(row(&id2)["in_store"][0], "app:2");
    let base_id = a.inspect("base:1")["Id"].as_str().unwrap().to_string();
    assert_eq!(row(&base_id)["in_store"].as_array().unwrap().len(), 0);

    let (full, update) = (t.path().join("full.ferry"), t.path().join("update.ferry"));
    ok(ferry(&sa).args(["pack", "app:1", "-o"]).arg(&full));
    ok(ferry(&sa)
        .args(["pack", "app:2", "--base", "app:1", "-o"])
        .arg(&update));
    assert!(
        file_size(&update) * 3 < file_size(&full),
        "update {} full {}",
        file_size(&update),
        file_size(&full)
    );
    ok(ferry(&sb).arg("unpack").arg(&full));
    ok(ferry(&sb).arg("unpack").arg(&update));

    let out = ok(f(&b.host, &sb).args(["load", "app:1", "app:2"]));
    assert!(
        out.contains(&format!("image {} with tags app:2 confirmed", &id2[7..19])),
        "{out}"
    );
    for (tag, id) in [("app:1", &id1), ("app:2", &id2)] {
        let (ia, ib) = (a.inspect(tag), b.inspect(tag));
        assert_eq!(ib["Id"].as_str().unwrap(), id.as_str());
        assert_eq!(
            ia["RootFS"]["Layers"], ib["RootFS"]["Layers"],
            "{tag} layer diff_ids"
        );
        assert_eq!(ia["RepoTags"], ib["RepoTags"]);
    }
    // docker save on the second daemon gives the same image bytes.
    let save = |d: &Dockerd, name: &str| {
        let p = t.path().join(name);
        d.run(&["save", "-o", p.to_str().unwrap(), "app:2"]);
        std::fs::read(p).unwrap()
    };
    assert!(
        save(&a, "a.tar") == save(&b, "b.tar"),
        "docker save differs between the daemons"
    );
}

#[test]
fn docker_failures_are_one_clear_line() {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    // A daemon that is not there.
    let nowhere = format!("unix://{}/no.sock", t.path().display());
    fails(
        f(&nowhere, &s).args(["save", "app:1"]),
        &["cannot reach the Docker daemon", "--docker-host"],
    );
    fails(
        f("tcp://127.0.0.1:9", &s).arg("images"),
        &["cannot reach the Docker daemon at tcp://127.0.0.1:9"],
    );
    assert!(!s.exists(), "a failed save created a store");

    let Some(d) = Dockerd::start("docker_failures_are_one_clear_line") else {
        return;
    };
    // An image the daemon does not have.
    fails(
        f(&d.host, &s).args(["save", "nope:1"]),
        &["has no image 'nope:1'", "ferry images"],
    );
    socket_permissions_are_named(&d);
    // A snapshot that never became complete: its delta's base is missing.
    build_images(&d);
    let sa = t.path().join("a");
    ok(f(&d.host, &sa).args(["save", "app:1"]));
    ok(f(&d.host, &sa).args(["save", "app:2"]));
    let update = t.path().join("u.ferry");
    ok(ferry(&sa)
        .args(["pack", "app:2", "--base", "app:1", "-o"])
        .arg(&update));
    let sb = t.path().join("b");
    fails(
        ferry(&sb).arg("unpack").arg(&update),
        &["delta against app:1"],
    );
    fails(
        f(&d.host, &sb).args(["load", "app:2"]),
        &["no snapshot named 'app:2'"],
    );
    // Several images in one archive: one snapshot, shared layers once, both load back.
    let both: serde_json::Value = serde_json::from_str(&ok(
        f(&d.host, &sa).args(["save", "app:1", "app:2", "--name", "both", "--json"])
    ))
    .unwrap();
    assert_eq!(both["images"].as_array().unwrap().len(), 2);
    // The layers were already stored: only chunks around the archive's metadata are new.
    assert!(
        both["new_bytes"].as_u64().unwrap() * 10 < both["size"].as_u64().unwrap(),
        "{both}"
    );
    d.run(&["rmi", "app:1", "app:2"]);
    let out = ok(f(&d.host, &sa).args(["load", "both"]));
    assert!(
        out.contains("tags app:1 confirmed") && out.contains("tags app:2 confirmed"),
        "{out}"
    );
    // An image is found by any tag it carries: `save app:1 app:2` makes one
    // snapshot named app:1, and `load app:2` loads it.
    let sc = t.path().join("c");
    ok(f(&d.host, &sc).args(["save", "app:1", "app:2"]));
    d.run(&["rmi", "app:1", "app:2"]);
    let out = ok(f(&d.host, &sc).args(["load", "app:2"]));
    assert!(out.contains("tags app:2 confirmed"), "{out}");
    // checkout finds it the same way: the archive that holds app:2.
    let (by_tag, by_name) = (t.path().join("by-tag.tar"), t.path().join("by-name.tar"));
    ok(ferry(&sc).args(["checkout", "app:2", "-o"]).arg(&by_tag));
    ok(ferry(&sc).args(["checkout", "app:1", "-o"]).arg(&by_name));
    let archive = std::fs::read(&by_tag).unwrap();
    assert!(!archive.is_empty() && archive == std::fs::read(&by_name).unwrap());
    fails(
        ferry(&sc)
            .args(["checkout", "app:3", "-o"])
            .arg(t.path().join("none.tar")),
        &["no snapshot named 'app:3'"],
    );
    // A moving tag: saving app:latest again once it names another image
    // moves the snapshot name and keeps the old one as a base.
    d.run(&["tag", "app:1", "app:latest"]);
    ok(f(&d.host, &sc).args(["save", "app:latest"]));
    d.run(&["tag", "app:2", "app:latest"]);
    let out = ok(f(&d.host, &sc).args(["save", "app:latest"]));
    assert!(
        out.contains("app:latest: was ") && out.contains("app:latest@"),
        "{out}"
    );
    let ls = ok(ferry(&sc).args(["ls"]));
    assert!(
        ls.lines().any(|l| l.starts_with("app:latest "))
            && ls.lines().any(|l| l.starts_with("app:latest@")),
        "{ls}"
    );
    bad_archives_never_reach_docker(&d, t.path(), &sb);
}

/// A user who may not use the socket is told so.
fn socket_permissions_are_named(d: &Dockerd) {
    if let Some(setpriv) = tool("setpriv") {
        let mut c = std::process::Command::new(setpriv);
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_ferry"),
        ])
        .args([
            "--store",
            "/tmp/ferry-nobody-store",
            "--docker-host",
            &d.host,
            "images",
        ]);
        fails(
            &mut c,
            &["permission denied on the Docker socket", "docker group"],
        );
    } else {
        skip(
            "docker_failures_are_one_clear_line (socket permissions)",
            "setpriv not installed (apt-get install util-linux)",
        );
    }
}

/// Archives that are not docker archives, that the daemon rejects, or whose
/// layers do not match their configs: one line each, nothing loaded.
fn bad_archives_never_reach_docker(d: &Dockerd, dir: &Path, sb: &Path) {
    // A file that is not a docker archive cannot be loaded.
    ok(ferry(sb)
        .arg("add")
        .arg(write(dir, "plain.bin", b"just bytes")));
    fails(
        f(&d.host, sb).args(["load", "plain.bin"]),
        &["not a docker archive", "ferry checkout"],
    );
    // The daemon rejects an archive whose layer is not a tar: ferry reads
    // the load response to the end and reports the daemon's message.
    let bad = dir.join("bad.tar");
    write_docker_archive(&bad, "bad:1", &[random_bytes(9, 100_000)]).unwrap();
    ok(ferry(sb).arg("add").arg(&bad));
    fails(
        f(&d.host, sb).args(["load", "bad:1"]),
        &["rejected the image"],
    );
    // An archive whose layer does not match its config never reaches Docker.
    let layer = layer_tar(&sample_files(5, "x", 10, 4096), 1);
    let tampered = dir.join("tampered.tar");
    write_docker_archive(&tampered, "tampered:1", std::slice::from_ref(&layer)).unwrap();
    let mut bytes = std::fs::read(&tampered).unwrap();
    let at = bytes
        .windows(layer.len().min(64))
        .position(|w| w == &layer[..w.len()])
        .unwrap()
        + 600;
    bytes[at] ^= 1;
    std::fs::write(&tampered, bytes).unwrap();
    ok(ferry(sb).arg("add").arg(&tampered));
    fails(
        f(&d.host, sb).args(["load", "tampered:1"]),
        &["integrity check failed", "the image config names"],
    );
    assert!(
        d.docker()
            .args(["image", "inspect", "tampered:1"])
            .output()
            .unwrap()
            .status
            .code()
            != Some(0)
    );
}

#[test]
fn oci_layout_archives_are_understood_and_load() {
    // This daemon also listens on loopback TCP: ferry talks to it there.
    let port = 20000 + (std::process::id() % 20000) as u16;
    let Some(d) = Dockerd::start_tcp("oci_layout_archives_are_understood_and_load", port) else {
        return;
    };
    let tcp = d.tcp.clone().unwrap();
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    let layers = vec![
        layer_tar(&sample_files(21, "usr/lib", 30, 64 << 10), 1_600_000_000),
        layer_tar(&sample_files(22, "app", 10, 16 << 10), 1_600_000_000),
    ];
    let oci = t.path().join("oci.tar");
    ferry::demo::write_oci_docker_archive(&oci, "oci:1", &layers).unwrap();
    ok(ferry(&s).arg("add").arg(&oci));
    let ls: serde_json::Value =
        serde_json::from_str(&ok(ferry(&s).args(["ls", "--json"]))).unwrap();
    let docker = &ls["snapshots"][0]["meta"]["docker"];
    assert_eq!(docker["layout"], "oci");
    let id = docker["images"][0]["id"].as_str().unwrap().to_string();
    // DOCKER_HOST is honoured as well as --docker-host.
    let out = ok(ferry(&s).env("DOCKER_HOST", &tcp).args(["load", "oci:1"]));
    assert!(
        out.contains("2 layers verified") && out.contains(&tcp),
        "{out}"
    );
    assert_eq!(d.inspect("oci:1")["Id"].as_str().unwrap(), id);
}

#[test]
fn bench_takes_images_straight_from_the_daemon() {
    let Some(a) = Dockerd::start("bench_takes_images_straight_from_the_daemon") else {
        return;
    };
    build_images(&a);
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let out = ok(f(&a.host, &store).args(["bench", "docker:app:1", "docker:app:2", "--json"]));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["new"], "docker:app:2");
    let bytes = |m: &str| {
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["method"] == m)
            .unwrap()["bytes"]
            .as_u64()
            .unwrap()
    };
    // app:2 rebuilt the app layer with one edited file: less than the layer.
    assert!(
        bytes("ferry") * 2 < bytes("layer-level (new layers, gzip -6)"),
        "{r}"
    );
    // The edited file is named (it went out as a small delta); the
    // archive's own files are not put in a layer.
    assert!(
        r["top_paths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "app/main.py"),
        "{r}"
    );
    assert!(r["breakdown"]["delta_chunks"].as_u64().unwrap() >= 1, "{r}");
    assert!(
        r["top_layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "(archive)"),
        "{r}"
    );
    assert!(!store.exists(), "bench created the user's store");
}
