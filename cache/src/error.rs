//! Why opening the cache, reading through it or closing it failed.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use inlet_core::error::{ErrorKind, HasKind};
use slatedb::object_store::{self, path::Path};

/// Why [`crate::PagedCache::open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("invalid cache option `{option}`: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },
    #[error("cannot build the cache")]
    Cache(#[source] foyer::Error),
    #[error("cannot open the ssd cache tier in `{}`", dir.display())]
    Disk {
        dir: PathBuf,
        #[source]
        source: foyer::Error,
    },
}

/// Why [`crate::PagedCache::close`] failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot close the cache cleanly")]
pub struct CloseError(#[source] pub foyer::Error);

/// Why [`crate::PagedCache::get_range`] failed. Every variant names the object and the bytes
/// that were asked for. Clone, because one failed GET fails every read waiting on it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CacheError {
    #[error("invalid range {range:?} of object `{path}`: start is after end")]
    InvalidRange { path: Path, range: Range<u64> },
    #[error("range {range:?} of object `{path}` ends past the object's end at {len} bytes")]
    BeyondEnd {
        path: Path,
        range: Range<u64>,
        len: u64,
    },
    #[error("get of bytes {range:?} of object `{path}` failed")]
    Get {
        path: Path,
        range: Range<u64>,
        #[source]
        source: Arc<object_store::Error>,
    },
    #[error(
        "object `{path}` is {found} bytes, expected {expected} (while reading bytes {range:?})"
    )]
    LengthMismatch {
        path: Path,
        range: Range<u64>,
        expected: u64,
        found: u64,
    },
    #[error("get of bytes {range:?} of object `{path}` returned {found}, expected {expected}")]
    BadResponse {
        path: Path,
        range: Range<u64>,
        expected: String,
        found: String,
    },
    #[error(
        "page {page} of object `{path}` holds {found} bytes, expected {expected} \
         (while reading bytes {range:?})"
    )]
    PageMismatch {
        path: Path,
        range: Range<u64>,
        page: u64,
        expected: u64,
        found: u64,
    },
    #[error("cache failed while reading bytes {range:?} of object `{path}`")]
    Cache {
        path: Path,
        range: Range<u64>,
        #[source]
        source: foyer::Error,
    },
    #[error("get of bytes {range:?} of object `{path}` was aborted: {reason}")]
    Aborted {
        path: Path,
        range: Range<u64>,
        reason: String,
    },
}

impl HasKind for CacheError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidRange { .. } => ErrorKind::InvalidInput,
            Self::BeyondEnd { .. } => ErrorKind::OutOfRange,
            Self::Get { source, .. } => match source.as_ref() {
                object_store::Error::NotFound { .. } => ErrorKind::NotFound,
                _ => ErrorKind::Unavailable,
            },
            Self::LengthMismatch { .. } | Self::PageMismatch { .. } | Self::BadResponse { .. } => {
                ErrorKind::Corruption
            }
            Self::Cache { .. } => ErrorKind::Internal,
            Self::Aborted { .. } => ErrorKind::Unavailable,
        }
    }
}
