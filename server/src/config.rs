//! Server settings, loaded in layers by `figment`: defaults, then a TOML file, then `INLET_*`
//! environment variables, then command-line flags (later wins).
//!
//! The sections are the role crates' own option structs ([`WriterOptions`],
//! [`IndexOptions`], [`CacheOptions`], [`CompactorOptions`]): each field there is a setting,
//! documented once, with its default, and reachable from the file and the environment
//! without a second copy here. A variable names its section and key joined by `_`:
//! `INLET_WRITER_FLUSH_BYTES` is `writer.flush_bytes`, `INLET_LAKE_WRITE_ZSTD_LEVEL` is
//! `lake.write.zstd_level`. Unknown keys are errors that name the key and where it came from.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Uncased;
use inlet_cache::CacheOptions;
use inlet_compactor::CompactorOptions;
use inlet_index::IndexOptions;
use inlet_security::tls::TlsSettings;
use inlet_writer::WriterOptions;
use serde::{Deserialize, Serialize};

use crate::auth::AuthSettings;
use crate::quota::QuotaSettings;
use crate::roles::Roles;

/// Prefix of the environment variables that hold settings.
pub const ENV_PREFIX: &str = "INLET_";

/// The sections of [`Config`], in the order their variables are matched (`lake_write_*`
/// belongs to `lake`, whose `write` table the key then names; so does `lake_compaction_*`).
const SECTIONS: [&str; 7] = ["writer", "index", "cache", "lake", "tls", "auth", "quotas"];

/// Top-level keys of [`Config`] outside any section.
const TOP_LEVEL: [&str; 6] = [
    "store",
    "listen",
    "http_listen",
    "roles",
    "advertise",
    "standby",
];

/// Everything `inlet serve` needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where everything is stored: `file:///path` (or a plain path), `memory://`, or
    /// `s3://bucket/prefix` (endpoint, region and credentials from the standard `AWS_*`
    /// variables, `AWS_ENDPOINT_URL` included). Default `./inlet-data`.
    pub store: String,
    /// gRPC listen address. Default `127.0.0.1:7070`.
    pub listen: SocketAddr,
    /// HTTP listen address for `/health`, `/metrics` and the Iceberg REST catalog
    /// (`/iceberg`); `off` disables HTTP. Default `127.0.0.1:7071`.
    #[serde(with = "address_or_off")]
    pub http_listen: Option<SocketAddr>,
    /// Roles this process runs: any of `index`, `writer`, `reader`, `compactor`, comma
    /// separated. Default all (one process is the whole service).
    pub roles: Roles,
    /// The gRPC address other nodes and clients reach this node on, published in the store
    /// when this node owns the index and announced when it joins. Default: `listen` (which
    /// must then not be a wildcard such as 0.0.0.0).
    pub advertise: Option<String>,
    /// With the `index` role: wait while the published owner answers and take over when it
    /// has failed three checks a second apart, instead of fencing it at once. Default false.
    pub standby: bool,
    pub writer: WriterOptions,
    pub index: IndexOptions,
    pub cache: CacheOptions,
    pub lake: LakeConfig,
    /// TLS on both listeners and on this node's calls to other nodes ([`TlsSettings`]).
    pub tls: TlsSettings,
    /// Who may call ([`AuthSettings`]).
    pub auth: AuthSettings,
    /// How much one principal may move, and one connection hold open ([`QuotaSettings`]).
    pub quotas: QuotaSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            store: "./inlet-data".to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 7071))),
            roles: Roles::ALL,
            advertise: None,
            standby: false,
            writer: WriterOptions::default(),
            index: IndexOptions::default(),
            cache: CacheOptions::default(),
            lake: LakeConfig::default(),
            tls: TlsSettings::default(),
            auth: AuthSettings::default(),
            quotas: QuotaSettings::default(),
        }
    }
}

/// The `[lake]` section: whether this process runs the compactor, the default of new tables,
/// and the compactor's own settings ([`CompactorOptions`]) beside them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "LakeSection", into = "LakeSection")]
pub struct LakeConfig {
    /// Run the compactor role in this process: tier every table with `lake.enabled` into
    /// its Iceberg table and garbage-collect the WAL. Default true.
    pub compactor: bool,
    /// `lake.enabled` of tables created without that option. Default false.
    pub tables_default: bool,
    /// How the compactor tiers, collects and repairs (the rest of the section).
    pub tiering: CompactorOptions,
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            compactor: true,
            tables_default: false,
            tiering: CompactorOptions::default(),
        }
    }
}

/// `[lake]` as written: two server switches and the compactor's settings in one table. serde
/// cannot deny unknown keys across a flattened struct, so the rest is kept as a table and
/// read as [`CompactorOptions`], which does.
#[derive(Serialize, Deserialize)]
struct LakeSection {
    #[serde(default = "LakeSection::default_compactor")]
    compactor: bool,
    #[serde(default)]
    tables_default: bool,
    #[serde(flatten)]
    tiering: serde_json::Map<String, serde_json::Value>,
}

impl LakeSection {
    fn default_compactor() -> bool {
        LakeConfig::default().compactor
    }
}

impl TryFrom<LakeSection> for LakeConfig {
    type Error = String;

    fn try_from(section: LakeSection) -> Result<Self, String> {
        let tiering = serde_json::from_value(serde_json::Value::Object(section.tiering))
            .map_err(|e| format!("in [lake]: {e}"))?;
        Ok(Self {
            compactor: section.compactor,
            tables_default: section.tables_default,
            tiering,
        })
    }
}

impl From<LakeConfig> for LakeSection {
    fn from(config: LakeConfig) -> Self {
        let serde_json::Value::Object(tiering) = serde_json::to_value(&config.tiering)
            .expect("CompactorOptions is a struct of plain values: it serializes to a table")
        else {
            unreachable!("a struct serializes to a JSON object")
        };
        Self {
            compactor: config.compactor,
            tables_default: config.tables_default,
            tiering,
        }
    }
}

/// `http_listen` is an address or `off`.
mod address_or_off {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<SocketAddr>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(address) => serializer.collect_str(address),
            None => serializer.serialize_str("off"),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "off" {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|e| {
            serde::de::Error::custom(format!("`{text}` is not an address or `off`: {e}"))
        })
    }
}

/// The settings key of an `INLET_*` variable (stripped of the prefix), or `None` for
/// variables that are not settings (`INLET_CONFIG`, `INLET_SERVER`, `INLET_TEST_*`...).
fn env_key(name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    let name = name.as_str();
    if TOP_LEVEL.contains(&name) {
        return Some(name.to_owned());
    }
    let (section, key) = name.split_once('_')?;
    if !SECTIONS.contains(&section) {
        return None;
    }
    // `lake.write` and `lake.compaction` are the nested tables.
    if section == "lake" {
        for table in ["write", "compaction"] {
            if let Some(inner) = key.strip_prefix(table).and_then(|k| k.strip_prefix('_')) {
                return Some(format!("lake.{table}.{inner}"));
            }
        }
    }
    Some(format!("{section}.{key}"))
}

impl Config {
    /// Loads the settings: defaults, then `file` (TOML) if given, then `INLET_*` variables,
    /// then `flags` (a table of the settings given on the command line, by key path).
    pub fn load(file: Option<&Path>, flags: serde_json::Value) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                anyhow::bail!("cannot read config file {}: no such file", path.display());
            }
            figment = figment.merge(Toml::file(path));
        }
        let env = Env::prefixed(ENV_PREFIX)
            .filter_map(|name| env_key(name.as_str()).map(Uncased::from_owned));
        let config: Config = figment
            .merge(env)
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// Settings that are each valid but unsafe together. WAL garbage collection takes a WAL
    /// object no chunk entry points into for garbage only once it is older than
    /// `lake.wal_upload_grace`; an object still being uploaded and committed is exactly such
    /// an object, so the grace must outlast the writer's upload and commit deadlines, or
    /// acknowledged rows could be deleted.
    pub fn validate(&self) -> anyhow::Result<()> {
        let in_flight = self.writer.upload_timeout + self.writer.commit_timeout;
        if self.lake.compactor && self.lake.tiering.wal_upload_grace <= in_flight {
            anyhow::bail!(
                "lake.wal_upload_grace ({:?}) must exceed writer.upload_timeout + \
                 writer.commit_timeout ({in_flight:?}): a younger WAL object may not be \
                 committed yet",
                self.lake.tiering.wal_upload_grace
            );
        }
        Ok(())
    }

    /// The gRPC endpoint other nodes and clients use to reach this node, listening on
    /// `bound` with `scheme` (`https` when it speaks TLS): `advertise`, or the bound address
    /// when it is a concrete one.
    pub fn advertised(&self, bound: SocketAddr, scheme: &str) -> anyhow::Result<String> {
        match &self.advertise {
            Some(address) => match address.split_once("://") {
                None => Ok(format!("{scheme}://{address}")),
                Some((given, _)) if given == scheme => Ok(address.clone()),
                Some((given, _)) => anyhow::bail!(
                    "advertise is `{address}`, but this node listens with {scheme}: other \
                     nodes could not reach it as {given}"
                ),
            },
            None if bound.ip().is_unspecified() => anyhow::bail!(
                "listen is {bound}, which other nodes cannot connect to; set advertise \
                 (--advertise, INLET_ADVERTISE) to this node's reachable address"
            ),
            None => Ok(format!("{scheme}://{bound}")),
        }
    }
}

#[cfg(test)]
// figment::Jail closures must return figment::Result, whose error is large: its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use std::time::Duration;

    use figment::Jail;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_wal_upload_grace_shorter_than_an_upload_and_commit_is_refused() {
        let mut config = Config::default();
        config.validate().expect("defaults are consistent");
        config.lake.tiering.wal_upload_grace =
            config.writer.upload_timeout + config.writer.commit_timeout;
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
        Jail::expect_with(|jail| {
            jail.create_file(
                "inlet.toml",
                "[writer]\nlinger = \"250ms\"\n[lake]\ncompactor = false\nscan_interval = \"2s\"\n\
                 [lake.write]\nzstd_level = 3\n\
                 [quotas.principals.etl]\nproduce_bytes_per_second = 10485760\n",
            )?;
            let config = Config::load(Some(Path::new("inlet.toml")), json!({})).expect("loads");
            assert_eq!(config.writer.linger, Duration::from_millis(250));
            assert_eq!(config.store, "./inlet-data");
            assert!(!config.lake.compactor);
            assert_eq!(config.lake.tiering.scan_interval, Duration::from_secs(2));
            assert_eq!(config.lake.tiering.write.zstd_level, 3);
            assert_eq!(config.cache, CacheOptions::default());
            assert_eq!(
                config.quotas.principals["etl"].produce_bytes_per_second,
                Some(10_485_760)
            );

            for (text, key) in [
                ("[writer]\nlingr = \"1ms\"\n", "lingr"),
                ("[lake]\nscan_intervl = \"1s\"\n", "scan_intervl"),
                ("[lake.write]\nzstd = 3\n", "zstd"),
                ("nonsense = 1\n", "nonsense"),
            ] {
                jail.create_file("bad.toml", text)?;
                let error =
                    Config::load(Some(Path::new("bad.toml")), json!({})).expect_err("unknown key");
                assert!(error.to_string().contains(key), "{key}: {error}");
            }
            let error =
                Config::load(Some(Path::new("missing.toml")), json!({})).expect_err("no such file");
            assert!(error.to_string().contains("missing.toml"), "{error}");
            Ok(())
        });
    }

    /// Every setting is reachable from the environment, including nested and optional ones;
    /// variables that are not settings are left alone; a misspelt one is an error.
    #[test]
    fn every_setting_is_reachable_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.set_env("INLET_STORE", "memory://");
            jail.set_env("INLET_HTTP_LISTEN", "off");
            jail.set_env("INLET_WRITER_FLUSH_BYTES", "123456");
            jail.set_env("INLET_WRITER_UPLOAD_MIN_BACKOFF", "20ms");
            jail.set_env("INLET_INDEX_PRODUCER_TTL", "1h");
            jail.set_env("INLET_INDEX_OBJECT_STORE_MAX_RETRIES", "7");
            jail.set_env("INLET_INDEX_MANIFEST_POLL_INTERVAL", "30s");
            jail.set_env("INLET_CACHE_DISK_DIR", "/tmp/inlet-ssd");
            jail.set_env("INLET_LAKE_TABLES_DEFAULT", "true");
            jail.set_env("INLET_LAKE_MAX_ROUND_ROWS", "1000");
            jail.set_env("INLET_LAKE_WRITE_ROW_GROUP_ROWS", "4096");
            jail.set_env("INLET_LAKE_COMPACTION_MIN_FILES", "0");
            jail.set_env("INLET_TLS_CLIENT_CA", "/etc/inlet/clients.pem");
            jail.set_env("INLET_TLS_CERT", "/etc/inlet/node.pem");
            jail.set_env("INLET_AUTH_ENABLED", "true");
            jail.set_env("INLET_AUTH_INTERNAL_PRINCIPALS", "[inlet, node-2]");
            jail.set_env("INLET_AUTH_RELOAD_INTERVAL", "500ms");
            jail.set_env("INLET_QUOTAS_PRODUCE_BYTES_PER_SECOND", "1048576");
            jail.set_env("INLET_QUOTAS_MAX_FETCH_STREAMS_PER_CONNECTION", "8");
            // Not settings: the client's server address, the config path, test switches.
            jail.set_env("INLET_SERVER", "http://elsewhere:7070");
            jail.set_env("INLET_CONFIG", "inlet.toml");
            jail.set_env("INLET_TEST_S3_ENDPOINT", "http://127.0.0.1:1");
            let config = Config::load(None, json!({})).expect("loads");
            assert_eq!(config.store, "memory://");
            assert_eq!(config.http_listen, None);
            assert_eq!(config.writer.flush_bytes, 123_456);
            assert_eq!(config.writer.upload_min_backoff, Duration::from_millis(20));
            assert_eq!(config.index.producer_ttl, Duration::from_secs(3600));
            assert_eq!(config.index.object_store_max_retries, Some(7));
            assert_eq!(config.index.manifest_poll_interval, Duration::from_secs(30));
            assert_eq!(
                config.cache.disk_dir.as_deref(),
                Some(Path::new("/tmp/inlet-ssd"))
            );
            assert!(config.lake.tables_default);
            assert_eq!(config.lake.tiering.max_round_rows, 1000);
            assert_eq!(config.lake.tiering.write.row_group_rows, 4096);
            assert_eq!(config.lake.tiering.compaction.min_files, 0);
            assert_eq!(
                config.tls.client_ca.as_deref(),
                Some(Path::new("/etc/inlet/clients.pem"))
            );
            assert_eq!(
                config.tls.cert.as_deref(),
                Some(Path::new("/etc/inlet/node.pem"))
            );
            assert!(config.auth.enabled);
            assert_eq!(config.auth.internal_principals, ["inlet", "node-2"]);
            assert_eq!(config.auth.reload_interval, Duration::from_millis(500));
            assert_eq!(config.quotas.produce_bytes_per_second, Some(1_048_576));
            assert_eq!(config.quotas.max_fetch_streams_per_connection, 8);

            jail.set_env("INLET_WRITER_LINGR", "1ms");
            let error = Config::load(None, json!({})).expect_err("misspelt");
            assert!(error.to_string().contains("lingr"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn the_advertised_endpoint_has_the_listeners_scheme() {
        let bound = SocketAddr::from(([127, 0, 0, 1], 7070));
        let mut config = Config::default();
        assert_eq!(
            config.advertised(bound, "https").expect("bound"),
            "https://127.0.0.1:7070"
        );
        config.advertise = Some("node-1:7070".to_owned());
        assert_eq!(
            config.advertised(bound, "https").expect("host"),
            "https://node-1:7070"
        );
        config.advertise = Some("http://node-1:7070".to_owned());
        assert_eq!(
            config.advertised(bound, "http").expect("same scheme"),
            "http://node-1:7070"
        );
        let error = config
            .advertised(bound, "https")
            .expect_err("plaintext advertised for a TLS listener");
        assert!(error.to_string().contains("http://node-1:7070"), "{error}");
    }

    #[test]
    fn flags_override_the_environment_which_overrides_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "inlet.toml",
                "store = \"file\"\nlisten = \"127.0.0.1:1\"\n[writer]\nlinger = \"1s\"\n",
            )?;
            jail.set_env("INLET_STORE", "env");
            jail.set_env("INLET_WRITER_LINGER", "2s");
            let flags = json!({ "writer": { "linger": "3s" } });
            let config = Config::load(Some(Path::new("inlet.toml")), flags).expect("loads");
            assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 1)));
            assert_eq!(config.store, "env");
            assert_eq!(config.writer.linger, Duration::from_secs(3));
            Ok(())
        });
    }
}
