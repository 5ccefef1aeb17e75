//! Why a WAL object could not be encoded or decoded.

use arrow_schema::{ArrowError, DataType};

use super::format::WAL_TRAILER_LEN;
use crate::error::{ErrorKind, HasKind};
use crate::ids::{StreamId, TimestampMicros};

/// Why a WAL object could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum WalEncodeError {
    /// A WAL object without chunks has nothing to say; the writer should not upload it.
    #[error("a wal object needs at least one chunk")]
    NoChunks,
    /// The column (or a field nested in it, named by a dotted path) has a type the WAL format
    /// does not store: dictionary, view (Utf8View, BinaryView, ListView), union and
    /// run-end-encoded types, whose buffers are not self-contained or not laid out per column.
    #[error("unsupported type for wal column `{column}`: {data_type}")]
    UnsupportedType { column: String, data_type: DataType },
    /// `min_ts` is after `max_ts`.
    #[error("chunk for {stream} has min_ts {} after max_ts {}", .min_ts.0, .max_ts.0)]
    InvalidTimeRange {
        stream: StreamId,
        min_ts: TimestampMicros,
        max_ts: TimestampMicros,
    },
    /// More chunks than the footer's u32 count can list.
    #[error("a wal object holds at most {} chunks, got {count}", u32::MAX)]
    TooManyChunks { count: usize },
    /// A count or length does not fit its field in the footer.
    #[error("chunk for {stream} does not fit the wal format: {what} is {value}, at most {limit}")]
    ChunkTooLarge {
        stream: StreamId,
        what: &'static str,
        value: u64,
        limit: u64,
    },
    /// The footer is longer than its u32 length field allows.
    #[error("wal footer is {len} bytes, at most {} allowed", u32::MAX)]
    FooterTooLarge { len: usize },
    /// Arrow IPC refused to encode the batch.
    #[error("arrow ipc encoding failed for chunk of {stream}: {source}")]
    Arrow {
        stream: StreamId,
        #[source]
        source: ArrowError,
    },
    /// Arrow IPC produced a message this codec does not understand (for example after an
    /// arrow-ipc upgrade changed its layout). A bug, not bad input: nothing is uploaded.
    #[error("arrow ipc wrote an unexpected layout for chunk of {stream}: {detail}")]
    UnexpectedLayout { stream: StreamId, detail: String },
    /// The encoded object does not decode to the footer that was written. A bug in this codec,
    /// caught before upload.
    #[error("encoded wal object fails its read-back check: {detail}")]
    ReadBack { detail: String },
}

/// Why WAL object bytes could not be decoded. Apart from the caller errors (`UnsupportedType`,
/// `ProjectionOutOfRange`, `DuplicateProjection`, `ColumnCount`), each variant means the bytes
/// are corrupt or not a version 1 WAL object.
#[derive(Debug, thiserror::Error)]
pub enum WalDecodeError {
    /// The object cannot even hold a header and a trailer.
    #[error("wal object too short: {len} bytes")]
    TooShort { len: usize },
    /// The header or trailer does not carry [`WAL_MAGIC`].
    #[error("bad wal magic in the {location}")]
    BadMagic { location: &'static str },
    /// The header or trailer names a format version this reader does not know.
    #[error("unsupported wal format version {version}")]
    UnsupportedVersion { version: u16 },
    /// The header or trailer sets flags this reader does not know.
    #[error("unsupported wal flags {flags:#06x}")]
    UnsupportedFlags { flags: u16 },
    /// The header and the trailer name different versions or flags.
    #[error(
        "wal header (version {header_version}, flags {header_flags:#06x}) and trailer \
         (version {trailer_version}, flags {trailer_flags:#06x}) disagree"
    )]
    HeaderTrailerMismatch {
        header_version: u16,
        header_flags: u16,
        trailer_version: u16,
        trailer_flags: u16,
    },
    /// `decode_trailer` was not given exactly the trailer.
    #[error("wal trailer must be {WAL_TRAILER_LEN} bytes, got {len}")]
    TrailerLength { len: usize },
    /// The trailer places the footer somewhere other than just before itself.
    #[error(
        "wal footer at {footer_offset} of {footer_len} bytes does not end at the trailer of a \
         {object_len}-byte object"
    )]
    FooterOutOfBounds {
        footer_offset: u64,
        footer_len: u32,
        object_len: u64,
    },
    /// `decode_footer` was given a different number of bytes than the trailer says.
    #[error("wal footer length mismatch: trailer says {expected} bytes, got {found}")]
    FooterLength { expected: u32, found: usize },
    /// The footer bytes do not match the trailer's checksum.
    #[error("wal footer checksum mismatch: expected {expected:#010x}, found {found:#010x}")]
    FooterChecksum { expected: u32, found: u32 },
    /// A footer field runs past the end of the footer.
    #[error("wal footer truncated: field at byte {offset} runs past its end ({footer_len} bytes)")]
    FooterTruncated { offset: usize, footer_len: usize },
    /// Bytes follow the last footer entry.
    #[error("wal footer has {extra} bytes after its last entry")]
    FooterTrailingBytes { extra: usize },
    /// The footer lists no chunks; no writer produces such an object.
    #[error("wal footer lists no chunks")]
    NoChunks,
    /// A footer entry contradicts the layout rules (position, alignment, ranges).
    #[error("wal footer entry for chunk {chunk} is malformed: {detail}")]
    MalformedChunkEntry { chunk: u32, detail: String },
    /// The last chunk does not end (padded to 8) where the footer starts.
    #[error("wal chunks end at {chunks_end} but the footer starts at {footer_offset}")]
    FooterMisplaced { chunks_end: u64, footer_offset: u64 },
    /// Padding between chunks, or before the footer, is not zero.
    #[error("nonzero padding byte at wal object offset {offset}")]
    NonZeroPadding { offset: u64 },
    /// `decode_chunk` was given bytes that do not fit the chunk's metadata and body offsets.
    #[error(
        "wal chunk layout is inconsistent: meta_len {meta_len}, body_offset {body_offset}, \
         chunk length {chunk_len}"
    )]
    BadChunkLayout {
        meta_len: u32,
        body_offset: u32,
        chunk_len: usize,
    },
    /// The chunk bytes do not match their checksum.
    #[error("wal chunk checksum mismatch: expected {expected:#010x}, found {found:#010x}")]
    ChunkChecksum { expected: u32, found: u32 },
    /// The chunk metadata given to [`decode_projected`] does not match its checksum.
    #[error("wal chunk metadata checksum mismatch: expected {expected:#010x}, found {found:#010x}")]
    MetaChecksum { expected: u32, found: u32 },
    /// A projected column's bytes do not match their checksum.
    #[error(
        "wal column `{column}` checksum mismatch: expected {expected:#010x}, found {found:#010x}"
    )]
    ColumnChecksum {
        column: String,
        expected: u32,
        found: u32,
    },
    /// The caller passed column ranges for a different number of columns than the schema has.
    #[error("wal chunk has {found} column ranges, the schema has {expected} columns")]
    ColumnCount { expected: usize, found: usize },
    /// The footer's range for a column differs from the one the chunk metadata implies.
    #[error(
        "wal column `{column}` is at {footer_offset}+{footer_len} in the footer but at \
         {meta_offset}+{meta_len} in the chunk metadata"
    )]
    ColumnRangeMismatch {
        column: String,
        footer_offset: u64,
        footer_len: u64,
        meta_offset: u64,
        meta_len: u64,
    },
    /// The Arrow IPC metadata of a chunk is not a valid record batch message for the schema.
    #[error("invalid arrow ipc metadata in wal chunk: {detail}")]
    InvalidMetadata { detail: String },
    /// The schema given to decode with has a type the WAL format does not store.
    #[error("unsupported type for wal column `{column}`: {data_type}")]
    UnsupportedType { column: String, data_type: DataType },
    /// A projection names a column the schema does not have.
    #[error("projection index {index} is out of range for {column_count} columns")]
    ProjectionOutOfRange { index: usize, column_count: usize },
    /// A projection names a column twice.
    #[error("projection names column {index} twice")]
    DuplicateProjection { index: usize },
    /// Arrow rejected the decoded arrays (for example offsets past the end of their values).
    #[error("arrow ipc decoding failed for wal chunk: {source}")]
    Arrow {
        #[source]
        source: ArrowError,
    },
}

impl HasKind for WalEncodeError {
    fn kind(&self) -> ErrorKind {
        match self {
            WalEncodeError::NoChunks
            | WalEncodeError::UnsupportedType { .. }
            | WalEncodeError::InvalidTimeRange { .. }
            | WalEncodeError::TooManyChunks { .. }
            | WalEncodeError::ChunkTooLarge { .. }
            | WalEncodeError::FooterTooLarge { .. } => ErrorKind::InvalidInput,
            WalEncodeError::Arrow { .. }
            | WalEncodeError::UnexpectedLayout { .. }
            | WalEncodeError::ReadBack { .. } => ErrorKind::Internal,
        }
    }
}

impl HasKind for WalDecodeError {
    fn kind(&self) -> ErrorKind {
        match self {
            WalDecodeError::UnsupportedType { .. }
            | WalDecodeError::ProjectionOutOfRange { .. }
            | WalDecodeError::DuplicateProjection { .. }
            | WalDecodeError::ColumnCount { .. } => ErrorKind::InvalidInput,
            // Everything else: the bytes are corrupt, or not a WAL object this reader can read.
            _ => ErrorKind::Corruption,
        }
    }
}
