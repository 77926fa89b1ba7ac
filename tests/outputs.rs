//! Where `-o` writes: devices and pipes in place, regular files through a
//! fresh temporary file that no planted link can redirect, a directory
//! refused before anything is written, and no byte of a damaged chunk ever
//! leaving ferry, whatever the output.

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use ferry::demo::SampleFile;

/// A store holding `t:1`, a tar of random files (which the store keeps
/// raw: zstd does not shrink them).
struct Stored {
    _t: tempfile::TempDir,
    dir: PathBuf,
    store: PathBuf,
    tar: Vec<u8>,
}

fn stored_tar(big: usize) -> Stored {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let files = vec![
        SampleFile {
            path: "app/README".into(),
            data: b"a small text file\n".repeat(40),
        },
        SampleFile {
            path: "app/blob.bin".into(),
            data: random_bytes(41, big),
        },
        SampleFile {
            path: "app/other.bin".into(),
            data: random_bytes(42, 300_000),
        },
    ];
    let tar = layer_tar(&files, 1_600_000_000);
    let input = write(&dir, "in.tar", &tar);
    let store = dir.join("store");
    ok(ferry(&store).args(["add", "--name", "t:1"]).arg(&input));
    Stored {
        _t: t,
        dir,
        store,
        tar,
    }
}

/// Names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Asserts `out` is a failure with exactly one line on stderr holding every
/// one of `needles`; returns that line.
fn failed(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "ferry should have failed: {stderr}");
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

fn is_char_device(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device())
}

#[test]
fn checkout_and_pack_onto_dev_null_leave_the_device_and_succeed() {
    let s = stored_tar(2 << 20);
    let dev_null = Path::new("/dev/null");
    assert!(is_char_device(dev_null));
    let before = fingerprint(&s.store);
    let err = ok(ferry(&s.store)
        .args(["checkout", "t:1", "-o"])
        .arg(dev_null));
    assert!(err.is_empty(), "checkout printed on stdout: {err}");
    assert!(is_char_device(dev_null), "checkout replaced /dev/null");
    let said = ok(ferry(&s.store).args(["pack", "t:1", "-o"]).arg(dev_null));
    assert!(said.contains("wrote /dev/null"), "{said}");
    assert!(is_char_device(dev_null), "pack replaced /dev/null");
    ok(ferry(&s.store).args(["inventory", "-o"]).arg(dev_null));
    assert!(is_char_device(dev_null), "inventory replaced /dev/null");
    assert_eq!(fingerprint(&s.store), before);
    // Nothing was left beside it either.
    let strays: Vec<String> = listing(Path::new("/dev"))
        .into_iter()
        .filter(|n| n.contains("null.") || n.ends_with(".partial"))
        .collect();
    assert!(strays.is_empty(), "left in /dev: {strays:?}");
}

/// Runs `args` with `-o FIFO` while a reader thread drains the FIFO;
/// returns what the reader got.
fn through_fifo(store: &Path, fifo: &Path, args: &[&str]) -> Vec<u8> {
    let path = fifo.to_path_buf();
    let reader = std::thread::spawn(move || std::fs::read(path).unwrap());
    let out = run(ferry(store).args(args).arg("-o").arg(fifo));
    if !out.status.success() {
        // Let the reader go before failing, so the test does not hang.
        drop(std::fs::OpenOptions::new().write(true).open(fifo));
        panic!(
            "ferry {args:?} -o FIFO failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    reader.join().unwrap()
}

#[test]
fn a_fifo_as_output_gets_the_exact_bytes_of_checkout_and_pack() {
    let s = stored_tar(2 << 20);
    let fifo = s.dir.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let before = fingerprint(&s.store);
    let got = through_fifo(&s.store, &fifo, &["checkout", "t:1"]);
    assert!(
        got == s.tar,
        "the FIFO got {} bytes, not the tar",
        got.len()
    );
    let packed = through_fifo(&s.store, &fifo, &["pack", "t:1"]);
    let file = s.dir.join("p.ferry");
    ok(ferry(&s.store).args(["pack", "t:1", "-o"]).arg(&file));
    assert!(
        packed == std::fs::read(&file).unwrap(),
        "the FIFO got another pack"
    );
    let ft = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(ft.is_fifo(), "the FIFO was replaced");
    assert_eq!(listing(&s.dir), ["fifo", "in.tar", "p.ferry", "store"]);
    assert_eq!(fingerprint(&s.store), before);
}

#[test]
fn dev_full_as_output_fails_in_one_line_saying_the_disk_is_full() {
    let s = stored_tar(2 << 20);
    let dev_full = Path::new("/dev/full");
    if !is_char_device(dev_full) {
        skip(
            "dev_full_as_output",
            "/dev/full is not a character device here",
        );
        return;
    }
    let before = fingerprint(&s.store);
    let runs: [&[&str]; 3] = [
        &["checkout", "t:1", "-o"],
        &["pack", "t:1", "-o"],
        &["inventory", "-o"],
    ];
    for args in runs {
        fails(ferry(&s.store).args(args).arg(dev_full), &["disk full"]);
        assert!(is_char_device(dev_full), "{args:?} replaced /dev/full");
    }
    assert_eq!(fingerprint(&s.store), before);
}

#[test]
fn a_directory_as_output_is_refused_before_anything_is_written() {
    let s = stored_tar(3 << 20);
    let dir = s.dir.join("outdir");
    std::fs::create_dir(&dir).unwrap();
    let before = fingerprint(&s.store);
    let files = listing(&s.dir);
    let slash = |p: &Path| format!("{}/", p.display());
    let cases = [
        (dir.display().to_string(), "is a directory"),
        (slash(&dir), "is a directory"),
        // A directory name that does not exist yet.
        (slash(&s.dir.join("newdir")), "names a directory"),
    ];
    for (target, what) in &cases {
        let runs: [&[&str]; 4] = [
            &["checkout", "t:1", "-o"],
            &["pack", "t:1", "-o"],
            &["pack", "t:1", "--volume-size", "1M", "-o"],
            &["inventory", "-o"],
        ];
        for args in runs {
            fails(
                ferry(&s.store).args(args).arg(target),
                &[target, what, "give the path of a file"],
            );
            assert_eq!(listing(&s.dir), files, "{args:?} -o {target} left files");
            assert!(listing(&dir).is_empty(), "{args:?} -o {target} wrote in it");
        }
    }
    // A later volume's name taken by a directory: refused before the
    // first volume is written.
    let out = s.dir.join("v.ferry");
    std::fs::create_dir(s.dir.join("v.ferry.002")).unwrap();
    let files = listing(&s.dir);
    fails(
        ferry(&s.store)
            .args(["pack", "t:1", "--volume-size", "1M", "-o"])
            .arg(&out),
        &["v.ferry.002 is a directory", "give the path of a file"],
    );
    assert_eq!(listing(&s.dir), files, "a refused volume set left files");
    assert_eq!(fingerprint(&s.store), before);
}

/// Whether `got` is the output `expected` was: the same bytes, except that
/// a pack or inventory carries the second it was made (in its header, and
/// so in its trailer's digest), which may differ between two runs.
fn same_output(got: &[u8], expected: &[u8]) -> bool {
    let differing = got.iter().zip(expected).filter(|(a, b)| a != b).count();
    let timestamped = expected.starts_with(b"FERRY");
    got.len() == expected.len() && (differing == 0 || (timestamped && differing <= 40))
}

#[test]
fn a_link_planted_at_the_old_partial_name_is_never_followed() {
    let s = stored_tar(3 << 20);
    let victim = write(&s.dir, "victim", b"not yours to overwrite\n");
    let before = fingerprint(&s.store);
    let expected_pack = {
        let p = s.dir.join("reference.ferry");
        ok(ferry(&s.store).args(["pack", "t:1", "-o"]).arg(&p));
        let b = std::fs::read(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        b
    };
    let expected_inventory = {
        let p = s.dir.join("reference.inv");
        ok(ferry(&s.store).args(["inventory", "-o"]).arg(&p));
        let b = std::fs::read(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        b
    };
    let plant = |name: &str, to: &Path| {
        let link = s.dir.join(format!("{name}.partial"));
        std::os::unix::fs::symlink(to, &link).unwrap();
        link
    };
    let dangling = s.dir.join("made-by-ferry");
    let runs: [(&str, &[&str], &Vec<u8>); 3] = [
        ("out.tar", &["checkout", "t:1", "-o"], &s.tar),
        ("out.ferry", &["pack", "t:1", "-o"], &expected_pack),
        ("out.inv", &["inventory", "-o"], &expected_inventory),
    ];
    for (name, args, expected) in runs {
        let out = s.dir.join(name);
        let link = plant(name, &victim);
        ok(ferry(&s.store).args(args).arg(&out));
        let meta = std::fs::symlink_metadata(&out).unwrap();
        assert!(meta.file_type().is_file(), "{name} is not a regular file");
        assert!(
            same_output(&std::fs::read(&out).unwrap(), expected),
            "{name} holds other bytes"
        );
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            victim,
            "the link was changed"
        );
        // A dangling link is not followed to create its target either.
        std::fs::remove_file(&link).unwrap();
        plant(name, &dangling);
        std::fs::remove_file(&out).unwrap();
        ok(ferry(&s.store).args(args).arg(&out));
        assert!(!dangling.exists(), "{args:?} created the link's target");
        assert!(
            same_output(&std::fs::read(&out).unwrap(), expected),
            "{name} holds other bytes"
        );
    }
    // Volumes: every volume's old partial name planted.
    let out = s.dir.join("v.ferry");
    for i in 1..=3 {
        plant(&format!("v.ferry.00{i}"), &victim);
    }
    ok(ferry(&s.store)
        .args(["pack", "t:1", "--volume-size", "1M", "-o"])
        .arg(&out));
    let volumes: Vec<String> = listing(&s.dir)
        .into_iter()
        .filter(|n| n.starts_with("v.ferry.") && !n.ends_with(".partial"))
        .collect();
    assert!(volumes.len() >= 3, "{volumes:?}");
    for v in &volumes {
        let meta = std::fs::symlink_metadata(s.dir.join(v)).unwrap();
        assert!(meta.file_type().is_file(), "{v} is not a regular file");
    }
    let fresh = s.dir.join("fresh");
    for v in &volumes {
        ok(ferry(&fresh).arg("unpack").arg(s.dir.join(v)));
    }
    let tar = s.dir.join("unpacked.tar");
    ok(ferry(&fresh).args(["checkout", "t:1", "-o"]).arg(&tar));
    assert!(std::fs::read(&tar).unwrap() == s.tar);
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"not yours to overwrite\n",
        "the link's target was overwritten"
    );
    // No temporary file was left behind.
    let temps: Vec<String> = listing(&s.dir)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(temps.is_empty(), "left behind: {temps:?}");
    assert_eq!(fingerprint(&s.store), before);
}

/// Flips one byte in the middle of the payload of a raw (uncompressed)
/// chunk of `store`, the one `at` (0 to 1) of the way through the raw
/// entries of its first data file. Returns the chunk's id (hex) and its
/// bytes as they were.
fn damage_raw_chunk(store: &Path, at: f64) -> (String, Vec<u8>) {
    let path = store.join("data").join("00000001.dat");
    let mut bytes = std::fs::read(&path).unwrap();
    let le = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap()) as usize;
    // 16-byte file header; entries of a 44-byte header (id, codec at 32,
    // length at 36, encoded length at 40), then the encoded bytes.
    let (mut off, mut raw) = (16usize, Vec::new());
    while off + 44 <= bytes.len() {
        let (codec, len, clen) = (
            bytes[off + 32],
            le(&bytes[off + 36..off + 40]),
            le(&bytes[off + 40..off + 44]),
        );
        if codec == 0 && len == clen && len >= 4096 {
            raw.push((off, len));
        }
        off += 44 + clen;
    }
    assert_eq!(off, bytes.len(), "data file layout not understood");
    assert!(raw.len() >= 4, "too few raw chunks: {}", raw.len());
    let (entry, len) = raw[((raw.len() - 1) as f64 * at) as usize];
    let id: String = bytes[entry..entry + 32]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let payload = bytes[entry + 44..entry + 44 + len].to_vec();
    bytes[entry + 44 + len / 2] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    (id, payload)
}

/// Where `chunk` starts in `stream` (it must be there, once).
fn offset_in(stream: &[u8], chunk: &[u8]) -> usize {
    let at = stream
        .windows(64)
        .position(|w| w == &chunk[..64])
        .expect("the chunk is in the stream");
    assert!(stream[at..at + chunk.len()] == *chunk);
    at
}

#[test]
fn checkout_to_stdout_stops_before_a_damaged_raw_chunk() {
    // Large enough for several batches of chunks: the damaged one is in a
    // later batch, so what comes before it may well be written.
    let s = stored_tar(40 << 20);
    let (id, chunk) = damage_raw_chunk(&s.store, 0.8);
    let at = offset_in(&s.tar, &chunk);
    let before = fingerprint(&s.store);
    let out = run(ferry(&s.store).args(["checkout", "t:1", "-o", "-"]));
    failed(&out, &[&id, "damaged"]);
    let got = &out.stdout;
    assert!(
        got.len() <= at,
        "{} bytes written, past the damaged chunk at {at}",
        got.len()
    );
    assert!(
        *got == s.tar[..got.len()],
        "stdout is not a prefix of the tar"
    );
    assert_eq!(fingerprint(&s.store), before);
}

#[test]
fn pack_to_stdout_never_carries_a_damaged_raw_chunk() {
    let s = stored_tar(8 << 20);
    let (id, chunk) = damage_raw_chunk(&s.store, 0.5);
    let mut damaged = chunk.clone();
    damaged[chunk.len() / 2] ^= 0x01;
    let around = &damaged[chunk.len() / 2 - 32..chunk.len() / 2 + 32];
    let before = fingerprint(&s.store);
    let out = run(ferry(&s.store).args(["pack", "t:1", "-o", "-"]));
    failed(&out, &[&id, "damaged"]);
    assert!(
        !out.stdout.windows(around.len()).any(|w| w == around),
        "the damaged bytes went out"
    );
    assert_eq!(fingerprint(&s.store), before);
}

#[test]
fn a_failed_checkout_to_a_file_leaves_no_temporary_file_behind() {
    let s = stored_tar(3 << 20);
    let (id, _) = damage_raw_chunk(&s.store, 0.5);
    let files = listing(&s.dir);
    let before = fingerprint(&s.store);
    let out = s.dir.join("out.tar");
    for args in [&["checkout", "t:1", "-o"][..], &["pack", "t:1", "-o"]] {
        fails(ferry(&s.store).args(args).arg(&out), &[&id, "damaged"]);
        assert_eq!(listing(&s.dir), files, "{args:?} left files");
    }
    assert_eq!(fingerprint(&s.store), before);
}
