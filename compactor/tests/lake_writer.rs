//! The lake writer end to end, against a local directory and an in-memory store: two rounds
//! of rows in several buckets become an Iceberg table that iceberg-rust's own scan reads back
//! exactly (rows, offsets, timestamps; no duplicates; two snapshots), with Parquet files that
//! carry the system columns sorted by offset, and every byte going through the store under
//! `lake/`.
//!
//! Set `INLET_TEST_LAKE_DIR` to a directory to keep the local-directory table there, e.g. to
//! read it with DuckDB or pyiceberg afterwards (the metadata path is printed).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context, ensure};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{
    Array, ArrayRef, Int8Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::TryStreamExt;
use iceberg::TableIdent;
use iceberg::spec::Datum;
use inlet_compactor::lake::{
    LakeAppend, LakeError, LakeRoot, LakeStorage, LakeTable, LakeWriteOptions, StagedAppend,
};
use inlet_core::clock::{Clock, Env, SeededIdGen};
use inlet_core::ids::{Bucket, DatabaseId, Offset, SchemaId, TableId, TimestampMicros};
use inlet_core::table::{TableDescriptor, TableInfo, read_schema};
use inlet_store::{InstrumentedStore, Purpose, StoreMetrics};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use slatedb::object_store::local::LocalFileSystem;
use slatedb::object_store::memory::InMemory;
use slatedb::object_store::{ObjectStore, ObjectStoreExt};

/// A clock that reads a fixed time: the lake must take time from the injected clock.
#[derive(Debug)]
struct FixedClock(i64);

impl Clock for FixedClock {
    fn now(&self) -> TimestampMicros {
        TimestampMicros(self.0)
    }
}

const NOW_MICROS: i64 = 1_790_000_000_000_000;

fn env(seed: u64) -> Env {
    Env {
        clock: Arc::new(FixedClock(NOW_MICROS)),
        ids: Arc::new(SeededIdGen::new(seed)),
    }
}

fn table_info() -> TableInfo {
    TableInfo {
        id: TableId(7),
        database: "shop".into(),
        database_id: DatabaseId(1),
        name: "orders".into(),
        schema_id: SchemaId(0),
        descriptor: TableDescriptor {
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("item", DataType::Utf8, true),
                // Stored as Iceberg int: the writer widens it.
                Field::new("qty", DataType::Int8, true),
            ])),
            bucket_count: 3,
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

/// One row as the test expects to read it back.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    bucket: i32,
    offset: i64,
    id: i64,
    item: Option<String>,
    qty: Option<i32>,
    timestamp: i64,
}

fn row(bucket: u32, offset: u64) -> Row {
    let offset = offset as i64;
    Row {
        bucket: bucket as i32,
        offset,
        id: i64::from(bucket) * 1_000_000 + offset,
        item: (offset % 5 != 0).then(|| format!("item-{bucket}-{offset}")),
        qty: (offset % 3 != 0).then_some((offset % 100) as i32),
        // Several rows share a commit timestamp, as rows of one chunk do.
        timestamp: NOW_MICROS - 1_000_000_000 + offset / 4 * 1000,
    }
}

/// Rows `offsets` of `bucket` as the reader hands them over: table columns, then the system
/// columns (the read schema).
fn batch(schema: &SchemaRef, bucket: u32, offsets: std::ops::Range<u64>) -> RecordBatch {
    let rows: Vec<Row> = offsets.map(|o| row(bucket, o)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.item.clone()))),
        Arc::new(Int8Array::from_iter(
            rows.iter().map(|r| r.qty.map(|q| q as i8)),
        )),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.bucket))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.offset))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.timestamp))
                .with_timezone("+00:00"),
        ),
    ];
    RecordBatch::try_new(schema.clone(), columns).expect("matches the read schema")
}

fn rows_of(batch: &RecordBatch) -> anyhow::Result<Vec<Row>> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .with_context(|| format!("no `{name}`"))
    };
    let ids = column("id")?.as_primitive::<Int64Type>();
    let items = column("item")?.as_string::<i32>();
    let qty = column("qty")?.as_primitive::<Int32Type>();
    let buckets = column("_bucket")?.as_primitive::<Int32Type>();
    let offsets = column("_offset")?.as_primitive::<Int64Type>();
    let timestamps = column("_timestamp")?.as_primitive::<TimestampMicrosecondType>();
    Ok((0..batch.num_rows())
        .map(|i| Row {
            bucket: buckets.value(i),
            offset: offsets.value(i),
            id: ids.value(i),
            item: items.is_valid(i).then(|| items.value(i).to_owned()),
            qty: qty.is_valid(i).then(|| qty.value(i)),
            timestamp: timestamps.value(i),
        })
        .collect())
}

/// Reads the whole table with iceberg-rust's scan.
async fn scan(table: &LakeTable) -> anyhow::Result<Vec<Row>> {
    let table = table.iceberg_table()?;
    let batches: Vec<RecordBatch> = table
        .scan()
        .select_all()
        .build()?
        .to_arrow()
        .await?
        .try_collect()
        .await?;
    let mut rows = Vec::new();
    for batch in &batches {
        rows.extend(rows_of(batch)?);
    }
    rows.sort();
    Ok(rows)
}

/// Reads one data file with the plain Parquet reader and checks it holds one bucket's
/// contiguous offsets in order, with field ids on the system columns.
async fn check_data_file(
    store: &Arc<dyn ObjectStore>,
    root: &LakeRoot,
    url: &str,
) -> anyhow::Result<(i32, std::ops::Range<i64>)> {
    let bytes = store.get(&root.path_of(url)?).await?.bytes().await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let metadata = reader.metadata().clone();
    let schema = reader.schema().clone();
    for name in ["_bucket", "_offset", "_timestamp"] {
        let field = schema.field_with_name(name)?;
        ensure!(
            field.metadata().contains_key("PARQUET:field_id"),
            "`{name}` has no field id in {url}"
        );
    }
    ensure!(
        schema.field_with_name("qty")?.data_type() == &DataType::Int32,
        "qty is stored as Iceberg int"
    );
    ensure!(
        schema.field_with_name("_timestamp")?.data_type()
            == &DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        "_timestamp is a microsecond timestamptz"
    );
    let offset_leaf = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.name() == "_offset")
        .context("no _offset leaf")?;
    for group in metadata.row_groups() {
        let sorting = group
            .sorting_columns()
            .context("row group declares no sort order")?;
        ensure!(sorting.len() == 1 && sorting[0].column_idx as usize == offset_leaf);
        ensure!(!sorting[0].descending);
    }
    let mut offsets = Vec::new();
    let mut buckets = BTreeSet::new();
    for batch in reader.build()? {
        let batch = batch?;
        offsets.extend(
            batch
                .column_by_name("_offset")
                .context("_offset")?
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .copied(),
        );
        buckets.extend(
            batch
                .column_by_name("_bucket")
                .context("_bucket")?
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .copied(),
        );
    }
    ensure!(
        buckets.len() == 1,
        "one bucket per file, found {buckets:?} in {url}"
    );
    let first = *offsets.first().context("an empty data file")?;
    ensure!(
        offsets
            .iter()
            .enumerate()
            .all(|(i, o)| *o == first + i as i64),
        "offsets in {url} are not sorted and dense"
    );
    let bucket = *buckets.first().expect("one bucket");
    ensure!(
        url.contains(&format!("/data/_bucket={bucket}/")),
        "{url} is not under its bucket's partition folder"
    );
    Ok((bucket, first..first + offsets.len() as i64))
}

/// Writes `ranges` (bucket → offsets), in batches of at most `batch_rows`, and stages.
async fn round(
    table: &LakeTable,
    ranges: &[(u32, std::ops::Range<u64>)],
    batch_rows: u64,
    env: &Env,
) -> Result<StagedAppend, LakeError> {
    let read_schema = read_schema(&table_info().descriptor.schema, &[0, 1, 2]);
    let mut append = LakeAppend::new(table, &LakeWriteOptions::default(), env)?;
    for (bucket, offsets) in ranges {
        let batches: Vec<RecordBatch> = (offsets.start..offsets.end)
            .step_by(batch_rows as usize)
            .map(|start| {
                batch(
                    &read_schema,
                    *bucket,
                    start..(start + batch_rows).min(offsets.end),
                )
            })
            .collect();
        append.write_bucket(Bucket(*bucket), &batches).await?;
    }
    append.stage().await
}

async fn list(store: &Arc<dyn ObjectStore>) -> anyhow::Result<BTreeSet<String>> {
    let listed: Vec<_> = store.list(None).try_collect().await?;
    Ok(listed.into_iter().map(|m| m.location.to_string()).collect())
}

/// The scenario, run against each store: two rounds, read back after each.
async fn two_rounds(store: Arc<dyn ObjectStore>, root: LakeRoot) -> anyhow::Result<()> {
    let metrics = StoreMetrics::new();
    let counted: Arc<dyn ObjectStore> = Arc::new(InstrumentedStore::with_metrics(
        store.clone(),
        metrics.clone(),
    ));
    let storage = LakeStorage::new(root.clone(), counted);
    let env = env(42);

    let created = LakeTable::create(&storage, &table_info(), &env).await?;
    created.publish_version_hint().await?;
    assert_eq!(created.version(), 0);
    assert_eq!(created.snapshot_id(), None);
    assert!(created.watermarks()?.is_empty());
    assert_eq!(
        created.location(),
        format!("{}/lake/shop/orders-7", root.url()),
        "the table lives under lake/ in the store, by URL"
    );
    assert!(scan(&created).await?.is_empty());

    // Round 1: buckets 0 and 1 (bucket 1 in uneven batches); bucket 2 has nothing yet.
    let first = round(&created, &[(0, 0..100), (1, 0..37)], 30, &env).await?;
    assert_eq!(first.base_metadata_location, created.metadata_location());
    assert_eq!(first.base_snapshot_id, None);
    assert_eq!(
        first.offsets,
        BTreeMap::from([
            (Bucket(0), Offset(0)..Offset(100)),
            (Bucket(1), Offset(0)..Offset(37))
        ])
    );
    let after_first = first.table.clone();
    after_first.publish_version_hint().await?;
    assert_eq!(after_first.version(), 1);

    // Round 2 on round 1's version: all three buckets move.
    let second = round(
        &after_first,
        &[(0, 100..250), (2, 0..64), (1, 37..40)],
        64,
        &env,
    )
    .await?;
    assert_eq!(
        second.base_metadata_location,
        after_first.metadata_location()
    );
    assert_eq!(second.base_snapshot_id, Some(first.snapshot_id));
    let watermarks = BTreeMap::from([
        (Bucket(0), Offset(250)),
        (Bucket(1), Offset(40)),
        (Bucket(2), Offset(64)),
    ]);
    assert_eq!(second.watermarks, watermarks);
    second.table.publish_version_hint().await?;

    // What a reader of the committed pointer sees: reload from the metadata location.
    let ident = TableIdent::from_strs(["shop", "orders"])?;
    let table = LakeTable::load(&storage, ident, second.table.metadata_location()).await?;
    assert_eq!(table.version(), 2);
    assert_eq!(table.watermarks()?, watermarks);
    let metadata = table.metadata();
    assert_eq!(metadata.snapshots().count(), 2, "one snapshot per round");
    assert_eq!(metadata.current_snapshot_id(), Some(second.snapshot_id));
    assert_eq!(
        metadata.last_updated_ms(),
        NOW_MICROS / 1000,
        "time from the injected clock"
    );
    assert_eq!(
        metadata.metadata_log().len(),
        2,
        "both earlier versions are logged"
    );
    let summary = &metadata
        .current_snapshot()
        .context("a current snapshot")?
        .summary()
        .additional_properties;
    for (key, value) in [
        ("inlet.offsets.0", "100-250"),
        ("inlet.offsets.1", "37-40"),
        ("inlet.offsets.2", "0-64"),
        ("inlet.watermarks", r#"{"0":250,"1":40,"2":64}"#),
        ("added-records", "217"),
        ("total-records", "354"),
    ] {
        assert_eq!(summary.get(key).map(String::as_str), Some(value), "{key}");
    }
    let first_summary = &metadata
        .snapshot_by_id(first.snapshot_id)
        .context("the first snapshot")?
        .summary()
        .additional_properties;
    assert_eq!(
        first_summary.get("inlet.offsets.0").map(String::as_str),
        Some("0-100")
    );
    assert!(!first_summary.contains_key("inlet.offsets.2"));

    // Exactly the rows written, once each, with their offsets and timestamps.
    let expected: Vec<Row> = [(0u32, 0..250u64), (1, 0..40), (2, 0..64)]
        .into_iter()
        .flat_map(|(bucket, offsets)| offsets.map(move |o| row(bucket, o)))
        .collect();
    let rows = scan(&table).await?;
    let distinct: BTreeSet<(i32, i64)> = rows.iter().map(|r| (r.bucket, r.offset)).collect();
    assert_eq!(distinct.len(), rows.len(), "no duplicate offsets");
    assert_eq!(rows, expected);
    // The earlier version still reads as it was.
    assert_eq!(scan(&after_first).await?.len(), 137);

    // Every data file: one bucket, its offsets dense and sorted, matching the manifest's
    // bounds; together they cover each bucket's offsets exactly.
    let offset_id = metadata
        .current_schema()
        .field_by_name("_offset")
        .context("_offset")?
        .id;
    let mut covered: BTreeMap<i32, Vec<std::ops::Range<i64>>> = BTreeMap::new();
    for file in first.data_files.iter().chain(&second.data_files) {
        let (bucket, offsets) = check_data_file(&store, &root, file.file_path()).await?;
        assert_eq!(file.record_count(), (offsets.end - offsets.start) as u64);
        assert_eq!(file.sort_order_id(), Some(1));
        // The manifest's bounds give the file's offset range without opening it.
        assert_eq!(
            file.lower_bounds().get(&offset_id),
            Some(&Datum::long(offsets.start))
        );
        assert_eq!(
            file.upper_bounds().get(&offset_id),
            Some(&Datum::long(offsets.end - 1))
        );
        covered.entry(bucket).or_default().push(offsets);
    }
    for (bucket, mut ranges) in covered {
        ranges.sort_by_key(|r| r.start);
        let joined: Vec<i64> = ranges.iter().flat_map(|r| r.clone()).collect();
        let end = watermarks[&Bucket(bucket as u32)].0 as i64;
        assert_eq!(joined, (0..end).collect::<Vec<_>>(), "bucket {bucket}");
    }

    // Everything is under lake/, listed in files_written, and went through the instrumented
    // store as `lake` traffic.
    let objects = list(&store).await?;
    assert!(
        objects.iter().all(|p| p.starts_with("lake/shop/orders-7/")),
        "{objects:?}"
    );
    assert!(objects.contains("lake/shop/orders-7/metadata/version-hint.text"));
    for written in first.files_written.iter().chain(&second.files_written) {
        assert!(
            objects.contains(&root.path_of(written)?.to_string()),
            "{written}"
        );
    }
    let counts = metrics.snapshot();
    assert!(counts.purpose(Purpose::Lake).requests > 0);
    assert_eq!(
        counts.total().requests,
        counts.purpose(Purpose::Lake).requests
    );
    Ok(())
}

#[tokio::test]
async fn two_rounds_in_memory() -> anyhow::Result<()> {
    two_rounds(
        Arc::new(InMemory::new()),
        LakeRoot::memory("lake-writer-two-rounds"),
    )
    .await
}

#[tokio::test]
async fn two_rounds_in_a_local_directory() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = match std::env::var_os("INLET_TEST_LAKE_DIR") {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            std::path::PathBuf::from(dir)
        }
        None => temp.path().to_owned(),
    };
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&dir)?);
    let root = LakeRoot::local(&dir)?;
    two_rounds(store.clone(), root.clone()).await?;

    // The metadata names real absolute file:// paths that exist on disk.
    let hint = std::fs::read_to_string(
        root_dir(&root).join("lake/shop/orders-7/metadata/version-hint.text"),
    )?;
    let metadata_path =
        root_dir(&root).join(format!("lake/shop/orders-7/metadata/{hint}.metadata.json"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&metadata_path)?)?;
    let location = json["location"].as_str().context("location")?;
    assert!(location.starts_with("file:///"), "{location}");
    let manifest_list = json["snapshots"][1]["manifest-list"]
        .as_str()
        .context("manifest list")?;
    let on_disk = manifest_list
        .strip_prefix("file://")
        .context("a file:// URL")?;
    assert!(std::path::Path::new(on_disk).is_file(), "{on_disk}");
    eprintln!("lake table metadata: {}", metadata_path.display());
    Ok(())
}

fn root_dir(root: &LakeRoot) -> std::path::PathBuf {
    match root {
        LakeRoot::Local(dir) => dir.clone(),
        _ => unreachable!("a local root"),
    }
}

#[tokio::test]
async fn rows_must_continue_the_lake_exactly() -> anyhow::Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let storage = LakeStorage::new(LakeRoot::memory("lake-writer-gaps"), store.clone());
    let env = env(7);
    let table = LakeTable::create(&storage, &table_info(), &env).await?;
    let schema = read_schema(&table_info().descriptor.schema, &[0, 1, 2]);
    let table = round(&table, &[(0, 0..10)], 10, &env).await?.table;

    let mut append = LakeAppend::new(&table, &LakeWriteOptions::default(), &env)?;
    // A gap, an overlap, a row of another bucket, offsets out of order: all refused.
    let gap = append.write(Bucket(0), &batch(&schema, 0, 11..20)).await;
    assert!(
        matches!(
            gap,
            Err(LakeError::OffsetGap {
                expected: Offset(10),
                found: Offset(11),
                ..
            })
        ),
        "{gap:?}"
    );
    let overlap = append.write(Bucket(0), &batch(&schema, 0, 5..20)).await;
    assert!(
        matches!(overlap, Err(LakeError::OffsetGap { .. })),
        "{overlap:?}"
    );
    let other = append.write(Bucket(1), &batch(&schema, 2, 0..5)).await;
    assert!(
        matches!(other, Err(LakeError::InvalidRows { .. })),
        "{other:?}"
    );
    let shuffled = arrow_select::concat::concat_batches(
        &schema,
        &[
            batch(&schema, 0, 10..12),
            batch(&schema, 0, 13..15),
            batch(&schema, 0, 12..13),
        ],
    )?;
    let out_of_order = append.write(Bucket(0), &shuffled).await;
    assert!(
        matches!(out_of_order, Err(LakeError::InvalidRows { .. })),
        "{out_of_order:?}"
    );
    // A required column with nulls is refused, a missing nullable one is nulls.
    let no_item = RecordBatch::try_new(
        Arc::new(schema.project(&[0, 2, 3, 4, 5])?),
        batch(&schema, 0, 10..12)
            .project(&[0, 2, 3, 4, 5])?
            .columns()
            .to_vec(),
    )?;
    append.write(Bucket(0), &no_item).await?;
    assert_eq!(append.next_offset(Bucket(0)), Offset(12));
    assert_eq!(append.next_offset(Bucket(5)), Offset(0));

    // The staged round reads back; abandoning it deletes exactly what it wrote.
    let written_before = list(&store).await?;
    let staged = append.stage().await?;
    assert_eq!(
        staged.offsets,
        BTreeMap::from([(Bucket(0), Offset(10)..Offset(12))])
    );
    let read = scan(&staged.table).await?;
    assert_eq!(read.len(), 12);
    assert!(read[10].item.is_none() && read[11].item.is_none());
    staged.abandon().await?;
    assert_eq!(
        list(&store).await?,
        written_before,
        "abandon deletes exactly what it wrote"
    );

    // A round in which no bucket moved has nothing to commit.
    let empty = LakeAppend::new(&table, &LakeWriteOptions::default(), &env)?;
    assert!(matches!(
        empty.stage().await,
        Err(LakeError::NothingToCommit)
    ));
    Ok(())
}

#[tokio::test]
async fn two_rounds_on_one_base_are_detectable_conflicts() -> anyhow::Result<()> {
    // iceberg's Transaction::commit would rebase the second onto the first and duplicate
    // the rows; a staged append names its base, so the pointer swap refuses the loser.
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let storage = LakeStorage::new(LakeRoot::memory("lake-writer-race"), store.clone());
    let env = env(9);
    let base = LakeTable::create(&storage, &table_info(), &env).await?;
    let before = list(&store).await?;
    let a = round(&base, &[(0, 0..10)], 10, &env).await?;
    let b = round(&base, &[(0, 0..10)], 10, &env).await?;
    assert_eq!(a.base_metadata_location, b.base_metadata_location);
    assert_eq!(a.table.version(), b.table.version());
    assert_ne!(a.table.metadata_location(), b.table.metadata_location());
    assert!(
        a.files_written.iter().all(|f| !b.files_written.contains(f)),
        "no shared file"
    );
    // The loser cleans up; the winner's table is intact.
    b.abandon().await?;
    assert_eq!(scan(&a.table).await?.len(), 10);
    a.abandon().await?;
    assert_eq!(list(&store).await?, before);
    Ok(())
}

#[tokio::test]
async fn large_rounds_roll_into_several_files() -> anyhow::Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let storage = LakeStorage::new(LakeRoot::memory("lake-writer-rolling"), store);
    let env = env(11);
    let table = LakeTable::create(&storage, &table_info(), &env).await?;
    let schema = read_schema(&table_info().descriptor.schema, &[0, 1, 2]);
    let options = LakeWriteOptions {
        target_file_bytes: 1,
        row_group_rows: 100,
        ..LakeWriteOptions::default()
    };
    let mut append = LakeAppend::new(&table, &options, &env)?;
    for start in (0..1000).step_by(250) {
        append
            .write(Bucket(1), &batch(&schema, 1, start..start + 250))
            .await?;
    }
    let staged = append.stage().await?;
    assert!(
        staged.data_files.len() > 1,
        "{} files",
        staged.data_files.len()
    );
    let rows = scan(&staged.table).await?;
    assert_eq!(rows, (0..1000).map(|o| row(1, o)).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test]
async fn a_bucket_can_move_without_rows() -> anyhow::Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let storage = LakeStorage::new(LakeRoot::memory("lake-writer-advance"), store);
    let env = env(13);
    let table = LakeTable::create(&storage, &table_info(), &env).await?;
    let table = round(&table, &[(0, 0..10)], 10, &env).await?.table;

    let mut append = LakeAppend::new(&table, &LakeWriteOptions::default(), &env)?;
    let back = append.advance(Bucket(0), Offset(9)).await;
    assert!(matches!(back, Err(LakeError::OffsetGap { .. })), "{back:?}");
    append.advance(Bucket(2), Offset(5)).await?;
    assert_eq!(append.next_offset(Bucket(2)), Offset(5));
    let staged = append.stage().await?;
    assert!(staged.data_files.is_empty());
    assert_eq!(
        staged.offsets,
        BTreeMap::from([(Bucket(2), Offset(0)..Offset(5))])
    );
    assert_eq!(
        staged.table.watermarks()?,
        BTreeMap::from([(Bucket(0), Offset(10)), (Bucket(2), Offset(5))])
    );
    assert_eq!(staged.table.metadata().snapshots().count(), 2);
    assert_eq!(
        scan(&staged.table).await?.len(),
        10,
        "the rows of the first round only"
    );
    Ok(())
}

/// A primary-key table's round: rows with gaps in their offsets (only each changed key's
/// newest row) and position deletes of rows an earlier snapshot wrote. iceberg-rust's scan
/// applies the deletes; offsets must still ascend, and the watermark moves past the gaps.
#[tokio::test]
async fn sparse_rows_and_position_deletes() -> anyhow::Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let storage = LakeStorage::new(LakeRoot::memory("lake-writer-keyed"), store);
    let env = env(17);
    let table = LakeTable::create(&storage, &table_info(), &env).await?;
    let schema = read_schema(&table_info().descriptor.schema, &[0, 1, 2]);
    let rows_at = |offsets: &[u64]| -> anyhow::Result<RecordBatch> {
        let parts: Vec<RecordBatch> = offsets
            .iter()
            .map(|o| batch(&schema, 0, *o..*o + 1))
            .collect();
        Ok(arrow_select::concat::concat_batches(&schema, &parts)?)
    };

    let mut append =
        LakeAppend::new(&table, &LakeWriteOptions::default(), &env)?.with_sparse_offsets();
    append.write(Bucket(0), &rows_at(&[0, 2, 5])?).await?;
    let back = append.write(Bucket(0), &rows_at(&[4])?).await;
    assert!(matches!(back, Err(LakeError::OffsetGap { .. })), "{back:?}");
    let unordered = append.write(Bucket(0), &rows_at(&[7, 6])?).await;
    assert!(
        matches!(unordered, Err(LakeError::InvalidRows { .. })),
        "{unordered:?}"
    );
    append.advance(Bucket(0), Offset(8)).await?;
    let first = append.bucket_files(Bucket(0)).to_vec();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].record_count(), 3);
    let staged = append.stage().await?;
    assert_eq!(
        staged.offsets,
        BTreeMap::from([(Bucket(0), Offset(0)..Offset(8))])
    );
    let table = staged.table;
    assert_eq!(scan(&table).await?, [0, 2, 5].map(|o| row(0, o)).to_vec());

    // The second round replaces the rows at positions 0 and 2 (offsets 0 and 5) and adds one.
    let mut append =
        LakeAppend::new(&table, &LakeWriteOptions::default(), &env)?.with_sparse_offsets();
    append.write(Bucket(0), &rows_at(&[9])?).await?;
    append.advance(Bucket(0), Offset(12)).await?;
    let path = first[0].file_path().to_owned();
    append
        .delete_rows(Bucket(0), vec![(path.clone(), 2), (path, 0)])
        .await?;
    let staged = append.stage().await?;
    assert_eq!(staged.delete_files.len(), 1);
    assert_eq!(staged.delete_files[0].record_count(), 2);
    let summary = &staged
        .table
        .metadata()
        .current_snapshot()
        .expect("a snapshot")
        .summary();
    assert_eq!(summary.operation, iceberg::spec::Operation::Overwrite);
    assert_eq!(
        summary.additional_properties.get("total-position-deletes"),
        Some(&"2".to_owned())
    );
    assert_eq!(scan(&staged.table).await?, vec![row(0, 2), row(0, 9)]);
    assert_eq!(
        staged.table.watermarks()?,
        BTreeMap::from([(Bucket(0), Offset(12))])
    );
    Ok(())
}
