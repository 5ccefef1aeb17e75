//! A running Inlet node: every role wired together in one process, serving gRPC.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use inlet_cache::PagedCache;
use inlet_core::clock::Env;
use inlet_core::limits::MAX_GRPC_MESSAGE_BYTES;
use inlet_index::Index;
use inlet_proto::v1::inlet_server::InletServer;
use inlet_reader::Reader;
use inlet_writer::Writer;
use slatedb::object_store::ObjectStore;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::Config;
use crate::grpc::InletService;
use crate::store::open_store;

/// A node serving the index owner, writer and reader roles over gRPC.
pub struct Node {
    addr: SocketAddr,
    index: Index,
    writer: Writer,
    shutdown: Option<oneshot::Sender<()>>,
    serving: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Node {
    /// Opens the store named by the config and starts serving on `config.listen`.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        let store = open_store(&config.store)?;
        Self::start_with_store(config, store, Env::system()).await
    }

    /// Starts serving on an already opened store (tests reuse one in-memory store across
    /// restarts), with the given time and id sources.
    pub async fn start_with_store(
        config: &Config,
        store: Arc<dyn ObjectStore>,
        env: Env,
    ) -> anyhow::Result<Self> {
        let index = Index::open(store.clone(), config.index.options(), env.clone())
            .await
            .with_context(|| format!("cannot open the index in store `{}`", config.store))?;
        let cache = PagedCache::open(store.clone(), config.cache.options())
            .await
            .context("cannot open the read cache")?;
        let writer = Writer::start(
            index.clone(),
            store,
            cache.clone(),
            config.writer.options(),
            env,
        );
        let reader = Reader::new(index.clone(), cache);
        let service = InletService {
            index: index.clone(),
            writer: writer.clone(),
            reader,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let (shutdown, signal) = oneshot::channel::<()>();
        let server = InletServer::new(service)
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        let serving = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = signal.await;
                }),
        );
        tracing::info!(%addr, store = %config.store, "inlet serving");
        Ok(Self {
            addr,
            index,
            writer,
            shutdown: Some(shutdown),
            serving,
        })
    }

    /// The address gRPC is served on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gRPC endpoint URL clients connect to.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving, answers every accepted append, and closes the index cleanly.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.writer.close().await;
        // Closing the index ends following fetches, which graceful shutdown waits for.
        let closed = self.index.close().await.context("cannot close the index");
        (&mut self.serving)
            .await
            .context("grpc server task failed")?
            .context("grpc server failed")?;
        closed?;
        tracing::info!("inlet stopped");
        Ok(())
    }

    /// Runs until the gRPC server stops on its own (it does not, unless it fails).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.serving)
            .await
            .context("grpc server task failed")?
            .context("grpc server failed")
    }
}
