//! Lake tiering status per table, as `GetLakeStatus` and `inlet lake status` show it: every
//! figure comes from the index (lake record, watermarks, lake file entries, tails), so it is
//! what readers and the compactor act on, not a guess from the Iceberg files. Primary-key
//! tables have no lake file entries (their lake holds current rows, see `docs/lake-layout.md`):
//! their file figures come from the current snapshot's summary, the metadata file the index
//! points to.

use inlet_compactor::lake::{LakeStorage, LakeTable};
use inlet_core::ids::{Offset, TimestampMicros};
use inlet_core::table::TableInfo;
use inlet_index::{Index, IndexError, table_streams};
use inlet_proto::v1 as pb;

/// The status of `table`'s lake side at `now`; `lake` opens the metadata of primary-key
/// tables (without it their file figures stay 0).
pub async fn table_lake_status(
    index: &Index,
    lake: Option<&LakeStorage>,
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
    if let (true, Some(lake), false) = (
        table.is_primary_key_table(),
        lake,
        status.metadata_location.is_empty(),
    ) {
        let totals = snapshot_totals(lake, table, &status.metadata_location)
            .await
            .map_err(IndexError::Storage)?;
        status.file_count = totals.data_files;
        status.file_bytes = totals.bytes;
        status.file_rows = totals.records.saturating_sub(totals.position_deletes);
    }
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

/// Totals of a lake table's current snapshot, from its summary.
struct SnapshotTotals {
    data_files: u64,
    /// Data and delete files.
    bytes: u64,
    records: u64,
    position_deletes: u64,
}

async fn snapshot_totals(
    lake: &LakeStorage,
    table: &TableInfo,
    metadata_location: &str,
) -> Result<SnapshotTotals, String> {
    let ident = iceberg::TableIdent::from_strs([table.database.as_str(), table.name.as_str()])
        .map_err(|e| e.to_string())?;
    let loaded = LakeTable::load(lake, ident, metadata_location)
        .await
        .map_err(|e| format!("lake metadata `{metadata_location}`: {e}"))?;
    let Some(snapshot) = loaded.metadata().current_snapshot() else {
        return Ok(SnapshotTotals {
            data_files: 0,
            bytes: 0,
            records: 0,
            position_deletes: 0,
        });
    };
    let properties = &snapshot.summary().additional_properties;
    let total = |name: &str| -> Result<u64, String> {
        properties
            .get(name)
            .map_or(Ok(0), |value| value.parse::<u64>())
            .map_err(|e| format!("`{name}` of snapshot {}: {e}", snapshot.snapshot_id()))
    };
    Ok(SnapshotTotals {
        data_files: total("total-data-files")?,
        bytes: total("total-files-size")?,
        records: total("total-records")?,
        position_deletes: total("total-position-deletes")?,
    })
}
