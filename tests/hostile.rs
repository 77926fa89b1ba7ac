//! Packs and commands made to hurt the receiving store: forged signatures
//! (also with the unpack killed part-way), records claiming a gibibyte,
//! signatures stripped, snapshots packed against themselves, names that
//! hide control or bidirectional-text characters, and a lock wait that
//! runs out. Each is refused with one line and a non-zero exit, and the
//! store is left exactly as it was (`fingerprint`).

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes after the trailer record of a signed pack: the signature record.
const SIG: usize = 5 + 64;
/// Bytes of the trailer record.
const TRAILER: usize = 5 + 48;

/// The raw public key of a `NAME.pub` key file.
fn public_key(pub_file: &Path) -> [u8; 32] {
    let text = std::fs::read_to_string(pub_file).unwrap();
    let hex = text.split_whitespace().nth(1).unwrap();
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    k
}

/// Recomputes the trailer's BLAKE3 of a signed pack after an edit, as a
/// forger can: only the signature can tell then.
fn redigest(pack: &mut [u8]) {
    let body = pack.len() - SIG - TRAILER;
    let digest = *blake3::hash(&pack[..body]).as_bytes();
    pack[body + 5 + 16..body + 5 + 48].copy_from_slice(&digest);
}

/// `pack`, signed by `signer`, made to name `claimed` as its signer (the
/// key in the header swapped, the digest recomputed): every chunk and
/// every checksum is sound, only the signature is not.
fn forged(pack: &[u8], signer: &[u8; 32], claimed: &[u8; 32]) -> Vec<u8> {
    let mut v = pack.to_vec();
    let header_len = u32::from_le_bytes(v[13..17].try_into().unwrap()) as usize;
    let at = v[17..17 + header_len]
        .windows(32)
        .position(|w| w == signer)
        .expect("the header names its signer")
        + 17;
    v[at..at + 32].copy_from_slice(claimed);
    redigest(&mut v);
    v
}

/// The entries of a store's directory (names), to see that nothing was
/// left beside it.
fn entries(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A store that trusts `good.key`, holding one small snapshot so that
/// "unchanged" means something, and the keys' paths.
struct Trusting {
    _t: tempfile::TempDir,
    dir: PathBuf,
    store: PathBuf,
    good: PathBuf,
    bad: PathBuf,
}

fn trusting() -> Trusting {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let store = dir.join("b");
    let (good, bad) = (dir.join("good.key"), dir.join("bad.key"));
    ok(ferry(&store).args(["key", "generate", "-o"]).arg(&good));
    ok(ferry(&store).args(["key", "generate", "-o"]).arg(&bad));
    ok(ferry(&store)
        .args(["trust", "add"])
        .arg(dir.join("good.key.pub")));
    ok(ferry(&store)
        .arg("add")
        .arg(write(&dir, "here.bin", &random_bytes(1, 300_000))));
    Trusting {
        _t: t,
        dir,
        store,
        good,
        bad,
    }
}

/// A pack of `size` random bytes signed by `key`, from a store of its own.
fn signed_pack(dir: &Path, name: &str, size: usize, key: &Path) -> Vec<u8> {
    let a = dir.join(format!("sender-{name}"));
    ok(ferry(&a)
        .arg("add")
        .arg(write(dir, name, &random_bytes(size as u64, size))));
    let out = dir.join(format!("{name}.ferry"));
    ok(ferry(&a)
        .args(["pack", name, "--sign"])
        .arg(key)
        .arg("-o")
        .arg(&out));
    std::fs::read(out).unwrap()
}

/// Runs `ferry unpack -` on `store`, feeding `input` on its stdin;
/// returns the exit status and stderr.
fn unpack_stdin(store: &Path, input: Vec<u8>) -> (std::process::ExitStatus, String) {
    let mut child = ferry(store)
        .args(["unpack", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // The unpack may stop reading early: a broken pipe is expected.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a failure with one line on stderr holding every needle.
fn refused(status: std::process::ExitStatus, stderr: &str, needles: &[&str]) {
    assert!(!status.success(), "it should have failed: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    for n in needles {
        assert!(
            stderr.contains(n),
            "error {stderr:?} does not mention {n:?}"
        );
    }
}

#[test]
fn a_forged_pack_naming_a_trusted_key_is_refused_before_anything_is_written() {
    let s = trusting();
    let (good, bad) = (
        public_key(&s.dir.join("good.key.pub")),
        public_key(&s.dir.join("bad.key.pub")),
    );
    let before = fingerprint(&s.store);
    let listing = entries(&s.store);
    // Signed by another key, made to name the trusted one.
    let genuine = signed_pack(&s.dir, "small.bin", 2 << 20, &s.bad);
    let forgery = forged(&genuine, &bad, &good);
    let p = write(&s.dir, "forged.ferry", &forgery);
    let needles = [
        "forged.ferry",
        "signature does not match",
        "do not trust it",
    ];
    fails(ferry(&s.store).arg("unpack").arg(&p), &needles);
    assert_eq!(fingerprint(&s.store), before);
    let (status, err) = unpack_stdin(&s.store, forgery);
    refused(status, &err, &["-: pack signature does not match"]);
    assert_eq!(fingerprint(&s.store), before);
    // Signed by the trusted key, then a byte of a chunk altered in the
    // middle and the digest recomputed.
    let mut altered = signed_pack(&s.dir, "other.bin", 2 << 20, &s.good);
    let mid = altered.len() / 2;
    altered[mid] ^= 0x20;
    redigest(&mut altered);
    let p = write(&s.dir, "altered.ferry", &altered);
    fails(
        ferry(&s.store).arg("unpack").arg(&p),
        &["altered.ferry", "signature does not match"],
    );
    let (status, err) = unpack_stdin(&s.store, altered);
    refused(status, &err, &["signature does not match"]);
    assert_eq!(fingerprint(&s.store), before);
    assert_eq!(
        entries(&s.store),
        listing,
        "something was left beside the store"
    );
    // The genuine article goes in, from a file and from a pipe.
    let real = signed_pack(&s.dir, "real.bin", 1 << 20, &s.good);
    let out = ok(ferry(&s.store)
        .arg("unpack")
        .arg(write(&s.dir, "real.ferry", &real)));
    assert!(out.contains("added real.bin"), "{out}");
    let real2 = signed_pack(&s.dir, "real2.bin", 1 << 20, &s.good);
    let (status, err) = unpack_stdin(&s.store, real2);
    assert!(status.success(), "{err}");
    ok(ferry(&s.store).args(["verify", "--full"]));
}

/// Bytes `pid` has read so far (`rchar` of /proc/PID/io), if known.
fn bytes_read(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until `progress()` reaches `at` bytes (or the child ends, or a
/// minute passes), then kills the child with SIGKILL. True if it was
/// killed while running.
fn kill_at(child: &mut Child, at: u64, progress: &dyn Fn() -> u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress() < at && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    running
}

#[test]
fn a_forged_pack_killed_part_way_leaves_a_trusted_store_exactly_as_it_was() {
    let s = trusting();
    let (good, bad) = (
        public_key(&s.dir.join("good.key.pub")),
        public_key(&s.dir.join("bad.key.pub")),
    );
    // Random, so past the first 32 MiB checkpoint of an import.
    let genuine = signed_pack(&s.dir, "big.bin", 48 << 20, &s.bad);
    let forgery = forged(&genuine, &bad, &good);
    let p = write(&s.dir, "forged.ferry", &forgery);
    let before = fingerprint(&s.store);
    let listing = entries(&s.store);
    let mut killed = 0;
    // From a file: killed once it has read so much.
    for mib in [4u64, 40, 46] {
        let mut child = ferry(&s.store)
            .arg("unpack")
            .arg(&p)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        if kill_at(&mut child, mib << 20, &|| bytes_read(pid).unwrap_or(0)) {
            killed += 1;
        }
        assert_eq!(fingerprint(&s.store), before, "killed at {mib} MiB read");
        assert_eq!(entries(&s.store), listing);
    }
    // From a pipe: killed once so much was fed to it.
    for mib in [4u64, 40, 48] {
        let mut child = ferry(&s.store)
            .args(["unpack", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let fed = Arc::new(AtomicU64::new(0));
        let feeder = {
            let (fed, data) = (fed.clone(), forgery.clone());
            std::thread::spawn(move || {
                for piece in data.chunks(256 << 10) {
                    if stdin.write_all(piece).is_err() {
                        return;
                    }
                    fed.fetch_add(piece.len() as u64, Ordering::SeqCst);
                }
            })
        };
        let at = (mib << 20).min(forgery.len() as u64);
        if kill_at(&mut child, at, &|| fed.load(Ordering::SeqCst)) {
            killed += 1;
        }
        feeder.join().unwrap();
        assert_eq!(fingerprint(&s.store), before, "killed at {mib} MiB fed");
        assert_eq!(entries(&s.store), listing);
    }
    assert!(killed >= 4, "only {killed} runs were killed while running");
    eprintln!("{killed} runs killed");
    // Left to finish, it is refused with one line, and nothing is kept.
    fails(
        ferry(&s.store).arg("unpack").arg(&p),
        &["forged.ferry", "signature does not match"],
    );
    let (status, err) = unpack_stdin(&s.store, forgery);
    refused(status, &err, &["signature does not match"]);
    assert_eq!(fingerprint(&s.store), before);
    assert_eq!(entries(&s.store), listing);
}

/// The preamble and header record of `pack`.
fn pack_head(pack: &[u8]) -> Vec<u8> {
    let header_len = u32::from_le_bytes(pack[13..17].try_into().unwrap()) as usize;
    pack[..17 + header_len].to_vec()
}

/// Runs `ferry unpack -` on `store` with `feed` writing its stdin, under
/// GNU time when it is installed (else polling VmHWM); returns the exit
/// status, stderr without time's line, and the peak RSS in KiB.
fn unpack_measured(
    store: &Path,
    feed: impl FnOnce(&mut std::process::ChildStdin) + Send + 'static,
) -> (std::process::ExitStatus, String, u64) {
    let time = Path::new("/usr/bin/time");
    let mut cmd = if time.is_file() {
        let mut c = Command::new(time);
        c.args(["-f", "%M"]).arg(env!("CARGO_BIN_EXE_ferry"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
    };
    let mut child = cmd
        .arg("--store")
        .arg(store)
        .args(["unpack", "-"])
        .env_remove("FERRY_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || feed(&mut stdin));
    let mut peak = 0u64;
    if !time.is_file() {
        let pid = child.id();
        while child.try_wait().unwrap().is_none() {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                && let Some(kb) = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak = peak.max(kb);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let mut err = String::from_utf8_lossy(&out.stderr).into_owned();
    if time.is_file() {
        let last = err.trim_end().rsplit('\n').next().unwrap_or_default();
        peak = last
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("no peak RSS from GNU time in {last:?} ({e}): {err}"));
        let keep = err.trim_end().len() - last.len();
        err.truncate(keep);
        // GNU time's own word on the exit status.
        err = err
            .lines()
            .filter(|l| !l.starts_with("Command exited with non-zero status"))
            .collect::<Vec<_>>()
            .join("\n");
    }
    (out.status, err, peak)
}

/// Writes `head`, a record frame of type `kind` claiming `len` bytes,
/// `body`, then `zeros` zero bytes, and closes the stream.
fn hostile_stream(
    head: Vec<u8>,
    kind: u8,
    len: u32,
    body: Vec<u8>,
    zeros: u64,
) -> impl FnOnce(&mut std::process::ChildStdin) + Send + 'static {
    move |w| {
        let mut frame = head;
        frame.push(kind);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&body);
        if w.write_all(&frame).is_err() {
            return;
        }
        let block = vec![0u8; 1 << 20];
        let mut left = zeros;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            // Refused early: the pipe breaks, as it should.
            if w.write_all(&block[..n]).is_err() {
                return;
            }
            left -= n as u64;
        }
    }
}

#[test]
fn a_record_claiming_a_gibibyte_is_refused_without_taking_the_memory() {
    let s = trusting();
    let plain = s.dir.join("plain");
    ok(ferry(&plain)
        .arg("add")
        .arg(write(&s.dir, "p.bin", &random_bytes(2, 100_000))));
    // A genuine header naming the trusted key, so the trusting store reads on.
    let head = pack_head(&signed_pack(&s.dir, "h.bin", 100_000, &s.good));
    let gib = 1u32 << 30;
    // A snapshot record (the one type allowed 1 GiB): its name, then a
    // compact recipe, then metadata, each claiming about all of it.
    let mut named = Vec::new();
    named.extend_from_slice(&4u32.to_le_bytes());
    named.extend_from_slice(b"evil");
    named.extend_from_slice(&[0u8; 8 + 32 + 8]);
    let mut compact = named.clone();
    compact.extend_from_slice(&0u32.to_le_bytes());
    compact.push(3);
    compact.extend_from_slice(&1u64.to_le_bytes());
    let mut meta = named.clone();
    meta.extend_from_slice(&(gib - 100).to_le_bytes());
    let cases: Vec<(u8, Vec<u8>, u64, &str)> = vec![
        // Zeros, then the end of the stream.
        (
            3,
            Vec::new(),
            64 << 20,
            "a snapshot record has an empty name",
        ),
        // Zeros well past the claim: refused at once all the same.
        (
            3,
            Vec::new(),
            1200 << 20,
            "a snapshot record has an empty name",
        ),
        (3, compact, 64 << 20, "more than 1 pieces compress to"),
        (3, meta, 64 << 20, "snapshot metadata of 1073741724 bytes"),
        // Other types are held to their limits at once.
        (2, Vec::new(), 64 << 20, "claims 1073741824 bytes"),
    ];
    for store in [&s.store, &plain] {
        let before = fingerprint(store);
        for (kind, body, zeros, needle) in &cases {
            let started = Instant::now();
            let (status, err, peak_kb) = unpack_measured(
                store,
                hostile_stream(head.clone(), *kind, gib, body.clone(), *zeros),
            );
            refused(status, &err, &["-: pack is corrupt", needle]);
            assert!(
                peak_kb < 256 << 10,
                "{needle}: the unpack peaked at {peak_kb} KiB"
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{needle}: took {:?}",
                started.elapsed()
            );
            assert_eq!(fingerprint(store), before, "{needle}");
        }
    }
}

#[test]
fn a_pack_whose_signature_was_removed_is_called_unsigned_not_truncated() {
    let s = trusting();
    let pack = signed_pack(&s.dir, "s.bin", 200_000, &s.good);
    let stripped = &pack[..pack.len() - SIG];
    let p = write(&s.dir, "stripped.ferry", stripped);
    let needles = [
        "stripped.ferry: pack is unsigned, but its header names a signer",
        "signature was removed",
        "do not trust it",
    ];
    let plain = s.dir.join("plain");
    ok(ferry(&plain)
        .arg("add")
        .arg(write(&s.dir, "p.bin", &random_bytes(2, 100_000))));
    // Whether the store trusts keys or not, from a file or a pipe.
    for store in [&s.store, &plain] {
        let before = fingerprint(store);
        let err = fails(ferry(store).arg("unpack").arg(&p), &needles);
        assert!(!err.contains("truncated"), "{err}");
        let (status, err) = unpack_stdin(store, stripped.to_vec());
        refused(
            status,
            &err,
            &["-: pack is unsigned", "signature was removed"],
        );
        assert_eq!(fingerprint(store), before);
    }
    // A signature cut short is damage, and said so.
    let cut = write(&s.dir, "cut.ferry", &pack[..pack.len() - 10]);
    let before = fingerprint(&plain);
    fails(
        ferry(&plain).arg("unpack").arg(&cut),
        &["pack is corrupt", "ends inside its signature record"],
    );
    assert_eq!(fingerprint(&plain), before);
}

#[test]
fn a_lock_wait_that_runs_out_says_how_long_it_waited_and_who_holds_the_lock() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    ok(ferry(&store)
        .arg("add")
        .arg(write(t.path(), "x.bin", &random_bytes(4, 50_000))));
    let pack = t.path().join("x.ferry");
    ok(ferry(&store).args(["pack", "x.bin", "-o"]).arg(&pack));
    let before = fingerprint(&store);
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(store.join("lock"))
        .unwrap();
    lock.lock().unwrap();
    // What the lock file names (the last writer's pid).
    let holder = std::fs::read_to_string(store.join("lock")).unwrap();
    assert!(holder.starts_with("pid "), "{holder}");
    let started = Instant::now();
    let err = fails(
        ferry(&store)
            .args(["--lock-wait", "2", "unpack"])
            .arg(&pack),
        &[
            "is still locked by another ferry process",
            &format!("({})", holder.trim()),
            "after waiting 2 s",
        ],
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(!err.contains("--lock-wait"), "{err}");
    // Without a wait, --lock-wait is the advice.
    fails(
        ferry(&store).arg("unpack").arg(&pack),
        &["is locked by another ferry process", "--lock-wait SECONDS"],
    );
    drop(lock);
    assert_eq!(fingerprint(&store), before);
}

#[test]
fn a_snapshot_cannot_be_packed_against_itself() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    for (i, name) in ["x.bin", "y.bin"].into_iter().enumerate() {
        ok(ferry(&store)
            .arg("add")
            .arg(write(t.path(), name, &random_bytes(i as u64, 50_000))));
    }
    let before = fingerprint(&store);
    let out = t.path().join("p.ferry");
    fails(
        ferry(&store)
            .args(["pack", "x.bin", "--base", "x.bin", "-o"])
            .arg(&out),
        &["nothing is left to send", "'x.bin' is also a --base"],
    );
    fails(
        ferry(&store)
            .args(["pack", "x.bin", "y.bin", "--base", "x.bin", "-o"])
            .arg(&out),
        &[
            "'x.bin' is both a snapshot to pack and a --base",
            "cannot be its own base",
        ],
    );
    assert!(!out.exists(), "a pack was written");
    assert_eq!(fingerprint(&store), before);
    // A dry run says the same.
    fails(
        ferry(&store).args(["pack", "y.bin", "--base", "y.bin", "--dry-run"]),
        &["nothing is left to send"],
    );
}

#[test]
fn names_with_control_or_bidi_characters_are_refused_with_their_code_point() {
    use ferry::pack::{Header, PackWriter, PieceRef, Pieces, SnapshotRecord};
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("s");
    let input = write(t.path(), "x.bin", &random_bytes(5, 50_000));
    ok(ferry(&store).arg("add").arg(&input));
    let before = fingerprint(&store);
    for (name, code) in [
        ("evil\u{202e}gpj.exe", "U+202E"),
        ("a\u{200f}b", "U+200F"),
        ("a\u{2066}b", "U+2066"),
        ("a\u{1}b", "U+0001"),
        ("a\u{7f}b", "U+007F"),
    ] {
        let err = fails(
            ferry(&store).args(["add", "--name", name]).arg(&input),
            &["is not a usable snapshot name", code],
        );
        assert!(!err.contains(name), "the raw name was printed: {err:?}");
    }
    // A name taken from the file's name is held to the same rule.
    let odd = write(t.path(), "odd\u{202b}.bin", &random_bytes(6, 50_000));
    fails(
        ferry(&store).arg("add").arg(&odd),
        &["is not a usable snapshot name", "U+202B"],
    );
    assert_eq!(fingerprint(&store), before);
    // A pack naming such a snapshot is refused before anything is imported.
    let bad = "app\u{202e}1";
    let header = Header {
        algorithm: ferry::chunker::ALGORITHM.into(),
        params: ferry::chunker::PARAMS,
        created: 0,
        writer: "test".into(),
        bases: vec![],
        snapshots: vec![bad.into()],
        volume: None,
        signer: None,
        extra: vec![],
        encoders: vec![],
    };
    let mut w = PackWriter::new(Vec::new(), &header).unwrap();
    let data = random_bytes(7, 40_000);
    let id = ferry::id::ChunkId::of(&data);
    w.chunk(&id, ferry::codec::Codec::Raw, data.len() as u32, &data)
        .unwrap();
    w.snapshot(&SnapshotRecord {
        name: bad.into(),
        size: data.len() as u64,
        hash: ferry::id::SnapshotDigest::from(blake3::hash(&data)),
        added_at: 0,
        meta: "{}".into(),
        pieces: Pieces::Ids(vec![PieceRef::Whole(id)]),
    })
    .unwrap();
    let (bytes, _) = w.finish().unwrap();
    let p = write(t.path(), "named.ferry", &bytes);
    let err = fails(
        ferry(&store).arg("unpack").arg(&p),
        &["named.ferry", "U+202E", "nothing was imported"],
    );
    assert!(!err.contains(bad), "the raw name was printed: {err:?}");
    let (status, err) = unpack_stdin(&store, bytes);
    refused(status, &err, &["U+202E"]);
    assert_eq!(fingerprint(&store), before);
}
