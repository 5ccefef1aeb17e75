//! A cluster of separate `inlet serve` processes on one store, on the local filesystem and on
//! S3 (moto): one index owner, two writers, two readers, one compactor. They find each other
//! through the store alone. Shown here:
//! - producers on both writers and consumers on both readers: every acked row is read back
//!   exactly once, in offset order per bucket, from both readers;
//! - a follower on one reader sees rows appended through the other writer;
//! - a standby index process waits while the owner lives; at kill -9 of the owner it takes
//!   over: appends in flight fail with an unavailable (outcome unknown) error, their
//!   idempotent resends land exactly once, readers keep serving the history during the gap,
//!   and every node finds the new owner (on a new address) by itself.
//!
//! And WAL retention with the compactor in its own process: a table that keeps 1 MiB of WAL
//! per bucket has its oldest chunks expired by the owner at the compactor's request, its
//! earliest offset moves, the WAL objects in the store shrink to about what it keeps, and a
//! consumer behind it gets "out of range" naming the readable offsets, or, asking to reset,
//! reads every row from the earliest offset on. Dropped with `--purge`, the table's WAL
//! objects all go.

// This test drives real processes, so it waits in real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::backend::{Backend, S3_ENDPOINT_VAR};
use common::process::{INLET, ServerProcess, free_port};
use common::*;
use inlet::client::{Client, decode_fetched};
use inlet_proto::v1 as pb;

const DEADLINE: Duration = Duration::from_secs(60);
const BUCKETS: u32 = 3;
/// Appends per producer before the owner is killed, and rows per append.
const APPENDS: i64 = 20;
/// Appends per producer across the kill: enough to still be appending when it happens.
const ACROSS: i64 = 200;
/// Appends sent to a reader node, which forwards them to a writer.
const FORWARDED: i64 = 3;
const ROWS: i64 = 5;

/// Where the cluster's processes keep everything, and how they reach it.
struct Store {
    url: String,
    env: Vec<(String, String)>,
    logs: tempfile::TempDir,
    _backend: Backend,
}

impl Store {
    fn local() -> Self {
        let backend = Backend::local();
        let Backend::Local(dir) = &backend else {
            unreachable!("local backend")
        };
        Self {
            url: dir.path().to_str().expect("utf-8 path").to_owned(),
            env: Vec::new(),
            logs: tempfile::tempdir().expect("temp dir"),
            _backend: backend,
        }
    }

    async fn s3() -> Self {
        let backend = Backend::s3("cluster").await;
        let Backend::S3 { endpoint, bucket } = &backend else {
            unreachable!("s3 backend")
        };
        let env = [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        Self {
            url: format!("s3://{bucket}/inlet"),
            env,
            logs: tempfile::tempdir().expect("temp dir"),
            _backend: backend,
        }
    }

    /// Starts `inlet serve --roles <roles>` on a free port; returns the process and its
    /// endpoint. Its log goes to `<logs>/<name>.log`.
    fn serve(&self, name: &str, roles: &str) -> (ServerProcess, String) {
        self.serve_with(name, roles, &[])
    }

    fn serve_with(&self, name: &str, roles: &str, extra: &[&str]) -> (ServerProcess, String) {
        let listen = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(self.log(name)).expect("log file");
        let process = Command::new(INLET)
            .args(["serve", "--roles", roles, "--listen", &listen])
            .args(extra)
            .args([
                "--http-listen",
                "off",
                "--linger",
                "2ms",
                "--store",
                &self.url,
            ])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .current_dir(self.logs.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("inlet serve starts");
        (ServerProcess(process), format!("http://{listen}"))
    }

    fn log(&self, name: &str) -> PathBuf {
        self.logs.path().join(format!("{name}.log"))
    }

    /// The end of every process's log, for a failure message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.logs.path())
            .expect("logs dir")
            .flatten()
        {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- {}\n", entry.path().display()));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Connects once the node answers.
async fn connect_when_up(endpoint: &str) -> anyhow::Result<Client> {
    let started = Instant::now();
    loop {
        if let Ok(mut client) = Client::connect(endpoint).await
            && client
                .raw()
                .get_status(pb::GetStatusRequest {})
                .await
                .is_ok()
        {
            return Ok(client);
        }
        ensure!(started.elapsed() < DEADLINE, "{endpoint} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the node at `endpoint` reports `members` members and knows the owner.
async fn wait_members(
    client: &mut Client,
    members: usize,
) -> anyhow::Result<pb::GetStatusResponse> {
    let started = Instant::now();
    loop {
        let status = client
            .raw()
            .get_status(pb::GetStatusRequest {})
            .await?
            .into_inner();
        if status.members.len() == members && !status.owner_endpoint.is_empty() {
            return Ok(status);
        }
        ensure!(
            started.elapsed() < DEADLINE,
            "the cluster did not reach {members} members: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn append_request(ids: std::ops::Range<i64>, producer: u64, sequence: u64) -> pb::AppendRequest {
    pb::AppendRequest {
        path: Some(inlet::client::path("db", "t")),
        batches_ipc: inlet_core::ipc::batches_to_ipc(&schema(), &[batch(ids)]).expect("ipc"),
        producer_id: producer,
        sequence,
        ..Default::default()
    }
}

/// What one producer saw.
#[derive(Debug, Default)]
struct Produced {
    /// Acked appends: (first id, ranges).
    acked: Vec<(i64, Vec<pb::BucketAppendResult>)>,
    /// Errors of attempts whose outcome was unknown (they were resent).
    unknown: Vec<String>,
}

/// Sends appends `first..first + count` (ROWS rows each) through `writer` as producer `id`,
/// resending an append whose outcome is unknown with the same sequence number until it is
/// acked or the deadline passes.
async fn produce(
    writer: String,
    id: u64,
    first: i64,
    count: i64,
    sequence: u64,
) -> anyhow::Result<Produced> {
    let mut client = Client::connect(&writer).await?;
    let mut produced = Produced::default();
    for n in 0..count {
        let start = (first + n) * ROWS;
        let request = append_request(start..start + ROWS, id, sequence + n as u64);
        let started = Instant::now();
        loop {
            match client.raw().append(request.clone()).await {
                Ok(response) => {
                    produced.acked.push((start, response.into_inner().buckets));
                    break;
                }
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
                    ) =>
                {
                    produced
                        .unknown
                        .push(format!("{:?}: {}", status.code(), status.message()));
                    ensure!(
                        started.elapsed() < DEADLINE,
                        "append {start} never landed: {}",
                        status.message()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => bail!("append {start} refused: {status}"),
            }
        }
    }
    Ok(produced)
}

/// Every row of the table through `reader`: id → (bucket, offset), checking each bucket's
/// offsets are dense from 0 and no id appears twice.
async fn read_table(reader: &str) -> anyhow::Result<BTreeMap<i64, (u32, u64)>> {
    let mut client = Client::connect(reader).await?;
    let mut stream = client.fetch(fetch_request("db", "t")).await?;
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    let mut rows = BTreeMap::new();
    while let Some(response) = stream.message().await? {
        for batch in decode_fetched(&response)? {
            for (bucket, offset, id, _) in rows_of(&[batch]) {
                let expected = next.entry(bucket).or_insert(0);
                ensure!(
                    offset == *expected,
                    "bucket {bucket} jumps from {expected} to {offset}"
                );
                *expected += 1;
                ensure!(
                    rows.insert(id, (bucket, offset)).is_none(),
                    "row {id} read twice"
                );
            }
        }
    }
    Ok(rows)
}

/// Checks that every acked row is in `rows` at the offsets its ack named.
fn check_acked(rows: &BTreeMap<i64, (u32, u64)>, produced: &[&Produced]) -> anyhow::Result<usize> {
    let mut acked_rows = 0;
    for produced in produced {
        for (start, ranges) in &produced.acked {
            let ids: Vec<i64> = (*start..start + ROWS).collect();
            let mut positions: Vec<(u32, u64)> = ids
                .iter()
                .map(|id| {
                    rows.get(id)
                        .copied()
                        .with_context(|| format!("acked row {id} is missing"))
                })
                .collect::<anyhow::Result<_>>()?;
            positions.sort_unstable();
            let mut expected: Vec<(u32, u64)> = ranges
                .iter()
                .flat_map(|r| (r.base_offset..r.base_offset + r.row_count).map(|o| (r.bucket, o)))
                .collect();
            expected.sort_unstable();
            ensure!(
                positions == expected,
                "rows {ids:?} are not where their ack said"
            );
            acked_rows += ids.len();
        }
    }
    Ok(acked_rows)
}

/// A follower from the earliest offset on `reader`: collects ids until it has `want`.
async fn follow_until(reader: String, want: std::collections::BTreeSet<i64>) -> anyhow::Result<()> {
    let mut client = Client::connect(&reader).await?;
    let mut request = fetch_request("db", "t");
    request.follow = true;
    let mut stream = client.fetch(request).await?;
    let mut seen = std::collections::BTreeSet::new();
    while !want.is_subset(&seen) {
        let response = tokio::time::timeout(DEADLINE, stream.message())
            .await
            .context("the follower saw nothing new for a minute")??
            .context("the follow stream ended")?;
        for batch in decode_fetched(&response)? {
            for (_, _, id, _) in rows_of(&[batch]) {
                ensure!(seen.insert(id), "the follower saw row {id} twice");
            }
        }
    }
    Ok(())
}

async fn run_cluster(store: &Store) -> anyhow::Result<()> {
    let (mut owner, owner_endpoint) = store.serve("owner", "index");
    let mut admin = connect_when_up(&owner_endpoint).await?;
    let (_writer_a, writer_a) = store.serve("writer-a", "writer");
    let (_writer_b, writer_b) = store.serve("writer-b", "writer");
    let (_reader_a, reader_a) = store.serve("reader-a", "reader");
    let (_reader_b, reader_b) = store.serve("reader-b", "reader");
    let (_compactor, compactor) = store.serve("compactor", "compactor");
    for endpoint in [&writer_a, &writer_b, &reader_a, &reader_b, &compactor] {
        connect_when_up(endpoint).await?;
    }
    let status = wait_members(&mut admin, 6).await?;
    let roles: Vec<String> = status.members.iter().map(|m| m.roles.join(",")).collect();
    ensure!(
        roles.iter().filter(|r| *r == "writer").count() == 2,
        "{roles:?}"
    );
    // A standby index process: it waits while the owner answers, and takes over when it dies.
    let (_standby, standby) = store.serve_with("standby", "index", &["--standby"]);

    // Catalog requests to a writer are forwarded to the owner.
    let mut through_writer = Client::connect(&writer_a).await?;
    through_writer.create_database("db", false).await?;
    through_writer
        .create_table("db", "t", &schema(), BUCKETS, vec!["id".to_owned()], false)
        .await?;
    let mut on_reader = Client::connect(&reader_a).await?;
    wait_members(&mut on_reader, 6).await?;
    // So is an ALTER sent to a reader; the owner and every node see the new comment.
    on_reader
        .raw()
        .alter_table(pb::AlterTableRequest {
            path: Some(inlet::client::path("db", "t")),
            comment: Some("altered through a reader".to_owned()),
            ..Default::default()
        })
        .await?;
    for endpoint in [&owner_endpoint, &writer_b] {
        let table = Client::connect(endpoint).await?.table("db", "t").await?;
        let comment = table.info.descriptor.map(|d| d.comment).unwrap_or_default();
        ensure!(
            comment == "altered through a reader",
            "{endpoint}: {comment:?}"
        );
    }

    // Columns added on the owner are usable at once on other nodes, before (or whatever the
    // timing of) the catalog push: an append naming a new column on writer B and a fetch
    // projecting it on reader B ask the owner for the table instead of refusing the column.
    admin
        .create_table("db", "evolving", &schema(), 1, vec!["id".to_owned()], false)
        .await?;
    let mut on_writer = Client::connect(&writer_b).await?;
    let mut on_reader_b = Client::connect(&reader_b).await?;
    for round in 0..5i64 {
        let column = format!("c{round}");
        let added = arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            &column,
            arrow_schema::DataType::Int64,
            true,
        )]);
        admin
            .raw()
            .alter_table(pb::AlterTableRequest {
                path: Some(inlet::client::path("db", "evolving")),
                add_columns_ipc: inlet_core::ipc::schema_to_ipc(&added)?,
                ..Default::default()
            })
            .await?;
        let with_column = std::sync::Arc::new(arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("id", arrow_schema::DataType::Int64, false),
            arrow_schema::Field::new(&column, arrow_schema::DataType::Int64, true),
        ]));
        let rows = arrow_array::RecordBatch::try_new(
            with_column.clone(),
            vec![
                std::sync::Arc::new(arrow_array::Int64Array::from(vec![round])),
                std::sync::Arc::new(arrow_array::Int64Array::from(vec![round * 10])),
            ],
        )?;
        on_writer
            .append("db", "evolving", &with_column, &[rows])
            .await
            .with_context(|| format!("an append naming `{column}` on writer B"))?;
        let mut request = fetch_request("db", "evolving");
        request.columns = vec!["id".to_owned(), column.clone()];
        let fetched = on_reader_b
            .fetch_all(request)
            .await
            .with_context(|| format!("a fetch of `{column}` on reader B"))?;
        let values: i64 = fetched.iter().map(|batch| batch.num_rows() as i64).sum();
        ensure!(values == round + 1, "{values} rows after round {round}");
    }

    // A follower on reader B, started before anything is appended; producers on both writers.
    let all_ids = |count: i64| (0..count * ROWS).collect::<std::collections::BTreeSet<i64>>();
    let follower = tokio::spawn(follow_until(reader_b.clone(), all_ids(2 * APPENDS)));
    let a = tokio::spawn(produce(writer_a.clone(), 1, 0, APPENDS, 1));
    let b = tokio::spawn(produce(writer_b.clone(), 2, APPENDS, APPENDS, 1));
    let (a, b) = (a.await??, b.await??);
    follower.await?.context("a follower on reader B")?;
    // Any node takes any request: an append sent to a reader is forwarded to a writer, a
    // fetch sent to a writer to a reader.
    let e = produce(reader_a.clone(), 5, 2 * APPENDS + 2 * ACROSS, FORWARDED, 1)
        .await
        .context("appends through a reader node")?;
    let rows = read_table(&writer_b)
        .await
        .context("a fetch through a writer node")?;
    ensure!(check_acked(&rows, &[&a, &b, &e])? == rows.len());
    for reader in [&reader_a, &reader_b] {
        let rows = read_table(reader).await?;
        let acked = check_acked(&rows, &[&a, &b, &e])?;
        ensure!(
            acked == rows.len(),
            "{reader} holds {} rows, {acked} were acked",
            rows.len()
        );
    }
    let status = admin
        .raw()
        .get_status(pb::GetStatusRequest {})
        .await?
        .into_inner();
    ensure!(
        status.index_owner,
        "the standby took over a live owner: {status:?}"
    );

    // kill -9 the owner while producers keep appending.
    let c = tokio::spawn(produce(writer_a.clone(), 3, 2 * APPENDS, ACROSS, 1));
    let d = tokio::spawn(produce(
        writer_b.clone(),
        4,
        2 * APPENDS + ACROSS,
        ACROSS,
        1,
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    owner.0.kill().context("kill -9 the owner")?;
    owner.0.wait()?;
    // The history stays readable on both readers while no owner runs.
    for reader in [&reader_a, &reader_b] {
        let rows = read_table(reader)
            .await
            .with_context(|| format!("{reader} during the gap"))?;
        check_acked(&rows, &[&a, &b, &e])?;
    }
    let new_owner = standby;
    let mut admin = connect_when_up(&new_owner).await?;
    let (c, d) = (c.await??, d.await??);
    ensure!(
        !(c.unknown.is_empty() && d.unknown.is_empty()),
        "no append was in flight at the kill; the test did not test a takeover"
    );
    for error in c.unknown.iter().chain(&d.unknown) {
        ensure!(
            error.starts_with("Unavailable") || error.contains("outcome"),
            "an append in flight at the kill failed unclearly: {error}"
        );
    }
    // Every node found the new owner by itself.
    let status = wait_members(&mut admin, 6).await?;
    ensure!(status.index_owner, "{status:?}");
    for endpoint in [&writer_a, &reader_b] {
        let mut client = Client::connect(endpoint).await?;
        let status = wait_members(&mut client, 6).await?;
        ensure!(
            status.owner_endpoint == new_owner,
            "{endpoint} follows {status:?}"
        );
    }
    for reader in [&reader_a, &reader_b] {
        let rows = read_table(reader).await?;
        let acked = check_acked(&rows, &[&a, &b, &c, &d, &e])?;
        ensure!(
            acked == rows.len(),
            "{reader} holds {} rows, {acked} were acked",
            rows.len()
        );
        ensure!(
            acked as i64 == (2 * APPENDS + 2 * ACROSS + FORWARDED) * ROWS,
            "{acked} rows acked"
        );
    }
    Ok(())
}

/// Bytes of every WAL object under the local store `dir`.
fn wal_bytes_in(dir: &str) -> u64 {
    std::fs::read_dir(std::path::Path::new(dir).join("wal"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.metadata().ok())
                .map(|metadata| metadata.len())
                .sum()
        })
        .unwrap_or(0)
}

async fn run_wal_retention(store: &mut Store) -> anyhow::Result<()> {
    // Collect WAL garbage every 200 ms and at once; safe because every writer gives up an
    // upload and commit after 2 s, under the 3 s upload grace.
    store.env.extend(
        [
            ("INLET_WRITER_UPLOAD_TIMEOUT", "1s"),
            ("INLET_WRITER_COMMIT_TIMEOUT", "1s"),
            ("INLET_LAKE_WAL_GC_INTERVAL", "200ms"),
            ("INLET_LAKE_WAL_UPLOAD_GRACE", "3s"),
            ("INLET_LAKE_WAL_READ_GRACE", "0s"),
            ("INLET_LAKE_DROP_GRACE", "0s"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let (_owner, owner) = store.serve("owner", "index,writer,reader");
    let mut client = connect_when_up(&owner).await?;
    let (_compactor, compactor) = store.serve("compactor", "compactor");
    connect_when_up(&compactor).await?;
    wait_members(&mut client, 2).await?;
    client.create_database("db", false).await?;
    let limit: u64 = 1 << 20;
    client
        .create_table_with_options(
            "db",
            "t",
            &schema(),
            1,
            vec![],
            BTreeMap::from([("retention.bytes".to_owned(), "1MiB".to_owned())]),
            false,
        )
        .await?;
    // 40 appends of 5,000 rows (about 100 KiB of WAL each): 4 MiB in all.
    const APPEND_ROWS: i64 = 5_000;
    for n in 0..40 {
        let ids = n * APPEND_ROWS..(n + 1) * APPEND_ROWS;
        client.append("db", "t", &schema(), &[batch(ids)]).await?;
    }
    let total = (40 * APPEND_ROWS) as u64;
    let started = Instant::now();
    let bucket = loop {
        let bucket = client.table("db", "t").await?.buckets.remove(0);
        let stored = wal_bytes_in(&store.url);
        // At least the bound stays, and at most an append's chunk (~100 KiB) more.
        let near = limit + limit / 4;
        if bucket.earliest_offset > 0 && bucket.wal_bytes <= near && stored <= near {
            break bucket;
        }
        ensure!(
            started.elapsed() < DEADLINE,
            "retention did not bring the WAL near 1 MiB: {bucket:?}, {stored} bytes in the store"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(
        bucket.latest_offset == total && bucket.wal_bytes >= limit,
        "the newest chunks are kept, at least the bound of them: {bucket:?}"
    );

    // Behind retention: out of range, naming what is readable...
    let mut request = fetch_request("db", "t");
    request.start = Some(pb::StartPosition {
        position: Some(pb::start_position::Position::Offset(0)),
    });
    let status = match client.raw().fetch(request.clone()).await {
        Err(status) => status,
        Ok(response) => {
            let mut stream = response.into_inner();
            match stream.message().await {
                Err(status) => status,
                Ok(message) => bail!("a fetch from an expired offset returned {message:?}"),
            }
        }
    };
    let readable = format!("{}..={}", bucket.earliest_offset, total);
    ensure!(
        status.code() == tonic::Code::OutOfRange && status.message().contains(&readable),
        "{status:?} should name {readable}"
    );
    // ...or from the earliest offset on, every row once, when asked to reset.
    request.reset_to_earliest = true;
    let mut stream = client.fetch(request).await?;
    let mut next = bucket.earliest_offset;
    while let Some(response) = stream.message().await? {
        for (_, offset, id, _) in rows_of(&decode_fetched(&response)?) {
            ensure!(
                offset == next && id == offset as i64,
                "row {id} at offset {offset}, expected {next}"
            );
            next += 1;
        }
    }
    ensure!(next == total, "the reset read ended at {next}");

    // Dropped with purge, the table leaves nothing in the WAL: storage returns to what the
    // live tables (none) use.
    client
        .raw()
        .drop_table(pb::DropTableRequest {
            path: Some(inlet::client::path("db", "t")),
            if_exists: false,
            purge: true,
        })
        .await?;
    let started = Instant::now();
    while wal_bytes_in(&store.url) > 0 {
        ensure!(
            started.elapsed() < DEADLINE,
            "the dropped table's WAL is still in the store: {} bytes",
            wal_bytes_in(&store.url)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_retention_with_a_compactor_process() {
    let mut store = Store::local();
    if let Err(error) = run_wal_retention(&mut store).await {
        panic!("{error:#}\n{}", store.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_processes_on_a_local_directory() {
    let store = Store::local();
    if let Err(error) = run_cluster(&store).await {
        panic!("{error:#}\n{}", store.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_processes_on_s3() {
    assert!(
        std::env::var(S3_ENDPOINT_VAR).is_ok(),
        "{S3_ENDPOINT_VAR} is not set: run the tests with `bash .ci/run`"
    );
    let store = Store::s3().await;
    if let Err(error) = run_cluster(&store).await {
        panic!("{error:#}\n{}", store.logs());
    }
}
