//! Limits that protect the service from one client (issue 14, item 5): byte rates of
//! produce and fetch per principal (per client address when authentication is off), enforced
//! by making the call wait (throttled, as Kafka throttles, never failed), and a cap on the
//! fetch streams one connection holds open at once.
//!
//! Each node enforces its own rates: a principal spread over N writers gets up to N times the
//! rate, as a Kafka client spread over N brokers does.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inlet_core::clock::Clock;
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::auth::Caller;
use crate::metrics::RequestMetrics;

/// Longest a single call waits for its quota; what it still owes is waited off by the next.
pub const MAX_THROTTLE: Duration = Duration::from_secs(10);

/// Most principals (or addresses) whose rates are tracked; past it idle ones are forgotten.
const MAX_TRACKED: usize = 100_000;

/// The `[quotas]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaSettings {
    /// Bytes per second (Arrow IPC) each principal may append on this node; one second's
    /// worth may come at once. Default none: unlimited.
    pub produce_bytes_per_second: Option<u64>,
    /// Bytes per second (Arrow IPC) each principal may fetch from this node. Default none.
    pub fetch_bytes_per_second: Option<u64>,
    /// Fetch streams one connection may hold open at once; more are refused with
    /// RESOURCE_EXHAUSTED. Default 256.
    pub max_fetch_streams_per_connection: usize,
    /// Rates of particular principals, in place of the two above (`[quotas.principals.etl]`
    /// `produce_bytes_per_second = 10485760`); a rate left out is unlimited for them.
    pub principals: BTreeMap<String, Rates>,
}

/// One principal's own rates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rates {
    pub produce_bytes_per_second: Option<u64>,
    pub fetch_bytes_per_second: Option<u64>,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            produce_bytes_per_second: None,
            fetch_bytes_per_second: None,
            max_fetch_streams_per_connection: 256,
            principals: BTreeMap::new(),
        }
    }
}

/// Which rate a call spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Produce,
    Fetch,
}

/// A token bucket: `available` bytes (negative: owed) as of `at` (microseconds).
#[derive(Clone, Copy, Debug)]
struct Bucket {
    available: f64,
    at: i64,
}

/// The node's quotas. Cheap to share.
#[derive(Debug)]
pub struct Quotas {
    settings: QuotaSettings,
    buckets: Mutex<HashMap<(Direction, String), Bucket>>,
    /// Open fetch streams per connection (the client's address and port).
    streams: Mutex<HashMap<SocketAddr, usize>>,
    clock: Arc<dyn Clock>,
    metrics: Arc<RequestMetrics>,
}

impl Quotas {
    pub fn new(
        settings: QuotaSettings,
        clock: Arc<dyn Clock>,
        metrics: Arc<RequestMetrics>,
    ) -> Self {
        Self {
            settings,
            buckets: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            clock,
            metrics,
        }
    }

    /// The rate of `who`: its own if it has one, else every principal's.
    /// Who `request` is charged to in `direction` (its principal, or its address without
    /// authentication); none when no rate in that direction is set for anyone, so calls
    /// without quotas do no quota work.
    pub fn charged<T>(
        &self,
        direction: Direction,
        request: &tonic::Request<T>,
    ) -> Option<Arc<str>> {
        let limited = |rates: (Option<u64>, Option<u64>)| match direction {
            Direction::Produce => rates.0.is_some(),
            Direction::Fetch => rates.1.is_some(),
        };
        let settings = &self.settings;
        let any = limited((
            settings.produce_bytes_per_second,
            settings.fetch_bytes_per_second,
        )) || settings
            .principals
            .values()
            .any(|own| limited((own.produce_bytes_per_second, own.fetch_bytes_per_second)));
        if !any {
            return None;
        }
        let who = match request.extensions().get::<Caller>() {
            Some(caller) => caller.principal.to_string(),
            None => request
                .remote_addr()
                .map_or_else(|| "unknown".to_owned(), |addr| addr.ip().to_string()),
        };
        Some(who.into())
    }

    fn rate(&self, direction: Direction, who: &str) -> Option<u64> {
        let (produce, fetch) = match self.settings.principals.get(who) {
            Some(own) => (own.produce_bytes_per_second, own.fetch_bytes_per_second),
            None => (
                self.settings.produce_bytes_per_second,
                self.settings.fetch_bytes_per_second,
            ),
        };
        match direction {
            Direction::Produce => produce,
            Direction::Fetch => fetch,
        }
        .filter(|rate| *rate > 0)
    }

    /// How long `who` must wait before moving `bytes` more in `direction` (spending them now).
    pub fn delay(&self, direction: Direction, who: &str, bytes: u64) -> Duration {
        let Some(rate) = self.rate(direction, who) else {
            return Duration::ZERO;
        };
        let rate = rate as f64;
        let now = self.clock.now().0;
        let mut buckets = self.buckets.lock().expect("quota lock");
        if buckets.len() >= MAX_TRACKED {
            // Forget whoever is idle long enough to be full again.
            buckets.retain(|_, bucket| {
                bucket.available + rate * (now - bucket.at) as f64 / 1e6 < rate
            });
        }
        let bucket = buckets
            .entry((direction, who.to_owned()))
            .or_insert(Bucket {
                available: rate,
                at: now,
            });
        let elapsed = (now - bucket.at).max(0) as f64 / 1e6;
        bucket.available = (bucket.available + rate * elapsed).min(rate) - bytes as f64;
        bucket.at = now;
        if bucket.available >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-bucket.available / rate).min(MAX_THROTTLE)
    }

    /// Waits until `who` may move `bytes` in `direction`.
    pub async fn throttle(&self, direction: Direction, who: &str, bytes: u64) {
        let delay = self.delay(direction, who, bytes);
        if delay.is_zero() {
            return;
        }
        let counter = match direction {
            Direction::Produce => &self.metrics.produce_throttled_micros,
            Direction::Fetch => &self.metrics.fetch_throttled_micros,
        };
        counter.fetch_add(delay.as_micros() as u64, Ordering::Relaxed);
        tokio::time::sleep(delay).await;
    }

    /// Opens a fetch stream of the connection from `peer`; the stream counts until the
    /// returned guard drops. Refused past `max_fetch_streams_per_connection`.
    pub fn open_fetch(self: &Arc<Self>, peer: Option<SocketAddr>) -> Result<FetchSlot, Status> {
        let Some(peer) = peer else {
            return Ok(FetchSlot {
                quotas: self.clone(),
                peer: None,
            });
        };
        let limit = self.settings.max_fetch_streams_per_connection;
        let mut streams = self.streams.lock().expect("streams lock");
        let open = streams.entry(peer).or_insert(0);
        if *open >= limit {
            self.metrics
                .fetch_streams_refused
                .fetch_add(1, Ordering::Relaxed);
            return Err(Status::resource_exhausted(format!(
                "this connection has {open} fetch streams open, at most \
                 {limit} (quotas.max_fetch_streams_per_connection): close one, or open \
                 another connection"
            )));
        }
        *open += 1;
        Ok(FetchSlot {
            quotas: self.clone(),
            peer: Some(peer),
        })
    }
}

/// One open fetch stream of a connection.
#[derive(Debug)]
pub struct FetchSlot {
    quotas: Arc<Quotas>,
    peer: Option<SocketAddr>,
}

impl Drop for FetchSlot {
    fn drop(&mut self) {
        let Some(peer) = self.peer else {
            return;
        };
        let mut streams = self.quotas.streams.lock().expect("streams lock");
        if let Some(open) = streams.get_mut(&peer) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use inlet_core::ids::TimestampMicros;

    use super::*;

    #[derive(Debug, Default)]
    struct ManualClock(std::sync::atomic::AtomicI64);

    impl Clock for ManualClock {
        fn now(&self) -> TimestampMicros {
            TimestampMicros(self.0.load(Ordering::SeqCst))
        }
    }

    #[test]
    fn a_principal_past_its_rate_waits_what_it_owes_and_others_do_not() {
        let clock = Arc::new(ManualClock::default());
        let settings = QuotaSettings {
            produce_bytes_per_second: Some(1000),
            ..QuotaSettings::default()
        };
        let quotas = Quotas::new(settings, clock.clone(), Arc::default());
        let produce = |who, bytes| quotas.delay(Direction::Produce, who, bytes);
        // One second's worth at once is free; then each byte costs a millisecond.
        assert_eq!(produce("alice", 1000), Duration::ZERO);
        assert_eq!(produce("alice", 500), Duration::from_millis(500));
        assert_eq!(produce("bob", 1000), Duration::ZERO, "bob has his own rate");
        assert_eq!(
            quotas.delay(Direction::Fetch, "alice", 1_000_000),
            Duration::ZERO,
            "no fetch quota"
        );
        // Half a second later alice owes nothing more, and refills from there.
        clock.0.store(500_000, Ordering::SeqCst);
        assert_eq!(produce("alice", 0), Duration::ZERO);
        clock.0.store(1_500_000, Ordering::SeqCst);
        assert_eq!(produce("alice", 1000), Duration::ZERO);
        // A huge call waits at most MAX_THROTTLE; the rest is owed by the next.
        assert_eq!(produce("alice", 1_000_000), MAX_THROTTLE);
        assert!(produce("alice", 0) > MAX_THROTTLE / 2);
    }

    #[test]
    fn a_principal_with_rates_of_its_own_gets_them() {
        let settings = QuotaSettings {
            produce_bytes_per_second: Some(1000),
            principals: BTreeMap::from([
                (
                    "etl".to_owned(),
                    Rates {
                        produce_bytes_per_second: Some(100_000),
                        fetch_bytes_per_second: None,
                    },
                ),
                ("ops".to_owned(), Rates::default()),
            ]),
            ..QuotaSettings::default()
        };
        let quotas = Quotas::new(settings, Arc::new(ManualClock::default()), Arc::default());
        let produce = |who, bytes| quotas.delay(Direction::Produce, who, bytes);
        assert_eq!(produce("etl", 100_000), Duration::ZERO);
        assert_eq!(produce("etl", 1000), Duration::from_millis(10));
        assert_eq!(produce("ops", 10_000_000), Duration::ZERO, "unlimited");
        assert_eq!(
            produce("alice", 2000),
            Duration::from_secs(1),
            "the default"
        );
    }

    #[test]
    fn a_connection_opens_at_most_its_fetch_streams() {
        let settings = QuotaSettings {
            max_fetch_streams_per_connection: 2,
            ..QuotaSettings::default()
        };
        let quotas = Arc::new(Quotas::new(
            settings,
            Arc::new(ManualClock::default()),
            Arc::default(),
        ));
        let peer: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let other: SocketAddr = "127.0.0.1:5001".parse().expect("addr");
        let first = quotas.open_fetch(Some(peer)).expect("first");
        let _second = quotas.open_fetch(Some(peer)).expect("second");
        let refused = quotas.open_fetch(Some(peer)).expect_err("third");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("at most 2"), "{refused:?}");
        let _elsewhere = quotas.open_fetch(Some(other)).expect("another connection");
        drop(first);
        let _third = quotas.open_fetch(Some(peer)).expect("a slot came free");
    }
}
