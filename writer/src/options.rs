//! Writer settings with their trade-offs and defaults. These structs are the settings
//! themselves: `inlet serve` loads them from its file, `INLET_WRITER_*` and flags (section
//! `[writer]`), so a field added here is a setting with no second copy to keep in step.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::{Deserialize, Serialize};

/// How a writer batches, bounds memory and retries WAL uploads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterOptions {
    /// How long the first row of a flush may wait for more rows. Lower = lower ack
    /// latency, more PUTs (5 ms ≈ 17 M PUTs/day per busy writer; 200 ms ≈ 430 k).
    /// Default 5 ms, suited to a local store; use 100-250 ms on S3.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Flush early once this many bytes are buffered. Larger = fewer, bigger objects.
    /// Default 8 MiB.
    pub flush_bytes: usize,
    /// Most bytes held by appends not yet acknowledged (buffered, uploading or
    /// committing). Producers wait above it. Default 256 MiB.
    pub max_buffered_bytes: usize,
    /// How long an append waits for buffer space before failing as overloaded.
    /// Default 10 s.
    #[serde(with = "humantime_serde")]
    pub overload_timeout: Duration,
    /// WAL uploads in flight at once; more hides PUT latency on S3. Default 4.
    pub max_inflight_uploads: usize,
    /// Attempts per WAL upload (the first try included) before its appends fail. Only
    /// transient errors (5xx, throttling, timeouts, connection resets) are retried; a
    /// refused request (permissions, a name that exists before any attempt of ours could
    /// have written it) fails at once. More = rides out longer bursts of errors, at the cost
    /// of PUTs and of ack latency for every append in the flush. Default 5.
    pub upload_attempts: u32,
    /// Most time one WAL upload may take, attempts and backoff included; an attempt still
    /// running at the deadline is abandoned (the object it may leave is never referenced:
    /// garbage, not data). This is what turns a dead or hanging store into a clear error
    /// for the producers instead of an endless wait; the S3 client's own retries run
    /// inside it. Shorter = faster failure, fewer slow-but-healthy PUTs survive. Default
    /// 10 s.
    #[serde(with = "humantime_serde")]
    pub upload_timeout: Duration,
    /// Backoff before the first retry of a WAL upload; it doubles per retry up to
    /// `upload_max_backoff`. Each sleep is that value plus a random share of it again
    /// (jitter seeded from the injected id generator), so writers that failed together do
    /// not retry together. Shorter = faster recovery from a blip, more pressure on a store
    /// that is throttling. Default 50 ms.
    #[serde(with = "humantime_serde")]
    pub upload_min_backoff: Duration,
    /// Longest backoff between two attempts of a WAL upload. Default 1 s.
    #[serde(with = "humantime_serde")]
    pub upload_max_backoff: Duration,
    /// How long an append waits for its commit to become durable in the index. Past it the
    /// client gets "outcome unknown" (Unavailable) instead of waiting forever on an index
    /// whose store is down; the commit may still land later, which an idempotent producer's
    /// resend resolves. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub commit_timeout: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            linger: Duration::from_millis(5),
            flush_bytes: 8 * 1024 * 1024,
            max_buffered_bytes: 256 * 1024 * 1024,
            overload_timeout: Duration::from_secs(10),
            max_inflight_uploads: 4,
            upload_attempts: 5,
            upload_timeout: Duration::from_secs(10),
            upload_min_backoff: Duration::from_millis(50),
            upload_max_backoff: Duration::from_secs(1),
            commit_timeout: Duration::from_secs(30),
        }
    }
}

impl WriterOptions {
    /// How WAL uploads retry, taken from these options.
    pub fn upload_retry(&self) -> UploadRetry {
        UploadRetry {
            attempts: self.upload_attempts.max(1),
            timeout: self.upload_timeout,
            min_backoff: self.upload_min_backoff,
            max_backoff: self.upload_max_backoff.max(self.upload_min_backoff),
        }
    }
}

/// The retry policy of one WAL upload (see the `upload_*` fields of [`WriterOptions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadRetry {
    /// Attempts, the first included; at least 1.
    pub attempts: u32,
    /// Deadline of the whole upload.
    pub timeout: Duration,
    /// Backoff before the first retry.
    pub min_backoff: Duration,
    /// Cap of the doubling backoff.
    pub max_backoff: Duration,
}

impl Default for UploadRetry {
    fn default() -> Self {
        WriterOptions::default().upload_retry()
    }
}

impl UploadRetry {
    /// The sleeps between the attempts of one upload, at most `attempts - 1` of them: an
    /// exponential schedule from `min_backoff`, doubling up to `max_backoff`, each sleep
    /// jittered by up to its own length again. `backon` computes it; the jitter is seeded with
    /// `seed` (drawn from the injected id generator), so a seed replays the same sleeps.
    pub fn delays(&self, seed: u64) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(2.0)
            .with_max_times(self.attempts.saturating_sub(1) as usize)
            .with_jitter()
            .with_jitter_seed(seed)
            .build()
    }
}
