//! Inlet's read cache: a paged cache over the object store for immutable objects (WAL objects,
//! later Parquet files).
//!
//! Pages are keyed by object identity and an aligned page index, never by stream and offset:
//! objects never change, so nothing is ever invalidated. The cache is a foyer hybrid cache —
//! memory, plus an SSD tier only when a directory is configured. Concurrent misses for one page
//! make one GET, and adjacent missing pages of one read are fetched with one ranged GET.

mod error;
mod options;
mod page;
mod paged;
mod stats;

pub use error::{CacheError, CloseError, OpenError};
pub use options::CacheOptions;
pub use paged::PagedCache;
pub use stats::CacheStats;
