//! An index whose store is down must not hold producers forever: past `commit_timeout` the
//! append fails as "outcome unknown", and an idempotent resend after the store heals gets
//! the append's offsets exactly once.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use inlet_index::ProducerRef;
use inlet_store::{FaultConfig, FaultStore, Purpose};
use inlet_testkit as testkit;
use inlet_writer::{AppendError, WriterOptions};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::memory::InMemory;

fn rows(range: std::ops::Range<i64>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(range))])
        .expect("valid batch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_index_store_turns_into_an_unknown_outcome_not_a_hang() {
    let config = FaultConfig {
        transient_error: 1.0,
        purposes: Some(vec![Purpose::Index]),
        ..FaultConfig::default()
    };
    let faulty = FaultStore::new(InMemory::new(), config, 7);
    let faults = faulty.control();
    faults.set_enabled(false);
    let store: Arc<dyn ObjectStore> = Arc::new(faulty);
    let index = testkit::index_with_table(store.clone(), "t", rows(0..1).schema()).await;
    let options = WriterOptions {
        commit_timeout: Duration::from_millis(500),
        ..testkit::quick_writer_options()
    };
    let writer = testkit::start_writer(&index, store, options).await;
    let producer = Some(ProducerRef {
        id: 11,
        sequence: 1,
    });

    faults.set_enabled(true);
    let error = writer
        .append("db", "t", &[rows(0..10)], producer)
        .await
        .expect_err("the index cannot make the commit durable");
    assert!(
        matches!(error, AppendError::CommitTimeout { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("outcome is unknown"), "{error}");

    faults.set_enabled(false);
    // SlateDB's own backoff may still be running right after the store heals, so the resend
    // is repeated (as an idempotent producer does) until it is acked.
    let mut resends = 0;
    let acked = loop {
        match writer.append("db", "t", &[rows(0..10)], producer).await {
            Ok(acked) => break acked,
            Err(AppendError::CommitTimeout { .. }) if resends < 40 => resends += 1,
            Err(error) => panic!("the resend lands once the store heals: {error}"),
        }
    };
    assert_eq!((acked[0].base_offset.0, acked[0].row_count), (0, 10));
    let next = writer
        .append(
            "db",
            "t",
            &[rows(10..15)],
            Some(ProducerRef {
                id: 11,
                sequence: 2,
            }),
        )
        .await
        .expect("next append");
    assert_eq!(
        next[0].base_offset.0, 10,
        "the timed-out append landed exactly once"
    );
    writer.close().await;
    index.close().await.expect("close");
}
