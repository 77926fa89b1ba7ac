//! A snapshot's image archive as a push sees it: which images it holds
//! (from index.json, or from a legacy manifest.json with an OCI manifest
//! built for each image), the blobs each names, and the repository and
//! tags each goes to.

use std::collections::HashMap;

use oci_client::Reference;
use serde_json::{Value, json};

use super::client::Remote;
use super::push::PushOptions;
use crate::error::{Error, Result};

/// A file of the archive: its path, size and sha256.
pub(super) struct Entry {
    pub path: String,
    pub size: u64,
    pub digest: String,
}

/// What a read of the archive found: every file, and the small ones'
/// bytes (manifests, configs, index.json, manifest.json).
#[derive(Default)]
pub(super) struct Scan {
    pub entries: Vec<Entry>,
    pub small: HashMap<String, Vec<u8>>,
}

/// A repository, what goes into it, and under which tags.
pub(super) struct Target {
    pub repo: Reference,
    /// Blobs (digest, size) the manifests name.
    pub blobs: Vec<(String, u64)>,
    /// Manifests to put by digest before the tags (children of an index).
    pub children: Vec<(Vec<u8>, String)>,
    /// The manifest or index the tags name, and its media type.
    pub top: (Vec<u8>, String),
    /// Before [`retarget`]: every name the image carries in the snapshot.
    /// After: the tags to push it under.
    pub tags: Vec<String>,
}

impl Target {
    /// A target with nothing in it yet.
    pub fn empty() -> Result<Target> {
        Ok(Target {
            repo: Remote::reference("localhost/ferry-unnamed")?,
            blobs: Vec::new(),
            children: Vec::new(),
            top: (Vec::new(), String::new()),
            tags: Vec::new(),
        })
    }
}

/// The images of an OCI layout, from index.json: each entry's manifest or
/// index with the blobs it names, and its own name.
pub(super) fn oci_images(
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
            top: (top.clone(), media),
            ..Target::empty()?
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
        t.tags = (!name.is_empty())
            .then(|| name.clone())
            .into_iter()
            .collect();
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
pub(super) fn legacy_images(
    scan: &Scan,
    notes: &mut Vec<String>,
) -> Result<(Vec<(String, Target)>, usize)> {
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
                blobs,
                top: (bytes, "application/vnd.oci.image.manifest.v1+json".into()),
                tags: m.repo_tags.clone().unwrap_or_default(),
                ..Target::empty()?
            },
        ));
    }
    let n = out.len();
    Ok((out, n))
}

/// Keeps only the images that carry `asked` when it names an image inside
/// snapshot `snapshot` rather than the snapshot itself (which keeps them
/// all), as `load` and `checkout` find an image by any tag it carries. The
/// tag asked for becomes the image's own name.
pub(super) fn select(
    images: Vec<(String, Target)>,
    asked: &str,
    snapshot: &str,
) -> Vec<(String, Target)> {
    if asked == snapshot {
        return images;
    }
    let latest = format!("{asked}:latest");
    let wanted = |t: &str| t == asked || (!asked.contains(':') && t == latest);
    let (chosen, rest): (Vec<_>, Vec<_>) = images
        .into_iter()
        .partition(|(n, t)| wanted(n) || t.tags.iter().any(|x| wanted(x)));
    if chosen.is_empty() {
        return rest;
    }
    chosen
        .into_iter()
        .map(|(n, t)| (t.tags.iter().find(|x| wanted(x)).cloned().unwrap_or(n), t))
        .collect()
}

/// Points each image at its repository and tags: its own name, retargeted
/// to `opts.target`, with `opts.tags` instead of its own tag when given.
pub(super) fn retarget(images: Vec<(String, Target)>, opts: &PushOptions) -> Result<Vec<Target>> {
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
