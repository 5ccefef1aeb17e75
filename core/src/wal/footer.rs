//! Decoding the trailer and the footer: the parts a ranged reader fetches first, checked so
//! that every chunk and column range they name lies inside the object.

use super::error::WalDecodeError;
use super::format::{
    CHUNK_ALIGNMENT, CHUNK_ENTRY_LEN, COLUMN_ENTRY_LEN, ChunkMeta, ColumnRange, KNOWN_FLAGS,
    Trailer, WAL_FORMAT_VERSION, WAL_HEADER_LEN, WAL_MAGIC, WAL_TRAILER_LEN, WalFooter,
    align_up_u64, array_at,
};
use crate::ids::{Bucket, PartitionId, SchemaId, StreamId, TableId, TimestampMicros};

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
pub(super) fn check_version_and_flags(version: u16, flags: u16) -> Result<(), WalDecodeError> {
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
    check_column_ranges(&chunk.columns, chunk.body_len)
}

/// Checks that `columns` lie in order, without overlapping, inside a body of `body_len`
/// bytes: what a reader must know before it copies a column's bytes by its range, whether
/// the ranges came from a footer or from a chunk's index entry.
pub fn check_column_ranges(columns: &[ColumnRange], body_len: u64) -> Result<(), String> {
    let mut previous_end = 0u64;
    for (index, column) in columns.iter().enumerate() {
        let end = column.offset.checked_add(column.len);
        match end {
            Some(end) if column.offset >= previous_end && end <= body_len => {
                previous_end = end;
            }
            _ => {
                return Err(format!(
                    "column {index} at {}+{} is out of order or outside the {body_len}-byte body",
                    column.offset, column.len
                ));
            }
        }
    }
    Ok(())
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
