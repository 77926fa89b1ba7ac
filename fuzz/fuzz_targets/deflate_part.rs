//! Feeds arbitrary deflate part records and plain text to the re-creator
//! (what checkout does with a recipe's op 1 and op 2 pieces): it must
//! return an error, never panic or run away.
#![no_main]

use ferry::archive::gzip::Recreator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Pieces: a kind byte, a u16 length, then that many bytes (parts take an
    // out length from their first two bytes).
    let mut rec = Recreator::default();
    let mut emitted = 0usize;
    let mut emit = |b: &[u8]| -> std::io::Result<()> {
        emitted += b.len();
        Ok(())
    };
    let mut rest = data;
    while rest.len() >= 3 {
        let kind = rest[0];
        let len = (u16::from_le_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
        let piece = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let result = if kind & 1 == 0 {
            let out = piece.first().copied().unwrap_or(0) as u64 * 97;
            rec.part(piece, out, &mut emit)
        } else {
            rec.plain(piece, &mut emit)
        };
        if result.is_err() {
            return;
        }
    }
    let _ = rec.end();
});
