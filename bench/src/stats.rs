//! Latency percentiles from a sorted vector of samples (nearest rank): exact, and small
//! enough for the tens of thousands of samples one benchmark run takes.

use std::time::Duration;

use serde::Serialize;

/// A latency distribution in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Latency {
    pub(crate) samples: usize,
    pub(crate) mean_ms: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
}

impl Latency {
    /// Summarizes `samples`; all zero when there are none.
    pub(crate) fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let total: Duration = samples.iter().sum();
        Self {
            samples: samples.len(),
            mean_ms: round(ms(total) / samples.len() as f64, 3),
            p50_ms: round(ms(percentile(&samples, 0.50)), 3),
            p99_ms: round(ms(percentile(&samples, 0.99)), 3),
            p999_ms: round(ms(percentile(&samples, 0.999)), 3),
            max_ms: round(ms(samples[samples.len() - 1]), 3),
        }
    }
}

/// The nearest-rank `q` quantile of sorted, non-empty `samples`: the smallest sample with at
/// least `q` of all samples at or below it.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `x` rounded to `digits` decimals, so the report shows figures, not float noise.
pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        let latency = Latency::of(samples.into_iter().rev().collect());
        assert_eq!(latency.samples, 1000);
        assert_eq!(latency.p50_ms, 500.0);
        assert_eq!(latency.p99_ms, 990.0);
        assert_eq!(latency.p999_ms, 999.0);
        assert_eq!(latency.max_ms, 1000.0);
        assert_eq!(latency.mean_ms, 500.5);

        let one = Latency::of(vec![Duration::from_micros(1500)]);
        assert_eq!((one.p50_ms, one.p999_ms, one.max_ms), (1.5, 1.5, 1.5));
        assert_eq!(Latency::of(Vec::new()), Latency::default());
    }
}
