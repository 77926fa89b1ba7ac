//! A store's life: removing snapshots, gc reclaiming their space (also when
//! killed at any point, and beside readers), and stores whose data or index
//! went missing underneath ferry.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const MB: usize = 1 << 20;

/// Two versions of a 40 MB file sharing their first half, added as `a`
/// and `b`, and the paths of both.
struct Two {
    _t: tempfile::TempDir,
    dir: PathBuf,
    store: PathBuf,
    a: PathBuf,
    b: PathBuf,
}

fn two_versions() -> Two {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let a_bytes = random_bytes(1, 40 * MB);
    let mut b_bytes = a_bytes[..20 * MB].to_vec();
    b_bytes.extend(random_bytes(2, 20 * MB));
    let a = write(&dir, "a", &a_bytes);
    let b = write(&dir, "b", &b_bytes);
    let store = dir.join("store");
    ok(ferry(&store).arg("add").arg(&a));
    ok(ferry(&store).arg("add").arg(&b));
    Two {
        _t: t,
        dir,
        store,
        a,
        b,
    }
}

fn json(cmd: &mut Command) -> serde_json::Value {
    serde_json::from_str(&ok(cmd)).expect("JSON output")
}

fn data_bytes(store: &Path) -> u64 {
    std::fs::read_dir(store.join("data"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Checks out `name` and compares it with `original`.
fn assert_exact(store: &Path, name: &str, original: &Path) {
    let out = store.with_extension(format!("{name}.out"));
    ok(ferry(store).args(["checkout", name, "-o"]).arg(&out));
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(original).unwrap(),
        "{name} is not byte-exact"
    );
    std::fs::remove_file(out).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn rm_then_gc_frees_what_only_the_removed_version_used() {
    let t = two_versions();
    let before = fingerprint(&t.store);
    fails(
        ferry(&t.store).args(["rm", "a", "nosuch"]),
        &["no snapshot named 'nosuch'", "nothing was removed"],
    );
    let dry = json(ferry(&t.store).args(["rm", "a", "--dry-run", "--json"]));
    assert_eq!(
        fingerprint(&t.store),
        before,
        "rm --dry-run changed the store"
    );
    let only_a = dry["bytes_freed_by_gc"].as_u64().unwrap();
    // a's second half (20 MB of random bytes) is what only it used.
    assert!(
        (19 * MB as u64..22 * MB as u64).contains(&only_a),
        "{only_a}"
    );
    let removed = json(ferry(&t.store).args(["rm", "a", "--json"]));
    assert_eq!(removed["bytes_freed_by_gc"], dry["bytes_freed_by_gc"]);
    let ls = ok(ferry(&t.store).arg("ls"));
    assert!(!ls.contains("\na ") && ls.contains("b"), "{ls}");

    let size_before = data_bytes(&t.store);
    let planned = json(ferry(&t.store).args(["gc", "--dry-run", "--json"]));
    let done = json(ferry(&t.store).args(["gc", "--json"]));
    let freed = size_before - data_bytes(&t.store);
    assert_eq!(done["freed"].as_u64().unwrap(), freed);
    assert_eq!(
        planned["freed"], done["freed"],
        "the dry run predicted otherwise"
    );
    assert!(
        freed as f64 >= 0.95 * only_a as f64,
        "gc freed {freed} of the {only_a} bytes only a used"
    );
    ok(ferry(&t.store).args(["verify", "--full"]));
    assert_exact(&t.store, "b", &t.b);
    // Nothing is left to reclaim.
    let again = json(ferry(&t.store).args(["gc", "--json"]));
    assert_eq!(again["freed"], 0);
    assert_eq!(again["dead_chunks"], 0);
}

#[test]
fn gc_killed_at_any_point_leaves_every_snapshot_exact() {
    let t = two_versions();
    ok(ferry(&t.store).args(["rm", "a"]));
    // Time one whole gc on a copy, then kill copies at points across it.
    let probe = t.dir.join("probe");
    copy_dir(&t.store, &probe);
    let start = Instant::now();
    ok(ferry(&probe).arg("gc"));
    let whole = start.elapsed();
    let after_gc = data_bytes(&probe);
    let mut rng = Rng::new(7);
    let points = 22;
    for i in 0..points {
        let copy = t.dir.join(format!("kill{i}"));
        copy_dir(&t.store, &copy);
        // Spread over the run, a few past its end; jittered.
        let base = whole.as_secs_f64() * 1.1 * i as f64 / points as f64;
        let jitter = rng.below(1000) as f64 / 1000.0 * whole.as_secs_f64() / points as f64;
        let mut child = ferry(&copy)
            .arg("gc")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs_f64(base + jitter));
        let _ = child.kill();
        child.wait().unwrap();
        ok(ferry(&copy).args(["verify", "--full"]));
        assert_exact(&copy, "b", &t.b);
        // A gc after the crash finishes the job.
        ok(ferry(&copy).arg("gc"));
        ok(ferry(&copy).args(["verify", "--full"]));
        assert!(
            data_bytes(&copy) <= after_gc + MB as u64,
            "after a kill at point {i} and a second gc the store holds {} bytes, one gc leaves {after_gc}",
            data_bytes(&copy)
        );
        std::fs::remove_dir_all(&copy).unwrap();
    }
}

/// A checkout to a pipe whose reader takes about `secs` for `total` bytes.
fn slow_checkout(
    store: &Path,
    name: &str,
    total: usize,
    secs: f64,
) -> (Child, std::thread::JoinHandle<Vec<u8>>) {
    let mut child = ferry(store)
        .args(["checkout", name, "-o", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let step = 256 << 10;
    let pause = Duration::from_secs_f64(secs * step as f64 / total as f64);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; step];
        loop {
            let n = out.read(&mut buf).unwrap();
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&buf[..n]);
            std::thread::sleep(pause);
        }
    });
    (child, reader)
}

#[test]
fn a_checkout_streaming_while_gc_runs_gives_exact_bytes() {
    let t = two_versions();
    ok(ferry(&t.store).args(["rm", "a"]));
    let files_before = std::fs::read_dir(t.store.join("data")).unwrap().count();
    let (mut child, reader) = slow_checkout(&t.store, "b", 40 * MB, 8.0);
    std::thread::sleep(Duration::from_millis(500));
    // gc moves b's chunks and switches the index under the running
    // checkout; the old file stays while the checkout has it open.
    let r = json(ferry(&t.store).args(["gc", "--json"]));
    assert_eq!(r["files_rewritten"], 1);
    assert_eq!(r["files_left_for_readers"], 1, "{r}");
    let got = reader.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        got == std::fs::read(&t.b).unwrap(),
        "the checkout beside gc is not exact"
    );
    // Once the reader is gone, the next gc removes the old file.
    let r = json(ferry(&t.store).args(["gc", "--json"]));
    assert_eq!(r["files_removed"], 1, "{r}");
    assert_eq!(
        std::fs::read_dir(t.store.join("data")).unwrap().count(),
        files_before
    );
    ok(ferry(&t.store).args(["verify", "--full"]));
    assert_exact(&t.store, "b", &t.b);
}

#[test]
fn add_and_unpack_write_again_chunks_whose_data_file_is_gone() {
    let t = two_versions();
    let pack = t.dir.join("a.ferry");
    ok(ferry(&t.store).args(["pack", "a", "-o"]).arg(&pack));
    let data = t.store.join("data").join("00000001.dat");
    let full = std::fs::metadata(&data).unwrap().len();
    // Cut the data file short: b's new half is gone, a's chunks remain.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(full - 10 * MB as u64)
        .unwrap();
    let out = ok(ferry(&t.store).arg("add").arg(&t.b));
    assert!(
        !out.contains(" 0 new") && out.contains("wrote again") && out.contains("no longer held"),
        "add trusted rows whose data is gone: {out}"
    );
    assert_exact(&t.store, "b", &t.b);
    ok(ferry(&t.store).args(["verify", "--full"]));

    // A full pack repairs a store whose data file was deleted.
    let other = t.dir.join("other");
    ok(ferry(&other).arg("unpack").arg(&pack));
    std::fs::remove_file(other.join("data").join("00000001.dat")).unwrap();
    fails(ferry(&other).args(["verify"]), &["damaged"]);
    ok(ferry(&other).arg("unpack").arg(&pack));
    ok(ferry(&other).args(["verify", "--full"]));
    assert_exact(&other, "a", &t.a);
}

#[test]
fn a_store_whose_index_is_gone_is_damaged_not_empty() {
    let t = two_versions();
    let index = t.store.join("index.sqlite");
    let saved = std::fs::read(&index).unwrap();
    for how in ["deleted", "emptied"] {
        if how == "deleted" {
            std::fs::remove_file(&index).unwrap();
        } else {
            std::fs::write(&index, b"").unwrap();
        }
        let before = fingerprint(&t.store);
        fails(ferry(&t.store).arg("verify"), &["index", "damaged"]);
        fails(ferry(&t.store).arg("ls"), &["index", "damaged"]);
        // add must not start a new index beside the old data.
        fails(ferry(&t.store).arg("add").arg(&t.a), &["index", "damaged"]);
        assert_eq!(fingerprint(&t.store), before, "index {how}");
        assert_eq!(index.exists(), how == "emptied");
    }
    std::fs::write(&index, saved).unwrap();
    ok(ferry(&t.store).args(["verify", "--full"]));
    // A mistyped --store is not "ok".
    fails(
        ferry(&t.dir.join("no-such-store")).arg("verify"),
        &["no such directory", "--store"],
    );
    assert!(!t.dir.join("no-such-store").exists());
}

/// A read-only bind mount of `dir` at `at` (root only), unmounted on drop.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn mount(dir: &Path, at: &Path) -> Option<ReadOnly> {
        std::fs::create_dir_all(at).ok()?;
        let sh = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        let (d, a) = (dir.to_str()?, at.to_str()?);
        if !sh(&["--bind", d, a]) {
            return None;
        }
        let m = ReadOnly(at.to_path_buf());
        sh(&["-o", "remount,bind,ro", a]).then_some(m)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_store_can_be_read() {
    let t = two_versions();
    let ro = t.dir.join("ro");
    let Some(_m) = ReadOnly::mount(&t.store, &ro) else {
        return skip(
            "a_read_only_store_can_be_read",
            "needs root to bind-mount read-only",
        );
    };
    assert!(
        std::fs::write(ro.join("probe"), b"x").is_err(),
        "the mount is writable"
    );
    let ls = ok(ferry(&ro).arg("ls"));
    assert!(ls.contains("b"), "{ls}");
    ok(ferry(&ro).args(["verify", "--full"]));
    assert_exact_to(&ro, "b", &t.b, &t.dir.join("b.out"));
    let pack = t.dir.join("b.ferry");
    ok(ferry(&ro)
        .args(["pack", "b", "--base", "a", "-o"])
        .arg(&pack));
    assert!(pack.exists());
    // Writing is refused with one line, not a SQLite message.
    fails(ferry(&ro).arg("add").arg(&t.a), &["read-only"]);
}

fn assert_exact_to(store: &Path, name: &str, original: &Path, out: &Path) {
    ok(ferry(store).args(["checkout", name, "-o"]).arg(out));
    assert!(std::fs::read(out).unwrap() == std::fs::read(original).unwrap());
}

#[test]
fn a_failed_unpack_leaves_committed_bytes_a_reader_may_have_mapped() {
    let t = two_versions();
    // A pack of 40 MB of new chunks (past the first checkpoint), cut short
    // so that it fails at the end.
    let src = t.dir.join("src");
    let c = write(&t.dir, "c", &random_bytes(3, 40 * MB));
    ok(ferry(&src).arg("add").arg(&c));
    let pack = t.dir.join("c.ferry");
    ok(ferry(&src).args(["pack", "c", "-o"]).arg(&pack));
    let bytes = std::fs::read(&pack).unwrap();
    let cut = write(&t.dir, "cut.ferry", &bytes[..bytes.len() - 1000]);
    let size_before = data_bytes(&t.store);
    let snaps_before = state(&t.store).snapshots;

    // With a reader streaming from the store, the failed unpack's undo does
    // not cut back the data file under it; the reader's bytes stay exact.
    let (mut child, reader) = slow_checkout(&t.store, "b", 40 * MB, 6.0);
    std::thread::sleep(Duration::from_millis(300));
    fails(ferry(&t.store).arg("unpack").arg(&cut), &["cut.ferry"]);
    assert!(
        data_bytes(&t.store) > size_before,
        "undo cut a file a reader had open"
    );
    assert!(reader.join().unwrap() == std::fs::read(&t.b).unwrap());
    assert!(child.wait().unwrap().success());
    assert_eq!(state(&t.store).snapshots, snaps_before);
    ok(ferry(&t.store).args(["verify", "--full"]));
    // gc takes the dead bytes back.
    ok(ferry(&t.store).arg("gc"));
    assert!(data_bytes(&t.store) <= size_before);

    // Without readers, the undo leaves the store exactly as it was.
    let before = fingerprint(&t.store);
    fails(ferry(&t.store).arg("unpack").arg(&cut), &["cut.ferry"]);
    assert_eq!(fingerprint(&t.store), before);
}

#[test]
fn gc_keeps_what_peers_and_waiting_volume_sets_still_need_unless_told() {
    let t = two_versions();
    // The ledger says peer "site" holds a; a waiting volume set holds c.
    ok(ferry(&t.store)
        .args(["pack", "a", "--to", "site", "-o"])
        .arg(t.dir.join("a.ferry")));
    let src = t.dir.join("src");
    let c = write(&t.dir, "c", &random_bytes(3, 6 * MB));
    ok(ferry(&src).arg("add").arg(&c));
    let vols = t.dir.join("c.ferry");
    ok(ferry(&src)
        .args(["pack", "c", "--volume-size", "4M", "-o"])
        .arg(&vols));
    let first = t.dir.join("c.ferry.001");
    assert!(first.exists() && t.dir.join("c.ferry.002").exists());
    ok(ferry(&t.store).arg("unpack").arg(&first));
    ok(ferry(&t.store).args(["rm", "a"]));

    let r = json(ferry(&t.store).args(["gc", "--json"]));
    assert_eq!(
        r["dead_chunks"], 0,
        "gc dropped what a peer or a volume set needs: {r}"
    );
    assert!(
        r["peer_bytes_kept"].as_u64().unwrap() >= 19 * MB as u64,
        "{r}"
    );
    let said = ok(ferry(&t.store).arg("gc"));
    assert!(said.contains("--ignore-peers"), "{said}");
    // The volume set completes after gc.
    ok(ferry(&t.store).arg("unpack").arg(t.dir.join("c.ferry.002")));
    assert_exact(&t.store, "c", &c);

    // Told to, gc drops the chunks only the peer holds; packs for the
    // peer still work (shipping those chunks again when needed).
    let before = data_bytes(&t.store);
    let r = json(ferry(&t.store).args(["gc", "--ignore-peers", "--json"]));
    assert!(r["dead_bytes"].as_u64().unwrap() >= 19 * MB as u64, "{r}");
    assert!(before - data_bytes(&t.store) >= 19 * MB as u64);
    ok(ferry(&t.store).args(["verify", "--full"]));
    let out = t.dir.join("b.ferry");
    ok(ferry(&t.store)
        .args(["pack", "b", "--to", "site", "-o"])
        .arg(&out));
    let other = t.dir.join("other");
    ok(ferry(&other).arg("unpack").arg(t.dir.join("a.ferry")));
    ok(ferry(&other).arg("unpack").arg(&out));
    assert_exact(&other, "b", &t.b);
}
