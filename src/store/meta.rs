//! A snapshot's metadata: where it came from, how its input was split,
//! what docker images it holds, how it arrived.
//!
//! It is stored as JSON text in the index and carried as JSON text in packs.
//! The text is always written as one object with its keys sorted at every
//! level, so a stored or packed record reads back to the same bytes.
//! Reading is lenient, so that metadata written by a newer ferry (a field
//! this version does not know, one it lacks) still shows its images and
//! tags; writing is exact: a key this version does not know, or a known key
//! whose value does not read back to the same JSON, is written back as it
//! was.

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
    /// When its name (a tag) was last set to it, in milliseconds since the
    /// Unix epoch on the clock of the store that set it (the sender's, for
    /// a received snapshot). A pack that would move a tag to a snapshot
    /// tagged earlier than the one the receiver has is refused.
    pub tagged_at_ms: Option<i64>,
    /// Set once its tag moved to another snapshot: it keeps a name of the
    /// form `TAG@DIGEST` and stays usable (a delta base, say) until removed.
    pub untagged: Option<Untagged>,
    /// Keys this version does not read, kept as they were.
    pub other: Map<String, Value>,
    /// Known keys whose values did not read back to the same JSON (fields
    /// of a newer ferry, say): written back as they were, not as read.
    pub verbatim: Map<String, Value>,
}

/// A snapshot whose tag moved on (see [`SnapshotMeta::untagged`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Untagged {
    /// The tag it had.
    pub tag: String,
    /// When the tag moved (Unix seconds, this store's clock).
    pub at: i64,
}

/// The docker images of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerMeta {
    /// `oci` or `legacy` archive layout.
    #[serde(default)]
    pub layout: String,
    /// Image IDs and their tags.
    pub images: Vec<ImageInfo>,
}

/// The compressed file a snapshot was decompressed from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompressedMeta {
    /// Compression format name (`gzip`, `zstd`, ...).
    pub format: String,
    /// Bytes of the compressed file.
    pub size: u64,
    /// BLAKE3 of the compressed file, hex.
    pub blake3: String,
}

/// How a snapshot arrived from a pack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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

/// Takes `key` out of `m` as a `T`. A value that does not read as one
/// stays in `m`; one that reads but does not write back to the same JSON
/// also goes to `verbatim`, which is what gets written.
fn take<T: serde::de::DeserializeOwned + Serialize>(
    m: &mut Map<String, Value>,
    verbatim: &mut Map<String, Value>,
    key: &str,
) -> Option<T> {
    let v = m.get(key)?;
    let t = T::deserialize(v).ok()?;
    let v = m.remove(key)?;
    if serde_json::to_value(&t).ok().as_ref() != Some(&v) {
        verbatim.insert(key.into(), v);
    }
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
            Ok(Value::Object(mut m)) => {
                let mut v = Map::new();
                SnapshotMeta {
                    source: take(&mut m, &mut v, "source"),
                    tar_entries: take(&mut m, &mut v, "tar_entries"),
                    split: take(&mut m, &mut v, "split"),
                    repo_tags: take(&mut m, &mut v, "repo_tags"),
                    docker: take(&mut m, &mut v, "docker"),
                    compressed: take(&mut m, &mut v, "compressed"),
                    received: take(&mut m, &mut v, "received"),
                    tagged_at_ms: take(&mut m, &mut v, "tagged_at_ms"),
                    untagged: take(&mut m, &mut v, "untagged"),
                    other: m,
                    verbatim: v,
                }
            }
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
        put(&mut m, "tagged_at_ms", &self.tagged_at_ms);
        put(&mut m, "untagged", &self.untagged);
        for (k, v) in &self.verbatim {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }

    /// Records how the snapshot arrived, replacing what an earlier arrival
    /// recorded.
    pub fn set_received(&mut self, received: ReceivedMeta) {
        self.verbatim.remove("received");
        self.received = Some(received);
    }

    /// Marks the snapshot as having lost its tag `tag` at `at`.
    pub fn set_untagged(&mut self, tag: &str, at: i64) {
        self.verbatim.remove("untagged");
        self.untagged = Some(Untagged {
            tag: tag.to_string(),
            at,
        });
    }

    /// When its tag was set, falling back to `added_at` (seconds) for
    /// snapshots recorded before tag times were.
    pub fn tag_time_ms(&self, added_at: i64) -> i64 {
        self.tagged_at_ms.unwrap_or(added_at.saturating_mul(1000))
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
        assert!(m.repo_tags.is_none(), "a string is not a list of tags");
        assert_eq!(m.split, Some(SplitStats::default()), "read leniently");
        assert_eq!(m.to_json(), text);
    }

    #[test]
    fn a_newer_ferrys_fields_are_read_leniently_and_written_back_as_they_were() {
        let text = r#"{"docker":{"images":[{"id":"sha256:1","platform":"arm64","tags":["a:1"]}],"layout":"oci","zones":3},"received":{"at":5}}"#;
        let mut m = SnapshotMeta::from_json(text);
        assert_eq!(m.images()[0].tags, ["a:1"]);
        assert_eq!(m.received.as_ref().unwrap().at, 5);
        assert_eq!(m.to_json(), text, "nothing added, nothing dropped");
        m.set_received(ReceivedMeta {
            pack: Some("p.ferry".into()),
            at: 9,
            ..ReceivedMeta::default()
        });
        assert_eq!(
            m.to_json(),
            r#"{"docker":{"images":[{"id":"sha256:1","platform":"arm64","tags":["a:1"]}],"layout":"oci","zones":3},"received":{"at":9,"pack":"p.ferry"}}"#
        );
    }

    #[test]
    fn non_objects_read_as_empty() {
        assert_eq!(SnapshotMeta::from_json("null"), SnapshotMeta::default());
        assert_eq!(SnapshotMeta::from_json("garbage"), SnapshotMeta::default());
        assert_eq!(SnapshotMeta::default().to_json(), "{}");
    }
}
