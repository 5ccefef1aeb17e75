//! [`NodeStore`]: one simulated process's view of the shared bucket, with a kill switch.
//!
//! Every process (an index owner with its writer and reader) reaches the shared store through
//! its own `NodeStore`. Killing the process flips its [`NodeLife`]: from then on no request
//! of that process starts (so it draws nothing from the fault injector and changes nothing),
//! and no response reaches it, while a request already sent still takes effect, as a PUT on
//! the wire does when its sender dies. The dead process's tasks stay parked forever on
//! futures that never resolve; they are dropped with the runtime at the end of the run.
//!
//! A [`CrashTrigger`] kills the process when a chosen request completes at the store, before
//! the process learns its outcome: after a WAL object landed but before its commit, or after
//! an index write landed but before the sequencer replied.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, stream};
use inlet_compactor::{Failpoint, InjectedCrash};
use inlet_store::{Op, OpKind, Purpose};
use slatedb::bytes::Bytes;
use slatedb::object_store::path::Path;
use slatedb::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

use crate::signal::Signal;

/// Kills a process when its `count`-th write of `purpose` completes at the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashTrigger {
    pub purpose: Purpose,
    pub count: u32,
}

/// Whether a simulated process is alive; shared by its store and the clients talking to it.
/// Kills a process when its compactor reaches `failpoint` of a round for the `count`-th time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailpointTrigger {
    pub failpoint: Failpoint,
    pub count: u32,
}

#[derive(Debug, Default)]
pub struct NodeLife {
    dead: Signal<bool>,
    trigger: Mutex<Option<CrashTrigger>>,
    failpoint: Mutex<Option<FailpointTrigger>>,
}

impl NodeLife {
    /// Kills the process; true if it was alive.
    pub fn kill(&self) -> bool {
        !self.dead.set(true)
    }

    pub fn is_dead(&self) -> bool {
        self.dead.get()
    }

    /// Resolves once the process is dead.
    pub async fn dead(&self) {
        self.dead.wait_for(|dead| dead.then_some(())).await;
    }

    /// Arms (or, with `None`, disarms) the crash trigger.
    pub fn arm(&self, trigger: Option<CrashTrigger>) {
        *self.trigger.lock().expect("trigger lock poisoned") = trigger;
    }

    /// Arms (or, with `None`, disarms) the compactor's failpoint trigger.
    pub fn arm_failpoint(&self, trigger: Option<FailpointTrigger>) {
        *self.failpoint.lock().expect("failpoint lock poisoned") = trigger;
    }

    /// The compactor's failpoint hook: counts `failpoint` against the trigger; when it fires
    /// the process dies there and the round stops (with an error nobody will see).
    pub fn at_failpoint(&self, failpoint: Failpoint) -> Result<(), InjectedCrash> {
        let mut trigger = self.failpoint.lock().expect("failpoint lock poisoned");
        let Some(armed) = trigger.as_mut().filter(|t| t.failpoint == failpoint) else {
            return Ok(());
        };
        armed.count = armed.count.saturating_sub(1);
        if armed.count > 0 {
            return Ok(());
        }
        *trigger = None;
        drop(trigger);
        self.kill();
        Err(InjectedCrash {
            reason: format!("the process crashed at {failpoint:?}"),
        })
    }

    /// Counts a completed request against the trigger; kills the process when it fires.
    fn completed(&self, location: &Path, op: Op) -> bool {
        let mut trigger = self.trigger.lock().expect("trigger lock poisoned");
        let Some(armed) = trigger.as_mut() else {
            return false;
        };
        if op.kind() != OpKind::Write || Purpose::of(location, op) != armed.purpose {
            return false;
        }
        armed.count = armed.count.saturating_sub(1);
        if armed.count > 0 {
            return false;
        }
        *trigger = None;
        drop(trigger);
        self.kill();
        true
    }
}

/// The shared store as one process sees it: requests stop when the process dies.
#[derive(Debug)]
pub struct NodeStore {
    inner: Arc<dyn ObjectStore>,
    life: Arc<NodeLife>,
}

impl NodeStore {
    pub fn new(inner: Arc<dyn ObjectStore>, life: Arc<NodeLife>) -> Self {
        Self { inner, life }
    }

    /// Runs one request unless the process is dead; a dead process never gets the answer.
    async fn guard<T>(
        &self,
        location: &Path,
        op: Op,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if self.life.is_dead() {
            return std::future::pending().await;
        }
        let result = call.await;
        if self.life.is_dead() || self.life.completed(location, op) {
            return std::future::pending().await;
        }
        result
    }

    /// A stream that stops yielding (forever) once the process is dead.
    fn guard_stream<T: Send + 'static>(
        &self,
        inner: impl FnOnce() -> BoxStream<'static, T>,
    ) -> BoxStream<'static, T> {
        if self.life.is_dead() {
            return stream::pending().boxed();
        }
        let life = Arc::clone(&self.life);
        inner()
            .then(move |item| {
                let life = Arc::clone(&life);
                async move {
                    if life.is_dead() {
                        std::future::pending::<()>().await;
                    }
                    item
                }
            })
            .boxed()
    }
}

impl fmt::Display for NodeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeStore({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for NodeStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let call = self.inner.put_opts(location, payload, opts);
        self.guard(location, Op::Put, call).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let call = self.inner.put_multipart_opts(location, opts);
        let upload = self.guard(location, Op::PutMultipart, call).await?;
        Ok(Box::new(NodeUpload {
            upload,
            location: location.clone(),
            life: Arc::clone(&self.life),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        let call = self.inner.get_opts(location, options);
        self.guard(location, op, call).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let call = self.inner.get_ranges(location, ranges);
        self.guard(location, Op::GetRanges, call).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let life = Arc::clone(&self.life);
        // A dead process sends no further location to the store.
        let locations = locations
            .then(move |location| {
                let life = Arc::clone(&life);
                async move {
                    if life.is_dead() {
                        std::future::pending::<()>().await;
                    }
                    location
                }
            })
            .boxed();
        self.guard_stream(|| self.inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.guard_stream(|| self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.guard_stream(|| self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let location = prefix.cloned().unwrap_or_default();
        let call = self.inner.list_with_delimiter(prefix);
        self.guard(&location, Op::ListWithDelimiter, call).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let call = self.inner.copy_opts(from, to, options);
        self.guard(to, Op::Copy, call).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let call = self.inner.rename_opts(from, to, options);
        self.guard(to, Op::Rename, call).await
    }
}

/// A multipart upload of a process: parts, completion and abort stop when it dies.
#[derive(Debug)]
struct NodeUpload {
    upload: Box<dyn MultipartUpload>,
    location: Path,
    life: Arc<NodeLife>,
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl MultipartUpload for NodeUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        if self.life.is_dead() {
            return Box::pin(std::future::pending());
        }
        let part = self.upload.put_part(data);
        let life = Arc::clone(&self.life);
        Box::pin(async move {
            let result = part.await;
            if life.is_dead() {
                return std::future::pending().await;
            }
            result
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        if self.life.is_dead() {
            return std::future::pending().await;
        }
        let result = self.upload.complete().await;
        if self.life.is_dead() || self.life.completed(&self.location, Op::CompleteMultipart) {
            return std::future::pending().await;
        }
        result
    }

    async fn abort(&mut self) -> Result<()> {
        if self.life.is_dead() {
            return std::future::pending().await;
        }
        let result = self.upload.abort().await;
        if self.life.is_dead() {
            return std::future::pending().await;
        }
        result
    }
}
