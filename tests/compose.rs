//! `ferry save --compose` and `--images-from`: a whole application stack
//! saved from one private daemon as one snapshot, shipped through a pack and
//! loaded into a second daemon, and the compose files it refuses (those
//! need no daemon). Without dockerd or root the daemon test reports a skip.

mod common;
#[path = "common/dockerd.rs"]
#[allow(dead_code)]
mod dockerd;

use common::*;
use dockerd::Dockerd;
use std::path::Path;

fn f(host: &str, store: &Path) -> std::process::Command {
    let mut c = ferry(store);
    c.args(["--docker-host", host]);
    c
}

/// Builds api:1, worker:2 and web:1 on `d` from one small imported base.
fn build_stack(d: &Dockerd) {
    d.import(
        "base:1",
        &[
            ("etc/os-release", b"ID=ferrytest\n".to_vec()),
            ("usr/lib/libbase.so", random_bytes(1, 256 << 10)),
        ],
    );
    for (i, tag) in ["api:1", "worker:2", "web:1"].into_iter().enumerate() {
        d.build(
            tag,
            "base:1",
            &[("/app/bin", random_bytes(10 + i as u64, 64 << 10))],
            &[&format!("ROLE={tag}")],
        );
    }
}

const COMPOSE: &str = r#"
x-app: &app
  restart: unless-stopped
services:
  api:
    <<: *app
    image: "api:${API_TAG:-1}"
  worker:
    <<: *app
    image: worker:${WORKER_TAG:-1}
  web:
    image: web:${WEB_TAG:-1}
    ports: ["8080:80"]
  web-admin:
    image: "web:${WEB_TAG-1}"
"#;

#[test]
fn compose_stack_saved_as_one_snapshot_and_loaded_elsewhere() {
    let test = "compose_stack_saved_as_one_snapshot_and_loaded_elsewhere";
    let Some(a) = Dockerd::start(test) else {
        return;
    };
    let Some(b) = Dockerd::start(test) else {
        return;
    };
    build_stack(&a);
    let t = tempfile::tempdir().unwrap();
    let (sa, sb) = (t.path().join("connected"), t.path().join("offline"));
    let proj = t.path().join("Shop_Stack");
    std::fs::create_dir(&proj).unwrap();
    write(&proj, "compose.yaml", COMPOSE.as_bytes());
    // .env overrides the worker's tag; the environment beats .env's web tag.
    write(&proj, ".env", b"# versions\nWORKER_TAG=2\nWEB_TAG=\"9\"\n");

    let out = ok(f(&a.host, &sa)
        .args(["save", "--compose"])
        .arg(proj.join("compose.yaml"))
        .env("WEB_TAG", "1")
        .env_remove("API_TAG")
        .env_remove("WORKER_TAG")
        .env_remove("COMPOSE_PROJECT_NAME"));
    assert!(
        out.contains("saved api:1, worker:2, web:1 (") && out.contains(" as shop_stack:"),
        "{out}"
    );
    let ls: serde_json::Value =
        serde_json::from_str(&ok(ferry(&sa).args(["ls", "--json"]))).unwrap();
    let snaps = ls["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 1, "{ls}");
    let images = snaps[0]["meta"]["docker"]["images"].as_array().unwrap();
    let ids = |d: &Dockerd| -> Vec<String> {
        ["api:1", "worker:2", "web:1"]
            .iter()
            .map(|r| d.inspect(r)["Id"].as_str().unwrap().to_string())
            .collect()
    };
    let want = ids(&a);
    let mut got: Vec<String> = images
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut sorted = want.clone();
    sorted.sort();
    assert_eq!(got, sorted, "{ls}");
    let table = ok(ferry(&sa).arg("ls"));
    for tag in ["api:1", "worker:2", "web:1"] {
        assert!(table.contains(tag), "{table}");
    }
    assert!(
        want.iter()
            .any(|id| table.contains(&format!("{}+2", &id[7..19]))),
        "{table}"
    );

    let pack = t.path().join("stack.ferry");
    ok(ferry(&sa).args(["pack", "shop_stack", "-o"]).arg(&pack));
    // inspect lists the stack's images before anything is imported.
    let table = ok(ferry(&sb).arg("inspect").arg(&pack));
    for tag in ["api:1", "worker:2", "web:1"] {
        assert!(table.contains(tag), "{table}");
    }
    let seen: serde_json::Value =
        serde_json::from_str(&ok(ferry(&sb).args(["inspect", "--json"]).arg(&pack))).unwrap();
    let mut tags: Vec<&str> = seen[0]["snapshots"][0]["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("{seen}"))
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["api:1", "web:1", "worker:2"], "{seen}");
    ok(ferry(&sb).arg("unpack").arg(&pack));
    let out = ok(f(&b.host, &sb).args(["load", "shop_stack"]));
    assert!(out.contains("worker:2"), "{out}");
    assert_eq!(ids(&b), want);

    // A plain list, comments and blank lines ignored, with an argument;
    // an explicit --name; duplicates saved once.
    let list = write(
        t.path(),
        "images.txt",
        b"# the stack\n\napi:1   # the API\n  worker:2\napi:1\n",
    );
    let out = ok(f(&a.host, &sa)
        .args(["save", "web:1", "--images-from"])
        .arg(&list)
        .args(["--name", "listed"]));
    assert!(
        out.contains("saved web:1, api:1, worker:2 (") && out.contains(" as listed:"),
        "{out}"
    );
}

#[test]
fn compose_files_ferry_cannot_save_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let proj = t.path().join("app");
    std::fs::create_dir(&proj).unwrap();
    let save = |file: &str| {
        let mut c = ferry(&store);
        c.args(["--docker-host", "unix:///nonexistent/docker.sock", "save"])
            .arg("--compose")
            .arg(proj.join(file))
            .env_remove("X");
        c
    };
    write(
        &proj,
        "build.yaml",
        b"services:\n  api:\n    image: api:1\n  builder:\n    build: ./builder\n",
    );
    fails(
        &mut save("build.yaml"),
        &["service 'builder'", "build it and give it an image: name"],
    );
    write(
        &proj,
        "required.yaml",
        b"services:\n  api:\n    image: api:${X:?must set X}\n",
    );
    fails(
        &mut save("required.yaml"),
        &["services.api.image", "required variable X", "must set X"],
    );
    write(
        &proj,
        "bad.yaml",
        b"services:\n  api:\n    image: api:${X\n",
    );
    fails(&mut save("bad.yaml"), &["invalid interpolation format"]);
    // An unset variable without a default resolves to an empty string, with
    // a warning (then the unreachable daemon is the error).
    write(
        &proj,
        "unset.yaml",
        b"services:\n  api:\n    image: api${X}:1\n",
    );
    let out = run(&mut save("unset.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the X variable is not set") && stderr.contains("Docker daemon"),
        "{stderr}"
    );
    write(&proj, "empty.txt", b"# nothing\n\n");
    fails(
        ferry(&store)
            .args(["save", "--images-from"])
            .arg(proj.join("empty.txt")),
        &["lists no images"],
    );
    // Every refusal came before the store was opened.
    assert!(!store.exists());
}
