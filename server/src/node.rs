//! A running Inlet node: every role wired together in one process, serving gRPC and HTTP
//! (health, metrics).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use inlet_cache::PagedCache;
use inlet_compactor::Compactor;
use inlet_compactor::lake::{LakeRoot, LakeStorage};
use inlet_core::clock::Env;
use inlet_core::limits::MAX_GRPC_MESSAGE_BYTES;
use inlet_index::Index;
use inlet_proto::v1::inlet_server::InletServer;
use inlet_reader::Reader;
use inlet_store::{InstrumentedStore, StoreMetrics};
use inlet_writer::Writer;
use slatedb::object_store::ObjectStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::config::Config;
use crate::grpc::InletService;
use crate::iceberg_rest::{RestCatalog, file_io_properties};
use crate::metrics::{Metrics, RequestMetrics};
use crate::store::{check_store, lake_root, open_store};

/// A node serving the index owner, writer and reader roles over gRPC, plus HTTP.
pub struct Node {
    addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    index: Index,
    writer: Writer,
    compactor: Option<Compactor>,
    metrics: Metrics,
    shutdown: watch::Sender<bool>,
    serving: JoinHandle<Result<(), tonic::transport::Error>>,
    http: Option<JoinHandle<std::io::Result<()>>>,
}

impl Node {
    /// Opens the store named by the config and starts serving on `config.listen`.
    pub async fn start(config: &Config) -> anyhow::Result<Self> {
        let store = open_store(&config.store)?;
        check_store(store.as_ref(), &config.store).await?;
        Self::start_with_store(config, store, Env::system()).await
    }

    /// Starts serving on an already opened store (tests reuse one in-memory store across
    /// restarts), with the given time and id sources. Every object-store call of every role
    /// is counted by purpose.
    pub async fn start_with_store(
        config: &Config,
        store: Arc<dyn ObjectStore>,
        env: Env,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let store_metrics = StoreMetrics::new();
        let store: Arc<dyn ObjectStore> = Arc::new(InstrumentedStore::with_metrics(
            store,
            store_metrics.clone(),
        ));
        let index = Index::open(store.clone(), config.index.clone(), env.clone())
            .await
            .with_context(|| format!("cannot open the index in store `{}`", config.store))?;
        let cache = PagedCache::open(store.clone(), config.cache.clone())
            .await
            .context("cannot open the read cache")?;
        let writer = Writer::start(
            Arc::new(index.clone()),
            store.clone(),
            cache.clone(),
            config.writer.clone(),
            env.clone(),
        );
        let compactor = if config.lake.compactor {
            let root = match lake_root(&config.store) {
                Ok(root) => root,
                // An in-memory store has no URL engines could open; name it uniquely so
                // the lake storage of this node finds its own store.
                Err(_) if config.store.starts_with("memory:") => {
                    LakeRoot::memory(&format!("inlet-{:032x}", env.ids.next_u128()))
                }
                Err(error) => return Err(error.context("cannot place the lake tables")),
            };
            Some(Compactor::start(
                index.clone(),
                cache.clone(),
                LakeStorage::new(root, store.clone()),
                config.lake.tiering.clone(),
                env.clone(),
            ))
        } else {
            None
        };
        let metrics = Metrics {
            requests: Arc::new(RequestMetrics::default()),
            store: store_metrics,
            cache: cache.clone(),
            index: index.clone(),
        };
        let service = InletService {
            index: index.clone(),
            writer: writer.clone(),
            reader: Reader::new(Arc::new(index.clone()), cache),
            metrics: metrics.clone(),
            env: env.clone(),
            lake_by_default: config.lake.tables_default,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let (shutdown, signal) = watch::channel(false);
        let server = InletServer::new(service)
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        let index_ports = inlet_wire::IndexPortsService::new(
            index.clone(),
            inlet_wire::Member {
                node_id: format!("{:016x}", env.ids.next_u128() as u64),
                endpoint: format!("http://{addr}"),
                roles: vec!["index".to_owned()],
            },
        )
        .into_server();
        let mut grpc_signal = signal.clone();
        let serving = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(server)
                .add_service(index_ports)
                // TCP_NODELAY on every accepted connection: tonic sets it only on listeners it
                // binds itself, and without it small responses wait for the client's delayed
                // ACK (Nagle): a ~40 ms stall per append ack (issue 16).
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async move {
                        let _ = grpc_signal.wait_for(|stop| *stop).await;
                    },
                ),
        );
        let (http_addr, http) = match config.http_listen {
            Some(http_listen) => {
                let listener = TcpListener::bind(http_listen)
                    .await
                    .with_context(|| format!("cannot listen for http on {http_listen}"))?;
                let http_addr = listener.local_addr()?;
                let mut http_signal = signal;
                let catalog = RestCatalog::new(
                    index.clone(),
                    store.clone(),
                    lake_root(&config.store).ok(),
                    file_io_properties(&config.store),
                );
                let router = crate::http::router(metrics.clone(), catalog);
                let http = tokio::spawn(async move {
                    axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            let _ = http_signal.wait_for(|stop| *stop).await;
                        })
                        .await
                });
                (Some(http_addr), Some(http))
            }
            None => (None, None),
        };
        tracing::info!(%addr, http = ?http_addr, store = %config.store, "inlet serving");
        Ok(Self {
            addr,
            http_addr,
            index,
            writer,
            compactor,
            metrics,
            shutdown,
            serving,
            http,
        })
    }

    /// The address gRPC is served on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address HTTP (health, metrics) is served on, if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The gRPC endpoint URL clients connect to.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The node's index (tests and tools inspect the catalog and lake state through it).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The node's metrics, as `/metrics` renders them.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops serving, answers every accepted append, and closes the index cleanly.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        if let Some(compactor) = self.compactor.take() {
            compactor.stop().await;
        }
        self.writer.close().await;
        // Closing the index ends following fetches, which graceful shutdown waits for.
        let closed = self.index.close().await.context("cannot close the index");
        (&mut self.serving)
            .await
            .context("grpc server task failed")?
            .context("grpc server failed")?;
        if let Some(http) = self.http.take() {
            http.await
                .context("http server task failed")?
                .context("http server failed")?;
        }
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
