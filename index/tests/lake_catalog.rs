//! The lake catalog in the index: leases fence compactors, a commit is a compare-and-swap on
//! the metadata location, and one batch moves watermarks, records lake files and trims the
//! chunk entries the watermark covers; all of it survives a reopen.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::{DataType, Field, Schema};
use inlet_core::clock::Env;
use inlet_core::ids::{
    Bucket, Offset, PartitionId, SchemaId, StreamId, TableId, TimestampMicros, WalObjectId,
};
use inlet_core::table::TableDescriptor;
use inlet_index::{
    ChunkCommitRequest, CommitRequest, Index, IndexOptions, LakeCommit, LakeCommitError,
    LakeFileEntry, LakeLease,
};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::memory::InMemory;

const LEASE: Duration = Duration::from_secs(60);

async fn open(store: &Arc<dyn ObjectStore>) -> Index {
    Index::open(store.clone(), IndexOptions::default(), Env::system())
        .await
        .expect("index opens")
}

async fn create_table(index: &Index) -> TableId {
    index
        .create_database("db", "", true)
        .await
        .expect("database");
    let descriptor = TableDescriptor {
        schema: Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)])),
        bucket_count: 2,
        bucket_key: vec![],
        partition_key: vec![],
        primary_key: vec![],
        comment: String::new(),
        options: [("lake.enabled".to_owned(), "true".to_owned())].into(),
    };
    index
        .create_table("db", "t", descriptor, false)
        .await
        .expect("table")
        .id
}

fn stream(table: TableId, bucket: u32) -> StreamId {
    StreamId::new(table, PartitionId(0), Bucket(bucket))
}

/// Commits one WAL object holding one chunk of `rows` rows for `stream`.
async fn append(index: &Index, object: u128, stream: StreamId, rows: u32) {
    let request = CommitRequest {
        object: WalObjectId(object),
        footer_offset: 0,
        footer_len: 0,
        chunks: vec![ChunkCommitRequest {
            stream,
            schema_id: SchemaId(0),
            chunk_offset: 16,
            chunk_len: 100,
            meta_len: 50,
            body_offset: 56,
            chunk_crc: 0,
            meta_crc: 0,
            row_count: rows,
            producer: None,
            columns: Vec::new(),
            pk_writes: None,
        }],
    };
    let reply = index.commit(request).await.expect("commit");
    assert!(reply.iter().all(Result::is_ok), "{reply:?}");
}

fn file(name: &str, base: u64, rows: u64) -> LakeFileEntry {
    LakeFileEntry {
        path: format!("lake/db/t/data/{name}.parquet"),
        base_offset: Offset(base),
        row_count: rows,
        file_size: 1000,
        snapshot_id: 7,
        min_ts: TimestampMicros(1),
        max_ts: TimestampMicros(2),
        schema_id: None,
    }
}

fn commit(
    table: TableId,
    lease: LakeLease,
    expected: Option<&str>,
    location: &str,
    watermark: u64,
    files: Vec<LakeFileEntry>,
) -> LakeCommit {
    LakeCommit {
        table,
        lease,
        expected_metadata_location: expected.map(str::to_owned),
        metadata_location: location.to_owned(),
        snapshot_id: Some(7),
        watermarks: BTreeMap::from([(Bucket(0), Offset(watermark))]),
        added_files: files.into_iter().map(|f| (Bucket(0), f)).collect(),
        removed_files: vec![],
        earliest: BTreeMap::new(),
        key_rows: Vec::new(),
    }
}

/// A table whose bucket 0 holds offsets 0..20, tiered as files `a` (0..10) and `b`
/// (10..20) at metadata `m1`, with the lease that committed them.
async fn tiered_in_two_files() -> (Index, TableId, LakeLease) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let index = open(&store).await;
    let table = create_table(&index).await;
    let s0 = stream(table, 0);
    append(&index, 1, s0, 10).await;
    append(&index, 2, s0, 10).await;
    let lease = index
        .acquire_lake_lease(table, 1, LEASE)
        .await
        .expect("lease");
    index
        .commit_lake(commit(
            table,
            lease,
            None,
            "m1",
            20,
            vec![file("a", 0, 10), file("b", 10, 10)],
        ))
        .await
        .expect("tier");
    (index, table, lease)
}

async fn chunk_bases(index: &Index, stream: StreamId) -> Vec<u64> {
    let mut scan = index.chunks(stream, Offset(0)).await.expect("scan");
    let mut bases = Vec::new();
    while let Some(entry) = scan.next().await.expect("entry") {
        bases.push(entry.base_offset.0);
    }
    bases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_commit_moves_watermark_records_files_and_trims_chunks_atomically() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let index = open(&store).await;
    let table = create_table(&index).await;
    let s0 = stream(table, 0);
    for object in 1..=3 {
        append(&index, object, s0, 10).await;
    }
    append(&index, 4, stream(table, 1), 5).await;
    assert_eq!(chunk_bases(&index, s0).await, vec![0, 10, 20]);

    let lease = index
        .acquire_lake_lease(table, 1, LEASE)
        .await
        .expect("lease");
    let committed = index
        .commit_lake(commit(
            table,
            lease,
            None,
            "file:///m/00001.metadata.json",
            20,
            vec![file("a", 0, 20)],
        ))
        .await
        .expect("lake commit");
    assert_eq!(committed.trimmed_chunks, 2);
    assert_eq!(
        committed.trimmed_objects.into_iter().collect::<Vec<_>>(),
        vec![WalObjectId(1), WalObjectId(2)]
    );
    assert_eq!(chunk_bases(&index, s0).await, vec![20]);
    assert_eq!(
        chunk_bases(&index, stream(table, 1)).await,
        vec![0],
        "other buckets are untouched"
    );
    let live = index.live_wal_objects().await.expect("live objects");
    assert_eq!(
        live.into_iter().collect::<Vec<_>>(),
        vec![WalObjectId(3), WalObjectId(4)]
    );

    // Survives a reopen, and the tail did not move.
    index.close().await.expect("close");
    let index = open(&store).await;
    let record = index
        .lake_table(table)
        .await
        .expect("read")
        .expect("record");
    assert_eq!(
        record.metadata_location.as_deref(),
        Some("file:///m/00001.metadata.json")
    );
    assert_eq!(record.snapshot_id, Some(7));
    assert_eq!(
        index.lake_watermark(s0).await.expect("wm").offset,
        Offset(20)
    );
    assert_eq!(
        index
            .lake_watermark(stream(table, 1))
            .await
            .expect("wm")
            .offset,
        Offset(0)
    );
    let tail = index.tail(s0).await.expect("tail");
    assert_eq!(
        (tail.earliest_offset, tail.next_offset),
        (Offset(0), Offset(30))
    );
    let mut files = index.lake_files(s0, Offset(5)).await.expect("files");
    let first = files.next().await.expect("file").expect("one file");
    assert_eq!(
        (first.base_offset, first.end_offset()),
        (Offset(0), Offset(20))
    );
    assert!(files.next().await.expect("end").is_none());
    assert!(
        index
            .lake_files(s0, Offset(20))
            .await
            .expect("files")
            .next()
            .await
            .expect("end")
            .is_none(),
        "no file holds offset 20"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_built_on_a_stale_base_or_an_old_lease_is_refused_and_changes_nothing() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let index = open(&store).await;
    let table = create_table(&index).await;
    let s0 = stream(table, 0);
    append(&index, 1, s0, 10).await;
    append(&index, 2, s0, 10).await;

    let first = index
        .acquire_lake_lease(table, 1, LEASE)
        .await
        .expect("lease");
    assert_eq!(first.epoch, 1);
    // A second compactor cannot take a live lease.
    match index.acquire_lake_lease(table, 2, LEASE).await {
        Err(LakeCommitError::Fenced { holder, .. }) => assert_eq!(holder, Some(first)),
        other => panic!("expected fenced, got {other:?}"),
    }
    index
        .commit_lake(commit(table, first, None, "m1", 10, vec![file("a", 0, 10)]))
        .await
        .expect("first commit");
    // The same round retried (same base) loses the compare-and-swap.
    match index
        .commit_lake(commit(table, first, None, "m1-retry", 10, vec![]))
        .await
    {
        Err(LakeCommitError::Conflict { current, .. }) => {
            assert_eq!(current.as_deref(), Some("m1"))
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // After a release the next holder gets a higher epoch and fences the old one.
    index
        .release_lake_lease(table, first)
        .await
        .expect("release");
    let second = index
        .acquire_lake_lease(table, 2, LEASE)
        .await
        .expect("lease");
    assert!(second.epoch > first.epoch);
    match index
        .commit_lake(commit(table, first, Some("m1"), "m2-zombie", 20, vec![]))
        .await
    {
        Err(LakeCommitError::Fenced { .. }) => {}
        other => panic!("expected fenced, got {other:?}"),
    }
    // Invalid watermarks: past the tail, or backwards.
    for watermark in [21, 5] {
        match index
            .commit_lake(commit(table, second, Some("m1"), "m2", watermark, vec![]))
            .await
        {
            Err(LakeCommitError::Invalid { .. }) => {}
            other => panic!("watermark {watermark}: expected invalid, got {other:?}"),
        }
    }
    // None of the refused commits changed anything.
    let record = index
        .lake_table(table)
        .await
        .expect("read")
        .expect("record");
    assert_eq!(record.metadata_location.as_deref(), Some("m1"));
    assert_eq!(
        index.lake_watermark(s0).await.expect("wm").offset,
        Offset(10)
    );
    assert_eq!(chunk_bases(&index, s0).await, vec![10]);
    index
        .commit_lake(commit(
            table,
            second,
            Some("m1"),
            "m2",
            20,
            vec![file("b", 10, 10)],
        ))
        .await
        .expect("the current holder commits");
    assert_eq!(chunk_bases(&index, s0).await, Vec::<u64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_moves_the_earliest_offset_and_removes_lake_files() {
    let (index, table, lease) = tiered_in_two_files().await;
    let s0 = stream(table, 0);
    let mut expire = commit(table, lease, Some("m1"), "m2", 20, vec![]);
    expire.watermarks.clear();
    expire.removed_files = vec![(Bucket(0), Offset(10))];
    expire.earliest = BTreeMap::from([(Bucket(0), Offset(10))]);
    index.commit_lake(expire).await.expect("expire");
    let tail = index.tail(s0).await.expect("tail");
    assert_eq!(tail.earliest_offset, Offset(10));
    let mut files = index.lake_files(s0, Offset(0)).await.expect("files");
    assert_eq!(
        files.next().await.expect("file").expect("one").base_offset,
        Offset(10)
    );
    assert!(files.next().await.expect("end").is_none());
    // The earliest offset cannot pass the watermark.
    let mut too_far = commit(table, lease, Some("m2"), "m3", 20, vec![]);
    too_far.watermarks.clear();
    too_far.earliest = BTreeMap::from([(Bucket(0), Offset(21))]);
    assert!(matches!(
        index.commit_lake(too_far).await,
        Err(LakeCommitError::Invalid { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_can_replace_files_with_one_ending_where_they_did() {
    let (index, table, lease) = tiered_in_two_files().await;
    let s0 = stream(table, 0);
    // One file for both, keyed by the same end offset as `b`.
    let mut replace = commit(table, lease, Some("m1"), "m2", 20, vec![file("ab", 0, 20)]);
    replace.watermarks.clear();
    replace.removed_files = vec![(Bucket(0), Offset(10)), (Bucket(0), Offset(20))];
    index.commit_lake(replace).await.expect("replace");
    let mut files = index.lake_files(s0, Offset(0)).await.expect("files");
    let only = files.next().await.expect("file").expect("the new file");
    assert_eq!(
        (only.path.as_str(), only.base_offset, only.row_count),
        ("lake/db/t/data/ab.parquet", Offset(0), 20)
    );
    assert!(files.next().await.expect("end").is_none());
}
