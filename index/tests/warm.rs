//! Opening the index warms SlateDB's caches: on a node that just started, the first reads
//! of recent index entries make no object-store GET (on the owner and on a replica), and
//! with no data budget they do.

use std::sync::Arc;
use std::time::Duration;

use arrow_schema::{DataType, Field, Schema};
use inlet_core::clock::Env;
use inlet_core::ids::{Bucket, Offset, PartitionId, SchemaId, StreamId, TableId, WalObjectId};
use inlet_core::table::TableDescriptor;
use inlet_index::replica::IndexReplica;
use inlet_index::{ChunkCommitRequest, CommitRequest, Index, IndexOptions};
use inlet_store::{InstrumentedStore, Op, Purpose, StoreMetrics};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::memory::InMemory;

const BUCKETS: u32 = 4;
const COMMITS: u128 = 200;

fn options(warm_bytes: u64) -> IndexOptions {
    IndexOptions {
        warm_bytes,
        // No manifest polls or compactions during the reads: their GETs are not reads.
        manifest_poll_interval: Duration::from_secs(3600),
        replica_poll_interval: Duration::from_secs(3600),
        ..IndexOptions::default()
    }
}

fn stream(table: TableId, bucket: u32) -> StreamId {
    StreamId::new(table, PartitionId(0), Bucket(bucket))
}

/// An index with `COMMITS` commits of one chunk per bucket, closed (so they are in an SST).
async fn written_index(store: &Arc<dyn ObjectStore>) -> TableId {
    let index = Index::open(store.clone(), options(0), Env::system())
        .await
        .expect("index opens");
    index
        .create_database("db", "", true)
        .await
        .expect("database");
    let descriptor = TableDescriptor {
        schema: Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)])),
        bucket_count: BUCKETS,
        bucket_key: vec![],
        partition_key: vec![],
        primary_key: vec![],
        comment: String::new(),
        options: Default::default(),
    };
    let table = index
        .create_table("db", "t", descriptor, false)
        .await
        .expect("table")
        .id;
    for object in 0..COMMITS {
        let chunks = (0..BUCKETS)
            .map(|bucket| ChunkCommitRequest {
                stream: stream(table, bucket),
                schema_id: SchemaId(0),
                chunk_offset: 16 + 100 * u64::from(bucket),
                chunk_len: 100,
                meta_len: 50,
                body_offset: 56,
                chunk_crc: 0,
                meta_crc: 0,
                row_count: 10,
                producer: None,
                columns: Vec::new(),
                pk_writes: None,
            })
            .collect();
        index
            .commit(CommitRequest {
                object: WalObjectId(object + 1),
                footer_offset: 0,
                footer_len: 0,
                chunks,
            })
            .await
            .expect("commit");
    }
    index.close().await.expect("index closes");
    table
}

/// Index GETs that found data while reading every bucket's chunk entries through `read`.
/// (A replica's background probes for the owner's next WAL file find nothing.)
async fn index_gets_of<F, Fut>(metrics: &StoreMetrics, read: F) -> u64
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = usize>,
{
    let before = metrics.snapshot();
    let entries = read().await;
    assert_eq!(
        entries,
        (COMMITS as usize) * BUCKETS as usize,
        "every entry read"
    );
    let during = metrics.snapshot().since(&before);
    [Op::Get, Op::GetRanges]
        .into_iter()
        .map(|op| {
            let counts = during.get(Purpose::Index, op);
            counts.requests - counts.expected_misses
        })
        .sum()
}

async fn owner_entries(index: &Index, table: TableId) -> usize {
    let mut entries = 0;
    for bucket in 0..BUCKETS {
        let mut scan = index
            .chunks(stream(table, bucket), Offset(0))
            .await
            .expect("scan");
        while scan.next().await.expect("entry").is_some() {
            entries += 1;
        }
    }
    entries
}

async fn replica_entries(replica: &IndexReplica, table: TableId) -> usize {
    let mut entries = 0;
    for bucket in 0..BUCKETS {
        entries += replica
            .chunks(stream(table, bucket), Offset(0), usize::MAX)
            .await
            .expect("listing")
            .len();
    }
    entries
}

/// A store holding an index written by [`written_index`], its request counters and the
/// table's id.
async fn written_store() -> (Arc<dyn ObjectStore>, StoreMetrics, TableId) {
    let instrumented = InstrumentedStore::new(InMemory::new());
    let metrics = instrumented.metrics().clone();
    let store: Arc<dyn ObjectStore> = Arc::new(instrumented);
    let table = written_index(&store).await;
    (store, metrics, table)
}

/// The warm-up budgets each test opens with, and whether the reads must then make no GET.
const BUDGETS: [(u64, bool); 2] = [(0, false), (32 << 20, true)];

/// Checks the `gets` a `node` made reading recent entries after opening `warmed` or not.
fn check_gets(node: &str, gets: u64, warmed: bool) {
    if warmed {
        assert_eq!(
            gets, 0,
            "a warmed {node} GETs no index block for recent entries"
        );
    } else {
        assert!(gets > 0, "without warming the first reads GET the blocks");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freshly_opened_owner_reads_recent_entries_from_its_warmed_cache() {
    let (store, metrics, table) = written_store().await;
    for (warm_bytes, warmed) in BUDGETS {
        let index = Index::open(store.clone(), options(warm_bytes), Env::system())
            .await
            .expect("index reopens");
        let gets = index_gets_of(&metrics, || owner_entries(&index, table)).await;
        check_gets("owner", gets, warmed);
        index.close().await.expect("index closes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freshly_opened_replica_reads_recent_entries_from_its_warmed_cache() {
    let (store, metrics, table) = written_store().await;
    for (warm_bytes, warmed) in BUDGETS {
        let replica = IndexReplica::open(store.clone(), &options(warm_bytes).replica())
            .await
            .expect("replica opens");
        let gets = index_gets_of(&metrics, || replica_entries(&replica, table)).await;
        check_gets("replica", gets, warmed);
        replica.close().await.expect("replica closes");
    }
}
