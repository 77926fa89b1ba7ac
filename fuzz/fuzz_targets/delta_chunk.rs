//! Feeds arbitrary delta frames and bases to the delta decoders (what
//! `ferry unpack` does with a delta chunk record: a zstd frame, or a
//! header-delta frame when its first byte says so): each must return
//! exactly the claimed length or an error, never panic or allocate beyond
//! it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let len = u16::from_le_bytes([data[0], data[1]]) as usize;
    let split = (data[2] as usize * 256 + data[3] as usize).min(data.len() - 4);
    let (base, payload) = data[4..].split_at(split);
    if let Ok(out) = ferry::similarity::decode(base, payload, len) {
        assert_eq!(out.len(), len);
    }
    if let Ok(out) = ferry::tardelta::decode(base, payload, len) {
        assert_eq!(out.len(), len);
    }
    // Tar headers in the input: their header-delta frame comes back too.
    if let Some(frame) = ferry::tardelta::encode(base, payload) {
        assert_eq!(
            ferry::tardelta::decode(base, &frame, payload.len()).unwrap(),
            payload
        );
    }
    // Round trip: any bytes against any base come back.
    let frame = ferry::similarity::encode(base, payload);
    assert_eq!(
        ferry::similarity::decode(base, &frame, payload.len()).unwrap(),
        payload
    );
});
