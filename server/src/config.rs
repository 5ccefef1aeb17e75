//! Server settings: plain serde structs with documented defaults, read from a TOML file, then
//! overridden by `INLET_*` environment variables and command-line flags (see `main.rs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use inlet_cache::CacheOptions;
use inlet_compactor::CompactorOptions;
use inlet_index::IndexOptions;
use inlet_writer::WriterOptions;
use serde::{Deserialize, Serialize};

/// Everything `inlet serve` needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where everything is stored: `file:///path` (or a plain path), `memory://`, or
    /// `s3://bucket/prefix` (endpoint, region and credentials from the standard `AWS_*`
    /// variables, `AWS_ENDPOINT_URL` included). Default `./inlet-data`.
    pub store: String,
    /// gRPC listen address. Default `127.0.0.1:7070`.
    pub listen: SocketAddr,
    /// HTTP listen address for `/health`, `/metrics` and the Iceberg REST catalog
    /// (`/iceberg`); none disables HTTP. Default `127.0.0.1:7071`.
    pub http_listen: Option<SocketAddr>,
    pub writer: WriterConfig,
    pub index: IndexConfig,
    pub cache: CacheConfig,
    pub lake: LakeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            store: "./inlet-data".to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 7071))),
            writer: WriterConfig::default(),
            index: IndexConfig::default(),
            cache: CacheConfig::default(),
            lake: LakeConfig::default(),
        }
    }
}

/// Lake tiering: the compactor role and the defaults of new tables.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LakeConfig {
    /// Run the compactor role in this process: tier every table with `lake.enabled` into
    /// its Iceberg table and garbage-collect the WAL. Default true.
    pub compactor: bool,
    /// `lake.enabled` of tables created without that option. Default false.
    pub tables_default: bool,
    /// How often the compactor looks for tables with rows to tier (each table still waits
    /// its `lake.freshness` between commits). Default `1s`.
    #[serde(with = "humantime_serde")]
    pub scan_interval: Duration,
    /// How long a compactor's claim on a table lasts unless renewed; a crashed compactor's
    /// tables are taken over after this. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How often unreferenced WAL objects are looked for. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub wal_gc_interval: Duration,
    /// A WAL object younger than this may still be being committed; it is never deleted.
    /// Must exceed the writer's upload and commit timeouts. Default `10m`.
    #[serde(with = "humantime_serde")]
    pub wal_upload_grace: Duration,
    /// How long a WAL object stays after its last chunk entry went, for reads that already
    /// looked it up. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub wal_read_grace: Duration,
    /// Files in a lake table's folder that its metadata does not reference are deleted once
    /// older than this (the leftovers of a crashed round). Default `10m`.
    #[serde(with = "humantime_serde")]
    pub orphan_grace: Duration,
}

impl Default for LakeConfig {
    fn default() -> Self {
        let defaults = CompactorOptions::default();
        Self {
            compactor: true,
            tables_default: false,
            scan_interval: defaults.scan_interval,
            lease_ttl: defaults.lease_ttl,
            wal_gc_interval: defaults.wal_gc_interval,
            wal_upload_grace: defaults.wal_upload_grace,
            wal_read_grace: defaults.wal_read_grace,
            orphan_grace: defaults.orphan_grace,
        }
    }
}

impl LakeConfig {
    pub fn compactor_options(&self) -> CompactorOptions {
        CompactorOptions {
            scan_interval: self.scan_interval,
            lease_ttl: self.lease_ttl,
            wal_gc_interval: self.wal_gc_interval,
            wal_upload_grace: self.wal_upload_grace,
            wal_read_grace: self.wal_read_grace,
            orphan_grace: self.orphan_grace,
            ..CompactorOptions::default()
        }
    }
}

/// Write batching. See [`WriterOptions`] for each trade-off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterConfig {
    /// How long the first row of a WAL object waits for more. Lower = lower latency, more
    /// PUTs (5 ms ≈ 17 M PUTs/day per busy writer). Default `5ms`; use 100-250 ms on S3.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Flush a WAL object early at this many buffered bytes. Default 8 MiB.
    pub flush_bytes: usize,
    /// Most bytes of unacknowledged appends a writer holds; producers wait above it.
    /// Default 256 MiB.
    pub max_buffered_bytes: usize,
    /// How long an append waits for buffer space before failing as overloaded. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub overload_timeout: Duration,
    /// WAL uploads in flight at once. Default 4.
    pub max_inflight_uploads: usize,
    /// Attempts per WAL upload (transient errors are retried with jittered exponential
    /// backoff). More = rides out longer blips, slower failure. Default 5.
    pub upload_attempts: u32,
    /// Deadline of one WAL upload including its retries; past it the appends in that flush
    /// fail as unavailable (and nothing of them is visible). Default `10s`.
    #[serde(with = "humantime_serde")]
    pub upload_timeout: Duration,
    /// How long an append waits for its commit to become durable before the client is told
    /// the outcome is unknown (an index whose store is down never hangs producers).
    /// Default `30s`.
    #[serde(with = "humantime_serde")]
    pub commit_timeout: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        let defaults = WriterOptions::default();
        Self {
            linger: defaults.linger,
            flush_bytes: defaults.flush_bytes,
            max_buffered_bytes: defaults.max_buffered_bytes,
            overload_timeout: defaults.overload_timeout,
            max_inflight_uploads: defaults.max_inflight_uploads,
            upload_attempts: defaults.upload_attempts,
            upload_timeout: defaults.upload_timeout,
            commit_timeout: defaults.commit_timeout,
        }
    }
}

impl WriterConfig {
    pub fn options(&self) -> WriterOptions {
        WriterOptions {
            linger: self.linger,
            flush_bytes: self.flush_bytes,
            max_buffered_bytes: self.max_buffered_bytes,
            overload_timeout: self.overload_timeout,
            max_inflight_uploads: self.max_inflight_uploads,
            upload_attempts: self.upload_attempts,
            upload_timeout: self.upload_timeout,
            commit_timeout: self.commit_timeout,
            ..WriterOptions::default()
        }
    }
}

/// The SlateDB index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// SlateDB's background WAL flush interval (commits flush explicitly). Default `100ms`.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// How long an idle idempotent producer's state is kept; a retry after longer may
    /// append a duplicate. Longer = more index entries for producers that went away.
    /// Default `24h`.
    #[serde(with = "humantime_serde")]
    pub producer_ttl: Duration,
}

impl Default for IndexConfig {
    fn default() -> Self {
        let defaults = IndexOptions::default();
        Self {
            flush_interval: defaults.flush_interval,
            producer_ttl: defaults.producer_ttl,
        }
    }
}

impl IndexConfig {
    pub fn options(&self) -> IndexOptions {
        IndexOptions {
            flush_interval: self.flush_interval,
            producer_ttl: self.producer_ttl,
            ..IndexOptions::default()
        }
    }
}

/// The read cache (foyer: memory, plus SSD only when a directory is set).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Memory tier in bytes. More = more hits, more RAM. Default 256 MiB.
    pub memory_bytes: usize,
    /// Page size in bytes: the unit of caching and of ranged GETs. Smaller = column-pruned
    /// reads GET fewer bytes, more cache entries. Default 64 KiB.
    pub page_size: usize,
    /// SSD tier directory; none by default, so no local disk is needed.
    pub disk_dir: Option<PathBuf>,
    /// SSD tier capacity in bytes, used only with `disk_dir`. Default 16 GiB.
    pub disk_bytes: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        let defaults = CacheOptions::default();
        Self {
            memory_bytes: defaults.memory_bytes,
            page_size: defaults.page_size,
            disk_dir: defaults.disk_dir,
            disk_bytes: defaults.disk_bytes,
        }
    }
}

impl CacheConfig {
    pub fn options(&self) -> CacheOptions {
        CacheOptions {
            memory_bytes: self.memory_bytes,
            page_size: self.page_size,
            disk_dir: self.disk_dir.clone(),
            disk_bytes: self.disk_bytes,
            ..CacheOptions::default()
        }
    }
}

impl Config {
    /// Reads a TOML file; settings it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))
    }

    /// Settings that are each valid but unsafe together. WAL garbage collection takes a WAL
    /// object no chunk entry points into for garbage only once it is older than
    /// `lake.wal_upload_grace`; an object still being uploaded and committed is exactly such
    /// an object, so the grace must outlast the writer's upload and commit deadlines, or
    /// acknowledged rows could be deleted.
    pub fn validate(&self) -> anyhow::Result<()> {
        let in_flight = self.writer.upload_timeout + self.writer.commit_timeout;
        if self.lake.compactor && self.lake.wal_upload_grace <= in_flight {
            anyhow::bail!(
                "lake.wal_upload_grace ({:?}) must exceed writer.upload_timeout + \
                 writer.commit_timeout ({in_flight:?}): a younger WAL object may not be \
                 committed yet",
                self.lake.wal_upload_grace
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wal_upload_grace_shorter_than_an_upload_and_commit_is_refused() {
        let mut config = Config::default();
        config.validate().expect("defaults are consistent");
        config.lake.wal_upload_grace = config.writer.upload_timeout + config.writer.commit_timeout;
        let error = config.validate().expect_err("grace equal to the deadlines");
        assert!(
            error.to_string().contains("lake.wal_upload_grace"),
            "{error}"
        );
        config.lake.compactor = false;
        config
            .validate()
            .expect("no compactor, no WAL garbage collection");
    }

    #[test]
    fn partial_files_keep_defaults_and_unknown_keys_are_errors() {
        let config: Config = toml::from_str("[writer]\nlinger = \"250ms\"\n").expect("parses");
        assert_eq!(config.writer.linger, Duration::from_millis(250));
        assert_eq!(config.store, "./inlet-data");
        assert!(toml::from_str::<Config>("[writer]\nlingr = \"1ms\"\n").is_err());
    }
}
