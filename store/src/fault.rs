//! [`FaultStore`]: injects the failures of a real object store from a seeded generator, so a
//! test or the simulation can provoke them on purpose and replay them exactly.
//!
//! Each request in scope draws, in this order: its added latency (only when a latency is
//! configured), whether it fails before it is sent (transient error), and then, for writes,
//! whether it fails after it took effect (timeout after write) or, for reads, whether its
//! response is lost (dropped response). Draws are made when the request starts — the first
//! poll of its future; the call itself for `list` and a multipart part; for `delete_stream`,
//! when the wrapped store takes each location — under one lock, so the seed and the sequence
//! of requests determine every outcome. A disabled store, and a request outside the
//! configured purposes, draws nothing and passes straight through.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use slatedb::object_store::path::Path;
use slatedb::object_store::{
    CopyOptions, Error, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
    UploadPart,
};

use crate::purpose::{Op, Purpose};
use inlet_core::rng::SplitMix64;

/// The `store` name of injected `object_store::Error::Generic` errors.
pub const FAULT_STORE_NAME: &str = "FaultStore";

/// What to inject. The default injects nothing.
///
/// Probabilities are per request, in `[0, 1]` (values above 1 always fire, at or below 0
/// never do).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// A request fails before it reaches the store: nothing happened.
    pub transient_error: f64,
    /// A write (put, multipart completion, copy, rename, one delete) takes effect and then
    /// reports an error, as a timeout after the store committed it would. A write the store
    /// itself refuses returns the store's error, not this one.
    pub timeout_after_write: f64,
    /// A read (get, head, get_ranges, list) is served by the store, then its response is lost
    /// and an error is returned instead.
    pub dropped_response: f64,
    /// Latency added before each request, drawn uniformly from `min_latency..=max_latency`
    /// and slept with `tokio::time::sleep` (so paused tokio time applies).
    pub min_latency: Duration,
    /// See `min_latency`; a maximum below the minimum means exactly `min_latency`.
    pub max_latency: Duration,
    /// Only requests of these purposes get faults and latency; `None` means every purpose.
    /// To add latency everywhere but faults only to some purposes, stack two `FaultStore`s.
    pub purposes: Option<Vec<Purpose>>,
}

/// A kind of injected failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Failed before the request was sent.
    TransientError,
    /// Failed after the write took effect.
    TimeoutAfterWrite,
    /// The read was served, its response lost.
    DroppedResponse,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::TransientError => "transient error",
            FaultKind::TimeoutAfterWrite => "timeout after the write took effect",
            FaultKind::DroppedResponse => "dropped response",
        })
    }
}

/// The source of every error a [`FaultStore`] injects, inside `object_store::Error::Generic`
/// with `store` = [`FAULT_STORE_NAME`].
#[derive(Debug, thiserror::Error)]
#[error("injected {kind} on {op} of `{path}`")]
pub struct InjectedFault {
    pub kind: FaultKind,
    pub op: Op,
    pub path: String,
}

impl InjectedFault {
    /// The injected fault behind `error`, if it is one.
    pub fn of(error: &Error) -> Option<&InjectedFault> {
        match error {
            Error::Generic { store, source } if *store == FAULT_STORE_NAME => {
                source.downcast_ref::<InjectedFault>()
            }
            _ => None,
        }
    }
}

/// How many faults a [`FaultStore`] has injected, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub transient_errors: u64,
    pub timeouts_after_write: u64,
    pub dropped_responses: u64,
    /// Requests that were given added latency.
    pub delayed_requests: u64,
    /// The latency added, summed.
    pub added_latency: Duration,
}

/// A cloneable handle to a [`FaultStore`]'s switch, configuration and counts, usable after
/// the store went into an `Arc<dyn ObjectStore>`.
#[derive(Clone, Debug)]
pub struct FaultControl {
    shared: Arc<Shared>,
}

impl FaultControl {
    /// Turns injection on or off. Off, every request passes through and draws nothing, so a
    /// test can heal the store and see the system recover.
    pub fn set_enabled(&self, enabled: bool) {
        self.shared.enabled.store(enabled, Ordering::SeqCst);
    }

    pub fn is_enabled(&self) -> bool {
        self.shared.enabled.load(Ordering::SeqCst)
    }

    /// Replaces the configuration for the requests that start from now on; the generator
    /// keeps its state.
    pub fn set_config(&self, config: FaultConfig) {
        self.shared.lock().config = config;
    }

    pub fn config(&self) -> FaultConfig {
        self.shared.lock().config.clone()
    }

    /// The faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        let counts = &self.shared.counts;
        FaultCounts {
            transient_errors: counts.transient_errors.load(Ordering::Relaxed),
            timeouts_after_write: counts.timeouts_after_write.load(Ordering::Relaxed),
            dropped_responses: counts.dropped_responses.load(Ordering::Relaxed),
            delayed_requests: counts.delayed_requests.load(Ordering::Relaxed),
            added_latency: Duration::from_nanos(counts.added_latency_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// Wraps a store and injects faults and latency per a [`FaultConfig`] and a seed.
#[derive(Debug)]
pub struct FaultStore<S> {
    inner: S,
    control: FaultControl,
}

impl<S: ObjectStore> FaultStore<S> {
    /// Wraps `inner`; injection starts enabled. The seed determines every outcome for a given
    /// sequence of requests.
    pub fn new(inner: S, config: FaultConfig, seed: u64) -> Self {
        let shared = Shared {
            enabled: AtomicBool::new(true),
            state: Mutex::new(State {
                config,
                rng: SplitMix64::new(seed),
            }),
            counts: Counts::default(),
        };
        Self {
            inner,
            control: FaultControl {
                shared: Arc::new(shared),
            },
        }
    }

    /// The switch, configuration and counts, as a handle to keep.
    pub fn control(&self) -> FaultControl {
        self.control.clone()
    }

    /// See [`FaultControl::set_enabled`].
    pub fn set_enabled(&self, enabled: bool) {
        self.control.set_enabled(enabled);
    }

    /// See [`FaultControl::is_enabled`].
    pub fn is_enabled(&self) -> bool {
        self.control.is_enabled()
    }

    /// See [`FaultControl::counts`].
    pub fn counts(&self) -> FaultCounts {
        self.control.counts()
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.control.shared
    }

    /// A listing in scope: latency first, then a transient error instead of the listing, or
    /// the listing drained and its result replaced by an error (dropped response).
    fn faulty_list(
        &self,
        prefix: Option<&Path>,
        list: impl FnOnce() -> BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let location = prefix.cloned().unwrap_or_default();
        let plan = self.shared().plan(&location, Op::List);
        let shared = Arc::clone(self.shared());
        let inner = match plan.fault {
            Some(FaultKind::TransientError) => None,
            _ => Some(list()),
        };
        stream::once(async move {
            plan.sleep().await;
            let Some(inner) = inner else {
                let error = shared.inject(FaultKind::TransientError, Op::List, &location);
                return stream::once(async move { Err(error) }).boxed();
            };
            if plan.fault.is_none() {
                return inner;
            }
            // The only late fault of a listing: it is served, then its response is lost.
            let served = inner.try_for_each(|_| async { Ok(()) }).await;
            let result = served
                .and_then(|()| Err(shared.inject(FaultKind::DroppedResponse, Op::List, &location)));
            stream::once(async move { result }).boxed()
        })
        .flatten()
        .boxed()
    }
}

impl<S: fmt::Display> fmt::Display for FaultStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: ObjectStore> ObjectStore for FaultStore<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let call = self.inner.put_opts(location, payload, opts);
        run(self.shared(), location, Op::Put, call).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let call = self.inner.put_multipart_opts(location, opts);
        let upload = run(self.shared(), location, Op::PutMultipart, call).await?;
        Ok(Box::new(FaultUpload {
            upload,
            location: location.clone(),
            shared: Arc::clone(self.shared()),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        let call = self.inner.get_opts(location, options);
        run(self.shared(), location, op, call).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let call = self.inner.get_ranges(location, ranges);
        run(self.shared(), location, Op::GetRanges, call).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Transient errors replace a location before the wrapped store sees it; a timeout
        // after the write is decided with the location and applied to its result, found by
        // path because a bulk delete may not answer in order.
        let timed_out: Arc<Mutex<Vec<Path>>> = Arc::default();
        let shared = Arc::clone(self.shared());
        let marks = Arc::clone(&timed_out);
        let locations = locations
            .then(move |location| {
                let shared = Arc::clone(&shared);
                let marks = Arc::clone(&marks);
                async move {
                    let location = location?;
                    let plan = shared.plan(&location, Op::Delete);
                    plan.sleep().await;
                    match plan.fault {
                        Some(FaultKind::TransientError) => {
                            Err(shared.inject(FaultKind::TransientError, Op::Delete, &location))
                        }
                        Some(FaultKind::TimeoutAfterWrite) => {
                            lock(&marks).push(location.clone());
                            Ok(location)
                        }
                        _ => Ok(location),
                    }
                }
            })
            .boxed();
        let shared = Arc::clone(self.shared());
        self.inner
            .delete_stream(locations)
            .map(move |result| {
                let location = result?;
                let mut marks = lock(&timed_out);
                match marks.iter().position(|marked| *marked == location) {
                    Some(i) => {
                        marks.swap_remove(i);
                        Err(shared.inject(FaultKind::TimeoutAfterWrite, Op::Delete, &location))
                    }
                    None => Ok(location),
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.faulty_list(prefix, || self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.faulty_list(prefix, || self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let location = prefix.cloned().unwrap_or_default();
        let call = self.inner.list_with_delimiter(prefix);
        run(self.shared(), &location, Op::ListWithDelimiter, call).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let call = self.inner.copy_opts(from, to, options);
        run(self.shared(), to, Op::Copy, call).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let call = self.inner.rename_opts(from, to, options);
        run(self.shared(), to, Op::Rename, call).await
    }
}

/// Faults for the parts, completion and abort of one multipart upload. A part that fails
/// is not sent; the caller should abort the upload, as with a real part failure.
#[derive(Debug)]
struct FaultUpload {
    upload: Box<dyn MultipartUpload>,
    location: Path,
    shared: Arc<Shared>,
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl MultipartUpload for FaultUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let plan = self.shared.plan(&self.location, Op::PutPart);
        if plan.fault == Some(FaultKind::TransientError) {
            let error = self
                .shared
                .inject(FaultKind::TransientError, Op::PutPart, &self.location);
            return Box::pin(async move {
                plan.sleep().await;
                Err(error)
            });
        }
        let part = self.upload.put_part(data);
        Box::pin(async move {
            plan.sleep().await;
            part.await
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let call = self.upload.complete();
        run(&self.shared, &self.location, Op::CompleteMultipart, call).await
    }

    async fn abort(&mut self) -> Result<()> {
        let call = self.upload.abort();
        run(&self.shared, &self.location, Op::AbortMultipart, call).await
    }
}

/// Runs one request under its plan: latency, then a transient error instead of the request,
/// or the request followed by a timeout after the write or a dropped response if it
/// succeeded. `call` is lazy, so a transient error never reaches the wrapped store.
async fn run<T>(
    shared: &Shared,
    location: &Path,
    op: Op,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    let plan = shared.plan(location, op);
    plan.sleep().await;
    match plan.fault {
        None => call.await,
        Some(FaultKind::TransientError) => {
            Err(shared.inject(FaultKind::TransientError, op, location))
        }
        Some(kind) => {
            call.await?;
            Err(shared.inject(kind, op, location))
        }
    }
}

/// What happens to one request, drawn when it starts.
#[derive(Clone, Copy, Debug, Default)]
struct Plan {
    delay: Option<Duration>,
    fault: Option<FaultKind>,
}

impl Plan {
    async fn sleep(&self) {
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
    }
}

#[derive(Debug)]
struct Shared {
    enabled: AtomicBool,
    state: Mutex<State>,
    counts: Counts,
}

#[derive(Debug)]
struct State {
    config: FaultConfig,
    rng: SplitMix64,
}

#[derive(Debug, Default)]
struct Counts {
    transient_errors: AtomicU64,
    timeouts_after_write: AtomicU64,
    dropped_responses: AtomicU64,
    delayed_requests: AtomicU64,
    added_latency_nanos: AtomicU64,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Draws the plan of one request (see the module docs for the order of draws).
    fn plan(&self, location: &Path, op: Op) -> Plan {
        let mut state = self.lock();
        // Read under the lock so a switch never lands between the check and the draws.
        if !self.enabled.load(Ordering::SeqCst) {
            return Plan::default();
        }
        let State { config, rng } = &mut *state;
        if let Some(purposes) = &config.purposes
            && !purposes.contains(&Purpose::of(location, op))
        {
            return Plan::default();
        }
        let delay = if config.min_latency.is_zero() && config.max_latency.is_zero() {
            None
        } else {
            let low = duration_nanos(config.min_latency);
            let high = duration_nanos(config.max_latency);
            Some(Duration::from_nanos(rng.between(low, high)))
        };
        let fault = if rng.next_f64() < config.transient_error {
            Some(FaultKind::TransientError)
        } else if let Some((kind, probability)) = late_fault(config, op) {
            (rng.next_f64() < probability).then_some(kind)
        } else {
            None
        };
        drop(state);
        if let Some(delay) = delay.filter(|delay| !delay.is_zero()) {
            self.counts.delayed_requests.fetch_add(1, Ordering::Relaxed);
            self.counts
                .added_latency_nanos
                .fetch_add(duration_nanos(delay), Ordering::Relaxed);
        }
        Plan { delay, fault }
    }

    /// Counts a fault that is being injected and builds its error.
    fn inject(&self, kind: FaultKind, op: Op, location: &Path) -> Error {
        let counter = match kind {
            FaultKind::TransientError => &self.counts.transient_errors,
            FaultKind::TimeoutAfterWrite => &self.counts.timeouts_after_write,
            FaultKind::DroppedResponse => &self.counts.dropped_responses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Error::Generic {
            store: FAULT_STORE_NAME,
            source: Box::new(InjectedFault {
                kind,
                op,
                path: location.to_string(),
            }),
        }
    }
}

/// The fault that can happen after `op` reached the store, with its probability: a timeout
/// for writes that take effect on their own, a lost response for reads. Parts and aborts
/// have none: a part that took effect but reported failure is a real multipart store's own
/// retry concern, not the caller's.
fn late_fault(config: &FaultConfig, op: Op) -> Option<(FaultKind, f64)> {
    match op {
        Op::Put | Op::CompleteMultipart | Op::Copy | Op::Rename | Op::Delete => {
            Some((FaultKind::TimeoutAfterWrite, config.timeout_after_write))
        }
        Op::Get | Op::Head | Op::GetRanges | Op::List | Op::ListWithDelimiter => {
            Some((FaultKind::DroppedResponse, config.dropped_response))
        }
        Op::PutMultipart | Op::PutPart | Op::AbortMultipart => None,
    }
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Locks a mutex; a panic while it was held left only counters and a generator behind,
/// which stay usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
