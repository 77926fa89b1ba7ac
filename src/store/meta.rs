//! A snapshot's metadata: where it came from, how its input was split,
//! what docker images it holds, how it arrived.
//!
//! It is stored as JSON text in the index and carried as JSON text in packs.
//! The text is always written as one object with its keys sorted at every
//! level, so a stored or packed record reads back to the same bytes. A key
//! this version does not know, or a known key holding something it cannot
//! read, is kept as it was and written back unchanged.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::archive::image::ImageInfo;
use crate::chunker::SplitStats;

/// What ferry records about a snapshot besides its recipe.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotMeta {
    /// Where the input was read from (a path, `-`, or `docker:` references).
    pub source: Option<String>,
    /// Tar entries in the outer archive, when the input was a tar.
    pub tar_entries: Option<u64>,
    /// Where the input's bytes went when it was split.
    pub split: Option<SplitStats>,
    /// Tags named in a docker archive's manifest.
    pub repo_tags: Option<Vec<String>>,
    /// The docker images in the input.
    pub docker: Option<DockerMeta>,
    /// The compressed file the input was decompressed from.
    pub compressed: Option<CompressedMeta>,
    /// How the snapshot arrived, when it was unpacked from a pack.
    pub received: Option<ReceivedMeta>,
    /// Keys this version does not read, kept as they were.
    pub other: Map<String, Value>,
}

/// The docker images of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerMeta {
    /// `oci` or `legacy` archive layout.
    pub layout: String,
    /// Image IDs and their tags.
    pub images: Vec<ImageInfo>,
}

/// The compressed file a snapshot was decompressed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressedMeta {
    /// Compression format name (`gzip`, `zstd`, ...).
    pub format: String,
    /// Bytes of the compressed file.
    pub size: u64,
    /// BLAKE3 of the compressed file, hex.
    pub blake3: String,
}

/// How a snapshot arrived from a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceivedMeta {
    /// File name of the pack (null when it has none).
    pub pack: Option<String>,
    /// Seconds since the Unix epoch when it was unpacked.
    pub at: i64,
    /// Chunks of the pack's table, when this unpack read all of them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub chunks: Option<u64>,
    /// Of those, how many came as deltas.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub delta_chunks: Option<u64>,
    /// And how many bytes those deltas took.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub delta_bytes: Option<u64>,
}

/// Takes `key` out of `m` as a `T`; a value that does not read as one stays
/// in `m`.
fn take<T: serde::de::DeserializeOwned>(m: &mut Map<String, Value>, key: &str) -> Option<T> {
    let v = m.get(key)?;
    let t = T::deserialize(v).ok()?;
    m.remove(key);
    Some(t)
}

/// Puts `v` into `m` under `key` when present.
fn put<T: Serialize>(m: &mut Map<String, Value>, key: &str, v: &Option<T>) {
    if let Some(v) = v {
        m.insert(
            key.into(),
            serde_json::to_value(v).expect("metadata serializes"),
        );
    }
}

impl SnapshotMeta {
    /// Reads stored or packed metadata text; text that is not a JSON object
    /// reads as empty metadata.
    pub fn from_json(text: &str) -> SnapshotMeta {
        match serde_json::from_str(text) {
            Ok(Value::Object(mut m)) => SnapshotMeta {
                source: take(&mut m, "source"),
                tar_entries: take(&mut m, "tar_entries"),
                split: take(&mut m, "split"),
                repo_tags: take(&mut m, "repo_tags"),
                docker: take(&mut m, "docker"),
                compressed: take(&mut m, "compressed"),
                received: take(&mut m, "received"),
                other: m,
            },
            _ => SnapshotMeta::default(),
        }
    }

    /// As one JSON object, keys sorted at every level.
    pub fn to_value(&self) -> Value {
        let mut m = self.other.clone();
        put(&mut m, "source", &self.source);
        put(&mut m, "tar_entries", &self.tar_entries);
        put(&mut m, "split", &self.split);
        put(&mut m, "repo_tags", &self.repo_tags);
        put(&mut m, "docker", &self.docker);
        put(&mut m, "compressed", &self.compressed);
        put(&mut m, "received", &self.received);
        Value::Object(m)
    }

    /// The text stored in the index and carried in packs.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    /// The docker images recorded (none when it holds no docker archive).
    pub fn images(&self) -> &[ImageInfo] {
        self.docker.as_ref().map_or(&[], |d| &d.images)
    }
}

impl Serialize for SnapshotMeta {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_with_unknown_and_unreadable_keys() {
        let text = r#"{"compressed":{"blake3":"ab","format":"gzip","size":3},"docker":{"images":[{"id":"sha256:1","tags":["a:1"]}],"layout":"oci"},"future":[1,2],"received":{"at":5,"pack":null},"repo_tags":"not a list","source":"x.tar","split":{"weird":true},"tar_entries":4}"#;
        let m = SnapshotMeta::from_json(text);
        assert_eq!(m.source.as_deref(), Some("x.tar"));
        assert_eq!(m.tar_entries, Some(4));
        assert_eq!(m.images()[0].id, "sha256:1");
        assert_eq!(m.compressed.as_ref().unwrap().format, "gzip");
        assert_eq!(m.received.as_ref().unwrap().pack, None);
        assert!(m.split.is_none() && m.repo_tags.is_none());
        assert_eq!(m.to_json(), text);
    }

    #[test]
    fn non_objects_read_as_empty() {
        assert_eq!(SnapshotMeta::from_json("null"), SnapshotMeta::default());
        assert_eq!(SnapshotMeta::from_json("garbage"), SnapshotMeta::default());
        assert_eq!(SnapshotMeta::default().to_json(), "{}");
    }
}
