//! Shared helpers for the integration tests: start a real node on a free 127.0.0.1 port,
//! build batches, and read back rows through the real gRPC client.

#![allow(dead_code, unreachable_pub)]

pub mod backend;
pub mod process;

use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use inlet::client::Client;
use inlet::config::Config;
use inlet::node::Node;
use inlet_core::clock::Env;
use inlet_proto::v1 as pb;
use slatedb::object_store::ObjectStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A config for tests: a free port on 127.0.0.1 and a short linger.
pub fn test_config() -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        http_listen: Some("127.0.0.1:0".parse().expect("valid address")),
        store: "test store".to_owned(),
        ..Config::default()
    };
    config.writer.linger = Duration::from_millis(2);
    // The store is passed separately and "test store" names no directory the lake could be
    // placed in; tests of tiering turn the compactor on with a real store location.
    config.lake.compactor = false;
    config
}

pub async fn start(store: Arc<dyn ObjectStore>) -> Node {
    Node::start_with_store(&test_config(), store, Env::system())
        .await
        .expect("node starts")
}

pub async fn connect(node: &Node) -> Client {
    Client::connect(&node.endpoint())
        .await
        .expect("client connects")
}

/// `id: int64 not null, name: utf8`.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

/// Rows with ids `ids` and names `name-<id>`.
pub fn batch(ids: impl IntoIterator<Item = i64>) -> RecordBatch {
    let ids: Vec<i64> = ids.into_iter().collect();
    let names: Vec<String> = ids.iter().map(|id| format!("name-{id}")).collect();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .expect("valid batch")
}

/// Creates `db.table` (and `db`) with the test schema.
pub async fn create_table(
    client: &mut Client,
    database: &str,
    table: &str,
    buckets: u32,
    bucket_key: &[&str],
) {
    client
        .create_database(database, true)
        .await
        .expect("database created");
    client
        .create_table(
            database,
            table,
            &schema(),
            buckets,
            bucket_key.iter().map(|s| s.to_string()).collect(),
            false,
        )
        .await
        .expect("table created");
}

/// One fetched row of the test schema: (bucket, offset, id, name).
pub type Row = (u32, u64, i64, Option<String>);

pub fn rows_of(batches: &[RecordBatch]) -> Vec<Row> {
    let mut rows = Vec::new();
    for batch in batches {
        let ids = batch.column_by_name("id").expect("id column");
        let names = batch.column_by_name("name").expect("name column");
        let buckets = batch.column_by_name("_bucket").expect("_bucket column");
        let offsets = batch.column_by_name("_offset").expect("_offset column");
        for i in 0..batch.num_rows() {
            let name = names.as_string::<i32>();
            rows.push((
                buckets.as_primitive::<Int32Type>().value(i) as u32,
                offsets.as_primitive::<Int64Type>().value(i) as u64,
                ids.as_primitive::<Int64Type>().value(i),
                (!name.is_null(i)).then(|| name.value(i).to_owned()),
            ));
        }
    }
    rows
}

pub fn fetch_request(database: &str, table: &str) -> pb::FetchRequest {
    pb::FetchRequest {
        path: Some(inlet::client::path(database, table)),
        start: Some(pb::StartPosition {
            position: Some(pb::start_position::Position::Earliest(true)),
        }),
        ..Default::default()
    }
}

/// Every row of the table, bucket by bucket. A fetch interleaves buckets (each in offset
/// order), so the rows are checked in order per bucket and then sorted by bucket.
pub async fn read_all(client: &mut Client, database: &str, table: &str) -> Vec<Row> {
    let batches = client
        .fetch_all(fetch_request(database, table))
        .await
        .expect("fetch succeeds");
    let mut rows = rows_of(&batches);
    let mut next: std::collections::BTreeMap<u32, u64> = Default::default();
    for (bucket, offset, ..) in &rows {
        let previous = next.insert(*bucket, offset + 1);
        assert!(
            previous.is_none_or(|expected| expected == *offset),
            "bucket {bucket} is out of offset order at {offset}"
        );
    }
    rows.sort_by_key(|(bucket, offset, ..)| (*bucket, *offset));
    rows
}

/// Latest offset of each bucket.
pub async fn latest_offsets(client: &mut Client, database: &str, table: &str) -> Vec<u64> {
    client
        .table(database, table)
        .await
        .expect("table exists")
        .buckets
        .iter()
        .map(|b| b.latest_offset)
        .collect()
}

/// A plain HTTP/1.1 GET; returns (status line, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("http response");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}
