//! Unpacks arbitrary bytes into a fresh store. Whatever the input, the store
//! stays consistent: `verify --full` finds nothing wrong. If unpack fails,
//! nothing is left behind (no snapshot, no chunk). If it succeeds, every
//! snapshot it reports added is in the store and checks out to exactly the
//! size and BLAKE3 the store records for it, and the store holds no other
//! snapshot.
#![no_main]

use ferry::progress::Quiet;
use ferry::store::Store;
use libfuzzer_sys::fuzz_target;

/// A writer that hashes and counts what it is given.
struct Hashing(blake3::Hasher, u64);

impl std::io::Write for Hashing {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        self.1 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile_dir();
    let mut store = Store::open_writer(&dir, std::time::Duration::ZERO).expect("store");
    let label = std::path::Path::new("fuzz.ferry");
    let result = ferry::receive::unpack(&mut store, data, label, &Quiet);
    let snaps = store.snapshots().expect("index readable after unpack");
    let check = ferry::verify::verify(&store, true, &Quiet).expect("verify runs");
    assert!(check.ok(), "unpack left a damaged store: {check:?}");
    match result {
        Err(_) => {
            assert!(snaps.is_empty(), "a failed unpack left snapshots behind");
            assert_eq!(check.chunks, 0, "a failed unpack left chunks behind");
        }
        Ok(report) => {
            let mut names: Vec<&str> = snaps.iter().map(|s| s.name.as_str()).collect();
            names.sort_unstable();
            let mut added: Vec<&str> = report.added.iter().map(|s| s.as_str()).collect();
            added.sort_unstable();
            assert_eq!(names, added, "snapshots in the store are not those added");
            for s in &snaps {
                let mut out = Hashing(blake3::Hasher::new(), 0);
                ferry::checkout::checkout(&store, &s.name, &mut out, &Quiet)
                    .expect("an imported snapshot checks out");
                assert_eq!(out.1, s.size, "{}: size", s.name);
                assert_eq!(
                    ferry::id::SnapshotDigest::from(out.0.finalize()),
                    s.blake3,
                    "{}: BLAKE3",
                    s.name
                );
            }
        }
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
});

fn tempfile_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "ferry-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}
