//! Bad input outside packs gets one clear line, a non-zero exit, and a
//! store left exactly as it was: missing inputs, a locked store, a killed
//! writer, a full disk, damaged chunk data, outputs that are not files.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn missing_inputs_and_unknown_snapshots() {
    let s = setup();
    let before = state(&s.offline);
    fails(
        ferry(&s.offline).args(["add", "/nonexistent/app.tar"]),
        &["/nonexistent/app.tar: no such file"],
    );
    fails(
        ferry(&s.offline).args(["unpack", "/nonexistent/u.ferry"]),
        &["no such file"],
    );
    fails(
        ferry(&s.offline)
            .args(["checkout", "nope:1", "-o"])
            .arg(s.dir.join("x.tar")),
        &["no snapshot named 'nope:1'", "ferry ls"],
    );
    fails(
        ferry(&s.offline)
            .args(["pack", "app:1", "--base", "nope:0", "-o"])
            .arg(s.dir.join("x.ferry")),
        &["nope:0"],
    );
    assert!(!s.dir.join("x.tar").exists() && !s.dir.join("x.ferry").exists());
    assert_eq!(state(&s.offline), before);
    // A missing input never creates a store.
    let none = s.dir.join("never");
    fails(
        ferry(&none).args(["add", "/nonexistent/app.tar"]),
        &["no such file"],
    );
    assert!(!none.exists());
}

#[test]
fn stdin_without_a_name_is_refused_unless_it_is_a_tagged_archive() {
    let s = setup();
    let before = state(&s.offline);
    let mut child = ferry(&s.offline)
        .args(["add", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&random_bytes(5, 300_000))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name"));
    assert_eq!(state(&s.offline), before);
    // A docker archive on stdin is named by its RepoTags.
    let mut child = ferry(&s.offline)
        .args(["add", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(s.dir.join("v2.tar")).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("added app:2"));
}

/// Waits up to `limit` for `child` to exit; `None` if it is still running.
fn exit_within(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_locked_store_fails_clearly_or_waits() {
    let s = setup();
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(s.offline.join("lock"))
        .unwrap();
    lock.lock().unwrap();
    // How long a command takes here that needs no lock.
    let started = Instant::now();
    let before = state(&s.offline);
    let reader = started.elapsed();
    // Without --lock-wait a writer fails at once, while the lock is still
    // held (it never lets go during this call).
    let started = Instant::now();
    let mut child = ferry(&s.offline)
        .arg("unpack")
        .arg(&s.update)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let Some(status) = exit_within(&mut child, Duration::from_secs(10)) else {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("a writer without --lock-wait waited for a held lock");
    };
    assert!(!status.success());
    assert!(
        started.elapsed() < reader + Duration::from_millis(1500),
        "failing on a held lock took {:?} (a reader {reader:?})",
        started.elapsed()
    );
    fails(
        ferry(&s.offline).arg("unpack").arg(&s.update),
        &["is locked by another ferry process", "--lock-wait"],
    );
    assert_eq!(state(&s.offline), before);
    // Readers are not blocked by a writer.
    ok(ferry(&s.offline).arg("ls"));
    // With --lock-wait, the writer waits for the lock to go, then works.
    let hold = Duration::from_millis(1500);
    let mut child = ferry(&s.offline)
        .args(["--lock-wait", "30", "unpack"])
        .arg(&s.update)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(hold);
    // Still running after `hold`: it waited at least that long.
    assert!(
        child.try_wait().unwrap().is_none(),
        "ferry --lock-wait ended while the lock was still held"
    );
    assert_eq!(state(&s.offline), before, "it wrote without the lock");
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        state(&s.offline)
            .snapshots
            .iter()
            .any(|(n, _)| n == "app:2")
    );
    // A wait that runs out is one clear line too.
    let lock = std::fs::File::open(s.offline.join("lock")).unwrap();
    lock.lock().unwrap();
    let started = Instant::now();
    let err = fails(
        ferry(&s.offline)
            .args(["--lock-wait", "1", "unpack"])
            .arg(&s.full),
        &[
            "is still locked by another ferry process (pid ",
            "after waiting 1 s",
            "let that process finish",
        ],
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    // It waited already: the advice is not to pass --lock-wait.
    assert!(!err.contains("--lock-wait"), "{err}");
}

#[test]
fn checkout_detects_damaged_chunk_data_and_keeps_no_output() {
    let s = setup();
    // Damage one byte in the middle of the offline store's data file.
    let data = s.offline.join("data").join("00000001.dat");
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let out = s.dir.join("out.tar");
    let err = fails(
        ferry(&s.offline)
            .args(["checkout", "app:1", "-o"])
            .arg(&out),
        &["damaged"],
    );
    assert!(
        err.contains("integrity check failed")
            || err.contains("cannot be decoded")
            || err.contains("does not hold"),
        "{err}"
    );
    assert!(!out.exists(), "a failed checkout left {}", out.display());
    assert!(!s.dir.join("out.tar.partial").exists());
}

#[test]
fn an_add_that_fails_after_tens_of_mib_were_synced_is_rolled_back() {
    // A gzip'd tar cut short: ferry finds out after about 40 MiB of new
    // chunks were appended, which it synced on the way (every 16 MiB).
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    ok(ferry(&s)
        .arg("add")
        .arg(write(t.path(), "small.bin", &random_bytes(1, 100_000))));
    let before = state(&s);
    let mut tar = tar::Builder::new(Vec::new());
    let data = random_bytes(2, 48 << 20);
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "big.bin", &data[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    let gz = gz.finish().unwrap();
    let cut = write(t.path(), "cut.tar.gz", &gz[..gz.len() * 5 / 6]);
    fails(
        ferry(&s).arg("add").arg(&cut),
        &["incomplete deflate stream"],
    );
    assert_eq!(state(&s), before);
    // The whole archive adds, and every chunk reads back.
    ok(ferry(&s)
        .arg("add")
        .arg(write(t.path(), "whole.tar.gz", &gz)));
    ok(ferry(&s).args(["verify", "--full"]));
}

#[test]
fn killed_add_leaves_a_consistent_store() {
    let s = setup();
    let before = state(&s.offline);
    let mut child = ferry(&s.offline)
        .args(["add", "-", "--name", "interrupted"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Enough for several batches to be chunked and appended, then kill -9.
    stdin.write_all(&random_bytes(77, 40 << 20)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Still reading: stdin is open, so the add cannot have finished.
    assert!(child.try_wait().unwrap().is_none(), "the add ended early");
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    // The store opens, lists what it had, and takes new work.
    assert_eq!(state(&s.offline).snapshots, before.snapshots);
    ok(ferry(&s.offline).arg("unpack").arg(&s.update));
    let out = s.dir.join("v2.out");
    ok(ferry(&s.offline)
        .args(["checkout", "app:2", "-o"])
        .arg(&out));
    assert!(std::fs::read(&out).unwrap() == std::fs::read(s.dir.join("v2.tar")).unwrap());
}

/// Mounts a small tmpfs at `dir` (root only); `None` when that is not possible.
fn small_tmpfs(dir: &Path, size: &str) -> Option<Mounted> {
    std::fs::create_dir_all(dir).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .ok()?;
    status.success().then(|| Mounted(dir.to_path_buf()))
}

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Writes to `path` until the file system is full (ENOSPC).
fn fill_up(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![1u8; 64 << 10];
    loop {
        match f.write(&block) {
            Ok(0) => panic!("writing {} wrote nothing", path.display()),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}

#[test]
fn disk_full_is_reported_and_rolled_back() {
    const TEST: &str = "disk_full_is_reported_and_rolled_back";
    if !is_root() {
        skip(TEST, "mounting a small tmpfs needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small");
    let Some(_m) = small_tmpfs(&mnt, "3m") else {
        skip(TEST, "mount -t tmpfs failed");
        return;
    };
    let store = mnt.join("store");
    let small_data = random_bytes(1, 200_000);
    let small = write(t.path(), "small.bin", &small_data);
    ok(ferry(&store).arg("add").arg(&small));
    let before = state(&store);
    let big = write(t.path(), "big.bin", &random_bytes(2, 8 << 20));
    fails(
        ferry(&store).arg("add").arg(&big),
        &["disk full", "free some space"],
    );
    assert_eq!(state(&store), before);
    // Checkout onto a full disk (another one: the output's) is refused too
    // and leaves nothing behind (no output, no partial file).
    let out_mnt = t.path().join("out");
    let Some(_o) = small_tmpfs(&out_mnt, "1m") else {
        skip(TEST, "mount -t tmpfs failed");
        return;
    };
    let filler = out_mnt.join("filler");
    fill_up(&filler);
    let listing = names_in(&out_mnt);
    let out = out_mnt.join("out.bin");
    fails(
        ferry(&store)
            .args(["checkout", "small.bin", "-o"])
            .arg(&out),
        &["disk full", "free some space"],
    );
    assert_eq!(names_in(&out_mnt), listing, "a failed checkout left files");
    assert_eq!(state(&store), before);
    // With room again, the same checkout succeeds.
    std::fs::remove_file(&filler).unwrap();
    ok(ferry(&store)
        .args(["checkout", "small.bin", "-o"])
        .arg(&out));
    assert!(std::fs::read(&out).unwrap() == small_data);
}

#[test]
fn unpacking_onto_a_full_disk_is_reported_and_rolled_back() {
    const TEST: &str = "unpacking_onto_a_full_disk_is_reported_and_rolled_back";
    if !is_root() {
        skip(TEST, "mounting a small tmpfs needs root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // A full pack of an image: its chunks travel in solid blocks, which the
    // receiver stores while it compresses the next ones.
    let src = t.path().join("src");
    ok(ferry(&src)
        .arg("add")
        .arg(image(t.path(), "app.tar", "app:1", 1)));
    let pack = t.path().join("full.ferry");
    ok(ferry(&src).args(["pack", "app:1", "-o"]).arg(&pack));
    let listing = ok(ferry(&src).arg("inspect").arg(&pack));
    assert!(listing.contains("solid blocks"), "{listing}");
    let mnt = t.path().join("small");
    let Some(_m) = small_tmpfs(&mnt, "2m") else {
        skip(TEST, "mount -t tmpfs failed");
        return;
    };
    let store = mnt.join("store");
    let small = write(t.path(), "small.bin", &random_bytes(1, 200_000));
    ok(ferry(&store).arg("add").arg(&small));
    let before = fingerprint(&store);
    fails(
        ferry(&store).arg("unpack").arg(&pack),
        &["disk full", "free some space"],
    );
    assert_eq!(fingerprint(&store), before);
    ok(ferry(&store).args(["verify", "--full"]));
}

#[test]
fn a_damaged_sending_store_is_caught_when_packing() {
    let s = setup();
    let a = s.dir.join("a");
    let data = a.join("data").join("00000001.dat");
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&data, &bytes).unwrap();
    let out = s.dir.join("x.ferry");
    fails(
        ferry(&a).args(["pack", "app:1", "-o"]).arg(&out),
        &["damaged"],
    );
    assert!(!out.exists() && !s.dir.join("x.ferry.partial").exists());
}

#[test]
fn outputs_that_are_directories_or_sockets_are_refused() {
    let s = setup();
    let a = s.dir.join("a");
    let dir = s.dir.join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let socket = s.dir.join("a-socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let before = state(&a);
    for (target, what) in [(&dir, "is a directory"), (&socket, "not a regular file")] {
        let runs: [&[&str]; 3] = [
            &["checkout", "app:1", "-o"],
            &["pack", "app:1", "-o"],
            &["inventory", "-o"],
        ];
        for args in runs {
            fails(
                ferry(&a).args(args).arg(target),
                &[
                    &target.display().to_string(),
                    what,
                    "give the path of a file",
                ],
            );
            let partial = s.dir.join(format!(
                "{}.partial",
                target.file_name().unwrap().to_string_lossy()
            ));
            assert!(!partial.exists(), "{args:?} left {}", partial.display());
        }
    }
    assert!(dir.is_dir() && std::fs::read_dir(&dir).unwrap().next().is_none());
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&socket).unwrap().file_type().is_socket());
    assert_eq!(state(&a), before);
}
