//! Feeds arbitrary bytes to the delta group record decoder (what `ferry
//! unpack` does with a type-5 record): it must refuse or return a group
//! within every limit, never panic or allocate beyond them. A group it
//! accepts, with a frame the reader accepts, is written again by the pack
//! writer: that record decodes to the same group and is never longer than
//! the input (the writer's varints are minimal and it merges adjacent base
//! runs).
//! When the frame has no bases, it is also decoded as `ferry unpack` would:
//! to exactly the group's length, or an error.
#![no_main]

use ferry::pack::format::{
    MAX_GROUP_BASES, MAX_GROUP_CHUNKS, MAX_GROUP_OUT, VERSION, frame_from_wire,
};
use ferry::pack::{GroupRecord, PackWriter, decode_group};
use libfuzzer_sys::fuzz_target;

/// The payload of the group record the pack writer makes of `g`.
fn rewrite(g: &GroupRecord) -> Vec<u8> {
    let header = ferry::pack::Header {
        algorithm: ferry::chunker::ALGORITHM.into(),
        params: ferry::chunker::PARAMS,
        created: 0,
        writer: "fuzz".into(),
        bases: vec![],
        snapshots: vec![],
        volume: None,
        signer: None,
        extra: vec![],
        encoders: vec![],
    };
    let mut w = PackWriter::new(Vec::new(), &header).expect("writing to memory");
    let start = records_start(&header);
    w.group(&g.lens, &g.digest, &g.bases, &g.payload)
        .expect("writing to memory");
    let (pack, _) = w.finish().expect("writing to memory");
    // Preamble and header, then the group record (type, length, payload),
    // then the trailer record.
    let end = pack.len() - 5 - ferry::pack::format::TRAILER_LEN as usize;
    assert_eq!(pack[start], ferry::pack::format::REC_GROUP);
    let len = u32::from_le_bytes(pack[start + 1..start + 5].try_into().unwrap()) as usize;
    assert_eq!(
        start + 5 + len,
        end,
        "one record between header and trailer"
    );
    pack[start + 5..end].to_vec()
}

/// Bytes a pack writer puts before its first record after the header.
fn records_start(header: &ferry::pack::Header) -> usize {
    let w = PackWriter::new(Vec::new(), header).expect("writing to memory");
    let (pack, _) = w.finish().expect("writing to memory");
    pack.len() - 5 - ferry::pack::format::TRAILER_LEN as usize
}

fuzz_target!(|data: &[u8]| {
    let max = ferry::chunker::PARAMS.max;
    let Ok(g) = decode_group(data, max) else {
        return;
    };
    assert!((1..=MAX_GROUP_CHUNKS).contains(&g.lens.len()));
    assert!(g.lens.iter().all(|&l| l >= 1 && l <= max));
    assert!(g.out_len() <= MAX_GROUP_OUT);
    assert!(g.bases.len() as u64 <= MAX_GROUP_BASES);
    assert!(g.payload.len() <= data.len());
    assert!(data.ends_with(&g.payload));
    // The frame as the pack reader hands it on.
    let Ok(held) = frame_from_wire(g.payload.clone(), g.out_len(), VERSION) else {
        return;
    };
    let held = GroupRecord {
        payload: held,
        ..g.clone()
    };

    let again = rewrite(&held);
    assert!(again.len() <= data.len(), "the writer made a longer record");
    let g2 = decode_group(&again, max).expect("the writer's record decodes");
    assert_eq!(g2, g, "the writer's record decodes to another group");

    if g.bases.is_empty() {
        let len = g.out_len() as usize;
        if let Ok(out) = ferry::similarity::decode(&[], &held.payload, len) {
            assert_eq!(out.len(), len);
        }
    }
});
