//! The HTTP endpoints beside gRPC: `/health` (on the owner: 200 while it owns the index, 503
//! with the reason once it stopped, e.g. fenced; 200 on other nodes), `/metrics` (Prometheus text), and the Iceberg
//! REST catalog under `/iceberg` (see `iceberg_rest.rs`), served in plaintext or, with the
//! `[tls]` certificate, over TLS only.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use inlet_security::tls::ServerTls;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::Authenticator;
use crate::iceberg_rest::RestCatalog;
use crate::metrics::Metrics;

/// How long a stopping node lets open HTTP requests finish before it closes their connections.
const DRAIN: Duration = Duration::from_secs(10);

/// Base path of the Iceberg REST catalog: clients use `uri=http://<http_listen>/iceberg`.
pub const ICEBERG_REST_PATH: &str = "/iceberg";

/// The router serving every HTTP endpoint; the REST catalog only where there is one (the
/// index owner). With authentication on, everything but `/health` needs a bearer token.
pub fn router(metrics: Metrics, catalog: Option<RestCatalog>, auth: Authenticator) -> Router {
    let router = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(render_metrics))
        .with_state(metrics);
    let router = match catalog {
        Some(catalog) => router.nest(ICEBERG_REST_PATH, catalog.router()),
        None => router,
    };
    router.layer(axum::middleware::from_fn_with_state(
        auth,
        Authenticator::http,
    ))
}

/// Serves `router` on `listener` until `stopped` completes: over TLS when `tls` is given.
pub fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<&ServerTls>,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<JoinHandle<std::io::Result<()>>> {
    let Some(tls) = tls else {
        return Ok(tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await
        }));
    };
    let config = axum_server::tls_rustls::RustlsConfig::from_config(tls.http());
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(listener.into_std()?, config)?
        .handle(handle.clone())
        .serve(router.into_make_service());
    tokio::spawn(async move {
        stopped.await;
        handle.graceful_shutdown(Some(DRAIN));
    });
    Ok(tokio::spawn(server))
}

/// The owner is healthy while its index accepts writes; any other node while it runs (a
/// reader keeps serving what is durable while no owner answers).
async fn health(State(metrics): State<Metrics>) -> impl IntoResponse {
    match metrics.index.as_ref().and_then(|index| index.stopped()) {
        None => (StatusCode::OK, "ok\n".to_owned()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

async fn render_metrics(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        metrics.render(),
    )
}
