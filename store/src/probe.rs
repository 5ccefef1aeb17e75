//! [`ProbeStore`]: a test's hand on the store. It records which PUTs and GETs were asked for
//! and what they returned, holds chosen requests at a gate until the test releases them, and
//! makes chosen requests fail or hang by a script, so a test can see and force exactly the
//! request it names instead of writing its own `ObjectStore` wrapper.
//!
//! Where [`crate::FaultStore`] draws faults from a seed (for the simulation and fault sweeps),
//! a probe acts only on what the test asked for, request by request. Only `put_opts` and
//! `get_opts` (so also `head`, ranged GETs and the default `get_ranges`, which go through
//! `get_opts`) are seen; every other call passes straight through unseen.
//!
//! Per request, in this order: it is logged as started; every closed [`Gate`] whose matcher
//! takes it holds it until released; the first running [`Script`] whose matcher takes it
//! decides its [`Step`]; a read that is served is logged with its bytes.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use futures::stream::BoxStream;
use slatedb::object_store::path::Path;
use slatedb::object_store::{
    CopyOptions, Error, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use tokio::sync::watch;

use crate::purpose::Op;

/// The `store` name of the `object_store::Error::Generic` errors a script injects.
pub const PROBE_STORE_NAME: &str = "ProbeStore";

/// Which requests a gate or a script acts on: the operation ([`Op::Put`], [`Op::Get`] or
/// [`Op::Head`]) and the path.
pub type Matcher = Arc<dyn Fn(Op, &Path) -> bool + Send + Sync>;

/// Builds a [`Matcher`] from a closure.
pub fn matching(when: impl Fn(Op, &Path) -> bool + Send + Sync + 'static) -> Matcher {
    Arc::new(when)
}

/// A request as the probe saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub op: Op,
    pub path: Path,
}

/// A read (GET or HEAD) the wrapped store served, and the bytes of the range it returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub op: Op,
    pub path: Path,
    pub bytes: u64,
}

/// What a scripted request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Goes to the wrapped store.
    Pass,
    /// Fails before it reaches the store (a transient `Generic` error).
    FailBefore,
    /// Takes effect, then reports a transient `Generic` error: a timeout after a write, or a
    /// read whose response was lost.
    FailAfter,
    /// Refused for good (`PermissionDenied`).
    Refuse,
    /// Never answers.
    Hang,
}

/// Wraps a store; see the module documentation.
#[derive(Debug)]
pub struct ProbeStore<S> {
    inner: S,
    control: ProbeControl,
}

/// A cloneable handle to a [`ProbeStore`]'s log, gates and scripts, usable after the store
/// went into an `Arc<dyn ObjectStore>`.
#[derive(Clone, Debug, Default)]
pub struct ProbeControl {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    log: Mutex<Log>,
    gates: Mutex<Vec<Arc<GateState>>>,
    scripts: Mutex<Vec<Arc<ScriptState>>>,
}

#[derive(Debug, Default)]
struct Log {
    started: Vec<Request>,
    served: Vec<Served>,
}

struct GateState {
    when: Matcher,
    /// Holds only the first request it takes.
    once: bool,
    taken: AtomicBool,
    open: watch::Sender<bool>,
    held: watch::Sender<u64>,
}

impl fmt::Debug for GateState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateState")
            .field("once", &self.once)
            .field("open", &*self.open.borrow())
            .field("held", &*self.held.borrow())
            .finish_non_exhaustive()
    }
}

struct ScriptState {
    when: Matcher,
    steps: Mutex<VecDeque<Step>>,
    then: Step,
    running: AtomicBool,
}

impl fmt::Debug for ScriptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptState")
            .field("then", &self.then)
            .field("running", &self.running.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

/// Holds the requests its matcher takes until [`Gate::release`], or until it is dropped, so a
/// test that fails early never leaves a request hanging.
#[derive(Debug)]
pub struct Gate {
    state: Arc<GateState>,
    shared: Arc<Shared>,
}

impl Gate {
    /// How many requests have reached the gate while it was closed.
    pub fn held(&self) -> u64 {
        *self.state.held.borrow()
    }

    /// Waits until at least `n` requests have reached the gate: the test's signal that they
    /// are in flight.
    pub async fn wait_for_held(&self, n: u64) {
        let mut held = self.state.held.subscribe();
        held.wait_for(|held| *held >= n)
            .await
            .expect("the sender lives in the gate");
    }

    /// Opens the gate for good: held requests go on, later ones pass.
    pub fn release(&self) {
        self.state.open.send_replace(true);
        lock(&self.shared.gates).retain(|gate| !Arc::ptr_eq(gate, &self.state));
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.release();
    }
}

/// A running script; it keeps running when this handle is dropped, until [`Script::stop`].
#[derive(Debug)]
pub struct Script {
    state: Arc<ScriptState>,
}

impl Script {
    /// Stops the script: the requests it would have taken go on to the next script, or pass.
    pub fn stop(&self) {
        self.state.running.store(false, Ordering::SeqCst);
    }
}

impl ProbeControl {
    /// Holds every request `when` takes until the gate is released.
    pub fn hold(&self, when: Matcher) -> Gate {
        self.add_gate(when, false)
    }

    /// Holds only the next request `when` takes until the gate is released.
    pub fn hold_once(&self, when: Matcher) -> Gate {
        self.add_gate(when, true)
    }

    fn add_gate(&self, when: Matcher, once: bool) -> Gate {
        let state = Arc::new(GateState {
            when,
            once,
            taken: AtomicBool::new(false),
            open: watch::Sender::new(false),
            held: watch::Sender::new(0),
        });
        lock(&self.shared.gates).push(Arc::clone(&state));
        Gate {
            state,
            shared: Arc::clone(&self.shared),
        }
    }

    /// The requests `when` takes follow `steps` in order, then `then` (e.g. [`Step::Pass`],
    /// or [`Step::FailBefore`] for a store that keeps failing). Scripts added earlier decide
    /// first.
    pub fn script(
        &self,
        when: Matcher,
        steps: impl IntoIterator<Item = Step>,
        then: Step,
    ) -> Script {
        let state = Arc::new(ScriptState {
            when,
            steps: Mutex::new(steps.into_iter().collect()),
            then,
            running: AtomicBool::new(true),
        });
        lock(&self.shared.scripts).push(Arc::clone(&state));
        Script { state }
    }

    /// The requests started since the last [`ProbeControl::take`], failed ones included.
    pub fn started(&self) -> Vec<Request> {
        lock(&self.shared.log).started.clone()
    }

    /// The reads served since the last [`ProbeControl::take`].
    pub fn served(&self) -> Vec<Served> {
        lock(&self.shared.log).served.clone()
    }

    /// The reads served since the last call (or the last [`ProbeControl::take`]), and clears
    /// the log.
    pub fn take(&self) -> Vec<Served> {
        let mut log = lock(&self.shared.log);
        log.started.clear();
        std::mem::take(&mut log.served)
    }
}

impl Shared {
    /// Logs the request, waits at the gates that take it, and returns its step.
    async fn admit(&self, op: Op, path: &Path) -> Step {
        lock(&self.log).started.push(Request {
            op,
            path: path.clone(),
        });
        let gates: Vec<Arc<GateState>> = lock(&self.gates)
            .iter()
            .filter(|gate| !*gate.open.borrow() && (gate.when)(op, path))
            .filter(|gate| !gate.once || !gate.taken.swap(true, Ordering::SeqCst))
            .cloned()
            .collect();
        for gate in gates {
            let mut open = gate.open.subscribe();
            gate.held.send_modify(|held| *held += 1);
            // A closed sender means the gate is gone; nothing holds the request then.
            let _ = open.wait_for(|open| *open).await;
        }
        let scripts = lock(&self.scripts);
        let script = scripts
            .iter()
            .find(|script| script.running.load(Ordering::SeqCst) && (script.when)(op, path));
        match script {
            Some(script) => lock(&script.steps).pop_front().unwrap_or(script.then),
            None => Step::Pass,
        }
    }

    fn served(&self, op: Op, path: &Path, result: &GetResult) {
        lock(&self.log).served.push(Served {
            op,
            path: path.clone(),
            bytes: result.range.end - result.range.start,
        });
    }
}

fn injected(op: Op, path: &Path) -> Error {
    Error::Generic {
        store: PROBE_STORE_NAME,
        source: format!("injected failure of {} of `{path}`", op.label()).into(),
    }
}

fn refused(path: &Path) -> Error {
    Error::PermissionDenied {
        path: path.to_string(),
        source: "refused by the test's script".into(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<S: ObjectStore> ProbeStore<S> {
    /// Wraps `inner`: nothing held, nothing scripted.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            control: ProbeControl::default(),
        }
    }

    /// The log, gates and scripts, as a handle to keep.
    pub fn control(&self) -> ProbeControl {
        self.control.clone()
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S> std::ops::Deref for ProbeStore<S> {
    type Target = ProbeControl;

    fn deref(&self) -> &ProbeControl {
        &self.control
    }
}

impl<S: fmt::Display> fmt::Display for ProbeStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProbeStore({})", self.inner)
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for ProbeStore<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let op = Op::Put;
        match self.control.shared.admit(op, location).await {
            Step::Pass => self.inner.put_opts(location, payload, opts).await,
            Step::FailBefore => Err(injected(op, location)),
            Step::FailAfter => {
                self.inner.put_opts(location, payload, opts).await?;
                Err(injected(op, location))
            }
            Step::Refuse => Err(refused(location)),
            Step::Hang => futures::future::pending().await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        let step = self.control.shared.admit(op, location).await;
        let result = match step {
            Step::Pass | Step::FailAfter => self.inner.get_opts(location, options).await?,
            Step::FailBefore => return Err(injected(op, location)),
            Step::Refuse => return Err(refused(location)),
            Step::Hang => return futures::future::pending().await,
        };
        self.control.shared.served(op, location, &result);
        if step == Step::FailAfter {
            return Err(injected(op, location));
        }
        Ok(result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use slatedb::object_store::ObjectStoreExt;
    use slatedb::object_store::memory::InMemory;

    use super::*;

    fn wal() -> Path {
        Path::from("wal/1.wal")
    }

    fn puts() -> Matcher {
        matching(|op, _| op == Op::Put)
    }

    async fn put(store: &ProbeStore<InMemory>, bytes: &'static [u8]) -> Result<PutResult> {
        store.put(&wal(), Bytes::from_static(bytes).into()).await
    }

    /// A PUT in its own task, so the test can hold it.
    fn spawn_put(
        store: &Arc<ProbeStore<InMemory>>,
        bytes: &'static [u8],
    ) -> tokio::task::JoinHandle<Result<PutResult>> {
        let store = Arc::clone(store);
        tokio::spawn(async move { put(&store, bytes).await })
    }

    #[tokio::test]
    async fn reads_are_logged_with_their_bytes_and_take_clears_the_log() {
        let store = ProbeStore::new(InMemory::new());
        put(&store, b"0123456789").await.expect("put");
        store.get_range(&wal(), 2..5).await.expect("get");
        store.head(&wal()).await.expect("head");
        let started = store.started();
        assert_eq!(
            started.iter().map(|r| r.op).collect::<Vec<_>>(),
            [Op::Put, Op::Get, Op::Head]
        );
        let served = store.take();
        assert_eq!(served.len(), 2);
        assert_eq!(
            served[0],
            Served {
                op: Op::Get,
                path: wal(),
                bytes: 3
            }
        );
        assert_eq!(served[1].op, Op::Head);
        assert!(store.take().is_empty() && store.started().is_empty());
    }

    #[tokio::test]
    async fn a_gate_holds_what_it_matches_until_released_and_lets_the_rest_pass() {
        let store = Arc::new(ProbeStore::new(InMemory::new()));
        let gate = store.hold(puts());
        let held = spawn_put(&store, b"held");
        gate.wait_for_held(1).await;
        // A GET passes the gate of PUTs, and the held PUT has not reached the store.
        let missing = store.get(&wal()).await;
        assert!(
            matches!(missing, Err(Error::NotFound { .. })),
            "{missing:?}"
        );
        assert!(!held.is_finished());
        gate.release();
        held.await.expect("task").expect("put after release");
        assert_eq!(gate.held(), 1);
        // Released for good: later PUTs pass and are not counted.
        put(&store, b"later").await.expect("put");
        assert_eq!(gate.held(), 1);
    }

    #[tokio::test]
    async fn a_dropped_gate_releases_what_it_held() {
        let store = Arc::new(ProbeStore::new(InMemory::new()));
        let gate = store.hold(puts());
        let held = spawn_put(&store, b"held");
        gate.wait_for_held(1).await;
        drop(gate);
        held.await.expect("task").expect("put after the gate went");
    }

    #[tokio::test]
    async fn a_gate_held_once_takes_only_the_first_request() {
        let store = Arc::new(ProbeStore::new(InMemory::new()));
        let gate = store.hold_once(puts());
        let first = spawn_put(&store, b"first");
        gate.wait_for_held(1).await;
        put(&store, b"second").await.expect("the second put passes");
        assert!(!first.is_finished());
        gate.release();
        first.await.expect("task").expect("first put");
        assert_eq!(gate.held(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_script_decides_each_request_in_order_then_its_default() {
        let store = ProbeStore::new(InMemory::new());
        let script = store.script(
            puts(),
            [Step::FailBefore, Step::FailAfter, Step::Refuse, Step::Hang],
            Step::FailBefore,
        );
        let before = put(&store, b"a").await.expect_err("fails before");
        assert!(matches!(before, Error::Generic { store, .. } if store == PROBE_STORE_NAME));
        assert!(
            store.inner().get(&wal()).await.is_err(),
            "nothing was written"
        );

        let after = put(&store, b"b").await.expect_err("fails after");
        assert!(matches!(after, Error::Generic { .. }));
        let stored = store
            .inner()
            .get(&wal())
            .await
            .expect("written")
            .bytes()
            .await;
        assert_eq!(stored.expect("body"), Bytes::from_static(b"b"));

        let refused = put(&store, b"c").await.expect_err("refused");
        assert!(matches!(refused, Error::PermissionDenied { .. }));

        let hang = tokio::time::timeout(Duration::from_secs(3600), put(&store, b"d")).await;
        assert!(hang.is_err(), "a hanging request never answers");

        assert!(put(&store, b"e").await.is_err(), "then the default");
        store.get(&wal()).await.expect("reads are not scripted");
        script.stop();
        put(&store, b"f").await.expect("a stopped script passes");
        assert_eq!(store.started().len(), 7);
    }

    #[tokio::test]
    async fn a_read_that_fails_after_is_served_and_logged() {
        let store = ProbeStore::new(InMemory::new());
        put(&store, b"0123").await.expect("put");
        let _script = store.script(
            matching(|op, _| op == Op::Get),
            [Step::FailAfter],
            Step::Pass,
        );
        store.get(&wal()).await.expect_err("response lost");
        assert_eq!(store.served().len(), 1);
        store.get(&wal()).await.expect("then served");
    }
}
