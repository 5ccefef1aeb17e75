//! Lake schema evolution, against an in-memory store: a table tiered with one column gains a
//! second. The evolved version has a new current schema whose old fields keep their ids and
//! whose new field has a fresh one, before the system columns; a round on it writes the new
//! column, iceberg-rust's scan reads the old rows with nulls in it, and a rewrite of the old
//! and new files keeps every value. Then the column is renamed (same field id, the old files'
//! values under the new name), dropped (gone from the current schema), and a column of its old
//! name added again: a new field, null in every older row.

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
use inlet_core::clock::Env;
use inlet_core::column_defaults::DOC_KEY;
use inlet_core::ids::{Bucket, SchemaId};
use inlet_core::table::{TableAlteration, TableInfo};
use lake_support::*;
use slatedb::object_store::ObjectStore;
use slatedb::object_store::memory::InMemory;

/// The test table as the catalog creates it (its columns numbered).
fn created() -> TableInfo {
    let table = table_info();
    TableInfo {
        descriptor: table.descriptor.clone().with_defaults(),
        ..table
    }
}

/// `table` altered as ALTER TABLE does: the next schema id, the current one kept in the
/// history.
fn altered(table: &TableInfo, alteration: TableAlteration) -> anyhow::Result<TableInfo> {
    let descriptor = table.descriptor.altered(&alteration)?;
    Ok(TableInfo {
        schema_id: SchemaId(table.schema_id.0 + 1),
        previous_schemas: table
            .previous_schemas
            .with(table.schema_id, table.descriptor.schema.clone()),
        descriptor,
        ..table.clone()
    })
}

/// The test table after `note` was added.
fn with_note() -> anyhow::Result<TableInfo> {
    let note = Field::new("note", DataType::Utf8, true).with_metadata(
        [(DOC_KEY.to_owned(), "what happened".to_owned())]
            .into_iter()
            .collect(),
    );
    altered(
        &created(),
        TableAlteration {
            add_columns: vec![Arc::new(note)],
            ..TableAlteration::default()
        },
    )
}

/// The current lake schema's fields, as (name, id).
fn field_ids(table: &LakeTable) -> Vec<(String, i32)> {
    table
        .metadata()
        .current_schema()
        .as_struct()
        .fields()
        .iter()
        .map(|f| (f.name.clone(), f.id))
        .collect()
}

/// Rows `offsets` of bucket 0 with a note each, as a round after the evolution writes them.
fn noted(offsets: std::ops::Range<u64>) -> anyhow::Result<RecordBatch> {
    noted_as(offsets, Some("note"))
}

/// Rows `offsets` of bucket 0 with a note each in column `note` (no such column if `None`).
fn noted_as(offsets: std::ops::Range<u64>, note: Option<&str>) -> anyhow::Result<RecordBatch> {
    let rows: Vec<Row> = offsets.map(|o| row(0, o, 2)).collect();
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    fields.extend(note.map(|note| Field::new(note, DataType::Utf8, true)));
    let schema = Arc::new(Schema::new(
        [
            fields,
            vec![
                Field::new("_bucket", DataType::Int32, false),
                Field::new("_offset", DataType::Int64, false),
                Field::new(
                    "_timestamp",
                    DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("+00:00".into())),
                    false,
                ),
            ],
        ]
        .concat(),
    ));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
        rows.iter().map(|r| r.id),
    ))];
    if note.is_some() {
        columns.push(Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| format!("note-{}", r.offset)),
        )));
    }
    columns.extend::<[ArrayRef; 3]>([
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.bucket))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.offset))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.timestamp))
                .with_timezone("+00:00"),
        ),
    ]);
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// Every (offset, id, note) of the table, read with iceberg-rust's scan, by offset, the note
/// from column `note`.
async fn notes_in(
    table: &LakeTable,
    note: &str,
) -> anyhow::Result<Vec<(i64, i64, Option<String>)>> {
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
            .column_by_name(note)
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

/// Every (offset, id, note) of the table, read with iceberg-rust's scan, by offset.
async fn notes(table: &LakeTable) -> anyhow::Result<Vec<(i64, i64, Option<String>)>> {
    notes_in(table, "note").await
}

/// `table` with `batch` (rows of bucket 0) tiered as one more snapshot.
async fn tier(table: &LakeTable, batch: RecordBatch, env: &Env) -> anyhow::Result<LakeTable> {
    let mut append = LakeAppend::new(table, &LakeWriteOptions::default(), env)?;
    append.write_bucket(Bucket(0), &[batch]).await?;
    Ok(append.stage().await?.table)
}

#[tokio::test]
async fn an_added_column_evolves_the_lake_schema_and_old_rows_read_as_null() -> anyhow::Result<()> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let storage = LakeStorage::new(LakeRoot::memory("lake-evolve"), store);
    let env = env(31);
    let table = LakeTable::create(&storage, &created(), &env).await?;
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
        .with_columns_of(&with_note()?)?
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
    let note = schema.field_by_name("note").context("note")?;
    assert!(!note.required);
    assert_eq!(
        note.doc.as_deref(),
        Some("what happened"),
        "the column's doc"
    );
    assert_eq!(
        evolved.metadata().last_updated_ms(),
        before.last_updated_ms()
    );
    assert!(evolved.with_columns_of(&with_note()?)?.is_none());

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

    // Renamed: the same field, the old files' values under the new name, also through a
    // rewrite of files written before and after the rename (matched by field id).
    let renamed = altered(
        &with_note()?,
        TableAlteration {
            rename_columns: vec![("note".to_owned(), "remark".to_owned())],
            ..TableAlteration::default()
        },
    )?;
    let lake = rewritten
        .table
        .with_columns_of(&renamed)?
        .context("`note` is renamed in the lake")?;
    let mut ids = field_ids(&rewritten.table);
    ids[1].0 = "remark".to_owned();
    assert_eq!(field_ids(&lake), ids);
    assert_eq!(lake.reflected_schema(&renamed), SchemaId(2));
    let lake = tier(&lake, noted_as(15..20, Some("remark"))?, &env).await?;
    let lake = tier(&lake, noted_as(20..25, Some("remark"))?, &env).await?;
    expected.extend((15..25).map(|o| (o, row(0, o as u64, 2).id, Some(format!("note-{o}")))));
    assert_eq!(notes_in(&lake, "remark").await?, expected);
    let lake = stage_rewrite(&lake, &rule, &LakeWriteOptions::default(), 100, &env)
        .await?
        .context("small files")?
        .table;
    assert_eq!(notes_in(&lake, "remark").await?, expected);

    // Dropped: gone from the current schema.
    let dropped = altered(
        &renamed,
        TableAlteration {
            drop_columns: vec!["remark".to_owned()],
            ..TableAlteration::default()
        },
    )?;
    let lake = lake
        .with_columns_of(&dropped)?
        .context("`remark` is dropped from the lake")?;
    let without: Vec<(String, i32)> = ids
        .iter()
        .filter(|(name, _)| name != "remark")
        .cloned()
        .collect();
    assert_eq!(field_ids(&lake), without);
    let lake = tier(&lake, noted_as(25..30, None)?, &env).await?;
    let batches = scan_batches(&lake).await?;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 30);
    assert!(batches.iter().all(|b| b.column_by_name("remark").is_none()));

    // A new `note`: a new field (its id never given before), null in every older row.
    let again = altered(
        &dropped,
        TableAlteration {
            add_columns: vec![Arc::new(Field::new("note", DataType::Utf8, true))],
            ..TableAlteration::default()
        },
    )?;
    let lake = lake
        .with_columns_of(&again)?
        .context("a new `note` is added")?;
    let note = lake
        .metadata()
        .current_schema()
        .field_by_name("note")
        .context("note")?
        .id;
    assert!(note > ids.iter().map(|(_, id)| *id).max().unwrap_or_default());
    let lake = tier(&lake, noted_as(30..35, Some("note"))?, &env).await?;
    let mut nulls: Vec<(i64, i64, Option<String>)> = expected
        .iter()
        .map(|(offset, id, _)| (*offset, *id, None))
        .collect();
    nulls.extend((25..30).map(|o| (o, row(0, o as u64, 2).id, None)));
    nulls.extend((30..35).map(|o| (o, row(0, o as u64, 2).id, Some(format!("note-{o}")))));
    assert_eq!(notes(&lake).await?, nulls);
    Ok(())
}
