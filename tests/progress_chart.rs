//! Progress on the real binary: with stderr a pipe (not a terminal),
//! ferry draws no progress at all, so scripts and logs see only the
//! one-line errors. (The bar logic itself, a total that grows when an
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
