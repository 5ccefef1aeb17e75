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

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use inlet_compactor::lake::LakeRoot;
use inlet_core::error::{ErrorKind, HasKind};
use inlet_index::{CatalogError, Index, IndexError};
use serde::Deserialize;
use serde_json::{Value, json};
use slatedb::object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use slatedb::object_store::{ObjectStore, ObjectStoreExt};

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

/// The Iceberg FileIO properties a client needs to read the files of the store at `location`
/// (a store URL as `inlet serve` takes it): for `s3://` the endpoint, region, credentials and
/// addressing style the node itself uses (the same `AWS_*` variables `open_store` reads);
/// nothing for a local directory, whose `file://` URLs clients open directly.
///
/// These are the node's own credentials: anyone who can reach the HTTP listener gets them,
/// so expose it only where the store's readers are trusted.
pub fn file_io_properties(location: &str) -> BTreeMap<String, String> {
    if !location.starts_with("s3://") {
        return BTreeMap::new();
    }
    s3_file_io_properties(&AmazonS3Builder::from_env())
}

/// The Iceberg FileIO properties naming what `s3` is configured with.
fn s3_file_io_properties(s3: &AmazonS3Builder) -> BTreeMap<String, String> {
    let value = |key| s3.get_config_value(&key).filter(|v| !v.is_empty());
    // object_store's own defaults: us-east-1, path-style requests.
    let region = value(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".to_owned());
    let virtual_hosted = value(AmazonS3ConfigKey::VirtualHostedStyleRequest)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let properties = [
        (
            "s3.endpoint",
            value(AmazonS3ConfigKey::S3Endpoint).or_else(|| value(AmazonS3ConfigKey::Endpoint)),
        ),
        ("s3.region", Some(region.clone())),
        // pyiceberg takes the region from `client.region` where `s3.region` is not read.
        ("client.region", Some(region)),
        ("s3.access-key-id", value(AmazonS3ConfigKey::AccessKeyId)),
        (
            "s3.secret-access-key",
            value(AmazonS3ConfigKey::SecretAccessKey),
        ),
        ("s3.session-token", value(AmazonS3ConfigKey::Token)),
        ("s3.path-style-access", Some((!virtual_hosted).to_string())),
    ];
    properties
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_owned(), value?)))
        .collect()
}

/// A catalog error, answered as the spec's `ErrorModel`.
#[derive(Debug, thiserror::Error)]
enum RestError {
    #[error("namespace `{namespace}` does not exist")]
    NoSuchNamespace { namespace: String },
    #[error("table `{namespace}.{table}` does not exist or has no lake table yet")]
    NoSuchTable { namespace: String, table: String },
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "the Inlet catalog is read-only: its compactor is the only writer of the lake; change \
         tables through Inlet"
    )]
    ReadOnly,
    #[error("no such endpoint in the Iceberg REST catalog")]
    NoRoute,
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl RestError {
    fn from_kind(kind: ErrorKind, message: String) -> Self {
        match kind {
            ErrorKind::Unavailable | ErrorKind::Fenced => Self::Unavailable(message),
            ErrorKind::InvalidInput => Self::BadRequest(message),
            _ => Self::Internal(message),
        }
    }

    fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            Self::NoSuchNamespace { .. } => (StatusCode::NOT_FOUND, "NoSuchNamespaceException"),
            Self::NoSuchTable { .. } => (StatusCode::NOT_FOUND, "NoSuchTableException"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequestException"),
            Self::ReadOnly => (StatusCode::NOT_IMPLEMENTED, "UnsupportedOperationException"),
            Self::NoRoute => (StatusCode::NOT_FOUND, "NotFoundException"),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "UnsupportedOperationException",
            ),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
            ),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        }
    }
}

impl From<IndexError> for RestError {
    fn from(error: IndexError) -> Self {
        Self::from_kind(error.kind(), error.to_string())
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_type();
        if status.is_server_error() {
            tracing::warn!(error = %self, "iceberg rest request failed");
        }
        let body = json!({
            "error": { "message": self.to_string(), "type": kind, "code": status.as_u16() }
        });
        (status, Json(body)).into_response()
    }
}

/// The one namespace level of `namespace` (a path segment, multi-level ones joined by 0x1F).
/// Inlet namespaces have one level, so a deeper one does not exist.
fn database(namespace: &str) -> Result<&str, RestError> {
    if namespace.is_empty() || namespace.contains(NAMESPACE_SEPARATOR) {
        return Err(RestError::NoSuchNamespace {
            namespace: namespace.replace(NAMESPACE_SEPARATOR, "."),
        });
    }
    Ok(namespace)
}

fn existing_database<'a>(catalog: &RestCatalog, namespace: &'a str) -> Result<&'a str, RestError> {
    let database = database(namespace)?;
    catalog
        .index
        .database(database)
        .map_err(|_| RestError::NoSuchNamespace {
            namespace: database.to_owned(),
        })?;
    Ok(database)
}

async fn config() -> Json<Value> {
    Json(json!({ "defaults": {}, "overrides": {}, "endpoints": ENDPOINTS }))
}

#[derive(Deserialize)]
struct ListNamespacesQuery {
    parent: Option<String>,
}

async fn list_namespaces(
    State(catalog): State<RestCatalog>,
    Query(query): Query<ListNamespacesQuery>,
) -> Result<Json<Value>, RestError> {
    let namespaces: Vec<Vec<String>> = match query.parent.as_deref() {
        None | Some("") => {
            let mut names: Vec<String> = catalog
                .index
                .list_databases()
                .into_iter()
                .map(|db| db.name)
                .collect();
            names.sort();
            names.into_iter().map(|name| vec![name]).collect()
        }
        // One level: an existing database has no children.
        Some(parent) => {
            existing_database(&catalog, parent)?;
            Vec::new()
        }
    };
    Ok(Json(json!({ "namespaces": namespaces })))
}

#[tracing::instrument(skip(catalog))]
async fn load_namespace(
    State(catalog): State<RestCatalog>,
    Path(namespace): Path<String>,
) -> Result<Json<Value>, RestError> {
    let database = existing_database(&catalog, &namespace)?;
    let info = (catalog.index.database(database)).map_err(|_| RestError::NoSuchNamespace {
        namespace: database.to_owned(),
    })?;
    let mut properties = BTreeMap::new();
    if !info.comment.is_empty() {
        properties.insert("comment", info.comment);
    }
    Ok(Json(
        json!({ "namespace": [info.name], "properties": properties }),
    ))
}

async fn namespace_exists(
    State(catalog): State<RestCatalog>,
    Path(namespace): Path<String>,
) -> Result<StatusCode, RestError> {
    existing_database(&catalog, &namespace)?;
    Ok(StatusCode::NO_CONTENT)
}

#[tracing::instrument(skip(catalog))]
async fn list_tables(
    State(catalog): State<RestCatalog>,
    Path(namespace): Path<String>,
) -> Result<Json<Value>, RestError> {
    let database = database(&namespace)?;
    let tables = catalog
        .index
        .list_tables(database)
        .map_err(|_| RestError::NoSuchNamespace {
            namespace: database.to_owned(),
        })?;
    let mut identifiers = Vec::new();
    for table in tables {
        let record = catalog.index.lake_table(table.id).await?;
        if record.is_some_and(|record| record.metadata_location.is_some()) {
            identifiers.push(json!({ "namespace": [database], "name": table.name }));
        }
    }
    Ok(Json(json!({ "identifiers": identifiers })))
}

#[tracing::instrument(skip(catalog))]
async fn load_table(
    State(catalog): State<RestCatalog>,
    Path((namespace, table)): Path<(String, String)>,
) -> Result<Json<Value>, RestError> {
    let database = database(&namespace)?;
    let location = catalog.metadata_location(database, &table).await?;
    let metadata = catalog.read_metadata(&location).await?;
    Ok(Json(json!({
        "metadata-location": location,
        "metadata": metadata,
        "config": *catalog.file_io,
    })))
}

async fn table_exists(
    State(catalog): State<RestCatalog>,
    Path((namespace, table)): Path<(String, String)>,
) -> Result<StatusCode, RestError> {
    let database = database(&namespace)?;
    catalog.metadata_location(database, &table).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Scan reports (Java clients send one after each scan): accepted and dropped.
async fn accept_metrics() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn read_only() -> RestError {
    RestError::ReadOnly
}

async fn no_route() -> RestError {
    RestError::NoRoute
}

async fn method_not_allowed() -> RestError {
    RestError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_clients_get_the_nodes_endpoint_region_credentials_and_addressing() {
        let s3 = AmazonS3Builder::new()
            .with_endpoint("http://127.0.0.1:9000")
            .with_region("eu-west-3")
            .with_access_key_id("AK")
            .with_secret_access_key("SK");
        let properties = s3_file_io_properties(&s3);
        let expected = [
            ("client.region", "eu-west-3"),
            ("s3.access-key-id", "AK"),
            ("s3.endpoint", "http://127.0.0.1:9000"),
            ("s3.path-style-access", "true"),
            ("s3.region", "eu-west-3"),
            ("s3.secret-access-key", "SK"),
        ];
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(properties, expected);

        let hosted = AmazonS3Builder::new().with_virtual_hosted_style_request(true);
        let properties = s3_file_io_properties(&hosted);
        assert_eq!(properties["s3.path-style-access"], "false");
        assert_eq!(properties["s3.region"], "us-east-1");
        assert!(!properties.contains_key("s3.endpoint"));
        assert!(!properties.contains_key("s3.access-key-id"));
    }

    #[test]
    fn local_stores_need_no_client_settings() {
        assert!(file_io_properties("/var/inlet").is_empty());
        assert!(file_io_properties("file:///var/inlet").is_empty());
    }

    #[test]
    fn namespaces_have_one_level() {
        assert_eq!(database("db").ok(), Some("db"));
        assert!(matches!(
            database("db\u{1f}sub"),
            Err(RestError::NoSuchNamespace { namespace }) if namespace == "db.sub"
        ));
        assert!(database("").is_err());
    }

    #[test]
    fn errors_are_the_specs_error_model() {
        let missing = RestError::NoSuchTable {
            namespace: "db".into(),
            table: "t".into(),
        };
        assert_eq!(
            missing.status_and_type(),
            (StatusCode::NOT_FOUND, "NoSuchTableException")
        );
        assert_eq!(
            RestError::ReadOnly.status_and_type().0,
            StatusCode::NOT_IMPLEMENTED
        );
    }
}
