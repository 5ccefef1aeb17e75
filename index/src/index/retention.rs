//! WAL retention of log tables that are not tiered: their oldest chunks expire by age
//! (`retention`) and by each bucket's WAL bytes (`retention.bytes`).
//!
//! The sequencer decides and applies an expiry in one step, from the table's options as
//! they are now and its own clock, so a compactor that asks with a stale view of the table
//! (an ALTER that lengthened retention a moment ago) expires nothing the table still keeps.
//! Per bucket it walks the chunk index from the earliest offset and expires leading chunks
//! while the chunk was committed before `now - retention` or the bucket's newer chunks alone
//! hold at least `retention.bytes` (so, as with Kafka's `retention.bytes`, a bucket keeps at
//! least the bound, and at most one chunk more). Whole chunks go: the bucket's earliest offset moves to the
//! end of the last expired chunk, and the chunk and time-index entries and the tail's byte
//! count change in the same durable batch. The WAL objects those chunks were in are then
//! garbage to the WAL collector once nothing else points into them.
//!
//! A lake table's rows expire from the lake instead (`lake.rs`, the compactor's rounds), and
//! a primary-key table's never do.

use std::collections::{BTreeSet, HashMap};

use inlet_core::ids::{TableId, TimestampMicros, WalObjectId};
use slatedb::WriteBatch;
use tokio::sync::oneshot;

use super::{Command, Index, Sequencer, index_scan, table_streams};
use crate::error::IndexError;
use crate::keys::{self, ChunkEntry, chunk_key, tail_key, time_index_key};

/// Most chunks one expiry removes, so one call is one bounded write batch and holds the
/// sequencer for a bounded time; [`WalExpired::more`] says when to call again.
pub const MAX_CHUNKS_EXPIRED_PER_CALL: usize = 10_000;

/// What one WAL expiry of a table did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalExpired {
    /// Chunk entries removed.
    pub chunks: usize,
    /// Their bytes.
    pub bytes: u64,
    /// The WAL objects they were in: candidates for garbage collection.
    pub objects: BTreeSet<WalObjectId>,
    /// The call stopped at [`MAX_CHUNKS_EXPIRED_PER_CALL`]: more may be due.
    pub more: bool,
}

pub(super) type RetentionReply = oneshot::Sender<Result<WalExpired, IndexError>>;

impl Index {
    /// Expires the WAL chunks of `table` its retention options no longer keep (see the
    /// module docs). Nothing for a table that is gone, tiered, keyed or keeps everything.
    pub async fn expire_wal(&self, table: TableId) -> Result<WalExpired, IndexError> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::Retention { table, reply }).await?;
        receiver.await.map_err(|_| self.sequencer_gone())?
    }
}

impl Sequencer {
    pub(super) async fn expire_wal(&mut self, table: TableId) -> Result<WalExpired, IndexError> {
        let Some(info) = self.shared.catalog().tables.get(&table).cloned() else {
            return Ok(WalExpired::default());
        };
        // A table's stored options parsed when it was created or altered.
        let options = info.options().map_err(|error| {
            IndexError::Storage(format!(
                "options of table {} do not parse: {error}",
                info.qualified_name()
            ))
        })?;
        if info.is_primary_key_table()
            || options.lake_enabled
            || (options.retention.is_none() && options.retention_bytes.is_none())
        {
            return Ok(WalExpired::default());
        }
        let now = self.shared.env.clock.now();
        let before = options.retention.map(|retention| {
            let micros = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
            TimestampMicros(now.0.saturating_sub(micros))
        });
        let max_bytes = options.retention_bytes;

        let mut batch = WriteBatch::new();
        let mut expired = WalExpired::default();
        let mut tails = HashMap::new();
        for stream in table_streams(&info) {
            let tail = self.tail(stream).await?;
            let (start, end) = keys::chunks_from(stream, tail.earliest_offset);
            let mut iter = self
                .shared
                .db
                .scan_with_options(start..end, &index_scan())
                .await?;
            let mut moved = tail;
            while let Some(kv) = iter.next().await? {
                if expired.chunks == MAX_CHUNKS_EXPIRED_PER_CALL {
                    expired.more = true;
                    break;
                }
                let entry = ChunkEntry::decode(&kv.value)?;
                let too_old = before.is_some_and(|before| entry.commit_ts < before);
                // Only while the newer chunks alone still hold the bound (as Kafka's
                // `retention.bytes`): nothing within the newest `max` bytes ever goes.
                let too_big = max_bytes
                    .is_some_and(|max| moved.wal_bytes.saturating_sub(entry.chunk_len) >= max);
                if !too_old && !too_big {
                    break;
                }
                let end = entry.end_offset();
                batch.delete(chunk_key(stream, end));
                batch.delete(time_index_key(stream, entry.commit_ts, end));
                moved.earliest_offset = moved.earliest_offset.max(end);
                moved.wal_bytes = moved.wal_bytes.saturating_sub(entry.chunk_len);
                expired.chunks += 1;
                expired.bytes = expired.bytes.saturating_add(entry.chunk_len);
                expired.objects.insert(entry.object);
            }
            if moved != tail {
                batch.put(tail_key(stream), moved.encode());
                tails.insert(stream, moved);
            }
            if expired.more {
                break;
            }
        }
        if expired.chunks == 0 {
            return Ok(expired);
        }
        self.write_durably(batch).await?;
        self.publish(tails);
        tracing::info!(
            table = %info.qualified_name(),
            chunks = expired.chunks,
            bytes = expired.bytes,
            "wal chunks expired by retention"
        );
        Ok(expired)
    }
}
