//! Inlet's read path: resolve a start position, find chunks through the index, read and
//! check them, project columns, add the system columns and stream batches; tail a stream by
//! waiting on the index's commit notifications.

pub mod changelog;
pub mod chunk;
pub mod error;
pub mod fetch;
pub mod lookup;

pub use chunk::{ChunkError, ChunkRead, with_system_columns};
pub use error::FetchError;
pub use fetch::{
    BucketOffsets, FetchRequest, FetchStream, FetchedBatch, Reader, SnapshotPart, StartPosition,
};
pub use inlet_cache::PagedCache;
pub use lookup::LookupResult;
