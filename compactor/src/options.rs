//! The compactor's settings: how often it looks for work, how much one round may read, how
//! long it holds a table, and the graces that keep garbage collection behind every reader and
//! every in-flight write. `inlet serve` loads them as its `[lake]` section (file,
//! `INLET_LAKE_*`, flags). Also the failpoint hook that crashes a round at a chosen step,
//! which exists only with the `testing` feature (tests and the simulation).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lake::LakeWriteOptions;

/// Default of [`CompactorOptions::scan_interval`].
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Default of [`CompactorOptions::lease_ttl`].
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);
/// Default of [`CompactorOptions::max_round_bytes`].
pub const DEFAULT_MAX_ROUND_BYTES: u64 = 1024 * 1024 * 1024;
/// Default of [`CompactorOptions::max_round_rows`].
pub const DEFAULT_MAX_ROUND_ROWS: u64 = 16 * 1024 * 1024;
/// Default of [`CompactorOptions::wal_gc_interval`].
pub const DEFAULT_WAL_GC_INTERVAL: Duration = Duration::from_secs(60);
/// Default of [`CompactorOptions::wal_upload_grace`].
pub const DEFAULT_WAL_UPLOAD_GRACE: Duration = Duration::from_secs(10 * 60);
/// Default of [`CompactorOptions::wal_read_grace`].
pub const DEFAULT_WAL_READ_GRACE: Duration = Duration::from_secs(5 * 60);
/// Default of [`CompactorOptions::drop_grace`].
pub const DEFAULT_DROP_GRACE: Duration = Duration::from_secs(10 * 60);
/// Default of [`CompactorOptions::orphan_grace`].
pub const DEFAULT_ORPHAN_GRACE: Duration = Duration::from_secs(10 * 60);

/// How a compactor runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactorOptions {
    /// How often the loop looks for tables that are due. Only the check: a table is tiered at
    /// most once per its `lake.freshness`. Lower = rounds start closer to their due time, more
    /// catalog scans (cheap, in memory). Default 1 s.
    #[serde(with = "humantime_serde")]
    pub scan_interval: Duration,
    /// How long a table lease lasts; renewed at every round and during long rounds. A
    /// compactor that dies holds its tables this long before another takes over. Longer =
    /// slower failover, shorter = more lease writes (one index write per renewal). Default 30 s.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How rounds write Parquet (file and row-group sizes, zstd level).
    pub write: LakeWriteOptions,
    /// Small-file compaction of log tables' lake data files.
    pub compaction: CompactionOptions,
    /// WAL chunk bytes one round reads at most, summed over the table's buckets; the round
    /// ends at the chunk boundary before the limit (but always takes one chunk), and a backlog
    /// continues in the next round at once. Bounds a round's duration and its index commit.
    /// Default 1 GiB.
    pub max_round_bytes: u64,
    /// Rows one round tiers at most, cut the same way. Default 16 Mi rows.
    pub max_round_rows: u64,
    /// How often WAL garbage collection lists `wal/`. One LIST of the WAL prefix and one
    /// scan of the chunk index per run. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub wal_gc_interval: Duration,
    /// A WAL object younger than this is never considered garbage: it may have been uploaded
    /// and not yet committed. Must exceed the longest upload-to-commit time. Default 10 min.
    #[serde(with = "humantime_serde")]
    pub wal_upload_grace: Duration,
    /// How long a WAL object must have been unreferenced (no chunk entry points into it)
    /// before it is deleted: a reader that looked up a chunk before it was trimmed may still
    /// GET it. Must exceed the longest read. Default 5 min.
    #[serde(with = "humantime_serde")]
    pub wal_read_grace: Duration,
    /// A file under a lake table that the table's committed metadata does not reference is
    /// deleted by crash repair only once it is older than this. Default 10 min.
    #[serde(with = "humantime_serde")]
    pub orphan_grace: Duration,
    /// A dropped table's index entries, WAL and (if dropped with `purge`) lake table are
    /// deleted once it was dropped this long ago, so reads that started before the drop
    /// finish first. Default 10 min.
    #[serde(with = "humantime_serde")]
    pub drop_grace: Duration,
    /// This compactor's id in table leases; `None` (the default) draws one from the injected
    /// id source at start.
    pub owner: Option<u64>,
    /// Called at each [`Failpoint`] of a round; an error crashes the round there. Only with
    /// the `testing` feature; `None` (the default).
    #[cfg(feature = "testing")]
    #[serde(skip)]
    pub failpoints: Option<FailpointHook>,
}

impl Default for CompactorOptions {
    fn default() -> Self {
        Self {
            scan_interval: DEFAULT_SCAN_INTERVAL,
            lease_ttl: DEFAULT_LEASE_TTL,
            write: LakeWriteOptions::default(),
            compaction: CompactionOptions::default(),
            max_round_bytes: DEFAULT_MAX_ROUND_BYTES,
            max_round_rows: DEFAULT_MAX_ROUND_ROWS,
            wal_gc_interval: DEFAULT_WAL_GC_INTERVAL,
            wal_upload_grace: DEFAULT_WAL_UPLOAD_GRACE,
            wal_read_grace: DEFAULT_WAL_READ_GRACE,
            orphan_grace: DEFAULT_ORPHAN_GRACE,
            drop_grace: DEFAULT_DROP_GRACE,
            owner: None,
            #[cfg(feature = "testing")]
            failpoints: None,
        }
    }
}

/// Default of [`CompactionOptions::min_files`].
pub const DEFAULT_COMPACTION_MIN_FILES: usize = 16;
/// Default of [`CompactionOptions::max_round_bytes`].
pub const DEFAULT_COMPACTION_MAX_ROUND_BYTES: u64 = 1024 * 1024 * 1024;

/// Small-file compaction (`[lake.compaction]`): after its commits, a round rewrites runs of
/// a log table's small data files (below a quarter of `write.target_file_bytes`) into files
/// of about that size, as one `replace` snapshot ([`crate::lake::compact`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionOptions {
    /// A bucket is compacted once it has this many small files. Lower = fewer files for
    /// engines to open, more rewriting (a file may be rewritten several times on its way to
    /// the target size). 0 turns compaction off. Default 16.
    pub min_files: usize,
    /// Bytes of small files one round rewrites at most (always one group), so compaction
    /// never starves tiering; the rest continues in the next round. Default 1 GiB.
    pub max_round_bytes: u64,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        Self {
            min_files: DEFAULT_COMPACTION_MIN_FILES,
            max_round_bytes: DEFAULT_COMPACTION_MAX_ROUND_BYTES,
        }
    }
}

impl CompactionOptions {
    /// The rule rounds apply with files written at `target_file_bytes`; `None` when off.
    pub fn rule(&self, target_file_bytes: usize) -> Option<crate::lake::CompactionRule> {
        (self.min_files > 0).then_some(crate::lake::CompactionRule {
            target_bytes: target_file_bytes as u64,
            min_files: self.min_files,
            max_bytes: self.max_round_bytes,
        })
    }
}

/// A step of a round where a test can crash it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failpoint {
    /// The round's Parquet data files are written and closed; no manifest, no metadata.
    AfterDataFiles,
    /// The round is staged: manifest, manifest list and the next metadata file are written;
    /// the index does not know them.
    AfterMetadata,
    /// The index commit succeeded; the version hint still names the previous version.
    AfterIndexCommit,
}

/// A crash a failpoint injected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("injected crash: {reason}")]
pub struct InjectedCrash {
    pub reason: String,
}

/// The failpoint hook (test only): an error aborts the round at that step the way a crash
/// would, leaving every file behind and cleaning nothing up.
#[derive(Clone)]
pub struct FailpointHook(pub Arc<dyn Fn(Failpoint) -> Result<(), InjectedCrash> + Send + Sync>);

impl FailpointHook {
    pub fn new(
        hook: impl Fn(Failpoint) -> Result<(), InjectedCrash> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(hook))
    }
}

impl std::fmt::Debug for FailpointHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FailpointHook(..)")
    }
}
