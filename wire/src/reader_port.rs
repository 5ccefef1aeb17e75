//! The log-read port of a reader that does not own the index: history from the index replica
//! (SlateDB's `DbReader` on the same store, `inlet_index::replica`), tails pushed by the owner
//! (`WatchStream`), and the owner asked only for what the replica has not caught up with yet.
//! So readers add no load to the owner for the history they serve, and keep serving it while
//! no owner runs.
//!
//! The replica lags the owner by up to its poll interval. A listing that ends before the
//! tail this reader knows (pushed, or read) is completed from the owner; if the owner does
//! not answer, the replica is read again until it has caught up (it has everything that was
//! durable), for up to [`CATCH_UP`]; after that the listing fails as unavailable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inlet_core::ids::{Offset, StreamId, TimestampMicros};
use inlet_core::table::TableInfo;
use inlet_index::pk::{ChangeRecord, KeyState};
use inlet_index::{
    CatalogError, ChunkEntry, IndexError, IndexReplica, KeyScan, LakeCatalog, LakeFileEntry,
    LakeWatermark, LogRead, ReplicaOptions, StreamTail,
};
use slatedb::object_store::ObjectStore;
use tokio::sync::{OnceCell, watch};

use crate::client::RemoteIndex;

/// How long a listing waits for the replica to catch up with a tail it must reach, while the
/// owner does not answer. Longer than the replica's poll interval by a wide margin.
pub const CATCH_UP: Duration = Duration::from_secs(10);

/// Pause between reads of a replica that is catching up.
const CATCH_UP_PAUSE: Duration = Duration::from_millis(100);

/// A reader's [`LogRead`]: replica first, owner for the rest.
#[derive(Debug)]
pub struct ReaderPort {
    /// The owner, asked without retrying (there is the replica to fall back on).
    owner: RemoteIndex,
    store: Arc<dyn ObjectStore>,
    options: ReplicaOptions,
    /// Opened on first use: it cannot open before an owner created the index.
    replica: OnceCell<IndexReplica>,
    /// The newest tail this reader learned per stream (pushed or read): listings reach it.
    tails: Mutex<HashMap<StreamId, StreamTail>>,
    /// Streams this reader keeps following once it read them, so their tails are known from
    /// the owner's pushes without asking it per fetch (one push per commit per stream read
    /// here, instead of one call per fetch per bucket).
    followed: Mutex<HashMap<StreamId, watch::Receiver<StreamTail>>>,
}

impl ReaderPort {
    pub fn new(owner: &RemoteIndex, store: Arc<dyn ObjectStore>, options: ReplicaOptions) -> Self {
        Self {
            owner: owner.without_retry(),
            store,
            options,
            replica: OnceCell::new(),
            tails: Mutex::new(HashMap::new()),
            followed: Mutex::new(HashMap::new()),
        }
    }

    async fn replica(&self) -> Result<&IndexReplica, IndexError> {
        self.replica
            .get_or_try_init(|| IndexReplica::open(self.store.clone(), &self.options))
            .await
    }

    /// Stops the replica's polling.
    pub async fn close(&self) -> Result<(), IndexError> {
        match self.replica.get() {
            Some(replica) => replica.close().await,
            None => Ok(()),
        }
    }

    /// The replica, if it has caught up with the owner's current tail of `stream` (so it
    /// holds every acknowledged commit of it: its reads only move forward), or if the owner
    /// does not answer (then it is the best there is).
    async fn fresh_replica(&self, stream: StreamId) -> Option<&IndexReplica> {
        let required = LakeCatalog::stream_state(&self.owner, stream).await.ok();
        let replica = self.replica().await.ok()?;
        let caught_up = match required {
            Some((tail, _)) => replica
                .tail(stream)
                .await
                .is_ok_and(|seen| seen.next_offset >= tail.next_offset),
            None => true,
        };
        caught_up.then_some(replica)
    }

    fn learned(&self, stream: StreamId, tail: StreamTail) -> StreamTail {
        let mut tails = self.tails.lock().expect("reader tails lock");
        let known = tails.entry(stream).or_insert(tail);
        if tail.next_offset > known.next_offset {
            *known = tail;
        }
        *known
    }

    /// The owner's answer for table `database.name`, or the replica's when the owner does not
    /// answer.
    async fn or_replica_table(
        &self,
        answered: Result<Arc<TableInfo>, CatalogError>,
        database: &str,
        name: &str,
    ) -> Result<Arc<TableInfo>, CatalogError> {
        match answered {
            Err(CatalogError::Index(error)) => {
                tracing::debug!(%error, "table from the replica: the owner does not answer");
                self.replica().await?.table(database, name).await
            }
            answered => answered,
        }
    }

    /// The furthest tail this reader knows of: listings must reach it.
    fn target(&self, stream: StreamId) -> Option<Offset> {
        let pushed = self.owner.known_tail(stream).map(|t| t.next_offset);
        let read = self
            .tails
            .lock()
            .expect("reader tails lock")
            .get(&stream)
            .map(|t| t.next_offset);
        pushed.max(read)
    }
}

#[async_trait::async_trait]
impl LogRead for ReaderPort {
    fn stopped(&self) -> Option<IndexError> {
        LogRead::stopped(&self.owner)
    }

    async fn table(&self, database: &str, name: &str) -> Result<Arc<TableInfo>, CatalogError> {
        let answered = LogRead::table(&self.owner, database, name).await;
        self.or_replica_table(answered, database, name).await
    }

    async fn table_from_owner(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Arc<TableInfo>, CatalogError> {
        let answered = LogRead::table_from_owner(&self.owner, database, name).await;
        self.or_replica_table(answered, database, name).await
    }

    /// The tail as the owner last pushed it (it pushes after every commit, so this lags an
    /// ack by the push's delay, milliseconds); the first read of a stream asks the owner and
    /// keeps following it; with no owner, the replica's.
    async fn tail(&self, stream: StreamId) -> Result<StreamTail, IndexError> {
        let followed = self
            .followed
            .lock()
            .expect("followed lock")
            .get(&stream)
            .map(|tails| *tails.borrow());
        let tail = match followed {
            Some(tail) => tail,
            None => match LogRead::subscribe(&self.owner, stream).await {
                Ok(tails) => {
                    let tail = *tails.borrow();
                    self.followed
                        .lock()
                        .expect("followed lock")
                        .insert(stream, tails);
                    tail
                }
                Err(_) => self.replica().await?.tail(stream).await?,
            },
        };
        Ok(self.learned(stream, tail))
    }

    async fn subscribe(&self, stream: StreamId) -> Result<watch::Receiver<StreamTail>, IndexError> {
        match LogRead::subscribe(&self.owner, stream).await {
            Ok(receiver) => Ok(receiver),
            Err(_) => {
                let tail = self.replica().await?.tail(stream).await?;
                Ok(self.owner.subscribe_at(stream, self.learned(stream, tail)))
            }
        }
    }

    async fn chunks(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<ChunkEntry>, IndexError> {
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        loop {
            // `None`: the replica could not answer (not open yet, or a file the owner's GC
            // removed under its view); the owner has the answer.
            let listed = match self.replica().await {
                Ok(replica) => replica.chunks(stream, from, max).await.ok(),
                Err(_) => None,
            };
            let complete = listed.is_some();
            let mut page = listed.unwrap_or_default();
            let end = page.last().map_or(from, ChunkEntry::end_offset);
            let behind = self.target(stream).is_some_and(|target| end < target);
            if page.len() == max || (complete && !behind) {
                return Ok(page);
            }
            match LogRead::chunks(&self.owner, stream, end, max - page.len()).await {
                Ok(rest) => {
                    page.extend(rest);
                    return Ok(page);
                }
                // Unavailable, not a short listing: the reader would report the missing
                // entries as a gap in the index (corruption) when they are only out of reach.
                Err(error) if tokio::time::Instant::now() >= deadline => return Err(error),
                Err(_) => tokio::time::sleep(CATCH_UP_PAUSE).await,
            }
        }
    }

    async fn offset_for_timestamp(
        &self,
        stream: StreamId,
        ts: TimestampMicros,
    ) -> Result<Offset, IndexError> {
        match LogRead::offset_for_timestamp(&self.owner, stream, ts).await {
            Ok(offset) => Ok(offset),
            Err(_) => {
                let replica = self.replica().await?;
                let tail = replica.tail(stream).await?;
                replica.offset_for_timestamp(stream, ts, tail).await
            }
        }
    }

    async fn lake_watermark(&self, stream: StreamId) -> Result<LakeWatermark, IndexError> {
        match self.replica().await {
            Ok(replica) => replica.lake_watermark(stream).await,
            Err(_) => LogRead::lake_watermark(&self.owner, stream).await,
        }
    }

    /// Read-your-writes: the owner's current tail of the stream says what the answer must
    /// include. The replica answers when it has caught up with that tail (its reads only move
    /// forward), else the owner does; with no owner, the replica as it is.
    async fn lookup(
        &self,
        stream: StreamId,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<KeyState>>, IndexError> {
        if let Some(replica) = self.fresh_replica(stream).await
            && let Ok(states) = replica.lookup(stream, keys).await
        {
            return Ok(states);
        }
        LogRead::lookup(&self.owner, stream, keys).await
    }

    /// As `lookup`: the replica when it has caught up, else the owner.
    async fn lookup_prefix(
        &self,
        stream: StreamId,
        prefix: &[u8],
        max: usize,
    ) -> Result<Vec<KeyState>, IndexError> {
        if let Some(replica) = self.fresh_replica(stream).await
            && let Ok(states) = replica.lookup_prefix(stream, prefix, max).await
        {
            return Ok(states);
        }
        LogRead::lookup_prefix(&self.owner, stream, prefix, max).await
    }

    /// From the replica, which has it whenever it listed the chunk's entry (both are in one
    /// write batch); else (an entry completed from the owner) from the owner.
    async fn change_record(
        &self,
        stream: StreamId,
        end: Offset,
    ) -> Result<Option<ChangeRecord>, IndexError> {
        if let Ok(replica) = self.replica().await
            && let Ok(Some(record)) = replica.change_record(stream, end).await
        {
            return Ok(Some(record));
        }
        LogRead::change_record(&self.owner, stream, end).await
    }

    /// From the replica (no load on the owner for the whole table), which may lag the owner:
    /// the scan's bounds say where it stands, and a snapshot read replays the changelog
    /// above them. Read-your-writes as `lookup`: the owner's tail, read after the scan's
    /// point, is an upper bound of it too, so the snapshot catches up to every acked write.
    /// The owner's scan when the replica cannot open.
    async fn scan_keys(&self, stream: StreamId) -> Result<KeyScan, IndexError> {
        let replica = match self.replica().await {
            Ok(replica) => replica.scan_keys(stream).await.ok(),
            Err(_) => None,
        };
        let Some(mut scan) = replica else {
            return LogRead::scan_keys(&self.owner, stream).await;
        };
        if let Ok((tail, _)) = LakeCatalog::stream_state(&self.owner, stream).await {
            scan.high = scan.high.max(tail.next_offset);
        }
        Ok(scan)
    }

    async fn lake_files(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LakeFileEntry>, IndexError> {
        match self.replica().await {
            Ok(replica) => match replica.lake_files(stream, from, max).await {
                Ok(files) => Ok(files),
                Err(_) => LogRead::lake_files(&self.owner, stream, from, max).await,
            },
            Err(_) => LogRead::lake_files(&self.owner, stream, from, max).await,
        }
    }
}
