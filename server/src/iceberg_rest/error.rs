//! Catalog errors, answered as the REST spec's `ErrorModel`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use inlet_core::error::{ErrorKind, HasKind};
use inlet_index::IndexError;
use serde_json::json;

/// A catalog error, answered as the spec's `ErrorModel`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RestError {
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
    NotAuthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl RestError {
    pub(crate) fn from_kind(kind: ErrorKind, message: String) -> Self {
        match kind {
            ErrorKind::Unavailable | ErrorKind::Fenced => Self::Unavailable(message),
            ErrorKind::InvalidInput => Self::BadRequest(message),
            _ => Self::Internal(message),
        }
    }

    pub(crate) fn status_and_type(&self) -> (StatusCode, &'static str) {
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
            Self::NotAuthorized(_) => (StatusCode::UNAUTHORIZED, "NotAuthorizedException"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "ForbiddenException"),
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
