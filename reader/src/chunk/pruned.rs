//! Column-pruned chunk reads: when a fetch projects few columns of a wide table, GET only the
//! chunk's Arrow IPC metadata and the byte ranges of the projected columns, which the WAL
//! object's footer lists per chunk, instead of the whole chunk. This saves object-store bytes,
//! not just the bytes sent to the client.
//!
//! The cache fetches whole aligned pages, so a read costs the store the pages it touches, not
//! the bytes it asks for. A pruned read is therefore planned in pages and used only when it
//! touches at most half the pages the whole-chunk read would ([`pays_off`]); otherwise the
//! caller reads the whole chunk with one ranged GET. With pages as large as the chunk, pruning
//! can save nothing and is never attempted, so the footer is not even read.
//!
//! A pruned read costs one round trip to the store: the wanted ranges together, at most
//! [`COLUMN_GETS_IN_FLIGHT`] in flight at once. The column ranges come from the chunk's index
//! entry, which keeps them for tables of up to `MAX_INDEXED_COLUMN_RANGES` columns; wider
//! tables' chunks (and entries written before the ranges were kept) take a round trip more,
//! for the object's footer (shared by the object's chunks, so often cached).
//!
//! Every byte decoded is verified: the footer by its crc (from the trailer, fetched with it),
//! the metadata by `meta_crc`, and each projected column by its own crc and against the
//! metadata's own layout, in [`decode_projected`], so a wrong range in the index fails the
//! read instead of decoding other bytes. Bytes of unprojected columns are never fetched nor
//! looked at.

use std::borrow::Cow;
use std::ops::Range;

use arrow_array::RecordBatch;
use futures::{StreamExt, TryStreamExt, stream};
use inlet_core::ids::StreamId;
use inlet_core::wal::{
    ChunkMeta, ColumnRange, WAL_TRAILER_LEN, WalFooter, check_column_ranges, decode_footer,
    decode_projected, decode_trailer,
};
use inlet_index::ChunkEntry;
use slatedb::bytes::Bytes;
use slatedb::object_store::path::Path;

use super::{ChunkError, ChunkRead};

/// Wanted byte ranges of one chunk separated by a gap smaller than this are read with one GET,
/// gap included. Larger = fewer GETs (S3 bills per request and each costs a round trip of
/// tens of milliseconds) but more unneeded bytes; 64 KiB costs well under a millisecond at the
/// ~100 MB/s one S3 connection streams. The cache's page size raises it: a gap smaller than a
/// page adds no page to the read, so skipping it would only add a GET.
pub(crate) const COALESCE_GAP_BYTES: u64 = 64 * 1024;

/// Most GETs of one pruned chunk read in flight at once. Each range costs a first-byte
/// latency (10-50 ms on S3) whatever its size, so the ranges are fetched together, not one
/// after another; the bound keeps a projection of many scattered columns from opening as
/// many connections at once. 8 covers the ranges of a typical projection (the metadata and a
/// few columns, after coalescing) in one round trip; the fetch's read-ahead multiplies it by
/// the chunks in flight.
pub(crate) const COLUMN_GETS_IN_FLIGHT: usize = 8;

/// Reads only the metadata and the projected columns of `entry`'s chunk, or returns `None`
/// when that would not fetch meaningfully fewer bytes than reading the whole chunk (see the
/// module doc); the caller then reads the whole chunk.
pub(super) async fn read_pruned(
    context: &ChunkRead<'_>,
    stream: StreamId,
    entry: &ChunkEntry,
    path: &Path,
    object_len: u64,
) -> Result<Option<RecordBatch>, ChunkError> {
    let schema = &context.table.descriptor.schema;
    let column_count = schema.fields().len();
    let page_size = context.cache.page_size();
    let chunk = entry.chunk_offset..entry.chunk_offset + entry.chunk_len;
    let whole_pages = pages_touched(std::slice::from_ref(&chunk), page_size);
    // A pruned read touches at least one page, so a one-page chunk cannot be halved.
    if projects_all(context.projection, column_count) || !pays_off(1, whole_pages) {
        return Ok(None);
    }

    let corrupt = |message: String| chunk_corrupt(stream, entry, path, message);
    let columns = column_ranges_of(context, stream, entry, path, object_len).await?;
    let body_len = entry.body_len();
    check_column_ranges(&columns, body_len).map_err(corrupt)?;

    let body_start = entry.chunk_offset + u64::from(entry.body_offset);
    let meta_range = entry.chunk_offset..entry.chunk_offset + u64::from(entry.meta_len);
    let column_ranges: Vec<Range<u64>> = context
        .projection
        .iter()
        .map(|&index| {
            let column = &columns[index];
            body_start + column.offset..body_start + column.offset + column.len
        })
        .collect();
    let wanted = std::iter::once(meta_range.clone())
        .chain(column_ranges.iter().cloned())
        .filter(|range| !range.is_empty())
        .collect();
    let gets = coalesce(wanted, COALESCE_GAP_BYTES.max(page_size));
    if !pays_off(pages_touched(&gets, page_size), whole_pages) {
        return Ok(None);
    }

    let fetched: Vec<(Range<u64>, Bytes)> = stream::iter(gets)
        .map(|range| async move {
            let bytes = get(context, path, range.clone(), object_len).await?;
            Ok::<_, ChunkError>((range, bytes))
        })
        .buffer_unordered(COLUMN_GETS_IN_FLIGHT)
        .try_collect()
        .await?;
    let meta_bytes = cut(&fetched, &meta_range);
    let Ok(body_len) = usize::try_from(body_len) else {
        return Err(corrupt(format!("a body of {body_len} bytes")));
    };
    let mut body = vec![0u8; body_len];
    for range in column_ranges.iter().filter(|range| !range.is_empty()) {
        let at = (range.start - body_start) as usize;
        body[at..at + (range.end - range.start) as usize].copy_from_slice(&cut(&fetched, range));
    }
    let batch = decode_projected(
        &meta_bytes,
        entry.meta_crc,
        body.into(),
        &columns,
        schema,
        context.projection,
    )
    .map_err(|e| {
        corrupt(format!(
            "offsets {}..{}: {e}",
            entry.base_offset,
            entry.end_offset()
        ))
    })?;
    Ok(Some(batch))
}

/// The body byte ranges of `entry`'s columns: from the entry itself when it carries them (no
/// request), otherwise from the object's footer, checked to describe the same chunk.
async fn column_ranges_of<'a>(
    context: &ChunkRead<'_>,
    stream: StreamId,
    entry: &'a ChunkEntry,
    path: &Path,
    object_len: u64,
) -> Result<Cow<'a, [ColumnRange]>, ChunkError> {
    let column_count = context.table.descriptor.schema.fields().len();
    if entry.columns.len() == column_count {
        return Ok(Cow::Borrowed(&entry.columns));
    }
    let corrupt = |message: String| chunk_corrupt(stream, entry, path, message);
    let footer = read_footer(context, stream, entry, path, object_len).await?;
    let Some(meta) = footer
        .chunks
        .into_iter()
        .find(|meta| meta.chunk_offset == entry.chunk_offset)
    else {
        return Err(corrupt(format!(
            "the object's footer lists no chunk at offset {}",
            entry.chunk_offset,
        )));
    };
    check_footer_entry(&meta, entry, stream, column_count).map_err(corrupt)?;
    Ok(Cow::Owned(meta.columns))
}

/// The error for `entry`'s chunk in `path` being wrong as `message` says.
fn chunk_corrupt(stream: StreamId, entry: &ChunkEntry, path: &Path, message: String) -> ChunkError {
    ChunkError::Corrupt {
        stream,
        message: format!(
            "chunk at bytes {}..{} of {path}: {message}",
            entry.chunk_offset,
            entry.chunk_offset + entry.chunk_len
        ),
    }
}

/// Reads and decodes the footer of `entry`'s object. The footer and the trailer are adjacent,
/// so one range holds both; the trailer carries the footer's crc, which the index entry does
/// not, and must agree with the entry on where the footer is.
async fn read_footer(
    context: &ChunkRead<'_>,
    stream: StreamId,
    entry: &ChunkEntry,
    path: &Path,
    object_len: u64,
) -> Result<WalFooter, ChunkError> {
    let bytes = get(context, path, entry.footer_offset..object_len, object_len).await?;
    let corrupt = |message: String| ChunkError::Corrupt {
        stream,
        message: format!(
            "footer at bytes {}..{object_len} of {path}: {message}",
            entry.footer_offset
        ),
    };
    let (footer, trailer) = bytes
        .split_at_checked(entry.footer_len as usize)
        .filter(|(_, trailer)| trailer.len() == WAL_TRAILER_LEN)
        .ok_or_else(|| {
            corrupt(format!(
                "{} bytes cannot hold a {}-byte footer and the trailer",
                bytes.len(),
                entry.footer_len
            ))
        })?;
    let trailer = decode_trailer(trailer).map_err(|e| corrupt(e.to_string()))?;
    if (trailer.footer_offset, trailer.footer_len) != (entry.footer_offset, entry.footer_len) {
        return Err(corrupt(format!(
            "the trailer places the footer at {}+{}, the index at {}+{}",
            trailer.footer_offset, trailer.footer_len, entry.footer_offset, entry.footer_len
        )));
    }
    decode_footer(footer, &trailer).map_err(|e| corrupt(e.to_string()))
}

/// One range of the object through the cache, checked to be exactly that long.
async fn get(
    context: &ChunkRead<'_>,
    path: &Path,
    range: Range<u64>,
    object_len: u64,
) -> Result<Bytes, ChunkError> {
    let bytes = context
        .cache
        .get_range(path, range.clone(), Some(object_len))
        .await
        .map_err(|e| ChunkError::Storage {
            path: path.to_string(),
            message: e.to_string(),
        })?;
    if bytes.len() as u64 != range.end - range.start {
        return Err(ChunkError::Storage {
            path: path.to_string(),
            message: format!("read of bytes {range:?} returned {} bytes", bytes.len()),
        });
    }
    Ok(bytes)
}

/// Checks that the footer's entry for a chunk describes the chunk the index points at.
fn check_footer_entry(
    meta: &ChunkMeta,
    entry: &ChunkEntry,
    stream: StreamId,
    column_count: usize,
) -> Result<(), String> {
    let mismatch = |what: &str, footer: &dyn std::fmt::Display, index: &dyn std::fmt::Display| {
        Err(format!(
            "the footer says {what} is {footer}, the index says {index}"
        ))
    };
    if meta.stream != stream {
        return mismatch("the stream", &meta.stream, &stream);
    }
    if meta.schema_id != entry.schema_id {
        return mismatch("the schema", &meta.schema_id.0, &entry.schema_id.0);
    }
    if meta.chunk_len() != entry.chunk_len {
        return mismatch("the chunk length", &meta.chunk_len(), &entry.chunk_len);
    }
    if (meta.meta_len, meta.body_offset) != (entry.meta_len, entry.body_offset) {
        return mismatch(
            "meta_len/body_offset",
            &format!("{}/{}", meta.meta_len, meta.body_offset),
            &format!("{}/{}", entry.meta_len, entry.body_offset),
        );
    }
    if meta.row_count != entry.row_count {
        return mismatch("the row count", &meta.row_count, &entry.row_count);
    }
    if (meta.chunk_crc, meta.meta_crc) != (entry.chunk_crc, entry.meta_crc) {
        return mismatch(
            "chunk_crc/meta_crc",
            &format!("{:#010x}/{:#010x}", meta.chunk_crc, meta.meta_crc),
            &format!("{:#010x}/{:#010x}", entry.chunk_crc, entry.meta_crc),
        );
    }
    if meta.columns.len() != column_count {
        return mismatch("the column count", &meta.columns.len(), &column_count);
    }
    Ok(())
}

/// Whether `projection` names every one of `column_count` columns (in any order).
fn projects_all(projection: &[usize], column_count: usize) -> bool {
    let mut seen = vec![false; column_count];
    for &index in projection {
        if let Some(seen) = seen.get_mut(index) {
            *seen = true;
        }
    }
    seen.into_iter().all(|seen| seen)
}

/// The rule: a pruned read is worth its extra requests when it touches at most half the cache
/// pages (and so fetches at most half the store bytes) the whole-chunk read would.
fn pays_off(pruned_pages: u64, whole_pages: u64) -> bool {
    pruned_pages <= whole_pages / 2
}

/// Sorts `ranges` and merges those that overlap or are separated by less than `max_gap` bytes.
pub(crate) fn coalesce(mut ranges: Vec<Range<u64>>, max_gap: u64) -> Vec<Range<u64>> {
    ranges.sort_by_key(|range| range.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match out.last_mut() {
            Some(last) if range.start <= last.end || range.start - last.end < max_gap => {
                last.end = last.end.max(range.end);
            }
            _ => out.push(range),
        }
    }
    out
}

/// How many distinct pages of `page_size` bytes the sorted, disjoint `ranges` touch.
fn pages_touched(ranges: &[Range<u64>], page_size: u64) -> u64 {
    let mut count = 0;
    let mut next_free = 0; // first page not yet counted
    for range in ranges.iter().filter(|range| !range.is_empty()) {
        let first = (range.start / page_size).max(next_free);
        let last = (range.end - 1) / page_size;
        if last >= first {
            count += last - first + 1;
            next_free = last + 1;
        }
    }
    count
}

/// The bytes of `want` from the fetched range that covers it.
pub(crate) fn cut(fetched: &[(Range<u64>, Bytes)], want: &Range<u64>) -> Bytes {
    if want.is_empty() {
        return Bytes::new();
    }
    let (range, bytes) = fetched
        .iter()
        .find(|(range, _)| range.start <= want.start && want.end <= range.end)
        .expect("coalesce merges every wanted range into one fetched range");
    bytes.slice((want.start - range.start) as usize..(want.end - range.start) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesce_merges_overlapping_and_near_ranges_only() {
        assert_eq!(coalesce(vec![], 10), Vec::<Range<u64>>::new());
        // Unsorted input; a gap of 9 merges, a gap of exactly 10 does not.
        assert_eq!(
            coalesce(vec![40..50, 0..10, 19..25, 100..110], 10),
            vec![0..25, 40..50, 100..110]
        );
        assert_eq!(coalesce(vec![0..10, 20..30], 10), vec![0..10, 20..30]);
        // Touching and overlapping ranges merge even with no gap allowed; containment keeps
        // the outer end.
        assert_eq!(coalesce(vec![0..10, 10..20], 0), vec![0..20]);
        assert_eq!(coalesce(vec![0..30, 5..10, 12..40], 0), vec![0..40]);
        assert_eq!(coalesce(vec![0..10, 11..20], 0), vec![0..10, 11..20]);
    }

    fn pages_of(range: Range<u64>, page_size: u64) -> u64 {
        pages_touched(std::slice::from_ref(&range), page_size)
    }

    #[test]
    fn pages_touched_counts_each_page_once() {
        assert_eq!(pages_touched(&[], 16), 0);
        assert_eq!(pages_of(0..0, 16), 0);
        assert_eq!(pages_of(0..16, 16), 1);
        assert_eq!(pages_of(0..17, 16), 2);
        assert_eq!(pages_of(15..17, 16), 2);
        // Two ranges in one page, then one sharing its first page with the previous range.
        assert_eq!(pages_touched(&[0..2, 4..6, 10..40], 16), 3);
        assert_eq!(pages_touched(&[0..2, 64..65], 16), 2);
    }

    #[test]
    fn a_gap_smaller_than_a_page_adds_no_page() {
        let page = 16;
        for gap in 0..page {
            for start in 0..2 * page {
                let ranges = vec![start..start + 3, start + 3 + gap..start + 3 + gap + 5];
                assert_eq!(
                    pages_touched(&coalesce(ranges.clone(), page), page),
                    pages_touched(&ranges, page),
                    "{ranges:?}"
                );
            }
        }
    }

    #[test]
    fn pruning_pays_off_at_half_the_pages_or_less() {
        assert!(!pays_off(1, 1), "a one-page chunk is always read whole");
        assert!(pays_off(1, 2));
        assert!(pays_off(5, 10));
        assert!(!pays_off(6, 10));
        assert!(!pays_off(u64::MAX, u64::MAX));
    }

    #[test]
    fn projects_all_needs_every_column() {
        assert!(projects_all(&[0, 1, 2], 3));
        assert!(projects_all(&[2, 0, 1], 3));
        assert!(!projects_all(&[0, 2], 3));
        assert!(!projects_all(&[0, 0, 1], 3));
        assert!(projects_all(&[], 0));
    }

    #[test]
    fn cut_takes_the_covering_range() {
        let fetched = vec![
            (10..20, Bytes::from_static(b"0123456789")),
            (30..35, Bytes::from_static(b"abcde")),
        ];
        assert_eq!(&cut(&fetched, &(12..15))[..], b"234");
        assert_eq!(&cut(&fetched, &(30..35))[..], b"abcde");
        assert!(
            cut(&fetched, &(0..0)).is_empty(),
            "an empty range needs no fetched range"
        );
    }
}
