//! Decoding whole objects, whole chunks and projected columns, verifying checksums before
//! any byte reaches Arrow.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::MetadataVersion;
use arrow_ipc::reader::read_record_batch;
use arrow_schema::{Schema, SchemaRef};

use super::error::WalDecodeError;
use super::footer::{check_version_and_flags, decode_footer, decode_trailer};
use super::format::{ColumnRange, WAL_HEADER_LEN, WAL_MAGIC, WAL_TRAILER_LEN, WalFooter, array_at};
use crate::column_types::first_unsupported;
use crate::ipc::layout::{BatchLayout, LayoutError, parse_layout};

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
    match first_unsupported(schema) {
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

impl From<LayoutError> for WalDecodeError {
    fn from(error: LayoutError) -> Self {
        match error {
            LayoutError::InvalidMetadata { detail } => WalDecodeError::InvalidMetadata { detail },
            LayoutError::UnsupportedType { column, data_type } => {
                WalDecodeError::UnsupportedType { column, data_type }
            }
        }
    }
}
