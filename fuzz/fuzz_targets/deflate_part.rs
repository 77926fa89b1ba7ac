//! Feeds arbitrary deflate part records and plain text to the re-creator
//! (what checkout does with a recipe's op 1 and op 2 pieces): it must
//! re-create or return an error, never panic or run away.
#![no_main]

use ferry::archive::recreate::Recreator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Pieces: a kind byte and a u16 length; a part (even kind) then gives
    // its output length as a u32; then that many bytes.
    let mut rec = Recreator::default();
    let mut emitted = 0usize;
    let mut emit = |b: &[u8]| -> std::io::Result<()> {
        emitted += b.len();
        Ok(())
    };
    let mut rest = data;
    while rest.len() >= 3 {
        let kind = rest[0];
        let len = u16::from_le_bytes([rest[1], rest[2]]) as usize;
        rest = &rest[3..];
        let out = if kind & 1 == 0 {
            let Some((out, more)) = rest.split_first_chunk::<4>() else {
                return;
            };
            rest = more;
            Some(u32::from_le_bytes(*out) as u64)
        } else {
            None
        };
        let (piece, more) = rest.split_at(len.min(rest.len()));
        rest = more;
        let result = match out {
            Some(out) => rec.part(piece, out, &mut emit),
            None => rec.plain(piece, &mut emit),
        };
        if result.is_err() {
            return;
        }
    }
    let _ = rec.end(&mut emit);
});
