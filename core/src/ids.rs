//! Identifiers and newtypes shared by every role.
//!
//! Numbers that reach object storage or the index are fixed-width and their meaning never
//! changes; the newtypes keep a bucket from being passed where an offset is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A table's id, allocated by the index owner, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableId(pub u64);

/// A database's id, allocated by the index owner, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DatabaseId(pub u64);

/// Version of a table's schema; increases on evolution. The first schema is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SchemaId(pub u32);

/// Partition of a table; 0 for a table without a partition key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId(pub u32);

/// Bucket number within a table (or partition): `0..bucket_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Bucket(pub u32);

/// Position of a record within its stream: dense, starting at 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Offset(pub u64);

/// Microseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimestampMicros(pub i64);

/// One bucket of one partition of one table: the unit of order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamId {
    pub table: TableId,
    pub partition: PartitionId,
    pub bucket: Bucket,
}

impl StreamId {
    pub fn new(table: TableId, partition: PartitionId, bucket: Bucket) -> Self {
        Self {
            table,
            partition,
            bucket,
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table {}/partition {}/bucket {}",
            self.table.0, self.partition.0, self.bucket.0
        )
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identity of one WAL object. The high 48 bits are the writer's clock in milliseconds when
/// the object was named (so names sort by time), the low 80 bits are random. Objects are
/// immutable and never overwritten: this id is the cache key and the put-if-absent name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WalObjectId(pub u128);

impl WalObjectId {
    /// Builds an id from a millisecond timestamp and 80 random bits.
    pub fn new(unix_millis: u64, random: u128) -> Self {
        let millis = u128::from(unix_millis & 0xFFFF_FFFF_FFFF);
        let random = random & ((1u128 << 80) - 1);
        Self((millis << 80) | random)
    }

    /// Path of the object under the store's root.
    pub fn path(&self) -> String {
        format!("wal/{:032x}.wal", self.0)
    }

    /// Parses a path produced by [`WalObjectId::path`].
    pub fn from_path(path: &str) -> Option<Self> {
        let hex = path.strip_prefix("wal/")?.strip_suffix(".wal")?;
        if hex.len() != 32 {
            return None;
        }
        u128::from_str_radix(hex, 16).ok().map(Self)
    }
}

impl fmt::Display for WalObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_object_path_round_trips_and_sorts_by_time() {
        let a = WalObjectId::new(1_700_000_000_000, u128::MAX);
        let b = WalObjectId::new(1_700_000_000_001, 0);
        assert_eq!(WalObjectId::from_path(&a.path()), Some(a));
        assert!(a.path() < b.path());
        assert_eq!(WalObjectId::from_path("wal/xyz.wal"), None);
    }
}
