//! Primary-key tables end to end through the real server and gRPC client: upserts and
//! deletes under each merge engine against a model, lookups that read their writes, the
//! changelog (every change type, before images, replay equal to the key state, `-U`
//! omitted, column pruning, reads from the middle), idempotent retries, restart, and the
//! errors of wrong operations and bad keys.
//!
//! A conformance suite: every scenario runs against each backend (in-memory, local
//! filesystem, S3 through moto on loopback); see the bottom of the file.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use common::backend::Backend;
use common::*;
use inlet::client::{Client, WriteKind};
use inlet_core::ipc::batches_to_ipc;
use inlet_proto::v1 as pb;

const KEYS: i64 = 24;
const BUCKETS: u32 = 3;

/// `id: int64 not null` (the key), `v: int64 not null` (value and version), `note: utf8`.
fn pk_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
        Field::new("note", DataType::Utf8, true),
    ]))
}

fn keys_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]))
}

/// A row's value columns.
type Value = (i64, Option<String>);

fn rows(rows: &[(i64, Value)]) -> RecordBatch {
    RecordBatch::try_new(
        pk_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1.0))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1.1.clone()))),
        ],
    )
    .expect("rows")
}

fn keys(ids: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        keys_schema(),
        vec![Arc::new(Int64Array::from_iter_values(ids.iter().copied()))],
    )
    .expect("keys")
}

/// The merge engines, as table options.
#[derive(Clone, Copy, Debug)]
enum Engine {
    LastRow,
    FirstRow,
    Versioned,
}

impl Engine {
    fn options(self) -> BTreeMap<String, String> {
        let pairs: &[(&str, &str)] = match self {
            Self::LastRow => &[],
            Self::FirstRow => &[("merge.engine", "first_row")],
            Self::Versioned => &[("merge.engine", "versioned"), ("merge.version-column", "v")],
        };
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The model: what an upsert of `row` does to `current`.
    fn merge(self, current: Option<&Value>, row: &Value) -> bool {
        match (self, current) {
            (_, None) | (Self::LastRow, Some(_)) => true,
            (Self::FirstRow, Some(_)) => false,
            (Self::Versioned, Some(current)) => row.0 > current.0,
        }
    }
}

async fn create_pk_table(client: &mut Client, table: &str, engine: Engine) {
    client.create_database("db", true).await.expect("database");
    client
        .create_primary_key_table(
            "db",
            table,
            &pk_schema(),
            BUCKETS,
            vec!["id".into()],
            vec![],
            engine.options(),
            false,
        )
        .await
        .expect("primary-key table created");
}

/// A small deterministic generator (the scenarios must replay).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// Every current row, by lookup of every key: id → value, and the offset that wrote it.
async fn lookup_all(client: &mut Client, table: &str) -> BTreeMap<i64, (Value, i64)> {
    let ids: Vec<i64> = (0..KEYS).collect();
    let (found_rows, found) = client
        .lookup("db", table, &keys(&ids), &[])
        .await
        .expect("lookup");
    assert_eq!(found.len(), ids.len());
    assert_eq!(
        found.iter().filter(|f| **f).count(),
        found_rows.num_rows(),
        "one row per key found"
    );
    let found_ids: Vec<i64> = ids
        .iter()
        .zip(&found)
        .filter(|(_, f)| **f)
        .map(|(id, _)| *id)
        .collect();
    let mut out = BTreeMap::new();
    for (i, id) in found_ids.iter().enumerate() {
        let row_id = found_rows.column(0).as_primitive::<Int64Type>().value(i);
        assert_eq!(row_id, *id, "rows come in the order of the keys");
        let v = found_rows.column(1).as_primitive::<Int64Type>().value(i);
        let notes = found_rows.column(2).as_string::<i32>();
        let note = (!notes.is_null(i)).then(|| notes.value(i).to_owned());
        let offset = found_rows
            .column_by_name("_offset")
            .expect("_offset")
            .as_primitive::<Int64Type>()
            .value(i);
        out.insert(*id, ((v, note), offset));
    }
    out
}

/// One changelog row: (bucket, offset, change type, id, value).
type Change = (u32, u64, String, i64, Value);

async fn changelog(client: &mut Client, request: pb::FetchRequest) -> Vec<Change> {
    let batches = client.fetch_all(request).await.expect("changelog fetch");
    let mut out = Vec::new();
    for batch in batches {
        let column = |name: &str| batch.column_by_name(name).cloned();
        let kinds = column("_change_type").expect("_change_type");
        let buckets = column("_bucket").expect("_bucket");
        let offsets = column("_offset").expect("_offset");
        for i in 0..batch.num_rows() {
            let id = column("id").map_or(-1, |c| c.as_primitive::<Int64Type>().value(i));
            let v = column("v").map_or(-1, |c| c.as_primitive::<Int64Type>().value(i));
            let note = column("note").and_then(|c| {
                let notes = c.as_string::<i32>();
                (!notes.is_null(i)).then(|| notes.value(i).to_owned())
            });
            out.push((
                buckets.as_primitive::<Int32Type>().value(i) as u32,
                offsets.as_primitive::<Int64Type>().value(i) as u64,
                kinds.as_string::<i32>().value(i).to_owned(),
                id,
                (v, note),
            ));
        }
    }
    // Buckets interleave; each bucket is in offset order.
    out.sort_by_key(|c| (c.0, c.1));
    out
}

/// Replays a changelog, checking every before image against the replayed state.
fn replay(changes: &[Change]) -> BTreeMap<i64, Value> {
    let mut state: BTreeMap<i64, Value> = BTreeMap::new();
    for (bucket, offset, kind, id, value) in changes {
        let at = format!("bucket {bucket} offset {offset} ({kind} of {id})");
        match kind.as_str() {
            "+I" => assert!(
                state.insert(*id, value.clone()).is_none(),
                "{at}: key existed"
            ),
            "-U" | "-D" => assert_eq!(
                state.remove(id).as_ref(),
                Some(value),
                "{at}: before image is the current row"
            ),
            "+U" => {
                state.insert(*id, value.clone());
            }
            other => panic!("{at}: unknown change type {other}"),
        }
    }
    state
}

async fn merge_engines_match_a_model_and_the_changelog_replays_to_the_key_state(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    for (t, engine) in [Engine::LastRow, Engine::FirstRow, Engine::Versioned]
        .into_iter()
        .enumerate()
    {
        let table = format!("t{t}");
        create_pk_table(&mut client, &table, engine).await;
        let mut model: BTreeMap<i64, Value> = BTreeMap::new();
        let mut rng = Lcg(7 + t as u64);
        for round in 0..30 {
            if rng.next(4) == 0 {
                // Deletes, absent keys included.
                let ids: Vec<i64> = (0..1 + rng.next(6))
                    .map(|_| rng.next(KEYS as u64) as i64)
                    .collect();
                client
                    .delete("db", &table, &keys_schema(), &[keys(&ids)])
                    .await
                    .expect("delete");
                for id in ids {
                    model.remove(&id);
                }
            } else {
                // Upserts, repeated keys within one batch included.
                let batch: Vec<(i64, Value)> = (0..1 + rng.next(10))
                    .map(|i| {
                        let note = (i % 3 != 0).then(|| format!("r{round}-{i}"));
                        (rng.next(KEYS as u64) as i64, (rng.next(50) as i64, note))
                    })
                    .collect();
                let acked = client
                    .upsert("db", &table, &pk_schema(), &[rows(&batch)])
                    .await
                    .expect("upsert");
                assert_eq!(
                    acked.iter().map(|a| a.row_count).sum::<u64>(),
                    batch.len() as u64,
                    "every input row gets an offset"
                );
                for (id, value) in batch {
                    if engine.merge(model.get(&id), &value) {
                        model.insert(id, value);
                    }
                }
            }
            // Read-your-writes: the lookup starts after the ack.
            let found: BTreeMap<i64, Value> = lookup_all(&mut client, &table)
                .await
                .into_iter()
                .map(|(id, (value, _))| (id, value))
                .collect();
            assert_eq!(
                found, model,
                "{engine:?} round {round}: lookups equal the model"
            );
        }
        let changes = changelog(&mut client, fetch_request("db", &table)).await;
        assert_eq!(
            replay(&changes),
            model,
            "{engine:?}: replaying the changelog from offset 0 rebuilds the key state"
        );
        if matches!(engine, Engine::FirstRow) {
            assert!(
                changes.iter().all(|c| c.2 == "+I" || c.2 == "-D"),
                "first_row never updates"
            );
        }
        // Each key's row names the offset of its latest change.
        let last_change: BTreeMap<i64, u64> = changes
            .iter()
            .filter(|c| c.2 == "+I" || c.2 == "+U")
            .map(|c| (c.3, c.1))
            .collect();
        for (id, (_, offset)) in lookup_all(&mut client, &table).await {
            assert_eq!(
                Some(offset as u64),
                last_change.get(&id).copied(),
                "key {id}"
            );
        }
    }
    node.shutdown().await.expect("clean shutdown");
}

async fn changelog_has_every_change_type_and_reads_pruned_from_any_offset(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    // One bucket: offsets are the order of the writes below.
    client.create_database("db", true).await.expect("db");
    client
        .create_primary_key_table(
            "db",
            "t",
            &pk_schema(),
            1,
            vec!["id".into()],
            vec![],
            BTreeMap::new(),
            false,
        )
        .await
        .expect("table");
    let note = |s: &str| Some(s.to_owned());
    client
        .upsert(
            "db",
            "t",
            &pk_schema(),
            &[rows(&[(1, (10, note("a"))), (2, (20, None))])],
        )
        .await
        .expect("insert");
    client
        .upsert("db", "t", &pk_schema(), &[rows(&[(1, (11, note("b")))])])
        .await
        .expect("update");
    client
        .delete("db", "t", &keys_schema(), &[keys(&[2, 3])])
        .await
        .expect("delete of a present and an absent key");
    let expected: Vec<Change> = vec![
        (0, 0, "+I".into(), 1, (10, note("a"))),
        (0, 1, "+I".into(), 2, (20, None)),
        (0, 2, "-U".into(), 1, (10, note("a"))),
        (0, 2, "+U".into(), 1, (11, note("b"))),
        (0, 3, "-D".into(), 2, (20, None)),
    ];
    let all = changelog(&mut client, fetch_request("db", "t")).await;
    assert_eq!(
        all, expected,
        "offset 4 (delete of an absent key) changes nothing"
    );

    // A limit never cuts an update between its -U and its +U (a consumer resuming after
    // the last row it got would lose the +U): the limit of 3 returns 4 rows here.
    let mut limited = fetch_request("db", "t");
    limited.limit = 3;
    let cut = changelog(&mut client, limited).await;
    assert_eq!(
        cut,
        expected[..4].to_vec(),
        "the -U at the limit brings its +U"
    );

    let mut without_before = fetch_request("db", "t");
    without_before.omit_update_before = true;
    let omitted = changelog(&mut client, without_before).await;
    let kept: Vec<Change> = expected.iter().filter(|c| c.2 != "-U").cloned().collect();
    assert_eq!(omitted, kept, "-U rows left out on request");

    let mut pruned = fetch_request("db", "t");
    pruned.columns = vec!["note".into()];
    pruned.start = Some(pb::StartPosition {
        position: Some(pb::start_position::Position::Offset(2)),
    });
    let batches = client.fetch_all(pruned).await.expect("pruned fetch");
    let names: Vec<String> = batches[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        ["note", "_bucket", "_offset", "_timestamp", "_change_type"],
        "only the asked column, then the system columns"
    );
    let from_two = changelog(&mut client, {
        let mut r = fetch_request("db", "t");
        r.columns = vec!["note".into()];
        r.start = Some(pb::StartPosition {
            position: Some(pb::start_position::Position::Offset(2)),
        });
        r
    })
    .await;
    let notes: Vec<(u64, String, Option<String>)> = from_two
        .into_iter()
        .map(|(_, offset, kind, _, (_, note))| (offset, kind, note))
        .collect();
    assert_eq!(
        notes,
        vec![
            (2, "-U".to_owned(), note("a")),
            (2, "+U".to_owned(), note("b")),
            (3, "-D".to_owned(), None),
        ],
        "a read from the middle starts at the asked offset, before images pruned too"
    );
    node.shutdown().await.expect("clean shutdown");
}

async fn idempotent_upserts_land_once_and_state_survives_a_restart(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    create_pk_table(&mut client, "t", Engine::LastRow).await;
    let request = pb::AppendRequest {
        path: Some(inlet::client::path("db", "t")),
        batches_ipc: batches_to_ipc(&pk_schema(), &[rows(&[(5, (1, None)), (6, (2, None))])])
            .expect("ipc"),
        producer_id: 77,
        sequence: 1,
        ..Default::default()
    };
    let first = client
        .raw()
        .upsert(request.clone())
        .await
        .expect("upsert")
        .into_inner();
    let retry = client
        .raw()
        .upsert(request)
        .await
        .expect("retried upsert")
        .into_inner();
    assert_eq!(first, retry, "the retry gets the original offsets");
    let changes = changelog(&mut client, fetch_request("db", "t")).await;
    assert_eq!(changes.len(), 2, "the retry changed nothing: {changes:?}");
    client
        .upsert("db", "t", &pk_schema(), &[rows(&[(5, (9, None))])])
        .await
        .expect("update");
    let before = lookup_all(&mut client, "t").await;
    node.shutdown().await.expect("clean shutdown");

    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    assert_eq!(
        lookup_all(&mut client, "t").await,
        before,
        "key state after restart"
    );
    client
        .upsert("db", "t", &pk_schema(), &[rows(&[(6, (3, None))])])
        .await
        .expect("upsert after restart");
    let changes = changelog(&mut client, fetch_request("db", "t")).await;
    let mut kinds: Vec<&str> = changes.iter().map(|c| c.2.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["+I", "+I", "+U", "+U", "-U", "-U"], "{changes:?}");
    let state: BTreeMap<i64, Value> = lookup_all(&mut client, "t")
        .await
        .into_iter()
        .map(|(id, (value, _))| (id, value))
        .collect();
    assert_eq!(
        replay(&changes),
        state,
        "the changelog continues across the restart"
    );
    node.shutdown().await.expect("clean shutdown");
}

async fn wrong_operations_and_bad_keys_are_clear_errors(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    create_pk_table(&mut client, "pk", Engine::LastRow).await;
    create_table(&mut client, "db", "log", 2, &["id"]).await;

    let error = client
        .append("db", "pk", &pk_schema(), &[rows(&[(1, (1, None))])])
        .await
        .expect_err("append to a primary-key table");
    assert!(
        error
            .to_string()
            .contains("write it with upsert and delete"),
        "{error}"
    );
    let error = client
        .upsert("db", "log", &schema(), &[batch([1])])
        .await
        .expect_err("upsert to a log table");
    assert!(error.to_string().contains("it is a log table"), "{error}");
    let error = client
        .lookup("db", "log", &keys(&[1]), &[])
        .await
        .expect_err("lookup in a log table");
    assert!(error.to_string().contains("has no primary key"), "{error}");

    let wrong_type = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)])),
        vec![Arc::new(StringArray::from(vec!["1"]))],
    )
    .expect("keys");
    let error = client
        .lookup("db", "pk", &wrong_type, &[])
        .await
        .expect_err("keys of the wrong type");
    assert!(
        error
            .to_string()
            .contains("key column `id` is Utf8, expected Int64"),
        "{error}"
    );
    let error = client
        .lookup("db", "pk", &rows(&[(1, (1, None))]), &[])
        .await
        .expect_err("non-key columns");
    assert!(
        error
            .to_string()
            .contains("`v` is not a key column here (expected: id)"),
        "{error}"
    );
    let error = client
        .delete(
            "db",
            "pk",
            &Schema::new(vec![Field::new("v", DataType::Int64, false)]),
            &[RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)])),
                vec![Arc::new(Int64Array::from(vec![1]))],
            )
            .expect("batch")],
        )
        .await
        .expect_err("a delete without its key");
    assert!(
        error.to_string().contains("lacks non-nullable column `id`"),
        "{error}"
    );
    // Nothing of the refused writes is visible.
    assert!(
        changelog(&mut client, fetch_request("db", "pk"))
            .await
            .is_empty()
    );
    node.shutdown().await.expect("clean shutdown");
}

/// `id` (the key), `total: int64` (sum), `high: float64` (max), `note: utf8` (the default,
/// last_non_null_value), `seen: bool` (bool_or), all nullable but the key.
fn agg_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("total", DataType::Int64, true),
        Field::new("high", DataType::Float64, true),
        Field::new("note", DataType::Utf8, true),
        Field::new("seen", DataType::Boolean, true),
    ]))
}

type AggRow = (i64, Option<i64>, Option<f64>, Option<String>, Option<bool>);

fn agg_rows(schema: &SchemaRef, rows: &[AggRow]) -> RecordBatch {
    let all: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.1))),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.2))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.3.clone()))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.4))),
    ];
    let columns = schema
        .fields()
        .iter()
        .map(|f| all[agg_schema().index_of(f.name()).expect("agg column")].clone())
        .collect();
    RecordBatch::try_new(schema.clone(), columns).expect("rows")
}

/// The rows of a batch of the aggregation schema (lookup results or changelog rows).
fn agg_values(batch: &RecordBatch) -> Vec<AggRow> {
    let id = batch
        .column_by_name("id")
        .expect("id")
        .as_primitive::<Int64Type>();
    let total = batch
        .column_by_name("total")
        .expect("total")
        .as_primitive::<Int64Type>();
    let high = batch
        .column_by_name("high")
        .expect("high")
        .as_primitive::<arrow_array::types::Float64Type>();
    let note = batch
        .column_by_name("note")
        .expect("note")
        .as_string::<i32>();
    let seen = batch.column_by_name("seen").expect("seen").as_boolean();
    (0..batch.num_rows())
        .map(|i| {
            (
                id.value(i),
                (!total.is_null(i)).then(|| total.value(i)),
                (!high.is_null(i)).then(|| high.value(i)),
                (!note.is_null(i)).then(|| note.value(i).to_owned()),
                (!seen.is_null(i)).then(|| seen.value(i)),
            )
        })
        .collect()
}

fn or_keep<T: Clone>(current: &Option<T>, new: &Option<T>, f: impl Fn(&T, &T) -> T) -> Option<T> {
    match (current, new) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, b) => a.clone().or_else(|| b.clone()),
    }
}

async fn aggregation_and_partial_updates_match_a_model(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    client.create_database("db", true).await.expect("db");
    let options: BTreeMap<String, String> = [
        ("merge.engine", "aggregation"),
        ("merge.aggregate.total", "sum"),
        ("merge.aggregate.high", "max"),
        ("merge.aggregate.seen", "bool_or"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    client
        .create_primary_key_table(
            "db",
            "agg",
            &agg_schema(),
            BUCKETS,
            vec!["id".into()],
            vec![],
            options,
            false,
        )
        .await
        .expect("aggregation table");
    // A partial update of `total` and `note` only, over some rounds.
    let partial_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("total", DataType::Int64, true),
        Field::new("note", DataType::Utf8, true),
    ]));
    let mut model: BTreeMap<i64, AggRow> = BTreeMap::new();
    let mut rng = Lcg(99);
    for round in 0..25 {
        let partial = round % 3 == 2;
        let rows: Vec<AggRow> = (0..1 + rng.next(6))
            .map(|i| {
                let id = rng.next(8) as i64;
                let total = (rng.next(4) != 0).then(|| rng.next(100) as i64 - 50);
                let high = (rng.next(4) != 0).then(|| rng.next(1000) as f64 / 10.0);
                let note = (rng.next(3) != 0).then(|| format!("n{round}-{i}"));
                let seen = (rng.next(3) != 0).then(|| rng.next(2) == 0);
                if partial {
                    (id, total, None, note, None)
                } else {
                    (id, total, high, note, seen)
                }
            })
            .collect();
        let acked = if partial {
            client
                .write(
                    WriteKind::PartialUpsert,
                    "db",
                    "agg",
                    &partial_schema,
                    &[agg_rows(&partial_schema, &rows)],
                )
                .await
        } else {
            client
                .upsert(
                    "db",
                    "agg",
                    &agg_schema(),
                    &[agg_rows(&agg_schema(), &rows)],
                )
                .await
        };
        acked.expect("upsert");
        for row in rows {
            let merged = match model.get(&row.0) {
                None => row.clone(),
                Some(current) => (
                    row.0,
                    or_keep(&current.1, &row.1, |a, b| a + b),
                    if partial {
                        current.2
                    } else {
                        or_keep(&current.2, &row.2, |a, b| a.max(*b))
                    },
                    row.3.clone().or_else(|| current.3.clone()),
                    if partial {
                        current.4
                    } else {
                        or_keep(&current.4, &row.4, |a, b| *a || *b)
                    },
                ),
            };
            model.insert(row.0, merged);
        }
        let ids: Vec<i64> = (0..8).collect();
        let (found, _) = client
            .lookup("db", "agg", &keys(&ids), &[])
            .await
            .expect("lookup");
        let seen: BTreeMap<i64, AggRow> =
            agg_values(&found).into_iter().map(|r| (r.0, r)).collect();
        assert_eq!(
            seen, model,
            "round {round}: lookups equal the aggregated model"
        );
    }
    // The changelog's after images are the merged rows: replaying it gives the state.
    let batches = client
        .fetch_all(fetch_request("db", "agg"))
        .await
        .expect("changelog");
    let mut changes: Vec<(u32, u64, String, AggRow)> = Vec::new();
    for batch in &batches {
        let kinds = batch
            .column_by_name("_change_type")
            .expect("kind")
            .as_string::<i32>();
        let buckets = batch
            .column_by_name("_bucket")
            .expect("bucket")
            .as_primitive::<Int32Type>();
        let offsets = batch
            .column_by_name("_offset")
            .expect("offset")
            .as_primitive::<Int64Type>();
        for (i, row) in agg_values(batch).into_iter().enumerate() {
            changes.push((
                buckets.value(i) as u32,
                offsets.value(i) as u64,
                kinds.value(i).to_owned(),
                row,
            ));
        }
    }
    changes.sort_by_key(|c| (c.0, c.1, c.2 != "-U"));
    let mut replayed: BTreeMap<i64, AggRow> = BTreeMap::new();
    for (_, _, kind, row) in changes {
        match kind.as_str() {
            "+I" | "+U" => {
                replayed.insert(row.0, row);
            }
            _ => assert_eq!(replayed.remove(&row.0), Some(row), "before image"),
        }
    }
    assert_eq!(
        replayed, model,
        "changelog replay equals the aggregated state"
    );

    // Refused, and nothing written: a sum that overflows, a partial update of a first_row
    // table, a partial update without a nullable default for a missing non-null column.
    let before = client
        .fetch_all(fetch_request("db", "agg"))
        .await
        .expect("changelog");
    client
        .upsert(
            "db",
            "agg",
            &agg_schema(),
            &[agg_rows(
                &agg_schema(),
                &[(1, Some(i64::MAX - 1), None, None, None)],
            )],
        )
        .await
        .expect("a large total");
    let error = client
        .upsert(
            "db",
            "agg",
            &agg_schema(),
            &[agg_rows(
                &agg_schema(),
                &[(1, Some(i64::MAX - 1), None, None, None)],
            )],
        )
        .await
        .expect_err("overflow");
    assert!(error.to_string().contains("sum overflows Int64"), "{error}");
    assert!(error.to_string().contains("InvalidArgument"), "{error}");
    let after = client
        .fetch_all(fetch_request("db", "agg"))
        .await
        .expect("changelog");
    let rows = |b: &[RecordBatch]| b.iter().map(RecordBatch::num_rows).sum::<usize>();
    assert_eq!(
        rows(&after),
        rows(&before) + 2,
        "only the accepted upsert (-U, +U) was written"
    );
    create_pk_table(&mut client, "first", Engine::FirstRow).await;
    let note_only = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("note", DataType::Utf8, true),
    ]));
    let partial_first = RecordBatch::try_new(
        note_only.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["x"])),
        ],
    )
    .expect("batch");
    let error = client
        .write(
            WriteKind::PartialUpsert,
            "db",
            "first",
            &note_only,
            &[partial_first],
        )
        .await
        .expect_err("partial update of first_row");
    assert!(error.to_string().contains("keeps rows whole"), "{error}");
    create_pk_table(&mut client, "last", Engine::LastRow).await;
    let partial_last = RecordBatch::try_new(
        note_only.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["x"])),
        ],
    )
    .expect("batch");
    let error = client
        .write(
            WriteKind::PartialUpsert,
            "db",
            "last",
            &note_only,
            &[partial_last],
        )
        .await
        .expect_err("`v` is not null and missing");
    assert!(
        error.to_string().contains("lacks non-nullable column `v`"),
        "{error}"
    );
    node.shutdown().await.expect("clean shutdown");
}

async fn prefix_lookups_return_every_row_of_a_bucket_key_value(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    client.create_database("db", true).await.expect("db");
    // Key (region, id), bucketed by region: a region's rows are one key range.
    let schema = Arc::new(Schema::new(vec![
        Field::new("region", DataType::Utf8, false),
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Int64, true),
    ]));
    client
        .create_primary_key_table(
            "db",
            "geo",
            &schema,
            BUCKETS,
            vec!["region".into(), "id".into()],
            vec!["region".into()],
            BTreeMap::new(),
            false,
        )
        .await
        .expect("table");
    let rows_of = |rows: &[(&str, i64, i64)]| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("rows")
    };
    let mut input = Vec::new();
    // `e` and `eu` and `eu2`: a region is a whole value, never a string prefix.
    for (region, count) in [("eu", 30), ("e", 3), ("eu2", 4), ("us", 20)] {
        for id in 0..count {
            input.push((region, id, id * 10));
        }
    }
    client
        .upsert("db", "geo", &schema, &[rows_of(&input)])
        .await
        .expect("upsert");
    client
        .delete("db", "geo", &schema, &[rows_of(&[("eu", 7, 0)])])
        .await
        .expect("delete");
    let regions = |values: &[&str]| {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "region",
                DataType::Utf8,
                false,
            )])),
            vec![Arc::new(StringArray::from_iter_values(
                values.iter().copied(),
            ))],
        )
        .expect("regions")
    };
    let (rows, found, truncated) = client
        .lookup_prefix(
            "db",
            "geo",
            &regions(&["eu", "asia", "e"]),
            &["region", "id"],
            0,
        )
        .await
        .expect("prefix lookup");
    assert_eq!(found, [true, false, true]);
    assert!(!truncated);
    let got: Vec<(String, i64)> = (0..rows.num_rows())
        .map(|i| {
            (
                rows.column(0).as_string::<i32>().value(i).to_owned(),
                rows.column(1).as_primitive::<Int64Type>().value(i),
            )
        })
        .collect();
    let mut expected: Vec<(String, i64)> = (0..30)
        .filter(|id| *id != 7)
        .map(|id| ("eu".to_owned(), id))
        .collect();
    expected.extend((0..3).map(|id| ("e".to_owned(), id)));
    assert_eq!(
        got, expected,
        "every row of each value, in key order, deletes gone"
    );
    let (rows, _, truncated) = client
        .lookup_prefix("db", "geo", &regions(&["us"]), &[], 5)
        .await
        .expect("limited prefix lookup");
    assert_eq!(rows.num_rows(), 5);
    assert!(truncated, "20 rows match, 5 were asked for");
    let error = client
        .lookup_prefix("db", "geo", &rows_of(&[("eu", 1, 1)]), &[], 0)
        .await
        .expect_err("a prefix of the whole key");
    assert!(
        error.to_string().contains("is not a key column here"),
        "{error}"
    );
    node.shutdown().await.expect("clean shutdown");
}

/// A dropped primary-key table is purged from the index whole: key states, change records,
/// chunk entries and tails included; the table's name is free for a new table at once, and
/// the new table starts empty and untouched by the purge.
async fn a_dropped_primary_key_table_is_purged_whole(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    create_pk_table(&mut client, "t", Engine::LastRow).await;
    let batch: Vec<(i64, Value)> = (0..200).map(|id| (id, (id, None))).collect();
    client
        .upsert("db", "t", &pk_schema(), &[rows(&batch)])
        .await
        .expect("upsert");
    client
        .delete("db", "t", &keys_schema(), &[keys(&[1, 2, 3])])
        .await
        .expect("delete");
    let index = node.index().expect("the node owns the index").clone();
    let old = index.table("db", "t").expect("table").id;
    let before = index.table_entries(old).await.expect("entries");
    assert!(before > 200, "key states, changes, chunks, tails: {before}");
    client
        .raw()
        .drop_table(pb::DropTableRequest {
            path: Some(inlet::client::path("db", "t")),
            if_exists: false,
            purge: true,
        })
        .await
        .expect("drop");
    create_pk_table(&mut client, "t", Engine::LastRow).await;
    client
        .upsert("db", "t", &pk_schema(), &[rows(&[(7, (70, None))])])
        .await
        .expect("upsert into the new table");

    let mut purged = 0;
    loop {
        let step = index.purge_table(old).await.expect("purge");
        purged += step.entries;
        if step.done {
            break;
        }
    }
    assert_eq!(index.table_entries(old).await.expect("entries"), 0);
    assert_eq!(
        purged + 1,
        before,
        "the purge reports every entry but the table record (it never had a lake record)"
    );
    assert!(index.dropped_tables().await.expect("dropped").is_empty());
    let current = lookup_all(&mut client, "t").await;
    assert_eq!(
        current.keys().copied().collect::<Vec<_>>(),
        [7],
        "{current:?}"
    );
    node.shutdown().await.expect("clean shutdown");
}

/// A row of the evolving table as read: (qty, label, extra).
type Evolved = (Option<i64>, Option<String>, Option<String>);

/// Every changelog row and every current row (by lookup) of the evolving table, read under
/// its current columns `(id, qty int64, label, extra)`.
async fn evolved_rows(
    client: &mut Client,
) -> (
    Vec<(u32, u64, String, i64, Evolved)>,
    BTreeMap<i64, Evolved>,
) {
    let read = |batch: &RecordBatch, i: usize| -> (i64, Evolved) {
        let column = |name: &str| batch.column_by_name(name).expect(name).clone();
        let string = |name: &str| {
            let values = column(name);
            let values = values.as_string::<i32>();
            (!values.is_null(i)).then(|| values.value(i).to_owned())
        };
        let qty = column("qty");
        let qty = qty.as_primitive::<Int64Type>();
        let id = column("id").as_primitive::<Int64Type>().value(i);
        (
            id,
            (
                (!qty.is_null(i)).then(|| qty.value(i)),
                string("label"),
                string("extra"),
            ),
        )
    };
    let mut changes = Vec::new();
    for batch in client
        .fetch_all(fetch_request("db", "evolving"))
        .await
        .expect("changelog")
    {
        for i in 0..batch.num_rows() {
            let (id, row) = read(&batch, i);
            let kind = batch.column_by_name("_change_type").expect("kind");
            changes.push((
                batch
                    .column_by_name("_bucket")
                    .expect("bucket")
                    .as_primitive::<Int32Type>()
                    .value(i) as u32,
                batch
                    .column_by_name("_offset")
                    .expect("offset")
                    .as_primitive::<Int64Type>()
                    .value(i) as u64,
                kind.as_string::<i32>().value(i).to_owned(),
                id,
                row,
            ));
        }
    }
    changes.sort_by_key(|c| (c.0, c.1));
    let ids: Vec<i64> = (0..8).collect();
    let (found_rows, found) = client
        .lookup("db", "evolving", &keys(&ids), &[])
        .await
        .expect("lookup");
    let mut current = BTreeMap::new();
    for i in 0..found_rows.num_rows() {
        let (id, row) = read(&found_rows, i);
        current.insert(id, row);
    }
    assert_eq!(found.iter().filter(|f| **f).count(), current.len());
    (changes, current)
}

/// A primary-key table whose columns change under its keys (issue 12): `qty` widens, `old`
/// is dropped, `note` becomes `label` and `extra` is added, while the key state and the
/// changelog hold rows written before. Keys not written since read under the new columns
/// (lookups and before images alike); a partial update merges into an old row; a producer
/// still sending the old columns keeps working; replaying the changelog gives the key state.
async fn a_primary_key_tables_columns_change_under_its_keys(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    client.create_database("db", true).await.expect("db");
    let old_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("qty", DataType::Int32, true),
        Field::new("note", DataType::Utf8, true),
        Field::new("old", DataType::Utf8, true),
    ]));
    client
        .create_primary_key_table(
            "db",
            "evolving",
            &old_schema,
            BUCKETS,
            vec!["id".into()],
            vec![],
            BTreeMap::new(),
            false,
        )
        .await
        .expect("table");
    let old_rows = |ids: std::ops::Range<i64>, qty: i32| {
        RecordBatch::try_new(
            old_schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(ids.clone())),
                Arc::new(arrow_array::Int32Array::from_iter_values(
                    ids.clone().map(|id| qty + id as i32),
                )),
                Arc::new(StringArray::from_iter_values(
                    ids.clone().map(|id| format!("n{id}-{qty}")),
                )),
                Arc::new(StringArray::from_iter_values(
                    ids.map(|id| format!("o{id}")),
                )),
            ],
        )
        .expect("rows")
    };
    client
        .upsert("db", "evolving", &old_schema, &[old_rows(0..8, 0)])
        .await
        .expect("upsert");

    let columns =
        |fields: Vec<Field>| inlet_core::ipc::schema_to_ipc(&Schema::new(fields)).expect("ipc");
    let altered = client
        .raw()
        .alter_table(pb::AlterTableRequest {
            path: Some(inlet::client::path("db", "evolving")),
            drop_columns: vec!["old".to_owned()],
            rename_columns: vec![pb::ColumnRename {
                from: "note".to_owned(),
                to: "label".to_owned(),
            }],
            add_columns_ipc: columns(vec![Field::new("extra", DataType::Utf8, true)]),
            widen_columns_ipc: columns(vec![Field::new("qty", DataType::Int64, true)]),
            ..Default::default()
        })
        .await
        .expect("altered")
        .into_inner();
    assert_eq!(altered.table.expect("table").schema_id, 1);
    // Keys, the primary key's columns, stay as they are.
    let widen_key = client
        .raw()
        .alter_table(pb::AlterTableRequest {
            path: Some(inlet::client::path("db", "evolving")),
            rename_columns: vec![pb::ColumnRename {
                from: "id".to_owned(),
                to: "key".to_owned(),
            }],
            ..Default::default()
        })
        .await
        .expect_err("the key is fixed");
    assert!(
        widen_key.message().contains("in the primary key"),
        "{widen_key:?}"
    );

    // A producer still on the old columns: `note` is the label, `old` is ignored.
    client
        .upsert("db", "evolving", &old_schema, &[old_rows(0..2, 100)])
        .await
        .expect("old producer");
    // A partial update of `extra` over rows written before the change.
    let partial_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("extra", DataType::Utf8, true),
    ]));
    let partial = RecordBatch::try_new(
        partial_schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![2, 3])),
            Arc::new(StringArray::from(vec!["e2", "e3"])),
        ],
    )
    .expect("partial");
    client
        .write(
            WriteKind::PartialUpsert,
            "db",
            "evolving",
            &partial_schema,
            &[partial],
        )
        .await
        .expect("partial update");
    // A full row of the new columns, with a quantity beyond int32, and a delete of an old row.
    let new_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("qty", DataType::Int64, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("extra", DataType::Utf8, true),
    ]));
    let full = RecordBatch::try_new(
        new_schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![4])),
            Arc::new(Int64Array::from(vec![1 << 40])),
            Arc::new(StringArray::from(vec!["big"])),
            Arc::new(StringArray::from(vec!["e4"])),
        ],
    )
    .expect("full");
    client
        .upsert("db", "evolving", &new_schema, &[full])
        .await
        .expect("upsert");
    client
        .delete("db", "evolving", &keys_schema(), &[keys(&[5])])
        .await
        .expect("delete");

    let mut expected: BTreeMap<i64, Evolved> = (0..8)
        .map(|id| (id, (Some(id), Some(format!("n{id}-0")), None)))
        .collect();
    for id in 0..2 {
        expected.insert(id, (Some(100 + id), Some(format!("n{id}-100")), None));
    }
    for id in 2..4 {
        expected.insert(
            id,
            (Some(id), Some(format!("n{id}-0")), Some(format!("e{id}"))),
        );
    }
    expected.insert(
        4,
        (Some(1 << 40), Some("big".to_owned()), Some("e4".to_owned())),
    );
    expected.remove(&5);
    let (changes, current) = evolved_rows(&mut client).await;
    assert_eq!(
        current, expected,
        "lookups read every row under the new columns"
    );
    // Replaying the changelog (before images of old rows included) gives the key state.
    let mut state: BTreeMap<i64, Evolved> = BTreeMap::new();
    for (bucket, offset, kind, id, row) in &changes {
        let at = format!("bucket {bucket} offset {offset} ({kind} of {id})");
        match kind.as_str() {
            "+I" => assert!(state.insert(*id, row.clone()).is_none(), "{at}"),
            "-U" | "-D" => assert_eq!(state.remove(id).as_ref(), Some(row), "{at}: before image"),
            "+U" => {
                state.insert(*id, row.clone());
            }
            other => panic!("{at}: change type {other}"),
        }
    }
    assert_eq!(state, expected, "the changelog replays to the key state");
    assert!(changes.iter().any(|c| c.2 == "-D" && c.3 == 5));
    node.shutdown().await.expect("clean shutdown");
}

/// Runs every scenario against one backend, one test per scenario.
macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            conformance!(@tests $make;
                merge_engines_match_a_model_and_the_changelog_replays_to_the_key_state,
                changelog_has_every_change_type_and_reads_pruned_from_any_offset,
                idempotent_upserts_land_once_and_state_survives_a_restart,
                wrong_operations_and_bad_keys_are_clear_errors,
                aggregation_and_partial_updates_match_a_model,
                prefix_lookups_return_every_row_of_a_bucket_key_value,
                snapshot_reads_are_exact_as_of_one_offset_per_bucket,
                a_dropped_primary_key_table_is_purged_whole,
                a_primary_key_tables_columns_change_under_its_keys,
            );
        }
    };
    (@tests $make:expr; $($scenario:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let make = $make;
                super::$scenario(make(stringify!($scenario)).await).await;
            }
        )*
    };
}

/// A snapshot read of one bucket: the offset it is as of, and its rows (id, value, offset
/// that wrote the row), in the order they came.
type BucketSnapshot = (u64, Vec<(i64, Value, u64)>);

fn snapshot_request(table: &str, follow: bool) -> pb::FetchRequest {
    pb::FetchRequest {
        start: Some(pb::StartPosition {
            position: Some(pb::start_position::Position::Snapshot(true)),
        }),
        follow,
        ..fetch_request("db", table)
    }
}

/// The rows of a fetch response: (bucket, high watermark, change type, id, value, offset).
fn response_rows(response: &pb::FetchResponse) -> Vec<(u32, u64, String, i64, Value, u64)> {
    let mut out = Vec::new();
    for batch in inlet::client::decode_fetched(response).expect("decodes") {
        let column = |name: &str| batch.column_by_name(name).expect(name).clone();
        let (ids, vs, notes, offsets, kinds) = (
            column("id"),
            column("v"),
            column("note"),
            column("_offset"),
            column("_change_type"),
        );
        let notes = notes.as_string::<i32>();
        for i in 0..batch.num_rows() {
            out.push((
                response.bucket,
                response.high_watermark,
                kinds.as_string::<i32>().value(i).to_owned(),
                ids.as_primitive::<Int64Type>().value(i),
                (
                    vs.as_primitive::<Int64Type>().value(i),
                    (!notes.is_null(i)).then(|| notes.value(i).to_owned()),
                ),
                offsets.as_primitive::<Int64Type>().value(i) as u64,
            ));
        }
    }
    out
}

/// Reads a snapshot of every bucket to its end (no follow).
async fn read_snapshot(client: &mut Client, table: &str) -> BTreeMap<u32, BucketSnapshot> {
    let mut stream = client
        .fetch(snapshot_request(table, false))
        .await
        .expect("snapshot read");
    let mut out: BTreeMap<u32, BucketSnapshot> = BTreeMap::new();
    let mut ended = Vec::new();
    while let Some(response) = stream.message().await.expect("snapshot batch") {
        // Each bucket's snapshot ends with one batch marked last (empty for an empty bucket).
        assert!(!ended.contains(&response.bucket), "a batch after the last");
        match response.snapshot() {
            pb::SnapshotPart::Rows => {}
            pb::SnapshotPart::Last => ended.push(response.bucket),
            pb::SnapshotPart::None => panic!("a batch of a snapshot read is not marked"),
        }
        out.entry(response.bucket)
            .or_insert((response.high_watermark, Vec::new()));
        for (bucket, at, kind, id, value, offset) in response_rows(&response) {
            assert_eq!(kind, "+I", "snapshot rows are inserts");
            let (seen_at, rows) = out.entry(bucket).or_insert((at, Vec::new()));
            assert_eq!(*seen_at, at, "one offset per bucket's snapshot");
            assert!(
                offset < at,
                "row of {id} written at {offset}, after the snapshot {at}"
            );
            rows.push((id, value, offset));
        }
    }
    ended.sort_unstable();
    assert_eq!(
        ended,
        (0..BUCKETS).collect::<Vec<_>>(),
        "every bucket's snapshot ends"
    );
    out
}

/// Each key's row (value, and the offset that wrote it) after the changes of `bucket` below
/// `at`, replayed.
fn replay_below(changes: &[Change], bucket: u32, at: u64) -> BTreeMap<i64, (Value, u64)> {
    let mut state = BTreeMap::new();
    for (b, offset, kind, id, value) in changes {
        if *b != bucket || *offset >= at {
            continue;
        }
        match kind.as_str() {
            "+I" | "+U" => {
                state.insert(*id, (value.clone(), *offset));
            }
            "-D" => {
                state.remove(id);
            }
            _ => {}
        }
    }
    state
}

async fn snapshot_reads_are_exact_as_of_one_offset_per_bucket(backend: Backend) {
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    create_pk_table(&mut client, "t", Engine::LastRow).await;
    create_table(&mut client, "db", "log", 1, &[]).await;
    let refused = client
        .fetch_all(snapshot_request("log", false))
        .await
        .expect_err("a log table has no snapshot");
    assert!(
        refused.to_string().contains("has no primary key"),
        "{refused:#}"
    );

    // Writes run while the snapshots are read, so the key state moves under their scans.
    let mut writer = connect(&node).await;
    let writes = tokio::spawn(async move {
        let mut rng = Lcg(11);
        for round in 0..120 {
            let id = rng.next(KEYS as u64) as i64;
            if rng.next(4) == 0 {
                writer
                    .delete("db", "t", &keys_schema(), &[keys(&[id, (id + 7) % KEYS])])
                    .await
                    .expect("delete");
            } else {
                let note = Some(format!("r{round}"));
                let batch = rows(&[(id, (round, None)), ((id + 5) % KEYS, (round, note))]);
                writer
                    .upsert("db", "t", &pk_schema(), &[batch])
                    .await
                    .expect("upsert");
            }
        }
    });
    let mut snapshots = 0;
    while !writes.is_finished() || snapshots < 5 {
        let snapshot = read_snapshot(&mut client, "t").await;
        let changes = changelog(&mut client, fetch_request("db", "t")).await;
        for (bucket, (at, rows)) in &snapshot {
            let ids: Vec<i64> = rows.iter().map(|row| row.0).collect();
            assert!(ids.is_sorted(), "bucket {bucket}: key order, got {ids:?}");
            let read: BTreeMap<i64, (Value, u64)> = rows
                .iter()
                .map(|(id, value, offset)| (*id, (value.clone(), *offset)))
                .collect();
            assert_eq!(read.len(), rows.len(), "bucket {bucket}: each key once");
            assert_eq!(
                read,
                replay_below(&changes, *bucket, *at),
                "bucket {bucket}: the snapshot at {at} is the changelog below it, replayed"
            );
        }
        snapshots += 1;
    }
    writes.await.expect("writes");

    // Read-your-writes, then a snapshot that follows: the changelog from each bucket's
    // offset on, so snapshot and changelog together are always the current rows.
    let state: BTreeMap<i64, Value> = lookup_all(&mut client, "t")
        .await
        .into_iter()
        .map(|(id, (value, _))| (id, value))
        .collect();
    let snapshot: BTreeMap<i64, Value> = read_snapshot(&mut client, "t")
        .await
        .into_values()
        .flat_map(|(_, rows)| rows.into_iter().map(|(id, value, _)| (id, value)))
        .collect();
    assert_eq!(snapshot, state, "a snapshot read sees every acked write");
    let mut follow = client
        .fetch(snapshot_request("t", true))
        .await
        .expect("following snapshot");
    client
        .upsert(
            "db",
            "t",
            &pk_schema(),
            &[rows(&[(1, (1000, None)), (100, (1, None))])],
        )
        .await
        .expect("upsert after the snapshot");
    client
        .delete("db", "t", &keys_schema(), &[keys(&[2, 3])])
        .await
        .expect("delete after the snapshot");
    let expected: BTreeMap<i64, Value> = {
        let mut ids: Vec<i64> = (0..KEYS).collect();
        ids.push(100);
        let (found_rows, found) = client
            .lookup("db", "t", &keys(&ids), &[])
            .await
            .expect("lookup");
        let values = found_rows.column(1).as_primitive::<Int64Type>();
        let notes = found_rows.column(2).as_string::<i32>();
        ids.iter()
            .zip(&found)
            .filter(|(_, f)| **f)
            .map(|(id, _)| *id)
            .enumerate()
            .map(|(i, id)| {
                let note = (!notes.is_null(i)).then(|| notes.value(i).to_owned());
                (id, (values.value(i), note))
            })
            .collect()
    };
    let mut seen: BTreeMap<i64, Value> = BTreeMap::new();
    let followed = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while seen != expected {
            let response = follow
                .message()
                .await
                .expect("followed batch")
                .expect("a follow does not end");
            for (bucket, _, kind, id, value, offset) in response_rows(&response) {
                let row = format!("bucket {bucket} offset {offset} ({kind} of {id})");
                match kind.as_str() {
                    "+I" | "+U" => {
                        seen.insert(id, value);
                    }
                    // A changelog that started before the snapshot's offset would delete a
                    // key twice here, one that started after it would miss changes.
                    "-U" | "-D" => {
                        assert_eq!(seen.remove(&id), Some(value), "{row}: before image");
                    }
                    other => panic!("{row}: change type {other}"),
                }
            }
        }
    })
    .await;
    assert!(
        followed.is_ok(),
        "snapshot and changelog reach the current rows: {seen:?} vs {expected:?}"
    );
    node.shutdown().await.expect("clean shutdown");
}

conformance!(memory, |_: &str| async { Backend::memory() });
conformance!(local, |_: &str| async { Backend::local() });
conformance!(s3, |name: &'static str| Backend::s3(name));
