//! What an operator sees: `/health` and `/metrics` over HTTP, and the status RPC behind
//! `inlet status`, with object-store calls counted by purpose.

mod common;

use common::backend::Backend;
use common::*;
use inlet_proto::v1 as pb;

/// The value of an unlabelled or exactly-labelled metric line.
fn metric(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series `{series}` in:\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_status_show_traffic_by_purpose() {
    let node = start(Backend::memory().store()).await;
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
    node.shutdown().await.expect("clean shutdown");
}
