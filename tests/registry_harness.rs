//! The private OCI registry the registry tests use (tests/common/registry.rs)
//! works: skopeo pushes into it, its storage holds what its manifests name,
//! it survives a kill and restart, hand-built indexes read back, and its
//! auth refuses strangers. Without docker-registry, skopeo, curl or htpasswd
//! the test reports a skip (a failure under `FERRY_TEST_REQUIRE_ALL=1`).

mod common;

use common::registry::{OCI_INDEX, Registry, sha256_digest};
use common::*;

fn manifest_json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("the manifest is JSON")
}

#[test]
fn registry_harness_push_restart_index_and_auth() {
    let test = "registry_harness_push_restart_index_and_auth";
    let Some(mut reg) = Registry::start(test) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    reg.push_archive(&image(t.path(), "v1.tar", "app:1", 1), "app:1");

    let (body, media_type) = reg.raw_manifest("app:1");
    assert!(
        media_type.contains("manifest.v"),
        "app:1 is an image manifest, not {media_type}"
    );
    let m = manifest_json(&body);
    let layers = m["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 2, "the image has two layers: {m}");
    let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    blobs.extend(
        layers
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string()),
    );
    for digest in &blobs {
        let data = std::fs::read(reg.blob_path(digest)).expect("the registry stores the blob");
        assert_eq!(
            &sha256_digest(&data),
            digest,
            "the stored blob is what its name says"
        );
    }
    assert!(
        reg.blob_count() > layers.len(),
        "config and layers are stored"
    );

    // An upload half done when the registry dies resumes after a restart.
    let blob = random_bytes(5, 100_000);
    let octets = "Content-Type: application/octet-stream";
    let started = reg.request("POST", "/v2/app/blobs/uploads/", None, &[], None);
    assert_eq!(started.status, 202, "{started:?}");
    let half = reg.request(
        "PATCH",
        &started.location,
        None,
        &[octets],
        Some(&blob[..50_000]),
    );
    assert_eq!(half.status, 202, "{half:?}");
    assert_eq!(reg.uploads("app"), 1);
    let before = reg.blob_count();
    reg.kill();
    assert!(
        std::net::TcpStream::connect(&reg.addr).is_err(),
        "a killed registry still listens"
    );
    reg.restart();
    let rest = reg.request(
        "PATCH",
        &half.location,
        None,
        &[octets],
        Some(&blob[50_000..]),
    );
    assert_eq!(rest.status, 202, "{rest:?}");
    let digest = sha256_digest(&blob);
    let done = format!("{}&digest={digest}", rest.location);
    assert_eq!(reg.request("PUT", &done, None, &[], None).status, 201);
    assert_eq!(std::fs::read(reg.blob_path(&digest)).unwrap(), blob);
    assert_eq!((reg.blob_count(), reg.uploads("app")), (before + 1, 0));
    assert_eq!(
        reg.raw_manifest("app:1").0,
        body,
        "app:1 survives a restart"
    );

    // A second, small image for the other platform of an index.
    let small = t.path().join("arm.tar");
    let files = sample_files(7, "bin", 5, 4 << 10);
    write_docker_archive(&small, "app:arm", &[layer_tar(&files, 1_600_000_000)]).unwrap();
    reg.push_archive(&small, "app:arm");
    let digest = reg.image_index(
        "app",
        "multi",
        &[("linux/amd64", "1"), ("linux/arm64/v8", "arm")],
    );
    let (index, media_type) = reg.raw_manifest("app:multi");
    assert_eq!(media_type, OCI_INDEX);
    assert_eq!(sha256_digest(&index), digest);
    assert_eq!(reg.raw_manifest(&format!("app@{digest}")).0, index);
    let entries = manifest_json(&index)["manifests"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["digest"], sha256_digest(&body).as_str());
    assert_eq!(entries[0]["size"], body.len());
    assert_eq!(entries[1]["platform"]["architecture"], "arm64");
    assert_eq!(entries[1]["platform"]["variant"], "v8");
    let (arm, _) = reg.raw_manifest("app:arm");
    assert_eq!(entries[1]["digest"], sha256_digest(&arm).as_str());

    let Some(locked) = Registry::start_with_auth(test, "ferry", "s3cret") else {
        return;
    };
    assert_eq!(locked.request("GET", "/v2/", None, &[], None).status, 401);
    let wrong = locked.request("GET", "/v2/", Some(("ferry", "wrong")), &[], None);
    assert_eq!(wrong.status, 401);
    assert_eq!(
        locked
            .request("GET", "/v2/", locked.creds(), &[], None)
            .status,
        200
    );
    locked.push_archive(&small, "app:arm");
    assert_eq!(
        locked.raw_manifest("app:arm").0,
        arm,
        "the same push, the same manifest"
    );
}
