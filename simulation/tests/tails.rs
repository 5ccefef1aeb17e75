//! `tails::OrderedTails`, the index port the harness's readers use: every subscriber of a
//! stream's tail sees each durable tail, is woken in the order it subscribed (a tokio `watch`
//! shared by all of them would wake them in a random order), and its channel closes when the
//! index closes.

use std::sync::{Arc, Mutex};

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use inlet_core::ids::{Bucket, Offset, PartitionId, StreamId};
use inlet_index::LogRead;
use inlet_simulation::tails::OrderedTails;
use inlet_testkit::{DATABASE, index_with_table, quick_writer_options, start_writer};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::memory::InMemory;

#[tokio::test]
async fn followers_wake_in_subscription_order_and_end_with_the_index() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    let index = index_with_table(store.clone(), "t", schema.clone()).await;
    let table = index.table(DATABASE, "t").expect("the table exists");
    let stream = StreamId::new(table.id, PartitionId(0), Bucket(0));
    let tails = OrderedTails::new(Arc::new(index.clone()));

    // Eight followers: with one shared channel, the chance that tokio wakes them in order is
    // below one in two thousand.
    let woken = Arc::new(Mutex::new(Vec::new()));
    let mut followers = Vec::new();
    for follower in 0..8 {
        let mut tail = tails.subscribe(stream).await.expect("subscribes");
        assert_eq!(tail.borrow().next_offset, Offset(0));
        let woken = woken.clone();
        followers.push(tokio::spawn(async move {
            tail.changed().await.expect("the commit wakes the follower");
            woken.lock().expect("woken lock").push(follower);
            let seen = tail.borrow_and_update().next_offset;
            (seen, tail.changed().await.is_err())
        }));
    }

    let writer = start_writer(&index, store, quick_writer_options()).await;
    let rows = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])
        .expect("a valid batch");
    writer
        .append(DATABASE, "t", &[rows], None)
        .await
        .expect("the append is acked");
    index.close().await.expect("the index closes");

    for follower in followers {
        let (seen, ended) = follower.await.expect("the follower finishes");
        assert_eq!(seen, Offset(3), "a follower sees the acked tail");
        assert!(ended, "a follower's channel ends when the index closes");
    }
    assert_eq!(
        *woken.lock().expect("woken lock"),
        (0..8).collect::<Vec<_>>()
    );
}
