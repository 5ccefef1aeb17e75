//! What the bench needs from the binary that hosts it: a store opened as `inlet serve`
//! opens it, and a real node started in this process on that store.
//!
//! It is a trait because the node (configuration, role wiring) lives in the `inlet` server
//! crate, and that crate depends on this one to offer `inlet bench`: depending back on it
//! would be a cycle. The server implements [`Host`] (`inlet::bench::ServerHost`) and hands
//! it to [`run`](crate::run).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use inlet_compactor::lake::LakeRoot;
use inlet_index::Index;
use slatedb::object_store::ObjectStore;

/// The binary's side of the benchmark.
#[async_trait]
pub trait Host: Send + Sync {
    /// Opens a store URL (a directory, `file://`, `memory://`, `s3://`) as `inlet serve` does.
    fn open_store(&self, location: &str) -> anyhow::Result<Arc<dyn ObjectStore>>;

    /// Where `inlet serve` puts the lake tables of the store at `location`.
    fn lake_root(&self, location: &str) -> anyhow::Result<LakeRoot>;

    /// The server's default read cache.
    fn default_cache(&self) -> CacheDefaults;

    /// The `inlet` binary, which the cluster section starts as separate `inlet serve`
    /// processes.
    fn inlet_binary(&self) -> anyhow::Result<PathBuf>;

    /// Starts a node on `store` (already counted and behind the latency model, if any): every
    /// role but the compactor (its WAL garbage collection would add requests to every
    /// section; the lake section drives one of its own), gRPC on a free loopback port and no
    /// HTTP listener (it would collide with a running server), and every other setting at
    /// the server's default.
    async fn start_node(
        &self,
        store: Arc<dyn ObjectStore>,
        settings: &NodeSettings,
    ) -> anyhow::Result<Box<dyn NodeUnderTest>>;
}

/// The settings a benchmark phase chooses for its node.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// The store URL the store was opened from.
    pub store: String,
    /// The writer's linger.
    pub linger: Duration,
    /// The memory tier of the read cache, in bytes.
    pub cache_memory_bytes: usize,
}

/// The server's read cache defaults, for the report and `--cache-mb`.
#[derive(Clone, Copy, Debug)]
pub struct CacheDefaults {
    /// The memory tier, in bytes.
    pub memory_bytes: usize,
    /// The page size, in bytes.
    pub page_size: usize,
}

/// A running node the benchmark drives.
#[async_trait]
pub trait NodeUnderTest: Send + Sync {
    /// Its gRPC endpoint, e.g. `http://127.0.0.1:41234`.
    fn endpoint(&self) -> String;

    /// Its index, when it owns it (the lake section builds a compactor on it).
    fn index(&self) -> Option<&Index>;

    /// Stops it: every accepted append is answered, the index closed.
    async fn shutdown(self: Box<Self>) -> anyhow::Result<()>;
}
