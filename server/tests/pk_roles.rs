//! Primary-key tables across separate `inlet serve` processes on one local store: an index
//! owner with a writer, and a reader process of its own. Upserts and deletes go through the
//! writer; lookups and the changelog are served by the reader process, which reads the
//! key state from its index replica when it has caught up and from the owner otherwise, so
//! every lookup that starts after an ack sees it (read-your-writes), not only on the owner;
//! a snapshot read there scans the replica and catches up to the owner's tail.

// This test drives real processes, so it waits in real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use common::process::{INLET, ServerProcess, free_port};
use common::*;
use inlet::client::Client;
use inlet_proto::v1 as pb;

const DEADLINE: Duration = Duration::from_secs(60);
const ROUNDS: i64 = 40;

fn serve(
    store: &std::path::Path,
    logs: &std::path::Path,
    name: &str,
    roles: &str,
) -> (ServerProcess, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(logs.join(format!("{name}.log"))).expect("log file");
    let process = Command::new(INLET)
        .args(["serve", "--roles", roles, "--listen", &listen])
        .args(["--http-listen", "off", "--linger", "2ms", "--store"])
        .arg(store)
        .env("RUST_LOG", "info")
        .current_dir(logs)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("inlet serve starts");
    (ServerProcess(process), format!("http://{listen}"))
}

async fn connect_when_up(endpoint: &str) -> Client {
    let started = Instant::now();
    loop {
        if let Ok(mut client) = Client::connect(endpoint).await
            && client
                .raw()
                .get_status(pb::GetStatusRequest {})
                .await
                .is_ok_and(|s| !s.into_inner().owner_endpoint.is_empty())
        {
            return client;
        }
        assert!(started.elapsed() < DEADLINE, "{endpoint} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kv_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

fn kv(pairs: &[(i64, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        kv_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(pairs.iter().map(|p| p.0))),
            Arc::new(Int64Array::from_iter_values(pairs.iter().map(|p| p.1))),
        ],
    )
    .expect("batch")
}

fn ids(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec()))]).expect("ids")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_process_serves_lookups_that_read_their_writes() {
    let store = tempfile::tempdir().expect("store dir");
    let logs = tempfile::tempdir().expect("log dir");
    let (_owner, owner) = serve(store.path(), logs.path(), "owner", "index,writer");
    let mut writer = connect_when_up(&owner).await;
    let (_reader, reader) = serve(store.path(), logs.path(), "reader", "reader");
    let mut reader = connect_when_up(&reader).await;

    writer.create_database("db", true).await.expect("database");
    writer
        .create_primary_key_table(
            "db",
            "kv",
            &kv_schema(),
            2,
            vec!["id".into()],
            vec![],
            BTreeMap::new(),
            false,
        )
        .await
        .expect("table");

    let keys: Vec<i64> = (0..8).collect();
    let mut model: BTreeMap<i64, i64> = BTreeMap::new();
    for round in 0..ROUNDS {
        let id = round % 8;
        if round % 5 == 4 {
            writer
                .delete("db", "kv", &ids(&[id]).schema(), &[ids(&[id])])
                .await
                .expect("delete");
            model.remove(&id);
        } else {
            writer
                .upsert("db", "kv", &kv_schema(), &[kv(&[(id, round)])])
                .await
                .expect("upsert");
            model.insert(id, round);
        }
        // Started after the ack, on another process: must see it.
        let (rows, found) = reader
            .lookup("db", "kv", &ids(&keys), &[])
            .await
            .expect("lookup on the reader process");
        let found_ids: Vec<i64> = keys
            .iter()
            .zip(&found)
            .filter(|(_, f)| **f)
            .map(|(k, _)| *k)
            .collect();
        let values = rows.column(1).as_primitive::<Int64Type>();
        let seen: BTreeMap<i64, i64> = found_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, values.value(i)))
            .collect();
        assert_eq!(
            seen, model,
            "round {round}: the reader process reads the writes"
        );
    }

    // A prefix lookup (here the bucket key is the whole key) is served there too.
    let (rows, found, _) = reader
        .lookup_prefix("db", "kv", &ids(&[3]), &[], 0)
        .await
        .expect("prefix lookup on the reader process");
    assert_eq!(found, [model.contains_key(&3)]);
    assert_eq!(rows.num_rows(), usize::from(model.contains_key(&3)));

    // The changelog, served by the reader process, replays to the same state.
    let batches = reader
        .fetch_all(fetch_request("db", "kv"))
        .await
        .expect("changelog from the reader");
    let mut changes = Vec::new();
    for batch in &batches {
        let column = |name: &str| batch.column_by_name(name).expect(name).clone();
        let (id, v, offset, bucket, kind) = (
            column("id"),
            column("v"),
            column("_offset"),
            column("_bucket"),
            column("_change_type"),
        );
        for i in 0..batch.num_rows() {
            changes.push((
                bucket
                    .as_primitive::<arrow_array::types::Int32Type>()
                    .value(i),
                offset.as_primitive::<Int64Type>().value(i),
                kind.as_string::<i32>().value(i).to_owned(),
                id.as_primitive::<Int64Type>().value(i),
                v.as_primitive::<Int64Type>().value(i),
            ));
        }
    }
    changes.sort_by_key(|c| (c.0, c.1));
    let mut replayed: BTreeMap<i64, i64> = BTreeMap::new();
    for (_, _, kind, id, v) in changes {
        match kind.as_str() {
            "+I" | "+U" => {
                replayed.insert(id, v);
            }
            _ => assert_eq!(replayed.remove(&id), Some(v), "before image of {id}"),
        }
    }
    assert_eq!(replayed, model);

    // A snapshot read, served by the reader process from its replica and caught up to the
    // owner's tail: the current rows, right after the last ack.
    let snapshot = reader
        .fetch_all(pb::FetchRequest {
            start: Some(pb::StartPosition {
                position: Some(pb::start_position::Position::Snapshot(true)),
            }),
            ..fetch_request("db", "kv")
        })
        .await
        .expect("snapshot from the reader");
    let mut rows: BTreeMap<i64, i64> = BTreeMap::new();
    for batch in &snapshot {
        let id = batch
            .column_by_name("id")
            .expect("id")
            .as_primitive::<Int64Type>();
        let v = batch
            .column_by_name("v")
            .expect("v")
            .as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            assert!(
                rows.insert(id.value(i), v.value(i)).is_none(),
                "key {} twice",
                id.value(i)
            );
        }
    }
    assert_eq!(rows, model, "the snapshot is the current rows");
}
