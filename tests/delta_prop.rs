//! Property: after a few random edits between two versions, the delta pack
//! stays within a small multiple of the edited bytes plus a per-edit
//! constant (content-defined chunking re-synchronises right after an edit).

use ferry::add::{AddOptions, Source, add};
use ferry::progress::Quiet;
use ferry::send::{PackOptions, write_pack};
use ferry::store::Store;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Edit {
    Insert(f64, usize),
    Delete(f64, usize),
    Overwrite(f64, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0.0..1.0f64;
    let len = 1usize..4096;
    prop_oneof![
        (at.clone(), len.clone()).prop_map(|(a, n)| Edit::Insert(a, n)),
        (at.clone(), len.clone()).prop_map(|(a, n)| Edit::Delete(a, n)),
        (at, len).prop_map(|(a, n)| Edit::Overwrite(a, n)),
    ]
}

const SIZE: usize = 8 << 20;
const MAX_CHUNK: u64 = ferry::chunker::PARAMS.max as u64;

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn delta_pack_is_proportional_to_the_edits(seed in any::<u64>(), edits in prop::collection::vec(edit(), 1..5)) {
        let t = tempfile::tempdir().unwrap();
        let mut v1 = vec![0u8; SIZE];
        ferry::demo::Rng::new(seed).fill(&mut v1);
        let mut v2 = v1.clone();
        let mut rng = ferry::demo::Rng::new(seed ^ 0xfeed);
        let mut edited = 0u64;
        for e in &edits {
            match *e {
                Edit::Insert(at, n) => {
                    let at = (at * v2.len() as f64) as usize;
                    let mut bytes = vec![0u8; n];
                    rng.fill(&mut bytes);
                    v2.splice(at..at, bytes);
                    edited += n as u64;
                }
                Edit::Delete(at, n) => {
                    let at = (at * v2.len() as f64) as usize;
                    let end = (at + n).min(v2.len());
                    v2.drain(at..end);
                    edited += (end - at) as u64;
                }
                Edit::Overwrite(at, n) => {
                    let at = (at * v2.len() as f64) as usize;
                    let end = (at + n).min(v2.len());
                    rng.fill(&mut v2[at..end]);
                    edited += (end - at) as u64;
                }
            }
        }
        std::fs::write(t.path().join("v1"), &v1).unwrap();
        std::fs::write(t.path().join("v2"), &v2).unwrap();
        let mut store = Store::open_writer(&t.path().join("s"), std::time::Duration::ZERO).unwrap();
        add(&mut store, Source::Path(t.path().join("v1")), &AddOptions::default(), &Quiet).unwrap();
        add(&mut store, Source::Path(t.path().join("v2")), &AddOptions::default(), &Quiet).unwrap();
        let opts = PackOptions { snapshots: vec!["v2".into()], bases: vec!["v1".into()], ..Default::default() };
        let (_, report) = write_pack(&store, &opts, std::io::sink(), &Quiet).unwrap();
        // Each edit may disturb the chunk it lands in and the next one.
        let bound = 4 * edited + edits.len() as u64 * 2 * MAX_CHUNK + 4096;
        prop_assert!(
            report.totals.pack_bytes <= bound,
            "pack {} bytes for {} edited bytes in {} edits (bound {})",
            report.totals.pack_bytes, edited, edits.len(), bound
        );
        // And it is far below resending the file.
        prop_assert!(report.totals.pack_bytes < (SIZE as u64) / 4);
    }
}
