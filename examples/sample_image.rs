//! Writes a large image-like `docker save` archive for benchmarks:
//! `cargo run --release --example sample_image -- OUT.tar SIZE_MB [VERSION]`.
//! Layers of up to 256 MB hold source-like text and binary-like files with
//! a realistic spread of sizes; VERSION 2 edits a few files in every layer,
//! and VERSION 3 is a major upgrade: every other layer rebuilt with new files.

use ferry::demo::{Rng, file_content, layer_tar, sample_files, write_docker_archive};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: sample_image OUT.tar SIZE_MB [VERSION]");
        std::process::exit(2);
    }
    let out = std::path::PathBuf::from(&args[1]);
    let size_mb: u64 = args[2].parse().expect("SIZE_MB");
    let version: u64 = args
        .get(3)
        .map(|v| v.parse().expect("VERSION"))
        .unwrap_or(1);
    let mut layers = Vec::new();
    let mut total = 0u64;
    let mut seed = 1000;
    while total < size_mb << 20 {
        let want = ((size_mb << 20) - total).min(256 << 20);
        // sample_files averages about 150 KB a file with a 1 MiB maximum.
        let count = (want / (150 << 10)).max(1) as usize;
        let rebuilt = version >= 3 && layers.len() % 2 == 1;
        let content_seed = if rebuilt { seed + 7919 * version } else { seed };
        let mut files = sample_files(content_seed, &format!("layer{seed}"), count, 1 << 20);
        if version > 1 && !rebuilt {
            let mut rng = Rng::new(seed * 31 + version);
            for _ in 0..5 {
                let i = rng.below(files.len() as u64) as usize;
                let f = &mut files[i];
                let at = rng.below(f.data.len() as u64) as usize;
                let patch = file_content(&mut rng, 3000.min(f.data.len() - at), true);
                f.data[at..at + patch.len()].copy_from_slice(&patch);
            }
        }
        let layer = layer_tar(&files, 1_700_000_000);
        total += layer.len() as u64;
        layers.push(layer);
        seed += 1;
    }
    write_docker_archive(&out, &format!("bench/app:{version}"), &layers).expect("writing archive");
    eprintln!(
        "wrote {} ({} MB, {} layers)",
        out.display(),
        total >> 20,
        layers.len()
    );
}
