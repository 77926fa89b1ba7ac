//! Feeds arbitrary bytes to the pack reader: it must return records or a
//! clean error, never panic, hang or allocate beyond its limits. What it
//! allocates at its peak must follow the input's length, never the
//! lengths its records claim (up to 1 GiB for a snapshot record): the
//! seeds `hostile-*` claim such lengths in a few bytes.
#![no_main]

#[path = "common/peak.rs"]
mod peak;

use ferry::pack::PackReader;
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: peak::Peak = peak::Peak;

/// Heap the reader may take whatever the input: buffers of at most 1 MiB
/// started before a record's bytes arrive, a recipe's first pieces.
const FIXED: usize = 8 << 20;

fuzz_target!(|data: &[u8]| {
    let peak = peak::peak_of(|| {
        if let Ok(mut reader) = PackReader::new(data) {
            let _ = reader.header();
            while let Ok(Some(_record)) = reader.next_record() {}
        }
    });
    // Records are held one at a time; a buffer grows by doubling, and a
    // record may be copied once as it is parsed.
    let bound = FIXED + 4 * data.len();
    assert!(
        peak <= bound,
        "reading {} bytes took {peak} bytes of heap at once (at most {bound}): an allocation follows a claimed length",
        data.len()
    );
});
