//! Bad input gets one clear line, a non-zero exit, and a store left exactly
//! as it was (same snapshots, same data file sizes).

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A connected store holding app:1 and app:2, the full and delta packs, and
/// an offline store that has already unpacked the full pack.
struct Setup {
    _t: tempfile::TempDir,
    dir: PathBuf,
    offline: PathBuf,
    full: PathBuf,
    update: PathBuf,
}

fn setup() -> Setup {
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
fn unpack_refused(store: &Path, pack: &Path, needles: &[&str]) {
    let before = state(store);
    fails(ferry(store).arg("unpack").arg(pack), needles);
    assert_eq!(
        state(store),
        before,
        "store changed after a refused unpack of {}",
        pack.display()
    );
}

#[test]
fn corrupt_packs_are_refused_at_any_byte() {
    let s = setup();
    let pack = std::fs::read(&s.update).unwrap();
    // Flip one byte at 24 spread positions: preamble, header, chunk
    // records, snapshot record and trailer alike.
    let mut positions: Vec<usize> = (0..24).map(|i| i * (pack.len() - 1) / 23).collect();
    positions.extend([9, 13, 20, pack.len() - 40, pack.len() - 1]);
    for pos in positions {
        let mut bad = pack.clone();
        bad[pos] ^= 0x40;
        let p = write(&s.dir, "bad.ferry", &bad);
        let before = state(&s.offline);
        let out = run(ferry(&s.offline).arg("unpack").arg(&p));
        assert!(
            !out.status.success(),
            "flipped byte {pos} of {} went unnoticed",
            pack.len()
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("bad.ferry"), "{err}");
        assert_eq!(
            state(&s.offline),
            before,
            "store changed after corrupt byte {pos}"
        );
    }
    // The intact pack still goes in afterwards.
    ok(ferry(&s.offline).arg("unpack").arg(&s.update));
}

/// The records of a pack as (type, offset of the payload, payload length),
/// walked by the framing docs/FORMAT.md gives: a 12-byte preamble, then
/// records of a type byte, a little-endian u32 length and the payload.
fn records(pack: &[u8]) -> Vec<(u8, usize, usize)> {
    let mut at = 12;
    let mut v = Vec::new();
    while at < pack.len() {
        let kind = pack[at];
        let len = u32::from_le_bytes(pack[at + 1..at + 5].try_into().unwrap()) as usize;
        v.push((kind, at + 5, len));
        at += 5 + len;
    }
    assert_eq!(at, pack.len(), "records do not add up to the pack");
    v
}

#[test]
fn corrupt_chunk_names_the_chunk_and_trailer_damage_is_caught() {
    let s = setup();
    let pack = std::fs::read(&s.full).unwrap();
    // A chunk record (type 2: id, codec, length, payload) from the middle of
    // the pack; damage a byte of its stored bytes.
    let chunks: Vec<(usize, usize)> = records(&pack)
        .into_iter()
        .filter(|&(kind, _, len)| kind == 2 && len > 37 + 100)
        .map(|(_, at, len)| (at, len))
        .collect();
    assert!(chunks.len() > 10, "{} chunk records", chunks.len());
    let (at, len) = chunks[chunks.len() / 2];
    let id = blake3::Hash::from_bytes(pack[at..at + 32].try_into().unwrap()).to_hex();
    let mut bad = pack.clone();
    bad[at + 37 + (len - 37) / 2] ^= 1;
    let fresh = s.dir.join("fresh");
    ok(ferry(&fresh)
        .arg("add")
        .arg(write(&s.dir, "other.bin", &random_bytes(3, 10_000))));
    unpack_refused(
        &fresh,
        &write(&s.dir, "mid.ferry", &bad),
        &["pack is corrupt", &format!("chunk {id}"), "copy it again"],
    );
    let mut bad = pack.clone();
    let last = pack.len() - 1;
    bad[last] ^= 1;
    unpack_refused(
        &s.offline,
        &write(&s.dir, "tail.ferry", &bad),
        &["does not match its trailer"],
    );
}

#[test]
fn truncated_packs_are_refused() {
    let s = setup();
    let pack = std::fs::read(&s.update).unwrap();
    for cut in [5, 12, 40, pack.len() / 3, pack.len() - 49, pack.len() - 1] {
        unpack_refused(
            &s.offline,
            &write(&s.dir, "cut.ferry", &pack[..cut]),
            &["truncated"],
        );
    }
    // Extra bytes after the trailer are damage too.
    let mut long = pack.clone();
    long.extend_from_slice(b"junk");
    unpack_refused(
        &s.offline,
        &write(&s.dir, "long.ferry", &long),
        &["after the trailer"],
    );
}

#[test]
fn foreign_files_and_other_versions_are_refused() {
    let s = setup();
    unpack_refused(&s.offline, &s.dir.join("v1.tar"), &["not a ferry pack"]);
    unpack_refused(
        &s.offline,
        &write(&s.dir, "empty.ferry", b""),
        &["not a ferry pack"],
    );
    let mut newer = std::fs::read(&s.full).unwrap();
    newer[8..12].copy_from_slice(&7u32.to_le_bytes());
    unpack_refused(
        &s.offline,
        &write(&s.dir, "newer.ferry", &newer),
        &["version 7", "upgrade ferry"],
    );
}

#[test]
fn delta_without_its_base_names_what_to_unpack_first() {
    let s = setup();
    let fresh = s.dir.join("fresh");
    let before = state(&fresh);
    fails(
        ferry(&fresh).arg("unpack").arg(&s.update),
        &[
            "delta against app:1",
            "unpack the pack that carries app:1 first",
        ],
    );
    assert_eq!(state(&fresh), before);
}

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
    fails(
        ferry(&s.offline)
            .args(["--lock-wait", "1", "unpack"])
            .arg(&s.full),
        &["is locked by another ferry process"],
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
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
fn other_chunker_parameters_are_refused_in_packs_and_stores() {
    let s = setup();
    // The header's chunk_min field sits after the preamble (12), the record
    // frame (5) and the algorithm string (4 + its length).
    let mut pack = std::fs::read(&s.update).unwrap();
    let at = 12 + 5 + 4 + ferry::chunker::ALGORITHM.len();
    pack[at..at + 4].copy_from_slice(&8192u32.to_le_bytes());
    unpack_refused(
        &s.offline,
        &write(&s.dir, "params.ferry", &pack),
        &["pack was cut with chunker", "min=8192"],
    );

    let conn = rusqlite::Connection::open(s.offline.join("index.sqlite")).unwrap();
    conn.execute(
        "UPDATE config SET value = '32768' WHERE key = 'chunk_avg'",
        [],
    )
    .unwrap();
    drop(conn);
    fails(
        ferry(&s.offline).arg("ls"),
        &["store was made with chunker", "avg=32768"],
    );
    fails(
        ferry(&s.offline).arg("unpack").arg(&s.update),
        &["store was made with chunker"],
    );
}

/// A pack writer for a hand-made full pack announcing one snapshot.
fn hand_made_pack(snapshot: &str) -> ferry::pack::PackWriter<Vec<u8>> {
    let header = ferry::pack::Header {
        algorithm: ferry::chunker::ALGORITHM.into(),
        params: ferry::chunker::PARAMS,
        created: 0,
        writer: "test".into(),
        bases: vec![],
        snapshots: vec![snapshot.into()],
        volume: None,
        signer: None,
        extra: vec![],
    };
    ferry::pack::PackWriter::new(Vec::new(), &header).unwrap()
}

#[test]
fn a_pack_referencing_chunks_it_does_not_carry_is_refused() {
    use ferry::pack::{PieceRef, Pieces, SnapshotRecord};
    let s = setup();
    let mut w = hand_made_pack("orphan");
    let data = b"hello";
    let id = *blake3::hash(data).as_bytes();
    w.chunk(&id, ferry::codec::Codec::Raw, 5, data).unwrap();
    let missing = [7u8; 32];
    w.snapshot(&SnapshotRecord {
        name: "orphan".into(),
        size: 10,
        hash: [0; 32],
        added_at: 0,
        meta: "{}".into(),
        pieces: Pieces::Ids(vec![PieceRef::Whole(id), PieceRef::Whole(missing)]),
    })
    .unwrap();
    let (bytes, _) = w.finish().unwrap();
    let p = write(&s.dir, "orphan.ferry", &bytes);
    unpack_refused(
        &s.offline,
        &p,
        &[
            "snapshot orphan needs chunk 0707070707070707",
            "unpack the pack it is a delta against first",
        ],
    );
}

#[test]
fn a_delta_against_a_base_stored_differently_is_refused_clearly() {
    let s = setup();
    // The same bytes as app:1, but chunked as one plain stream on this side.
    let other = s.dir.join("other");
    ok(ferry(&other)
        .args(["add", "--no-tar-split"])
        .arg(s.dir.join("v1.tar")));
    unpack_refused(&other, &s.update, &["split differently", "--no-tar-split"]);
    // Once a copy stored the sender's way is there too, the delta applies.
    ok(ferry(&other)
        .arg("add")
        .arg(s.dir.join("v1.tar"))
        .args(["--name", "app:1-split"]));
    ok(ferry(&other).arg("unpack").arg(&s.update));
    let out = ferry(&other)
        .args(["checkout", "app:2", "-o", "-"])
        .output()
        .unwrap();
    assert!(out.stdout == std::fs::read(s.dir.join("v2.tar")).unwrap());
}

/// Writes a format-version-1 pack by hand (ids inline, no recipe digests),
/// as ferry 0.1 wrote them: newer ferry must keep reading it.
#[test]
fn version_1_packs_stay_readable() {
    use ferry::pack::format::Enc;
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let data = random_bytes(8, 100_000);
    let id = *blake3::hash(&data).as_bytes();
    let mut body = Enc::default();
    body.bytes(b"FERRYPAK").u32(1);
    let mut header = Enc::default();
    let p = ferry::chunker::PARAMS;
    header
        .str(ferry::chunker::ALGORITHM)
        .u32(p.min)
        .u32(p.avg)
        .u32(p.max)
        .i64(0)
        .str("ferry 0.1.0")
        .u32(0)
        .u32(1)
        .str("old");
    body.u8(1).u32(header.0.len() as u32).bytes(&header.0);
    body.u8(2)
        .u32(37 + data.len() as u32)
        .bytes(&id)
        .u8(0)
        .u32(data.len() as u32)
        .bytes(&data);
    let mut snap = Enc::default();
    snap.str("old")
        .u64(data.len() as u64)
        .bytes(blake3::hash(&data).as_bytes())
        .i64(0)
        .str("{}")
        .u64(2);
    snap.u8(1).bytes(&id).u32(0).u32(50_000);
    snap.u8(1).bytes(&id).u32(50_000).u32(50_000);
    body.u8(3).u32(snap.0.len() as u32).bytes(&snap.0);
    let digest = blake3::hash(&body.0);
    body.u8(0xFF).u32(48).u64(1).u64(1).bytes(digest.as_bytes());
    let pack = write(t.path(), "v1.ferry", &body.0);
    ok(ferry(&store).arg("unpack").arg(&pack));
    let out = ferry(&store)
        .args(["checkout", "old", "-o", "-"])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout == data);
}

#[test]
fn a_recipe_claiming_huge_counts_is_refused_without_allocating_them() {
    use ferry::pack::{Pieces, SnapshotRecord};
    let time = Path::new("/usr/bin/time");
    if !time.is_file() {
        skip(
            "a_recipe_claiming_huge_counts_is_refused_without_allocating_them",
            "GNU time is not installed (apt-get install time)",
        );
        return;
    }
    let s = setup();
    let mut w = hand_made_pack("bomb");
    // 64 MiB of zero tokens compress to a few KiB: 67 million claimed pieces.
    let data = zstd::encode_all(&vec![0u8; 64 << 20][..], 19).unwrap();
    assert!(data.len() < 100_000);
    w.snapshot(&SnapshotRecord {
        name: "bomb".into(),
        size: 1 << 40,
        hash: [0; 32],
        added_at: 0,
        meta: "{}".into(),
        pieces: Pieces::Compact {
            count: 64 << 20,
            encoding: ferry::pack::format::RECIPE_COMPACT_REL,
            data,
        },
    })
    .unwrap();
    let (bytes, _) = w.finish().unwrap();
    let p = write(&s.dir, "bomb.ferry", &bytes);
    let before = state(&s.offline);
    let out = std::process::Command::new(time)
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .arg("--store")
        .arg(&s.offline)
        .arg("unpack")
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("pack is corrupt"),
        "{err}"
    );
    // GNU time prints the peak RSS (KB) as the last line of stderr.
    let last = err.lines().last().unwrap_or_default().trim();
    let rss_kb: u64 = last
        .parse()
        .unwrap_or_else(|e| panic!("no peak RSS from /usr/bin/time in {last:?} ({e}): {err}"));
    assert!(rss_kb > 0, "{err}");
    assert!(
        rss_kb < 400 << 10,
        "unpack of a recipe bomb used {rss_kb} KB"
    );
    assert_eq!(state(&s.offline), before);
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
fn a_snapshot_that_does_not_rebuild_to_its_hash_is_refused_at_unpack() {
    use ferry::pack::{PieceRef, Pieces, SnapshotRecord};
    let s = setup();
    let mut w = hand_made_pack("liar");
    let data = b"hello, world";
    let id = *blake3::hash(data).as_bytes();
    w.chunk(&id, ferry::codec::Codec::Raw, data.len() as u32, data)
        .unwrap();
    w.snapshot(&SnapshotRecord {
        name: "liar".into(),
        size: data.len() as u64,
        hash: *blake3::hash(b"something else").as_bytes(),
        added_at: 0,
        meta: "{}".into(),
        pieces: Pieces::Ids(vec![PieceRef::Whole(id)]),
    })
    .unwrap();
    let (bytes, _) = w.finish().unwrap();
    let p = write(&s.dir, "liar.ferry", &bytes);
    unpack_refused(
        &s.offline,
        &p,
        &["snapshot liar does not rebuild to the BLAKE3 it claims"],
    );
}

#[test]
fn outputs_that_are_not_regular_files_are_refused() {
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
