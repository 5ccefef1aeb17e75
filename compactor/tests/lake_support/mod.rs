//! What the lake tests share: a table of one `id` column over four buckets, rows whose
//! values follow from their bucket, offset and round, rounds tiered with [`LakeAppend`], and
//! reading back with iceberg-rust's scan and the manifests.
#![allow(dead_code, unreachable_pub)] // each test binary uses its own part

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

use anyhow::Context;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use futures::TryStreamExt;
use iceberg::spec::{ManifestList, ManifestStatus};
use inlet_compactor::lake::{
    LakeAppend, LakeError, LakeRoot, LakeTable, LakeWriteOptions, StagedAppend,
};
use inlet_core::clock::{Clock, Env, SeededIdGen};
use inlet_core::ids::{Bucket, DatabaseId, SchemaId, TableId, TimestampMicros};
use inlet_core::table::{TableDescriptor, TableInfo, read_schema};
use slatedb::object_store::ObjectStore;

/// A clock that reads a fixed time: the lake must take time from the injected clock.
#[derive(Debug)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now(&self) -> TimestampMicros {
        TimestampMicros(self.0)
    }
}

pub const NOW_MICROS: i64 = 1_790_000_000_000_000;
pub const DAY_MICROS: i64 = 86_400_000_000;

/// The commit time of the rows of round `n` (1-based): round 1 three days ago, round 2 two
/// days ago, and so on; each row one microsecond after the previous offset.
pub fn round_time(n: i64) -> i64 {
    NOW_MICROS - (4 - n) * DAY_MICROS
}

pub fn env(seed: u64) -> Env {
    Env {
        clock: Arc::new(FixedClock(NOW_MICROS)),
        ids: Arc::new(SeededIdGen::new(seed)),
    }
}

pub fn table_info() -> TableInfo {
    TableInfo {
        id: TableId(9),
        database: "ops".into(),
        database_id: DatabaseId(1),
        name: "events".into(),
        schema_id: SchemaId(0),
        descriptor: TableDescriptor {
            schema: Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
            bucket_count: 4,
            bucket_key: vec!["id".into()],
            partition_key: vec![],
            primary_key: vec![],
            comment: String::new(),
            options: BTreeMap::new(),
        },
        created_at: TimestampMicros(NOW_MICROS),
        previous_schemas: Default::default(),
        partitions: Default::default(),
    }
}

pub fn read_schema_of_table() -> SchemaRef {
    read_schema(&table_info().descriptor.schema, &[0])
}

/// One row as the test expects to read it back.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub bucket: i32,
    pub offset: i64,
    pub id: i64,
    pub timestamp: i64,
}

pub fn row(bucket: u32, offset: u64, round: i64) -> Row {
    Row {
        bucket: bucket as i32,
        offset: offset as i64,
        id: i64::from(bucket) * 1_000_000 + offset as i64,
        timestamp: round_time(round) + offset as i64,
    }
}

/// What one round writes: bucket → offsets.
pub type Ranges = [(u32, Range<u64>)];

pub fn rows(ranges: &Ranges, round: i64) -> Vec<Row> {
    ranges
        .iter()
        .flat_map(|(bucket, offsets)| offsets.clone().map(move |o| row(*bucket, o, round)))
        .collect()
}

pub fn batch(bucket: u32, offsets: Range<u64>, round: i64) -> RecordBatch {
    let rows: Vec<Row> = offsets.map(|o| row(bucket, o, round)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.bucket))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.offset))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.timestamp))
                .with_timezone("+00:00"),
        ),
    ];
    RecordBatch::try_new(read_schema_of_table(), columns).expect("matches the read schema")
}

/// Tiers `ranges` with the timestamps of round `round`, and "commits": the caller uses the
/// staged table as the next base and publishes the hint.
pub async fn round(
    table: &LakeTable,
    ranges: &Ranges,
    round: i64,
    env: &Env,
) -> Result<StagedAppend, LakeError> {
    let mut append = LakeAppend::new(table, &LakeWriteOptions::default(), env)?;
    for (bucket, offsets) in ranges {
        append
            .write_bucket(Bucket(*bucket), &[batch(*bucket, offsets.clone(), round)])
            .await?;
    }
    let staged = append.stage().await?;
    staged.table.publish_version_hint().await?;
    Ok(staged)
}

/// Every batch of the table's current snapshot, read with iceberg-rust's scan.
pub async fn scan_batches(table: &LakeTable) -> anyhow::Result<Vec<RecordBatch>> {
    Ok(table
        .iceberg_table()?
        .scan()
        .select_all()
        .build()?
        .to_arrow()
        .await?
        .try_collect()
        .await?)
}

/// Reads the whole table with iceberg-rust's scan.
pub async fn scan(table: &LakeTable) -> anyhow::Result<Vec<Row>> {
    let batches = scan_batches(table).await?;
    let mut rows = Vec::new();
    for batch in &batches {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .with_context(|| format!("no `{name}`"))
        };
        let ids = column("id")?.as_primitive::<Int64Type>();
        let buckets = column("_bucket")?.as_primitive::<Int32Type>();
        let offsets = column("_offset")?.as_primitive::<Int64Type>();
        let timestamps = column("_timestamp")?.as_primitive::<TimestampMicrosecondType>();
        rows.extend((0..batch.num_rows()).map(|i| Row {
            bucket: buckets.value(i),
            offset: offsets.value(i),
            id: ids.value(i),
            timestamp: timestamps.value(i),
        }));
    }
    rows.sort();
    Ok(rows)
}

pub async fn list(store: &Arc<dyn ObjectStore>) -> anyhow::Result<BTreeSet<String>> {
    let listed: Vec<_> = store.list(None).try_collect().await?;
    Ok(listed.into_iter().map(|m| m.location.to_string()).collect())
}

/// Store paths of URLs.
pub fn paths<'a>(
    root: &LakeRoot,
    urls: impl IntoIterator<Item = &'a String>,
) -> anyhow::Result<BTreeSet<String>> {
    urls.into_iter()
        .map(|url| Ok(root.path_of(url)?.to_string()))
        .collect()
}

/// The entries of the current snapshot: (file path, status, snapshot id, data sequence
/// number), and the manifest paths.
pub async fn current_entries(
    table: &LakeTable,
) -> anyhow::Result<(Vec<(String, ManifestStatus, i64, i64)>, BTreeSet<String>)> {
    let file_io = table.storage().file_io();
    let metadata = table.metadata();
    let snapshot = metadata.current_snapshot().context("a snapshot")?;
    let bytes = file_io.new_input(snapshot.manifest_list())?.read().await?;
    let list = ManifestList::parse_with_version(&bytes, metadata.format_version())?;
    let mut entries = Vec::new();
    let mut manifests = BTreeSet::new();
    for manifest in list.entries() {
        manifests.insert(manifest.manifest_path.clone());
        for entry in manifest.load_manifest(&file_io).await?.entries() {
            entries.push((
                entry.file_path().to_owned(),
                entry.status(),
                entry.snapshot_id().context("snapshot id")?,
                entry.sequence_number().context("sequence number")?,
            ));
        }
    }
    Ok((entries, manifests))
}

pub fn summary(table: &LakeTable) -> BTreeMap<String, String> {
    table
        .metadata()
        .current_snapshot()
        .map(|s| {
            s.summary()
                .additional_properties
                .clone()
                .into_iter()
                .collect()
        })
        .unwrap_or_default()
}
