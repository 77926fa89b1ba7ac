//! The layout of image archives as `docker save` writes them (the Engine
//! API client itself is [`crate::docker`]): the legacy layout
//! (manifest.json, `<id>.json` configs, `<dir>/layer.tar`) and the OCI
//! layout of Docker 25+ (oci-layout, index.json, `blobs/sha256/<hex>`, plus
//! manifest.json). Parses manifests and verifies every layer and config
//! against the sha256 digests the archive itself names.

use std::collections::HashMap;
use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One image of a docker archive, from manifest.json.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestEntry {
    /// Path of the image config inside the archive.
    #[serde(rename = "Config")]
    pub config: String,
    /// Tags the image was saved under.
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layer tars, bottom first.
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

/// Parses a manifest.json.
pub fn parse_manifest(bytes: &[u8]) -> Result<Vec<ManifestEntry>, String> {
    serde_json::from_slice(bytes)
        .map_err(|e| format!("manifest.json is not a docker manifest: {e}"))
}

/// The image ID a config path implies: `<hex>.json` (legacy) or
/// `blobs/sha256/<hex>` (OCI) give `sha256:<hex>`.
pub fn image_id(config_path: &str) -> Option<String> {
    let hex = config_path
        .strip_suffix(".json")
        .or_else(|| config_path.strip_prefix("blobs/sha256/"))?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| format!("sha256:{hex}"))
}

/// An image as recorded in snapshot metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Docker image ID (`sha256:<config digest>`).
    pub id: String,
    /// Tags.
    pub tags: Vec<String>,
}

/// Images named by a manifest.json.
pub fn images(manifest: &[ManifestEntry]) -> Vec<ImageInfo> {
    manifest
        .iter()
        .filter_map(|m| {
            Some(ImageInfo {
                id: image_id(&m.config)?,
                tags: m.repo_tags.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// What [`verify`] found.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The images, with IDs checked against their configs' digests.
    pub images: Vec<ImageInfo>,
    /// Layer blobs checked.
    pub layers: usize,
    /// "legacy" or "oci".
    pub layout: &'static str,
}

/// Small JSON files (configs, manifests) are kept for parsing; this bounds
/// how much of them is kept in all.
const MAX_KEPT: usize = 64 << 20;
const MAX_KEPT_FILE: u64 = 8 << 20;

fn strip_dot(p: &str) -> &str {
    p.strip_prefix("./").unwrap_or(p)
}

/// Reads a docker archive to its end, hashing every file with sha256, then
/// checks each image's config against its ID and each layer against the
/// diff_id its config names (legacy) or the digest in its blob name (OCI).
/// Memory stays bounded: only small JSON files are kept.
pub fn verify<R: Read>(input: R) -> Result<Verified, String> {
    let contents = Contents::read(input)?;
    contents.check_blob_names()?;
    let manifest = contents
        .kept
        .get("manifest.json")
        .ok_or("no manifest.json: not a docker archive")?;
    let manifest = parse_manifest(manifest)?;
    let mut images = Vec::new();
    let mut layers = 0;
    for m in &manifest {
        images.push(contents.check_image(m)?);
        layers += m.layers.len();
    }
    Ok(Verified {
        images,
        layers,
        layout: if contents.oci { "oci" } else { "legacy" },
    })
}

/// What one pass over an archive learned: the sha256 of every regular file,
/// where every link points, and the bytes of the small JSON files.
#[derive(Default)]
struct Contents {
    /// Path of each regular file to the hex sha256 of its bytes.
    digests: HashMap<String, String>,
    /// Path of each symlink or hard link to the path it resolves to.
    links: HashMap<String, String>,
    /// Bytes of the small JSON files, by path.
    kept: HashMap<String, Vec<u8>>,
    /// Total of `kept`, bounded by [`MAX_KEPT`].
    kept_bytes: usize,
    /// Whether an `oci-layout` file was seen.
    oci: bool,
}

impl Contents {
    /// Walks the tar, hashing each file, and then reads on to the very end.
    fn read<R: Read>(input: R) -> Result<Contents, String> {
        let mut contents = Contents::default();
        let mut archive = tar::Archive::new(input);
        let entries = archive
            .entries()
            .map_err(|e| format!("not a tar archive: {e}"))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("damaged tar archive: {e}"))?;
            contents.entry(entry)?;
        }
        // Read to the very end (zero blocks, record padding), so the writer
        // feeding this reader never sees a closed pipe on a good archive.
        std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
            .map_err(|e| format!("reading archive: {e}"))?;
        Ok(contents)
    }

    /// Records one tar entry: a link's target, or a regular file's digest
    /// (and its bytes, if it is small JSON). Other kinds are skipped.
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), String> {
        let path = entry.path().map_err(|e| format!("bad entry name: {e}"))?;
        let path = strip_dot(&path.to_string_lossy()).to_string();
        let kind = entry.header().entry_type();
        if path == "oci-layout" {
            self.oci = true;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            if let Ok(Some(target)) = entry.link_name() {
                let target = target.to_string_lossy().into_owned();
                let resolved = if kind.is_symlink() {
                    resolve(&path, &target)
                } else {
                    strip_dot(&target).to_string()
                };
                self.links.insert(path, resolved);
            }
            return Ok(());
        }
        if !kind.is_file() {
            return Ok(());
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        let mut hasher = Sha256::new();
        let mut keep = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut first = true;
        let mut keeping = size <= MAX_KEPT_FILE && self.kept_bytes + size as usize <= MAX_KEPT;
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| format!("reading {path}: {e}"))?;
            if n == 0 {
                break;
            }
            if first {
                keeping &= buf[0] == b'{' || buf[0] == b'[';
                first = false;
            }
            hasher.update(&buf[..n]);
            if keeping {
                keep.extend_from_slice(&buf[..n]);
            }
        }
        if keeping && !keep.is_empty() {
            self.kept_bytes += keep.len();
            self.kept.insert(path.clone(), keep);
        }
        self.digests.insert(path, crate::hex(&hasher.finalize()));
        Ok(())
    }

    /// Blobs must match their names.
    fn check_blob_names(&self) -> Result<(), String> {
        for (path, digest) in &self.digests {
            if let Some(hex) = path.strip_prefix("blobs/sha256/")
                && hex != digest
            {
                return Err(format!(
                    "blob {path} has sha256 {digest}: the archive is damaged"
                ));
            }
        }
        Ok(())
    }

    /// The digest of the file a path names, following links (at most 16).
    fn lookup(&self, p: &str) -> Option<&String> {
        let mut p = strip_dot(p).to_string();
        for _ in 0..16 {
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        self.digests.get(&p)
    }

    /// Checks one manifest entry: its config against the image ID it is
    /// named by, and each layer against its config's diff_ids.
    fn check_image(&self, m: &ManifestEntry) -> Result<ImageInfo, String> {
        let id = image_id(&m.config)
            .ok_or_else(|| format!("config path {} names no digest", m.config))?;
        let digest = self
            .lookup(&m.config)
            .ok_or_else(|| format!("config {} is missing from the archive", m.config))?;
        if id[7..] != *digest {
            return Err(format!(
                "config {} has sha256 {digest}, not the image ID it is named by",
                m.config
            ));
        }
        let config = self
            .kept
            .get(strip_dot(&m.config))
            .ok_or_else(|| format!("config {} is not JSON", m.config))?;
        let config: serde_json::Value = serde_json::from_slice(config)
            .map_err(|e| format!("config {} is not JSON: {e}", m.config))?;
        let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        if diff_ids.len() != m.layers.len() {
            return Err(format!(
                "image {} lists {} layers but its config names {} diff_ids",
                id,
                m.layers.len(),
                diff_ids.len()
            ));
        }
        for (layer, diff_id) in m.layers.iter().zip(&diff_ids) {
            let digest = self
                .lookup(layer)
                .ok_or_else(|| format!("layer {layer} is missing from the archive"))?;
            let named_by_blob = strip_dot(layer).starts_with("blobs/sha256/");
            // An uncompressed layer's digest is its diff_id; a compressed OCI
            // blob was already checked against its name above.
            if !named_by_blob && diff_id.strip_prefix("sha256:") != Some(digest.as_str()) {
                return Err(format!(
                    "layer {layer} of {id} has sha256 {digest} but the image config names {diff_id}"
                ));
            }
        }
        Ok(ImageInfo {
            id,
            tags: m.repo_tags.clone().unwrap_or_default(),
        })
    }
}

/// Resolves a symlink target relative to the link's directory.
fn resolve(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for t in target.split('/') {
        match t {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            t => parts.push(t),
        }
    }
    parts.join("/")
}
