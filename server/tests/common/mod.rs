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
    try_http_get(addr, path).await.expect("http response")
}

/// How long a test's HTTP exchange may take before it counts as failed.
const HTTP_DEADLINE: Duration = Duration::from_secs(10);

/// A plain HTTP/1.1 GET, or why it got no response.
pub async fn try_http_get(
    addr: std::net::SocketAddr,
    path: &str,
) -> Result<(String, String), String> {
    http_get_with(addr, path, &[]).await
}

/// A plain HTTP/1.1 GET with extra header lines (`Name: value`), or why it got no response.
pub async fn http_get_with(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[&str],
) -> Result<(String, String), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    exchange(stream, addr, path, headers).await
}

/// An HTTP/1.1 GET over TLS trusting the CA in `ca`, presenting `client` (certificate, key)
/// when given; (status line, body), or why it got no response (the handshake's error).
pub async fn https_get(
    addr: std::net::SocketAddr,
    path: &str,
    ca: &std::path::Path,
    client: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<(String, String), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots
            .add(cert.expect("CA certificate"))
            .expect("trusted CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .expect("certificate file")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("certificates"),
                PrivateKeyDer::from_pem_file(key).expect("key"),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::from(addr.ip());
    let stream = tokio::time::timeout(
        HTTP_DEADLINE,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| "TLS handshake timed out".to_owned())?
    .map_err(|e| format!("TLS handshake: {e}"))?;
    exchange(stream, addr, path, &[]).await
}

async fn exchange(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[&str],
) -> Result<(String, String), String> {
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    let mut response = Vec::new();
    tokio::time::timeout(HTTP_DEADLINE, async {
        stream.write_all(request.as_bytes()).await?;
        stream.read_to_end(&mut response).await
    })
    .await
    .map_err(|_| "no response in time".to_owned())?
    .map_err(|e| format!("exchange: {e}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an http response: {response:?}"))?;
    Ok((
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    ))
}
