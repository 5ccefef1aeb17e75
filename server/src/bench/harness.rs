//! The node under test: a real [`Node`] started in this process on the benchmark's store
//! (counted by an [`InstrumentedStore`], optionally behind the latency model), restarted
//! when a phase needs another linger or an empty read cache.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use inlet_core::clock::Env;
use inlet_index::Index;
use inlet_store::{InstrumentedStore, StoreMetrics, StoreSnapshot};
use slatedb::object_store::ObjectStore;

use crate::client::Client;
use crate::config::Config;
use crate::node::Node;

pub(crate) struct Harness {
    store: Arc<dyn ObjectStore>,
    metrics: StoreMetrics,
    config: Config,
    node: Option<Node>,
}

impl Harness {
    /// Wraps `store` (already behind the latency model, if any) in the request counter;
    /// `config` is the template of every node (its linger is set per start).
    pub(crate) fn new(store: Arc<dyn ObjectStore>, config: Config) -> Self {
        let instrumented = InstrumentedStore::new(store);
        let metrics = instrumented.metrics().clone();
        Self {
            store: Arc::new(instrumented),
            metrics,
            config,
            node: None,
        }
    }

    /// Stops the running node, if any, and starts a fresh one (empty read cache) with
    /// `linger`; returns its endpoint.
    pub(crate) async fn restart(&mut self, linger: Duration) -> anyhow::Result<String> {
        self.stop().await?;
        let mut config = self.config.clone();
        config.writer.linger = linger;
        let node = Node::start_with_store(&config, self.store.clone(), Env::system())
            .await
            .context("cannot start the node under test")?;
        let endpoint = node.endpoint();
        self.node = Some(node);
        Ok(endpoint)
    }

    /// Stops the running node: every accepted append is answered, the index closed.
    pub(crate) async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(node) = self.node.take() {
            node.shutdown()
                .await
                .context("the node under test did not shut down cleanly")?;
        }
        Ok(())
    }

    /// The object-store counters now.
    pub(crate) fn snapshot(&self) -> StoreSnapshot {
        self.metrics.snapshot()
    }

    /// The counted store every node of the harness runs on.
    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The running node's index.
    pub(crate) fn index(&self) -> anyhow::Result<&Index> {
        self.node
            .as_ref()
            .map(Node::index)
            .context("no node is running")
    }

    pub(crate) fn endpoint(&self) -> anyhow::Result<String> {
        self.node
            .as_ref()
            .map(Node::endpoint)
            .context("no node is running")
    }

    pub(crate) async fn client(&self) -> anyhow::Result<Client> {
        Client::connect(&self.endpoint()?).await
    }
}
