//! Detection and re-creation of Go-written gzip layers. The input's first
//! byte picks an encoder and level, the next four a byte to damage (or
//! none), the rest is the text of a file in a layer tar. The layer is
//! compressed by ferry's model of that encoder, possibly damaged (a near
//! miss that may still inflate, or a stream that no longer does), and
//! split as a blob of an image archive: the bytes the split hands out, with
//! deflate streams re-created from their parts, must be exactly the
//! archive's. An undamaged layer must be kept as its encoder's parts.
#![no_main]

use ferry::archive::goenc::{self, Encoder, Model};
use ferry::archive::recreate::Reassemble;
use ferry::archive::split::split;
use libfuzzer_sys::fuzz_target;

const MODELS: [(Encoder, i8); 8] = [
    (Encoder::GoStdlib, 6),
    (Encoder::GoStdlib, 1),
    (Encoder::GoStdlib, 9),
    (Encoder::GoStdlib, -2),
    (Encoder::Go127, 6),
    (Encoder::Go127, 1),
    (Encoder::Pgzip, 5),
    (Encoder::Pgzip, 1),
];

fuzz_target!(|data: &[u8]| {
    let [pick, d0, d1, d2, d3, text @ ..] = data else {
        return;
    };
    let (encoder, level) = MODELS[*pick as usize % MODELS.len()];
    let model = Model { encoder, level };
    // A text file (repeated, so layers reach past a block or two).
    let mut content = Vec::new();
    while content.len() < (3 << 20).min(text.len() * 64) {
        content.extend_from_slice(text);
    }
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "app/data.txt", &content[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let Some(mut gz) = goenc::gzip(model, &layer) else {
        return;
    };
    let damage = u32::from_le_bytes([*d0, *d1, *d2, *d3]);
    let damaged = damage & 1 == 1;
    if damaged {
        let at = 10 + (damage >> 8) as usize % (gz.len() - 10);
        gz[at] ^= 1 << ((damage >> 1) & 7);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.tar");
    ferry::demo::write_docker29_archive(&path, "fuzz:1", &[layer], &|_| gz.clone()).unwrap();
    let archive = std::fs::read(&path).unwrap();
    let mut sink = Reassemble::default();
    split(&mut &archive[..], &mut sink, true).expect("reading from memory cannot fail");
    assert!(
        !sink.open && !sink.inflated,
        "a file or stream was left open"
    );
    assert!(sink.out == archive, "the split changed the bytes");
});
