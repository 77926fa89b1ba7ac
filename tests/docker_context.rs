//! ferry finds the Docker daemon the way the docker CLI does when no host
//! is given: `$DOCKER_CONTEXT`, then the `currentContext` of
//! `$DOCKER_CONFIG/config.json`, each made with the real `docker context`
//! commands and pointing at a private daemon. Without dockerd or root the
//! daemon test reports a skip on the real stderr (a failure under
//! `FERRY_TEST_REQUIRE_ALL=1`).

mod common;
#[path = "common/dockerd.rs"]
#[allow(dead_code)]
mod dockerd;

use common::*;
use dockerd::Dockerd;
use std::path::Path;
use std::process::Command;

/// `ferry` with no Docker host given: only the context can say.
fn f(config: &Path, store: &Path) -> Command {
    let mut c = ferry(store);
    c.env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env("DOCKER_CONFIG", config);
    c
}

/// The `docker` CLI with `config` as its configuration directory.
fn docker(config: &Path, args: &[&str]) {
    let out = Command::new("docker")
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env("DOCKER_CONFIG", config)
        .output()
        .expect("running docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The tags `ferry images --json` lists.
fn tags(out: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(out).expect("images --json is JSON");
    let mut tags: Vec<String> = v
        .as_array()
        .expect("an array")
        .iter()
        .flat_map(|i| i["tags"].as_array().cloned().unwrap_or_default())
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    tags
}

#[test]
fn an_unknown_context_is_one_line_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let (config, s) = (t.path().join("docker"), t.path().join("s"));
    std::fs::create_dir_all(&config).unwrap();
    fails(
        f(&config, &s).arg("images").env("DOCKER_CONTEXT", "nosuch"),
        &[
            "Docker context 'nosuch'",
            "does not exist",
            "docker context ls",
        ],
    );
    std::fs::write(config.join("config.json"), r#"{"currentContext":"gone"}"#).unwrap();
    fails(
        f(&config, &s).arg("images"),
        &[
            "Docker context 'gone'",
            "currentContext",
            "docker context ls",
        ],
    );
    // --docker-host and $DOCKER_HOST come first: the broken context is not read.
    let nowhere = format!("unix://{}/no.sock", t.path().display());
    fails(
        f(&config, &s).args(["images", "--docker-host", &nowhere]),
        &["cannot reach the Docker daemon", "no.sock"],
    );
    fails(
        f(&config, &s).arg("images").env("DOCKER_HOST", &nowhere),
        &["cannot reach the Docker daemon", "no.sock"],
    );
    assert!(!s.exists(), "images created a store");
}

#[test]
fn docker_context_and_current_context_reach_the_daemon_they_name() {
    if tool("docker").is_none() {
        skip(
            "docker_context_and_current_context_reach_the_daemon_they_name",
            "the docker CLI is not installed",
        );
        return;
    }
    let Some(d) = Dockerd::start("docker_context_and_current_context_reach_the_daemon_they_name")
    else {
        return;
    };
    d.import("ctx-probe:1", &[("hello", b"context".to_vec())]);
    let t = tempfile::tempdir().unwrap();
    let (config, s) = (t.path().join("docker"), t.path().join("s"));
    let endpoint = format!("host={}", d.host);
    docker(
        &config,
        &["context", "create", "private", "--docker", &endpoint],
    );
    // A context that is not the current one reaches nothing by itself...
    let nowhere = format!("host=unix://{}/no.sock", t.path().display());
    docker(
        &config,
        &[
            "context",
            "create",
            "elsewhere",
            "--docker",
            nowhere.as_str(),
        ],
    );
    // ...$DOCKER_CONTEXT names it.
    let out = ok(f(&config, &s)
        .args(["images", "--json"])
        .env("DOCKER_CONTEXT", "private"));
    assert_eq!(tags(&out), ["ctx-probe:1"]);
    // `docker context use` writes currentContext.
    docker(&config, &["context", "use", "private"]);
    let out = ok(f(&config, &s).args(["images", "--json"]));
    assert_eq!(tags(&out), ["ctx-probe:1"]);
    // $DOCKER_CONTEXT wins over currentContext, and a failure names the context.
    fails(
        f(&config, &s)
            .arg("images")
            .env("DOCKER_CONTEXT", "elsewhere"),
        &[
            "cannot reach the Docker daemon",
            "Docker context 'elsewhere'",
        ],
    );
    // The context "default" is the default socket, not currentContext.
    let out = run(f(&config, &s)
        .arg("images")
        .env("DOCKER_CONTEXT", "default"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("private") && !stderr.contains(&d.host),
        "{stderr}"
    );
    assert!(!s.exists(), "images created a store");
}
