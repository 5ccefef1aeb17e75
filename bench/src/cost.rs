//! Object-store requests and bytes of one benchmark phase, by purpose, per GB of data, and
//! what they would cost at S3 Standard request list prices. The prices are assumptions and
//! the report says so; storage (per GB-month) and transfer are not included.

use std::collections::BTreeMap;

use inlet_store::prices::{RequestPrices, S3_STANDARD};
use inlet_store::{Op, Purpose, StoreSnapshot};
use serde::Serialize;

use super::stats::round;

/// The request prices every cost is computed with: the one table in `inlet-store`, which
/// `inlet status` uses too.
pub(crate) const PRICES: RequestPrices = S3_STANDARD;

/// One GB, the unit of "per GB ingested / read": 10^9 bytes.
pub(crate) const GB: f64 = 1e9;

/// What a phase sent to the object store, and its cost per GB of `basis_bytes` (the Arrow
/// IPC bytes ingested, or returned to the reader).
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct StoreUsage {
    pub(crate) basis_bytes: u64,
    pub(crate) requests: u64,
    pub(crate) bytes_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) usd: f64,
    pub(crate) requests_per_gb: Option<f64>,
    pub(crate) usd_per_gb: Option<f64>,
    pub(crate) by_purpose: Vec<PurposeUsage>,
}

/// One purpose's share of a [`StoreUsage`].
#[derive(Clone, Debug, Serialize)]
pub(crate) struct PurposeUsage {
    pub(crate) purpose: &'static str,
    pub(crate) requests: u64,
    pub(crate) bytes_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) usd: f64,
    pub(crate) requests_per_gb: Option<f64>,
    pub(crate) usd_per_gb: Option<f64>,
    /// Requests by operation label (`put`, `get`, `list`, ...).
    pub(crate) ops: BTreeMap<&'static str, u64>,
}

impl StoreUsage {
    /// The usage in `delta` (a snapshot `since` the phase began), per GB of `basis_bytes`.
    pub(crate) fn of(delta: &StoreSnapshot, basis_bytes: u64) -> Self {
        let per_gb = |x: f64| (basis_bytes > 0).then(|| x * GB / basis_bytes as f64);
        let mut by_purpose = Vec::new();
        for purpose in Purpose::ALL {
            let mut ops = BTreeMap::new();
            let mut usd = 0.0;
            for op in Op::ALL {
                let counts = delta.get(purpose, op);
                if counts.requests > 0 {
                    ops.insert(op.label(), counts.requests);
                    usd += counts.requests as f64 * PRICES.per_request(op);
                }
            }
            let counts = delta.purpose(purpose);
            if counts.requests == 0 && counts.bytes_in == 0 && counts.bytes_out == 0 {
                continue;
            }
            by_purpose.push(PurposeUsage {
                purpose: purpose.label(),
                requests: counts.requests,
                bytes_out: counts.bytes_out,
                bytes_in: counts.bytes_in,
                usd: round(usd, 8),
                requests_per_gb: per_gb(counts.requests as f64).map(|x| round(x, 1)),
                usd_per_gb: per_gb(usd).map(|x| round(x, 6)),
                ops,
            });
        }
        let total = delta.total();
        let usd: f64 = by_purpose.iter().map(|p| p.usd).sum();
        Self {
            basis_bytes,
            requests: total.requests,
            bytes_out: total.bytes_out,
            bytes_in: total.bytes_in,
            usd: round(usd, 8),
            requests_per_gb: per_gb(total.requests as f64).map(|x| round(x, 1)),
            usd_per_gb: per_gb(usd).map(|x| round(x, 6)),
            by_purpose,
        }
    }

    /// The share of one purpose, if it sent anything.
    pub(crate) fn purpose(&self, purpose: Purpose) -> Option<&PurposeUsage> {
        self.by_purpose
            .iter()
            .find(|p| p.purpose == purpose.label())
    }

    /// Requests of one purpose (zero if none).
    pub(crate) fn requests(&self, purpose: Purpose) -> u64 {
        self.purpose(purpose).map_or(0, |p| p.requests)
    }

    /// Bytes received for one purpose (zero if none).
    pub(crate) fn bytes_in(&self, purpose: Purpose) -> u64 {
        self.purpose(purpose).map_or(0, |p| p.bytes_in)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use inlet_store::InstrumentedStore;
    use slatedb::object_store::memory::InMemory;
    use slatedb::object_store::path::Path;
    use slatedb::object_store::{ObjectStore, ObjectStoreExt, PutPayload};

    use super::*;

    #[tokio::test]
    async fn counts_by_purpose_and_prices_per_gb() {
        let instrumented = InstrumentedStore::new(InMemory::new());
        let metrics = instrumented.metrics().clone();
        let store: Arc<dyn ObjectStore> = Arc::new(instrumented);
        let before = metrics.snapshot();
        for i in 0..4 {
            let path = Path::from(format!("wal/{i}.wal"));
            store
                .put(&path, PutPayload::from(vec![0u8; 1000]))
                .await
                .expect("put");
            store
                .get(&path)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("body");
        }
        let usage = StoreUsage::of(&metrics.snapshot().since(&before), 4000);
        assert_eq!(usage.requests, 8);
        let put = usage.purpose(Purpose::WalPut).expect("wal puts");
        assert_eq!((put.requests, put.bytes_out), (4, 4000));
        assert_eq!(put.ops.get("put"), Some(&4));
        assert_eq!(usage.bytes_in(Purpose::ChunkGet), 4000);
        // 4 PUTs at $0.005/1000 + 4 GETs at $0.0004/1000 for 4000 bytes: per GB x 250,000.
        let expected = (4.0 * 0.005 + 4.0 * 0.0004) / 1000.0;
        assert!((usage.usd - expected).abs() < 1e-9);
        assert_eq!(usage.requests_per_gb, Some(2_000_000.0));
        assert!((usage.usd_per_gb.expect("basis") - expected * 250_000.0).abs() < 1e-6);
        assert!(
            StoreUsage::of(&metrics.snapshot().since(&before), 0)
                .usd_per_gb
                .is_none()
        );
    }
}
