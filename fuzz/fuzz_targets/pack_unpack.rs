//! Unpacks arbitrary bytes into a fresh store. Whatever the input, the store
//! stays consistent: `verify --full` finds nothing wrong. If unpack fails,
//! nothing is left behind (no snapshot, no chunk). If it succeeds, every
//! snapshot it reports added is in the store and checks out to exactly the
//! size and BLAKE3 the store records for it, and the store holds no other
//! snapshot. The heap the unpack takes at its peak follows the input's
//! length, never the lengths its records claim (the seeds `hostile-*`
//! claim up to 1 GiB in a few bytes).
#![no_main]

#[path = "common/peak.rs"]
mod peak;

use ferry::progress::Quiet;
use ferry::store::Store;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: peak::Peak = peak::Peak;

/// Heap an unpack may take whatever the input: a batch of chunk records
/// decoded (64 of at most 256 KiB), the data file's write buffer, reads.
const FIXED: usize = 64 << 20;

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
    let mut result = None;
    let peak = peak::peak_of(|| {
        result = Some(ferry::receive::unpack(&mut store, data, label, &Quiet));
    });
    let bound = FIXED + 8 * data.len();
    assert!(
        peak <= bound,
        "unpacking {} bytes took {peak} bytes of heap at once (at most {bound}): an allocation follows a claimed length",
        data.len()
    );
    let result = result.expect("the unpack ran");
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
