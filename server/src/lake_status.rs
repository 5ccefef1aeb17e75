//! Lake tiering status per table, as `GetLakeStatus` and `inlet lake status` show it: every
//! figure comes from the index (lake record, watermarks, lake file entries, tails), so it is
//! what readers and the compactor act on, not a guess from the Iceberg files.

use inlet_core::ids::{Offset, TimestampMicros};
use inlet_core::table::TableInfo;
use inlet_index::{Index, IndexError, table_streams};
use inlet_proto::v1 as pb;

/// The status of `table`'s lake side at `now`.
pub async fn table_lake_status(
    index: &Index,
    table: &TableInfo,
    now: TimestampMicros,
) -> Result<pb::LakeTableStatus, IndexError> {
    let record = index.lake_table(table.id).await?;
    let mut status = pb::LakeTableStatus {
        database: table.database.clone(),
        table: table.name.clone(),
        lake_enabled: table.options().is_ok_and(|options| options.lake_enabled),
        metadata_location: record
            .as_ref()
            .and_then(|r| r.metadata_location.clone())
            .unwrap_or_default(),
        snapshot_id: record.as_ref().and_then(|r| r.snapshot_id).unwrap_or(0),
        last_commit_micros: record.as_ref().map_or(0, |r| r.updated_at_micros),
        ..Default::default()
    };
    for stream in table_streams(table) {
        let tail = index.tail(stream).await?;
        let watermark = index.lake_watermark(stream).await?;
        let mut files = index.lake_files(stream, Offset(0)).await?;
        while let Some(file) = files.next().await? {
            if file.end_offset() > watermark.offset {
                break;
            }
            status.file_count += 1;
            status.file_bytes += file.file_size;
            status.file_rows += file.row_count;
        }
        let lag_offsets = tail.next_offset.0.saturating_sub(watermark.offset.0);
        // The oldest row not in the lake is the first one of the chunk at the watermark.
        let lag_seconds = if lag_offsets == 0 {
            0.0
        } else {
            match index.chunks(stream, watermark.offset).await?.next().await? {
                Some(chunk) => now.0.saturating_sub(chunk.commit_ts.0).max(0) as f64 / 1e6,
                None => 0.0,
            }
        };
        status.buckets.push(pb::LakeBucketStatus {
            bucket: stream.bucket.0,
            watermark: watermark.offset.0,
            next_offset: tail.next_offset.0,
            earliest_offset: tail.earliest_offset.0,
            lag_offsets,
            lag_seconds,
        });
    }
    Ok(status)
}
