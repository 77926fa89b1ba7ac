//! Feeds arbitrary bytes to the tar splitter: whatever it makes of them,
//! the bytes it hands out, in order (with gzip'd tars re-created from their
//! deflate parts and plain text), must be exactly the input.
#![no_main]

use ferry::archive::gzip::Recreator;
use ferry::archive::split::{Kind, Sink, split};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Rebuild {
    out: Vec<u8>,
    open: bool,
    inflated: bool,
    deflate: Recreator,
}

impl Rebuild {
    fn bytes(&mut self, b: &[u8]) {
        if self.inflated {
            let out = &mut self.out;
            self.deflate
                .plain(b, &mut |x| {
                    out.extend_from_slice(x);
                    Ok(())
                })
                .expect("plain text follows its part");
        } else {
            self.out.extend_from_slice(b);
        }
    }
}

impl Sink for Rebuild {
    fn meta(&mut self, b: &[u8]) {
        assert!(!self.open, "structure bytes inside a file");
        self.bytes(b);
    }
    fn begin(&mut self, _: Kind) {
        assert!(!self.open, "file begun twice");
        self.open = true;
    }
    fn data(&mut self, b: &[u8]) {
        assert!(self.open, "data outside a file");
        self.bytes(b);
    }
    fn end(&mut self) {
        self.open = false;
    }
    fn inflate(&mut self, on: bool) {
        assert!(!self.open, "deflate stream starts or ends inside a file");
        if !on {
            self.deflate.end().expect("every part used up");
        }
        self.inflated = on;
    }
    fn part(&mut self, record: Vec<u8>, out_len: u64) {
        assert!(self.inflated, "part outside a deflate stream");
        let out = &mut self.out;
        self.deflate
            .part(&record, out_len, &mut |x| {
                out.extend_from_slice(x);
                Ok(())
            })
            .expect("part re-creates");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut sink = Rebuild::default();
    split(&mut &data[..], &mut sink, true).expect("reading from memory cannot fail");
    assert!(!sink.open, "a file was left open");
    assert!(!sink.inflated, "a deflate stream was left open");
    assert!(sink.out == data, "the split changed the bytes");
});
