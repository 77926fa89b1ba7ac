//! Feeds arbitrary bytes to the pack reader: it must return records or a
//! clean error, never panic, hang or allocate beyond its limits.
#![no_main]

use ferry::pack::PackReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut reader) = PackReader::new(data) {
        let _ = reader.header();
        while let Ok(Some(_record)) = reader.next_record() {}
    }
});
