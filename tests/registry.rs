//! `ferry pull` against a real registry (Debian's docker-registry on a
//! loopback port, filled by skopeo): images land as the archive Docker 29
//! saves, with every blob byte-exact, and load into a private Docker daemon
//! under the registry's image ID; updates cost only their new layers;
//! multi-platform indexes keep what was chosen; auth and every failure give
//! one line and leave the store as it was.

mod common;
#[path = "common/dockerd.rs"]
#[allow(dead_code)]
mod dockerd;

use std::path::Path;

use common::nginx::Proxy;
use common::registry::{DOCKER_MANIFEST, Registry, sha256_digest};
use common::*;
use dockerd::Dockerd;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// `ferry pull ... --insecure --json` into `store`.
fn pull(store: &Path, args: &[&str]) -> serde_json::Value {
    let mut cmd = ferry(store);
    cmd.arg("pull").args(args).args(["--insecure", "--json"]);
    json(&ok(&mut cmd))
}

/// The entries of a tar, by path.
fn tar_entries(tar: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(std::fs::File::open(tar).unwrap());
    let mut out = std::collections::BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.insert(path, data);
    }
    out
}

/// The digests a manifest names: config first, then its layers.
fn manifest_blobs(body: &[u8]) -> Vec<String> {
    let m: serde_json::Value = serde_json::from_slice(body).unwrap();
    let mut v = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        v.push(l["digest"].as_str().unwrap().to_string());
    }
    v
}

#[test]
fn a_pulled_image_is_the_registrys_byte_for_byte_and_loads_under_its_image_id() {
    let test = "a_pulled_image_is_the_registrys_byte_for_byte_and_loads_under_its_image_id";
    let Some(reg) = Registry::start(test) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    reg.push_archive(&image(t.path(), "v1.tar", "app:1", 1), "app:1");
    reg.push_archive(&image(t.path(), "v2.tar", "app:2", 2), "app:2");
    let s = t.path().join("s");
    let one = format!("{}/app:1", reg.addr);
    let r = pull(&s, &[&one]);
    let (body, media) = reg.raw_manifest("app:1");
    assert_eq!(media, DOCKER_MANIFEST);
    let blobs = manifest_blobs(&body);
    assert_eq!(r["add"]["name"], one.as_str(), "{r}");
    assert_eq!(r["images"][0]["id"], blobs[0].as_str(), "{r}");
    assert_eq!(r["digests"][0], sha256_digest(&body).as_str(), "{r}");
    assert_eq!(r["blobs"], blobs.len() + 1, "{r}");

    // The snapshot is an OCI layout with manifest.json: every blob under
    // its digest, the manifest as the registry served it.
    let out = t.path().join("out.tar");
    ok(ferry(&s).args(["checkout", &one, "-o"]).arg(&out));
    let files = tar_entries(&out);
    for d in blobs.iter().chain([&sha256_digest(&body)]) {
        let path = format!("blobs/sha256/{}", &d[7..]);
        let data = files.get(&path).unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!(&sha256_digest(data), d);
        assert_eq!(data, &std::fs::read(reg.blob_path(d)).unwrap());
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], one.as_str(), "{manifest}");
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        sha256_digest(&body).as_str()
    );

    // The update costs only what is new; pulling it again, nothing.
    let two = format!("{}/app:2", reg.addr);
    let r2 = pull(&s, &[&two]);
    let added = r2["add"]["new_bytes"].as_u64().unwrap();
    assert!(
        added * 4 < r["add"]["new_bytes"].as_u64().unwrap(),
        "the update added {added} bytes: {r2}"
    );
    let again = pull(&s, &[&two]);
    assert_eq!(again["add"]["unchanged"], true, "{again}");

    // Across the gap as a delta, then into a daemon: the registry's image ID.
    let Some(d) = Dockerd::start(test) else {
        return;
    };
    let b = t.path().join("b");
    let full = t.path().join("full.ferry");
    let delta = t.path().join("delta.ferry");
    ok(ferry(&s).args(["pack", &one, "-o"]).arg(&full));
    ok(ferry(&s)
        .args(["pack", &two, "--base", &one, "-o"])
        .arg(&delta));
    ok(ferry(&b).arg("unpack").arg(&full).arg(&delta));
    ok(ferry(&b).args(["--docker-host", &d.host, "load", &two]));
    let (body2, _) = reg.raw_manifest("app:2");
    let id = &manifest_blobs(&body2)[0];
    assert_eq!(d.inspect(&two)["Id"].as_str().unwrap(), id);
}

#[test]
fn an_index_keeps_the_platforms_taken_and_names_those_it_has() {
    let test = "an_index_keeps_the_platforms_taken_and_names_those_it_has";
    let Some(reg) = Registry::start(test) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    reg.push_archive(&image(t.path(), "v1.tar", "app:1", 1), "app:amd");
    reg.push_archive(&image(t.path(), "v3.tar", "app:3", 3), "app:arm");
    let index = reg.image_index(
        "app",
        "multi",
        &[("linux/amd64", "amd"), ("linux/arm64", "arm")],
    );
    let multi = format!("{}/app:multi", reg.addr);
    let (amd, _) = reg.raw_manifest("app:amd");
    let (arm, _) = reg.raw_manifest("app:arm");
    let s = t.path().join("s");

    let r = pull(&s, &[&multi, "--platform", "linux/arm64", "--name", "arm"]);
    assert_eq!(r["digests"][0], index.as_str(), "{r}");
    assert_eq!(r["images"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["images"][0]["id"], manifest_blobs(&arm)[0].as_str());
    let out = t.path().join("arm.tar");
    ok(ferry(&s).args(["checkout", "arm", "-o"]).arg(&out));
    let files = tar_entries(&out);
    // The index itself, byte-exact, and only the chosen platform's blobs.
    assert!(files.contains_key(&format!("blobs/sha256/{}", &index[7..])));
    assert!(files.contains_key(&format!("blobs/sha256/{}", &sha256_digest(&arm)[7..])));
    assert!(!files.contains_key(&format!("blobs/sha256/{}", &sha256_digest(&amd)[7..])));

    let all = pull(&s, &[&multi, "--all-platforms", "--name", "all"]);
    let ids: Vec<&str> = all["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            manifest_blobs(&amd)[0].as_str(),
            manifest_blobs(&arm)[0].as_str()
        ]
    );

    let before = fingerprint(&s);
    fails(
        ferry(&s).args(["pull", &multi, "--insecure", "--platform", "linux/s390x"]),
        &[
            "no image for linux/s390x",
            "linux/amd64, linux/arm64",
            "--platform",
        ],
    );
    assert_eq!(fingerprint(&s), before);
}

#[test]
fn credentials_from_flags_or_docker_login_and_every_failure_is_one_line() {
    let test = "credentials_from_flags_or_docker_login_and_every_failure_is_one_line";
    let Some(reg) = Registry::start_with_auth(test, "ops", "s3cret") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    reg.push_archive(&image(t.path(), "v1.tar", "app:1", 1), "app:1");
    let s = t.path().join("s");
    ok(ferry(&s)
        .arg("add")
        .arg(t.path().join("v1.tar"))
        .args(["--name", "other"]));
    let before = fingerprint(&s);
    let one = format!("{}/app:1", reg.addr);
    let cmd = |extra: &[&str]| {
        let mut c = ferry(&s);
        c.env("DOCKER_CONFIG", t.path().join("no-docker-config"));
        c.args(["pull", &one, "--insecure"]).args(extra);
        c
    };
    fails(
        &mut cmd(&[]),
        &["needs credentials", "--username", "docker login"],
    );
    let mut wrong = cmd(&["--username", "ops", "--password-stdin"]);
    fails_stdin(&mut wrong, "nope\n", &["refused the credentials"]);
    // Unknown image, unreachable registry, TLS to a plain-HTTP registry.
    let mut unknown = ferry(&s);
    unknown
        .env("DOCKER_CONFIG", t.path().join("no-docker-config"))
        .args(["pull", &format!("{}/nothing:1", reg.addr), "--insecure"])
        .args(["--username", "ops", "--password-stdin"]);
    fails_stdin(&mut unknown, "s3cret\n", &["no such image", "nothing:1"]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    fails(
        ferry(&s).args(["pull", &format!("127.0.0.1:{port}/app:1"), "--insecure"]),
        &["cannot reach registry", "running"],
    );
    fails(
        ferry(&s).args(["pull", &one]),
        &["cannot talk TLS", "--insecure"],
    );
    assert_eq!(fingerprint(&s), before);

    let mut right = cmd(&["--username", "ops", "--password-stdin", "--json"]);
    let out = run_stdin(&mut right, "s3cret\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(r["add"]["name"], one.as_str());

    // Pushing needs them too.
    let mut anon_push = ferry(&s);
    anon_push
        .env("DOCKER_CONFIG", t.path().join("no-docker-config"))
        .args(["push", &one, &format!("{}/copy:1", reg.addr), "--insecure"]);
    fails(&mut anon_push, &["needs credentials", "--username"]);
    let mut push = ferry(&s);
    push.env("DOCKER_CONFIG", t.path().join("no-docker-config"))
        .args(["push", &one, &format!("{}/copy:1", reg.addr), "--insecure"])
        .args(["--username", "ops", "--password-stdin"]);
    let out = run_stdin(&mut push, "s3cret\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sha256_digest(&reg.raw_manifest("copy:1").0),
        sha256_digest(&reg.raw_manifest("app:1").0)
    );

    // What 'docker login' leaves in config.json serves as well.
    let cfg = t.path().join("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"b3BzOnMzY3JldA=="}}}}}}"#,
            reg.addr
        ),
    )
    .unwrap();
    let s2 = t.path().join("s2");
    let out = ok(ferry(&s2)
        .env("DOCKER_CONFIG", &cfg)
        .args(["pull", &one, "--insecure"]));
    assert!(out.contains(&format!("as {one}")), "{out}");

    // So does the credential helper config.json names (credsStore), asked
    // as the Docker CLI asks it: `get`, the server on stdin, JSON back.
    let bin = t.path().join("helpers");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-ferrytest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\n\
             [ \"$server\" = \"{}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"ops\",\"Secret\":\"s3cret\"}}\\n' \"$server\"\n",
            reg.addr
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        cfg.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{}}}},"credsStore":"ferrytest"}}"#,
            reg.addr
        ),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let s3 = t.path().join("s3");
    let out = ok(ferry(&s3)
        .env("DOCKER_CONFIG", &cfg)
        .env("PATH", &path)
        .args(["pull", &one, "--insecure"]));
    assert!(out.contains(&format!("as {one}")), "{out}");
    // A helper that does not know the registry leaves ferry anonymous.
    std::fs::write(
        cfg.join("config.json"),
        r#"{"auths":{},"credsStore":"ferrytest"}"#,
    )
    .unwrap();
    std::fs::write(
        &helper,
        "#!/bin/sh\necho 'credentials not found in native keychain'\nexit 1\n",
    )
    .unwrap();
    fails(
        ferry(&s3)
            .env("DOCKER_CONFIG", &cfg)
            .env("PATH", &path)
            .args(["pull", &one, "--insecure"]),
        &["needs credentials", "docker login"],
    );
}

#[test]
fn a_manifest_whose_blob_is_missing_is_refused_and_the_store_unchanged() {
    let test = "a_manifest_whose_blob_is_missing_is_refused_and_the_store_unchanged";
    let Some(reg) = Registry::start(test) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    reg.push_archive(&image(t.path(), "v1.tar", "app:1", 1), "app:1");
    let (body, _) = reg.raw_manifest("app:1");
    let layer = manifest_blobs(&body)[2].clone();
    std::fs::remove_file(reg.blob_path(&layer)).unwrap();
    let s = t.path().join("s");
    ok(ferry(&s)
        .arg("add")
        .arg(t.path().join("v1.tar"))
        .args(["--name", "other"]));
    let before = fingerprint(&s);
    fails(
        ferry(&s).args(["pull", &format!("{}/app:1", reg.addr), "--insecure"]),
        &[&layer[7..19]],
    );
    assert_eq!(fingerprint(&s), before);
}

/// Runs `cmd` with `text` on its standard input.
fn run_stdin(cmd: &mut std::process::Command, text: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Like `fails`, with `text` on standard input.
fn fails_stdin(cmd: &mut std::process::Command, text: &str, needles: &[&str]) {
    let out = run_stdin(cmd, text);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{cmd:?} should have failed");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} does not mention {n:?}");
    }
}

/// `ferry push ... --insecure --json` from `store`.
fn push(store: &Path, args: &[&str]) -> serde_json::Value {
    let mut cmd = ferry(store);
    cmd.arg("push").args(args).args(["--insecure", "--json"]);
    json(&ok(&mut cmd))
}

/// The Docker-Content-Digest a registry gives `repo:tag`.
fn digest_of(reg: &Registry, reference: &str) -> String {
    sha256_digest(&reg.raw_manifest(reference).0)
}

#[test]
fn two_registries_one_flow_with_the_same_digests_and_only_new_blobs_sent() {
    let test = "two_registries_one_flow_with_the_same_digests_and_only_new_blobs_sent";
    let (Some(a), Some(b)) = (Registry::start(test), Registry::start(test)) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    a.push_archive(&image(t.path(), "v1.tar", "app:1", 1), "app:1");
    a.push_archive(&image(t.path(), "v2.tar", "app:2", 2), "app:2");
    // Connected side: pull from A, pack a full pack and then a delta.
    let s1 = t.path().join("s1");
    let (one, two) = (format!("{}/app:1", a.addr), format!("{}/app:2", a.addr));
    pull(&s1, &[&one]);
    pull(&s1, &[&two]);
    let (full, delta) = (t.path().join("full.ferry"), t.path().join("delta.ferry"));
    ok(ferry(&s1).args(["pack", &one, "-o"]).arg(&full));
    ok(ferry(&s1)
        .args(["pack", &two, "--base", &one, "-o"])
        .arg(&delta));
    // Offline side: unpack both, push into the site's registry B.
    let s2 = t.path().join("s2");
    ok(ferry(&s2).arg("unpack").arg(&full).arg(&delta));
    let target = format!("{}/app", b.addr);
    let r1 = push(&s2, &[&one, &target]);
    assert_eq!(r1["blobs_skipped"], 0, "{r1}");
    // Each blob went in one request: no PATCH reached the registry.
    let log = b.log();
    assert!(log.contains("http.request.method=PUT"), "{log}");
    assert!(!log.contains("http.request.method=PATCH"), "{log}");
    let after_one = b.blob_count();
    let r2 = push(&s2, &[&two, &target]);
    // Only what v2 does not share with v1 went: its new layers, its
    // config and its manifest.
    let (m1, m2) = (a.raw_manifest("app:1").0, a.raw_manifest("app:2").0);
    let old: std::collections::HashSet<String> = manifest_blobs(&m1).into_iter().collect();
    let new = manifest_blobs(&m2)
        .iter()
        .filter(|d| !old.contains(*d))
        .count();
    assert_eq!(r2["blobs_sent"], new, "{r2}");
    assert!(r2["blobs_skipped"].as_u64().unwrap() >= 1, "{r2}");
    assert_eq!(b.blob_count(), after_one + new + 1);
    for tag in ["app:1", "app:2"] {
        assert_eq!(digest_of(&b, tag), digest_of(&a, tag), "{tag}");
    }
    // A second push sends nothing.
    let again = push(&s2, &[&two, &target]);
    assert_eq!(again["blobs_sent"], 0, "{again}");

    // A daemon pulls from B the image A serves; a legacy archive pushed
    // gets a manifest of its own and keeps its image ID.
    let Some(d) = Dockerd::start(test) else {
        return;
    };
    let pulled = format!("{}/app:2", b.addr);
    d.run(&["pull", &pulled]);
    assert_eq!(
        d.inspect(&pulled)["Id"].as_str().unwrap(),
        manifest_blobs(&m2)[0]
    );
    let s3 = t.path().join("s3");
    ok(ferry(&s3).arg("add").arg(t.path().join("v1.tar")));
    let legacy = format!("{}/legacy:1", b.addr);
    let mut cmd = ferry(&s3);
    cmd.args(["push", "app:1", &legacy, "--insecure"]);
    let out = run(&mut cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("legacy docker archive") && err.contains("digests are new"),
        "{err}"
    );
    d.run(&["pull", &legacy]);
    let id =
        json(&ok(ferry(&s3).args(["ls", "--json"])))["snapshots"][0]["meta"]["docker"]["images"][0]
            ["id"]
            .as_str()
            .unwrap()
            .to_string();
    assert_eq!(d.inspect(&legacy)["Id"].as_str().unwrap(), id);
    // A tag inside a snapshot of several images pushes that image alone,
    // under the tag asked for.
    for v in ["v1.tar", "v2.tar"] {
        d.run(&["load", "-i", t.path().join(v).to_str().unwrap()]);
    }
    let s4 = t.path().join("s4");
    ok(ferry(&s4).args([
        "--docker-host",
        &d.host,
        "save",
        "app:1",
        "app:2",
        "--name",
        "both",
    ]));
    let r = push(&s4, &["app:2", &format!("{}/pick", b.addr)]);
    let pushed = r["pushed"].as_array().unwrap();
    assert_eq!(pushed.len(), 1, "{r}");
    assert_eq!(pushed[0]["reference"], format!("{}/pick:2", b.addr), "{r}");
    let picked = format!("{}/pick:2", b.addr);
    d.run(&["pull", &picked]);
    assert_eq!(d.inspect(&picked)["Id"], d.inspect("app:2")["Id"]);
}

#[test]
fn an_index_round_trips_and_a_partial_one_tags_its_image() {
    let test = "an_index_round_trips_and_a_partial_one_tags_its_image";
    let (Some(a), Some(b)) = (Registry::start(test), Registry::start(test)) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    a.push_archive(&image(t.path(), "v1.tar", "app:1", 1), "app:amd");
    a.push_archive(&image(t.path(), "v3.tar", "app:3", 3), "app:arm");
    let index = a.image_index(
        "app",
        "multi",
        &[("linux/amd64", "amd"), ("linux/arm64", "arm")],
    );
    let s = t.path().join("s");
    let multi = format!("{}/app:multi", a.addr);
    pull(&s, &[&multi, "--all-platforms", "--name", "all"]);
    let r = push(&s, &["all", &format!("{}/app", b.addr)]);
    assert_eq!(r["pushed"][0]["digest"], index.as_str(), "{r}");
    assert_eq!(digest_of(&b, "app:multi"), index);

    pull(&s, &[&multi, "--platform", "linux/arm64", "--name", "arm"]);
    let mut cmd = ferry(&s);
    cmd.args(["push", "arm", &format!("{}/one:x", b.addr), "--insecure"]);
    let out = run(&mut cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("not to the index"), "{err}");
    assert_eq!(digest_of(&b, "one:x"), digest_of(&a, "app:arm"));
}

/// `dir/big.tar`: a docker-save archive of `big:1`, one layer holding
/// `size` random bytes (from `seed`).
fn big_image(dir: &Path, seed: u64, size: usize) -> std::path::PathBuf {
    let big = write(dir, "big.bin", &random_bytes(seed, size));
    let tar_path = dir.join("big.tar");
    let mut layer = tar::Builder::new(Vec::new());
    layer.append_path_with_name(&big, "big.bin").unwrap();
    let layer = layer.into_inner().unwrap();
    write_docker_archive(&tar_path, "big:1", &[layer]).unwrap();
    tar_path
}

#[test]
fn a_push_cut_off_mid_upload_leaves_no_tag_and_a_rerun_completes_it() {
    let test = "a_push_cut_off_mid_upload_leaves_no_tag_and_a_rerun_completes_it";
    let (Some(a), Some(mut b)) = (Registry::start(test), Registry::start(test)) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    // A layer of random bytes large enough to be caught in flight.
    let tar_path = big_image(t.path(), 7, 48 << 20);
    a.push_archive(&tar_path, "big:1");
    let s = t.path().join("s");
    let src = format!("{}/big:1", a.addr);
    pull(&s, &[&src]);
    let target = format!("{}/big:1", b.addr);
    let child = ferry(&s)
        .args(["push", &src, &target, "--insecure"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while b.uploads("big") == 0 && start.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    b.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the push survived the kill: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    b.restart();
    let status = b
        .request("GET", "/v2/big/manifests/1", None, &[], None)
        .status;
    assert_eq!(status, 404, "a tag names an unfinished push");
    push(&s, &[&src, &target]);
    let (m, _) = b.raw_manifest("big:1");
    for d in manifest_blobs(&m) {
        assert!(b.blob_path(&d).exists(), "{d} missing");
    }
    assert_eq!(digest_of(&b, "big:1"), digest_of(&a, "big:1"));
}

#[test]
fn a_registry_with_a_private_ca_is_trusted_with_ca_cert_and_refused_without() {
    let test = "a_registry_with_a_private_ca_is_trusted_with_ca_cert_and_refused_without";
    let Some(reg) = Registry::start_tls(test) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    reg.push_archive(&image(t.path(), "v1.tar", "app:1", 1), "app:1");
    let s = t.path().join("s");
    let one = format!("{}/app:1", reg.addr);
    let ca = reg.ca.clone().unwrap();
    fails(
        ferry(&s).args(["pull", &one]),
        &["cannot talk TLS", "--ca-cert"],
    );
    let out = ok(ferry(&s).args(["pull", &one, "--ca-cert"]).arg(&ca));
    assert!(out.contains(&format!("as {one}")), "{out}");
    ok(ferry(&s)
        .args(["push", &one, &format!("{}/copy:1", reg.addr), "--ca-cert"])
        .arg(&ca));
    assert_eq!(
        sha256_digest(&reg.raw_manifest("copy:1").0),
        sha256_digest(&reg.raw_manifest("app:1").0)
    );
}

#[test]
fn a_proxy_that_caps_request_bodies_gets_the_blobs_in_chunks() {
    let test = "a_proxy_that_caps_request_bodies_gets_the_blobs_in_chunks";
    let (Some(a), Some(b)) = (Registry::start(test), Registry::start(test)) else {
        return;
    };
    let Some(proxy) = Proxy::start(test, &b.addr, "5m") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    // A layer of random bytes larger than the cap (and than one chunk).
    let tar_path = big_image(t.path(), 11, 12 << 20);
    a.push_archive(&tar_path, "big:1");
    let s = t.path().join("s");
    let src = format!("{}/big:1", a.addr);
    pull(&s, &[&src]);
    let r = push(&s, &[&src, &format!("{}/big:1", proxy.addr)]);
    let notes = r["notes"].to_string();
    assert!(notes.contains("in chunks"), "{r}");
    let log = proxy.access_log();
    assert!(log.contains("\"PUT ") && log.contains(" 413 "), "{log}");
    assert!(log.contains("\"PATCH "), "{log}");
    assert_eq!(digest_of(&b, "big:1"), digest_of(&a, "big:1"));
    let (m, _) = b.raw_manifest("big:1");
    for d in manifest_blobs(&m) {
        assert!(b.blob_path(&d).exists(), "{d} missing");
    }
}

#[test]
fn a_registry_that_hands_out_bearer_tokens_takes_pulls_and_pushes() {
    let test = "a_registry_that_hands_out_bearer_tokens_takes_pulls_and_pushes";
    let Some(reg) = Registry::start_with_token(test, "ops", "s3cret") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    reg.push_archive(&image(t.path(), "v1.tar", "app:1", 1), "app:1");
    let s = t.path().join("s");
    let one = format!("{}/app:1", reg.addr);
    let copy = format!("{}/copy:1", reg.addr);
    let cmd = |args: &[&str]| {
        let mut c = ferry(&s);
        c.env("DOCKER_CONFIG", t.path().join("no-docker-config"))
            .args(args)
            .arg("--insecure");
        c
    };
    // The token server refuses strangers and wrong passwords.
    fails(
        &mut cmd(&["pull", &one]),
        &["needs credentials", "--username"],
    );
    fails_stdin(
        &mut cmd(&["pull", &one, "--username", "ops", "--password-stdin"]),
        "nope\n",
        &["refused the credentials"],
    );
    for args in [vec!["pull", &one], vec!["push", &one, &copy]] {
        let mut c = cmd(&args);
        c.args(["--username", "ops", "--password-stdin"]);
        let out = run_stdin(&mut c, "s3cret\n");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // skopeo, through the same token flow, sees the copy under A's digest.
    let raw = |reference: &str| {
        let out = std::process::Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--creds",
                "ops:s3cret",
            ])
            .arg(format!("docker://{}/{reference}", reg.addr))
            .envs(common::registry::PROXY_VARS.map(|v| (v, "")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        sha256_digest(&out.stdout)
    };
    assert_eq!(raw("copy:1"), raw("app:1"));
}
