//! The WAL object codec: the byte layout of one WAL object, which carries Arrow record batches
//! of many streams, and of the footer that lets a reader fetch one chunk, or only some columns
//! of one chunk, with ranged GETs.
//!
//! `docs/wal-format.md` describes the layout byte by byte; this module is its one
//! implementation. It is pure (bytes in, bytes out, no I/O). Every length read from an object
//! is checked against the bytes at hand before it is used, so a corrupt object yields a
//! [`WalDecodeError`], never a panic or an allocation larger than the input.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::MetadataVersion;
use arrow_ipc::reader::read_record_batch;
use arrow_ipc::writer::{
    CompressionContext, DictionaryTracker, EncodedData, IpcDataGenerator, IpcWriteOptions,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use bytes::Bytes;

use crate::error::{ErrorKind, HasKind};
use crate::ids::{Bucket, PartitionId, SchemaId, StreamId, TableId, TimestampMicros};

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
const KNOWN_FLAGS: u16 = 0;

/// Arrow IPC pads every buffer of a chunk's body to a multiple of this. 8 rather than
/// arrow-ipc's default 64, which dominates small chunks; readers take buffer positions from the
/// metadata, and arrow-ipc's reader copies a buffer its type needs more aligned (16-byte
/// decimals) instead of failing (see [`read_batch`]).
const IPC_BUFFER_ALIGNMENT: usize = 8;

/// Chunks (and the footer) start at multiples of this, and so does each chunk's body.
const CHUNK_ALIGNMENT: usize = 8;

/// Bytes of one footer entry before its column ranges.
const CHUNK_ENTRY_LEN: usize = 8 + 4 + 4 + 4 + 8 + 4 + 4 + 8 + 4 + 8 + 8 + 4 + 4 + 2;

/// Bytes of one column range in a footer entry: offset (u64), length (u64), crc32c (u32).
const COLUMN_ENTRY_LEN: usize = 8 + 8 + 4;

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

/// Encodes `chunks`, in the given order, into one WAL object.
///
/// Each batch becomes one Arrow IPC record batch message without its schema: the reader gets
/// the schema from the catalog through the chunk's `schema_id`.
pub fn encode_wal_object(chunks: &[ChunkInput<'_>]) -> Result<EncodedWal, WalEncodeError> {
    if chunks.is_empty() {
        return Err(WalEncodeError::NoChunks);
    }
    if u32::try_from(chunks.len()).is_err() {
        return Err(WalEncodeError::TooManyChunks {
            count: chunks.len(),
        });
    }
    let flags = 0u16;
    let mut out = Vec::new();
    out.extend_from_slice(&WAL_MAGIC);
    out.extend_from_slice(&WAL_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // reserved
    debug_assert_eq!(out.len(), WAL_HEADER_LEN);

    let mut metas = Vec::with_capacity(chunks.len());
    for input in chunks {
        pad_to_alignment(&mut out);
        metas.push(encode_chunk(input, &mut out)?);
    }
    pad_to_alignment(&mut out);

    let footer = WalFooter { chunks: metas };
    let footer_offset = out.len();
    footer.encode_into(&mut out);
    let footer_len = out.len() - footer_offset;
    let trailer = Trailer {
        footer_offset: footer_offset as u64,
        footer_len: u32::try_from(footer_len)
            .map_err(|_| WalEncodeError::FooterTooLarge { len: footer_len })?,
        footer_crc: crc32c::crc32c(&out[footer_offset..]),
        version: WAL_FORMAT_VERSION,
        flags,
    };
    let trailer_start = out.len();
    out.extend_from_slice(&trailer.footer_offset.to_le_bytes());
    out.extend_from_slice(&trailer.footer_len.to_le_bytes());
    out.extend_from_slice(&trailer.footer_crc.to_le_bytes());
    out.extend_from_slice(&trailer.version.to_le_bytes());
    out.extend_from_slice(&trailer.flags.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // reserved
    out.extend_from_slice(&WAL_MAGIC);
    debug_assert_eq!(out.len() - trailer_start, WAL_TRAILER_LEN);

    // Check before upload: the object must read back as exactly what we meant to write.
    match decode_object(&out) {
        Ok(decoded) if decoded == footer => {}
        Ok(_) => {
            return Err(WalEncodeError::ReadBack {
                detail: "the footer decodes differently".to_string(),
            });
        }
        Err(error) => {
            return Err(WalEncodeError::ReadBack {
                detail: error.to_string(),
            });
        }
    }

    Ok(EncodedWal {
        bytes: Bytes::from(out),
        footer,
        trailer,
    })
}

/// Appends one chunk (metadata, padding, body) to `out`, which must end 8-aligned.
fn encode_chunk(input: &ChunkInput<'_>, out: &mut Vec<u8>) -> Result<ChunkMeta, WalEncodeError> {
    let stream = input.stream;
    let batch = input.batch;
    let schema = batch.schema_ref();
    if let Some((column, data_type)) = first_unsupported_type(schema) {
        return Err(WalEncodeError::UnsupportedType { column, data_type });
    }
    if input.min_ts > input.max_ts {
        return Err(WalEncodeError::InvalidTimeRange {
            stream,
            min_ts: input.min_ts,
            max_ts: input.max_ts,
        });
    }
    let too_large = |what, value: usize, limit: u64| WalEncodeError::ChunkTooLarge {
        stream,
        what,
        value: value as u64,
        limit,
    };
    let row_count = u32::try_from(batch.num_rows())
        .map_err(|_| too_large("row count", batch.num_rows(), u32::MAX.into()))?;
    if u16::try_from(batch.num_columns()).is_err() {
        return Err(too_large(
            "column count",
            batch.num_columns(),
            u16::MAX.into(),
        ));
    }

    let options = IpcWriteOptions::try_new(IPC_BUFFER_ALIGNMENT, false, MetadataVersion::V5)
        .expect("arrow-ipc accepts 8-byte alignment with metadata version 5 and no legacy format");
    let (dictionaries, encoded) = IpcDataGenerator::default()
        .encode(
            batch,
            &mut DictionaryTracker::new(false),
            &options,
            &mut CompressionContext::default(),
        )
        .map_err(|source| WalEncodeError::Arrow { stream, source })?;
    if !dictionaries.is_empty() {
        return Err(WalEncodeError::UnexpectedLayout {
            stream,
            detail: format!(
                "{} dictionary messages for a schema without dictionaries",
                dictionaries.len()
            ),
        });
    }
    let EncodedData {
        ipc_message: meta,
        arrow_data: body,
    } = encoded;
    let layout =
        parse_layout(&meta, schema, body.len()).map_err(|e| WalEncodeError::UnexpectedLayout {
            stream,
            detail: e.to_string(),
        })?;
    let meta_len = u32::try_from(meta.len())
        .map_err(|_| too_large("metadata length", meta.len(), u32::MAX.into()))?;
    let body_offset = align_up(meta.len());
    let body_offset_u32 = u32::try_from(body_offset)
        .map_err(|_| too_large("body offset", body_offset, u32::MAX.into()))?;

    let chunk_offset = out.len();
    out.extend_from_slice(&meta);
    out.resize(chunk_offset + body_offset, 0);
    out.extend_from_slice(&body);
    let chunk_crc = crc32c::crc32c(&out[chunk_offset..]);
    let meta_crc = crc32c::crc32c(&meta);

    let columns = layout
        .columns
        .iter()
        .map(|span| ColumnRange {
            offset: span.start as u64,
            len: span.len() as u64,
            crc32c: crc32c::crc32c(&body[span.clone()]),
        })
        .collect();
    Ok(ChunkMeta {
        stream,
        schema_id: input.schema_id,
        chunk_offset: chunk_offset as u64,
        meta_len,
        body_offset: body_offset_u32,
        body_len: body.len() as u64,
        row_count,
        min_ts: input.min_ts,
        max_ts: input.max_ts,
        chunk_crc,
        meta_crc,
        columns,
    })
}

impl WalFooter {
    fn encode_into(&self, out: &mut Vec<u8>) {
        let chunk_count =
            u32::try_from(self.chunks.len()).expect("encode_wal_object checked the chunk count");
        out.extend_from_slice(&chunk_count.to_le_bytes());
        for chunk in &self.chunks {
            out.extend_from_slice(&chunk.stream.table.0.to_le_bytes());
            out.extend_from_slice(&chunk.stream.partition.0.to_le_bytes());
            out.extend_from_slice(&chunk.stream.bucket.0.to_le_bytes());
            out.extend_from_slice(&chunk.schema_id.0.to_le_bytes());
            out.extend_from_slice(&chunk.chunk_offset.to_le_bytes());
            out.extend_from_slice(&chunk.meta_len.to_le_bytes());
            out.extend_from_slice(&chunk.body_offset.to_le_bytes());
            out.extend_from_slice(&chunk.body_len.to_le_bytes());
            out.extend_from_slice(&chunk.row_count.to_le_bytes());
            out.extend_from_slice(&chunk.min_ts.0.to_le_bytes());
            out.extend_from_slice(&chunk.max_ts.0.to_le_bytes());
            out.extend_from_slice(&chunk.chunk_crc.to_le_bytes());
            out.extend_from_slice(&chunk.meta_crc.to_le_bytes());
            let column_count =
                u16::try_from(chunk.columns.len()).expect("encode_chunk checked the column count");
            out.extend_from_slice(&column_count.to_le_bytes());
            for column in &chunk.columns {
                out.extend_from_slice(&column.offset.to_le_bytes());
                out.extend_from_slice(&column.len.to_le_bytes());
                out.extend_from_slice(&column.crc32c.to_le_bytes());
            }
        }
    }
}

/// Decodes the trailer; `bytes` must be exactly the last [`WAL_TRAILER_LEN`] bytes of an object.
/// Checks the magic, and rejects format versions and flags this reader does not know.
pub fn decode_trailer(bytes: &[u8]) -> Result<Trailer, WalDecodeError> {
    if bytes.len() != WAL_TRAILER_LEN {
        return Err(WalDecodeError::TrailerLength { len: bytes.len() });
    }
    if bytes[24..32] != WAL_MAGIC {
        return Err(WalDecodeError::BadMagic {
            location: "trailer",
        });
    }
    let version = u16::from_le_bytes(array_at(bytes, 16));
    let flags = u16::from_le_bytes(array_at(bytes, 18));
    check_version_and_flags(version, flags)?;
    // Bytes 20..24 are reserved: written as zero, ignored when read.
    Ok(Trailer {
        footer_offset: u64::from_le_bytes(array_at(bytes, 0)),
        footer_len: u32::from_le_bytes(array_at(bytes, 8)),
        footer_crc: u32::from_le_bytes(array_at(bytes, 12)),
        version,
        flags,
    })
}

/// Rejects a format version or flags (from the header or the trailer) this reader does not know.
fn check_version_and_flags(version: u16, flags: u16) -> Result<(), WalDecodeError> {
    if version != WAL_FORMAT_VERSION {
        return Err(WalDecodeError::UnsupportedVersion { version });
    }
    if flags & !KNOWN_FLAGS != 0 {
        return Err(WalDecodeError::UnsupportedFlags { flags });
    }
    Ok(())
}

/// Decodes the footer; `bytes` must be exactly the `trailer.footer_len` bytes at
/// `trailer.footer_offset`. Verifies the checksum, then that every entry is consistent with the
/// layout: chunks back to back from the header to the footer, column ranges inside their body.
pub fn decode_footer(bytes: &[u8], trailer: &Trailer) -> Result<WalFooter, WalDecodeError> {
    if bytes.len() as u64 != u64::from(trailer.footer_len) {
        return Err(WalDecodeError::FooterLength {
            expected: trailer.footer_len,
            found: bytes.len(),
        });
    }
    let found = crc32c::crc32c(bytes);
    if found != trailer.footer_crc {
        return Err(WalDecodeError::FooterChecksum {
            expected: trailer.footer_crc,
            found,
        });
    }

    let mut reader = FooterReader { bytes, pos: 0 };
    let chunk_count = reader.u32()?;
    if chunk_count == 0 {
        return Err(WalDecodeError::NoChunks);
    }
    // Bound the allocation by what the footer can actually hold.
    let mut chunks = Vec::with_capacity((chunk_count as usize).min(bytes.len() / CHUNK_ENTRY_LEN));
    let mut next_chunk_offset = WAL_HEADER_LEN as u64;
    for index in 0..chunk_count {
        let chunk = reader.chunk_meta()?;
        check_chunk_entry(&chunk, next_chunk_offset).map_err(|detail| {
            WalDecodeError::MalformedChunkEntry {
                chunk: index,
                detail,
            }
        })?;
        next_chunk_offset = align_up_u64(chunk.chunk_offset + chunk.chunk_len());
        chunks.push(chunk);
    }
    let extra = bytes.len() - reader.pos;
    if extra != 0 {
        return Err(WalDecodeError::FooterTrailingBytes { extra });
    }
    if next_chunk_offset != trailer.footer_offset {
        return Err(WalDecodeError::FooterMisplaced {
            chunks_end: next_chunk_offset,
            footer_offset: trailer.footer_offset,
        });
    }
    Ok(WalFooter { chunks })
}

/// Checks one footer entry against the layout rules; `expected_offset` is where the chunk must
/// start (the header's end, or the previous chunk's end rounded up to 8). Ensures that
/// `chunk_offset + chunk_len` and every column's end cannot overflow.
fn check_chunk_entry(chunk: &ChunkMeta, expected_offset: u64) -> Result<(), String> {
    if chunk.chunk_offset != expected_offset {
        return Err(format!(
            "starts at {}, expected {expected_offset}",
            chunk.chunk_offset
        ));
    }
    let expected_body_offset = align_up_u64(u64::from(chunk.meta_len));
    if u64::from(chunk.body_offset) != expected_body_offset {
        return Err(format!(
            "body_offset is {}, expected {expected_body_offset} for meta_len {}",
            chunk.body_offset, chunk.meta_len
        ));
    }
    // Leave room for rounding the end up to the alignment.
    let end = chunk
        .chunk_offset
        .checked_add(u64::from(chunk.body_offset))
        .and_then(|body_start| body_start.checked_add(chunk.body_len))
        .filter(|end| end.checked_add(CHUNK_ALIGNMENT as u64).is_some());
    if end.is_none() {
        return Err(format!("body_len {} overflows the object", chunk.body_len));
    }
    if chunk.min_ts > chunk.max_ts {
        return Err(format!(
            "min_ts {} is after max_ts {}",
            chunk.min_ts.0, chunk.max_ts.0
        ));
    }
    let mut previous_end = 0u64;
    for (index, column) in chunk.columns.iter().enumerate() {
        let end = column.offset.checked_add(column.len);
        match end {
            Some(end) if column.offset >= previous_end && end <= chunk.body_len => {
                previous_end = end;
            }
            _ => {
                return Err(format!(
                    "column {index} at {}+{} is out of order or outside the {}-byte body",
                    column.offset, column.len, chunk.body_len
                ));
            }
        }
    }
    Ok(())
}

/// Decodes a whole object held in memory: checks the header (magic, version, flags), the
/// trailer, the footer (checksum and layout) and that padding between chunks is zero. Chunks
/// are verified when they are decoded ([`decode_chunk`]).
pub fn decode_object(bytes: &[u8]) -> Result<WalFooter, WalDecodeError> {
    let len = bytes.len();
    if len < WAL_HEADER_LEN + WAL_TRAILER_LEN {
        return Err(WalDecodeError::TooShort { len });
    }
    if bytes[..8] != WAL_MAGIC {
        return Err(WalDecodeError::BadMagic { location: "header" });
    }
    let version = u16::from_le_bytes(array_at(bytes, 8));
    let flags = u16::from_le_bytes(array_at(bytes, 10));
    check_version_and_flags(version, flags)?;
    // Bytes 12..16 are reserved: written as zero, ignored when read.

    let trailer_start = len - WAL_TRAILER_LEN;
    let trailer = decode_trailer(&bytes[trailer_start..])?;
    // Both ends were checked on their own; they must also describe the same object. (While
    // version 1 with no flags is all a reader knows, they cannot differ here.)
    if (trailer.version, trailer.flags) != (version, flags) {
        return Err(WalDecodeError::HeaderTrailerMismatch {
            header_version: version,
            header_flags: flags,
            trailer_version: trailer.version,
            trailer_flags: trailer.flags,
        });
    }
    let footer_range = usize::try_from(trailer.footer_offset)
        .ok()
        .and_then(|start| Some(start..start.checked_add(trailer.footer_len as usize)?))
        .filter(|range| range.start >= WAL_HEADER_LEN && range.end == trailer_start);
    let Some(footer_range) = footer_range else {
        return Err(WalDecodeError::FooterOutOfBounds {
            footer_offset: trailer.footer_offset,
            footer_len: trailer.footer_len,
            object_len: len as u64,
        });
    };
    let footer_start = footer_range.start;
    let footer = decode_footer(&bytes[footer_range], &trailer)?;

    // decode_footer placed the chunks back to back, ending at the footer: the gaps are padding.
    let mut gaps = Vec::with_capacity(footer.chunks.len());
    let mut previous_end = WAL_HEADER_LEN;
    for chunk in &footer.chunks {
        let start = chunk.chunk_offset as usize;
        gaps.push(previous_end..start);
        previous_end = start + chunk.chunk_len() as usize;
    }
    gaps.push(previous_end..footer_start);
    for gap in gaps {
        if let Some(at) = bytes[gap.clone()].iter().position(|&b| b != 0) {
            return Err(WalDecodeError::NonZeroPadding {
                offset: (gap.start + at) as u64,
            });
        }
    }
    Ok(footer)
}

/// Decodes a whole chunk (bytes = exactly the chunk, chunk_len long), verifying chunk_crc first.
///
/// `schema` is the schema of the chunk's `schema_id`. With a projection, only those columns
/// are decoded, in projection order.
pub fn decode_chunk(
    chunk: &[u8],
    meta_len: u32,
    body_offset: u32,
    chunk_crc: u32,
    schema: &SchemaRef,
    projection: Option<&[usize]>,
) -> Result<RecordBatch, WalDecodeError> {
    let found = crc32c::crc32c(chunk);
    if found != chunk_crc {
        return Err(WalDecodeError::ChunkChecksum {
            expected: chunk_crc,
            found,
        });
    }
    if meta_len > body_offset || body_offset as usize > chunk.len() {
        return Err(WalDecodeError::BadChunkLayout {
            meta_len,
            body_offset,
            chunk_len: chunk.len(),
        });
    }
    check_decode_schema(schema)?;
    if let Some(projection) = projection {
        check_projection(projection, schema.fields().len())?;
    }
    let meta = &chunk[..meta_len as usize];
    // One copy, into an allocation aligned for every Arrow type; buffers padded to 8 bytes
    // start 8-aligned in it, and arrow-ipc copies the few a type needs more aligned.
    let body = Buffer::from(&chunk[body_offset as usize..]);
    let layout = parse_layout(meta, schema, body.len())?;
    read_batch(&layout, &body, schema, projection)
}

/// Decodes from the metadata plus a body in which only the projected columns' ranges are
/// filled (the rest may be zeros), verifying the metadata's crc and each projected column's
/// crc, so everything decoded is verified. For ranged reads that GET only some columns.
///
/// `meta` is the chunk's first `meta_len` bytes and `meta_crc` its checksum from the footer,
/// `body` is `body_len` long (at any alignment) and `columns` are the chunk's column ranges
/// from the (checksummed) footer. Beyond its checksum, the metadata's structure is checked
/// against the schema and every column range it implies must equal the footer's, so even
/// metadata a buggy writer checksummed cannot make Arrow read bytes outside the verified
/// ranges.
pub fn decode_projected(
    meta: &[u8],
    meta_crc: u32,
    body: Buffer,
    columns: &[ColumnRange],
    schema: &SchemaRef,
    projection: &[usize],
) -> Result<RecordBatch, WalDecodeError> {
    let found = crc32c::crc32c(meta);
    if found != meta_crc {
        return Err(WalDecodeError::MetaChecksum {
            expected: meta_crc,
            found,
        });
    }
    check_decode_schema(schema)?;
    let fields = schema.fields();
    check_projection(projection, fields.len())?;
    if columns.len() != fields.len() {
        return Err(WalDecodeError::ColumnCount {
            expected: fields.len(),
            found: columns.len(),
        });
    }
    let layout = parse_layout(meta, schema, body.len())?;
    for ((field, range), span) in fields.iter().zip(columns).zip(&layout.columns) {
        if range.offset != span.start as u64 || range.len != span.len() as u64 {
            return Err(WalDecodeError::ColumnRangeMismatch {
                column: field.name().clone(),
                footer_offset: range.offset,
                footer_len: range.len,
                meta_offset: span.start as u64,
                meta_len: span.len() as u64,
            });
        }
    }
    for &index in projection {
        // parse_layout checked the span against body.len(), and it equals the footer's range.
        let found = crc32c::crc32c(&body.as_slice()[layout.columns[index].clone()]);
        let expected = columns[index].crc32c;
        if found != expected {
            return Err(WalDecodeError::ColumnChecksum {
                column: fields[index].name().clone(),
                expected,
                found,
            });
        }
    }
    read_batch(&layout, &body, schema, Some(projection))
}

fn read_batch(
    layout: &BatchLayout<'_>,
    body: &Buffer,
    schema: &SchemaRef,
    projection: Option<&[usize]>,
) -> Result<RecordBatch, WalDecodeError> {
    // arrow-ipc only reads the buffers of projected columns; it skips the others by count, so
    // the bytes of unprojected columns are never looked at. `read_record_batch` decodes with
    // `require_alignment(false)`: a buffer less aligned than its type needs (a 16-byte decimal
    // at an offset that is a multiple of 8 only, or any buffer of a body handed in at an odd
    // address) is copied into an aligned one instead of being rejected. Arrow then validates
    // every array fully (offsets, UTF-8, null counts) before returning the batch.
    read_record_batch(
        body,
        layout.batch,
        Arc::clone(schema),
        &HashMap::new(),
        projection,
        &MetadataVersion::V5,
    )
    .map_err(|source| WalDecodeError::Arrow { source })
}

fn check_decode_schema(schema: &Schema) -> Result<(), WalDecodeError> {
    match first_unsupported_type(schema) {
        Some((column, data_type)) => Err(WalDecodeError::UnsupportedType { column, data_type }),
        None => Ok(()),
    }
}

fn check_projection(projection: &[usize], column_count: usize) -> Result<(), WalDecodeError> {
    let mut seen = vec![false; column_count];
    for &index in projection {
        match seen.get_mut(index) {
            None => {
                return Err(WalDecodeError::ProjectionOutOfRange {
                    index,
                    column_count,
                });
            }
            Some(true) => return Err(WalDecodeError::DuplicateProjection { index }),
            Some(seen) => *seen = true,
        }
    }
    Ok(())
}

/// The first column (or nested field, as a dotted path) whose type the WAL format does not
/// store, with that type.
fn first_unsupported_type(schema: &Schema) -> Option<(String, DataType)> {
    fn visit(field: &Field, path: String) -> Option<(String, DataType)> {
        let data_type = field.data_type();
        let children: Vec<&Field> = match data_type {
            DataType::List(child) | DataType::LargeList(child) | DataType::Map(child, _) => {
                vec![child]
            }
            DataType::FixedSizeList(child, size) if *size >= 0 => vec![child],
            DataType::Struct(fields) => fields.iter().map(AsRef::as_ref).collect(),
            DataType::FixedSizeBinary(size) if *size >= 0 => vec![],
            DataType::Null
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Timestamp(_, _)
            | DataType::Date32
            | DataType::Date64
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Duration(_)
            | DataType::Interval(_)
            | DataType::Decimal32(_, _)
            | DataType::Decimal64(_, _)
            | DataType::Decimal128(_, _)
            | DataType::Decimal256(_, _)
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::Utf8
            | DataType::LargeUtf8 => vec![],
            DataType::FixedSizeList(_, _)
            | DataType::FixedSizeBinary(_)
            | DataType::BinaryView
            | DataType::Utf8View
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::Union(_, _)
            | DataType::Dictionary(_, _)
            | DataType::RunEndEncoded(_, _) => return Some((path, data_type.clone())),
        };
        children
            .into_iter()
            .find_map(|child| visit(child, format!("{path}.{}", child.name())))
    }
    schema
        .fields()
        .iter()
        .find_map(|field| visit(field, field.name().clone()))
}

/// What a chunk's Arrow IPC metadata says about its body, checked against a schema.
struct BatchLayout<'a> {
    /// The flatbuffer record batch, for arrow-ipc's reader.
    batch: arrow_ipc::RecordBatch<'a>,
    /// Body byte span of each top-level column: from the start of its first buffer to the end
    /// of its last one; empty (at the end of the previous column) if it has no buffers.
    columns: Vec<Range<usize>>,
}

/// Parses `meta` as an Arrow IPC record batch message and checks it against `schema` and a
/// body of `body_len` bytes, so that arrow-ipc's reader (which trusts the metadata and panics
/// on some inconsistencies) can only return errors: the field nodes and buffers are exactly as
/// many as the schema needs, every buffer lies inside the body in increasing order, row counts
/// are consistent and validity buffers cover their rows.
///
/// The buffers of an Arrow IPC record batch are laid out depth-first in field order, so each
/// top-level column's buffers are contiguous: that is what makes per-column ranges possible.
fn parse_layout<'a>(
    meta: &'a [u8],
    schema: &Schema,
    body_len: usize,
) -> Result<BatchLayout<'a>, WalDecodeError> {
    let invalid = |detail: String| WalDecodeError::InvalidMetadata { detail };
    let message = arrow_ipc::root_as_message(meta)
        .map_err(|e| invalid(format!("not an arrow ipc message: {e}")))?;
    if message.version() != MetadataVersion::V5 {
        return Err(invalid(format!(
            "metadata version {:?}, expected V5",
            message.version()
        )));
    }
    let batch = message.header_as_record_batch().ok_or_else(|| {
        invalid(format!(
            "message holds a {:?}, expected a record batch",
            message.header_type()
        ))
    })?;
    if usize::try_from(message.bodyLength()).ok() != Some(body_len) {
        return Err(invalid(format!(
            "body length is {}, the chunk body has {body_len} bytes",
            message.bodyLength()
        )));
    }
    if batch.compression().is_some() {
        return Err(invalid(
            "the body is compressed, which wal format version 1 does not allow".to_string(),
        ));
    }
    if batch
        .variadicBufferCounts()
        .is_some_and(|counts| !counts.is_empty())
    {
        return Err(invalid(
            "variadic buffer counts for a schema without view types".to_string(),
        ));
    }
    let row_count = batch.length();
    if row_count < 0 {
        return Err(invalid(format!("negative row count {row_count}")));
    }
    let nodes = batch
        .nodes()
        .ok_or_else(|| invalid("no field nodes".to_string()))?;
    let buffers = batch
        .buffers()
        .ok_or_else(|| invalid("no buffer list".to_string()))?;
    // Plain copies; bounded by the metadata's size (16 bytes each in the flatbuffer).
    let mut walker = LayoutWalker {
        nodes: nodes
            .iter()
            .map(|node| (node.length(), node.null_count()))
            .collect(),
        buffers: buffers
            .iter()
            .map(|buffer| (buffer.offset(), buffer.length()))
            .collect(),
        next_node: 0,
        spans: Vec::new(),
        body_len,
    };

    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let first_buffer = walker.spans.len();
        let column_rows = walker.field(field)?;
        if column_rows != row_count {
            return Err(invalid(format!(
                "column `{}` has {column_rows} rows, the batch has {row_count}",
                field.name()
            )));
        }
        let end = walker.spans.last().map_or(0, |span| span.end);
        let start = walker
            .spans
            .get(first_buffer)
            .map_or(end, |span| span.start);
        columns.push(start..end);
    }
    if walker.next_node != walker.nodes.len() || walker.spans.len() != walker.buffers.len() {
        return Err(invalid(format!(
            "{} field nodes and {} buffers, the schema uses {} and {}",
            walker.nodes.len(),
            walker.buffers.len(),
            walker.next_node,
            walker.spans.len()
        )));
    }
    Ok(BatchLayout { batch, columns })
}

/// Walks a schema's fields over an IPC record batch's field nodes and buffers in the order
/// arrow-ipc writes (and reads) them.
struct LayoutWalker {
    /// `(length, null_count)` of each field node.
    nodes: Vec<(i64, i64)>,
    /// `(offset, length)` of each buffer.
    buffers: Vec<(i64, i64)>,
    next_node: usize,
    /// Body spans of the buffers consumed so far; also counts them.
    spans: Vec<Range<usize>>,
    body_len: usize,
}

impl LayoutWalker {
    /// Consumes the node and buffers of `field` (and its children); returns the field's length.
    ///
    /// Buffer counts per type, as arrow-ipc 58 writes them with metadata version 5: Null has
    /// none; every other type starts with a validity buffer (empty if there are no nulls);
    /// fixed-width types, booleans and fixed-size binary add their values (2 in all), strings
    /// and binary their offsets and data (3), lists and maps their offsets and then the child
    /// (2 + child), fixed-size lists just the child (1 + child), structs their children
    /// (1 + children).
    fn field(&mut self, field: &Field) -> Result<i64, WalDecodeError> {
        let (length, null_count) = self.node(field)?;
        let data_type = field.data_type();
        let data_buffers = match data_type {
            DataType::Null => {
                if null_count != length {
                    return Err(WalDecodeError::InvalidMetadata {
                        detail: format!(
                            "null field `{}` has length {length} but null count {null_count}",
                            field.name()
                        ),
                    });
                }
                return Ok(length);
            }
            DataType::Utf8 | DataType::Binary | DataType::LargeUtf8 | DataType::LargeBinary => 2,
            DataType::List(_) | DataType::LargeList(_) | DataType::Map(_, _) => 1,
            DataType::FixedSizeList(_, _) | DataType::Struct(_) => 0,
            DataType::BinaryView
            | DataType::Utf8View
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::Union(_, _)
            | DataType::Dictionary(_, _)
            | DataType::RunEndEncoded(_, _) => {
                return Err(WalDecodeError::UnsupportedType {
                    column: field.name().clone(),
                    data_type: data_type.clone(),
                });
            }
            // Boolean, fixed-size binary and every fixed-width (primitive) type.
            _ => 1,
        };
        self.validity(field, length, null_count)?;
        let specs = arrow_data::layout(data_type).buffers;
        for index in 0..data_buffers {
            self.data_buffer(field, specs.get(index))?;
        }
        match data_type {
            DataType::List(child)
            | DataType::LargeList(child)
            | DataType::Map(child, _)
            | DataType::FixedSizeList(child, _) => {
                self.field(child)?;
            }
            DataType::Struct(children) => {
                for child in children {
                    self.field(child)?;
                }
            }
            _ => {}
        }
        Ok(length)
    }

    fn node(&mut self, field: &Field) -> Result<(i64, i64), WalDecodeError> {
        let Some(&(length, null_count)) = self.nodes.get(self.next_node) else {
            return Err(WalDecodeError::InvalidMetadata {
                detail: format!("no field node left for field `{}`", field.name()),
            });
        };
        self.next_node += 1;
        if length < 0 || null_count < 0 || null_count > length {
            return Err(WalDecodeError::InvalidMetadata {
                detail: format!(
                    "field `{}` has length {length} and null count {null_count}",
                    field.name()
                ),
            });
        }
        Ok((length, null_count))
    }

    /// Consumes the next buffer, which must lie in the body after the previous one.
    fn buffer(&mut self, field: &Field) -> Result<Range<usize>, WalDecodeError> {
        let Some(&(offset, length)) = self.buffers.get(self.spans.len()) else {
            return Err(WalDecodeError::InvalidMetadata {
                detail: format!("no buffer left for field `{}`", field.name()),
            });
        };
        let previous_end = self.spans.last().map_or(0, |span| span.end);
        let span = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(length).ok())
            .and_then(|(start, len)| Some(start..start.checked_add(len)?))
            .filter(|span| span.start >= previous_end && span.end <= self.body_len);
        let Some(span) = span else {
            return Err(WalDecodeError::InvalidMetadata {
                detail: format!(
                    "buffer {} of field `{}` at {offset}+{length} is out of order or outside \
                     the {}-byte body",
                    self.spans.len(),
                    field.name(),
                    self.body_len
                ),
            });
        };
        self.spans.push(span.clone());
        Ok(span)
    }

    /// Consumes a values or offsets buffer. Arrow views fixed-width buffers as slices of their
    /// element type and panics if the length is not a multiple of the element width.
    fn data_buffer(
        &mut self,
        field: &Field,
        spec: Option<&arrow_data::BufferSpec>,
    ) -> Result<(), WalDecodeError> {
        let span = self.buffer(field)?;
        if let Some(&arrow_data::BufferSpec::FixedWidth { byte_width, .. }) = spec
            && byte_width > 0
            && span.len() % byte_width != 0
        {
            return Err(WalDecodeError::InvalidMetadata {
                detail: format!(
                    "buffer of field `{}` has {} bytes, not a multiple of its {byte_width}-byte \
                     elements",
                    field.name(),
                    span.len()
                ),
            });
        }
        Ok(())
    }

    /// Consumes a validity buffer, which must hold a bit per row if the field has nulls.
    fn validity(
        &mut self,
        field: &Field,
        length: i64,
        null_count: i64,
    ) -> Result<(), WalDecodeError> {
        let span = self.buffer(field)?;
        let bits = (span.len() as u64).saturating_mul(8);
        if null_count > 0 && bits < length as u64 {
            return Err(WalDecodeError::InvalidMetadata {
                detail: format!(
                    "validity buffer of field `{}` has {} bytes for {length} rows",
                    field.name(),
                    span.len()
                ),
            });
        }
        Ok(())
    }
}

/// Reads footer fields, failing instead of running past the end.
struct FooterReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl FooterReader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], WalDecodeError> {
        let Some(field) = self.bytes.get(self.pos..).and_then(|rest| rest.get(..N)) else {
            return Err(WalDecodeError::FooterTruncated {
                offset: self.pos,
                footer_len: self.bytes.len(),
            });
        };
        self.pos += N;
        let mut out = [0u8; N];
        out.copy_from_slice(field);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, WalDecodeError> {
        self.take().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, WalDecodeError> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, WalDecodeError> {
        self.take().map(u64::from_le_bytes)
    }

    fn i64(&mut self) -> Result<i64, WalDecodeError> {
        self.take().map(i64::from_le_bytes)
    }

    fn chunk_meta(&mut self) -> Result<ChunkMeta, WalDecodeError> {
        let stream = StreamId::new(
            TableId(self.u64()?),
            PartitionId(self.u32()?),
            Bucket(self.u32()?),
        );
        let schema_id = SchemaId(self.u32()?);
        let chunk_offset = self.u64()?;
        let meta_len = self.u32()?;
        let body_offset = self.u32()?;
        let body_len = self.u64()?;
        let row_count = self.u32()?;
        let min_ts = TimestampMicros(self.i64()?);
        let max_ts = TimestampMicros(self.i64()?);
        let chunk_crc = self.u32()?;
        let meta_crc = self.u32()?;
        let column_count = usize::from(self.u16()?);
        let remaining = self.bytes.len() - self.pos;
        let mut columns = Vec::with_capacity(column_count.min(remaining / COLUMN_ENTRY_LEN));
        for _ in 0..column_count {
            columns.push(ColumnRange {
                offset: self.u64()?,
                len: self.u64()?,
                crc32c: self.u32()?,
            });
        }
        Ok(ChunkMeta {
            stream,
            schema_id,
            chunk_offset,
            meta_len,
            body_offset,
            body_len,
            row_count,
            min_ts,
            max_ts,
            chunk_crc,
            meta_crc,
            columns,
        })
    }
}

/// The `N` bytes at `at`; callers have checked the length.
fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

fn align_up(len: usize) -> usize {
    len.next_multiple_of(CHUNK_ALIGNMENT)
}

fn align_up_u64(len: u64) -> u64 {
    len.next_multiple_of(CHUNK_ALIGNMENT as u64)
}

fn pad_to_alignment(out: &mut Vec<u8>) {
    out.resize(align_up(out.len()), 0);
}

/// The contents of the committed version 1 fixture, shared with the example that writes it.
#[cfg(test)]
#[path = "../tests/fixtures/wal_v1.rs"]
mod fixture_v1;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use std::path::PathBuf;

    use arrow_array::builder::{
        FixedSizeBinaryBuilder, FixedSizeListBuilder, Float32Builder, Int32Builder, Int64Builder,
        LargeListBuilder, ListBuilder, MapBuilder, StringBuilder,
    };
    use arrow_array::types::Int32Type;
    use arrow_array::{
        Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal32Array, Decimal128Array,
        Decimal256Array, DictionaryArray, DurationNanosecondArray, Float64Array, Int8Array,
        Int32Array, Int64Array, IntervalMonthDayNanoArray, LargeBinaryArray, LargeStringArray,
        ListArray, NullArray, RecordBatchOptions, StringArray, StringViewArray, StructArray,
        TimestampMicrosecondArray, UInt32Array,
    };
    use arrow_buffer::{IntervalMonthDayNano, NullBuffer, OffsetBuffer, i256};
    use arrow_schema::{Fields, UnionFields, UnionMode};
    use proptest::prelude::*;

    use super::*;

    /// SplitMix64: a tiny deterministic generator for cell values, seeded by proptest (which
    /// shrinks the seed, the row count and the column kinds).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn percent(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }

        fn string(&mut self) -> String {
            const ALPHABET: [char; 8] = ['a', 'b', 'z', '0', ' ', 'é', '€', '🦀'];
            let len = self.below(9);
            (0..len)
                .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize])
                .collect()
        }

        fn bytes(&mut self) -> Vec<u8> {
            let len = self.below(12);
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// A column type the generators know how to fill.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Kind {
        Null,
        Boolean,
        Int8,
        Int64,
        UInt32,
        Float64,
        Date32,
        TimestampUtc,
        Duration,
        Interval,
        Decimal32,
        Decimal128,
        Decimal256,
        FixedSizeBinary,
        Utf8,
        LargeUtf8,
        Binary,
        LargeBinary,
        ListOfInt32,
        LargeListOfUtf8,
        FixedSizeListOfFloat32,
        Struct,
        Map,
        ListOfStruct,
        StructWithList,
    }

    const ALL_KINDS: [Kind; 25] = [
        Kind::Null,
        Kind::Boolean,
        Kind::Int8,
        Kind::Int64,
        Kind::UInt32,
        Kind::Float64,
        Kind::Date32,
        Kind::TimestampUtc,
        Kind::Duration,
        Kind::Interval,
        Kind::Decimal32,
        Kind::Decimal128,
        Kind::Decimal256,
        Kind::FixedSizeBinary,
        Kind::Utf8,
        Kind::LargeUtf8,
        Kind::Binary,
        Kind::LargeBinary,
        Kind::ListOfInt32,
        Kind::LargeListOfUtf8,
        Kind::FixedSizeListOfFloat32,
        Kind::Struct,
        Kind::Map,
        Kind::ListOfStruct,
        Kind::StructWithList,
    ];

    impl Kind {
        /// `rows` values of this kind; `null_percent` of them (roughly) null.
        fn array(self, rows: usize, null_percent: u64, rng: &mut Rng) -> ArrayRef {
            let valid = |rng: &mut Rng| !rng.percent(null_percent);
            macro_rules! values {
                ($make:expr) => {
                    (0..rows)
                        .map(|_| valid(rng).then(|| $make))
                        .collect::<Vec<_>>()
                };
            }
            match self {
                Kind::Null => Arc::new(NullArray::new(rows)),
                Kind::Boolean => Arc::new(BooleanArray::from(values!(rng.percent(50)))),
                Kind::Int8 => Arc::new(Int8Array::from(values!(rng.next() as i8))),
                Kind::Int64 => Arc::new(Int64Array::from(values!(rng.next() as i64))),
                Kind::UInt32 => Arc::new(UInt32Array::from(values!(rng.next() as u32))),
                Kind::Float64 => Arc::new(Float64Array::from(values!(rng.next() as f64 / 7.0))),
                Kind::Date32 => Arc::new(Date32Array::from(values!(rng.below(40_000) as i32))),
                Kind::TimestampUtc => Arc::new(
                    TimestampMicrosecondArray::from(values!(rng.next() as i64 >> 12))
                        .with_timezone("UTC"),
                ),
                Kind::Duration => {
                    Arc::new(DurationNanosecondArray::from(values!(rng.next() as i64)))
                }
                Kind::Interval => Arc::new(IntervalMonthDayNanoArray::from(values!(
                    IntervalMonthDayNano::new(
                        rng.below(24) as i32,
                        rng.below(31) as i32,
                        rng.next() as i64
                    )
                ))),
                Kind::Decimal32 => Arc::new(
                    Decimal32Array::from(values!(rng.below(1_000_000_000) as i32))
                        .with_precision_and_scale(9, 2)
                        .unwrap(),
                ),
                Kind::Decimal128 => Arc::new(
                    Decimal128Array::from(values!(i128::from(rng.next() as i64)))
                        .with_precision_and_scale(38, 3)
                        .unwrap(),
                ),
                Kind::Decimal256 => Arc::new(
                    Decimal256Array::from(values!(i256::from_i128(i128::from(rng.next()))))
                        .with_precision_and_scale(76, 10)
                        .unwrap(),
                ),
                Kind::FixedSizeBinary => {
                    let mut builder = FixedSizeBinaryBuilder::with_capacity(rows, 4);
                    for _ in 0..rows {
                        if valid(rng) {
                            builder
                                .append_value(&rng.next().to_le_bytes()[..4])
                                .unwrap();
                        } else {
                            builder.append_null();
                        }
                    }
                    Arc::new(builder.finish())
                }
                Kind::Utf8 => Arc::new(StringArray::from(values!(rng.string()))),
                Kind::LargeUtf8 => Arc::new(LargeStringArray::from(values!(rng.string()))),
                Kind::Binary => {
                    let values = values!(rng.bytes());
                    Arc::new(BinaryArray::from_iter(values))
                }
                Kind::LargeBinary => {
                    let values = values!(rng.bytes());
                    Arc::new(LargeBinaryArray::from_iter(values))
                }
                Kind::ListOfInt32 => {
                    let mut builder = ListBuilder::new(Int32Builder::new());
                    for _ in 0..rows {
                        let is_valid = valid(rng);
                        if is_valid {
                            for _ in 0..rng.below(5) {
                                let value = valid(rng).then(|| rng.next() as i32);
                                builder.values().append_option(value);
                            }
                        }
                        builder.append(is_valid);
                    }
                    Arc::new(builder.finish())
                }
                Kind::LargeListOfUtf8 => {
                    let mut builder = LargeListBuilder::new(StringBuilder::new());
                    for _ in 0..rows {
                        let is_valid = valid(rng);
                        if is_valid {
                            for _ in 0..rng.below(4) {
                                let value = valid(rng).then(|| rng.string());
                                builder.values().append_option(value);
                            }
                        }
                        builder.append(is_valid);
                    }
                    Arc::new(builder.finish())
                }
                Kind::FixedSizeListOfFloat32 => {
                    let mut builder = FixedSizeListBuilder::new(Float32Builder::new(), 3);
                    for _ in 0..rows {
                        let is_valid = valid(rng);
                        for _ in 0..3 {
                            let value = valid(rng).then(|| rng.next() as f32);
                            builder.values().append_option(value);
                        }
                        builder.append(is_valid);
                    }
                    Arc::new(builder.finish())
                }
                Kind::Struct => Arc::new(Self::struct_array(rows, null_percent, rng)),
                Kind::Map => {
                    let mut builder =
                        MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
                    for _ in 0..rows {
                        let is_valid = valid(rng);
                        if is_valid {
                            for _ in 0..rng.below(4) {
                                builder.keys().append_value(rng.string());
                                let value = valid(rng).then(|| rng.next() as i64);
                                builder.values().append_option(value);
                            }
                        }
                        builder.append(is_valid).unwrap();
                    }
                    Arc::new(builder.finish())
                }
                Kind::ListOfStruct => {
                    let lengths: Vec<usize> = (0..rows).map(|_| rng.below(4) as usize).collect();
                    let values = Self::struct_array(lengths.iter().sum(), null_percent, rng);
                    let nulls = Self::nulls(rows, null_percent, rng);
                    let item = Arc::new(Field::new("item", values.data_type().clone(), true));
                    Arc::new(
                        ListArray::try_new(
                            item,
                            OffsetBuffer::from_lengths(lengths),
                            Arc::new(values),
                            nulls,
                        )
                        .unwrap(),
                    )
                }
                Kind::StructWithList => {
                    let tags = Kind::ListOfInt32.array(rows, null_percent, rng);
                    let count = Arc::new(Int64Array::from_iter_values(
                        (0..rows).map(|_| rng.next() as i64),
                    ));
                    let fields = Fields::from(vec![
                        Field::new("tags", tags.data_type().clone(), true),
                        Field::new("count", DataType::Int64, false),
                    ]);
                    let nulls = Self::nulls(rows, null_percent, rng);
                    Arc::new(StructArray::try_new(fields, vec![tags, count], nulls).unwrap())
                }
            }
        }

        fn struct_array(rows: usize, null_percent: u64, rng: &mut Rng) -> StructArray {
            let a = Kind::Int64.array(rows, null_percent, rng);
            let b = Kind::Utf8.array(rows, null_percent, rng);
            let fields = Fields::from(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("b", DataType::Utf8, true),
            ]);
            let nulls = Self::nulls(rows, null_percent, rng);
            StructArray::try_new(fields, vec![a, b], nulls).unwrap()
        }

        fn nulls(rows: usize, null_percent: u64, rng: &mut Rng) -> Option<NullBuffer> {
            let valid: Vec<bool> = (0..rows).map(|_| !rng.percent(null_percent)).collect();
            Some(NullBuffer::from(valid)).filter(|nulls| nulls.null_count() > 0)
        }
    }

    /// A batch with one column per kind; the share of nulls differs per column (none, some,
    /// all), so validity buffers are sometimes empty and sometimes full.
    fn batch_of(kinds: &[Kind], rows: usize, seed: u64) -> RecordBatch {
        let mut rng = Rng(seed);
        let columns: Vec<ArrayRef> = kinds
            .iter()
            .map(|kind| {
                let null_percent = [0, 0, 10, 50, 100][rng.below(5) as usize];
                kind.array(rows, null_percent, &mut rng)
            })
            .collect();
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, column)| Field::new(format!("c{i}"), column.data_type().clone(), true))
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options).unwrap()
    }

    /// What one chunk of a generated object holds.
    #[derive(Clone, Debug)]
    struct ChunkSpec {
        stream: StreamId,
        schema_id: SchemaId,
        kinds: Vec<Kind>,
        rows: usize,
        seed: u64,
        /// Encode a slice of the batch, to exercise arrow-ipc's truncation of sliced arrays.
        slice: Option<(usize, usize)>,
        min_ts: i64,
        ts_span: i64,
    }

    impl ChunkSpec {
        fn batch(&self) -> RecordBatch {
            let batch = batch_of(&self.kinds, self.rows, self.seed);
            match self.slice {
                Some((offset, len)) if self.rows > 0 => {
                    let offset = offset % self.rows;
                    batch.slice(offset, len.min(self.rows - offset))
                }
                _ => batch,
            }
        }

        fn input<'a>(&self, batch: &'a RecordBatch) -> ChunkInput<'a> {
            ChunkInput {
                stream: self.stream,
                schema_id: self.schema_id,
                batch,
                min_ts: TimestampMicros(self.min_ts),
                max_ts: TimestampMicros(self.min_ts + self.ts_span),
            }
        }
    }

    fn chunk_spec(max_rows: usize, max_columns: usize) -> impl Strategy<Value = ChunkSpec> {
        (
            (0u64..2, 0u32..2, 0u32..3, 0u32..3),
            prop::collection::vec(prop::sample::select(ALL_KINDS.to_vec()), 0..=max_columns),
            0..=max_rows,
            any::<u64>(),
            prop::option::of((0usize..64, 0usize..64)),
            (0i64..1 << 52, 0i64..1 << 20),
        )
            .prop_map(
                |(
                    (table, partition, bucket, schema),
                    kinds,
                    rows,
                    seed,
                    slice,
                    (min_ts, ts_span),
                )| {
                    ChunkSpec {
                        stream: StreamId::new(
                            TableId(table),
                            PartitionId(partition),
                            Bucket(bucket),
                        ),
                        schema_id: SchemaId(schema),
                        kinds,
                        rows,
                        seed,
                        slice,
                        min_ts,
                        ts_span,
                    }
                },
            )
    }

    fn encode_specs(specs: &[ChunkSpec]) -> (Vec<RecordBatch>, EncodedWal) {
        let batches: Vec<RecordBatch> = specs.iter().map(ChunkSpec::batch).collect();
        let inputs: Vec<ChunkInput<'_>> = specs
            .iter()
            .zip(&batches)
            .map(|(spec, batch)| spec.input(batch))
            .collect();
        let encoded = encode_wal_object(&inputs).unwrap();
        (batches, encoded)
    }

    /// The bytes of `chunk` within `object`.
    fn chunk_bytes<'a>(object: &'a [u8], chunk: &ChunkMeta) -> &'a [u8] {
        &object[chunk.chunk_offset as usize..][..chunk.chunk_len() as usize]
    }

    fn decode_whole_chunk(
        object: &[u8],
        chunk: &ChunkMeta,
        schema: &SchemaRef,
        projection: Option<&[usize]>,
    ) -> Result<RecordBatch, WalDecodeError> {
        decode_chunk(
            chunk_bytes(object, chunk),
            chunk.meta_len,
            chunk.body_offset,
            chunk.chunk_crc,
            schema,
            projection,
        )
    }

    /// Decodes `projection` of `chunk` the way a column-pruning reader does: GET the metadata
    /// and only the projected columns' ranges; every other body byte is `fill`.
    fn decode_ranged(
        object: &[u8],
        chunk: &ChunkMeta,
        schema: &SchemaRef,
        projection: &[usize],
        fill: u8,
    ) -> Result<RecordBatch, WalDecodeError> {
        let chunk_bytes = chunk_bytes(object, chunk);
        let meta = &chunk_bytes[..chunk.meta_len as usize];
        let body = &chunk_bytes[chunk.body_offset as usize..];
        let mut sparse = vec![fill; body.len()];
        for &index in projection {
            let range = chunk.columns[index];
            let span = range.offset as usize..(range.offset + range.len) as usize;
            sparse[span.clone()].copy_from_slice(&body[span]);
        }
        decode_projected(
            meta,
            chunk.meta_crc,
            Buffer::from(sparse),
            &chunk.columns,
            schema,
            projection,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the writer puts in, a reader gets back exactly, through both the
        /// whole-object path and the ranged (trailer, then footer) path.
        #[test]
        fn objects_round_trip(specs in prop::collection::vec(chunk_spec(200, 6), 1..5)) {
            let (batches, encoded) = encode_specs(&specs);
            let bytes = &encoded.bytes[..];

            let footer = decode_object(bytes).unwrap();
            prop_assert_eq!(&footer, &encoded.footer);
            let trailer = decode_trailer(&bytes[bytes.len() - WAL_TRAILER_LEN..]).unwrap();
            prop_assert_eq!(trailer, encoded.trailer);
            let footer_bytes =
                &bytes[trailer.footer_offset as usize..][..trailer.footer_len as usize];
            prop_assert_eq!(&decode_footer(footer_bytes, &trailer).unwrap(), &footer);

            prop_assert_eq!(footer.chunks.len(), specs.len());
            for ((chunk, spec), batch) in footer.chunks.iter().zip(&specs).zip(&batches) {
                prop_assert_eq!(chunk.stream, spec.stream);
                prop_assert_eq!(chunk.schema_id, spec.schema_id);
                prop_assert_eq!(chunk.row_count as usize, batch.num_rows());
                prop_assert_eq!(chunk.min_ts, TimestampMicros(spec.min_ts));
                prop_assert_eq!(chunk.max_ts, TimestampMicros(spec.min_ts + spec.ts_span));
                prop_assert_eq!(chunk.columns.len(), batch.num_columns());
                prop_assert_eq!(chunk.chunk_offset % 8, 0);
                prop_assert_eq!((chunk.chunk_offset + u64::from(chunk.body_offset)) % 8, 0);
                let decoded = decode_whole_chunk(bytes, chunk, batch.schema_ref(), None).unwrap();
                prop_assert_eq!(&decoded, batch);
                assert_valid(&decoded);
            }
        }

        /// A reader that fetches only the projected columns' byte ranges decodes the same
        /// rows as one that fetches the whole chunk, whatever the unfetched bytes hold.
        #[test]
        fn projected_ranges_decode_like_the_whole_chunk(
            specs in prop::collection::vec(chunk_spec(200, 6), 1..4),
            projection_seed in any::<u64>(),
            fill in prop_oneof![Just(0u8), any::<u8>()],
        ) {
            let (batches, encoded) = encode_specs(&specs);
            let bytes = &encoded.bytes[..];
            let mut rng = Rng(projection_seed);
            for (chunk, batch) in encoded.footer.chunks.iter().zip(&batches) {
                // A random subset of the columns, in random order.
                let mut projection: Vec<usize> =
                    (0..batch.num_columns()).filter(|_| rng.percent(50)).collect();
                for i in (1..projection.len()).rev() {
                    projection.swap(i, rng.below(i as u64 + 1) as usize);
                }
                let schema = batch.schema();
                let want = batch.project(&projection).unwrap();
                let ranged = decode_ranged(bytes, chunk, &schema, &projection, fill).unwrap();
                prop_assert_eq!(&ranged, &want);
                assert_valid(&ranged);
                let whole = decode_whole_chunk(bytes, chunk, &schema, Some(&projection)).unwrap();
                prop_assert_eq!(&whole, &want);
            }
        }
    }

    proptest! {
        // Every case flips every byte of its object, so keep objects and cases small.
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Every byte a checksum or magic covers is checked: flipping it makes decode_object,
        /// or decode_chunk of the chunk holding it, fail. Padding must be zero, so flips there
        /// fail too. Only the reserved fields of the header and the trailer are ignored, and
        /// flipping them changes nothing.
        #[test]
        fn every_flipped_byte_is_detected(
            specs in prop::collection::vec(chunk_spec(24, 4), 1..4),
            mask_seed in any::<u64>(),
        ) {
            let (_batches, encoded) = encode_specs(&specs);
            let original = &encoded.bytes[..];
            let trailer_reserved = original.len() - 12..original.len() - 8;
            let reserved = |position: usize| {
                (12..WAL_HEADER_LEN).contains(&position) || trailer_reserved.contains(&position)
            };
            let mut rng = Rng(mask_seed);
            let mut corrupt = original.to_vec();
            for position in 0..original.len() {
                let mask = (rng.below(255) + 1) as u8;
                corrupt[position] ^= mask;
                match decode_object(&corrupt) {
                    Err(error) => prop_assert!(
                        !reserved(position),
                        "flip in the reserved field at {} rejected: {}", position, error
                    ),
                    Ok(footer) => {
                        // The footer is checksummed: if it decodes, it is the original.
                        prop_assert_eq!(&footer, &encoded.footer);
                        let holder = footer.chunks.iter().find(|chunk| {
                            (chunk.chunk_offset..chunk.chunk_offset + chunk.chunk_len())
                                .contains(&(position as u64))
                        });
                        for chunk in &footer.chunks {
                            let schema = specs_schema(&specs, &encoded, chunk);
                            let result = decode_whole_chunk(&corrupt, chunk, &schema, None);
                            if holder == Some(chunk) {
                                prop_assert!(
                                    matches!(result, Err(WalDecodeError::ChunkChecksum { .. })),
                                    "flip at {} in a chunk not detected", position
                                );
                            } else {
                                prop_assert!(result.is_ok());
                            }
                        }
                        prop_assert!(
                            holder.is_some() || reserved(position),
                            "flip at {} outside every chunk was not detected", position
                        );
                    }
                }
                corrupt[position] ^= mask;
            }
        }

        /// Chunk metadata that is corrupt but carries a matching checksum (a writer bug, or an
        /// attacker) must give errors, never panics: arrow-ipc's reader trusts the metadata.
        #[test]
        fn corrupt_metadata_with_a_valid_checksum_never_panics(
            spec in chunk_spec(24, 5),
            mask_seed in any::<u64>(),
        ) {
            let (batches, encoded) = encode_specs(std::slice::from_ref(&spec));
            let chunk = &encoded.footer.chunks[0];
            let schema = batches[0].schema();
            let original = chunk_bytes(&encoded.bytes, chunk).to_vec();
            let projection: Vec<usize> = (0..schema.fields().len()).step_by(2).collect();
            let mut rng = Rng(mask_seed);
            for position in 0..chunk.meta_len as usize {
                let mut corrupt = original.clone();
                corrupt[position] ^= (rng.below(255) + 1) as u8;
                let crc = crc32c::crc32c(&corrupt);
                let body_offset = chunk.body_offset as usize;
                for projection in [None, Some(&projection[..])] {
                    let _ = decode_chunk(
                        &corrupt, chunk.meta_len, chunk.body_offset, crc, &schema, projection,
                    );
                }
                let meta = &corrupt[..chunk.meta_len as usize];
                let _ = decode_projected(
                    meta,
                    crc32c::crc32c(meta),
                    Buffer::from(&corrupt[body_offset..]),
                    &chunk.columns,
                    &schema,
                    &projection,
                );
            }
        }

        /// The same for footers: a footer that is corrupt but checksummed gives an error or a
        /// footer, never a panic or a huge allocation.
        #[test]
        fn corrupt_footer_with_a_valid_checksum_never_panics(
            spec in chunk_spec(8, 3),
            flips in prop::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        ) {
            let (_batches, encoded) = encode_specs(std::slice::from_ref(&spec));
            let mut bytes = encoded.bytes.to_vec();
            let trailer = encoded.trailer;
            let footer_start = trailer.footer_offset as usize;
            let footer_end = footer_start + trailer.footer_len as usize;
            for (position, mask) in flips {
                bytes[footer_start + position % (footer_end - footer_start)] ^= mask;
            }
            let crc = crc32c::crc32c(&bytes[footer_start..footer_end]);
            bytes[footer_end + 12..footer_end + 16].copy_from_slice(&crc.to_le_bytes());
            let _ = decode_object(&bytes);
        }

        /// Arbitrary bytes are rejected without panicking.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_object(&bytes);
            if bytes.len() >= WAL_TRAILER_LEN {
                let mut bytes = bytes.clone();
                let end = bytes.len();
                bytes[end - 8..].copy_from_slice(&WAL_MAGIC);
                bytes[..8.min(end)].copy_from_slice(&WAL_MAGIC[..8.min(end)]);
                let _ = decode_object(&bytes);
            }
        }
    }

    /// The schema a flip test decodes `chunk` with: that of the spec at the same position.
    fn specs_schema(specs: &[ChunkSpec], encoded: &EncodedWal, chunk: &ChunkMeta) -> SchemaRef {
        let index = encoded
            .footer
            .chunks
            .iter()
            .position(|c| c == chunk)
            .unwrap();
        specs[index].batch().schema()
    }

    /// Every supported type, nested ones included, gets a column range that holds all of its
    /// buffers and nothing of its neighbours: decoding one column from its range alone, with
    /// every other body byte garbage, gives that column back.
    #[test]
    fn every_supported_type_has_an_exact_column_range() {
        for rows in [0, 1, 37] {
            for seed in 0..4 {
                let batch = batch_of(&ALL_KINDS, rows, seed);
                let input = ChunkInput {
                    stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
                    schema_id: SchemaId(0),
                    batch: &batch,
                    min_ts: TimestampMicros(0),
                    max_ts: TimestampMicros(0),
                };
                let encoded = encode_wal_object(&[input]).unwrap();
                let chunk = &encoded.footer.chunks[0];
                let mut previous_end = 0;
                for (index, range) in chunk.columns.iter().enumerate() {
                    assert!(range.offset >= previous_end, "column {index} overlaps");
                    previous_end = range.offset + range.len;
                    let schema = batch.schema();
                    for fill in [0x00, 0xA5, 0xFF] {
                        let got = decode_ranged(&encoded.bytes, chunk, &schema, &[index], fill)
                            .unwrap_or_else(|e| {
                                panic!("{:?} with {rows} rows: {e}", ALL_KINDS[index])
                            });
                        assert_eq!(
                            got,
                            batch.project(&[index]).unwrap(),
                            "{:?}",
                            ALL_KINDS[index]
                        );
                    }
                }
                assert!(previous_end <= chunk.body_len);
            }
        }
    }

    /// The buffer count per type is what arrow-ipc 58 writes with metadata version 5; in
    /// particular a Null column has no buffers at all (version 4 gave it a validity buffer).
    #[test]
    fn buffer_counts_match_arrow_ipc() {
        let cases: [(Kind, usize); 8] = [
            (Kind::Null, 0),
            (Kind::Int64, 2),
            (Kind::Boolean, 2),
            (Kind::Utf8, 3),
            (Kind::ListOfInt32, 2 + 2),
            (Kind::FixedSizeListOfFloat32, 1 + 2),
            (Kind::Struct, 1 + 2 + 3),
            (Kind::Map, 2 + 1 + 3 + 2),
        ];
        for (kind, expected) in cases {
            let batch = batch_of(&[kind], 5, 1);
            let input = ChunkInput {
                stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
                schema_id: SchemaId(0),
                batch: &batch,
                min_ts: TimestampMicros(0),
                max_ts: TimestampMicros(0),
            };
            let encoded = encode_wal_object(&[input]).unwrap();
            let chunk = &encoded.footer.chunks[0];
            let meta = &chunk_bytes(&encoded.bytes, chunk)[..chunk.meta_len as usize];
            let message = arrow_ipc::root_as_message(meta).unwrap();
            let buffers = message.header_as_record_batch().unwrap().buffers().unwrap();
            assert_eq!(buffers.len(), expected, "{kind:?}");
        }
    }

    /// A column whose buffers are all empty (no rows, no nulls) or that has none (Null) gets
    /// an empty range at its position, between its neighbours.
    #[test]
    fn columns_without_bytes_get_empty_ranges_in_place() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("before", DataType::Utf8, true),
                Field::new("empty", DataType::Int64, true),
                Field::new("nothing", DataType::Null, true),
                Field::new("after", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(StringArray::from(Vec::<Option<&str>>::new())),
                Arc::new(Int64Array::from(Vec::<i64>::new())),
                Arc::new(NullArray::new(0)),
                Arc::new(StringArray::from(Vec::<Option<&str>>::new())),
            ],
        )
        .unwrap();
        let input = ChunkInput {
            stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
            schema_id: SchemaId(0),
            batch: &batch,
            min_ts: TimestampMicros(0),
            max_ts: TimestampMicros(0),
        };
        let encoded = encode_wal_object(&[input]).unwrap();
        let columns = &encoded.footer.chunks[0].columns;
        // An empty string column still has its single zero offset (4 bytes); its range runs
        // to its empty values buffer, which starts after the offsets' padding.
        assert_eq!(columns[0].offset, 0);
        assert!(columns[0].len >= 4);
        for empty in [&columns[1], &columns[2]] {
            assert_eq!(empty.len, 0);
            assert_eq!(empty.offset, columns[0].offset + columns[0].len);
            assert_eq!(empty.offset, columns[3].offset);
            assert_eq!(empty.crc32c, crc32c::crc32c(&[]));
        }
        assert!(columns[3].len >= 4);
        let schema = batch.schema();
        let decoded =
            decode_whole_chunk(&encoded.bytes, &encoded.footer.chunks[0], &schema, None).unwrap();
        assert_eq!(decoded, batch);
    }

    #[test]
    fn unsupported_types_are_rejected_by_name() {
        let dictionary: DictionaryArray<Int32Type> = vec!["a", "b", "a"].into_iter().collect();
        let view = StringViewArray::from(vec!["a", "b", "c"]);
        let list_of_dictionary = {
            let item = Arc::new(Field::new("item", dictionary.data_type().clone(), true));
            ListArray::try_new(
                item,
                OffsetBuffer::from_lengths([3]),
                Arc::new(dictionary.clone()),
                None,
            )
            .unwrap()
        };
        let union = arrow_array::UnionArray::try_new(
            UnionFields::try_new(vec![0], vec![Field::new("i", DataType::Int32, true)]).unwrap(),
            vec![0i8, 0, 0].into(),
            None,
            vec![Arc::new(Int32Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let cases: Vec<(ArrayRef, &str)> = vec![
            (Arc::new(dictionary), "col"),
            (Arc::new(view), "col"),
            (Arc::new(list_of_dictionary), "col.item"),
            (Arc::new(union), "col"),
        ];
        for (array, path) in cases {
            let data_type = array.data_type().clone();
            let schema = Schema::new(vec![Field::new("col", data_type.clone(), true)]);
            let batch = RecordBatch::try_new(Arc::new(schema), vec![array]).unwrap();
            let input = ChunkInput {
                stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
                schema_id: SchemaId(0),
                batch: &batch,
                min_ts: TimestampMicros(0),
                max_ts: TimestampMicros(0),
            };
            let error = encode_wal_object(&[input]).unwrap_err();
            let WalEncodeError::UnsupportedType { column, .. } = &error else {
                panic!("{data_type}: unexpected error {error}");
            };
            assert_eq!(column, path, "{data_type}");
            assert!(
                error
                    .to_string()
                    .starts_with("unsupported type for wal column")
            );
        }
        assert!(matches!(UnionMode::Sparse, UnionMode::Sparse));
    }

    #[test]
    fn encoding_rejects_empty_objects_and_inverted_time_ranges() {
        let error = encode_wal_object(&[]).unwrap_err();
        assert!(matches!(error, WalEncodeError::NoChunks));
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        let batch = batch_of(&[Kind::Int64], 3, 0);
        let input = ChunkInput {
            stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
            schema_id: SchemaId(0),
            batch: &batch,
            min_ts: TimestampMicros(10),
            max_ts: TimestampMicros(9),
        };
        assert!(matches!(
            encode_wal_object(&[input]),
            Err(WalEncodeError::InvalidTimeRange { .. })
        ));
    }

    #[test]
    fn decoding_rejects_foreign_and_future_objects() {
        let batch = batch_of(&[Kind::Int64, Kind::Utf8], 3, 0);
        let input = ChunkInput {
            stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
            schema_id: SchemaId(0),
            batch: &batch,
            min_ts: TimestampMicros(0),
            max_ts: TimestampMicros(0),
        };
        let encoded = encode_wal_object(&[input]).unwrap();
        let bytes = encoded.bytes.to_vec();

        let error = decode_object(&bytes[..39]).unwrap_err();
        assert_eq!(error.to_string(), "wal object too short: 39 bytes");

        let mut future = bytes.clone();
        future[8..10].copy_from_slice(&2u16.to_le_bytes());
        let error = decode_object(&future).unwrap_err();
        assert_eq!(error.to_string(), "unsupported wal format version 2");

        let mut compressed = bytes.clone();
        compressed[10] = 1;
        let error = decode_object(&compressed).unwrap_err();
        assert_eq!(error.to_string(), "unsupported wal flags 0x0001");

        let mut foreign = bytes.clone();
        foreign[0] = b'X';
        assert!(matches!(
            decode_object(&foreign),
            Err(WalDecodeError::BadMagic { location: "header" })
        ));

        // The trailer carries the version and flags too, for readers that fetch only the tail.
        let trailer_start = bytes.len() - WAL_TRAILER_LEN;
        let trailer = &bytes[trailer_start..];
        assert_eq!(decode_trailer(trailer).unwrap(), encoded.trailer);
        assert_eq!(encoded.trailer.version, WAL_FORMAT_VERSION);
        assert_eq!(encoded.trailer.flags, 0);
        assert!(matches!(
            decode_trailer(&bytes[bytes.len() - 31..]),
            Err(WalDecodeError::TrailerLength { len: 31 })
        ));
        let mut bad_magic = trailer.to_vec();
        bad_magic[31] ^= 1;
        assert_eq!(
            decode_trailer(&bad_magic).unwrap_err().to_string(),
            "bad wal magic in the trailer"
        );
        let mut future = bytes.clone();
        future[trailer_start + 16..trailer_start + 18].copy_from_slice(&2u16.to_le_bytes());
        for error in [
            decode_trailer(&future[trailer_start..]).unwrap_err(),
            decode_object(&future).unwrap_err(),
        ] {
            assert_eq!(error.to_string(), "unsupported wal format version 2");
            assert_eq!(error.kind(), ErrorKind::Corruption);
        }
        let mut compressed = bytes.clone();
        compressed[trailer_start + 18] = 1;
        for error in [
            decode_trailer(&compressed[trailer_start..]).unwrap_err(),
            decode_object(&compressed).unwrap_err(),
        ] {
            assert_eq!(error.to_string(), "unsupported wal flags 0x0001");
        }
        let mut reserved = bytes.clone();
        reserved[trailer_start + 20..trailer_start + 24].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(decode_object(&reserved).unwrap(), encoded.footer);

        let chunk = &encoded.footer.chunks[0];
        let schema = batch.schema();
        let mut corrupt = bytes.clone();
        corrupt[chunk.chunk_offset as usize + chunk.body_offset as usize] ^= 0x10;
        let error = decode_whole_chunk(&corrupt, chunk, &schema, None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("wal chunk checksum mismatch: expected 0x"),
            "{error}"
        );
        assert_eq!(error.kind(), ErrorKind::Corruption);
    }

    #[test]
    fn decoding_checks_projections_and_column_ranges() {
        let batch = batch_of(&[Kind::Int64, Kind::Utf8, Kind::Struct], 10, 3);
        let input = ChunkInput {
            stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
            schema_id: SchemaId(0),
            batch: &batch,
            min_ts: TimestampMicros(0),
            max_ts: TimestampMicros(0),
        };
        let encoded = encode_wal_object(&[input]).unwrap();
        let chunk = &encoded.footer.chunks[0];
        let schema = batch.schema();
        let bytes = &encoded.bytes[..];

        assert!(matches!(
            decode_whole_chunk(bytes, chunk, &schema, Some(&[3])),
            Err(WalDecodeError::ProjectionOutOfRange {
                index: 3,
                column_count: 3
            })
        ));
        assert!(matches!(
            decode_whole_chunk(bytes, chunk, &schema, Some(&[1, 1])),
            Err(WalDecodeError::DuplicateProjection { index: 1 })
        ));

        // A column range that got the wrong bytes is caught by its checksum.
        let chunk_bytes = chunk_bytes(bytes, chunk);
        let meta = &chunk_bytes[..chunk.meta_len as usize];
        let mut body = chunk_bytes[chunk.body_offset as usize..].to_vec();
        body[chunk.columns[1].offset as usize] ^= 1;
        let error = decode_projected(
            meta,
            chunk.meta_crc,
            Buffer::from(body.clone()),
            &chunk.columns,
            &schema,
            &[1],
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("wal column `c1` checksum mismatch"),
            "{error}"
        );
        // ...and the same bytes are never looked at when the column is not projected.
        let projected = decode_projected(
            meta,
            chunk.meta_crc,
            Buffer::from(body),
            &chunk.columns,
            &schema,
            &[2, 0],
        )
        .unwrap();
        assert_eq!(projected, batch.project(&[2, 0]).unwrap());

        // Metadata that got a flipped byte is caught by its own checksum, whatever the byte.
        let body = Buffer::from(&chunk_bytes[chunk.body_offset as usize..]);
        for position in 0..meta.len() {
            let mut corrupt = meta.to_vec();
            corrupt[position] ^= 0x04;
            let error = decode_projected(
                &corrupt,
                chunk.meta_crc,
                body.clone(),
                &chunk.columns,
                &schema,
                &[0],
            )
            .unwrap_err();
            assert!(
                matches!(error, WalDecodeError::MetaChecksum { expected, .. }
                    if expected == chunk.meta_crc),
                "flip at {position}: {error}"
            );
            assert_eq!(error.kind(), ErrorKind::Corruption);
        }
        assert_eq!(chunk.meta_crc, crc32c::crc32c(meta));

        // Column ranges that disagree with the metadata are rejected.
        let mut columns = chunk.columns.clone();
        columns[2].offset += 8;
        assert!(matches!(
            decode_projected(meta, chunk.meta_crc, body.clone(), &columns, &schema, &[0]),
            Err(WalDecodeError::ColumnRangeMismatch { .. })
        ));
        assert!(matches!(
            decode_projected(meta, chunk.meta_crc, body, &columns[..2], &schema, &[0]),
            Err(WalDecodeError::ColumnCount {
                expected: 3,
                found: 2
            })
        ));
    }

    /// Panics unless every column of `batch` passes Arrow's full validation (buffer sizes and
    /// alignment, offsets, UTF-8, null counts).
    fn assert_valid(batch: &RecordBatch) {
        for column in batch.columns() {
            column.to_data().validate_full().unwrap();
        }
    }

    /// Buffers are padded to 8 bytes, not arrow-ipc's default 64, so a 16-byte decimal can
    /// start at an offset that is a multiple of 8 only. arrow-ipc's reader copies such a buffer
    /// into an aligned one instead of rejecting it, and so it does for a body that
    /// `decode_projected` gets at any address: the decoded batch is equal, aligned and valid.
    #[test]
    fn buffers_padded_to_8_bytes_decode_aligned_and_valid() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("small", DataType::Int8, false),
                Field::new("price", DataType::Decimal128(38, 3), false),
                Field::new("wide", DataType::Decimal256(76, 10), false),
            ])),
            vec![
                Arc::new(Int8Array::from(vec![1, 2, 3])),
                Arc::new(
                    Decimal128Array::from(vec![1, i128::MAX / 7, -3])
                        .with_precision_and_scale(38, 3)
                        .unwrap(),
                ),
                Arc::new(
                    Decimal256Array::from(vec![i256::from_i128(7), i256::MAX, i256::MINUS_ONE])
                        .with_precision_and_scale(76, 10)
                        .unwrap(),
                ),
            ],
        )
        .unwrap();
        let input = ChunkInput {
            stream: StreamId::new(TableId(1), PartitionId(0), Bucket(0)),
            schema_id: SchemaId(0),
            batch: &batch,
            min_ts: TimestampMicros(0),
            max_ts: TimestampMicros(0),
        };
        let encoded = encode_wal_object(&[input]).unwrap();
        let chunk = &encoded.footer.chunks[0];
        let bytes = chunk_bytes(&encoded.bytes, chunk);
        let meta = &bytes[..chunk.meta_len as usize];
        let body = &bytes[chunk.body_offset as usize..];

        // 3 bytes of Int8 padded to 8, then 48 and 96 bytes of decimals: 152 bytes, where
        // 64-byte padding made 256. Both decimal buffers start 8 bytes off a 16-byte boundary.
        assert_eq!(chunk.body_len, 8 + 48 + 96);
        let message = arrow_ipc::root_as_message(meta).unwrap();
        let buffers = message.header_as_record_batch().unwrap().buffers().unwrap();
        let offsets: Vec<i64> = buffers.iter().map(|b| b.offset()).collect();
        assert_eq!(offsets, vec![0, 0, 8, 8, 56, 56]);

        let check = |decoded: &RecordBatch| {
            assert_eq!(decoded, &batch);
            assert_valid(decoded);
            let price = decoded.column(1).as_any().downcast_ref::<Decimal128Array>();
            let price = price.unwrap().values().inner().as_ptr();
            assert_eq!(price.align_offset(std::mem::align_of::<i128>()), 0);
            let wide = decoded.column(2).as_any().downcast_ref::<Decimal256Array>();
            let wide = wide.unwrap().values().inner().as_ptr();
            assert_eq!(wide.align_offset(std::mem::align_of::<i256>()), 0);
        };
        check(&decode_whole_chunk(&encoded.bytes, chunk, &batch.schema(), None).unwrap());
        for shift in [0, 1, 8] {
            // Buffer::from(&[u8]) allocates at least 16-aligned; slicing shifts the start.
            let mut shifted = vec![0u8; shift];
            shifted.extend_from_slice(body);
            let shifted = Buffer::from(&shifted[..]).slice(shift);
            assert_eq!(shifted.as_ptr() as usize % 16, shift);
            let decoded = decode_projected(
                meta,
                chunk.meta_crc,
                shifted,
                &chunk.columns,
                &batch.schema(),
                &[0, 1, 2],
            )
            .unwrap();
            check(&decoded);
        }
    }

    /// Objects written by format version 1 stay readable, with the same contents: the
    /// committed fixture (written by `examples/write_wal_fixture.rs` from the chunks of
    /// `tests/fixtures/wal_v1.rs`) decodes to exactly those chunks, whole and column by
    /// column, every checksum verified.
    #[test]
    fn wal_v1_fixture_still_decodes() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wal-v1.bin");
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        assert_eq!(&bytes[..8], b"INLETWAL");
        assert_eq!(&bytes[8..12], &[1, 0, 0, 0]); // version 1, no flags
        let trailer = decode_trailer(&bytes[bytes.len() - WAL_TRAILER_LEN..]).unwrap();
        assert_eq!((trailer.version, trailer.flags), (1, 0));

        let footer = decode_object(&bytes).unwrap();
        let coordinates: Vec<_> = footer
            .chunks
            .iter()
            .map(|chunk| {
                let s = chunk.stream;
                (
                    s.table.0,
                    s.partition.0,
                    s.bucket.0,
                    chunk.schema_id.0,
                    chunk.row_count,
                )
            })
            .collect();
        assert_eq!(
            coordinates,
            vec![(1, 0, 0, 0, 3), (1, 0, 1, 1, 2), (2, 3, 7, 0, 1)]
        );
        assert_eq!(footer.chunks[2].min_ts, TimestampMicros(-5));
        assert_eq!(footer.chunks[2].max_ts, TimestampMicros(7));

        let expected = fixture_v1::chunks();
        assert_eq!(footer.chunks.len(), expected.len());
        for (chunk, want) in footer.chunks.iter().zip(&expected) {
            let stream = StreamId::new(
                TableId(want.table),
                PartitionId(want.partition),
                Bucket(want.bucket),
            );
            assert_eq!(chunk.stream, stream);
            assert_eq!(chunk.schema_id, SchemaId(want.schema_id));
            assert_eq!(chunk.min_ts, TimestampMicros(want.min_ts));
            assert_eq!(chunk.max_ts, TimestampMicros(want.max_ts));
            let schema = want.batch.schema();
            let whole = decode_whole_chunk(&bytes, chunk, &schema, None).unwrap();
            assert_eq!(whole, want.batch);
            assert_valid(&whole);
            for column in 0..want.batch.num_columns() {
                let got = decode_ranged(&bytes, chunk, &schema, &[column], 0).unwrap();
                assert_eq!(got, want.batch.project(&[column]).unwrap());
            }
        }
        let names = expected[0].batch.column_by_name("name").unwrap();
        let names = names.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(names.value(2), "grace €");
    }
}
