//! The catalog's endpoints: namespaces are Inlet databases, tables those with a committed
//! lake table; every write endpoint answers that the catalog is read-only.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use inlet_security::acl::{Permission, Target};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::RestError;
use super::{ENDPOINTS, NAMESPACE_SEPARATOR, RestCatalog};
use crate::auth::{Access, Caller};

/// The one namespace level of `namespace` (a path segment, multi-level ones joined by 0x1F).
/// Inlet namespaces have one level, so a deeper one does not exist.
pub(super) fn database(namespace: &str) -> Result<&str, RestError> {
    if namespace.is_empty() || namespace.contains(NAMESPACE_SEPARATOR) {
        return Err(RestError::NoSuchNamespace {
            namespace: namespace.replace(NAMESPACE_SEPARATOR, "."),
        });
    }
    Ok(namespace)
}

pub(super) fn existing_database<'a>(
    catalog: &RestCatalog,
    namespace: &'a str,
) -> Result<&'a str, RestError> {
    let database = database(namespace)?;
    catalog
        .index
        .database(database)
        .map_err(|_| RestError::NoSuchNamespace {
            namespace: database.to_owned(),
        })?;
    Ok(database)
}

pub(super) async fn config() -> Json<Value> {
    Json(json!({ "defaults": {}, "overrides": {}, "endpoints": ENDPOINTS }))
}

#[derive(Deserialize)]
pub(super) struct ListNamespacesQuery {
    parent: Option<String>,
}

/// What the caller may see: everything without authentication, else its grants.
fn access(catalog: &RestCatalog, caller: Option<Extension<Caller>>) -> Access {
    match Access::limited_to(caller.as_ref().map(|Extension(caller)| caller)) {
        Some(principal) => Access::Granted {
            principal,
            grants: catalog.index.grants(),
        },
        None => Access::Everything,
    }
}

/// Refuses a table the caller may not read (403, as the spec's ForbiddenException).
fn readable(access: &Access, database: &str, table: &str) -> Result<(), RestError> {
    access
        .require(Permission::Read, Target::Table { database, table })
        .map_err(|status| RestError::Forbidden(status.message().to_owned()))
}

pub(super) async fn list_namespaces(
    State(catalog): State<RestCatalog>,
    caller: Option<Extension<Caller>>,
    Query(query): Query<ListNamespacesQuery>,
) -> Result<Json<Value>, RestError> {
    let access = access(&catalog, caller);
    let namespaces: Vec<Vec<String>> = match query.parent.as_deref() {
        None | Some("") => {
            let mut names: Vec<String> = catalog
                .index
                .list_databases()
                .into_iter()
                .map(|db| db.name)
                .filter(|name| access.sees_database(name))
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
pub(super) async fn load_namespace(
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

pub(super) async fn namespace_exists(
    State(catalog): State<RestCatalog>,
    Path(namespace): Path<String>,
) -> Result<StatusCode, RestError> {
    existing_database(&catalog, &namespace)?;
    Ok(StatusCode::NO_CONTENT)
}

#[tracing::instrument(skip(catalog))]
pub(super) async fn list_tables(
    State(catalog): State<RestCatalog>,
    caller: Option<Extension<Caller>>,
    Path(namespace): Path<String>,
) -> Result<Json<Value>, RestError> {
    let access = access(&catalog, caller);
    let database = database(&namespace)?;
    let tables = catalog
        .index
        .list_tables(database)
        .map_err(|_| RestError::NoSuchNamespace {
            namespace: database.to_owned(),
        })?;
    let mut identifiers = Vec::new();
    for table in tables {
        if readable(&access, database, &table.name).is_err() {
            continue;
        }
        let record = catalog.index.lake_table(table.id).await?;
        if record.is_some_and(|record| record.metadata_location.is_some()) {
            identifiers.push(json!({ "namespace": [database], "name": table.name }));
        }
    }
    Ok(Json(json!({ "identifiers": identifiers })))
}

#[tracing::instrument(skip(catalog))]
pub(super) async fn load_table(
    State(catalog): State<RestCatalog>,
    caller: Option<Extension<Caller>>,
    Path((namespace, table)): Path<(String, String)>,
) -> Result<Json<Value>, RestError> {
    let database = database(&namespace)?;
    readable(&access(&catalog, caller), database, &table)?;
    let location = catalog.metadata_location(database, &table).await?;
    let metadata = catalog.read_metadata(&location).await?;
    Ok(Json(json!({
        "metadata-location": location,
        "metadata": metadata,
        "config": *catalog.file_io,
    })))
}

pub(super) async fn table_exists(
    State(catalog): State<RestCatalog>,
    caller: Option<Extension<Caller>>,
    Path((namespace, table)): Path<(String, String)>,
) -> Result<StatusCode, RestError> {
    let database = database(&namespace)?;
    readable(&access(&catalog, caller), database, &table)?;
    catalog.metadata_location(database, &table).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Scan reports (Java clients send one after each scan): accepted and dropped.
pub(super) async fn accept_metrics() -> StatusCode {
    StatusCode::NO_CONTENT
}

pub(super) async fn read_only() -> RestError {
    RestError::ReadOnly
}

pub(super) async fn no_route() -> RestError {
    RestError::NoRoute
}

pub(super) async fn method_not_allowed() -> RestError {
    RestError::MethodNotAllowed
}
