//! Time and randomness as injected handles. Nothing in Inlet reads the wall clock or draws
//! random numbers directly: the simulation replaces these to make runs deterministic.
//! Sleeping goes through `tokio::time`, which the simulation pauses and advances.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ids::TimestampMicros;
use crate::rng::SplitMix64;

/// Wall-clock time, in microseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> TimestampMicros;
}

/// The operating system's clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the wall clock
    fn now(&self) -> TimestampMicros {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        TimestampMicros(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }
}

/// Source of random ids (WAL object names, producer ids).
pub trait IdGen: Send + Sync + std::fmt::Debug {
    fn next_u128(&self) -> u128;
}

/// Ids from a SplitMix64-style generator seeded once. Seeded from the OS at startup in
/// production; from the simulation's seed in tests.
#[derive(Debug)]
pub struct SeededIdGen {
    state: Mutex<SplitMix64>,
}

impl SeededIdGen {
    pub fn new(seed: u64) -> Self {
        Self {
            state: Mutex::new(SplitMix64::new(seed)),
        }
    }

    /// Seeds from the OS: std's randomly keyed hasher (fresh keys from the OS per process,
    /// and a new key per call), mixed with the clock, the pid and a process-wide counter, so
    /// two generators made in the same microsecond still differ. Ids only need to be unique.
    pub fn from_entropy(clock: &dyn Clock) -> Self {
        use std::hash::{BuildHasher, Hasher};
        static CREATED: AtomicU64 = AtomicU64::new(0);
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_i64(clock.now().0);
        hasher.write_u32(std::process::id());
        hasher.write_u64(CREATED.fetch_add(1, Ordering::Relaxed));
        Self::new(hasher.finish())
    }

    fn next_u64(&self) -> u64 {
        self.state
            .lock()
            .expect("id generator lock poisoned")
            .next_u64()
    }
}

impl IdGen for SeededIdGen {
    fn next_u128(&self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }
}

/// The injected time and id sources, passed to every component's builder.
#[derive(Clone, Debug)]
pub struct Env {
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGen>,
}

impl Env {
    /// The production environment: OS clock, ids seeded from entropy.
    pub fn system() -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ids = Arc::new(SeededIdGen::from_entropy(clock.as_ref()));
        Self { clock, ids }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_from_entropy_made_together_differ() {
        let clock = SystemClock;
        let ids: std::collections::HashSet<u128> = (0..1000)
            .map(|_| SeededIdGen::from_entropy(&clock).next_u128())
            .collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn seeded_ids_are_deterministic_and_distinct() {
        let a = SeededIdGen::new(7);
        let b = SeededIdGen::new(7);
        let first = a.next_u128();
        assert_eq!(first, b.next_u128());
        assert_ne!(first, a.next_u128());
    }
}
