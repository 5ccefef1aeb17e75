//! Writer settings with their trade-offs and defaults.

use std::time::Duration;

/// How a writer batches and bounds memory.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// How long the first row of a flush may wait for more rows. Lower = lower ack
    /// latency, more PUTs (5 ms ≈ 17 M PUTs/day per busy writer; 200 ms ≈ 430 k).
    /// Default 5 ms, suited to a local store; use 100-250 ms on S3.
    pub linger: Duration,
    /// Flush early once this many bytes are buffered. Larger = fewer, bigger objects.
    /// Default 8 MiB.
    pub flush_bytes: usize,
    /// Most bytes held by appends not yet acknowledged (buffered, uploading or
    /// committing). Producers wait above it. Default 256 MiB.
    pub max_buffered_bytes: usize,
    /// How long an append waits for buffer space before failing as overloaded.
    /// Default 10 s.
    pub overload_timeout: Duration,
    /// WAL uploads in flight at once; more hides PUT latency on S3. Default 4.
    pub max_inflight_uploads: usize,
    /// Attempts per WAL upload before its appends fail. Default 3.
    pub upload_attempts: u32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            linger: Duration::from_millis(5),
            flush_bytes: 8 * 1024 * 1024,
            max_buffered_bytes: 256 * 1024 * 1024,
            overload_timeout: Duration::from_secs(10),
            max_inflight_uploads: 4,
            upload_attempts: 3,
        }
    }
}
