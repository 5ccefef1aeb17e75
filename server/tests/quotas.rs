//! Limits that protect the service from one client (issue 14, item 5), on a real node: a
//! principal past its produce or fetch byte rate is throttled (its calls wait, and all
//! succeed), and one connection may hold only so many fetch streams open: the next is
//! RESOURCE_EXHAUSTED naming the limit, another connection is not affected, and a closed
//! stream frees its slot.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use inlet::node::Node;
use inlet::quota::QuotaSettings;
use inlet_core::clock::Env;
use slatedb::object_store::memory::InMemory;
use tonic::Code;

#[tokio::test]
async fn a_principal_past_its_byte_rates_is_throttled_not_failed() {
    let mut config = test_config();
    config.quotas = QuotaSettings {
        produce_bytes_per_second: Some(200_000),
        fetch_bytes_per_second: Some(200_000),
        ..QuotaSettings::default()
    };
    let node = Node::start_with_store(&config, Arc::new(InMemory::new()), Env::system())
        .await
        .expect("node starts");
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "events", 2, &["id"]).await;
    let requests = &node.metrics().requests;
    // Four appends of about 100 kB: two seconds' worth at 200 kB/s, so the later ones wait.
    for round in 0..4 {
        let ids = round * 5_000..(round + 1) * 5_000;
        client
            .append("db", "events", &schema(), &[batch(ids)])
            .await
            .expect("a throttled append still succeeds");
    }
    let produce = requests.produce_throttled_micros.load(Ordering::Relaxed);
    assert!(produce > 0, "no append waited");
    assert_eq!(
        requests.fetch_throttled_micros.load(Ordering::Relaxed),
        0,
        "nothing was fetched yet"
    );
    // Reading the same bytes back spends the fetch rate the same way.
    assert_eq!(read_all(&mut client, "db", "events").await.len(), 20_000);
    assert!(requests.fetch_throttled_micros.load(Ordering::Relaxed) > 0);
    let (_, metrics) = http_get(node.http_addr().expect("http"), "/metrics").await;
    assert!(
        metrics.contains("inlet_throttled_seconds_total{direction=\"produce\"}"),
        "{metrics}"
    );
    node.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_connection_holds_at_most_its_fetch_streams() {
    let mut config = test_config();
    config.quotas.max_fetch_streams_per_connection = 2;
    let node = Node::start_with_store(&config, Arc::new(InMemory::new()), Env::system())
        .await
        .expect("node starts");
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "events", 2, &["id"]).await;
    let follow = || {
        let mut request = fetch_request("db", "events");
        request.follow = true;
        request
    };
    let first = client.raw().fetch(follow()).await.expect("first stream");
    let _second = client.raw().fetch(follow()).await.expect("second stream");
    let refused = client
        .raw()
        .fetch(follow())
        .await
        .expect_err("a third stream on the same connection");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("max_fetch_streams_per_connection"),
        "{refused:?}"
    );
    let mut other = connect(&node).await;
    let _elsewhere = other
        .raw()
        .fetch(follow())
        .await
        .expect("another connection has its own streams");
    assert_eq!(
        node.metrics()
            .requests
            .fetch_streams_refused
            .load(Ordering::Relaxed),
        1
    );
    // Closing a stream frees its slot (the server sees the stream end a moment later).
    drop(first);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match client.raw().fetch(follow()).await {
            Ok(_) => break,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the slot never came free"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(status) => panic!("{status:?}"),
        }
    }
    node.shutdown().await.expect("clean shutdown");
}
