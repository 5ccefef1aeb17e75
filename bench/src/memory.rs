//! Peak resident memory of this process (node and benchmark clients together), from
//! `/proc/self/status` (`VmHWM`). Where the kernel allows it (writing `5` to
//! `/proc/self/clear_refs`), the peak is reset after each phase, so each phase reports its
//! own peak. Elsewhere than Linux the figures are absent.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub(crate) struct MemoryReport {
    /// The highest resident set size of the whole run, in bytes.
    pub(crate) peak_rss_bytes: Option<u64>,
    /// Resident set size at the end, in bytes.
    pub(crate) rss_bytes: Option<u64>,
    /// Whether each phase's peak is its own (else a peak includes the phases before it).
    pub(crate) peak_reset_per_phase: bool,
    pub(crate) phases: Vec<PhasePeak>,
    pub(crate) note: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct PhasePeak {
    pub(crate) phase: String,
    pub(crate) peak_rss_bytes: Option<u64>,
}

pub(crate) struct MemoryProbe {
    resettable: bool,
    phases: Vec<PhasePeak>,
    note: &'static str,
}

impl MemoryProbe {
    /// Starts measuring: the peak so far (process start-up) is dropped if it can be.
    pub(crate) async fn start(note: &'static str) -> Self {
        Self {
            resettable: reset_peak().await,
            phases: Vec::new(),
            note,
        }
    }

    /// Records the peak of the phase that just ended and starts the next one.
    pub(crate) async fn phase_done(&mut self, phase: impl Into<String>) {
        let peak = status_bytes("VmHWM").await;
        self.phases.push(PhasePeak {
            phase: phase.into(),
            peak_rss_bytes: peak,
        });
        if self.resettable {
            reset_peak().await;
        }
    }

    pub(crate) async fn finish(self) -> MemoryReport {
        let now = status_bytes("VmHWM").await;
        let peak = self
            .phases
            .iter()
            .filter_map(|p| p.peak_rss_bytes)
            .chain(now)
            .max();
        MemoryReport {
            peak_rss_bytes: peak,
            rss_bytes: status_bytes("VmRSS").await,
            peak_reset_per_phase: self.resettable,
            phases: self.phases,
            note: self.note,
        }
    }
}

/// A `kB` field of `/proc/self/status`, in bytes.
async fn status_bytes(field: &str) -> Option<u64> {
    let status = tokio::fs::read_to_string("/proc/self/status").await.ok()?;
    parse_status(&status, field)
}

fn parse_status(status: &str, field: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|line| line.split(':').next() == Some(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the kernel's peak RSS of this process; false where that is not possible.
async fn reset_peak() -> bool {
    tokio::fs::write("/proc/self/clear_refs", "5").await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kilobyte_fields() {
        let status = "Name:\tinlet\nVmHWM:\t  123456 kB\nVmRSS:\t   1000 kB\n";
        assert_eq!(parse_status(status, "VmHWM"), Some(123_456 * 1024));
        assert_eq!(parse_status(status, "VmRSS"), Some(1_024_000));
        assert_eq!(parse_status(status, "VmSwap"), None);
    }
}
