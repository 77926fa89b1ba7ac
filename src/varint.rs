//! LEB128 varints, the one variable-length integer of every ferry format
//! (recipes, delta records, deflate part records): seven bits a byte, low
//! bits first, the high bit set on every byte but the last; at most ten
//! bytes, and the tenth may only carry the 64th bit.

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The buffer ends inside the number.
    Truncated,
    /// More than ten bytes, or bits beyond the 64th.
    TooLong,
}

/// Most bytes a `u64` takes.
pub const MAX_LEN: usize = 10;

/// Appends `v`.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads the varint at `*at`, advancing `at` past it.
pub fn get(buf: &[u8], at: &mut usize) -> Result<u64, VarintError> {
    let mut v = 0u64;
    for i in 0..MAX_LEN {
        let b = *buf.get(*at + i).ok_or(VarintError::Truncated)?;
        if i == MAX_LEN - 1 && b > 1 {
            return Err(VarintError::TooLong);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *at += i + 1;
            return Ok(v);
        }
    }
    Err(VarintError::TooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_encodings() {
        for v in [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            let mut b = vec![9];
            put(&mut b, v);
            let mut at = 1;
            assert_eq!(get(&b, &mut at), Ok(v));
            assert_eq!(at, b.len());
        }
        let mut max = Vec::new();
        put(&mut max, u64::MAX);
        assert_eq!(max.len(), MAX_LEN);
        let mut at = 0;
        assert_eq!(get(&[0x80, 0x80], &mut at), Err(VarintError::Truncated));
        assert_eq!(at, 0, "a failed read does not advance");
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(get(&over, &mut at), Err(VarintError::TooLong));
        assert_eq!(get(&[0x80; 11], &mut at), Err(VarintError::TooLong));
        // The smallest encoding is not required: a padded zero is zero.
        assert_eq!(get(&[0x80, 0x00], &mut at), Ok(0));
    }
}
