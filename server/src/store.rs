//! Opens the one object store everything lives in, from a URL.

use std::sync::Arc;

use anyhow::{Context, bail};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::aws::AmazonS3Builder;
use slatedb::object_store::local::LocalFileSystem;
use slatedb::object_store::memory::InMemory;
use slatedb::object_store::prefix::PrefixStore;

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
