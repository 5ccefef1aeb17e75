//! What `inlet bench` measures: this crate's [`Node`], handed to the `inlet-bench` crate
//! through its [`Host`] trait. The bench lives in its own crate, which cannot depend on this
//! one (this one depends on it for the `bench` command), so the server lends it the node,
//! the configuration defaults and the store opener from here.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use inlet_bench::{CacheDefaults, Host, NodeSettings, NodeUnderTest};
use inlet_compactor::lake::LakeRoot;
use inlet_core::clock::Env;
use inlet_index::Index;
use slatedb::object_store::ObjectStore;

use crate::config::Config;
use crate::node::Node;
use crate::store::{lake_root, open_store};

/// The server as the bench's host: nodes as `inlet serve` starts them, with the bench's
/// settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerHost;

#[async_trait]
impl Host for ServerHost {
    fn open_store(&self, location: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
        open_store(location)
    }

    fn lake_root(&self, location: &str) -> anyhow::Result<LakeRoot> {
        lake_root(location)
    }

    fn default_cache(&self) -> CacheDefaults {
        let cache = Config::default().cache;
        CacheDefaults {
            memory_bytes: cache.memory_bytes,
            page_size: cache.page_size,
        }
    }

    /// This executable: `inlet bench` runs inside the `inlet` binary.
    fn inlet_binary(&self) -> anyhow::Result<PathBuf> {
        std::env::current_exe().context("cannot find the path of the running `inlet` binary")
    }

    async fn start_node(
        &self,
        store: Arc<dyn ObjectStore>,
        settings: &NodeSettings,
    ) -> anyhow::Result<Box<dyn NodeUnderTest>> {
        let mut config = Config {
            store: settings.store.clone(),
            listen: "127.0.0.1:0".parse().expect("a valid socket address"),
            // No HTTP port: it would collide with a running server, and GetStatus has it all.
            http_listen: None,
            ..Config::default()
        };
        config.writer.linger = settings.linger;
        config.cache.memory_bytes = settings.cache_memory_bytes;
        // No compactor: its WAL garbage collection would add requests to every section, and
        // the lake section drives one of its own.
        config.lake.compactor = false;
        let node = Node::start_with_store(&config, store, Env::system()).await?;
        Ok(Box::new(node))
    }
}

#[async_trait]
impl NodeUnderTest for Node {
    fn endpoint(&self) -> String {
        Node::endpoint(self)
    }

    fn index(&self) -> Option<&Index> {
        Node::index(self)
    }

    async fn shutdown(self: Box<Self>) -> anyhow::Result<()> {
        Node::shutdown(*self).await
    }
}
