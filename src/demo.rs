//! Sample data and the end-to-end demo: builds two versions of a realistic
//! `docker save` archive (an OS layer, a dependency layer rebuilt with new
//! mtimes and a few bumped files, an app layer), then runs the whole flow
//! across two stores and reports what each step shipped.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::add::{AddOptions, Source, add};
use crate::checkout::checkout_to_path;
use crate::counting::Counting;
use crate::error::{IoContext, Result};
use crate::progress::{Prefixed, Progress};
use crate::receive::unpack;
use crate::send::{PackOptions, write_pack};
use crate::store::Store;

/// A small deterministic generator (SplitMix64), so samples are the same everywhere.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "import", "def", "return", "self", "class", "from", "value", "config", "request", "response",
    "None", "True", "False", "data", "items", "for", "in", "if", "else", "raise", "error",
    "result", "async", "await", "with", "logger", "path", "name", "version", "client", "server",
    "buffer", "offset", "length", "=", "(", ")", ":",
];

/// File content of a given kind: text (source-like, compresses ~4x) or
/// binary (random with zero runs, compresses ~1.5x).
pub fn file_content(rng: &mut Rng, size: usize, text: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    if text {
        while out.len() < size {
            let indent = rng.below(3) as usize * 4;
            out.extend(std::iter::repeat_n(b' ', indent));
            for _ in 0..3 + rng.below(8) {
                out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
                out.push(b' ');
            }
            out.push(b'\n');
        }
    } else {
        while out.len() < size {
            let run = 64 + rng.below(4096) as usize;
            let start = out.len();
            out.resize(start + run, 0);
            if rng.below(3) != 0 {
                rng.fill(&mut out[start..]);
            }
        }
    }
    out.truncate(size);
    out
}

/// One file of a sample layer.
pub struct SampleFile {
    /// Path inside the layer.
    pub path: String,
    /// Content.
    pub data: Vec<u8>,
}

/// Files of a layer: `count` files seeded by `seed`, sizes spread from a
/// few hundred bytes to `max` (most small, like real file systems).
pub fn sample_files(seed: u64, dir: &str, count: usize, max: usize) -> Vec<SampleFile> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| {
            let text = rng.below(2) == 0;
            // Log-uniform sizes between 256 B and `max`.
            let bits = 8.0 + (rng.below(1000) as f64 / 1000.0) * ((max as f64).log2() - 8.0);
            let size = 2f64.powf(bits) as usize;
            let ext = if text { "py" } else { "so" };
            SampleFile {
                path: format!("{dir}/pkg{:02}/file{i:04}.{ext}", i % 17),
                data: file_content(&mut rng, size, text),
            }
        })
        .collect()
}

/// Builds a layer tar from files, every entry stamped with `mtime`.
pub fn layer_tar(files: &[SampleFile], mtime: u64) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(f.data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, &f.path, f.data.as_slice())
            .expect("in-memory tar");
    }
    b.into_inner().expect("in-memory tar")
}

fn sha256_hex(data: &[u8]) -> String {
    crate::hex(&Sha256::digest(data))
}

/// Writes a `docker save`-style (legacy layout) archive of `tag` holding
/// the given layer tars, in the order docker writes them.
pub fn write_docker_archive(path: &Path, tag: &str, layers: &[Vec<u8>]) -> Result<()> {
    write_archive(path, tag, layers, false, None)
}

/// Writes an archive in the OCI layout `docker save` uses since Docker 25:
/// `oci-layout`, `index.json`, content-addressed `blobs/sha256/...`, plus
/// the legacy `manifest.json` pointing into the blobs.
pub fn write_oci_docker_archive(path: &Path, tag: &str, layers: &[Vec<u8>]) -> Result<()> {
    write_archive(path, tag, layers, true, None)
}

/// Makes a layer blob from a layer tar.
pub type Compressor<'a> = &'a dyn Fn(&[u8]) -> Vec<u8>;

/// Writes an archive as `docker save` writes it from containerd's image
/// store (Docker 29): the OCI layout of [`write_oci_docker_archive`], with
/// every layer blob the gzip stream `compress` makes of the layer tar.
pub fn write_docker29_archive(
    path: &Path,
    tag: &str,
    layers: &[Vec<u8>],
    compress: Compressor<'_>,
) -> Result<()> {
    write_archive(path, tag, layers, true, Some(compress))
}

fn write_archive(
    path: &Path,
    tag: &str,
    layers: &[Vec<u8>],
    oci: bool,
    gzip: Option<Compressor<'_>>,
) -> Result<()> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/app/run"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    })
    .to_string();
    let config_hex = sha256_hex(config.as_bytes());
    let file = File::create(path).ctx(|| format!("creating {}", path.display()))?;
    let mut b = tar::Builder::new(BufWriter::new(file));
    let mut put = |name: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data)
    };
    let mut put =
        |name: &str, data: &[u8]| put(name, data).ctx(|| format!("writing {}", path.display()));
    let mut layer_paths = Vec::new();
    let config_path;
    if oci {
        let mut descriptors = Vec::new();
        for plain in layers {
            let compressed = gzip.map(|z| z(plain));
            let l = compressed.as_deref().unwrap_or(plain);
            let hex = sha256_hex(l);
            put(&format!("blobs/sha256/{hex}"), l)?;
            layer_paths.push(format!("blobs/sha256/{hex}"));
            descriptors.push(serde_json::json!({
                "mediaType": if gzip.is_some() {
                    "application/vnd.oci.image.layer.v1.tar+gzip"
                } else {
                    "application/vnd.oci.image.layer.v1.tar"
                },
                "digest": format!("sha256:{hex}"),
                "size": l.len(),
            }));
        }
        config_path = format!("blobs/sha256/{config_hex}");
        put(&config_path, config.as_bytes())?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": format!("sha256:{config_hex}"),
                "size": config.len(),
            },
            "layers": descriptors,
        })
        .to_string();
        let manifest_hex = sha256_hex(manifest.as_bytes());
        put(&format!("blobs/sha256/{manifest_hex}"), manifest.as_bytes())?;
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{manifest_hex}"),
                "size": manifest.len(),
                "annotations": { "io.containerd.image.name": tag },
            }],
        })
        .to_string();
        put("index.json", index.as_bytes())?;
    } else {
        for l in layers {
            let dir = sha256_hex(l);
            put(&format!("{dir}/VERSION"), b"1.0")?;
            put(&format!("{dir}/layer.tar"), l)?;
            layer_paths.push(format!("{dir}/layer.tar"));
        }
        config_path = format!("{config_hex}.json");
        put(&config_path, config.as_bytes())?;
    }
    let manifest =
        serde_json::json!([{ "Config": config_path, "RepoTags": [tag], "Layers": layer_paths }])
            .to_string();
    put("manifest.json", manifest.as_bytes())?;
    if oci {
        put("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    } else {
        let (repo, ver) = tag.split_once(':').unwrap_or((tag, "latest"));
        let repositories =
            serde_json::json!({ repo: { ver: layer_paths.last().map(|p| &p[..64]) } }).to_string();
        put("repositories", repositories.as_bytes())?;
    }
    b.into_inner()
        .and_then(|mut w| w.flush())
        .ctx(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes version `version` (1 or 2) of the sample image `demo/app:<version>`.
/// Version 2 keeps the OS layer, rebuilds the dependency layer (new mtimes,
/// 3 files bumped, 2 added) and edits 4 files of the app layer.
pub fn write_sample_image(path: &Path, version: u32) -> Result<()> {
    let os = sample_files(1, "usr/lib", 900, 1 << 20);
    let mut deps = sample_files(2, "usr/local/lib/python3.12/site-packages", 700, 512 << 10);
    let mut app = sample_files(3, "app", 60, 64 << 10);
    if version >= 2 {
        let mut rng = Rng::new(20 + version as u64);
        for i in [7usize, 150, 420] {
            let f = &mut deps[i];
            let at = rng.below(f.data.len() as u64) as usize;
            let patch = file_content(&mut rng, 2000.min(f.data.len() - at), true);
            f.data[at..at + patch.len()].copy_from_slice(&patch);
        }
        deps.extend(sample_files(
            200 + version as u64,
            "usr/local/lib/python3.12/site-packages/newdep",
            2,
            256 << 10,
        ));
        for i in [1usize, 9, 30, 41] {
            let f = &mut app[i];
            let line = format!("# changed in version {version}\n");
            f.data.splice(0..0, line.bytes());
        }
    }
    let layers = vec![
        layer_tar(&os, 1_700_000_000),
        layer_tar(&deps, 1_700_000_000 + version as u64 * 86_400),
        layer_tar(&app, 1_700_000_000 + version as u64 * 86_400),
    ];
    write_docker_archive(path, &format!("demo/app:{version}"), &layers)
}

fn mb(b: u64) -> String {
    format!("{:.2} MB", b as f64 / 1e6)
}

/// A percentage with two significant digits ("0.011%", "4.4%"), so a
/// small share never reads "0.0%".
pub fn percent(part: u64, whole: u64) -> String {
    let p = 100.0 * part as f64 / whole.max(1) as f64;
    if p == 0.0 {
        return "0%".into();
    }
    let digits = (1 - p.log10().floor() as i32).clamp(0, 6) as usize;
    format!("{p:.digits$}%")
}

/// Runs the demo in `dir`, printing each step to `out` and reporting
/// progress to `progress`.
pub fn run(dir: &Path, out: &mut dyn Write, progress: &dyn Progress) -> Result<()> {
    let mut demo = Demo {
        dir,
        out,
        progress,
        v1: dir.join("app-v1.tar"),
        v2: dir.join("app-v2.tar"),
        full: dir.join("full.ferry"),
        update: dir.join("update.ferry"),
    };
    demo.samples()?;
    demo.connected_side()?;
    demo.offline_side()?;
    demo.comparison()
}

/// The demo's files, and where it reports.
struct Demo<'a> {
    dir: &'a Path,
    out: &'a mut dyn Write,
    progress: &'a dyn Progress,
    /// The two versions of the sample image.
    v1: PathBuf,
    v2: PathBuf,
    /// The pack of version 1 alone, and the delta of version 2 against it.
    full: PathBuf,
    update: PathBuf,
}

/// A store opened in the demo does not wait for a lock.
const NO_WAIT: std::time::Duration = std::time::Duration::ZERO;

/// A file's size, 0 if it cannot be read.
fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// A path's file name, for display.
fn file_name(p: &Path) -> std::borrow::Cow<'_, str> {
    p.file_name().unwrap().to_string_lossy()
}

impl Demo<'_> {
    /// Prints one line of the report; a closed output does not stop the demo.
    fn say(&mut self, line: String) {
        let _ = writeln!(self.out, "{line}");
    }

    /// Writes both versions of the sample image.
    fn samples(&mut self) -> Result<()> {
        write_sample_image(&self.v1, 1)?;
        write_sample_image(&self.v2, 2)?;
        self.say(format!("sample images in {}:", self.dir.display()));
        self.say(format!(
            "  app-v1.tar  {}  (demo/app:1: OS, dependency and app layers)",
            mb(size(&self.v1))
        ));
        self.say(format!(
            "  app-v2.tar  {}  (demo/app:2: dependency layer rebuilt, 5 files bumped, 4 app files edited)",
            mb(size(&self.v2))
        ));
        Ok(())
    }

    /// Adds both versions to the connected store, then writes the full
    /// pack of version 1 and the delta pack of version 2.
    fn connected_side(&mut self) -> Result<()> {
        let mut a = Store::open_writer(&self.dir.join("connected-store"), NO_WAIT)?;
        self.say("\nconnected side:".into());
        for p in [self.v1.clone(), self.v2.clone()] {
            let t = Instant::now();
            let r = add(
                &mut a,
                Source::Path(p.clone()),
                &AddOptions::default(),
                self.progress,
            )?;
            self.say(format!(
                "  ferry add {:<11} -> {:<11} {} chunks, {} new, {} stored  ({:.0} MB/s)",
                file_name(&p),
                r.name,
                r.chunks,
                r.new_chunks,
                mb(r.new_bytes),
                r.size as f64 / 1e6 / t.elapsed().as_secs_f64()
            ));
        }
        for (path, bases) in [
            (self.full.clone(), vec![]),
            (self.update.clone(), vec!["demo/app:1".to_string()]),
        ] {
            let snap = if bases.is_empty() {
                "demo/app:1"
            } else {
                "demo/app:2"
            };
            let opts = PackOptions {
                snapshots: vec![snap.into()],
                bases: bases.clone(),
                ..Default::default()
            };
            let f = File::create(&path).ctx(|| format!("creating {}", path.display()))?;
            let (_, r) = write_pack(&a, &opts, BufWriter::new(f), self.progress)?;
            self.say(format!(
                "  ferry pack {snap}{} -> {}  {}  ({} chunks; {} already on the other side)",
                if bases.is_empty() {
                    String::new()
                } else {
                    format!(" --base {}", bases[0])
                },
                file_name(&path),
                mb(r.totals.pack_bytes),
                r.totals.chunks,
                r.skipped_chunks
            ));
        }
        Ok(())
    }

    /// Unpacks both packs into the offline store and checks out version 2,
    /// which must be byte-identical to the original.
    fn offline_side(&mut self) -> Result<()> {
        self.say("\noffline side:".into());
        let mut b = Store::open_writer(&self.dir.join("offline-store"), NO_WAIT)?;
        for p in [self.full.clone(), self.update.clone()] {
            let f = File::open(&p).ctx(|| format!("opening {}", p.display()))?;
            let r = unpack(&mut b, std::io::BufReader::new(f), &p, self.progress)?;
            self.say(format!(
                "  ferry unpack {:<12} -> {} new chunks, snapshots {}",
                file_name(&p),
                r.new_chunks,
                r.added.join(", ")
            ));
        }
        let rebuilt = self.dir.join("app-v2.rebuilt.tar");
        let t = Instant::now();
        let snap = checkout_to_path(&b, "demo/app:2", &rebuilt, self.progress)?;
        let secs = t.elapsed().as_secs_f64();
        let same = std::fs::read(&rebuilt).ctx(|| "reading rebuilt tar".into())?
            == std::fs::read(&self.v2).ctx(|| "reading app-v2.tar".into())?;
        if !same {
            return Err(crate::Error::Integrity(
                "the rebuilt app-v2.tar differs from the original".into(),
            ));
        }
        self.say(format!(
            "  ferry checkout demo/app:2 -> app-v2.rebuilt.tar  {}  ({:.0} MB/s), BLAKE3 {}… verified, byte-identical to app-v2.tar",
            mb(snap.size),
            snap.size as f64 / 1e6 / secs,
            snap.blake3.short()
        ));
        Ok(())
    }

    /// Puts the delta pack beside the other ways of shipping version 2:
    /// the whole tar, gzip'd, and ferry without each of its two ideas
    /// (tar-aware splitting, similarity deltas), then sums up what each saved.
    fn comparison(&mut self) -> Result<()> {
        let (v2, update) = (size(&self.v2), size(&self.update));
        let gz = self.gzip(v2)?;
        let (plain, neither) = self.plain_delta()?;
        let no_deltas = self.no_deltas()?;
        let h = crate::chart::human;
        self.say("\nshipping demo/app:2 to a side that has demo/app:1:".into());
        for (what, bytes) in [
            ("docker save (full tar)", v2),
            ("docker save | gzip -6", gz),
            ("ferry, plain CDC, no deltas", neither),
            ("ferry, plain CDC (--no-tar-split)", plain),
            ("ferry, no similarity deltas", no_deltas),
            ("ferry delta pack", update),
        ] {
            self.say(format!(
                "  {what:<34} {:>9}  ({} of the full tar)",
                h(bytes),
                percent(bytes, v2)
            ));
        }
        self.say(format!(
            "\nupdate: {} with ferry; {} without tar-aware splitting; {} without similarity deltas; {} without either; gzip: {}",
            h(update),
            h(plain),
            h(no_deltas),
            h(neither),
            h(gz)
        ));
        Ok(())
    }

    /// Bytes of `gzip -6` of version 2 (`v2` bytes), with progress.
    fn gzip(&self, v2: u64) -> Result<u64> {
        self.progress
            .start("comparing: gzip -6 of app-v2.tar", Some(v2));
        let mut e = flate2::write::GzEncoder::new(
            Counting::new(std::io::sink()),
            flate2::Compression::new(6),
        );
        let data = std::fs::read(&self.v2).ctx(|| "reading app-v2.tar".into())?;
        for piece in data.chunks(1 << 20) {
            e.write_all(piece).ctx(|| "compressing".into())?;
            self.progress.advance(piece.len() as u64);
        }
        let n = e.finish().ctx(|| "compressing".into())?.count();
        self.progress.finish();
        Ok(n)
    }

    /// The size of the same delta without tar-aware splitting, with and
    /// without similarity deltas.
    fn plain_delta(&self) -> Result<(u64, u64)> {
        let phase = Prefixed::new(
            self.progress,
            "comparing: ferry without tar-aware splitting",
        );
        let mut p = Store::open_writer(&self.dir.join("plain-store"), NO_WAIT)?;
        for v in [&self.v1, &self.v2] {
            let opts = AddOptions {
                tar_split: false,
                ..AddOptions::default()
            };
            add(&mut p, Source::Path(v.to_path_buf()), &opts, &phase)?;
        }
        let mut opts = PackOptions {
            snapshots: vec!["demo/app:2".into()],
            bases: vec!["demo/app:1".into()],
            ..Default::default()
        };
        let plain = write_pack(&p, &opts, std::io::sink(), &phase)?;
        opts.no_deltas = true;
        let neither = write_pack(&p, &opts, std::io::sink(), &phase)?;
        Ok((plain.1.totals.pack_bytes, neither.1.totals.pack_bytes))
    }

    /// The size of the delta with tar-aware splitting but without
    /// similarity deltas (changed chunks sent whole).
    fn no_deltas(&self) -> Result<u64> {
        let phase = Prefixed::new(self.progress, "comparing: ferry without similarity deltas");
        let a = Store::open(&self.dir.join("connected-store"))?;
        let opts = PackOptions {
            snapshots: vec!["demo/app:2".into()],
            bases: vec!["demo/app:1".into()],
            no_deltas: true,
            ..Default::default()
        };
        Ok(write_pack(&a, &opts, std::io::sink(), &phase)?
            .1
            .totals
            .pack_bytes)
    }
}
