//! The setup that integration tests of the index, writer, reader and compactor repeat: an index
//! opened on a store with database [`DATABASE`], a table in it, and a writer on both. A test
//! keeps only what is particular to it (its schema, its options, its store wrapper). And
//! [`pki`]: certificates for TLS tests, made in the test.
//!
//! Test-only: every crate takes this as a dev-dependency, never as a dependency. Failures
//! panic with what failed, as a test's own `expect` would.

pub mod pki;

use std::sync::Arc;
use std::time::Duration;

use arrow_schema::SchemaRef;
use inlet_cache::{CacheOptions, PagedCache};
use inlet_core::clock::Env;
use inlet_core::table::{TableDescriptor, TableInfo};
use inlet_index::{Index, IndexOptions};
use inlet_writer::{Writer, WriterOptions};
use slatedb::object_store::ObjectStore;

/// The database every helper creates tables in.
pub const DATABASE: &str = "db";

/// A table of `schema` with `bucket_count` round-robin buckets: no bucket or partition key,
/// no comment, no options.
pub fn table_descriptor(schema: SchemaRef, bucket_count: u32) -> TableDescriptor {
    TableDescriptor {
        schema,
        bucket_count,
        bucket_key: vec![],
        partition_key: vec![],
        primary_key: vec![],
        comment: String::new(),
        options: Default::default(),
    }
}

/// An index on `store` (default options) holding database [`DATABASE`].
pub async fn open_index(store: Arc<dyn ObjectStore>, env: Env) -> Index {
    let index = Index::open(store, IndexOptions::default(), env)
        .await
        .expect("index opens");
    index
        .create_database(DATABASE, "", true)
        .await
        .expect("database is created");
    index
}

/// Creates table `db.<name>`.
pub async fn create_table(
    index: &Index,
    name: &str,
    descriptor: TableDescriptor,
) -> Arc<TableInfo> {
    index
        .create_table(DATABASE, name, descriptor, false)
        .await
        .expect("table is created")
}

/// An index on `store` with table `db.<table>` of `schema` in one bucket, on the system
/// clock.
pub async fn index_with_table(
    store: Arc<dyn ObjectStore>,
    table: &str,
    schema: SchemaRef,
) -> Index {
    let index = open_index(store, Env::system()).await;
    create_table(&index, table, table_descriptor(schema, 1)).await;
    index
}

/// Writer options that flush 1 ms after the first row, so a test's appends upload at once.
pub fn quick_writer_options() -> WriterOptions {
    WriterOptions {
        linger: Duration::from_millis(1),
        ..WriterOptions::default()
    }
}

/// A writer on `index` and `store` with a fresh default cache, on the system clock.
pub async fn start_writer(
    index: &Index,
    store: Arc<dyn ObjectStore>,
    options: WriterOptions,
) -> Writer {
    let cache = PagedCache::open(Arc::clone(&store), CacheOptions::default())
        .await
        .expect("cache opens");
    Writer::start(
        Arc::new(index.clone()),
        store,
        cache,
        options,
        Env::system(),
    )
}
