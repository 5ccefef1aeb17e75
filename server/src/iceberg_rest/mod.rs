//! The Iceberg REST catalog, read side: engines (DuckDB, pyiceberg, Spark, Trino) point
//! `uri=http://<http_listen>/iceberg` at a node and find every lake table Inlet's compactor
//! keeps, without knowing where the metadata files are.
//!
//! Namespaces are Inlet databases (one level). A namespace lists only the tables that have a
//! committed lake table: the lake record in the index names the current metadata file, which
//! is read from the store as it is and returned with the client settings an engine needs to
//! open the files (for S3 the endpoint, region and credentials of the node's own store). The
//! compactor is the only writer of the lake, so every write endpoint answers 501.
//!
//! Served without a prefix (`/v1/namespaces/...`); errors are the spec's `ErrorModel`.
//! Spec: `open-api/rest-catalog-open-api.yaml` in apache/iceberg.

//!
//! The module tree: the catalog's state and routes here, the handlers in `handlers.rs`, the
//! error model in `error.rs`, and the client FileIO settings in `file_io.rs`.

pub(crate) mod error;
mod file_io;
mod handlers;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use inlet_compactor::lake::LakeRoot;
use inlet_core::error::HasKind;
use inlet_index::{CatalogError, Index};
use serde_json::Value;
use slatedb::object_store::{ObjectStore, ObjectStoreExt};

use error::RestError;
pub use file_io::file_io_properties;
use handlers::*;

/// Separates the levels of a multi-level namespace in a path or `parent` parameter.
const NAMESPACE_SEPARATOR: char = '\u{1f}';

/// The endpoints this catalog serves, as `GET /v1/config` announces them; clients that honour
/// the list never try the others.
const ENDPOINTS: [&str; 7] = [
    "GET /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
];

/// What the catalog serves from: the node's index (databases, tables, lake records) and its
/// store (metadata files). Cheap to clone.
#[derive(Clone)]
pub struct RestCatalog {
    index: Index,
    store: Arc<dyn ObjectStore>,
    /// Where the store's root is, as the metadata URLs name it; `None` when the store has no
    /// URL (then no table can be loaded, and loading one says why).
    root: Option<LakeRoot>,
    /// FileIO properties every loaded table carries (`s3.endpoint`, ...).
    file_io: Arc<BTreeMap<String, String>>,
}

impl RestCatalog {
    /// A catalog over `index` and `store` (the store opened on the root of the Inlet layout,
    /// whose root is `root`), handing `file_io` to clients with every table.
    pub fn new(
        index: Index,
        store: Arc<dyn ObjectStore>,
        root: Option<LakeRoot>,
        file_io: BTreeMap<String, String>,
    ) -> Self {
        Self {
            index,
            store,
            root,
            file_io: Arc::new(file_io),
        }
    }

    /// The router serving `/v1/...`; nest it under the catalog's base path.
    pub fn router(self) -> Router {
        Router::new()
            .route("/v1/config", get(config))
            .route("/v1/namespaces", get(list_namespaces).post(read_only))
            .route(
                "/v1/namespaces/{namespace}",
                get(load_namespace).head(namespace_exists).delete(read_only),
            )
            .route("/v1/namespaces/{namespace}/properties", post(read_only))
            .route("/v1/namespaces/{namespace}/register", post(read_only))
            .route(
                "/v1/namespaces/{namespace}/tables",
                get(list_tables).post(read_only),
            )
            .route(
                "/v1/namespaces/{namespace}/tables/{table}",
                get(load_table)
                    .head(table_exists)
                    .post(read_only)
                    .delete(read_only),
            )
            .route(
                "/v1/namespaces/{namespace}/tables/{table}/metrics",
                post(accept_metrics),
            )
            .route("/v1/tables/rename", post(read_only))
            .route("/v1/transactions/commit", post(read_only))
            .fallback(no_route)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(self)
    }

    /// The lake table of `namespace.table`: its record's metadata location, if the table
    /// exists and the compactor committed it at least once.
    async fn metadata_location(&self, namespace: &str, table: &str) -> Result<String, RestError> {
        let info = self
            .index
            .table(namespace, table)
            .map_err(|error| match error {
                CatalogError::DatabaseNotFound { .. } => RestError::NoSuchNamespace {
                    namespace: namespace.to_owned(),
                },
                CatalogError::TableNotFound { .. } => RestError::NoSuchTable {
                    namespace: namespace.to_owned(),
                    table: table.to_owned(),
                },
                other => RestError::from_kind(other.kind(), other.to_string()),
            })?;
        let record = self.index.lake_table(info.id).await?;
        record
            .and_then(|record| record.metadata_location)
            .ok_or_else(|| RestError::NoSuchTable {
                namespace: namespace.to_owned(),
                table: table.to_owned(),
            })
    }

    /// The metadata file at `location`, read from the store and checked to be table metadata.
    async fn read_metadata(&self, location: &str) -> Result<Value, RestError> {
        let root = self.root.as_ref().ok_or_else(|| {
            RestError::Unavailable(format!(
                "cannot read `{location}`: this node's store has no URL that engines can open"
            ))
        })?;
        let path = root
            .path_of(location)
            .map_err(|error| RestError::Internal(error.to_string()))?;
        let bytes = async { self.store.get(&path).await?.bytes().await }
            .await
            .map_err(|error| match error {
                // The index names only committed files, which are never deleted while current.
                slatedb::object_store::Error::NotFound { .. } => RestError::Internal(format!(
                    "lake metadata `{location}` recorded in the index is missing from the store"
                )),
                error => RestError::Unavailable(format!(
                    "cannot read lake metadata `{location}`: {error}"
                )),
            })?;
        let metadata: Value = serde_json::from_slice(&bytes).map_err(|error| {
            RestError::Internal(format!(
                "lake metadata `{location}` is not valid JSON: {error}"
            ))
        })?;
        let is_metadata = metadata.get("format-version").is_some_and(Value::is_u64)
            && metadata.get("location").is_some_and(Value::is_string);
        if !is_metadata {
            return Err(RestError::Internal(format!(
                "lake metadata `{location}` has no `format-version` or `location`"
            )));
        }
        Ok(metadata)
    }
}

#[cfg(test)]
mod tests;
