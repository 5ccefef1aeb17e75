//! The server's metrics and their Prometheus exposition: object-store calls by purpose
//! (from `inlet-store`), read-cache counters, append and fetch latency histograms, and
//! row/byte counters. Everything is atomics, so recording never blocks a request; a scrape
//! reads them and writes the text with `prometheus-client`'s encoder (Prometheus text format
//! 0.0.4, [`CONTENT_TYPE`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use inlet_cache::PagedCache;
use inlet_index::Index;
use inlet_store::StoreMetrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency buckets, in seconds (Prometheus `le`).
const LATENCY_BOUNDS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

/// A Prometheus histogram with fixed latency buckets, encoded by `prometheus-client`. Not the
/// crate's `Histogram`: that one takes a lock on every observation, this one is atomics.
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
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        // Per-bucket counts; the encoder makes them cumulative and adds `+Inf` (the count).
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, bucket)| (*bound, bucket.load(Ordering::Relaxed)))
            .collect();
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
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
    /// Time calls waited for their principal's produce or fetch rate (`quota.rs`).
    pub produce_throttled_micros: AtomicU64,
    pub fetch_throttled_micros: AtomicU64,
    /// Fetches refused because their connection held its most streams.
    pub fetch_streams_refused: AtomicU64,
}

/// Writes one metric: `# HELP`, `# TYPE` and its samples. Counter names go without `_total`:
/// the encoder appends it.
fn write_metric(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// Everything `/metrics` shows.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub requests: std::sync::Arc<RequestMetrics>,
    pub store: StoreMetrics,
    pub cache: PagedCache,
    /// The index, on the owner.
    pub index: Option<Index>,
}

impl Metrics {
    /// Prometheus text exposition format (version 0.0.4, [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

/// Reads every metric at the scrape, in a fixed order: request metrics, cache, index owner,
/// then the object-store counters.
impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let r = &self.requests;
        write_metric(
            &mut encoder,
            "inlet_append_latency_seconds",
            "Append latency: request received to rows durable and acked.",
            &r.append_latency,
        )?;
        write_metric(
            &mut encoder,
            "inlet_fetch_first_batch_latency_seconds",
            "Fetch latency: request received to first batch ready.",
            &r.fetch_first_batch_latency,
        )?;
        let counter = |c: &AtomicU64| ConstCounter::new(c.load(Ordering::Relaxed));
        write_metric(
            &mut encoder,
            "inlet_appended_rows",
            "Rows acked.",
            &counter(&r.appended_rows),
        )?;
        write_metric(
            &mut encoder,
            "inlet_appended_bytes",
            "Arrow IPC bytes of acked appends.",
            &counter(&r.appended_bytes),
        )?;
        write_metric(
            &mut encoder,
            "inlet_append_errors",
            "Appends that failed.",
            &counter(&r.append_errors),
        )?;
        write_metric(
            &mut encoder,
            "inlet_fetched_rows",
            "Rows sent to consumers.",
            &counter(&r.fetched_rows),
        )?;
        write_metric(
            &mut encoder,
            "inlet_fetched_bytes",
            "Arrow IPC bytes sent to consumers.",
            &counter(&r.fetched_bytes),
        )?;
        {
            let mut throttled = encoder.encode_descriptor(
                "inlet_throttled_seconds",
                "Time calls waited for their principal's byte rate (quotas), by direction.",
                None,
                MetricType::Counter,
            )?;
            for (direction, micros) in [
                ("produce", &r.produce_throttled_micros),
                ("fetch", &r.fetch_throttled_micros),
            ] {
                let seconds = micros.load(Ordering::Relaxed) as f64 / 1e6;
                ConstCounter::new(seconds)
                    .encode(throttled.encode_family(&[("direction", direction)])?)?;
            }
        }
        write_metric(
            &mut encoder,
            "inlet_fetch_streams_refused",
            "Fetches refused because their connection held quotas.max_fetch_streams_per_connection.",
            &counter(&r.fetch_streams_refused),
        )?;
        let cache = self.cache.stats();
        {
            let mut hits = encoder.encode_descriptor(
                "inlet_cache_hits",
                "Cache pages found, by tier.",
                None,
                MetricType::Counter,
            )?;
            let memory_hits = cache.hits.saturating_sub(cache.disk_hits);
            ConstCounter::new(memory_hits).encode(hits.encode_family(&[("tier", "memory")])?)?;
            ConstCounter::new(cache.disk_hits).encode(hits.encode_family(&[("tier", "disk")])?)?;
        }
        write_metric(
            &mut encoder,
            "inlet_cache_misses",
            "Cache pages not found.",
            &ConstCounter::new(cache.misses),
        )?;
        write_metric(
            &mut encoder,
            "inlet_cache_fetched_bytes",
            "Bytes the cache fetched from the object store.",
            &ConstCounter::new(cache.bytes_fetched),
        )?;
        write_metric(
            &mut encoder,
            "inlet_cache_memory_bytes",
            "Bytes held by the memory tier.",
            &ConstGauge::new(cache.memory_bytes),
        )?;
        write_metric(
            &mut encoder,
            "inlet_index_owner_up",
            "1 while this process owns the index and accepts writes.",
            &ConstGauge::new(u64::from(
                self.index
                    .as_ref()
                    .is_some_and(|index| index.stopped().is_none()),
            )),
        )?;
        self.store.encode(encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The latency histogram keeps the bounds, `le` labels and series names it had when it
    /// was rendered by hand.
    #[test]
    fn the_latency_histogram_renders_its_fixed_buckets() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(300));
        histogram.observe(Duration::from_millis(1));
        histogram.observe(Duration::from_millis(700));
        histogram.observe(Duration::from_secs(90));
        let mut registry = Registry::default();
        registry.register("inlet_test_latency_seconds", "Test latency", histogram);
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).expect("writing to a String cannot fail");

        let cumulative = [1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3];
        let mut expected = "# HELP inlet_test_latency_seconds Test latency.\n\
                            # TYPE inlet_test_latency_seconds histogram\n"
            .to_owned();
        for (bound, count) in ["0.0005", "0.001", "0.002", "0.005", "0.01", "0.02", "0.05"]
            .into_iter()
            .chain(["0.1", "0.2", "0.5", "1", "2", "5", "10", "30", "60"])
            .zip(cumulative)
        {
            expected.push_str(&format!(
                "inlet_test_latency_seconds_bucket{{le=\"{bound}\"}} {count}\n"
            ));
        }
        expected.push_str("inlet_test_latency_seconds_bucket{le=\"+Inf\"} 4\n");
        expected.push_str("inlet_test_latency_seconds_sum 90.7013\n");
        expected.push_str("inlet_test_latency_seconds_count 4\n");
        assert_eq!(text, expected);
    }
}
