//! Opens the one object store everything lives in, from a URL.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use slatedb::object_store::aws::AmazonS3Builder;
use slatedb::object_store::local::LocalFileSystem;
use slatedb::object_store::memory::InMemory;
use slatedb::object_store::prefix::PrefixStore;
use slatedb::object_store::{ObjectStore, RetryConfig};

/// Retries of one S3 request: transient errors (5xx, throttling, timeouts, resets) are
/// retried with exponential backoff and jitter, but a dead store surfaces as an error
/// within `retry_timeout` instead of an endless wait (object_store's default is 3 minutes).
fn s3_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 6,
        retry_timeout: Duration::from_secs(30),
        ..RetryConfig::default()
    }
}

/// How long the startup check may take before the store is declared unreachable.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// Checks at startup that the store answers (the bucket exists, the credentials work, the
/// endpoint is reachable), so a misconfiguration is one clear error, not a hang or a panic.
pub async fn check_store(store: &dyn ObjectStore, location: &str) -> anyhow::Result<()> {
    let probe = store.list_with_delimiter(None);
    match tokio::time::timeout(STORE_CHECK_TIMEOUT, probe).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(anyhow::anyhow!(
            "store `{location}` is not usable: {error} (check that the bucket exists, the \
             credentials and the endpoint)"
        )),
        Err(_) => Err(anyhow::anyhow!(
            "store `{location}` did not answer within {STORE_CHECK_TIMEOUT:?}"
        )),
    }
}

/// Opens `file:///path` (or a plain path), `memory://` or `s3://bucket/prefix`.
pub fn open_store(location: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    if location == "memory://" || location == "memory:" {
        return Ok(Arc::new(InMemory::new()));
    }
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("store url `{location}` names no bucket");
        }
        let s3 = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(s3_retry())
            .build()
            .with_context(|| format!("cannot configure s3 store `{location}`"))?;
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            return Ok(Arc::new(s3));
        }
        return Ok(Arc::new(PrefixStore::new(s3, prefix)));
    }
    let path = match location.strip_prefix("file://") {
        Some(path) => path,
        None if location.contains("://") => {
            bail!("unsupported store url `{location}`: use file://, memory:// or s3://")
        }
        None => location,
    };
    std::fs::create_dir_all(path)
        .with_context(|| format!("cannot create store directory `{path}`"))?;
    let store = LocalFileSystem::new_with_prefix(path)
        .with_context(|| format!("cannot open store directory `{path}`"))?;
    Ok(Arc::new(store))
}
