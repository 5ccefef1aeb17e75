//! The server's metrics and their Prometheus text rendering: object-store calls by purpose
//! (from `inlet-store`), read-cache counters, append and fetch latency histograms, and
//! row/byte counters. Everything is atomics, so recording never blocks a request.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use inlet_cache::PagedCache;
use inlet_index::Index;
use inlet_store::StoreMetrics;

/// Upper bounds of the latency buckets, in seconds (Prometheus `le`).
const LATENCY_BOUNDS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

/// A Prometheus histogram with fixed latency buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BOUNDS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BOUNDS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Request-level counters recorded by the gRPC service.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    /// Append: request received → acked (durable).
    pub append_latency: Histogram,
    /// Fetch: request received → first batch ready.
    pub fetch_first_batch_latency: Histogram,
    pub appended_rows: AtomicU64,
    pub appended_bytes: AtomicU64,
    pub append_errors: AtomicU64,
    pub fetched_rows: AtomicU64,
    pub fetched_bytes: AtomicU64,
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// Everything `/metrics` shows.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub requests: std::sync::Arc<RequestMetrics>,
    pub store: StoreMetrics,
    pub cache: PagedCache,
    pub index: Index,
}

impl Metrics {
    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let r = &self.requests;
        r.append_latency.render(
            "inlet_append_latency_seconds",
            "Append latency: request received to rows durable and acked.",
            &mut out,
        );
        r.fetch_first_batch_latency.render(
            "inlet_fetch_first_batch_latency_seconds",
            "Fetch latency: request received to first batch ready.",
            &mut out,
        );
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut out,
            "inlet_appended_rows_total",
            "Rows acked.",
            load(&r.appended_rows),
        );
        counter(
            &mut out,
            "inlet_appended_bytes_total",
            "Arrow IPC bytes of acked appends.",
            load(&r.appended_bytes),
        );
        counter(
            &mut out,
            "inlet_append_errors_total",
            "Appends that failed.",
            load(&r.append_errors),
        );
        counter(
            &mut out,
            "inlet_fetched_rows_total",
            "Rows sent to consumers.",
            load(&r.fetched_rows),
        );
        counter(
            &mut out,
            "inlet_fetched_bytes_total",
            "Arrow IPC bytes sent to consumers.",
            load(&r.fetched_bytes),
        );
        let cache = self.cache.stats();
        let _ = writeln!(
            out,
            "# HELP inlet_cache_hits_total Cache pages found, by tier."
        );
        let _ = writeln!(out, "# TYPE inlet_cache_hits_total counter");
        let _ = writeln!(
            out,
            "inlet_cache_hits_total{{tier=\"memory\"}} {}",
            cache.hits - cache.disk_hits
        );
        let _ = writeln!(
            out,
            "inlet_cache_hits_total{{tier=\"disk\"}} {}",
            cache.disk_hits
        );
        counter(
            &mut out,
            "inlet_cache_misses_total",
            "Cache pages not found.",
            cache.misses,
        );
        counter(
            &mut out,
            "inlet_cache_fetched_bytes_total",
            "Bytes the cache fetched from the object store.",
            cache.bytes_fetched,
        );
        gauge(
            &mut out,
            "inlet_cache_memory_bytes",
            "Bytes held by the memory tier.",
            cache.memory_bytes,
        );
        gauge(
            &mut out,
            "inlet_index_owner_up",
            "1 while this process owns the index and accepts writes.",
            u64::from(self.index.stopped().is_none()),
        );
        self.store.render_prometheus(&mut out);
        out
    }
}
