//! `ferry pull`: images fetched from a registry into the store as one
//! snapshot, without a Docker daemon. The snapshot is the archive Docker
//! 29's `docker save` writes (an OCI image layout plus manifest.json, every
//! blob byte-exact as the registry serves it), streamed straight into the
//! store as the blobs arrive: nothing is written to disk on the way.

use std::collections::HashSet;
use std::io::{self, Read};

use oci_client::{Reference, RegistryOperation};
use serde::Serialize;
use serde_json::{Value, json};

use super::client::Remote;
use super::pipe::{ChannelReader, ChannelWriter, channel};
use crate::add::{self, AddOptions, AddReport, Source};
use crate::archive::image::ImageInfo;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::Store;

/// Which images of a multi-platform index to take.
#[derive(Debug, Clone)]
pub enum Platforms {
    /// One platform: `os/arch[/variant]`.
    One(String),
    /// Every platform the index lists.
    All,
}

/// What [`pull`] did.
#[derive(Debug, Serialize)]
pub struct PullReport {
    /// The references pulled, as given.
    pub references: Vec<String>,
    /// The digest of each reference's manifest or index, as the registry
    /// serves it.
    pub digests: Vec<String>,
    /// Images in the snapshot (config digest and tags).
    pub images: Vec<ImageInfo>,
    /// Blobs fetched (manifests, configs and layers).
    pub blobs: usize,
    /// Their bytes.
    pub blob_bytes: u64,
    /// The snapshot added.
    pub add: AddReport,
}

/// A blob of the archive: its digest, size, and the repository it is
/// fetched from (`None`: its bytes are already at hand).
struct Blob {
    digest: String,
    size: u64,
    from: Option<Reference>,
    bytes: Option<Vec<u8>>,
}

/// The archive to write: blobs, then index.json and manifest.json.
#[derive(Default)]
struct Layout {
    blobs: Vec<Blob>,
    seen: HashSet<String>,
    index: Vec<Value>,
    manifest: Vec<Value>,
    images: Vec<ImageInfo>,
    digests: Vec<String>,
}

impl Layout {
    fn blob(&mut self, b: Blob) {
        if self.seen.insert(b.digest.clone()) {
            self.blobs.push(b);
        }
    }
}

/// Pulls `references` into `store` as one snapshot (named `name`, else the
/// first reference's tag as docker names it).
pub fn pull(
    store: &mut Store,
    remote: &Remote,
    references: &[String],
    name: Option<String>,
    platforms: &Platforms,
    progress: &dyn Progress,
) -> Result<PullReport> {
    if references.is_empty() {
        return Err(Error::Invalid("name at least one image to pull".into()));
    }
    let mut layout = Layout::default();
    for text in references {
        let r = Remote::reference(text)?;
        remote.login(&r, RegistryOperation::Pull)?;
        resolve(remote, &r, text, platforms, &mut layout)?;
    }
    let name = match name {
        Some(n) => n,
        None => layout
            .images
            .iter()
            .find_map(|i| i.tags.first().cloned())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{} names no tag to call the snapshot by: pass --name",
                    references[0]
                ))
            })?,
    };
    add::validate_name(&name)?;
    let blob_bytes: u64 = layout.blobs.iter().map(|b| b.size).sum();
    let total = blob_bytes + 512 * (layout.blobs.len() as u64 + 8) + (64 << 10);
    let phase = crate::progress::Relabel::new(progress, format!("pulling {name}"), Some(total));
    let (tx, rx) = channel();
    let report = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut w = ChannelWriter::new(tx);
            let r = write_archive(remote, &layout, &mut w, &phase).and_then(|()| w.finish());
            if let Err(e) = r {
                w.fail(e);
            }
        });
        let opts = AddOptions {
            name: Some(name.clone()),
            replace: false,
            tar_split: true,
        };
        let report = add::add(
            store,
            Source::Reader {
                label: format!("registry:{}", references.join(",")),
                reader: Box::new(ChannelReader::new(rx)),
            },
            &opts,
            &phase,
        );
        let _ = writer.join();
        report
    })?;
    Ok(PullReport {
        references: references.to_vec(),
        digests: layout.digests,
        images: layout.images,
        blobs: layout.blobs.len(),
        blob_bytes,
        add: report,
    })
}

/// Fetches what `r` names (a manifest, or an index and the manifests of
/// the platforms taken) and adds its blobs, index entry and manifest.json
/// entries to `layout`.
fn resolve(
    remote: &Remote,
    r: &Reference,
    text: &str,
    platforms: &Platforms,
    layout: &mut Layout,
) -> Result<()> {
    let (top, digest) = remote.manifest(r)?;
    let doc = parse(&top, text)?;
    let media = media_type(&doc);
    let tag = docker_tag(r);
    let mut index_entry = json!({
        "mediaType": media,
        "digest": digest,
        "size": top.len(),
    });
    if tag.is_some() {
        index_entry["annotations"] = json!({
            "io.containerd.image.name": full_name(r),
            "org.opencontainers.image.ref.name": r.tag().unwrap_or("latest"),
        });
    }
    layout.index.push(index_entry);
    layout.digests.push(digest.clone());
    if let Some(entries) = doc.get("manifests").and_then(Value::as_array) {
        let chosen = choose(entries, platforms, text)?;
        // The first platform taken carries the tag in manifest.json.
        for (k, entry) in chosen.into_iter().enumerate() {
            let d = str_field(entry, "digest", text)?;
            let by_digest = r.clone_with_digest(d.to_string());
            let (bytes, got) = remote.manifest(&by_digest)?;
            image(
                r,
                &bytes,
                &got,
                text,
                if k == 0 { tag.clone() } else { None },
                layout,
            )?;
        }
        layout.blob(Blob {
            digest,
            size: top.len() as u64,
            from: None,
            bytes: Some(top),
        });
    } else {
        image(r, &top, &digest, text, tag, layout)?;
    }
    Ok(())
}

/// Adds one image manifest's blobs (layers, config, the manifest) and its
/// manifest.json entry.
fn image(
    r: &Reference,
    bytes: &[u8],
    digest: &str,
    text: &str,
    tag: Option<String>,
    layout: &mut Layout,
) -> Result<()> {
    let doc = parse(bytes, text)?;
    let config = doc
        .get("config")
        .ok_or_else(|| Error::Registry(format!("{text}: the manifest {digest} has no config")))?;
    let cfg_digest = str_field(config, "digest", text)?.to_string();
    let mut layers = Vec::new();
    for l in doc
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let d = str_field(l, "digest", text)?.to_string();
        layers.push(blob_path(&d, text)?);
        layout.blob(Blob {
            digest: d,
            size: l.get("size").and_then(Value::as_u64).unwrap_or(0),
            from: Some(r.clone()),
            bytes: None,
        });
    }
    let config_path = blob_path(&cfg_digest, text)?;
    layout.blob(Blob {
        digest: cfg_digest.clone(),
        size: config.get("size").and_then(Value::as_u64).unwrap_or(0),
        from: Some(r.clone()),
        bytes: None,
    });
    layout.blob(Blob {
        digest: digest.to_string(),
        size: bytes.len() as u64,
        from: None,
        bytes: Some(bytes.to_vec()),
    });
    let tags: Vec<String> = tag.into_iter().collect();
    layout.manifest.push(json!({
        "Config": config_path,
        "RepoTags": tags,
        "Layers": layers,
    }));
    layout.images.push(ImageInfo {
        id: cfg_digest,
        tags,
    });
    Ok(())
}

/// The index entries to take.
fn choose<'a>(entries: &'a [Value], platforms: &Platforms, text: &str) -> Result<Vec<&'a Value>> {
    let platform_of = |e: &Value| -> Option<String> {
        let p = e.get("platform")?;
        let mut s = format!(
            "{}/{}",
            p.get("os")?.as_str()?,
            p.get("architecture")?.as_str()?
        );
        if let Some(v) = p.get("variant").and_then(Value::as_str) {
            s.push('/');
            s.push_str(v);
        }
        Some(s)
    };
    let listed: Vec<String> = entries.iter().filter_map(platform_of).collect();
    let chosen: Vec<&Value> = match platforms {
        Platforms::All => entries
            .iter()
            .filter(|e| platform_of(e).is_some_and(|p| !p.starts_with("unknown/")))
            .collect(),
        Platforms::One(want) => entries
            .iter()
            .filter(|e| {
                platform_of(e).is_some_and(|p| p == *want || p.strip_suffix("/v8") == Some(want))
            })
            .take(1)
            .collect(),
    };
    if chosen.is_empty() {
        let want = match platforms {
            Platforms::One(w) => w.as_str(),
            Platforms::All => "any platform",
        };
        return Err(Error::Invalid(format!(
            "{text} has no image for {want}; it has {}: pass --platform with one of them, or --all-platforms",
            if listed.is_empty() {
                "none".to_string()
            } else {
                listed.join(", ")
            }
        )));
    }
    Ok(chosen)
}

/// The platform this machine runs, as image indexes name it.
pub fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    format!("linux/{arch}")
}

fn parse(bytes: &[u8], text: &str) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::Registry(format!(
            "{text}: the registry served a manifest that is not JSON: {e}"
        ))
    })
}

fn media_type(doc: &Value) -> String {
    match doc.get("mediaType").and_then(Value::as_str) {
        Some(m) => m.to_string(),
        None if doc.get("manifests").is_some() => "application/vnd.oci.image.index.v1+json".into(),
        None => "application/vnd.oci.image.manifest.v1+json".into(),
    }
}

fn str_field<'a>(v: &'a Value, key: &str, text: &str) -> Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Registry(format!("{text}: a manifest entry has no {key}")))
}

/// `blobs/sha256/<hex>` for a sha256 digest.
fn blob_path(digest: &str, text: &str) -> Result<String> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(format!("blobs/sha256/{hex}"))
        }
        _ => Err(Error::Registry(format!(
            "{text}: digest {digest} is not sha256, which docker archives need"
        ))),
    }
}

/// `registry/repository` as containerd names images (`docker.io/library/app`).
fn full_name(r: &Reference) -> String {
    format!(
        "{}/{}:{}",
        r.resolve_registry(),
        r.repository(),
        r.tag().unwrap_or("latest")
    )
}

/// The tag as `docker images` shows it: `app:1` for Docker Hub's library,
/// `host:port/app:1` elsewhere; none for a reference by digest alone.
fn docker_tag(r: &Reference) -> Option<String> {
    if r.tag().is_none() && r.digest().is_some() {
        return None;
    }
    let tag = r.tag().unwrap_or("latest");
    let repo = r.repository();
    Some(match r.resolve_registry() {
        "docker.io" | "index.docker.io" => {
            format!("{}:{tag}", repo.strip_prefix("library/").unwrap_or(repo))
        }
        host => format!("{host}/{repo}:{tag}"),
    })
}

/// Writes the archive: every blob as the registry serves it (checked
/// against its digest and size), then oci-layout, index.json and
/// manifest.json.
fn write_archive(
    remote: &Remote,
    layout: &Layout,
    out: &mut ChannelWriter,
    progress: &dyn Progress,
) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(0);
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        tar.append_data(&mut h, dir, io::empty())?;
    }
    for (k, b) in layout.blobs.iter().enumerate() {
        let path = format!("blobs/sha256/{}", &b.digest["sha256:".len()..]);
        progress.detail(&format!(
            "blob {}/{} {} ({})",
            k + 1,
            layout.blobs.len(),
            short(&b.digest),
            megabytes(b.size)
        ));
        let mut h = header(b.size);
        match (&b.bytes, &b.from) {
            (Some(bytes), _) => tar.append_data(&mut h, &path, &bytes[..])?,
            (None, Some(r)) => {
                let body = remote
                    .blob(r, &b.digest)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                let exact = Exact {
                    inner: body,
                    left: b.size,
                    digest: &b.digest,
                };
                tar.append_data(&mut h, &path, exact)?;
            }
            (None, None) => unreachable!("a blob has bytes or a source"),
        }
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": layout.index,
    });
    let files = [
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        (
            "index.json",
            serde_json::to_vec(&index).map_err(io::Error::other)?,
        ),
        (
            "manifest.json",
            serde_json::to_vec(&layout.manifest).map_err(io::Error::other)?,
        ),
    ];
    for (path, bytes) in files {
        let mut h = header(bytes.len() as u64);
        tar.append_data(&mut h, path, &bytes[..])?;
    }
    tar.finish()
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// A blob body that must be exactly `left` bytes long.
struct Exact<'a> {
    inner: Box<dyn Read + Send>,
    left: u64,
    digest: &'a str,
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(format!(
                    "the registry served blob {} longer than its manifest says",
                    self.digest
                ))),
            };
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::other(format!(
                "the registry served blob {} shorter than its manifest says ({} bytes missing)",
                self.digest, self.left
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The first 12 hex digits of a digest.
pub(super) fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

/// A size in MB with one decimal.
pub(super) fn megabytes(n: u64) -> String {
    format!("{:.1} MB", n as f64 / 1e6)
}
