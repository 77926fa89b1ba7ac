//! Feeds arbitrary bytes to the inventory parser (`ferry pack --have FILE`
//! reads a file carried over from the other side): it must accept or refuse
//! them without panicking or allocating beyond what the bytes justify.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferry::inventory::parse(data);
    // Also with a valid checksum around the bytes, to get past it.
    let mut file = b"FERRYINV\x01\0\0\0".to_vec();
    file.extend_from_slice(&zstd::bulk::compress(data, 1).unwrap());
    let digest = blake3::hash(&file);
    file.extend_from_slice(digest.as_bytes());
    let _ = ferry::inventory::parse(&file);
});
