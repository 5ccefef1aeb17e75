//! Opens the one object store everything lives in, from a URL.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use inlet_compactor::lake::LakeRoot;
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

/// Where the root of the store at `location` (as [`open_store`] takes it) is, as lake
/// (Iceberg) metadata names it: `s3://bucket/prefix`, or the canonical `file://` path of a
/// local directory, which must exist (open the store first). An in-memory store has no
/// location engines can open: the caller names it (`LakeRoot::memory`) if it needs one.
pub fn lake_root(location: &str) -> anyhow::Result<LakeRoot> {
    if location == "memory://" || location == "memory:" {
        bail!("an in-memory store has no lake url");
    }
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("store url `{location}` names no bucket");
        }
        return Ok(LakeRoot::s3(bucket, prefix));
    }
    let path = match location.strip_prefix("file://") {
        Some(path) => path,
        None if location.contains("://") => bail!("unsupported store url `{location}`"),
        None => location,
    };
    LakeRoot::local(path).with_context(|| format!("no lake url for store directory `{path}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lake_roots_follow_the_store_url() {
        let s3 = |url| lake_root(url).expect("an s3 url").url();
        assert_eq!(s3("s3://bucket"), "s3://bucket");
        assert_eq!(s3("s3://bucket/some/prefix/"), "s3://bucket/some/prefix");
        assert!(lake_root("s3:///prefix").is_err());
        assert!(lake_root("memory://").is_err());
        assert!(lake_root("gs://bucket").is_err());

        let dir = tempfile::tempdir().expect("temp dir");
        let canonical = std::fs::canonicalize(dir.path()).expect("canonical");
        let expected = format!("file://{}", canonical.display());
        let plain = dir.path().to_str().expect("utf-8");
        assert_eq!(lake_root(plain).expect("a directory").url(), expected);
        let url = format!("file://{plain}");
        assert_eq!(lake_root(&url).expect("a directory").url(), expected);
        assert!(lake_root("/no/such/inlet/dir").is_err());
    }
}
