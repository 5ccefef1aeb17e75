//! The object stores the conformance suite runs against: in-memory, the local filesystem,
//! and a real S3-compatible server (moto) on loopback. Each test gets its own location; a
//! backend reopens the same location to model a restart.

use std::sync::Arc;

use slatedb::object_store::ObjectStore;
use slatedb::object_store::aws::AmazonS3Builder;
use slatedb::object_store::local::LocalFileSystem;
use slatedb::object_store::memory::InMemory;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Environment variable naming the S3 endpoint the S3 tests use (`.ci/run` starts moto and
/// sets it).
pub const S3_ENDPOINT_VAR: &str = "INLET_TEST_S3_ENDPOINT";

pub enum Backend {
    Memory(Arc<InMemory>),
    Local(tempfile::TempDir),
    S3 { endpoint: String, bucket: String },
}

impl Backend {
    pub fn memory() -> Self {
        Self::Memory(Arc::new(InMemory::new()))
    }

    pub fn local() -> Self {
        Self::Local(tempfile::tempdir().expect("temp dir"))
    }

    /// A fresh bucket on the S3 server named by `INLET_TEST_S3_ENDPOINT`.
    pub async fn s3(test: &str) -> Self {
        let endpoint = std::env::var(S3_ENDPOINT_VAR).unwrap_or_else(|_| {
            panic!(
                "{S3_ENDPOINT_VAR} is not set: run the tests with `bash .ci/run`, which starts \
                 an S3-compatible server (moto) on 127.0.0.1"
            )
        });
        let unique = std::process::id();
        // Bucket names are at most 63 characters.
        let prefix: String = test.replace('_', "-").chars().take(40).collect();
        let bucket = format!("{}-{unique}", prefix.trim_end_matches('-'));
        create_bucket(&endpoint, &bucket).await;
        Self::S3 { endpoint, bucket }
    }

    /// A store on this backend's location; every call sees the same objects.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        match self {
            Self::Memory(store) => store.clone(),
            Self::Local(dir) => {
                Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("local store"))
            }
            Self::S3 { endpoint, bucket } => Arc::new(
                AmazonS3Builder::new()
                    .with_endpoint(endpoint)
                    .with_allow_http(true)
                    .with_region("us-east-1")
                    .with_access_key_id("test")
                    .with_secret_access_key("test")
                    .with_bucket_name(bucket)
                    .build()
                    .expect("s3 store"),
            ),
        }
    }
}

/// Creates a bucket with an unsigned path-style PUT (moto accepts it).
async fn create_bucket(endpoint: &str, bucket: &str) {
    let host = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the S3 server at {endpoint}: {e}"));
    let request = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    assert!(
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
        "creating bucket {bucket} failed: {response}"
    );
}
