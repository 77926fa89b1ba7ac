//! Helpers for the integration tests: run the real `ferry` binary against
//! stores in temporary directories, and build realistic inputs.
#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use ferry::demo::{Rng, file_content, layer_tar, sample_files, write_docker_archive};

/// A `ferry` command using `store`.
pub fn ferry(store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.arg("--store").arg(store).env_remove("FERRY_STORE");
    c
}

/// Runs and returns the output, whatever the exit status.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("running ferry")
}

/// Runs, asserting success; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "ferry failed: {:?}\nstdout: {}\nstderr: {}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs, asserting failure with exactly one line on stderr that contains
/// every one of `needles`; returns that line.
pub fn fails(cmd: &mut Command, needles: &[&str]) -> String {
    let out = run(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "ferry should have failed: {cmd:?}\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    for n in needles {
        assert!(
            stderr.contains(n),
            "error {stderr:?} does not mention {n:?}"
        );
    }
    stderr
}

/// Random bytes.
pub fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    Rng::new(seed).fill(&mut v);
    v
}

/// Writes `data` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .and_then(|mut f| f.write_all(data))
        .expect("writing test file");
    p
}

/// What a store looks like from outside: its snapshot list (from the
/// index, as `ferry ls --json` prints it) and the size of every data file.
#[derive(Debug, PartialEq, Eq)]
pub struct StoreState {
    pub snapshots: Vec<(String, String)>,
    pub data_files: BTreeMap<String, u64>,
}

pub fn state(store: &Path) -> StoreState {
    let mut data_files = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(store.join("data")) {
        for e in rd.flatten() {
            data_files.insert(
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            );
        }
    }
    let out = ok(ferry(store).args(["ls", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("ls --json is JSON");
    let snapshots = v["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["blake3"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    StoreState {
        snapshots,
        data_files,
    }
}

/// Everything a store holds, for "left exactly as it was" checks: the
/// BLAKE3 and size of every file under `data/`, and every row of every
/// table of the index (read through SQLite, so a WAL not yet checkpointed
/// counts). Two fingerprints are equal only if nothing changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub data_files: BTreeMap<String, (u64, String)>,
    pub tables: BTreeMap<String, Vec<String>>,
}

pub fn fingerprint(store: &Path) -> Fingerprint {
    let mut data_files = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(store.join("data")) {
        for e in rd.flatten() {
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            data_files.insert(
                e.file_name().to_string_lossy().into_owned(),
                (
                    bytes.len() as u64,
                    blake3::hash(&bytes).to_hex().to_string(),
                ),
            );
        }
    }
    let mut tables = BTreeMap::new();
    let index = store.join("index.sqlite");
    if index.exists() {
        let conn = rusqlite::Connection::open_with_flags(
            &index,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("opening the index");
        let names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        for name in names {
            let mut stmt = conn.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
            let cols = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    let mut row = String::new();
                    for i in 0..cols {
                        row.push_str(&format!("{:?}|", r.get_ref(i)?));
                    }
                    Ok(row)
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            rows.sort();
            tables.insert(name, rows);
        }
    }
    Fingerprint { data_files, tables }
}

/// A docker-save-like archive of `tag`: an OS layer, a dependency layer
/// where three files differ between versions.
pub fn image(dir: &Path, name: &str, tag: &str, version: u64) -> PathBuf {
    let os = sample_files(11, "usr/lib", 120, 256 << 10);
    let mut deps = sample_files(12, "site-packages", 150, 128 << 10);
    if version > 1 {
        let mut rng = Rng::new(version);
        for i in [3usize, 60, 99] {
            let f = &mut deps[i];
            let at = rng.below(f.data.len() as u64) as usize;
            let n = 500.min(f.data.len() - at);
            rng.fill(&mut f.data[at..at + n]);
        }
    }
    // Same mtimes in both versions: rebuilt layers (new mtimes) are the tar-aware splitter's job.
    let layers = vec![
        layer_tar(&os, 1_600_000_000),
        layer_tar(&deps, 1_600_000_000),
    ];
    let p = dir.join(name);
    write_docker_archive(&p, tag, &layers).expect("writing test image");
    p
}

/// The environment variable that turns every skip into a failure. `.ci/run`
/// sets it, so CI cannot pass without Docker, root and every tool.
pub const REQUIRE_ALL: &str = "FERRY_TEST_REQUIRE_ALL";

/// Reports that `test` cannot run here, and why, on the real stderr (libtest
/// captures `eprintln!`, so a skip printed that way is never seen). With
/// `FERRY_TEST_REQUIRE_ALL=1` the skip fails the test instead. Callers
/// return right after it.
pub fn skip(test: &str, reason: &str) {
    let line = format!("SKIP {test}: {reason}");
    if std::env::var(REQUIRE_ALL).is_ok_and(|v| v == "1") {
        panic!("{line}; {REQUIRE_ALL}=1 makes every skip a failure");
    }
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// True when this process runs as root (the Docker and mount tests need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Where the program `name` is installed (on `PATH`, or in `/usr/sbin` or
/// `/sbin`), if it is.
pub fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Size of a file (0 when it does not exist).
pub fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// A connected store holding app:1 and app:2, the full and delta packs, and
/// an offline store that has already unpacked the full pack.
pub struct Setup {
    pub _t: tempfile::TempDir,
    pub dir: PathBuf,
    pub offline: PathBuf,
    pub full: PathBuf,
    pub update: PathBuf,
}

pub fn setup() -> Setup {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let (a, offline) = (dir.join("a"), dir.join("b"));
    ok(ferry(&a).arg("add").arg(image(&dir, "v1.tar", "app:1", 1)));
    ok(ferry(&a).arg("add").arg(image(&dir, "v2.tar", "app:2", 2)));
    let (full, update) = (dir.join("full.ferry"), dir.join("update.ferry"));
    ok(ferry(&a).args(["pack", "app:1", "-o"]).arg(&full));
    ok(ferry(&a)
        .args(["pack", "app:2", "--base", "app:1", "-o"])
        .arg(&update));
    ok(ferry(&offline).arg("unpack").arg(&full));
    Setup {
        _t: t,
        dir,
        offline,
        full,
        update,
    }
}

/// Asserts that unpacking `pack` into `store` fails mentioning `needles`
/// and leaves the store as it was.
pub fn unpack_refused(store: &Path, pack: &Path, needles: &[&str]) {
    let before = state(store);
    fails(ferry(store).arg("unpack").arg(pack), needles);
    assert_eq!(
        state(store),
        before,
        "store changed after a refused unpack of {}",
        pack.display()
    );
}
pub mod gotools;
pub mod nginx;
pub mod registry;
pub mod token;
