//! A running Inlet node: the roles it runs wired together in one process, the index reached
//! in process (on the owner) or over gRPC (anywhere else), serving gRPC and HTTP (health,
//! metrics, the REST catalog on the owner).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use inlet_cache::PagedCache;
use inlet_compactor::Compactor;
use inlet_compactor::lake::{LakeRoot, LakeStorage};
use inlet_core::clock::Env;
use inlet_core::ipc::SchemaCache;
use inlet_core::limits::MAX_GRPC_MESSAGE_BYTES;
use inlet_index::Index;
use inlet_index::{CommitLog, LogRead};
use inlet_proto::v1::inlet_server::InletServer;
use inlet_reader::Reader;
use inlet_store::{InstrumentedStore, StoreMetrics};
use inlet_wire::{
    IndexPortsService, Member, OwnerSource, ReaderPort, RemoteIndex, RemoteOptions, publish_owner,
    wait_until_owner_fails,
};
use inlet_writer::Writer;
use slatedb::object_store::ObjectStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::grpc::InletService;
use crate::iceberg_rest::{RestCatalog, file_io_properties};
use crate::metrics::{Metrics, RequestMetrics};
use crate::quota::Quotas;
use crate::roles::Roles;
use crate::routes::{Cluster, Routes};
use crate::store::{check_store, lake_root, open_store};

/// A node: the roles it runs (`config.roles`), the whole `Inlet` gRPC service (what its roles
/// do not cover is forwarded, `routes.rs`), the index owner's `IndexPorts` service when it
/// owns the index, and HTTP (health, metrics, and the REST catalog on the owner).
pub struct Node {
    addr: SocketAddr,
    /// `https` when the listeners speak TLS, else `http`.
    scheme: &'static str,
    http_addr: Option<SocketAddr>,
    roles: Roles,
    /// Set when this node owns the index.
    index: Option<Index>,
    /// Set when it does not: the owner's ports over gRPC, and the reader's port.
    remote: Option<(RemoteIndex, Arc<ReaderPort>)>,
    writer: Option<Writer>,
    compactor: Option<Compactor>,
    metrics: Metrics,
    shutdown: watch::Sender<bool>,
    serving: JoinHandle<Result<(), tonic::transport::Error>>,
    http: Option<JoinHandle<std::io::Result<()>>>,
}

/// The index ports the writer and reader of this node use.
struct Ports {
    commit: Arc<dyn CommitLog>,
    read: Arc<dyn LogRead>,
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
        let tls = config.tls.load().context("invalid [tls] settings")?;
        let roles = config.roles;
        let (shutdown, signal) = watch::channel(false);
        let (auth, credential) = Authenticator::start(
            &config.auth,
            &tls,
            roles != Roles::ALL,
            env.clock.clone(),
            signal.clone(),
        )
        .context("invalid [auth] settings")?;
        let store_metrics = StoreMetrics::new();
        let store: Arc<dyn ObjectStore> = Arc::new(InstrumentedStore::with_metrics(
            store,
            store_metrics.clone(),
        ));
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let endpoint = config.advertised(addr, tls.scheme())?;
        let member = Member {
            node_id: format!("{:016x}", env.ids.next_u128() as u64),
            endpoint: endpoint.clone(),
            roles: roles.names().into_iter().map(str::to_owned).collect(),
        };
        let cache = PagedCache::open(store.clone(), config.cache.clone())
            .await
            .context("cannot open the read cache")?;
        // The owner serves the ports from its index; every other node reaches them remotely.
        let (index, remote, ports) = if roles.index {
            if config.standby {
                tracing::info!("standby: waiting for the index owner to fail");
                wait_until_owner_fails(store.as_ref(), &tls.client, &credential)
                    .await
                    .context("standby cannot watch the index owner")?;
                tracing::info!("standby: taking over the index");
            }
            let index = Index::open(store.clone(), config.index.clone(), env.clone())
                .await
                .with_context(|| format!("cannot open the index in store `{}`", config.store))?;
            publish_owner(
                store.as_ref(),
                &endpoint,
                &member.node_id,
                env.clock.now().0,
            )
            .await
            .context("cannot publish this node as the index owner")?;
            let ports = Ports {
                commit: Arc::new(index.clone()),
                read: Arc::new(index.clone()),
            };
            (Some(index), None, ports)
        } else {
            let remote = RemoteIndex::connect(
                OwnerSource::Store(store.clone()),
                Some(member.clone()),
                RemoteOptions {
                    tls: tls.client.clone(),
                    credential: credential.clone(),
                    ..RemoteOptions::default()
                },
            );
            // A reader reads history from its own replica of the index, not through the owner.
            let reads = Arc::new(ReaderPort::new(
                &remote,
                store.clone(),
                config.index.replica(),
            ));
            let ports = Ports {
                commit: Arc::new(remote.clone()),
                read: reads.clone(),
            };
            (None, Some((remote, reads)), ports)
        };
        let writer = roles.writer.then(|| {
            Writer::start(
                ports.commit.clone(),
                store.clone(),
                cache.clone(),
                config.writer.clone(),
                env.clone(),
            )
        });
        let compactor = if roles.compactor && config.lake.compactor {
            let root = match lake_root(&config.store) {
                Ok(root) => root,
                // An in-memory store has no URL engines could open; name it uniquely so
                // the lake storage of this node finds its own store.
                Err(_) if config.store.starts_with("memory:") => {
                    LakeRoot::memory(&format!("inlet-{:032x}", env.ids.next_u128()))
                }
                Err(error) => return Err(error.context("cannot place the lake tables")),
            };
            let lake = LakeStorage::new(root, store.clone());
            let options = config.lake.tiering.clone();
            Some(match (&index, &remote) {
                (Some(index), _) => {
                    Compactor::start(index.clone(), cache.clone(), lake, options, env.clone())
                }
                (None, Some((remote, _))) => {
                    Compactor::start(remote.clone(), cache.clone(), lake, options, env.clone())
                }
                (None, None) => unreachable!("a node either owns the index or reaches it remotely"),
            })
        } else {
            None
        };
        let metrics = Metrics {
            requests: Arc::new(RequestMetrics::default()),
            store: store_metrics,
            cache: cache.clone(),
            index: index.clone(),
        };
        let index_ports = index
            .as_ref()
            .map(|index| IndexPortsService::new(index.clone(), member.clone()));
        let cluster = match (&index_ports, &remote) {
            (Some(service), _) => Cluster::Owner(service.clone()),
            (None, Some((remote, _))) => Cluster::Remote(remote.clone()),
            (None, None) => unreachable!("a node either owns the index or reaches it remotely"),
        };
        let quotas = Arc::new(Quotas::new(
            config.quotas.clone(),
            env.clock.clone(),
            metrics.requests.clone(),
        ));
        let service = InletService {
            index: index.clone(),
            writer: writer.clone(),
            reader: roles
                .reader
                .then(|| Reader::new(ports.read.clone(), cache.clone())),
            roles,
            routes: Arc::new(Routes::new(
                cluster,
                endpoint.clone(),
                tls.client.clone(),
                credential,
            )),
            metrics: metrics.clone(),
            env: env.clone(),
            lake_by_default: config.lake.tables_default,
            quotas,
            append_schemas: Arc::new(SchemaCache::new()),
            lake: lake_root(&config.store)
                .ok()
                .map(|root| LakeStorage::new(root, store.clone())),
        };
        let server = InletServer::new(service)
            .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_BYTES);
        let server = InterceptedService::new(server, auth.users());
        let index_ports =
            index_ports.map(|ports| InterceptedService::new(ports.into_server(), auth.nodes()));
        let mut grpc_signal = signal.clone();
        let mut builder = tonic::transport::Server::builder();
        if let Some(server_tls) = &tls.server {
            builder = builder
                .tls_config(server_tls.grpc())
                .context("cannot serve gRPC with the [tls] certificate")?;
        }
        let serving = tokio::spawn(
            builder
                .add_service(server)
                .add_optional_service(index_ports)
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
                // The REST catalog reads the owner's index; other nodes serve health and
                // metrics only.
                let catalog = index.as_ref().map(|index| {
                    RestCatalog::new(
                        index.clone(),
                        store.clone(),
                        lake_root(&config.store).ok(),
                        file_io_properties(&config.store),
                    )
                });
                let router = crate::http::router(metrics.clone(), catalog, auth.clone());
                let stopped = async move {
                    let _ = http_signal.wait_for(|stop| *stop).await;
                };
                let http = crate::http::serve(listener, router, tls.server.as_ref(), stopped)
                    .context("cannot serve http")?;
                (Some(http_addr), Some(http))
            }
            None => (None, None),
        };
        tracing::info!(%addr, %endpoint, roles = %roles, http = ?http_addr, store = %config.store, "inlet serving");
        Ok(Self {
            addr,
            scheme: tls.scheme(),
            http_addr,
            roles,
            index,
            remote,
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

    /// The gRPC endpoint URL clients connect to (`https://` when it speaks TLS).
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The node's index when it owns it (tests and tools inspect the catalog and lake state
    /// through it).
    pub fn index(&self) -> Option<&Index> {
        self.index.as_ref()
    }

    /// The roles this node runs.
    pub fn roles(&self) -> Roles {
        self.roles
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
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        // Closing the index (or the remote ports) ends following fetches, which graceful
        // shutdown waits for.
        if let Some((remote, reads)) = &self.remote {
            remote.close();
            if let Err(error) = reads.close().await {
                tracing::warn!(%error, "cannot close the index replica");
            }
        }
        let closed = match &self.index {
            Some(index) => index.close().await.context("cannot close the index"),
            None => Ok(()),
        };
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
