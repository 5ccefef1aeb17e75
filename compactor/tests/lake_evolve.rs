//! Lake schema evolution, against an in-memory store: a table tiered with one column gains a
//! second. The evolved version has a new current schema whose old fields keep their ids and
//! whose new field has a fresh one, before the system columns; a round on it writes the new
//! column, iceberg-rust's scan reads the old rows with nulls in it, and a rewrite of the old
//! and new files keeps every value.

mod lake_support;

use std::sync::Arc;

use anyhow::Context;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_array::{TimestampMicrosecondArray, types::Int32Type};
use arrow_schema::{DataType, Field, Schema};
use inlet_compactor::lake::{
    CompactionRule, LakeAppend, LakeRoot, LakeStorage, LakeTable, LakeWriteOptions, stage_rewrite,
};
use inlet_core::ids::Bucket;
use lake_support::*;
use slatedb::object_store::ObjectStore;
use slatedb::object_store::memory::InMemory;

/// The table's columns after `note` was added.
fn evolved_columns() -> Schema {
    Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("note", DataType::Utf8, true),
    ])
}

/// Rows `offsets` of bucket 0 with a note each, as a round after the evolution writes them.
fn noted(offsets: std::ops::Range<u64>) -> anyhow::Result<RecordBatch> {
    let rows: Vec<Row> = offsets.map(|o| row(0, o, 2)).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("note", DataType::Utf8, true),
        Field::new("_bucket", DataType::Int32, false),
        Field::new("_offset", DataType::Int64, false),
        Field::new(
            "_timestamp",
            DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("+00:00".into())),
            false,
        ),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| format!("note-{}", r.offset)),
        )),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.bucket))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.offset))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.timestamp))
                .with_timezone("+00:00"),
        ),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Every (offset, id, note) of the table, read with iceberg-rust's scan, by offset.
async fn notes(table: &LakeTable) -> anyhow::Result<Vec<(i64, i64, Option<String>)>> {
    let mut rows = Vec::new();
    for batch in &scan_batches(table).await? {
        let offsets = batch
            .column_by_name("_offset")
            .context("_offset")?
            .as_primitive::<Int64Type>();
        let ids = batch
            .column_by_name("id")
            .context("id")?
            .as_primitive::<Int64Type>();
        let buckets = batch
            .column_by_name("_bucket")
            .context("_bucket")?
            .as_primitive::<Int32Type>();
        let notes = batch
            .column_by_name("note")
            .context("note")?
            .as_string::<i32>();
        for i in 0..batch.num_rows() {
            assert_eq!(buckets.value(i), 0);
            let note = (!notes.is_null(i)).then(|| notes.value(i).to_owned());
            rows.push((offsets.value(i), ids.value(i), note));
        }
    }
    rows.sort();
    Ok(rows)
}

#[tokio::test]
async fn an_added_column_evolves_the_lake_schema_and_old_rows_read_as_null() -> anyhow::Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let storage = LakeStorage::new(LakeRoot::memory("lake-evolve"), store);
    let env = env(31);
    let table = LakeTable::create(&storage, &table_info(), &env).await?;
    let first = round(&table, &[(0, 0..10)], 1, &env).await?;
    first.table.publish_version_hint().await?;
    let before = first.table.metadata();
    let old_ids: Vec<(String, i32)> = before
        .current_schema()
        .as_struct()
        .fields()
        .iter()
        .map(|f| (f.name.clone(), f.id))
        .collect();

    let evolved = first
        .table
        .with_columns_of(&evolved_columns())?
        .context("`note` is missing from the lake")?;
    assert_eq!(evolved.metadata_location(), first.table.metadata_location());
    let schema = evolved.metadata().current_schema();
    assert_eq!(evolved.metadata().current_schema_id(), 1);
    let fields: Vec<(String, i32)> = schema
        .as_struct()
        .fields()
        .iter()
        .map(|f| (f.name.clone(), f.id))
        .collect();
    let note_id = before.last_column_id() + 1;
    let mut expected = vec![old_ids[0].clone(), ("note".to_owned(), note_id)];
    expected.extend(old_ids[1..].iter().cloned());
    assert_eq!(
        fields, expected,
        "old ids kept, the new one fresh, before the system columns"
    );
    assert!(!schema.field_by_name("note").context("note")?.required);
    assert_eq!(
        evolved.metadata().last_updated_ms(),
        before.last_updated_ms()
    );
    assert!(evolved.with_columns_of(&evolved_columns())?.is_none());

    // A round on the evolved version writes the column; the version it stages has both
    // schemas, the old rows read with nulls.
    let mut append = LakeAppend::new(&evolved, &LakeWriteOptions::default(), &env)?;
    append.write_bucket(Bucket(0), &[noted(10..15)?]).await?;
    let second = append.stage().await?;
    second.table.publish_version_hint().await?;
    assert_eq!(second.table.metadata().schemas_iter().count(), 2);
    let mut expected: Vec<(i64, i64, Option<String>)> =
        (0..10).map(|o| (o, row(0, o as u64, 1).id, None)).collect();
    expected.extend((10..15).map(|o| (o, row(0, o as u64, 2).id, Some(format!("note-{o}")))));
    assert_eq!(notes(&second.table).await?, expected);

    // A rewrite of the old file and the new one keeps every value.
    let rule = CompactionRule {
        target_bytes: 1 << 30,
        min_files: 2,
        max_bytes: u64::MAX,
    };
    let rewritten = stage_rewrite(
        &second.table,
        &rule,
        &LakeWriteOptions::default(),
        100,
        &env,
    )
    .await?
    .context("two small files")?;
    assert_eq!(notes(&rewritten.table).await?, expected);
    Ok(())
}
