//! [`StampedStore`]: the bucket's clock. Stamps WAL and lake objects with simulated time.
//!
//! The in-memory store stamps every object's `last_modified` with the machine's clock, which
//! is always later than simulated time (see [`crate::clock`]). Two collectors decide by an
//! object's age: WAL garbage collection (the upload grace) and lake crash repair (the orphan
//! grace); with the machine's stamps every object would look younger than any grace and
//! neither would ever delete anything. This layer remembers the simulated time at which each
//! write under `wal/` or `lake/` landed and reports that as the object's `last_modified`, in
//! listings and in GET/HEAD answers. Objects under `index/` keep the machine's stamps, so
//! SlateDB's garbage collector stays inert as before.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use slatedb::bytes::Bytes;
use slatedb::object_store::path::Path;
use slatedb::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};
use slatedb_common::clock::SystemClock;

use crate::clock::SimClock;

/// Top-level folders whose objects get simulated-time stamps.
const STAMPED: [&str; 2] = ["wal", "lake"];

fn stamped(location: &Path) -> bool {
    location
        .parts()
        .next()
        .is_some_and(|top| STAMPED.contains(&top.as_ref()))
}

/// When each stamped object was last written, in simulated time.
#[derive(Debug, Default)]
struct Stamps(Mutex<BTreeMap<Path, DateTime<Utc>>>);

impl Stamps {
    fn record(&self, location: &Path, at: DateTime<Utc>) {
        if stamped(location) {
            self.0
                .lock()
                .expect("stamps lock poisoned")
                .insert(location.clone(), at);
        }
    }

    fn apply(&self, mut meta: ObjectMeta) -> ObjectMeta {
        if let Some(at) = self
            .0
            .lock()
            .expect("stamps lock poisoned")
            .get(&meta.location)
        {
            meta.last_modified = *at;
        }
        meta
    }
}

/// The store with simulated `last_modified` stamps; see the module docs.
#[derive(Debug)]
pub struct StampedStore<S> {
    inner: S,
    clock: Arc<SimClock>,
    stamps: Arc<Stamps>,
}

impl<S> StampedStore<S> {
    pub fn new(inner: S, clock: Arc<SimClock>) -> Self {
        Self {
            inner,
            clock,
            stamps: Arc::default(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        SystemClock::now(self.clock.as_ref())
    }
}

impl<S: fmt::Display> fmt::Display for StampedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StampedStore({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: ObjectStore> ObjectStore for StampedStore<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await?;
        self.stamps.record(location, self.now());
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(StampedUpload {
            upload,
            location: location.clone(),
            clock: self.clock.clone(),
            stamps: self.stamps.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let mut result = self.inner.get_opts(location, options).await?;
        result.meta = self.stamps.apply(result.meta);
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // A deleted object's stamp stays until the path is written again, which replaces it.
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let stamps = self.stamps.clone();
        self.inner
            .list(prefix)
            .map(move |meta| meta.map(|meta| stamps.apply(meta)))
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let stamps = self.stamps.clone();
        self.inner
            .list_with_offset(prefix, offset)
            .map(move |meta| meta.map(|meta| stamps.apply(meta)))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        result.objects = result
            .objects
            .into_iter()
            .map(|meta| self.stamps.apply(meta))
            .collect();
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        self.stamps.record(to, self.now());
        Ok(())
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        self.stamps.record(to, self.now());
        Ok(())
    }
}

/// A multipart upload whose object is stamped when it completes.
#[derive(Debug)]
struct StampedUpload {
    upload: Box<dyn MultipartUpload>,
    location: Path,
    clock: Arc<SimClock>,
    stamps: Arc<Stamps>,
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl MultipartUpload for StampedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let result = self.upload.complete().await?;
        self.stamps
            .record(&self.location, SystemClock::now(self.clock.as_ref()));
        Ok(result)
    }

    async fn abort(&mut self) -> Result<()> {
        self.upload.abort().await
    }
}
