//! Request and byte counters per (purpose, operation), and their Prometheus exposition
//! (a `prometheus-client` collector).
//!
//! A request that ends in an error is counted either as an error (the store failed: a
//! transport, server or permission error) or as an expected miss (the store answered, and
//! the answer is "no": not found, already exists, precondition failed, not modified, or not
//! supported by this store). The misses are how lookups and conditional writes work: SlateDB
//! probes for objects, fences writers with put-if-absent and put-if-match, and tries
//! conditional PUTs with attributes first, falling back on stores without them (the local
//! filesystem); the writer's retried upload finds its own object. Counting them as errors
//! would alarm an operator over a healthy node. Whether a "no" is a problem is for the
//! caller to say, and it does, in its own error.
//!
//! The counters are a fixed table of atomics (purposes × operations), so counting is a
//! relaxed `fetch_add` and a snapshot is a pass of relaxed loads: no lock on the request
//! path. Each counter is exact; a snapshot taken while requests run may see a request whose
//! bytes are still streaming. A scrape encodes a snapshot (the [`Collector`] implementations).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;
use slatedb::object_store::Error;

use crate::fault::InjectedFault;
use crate::purpose::{Op, Purpose};

const PURPOSES: usize = Purpose::ALL.len();
const OPS: usize = Op::ALL.len();

/// What one (purpose, operation) pair did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Requests sent (failed ones included: a failed request is still a billed request).
    pub requests: u64,
    /// Requests (or body streams) that failed: the store did not answer the request.
    pub errors: u64,
    /// Requests the store answered with not found, already exists, precondition failed, not
    /// modified or not supported: expected answers to lookups and conditional requests, not
    /// failures.
    pub expected_misses: u64,
    /// Payload bytes sent to the store (puts and parts), counted when the request is sent.
    pub bytes_out: u64,
    /// Payload bytes received from the store (get bodies), counted as the body streams.
    pub bytes_in: u64,
}

impl OpCounts {
    fn plus(self, other: OpCounts) -> OpCounts {
        OpCounts {
            requests: self.requests + other.requests,
            errors: self.errors + other.errors,
            expected_misses: self.expected_misses + other.expected_misses,
            bytes_out: self.bytes_out + other.bytes_out,
            bytes_in: self.bytes_in + other.bytes_in,
        }
    }

    fn minus(self, earlier: OpCounts) -> OpCounts {
        OpCounts {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            expected_misses: self.expected_misses.saturating_sub(earlier.expected_misses),
            bytes_out: self.bytes_out.saturating_sub(earlier.bytes_out),
            bytes_in: self.bytes_in.saturating_sub(earlier.bytes_in),
        }
    }

    fn is_zero(self) -> bool {
        self == OpCounts::default()
    }
}

/// The counters of an [`crate::InstrumentedStore`] at one moment: a plain value to diff, print
/// or render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSnapshot {
    counts: [[OpCounts; OPS]; PURPOSES],
}

impl Default for StoreSnapshot {
    fn default() -> Self {
        Self {
            counts: [[OpCounts::default(); OPS]; PURPOSES],
        }
    }
}

impl StoreSnapshot {
    /// The counts of one (purpose, operation) pair.
    pub fn get(&self, purpose: Purpose, op: Op) -> OpCounts {
        self.counts[purpose.index()][op.index()]
    }

    /// The counts of one purpose, summed over its operations.
    pub fn purpose(&self, purpose: Purpose) -> OpCounts {
        self.counts[purpose.index()]
            .iter()
            .fold(OpCounts::default(), |sum, c| sum.plus(*c))
    }

    /// The counts of one operation, summed over purposes.
    pub fn op(&self, op: Op) -> OpCounts {
        self.counts
            .iter()
            .fold(OpCounts::default(), |sum, row| sum.plus(row[op.index()]))
    }

    /// Everything, summed.
    pub fn total(&self) -> OpCounts {
        self.counts
            .iter()
            .flatten()
            .fold(OpCounts::default(), |sum, c| sum.plus(*c))
    }

    /// The pairs with any non-zero count, in label order of purpose then operation.
    pub fn entries(&self) -> impl Iterator<Item = (Purpose, Op, OpCounts)> + '_ {
        Purpose::ALL.into_iter().flat_map(move |purpose| {
            Op::ALL.into_iter().filter_map(move |op| {
                let counts = self.get(purpose, op);
                (!counts.is_zero()).then_some((purpose, op, counts))
            })
        })
    }

    /// What happened between `earlier` and this snapshot (for a benchmark phase).
    pub fn since(&self, earlier: &StoreSnapshot) -> StoreSnapshot {
        let mut delta = StoreSnapshot::default();
        for purpose in Purpose::ALL {
            for op in Op::ALL {
                let (p, o) = (purpose.index(), op.index());
                delta.counts[p][o] = self.counts[p][o].minus(earlier.counts[p][o]);
            }
        }
        delta
    }

    /// Appends the counters in Prometheus text format (version 0.0.4, through
    /// `prometheus-client`'s encoder): requests, errors, expected misses and bytes, each with
    /// `purpose` and `op` labels, for every pair that has sent a request (see the
    /// [`Collector`] implementation).
    pub fn render_prometheus(&self, out: &mut String) {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        prometheus_text::encode(out, &registry).expect("writing to a String cannot fail");
    }
}

/// The snapshot's counters as four counter families: requests, errors, expected misses and
/// bytes (the last with a `direction` label), with a series per (purpose, operation) pair
/// that has sent a request, in label order. The series are written through the encoder's
/// label sets rather than the crate's `Family`: a `Family` is a hash map (its series come
/// out in a different order each scrape) behind a lock taken on every count, and it leaves
/// out a family that has no series yet, where this one always shows `# HELP` and `# TYPE`.
impl Collector for StoreSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let active: Vec<([(&str, &str); 2], OpCounts)> = self
            .entries()
            .filter(|(_, _, counts)| counts.requests > 0)
            .map(|(purpose, op, counts)| {
                ([("purpose", purpose.label()), ("op", op.label())], counts)
            })
            .collect();
        // Counter names go without `_total`: the encoder appends it.
        counter_family(
            &mut encoder,
            "inlet_object_store_requests",
            "Object-store requests sent, by purpose and operation.",
            active
                .iter()
                .map(|(labels, counts)| (labels, counts.requests)),
        )?;
        counter_family(
            &mut encoder,
            "inlet_object_store_errors",
            "Object-store requests that failed, by purpose and operation (not found, refused \
             conditional requests and unsupported options count as expected misses instead).",
            active
                .iter()
                .map(|(labels, counts)| (labels, counts.errors)),
        )?;
        counter_family(
            &mut encoder,
            "inlet_object_store_expected_misses",
            "Object-store requests answered not found, already exists, precondition failed, not \
             modified or not supported: expected answers to lookups and conditional requests, \
             by purpose and operation.",
            active
                .iter()
                .map(|(labels, counts)| (labels, counts.expected_misses)),
        )?;
        let bytes: Vec<_> = active
            .iter()
            .flat_map(|(labels, counts)| {
                [
                    ((*labels, [("direction", "out")]), counts.bytes_out),
                    ((*labels, [("direction", "in")]), counts.bytes_in),
                ]
            })
            .collect();
        counter_family(
            &mut encoder,
            "inlet_object_store_bytes",
            "Object-store payload bytes, out = sent to the store, in = received from it.",
            bytes.iter().map(|(labels, value)| (labels, *value)),
        )
    }
}

/// A [`StoreSnapshot`] taken at each scrape.
impl Collector for StoreMetrics {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        Collector::encode(&self.snapshot(), encoder)
    }
}

/// Writes one counter family: `# HELP`, `# TYPE` and a sample per label set, in the given
/// order.
fn counter_family<'a, L: EncodeLabelSet + 'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (&'a L, u64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Cell {
    requests: AtomicU64,
    errors: AtomicU64,
    expected_misses: AtomicU64,
    bytes_out: AtomicU64,
    bytes_in: AtomicU64,
}

impl Cell {
    /// Counts a request that ended in `error`: an expected miss or a real error.
    fn count_failure(&self, error: &Error) {
        let counter = if is_expected_miss(error) {
            &self.expected_misses
        } else {
            &self.errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Counters {
    cells: [[Cell; OPS]; PURPOSES],
}

/// A cloneable handle to one set of counters. Several stores may share one (their counts
/// add up); keep a clone to read the counters after the store went into an
/// `Arc<dyn ObjectStore>`.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    counters: Arc<Counters>,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl StoreMetrics {
    /// Fresh counters, all zero.
    pub fn new() -> Self {
        Self {
            counters: Arc::new(Counters {
                cells: std::array::from_fn(|_| std::array::from_fn(|_| Cell::default())),
            }),
        }
    }

    /// The counters now, without taking a lock.
    pub fn snapshot(&self) -> StoreSnapshot {
        let mut snapshot = StoreSnapshot::default();
        for (row, cells) in snapshot.counts.iter_mut().zip(&self.counters.cells) {
            for (counts, cell) in row.iter_mut().zip(cells) {
                *counts = OpCounts {
                    requests: cell.requests.load(Ordering::Relaxed),
                    errors: cell.errors.load(Ordering::Relaxed),
                    expected_misses: cell.expected_misses.load(Ordering::Relaxed),
                    bytes_out: cell.bytes_out.load(Ordering::Relaxed),
                    bytes_in: cell.bytes_in.load(Ordering::Relaxed),
                };
            }
        }
        snapshot
    }

    /// Appends the counters in Prometheus text format (see
    /// [`StoreSnapshot::render_prometheus`]).
    pub fn render_prometheus(&self, out: &mut String) {
        self.snapshot().render_prometheus(out);
    }

    /// Counts one request of `op` for `purpose` and returns the recorder of its outcome.
    pub(crate) fn request(&self, purpose: Purpose, op: Op) -> Recorder {
        let recorder = Recorder {
            counters: Arc::clone(&self.counters),
            purpose,
            op,
        };
        recorder.cell().requests.fetch_add(1, Ordering::Relaxed);
        recorder
    }

    /// Counts an error (or an expected miss) that arrived without its request (a
    /// `delete_stream` result): the purpose comes from the path the error names, if any.
    pub(crate) fn unattributed_error(&self, op: Op, error: &Error) {
        let purpose = error_path(error)
            .map(|path| Purpose::of(&path.into(), op))
            .unwrap_or(Purpose::Other);
        self.counters.cells[purpose.index()][op.index()].count_failure(error);
    }
}

/// Records the outcome of one request; cheap to clone into a body stream.
#[derive(Clone, Debug)]
pub(crate) struct Recorder {
    counters: Arc<Counters>,
    purpose: Purpose,
    op: Op,
}

impl Recorder {
    fn cell(&self) -> &Cell {
        &self.counters.cells[self.purpose.index()][self.op.index()]
    }

    pub(crate) fn bytes_out(&self, n: usize) {
        self.cell().bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn bytes_in(&self, n: u64) {
        self.cell().bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts an error (or an expected miss, see [`is_expected_miss`]) of this request.
    pub(crate) fn failed(&self, error: &Error) {
        self.cell().count_failure(error);
    }

    /// Counts an error or expected miss if `result` is one, and passes it on.
    pub(crate) fn outcome<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(error) = &result {
            self.failed(error);
        }
        result
    }
}

/// Whether `error` is the store's answer to a lookup or a conditional request (not found,
/// already exists, precondition failed, not modified, not supported by this store) rather
/// than a failure to answer.
fn is_expected_miss(error: &Error) -> bool {
    matches!(
        error,
        Error::NotFound { .. }
            | Error::AlreadyExists { .. }
            | Error::Precondition { .. }
            | Error::NotModified { .. }
            | Error::NotSupported { .. }
            | Error::NotImplemented { .. }
    )
}

/// The path an object-store error names, if it names one.
fn error_path(error: &Error) -> Option<&str> {
    match error {
        Error::NotFound { path, .. }
        | Error::AlreadyExists { path, .. }
        | Error::Precondition { path, .. }
        | Error::NotModified { path, .. }
        | Error::PermissionDenied { path, .. }
        | Error::Unauthenticated { path, .. } => Some(path),
        Error::Generic { .. } => InjectedFault::of(error).map(|fault| fault.path.as_str()),
        _ => None,
    }
}
