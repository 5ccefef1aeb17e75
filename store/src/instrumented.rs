//! [`InstrumentedStore`]: counts every request and its payload bytes by purpose and operation.
//!
//! Requests are counted when they are sent, failed ones included; a request that ends in an
//! error is counted as an error or, when the store answered "not found", refused a
//! conditional request or does not support it, as an expected miss (see `metrics.rs`).
//! Bytes sent are the payload lengths of puts and multipart parts, counted when sent. Bytes
//! received are counted as a GET body is actually streamed, by wrapping the body stream: a
//! reader that stops early, or a `head`, counts only what it consumed. A local-file body
//! (`GetResultPayload::File`, which has no stream to wrap) counts its range length when the
//! result is returned. `get_ranges` counts the lengths of the ranges it returns, as one
//! request: the wrapped store decides how many GETs it sends (the default coalesces ranges
//! closer than 1 MiB).

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use slatedb::object_store::path::Path;
use slatedb::object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
    UploadPart,
};

use crate::metrics::{Recorder, StoreMetrics, StoreSnapshot};
use crate::purpose::{Op, Purpose};

/// Wraps a store and counts its requests and bytes per (purpose, operation).
#[derive(Debug)]
pub struct InstrumentedStore<S> {
    inner: S,
    metrics: StoreMetrics,
}

impl<S: ObjectStore> InstrumentedStore<S> {
    /// Wraps `inner` with fresh counters.
    pub fn new(inner: S) -> Self {
        Self::with_metrics(inner, StoreMetrics::new())
    }

    /// Wraps `inner`, counting into `metrics` (shared with whoever else holds it).
    pub fn with_metrics(inner: S, metrics: StoreMetrics) -> Self {
        Self { inner, metrics }
    }

    /// The counters; clone the handle to keep reading them after the store is moved into an
    /// `Arc<dyn ObjectStore>`.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// The counters now, without taking a lock.
    pub fn snapshot(&self) -> StoreSnapshot {
        self.metrics.snapshot()
    }

    /// Appends the counters in Prometheus text format.
    pub fn render_prometheus(&self, out: &mut String) {
        self.metrics.render_prometheus(out);
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn request(&self, location: &Path, op: Op) -> Recorder {
        self.metrics.request(Purpose::of(location, op), op)
    }

    fn count_list(
        &self,
        prefix: Option<&Path>,
        list: BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let recorder = self.request(&prefix.cloned().unwrap_or_default(), Op::List);
        list.inspect(move |item| {
            if let Err(error) = item {
                recorder.failed(error);
            }
        })
        .boxed()
    }
}

impl<S: fmt::Display> fmt::Display for InstrumentedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstrumentedStore({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: ObjectStore> ObjectStore for InstrumentedStore<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let recorder = self.request(location, Op::Put);
        recorder.bytes_out(payload.content_length());
        recorder.outcome(self.inner.put_opts(location, payload, opts).await)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let recorder = self.request(location, Op::PutMultipart);
        let upload = recorder.outcome(self.inner.put_multipart_opts(location, opts).await)?;
        Ok(Box::new(InstrumentedUpload {
            upload,
            purpose: Purpose::of(location, Op::PutPart),
            metrics: self.metrics.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        let recorder = self.request(location, op);
        let mut result = recorder.outcome(self.inner.get_opts(location, options).await)?;
        result.payload = match result.payload {
            GetResultPayload::Stream(body) => GetResultPayload::Stream(
                body.inspect(move |chunk| match chunk {
                    Ok(bytes) => recorder.bytes_in(bytes.len() as u64),
                    Err(error) => recorder.failed(error),
                })
                .boxed(),
            ),
            GetResultPayload::File(file, path) => {
                if op == Op::Get {
                    recorder.bytes_in(result.range.end.saturating_sub(result.range.start));
                }
                GetResultPayload::File(file, path)
            }
        };
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let recorder = self.request(location, Op::GetRanges);
        let parts = recorder.outcome(self.inner.get_ranges(location, ranges).await)?;
        recorder.bytes_in(parts.iter().map(|part| part.len() as u64).sum());
        Ok(parts)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let metrics = self.metrics.clone();
        let locations = locations
            .inspect(move |location| {
                if let Ok(location) = location {
                    metrics.request(Purpose::of(location, Op::Delete), Op::Delete);
                }
            })
            .boxed();
        let metrics = self.metrics.clone();
        self.inner
            .delete_stream(locations)
            .inspect(move |result| {
                if let Err(error) = result {
                    metrics.unattributed_error(Op::Delete, error);
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.count_list(prefix, self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.count_list(prefix, self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let location = prefix.cloned().unwrap_or_default();
        let recorder = self.request(&location, Op::ListWithDelimiter);
        recorder.outcome(self.inner.list_with_delimiter(prefix).await)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let recorder = self.request(to, Op::Copy);
        recorder.outcome(self.inner.copy_opts(from, to, options).await)
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let recorder = self.request(to, Op::Rename);
        recorder.outcome(self.inner.rename_opts(from, to, options).await)
    }
}

/// Counts the parts, completion and abort of one multipart upload.
#[derive(Debug)]
struct InstrumentedUpload {
    upload: Box<dyn MultipartUpload>,
    purpose: Purpose,
    metrics: StoreMetrics,
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl MultipartUpload for InstrumentedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let recorder = self.metrics.request(self.purpose, Op::PutPart);
        recorder.bytes_out(data.content_length());
        let part = self.upload.put_part(data);
        Box::pin(async move { recorder.outcome(part.await) })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let recorder = self.metrics.request(self.purpose, Op::CompleteMultipart);
        recorder.outcome(self.upload.complete().await)
    }

    async fn abort(&mut self) -> Result<()> {
        let recorder = self.metrics.request(self.purpose, Op::AbortMultipart);
        recorder.outcome(self.upload.abort().await)
    }
}
