//! The HTTP endpoints beside gRPC: `/health` (200 while this node owns the index, 503 with
//! the reason once it stopped, e.g. fenced), `/metrics` (Prometheus text), and the Iceberg
//! REST catalog under `/iceberg` (see `iceberg_rest.rs`).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::iceberg_rest::RestCatalog;
use crate::metrics::Metrics;

/// Base path of the Iceberg REST catalog: clients use `uri=http://<http_listen>/iceberg`.
pub const ICEBERG_REST_PATH: &str = "/iceberg";

/// The router serving every HTTP endpoint.
pub fn router(metrics: Metrics, catalog: RestCatalog) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(render_metrics))
        .with_state(metrics)
        .nest(ICEBERG_REST_PATH, catalog.router())
}

async fn health(State(metrics): State<Metrics>) -> impl IntoResponse {
    match metrics.index.stopped() {
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
