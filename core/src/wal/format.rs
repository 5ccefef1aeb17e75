//! The WAL object's constants and the records its footer holds (see docs/wal-format.md).

use arrow_array::RecordBatch;
use bytes::Bytes;

use crate::ids::{SchemaId, StreamId, TimestampMicros};

/// First and last eight bytes of every WAL object.
pub const WAL_MAGIC: [u8; 8] = *b"INLETWAL";

/// Version of the layout this module writes, and the only one it reads. Bumped for every
/// change an older reader would misread; optional features get a flag instead.
pub const WAL_FORMAT_VERSION: u16 = 1;

/// Length of the header: magic (8), format version (u16), flags (u16), reserved (u32).
pub const WAL_HEADER_LEN: usize = 16;

/// Length of the trailer, the last bytes of an object: footer offset (u64), footer length
/// (u32), footer crc32c (u32), format version (u16), flags (u16), reserved (u32), magic (8).
/// A reader GETs these bytes first; they carry the version and flags so that a reader that
/// never fetches the header can still check them.
pub const WAL_TRAILER_LEN: usize = 32;

/// Flags (in the header and, the same, in the trailer) this version understands. None yet:
/// bit 0 is reserved for Arrow IPC body compression. A reader rejects any flag it does not
/// know, since the flag may change how the bytes must be read.
pub(super) const KNOWN_FLAGS: u16 = 0;

/// Arrow IPC pads every buffer of a chunk's body to a multiple of this. 8 rather than
/// arrow-ipc's default 64, which dominates small chunks; readers take buffer positions from the
/// metadata, and arrow-ipc's reader copies a buffer its type needs more aligned (16-byte
/// decimals) instead of failing (see [`read_batch`]).
pub(super) const IPC_BUFFER_ALIGNMENT: usize = 8;

/// Chunks (and the footer) start at multiples of this, and so does each chunk's body.
pub(super) const CHUNK_ALIGNMENT: usize = 8;

/// Bytes of one footer entry before its column ranges.
pub(super) const CHUNK_ENTRY_LEN: usize = 8 + 4 + 4 + 4 + 8 + 4 + 4 + 8 + 4 + 8 + 8 + 4 + 4 + 2;

/// Bytes of one column range in a footer entry: offset (u64), length (u64), crc32c (u32).
pub(super) const COLUMN_ENTRY_LEN: usize = 8 + 8 + 4;

/// One record batch to store in a WAL object, with the coordinates the footer records for it.
#[derive(Clone, Copy, Debug)]
pub struct ChunkInput<'a> {
    /// Stream the rows were appended to.
    pub stream: StreamId,
    /// Schema version of `batch`; a reader decodes the chunk with this schema.
    pub schema_id: SchemaId,
    /// The rows. Dictionary, view and union types are not accepted (see
    /// [`WalEncodeError::UnsupportedType`]).
    pub batch: &'a RecordBatch,
    /// Earliest writer append time of the rows.
    pub min_ts: TimestampMicros,
    /// Latest writer append time of the rows; at least `min_ts`.
    pub max_ts: TimestampMicros,
}

/// Byte range of one top-level column inside a chunk's body, with the checksum of those bytes.
/// A reader that GETs only this range can still verify what it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnRange {
    /// Offset from the start of the chunk's body.
    pub offset: u64,
    /// Length in bytes; 0 for a column whose buffers are all empty (or that has none).
    pub len: u64,
    /// crc32c of the `len` bytes at `offset`.
    pub crc32c: u32,
}

/// Everything the footer records about one chunk: where its bytes are, what they hold, and
/// their checksums.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Stream the rows belong to.
    pub stream: StreamId,
    /// Schema version to decode the chunk with.
    pub schema_id: SchemaId,
    /// Offset of the chunk from the start of the object (a multiple of 8).
    pub chunk_offset: u64,
    /// Length of the Arrow IPC message metadata (a flatbuffer) at the start of the chunk.
    pub meta_len: u32,
    /// Offset of the body from the start of the chunk: `meta_len` rounded up to 8.
    pub body_offset: u32,
    /// Length of the Arrow IPC body.
    pub body_len: u64,
    /// Number of rows in the chunk.
    pub row_count: u32,
    /// Earliest writer append time of the rows.
    pub min_ts: TimestampMicros,
    /// Latest writer append time of the rows.
    pub max_ts: TimestampMicros,
    /// crc32c of the whole chunk: metadata, padding and body.
    pub chunk_crc: u32,
    /// crc32c of the metadata alone (the chunk's first `meta_len` bytes), so that a
    /// column-pruned read, which cannot check `chunk_crc`, verifies the metadata it fetched.
    pub meta_crc: u32,
    /// Body byte range of each top-level column, in schema order.
    pub columns: Vec<ColumnRange>,
}

impl ChunkMeta {
    /// Length of the chunk from `chunk_offset` to the end of its body.
    pub fn chunk_len(&self) -> u64 {
        u64::from(self.body_offset).saturating_add(self.body_len)
    }
}

/// The footer of a WAL object: one entry per chunk, in object order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalFooter {
    /// The chunks, in the order they appear in the object.
    pub chunks: Vec<ChunkMeta>,
}

/// The fixed-size end of a WAL object: where the footer is, its checksum, and the format
/// version and flags (the same as the header's), so that a reader that fetches only the tail
/// of an object can check them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// Offset of the footer from the start of the object.
    pub footer_offset: u64,
    /// Length of the footer; it ends where the trailer starts.
    pub footer_len: u32,
    /// crc32c of the footer bytes.
    pub footer_crc: u32,
    /// Format version of the object; [`decode_trailer`] accepts only [`WAL_FORMAT_VERSION`].
    pub version: u16,
    /// Flags of the object; [`decode_trailer`] rejects any it does not know.
    pub flags: u16,
}

/// A complete WAL object, ready to upload, with the footer and trailer it contains.
#[derive(Clone, Debug)]
pub struct EncodedWal {
    /// The object's bytes.
    pub bytes: Bytes,
    /// The footer written into `bytes`.
    pub footer: WalFooter,
    /// The trailer written at the end of `bytes`.
    pub trailer: Trailer,
}

/// The `N` bytes at `at`; callers have checked the length.
pub(super) fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

pub(super) fn align_up(len: usize) -> usize {
    len.next_multiple_of(CHUNK_ALIGNMENT)
}

pub(super) fn align_up_u64(len: u64) -> u64 {
    len.next_multiple_of(CHUNK_ALIGNMENT as u64)
}

pub(super) fn pad_to_alignment(out: &mut Vec<u8>) {
    out.resize(align_up(out.len()), 0);
}
