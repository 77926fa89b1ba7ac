//! Progress on the real binary: with stderr a pipe (not a terminal),
//! ferry draws no progress at all, so scripts and logs see only the
//! one-line errors; on a terminal, each phase is a bar with its real total. (The bar logic itself, a total that grows when an
//! estimate is exceeded, is unit-tested in `src/cli/output.rs`; the chart
//! is checked in `tests/bench.rs`.)

mod common;

use common::*;

/// Runs, asserting success and nothing at all on stderr; returns stdout.
fn silent(cmd: &mut std::process::Command) -> String {
    let out = run(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed: {stderr}");
    assert!(
        stderr.is_empty(),
        "{cmd:?} wrote to a piped stderr: {stderr:?}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn no_progress_output_when_stderr_is_a_pipe() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let v1 = image(t.path(), "v1.tar", "app:1", 1);
    let v2 = image(t.path(), "v2.tar", "app:2", 2);
    silent(ferry(&a).arg("add").arg(&v1));
    silent(ferry(&a).arg("add").arg(&v2));
    let full = t.path().join("full.ferry");
    let delta = t.path().join("delta.ferry");
    silent(ferry(&a).args(["pack", "app:1", "-o"]).arg(&full));
    silent(
        ferry(&a)
            .args(["pack", "app:2", "--base", "app:1", "-o"])
            .arg(&delta),
    );
    // unpack reads the pack, then rebuilds each new snapshot to check it:
    // both phases stay silent.
    silent(ferry(&b).arg("unpack").arg(&full));
    let out = silent(ferry(&b).arg("unpack").arg(&delta));
    assert!(out.contains("app:2"), "{out}");
    let back = t.path().join("back.tar");
    // checkout reports on stderr (stdout may carry the image): one line,
    // no bar.
    let out = run(ferry(&b).args(["checkout", "app:2", "-o"]).arg(&back));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&v2).unwrap());
}

/// Runs `ferry ARGS` on a pseudo-terminal (util-linux `script`) and returns
/// everything it drew there.
fn on_terminal(store: &std::path::Path, args: &[&std::ffi::OsStr]) -> String {
    // A wide terminal: indicatif cuts a bar at the terminal's width.
    let mut line = format!(
        "stty cols 200 rows 40; {} --store {}",
        env!("CARGO_BIN_EXE_ferry"),
        store.display()
    );
    for a in args {
        line.push(' ');
        line.push_str(a.to_str().expect("test paths are UTF-8"));
    }
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("FERRY_STORE")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running script");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{line} failed: {text}");
    text
}

#[test]
fn on_a_terminal_each_phase_is_a_bar_with_its_real_total() {
    let test = "on_a_terminal_each_phase_is_a_bar_with_its_real_total";
    if tool("script").is_none() {
        return skip(
            test,
            "util-linux's script (a pseudo-terminal) is not installed",
        );
    }
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let v1 = image(t.path(), "v1.tar", "app:1", 1);
    let full = t.path().join("full.ferry");
    let back = t.path().join("back.tar");
    let total = |p: &std::path::Path| indicatif::HumanBytes(file_size(p)).to_string();
    // add: the archive's size; unpack: the pack's; checkout: the image's.
    let drawn = on_terminal(&a, &["add".as_ref(), v1.as_os_str()]);
    assert!(
        drawn.contains("adding [")
            && drawn.contains(&format!("/{} ", total(&v1)))
            && drawn.contains("eta"),
        "{drawn:?}"
    );
    ok(ferry(&a).args(["pack", "app:1", "-o"]).arg(&full));
    let drawn = on_terminal(&b, &["unpack".as_ref(), full.as_os_str()]);
    assert!(
        drawn.contains("unpacking [") && drawn.contains(&format!("/{} ", total(&full))),
        "{drawn:?}"
    );
    let drawn = on_terminal(
        &b,
        &[
            "checkout".as_ref(),
            "app:1".as_ref(),
            "-o".as_ref(),
            back.as_os_str(),
        ],
    );
    assert!(
        drawn.contains("checkout [") && drawn.contains(&format!("/{} ", total(&v1))),
        "{drawn:?}"
    );
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&v1).unwrap());
}
