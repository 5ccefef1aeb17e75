//! What an operator sees: `/health` and `/metrics` over HTTP, and the status RPC behind
//! `inlet status`, with object-store calls counted by purpose, and expected answers (not
//! found, refused conditional writes) counted apart from errors.

mod common;

use common::backend::Backend;
use common::*;
use inlet_proto::v1 as pb;
use inlet_store::InstrumentedStore;
use slatedb::object_store::ObjectStoreExt;
use slatedb::object_store::path::Path;

/// The value of an unlabelled or exactly-labelled metric line.
fn metric(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series `{series}` in:\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_status_show_traffic_by_purpose() {
    traffic_by_purpose(Backend::memory()).await;
}

/// The local filesystem (the quickstart's store) has no object attributes: SlateDB's first
/// try of each conditional PUT is refused there, and that is no error either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_node_on_the_local_filesystem_counts_no_store_errors() {
    traffic_by_purpose(Backend::local()).await;
}

async fn traffic_by_purpose(backend: Backend) {
    let node = start(backend.store()).await;
    let http = node.http_addr().expect("http enabled");
    let mut client = connect(&node).await;

    let (status, body) = http_get(http, "/health").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(body.trim(), "ok");

    create_table(&mut client, "db", "t", 2, &["id"]).await;
    for round in 0..3 {
        client
            .append(
                "db",
                "t",
                &schema(),
                &[batch(round * 100..round * 100 + 100)],
            )
            .await
            .expect("append");
    }
    assert_eq!(read_all(&mut client, "db", "t").await.len(), 300);

    let (status, body) = http_get(http, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(metric(&body, "inlet_appended_rows_total"), 300.0);
    assert_eq!(metric(&body, "inlet_fetched_rows_total"), 300.0);
    assert_eq!(metric(&body, "inlet_append_latency_seconds_count"), 3.0);
    assert_eq!(metric(&body, "inlet_index_owner_up"), 1.0);
    let wal_puts = metric(
        &body,
        "inlet_object_store_requests_total{purpose=\"wal_put\",op=\"put\"}",
    );
    assert!(
        (1.0..=3.0).contains(&wal_puts),
        "one WAL object per flush: {wal_puts}"
    );
    assert!(
        body.contains("purpose=\"index\""),
        "SlateDB traffic is counted as index"
    );

    let status = client
        .raw()
        .get_status(pb::GetStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert!(status.index_owner);
    assert_eq!(status.appended_rows, 300);
    let wal = status
        .store
        .iter()
        .find(|u| u.purpose == "wal_put" && u.op == "put")
        .expect("wal puts counted");
    assert_eq!(wal.requests as f64, wal_puts);
    assert!(wal.bytes_out > 0);

    // A healthy node on a healthy store has no errors. SlateDB's own protocol (probing for
    // objects, fencing with conditional PUTs) gets "no" answers: counted, but as misses.
    let errors: Vec<_> = status.store.iter().filter(|u| u.errors > 0).collect();
    assert!(errors.is_empty(), "no store errors: {errors:?}");
    let index_misses: u64 = status
        .store
        .iter()
        .filter(|u| u.purpose == "index")
        .map(|u| u.expected_misses)
        .sum();
    assert!(index_misses > 0, "SlateDB's misses: {:?}", status.store);

    // A GET of a missing object, counted into the node's counters, is a miss, not an error.
    let counted = InstrumentedStore::with_metrics(backend.store(), node.metrics().store.clone());
    let missing = counted
        .get(&Path::from("wal/00000000000000000000000000000bad.wal"))
        .await;
    assert!(
        matches!(missing, Err(slatedb::object_store::Error::NotFound { .. })),
        "{missing:?}"
    );
    let status = client
        .raw()
        .get_status(pb::GetStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    let chunk_gets = status
        .store
        .iter()
        .find(|u| u.purpose == "chunk_get" && u.op == "get")
        .expect("the missing GET is counted");
    assert!(chunk_gets.requests >= 1, "{chunk_gets:?}");
    assert_eq!(chunk_gets.errors, 0, "{chunk_gets:?}");
    assert!(chunk_gets.expected_misses >= 1, "{chunk_gets:?}");
    let (_, body) = http_get(http, "/metrics").await;
    let series = |name: &str| {
        metric(
            &body,
            &format!("inlet_object_store_{name}_total{{purpose=\"chunk_get\",op=\"get\"}}"),
        )
    };
    assert_eq!(series("errors"), 0.0);
    assert_eq!(series("expected_misses"), chunk_gets.expected_misses as f64);
    node.shutdown().await.expect("clean shutdown");
}
