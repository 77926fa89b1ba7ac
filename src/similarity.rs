//! Similarity deltas: a chunk that the receiver does not have, but that
//! resembles one it does, ships as a zstd frame using that chunk as its
//! reference prefix.
//!
//! Resemblance is found with super-features: a Gear rolling hash is sampled
//! at content-defined positions, twelve linear transforms of the sampled
//! hashes keep their maxima (twelve min-hash-like features), and groups of
//! four features are hashed into three super-features. Chunks that share a
//! super-feature very likely share most of their content; the index keeps
//! every stored content chunk's super-features (`features` table).

use std::io::Write;

/// Super-features per chunk.
pub const SUPER_FEATURES: usize = 6;
const FEATURES_PER_SUPER: usize = 2;
const FEATURES: usize = SUPER_FEATURES * FEATURES_PER_SUPER;
/// Chunks smaller than this get no features (too small to be worth a delta).
pub const MIN_LEN: usize = 256;
/// A sample is taken where the rolling hash has these bits clear (1 in 16).
/// Part of what stores hold (the `features` table): changing it would make
/// new chunks unlike every chunk stored before.
const SAMPLE_MASK: u64 = 0xF << 59;
/// zstd level of delta chunks, and of whole chunks in delta packs.
const LEVEL: i32 = 9;
/// zstd level of delta groups (with the double-fast strategy).
const GROUP_LEVEL: i32 = 6;
/// Largest window a delta frame may need (base and output together).
const WINDOW_LOG_MAX: u32 = 27;

/// SplitMix64, for the fixed tables.
const fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const fn table<const N: usize>(seed: u64) -> [u64; N] {
    let mut t = [0u64; N];
    let mut i = 0;
    while i < N {
        t[i] = mix(seed + i as u64);
        i += 1;
    }
    t
}

static GEAR: [u64; 256] = table::<256>(0x6665_7272_7900);
static MUL: [u64; FEATURES] = table::<FEATURES>(0x6665_7272_7901);
static ADD: [u64; FEATURES] = table::<FEATURES>(0x6665_7272_7902);

/// The chunk's super-features, or `None` when it is too small (or too
/// uniform to sample).
pub fn super_features(data: &[u8]) -> Option<[i64; SUPER_FEATURES]> {
    if data.len() < MIN_LEN {
        return None;
    }
    // Two passes per block: the rolling hash collects its samples without
    // a branch, then the transforms run over the samples (a branch per
    // byte, taken one time in sixteen at random, costs more than both).
    const BLOCK: usize = 4096;
    let mut max = [0u64; FEATURES];
    let mut h = 0u64;
    let mut samples = 0u32;
    // Indexed `n & (BLOCK - 1)`: a block has sampled at most BLOCK - 1
    // values before its last step, so the mask never wraps; it spares a
    // bounds check per byte.
    let mut found = [0u64; BLOCK];
    for block in data.chunks(BLOCK) {
        let mut n = 0usize;
        // Two bytes a step: h'' = 4h + 2g0 + g1 puts one shift-add on the
        // hash's chain per two bytes, the middle value off it.
        let mut pairs = block.chunks_exact(2);
        for p in &mut pairs {
            let (g0, g1) = (GEAR[p[0] as usize], GEAR[p[1] as usize]);
            let mid = (h << 1).wrapping_add(g0);
            h = (h << 2).wrapping_add((g0 << 1).wrapping_add(g1));
            found[n & (BLOCK - 1)] = mid;
            n += (mid & SAMPLE_MASK == 0) as usize;
            found[n & (BLOCK - 1)] = h;
            n += (h & SAMPLE_MASK == 0) as usize;
        }
        for &b in pairs.remainder() {
            h = (h << 1).wrapping_add(GEAR[b as usize]);
            found[n & (BLOCK - 1)] = h;
            n += (h & SAMPLE_MASK == 0) as usize;
        }
        samples += n as u32;
        // A run of one byte value settles the hash on one value, which for
        // some values (zero among them) is sampled at every byte: a sample
        // equal to the one before cannot raise a maximum, so it is skipped.
        // No sample has its top bits set, so `u64::MAX` is never one.
        let mut before = u64::MAX;
        for &h in &found[..n] {
            if h == before {
                continue;
            }
            before = h;
            for i in 0..FEATURES {
                max[i] = max[i].max(MUL[i].wrapping_mul(h).wrapping_add(ADD[i]));
            }
        }
    }
    (samples >= 4).then(|| super_of(&max))
}

/// Each group of features' maxima hashed into one super-feature.
fn super_of(max: &[u64; FEATURES]) -> [i64; SUPER_FEATURES] {
    let mut out = [0i64; SUPER_FEATURES];
    for (j, sf) in out.iter_mut().enumerate() {
        let mut hasher = blake3::Hasher::new();
        for f in &max[j * FEATURES_PER_SUPER..(j + 1) * FEATURES_PER_SUPER] {
            hasher.update(&f.to_le_bytes());
        }
        hasher.update(&[j as u8]);
        let d = hasher.finalize();
        *sf = i64::from_le_bytes(d.as_bytes()[..8].try_into().expect("8 bytes"));
    }
    out
}

/// `data` as a zstd frame that uses `base` as its reference prefix (which
/// may be empty): for one chunk against a few resembling ones (zstd level
/// 9). The window covers both, so any part of the base can be matched.
pub fn encode(base: &[u8], data: &[u8]) -> Vec<u8> {
    frame(base, data, LEVEL, false)
}

/// Like [`encode`], for a file's new bytes against its old version (delta
/// groups, up to megabytes of base): level 6 with the double-fast strategy,
/// which indexes a large base much faster than the lazy strategies, for
/// nearly the same size.
pub fn encode_group(base: &[u8], data: &[u8]) -> Vec<u8> {
    frame(base, data, GROUP_LEVEL, true)
}

fn frame(base: &[u8], data: &[u8], level: i32, dfast: bool) -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), level, base)
        .expect("zstd context");
    let span = (base.len() + data.len()).max(1 << 10) as u64;
    let window = (64 - (span - 1).leading_zeros()).clamp(10, WINDOW_LOG_MAX);
    e.window_log(window).expect("zstd parameter");
    if dfast {
        e.set_parameter(zstd::stream::raw::CParameter::Strategy(
            zstd::zstd_safe::Strategy::ZSTD_dfast,
        ))
        .expect("zstd parameter");
        // Level 6's tables are too small for a base of megabytes (a
        // bundled 9 MB JavaScript file loses a third of its matches):
        // level 9's sizes from 4 MiB on.
        if span >= 4 << 20 {
            e.set_parameter(zstd::stream::raw::CParameter::HashLog(21))
                .expect("zstd parameter");
            e.set_parameter(zstd::stream::raw::CParameter::ChainLog(20))
                .expect("zstd parameter");
        }
    }
    e.include_checksum(false).expect("zstd parameter");
    e.include_contentsize(true).expect("zstd parameter");
    e.set_pledged_src_size(Some(data.len() as u64))
        .expect("zstd parameter");
    e.write_all(data).expect("writing to memory");
    e.finish().expect("writing to memory")
}

/// `data` as a plain zstd frame at the delta level (for chunks of a delta
/// pack that go whole).
pub fn squeeze(data: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(data, LEVEL).expect("zstd in memory")
}

/// Rebuilds exactly `len` bytes from a frame made by [`encode`] against
/// the same `base`; anything else is an error.
pub fn decode(base: &[u8], payload: &[u8], len: usize) -> Result<Vec<u8>, String> {
    crate::codec::decode_exact(payload, base, WINDOW_LOG_MAX, len, "delta frame")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain one-pass definition the fast version must match.
    fn reference(data: &[u8]) -> Option<[i64; SUPER_FEATURES]> {
        if data.len() < MIN_LEN {
            return None;
        }
        let mut max = [0u64; FEATURES];
        let (mut h, mut samples) = (0u64, 0u32);
        for &b in data {
            h = (h << 1).wrapping_add(GEAR[b as usize]);
            if h & SAMPLE_MASK == 0 {
                samples += 1;
                for i in 0..FEATURES {
                    let v = MUL[i].wrapping_mul(h).wrapping_add(ADD[i]);
                    if v > max[i] {
                        max[i] = v;
                    }
                }
            }
        }
        (samples >= 4).then(|| super_of(&max))
    }

    /// Fixed inputs, independent of the crate's other generators: xorshift64
    /// bytes, or lines of words drawn by it.
    fn golden_input(seed: u64, len: usize, text: bool) -> Vec<u8> {
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            if text {
                let w = ["store ", "chunk ", "layer ", "pack\n"][(next() % 4) as usize];
                out.extend_from_slice(w.as_bytes());
            } else {
                out.extend_from_slice(&next().to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    const GOLDEN_CASES: [(u64, usize, bool); 8] = [
        (1, 255, false),
        (2, 256, false),
        (3, 4097, false),
        (4, 70_000, false),
        (5, 262_144, false),
        (6, 300, true),
        (7, 10_000, true),
        (8, 100_000, true),
    ];

    #[test]
    fn super_features_are_what_stores_recorded_before() {
        // Stores hold these values (`features` table): a change to the
        // sampling, the tables or the hashing would make every new chunk
        // unlike every stored one. The values were recorded once.
        let got: Vec<_> = GOLDEN_CASES
            .iter()
            .map(|&(seed, len, text)| super_features(&golden_input(seed, len, text)))
            .collect();
        assert_eq!(got, GOLDEN);
        // A run of one byte value: the rolling hash settles on one value
        // after 64 bytes.
        let run = Some([
            -1843556802146636516,
            8516895641472266862,
            -2496527607934130352,
            3659260046100154010,
            6581721253777224520,
            -4077237407318115684,
        ]);
        assert_eq!(super_features(&[7u8; 5000]), run, "a run of 7s");
    }

    #[test]
    fn super_features_match_the_one_pass_definition() {
        let mut rng = crate::demo::Rng::new(9);
        for len in [0, 255, 256, 300, 4095, 4096, 4097, 10_000, 70_000, 262_144] {
            let mut d = vec![0u8; len];
            rng.fill(&mut d);
            assert_eq!(super_features(&d), reference(&d), "{len} random bytes");
            let text = crate::demo::file_content(&mut rng, len, true);
            assert_eq!(
                super_features(&text),
                reference(&text),
                "{len} bytes of text"
            );
        }
        assert_eq!(super_features(&[7u8; 5000]), reference(&[7u8; 5000]));
        // Runs of zeros (sampled at every byte once the hash settles)
        // between random stretches, across block boundaries.
        let mut d = vec![0u8; 20_000];
        for at in [0, 3_000, 9_000, 16_000] {
            rng.fill(&mut d[at..at + 700]);
        }
        assert_eq!(super_features(&d), reference(&d), "runs of zeros");
        assert!(super_features(&d).is_some());
    }

    /// Super-features of [`GOLDEN_CASES`], recorded once.
    const GOLDEN: [Option<[i64; SUPER_FEATURES]>; 8] = [
        None,
        Some([
            1226567812440257361,
            4264319815951280449,
            4364636907740249800,
            2042736834880775190,
            6304294523923563689,
            -1524872268124744268,
        ]),
        Some([
            -488560115188572510,
            -4619012397150861468,
            7965153446215199855,
            4874143431186629176,
            6021094849933041232,
            -4519169003406532600,
        ]),
        Some([
            -738863955953117768,
            -856090368535552170,
            -6398895469122658207,
            4019612174954714207,
            4763150920793448012,
            9033420233503745211,
        ]),
        Some([
            -5992682958904792185,
            6138078781876120718,
            -5480663635608310599,
            15287388393731797,
            -6417360246199148419,
            3314067506061322815,
        ]),
        Some([
            1191477176148686530,
            7910550085183678010,
            -6162185385433811313,
            -6824005622192161057,
            -5677196489724885433,
            5960531767597437860,
        ]),
        Some([
            -4742394207994781423,
            -7137862003542958756,
            6059071678327532838,
            1174224825265850892,
            6651641398367144772,
            -6194888042213075821,
        ]),
        Some([
            5040463357868118103,
            -6575762799282296512,
            1550719719237263474,
            -4897121841983813331,
            6087475743941598811,
            -6867829647293833765,
        ]),
    ];

    #[test]
    fn similar_chunks_share_super_features_and_deltas_are_small() {
        let mut a = vec![0u8; 60_000];
        crate::demo::Rng::new(1).fill(&mut a);
        let mut b = a.clone();
        b[1000..1032].copy_from_slice(&[7u8; 32]); // a .pyc-sized edit
        let mut c = vec![0u8; 60_000];
        crate::demo::Rng::new(2).fill(&mut c);
        let (fa, fb, fc) = (
            super_features(&a).unwrap(),
            super_features(&b).unwrap(),
            super_features(&c).unwrap(),
        );
        assert!(fa.iter().zip(&fb).filter(|(x, y)| x == y).count() >= 2);
        assert!(fa.iter().zip(&fc).all(|(x, y)| x != y));
        let d = encode(&a, &b);
        assert!(d.len() < 200, "delta of {} bytes", d.len());
        assert_eq!(decode(&a, &d, b.len()).unwrap(), b);
        assert!(decode(&c, &d, b.len()).is_err() || decode(&c, &d, b.len()).unwrap() != b);
        assert!(decode(&a, &d, b.len() - 1).is_err());
        assert!(decode(&a, &d[..d.len() - 1], b.len()).is_err());
        assert!(super_features(&[1u8; 100]).is_none());
    }
}
