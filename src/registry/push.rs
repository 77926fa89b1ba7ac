//! `ferry push`: a snapshot's images put into a registry. Blobs the
//! registry has are skipped (HEAD); the others stream from the store
//! straight into one PUT each. Manifests and indexes go byte-exact, after
//! every blob they name, and tags last, so an interrupted push never leaves
//! a tag naming something missing, and a second run sends only what did
//! not arrive. A legacy `docker save` archive (no OCI layout) gets an OCI
//! manifest built for its uncompressed layers: its digests are new.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};

use oci_client::{Reference, RegistryOperation};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::client::Remote;
use super::pipe::{ChannelReader, ChannelWriter, channel};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::Store;

/// Where to push and under which tags.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// `REGISTRY/REPOSITORY[:TAG]` to push to (for several images,
    /// `REGISTRY[/PREFIX]`); default: where the images' own tags point.
    pub target: Option<String>,
    /// Tags to push under, instead of the images' own.
    pub tags: Vec<String>,
}

/// An image reference pushed, and the digest it names.
#[derive(Debug, Serialize)]
pub struct Pushed {
    /// `registry/repository:tag`.
    pub reference: String,
    /// The manifest or index digest it names.
    pub digest: String,
}

/// What [`push`] did.
#[derive(Debug, Serialize)]
pub struct PushReport {
    /// The snapshot pushed.
    pub snapshot: String,
    /// Tags pushed.
    pub pushed: Vec<Pushed>,
    /// Blobs uploaded (or mounted from another repository).
    pub blobs_sent: usize,
    /// Bytes uploaded.
    pub bytes_sent: u64,
    /// Blobs the registry had already.
    pub blobs_skipped: usize,
    /// Manifests built here for a legacy archive (their digests are new).
    pub built_manifests: usize,
    /// What the user should know (a partial index, built manifests).
    pub notes: Vec<String>,
}

/// A file of the archive: its path, size and sha256.
struct Entry {
    path: String,
    size: u64,
    digest: String,
}

/// What one read of the archive found: every file, and the small ones'
/// bytes (manifests, configs, index.json, manifest.json).
struct Scan {
    entries: Vec<Entry>,
    small: HashMap<String, Vec<u8>>,
}

/// A repository, what goes into it, and under which tags.
struct Target {
    repo: Reference,
    /// Blobs (digest, size) the manifests name.
    blobs: Vec<(String, u64)>,
    /// Manifests to put by digest before the tags (children of an index).
    children: Vec<(Vec<u8>, String)>,
    /// The manifest or index the tags name, and its media type.
    top: (Vec<u8>, String),
    tags: Vec<String>,
}

const SMALL: u64 = 4 << 20;

/// Pushes snapshot `name`'s images to a registry.
pub fn push(
    store: &Store,
    remote: &Remote,
    name: &str,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<PushReport> {
    let snap = store.require(name)?;
    let scan = scan(store, &snap.name, progress)?;
    let mut notes = Vec::new();
    let (images, built) = match scan.small.get("index.json") {
        Some(index) => oci_images(&scan, index, &mut notes)?,
        None => legacy_images(&scan, &mut notes)?,
    };
    let targets = retarget(images, opts)?;
    // What the registry lacks, per repository.
    let mut missing: HashMap<String, Vec<Reference>> = HashMap::new();
    let mut skipped = 0;
    let mut checked = HashSet::new();
    for t in &targets {
        remote.login(&t.repo, RegistryOperation::Push)?;
        for (d, _) in &t.blobs {
            if !checked.insert((t.repo.repository().to_string(), d.clone())) {
                continue;
            }
            if remote.has_blob(&t.repo, d)? {
                skipped += 1;
            } else {
                missing.entry(d.clone()).or_default().push(t.repo.clone());
            }
        }
    }
    let (sent, bytes_sent) = if missing.is_empty() {
        (0, 0)
    } else {
        upload(store, remote, &snap.name, &scan, &missing, progress)?
    };
    let mut pushed = Vec::new();
    for t in &targets {
        for (bytes, media) in &t.children {
            let d = sha256(bytes);
            remote.put_manifest(&t.repo.clone_with_digest(d), bytes, media)?;
        }
        for tag in &t.tags {
            let r = Reference::with_tag(
                t.repo.registry().to_string(),
                t.repo.repository().to_string(),
                tag.clone(),
            );
            remote.put_manifest(&r, &t.top.0, &t.top.1)?;
            pushed.push(Pushed {
                reference: format!("{}/{}:{tag}", r.registry(), r.repository()),
                digest: sha256(&t.top.0),
            });
        }
    }
    Ok(PushReport {
        snapshot: snap.name,
        pushed,
        blobs_sent: sent,
        bytes_sent,
        blobs_skipped: skipped,
        built_manifests: built,
        notes,
    })
}

/// Reads the snapshot's archive once: every file's size and sha256, and
/// the bytes of the small ones.
fn scan(store: &Store, name: &str, progress: &dyn Progress) -> Result<Scan> {
    let phase = crate::progress::Relabel::new(progress, format!("reading {name}"), None);
    stream_archive(store, name, &phase, |archive| {
        let mut scan = Scan {
            entries: Vec::new(),
            small: HashMap::new(),
        };
        for e in archive.entries()? {
            let mut e = e?;
            if e.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = e.path()?.to_string_lossy().into_owned();
            let size = e.size();
            let mut h = Sha256::new();
            let mut keep = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = e.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                if size <= SMALL {
                    keep.extend_from_slice(&buf[..n]);
                }
            }
            if size <= SMALL {
                scan.small.insert(path.clone(), keep);
            }
            let digest = format!("sha256:{}", crate::hex(&h.finalize()));
            scan.entries.push(Entry { path, size, digest });
        }
        Ok(scan)
    })
}

/// Checks the snapshot out into a pipe and hands the reading end, as a
/// tar archive, to `read` on another thread.
fn stream_archive<T: Send>(
    store: &Store,
    name: &str,
    progress: &dyn Progress,
    read: impl FnOnce(&mut tar::Archive<ChannelReader>) -> io::Result<T> + Send,
) -> Result<T> {
    let (tx, rx) = channel();
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut archive = tar::Archive::new(ChannelReader::new(rx));
            let r = read(&mut archive);
            // Drain, so the checkout finishes (and checks its BLAKE3).
            let _ = io::copy(archive.into_inner().by_ref(), &mut io::sink());
            r
        });
        let mut w = ChannelWriter::new(tx);
        let out = crate::checkout::checkout(store, name, &mut w, progress);
        match &out {
            Ok(_) => {
                let _ = w.finish();
            }
            Err(e) => w.fail(io::Error::other(e.to_string())),
        }
        let got = reader.join().expect("the archive reader does not panic");
        out?;
        got.map_err(|e| Error::Invalid(format!("reading snapshot {name} as an image archive: {e}")))
    })
}

/// Streams the archive again and uploads each blob some repository lacks.
fn upload(
    store: &Store,
    remote: &Remote,
    name: &str,
    scan: &Scan,
    missing: &HashMap<String, Vec<Reference>>,
    progress: &dyn Progress,
) -> Result<(usize, u64)> {
    let by_path: HashMap<&str, &str> = scan
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e.digest.as_str()))
        .collect();
    let phase = crate::progress::Relabel::new(progress, format!("pushing {name}"), None);
    let result: Result<(usize, u64)> = stream_archive(store, name, &phase, |archive| {
        let mut done: HashSet<String> = HashSet::new();
        let (mut n, mut bytes) = (0, 0u64);
        for e in archive.entries()? {
            let mut e = e?;
            let path = e.path()?.to_string_lossy().into_owned();
            let Some(&digest) = by_path.get(path.as_str()) else {
                continue;
            };
            let Some(repos) = missing.get(digest) else {
                continue;
            };
            if !done.insert(digest.to_string()) {
                continue;
            }
            let size = e.size();
            let (first, others) = repos
                .split_first()
                .expect("a missing blob has a repository");
            remote
                .upload(first, digest, &mut e)
                .map_err(|err| io::Error::other(err.to_string()))?;
            n += 1;
            bytes += size;
            // Other repositories of the registry take it by a mount.
            for r in others {
                remote
                    .mount(r, first, digest)
                    .map_err(|err| io::Error::other(err.to_string()))?;
                n += 1;
            }
        }
        Ok((n, bytes))
    });
    let (n, bytes) = result.map_err(|e| match e {
        Error::Invalid(m) => Error::Registry(m.replace("reading snapshot", "pushing snapshot")),
        other => other,
    })?;
    let wanted: usize = missing.values().map(Vec::len).sum();
    if n != wanted {
        return Err(Error::Registry(format!(
            "snapshot {name} lacks {} of the blobs its manifests name: it cannot be pushed whole",
            wanted - n
        )));
    }
    Ok((n, bytes))
}

/// The images of an OCI layout, from index.json: each entry's manifest or
/// index with the blobs it names, and its own name.
fn oci_images(
    scan: &Scan,
    index: &[u8],
    notes: &mut Vec<String>,
) -> Result<(Vec<(String, Target)>, usize)> {
    let index: Value = serde_json::from_slice(index)
        .map_err(|e| Error::Invalid(format!("the snapshot's index.json is not JSON: {e}")))?;
    let sizes: HashMap<&str, u64> = scan
        .entries
        .iter()
        .map(|e| (e.digest.as_str(), e.size))
        .collect();
    let blob = |d: &str| {
        scan.small
            .get(&format!("blobs/sha256/{}", d.trim_start_matches("sha256:")))
    };
    let mut out = Vec::new();
    for entry in index["manifests"].as_array().into_iter().flatten() {
        let digest = entry["digest"].as_str().unwrap_or_default();
        let name = entry["annotations"]["io.containerd.image.name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(top) = blob(digest) else {
            return Err(Error::Invalid(format!(
                "the snapshot's index.json names {digest}, which its archive lacks"
            )));
        };
        let doc: Value = serde_json::from_slice(top).unwrap_or_default();
        let media = media_of(&doc);
        let mut t = Target {
            repo: Remote::reference("localhost/ferry-unnamed")?,
            blobs: Vec::new(),
            children: Vec::new(),
            top: (top.clone(), media),
            tags: Vec::new(),
        };
        if let Some(children) = doc["manifests"].as_array() {
            let present: Vec<&Value> = children
                .iter()
                .filter(|c| blob(c["digest"].as_str().unwrap_or_default()).is_some())
                .collect();
            for c in &present {
                let bytes = blob(c["digest"].as_str().unwrap_or_default()).unwrap();
                image_blobs(bytes, &sizes, &mut t.blobs)?;
                let doc: Value = serde_json::from_slice(bytes).unwrap_or_default();
                t.children.push((bytes.clone(), media_of(&doc)));
            }
            if present.len() < children.len() {
                // The index names platforms this snapshot lacks: a
                // registry refuses it, so the tag names the first image.
                let first = t.children.first().cloned().ok_or_else(|| {
                    Error::Invalid(format!("the snapshot holds no image of the index {digest}"))
                })?;
                notes.push(format!(
                    "{name}: the index names {} platforms, the snapshot holds {}: pushed the tag to the first image's manifest, not to the index",
                    children.len(),
                    present.len()
                ));
                t.top = first;
                t.children.clear();
            }
        } else {
            image_blobs(top, &sizes, &mut t.blobs)?;
        }
        out.push((name, t));
    }
    Ok((out, 0))
}

/// Adds the config and layers an image manifest names.
fn image_blobs(
    manifest: &[u8],
    sizes: &HashMap<&str, u64>,
    blobs: &mut Vec<(String, u64)>,
) -> Result<()> {
    let doc: Value = serde_json::from_slice(manifest).map_err(|e| {
        Error::Invalid(format!(
            "an image manifest in the snapshot is not JSON: {e}"
        ))
    })?;
    let config = std::iter::once(&doc["config"]);
    for d in config.chain(doc["layers"].as_array().into_iter().flatten()) {
        let digest = d["digest"].as_str().unwrap_or_default();
        let Some(&size) = sizes.get(digest) else {
            return Err(Error::Invalid(format!(
                "the snapshot lacks blob {digest}, which its manifest names: it cannot be pushed"
            )));
        };
        if !blobs.iter().any(|(b, _)| b == digest) {
            blobs.push((digest.to_string(), size));
        }
    }
    Ok(())
}

/// The images of a legacy archive, each with an OCI manifest built for its
/// config and uncompressed layers.
fn legacy_images(scan: &Scan, notes: &mut Vec<String>) -> Result<(Vec<(String, Target)>, usize)> {
    let manifest = scan.small.get("manifest.json").ok_or_else(|| {
        Error::Invalid("the snapshot is not an image archive (no index.json or manifest.json): only images can be pushed".into())
    })?;
    let entries = crate::archive::image::parse_manifest(manifest).map_err(Error::Invalid)?;
    let by_path: HashMap<&str, &Entry> =
        scan.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut out = Vec::new();
    for m in &entries {
        let file = |p: &str| {
            by_path.get(p).copied().ok_or_else(|| {
                Error::Invalid(format!(
                    "the snapshot's manifest.json names {p}, which its archive lacks"
                ))
            })
        };
        let config = file(&m.config)?;
        let mut layers = Vec::new();
        let mut blobs = vec![(config.digest.clone(), config.size)];
        for l in &m.layers {
            let e = file(l)?;
            layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": e.digest, "size": e.size}));
            blobs.push((e.digest.clone(), e.size));
        }
        let built = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest, "size": config.size},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&built).expect("a manifest serializes");
        let name = m
            .repo_tags
            .clone()
            .unwrap_or_default()
            .into_iter()
            .next()
            .unwrap_or_default();
        notes.push(format!(
            "{}: a legacy docker archive: built an OCI manifest for its uncompressed layers, so its manifest and layer digests are new (its image ID is the same)",
            if name.is_empty() { &m.config } else { &name }
        ));
        out.push((
            name,
            Target {
                repo: Remote::reference("localhost/ferry-unnamed")?,
                blobs,
                children: Vec::new(),
                top: (bytes, "application/vnd.oci.image.manifest.v1+json".into()),
                tags: Vec::new(),
            },
        ));
    }
    let n = out.len();
    Ok((out, n))
}

/// Points each image at its repository and tags: its own name, retargeted
/// to `opts.target`, with `opts.tags` instead of its own tag when given.
fn retarget(images: Vec<(String, Target)>, opts: &PushOptions) -> Result<Vec<Target>> {
    let target = opts.target.as_deref();
    let single = images.len() == 1;
    let mut out = Vec::new();
    for (name, mut t) in images {
        let own = (!name.is_empty())
            .then(|| Remote::reference(&name))
            .transpose()?;
        let (repo, tag) = match (target, &own) {
            (Some(tg), _) if single => {
                let r = Remote::reference(tg)?;
                let explicit = tg.rsplit('/').next().is_some_and(|last| last.contains(':'));
                let tag = if explicit {
                    r.tag().map(str::to_string)
                } else {
                    own.as_ref().and_then(|o| o.tag().map(str::to_string))
                };
                (r, tag)
            }
            (Some(tg), Some(o)) => {
                let repo_path = o.repository().rsplit('/').next().unwrap_or(o.repository());
                let r = Remote::reference(&format!("{}/{repo_path}", tg.trim_end_matches('/')))?;
                (r, o.tag().map(str::to_string))
            }
            (None, Some(o)) => (o.clone(), o.tag().map(str::to_string)),
            (_, None) => {
                return Err(Error::Invalid(
                    "an image of the snapshot has no name to push it under: give REGISTRY/REPOSITORY:TAG".into(),
                ));
            }
        };
        t.tags = if opts.tags.is_empty() {
            vec![tag.unwrap_or_else(|| "latest".into())]
        } else {
            opts.tags.clone()
        };
        t.repo = repo;
        out.push(t);
    }
    if out.is_empty() {
        return Err(Error::Invalid("the snapshot holds no image to push".into()));
    }
    Ok(out)
}

fn media_of(doc: &Value) -> String {
    match doc["mediaType"].as_str() {
        Some(m) => m.to_string(),
        None if doc.get("manifests").is_some() => "application/vnd.oci.image.index.v1+json".into(),
        None => "application/vnd.oci.image.manifest.v1+json".into(),
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::hex(&Sha256::digest(bytes)))
}
