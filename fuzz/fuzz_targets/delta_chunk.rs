//! Feeds arbitrary delta frames and bases to the delta decoder (what
//! `ferry unpack` does with a delta chunk record): it must return exactly
//! the claimed length or an error, never panic or allocate beyond it.
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
    // Round trip: any bytes against any base come back.
    let frame = ferry::similarity::encode(base, payload);
    assert_eq!(
        ferry::similarity::decode(base, &frame, payload.len()).unwrap(),
        payload
    );
});
