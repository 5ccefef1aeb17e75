//! Inlet's write path: check appended batches against the table, route rows to buckets,
//! batch rows of many streams into one WAL object per flush, upload it with put-if-absent,
//! have the index owner commit its chunks, and ack each append with its offsets only once
//! that commit is durable.

mod batcher;
pub mod error;
pub mod keyed;
pub mod options;
mod upload;
pub mod validate;

pub use batcher::{BucketAppend, Writer};
pub use error::AppendError;
pub use keyed::WriteOp;
pub use options::WriterOptions;
