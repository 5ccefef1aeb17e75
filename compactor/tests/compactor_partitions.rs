//! Auto-partitioning on the injected clock: a daily table has today's partition and the next
//! `partition.precreate` ones before any row arrives; as days pass, new ones appear and those
//! older than `partition.retain` days are dropped, and after the drop grace their index
//! entries are purged and their WAL objects collected, while the partitions kept (and a
//! partition named by hand) keep every row.

mod compactor_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use compactor_support::Harness;
use inlet_compactor::{Compactor, CompactorOptions};
use inlet_core::ids::{Bucket, PartitionId, StreamId, WalObjectId};
use inlet_core::partition::auto::{
    OPTION_PARTITION_AUTO, OPTION_PARTITION_PRECREATE, OPTION_PARTITION_RETAIN,
    OPTION_PARTITION_TIME_UNIT,
};
use inlet_core::table::{TableDescriptor, TableInfo};
use inlet_core::wal::{ChunkInput, encode_wal_object};
use inlet_index::{ChunkCommitRequest, CommitRequest, StreamTail, table_streams};
use slatedb::object_store::ObjectStoreExt;
use slatedb::object_store::path::Path as ObjectPath;

const DAY: Duration = Duration::from_secs(24 * 3600);
const MINUTE: Duration = Duration::from_secs(60);

/// `db.daily`, partitioned by `day` (a string) per day: `precreate` ahead, `retain` kept.
async fn daily_table(h: &Harness) -> anyhow::Result<Arc<TableInfo>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("day", DataType::Utf8, false),
        Field::new("seq", DataType::Int64, false),
    ]));
    let options = [
        (OPTION_PARTITION_AUTO, "true"),
        (OPTION_PARTITION_TIME_UNIT, "day"),
        (OPTION_PARTITION_PRECREATE, "1"),
        (OPTION_PARTITION_RETAIN, "2"),
    ];
    let descriptor = TableDescriptor {
        partition_key: vec!["day".to_owned()],
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..inlet_testkit::table_descriptor(schema, 1)
    };
    Ok(h.index
        .create_table("db", "daily", descriptor, false)
        .await?)
}

/// Uploads and commits one WAL object with `rows` rows of partition `day` (bucket 0).
async fn append(h: &Harness, day: &str, rows: i64) -> anyhow::Result<WalObjectId> {
    let table = h.index.table("db", "daily")?;
    let partition = table
        .partitions
        .find(&[day.to_owned()])
        .ok_or_else(|| anyhow::anyhow!("no partition {day}"))?;
    let stream = StreamId::new(table.id, partition, Bucket(0));
    let batch = RecordBatch::try_new(
        table.descriptor.schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![day; rows as usize])),
            Arc::new(Int64Array::from_iter_values(0..rows)),
        ],
    )?;
    let now = h.env.clock.now();
    let encoded = encode_wal_object(&[ChunkInput {
        stream,
        schema_id: table.schema_id,
        batch: &batch,
        min_ts: now,
        max_ts: now,
    }])?;
    let object = WalObjectId::new((now.0 / 1000) as u64, h.env.ids.next_u128());
    h.store
        .put(
            &ObjectPath::from(object.path()),
            encoded.bytes.clone().into(),
        )
        .await?;
    let reply = h
        .index
        .commit(CommitRequest {
            object,
            footer_offset: encoded.trailer.footer_offset,
            footer_len: encoded.trailer.footer_len,
            chunks: encoded
                .footer
                .chunks
                .iter()
                .map(|meta| ChunkCommitRequest::from_meta(meta, None))
                .collect(),
        })
        .await?;
    ensure!(reply.iter().all(Result::is_ok), "{reply:?}");
    Ok(object)
}

async fn exists(h: &Harness, object: WalObjectId) -> anyhow::Result<bool> {
    match h.store.head(&ObjectPath::from(object.path())).await {
        Ok(_) => Ok(true),
        Err(slatedb::object_store::Error::NotFound { .. }) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// The live partitions of `db.daily`, by name, with their row counts.
async fn partitions(h: &Harness) -> anyhow::Result<BTreeMap<String, u64>> {
    let table = h.index.table("db", "daily")?;
    let mut out = BTreeMap::new();
    for partition in table.partitions.iter() {
        let mut rows = 0;
        for stream in table_streams(&table).filter(|s| s.partition == partition.id) {
            let tail = h.index.tail(stream).await?;
            rows += tail.next_offset.0 - tail.earliest_offset.0;
        }
        out.insert(partition.name(), rows);
    }
    Ok(out)
}

/// Runs the WAL collector past both graces; returns the objects it deleted.
async fn collect_past_graces(h: &Harness, compactor: &Compactor) -> anyhow::Result<usize> {
    let options = CompactorOptions::default();
    h.clock.advance(options.wal_upload_grace + MINUTE);
    compactor.collect_wal_garbage().await?;
    h.clock.advance(options.wal_read_grace + MINUTE);
    Ok(compactor.collect_wal_garbage().await?.deleted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_partitions_are_created_ahead_and_expire_with_their_data() -> anyhow::Result<()> {
    let h = Harness::new("auto-partitions").await?;
    // Start at the beginning of a UTC day, so the test's days are calendar days.
    let now = h.env.clock.now().0;
    let day_micros = DAY.as_micros() as i64;
    h.clock.advance(Duration::from_micros(
        (day_micros - now.rem_euclid(day_micros)) as u64,
    ));
    let table = daily_table(&h).await?;
    let compactor = h.compactor(1, CompactorOptions::default());
    let day = |offset: i64| {
        let at = h.env.clock.now().0 + offset * day_micros;
        let date = chrono::DateTime::from_timestamp_micros(at).expect("a date");
        date.format("%Y-%m-%d").to_string()
    };
    let (d0, d1) = (day(0), day(1));

    // Today and tomorrow exist before any row.
    let report = compactor.maintain_partitions().await;
    ensure!(report.created == [d0.clone(), d1.clone()], "{report:?}");
    ensure!(report.errors.is_empty(), "{report:?}");
    let again = compactor.maintain_partitions().await;
    ensure!(
        again.created.is_empty() && again.dropped.is_empty(),
        "{again:?}"
    );
    let first = append(&h, &d0, 5).await?;
    // A partition named by hand, not a day: never expires.
    h.index
        .add_partitions("db", "daily", vec![vec!["backfill".to_owned()]])
        .await?;
    let by_hand = append(&h, "backfill", 2).await?;
    let d0_id = h
        .index
        .table("db", "daily")?
        .partitions
        .find(std::slice::from_ref(&d0));

    // Day by day: one more partition ahead, rows in each; nothing expires while a day is
    // within the two kept before the current one.
    let mut objects = vec![(d0.clone(), first)];
    for step in 1..=3 {
        h.clock.advance(DAY);
        let report = compactor.maintain_partitions().await;
        ensure!(report.created == [day(1)], "day {step}: {report:?}");
        let today = day(0);
        objects.push((today.clone(), append(&h, &today, 5).await?));
        if step < 3 {
            ensure!(report.dropped.is_empty(), "day {step}: {report:?}");
        } else {
            // Three days on, the first day is more than two days old.
            ensure!(report.dropped == [d0.clone()], "day {step}: {report:?}");
        }
    }
    let live = partitions(&h).await?;
    ensure!(!live.contains_key(&d0), "{live:?}");
    ensure!(
        live.len() == 5,
        "two kept, today, tomorrow, backfill: {live:?}"
    );
    ensure!(
        live.values().filter(|rows| **rows == 5).count() == 3,
        "{live:?}"
    );
    ensure!(live.get("backfill") == Some(&2), "{live:?}");
    let dropped = h.index.dropped_partitions().await?;
    ensure!(dropped.len() == 1 && dropped[0].name == d0, "{dropped:?}");

    // Within the grace nothing of it goes; after, its entries and its WAL object do.
    let report = compactor.purge_dropped().await;
    ensure!(report.partitions_due == 0, "{report:?}");
    h.clock
        .advance(CompactorOptions::default().drop_grace + MINUTE);
    let report = compactor.purge_dropped().await;
    ensure!(
        report.partitions_due == 1 && report.partitions_purged == 1 && report.entries > 0,
        "{report:?}"
    );
    let d0_id = d0_id.unwrap_or(PartitionId(u32::MAX));
    ensure!(h.index.partition_entries(table.id, d0_id).await? == 0);
    ensure!(h.index.dropped_partitions().await?.is_empty());
    ensure!(
        h.index
            .tail(StreamId::new(table.id, d0_id, Bucket(0)))
            .await?
            == StreamTail::EMPTY
    );
    ensure!(
        collect_past_graces(&h, &compactor).await? == 1,
        "only d0's object goes"
    );
    ensure!(!exists(&h, first).await?);
    for (day, object) in &objects[1..] {
        ensure!(exists(&h, *object).await?, "the object of {day} stays");
    }
    ensure!(exists(&h, by_hand).await?);
    ensure!(
        partitions(&h).await? == live,
        "the kept partitions keep every row"
    );

    // The day comes back only as a new partition, with a new id.
    h.index
        .add_partitions("db", "daily", vec![vec![d0.clone()]])
        .await?;
    let again = h
        .index
        .table("db", "daily")?
        .partitions
        .find(std::slice::from_ref(&d0));
    ensure!(
        again.is_some_and(|id| id > d0_id),
        "{again:?} after {d0_id:?}"
    );
    compactor.stop().await;
    Ok(())
}
