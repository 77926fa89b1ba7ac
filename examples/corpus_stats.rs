//! Reference figures for a version-bump pair of docker archives:
//! `cargo run --release --example corpus_stats -- v1.tar v2.tar [--json]`
//!
//! - layer-level: v2's layers whose digest v1 lacks, each gzip -6 (what
//!   skopeo, regctl or Zarf ship);
//! - file-level limit: every v2 file whose content appears nowhere in v1,
//!   compressed alone with zstd -3, plus all v2 tar headers and archive
//!   metadata as one zstd -3 stream (the tar-aware target is 1.15x this).
//!
//! Files are found with ferry's own tar splitter, so "file" means the same
//! thing here as in the store.

use std::collections::HashSet;
use std::io::{self, Write};

use ferry::archive::split::{Kind, Sink, split};
use ferry::counting::Counting;

struct Files<'a> {
    v1: Option<&'a HashSet<[u8; 32]>>,
    seen: HashSet<[u8; 32]>,
    current: Vec<u8>,
    kind: Kind,
    meta: zstd::stream::write::Encoder<'static, Counting<io::Sink>>,
    novel_files: u64,
    novel_bytes: u64,
    novel_compressed: u64,
    files: u64,
}

impl Sink for Files<'_> {
    fn meta(&mut self, b: &[u8]) {
        self.meta.write_all(b).unwrap();
    }
    fn begin(&mut self, kind: Kind) {
        self.kind = kind;
        self.current.clear();
    }
    fn data(&mut self, b: &[u8]) {
        self.current.extend_from_slice(b);
    }
    fn end(&mut self) {
        let id = *blake3::hash(&self.current).as_bytes();
        self.files += 1;
        match self.v1 {
            None => {
                self.seen.insert(id);
            }
            Some(v1) => {
                if !v1.contains(&id) && self.seen.insert(id) {
                    self.novel_files += 1;
                    self.novel_bytes += self.current.len() as u64;
                    self.novel_compressed +=
                        zstd::bulk::compress(&self.current, 3).unwrap().len() as u64;
                }
            }
        }
    }
}

fn files(path: &str, v1: Option<&HashSet<[u8; 32]>>) -> Files<'static> {
    let f = std::fs::File::open(path).expect("open archive");
    let mut r = std::io::BufReader::with_capacity(1 << 20, f);
    // The lifetime dance keeps Files simple: v1 is leaked for the run.
    let v1: Option<&'static HashSet<[u8; 32]>> = v1.map(|s| &*Box::leak(Box::new(s.clone())));
    let mut sink = Files {
        v1,
        seen: HashSet::new(),
        current: Vec::new(),
        kind: Kind::Raw,
        meta: zstd::stream::write::Encoder::new(Counting::new(io::sink()), 3).unwrap(),
        novel_files: 0,
        novel_bytes: 0,
        novel_compressed: 0,
        files: 0,
    };
    split(&mut r, &mut sink, true).expect("reading archive");
    sink
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: corpus_stats v1.tar v2.tar [--json]");
        std::process::exit(2);
    }
    let json = args.iter().any(|a| a == "--json");
    let v1 = files(&args[1], None);
    let v2 = files(&args[2], Some(&v1.seen));
    let headers = v2.meta.finish().unwrap().count();
    let limit = v2.novel_compressed + headers;
    let layers = |p: &str, measure: bool| {
        ferry::bench::layers(std::path::Path::new(p), measure).expect("reading archive")
    };
    let l1: HashSet<[u8; 32]> = layers(&args[1], false)
        .into_iter()
        .map(|l| l.digest)
        .collect();
    let l2 = layers(&args[2], true);
    let new_layers: Vec<_> = l2.iter().filter(|l| !l1.contains(&l.digest)).collect();
    let layer_level: u64 = new_layers.iter().map(|l| l.gzip_bytes).sum();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "layer_level": layer_level,
                "new_layers": new_layers.len(),
                "layers": l2.len(),
                "file_level_limit": limit,
                "novel_files": v2.novel_files,
                "files": v2.files,
                "novel_file_bytes": v2.novel_bytes,
                "novel_files_zstd3": v2.novel_compressed,
                "headers_zstd3": headers,
            })
        );
    } else {
        println!(
            "layer-level: {} of {} layers new, {layer_level} bytes gzip -6",
            new_layers.len(),
            l2.len()
        );
        println!(
            "file-level limit: {limit} bytes ({} of {} files novel, {} bytes -> {} zstd -3; headers {headers} zstd -3)",
            v2.novel_files, v2.files, v2.novel_bytes, v2.novel_compressed
        );
    }
}
