//! Feeds arbitrary bytes to the tar splitter: whatever it makes of them,
//! the bytes it hands out, in order (with gzip'd tars re-created from their
//! deflate parts and plain text), must be exactly the input.
#![no_main]

use ferry::archive::recreate::Reassemble;
use ferry::archive::split::split;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sink = Reassemble::default();
    split(&mut &data[..], &mut sink, true).expect("reading from memory cannot fail");
    assert!(!sink.open, "a file was left open");
    assert!(!sink.inflated, "a deflate stream was left open");
    assert!(sink.out == data, "the split changed the bytes");
});
