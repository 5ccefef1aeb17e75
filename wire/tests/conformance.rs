//! One suite, every implementation of the index's ports: the owner's [`Index`] in process,
//! [`RemoteIndex`] talking to a real `IndexPorts` gRPC server on loopback, and a reader
//! process's [`ReaderPort`] (history from an index replica, tails from that server). Each scenario
//! asserts the expected outcomes itself and records a transcript of everything it saw; the
//! two transcripts must be equal, so in-process and remote behave the same, errors included.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use arrow_schema::{DataType, Field, Schema};
use futures::TryStreamExt;
use inlet_core::clock::{Clock, Env, SeededIdGen};
use inlet_core::ids::{
    Bucket, Offset, PartitionId, SchemaId, StreamId, TableId, TimestampMicros, WalObjectId,
};
use inlet_core::pk::ops::{PkOp, PkWrite};
use inlet_core::wal::ColumnRange;
use inlet_index::pk::{Change, ChangeRecord, KeyState};
use inlet_index::{
    CatalogError, ChunkCommitRequest, ChunkCursor, ChunkRejected, CommitLog, CommitRequest,
    CommittedChunk, Index, IndexOptions, LakeCatalog, LakeCommit, LakeCommitError, LakeFileEntry,
    LogRead, ProducerRef, ScannedKey,
};
use inlet_wire::{IndexPortsService, Member, ReaderPort, RemoteIndex};
use slatedb::object_store::memory::InMemory;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

/// A clock that moves one millisecond per reading, so both runs see the same times.
#[derive(Debug, Default)]
struct StepClock(AtomicI64);

impl Clock for StepClock {
    fn now(&self) -> TimestampMicros {
        TimestampMicros(1_700_000_000_000_000 + self.0.fetch_add(1000, Ordering::SeqCst))
    }
}

/// The three ports of one implementation, and the owner's index for catalog changes (which
/// no port offers).
struct Ports {
    index: Index,
    commit: Arc<dyn CommitLog>,
    read: Arc<dyn LogRead>,
    lake: Arc<dyn LakeCatalog>,
    stop: Option<watch::Sender<bool>>,
}

impl Ports {
    async fn close(self) {
        if let Some(stop) = self.stop {
            let _ = stop.send(true);
        }
        self.index.close().await.expect("index closes");
    }
}

async fn open_index(store: Arc<InMemory>) -> Index {
    let env = Env {
        clock: Arc::new(StepClock::default()),
        ids: Arc::new(SeededIdGen::new(7)),
    };
    let index = Index::open(store, IndexOptions::default(), env)
        .await
        .expect("index opens");
    index
        .create_database("db", "", false)
        .await
        .expect("database");
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
    let descriptor = inlet_testkit::table_descriptor(schema, 2);
    index
        .create_table("db", "t", descriptor, false)
        .await
        .expect("table");
    index
}

async fn in_process() -> Ports {
    let index = open_index(Arc::new(InMemory::new())).await;
    Ports {
        commit: Arc::new(index.clone()),
        read: Arc::new(index.clone()),
        lake: Arc::new(index.clone()),
        index,
        stop: None,
    }
}

/// How the remote variant reads the log.
#[derive(Clone, Copy, Debug)]
enum RemoteReads {
    /// Everything through the owner.
    Owner,
    /// As a reader process does: history from an index replica, tails from the owner.
    Replica,
}

async fn remote(reads: RemoteReads) -> Ports {
    let store = Arc::new(InMemory::new());
    let index = open_index(store.clone()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let service = IndexPortsService::new(
        index.clone(),
        Member {
            node_id: "owner".to_owned(),
            endpoint: format!("http://{addr}"),
            roles: vec!["index".to_owned()],
        },
    );
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }),
    );
    let remote = RemoteIndex::fixed(&format!("http://{addr}"));
    let read: Arc<dyn LogRead> = match reads {
        RemoteReads::Owner => Arc::new(remote.clone()),
        RemoteReads::Replica => Arc::new(ReaderPort::new(
            &remote,
            store,
            IndexOptions {
                replica_poll_interval: Duration::from_millis(100),
                ..IndexOptions::default()
            }
            .replica(),
        )),
    };
    Ports {
        commit: Arc::new(remote.clone()),
        read,
        lake: Arc::new(remote),
        index,
        stop: Some(stop),
    }
}

/// The schema id of a table that was never altered.
const FIRST_SCHEMA: SchemaId = SchemaId(0);

fn chunk(stream: StreamId, rows: u32, producer: Option<ProducerRef>) -> ChunkCommitRequest {
    ChunkCommitRequest {
        stream,
        schema_id: FIRST_SCHEMA,
        chunk_offset: 0,
        chunk_len: 100,
        meta_len: 10,
        body_offset: 16,
        chunk_crc: 1,
        meta_crc: 2,
        row_count: rows,
        producer,
        columns: Vec::new(),
        pk_writes: None,
    }
}

fn commit(object: u128, chunks: Vec<ChunkCommitRequest>) -> CommitRequest {
    CommitRequest {
        object: WalObjectId(object),
        footer_offset: 100,
        footer_len: 20,
        chunks,
    }
}

impl Ports {
    /// Commits `request` and waits until it is durable (or refused).
    async fn commit_now(
        &self,
        request: CommitRequest,
    ) -> Vec<Result<CommittedChunk, ChunkRejected>> {
        self.commit
            .submit_commit(request)
            .await
            .expect("queued")
            .wait()
            .await
            .expect("answered")
    }
}

/// Runs `scenario` against every implementation and checks their transcripts are equal.
async fn conform<F, Fut>(scenario: F)
where
    F: Fn(Arc<Ports>) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let local = Arc::new(in_process().await);
    let local_transcript = scenario(local.clone()).await;
    assert!(
        !local_transcript.is_empty(),
        "the scenario recorded nothing"
    );
    let mut all = vec![local];
    for reads in [RemoteReads::Owner, RemoteReads::Replica] {
        let far = Arc::new(remote(reads).await);
        let remote_transcript = scenario(far.clone()).await;
        assert_eq!(
            local_transcript, remote_transcript,
            "in-process and remote ports ({reads:?} reads) differ"
        );
        all.push(far);
    }
    for ports in all {
        Arc::into_inner(ports)
            .expect("scenario released the ports")
            .close()
            .await;
    }
}

fn stream(table: TableId, bucket: u32) -> StreamId {
    StreamId::new(table, PartitionId(0), Bucket(bucket))
}

#[tokio::test]
async fn table_lookups_and_their_errors_agree() {
    conform(|ports| async move {
        let mut out = Vec::new();
        let found = ports.commit.table("db", "t").await.expect("table found");
        assert_eq!(*found, *ports.index.table("db", "t").expect("table"));
        assert_eq!(found.schema_id, FIRST_SCHEMA);
        out.push(format!("{found:?}"));
        let read = ports.read.table("db", "t").await.expect("table found");
        assert_eq!(found, read);
        let no_db = ports
            .commit
            .table("nope", "t")
            .await
            .expect_err("no database");
        assert!(no_db.to_string().contains("database `nope` not found"));
        out.push(no_db.to_string());
        let no_table = ports.read.table("db", "nope").await.expect_err("no table");
        assert!(no_table.to_string().contains("table `db.nope` not found"));
        out.push(no_table.to_string());
        out
    })
    .await;
}

/// After an ALTER, the table as the owner has it shows the change at once, through every
/// port: what a writer or reader asks when a request names a column its table lacks.
#[tokio::test]
async fn the_owners_table_has_an_alter_at_once() {
    conform(|ports| async move {
        let mut out = Vec::new();
        let before = ports.commit.table("db", "t").await.expect("table");
        let added = Arc::new(Field::new("w", DataType::Utf8, true));
        ports
            .index
            .alter_table(
                "db",
                "t",
                inlet_core::table::TableAlteration {
                    add_columns: vec![added],
                    ..Default::default()
                },
            )
            .await
            .expect("altered");
        let written = ports
            .commit
            .table_from_owner("db", "t")
            .await
            .expect("table");
        let read = ports.read.table_from_owner("db", "t").await.expect("table");
        for table in [&written, &read] {
            assert_eq!(table.schema_id, SchemaId(before.schema_id.0 + 1));
            assert!(table.descriptor.schema.field_with_name("w").is_ok());
        }
        out.push(format!("{:?}", written.descriptor.schema.fields().len()));
        out
    })
    .await;
}

/// Partitions added through the commit port: created once with the same ids whichever port
/// asks, refusals and missing tables reported as the same errors, and chunks of the new
/// partitions commit at once.
#[tokio::test]
async fn partitions_are_added_through_every_commit_port() {
    conform(|ports| async move {
        let mut out = Vec::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("day", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
        ]));
        let mut descriptor = inlet_testkit::table_descriptor(schema, 2);
        descriptor.partition_key = vec!["day".to_owned()];
        ports
            .index
            .create_table("db", "p", descriptor, false)
            .await
            .expect("partitioned table");
        let day = |d: &str| vec![d.to_owned()];
        let (table, ids) = ports
            .commit
            .add_partitions("db", "p", vec![day("d1"), day("d2"), day("d1")])
            .await
            .expect("added");
        assert_eq!(ids, [PartitionId(1), PartitionId(2), PartitionId(1)]);
        assert_eq!(table.partitions.len(), 2);
        out.push(format!("{ids:?}"));
        let (_, again) = ports
            .commit
            .add_partitions("db", "p", vec![day("d2"), day("d3")])
            .await
            .expect("added");
        assert_eq!(again, [PartitionId(2), PartitionId(3)]);
        let refused = ports
            .commit
            .add_partitions("db", "p", vec![day("a b")])
            .await
            .expect_err("refused");
        assert!(
            matches!(&refused, CatalogError::PartitionsRefused { table, reason }
                if table == "db.p" && reason.contains("a b")),
            "{refused:?}"
        );
        out.push(refused.to_string());
        let missing = ports
            .commit
            .add_partitions("db", "none", vec![day("d1")])
            .await
            .expect_err("no table");
        assert!(
            matches!(missing, CatalogError::TableNotFound { .. }),
            "{missing:?}"
        );
        out.push(missing.to_string());
        let stream = StreamId::new(table.id, PartitionId(3), Bucket(1));
        let outcome = ports
            .commit
            .submit_commit(commit(1, vec![chunk(stream, 4, None)]))
            .await
            .expect("queued")
            .wait()
            .await
            .expect("committed");
        out.push(format!("{outcome:?}"));
        let read = ports.read.table_from_owner("db", "p").await.expect("table");
        assert_eq!(read.partitions.len(), 3);
        out
    })
    .await;
}

#[tokio::test]
async fn pipelined_commits_get_dense_offsets_in_submission_order() {
    conform(|ports| async move {
        let mut out = Vec::new();
        let table = ports.commit.table("db", "t").await.expect("table").id;
        let s0 = stream(table, 0);
        let s1 = stream(table, 1);
        // Submit 40 commits before waiting for any: they must apply in submission order.
        let mut pending = Vec::new();
        for i in 0..40u32 {
            let chunks = vec![chunk(s0, i + 1, None), chunk(s1, 2, None)];
            pending.push(
                ports
                    .commit
                    .submit_commit(commit(u128::from(i) + 1, chunks))
                    .await
                    .expect("queued"),
            );
        }
        let mut expected_s0 = 0u64;
        for (i, pending) in pending.into_iter().enumerate() {
            let outcomes = pending.wait().await.expect("committed");
            let first = outcomes[0].clone().expect("chunk committed");
            assert_eq!(first.base_offset, Offset(expected_s0), "commit {i}");
            expected_s0 += i as u64 + 1;
            let second = outcomes[1].clone().expect("chunk committed");
            assert_eq!(second.base_offset, Offset(2 * i as u64));
            out.push(format!("{outcomes:?}"));
        }
        let tail = ports.read.tail(s0).await.expect("tail");
        assert_eq!(tail.next_offset, Offset(expected_s0));
        out.push(format!("{tail:?}"));
        // Pages of 7, and the cursor, list the same entries as the owner's index.
        let mut paged = Vec::new();
        let mut from = Offset(0);
        loop {
            let page = ports.read.chunks(s0, from, 7).await.expect("page");
            assert!(page.len() <= 7);
            let Some(last) = page.last() else { break };
            from = last.end_offset();
            paged.extend(page);
        }
        assert_eq!(paged.len(), 40);
        let mut cursor = ChunkCursor::new(ports.read.clone(), s0, Offset(5));
        let mut via_cursor = Vec::new();
        while let Some(entry) = cursor.next().await.expect("cursor") {
            via_cursor.push(entry);
        }
        assert_eq!(
            via_cursor[0].base_offset,
            Offset(3),
            "the chunk holding offset 5"
        );
        assert_eq!(&paged[2..], &via_cursor[..]);
        out.push(format!("{paged:?}"));
        let ts = paged[10].commit_ts;
        let at = ports.read.offset_for_timestamp(s0, ts).await.expect("time");
        // The time index is sparse: it may point earlier, never later.
        assert!(at <= paged[10].base_offset);
        out.push(format!("{at:?}"));
        let live = ports.lake.live_wal_objects().await.expect("live objects");
        assert_eq!(live.len(), 40);
        out.push(format!("{live:?}"));
        out
    })
    .await;
}

#[tokio::test]
async fn refusals_of_chunks_come_back_exactly() {
    conform(|ports| async move {
        let mut out = Vec::new();
        let table = ports.commit.table("db", "t").await.expect("table").id;
        let s0 = stream(table, 0);
        let producer = |sequence| Some(ProducerRef { id: 42, sequence });
        let first = ports
            .commit_now(commit(1, vec![chunk(s0, 3, producer(5))]))
            .await;
        assert!(first[0].is_ok());
        let retry = ports
            .commit_now(commit(2, vec![chunk(s0, 3, producer(5))]))
            .await;
        assert!(matches!(retry[0], Err(ChunkRejected::Duplicate { .. })));
        let stale = ports
            .commit_now(commit(3, vec![chunk(s0, 3, producer(4))]))
            .await;
        assert!(matches!(
            stale[0],
            Err(ChunkRejected::StaleSequence { last: 5, .. })
        ));
        let no_stream = ports
            .commit_now(commit(4, vec![chunk(stream(table, 9), 1, None)]))
            .await;
        assert!(matches!(
            no_stream[0],
            Err(ChunkRejected::NoSuchStream {
                bucket_count: 2,
                ..
            })
        ));
        let other_schema = ChunkCommitRequest {
            schema_id: SchemaId(9),
            ..chunk(s0, 1, None)
        };
        let changed = ports.commit_now(commit(5, vec![other_schema])).await;
        assert!(matches!(
            changed[0],
            Err(ChunkRejected::SchemaChanged { .. })
        ));
        let range = ColumnRange {
            offset: 0,
            len: 8,
            crc32c: 7,
        };
        let wrong_ranges = ChunkCommitRequest {
            columns: vec![range; 3],
            ..chunk(s0, 1, None)
        };
        let ranges = ports.commit_now(commit(7, vec![wrong_ranges])).await;
        // Ranges for every column are kept in the entry and listed back exactly.
        let with_range = ChunkCommitRequest {
            columns: vec![range],
            ..chunk(s0, 2, None)
        };
        let kept = ports.commit_now(commit(8, vec![with_range])).await;
        let kept_at = kept[0]
            .clone()
            .expect("chunk with ranges committed")
            .base_offset;
        let listed = ports.read.chunks(s0, kept_at, 1).await.expect("listed");
        assert_eq!(listed[0].columns, vec![range]);
        out.push(format!("{listed:?}"));
        assert!(matches!(
            ranges[0],
            Err(ChunkRejected::ColumnRanges {
                found: 3,
                columns: 1,
                ..
            })
        ));
        ports
            .index
            .drop_table("db", "t", inlet_index::DropOptions::default())
            .await
            .expect("dropped");
        let dropped = ports.commit_now(commit(6, vec![chunk(s0, 1, None)])).await;
        assert!(matches!(
            dropped[0],
            Err(ChunkRejected::TableDropped { .. })
        ));
        for outcome in [first, retry, stale, no_stream, changed, ranges, dropped] {
            out.push(format!("{outcome:?}"));
        }
        // The dropped table is listed, then purged whole through the port.
        let listed = ports.lake.dropped_tables().await.expect("dropped tables");
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].id, listed[0].purge_lake), (table, false));
        out.push(format!("{:?}", (listed[0].id, &listed[0].name)));
        let purged = ports.lake.purge_table(table).await.expect("purged");
        assert!(purged.done && purged.entries > 0, "{purged:?}");
        out.push(format!("{purged:?}"));
        assert!(
            ports
                .lake
                .dropped_tables()
                .await
                .expect("listed")
                .is_empty()
        );
        assert_eq!(ports.index.table_entries(table).await.expect("entries"), 0);
        out
    })
    .await;
}

/// A key write of key byte `key`: an upsert with image `[1, value]` at `version`, or a delete.
fn key_write(key: u8, upsert: Option<(u8, i64)>) -> PkWrite {
    match upsert {
        Some((value, version)) => PkWrite {
            op: PkOp::Upsert,
            key: vec![1, key],
            image: vec![1, value],
            version: Some(version),
            columns: None,
        },
        None => PkWrite {
            op: PkOp::Delete,
            key: vec![1, key],
            image: Vec::new(),
            version: None,
            columns: None,
        },
    }
}

fn keyed_chunk(stream: StreamId, writes: Vec<PkWrite>) -> ChunkCommitRequest {
    ChunkCommitRequest {
        pk_writes: Some(Arc::new(writes.clone())),
        ..chunk(stream, writes.len() as u32, None)
    }
}

#[tokio::test]
async fn primary_key_writes_are_applied_and_read_back_the_same() {
    conform(|ports| async move {
        let mut out = Vec::new();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ver", DataType::Int64, false),
        ]));
        let mut descriptor = inlet_testkit::table_descriptor(schema, 1);
        descriptor.primary_key = vec!["id".into()];
        descriptor
            .options
            .insert("merge.engine".into(), "versioned".into());
        descriptor
            .options
            .insert("merge.version-column".into(), "ver".into());
        let table = ports
            .index
            .create_table("db", "pk", descriptor, false)
            .await
            .expect("primary-key table")
            .id;
        let s = stream(table, 0);
        // Offsets 0..3: insert key 1, insert key 2, update key 1 (newer version).
        let first = ports
            .commit_now(commit(
                1,
                vec![keyed_chunk(
                    s,
                    vec![
                        key_write(1, Some((10, 5))),
                        key_write(2, Some((20, 1))),
                        key_write(1, Some((11, 6))),
                    ],
                )],
            ))
            .await;
        // Offsets 3..6: an older version of key 1 (ignored), delete key 2, delete key 3
        // (absent: ignored).
        let second = ports
            .commit_now(commit(
                2,
                vec![keyed_chunk(
                    s,
                    vec![
                        key_write(1, Some((12, 4))),
                        key_write(2, None),
                        key_write(3, None),
                    ],
                )],
            ))
            .await;
        let states = ports
            .read
            .lookup(s, &[vec![1, 1], vec![1, 2], vec![1, 3]])
            .await
            .expect("lookup");
        assert_eq!(
            states,
            vec![
                Some(KeyState {
                    offset: Offset(2),
                    committed: first[0].as_ref().expect("committed").commit_ts,
                    version: Some(6),
                    image: vec![1, 11]
                }),
                None,
                None
            ]
        );
        // A scan of the bucket: its one live key, once the point it reads is at the tail (a
        // replica's may lag by its poll interval; its bounds say so).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let scan = loop {
            let scan = ports.read.scan_keys(s).await.expect("scan");
            assert!(scan.low <= scan.high && scan.high <= Offset(6), "{scan:?}");
            if scan.low == Offset(6) || tokio::time::Instant::now() > deadline {
                break scan;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!((scan.low, scan.high), (Offset(6), Offset(6)));
        let rows: Vec<Vec<ScannedKey>> = scan.pages.try_collect().await.expect("pages");
        assert_eq!(
            rows,
            vec![vec![ScannedKey {
                key: vec![1, 1],
                state: states[0].clone().expect("key 1"),
            }]]
        );
        let records = [
            ports
                .read
                .change_record(s, Offset(3))
                .await
                .expect("record"),
            ports
                .read
                .change_record(s, Offset(6))
                .await
                .expect("record"),
        ];
        assert_eq!(
            records,
            [
                Some(ChangeRecord {
                    changes: vec![
                        Change::Insert { after: None },
                        Change::Insert { after: None },
                        Change::Update {
                            before: vec![1, 10],
                            after: None
                        }
                    ]
                }),
                Some(ChangeRecord {
                    changes: vec![
                        Change::Ignored,
                        Change::Delete {
                            before: vec![1, 20]
                        },
                        Change::Ignored
                    ]
                }),
            ]
        );
        assert_eq!(
            ports.read.change_record(s, Offset(4)).await.expect("none"),
            None
        );

        // Refused: key writes to a log table, none to a primary-key table, a count that is
        // not the chunk's rows, an upsert without the version `versioned` needs.
        let log_stream = stream(ports.index.table("db", "t").expect("t").id, 0);
        let refused = ports
            .commit_now(commit(
                3,
                vec![
                    keyed_chunk(log_stream, vec![key_write(1, Some((1, 1)))]),
                    chunk(s, 1, None),
                    ChunkCommitRequest {
                        row_count: 2,
                        ..keyed_chunk(s, vec![key_write(1, Some((1, 9)))])
                    },
                    keyed_chunk(
                        s,
                        vec![PkWrite {
                            version: None,
                            ..key_write(1, Some((1, 9)))
                        }],
                    ),
                ],
            ))
            .await;
        for outcome in &refused {
            assert!(
                matches!(outcome, Err(ChunkRejected::PrimaryKeyWrites { .. })),
                "{outcome:?}"
            );
        }
        let tail = ports.read.tail(s).await.expect("tail");
        assert_eq!(
            tail.next_offset,
            Offset(6),
            "refused chunks took no offsets"
        );
        for outcome in [first, second, refused] {
            out.push(format!("{outcome:?}"));
        }
        out.push(format!("{states:?} {records:?}"));
        out
    })
    .await;
}

#[tokio::test]
async fn a_subscriber_wakes_on_each_commit_with_the_durable_tail() {
    conform(|ports| async move {
        let mut out = Vec::new();
        let table = ports.commit.table("db", "t").await.expect("table").id;
        let s1 = stream(table, 1);
        let mut tails = ports.read.subscribe(s1).await.expect("subscribed");
        assert_eq!(tails.borrow_and_update().next_offset, Offset(0));
        for i in 0..3u32 {
            ports
                .commit_now(commit(u128::from(i) + 1, vec![chunk(s1, 4, None)]))
                .await;
            let expected = Offset(4 * (u64::from(i) + 1));
            tokio::time::timeout(
                Duration::from_secs(10),
                tails.wait_for(|tail| tail.next_offset >= expected),
            )
            .await
            .expect("woken within 10 s")
            .expect("still subscribed");
            let tail = *tails.borrow_and_update();
            assert_eq!(tail.next_offset, expected);
            out.push(format!("{tail:?}"));
        }
        out
    })
    .await;
}

#[tokio::test]
async fn leases_and_lake_commits_are_fenced_and_compared_the_same() {
    conform(|ports| async move {
        let mut out = Vec::new();
        let table = ports.commit.table("db", "t").await.expect("table").id;
        let s0 = stream(table, 0);
        ports.commit_now(commit(1, vec![chunk(s0, 10, None)])).await;
        let ttl = Duration::from_secs(60);
        let lease = ports
            .lake
            .acquire_lake_lease(table, 1, ttl)
            .await
            .expect("lease");
        out.push(format!("{lease:?}"));
        let fenced = ports
            .lake
            .acquire_lake_lease(table, 2, ttl)
            .await
            .expect_err("held by another");
        assert!(matches!(fenced, LakeCommitError::Fenced { owner: 2, .. }));
        out.push(format!("{fenced:?}"));
        let missing = ports
            .lake
            .acquire_lake_lease(TableId(999), 1, ttl)
            .await
            .expect_err("no such table");
        assert!(matches!(missing, LakeCommitError::TableNotFound { .. }));
        out.push(format!("{missing:?}"));
        let file = LakeFileEntry {
            path: "lake/db/t-1/data/f.parquet".to_owned(),
            base_offset: Offset(0),
            row_count: 6,
            file_size: 1234,
            snapshot_id: 77,
            min_ts: TimestampMicros(1),
            max_ts: TimestampMicros(2),
            schema_id: None,
        };
        let lake_commit = |expected: Option<&str>| LakeCommit {
            table,
            lease,
            expected_metadata_location: expected.map(str::to_owned),
            metadata_location: "lake/db/t-1/metadata/v1.json".to_owned(),
            snapshot_id: Some(77),
            watermarks: BTreeMap::from([(Bucket(0), Offset(6))]),
            added_files: vec![(Bucket(0), file.clone())],
            removed_files: vec![],
            earliest: BTreeMap::new(),
            key_rows: Vec::new(),
        };
        let conflict = ports
            .lake
            .commit_lake(lake_commit(Some("lake/db/t-1/metadata/v0.json")))
            .await
            .expect_err("built on a metadata that is not current");
        assert!(matches!(conflict, LakeCommitError::Conflict { .. }));
        out.push(format!("{conflict:?}"));
        let committed = ports
            .lake
            .commit_lake(lake_commit(None))
            .await
            .expect("lake commit");
        out.push(format!("{committed:?}"));
        let (tail, watermark) = ports.lake.stream_state(s0).await.expect("state");
        assert_eq!(watermark.offset, Offset(6));
        assert_eq!(
            ports.read.lake_watermark(s0).await.expect("watermark"),
            watermark
        );
        out.push(format!("{tail:?} {watermark:?}"));
        let files = ports
            .read
            .lake_files(s0, Offset(0), 10)
            .await
            .expect("files");
        assert_eq!(files, vec![file]);
        let record = ports.lake.lake_table(table).await.expect("record");
        out.push(format!("{files:?} {record:?}"));
        let tables = ports.lake.tables().await.expect("tables");
        assert_eq!(tables.len(), 1);
        out.push(format!("{tables:?}"));
        ports
            .lake
            .release_lake_lease(table, lease)
            .await
            .expect("released");
        let taken = ports
            .lake
            .acquire_lake_lease(table, 2, ttl)
            .await
            .expect("free after release");
        assert!(taken.epoch > lease.epoch);
        out.push(format!("{taken:?}"));
        out
    })
    .await;
}
