//! Two index owners on one bucket: the second takes over (SlateDB's writer epoch fences the
//! first), the first stops serving writes with a clear "fenced" error (gRPC
//! `FailedPrecondition`) and corrupts nothing, every row acked by either is readable
//! through the second with dense offsets, and an idempotent producer that moves its last
//! append to the second owner gets the original offsets if the first committed it, or
//! lands it exactly once if not.
//!
//! The producers here speak the wire protocol directly (a producer id and a sequence
//! number on each `Append`), because the point is to resend one append to another server.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::backend::Backend;
use common::*;
use inlet::client::Client;
use inlet_proto::v1 as pb;
use tonic::Code;

fn request(ids: std::ops::Range<i64>, producer: u64, sequence: u64) -> pb::AppendRequest {
    pb::AppendRequest {
        path: Some(inlet::client::path("db", "t")),
        batches_ipc: inlet_core::ipc::batches_to_ipc(&schema(), &[batch(ids)]).expect("ipc"),
        producer_id: producer,
        sequence,
        ..Default::default()
    }
}

/// (bucket, base offset, rows), sorted.
type Ranges = Vec<(u32, u64, u64)>;

fn ranges(response: pb::AppendResponse) -> Ranges {
    let mut ranges: Ranges = response
        .buckets
        .into_iter()
        .map(|b| (b.bucket, b.base_offset, b.row_count))
        .collect();
    ranges.sort_unstable();
    ranges
}

/// The rows acknowledged to the clients: id → (bucket, offset).
#[derive(Debug, Default)]
struct Acked {
    rows: BTreeMap<i64, (u32, u64)>,
}

impl Acked {
    /// Records an acked append of `ids`: each bucket's rows are the append's rows routed
    /// there, in order, so the ack alone does not say which id sits where; that is checked
    /// against the table in `check`, which maps ids to positions through the ranges.
    fn record(&mut self, ids: std::ops::Range<i64>, ranges: &Ranges, table: &Table) {
        let mut by_bucket: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
        for id in ids {
            let (bucket, _) = table.position(id).unwrap_or_else(|| {
                panic!("acked row {id} is not readable");
            });
            by_bucket.entry(bucket).or_default().push(id);
        }
        assert_eq!(
            by_bucket.len(),
            ranges.len(),
            "the ack names other buckets than the rows are in"
        );
        for &(bucket, base, count) in ranges {
            let ids = &by_bucket[&bucket];
            assert_eq!(ids.len() as u64, count, "bucket {bucket}: acked row count");
            for (i, id) in ids.iter().enumerate() {
                let position = (bucket, base + i as u64);
                assert_eq!(
                    table.position(*id),
                    Some(position),
                    "row {id} is not at the offset it was acked with"
                );
                let earlier = self.rows.insert(*id, position);
                assert!(earlier.is_none(), "row {id} acked twice");
            }
        }
    }
}

/// A read of the whole table, checked dense from 0 in every bucket and free of duplicates.
struct Table {
    by_id: BTreeMap<i64, (u32, u64)>,
    tails: BTreeMap<u32, u64>,
}

impl Table {
    async fn read(client: &mut Client) -> Self {
        let rows = read_all(client, "db", "t").await;
        let mut by_id = BTreeMap::new();
        let mut by_position = BTreeMap::new();
        for (bucket, offset, id, _) in rows {
            assert!(
                by_id.insert(id, (bucket, offset)).is_none(),
                "row {id} is visible twice"
            );
            assert!(
                by_position.insert((bucket, offset), id).is_none(),
                "bucket {bucket} offset {offset} read twice"
            );
        }
        let mut tails: BTreeMap<u32, u64> = BTreeMap::new();
        for (bucket, offset) in by_position.keys() {
            let next = tails.entry(*bucket).or_default();
            assert_eq!(*offset, *next, "bucket {bucket}: offsets not dense");
            *next += 1;
        }
        Self { by_id, tails }
    }

    fn position(&self, id: i64) -> Option<(u32, u64)> {
        self.by_id.get(&id).copied()
    }

    /// Exactly the acked rows are visible, each where it was acked.
    fn assert_exactly(&self, acked: &Acked) {
        assert_eq!(
            self.by_id, acked.rows,
            "visible rows differ from acked rows"
        );
    }
}

fn assert_fenced(status: &tonic::Status) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("fenced"), "{}", status.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_index_owner_takes_over_and_the_first_is_fenced() {
    let backend = Backend::memory();
    let first = start(backend.store()).await;
    let mut a = connect(&first).await;
    create_table(&mut a, "db", "t", 3, &["id"]).await;

    // Producer 7 appends through the first owner; its last append (sequence 3) is the one
    // whose reply will be "lost".
    let mut sent_to_first = Vec::new();
    for sequence in 1..=3u64 {
        let ids = (sequence as i64 * 100)..(sequence as i64 * 100 + 20);
        let response = a
            .raw()
            .append(request(ids.clone(), 7, sequence))
            .await
            .expect("append to the first owner");
        sent_to_first.push((ids, ranges(response.into_inner())));
    }
    // A plain append too.
    let plain = a
        .append("db", "t", &schema(), &[batch(1000..1010)])
        .await
        .expect("plain append");
    assert_eq!(plain.iter().map(|r| r.row_count).sum::<u64>(), 10);

    // The second owner opens the same index: a new writer epoch.
    let second = start(backend.store()).await;
    let mut b = connect(&second).await;

    // The first owner's next write finds out it was fenced and says so; so does every
    // later one, appends and catalog changes alike, and nothing it tried becomes visible.
    let error = a
        .raw()
        .append(request(5000..5010, 0, 0))
        .await
        .expect_err("the first owner is fenced");
    assert_fenced(&error);
    let error = a
        .raw()
        .append(request(400..420, 7, 4))
        .await
        .expect_err("still fenced");
    assert_fenced(&error);
    let error = a
        .create_database("other", false)
        .await
        .expect_err("catalog changes are refused too");
    assert!(error.to_string().contains("fenced"), "{error}");
    assert!(error.to_string().contains("FailedPrecondition"), "{error}");

    // Everything the first owner acked is readable through the second, where it was acked.
    let table = Table::read(&mut b).await;
    let mut acked = Acked::default();
    for (ids, ranges) in &sent_to_first {
        acked.record(ids.clone(), ranges, &table);
    }
    for id in 1000..1010 {
        let position = table.position(id).expect("plain rows are readable");
        acked.rows.insert(id, position);
    }
    table.assert_exactly(&acked);

    // The producer never got the reply to sequence 3 and resends it to the second owner:
    // the first committed it, so it gets the original offsets and nothing is added.
    let (ids, original) = &sent_to_first[2];
    let retry = b
        .raw()
        .append(request(ids.clone(), 7, 3))
        .await
        .expect("retry on the second owner");
    assert_eq!(&ranges(retry.into_inner()), original, "original offsets");
    Table::read(&mut b).await.assert_exactly(&acked);

    // Sequence 4 failed on the fenced owner: resent to the second, it lands once.
    let landed = b
        .raw()
        .append(request(400..420, 7, 4))
        .await
        .expect("sequence 4 on the second owner");
    let landed = ranges(landed.into_inner());
    let again = b
        .raw()
        .append(request(400..420, 7, 4))
        .await
        .expect("and once more");
    assert_eq!(ranges(again.into_inner()), landed, "lands once");
    let table = Table::read(&mut b).await;
    acked.record(400..420, &landed, &table);
    // The second owner's offsets continue the first's, densely.
    let more = b
        .append("db", "t", &schema(), &[batch(2000..2030)])
        .await
        .expect("plain append to the second owner");
    let table = Table::read(&mut b).await;
    for result in &more {
        assert!(result.base_offset + result.row_count <= table.tails[&result.bucket]);
    }
    for id in 2000..2030 {
        acked.rows.insert(id, table.position(id).expect("readable"));
    }
    table.assert_exactly(&acked);

    // The fenced owner shuts down without touching the index (its close may report the
    // fence); the second closes cleanly, and a third owner finds exactly the same rows.
    if let Err(error) = first.shutdown().await {
        eprintln!("fenced owner's shutdown: {error:#}");
    }
    second.shutdown().await.expect("clean shutdown");
    let third = start(backend.store()).await;
    let mut c = connect(&third).await;
    Table::read(&mut c).await.assert_exactly(&acked);
    third.shutdown().await.expect("clean shutdown");
}

/// Appends stream into the first owner while the second takes over. The appends that were
/// acked before the fence are all there, where they were acked. The append each producer
/// had in flight when the first owner found out it was fenced was not committed — the
/// fence is SlateDB's put-if-absent of the very WAL object the old owner's write needed —
/// so it is not visible, and resent to the second owner it lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_in_flight_at_a_takeover_land_once_on_the_new_owner() {
    let backend = Backend::memory();
    let first = start(backend.store()).await;
    let mut a = connect(&first).await;
    create_table(&mut a, "db", "t", 4, &["id"]).await;

    // Two idempotent producers and one plain one, each looping on the first owner until it
    // refuses them.
    let mut tasks = Vec::new();
    for producer in [11u64, 12, 0] {
        let mut client = connect(&first).await;
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut sequence = 1u64;
            loop {
                let base = (producer as i64 * 1_000_000) + sequence as i64 * 100;
                let ids = base..base + 1 + (sequence as i64 * 7) % 30;
                let idempotent_sequence = if producer == 0 { 0 } else { sequence };
                let result = client
                    .raw()
                    .append(request(ids.clone(), producer, idempotent_sequence))
                    .await;
                match result {
                    Ok(response) => acked.push((ids, ranges(response.into_inner()))),
                    Err(status) => {
                        assert_fenced(&status);
                        return (producer, acked, (ids, sequence));
                    }
                }
                sequence += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = start(backend.store()).await;
    let mut b = connect(&second).await;
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(tokio::time::timeout(Duration::from_secs(30), task).await);
    }

    let table = Table::read(&mut b).await;
    let mut acked = Acked::default();
    let mut resends = Vec::new();
    for outcome in outcomes {
        let (producer, appends, refused) = outcome
            .expect("the first owner answers every append")
            .expect("producer task");
        eprintln!(
            "producer {producer}: {} appends acked by the first owner, then fenced",
            appends.len()
        );
        assert!(!appends.is_empty(), "producer {producer} appended before");
        for (ids, ranges) in &appends {
            acked.record(ids.clone(), ranges, &table);
        }
        let (ids, sequence) = refused;
        if producer == 0 {
            // A plain append the fenced owner refused left nothing behind.
            assert!(ids.clone().all(|id| table.position(id).is_none()));
        } else {
            resends.push((producer, ids, sequence));
        }
    }
    // Nothing the fenced owner refused is visible, idempotent or not.
    table.assert_exactly(&acked);

    for (producer, ids, sequence) in resends {
        let response = b
            .raw()
            .append(request(ids.clone(), producer, sequence))
            .await
            .expect("the resend is accepted by the second owner");
        let got = ranges(response.into_inner());
        let table = Table::read(&mut b).await;
        acked.record(ids.clone(), &got, &table);
        table.assert_exactly(&acked);
        let again = b
            .raw()
            .append(request(ids, producer, sequence))
            .await
            .expect("a second resend");
        assert_eq!(ranges(again.into_inner()), got, "lands once");
    }
    Table::read(&mut b).await.assert_exactly(&acked);

    if let Err(error) = first.shutdown().await {
        eprintln!("fenced owner's shutdown: {error:#}");
    }
    second.shutdown().await.expect("clean shutdown");
}
