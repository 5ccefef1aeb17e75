//! The node under test: a real node started by the [`Host`] in this process on the
//! benchmark's store (counted by an [`InstrumentedStore`], optionally behind the latency
//! model), restarted when a phase needs another linger or an empty read cache.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use inlet_client::Client;
use inlet_index::Index;
use inlet_store::{InstrumentedStore, StoreMetrics, StoreSnapshot};
use slatedb::object_store::ObjectStore;

use crate::host::{Host, NodeSettings, NodeUnderTest};

pub(crate) struct Harness<'h> {
    host: &'h dyn Host,
    store: Arc<dyn ObjectStore>,
    metrics: StoreMetrics,
    settings: NodeSettings,
    node: Option<Box<dyn NodeUnderTest>>,
}

impl<'h> Harness<'h> {
    /// Wraps `store` (already behind the latency model, if any) in the request counter;
    /// `settings` are those of every node (the linger is set per start).
    pub(crate) fn new(
        host: &'h dyn Host,
        store: Arc<dyn ObjectStore>,
        settings: NodeSettings,
    ) -> Self {
        let instrumented = InstrumentedStore::new(store);
        let metrics = instrumented.metrics().clone();
        Self {
            host,
            store: Arc::new(instrumented),
            metrics,
            settings,
            node: None,
        }
    }

    /// Stops the running node, if any, and starts a fresh one (empty read cache) with
    /// `linger`; returns its endpoint.
    pub(crate) async fn restart(&mut self, linger: Duration) -> anyhow::Result<String> {
        self.stop().await?;
        let settings = NodeSettings {
            linger,
            ..self.settings.clone()
        };
        let node = self
            .host
            .start_node(self.store.clone(), &settings)
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

    /// The binary hosting the benchmark.
    pub(crate) fn host(&self) -> &'h dyn Host {
        self.host
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
            .as_deref()
            .context("no node is running")?
            .index()
            .context("the benchmark's node does not own the index")
    }

    pub(crate) fn endpoint(&self) -> anyhow::Result<String> {
        self.node
            .as_deref()
            .map(NodeUnderTest::endpoint)
            .context("no node is running")
    }

    pub(crate) async fn client(&self) -> anyhow::Result<Client> {
        Client::connect(&self.endpoint()?).await
    }
}
