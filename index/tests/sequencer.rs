//! The sequencer against a real SlateDB on an in-memory store: dense offsets under
//! concurrent commits, durable tails across reopen, and fencing by a newer owner.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use inlet_core::clock::Env;
use inlet_core::ids::{Bucket, Offset, PartitionId, SchemaId, StreamId, TableId, WalObjectId};
use inlet_core::table::{TableAlteration, TableDescriptor};
use inlet_index::{ChunkCommitRequest, CommitRequest, Index, IndexError, IndexOptions};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::memory::InMemory;

async fn open(store: &Arc<dyn ObjectStore>) -> Index {
    Index::open(store.clone(), IndexOptions::default(), Env::system())
        .await
        .expect("index opens")
}

async fn create_table(index: &Index, buckets: u32) -> TableId {
    index
        .create_database("db", "", true)
        .await
        .expect("database");
    let descriptor = TableDescriptor {
        schema: Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)])),
        bucket_count: buckets,
        bucket_key: vec![],
        partition_key: vec![],
        primary_key: vec![],
        comment: String::new(),
        options: Default::default(),
    };
    index
        .create_table("db", "t", descriptor, false)
        .await
        .expect("table")
        .id
}

fn request(object: u128, chunks: &[(StreamId, u32)]) -> CommitRequest {
    CommitRequest {
        object: WalObjectId(object),
        footer_offset: 0,
        footer_len: 0,
        chunks: chunks
            .iter()
            .map(|(stream, rows)| ChunkCommitRequest {
                stream: *stream,
                schema_id: SchemaId(0),
                chunk_offset: 16,
                chunk_len: 100,
                meta_len: 50,
                body_offset: 56,
                chunk_crc: 0,
                meta_crc: 0,
                row_count: *rows,
                producer: None,
                columns: Vec::new(),
                pk_writes: None,
            })
            .collect(),
    }
}

fn stream(table: TableId, bucket: u32) -> StreamId {
    StreamId::new(table, PartitionId(0), Bucket(bucket))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_get_dense_offsets_that_survive_reopen() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let index = open(&store).await;
    let table = create_table(&index, 2).await;

    let mut tasks = Vec::new();
    for i in 0..64u32 {
        let index = index.clone();
        tasks.push(tokio::spawn(async move {
            let chunks = [
                (stream(table, i % 2), 1 + i % 5),
                (stream(table, 1 - i % 2), 3),
            ];
            let outcome = index
                .commit(request(u128::from(i), &chunks))
                .await
                .expect("commit");
            chunks
                .iter()
                .zip(outcome)
                .map(|((s, rows), r)| (s.bucket.0, r.expect("accepted").base_offset.0, *rows))
                .collect::<Vec<_>>()
        }));
    }
    let mut ranges: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for task in tasks {
        for (bucket, base, rows) in task.await.expect("task") {
            ranges
                .entry(bucket)
                .or_default()
                .push((base, base + u64::from(rows)));
        }
    }
    for (bucket, mut ranges) in ranges.clone() {
        ranges.sort();
        let mut next = 0;
        for (start, end) in ranges {
            assert_eq!(
                start, next,
                "bucket {bucket}: offsets must tile without gaps"
            );
            next = end;
        }
        assert_eq!(
            index
                .tail(stream(table, bucket))
                .await
                .expect("tail")
                .next_offset
                .0,
            next
        );
    }
    index.close().await.expect("close");

    let reopened = open(&store).await;
    for (bucket, ranges) in ranges {
        let end = ranges.iter().map(|r| r.1).max().expect("ranges");
        let tail = reopened.tail(stream(table, bucket)).await.expect("tail");
        assert_eq!(tail.next_offset.0, end, "durable tail after reopen");
        let mut scan = reopened
            .chunks(stream(table, bucket), Offset(0))
            .await
            .expect("scan");
        let mut next = 0;
        while let Some(entry) = scan.next().await.expect("entry") {
            assert_eq!(entry.base_offset.0, next);
            next = entry.end_offset().0;
        }
        assert_eq!(next, end);
    }
    reopened.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_owner_fences_the_old_one() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let old = open(&store).await;
    let table = create_table(&old, 1).await;
    let s = stream(table, 0);
    old.commit(request(1, &[(s, 10)])).await.expect("commit");

    let new = open(&store).await;
    assert_eq!(new.table("db", "t").expect("catalog is shared").id, table);
    assert_eq!(new.tail(s).await.expect("tail").next_offset, Offset(10));

    let error = old
        .commit(request(2, &[(s, 5)]))
        .await
        .expect_err("the old owner is fenced");
    assert!(matches!(error, IndexError::Fenced), "{error}");
    assert!(old.stopped().is_some(), "the fenced owner stops for good");
    assert!(old.commit(request(3, &[(s, 1)])).await.is_err());

    let outcome = new
        .commit(request(4, &[(s, 5)]))
        .await
        .expect("new owner commits");
    assert_eq!(
        outcome[0].as_ref().expect("accepted").base_offset,
        Offset(10)
    );
    new.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_of_dropped_tables_are_rejected() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let index = open(&store).await;
    let table = create_table(&index, 1).await;
    index
        .drop_table("db", "t", inlet_index::DropOptions::default())
        .await
        .expect("drop");
    let outcome = index
        .commit(request(1, &[(stream(table, 0), 3)]))
        .await
        .expect("commit call");
    assert!(outcome[0].is_err(), "a dropped table takes no rows");
    assert_eq!(
        index
            .tail(stream(table, 0))
            .await
            .expect("tail")
            .next_offset,
        Offset(0)
    );
    index.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_commit_is_visible_after_reopen() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let index = open(&store).await;
    let table = create_table(&index, 1).await;
    let s = stream(table, 0);
    let mut req = request(1, &[(s, 10)]);
    req.chunks[0].producer = Some(inlet_index::ProducerRef { id: 5, sequence: 1 });
    index.commit(req).await.expect("commit");
    index.close().await.expect("close");
    let reopened = open(&store).await;
    assert_eq!(
        reopened.tail(s).await.expect("tail").next_offset,
        Offset(10)
    );
}

/// Found by the simulation (seeds 19, 41, 49): one WAL object may hold two appends of one
/// producer (a copy of `s` still buffered when the producer moved on to `s + 1`). Each must
/// be decided on its own sequence number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_appends_of_one_producer_in_one_object_are_decided_separately() {
    use inlet_index::{ChunkRejected, ProducerRef};
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let index = open(&store).await;
    let table = create_table(&index, 1).await;
    let s = stream(table, 0);
    let with = |object, chunks: &[(u64, u32)]| {
        let mut req = request(
            object,
            &chunks
                .iter()
                .map(|(_, rows)| (s, *rows))
                .collect::<Vec<_>>(),
        );
        for (chunk, (sequence, _)) in req.chunks.iter_mut().zip(chunks) {
            chunk.producer = Some(ProducerRef {
                id: 9,
                sequence: *sequence,
            });
        }
        req
    };

    // Sequences 1 and 2 in one object: both commit, one after the other.
    let outcome = index
        .commit(with(1, &[(1, 3), (2, 4)]))
        .await
        .expect("commit");
    let first = outcome[0].as_ref().expect("1 commits").base_offset;
    let second = outcome[1].as_ref().expect("2 commits").base_offset;
    assert_eq!((first, second), (Offset(0), Offset(3)));

    // A retry of 2 gets 2's offsets; a retry of 1 is older than the last append.
    let retry = index.commit(with(2, &[(2, 4)])).await.expect("commit");
    match &retry[0] {
        Err(ChunkRejected::Duplicate { ranges, .. }) => {
            assert_eq!((ranges[0].base_offset, ranges[0].row_count), (Offset(3), 4));
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    let stale = index.commit(with(3, &[(1, 3)])).await.expect("commit");
    assert!(matches!(stale[0], Err(ChunkRejected::StaleSequence { .. })));

    // A retry of 2 together with the new 3: 2 is a duplicate, 3 commits.
    let mixed = index
        .commit(with(4, &[(2, 4), (3, 5)]))
        .await
        .expect("commit");
    assert!(matches!(mixed[0], Err(ChunkRejected::Duplicate { .. })));
    assert_eq!(mixed[1].as_ref().expect("3 commits").base_offset, Offset(7));
    assert_eq!(index.tail(s).await.expect("tail").next_offset, Offset(12));
    index.close().await.expect("close");
}

/// An altered table's options and comment are in its catalog record: a reopened index (a
/// new owner) has them; a refused alteration changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_alterations_are_durable_and_refusals_change_nothing() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let index = open(&store).await;
    create_table(&index, 2).await;
    let set = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    let altered = index
        .alter_table(
            "db",
            "t",
            TableAlteration {
                set_options: set(&[("lake.enabled", "true"), ("retention", "7d")]),
                unset_options: vec![],
                comment: Some("kept a week".to_owned()),
                ..TableAlteration::default()
            },
        )
        .await
        .expect("altered");
    assert_eq!(
        altered.descriptor.options,
        set(&[("lake.enabled", "true"), ("retention", "7d")])
    );
    // A bad value is refused, naming the option, and changes nothing.
    let refused = index
        .alter_table(
            "db",
            "t",
            TableAlteration {
                set_options: set(&[("retention.bytes", "1KiB")]),
                unset_options: vec!["retention".to_owned()],
                ..TableAlteration::default()
            },
        )
        .await
        .expect_err("retention.bytes below its minimum");
    assert!(refused.to_string().contains("retention.bytes"), "{refused}");
    assert_eq!(
        index.table("db", "t").expect("table").descriptor.options,
        set(&[("lake.enabled", "true"), ("retention", "7d")])
    );
    index
        .alter_table(
            "db",
            "t",
            TableAlteration {
                unset_options: vec!["retention".to_owned()],
                ..TableAlteration::default()
            },
        )
        .await
        .expect("retention removed");
    index.close().await.expect("close");

    let reopened = open(&store).await;
    let table = reopened.table("db", "t").expect("table");
    assert_eq!(table.descriptor.options, set(&[("lake.enabled", "true")]));
    assert_eq!(table.descriptor.comment, "kept a week");
    assert_eq!(table.descriptor.bucket_count, 2);
    reopened.close().await.expect("close");
}

/// Adding a column gives the table the next schema id and keeps the earlier schema beside it,
/// also for a reopened index (a new owner); chunks written under the earlier schema (by a
/// writer that has not seen the change) are still taken, a schema the table never had is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_column_makes_the_next_schema_and_earlier_chunks_still_commit() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let index = open(&store).await;
    let table = create_table(&index, 1).await;
    let before = index.table("db", "t").expect("table");
    let altered = index
        .alter_table(
            "db",
            "t",
            TableAlteration {
                add_columns: vec![Arc::new(Field::new("note", DataType::Utf8, true))],
                ..TableAlteration::default()
            },
        )
        .await
        .expect("column added");
    assert_eq!(altered.schema_id, SchemaId(1));
    assert_eq!(altered.descriptor.schema.fields().len(), 2);
    assert_eq!(
        altered.schema_of(SchemaId(0)),
        Some(&before.descriptor.schema)
    );
    // Options alone keep the schema id.
    let options_only = index
        .alter_table(
            "db",
            "t",
            TableAlteration {
                comment: Some("notes".to_owned()),
                ..TableAlteration::default()
            },
        )
        .await
        .expect("comment set");
    assert_eq!(options_only.schema_id, SchemaId(1));

    let with_schema = |object: u128, schema: u32, columns: usize| {
        let mut request = request(object, &[(stream(table, 0), 3)]);
        request.chunks[0].schema_id = SchemaId(schema);
        request.chunks[0].columns = (0..columns as u64)
            .map(|i| inlet_core::wal::ColumnRange {
                offset: i * 10,
                len: 10,
                crc32c: 0,
            })
            .collect();
        request
    };
    for (object, schema, columns) in [(1, 0, 1), (2, 1, 2)] {
        let outcome = index
            .commit(with_schema(object, schema, columns))
            .await
            .expect("commit call");
        assert!(outcome[0].is_ok(), "schema {schema}: {outcome:?}");
    }
    // Column ranges are checked against the chunk's own schema.
    let outcome = index
        .commit(with_schema(3, 0, 2))
        .await
        .expect("commit call");
    assert!(outcome[0].is_err(), "two ranges for a one-column schema");
    let outcome = index
        .commit(with_schema(4, 2, 0))
        .await
        .expect("commit call");
    assert!(
        matches!(
            outcome[0],
            Err(inlet_index::ChunkRejected::SchemaChanged { .. })
        ),
        "{outcome:?}"
    );
    index.close().await.expect("close");

    let reopened = open(&store).await;
    let table = reopened.table("db", "t").expect("table");
    assert_eq!(table.schema_id, SchemaId(1));
    assert_eq!(table.descriptor.schema, altered.descriptor.schema);
    assert_eq!(table.previous_schemas, altered.previous_schemas);
    assert_eq!(
        reopened
            .tail(stream(table.id, 0))
            .await
            .expect("tail")
            .next_offset,
        Offset(6)
    );
    reopened.close().await.expect("close");
}
