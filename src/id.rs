//! The identities ferry passes around: a chunk's BLAKE3 id, a snapshot's
//! BLAKE3 digest, and a chunk's row in the store's index.
//!
//! Ids and digests print as lower-case hex (`{:.16}` gives the short form
//! messages use) and serialize to JSON as that hex string.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Defines a 32-byte BLAKE3 value type with hex printing and parsing.
macro_rules! blake3_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// BLAKE3 of `data`.
            pub fn of(data: &[u8]) -> $name {
                $name(*blake3::hash(data).as_bytes())
            }

            /// From its 32 bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> $name {
                $name(bytes)
            }

            /// Its 32 bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Parses 64 hex digits.
            pub fn from_hex(s: &str) -> Option<$name> {
                blake3::Hash::from_hex(s).ok().map(|h| $name(*h.as_bytes()))
            }

            /// The first 16 hex digits, as messages show it.
            pub fn short(&self) -> String {
                format!("{self:.16}")
            }
        }

        impl TryFrom<&[u8]> for $name {
            type Error = std::array::TryFromSliceError;

            fn try_from(b: &[u8]) -> Result<$name, Self::Error> {
                <[u8; 32]>::try_from(b).map($name)
            }
        }

        impl From<[u8; 32]> for $name {
            fn from(b: [u8; 32]) -> $name {
                $name(b)
            }
        }

        impl From<blake3::Hash> for $name {
            fn from(h: blake3::Hash) -> $name {
                $name(*h.as_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(blake3::Hash::from_bytes(self.0).to_hex().as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<$name, String> {
                $name::from_hex(s).ok_or_else(|| format!("not a {}: {s}", $what))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

blake3_id!(
    /// A chunk's id: the BLAKE3 of its bytes.
    ChunkId,
    "chunk id (64 hex digits)"
);

blake3_id!(
    /// The BLAKE3 of a snapshot's whole stream, what checkout verifies.
    SnapshotDigest,
    "snapshot digest (64 hex digits)"
);

/// A chunk's row in the store's index (`chunks.rowid`). A row names one
/// chunk for as long as it exists; gc deletes a row only together with
/// every reference to it, so a number it frees may be taken again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkRow(pub i64);

impl fmt::Display for ChunkRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_shortens() {
        let id = ChunkId::of(b"abc");
        let hex = blake3::hash(b"abc").to_hex().to_string();
        assert_eq!(id.to_string(), hex);
        assert_eq!(id.short(), hex[..16]);
        assert_eq!(hex.parse::<ChunkId>().unwrap(), id);
        assert_eq!(
            SnapshotDigest::from_hex(&hex).unwrap().as_bytes(),
            id.as_bytes()
        );
        assert!(SnapshotDigest::from_hex(&hex[1..]).is_none());
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{hex}\""));
    }
}
