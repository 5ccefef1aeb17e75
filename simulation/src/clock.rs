//! Simulated time: one clock over tokio's paused time, handed to Inlet (as
//! `inlet_core::clock::Clock`) and to SlateDB (as its `SystemClock`), so both read the same
//! instant and every sleep or ticker advances only when the simulation lets time pass.
//!
//! Wall-clock time starts at a fixed instant, [`SIM_EPOCH_MICROS`], not at the machine's
//! clock, so timestamps (commit times, WAL object names, SlateDB's file ids) replay exactly.
//! The in-memory store stamps objects with the machine's clock, which is always later than
//! simulated time: SlateDB's garbage collector sees every object as newer than its minimum
//! age and deletes nothing, on every run alike.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use inlet_core::clock::Clock;
use inlet_core::ids::TimestampMicros;
use slatedb_common::clock::{SystemClock, SystemClockTicker};

/// 2025-01-01T00:00:00Z, where simulated time starts.
pub const SIM_EPOCH_MICROS: i64 = 1_735_689_600_000_000;

/// A clock that reads tokio's (paused) time, offset to start at [`SIM_EPOCH_MICROS`].
#[derive(Debug)]
pub struct SimClock {
    start: tokio::time::Instant,
}

impl SimClock {
    /// Starts the clock at the current tokio instant; call it inside the runtime.
    pub fn start() -> Arc<Self> {
        Arc::new(Self {
            start: tokio::time::Instant::now(),
        })
    }

    /// Simulated time since the run started.
    pub fn elapsed(&self) -> Duration {
        tokio::time::Instant::now().duration_since(self.start)
    }

    fn micros(&self) -> i64 {
        SIM_EPOCH_MICROS + i64::try_from(self.elapsed().as_micros()).unwrap_or(i64::MAX / 2)
    }
}

impl Clock for SimClock {
    fn now(&self) -> TimestampMicros {
        TimestampMicros(self.micros())
    }
}

impl SystemClock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_micros(self.micros()).expect("simulated time is in range")
    }

    fn sleep<'a>(&'a self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn ticker<'a>(&'a self, duration: Duration) -> SystemClockTicker<'a> {
        SystemClockTicker::new(self, duration)
    }
}
