//! The command line itself: the `ls` table, reports whose reader leaves
//! early, shell completions, manual pages, and ferry as a docker CLI plugin.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// The value `ls` prints in each column of its table, by header name,
/// checking every value lines up with its header (left-aligned columns
/// start under it, right-aligned ones end under it).
fn ls_table(store: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let out = ok(ferry(store).arg("ls"));
    let mut lines = out.lines();
    let header = lines.next().expect("a header line");
    // Headers are separated by two spaces or more; "IMAGE ID" has one.
    let mut cols = Vec::new();
    let mut at = 0;
    for name in header.split("  ").map(str::trim).filter(|s| !s.is_empty()) {
        let start = at + header[at..].find(name).unwrap();
        at = start + name.len();
        cols.push((name.to_string(), start, at));
    }
    let right = ["SIZE", "STORED", "ADDED", "CHUNKS"];
    lines
        .map(|line| {
            let mut row = std::collections::HashMap::new();
            for (name, start, end) in &cols {
                let value = if right.contains(&name.as_str()) {
                    let v = &line[..*end];
                    assert!(
                        !v.ends_with(' ') && line[*end..].starts_with(' '),
                        "{name} does not end under its header in {line:?}"
                    );
                    v.rsplit("  ").next().unwrap().trim().to_string()
                } else {
                    let v = &line[(*start).min(line.len())..];
                    let v = v.split("  ").next().unwrap();
                    if *start > 0 && *start < line.len() {
                        assert!(
                            line[..*start].ends_with("  "),
                            "{name} misplaced in {line:?}"
                        );
                    }
                    v.trim().to_string()
                };
                row.insert(name.clone(), value);
            }
            row
        })
        .collect()
}

/// Bytes from indicatif's human form ("3.99 MiB", "812 B").
fn bytes(human: &str) -> f64 {
    let (n, unit) = human.split_once(' ').expect("a number and a unit");
    let n: f64 = n.parse().expect("a number");
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        u => panic!("unit {u}"),
    };
    n * scale
}

#[test]
fn ls_shows_what_each_snapshot_added() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let mut data = random_bytes(7, 4 << 20);
    let v1 = write(t.path(), "v1.bin", &data);
    data[2 << 20..(2 << 20) + 1000].fill(0);
    let v2 = write(t.path(), "v2.bin", &data);
    ok(ferry(&store).args(["add", "--name", "data-v1"]).arg(&v1));
    ok(ferry(&store).args(["add", "--name", "data-v2"]).arg(&v2));

    let rows = ls_table(&store);
    assert_eq!(rows.len(), 2);
    let (first, second) = (&rows[0], &rows[1]);
    assert_eq!(first["NAME"], "data-v1");
    assert_eq!(second["NAME"], "data-v2");
    // The first version brought everything it stores; the second only the
    // chunks around its edit.
    assert_eq!(first["ADDED"], first["STORED"]);
    let (added, stored) = (bytes(&second["ADDED"]), bytes(&second["STORED"]));
    assert!(stored > 3e6, "STORED {stored}");
    assert!(added * 8.0 < stored, "ADDED {added} vs STORED {stored}");
    // The table says what --json says.
    let json: serde_json::Value =
        serde_json::from_str(&ok(ferry(&store).args(["ls", "--json"]))).unwrap();
    let new_bytes = json["snapshots"][1]["new_bytes"].as_f64().unwrap();
    assert!((new_bytes - added).abs() <= new_bytes * 0.01 + 1.0);
}

/// Runs ferry with `args` `times` times, its standard output read by a
/// reader that takes `read` bytes (0: none) and closes the pipe; each run
/// must exit 0 without a panic.
fn reader_leaves_early(store: &Path, args: &[&str], read: usize, times: usize) {
    for _ in 0..times {
        let mut child = ferry(store)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        if read > 0 {
            let mut buf = vec![0u8; read];
            stdout.read_exact(&mut buf).unwrap();
        }
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked"),
            "ferry {args:?} panicked: {stderr}"
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "ferry {args:?} whose reader left: {stderr}"
        );
    }
}

#[test]
fn a_reader_that_leaves_early_is_never_a_panic() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let f = write(t.path(), "f", b"one small file");
    // Long names, so the table and the JSON outgrow a pipe's buffer.
    for i in 0..200 {
        let name = format!("snapshot-{i:03}-{}", "x".repeat(300));
        ok(ferry(&store).args(["add", "--name", &name]).arg(&f));
    }
    assert!(ok(ferry(&store).arg("ls")).len() > 1 << 16);
    for args in [&["ls", "--json"][..], &["ls"]] {
        reader_leaves_early(&store, args, 1, 20);
        reader_leaves_early(&store, args, 0, 20);
    }
    for args in [
        &["--help"][..],
        &["help", "pack"],
        &["--version"],
        &["completions", "zsh"],
        &["man"],
        &["docker-cli-plugin-metadata"],
    ] {
        reader_leaves_early(&store, args, 1, 5);
        reader_leaves_early(&store, args, 0, 5);
    }
}

/// Runs ferry with standard error a pipe nobody reads; returns its exit code.
fn with_stderr_closed(cmd: &mut Command) -> Option<i32> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    child.wait().unwrap().code()
}

#[test]
fn a_closed_stderr_is_never_a_panic() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let f = write(t.path(), "f", &random_bytes(3, 100_000));
    ok(ferry(&store).args(["add", "--name", "f"]).arg(&f));
    let out = t.path().join("out");
    // Reports on standard error: the work is done, the report unread.
    let code = with_stderr_closed(ferry(&store).args(["checkout", "f", "-o"]).arg(&out));
    assert_eq!(code, Some(0));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&f).unwrap());
    let code = with_stderr_closed(ferry(&store).args(["pack", "f", "-o", "-"]));
    assert_eq!(code, Some(0));
    // An error nobody reads is still a failure, not a panic.
    let code = with_stderr_closed(ferry(&store).args(["checkout", "nosuch", "-o"]).arg(&out));
    assert_eq!(code, Some(1));
}

#[test]
fn completions_name_the_subcommands() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef ferry"),
        ("fish", "complete -c ferry"),
        ("elvish", "ferry"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = ok(ferry(&store).args(["completions", shell]));
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        assert!(script.contains("ferry"), "{shell}");
        assert!(script.contains("unpack"), "{shell}: no unpack");
        assert!(script.contains("lock-wait"), "{shell}: no --lock-wait");
    }
    let out = run(ferry(&store).args(["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'tcsh'") && err.contains("zsh"), "{err}");
    assert!(!store.exists(), "completions made a store");
    if let Some(bash) = tool("bash") {
        // The bash script is valid bash and registers a completion for ferry.
        let path = write(
            t.path(),
            "ferry.bash",
            ok(ferry(&store).args(["completions", "bash"])).as_bytes(),
        );
        let out = ok(Command::new(bash)
            .arg("-c")
            .arg(format!("source {} && complete -p ferry", path.display())));
        assert!(out.contains("ferry"), "{out}");
    }
}

#[test]
fn man_pages_render() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let page = ok(ferry(&store).arg("man"));
    assert!(
        page.contains("\n.TH ferry 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(page.contains("unpack"));

    let dir = t.path().join("man/man1");
    let said = ok(ferry(&store).arg("man").arg("-o").arg(&dir));
    assert!(said.contains("manual pages"), "{said}");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for want in [
        "ferry.1",
        "ferry-unpack.1",
        "ferry-ls.1",
        "ferry-key-generate.1",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("plugin") || n == "ferry-help.1"),
        "{names:?}"
    );
    assert!(
        std::fs::read_to_string(dir.join("ferry-unpack.1"))
            .unwrap()
            .contains(".TH ferry-unpack 1")
    );
    assert!(!store.exists(), "man made a store");
    // Not a directory: refused, nothing written.
    let file = write(t.path(), "file", b"x");
    fails(ferry(&store).arg("man").arg("-o").arg(&file), &["file"]);

    if let Some(man) = tool("man") {
        let out = ok(Command::new(man)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .arg("-l")
            .arg(dir.join("ferry.1")));
        assert!(out.contains("ferry"), "{out}");
        assert!(out.contains("unpack"), "{out}");
        assert!(!out.contains(".TH"), "{out}");
    }
}

/// A docker CLI configuration directory with ferry installed as its
/// `docker-ferry` plugin (a link to the ferry binary).
fn docker_config(dir: &Path) -> PathBuf {
    let config = dir.join("docker-config");
    std::fs::create_dir_all(config.join("cli-plugins")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_ferry"),
        config.join("cli-plugins/docker-ferry"),
    )
    .unwrap();
    config
}

#[test]
fn ferry_answers_as_a_docker_plugin() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let meta: serde_json::Value =
        serde_json::from_str(&ok(ferry(&store).arg("docker-cli-plugin-metadata"))).unwrap();
    assert_eq!(meta["SchemaVersion"], "0.1.0");
    assert_eq!(meta["Vendor"], "ferry");
    assert_eq!(meta["Version"], env!("CARGO_PKG_VERSION"));
    let help = ok(ferry(&store).arg("--help"));
    assert!(!help.contains("docker-cli-plugin-metadata"), "{help}");

    // Run by its plugin name the way the docker CLI does, and by hand.
    let config = docker_config(t.path());
    let plugin = config.join("cli-plugins/docker-ferry");
    let f = write(t.path(), "f", b"some bytes");
    ok(ferry(&store).args(["add", "--name", "thing"]).arg(&f));
    let via = |args: &[&str]| {
        let mut c = Command::new(&plugin);
        c.args(args).env_remove("FERRY_STORE");
        c
    };
    let meta = ok(&mut via(&["docker-cli-plugin-metadata"]));
    assert!(meta.contains("\"SchemaVersion\""), "{meta}");
    let store_s = store.to_str().unwrap();
    assert!(ok(&mut via(&["ferry", "--store", store_s, "ls"])).contains("thing"));
    assert!(ok(&mut via(&["-D", "ferry", "ls", "--store", store_s])).contains("thing"));
    assert!(ok(&mut via(&["--store", store_s, "ls"])).contains("thing"));

    let Some(docker) = tool("docker") else {
        return skip(
            "ferry_answers_as_a_docker_plugin",
            "no docker CLI to run ferry as its plugin",
        );
    };
    let docker = |args: &[&str]| {
        let mut c = Command::new(&docker);
        c.arg("--config").arg(&config).args(args);
        c.env_remove("FERRY_STORE").env_remove("DOCKER_HOST");
        c
    };
    let version = ok(&mut docker(&["ferry", "--version"]));
    assert!(
        version.contains(&format!("ferry {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let ls = ok(&mut docker(&["ferry", "--store", store_s, "ls", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&ls).unwrap();
    assert_eq!(v["snapshots"][0]["name"], "thing");
    // DOCKER_CONFIG instead of --config.
    let ls = ok(Command::new(tool("docker").unwrap())
        .env("DOCKER_CONFIG", &config)
        .env_remove("FERRY_STORE")
        .args(["ferry", "ls", "--store", store_s]));
    assert!(ls.contains("thing"), "{ls}");
    // docker's -H names the daemon ferry talks to.
    let sock = t.path().join("no-daemon.sock");
    let host = format!("unix://{}", sock.display());
    let err = fails(
        &mut docker(&["-H", &host, "ferry", "images"]),
        &["no-daemon.sock"],
    );
    assert!(err.starts_with("ferry: error:"), "{err}");
    // docker help ferry [CMD] is ferry's help.
    let help = ok(&mut docker(&["help", "ferry"]));
    assert!(help.contains("Usage: docker ferry"), "{help}");
    let help = ok(&mut docker(&["help", "ferry", "ls"]));
    assert!(help.contains("Usage: docker ferry ls"), "{help}");
    // docker info lists it with its metadata.
    let info = ok(&mut docker(&[
        "info",
        "--format",
        "{{range .ClientInfo.Plugins}}{{.Name}} {{.Version}} {{.Vendor}};{{end}}",
    ]));
    assert!(
        info.contains(&format!("ferry {} ferry;", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    // The docker CLI lists the plugin with ferry's description.
    let help = ok(&mut docker(&["--help"]));
    let line = help
        .lines()
        .find(|l| l.trim_start().starts_with("ferry"))
        .unwrap_or_else(|| panic!("docker --help does not list ferry: {help}"));
    assert!(line.contains("air gap"), "{line}");
}

#[test]
fn a_signal_to_docker_stops_the_plugin() {
    let Some(docker) = tool("docker") else {
        return skip(
            "a_signal_to_docker_stops_the_plugin",
            "no docker CLI to run ferry as its plugin",
        );
    };
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let config = docker_config(t.path());
    // `add -` waits on its standard input, which stays open.
    let mut child = Command::new(docker)
        .arg("--config")
        .arg(&config)
        .args(["ferry", "--store", store.to_str().unwrap()])
        .args(["add", "--name", "never", "-"])
        .env_remove("FERRY_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"a start, and then nothing").unwrap();
    // ferry listens to the docker CLI before it makes the store.
    let started = std::time::Instant::now();
    while !store.join("index.sqlite").exists() {
        assert!(started.elapsed().as_secs() < 30, "ferry add never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let stopped = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopped.elapsed().as_secs() < 20,
            "ferry kept running after docker was told to stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    drop(stdin);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(state(&store).snapshots, vec![]);
    ok(ferry(&store).arg("verify"));
}
