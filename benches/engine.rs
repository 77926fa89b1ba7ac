//! Criterion micro-benchmarks of the core engine on 64 MiB of image-like
//! data (source-like text and binary-like files): chunking, super-features,
//! adding new and known data, checkout, pack and unpack. Throughput is reported in bytes.
//! Run: `cargo bench --bench engine`.

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferry::add::{AddOptions, Source, add};
use ferry::progress::Quiet;
use ferry::receive::unpack;
use ferry::send::{PackOptions, write_pack};
use ferry::store::Store;

const SIZE: usize = 64 << 20;

fn sample() -> Vec<u8> {
    let files = ferry::demo::sample_files(42, "bench", 600, 1 << 20);
    let mut tar = ferry::demo::layer_tar(&files, 1_700_000_000);
    tar.resize(SIZE, 0);
    tar
}

fn engine(c: &mut Criterion) {
    let data = sample();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.tar");
    std::fs::write(&input, &data).unwrap();
    let opts = AddOptions {
        name: Some("bench".into()),
        ..AddOptions::default()
    };
    let wait = Duration::ZERO;

    let mut g = c.benchmark_group("engine");
    g.sample_size(10).throughput(Throughput::Bytes(SIZE as u64));

    g.bench_function("split+chunk+hash", |b| {
        b.iter(|| {
            let mut n = 0usize;
            ferry::chunker::for_each_batch(&data[..], ferry::chunker::PARAMS, true, |units| {
                n += units.len();
                Ok(())
            })
            .unwrap();
            n
        })
    });

    g.bench_function("super-features", |b| {
        b.iter(|| {
            data.chunks(64 << 10)
                .filter_map(ferry::similarity::super_features)
                .count()
        })
    });

    g.bench_function("add new data", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |d| {
                let mut s = Store::open_writer(d.path(), wait).unwrap();
                add(&mut s, Source::Path(input.clone()), &opts, &Quiet).unwrap();
                d
            },
            BatchSize::PerIteration,
        )
    });

    let store_dir = dir.path().join("store");
    let mut store = Store::open_writer(&store_dir, wait).unwrap();
    add(&mut store, Source::Path(input.clone()), &opts, &Quiet).unwrap();
    g.bench_function("add known data", |b| {
        b.iter(|| {
            assert!(
                add(&mut store, Source::Path(input.clone()), &opts, &Quiet)
                    .unwrap()
                    .unchanged
            )
        })
    });
    drop(store);

    let store = Store::open(&store_dir).unwrap();
    g.bench_function("checkout", |b| {
        b.iter(|| ferry::checkout::checkout(&store, "bench", &mut std::io::sink(), &Quiet).unwrap())
    });

    let popts = PackOptions {
        snapshots: vec!["bench".into()],
        bases: vec![],
        ..Default::default()
    };
    g.bench_function("pack", |b| {
        b.iter(|| {
            write_pack(&store, &popts, std::io::sink(), &Quiet)
                .unwrap()
                .1
        })
    });

    let (pack, _) = write_pack(&store, &popts, Vec::new(), &Quiet).unwrap();
    g.bench_function("unpack", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |d| {
                let mut s = Store::open_writer(d.path(), wait).unwrap();
                unpack(
                    &mut s,
                    &pack[..],
                    std::path::Path::new("bench.ferry"),
                    &Quiet,
                )
                .unwrap();
                d
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
