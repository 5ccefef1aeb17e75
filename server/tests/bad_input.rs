//! Each kind of bad input gets a clear error and leaves the table exactly as it was.

mod common;

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use common::*;
use inlet_core::ipc::schema_to_ipc;
use inlet_proto::v1 as pb;
use slatedb::object_store::memory::InMemory;
use tonic::Code;

/// Appends raw IPC bytes and returns the status.
async fn append_raw(
    client: &mut inlet::client::Client,
    table: &str,
    ipc: Vec<u8>,
) -> tonic::Status {
    client
        .raw()
        .append(pb::AppendRequest {
            path: Some(inlet::client::path("db", table)),
            batches_ipc: ipc,
            ..Default::default()
        })
        .await
        .expect_err("append must fail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_appends_are_rejected_and_change_nothing() {
    let node = start(Arc::new(InMemory::new())).await;
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "t", 2, &["id"]).await;
    client
        .append("db", "t", &schema(), &[batch(0..20)])
        .await
        .expect("good append");
    let rows_before = read_all(&mut client, "db", "t").await;
    let offsets_before = latest_offsets(&mut client, "db", "t").await;

    // Unknown table.
    let error = client
        .append("db", "nope", &schema(), &[batch(0..1)])
        .await
        .expect_err("unknown table");
    assert!(
        error.to_string().contains("table `db.nope` not found"),
        "{error}"
    );

    // Schema mismatch: names the column and both types. (A narrower integer would be
    // widened, as a producer's from before an ALTER widened the column.)
    let wrong = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let wrong_batch = RecordBatch::try_new(
        wrong.clone(),
        vec![
            Arc::new(StringArray::from(vec!["1"])),
            Arc::new(StringArray::from(vec!["x"])),
        ],
    )
    .expect("batch");
    let ipc = inlet_core::ipc::batches_to_ipc(&wrong, &[wrong_batch]).expect("ipc");
    let status = append_raw(&mut client, "t", ipc).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "schema mismatch for table `db.t`: column `id` is Utf8, expected Int64"
    );

    // A batch where only some rows are bad: nothing of it lands.
    let nullable = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    let with_null = RecordBatch::try_new(
        nullable.clone(),
        vec![Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]))],
    )
    .expect("batch");
    let ipc = inlet_core::ipc::batches_to_ipc(&nullable, &[with_null]).expect("ipc");
    let status = append_raw(&mut client, "t", ipc).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("not nullable"),
        "{}",
        status.message()
    );

    // Malformed IPC.
    let status = append_raw(&mut client, "t", b"definitely not arrow".to_vec()).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("malformed arrow ipc"),
        "{}",
        status.message()
    );

    // A batch over the size limit.
    let mut huge = inlet_core::ipc::batches_to_ipc(&schema(), &[batch(0..1)]).expect("ipc");
    huge.resize(inlet_core::limits::MAX_APPEND_BYTES + 1, 0);
    let status = append_raw(&mut client, "t", huge).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("exceeds the limit"),
        "{}",
        status.message()
    );

    assert_eq!(read_all(&mut client, "db", "t").await, rows_before);
    assert_eq!(latest_offsets(&mut client, "db", "t").await, offsets_before);
    node.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_table_definitions_are_rejected_and_create_nothing() {
    let node = start(Arc::new(InMemory::new())).await;
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "t", 2, &["id"]).await;
    client
        .append("db", "t", &schema(), &[batch(0..5)])
        .await
        .expect("good append");

    let create =
        |table: &str, schema_ipc: Vec<u8>, buckets: u32, key: Vec<String>| pb::CreateTableRequest {
            path: Some(inlet::client::path("db", table)),
            descriptor: Some(pb::TableDescriptor {
                schema_ipc,
                bucket_count: buckets,
                bucket_key: key,
                ..Default::default()
            }),
            if_not_exists: false,
        };
    let good_schema = schema_to_ipc(&schema()).expect("ipc");
    let cases = vec![
        (
            create("zero", good_schema.clone(), 0, vec![]),
            "bucket count 0 is out of range",
        ),
        (
            create("key", good_schema.clone(), 2, vec!["missing".into()]),
            "bucket key column `missing` is not a column",
        ),
        (
            create(
                "reserved",
                schema_to_ipc(&Schema::new(vec![Field::new(
                    "_offset",
                    DataType::Int64,
                    false,
                )]))
                .expect("ipc"),
                1,
                vec![],
            ),
            "reserved",
        ),
        (
            create("bad name!", good_schema.clone(), 1, vec![]),
            "invalid table name",
        ),
        (
            create("garbage", b"nope".to_vec(), 1, vec![]),
            "not a valid arrow ipc schema",
        ),
    ];
    for (request, expected) in cases {
        let status = client
            .raw()
            .create_table(request)
            .await
            .expect_err("invalid definition");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(status.message().contains(expected), "{}", status.message());
    }

    // Duplicate table: AlreadyExists, and the existing table is untouched.
    let status = client
        .raw()
        .create_table(create("t", good_schema.clone(), 7, vec![]))
        .await
        .expect_err("duplicate");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(status.message(), "table `db.t` already exists");
    let table = client.table("db", "t").await.expect("still there");
    assert_eq!(table.buckets.len(), 2);
    assert_eq!(read_all(&mut client, "db", "t").await.len(), 5);

    // Only the one good table exists.
    let tables = client
        .raw()
        .list_tables(pb::ListTablesRequest {
            database: "db".into(),
        })
        .await
        .expect("list")
        .into_inner()
        .tables;
    let names: Vec<String> = tables
        .into_iter()
        .map(|t| t.path.unwrap_or_default().table)
        .collect();
    assert_eq!(names, ["t"]);

    // Drop, then the name is free and the old rows are gone from view.
    client
        .raw()
        .drop_table(pb::DropTableRequest {
            path: Some(inlet::client::path("db", "t")),
            if_exists: false,
            purge: false,
        })
        .await
        .expect("drop");
    let error = client.table("db", "t").await.expect_err("dropped");
    assert!(error.to_string().contains("not found"), "{error}");
    create_table(&mut client, "db", "t", 1, &[]).await;
    assert!(read_all(&mut client, "db", "t").await.is_empty());
    node.shutdown().await.expect("clean shutdown");
}

/// A fetch names each bucket at most once and only buckets the table has: a repeated bucket
/// would make one small request start a full read per repetition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_of_repeated_or_missing_buckets_are_refused() {
    let node = start(Arc::new(InMemory::new())).await;
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "t", 2, &["id"]).await;
    let fetch = |buckets: Vec<u32>| pb::FetchRequest {
        partitions: Vec::new(),
        buckets,
        ..fetch_request("db", "t")
    };

    let error = client
        .fetch_all(fetch(vec![0; 100_000]))
        .await
        .expect_err("bucket 0 a hundred thousand times");
    assert!(
        error
            .to_string()
            .contains("bucket 0 of table `db.t` is asked for twice"),
        "{error}"
    );
    let error = client
        .fetch_all(fetch(vec![1, 7]))
        .await
        .expect_err("no bucket 7");
    assert!(
        error
            .to_string()
            .contains("table `db.t` has no bucket 7: it has 2 buckets"),
        "{error}"
    );
    assert!(client.fetch_all(fetch(vec![1, 0])).await.is_ok());
}

/// The Iceberg REST catalog's paths and query strings come from anyone who reaches the HTTP
/// port: malformed percent-encoding, invalid UTF-8, control characters, multi-level and huge
/// namespaces get a 4xx answer, never a 5xx or a dropped connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_rest_catalog_paths_get_client_errors() {
    let node = start(Arc::new(InMemory::new())).await;
    let http = node.http_addr().expect("http enabled");
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "t", 1, &[]).await;
    let long = "n".repeat(64 * 1024);
    let paths = [
        "/iceberg/v1/namespaces/%FF%FE".to_owned(),
        "/iceberg/v1/namespaces/%".to_owned(),
        "/iceberg/v1/namespaces/%zz/tables".to_owned(),
        "/iceberg/v1/namespaces/db%1Fmore/tables/t".to_owned(),
        "/iceberg/v1/namespaces/db/tables/%00".to_owned(),
        "/iceberg/v1/namespaces/db/tables/..%2F..%2Findex".to_owned(),
        "/iceberg/v1/namespaces?parent=%FF".to_owned(),
        "/iceberg/v1/namespaces?parent=db%1Fx&parent=y".to_owned(),
        format!("/iceberg/v1/namespaces/{long}/tables"),
        "/iceberg/v1/namespaces/db/tables/t/../../../..".to_owned(),
        "/iceberg/v1/nope".to_owned(),
    ];
    for path in &paths {
        let (status, _) = http_get(http, path).await;
        let code: u16 = status
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status for `{path:.80}`: {status}"));
        assert!((400..500).contains(&code), "`{path:.80}` got {status}");
    }
    // And the catalog still answers.
    let (status, body) = http_get(http, "/iceberg/v1/namespaces").await;
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("[\"db\"]"), "{body}");
}
