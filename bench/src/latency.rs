//! A latency model of a real object store, for running the benchmark on `memory://` or a
//! local directory as if it were S3: a first-byte latency per request, drawn uniformly from a
//! range, and a transfer time of size / per-request bandwidth.
//!
//! The latency comes from two [`FaultStore`]s over the same store, configured with latency
//! only (no faults): one for writes (put, multipart, copy, rename, delete), with the PUT
//! range, one for reads (get, head, ranged gets, listings), with the GET range. A request is
//! routed by its operation, not its purpose, so the index's own PUTs and GETs get the PUT
//! and GET latency too. `FaultStore` has no size term, so this wrapper adds one: a PUT
//! sleeps `payload / bandwidth` before it is sent, a GET sleeps `body / bandwidth` after its
//! first byte (the whole body is modelled as arriving at once, at the end).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use inlet_store::{FaultConfig, FaultStore};
use serde::Serialize;
use slatedb::object_store::path::Path;
use slatedb::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

/// A latency range: each request waits a uniform draw from `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyRange {
    pub min: Duration,
    pub max: Duration,
}

impl LatencyRange {
    /// Parses `20ms..100ms`, or `50ms` for a fixed latency.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let parse = |part: &str| {
            humantime_serde::re::humantime::parse_duration(part.trim())
                .map_err(|e| format!("invalid duration `{part}`: {e}"))
        };
        let (min, max) = match text.split_once("..") {
            Some((min, max)) => (parse(min)?, parse(max)?),
            None => {
                let fixed = parse(text)?;
                (fixed, fixed)
            }
        };
        if max < min {
            return Err(format!("latency range `{text}` ends before it starts"));
        }
        Ok(Self { min, max })
    }

    fn fault_config(range: Option<Self>) -> FaultConfig {
        let range = range.unwrap_or(Self {
            min: Duration::ZERO,
            max: Duration::ZERO,
        });
        FaultConfig {
            min_latency: range.min,
            max_latency: range.max,
            purposes: None,
            ..FaultConfig::default()
        }
    }
}

impl fmt::Display for LatencyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        if self.min == self.max {
            write!(f, "{}ms", ms(self.min))
        } else {
            write!(f, "{}ms..{}ms", ms(self.min), ms(self.max))
        }
    }
}

/// What the model adds to each request. The default adds nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct LatencyModel {
    pub(crate) put: Option<LatencyRange>,
    pub(crate) get: Option<LatencyRange>,
    /// Per-request transfer rate in bytes per second.
    pub(crate) bytes_per_second: Option<f64>,
}

/// The model as the report states it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LatencyModelReport {
    pub(crate) put_latency_ms: Option<[f64; 2]>,
    pub(crate) get_latency_ms: Option<[f64; 2]>,
    pub(crate) request_bandwidth_mb_per_s: Option<f64>,
    pub(crate) applies_to: &'static str,
}

impl LatencyModel {
    pub(crate) fn is_off(&self) -> bool {
        self.put.is_none() && self.get.is_none() && self.bytes_per_second.is_none()
    }

    pub(crate) fn report(&self) -> Option<LatencyModelReport> {
        let ms = |r: LatencyRange| [r.min.as_secs_f64() * 1e3, r.max.as_secs_f64() * 1e3];
        (!self.is_off()).then(|| LatencyModelReport {
            put_latency_ms: self.put.map(ms),
            get_latency_ms: self.get.map(ms),
            request_bandwidth_mb_per_s: self.bytes_per_second.map(|b| b / 1e6),
            applies_to: "PUT latency: every write (put, multipart, copy, rename, delete); GET \
                         latency: every read (get, head, list); bandwidth: payload and body \
                         bytes of each request, one request at a time",
        })
    }

    /// `store` behind the model, or `store` itself when the model is off.
    pub(crate) fn wrap(&self, store: Arc<dyn ObjectStore>, seed: u64) -> Arc<dyn ObjectStore> {
        if self.is_off() {
            return store;
        }
        Arc::new(ModeledStore {
            writes: FaultStore::new(store.clone(), LatencyRange::fault_config(self.put), seed),
            reads: FaultStore::new(store, LatencyRange::fault_config(self.get), !seed),
            bytes_per_second: self.bytes_per_second,
        })
    }
}

impl fmt::Display for LatencyModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            return f.write_str("none");
        }
        let mut parts = Vec::new();
        if let Some(put) = self.put {
            parts.push(format!("PUT {put}"));
        }
        if let Some(get) = self.get {
            parts.push(format!("GET {get} to first byte"));
        }
        if let Some(rate) = self.bytes_per_second {
            parts.push(format!("+ size at {} MB/s per request", rate / 1e6));
        }
        f.write_str(&parts.join(", "))
    }
}

/// Routes writes and reads to their latency, and adds the transfer time.
#[derive(Debug)]
struct ModeledStore {
    writes: FaultStore<Arc<dyn ObjectStore>>,
    reads: FaultStore<Arc<dyn ObjectStore>>,
    bytes_per_second: Option<f64>,
}

impl fmt::Display for ModeledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LatencyModel({})", self.reads.inner())
    }
}

/// Sleeps for the transfer of `bytes` at `bytes_per_second`, if a rate is set.
async fn transfer(bytes_per_second: Option<f64>, bytes: u64) {
    if let Some(rate) = bytes_per_second.filter(|rate| *rate > 0.0)
        && bytes > 0
    {
        tokio::time::sleep(Duration::from_secs_f64(bytes as f64 / rate)).await;
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for ModeledStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        transfer(self.bytes_per_second, payload.content_length() as u64).await;
        self.writes.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = self.writes.put_multipart_opts(location, opts).await?;
        Ok(Box::new(ModeledUpload {
            upload,
            bytes_per_second: self.bytes_per_second,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let head = options.head;
        let result = self.reads.get_opts(location, options).await?;
        if !head {
            transfer(
                self.bytes_per_second,
                result.range.end.saturating_sub(result.range.start),
            )
            .await;
        }
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let parts = self.reads.get_ranges(location, ranges).await?;
        let bytes = parts.iter().map(|part| part.len() as u64).sum();
        transfer(self.bytes_per_second, bytes).await;
        Ok(parts)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.writes.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.reads.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.reads.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.reads.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.writes.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.writes.rename_opts(from, to, options).await
    }
}

/// A multipart upload whose parts take their transfer time (their latency comes from the
/// write `FaultStore`, which wraps each part).
#[derive(Debug)]
struct ModeledUpload {
    upload: Box<dyn MultipartUpload>,
    bytes_per_second: Option<f64>,
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl MultipartUpload for ModeledUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let bytes = data.content_length() as u64;
        let rate = self.bytes_per_second;
        let part = self.upload.put_part(data);
        Box::pin(async move {
            transfer(rate, bytes).await;
            part.await
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.upload.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.upload.abort().await
    }
}

#[cfg(test)]
mod tests {
    use slatedb::object_store::ObjectStoreExt;
    use slatedb::object_store::memory::InMemory;

    use super::*;

    #[test]
    fn parses_ranges_and_fixed_latencies() {
        let range = LatencyRange::parse("20ms..100ms").expect("parses");
        assert_eq!(range.min, Duration::from_millis(20));
        assert_eq!(range.max, Duration::from_millis(100));
        let fixed = LatencyRange::parse("5ms").expect("parses");
        assert_eq!(
            (fixed.min, fixed.max),
            (Duration::from_millis(5), fixed.min)
        );
        assert!(LatencyRange::parse("100ms..20ms").is_err());
        assert!(LatencyRange::parse("fast").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn puts_and_gets_take_their_latency_and_transfer_time() {
        let model = LatencyModel {
            put: Some(LatencyRange::parse("40ms").expect("parses")),
            get: Some(LatencyRange::parse("10ms").expect("parses")),
            bytes_per_second: Some(1e6),
        };
        let store = model.wrap(Arc::new(InMemory::new()), 1);
        let path = Path::from("wal/a.wal");
        let start = tokio::time::Instant::now();
        store
            .put(&path, PutPayload::from(vec![0u8; 100_000]))
            .await
            .expect("put");
        // 40 ms of latency + 100 kB at 1 MB/s.
        assert_eq!(start.elapsed(), Duration::from_millis(140));
        let start = tokio::time::Instant::now();
        let body = store.get_range(&path, 0..50_000).await.expect("get");
        assert_eq!(body.len(), 50_000);
        assert_eq!(start.elapsed(), Duration::from_millis(60));
        let start = tokio::time::Instant::now();
        store.head(&path).await.expect("head");
        assert_eq!(start.elapsed(), Duration::from_millis(10));
    }
}
