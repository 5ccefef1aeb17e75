//! Catalog records as stored in the index: JSON documents with a format version, so fields
//! can be added without a migration. Schemas are stored separately as Arrow IPC.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keys::CodecError;

/// Current version of the catalog records; readers reject newer ones.
pub const CATALOG_RECORD_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatabaseRecord {
    pub version: u32,
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub comment: String,
    pub created_at_micros: i64,
}

/// One partition of a partitioned table (`0x07`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub version: u32,
    /// The partition key's values as strings, in partition-key order.
    pub values: Vec<String>,
    pub created_at_micros: i64,
    /// Set when the partition was dropped; its data awaits garbage collection.
    #[serde(default)]
    pub dropped_at_micros: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableRecord {
    pub version: u32,
    pub id: u64,
    pub database_id: u64,
    pub database: String,
    pub name: String,
    /// Current schema version; the schema is under its own key.
    pub schema_id: u32,
    pub bucket_count: u32,
    #[serde(default)]
    pub bucket_key: Vec<String>,
    #[serde(default)]
    pub partition_key: Vec<String>,
    /// Empty for log tables.
    #[serde(default)]
    pub primary_key: Vec<String>,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    pub created_at_micros: i64,
    /// Set when the table was dropped; its data awaits garbage collection.
    #[serde(default)]
    pub dropped_at_micros: Option<i64>,
    /// Set when it was dropped with `purge`: its lake table goes with its WAL and index
    /// entries (otherwise the lake table stays in the bucket for engines that read it).
    #[serde(default)]
    pub purge_lake: bool,
    /// Partitioned tables: the highest partition id ever given, so ids of purged partitions
    /// (whose records are gone) are not given again.
    #[serde(default)]
    pub last_partition_id: u32,
}

/// The lake (Iceberg) side of a table: Inlet's catalog entry for it. Changed only by
/// compare-and-swap through the sequencer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LakeTableRecord {
    pub version: u32,
    /// URL of the current Iceberg metadata file; `None` until the first commit.
    #[serde(default)]
    pub metadata_location: Option<String>,
    /// The current snapshot; `None` while the table has none.
    #[serde(default)]
    pub snapshot_id: Option<i64>,
    /// The compactor allowed to commit, if any.
    #[serde(default)]
    pub lease: Option<LakeLease>,
    /// Index commit time of the last change of `metadata_location`, µs.
    #[serde(default)]
    pub updated_at_micros: i64,
}

/// The right of one compactor to commit one lake table, until it expires. Every new holder
/// gets a higher epoch, so a commit made with an older lease is refused (fenced).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LakeLease {
    /// Id of the compactor holding it.
    pub owner: u64,
    pub epoch: u64,
    pub expires_at_micros: i64,
}

/// Every permission grant (`inlet_security::acl`), in one record: grants are few and every
/// check reads them all.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GrantsRecord {
    pub version: u32,
    pub grants: inlet_security::acl::Grants,
}

impl Versioned for GrantsRecord {
    fn version(&self) -> u32 {
        self.version
    }
}

/// Encodes a record as JSON.
pub fn encode_record<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("catalog records contain only JSON-representable fields")
}

/// Decodes a record, rejecting versions newer than this build understands.
pub fn decode_record<T>(bytes: &[u8]) -> Result<T, CodecError>
where
    T: for<'de> Deserialize<'de> + Versioned,
{
    let record: T = serde_json::from_slice(bytes).map_err(|e| CodecError::Json(e.to_string()))?;
    if record.version() > CATALOG_RECORD_VERSION {
        return Err(CodecError::Version {
            version: u8::try_from(record.version()).unwrap_or(u8::MAX),
            supported: CATALOG_RECORD_VERSION as u8,
        });
    }
    Ok(record)
}

/// Records that carry a format version.
pub trait Versioned {
    fn version(&self) -> u32;
}

impl Versioned for DatabaseRecord {
    fn version(&self) -> u32 {
        self.version
    }
}

impl Versioned for PartitionRecord {
    fn version(&self) -> u32 {
        self.version
    }
}

impl Versioned for TableRecord {
    fn version(&self) -> u32 {
        self.version
    }
}

impl Versioned for LakeTableRecord {
    fn version(&self) -> u32 {
        self.version
    }
}
