//! Outside engines read Inlet's lake: a node on a local directory serves a lake-enabled table,
//! its rows get tiered into the Iceberg table, and DuckDB and pyiceberg read it, through the
//! node's Iceberg REST catalog (`/iceberg`) and by path, getting exactly the rows produced:
//! first N, then 2N after more rows were tiered, with no duplicate (bucket, offset).
//!
//! Two ways to tier: by hand with the compactor crate's lake writer and the index's lake
//! commit (so the catalog and the engines are checked on their own), and by the compactor
//! role of `inlet serve` (the user's path). By hand also on S3 (moto on loopback, as the S3
//! conformance tests): the engines then open the files with the settings the catalog hands
//! out with the table.
//!
//! The engines run in `tests/engines/read_lake.py` with the interpreter named by
//! `INLET_TEST_PYTHON` (`.ci/run` installs DuckDB, its extensions and pyiceberg into it), or
//! `python3` when it is not set.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use common::backend::Backend;
use common::*;
use futures::TryStreamExt;
use iceberg::spec::{Literal, PrimitiveLiteral};
use inlet::client::Client;
use inlet::iceberg_rest::RestCatalog;
use inlet::node::Node;
use inlet_compactor::lake::{LakeAppend, LakeRoot, LakeStorage, LakeTable, LakeWriteOptions};
use inlet_core::clock::Env;
use inlet_core::ids::{Bucket, Offset, PartitionId, StreamId, TimestampMicros};
use inlet_core::table::{OFFSET_COLUMN, TIMESTAMP_COLUMN};
use inlet_index::{LakeCommit, LakeFileEntry};
use inlet_proto::v1 as pb;
use serde_json::Value;
use slatedb::object_store::local::LocalFileSystem;
use slatedb::object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DATABASE: &str = "db";
const TABLE: &str = "events";
const BUCKETS: u32 = 4;
/// Rows per round.
const ROWS: i64 = 300;
/// Environment variable naming the Python interpreter with the engines installed.
const PYTHON_VAR: &str = "INLET_TEST_PYTHON";
/// How long tiering by the compactor may take.
const TIER_DEADLINE: Duration = Duration::from_secs(60);

/// One produced row as the engines must read it: bucket, offset, id, name, timestamp (µs).
type LakeRow = (u32, u64, i64, Option<String>, i64);

/// A node and where its lake is; `catalog` is the address of the Iceberg REST catalog.
struct Lake {
    node: Node,
    root: LakeRoot,
    store: Arc<dyn ObjectStore>,
    catalog: SocketAddr,
    /// The client settings loaded tables must carry.
    file_io: Value,
    /// A catalog served beside the node, stopped on drop.
    _extra: Option<AbortOnDrop>,
    /// Keeps a local-directory store alive.
    _backend: Backend,
}

struct AbortOnDrop(tokio::task::JoinHandle<std::io::Result<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Lake {
    /// A node on a local directory, serving HTTP (and the catalog) on a free port, the way
    /// `inlet serve` opens it.
    async fn local(compactor: bool) -> anyhow::Result<Self> {
        Self::local_with(compactor, |_| {}).await
    }

    /// [`Lake::local`] with `adjust` applied to the node's settings.
    async fn local_with(
        compactor: bool,
        adjust: impl FnOnce(&mut inlet::config::Config),
    ) -> anyhow::Result<Self> {
        let backend = Backend::local();
        let Backend::Local(dir) = &backend else {
            unreachable!("a local backend")
        };
        let mut config = test_config();
        config.store = dir.path().to_str().context("utf-8 temp dir")?.to_owned();
        config.lake.compactor = compactor;
        // Collect WAL garbage soon, so the test sees offsets served from the lake only. Rows
        // are appended while the compactor runs, so the upload grace must outlast an upload
        // and its commit (milliseconds here); zero could delete an object not yet committed.
        config.lake.tiering.wal_gc_interval = Duration::from_millis(200);
        config.writer.upload_timeout = Duration::from_secs(2);
        config.writer.commit_timeout = Duration::from_secs(2);
        config.lake.tiering.wal_upload_grace = Duration::from_secs(5);
        config.lake.tiering.wal_read_grace = Duration::ZERO;
        adjust(&mut config);
        let node = Node::start(&config).await?;
        Ok(Self {
            catalog: node.http_addr().context("http enabled")?,
            root: LakeRoot::local(dir.path())?,
            store: Arc::new(LocalFileSystem::new_with_prefix(dir.path())?),
            file_io: serde_json::json!({}),
            node,
            _extra: None,
            _backend: backend,
        })
    }

    /// A node on a fresh bucket of the S3 server of `INLET_TEST_S3_ENDPOINT`. The node takes
    /// its clients' S3 settings from the `AWS_*` variables, which a test cannot set, so the
    /// catalog is served beside it, over the node's index, with the test server's settings.
    async fn s3(test: &str) -> anyhow::Result<Self> {
        let backend = Backend::s3(test).await;
        let Backend::S3 { endpoint, bucket } = &backend else {
            unreachable!("an s3 backend")
        };
        let mut config = test_config();
        config.store = format!("s3://{bucket}");
        config.lake.compactor = false;
        let store = backend.store();
        let node = Node::start_with_store(&config, store.clone(), Env::system()).await?;
        let root = LakeRoot::s3(bucket, "");
        let file_io: BTreeMap<String, String> = [
            ("s3.endpoint", endpoint.as_str()),
            ("s3.region", "us-east-1"),
            ("s3.access-key-id", "test"),
            ("s3.secret-access-key", "test"),
            ("s3.path-style-access", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let catalog = RestCatalog::new(
            node.index().expect("the node owns the index").clone(),
            store.clone(),
            Some(root.clone()),
            file_io.clone(),
        );
        let router = axum::Router::new().nest("/iceberg", catalog.router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let serving = tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(Self {
            node,
            root,
            store,
            catalog: addr,
            file_io: serde_json::to_value(file_io)?,
            _extra: Some(AbortOnDrop(serving)),
            _backend: backend,
        })
    }
}

async fn create_lake_table(client: &mut Client) -> anyhow::Result<()> {
    create_table_with(
        client,
        &[("lake.enabled", "true"), ("lake.freshness", "1s")],
    )
    .await
}

/// Creates the test table (in a new database) with `options`.
async fn create_table_with(client: &mut Client, options: &[(&str, &str)]) -> anyhow::Result<()> {
    client.create_database(DATABASE, false).await?;
    client
        .raw()
        .create_table(pb::CreateTableRequest {
            path: Some(inlet::client::path(DATABASE, TABLE)),
            descriptor: Some(pb::TableDescriptor {
                schema_ipc: inlet_core::ipc::schema_to_ipc(&schema())?,
                bucket_count: BUCKETS,
                bucket_key: vec!["id".to_owned()],
                options: options
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            }),
            if_not_exists: false,
        })
        .await
        .map_err(inlet::client::status_error)?;
    Ok(())
}

/// Appends rows with ids `ids`, in a few appends.
async fn produce(client: &mut Client, ids: std::ops::Range<i64>) -> anyhow::Result<()> {
    let ids: Vec<i64> = ids.collect();
    for chunk in ids.chunks(ids.len().div_ceil(3)) {
        let input = batch(chunk.iter().copied());
        client.append(DATABASE, TABLE, &schema(), &[input]).await?;
    }
    Ok(())
}

/// Rows of one bucket from `from` on, as the reader returns them.
async fn fetch_bucket(
    client: &mut Client,
    bucket: u32,
    from: Offset,
) -> anyhow::Result<Vec<RecordBatch>> {
    let mut request = fetch_request(DATABASE, TABLE);
    request.buckets = vec![bucket];
    request.start = Some(pb::StartPosition {
        position: Some(pb::start_position::Position::Offset(from.0)),
    });
    client.fetch_all(request).await
}

/// The rows produced since the last call, read through the node (before they are tiered, so
/// this does not depend on reading tiered offsets back), added to `rows`; `next` holds each
/// bucket's next unread offset.
async fn read_new_rows(
    client: &mut Client,
    next: &mut [u64; BUCKETS as usize],
    rows: &mut Vec<LakeRow>,
) -> anyhow::Result<()> {
    for (bucket, next) in (0..BUCKETS).zip(next.iter_mut()) {
        for batch in fetch_bucket(client, bucket, Offset(*next)).await? {
            let new = lake_rows(&batch)?;
            *next += new.len() as u64;
            rows.extend(new);
        }
    }
    rows.sort();
    Ok(())
}

fn lake_rows(batch: &RecordBatch) -> anyhow::Result<Vec<LakeRow>> {
    let timestamps = batch
        .column_by_name(TIMESTAMP_COLUMN)
        .context("no _timestamp")?
        .as_primitive::<TimestampMicrosecondType>();
    Ok(rows_of(std::slice::from_ref(batch))
        .into_iter()
        .enumerate()
        .map(|(i, (bucket, offset, id, name))| (bucket, offset, id, name, timestamps.value(i)))
        .collect())
}

/// One tiering round by hand, as the compactor does it: every row of the table above the
/// lake watermarks into a staged Iceberg commit, recorded in the index under a lease, then
/// the version hint. Returns the new metadata location.
async fn tier_by_hand(lake: &Lake, client: &mut Client) -> anyhow::Result<String> {
    let index = lake.node.index().expect("the node owns the index");
    let env = Env::system();
    let info = index.table(DATABASE, TABLE)?;
    let root = &lake.root;
    let storage = LakeStorage::new(root.clone(), lake.store.clone());
    let current = index
        .lake_table(info.id)
        .await?
        .and_then(|record| record.metadata_location);
    let base = match &current {
        Some(location) => {
            let ident = iceberg::TableIdent::from_strs([DATABASE, TABLE])?;
            LakeTable::load(&storage, ident, location).await?
        }
        None => LakeTable::create(&storage, &info, &env).await?,
    };
    let mut append = LakeAppend::new(&base, &LakeWriteOptions::default(), &env)?;
    for bucket in 0..BUCKETS {
        let from = append.next_offset(Bucket(bucket));
        let stream = StreamId::new(info.id, PartitionId(0), Bucket(bucket));
        if index.tail(stream).await?.next_offset <= from {
            continue;
        }
        for batch in fetch_bucket(client, bucket, from).await? {
            append.write(Bucket(bucket), &batch).await?;
        }
    }
    let staged = append.stage().await?;

    let schema = staged.table.metadata().current_schema().clone();
    let field = |name: &str| schema.field_id_by_name(name).context("system column");
    let (offset_id, timestamp_id) = (field(OFFSET_COLUMN)?, field(TIMESTAMP_COLUMN)?);
    let long = |bounds: &std::collections::HashMap<i32, iceberg::spec::Datum>, id: i32| match bounds
        .get(&id)
        .map(|datum| datum.literal())
    {
        Some(PrimitiveLiteral::Long(value)) => Ok(*value),
        other => Err(anyhow::anyhow!("field {id} has bound {other:?}")),
    };
    let mut added_files = Vec::new();
    for file in &staged.data_files {
        let bucket = match file.partition().iter().next().flatten() {
            Some(Literal::Primitive(PrimitiveLiteral::Int(bucket))) => *bucket,
            other => bail!("data file partition is {other:?}"),
        };
        added_files.push((
            Bucket(u32::try_from(bucket)?),
            LakeFileEntry {
                path: root.path_of(file.file_path())?.to_string(),
                base_offset: Offset(u64::try_from(long(file.lower_bounds(), offset_id)?)?),
                row_count: file.record_count(),
                file_size: file.file_size_in_bytes(),
                snapshot_id: staged.snapshot_id,
                min_ts: TimestampMicros(long(file.lower_bounds(), timestamp_id)?),
                max_ts: TimestampMicros(long(file.upper_bounds(), timestamp_id)?),
                schema_id: None,
            },
        ));
    }
    let lease = index
        .acquire_lake_lease(info.id, 7, Duration::from_secs(60))
        .await?;
    let location = staged.table.metadata_location().to_owned();
    index
        .commit_lake(LakeCommit {
            table: info.id,
            lease,
            expected_metadata_location: current,
            metadata_location: location.clone(),
            snapshot_id: Some(staged.snapshot_id),
            watermarks: staged.watermarks.clone(),
            added_files,
            removed_files: Vec::new(),
            earliest: BTreeMap::new(),
            key_rows: Vec::new(),
        })
        .await?;
    staged.table.publish_version_hint().await?;
    index.release_lake_lease(info.id, lease).await?;
    Ok(location)
}

/// A minimal HTTP/1.1 client for the catalog: (status, body).
async fn http(addr: SocketAddr, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8(response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no end of headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("bad chunk")?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("short chunk")?);
        body = rest.get(size + 2..).context("short chunk")?;
    }
}

async fn get_json(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Value)> {
    let (status, body) = http(addr, "GET", path).await?;
    Ok((status, serde_json::from_str(&body)?))
}

/// The catalog's answers that clients rely on, besides loading the table.
async fn check_catalog_protocol(addr: SocketAddr) -> anyhow::Result<()> {
    let (status, config) = get_json(addr, "/iceberg/v1/config?warehouse=x").await?;
    ensure!(status == 200 && config["overrides"].is_object(), "{config}");
    let (status, namespaces) = get_json(addr, "/iceberg/v1/namespaces").await?;
    ensure!(status == 200, "{namespaces}");
    ensure!(
        namespaces["namespaces"] == serde_json::json!([[DATABASE]]),
        "{namespaces}"
    );
    let (status, children) = get_json(addr, "/iceberg/v1/namespaces?parent=db").await?;
    ensure!(status == 200 && children["namespaces"] == serde_json::json!([]));
    let (status, tables) = get_json(addr, "/iceberg/v1/namespaces/db/tables").await?;
    ensure!(status == 200, "{tables}");
    ensure!(
        tables["identifiers"] == serde_json::json!([{"namespace": [DATABASE], "name": TABLE}]),
        "{tables}"
    );
    ensure!(http(addr, "HEAD", "/iceberg/v1/namespaces/db").await?.0 == 204);
    ensure!(
        http(addr, "HEAD", "/iceberg/v1/namespaces/db/tables/events")
            .await?
            .0
            == 204
    );
    ensure!(
        http(addr, "HEAD", "/iceberg/v1/namespaces/db/tables/nope")
            .await?
            .0
            == 404
    );
    ensure!(http(addr, "HEAD", "/iceberg/v1/namespaces/nope").await?.0 == 404);

    let not_found = [
        ("/iceberg/v1/namespaces/nope", "NoSuchNamespaceException"),
        (
            "/iceberg/v1/namespaces?parent=nope",
            "NoSuchNamespaceException",
        ),
        (
            "/iceberg/v1/namespaces/nope/tables",
            "NoSuchNamespaceException",
        ),
        (
            "/iceberg/v1/namespaces/db%1Fsub",
            "NoSuchNamespaceException",
        ),
        (
            "/iceberg/v1/namespaces/nope/tables/events",
            "NoSuchNamespaceException",
        ),
        (
            "/iceberg/v1/namespaces/db/tables/nope",
            "NoSuchTableException",
        ),
    ];
    for (path, kind) in not_found {
        let (status, error) = get_json(addr, path).await?;
        ensure!(status == 404, "{path}: {status} {error}");
        ensure!(error["error"]["type"] == kind, "{path}: {error}");
        ensure!(error["error"]["code"] == 404, "{path}: {error}");
        ensure!(error["error"]["message"].is_string(), "{path}: {error}");
    }
    for (method, path) in [
        ("POST", "/iceberg/v1/namespaces"),
        ("POST", "/iceberg/v1/namespaces/db/tables"),
        ("POST", "/iceberg/v1/namespaces/db/tables/events"),
        ("DELETE", "/iceberg/v1/namespaces/db/tables/events"),
        ("DELETE", "/iceberg/v1/namespaces/db"),
        ("POST", "/iceberg/v1/tables/rename"),
    ] {
        let (status, body) = http(addr, method, path).await?;
        let error: Value = serde_json::from_str(&body)?;
        ensure!(status == 501, "{method} {path}: {status} {body}");
        ensure!(error["error"]["type"] == "UnsupportedOperationException");
    }
    let (status, _) = http(addr, "PUT", "/iceberg/v1/namespaces").await?;
    ensure!(status == 405, "PUT: {status}");
    let (status, _) = http(addr, "GET", "/iceberg/v1/nothing/here").await?;
    ensure!(status == 404);
    Ok(())
}

/// Loads the table through the catalog; checks the answer names the file the index records,
/// carries its content and the client settings of the store.
async fn load_table(lake: &Lake) -> anyhow::Result<Value> {
    let (status, loaded) =
        get_json(lake.catalog, "/iceberg/v1/namespaces/db/tables/events").await?;
    ensure!(status == 200, "{status}: {loaded}");
    let location = loaded["metadata-location"]
        .as_str()
        .context("metadata-location")?;
    let path = lake.root.path_of(location)?;
    let stored: Value = serde_json::from_slice(&lake.store.get(&path).await?.bytes().await?)?;
    ensure!(
        loaded["metadata"] == stored,
        "metadata is the file's content"
    );
    ensure!(
        loaded["config"] == lake.file_io,
        "client settings: {}",
        loaded["config"]
    );
    Ok(loaded)
}

/// The total record count of the current snapshot of loaded table metadata.
fn total_records(metadata: &Value) -> Option<u64> {
    let current = metadata["current-snapshot-id"].as_i64()?;
    metadata["snapshots"]
        .as_array()?
        .iter()
        .find(|snapshot| snapshot["snapshot-id"].as_i64() == Some(current))?["summary"]
        ["total-records"]
        .as_str()?
        .parse()
        .ok()
}

/// Reads the lake table with every engine of `read_lake.py`; each must return `expected`.
async fn read_with_engines(
    catalog: SocketAddr,
    metadata_location: &str,
    expected: &[LakeRow],
) -> anyhow::Result<()> {
    read_with_engines_and(catalog, metadata_location, &[], expected).await
}

/// [`read_with_engines`], each row followed by the values of `extra` columns.
async fn read_with_engines_and<R: serde::Serialize>(
    catalog: SocketAddr,
    metadata_location: &str,
    extra: &[&str],
    expected: &[R],
) -> anyhow::Result<()> {
    read_with_engines_as(
        catalog,
        &Access::default(),
        metadata_location,
        extra,
        expected,
    )
    .await
}

/// How the engines reach the REST catalog: over https (trusting `ca`) and with a bearer
/// token; `secrets` must not appear in what it answers.
#[derive(Default)]
struct Access<'a> {
    ca: Option<&'a Path>,
    token: Option<&'a str>,
    secrets: &'a [&'a str],
}

/// [`read_with_engines_and`] through a catalog reached with `access`.
async fn read_with_engines_as<R: serde::Serialize>(
    catalog: SocketAddr,
    access: &Access<'_>,
    metadata_location: &str,
    extra: &[&str],
    expected: &[R],
) -> anyhow::Result<()> {
    // Local paths as a user types them; S3 URLs as they are.
    let metadata = metadata_location
        .strip_prefix("file://")
        .unwrap_or(metadata_location);
    let table_dir = metadata
        .rsplitn(3, '/')
        .nth(2)
        .context("metadata is in <table>/metadata/")?;
    let rows = tempfile::NamedTempFile::new()?;
    std::fs::write(rows.path(), serde_json::to_vec(expected)?)?;
    let python = std::env::var(PYTHON_VAR).unwrap_or_else(|_| "python3".to_owned());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engines/read_lake.py");
    let started = tokio::time::Instant::now();
    let scheme = if access.ca.is_some() { "https" } else { "http" };
    let mut command = tokio::process::Command::new(&python);
    command
        .arg(&script)
        .args(["--uri", &format!("{scheme}://{catalog}/iceberg")])
        .args(["--namespace", DATABASE, "--table", TABLE])
        .args(["--metadata", metadata, "--table-dir", table_dir])
        .arg("--expected")
        .arg(rows.path())
        .args(extra.iter().flat_map(|column| ["--extra-column", column]))
        .args(
            access
                .secrets
                .iter()
                .flat_map(|secret| ["--secret", secret]),
        )
        // requests lets these override the CA bundle pyiceberg sets on its session.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .kill_on_drop(true);
    if let Some(token) = access.token {
        command.args(["--token", token]);
    }
    if let Some(ca) = access.ca {
        command.arg("--ca-cert").arg(ca);
    }
    let output = command.output();
    let output = tokio::time::timeout(Duration::from_secs(180), output)
        .await
        .context("the engines did not finish within 180s")?
        .with_context(|| format!("cannot run `{python}` (set {PYTHON_VAR})"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "{stdout}{stderr}engines took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    ensure!(
        output.status.success(),
        "the engines did not read exactly the {} expected rows ({}):\n{stdout}{stderr}",
        expected.len(),
        output.status
    );
    Ok(())
}

/// The checks after each round: the catalog serves the committed metadata, whose snapshot
/// counts every row produced so far, and every engine reads exactly those rows.
async fn check_round(
    lake: &Lake,
    metadata_location: &str,
    expected: &[LakeRow],
) -> anyhow::Result<()> {
    let loaded = load_table(lake).await?;
    ensure!(loaded["metadata-location"] == metadata_location);
    ensure!(
        total_records(&loaded["metadata"]) == Some(expected.len() as u64),
        "snapshot summary: {}",
        loaded["metadata"]["snapshots"]
    );
    read_with_engines(lake.catalog, metadata_location, expected).await
}

/// Produces two rounds, tiers each by hand, and has the engines read after each.
async fn tier_by_hand_then_read(lake: Lake) -> anyhow::Result<()> {
    let mut client = connect(&lake.node).await;
    create_lake_table(&mut client).await?;

    // Before anything is tiered, the table is not in the catalog.
    let (status, _) = get_json(lake.catalog, "/iceberg/v1/namespaces/db/tables/events").await?;
    ensure!(status == 404);
    let (_, tables) = get_json(lake.catalog, "/iceberg/v1/namespaces/db/tables").await?;
    ensure!(tables["identifiers"] == serde_json::json!([]), "{tables}");

    let (mut next, mut expected) = ([0; BUCKETS as usize], Vec::new());
    produce(&mut client, 0..ROWS).await?;
    read_new_rows(&mut client, &mut next, &mut expected).await?;
    ensure!(expected.len() == ROWS as usize);
    let first = tier_by_hand(&lake, &mut client).await?;
    check_catalog_protocol(lake.catalog).await?;
    check_round(&lake, &first, &expected).await?;

    produce(&mut client, ROWS..2 * ROWS).await?;
    read_new_rows(&mut client, &mut next, &mut expected).await?;
    ensure!(expected.len() == 2 * ROWS as usize);
    let second = tier_by_hand(&lake, &mut client).await?;
    ensure!(second != first);
    check_round(&lake, &second, &expected).await?;

    lake.node.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_read_what_was_tiered_by_hand_local() -> anyhow::Result<()> {
    tier_by_hand_then_read(Lake::local(false).await?).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_read_what_was_tiered_by_hand_s3() -> anyhow::Result<()> {
    tier_by_hand_then_read(Lake::s3("engines_read_tiered_by_hand_s3").await?).await
}

/// Waits until the compactor has tiered every row produced so far; returns the metadata
/// location the index records.
async fn wait_until_tiered(node: &Node, rows: u64) -> anyhow::Result<String> {
    let index = node.index().expect("the node owns the index");
    let info = index.table(DATABASE, TABLE)?;
    let deadline = tokio::time::Instant::now() + TIER_DEADLINE;
    loop {
        let mut tiered = 0;
        for bucket in 0..BUCKETS {
            let stream = StreamId::new(info.id, PartitionId(0), Bucket(bucket));
            tiered += index.lake_watermark(stream).await?.offset.0;
        }
        let record = index.lake_table(info.id).await?;
        if let Some(location) = record.and_then(|r| r.metadata_location)
            && tiered == rows
        {
            return Ok(location);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the compactor tiered {tiered} of {rows} rows within {TIER_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until WAL garbage collection deleted every WAL object: every row is read from the
/// lake from then on.
async fn wait_until_wal_is_gone(lake: &Lake) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + TIER_DEADLINE;
    loop {
        let wal: Vec<_> = lake
            .store
            .list(Some(&slatedb::object_store::path::Path::from("wal")))
            .try_collect()
            .await?;
        if wal.is_empty() {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{} WAL objects still there after {TIER_DEADLINE:?}",
            wal.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_read_what_the_compactor_tiered() -> anyhow::Result<()> {
    let lake = Lake::local(true).await?;
    let mut client = connect(&lake.node).await;
    create_lake_table(&mut client).await?;

    let (mut next, mut expected) = ([0; BUCKETS as usize], Vec::new());
    produce(&mut client, 0..ROWS).await?;
    read_new_rows(&mut client, &mut next, &mut expected).await?;
    let first = wait_until_tiered(&lake.node, ROWS as u64).await?;
    // Tiering (like the reads before it) went through the page cache the writer filled when
    // it uploaded: one log-read path, and not one chunk GET to the store.
    let chunk_gets = lake
        .node
        .metrics()
        .store
        .snapshot()
        .purpose(inlet_store::Purpose::ChunkGet);
    ensure!(
        chunk_gets.requests == 0,
        "chunk GETs while tiering: {chunk_gets:?}"
    );
    check_round(&lake, &first, &expected).await?;

    produce(&mut client, ROWS..2 * ROWS).await?;
    read_new_rows(&mut client, &mut next, &mut expected).await?;
    let second = wait_until_tiered(&lake.node, 2 * ROWS as u64).await?;
    ensure!(second != first);
    check_round(&lake, &second, &expected).await?;

    // `inlet lake status` shows the same: every bucket tiered to its tail, no lag.
    let table = lake_status(&mut client).await?;
    ensure!(table.lake_enabled && table.metadata_location == second);
    ensure!(table.snapshot_id != 0 && table.file_count > 0 && table.file_bytes > 0);
    ensure!(table.file_rows == 2 * ROWS as u64, "{table:?}");
    ensure!(table.buckets.len() == BUCKETS as usize);
    for bucket in &table.buckets {
        ensure!(bucket.watermark == bucket.next_offset && bucket.lag_offsets == 0);
    }
    ensure!(
        table.buckets.iter().map(|b| b.watermark).sum::<u64>() == 2 * ROWS as u64,
        "{table:?}"
    );

    // Every row is in the lake, so the WAL goes: wait until no WAL object is left, then a
    // consumer starting at offset 0 still gets every row, in order, once, from the lake.
    wait_until_wal_is_gone(&lake).await?;
    let (mut from_zero, mut again) = ([0; BUCKETS as usize], Vec::new());
    read_new_rows(&mut client, &mut from_zero, &mut again).await?;
    ensure!(
        again == expected,
        "a read from offset 0 after WAL garbage collection differs: {} rows, {} expected",
        again.len(),
        expected.len()
    );

    lake.node.shutdown().await
}

/// Small-file compaction by the compactor role: six small rounds give each bucket six small
/// files; with `lake.compaction.min_files = 3` the rounds rewrite them, so each bucket keeps
/// at most two. DuckDB and pyiceberg then read exactly the rows produced (every column of
/// every row, compared in order), and a consumer from offset 0 gets them all once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_read_the_same_rows_after_small_files_are_compacted() -> anyhow::Result<()> {
    let lake = Lake::local_with(true, |config| {
        config.lake.tiering.compaction.min_files = 3;
    })
    .await?;
    let mut client = connect(&lake.node).await;
    create_lake_table(&mut client).await?;
    let (mut next, mut expected) = ([0; BUCKETS as usize], Vec::new());
    let rounds = 6;
    for round in 0..rounds {
        produce(&mut client, round * ROWS / 2..(round + 1) * ROWS / 2).await?;
        read_new_rows(&mut client, &mut next, &mut expected).await?;
        wait_until_tiered(&lake.node, expected.len() as u64).await?;
    }
    // The round that tiered the last rows rewrites what is due after its append commits.
    let deadline = tokio::time::Instant::now() + TIER_DEADLINE;
    let table = loop {
        let table = lake_status(&mut client).await?;
        ensure!(table.file_rows == expected.len() as u64, "{table:?}");
        if table.file_count <= 2 * u64::from(BUCKETS) {
            break table;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{} files after {rounds} rounds of {BUCKETS} buckets: {table:?}",
            table.file_count
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let loaded = load_table(&lake).await?;
    let snapshots = loaded["metadata"]["snapshots"]
        .as_array()
        .context("snapshots")?;
    ensure!(
        snapshots
            .iter()
            .any(|s| s["summary"]["operation"] == "replace"),
        "a replace snapshot among {snapshots:?}"
    );
    check_round(&lake, &table.metadata_location, &expected).await?;

    let (mut from_zero, mut again) = ([0; BUCKETS as usize], Vec::new());
    read_new_rows(&mut client, &mut from_zero, &mut again).await?;
    ensure!(
        again == expected,
        "a read from offset 0 after compaction differs"
    );
    lake.node.shutdown().await
}

/// A primary-key table tiered by the compactor: after each of several rounds of random
/// upserts (new keys and updates, some names null) and deletes (of present and absent keys),
/// every engine reads exactly the table's current rows, each with the offset and commit time
/// of the write that made it, and the changelog replayed from offset 0 agrees with a model of
/// what was written. Rows an update or delete replaced in an earlier round's data file are
/// removed by position deletes, which DuckDB and pyiceberg both apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_read_the_current_rows_of_a_primary_key_table() -> anyhow::Result<()> {
    const KEYS: i64 = 120;
    let lake = Lake::local(true).await?;
    let mut client = connect(&lake.node).await;
    client.create_database(DATABASE, false).await?;
    let options = [("lake.enabled", "true"), ("lake.freshness", "1s")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    client
        .create_primary_key_table(
            DATABASE,
            TABLE,
            &schema(),
            BUCKETS,
            vec!["id".to_owned()],
            Vec::new(),
            options,
            false,
        )
        .await?;

    let mut model: BTreeMap<i64, Option<String>> = BTreeMap::new();
    let mut random = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move |below: u64| {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random % below
    };
    let mut written = 0u64;
    let mut locations = Vec::new();
    for round in 0..3 {
        for _ in 0..8 {
            let ids: BTreeSet<i64> = (0..1 + next(40))
                .map(|_| next(KEYS as u64) as i64)
                .collect();
            let ids: Vec<i64> = ids.into_iter().collect();
            if next(4) == 0 {
                client
                    .delete(DATABASE, TABLE, &schema(), &[batch(ids.iter().copied())])
                    .await?;
                for id in &ids {
                    model.remove(id);
                }
            } else {
                let names: Vec<Option<String>> = ids
                    .iter()
                    .map(|id| (next(5) != 0).then(|| format!("round-{round}-{id}-{}", next(1000))))
                    .collect();
                let input = RecordBatch::try_new(
                    schema(),
                    vec![
                        Arc::new(arrow_array::Int64Array::from(ids.clone())),
                        Arc::new(arrow_array::StringArray::from(names.clone())),
                    ],
                )?;
                client.upsert(DATABASE, TABLE, &schema(), &[input]).await?;
                model.extend(ids.iter().copied().zip(names));
            }
            written += ids.len() as u64;
        }
        let location = wait_until_tiered(&lake.node, written).await?;
        let expected = replay_changelog(&mut client).await?;
        let current: BTreeMap<i64, Option<String>> = expected
            .iter()
            .map(|(_, _, id, name, _)| (*id, name.clone()))
            .collect();
        ensure!(
            current == model && current.len() == expected.len(),
            "round {round}: the changelog replays to {} keys, the model has {}",
            current.len(),
            model.len()
        );
        read_with_engines(lake.catalog, &location, &expected).await?;
        locations.push(location);
    }
    ensure!(locations[0] != locations[2], "rounds committed nothing new");

    // `inlet lake status` counts the lake's live rows: one per key the model holds.
    let table = lake_status(&mut client).await?;
    ensure!(
        table.file_rows == model.len() as u64 && table.file_count > 0 && table.file_bytes > 0,
        "{table:?}, {} keys",
        model.len()
    );

    // A column added to the table (issue 12): the lake table gains it, keys upserted since
    // carry it, every other key's row (in files written before) reads null in it, and the
    // engines read exactly that.
    let rank = arrow_schema::Field::new("rank", arrow_schema::DataType::Int32, true);
    client
        .raw()
        .alter_table(pb::AlterTableRequest {
            path: Some(inlet::client::path(DATABASE, TABLE)),
            add_columns_ipc: inlet_core::ipc::schema_to_ipc(&arrow_schema::Schema::new(vec![
                rank.clone(),
            ]))?,
            ..Default::default()
        })
        .await?;
    let mut fields: Vec<arrow_schema::FieldRef> = schema().fields().iter().cloned().collect();
    fields.push(Arc::new(rank));
    let ranked = Arc::new(arrow_schema::Schema::new(fields));
    let ids: Vec<i64> = (0..KEYS).step_by(3).collect();
    let names: Vec<Option<String>> = ids.iter().map(|id| Some(format!("ranked-{id}"))).collect();
    let ranks: BTreeMap<i64, i32> = ids.iter().map(|id| (*id, *id as i32 * 3)).collect();
    let input = RecordBatch::try_new(
        ranked.clone(),
        vec![
            Arc::new(arrow_array::Int64Array::from(ids.clone())),
            Arc::new(arrow_array::StringArray::from(names.clone())),
            Arc::new(arrow_array::Int32Array::from_iter_values(
                ranks.values().copied(),
            )),
        ],
    )?;
    client.upsert(DATABASE, TABLE, &ranked, &[input]).await?;
    model.extend(ids.iter().copied().zip(names));
    written += ids.len() as u64;
    let location = wait_until_tiered(&lake.node, written).await?;
    let expected = replay_changelog(&mut client).await?;
    let current: BTreeMap<i64, Option<String>> = expected
        .iter()
        .map(|(_, _, id, name, _)| (*id, name.clone()))
        .collect();
    ensure!(
        current == model,
        "after the added column, the changelog replays to the model"
    );
    let with_ranks: Vec<_> = expected
        .iter()
        .map(|(bucket, offset, id, name, timestamp)| {
            (
                *bucket,
                *offset,
                *id,
                name.clone(),
                *timestamp,
                ranks.get(id).copied(),
            )
        })
        .collect();
    read_with_engines_and(lake.catalog, &location, &["rank"], &with_ranks).await?;
    lake.node.shutdown().await
}

/// `ALTER TABLE` on a table with history: turning the lake on tiers what was written
/// before (engines read all of it); options that are fixed, unknown or inconsistent are
/// refused with a message naming them, and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altering_the_lake_on_tiers_the_history() -> anyhow::Result<()> {
    let lake = Lake::local(true).await?;
    let mut client = connect(&lake.node).await;
    create_table_with(&mut client, &[("lake.enabled", "false")]).await?;
    let (mut next, mut expected) = ([0; BUCKETS as usize], Vec::new());
    produce(&mut client, 0..ROWS).await?;
    read_new_rows(&mut client, &mut next, &mut expected).await?;
    ensure!(!lake_status(&mut client).await?.lake_enabled);

    let alter =
        |set: &[(&str, &str)], unset: &[&str], comment: Option<&str>| pb::AlterTableRequest {
            path: Some(inlet::client::path(DATABASE, TABLE)),
            set_options: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            unset_options: unset.iter().map(|k| k.to_string()).collect(),
            comment: comment.map(str::to_owned),
            ..Default::default()
        };
    let refused = [
        (
            alter(&[("merge.engine", "first_row")], &[], None),
            "fixed when the table is created",
        ),
        (
            alter(&[("lake.color", "blue")], &[], None),
            "unknown table option `lake.color`",
        ),
        (
            alter(&[("retention.bytes", "10 parsecs")], &[], None),
            "unknown unit `parsecs`",
        ),
        (
            alter(&[("lake.freshness", "1ms")], &[], None),
            "must be between",
        ),
    ];
    for (request, message) in refused {
        let status = client
            .raw()
            .alter_table(request)
            .await
            .expect_err("refused");
        ensure!(
            status.code() == tonic::Code::InvalidArgument && status.message().contains(message),
            "{status:?} should say {message:?}"
        );
    }
    let missing = pb::AlterTableRequest {
        path: Some(inlet::client::path(DATABASE, "nope")),
        ..alter(&[], &[], None)
    };
    let status = client
        .raw()
        .alter_table(missing)
        .await
        .expect_err("no table");
    ensure!(status.code() == tonic::Code::NotFound, "{status:?}");

    let altered = client
        .raw()
        .alter_table(alter(
            &[("lake.enabled", "true"), ("lake.freshness", "1s")],
            &[],
            Some("clicks, tiered"),
        ))
        .await?
        .into_inner();
    let descriptor = altered
        .table
        .and_then(|t| t.descriptor)
        .context("descriptor")?;
    ensure!(descriptor.comment == "clicks, tiered");
    ensure!(
        descriptor.options.get("lake.enabled").map(String::as_str) == Some("true"),
        "{descriptor:?}"
    );
    // The history written before the lake was on is tiered, and engines read all of it.
    let location = wait_until_tiered(&lake.node, ROWS as u64).await?;
    check_round(&lake, &location, &expected).await?;
    ensure!(lake_status(&mut client).await?.lake_enabled);

    // Unset: back to the default (the record's durability: `index/tests/sequencer.rs`).
    client
        .raw()
        .alter_table(alter(&[], &["lake.freshness"], None))
        .await?;
    let index = lake.node.index().context("owner")?;
    let info = index.table(DATABASE, TABLE)?;
    ensure!(
        !info.descriptor.options.contains_key("lake.freshness")
            && info.descriptor.comment == "clicks, tiered",
        "{:?}",
        info.descriptor
    );
    lake.node.shutdown().await
}

/// The table's lake status, as `inlet lake status` shows it.
async fn lake_status(client: &mut Client) -> anyhow::Result<pb::LakeTableStatus> {
    let status = client
        .raw()
        .get_lake_status(pb::GetLakeStatusRequest {
            database: DATABASE.to_owned(),
            table: TABLE.to_owned(),
        })
        .await?
        .into_inner();
    let [table] = status.tables.as_slice() else {
        bail!("one table expected in {status:?}");
    };
    Ok(table.clone())
}

/// The table's current rows, from its whole changelog replayed in offset order per bucket:
/// each key's row as the last `+I`/`+U` wrote it, unless a later `-D` removed it.
async fn replay_changelog(client: &mut Client) -> anyhow::Result<Vec<LakeRow>> {
    let mut current: BTreeMap<i64, LakeRow> = BTreeMap::new();
    for bucket in 0..BUCKETS {
        for batch in fetch_bucket(client, bucket, Offset(0)).await? {
            let kinds = batch
                .column_by_name(inlet_core::table::CHANGE_TYPE_COLUMN)
                .context("a changelog read has `_change_type`")?
                .as_string::<i32>()
                .clone();
            for (i, row) in lake_rows(&batch)?.into_iter().enumerate() {
                match kinds.value(i) {
                    "+I" | "+U" => {
                        current.insert(row.2, row);
                    }
                    "-D" => {
                        current.remove(&row.2);
                    }
                    "-U" => {}
                    other => bail!("unknown change type {other}"),
                }
            }
        }
    }
    let mut rows: Vec<LakeRow> = current.into_values().collect();
    rows.sort();
    Ok(rows)
}

/// The columns after `score` was added.
fn scored_schema() -> Arc<arrow_schema::Schema> {
    let mut fields: Vec<arrow_schema::FieldRef> = schema().fields().iter().cloned().collect();
    fields.push(Arc::new(arrow_schema::Field::new(
        "score",
        arrow_schema::DataType::Float64,
        true,
    )));
    Arc::new(arrow_schema::Schema::new(fields))
}

/// The score a row with `id` is written with once the column exists.
fn score(id: i64) -> f64 {
    id as f64 * 0.5
}

/// Every row's `column` (of Arrow type `T`) from offset 0 of every bucket, by id, read with
/// `columns` (which name `id` and `column`); each id must come once.
async fn values_by_id<T: arrow_array::ArrowPrimitiveType>(
    client: &mut Client,
    columns: &[&str],
    column: &str,
) -> anyhow::Result<BTreeMap<i64, Option<T::Native>>> {
    let mut request = fetch_request(DATABASE, TABLE);
    request.columns = columns.iter().map(|c| c.to_string()).collect();
    let mut values = BTreeMap::new();
    for batch in client.fetch_all(request).await? {
        ensure!(
            batch.schema().fields().len() == columns.len() + 3,
            "{:?}",
            batch.schema()
        );
        let ids = batch
            .column_by_name("id")
            .context("id")?
            .as_primitive::<arrow_array::types::Int64Type>();
        let column = batch
            .column_by_name(column)
            .context(column.to_owned())?
            .as_primitive::<T>();
        for i in 0..batch.num_rows() {
            let value = (!arrow_array::Array::is_null(column, i)).then(|| column.value(i));
            ensure!(
                values.insert(ids.value(i), value).is_none(),
                "id {} twice",
                ids.value(i)
            );
        }
    }
    Ok(values)
}

/// Every row's score by id, read with `columns`.
async fn scores(
    client: &mut Client,
    columns: &[&str],
) -> anyhow::Result<BTreeMap<i64, Option<f64>>> {
    values_by_id::<arrow_array::types::Float64Type>(client, columns, "score").await
}

/// A column added to a log table: rows written before read as null in it, rows written after
/// with their values, also by producers that still send the old columns (nulls) and in a
/// projection of just the new column. Turning the lake on afterwards tiers the rows of both
/// schemas, and engines read them; a consumer reading from the lake gets the same scores.
/// A column added to the lake table evolves its Iceberg schema: engines read every row, and
/// reads from data files written before get nulls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_column_reads_as_null_in_older_rows_and_reaches_the_lake() -> anyhow::Result<()> {
    let lake = Lake::local(true).await?;
    let mut client = connect(&lake.node).await;
    create_table_with(&mut client, &[("lake.enabled", "false")]).await?;
    produce(&mut client, 0..ROWS).await?;

    let added = arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "score",
        arrow_schema::DataType::Float64,
        true,
    )]);
    let alter = |set: &[(&str, &str)],
                 add: Option<&arrow_schema::Schema>|
     -> anyhow::Result<pb::AlterTableRequest> {
        Ok(pb::AlterTableRequest {
            path: Some(inlet::client::path(DATABASE, TABLE)),
            set_options: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            add_columns_ipc: match add {
                Some(schema) => inlet_core::ipc::schema_to_ipc(schema)?,
                None => Vec::new(),
            },
            ..Default::default()
        })
    };
    let altered = client
        .raw()
        .alter_table(alter(&[], Some(&added))?)
        .await?
        .into_inner()
        .table
        .context("the altered table")?;
    ensure!(altered.schema_id == 1, "{altered:?}");

    // New rows with scores; an old producer's rows without.
    let ids: Vec<i64> = (ROWS..2 * ROWS).collect();
    let scored = RecordBatch::try_new(
        scored_schema(),
        vec![
            Arc::new(arrow_array::Int64Array::from(ids.clone())),
            Arc::new(arrow_array::StringArray::from_iter_values(
                ids.iter().map(|id| format!("name-{id}")),
            )),
            Arc::new(arrow_array::Float64Array::from_iter_values(
                ids.iter().map(|id| score(*id)),
            )),
        ],
    )?;
    client
        .append(DATABASE, TABLE, &scored_schema(), &[scored])
        .await?;
    produce(&mut client, 2 * ROWS..2 * ROWS + 30).await?;
    let total = 2 * ROWS + 30;
    let expected: BTreeMap<i64, Option<f64>> = (0..total)
        .map(|id| (id, (ROWS..2 * ROWS).contains(&id).then(|| score(id))))
        .collect();
    ensure!(scores(&mut client, &["id", "score"]).await? == expected);
    ensure!(scores(&mut client, &["score", "id"]).await? == expected);

    // The lake, turned on now, tiers chunks of both schemas into one table of the new columns.
    client
        .raw()
        .alter_table(alter(
            &[("lake.enabled", "true"), ("lake.freshness", "1s")],
            None,
        )?)
        .await?;
    let (mut next, mut rows) = ([0; BUCKETS as usize], Vec::new());
    read_new_rows(&mut client, &mut next, &mut rows).await?;
    ensure!(rows.len() as i64 == total);
    let location = wait_until_tiered(&lake.node, total as u64).await?;
    check_round(&lake, &location, &rows).await?;
    let loaded = load_table(&lake).await?;
    let fields = loaded["metadata"]["schemas"][0]["fields"]
        .as_array()
        .context("lake fields")?;
    ensure!(
        fields.iter().any(|f| f["name"] == "score"),
        "the lake table has the added column: {fields:?}"
    );

    // Once the WAL is gone the scores come from the lake.
    wait_until_wal_is_gone(&lake).await?;
    ensure!(scores(&mut client, &["id", "score"]).await? == expected);

    // A column added to the lake table: the next rounds evolve the Iceberg schema (a new
    // schema id, the new field with a fresh id), engines read every row, and a read from the
    // lake gets nulls from the files written before.
    let more = arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "rank",
        arrow_schema::DataType::Int32,
        true,
    )]);
    client.raw().alter_table(alter(&[], Some(&more))?).await?;
    let mut ranked_schema: Vec<arrow_schema::FieldRef> =
        scored_schema().fields().iter().cloned().collect();
    ranked_schema.extend(more.fields().iter().cloned());
    let ranked_schema = Arc::new(arrow_schema::Schema::new(ranked_schema));
    let ids: Vec<i64> = (total..total + 40).collect();
    let ranked = RecordBatch::try_new(
        ranked_schema.clone(),
        vec![
            Arc::new(arrow_array::Int64Array::from(ids.clone())),
            Arc::new(arrow_array::StringArray::from_iter_values(
                ids.iter().map(|id| format!("name-{id}")),
            )),
            Arc::new(arrow_array::Float64Array::from_iter_values(
                ids.iter().map(|id| score(*id)),
            )),
            Arc::new(arrow_array::Int32Array::from_iter_values(
                ids.iter().map(|id| *id as i32 % 7),
            )),
        ],
    )?;
    client
        .append(DATABASE, TABLE, &ranked_schema, &[ranked])
        .await?;
    read_new_rows(&mut client, &mut next, &mut rows).await?;
    let location = wait_until_tiered(&lake.node, rows.len() as u64).await?;
    check_round(&lake, &location, &rows).await?;
    let loaded = load_table(&lake).await?;
    let metadata = &loaded["metadata"];
    let current = metadata["schemas"]
        .as_array()
        .context("schemas")?
        .iter()
        .find(|schema| schema["schema-id"] == metadata["current-schema-id"])
        .context("the current schema")?;
    let names: Vec<&str> = current["fields"]
        .as_array()
        .context("fields")?
        .iter()
        .filter_map(|field| field["name"].as_str())
        .collect();
    ensure!(
        names
            == [
                "id",
                "name",
                "score",
                "rank",
                "_bucket",
                "_offset",
                "_timestamp"
            ],
        "{names:?}"
    );
    ensure!(
        metadata["schemas"].as_array().map(Vec::len) == Some(2),
        "{metadata}"
    );
    wait_until_wal_is_gone(&lake).await?;
    let ranks =
        values_by_id::<arrow_array::types::Int32Type>(&mut client, &["id", "rank"], "rank").await?;
    let expected_ranks: BTreeMap<i64, Option<i32>> = (0..total + 40)
        .map(|id| (id, (id >= total).then_some(id as i32 % 7)))
        .collect();
    ensure!(ranks == expected_ranks, "ranks read from the lake");
    lake.node.shutdown().await
}

/// Every row's `label` and `rank` by id, from offset 0 of every bucket.
async fn labels_and_ranks(
    client: &mut Client,
) -> anyhow::Result<BTreeMap<i64, (Option<String>, Option<i32>)>> {
    let mut request = fetch_request(DATABASE, TABLE);
    request.columns = vec!["id".into(), "label".into(), "rank".into()];
    let mut values = BTreeMap::new();
    for batch in client.fetch_all(request).await? {
        let ids = batch
            .column_by_name("id")
            .context("id")?
            .as_primitive::<arrow_array::types::Int64Type>();
        let labels = batch
            .column_by_name("label")
            .context("label")?
            .as_string::<i32>();
        let ranks = batch
            .column_by_name("rank")
            .context("rank")?
            .as_primitive::<arrow_array::types::Int32Type>();
        for i in 0..batch.num_rows() {
            let label =
                (!arrow_array::Array::is_null(labels, i)).then(|| labels.value(i).to_owned());
            let rank = (!arrow_array::Array::is_null(ranks, i)).then(|| ranks.value(i));
            ensure!(
                values.insert(ids.value(i), (label, rank)).is_none(),
                "id {} twice",
                ids.value(i)
            );
        }
    }
    Ok(values)
}

/// Columns renamed and dropped (issue 12): `tag` becomes `label` and `rank` is dropped, then
/// a new `rank` is added. Rows written before read their tags as labels and null ranks (not
/// the dropped column's values: columns are matched by id, not name), from the WAL and, once
/// tiered, from the lake; a producer still on the old columns keeps working (its `tag` is the
/// label, its `rank` ignored). The lake table renames the field in place (its id kept), drops
/// the old `rank` from the current schema and adds the new one with a fresh id, and DuckDB
/// and pyiceberg read every row so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_and_dropped_columns_keep_their_rows_by_id_in_the_wal_the_lake_and_engines()
-> anyhow::Result<()> {
    use arrow_schema::{DataType, Field, Schema};
    let lake = Lake::local(true).await?;
    let mut client = connect(&lake.node).await;
    create_lake_table(&mut client).await?;
    let alter = |change: pb::AlterTableRequest| pb::AlterTableRequest {
        path: Some(inlet::client::path(DATABASE, TABLE)),
        ..change
    };
    let columns_ipc = |fields: Vec<Field>| inlet_core::ipc::schema_to_ipc(&Schema::new(fields));
    client
        .raw()
        .alter_table(alter(pb::AlterTableRequest {
            add_columns_ipc: columns_ipc(vec![
                Field::new("rank", DataType::Int32, true),
                Field::new("tag", DataType::Utf8, true),
            ])?,
            ..Default::default()
        }))
        .await?;
    // Rows with the `extra` columns after `id` and `name`: a rank of 100 + id % 7, a tag or
    // label of `t<id>`.
    let append = |ids: std::ops::Range<i64>, extra: &[(&str, DataType)]| {
        let ids: Vec<i64> = ids.collect();
        let mut fields: Vec<arrow_schema::FieldRef> = schema().fields().iter().cloned().collect();
        let mut columns: Vec<arrow_array::ArrayRef> = vec![
            Arc::new(arrow_array::Int64Array::from(ids.clone())),
            Arc::new(arrow_array::StringArray::from_iter_values(
                ids.iter().map(|id| format!("name-{id}")),
            )),
        ];
        for (name, data_type) in extra {
            fields.push(Arc::new(Field::new(*name, data_type.clone(), true)));
            columns.push(match data_type {
                DataType::Int32 => Arc::new(arrow_array::Int32Array::from_iter_values(
                    ids.iter().map(|id| (*id % 7) as i32 + 100),
                )),
                _ => Arc::new(arrow_array::StringArray::from_iter_values(
                    ids.iter().map(|id| format!("t{id}")),
                )),
            });
        }
        let schema = Arc::new(Schema::new(fields));
        RecordBatch::try_new(schema.clone(), columns).map(|batch| (schema, batch))
    };
    // The columns before the change: the old rank and a tag.
    let old = [("rank", DataType::Int32), ("tag", DataType::Utf8)];
    let (old_schema, first) = append(0..ROWS, &old)?;
    client
        .append(DATABASE, TABLE, &old_schema, &[first])
        .await?;
    wait_until_tiered(&lake.node, ROWS as u64).await?;
    let field_id = |metadata: &Value, name: &str| -> anyhow::Result<Value> {
        let current = metadata["schemas"]
            .as_array()
            .context("schemas")?
            .iter()
            .find(|schema| schema["schema-id"] == metadata["current-schema-id"])
            .context("the current schema")?;
        Ok(current["fields"]
            .as_array()
            .context("fields")?
            .iter()
            .find(|field| field["name"] == name)
            .map(|field| field["id"].clone())
            .unwrap_or(Value::Null))
    };
    let before = load_table(&lake).await?;
    let (tag_id, old_rank_id) = (
        field_id(&before["metadata"], "tag")?,
        field_id(&before["metadata"], "rank")?,
    );
    ensure!(tag_id.is_i64() && old_rank_id.is_i64(), "{before}");

    let altered = client
        .raw()
        .alter_table(alter(pb::AlterTableRequest {
            drop_columns: vec!["rank".to_owned()],
            rename_columns: vec![pb::ColumnRename {
                from: "tag".to_owned(),
                to: "label".to_owned(),
            }],
            ..Default::default()
        }))
        .await?
        .into_inner()
        .table
        .context("the altered table")?;
    ensure!(altered.schema_id == 2, "{altered:?}");
    // A producer still on the old columns.
    let (_, stale) = append(ROWS..ROWS + 30, &old)?;
    client
        .append(DATABASE, TABLE, &old_schema, &[stale])
        .await?;
    client
        .raw()
        .alter_table(alter(pb::AlterTableRequest {
            add_columns_ipc: columns_ipc(vec![Field::new("rank", DataType::Int32, true)])?,
            ..Default::default()
        }))
        .await?;
    let new = [("label", DataType::Utf8), ("rank", DataType::Int32)];
    let (new_schema, fresh) = append(ROWS + 30..2 * ROWS, &new)?;
    client
        .append(DATABASE, TABLE, &new_schema, &[fresh])
        .await?;
    let total = 2 * ROWS;
    let expected: BTreeMap<i64, (Option<String>, Option<i32>)> = (0..total)
        .map(|id| {
            let rank = (id >= ROWS + 30).then_some((id % 7) as i32 + 100);
            (id, (Some(format!("t{id}")), rank))
        })
        .collect();
    ensure!(
        labels_and_ranks(&mut client).await? == expected,
        "labels and ranks from the WAL"
    );

    let (mut next, mut rows) = ([0; BUCKETS as usize], Vec::new());
    read_new_rows(&mut client, &mut next, &mut rows).await?;
    ensure!(rows.len() as i64 == total);
    let location = wait_until_tiered(&lake.node, total as u64).await?;
    let after = load_table(&lake).await?;
    let metadata = &after["metadata"];
    ensure!(
        field_id(metadata, "label")? == tag_id,
        "`label` keeps `tag`'s field id: {metadata}"
    );
    let new_rank_id = field_id(metadata, "rank")?;
    ensure!(
        new_rank_id.is_i64() && new_rank_id != old_rank_id,
        "the new `rank` is a new field: {metadata}"
    );
    ensure!(field_id(metadata, "tag")?.is_null(), "{metadata}");
    let with_columns: Vec<_> = rows
        .iter()
        .map(|(bucket, offset, id, name, timestamp)| {
            let (label, rank) = &expected[id];
            (
                *bucket,
                *offset,
                *id,
                name.clone(),
                *timestamp,
                label.clone(),
                *rank,
            )
        })
        .collect();
    read_with_engines_and(lake.catalog, &location, &["label", "rank"], &with_columns).await?;

    // Once the WAL is gone the same comes from the lake, from files written before the change
    // (with `tag` and the old `rank`) and after.
    wait_until_wal_is_gone(&lake).await?;
    ensure!(
        labels_and_ranks(&mut client).await? == expected,
        "labels and ranks from the lake"
    );
    lake.node.shutdown().await
}

/// A column widened from int32 to int64 by ALTER: rows written before read as int64 from the
/// WAL and, once tiered, from the lake; a producer that still sends int32 is widened; values
/// beyond int32 arrive. The lake table's field is promoted to long in place (its field id
/// kept, a new schema id), and DuckDB and pyiceberg read every value, old files included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widened_column_reads_as_its_new_type_from_the_wal_and_the_lake() -> anyhow::Result<()> {
    use arrow_schema::{DataType, Field, Schema};
    let lake = Lake::local(true).await?;
    let mut client = connect(&lake.node).await;
    create_table_with(
        &mut client,
        &[("lake.enabled", "true"), ("lake.freshness", "1s")],
    )
    .await?;
    let alter = |add: Option<&Schema>, widen: Option<&Schema>| -> anyhow::Result<_> {
        let ipc = |schema: Option<&Schema>| match schema {
            Some(schema) => inlet_core::ipc::schema_to_ipc(schema),
            None => Ok(Vec::new()),
        };
        Ok(pb::AlterTableRequest {
            path: Some(inlet::client::path(DATABASE, TABLE)),
            add_columns_ipc: ipc(add)?,
            widen_columns_ipc: ipc(widen)?,
            ..Default::default()
        })
    };
    let column = |data_type: DataType| Schema::new(vec![Field::new("rank", data_type, true)]);
    // What the rank of row `id` is: beyond int32 for the rows written after the widening.
    let rank = |id: i64| {
        if (ROWS..2 * ROWS).contains(&id) {
            id << 33
        } else {
            id % 7
        }
    };
    let append = |ids: std::ops::Range<i64>, data_type: DataType| {
        let ids: Vec<i64> = ids.collect();
        let ranks: arrow_array::ArrayRef = match data_type {
            DataType::Int32 => Arc::new(arrow_array::Int32Array::from_iter_values(
                ids.iter().map(|id| rank(*id) as i32),
            )),
            _ => Arc::new(arrow_array::Int64Array::from_iter_values(
                ids.iter().map(|id| rank(*id)),
            )),
        };
        let mut fields: Vec<arrow_schema::FieldRef> = schema().fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new("rank", data_type, true)));
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(arrow_array::Int64Array::from(ids.clone())),
                Arc::new(arrow_array::StringArray::from_iter_values(
                    ids.iter().map(|id| format!("name-{id}")),
                )),
                ranks,
            ],
        );
        (schema, batch)
    };

    client
        .raw()
        .alter_table(alter(Some(&column(DataType::Int32)), None)?)
        .await?;
    let (int32, first) = append(0..ROWS, DataType::Int32);
    client.append(DATABASE, TABLE, &int32, &[first?]).await?;
    let (mut next, mut rows) = ([0; BUCKETS as usize], Vec::new());
    read_new_rows(&mut client, &mut next, &mut rows).await?;
    wait_until_tiered(&lake.node, ROWS as u64).await?;
    let rank_field = |metadata: &Value, schema_id: &Value| -> anyhow::Result<Value> {
        let schema = metadata["schemas"]
            .as_array()
            .context("schemas")?
            .iter()
            .find(|schema| schema["schema-id"] == *schema_id)
            .context("the schema")?;
        schema["fields"]
            .as_array()
            .context("fields")?
            .iter()
            .find(|field| field["name"] == "rank")
            .cloned()
            .context("the rank field")
    };
    let before = load_table(&lake).await?;
    let int_field = rank_field(
        &before["metadata"],
        &before["metadata"]["current-schema-id"],
    )?;
    ensure!(int_field["type"] == "int", "{int_field}");

    let altered = client
        .raw()
        .alter_table(alter(None, Some(&column(DataType::Int64)))?)
        .await?
        .into_inner()
        .table
        .context("the altered table")?;
    ensure!(altered.schema_id == 2, "{altered:?}");
    // With no rows to tier, a round commits the evolved schema on its own (no snapshot), and
    // engines read the files written before under it.
    let deadline = tokio::time::Instant::now() + TIER_DEADLINE;
    let evolved = loop {
        let loaded = load_table(&lake).await?;
        let metadata = &loaded["metadata"];
        let field = rank_field(metadata, &metadata["current-schema-id"])?;
        if field["type"] == "long" {
            ensure!(total_records(metadata) == Some(ROWS as u64), "{metadata}");
            break loaded;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the lake schema did not evolve without new rows: {field}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let location = evolved["metadata-location"]
        .as_str()
        .context("metadata-location")?;
    // The rows as the engines must read them: each followed by its rank.
    let with_ranks = |rows: &[LakeRow]| -> Vec<_> {
        rows.iter()
            .map(|(bucket, offset, id, name, timestamp)| {
                (*bucket, *offset, *id, name.clone(), *timestamp, rank(*id))
            })
            .collect()
    };
    read_with_engines_and(lake.catalog, location, &["rank"], &with_ranks(&rows)).await?;

    let (int64, wide) = append(ROWS..2 * ROWS, DataType::Int64);
    client.append(DATABASE, TABLE, &int64, &[wide?]).await?;
    // A producer that still sends the type from before the widening.
    let (_, old) = append(2 * ROWS..2 * ROWS + 30, DataType::Int32);
    client.append(DATABASE, TABLE, &int32, &[old?]).await?;
    let total = 2 * ROWS + 30;
    let expected: BTreeMap<i64, Option<i64>> = (0..total).map(|id| (id, Some(rank(id)))).collect();
    let ranks = values_by_id::<arrow_array::types::Int64Type>;
    ensure!(
        ranks(&mut client, &["id", "rank"], "rank").await? == expected,
        "ranks from the WAL"
    );

    read_new_rows(&mut client, &mut next, &mut rows).await?;
    ensure!(rows.len() as i64 == total);
    let location = wait_until_tiered(&lake.node, total as u64).await?;
    let after = load_table(&lake).await?;
    let metadata = &after["metadata"];
    let long_field = rank_field(metadata, &metadata["current-schema-id"])?;
    ensure!(long_field["type"] == "long", "{long_field}");
    ensure!(
        long_field["id"] == int_field["id"],
        "{long_field} kept {int_field}'s id"
    );
    ensure!(
        metadata["current-schema-id"] != before["metadata"]["current-schema-id"],
        "{metadata}"
    );
    read_with_engines_and(lake.catalog, &location, &["rank"], &with_ranks(&rows)).await?;

    // Once the WAL is gone the ranks come from the lake, the int32 files' too.
    wait_until_wal_is_gone(&lake).await?;
    ensure!(
        ranks(&mut client, &["id", "rank"], "rank").await? == expected,
        "ranks from the lake"
    );
    lake.node.shutdown().await
}

/// The REST catalog of a node with TLS and authentication on (issue 14): DuckDB and pyiceberg
/// read the tiered table through it over https, trusting the test's CA and presenting a
/// bearer token as Iceberg REST clients do; without the token pyiceberg is refused, and the
/// load response carries neither the user's token nor the node's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_read_through_the_authenticated_catalog_over_tls() -> anyhow::Result<()> {
    use inlet_security::credential::Credential;
    use inlet_security::principal::Principal;
    use inlet_security::tls::{ClientTls, TlsSettings};
    use inlet_security::tokens::create;

    let pki = inlet_testkit::pki::TestPki::new();
    let cert = pki.issue("node");
    let user = create(
        &Principal::new("analyst").map_err(anyhow::Error::msg)?,
        None,
    )
    .map_err(anyhow::Error::msg)?;
    let node = create(&Principal::new("inlet").map_err(anyhow::Error::msg)?, None)
        .map_err(anyhow::Error::msg)?;
    let tokens = pki.file("tokens", &format!("{}\n{}\n", user.line, node.line));
    let node_token = pki.file("node.token", &node.token);
    let lake = Lake::local_with(true, |config| {
        config.tls = TlsSettings {
            cert: Some(cert.cert.clone()),
            key: Some(cert.key.clone()),
            client_ca: None,
            ca: Some(pki.ca().to_owned()),
        };
        config.auth = inlet::auth::AuthSettings {
            enabled: true,
            tokens_file: Some(tokens),
            token_file: Some(node_token),
            superusers: vec!["analyst".to_owned()],
            ..inlet::auth::AuthSettings::default()
        };
    })
    .await?;
    let tls = ClientTls::from_files(Some(pki.ca()), None, None)?;
    let mut client = Client::connect_with(
        &lake.node.endpoint(),
        &tls,
        Credential::bearer(&user.token).map_err(anyhow::Error::msg)?,
    )
    .await?;
    create_lake_table(&mut client).await?;
    let (mut next, mut expected) = ([0; BUCKETS as usize], Vec::new());
    produce(&mut client, 0..ROWS).await?;
    read_new_rows(&mut client, &mut next, &mut expected).await?;
    let metadata = wait_until_tiered(&lake.node, ROWS as u64).await?;
    let access = Access {
        ca: Some(pki.ca()),
        token: Some(&user.token),
        secrets: &[&user.token, &node.token],
    };
    read_with_engines_as(lake.catalog, &access, &metadata, &[], &expected).await?;
    lake.node.shutdown().await
}
