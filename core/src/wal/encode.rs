//! Encoding: record batches of many streams into one WAL object, checked by reading it back.

use arrow_ipc::MetadataVersion;
use arrow_ipc::writer::{
    CompressionContext, DictionaryTracker, EncodedData, IpcDataGenerator, IpcWriteOptions,
};

use super::decode::decode_object;
use super::error::WalEncodeError;
use super::format::{
    ChunkInput, ChunkMeta, ColumnRange, EncodedWal, IPC_BUFFER_ALIGNMENT, Trailer,
    WAL_FORMAT_VERSION, WAL_HEADER_LEN, WAL_MAGIC, WAL_TRAILER_LEN, WalFooter, align_up,
    pad_to_alignment,
};
use crate::column_types::first_unsupported;
use crate::ipc::layout::parse_layout;
use bytes::Bytes;

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
    if let Some((column, data_type)) = first_unsupported(schema) {
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
    pub(super) fn encode_into(&self, out: &mut Vec<u8>) {
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
