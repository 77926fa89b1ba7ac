//! Feeds arbitrary bytes to the tar splitter: whatever it makes of them,
//! the bytes it hands out, in order, must be exactly the input.
#![no_main]

use ferry::archive::split::{Kind, Sink, split};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Rebuild {
    out: Vec<u8>,
    open: bool,
}

impl Sink for Rebuild {
    fn meta(&mut self, b: &[u8]) {
        assert!(!self.open, "structure bytes inside a file");
        self.out.extend_from_slice(b);
    }
    fn begin(&mut self, _: Kind) {
        assert!(!self.open, "file begun twice");
        self.open = true;
    }
    fn data(&mut self, b: &[u8]) {
        assert!(self.open, "data outside a file");
        self.out.extend_from_slice(b);
    }
    fn end(&mut self) {
        self.open = false;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut sink = Rebuild::default();
    split(&mut &data[..], &mut sink, true).expect("reading from memory cannot fail");
    assert!(!sink.open, "a file was left open");
    assert!(sink.out == data, "the split changed the bytes");
});
