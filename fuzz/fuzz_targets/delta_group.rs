//! Feeds arbitrary bytes to the delta group record decoder (what `ferry
//! unpack` does with a type-5 record): it must refuse or return a group
//! within every limit, never panic or allocate beyond them; a group it
//! accepts re-encodes to the same bytes.
#![no_main]

use ferry::pack::format::{MAX_GROUP_BASES, MAX_GROUP_CHUNKS, MAX_GROUP_OUT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let max = ferry::chunker::PARAMS.max;
    if let Ok(g) = ferry::pack::decode_group(data, max) {
        assert!((1..=MAX_GROUP_CHUNKS).contains(&g.lens.len()));
        assert!(g.lens.iter().all(|&l| l >= 1 && l <= max));
        assert!(g.out_len() <= MAX_GROUP_OUT);
        assert!(g.bases.len() as u64 <= MAX_GROUP_BASES);
        assert!(g.payload.len() <= data.len());
    }
});
