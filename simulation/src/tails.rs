//! The index port the harness's readers use ([`OrderedTails`]): the index itself, except
//! that every subscriber of a stream's tail gets a `watch` channel of its own, fed in the
//! order the subscribers came.
//!
//! Why: the index keeps one `watch` channel per stream, and a tokio `watch` wakes its
//! waiting receivers in an order drawn from tokio's own generator (each `changed()` waits on
//! one of eight `Notify`s picked at random, and a send wakes the eight in turn), which only
//! `tokio_unstable` builds can seed. Several followers of one stream would then run, and
//! draw faults from the store, in an order no seed fixes. Through this port only one task
//! waits on each of the index's channels, the stream's relay, which passes every new tail on
//! to the subscribers' channels in subscription order; each of those has one receiver, so
//! which follower runs first follows from the run itself. `server/src/node.rs` gives the
//! reader the index directly: the production path has no relay. What the relay changes is
//! one task hop (no simulated time) between a tail's publication and its followers waking.
//!
//! Key scans (snapshot reads) are handed over a little late, so their point lags the tail
//! as a replica's does, and every run exercises the snapshot's catch-up.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use inlet_core::ids::{Offset, StreamId, TimestampMicros};
use inlet_core::table::TableInfo;
use inlet_index::keys::{ChunkEntry, LakeFileEntry, LakeWatermark, StreamTail};
use inlet_index::{CatalogError, IndexError, LogRead};
use tokio::sync::watch;

/// A [`LogRead`] (the index in process, or over the wire) whose tail subscriptions wake in a
/// fixed order.
pub struct OrderedTails {
    index: Arc<dyn LogRead>,
    relays: Mutex<BTreeMap<StreamId, Arc<Relay>>>,
}

/// One stream's relay: the index's channel and the subscribers' own.
struct Relay {
    /// A receiver of the index's channel, only read (the relay task waits on its own), to
    /// tell the channel apart from one the index made after closing this one.
    upstream: watch::Receiver<StreamTail>,
    /// The subscribers' channels in subscription order; `None` once the index's channel
    /// closed, which closes theirs.
    subscribers: Mutex<Option<Vec<watch::Sender<StreamTail>>>>,
}

/// How long a key scan waits before it is read (simulated time): a few commit groups.
const SCAN_LAG: std::time::Duration = std::time::Duration::from_millis(30);

impl OrderedTails {
    pub fn new(index: Arc<dyn LogRead>) -> Self {
        Self {
            index,
            relays: Mutex::default(),
        }
    }
}

impl fmt::Debug for OrderedTails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderedTails").finish_non_exhaustive()
    }
}

/// Passes every tail the index publishes for a stream on to the relay's subscribers, in
/// their order; closes their channels when the index closes its own.
async fn forward(mut upstream: watch::Receiver<StreamTail>, relay: Arc<Relay>) {
    while upstream.changed().await.is_ok() {
        let tail = *upstream.borrow_and_update();
        let mut subscribers = relay.subscribers.lock().expect("relay lock poisoned");
        if let Some(subscribers) = subscribers.as_mut() {
            // Subscribers that are gone (a read that ended) are dropped here.
            subscribers.retain(|subscriber| !subscriber.is_closed());
            for subscriber in subscribers.iter() {
                subscriber.send_replace(tail);
            }
        }
    }
    *relay.subscribers.lock().expect("relay lock poisoned") = None;
}

#[async_trait::async_trait]
impl LogRead for OrderedTails {
    fn stopped(&self) -> Option<IndexError> {
        self.index.stopped()
    }

    async fn table(&self, database: &str, name: &str) -> Result<Arc<TableInfo>, CatalogError> {
        self.index.table(database, name).await
    }

    async fn tail(&self, stream: StreamId) -> Result<StreamTail, IndexError> {
        self.index.tail(stream).await
    }

    async fn subscribe(&self, stream: StreamId) -> Result<watch::Receiver<StreamTail>, IndexError> {
        // The index's own answer: its errors, and the durable tail as of now.
        let upstream = self.index.subscribe(stream).await?;
        let mut relays = self.relays.lock().expect("relays lock poisoned");
        let relay = match relays.get(&stream) {
            Some(relay) if relay.upstream.same_channel(&upstream) => relay.clone(),
            _ => {
                let created = Arc::new(Relay {
                    upstream: upstream.clone(),
                    subscribers: Mutex::new(Some(Vec::new())),
                });
                relays.insert(stream, created.clone());
                tokio::spawn(forward(upstream.clone(), created.clone()));
                created
            }
        };
        let (sender, receiver) = watch::channel(*upstream.borrow());
        match relay
            .subscribers
            .lock()
            .expect("relay lock poisoned")
            .as_mut()
        {
            Some(subscribers) => subscribers.push(sender),
            // The index closed the channel: so is this one (`sender` dropped).
            None => drop(sender),
        }
        Ok(receiver)
    }

    async fn chunks(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<ChunkEntry>, IndexError> {
        self.index.chunks(stream, from, max).await
    }

    async fn offset_for_timestamp(
        &self,
        stream: StreamId,
        ts: TimestampMicros,
    ) -> Result<Offset, IndexError> {
        self.index.offset_for_timestamp(stream, ts).await
    }

    async fn lake_watermark(&self, stream: StreamId) -> Result<LakeWatermark, IndexError> {
        self.index.lake_watermark(stream).await
    }

    async fn lake_files(
        &self,
        stream: StreamId,
        from: Offset,
        max: usize,
    ) -> Result<Vec<LakeFileEntry>, IndexError> {
        self.index.lake_files(stream, from, max).await
    }

    async fn lookup(
        &self,
        stream: StreamId,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<inlet_index::pk::KeyState>>, IndexError> {
        self.index.lookup(stream, keys).await
    }

    async fn lookup_prefix(
        &self,
        stream: StreamId,
        prefix: &[u8],
        max: usize,
    ) -> Result<Vec<inlet_index::pk::KeyState>, IndexError> {
        self.index.lookup_prefix(stream, prefix, max).await
    }

    async fn change_record(
        &self,
        stream: StreamId,
        end: Offset,
    ) -> Result<Option<inlet_index::pk::ChangeRecord>, IndexError> {
        self.index.change_record(stream, end).await
    }

    /// The index's scan, handed over [`SCAN_LAG`] later: its point is then behind the
    /// commits made meanwhile, as a reader process's replica lags the owner, so snapshot
    /// reads replay the changelog above the scan (`inlet_reader`'s catch-up) in every run.
    async fn scan_keys(&self, stream: StreamId) -> Result<inlet_index::KeyScan, IndexError> {
        let scan = self.index.scan_keys(stream).await?;
        tokio::time::sleep(SCAN_LAG).await;
        Ok(scan)
    }
}
