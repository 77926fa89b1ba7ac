//! Unpacks arbitrary bytes into a fresh store: whatever the input, unpack
//! either imports a consistent snapshot or fails leaving no snapshot behind.
#![no_main]

use ferry::progress::Quiet;
use ferry::store::Store;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile_dir();
    let mut store = Store::open_writer(&dir, std::time::Duration::ZERO).expect("store");
    let result = ferry::receive::unpack(&mut store, data, std::path::Path::new("fuzz.ferry"), &Quiet);
    let snaps = store.snapshots().expect("index readable after unpack");
    if result.is_err() {
        assert!(snaps.is_empty(), "a failed unpack left snapshots behind");
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
});

fn tempfile_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!("ferry-fuzz-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&d);
    d
}
