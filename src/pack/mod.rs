//! The pack format: a self-checking stream of typed records that carries
//! chunks and snapshot recipes from one store to another. [`PackWriter`]
//! writes one to any `Write` (a file or a pipe); [`PackReader`] reads one
//! from any `Read`, bounds-checking every field before allocating for it.

mod decode;
pub mod format;
mod reader;
pub mod recipe;
mod writer;

use crate::chunker::{ChunkId, Params};
use crate::codec::Codec;
use crate::id::SnapshotDigest;

pub use decode::{decode_block, decode_group, decode_snapshot};
pub use reader::{PackReader, ReadError};
pub use writer::{
    PackWriter, block_record_len, chunk_record_len, delta_record_len, encode_header,
    encode_snapshot, group_record_len, overhead,
};

/// A snapshot a delta pack assumes the receiver already holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseRef {
    /// Its name on the sending side.
    pub name: String,
    /// Its stream size.
    pub size: u64,
    /// Its stream BLAKE3.
    pub hash: SnapshotDigest,
    /// BLAKE3 of its recipe as the sender stores it (see
    /// [`crate::store::Store::recipe_summary`]); compact recipes index into
    /// it, so the receiver's copy must match. Zero in version-1 packs.
    pub recipe: [u8; 32],
}

/// The first record of a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Chunker algorithm name.
    pub algorithm: String,
    /// Chunker parameters.
    pub params: Params,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Writing program and version.
    pub writer: String,
    /// Snapshots the receiver must already hold.
    pub bases: Vec<BaseRef>,
    /// Names of the snapshots this pack carries.
    pub snapshots: Vec<String>,
    /// Set when this pack is one volume of several (format 3).
    pub volume: Option<VolumeInfo>,
    /// Public key (ed25519) of the signer; the pack then ends with a
    /// signature after its trailer (format 3).
    pub signer: Option<[u8; 32]>,
    /// Chunks the receiver holds outside the bases (from its inventory):
    /// they follow the bases' chunk tables in the base index (format 3).
    pub extra: Vec<ChunkId>,
    /// Compression encoders the carried layers are re-created with
    /// ([`crate::archive::goenc::Encoder::name`]); a reader that does not
    /// know one refuses the pack (format 6).
    pub encoders: Vec<String>,
}

/// Where a volume sits in its set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeInfo {
    /// Identifies the set (the same in every volume).
    pub set: [u8; 16],
    /// This volume's number, from 1.
    pub index: u32,
    /// Volumes in the set.
    pub count: u32,
    /// Position of this volume's first chunk record in the set's chunk
    /// table (what compact recipes call the pack table).
    pub first: u64,
    /// Chunk records in this volume.
    pub chunks: u64,
}

/// One piece of a snapshot's recipe, by chunk id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceRef {
    /// The whole chunk.
    Whole(ChunkId),
    /// `len` bytes of the chunk from `off`.
    Slice {
        /// Chunk id.
        id: ChunkId,
        /// Offset in the chunk.
        off: u32,
        /// Length.
        len: u32,
    },
}

impl PieceRef {
    /// The chunk this piece reads.
    pub fn id(&self) -> &ChunkId {
        match self {
            PieceRef::Whole(id) | PieceRef::Slice { id, .. } => id,
        }
    }
}

/// A chunk as carried in a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecord {
    /// BLAKE3 of the decoded bytes.
    pub id: ChunkId,
    /// Encoding of `payload`.
    pub codec: Codec,
    /// Decoded length.
    pub len: u32,
    /// Encoded bytes.
    pub payload: Vec<u8>,
}

/// A chunk carried as a delta: a zstd frame whose reference prefix is the
/// decoded bytes of the `bases`, concatenated in order, which the receiver
/// holds or earlier records of the pack carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRecord {
    /// BLAKE3 of the decoded bytes.
    pub id: ChunkId,
    /// Decoded length.
    pub len: u32,
    /// The reference chunks (1 to [`MAX_DELTA_BASES`]), by their place in
    /// the tables compact recipes use.
    pub bases: Vec<recipe::TableRef>,
    /// The frame: a zstd frame, or a header-delta frame
    /// ([`crate::tardelta`]), with what format 11 left out given back.
    pub payload: Vec<u8>,
    /// Bytes the frame took in the pack.
    pub wire_len: u32,
}

/// Consecutive chunks carried as one zstd frame (format 5): the new
/// contents of one file, compressed against the old version's chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Decoded length of each chunk, in order.
    pub lens: Vec<u32>,
    /// BLAKE3 of all of them, concatenated.
    pub digest: [u8; 32],
    /// The reference chunks, in order (possibly none).
    pub bases: Vec<recipe::TableRef>,
    /// The frame, as [`DeltaRecord::payload`].
    pub payload: Vec<u8>,
    /// Bytes the frame took in the pack.
    pub wire_len: u32,
}

impl GroupRecord {
    /// Decoded bytes of all its chunks.
    pub fn out_len(&self) -> u64 {
        self.lens.iter().map(|&l| l as u64).sum()
    }
}

/// Consecutive whole chunks compressed together (format 8): a solid block.
/// The receiver cuts the frame's bytes at `lens`, hashes each chunk for
/// its id, and checks the ids against `digest` before storing any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRecord {
    /// Decoded length of each chunk, in order.
    pub lens: Vec<u32>,
    /// BLAKE3 of the chunks' ids (32 bytes each), concatenated in order.
    pub digest: [u8; 32],
    /// Bytes at the end of the block record right before this one that the
    /// frame was compressed after (zstd's prefix); 0: none (format 9).
    pub prefix: u32,
    /// The zstd frame of the chunks' bytes, concatenated.
    pub payload: Vec<u8>,
}

impl BlockRecord {
    /// Decoded bytes of all its chunks.
    pub fn out_len(&self) -> u64 {
        self.lens.iter().map(|&l| l as u64).sum()
    }
}

/// The digest a block record carries for chunks `ids`, in order.
pub fn block_digest<'i>(ids: impl IntoIterator<Item = &'i ChunkId>) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for id in ids {
        h.update(id.as_bytes());
    }
    *h.finalize().as_bytes()
}

/// A snapshot as carried in a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// Name.
    pub name: String,
    /// Stream size.
    pub size: u64,
    /// Stream BLAKE3.
    pub hash: SnapshotDigest,
    /// When it was added on the sending side.
    pub added_at: i64,
    /// Metadata as JSON text.
    pub meta: String,
    /// The recipe.
    pub pieces: Pieces,
}

/// A snapshot's recipe as a pack carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pieces {
    /// Pieces naming their chunks by id.
    Ids(Vec<PieceRef>),
    /// Compact pieces (see [`recipe`]): `count` pieces in `data`, resolved
    /// against the pack's chunk records and the bases' chunk tables.
    Compact {
        /// Number of pieces.
        count: u64,
        /// [`RECIPE_COMPACT`], [`RECIPE_COMPACT_OPS`] (format 3) or
        /// [`RECIPE_COMPACT_REL`] (format 5).
        encoding: u8,
        /// zstd-compressed piece list.
        data: Vec<u8>,
    },
}

/// A record read from a pack.
#[derive(Debug)]
pub enum Record {
    /// A chunk.
    Chunk(ChunkRecord),
    /// A chunk as a delta against another chunk (format 4).
    Delta(DeltaRecord),
    /// Several chunks as one frame (format 5).
    Group(GroupRecord),
    /// Whole chunks compressed together (format 8).
    Block(BlockRecord),
    /// A snapshot.
    Snapshot(SnapshotRecord),
}

/// Totals of a pack written or read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PackTotals {
    /// Chunk records.
    pub chunks: u64,
    /// Snapshot records.
    pub snapshots: u64,
    /// Encoded chunk bytes.
    pub chunk_bytes: u64,
    /// Decoded bytes of those chunks.
    pub raw_bytes: u64,
    /// Every byte of the pack.
    pub pack_bytes: u64,
    /// Of the chunk records, those carried as deltas.
    pub delta_chunks: u64,
    /// Their payload bytes (counted in `chunk_bytes` too).
    pub delta_bytes: u64,
    /// Group records (each carries several of the delta chunks).
    pub groups: u64,
    /// Block records (each carries several whole chunks).
    pub blocks: u64,
}

/// What a pack signature signs: a domain tag and the trailer's digest
/// (the BLAKE3 of every byte before the trailer, header included).
pub(crate) fn signed_message(digest: &[u8; 32]) -> Vec<u8> {
    let mut m = b"ferry pack signature v1\0".to_vec();
    m.extend_from_slice(digest);
    m
}
