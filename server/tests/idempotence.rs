//! Idempotent producers: a client that retries an append whose reply was lost gets the
//! original offsets back and no duplicate rows, also after a restart of the server.

mod common;

use common::backend::Backend;
use common::*;
use inlet_proto::v1 as pb;
use tonic::Code;

fn request(
    table: &str,
    ids: std::ops::Range<i64>,
    producer: u64,
    sequence: u64,
) -> pb::AppendRequest {
    pb::AppendRequest {
        path: Some(inlet::client::path("db", table)),
        batches_ipc: inlet_core::ipc::batches_to_ipc(&schema(), &[batch(ids)]).expect("ipc"),
        producer_id: producer,
        sequence,
        ..Default::default()
    }
}

fn ranges(response: pb::AppendResponse) -> Vec<(u32, u64, u64)> {
    let mut ranges: Vec<_> = response
        .buckets
        .into_iter()
        .map(|b| (b.bucket, b.base_offset, b.row_count))
        .collect();
    ranges.sort();
    ranges
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_append_gets_its_original_offsets_and_lands_once() {
    let backend = Backend::memory();
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "t", 3, &["id"]).await;
    // Another producer's rows, so offsets are not trivially zero.
    client
        .append("db", "t", &schema(), &[batch(1000..1010)])
        .await
        .expect("append");

    let first = client
        .raw()
        .append(request("t", 0..30, 42, 1))
        .await
        .expect("append");
    let original = ranges(first.into_inner());
    assert_eq!(original.iter().map(|r| r.2).sum::<u64>(), 30);

    // The reply was "lost": the client sends the very same request again.
    let retry = client
        .raw()
        .append(request("t", 0..30, 42, 1))
        .await
        .expect("retry");
    assert_eq!(
        ranges(retry.into_inner()),
        original,
        "same offsets for the retry"
    );
    assert_eq!(
        read_all(&mut client, "db", "t").await.len(),
        40,
        "rows landed once"
    );

    // Two copies racing (a retry while the original is still in flight): one lands.
    let (mut a, mut b) = (connect(&node).await, connect(&node).await);
    let (ra, rb) = tokio::join!(
        a.raw().append(request("t", 100..120, 42, 2)),
        b.raw().append(request("t", 100..120, 42, 2)),
    );
    let (ra, rb) = (
        ranges(ra.expect("a").into_inner()),
        ranges(rb.expect("b").into_inner()),
    );
    assert_eq!(ra, rb);
    assert_eq!(read_all(&mut client, "db", "t").await.len(), 60);

    // Older than the last append: rejected, nothing written.
    let stale = client
        .raw()
        .append(request("t", 0..30, 42, 1))
        .await
        .expect_err("stale sequence");
    assert_eq!(stale.code(), Code::InvalidArgument);
    assert!(
        stale.message().contains("older than its last append 2"),
        "{}",
        stale.message()
    );
    node.shutdown().await.expect("clean shutdown");

    // The producer state is in the index: a retry after a restart still dedups.
    let node = start(backend.store()).await;
    let mut client = connect(&node).await;
    let after = client
        .raw()
        .append(request("t", 100..120, 42, 2))
        .await
        .expect("retry");
    assert_eq!(
        ranges(after.into_inner()),
        ra,
        "same offsets after a restart"
    );
    assert_eq!(read_all(&mut client, "db", "t").await.len(), 60);

    // Other producers and new sequence numbers are unaffected.
    let next = client
        .raw()
        .append(request("t", 200..205, 42, 3))
        .await
        .expect("next");
    assert_eq!(
        ranges(next.into_inner()).iter().map(|r| r.2).sum::<u64>(),
        5
    );
    let other = client
        .raw()
        .append(request("t", 300..305, 7, 2))
        .await
        .expect("other");
    assert_eq!(
        ranges(other.into_inner()).iter().map(|r| r.2).sum::<u64>(),
        5
    );
    let rows = read_all(&mut client, "db", "t").await;
    assert_eq!(rows.len(), 70);
    let mut ids: Vec<i64> = rows.iter().map(|r| r.2).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 70, "no id appears twice");
    node.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_producer_is_idempotent_across_retries() {
    let node = start(Backend::memory().store()).await;
    let mut client = connect(&node).await;
    create_table(&mut client, "db", "t", 1, &[]).await;
    let mut producer = inlet::client::Producer::with_id(connect(&node).await, "db", "t", 99);
    let first = producer
        .send(&schema(), &[batch(0..10)])
        .await
        .expect("send");
    assert_eq!(first[0].base_offset, 0);
    // The producer's first append was sequence 1: replaying it is a duplicate.
    let replay = client
        .raw()
        .append(request("t", 0..10, 99, 1))
        .await
        .expect("replay");
    assert_eq!(ranges(replay.into_inner()), vec![(first[0].bucket, 0, 10)]);
    let second = producer
        .send(&schema(), &[batch(10..20)])
        .await
        .expect("send");
    assert_eq!(second[0].base_offset, 10);
    assert_eq!(read_all(&mut client, "db", "t").await.len(), 20);
    node.shutdown().await.expect("clean shutdown");
}
