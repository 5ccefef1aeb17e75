//! WAL garbage collection: deletes WAL objects no chunk entry points into any more.
//!
//! A WAL object becomes garbage once every chunk in it is below its stream's lake watermark
//! (the lake commit removed the chunk entries), was expired by WAL retention (the index
//! owner removed them, `inlet_index::Index::expire_wal`), or belonged to a commit that never
//! happened.
//! Two graces keep deletion behind everything that might still need the object:
//!
//! - **upload grace**: an object younger than this (by its `last_modified`) may be uploaded
//!   and not committed yet, so it is not even considered;
//! - **read grace**: a reader that looked a chunk up just before it was trimmed may still GET
//!   the object, so an object is deleted only after it has been seen unreferenced for this
//!   long.
//!
//! "Seen unreferenced since" lives in memory: a restart forgets it and only delays deletion.
//! An object seen live again (impossible past the upload grace, but cheap to honour) is
//! forgotten. Each run: one scan of the chunk index ([`Index::live_wal_objects`], taken
//! *before* the listing, so an object committed in between is young and skipped), one LIST of
//! `wal/`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::TryStreamExt;
use inlet_core::clock::Env;
use inlet_core::ids::{TimestampMicros, WalObjectId};
use inlet_index::LakeCatalog;
use slatedb::object_store::path::Path as ObjectPath;
use slatedb::object_store::{ObjectStore, ObjectStoreExt};

use crate::error::WalGcError;
use crate::options::CompactorOptions;

/// The folder of the store that holds WAL objects.
const WAL_DIR: &str = "wal";

/// What one garbage collection run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalGcReport {
    /// WAL objects listed.
    pub listed: usize,
    /// Objects some chunk entry still points into.
    pub live: usize,
    /// Unreferenced objects younger than the upload grace, not considered.
    pub young: usize,
    /// Unreferenced objects waiting out the read grace.
    pub waiting: usize,
    /// Objects deleted by this run.
    pub deleted: usize,
}

/// The collector's memory: when each unreferenced object was first seen unreferenced.
#[derive(Debug, Default)]
pub(crate) struct WalGc {
    unreferenced_since: BTreeMap<WalObjectId, TimestampMicros>,
}

impl WalGc {
    /// One run; see the module docs.
    pub(crate) async fn run(
        &mut self,
        index: &dyn LakeCatalog,
        store: &Arc<dyn ObjectStore>,
        options: &CompactorOptions,
        env: &Env,
    ) -> Result<WalGcReport, WalGcError> {
        let live: BTreeSet<WalObjectId> = index.live_wal_objects().await?;
        let prefix = ObjectPath::from(WAL_DIR);
        let listed: Vec<_> =
            store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| WalGcError::Storage {
                    op: "list",
                    path: WAL_DIR.to_owned(),
                    message: e.to_string(),
                })?;
        let now = env.clock.now().0;
        let micros = |d: std::time::Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        let (upload_grace, read_grace) = (
            micros(options.wal_upload_grace),
            micros(options.wal_read_grace),
        );
        let mut report = WalGcReport {
            listed: listed.len(),
            ..WalGcReport::default()
        };
        let mut seen = BTreeSet::new();
        for object in listed {
            // Only objects named by the writer; anything else under `wal/` is not ours.
            let Some(id) = WalObjectId::from_path(object.location.as_ref()) else {
                continue;
            };
            seen.insert(id);
            if live.contains(&id) {
                report.live += 1;
                self.unreferenced_since.remove(&id);
                continue;
            }
            if now.saturating_sub(object.last_modified.timestamp_micros()) < upload_grace {
                report.young += 1;
                continue;
            }
            let since = *self
                .unreferenced_since
                .entry(id)
                .or_insert(TimestampMicros(now));
            if now.saturating_sub(since.0) < read_grace {
                report.waiting += 1;
                continue;
            }
            match store.delete(&object.location).await {
                Ok(()) | Err(slatedb::object_store::Error::NotFound { .. }) => {
                    self.unreferenced_since.remove(&id);
                    report.deleted += 1;
                }
                Err(error) => {
                    return Err(WalGcError::Storage {
                        op: "delete",
                        path: object.location.to_string(),
                        message: error.to_string(),
                    });
                }
            }
        }
        // Objects gone meanwhile (deleted by another compactor) are forgotten.
        self.unreferenced_since.retain(|id, _| seen.contains(id));
        if report.deleted > 0 {
            tracing::info!(
                deleted = report.deleted,
                waiting = report.waiting,
                "wal objects garbage collected"
            );
        }
        Ok(report)
    }
}
