//! Tiering throughput of the lake writer on one core: how many MB of Arrow a round turns into
//! Parquet per second, and how big the Parquet is against the WAL's Arrow IPC.
//!
//! ```sh
//! cargo run --release -p inlet-compactor --example lake_throughput [rows per bucket] [dir]
//! ```
//!
//! Without `dir` the files go to an in-memory store (encoding cost only); with it, to a local
//! directory. Reports figures; passes or fails nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use inlet_compactor::lake::{LakeAppend, LakeRoot, LakeStorage, LakeTable, LakeWriteOptions};
use inlet_core::clock::Env;
use inlet_core::ids::{Bucket, DatabaseId, SchemaId, TableId, TimestampMicros};
use inlet_core::table::{TableDescriptor, TableInfo, read_schema};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::local::LocalFileSystem;
use slatedb::object_store::memory::InMemory;

const BUCKETS: u32 = 4;
const BATCH_ROWS: u64 = 8192;
const WORDS: [&str; 16] = [
    "apple", "pear", "fig", "plum", "cherry", "grape", "lemon", "lime", "mango", "kiwi", "peach",
    "melon", "berry", "date", "guava", "papaya",
];

fn table_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("item", DataType::Utf8, true),
        Field::new("qty", DataType::Int32, true),
        Field::new("price", DataType::Float64, true),
        Field::new("note", DataType::Utf8, true),
    ]))
}

/// A cheap deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Order-like rows: random ids and users, a small vocabulary of items, prices with cents,
/// a free-text note on some rows; commit timestamps a few rows apart.
fn batch(
    read_schema: &SchemaRef,
    rng: &mut Rng,
    bucket: u32,
    start: u64,
    rows: u64,
) -> RecordBatch {
    let n = rows as usize;
    let mut ids = Vec::with_capacity(n);
    let mut users = Vec::with_capacity(n);
    let mut items = Vec::with_capacity(n);
    let mut qty = Vec::with_capacity(n);
    let mut price = Vec::with_capacity(n);
    let mut notes = Vec::with_capacity(n);
    for _ in 0..n {
        let r = rng.next();
        ids.push((r >> 1) as i64);
        users.push(format!("user-{:06}", r % 200_000));
        items.push((!r.is_multiple_of(10)).then(|| WORDS[(r >> 8) as usize % WORDS.len()]));
        qty.push((!r.is_multiple_of(7)).then_some(((r >> 16) % 20) as i32 + 1));
        price.push(Some(((r >> 24) % 100_000) as f64 / 100.0));
        notes.push(
            r.is_multiple_of(4)
                .then(|| format!("deliver to door {} after {}pm", r % 997, r % 12)),
        );
    }
    let offsets: Vec<i64> = (start..start + rows).map(|o| o as i64).collect();
    let timestamps: Vec<i64> = offsets
        .iter()
        .map(|o| 1_790_000_000_000_000 + o / 64 * 5_000)
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(StringArray::from(users)),
        Arc::new(StringArray::from(items)),
        Arc::new(Int32Array::from(qty)),
        Arc::new(Float64Array::from(price)),
        Arc::new(StringArray::from(notes)),
        Arc::new(Int32Array::from(vec![bucket as i32; n])),
        Arc::new(Int64Array::from(offsets)),
        Arc::new(TimestampMicrosecondArray::from(timestamps).with_timezone("+00:00")),
    ];
    RecordBatch::try_new(read_schema.clone(), columns).expect("matches the read schema")
}

fn main() -> anyhow::Result<()> {
    let rows_per_bucket: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = std::env::args().nth(2);
    // One thread: the figure is per core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(rows_per_bucket, dir))
}

async fn run(rows_per_bucket: u64, dir: Option<String>) -> anyhow::Result<()> {
    let (store, root): (Arc<dyn ObjectStore>, LakeRoot) = match &dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            (
                Arc::new(LocalFileSystem::new_with_prefix(dir)?),
                LakeRoot::local(dir)?,
            )
        }
        None => (Arc::new(InMemory::new()), LakeRoot::memory("throughput")),
    };
    let storage = LakeStorage::new(root, store);
    let env = Env::system();
    let info = TableInfo {
        id: TableId(1),
        database: "bench".into(),
        database_id: DatabaseId(1),
        name: "orders".into(),
        schema_id: SchemaId(0),
        descriptor: TableDescriptor {
            schema: table_schema(),
            bucket_count: BUCKETS,
            bucket_key: vec!["id".into()],
            partition_key: vec![],
            primary_key: vec![],
            comment: String::new(),
            options: BTreeMap::new(),
        },
        created_at: TimestampMicros(0),
        previous_schemas: Default::default(),
        partitions: Default::default(),
    };
    let table = LakeTable::create(&storage, &info, &env).await?;
    let schema = table_schema();
    let read_schema = read_schema(&schema, &(0..schema.fields().len()).collect::<Vec<_>>());

    // Generate first, so only the writer is timed.
    let mut rng = Rng(42);
    let mut input = Vec::new();
    let (mut arrow_bytes, mut ipc_bytes) = (0usize, 0usize);
    for bucket in 0..BUCKETS {
        let mut batches = Vec::new();
        for start in (0..rows_per_bucket).step_by(BATCH_ROWS as usize) {
            let rows = BATCH_ROWS.min(rows_per_bucket - start);
            let batch = batch(&read_schema, &mut rng, bucket, start, rows);
            arrow_bytes += batch.get_array_memory_size();
            // What the WAL holds for these rows: the table columns as Arrow IPC.
            let table_columns = batch.project(&(0..schema.fields().len()).collect::<Vec<_>>())?;
            ipc_bytes += inlet_core::ipc::batches_to_ipc(&schema, &[table_columns])?.len();
            batches.push(batch);
        }
        input.push((Bucket(bucket), batches));
    }

    for (label, zstd_level) in [("zstd(1)", 1), ("zstd(3)", 3)] {
        let options = LakeWriteOptions {
            zstd_level,
            ..LakeWriteOptions::default()
        };
        let started = tokio::time::Instant::now();
        let mut append = LakeAppend::new(&table, &options, &env)?;
        for (bucket, batches) in &input {
            append.write_bucket(*bucket, batches).await?;
        }
        let staged = append.stage().await?;
        let elapsed = started.elapsed().as_secs_f64();
        let parquet: u64 = staged
            .data_files
            .iter()
            .map(|f| f.file_size_in_bytes())
            .sum();
        let rows = rows_per_bucket * u64::from(BUCKETS);
        println!(
            "{label}: {rows} rows, {} files, Arrow IPC {:.1} MB (in memory {:.1} MB) -> Parquet \
             {:.1} MB in {elapsed:.2} s: {:.0} MB/s of IPC per core ({:.0} MB/s in-memory Arrow), \
             {:.2} M rows/s, Parquet/IPC = {:.3}",
            staged.data_files.len(),
            ipc_bytes as f64 / 1e6,
            arrow_bytes as f64 / 1e6,
            parquet as f64 / 1e6,
            ipc_bytes as f64 / 1e6 / elapsed,
            arrow_bytes as f64 / 1e6 / elapsed,
            rows as f64 / 1e6 / elapsed,
            parquet as f64 / ipc_bytes as f64,
        );
        staged.abandon().await?;
    }
    Ok(())
}
