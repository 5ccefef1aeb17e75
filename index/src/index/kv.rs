//! The two ways to read the index's SlateDB database: the owner's `Db` and a replica's
//! read-only `DbReader` (`crate::replica`). Reads of records (tails, watermarks, the catalog,
//! listings) are written once against [`KvRead`] and work on both.

use slatedb::config::{DurabilityLevel, ScanOptions};
use slatedb::{Db, DbIterator, DbReader};

use super::{DURABLE_READ, INDEX_READ, index_scan};

/// Point reads and range scans, with the index's read options.
pub(crate) trait KvRead: Send + Sync {
    fn read(
        &self,
        key: Vec<u8>,
    ) -> impl Future<Output = Result<Option<bytes::Bytes>, slatedb::Error>> + Send;
    fn range(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
    ) -> impl Future<Output = Result<DbIterator, slatedb::Error>> + Send;
    /// A range scan of what is durable in the store only (see `read_durable`).
    fn range_durable(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
    ) -> impl Future<Output = Result<DbIterator, slatedb::Error>> + Send;
    /// A point read of what is durable in the store only: lookups of key state, which must
    /// never show a row whose commit could still fail.
    fn read_durable(
        &self,
        key: Vec<u8>,
    ) -> impl Future<Output = Result<Option<bytes::Bytes>, slatedb::Error>> + Send;
}

impl KvRead for Db {
    async fn read(&self, key: Vec<u8>) -> Result<Option<bytes::Bytes>, slatedb::Error> {
        self.get_with_options(key, &INDEX_READ).await
    }

    async fn read_durable(&self, key: Vec<u8>) -> Result<Option<bytes::Bytes>, slatedb::Error> {
        self.get_with_options(key, &DURABLE_READ).await
    }

    async fn range_durable(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
    ) -> Result<DbIterator, slatedb::Error> {
        let options = ScanOptions {
            durability_filter: DurabilityLevel::Remote,
            ..index_scan()
        };
        self.scan_with_options(start..end, &options).await
    }

    async fn range(&self, start: Vec<u8>, end: Vec<u8>) -> Result<DbIterator, slatedb::Error> {
        self.scan_with_options(start..end, &index_scan()).await
    }
}

impl KvRead for DbReader {
    async fn read(&self, key: Vec<u8>) -> Result<Option<bytes::Bytes>, slatedb::Error> {
        self.get_with_options(key, &INDEX_READ).await
    }

    /// A replica only ever sees what the owner made durable.
    async fn read_durable(&self, key: Vec<u8>) -> Result<Option<bytes::Bytes>, slatedb::Error> {
        self.get_with_options(key, &INDEX_READ).await
    }

    async fn range_durable(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
    ) -> Result<DbIterator, slatedb::Error> {
        self.scan_with_options(start..end, &index_scan()).await
    }

    async fn range(&self, start: Vec<u8>, end: Vec<u8>) -> Result<DbIterator, slatedb::Error> {
        self.scan_with_options(start..end, &index_scan()).await
    }
}

/// Up to `max` entries of the range `start..end`, decoded.
pub(crate) async fn list<T, E>(
    db: &impl KvRead,
    (start, end): (Vec<u8>, Vec<u8>),
    max: usize,
    decode: fn(&[u8]) -> Result<T, E>,
) -> Result<Vec<T>, crate::IndexError>
where
    crate::IndexError: From<E>,
{
    let mut iter = db.range(start, end).await?;
    let mut out = Vec::new();
    while out.len() < max {
        match iter.next().await? {
            Some(kv) => out.push(decode(&kv.value)?),
            None => break,
        }
    }
    Ok(out)
}

/// The first offset of `stream` committed at or after `ts` per the time index, clamped to
/// `tail`'s readable range; the tail if none is.
pub(crate) async fn offset_at(
    db: &impl KvRead,
    stream: inlet_core::ids::StreamId,
    ts: inlet_core::ids::TimestampMicros,
    tail: crate::StreamTail,
) -> Result<inlet_core::ids::Offset, crate::IndexError> {
    let (start, end) = crate::keys::time_index_from(stream, ts);
    let mut iter = db.range(start, end).await?;
    match iter.next().await? {
        Some(kv) => Ok(inlet_core::ids::Offset(crate::keys::decode_u64(&kv.value)?)
            .max(tail.earliest_offset)
            .min(tail.next_offset)),
        None => Ok(tail.next_offset),
    }
}

/// The change record of the primary-key chunk of `stream` ending at `end`.
pub(crate) async fn change_record(
    db: &impl KvRead,
    stream: inlet_core::ids::StreamId,
    end: inlet_core::ids::Offset,
) -> Result<Option<crate::pk::ChangeRecord>, crate::IndexError> {
    match db.read(crate::pk::change_key(stream, end)).await? {
        Some(bytes) => Ok(Some(crate::pk::ChangeRecord::decode(&bytes)?)),
        None => Ok(None),
    }
}

/// The key states of `keys` (encoded primary keys of `stream`), read at once, in order.
pub(crate) async fn key_states(
    db: &impl KvRead,
    stream: inlet_core::ids::StreamId,
    keys: &[Vec<u8>],
) -> Result<Vec<Option<crate::pk::KeyState>>, crate::IndexError> {
    for key in keys {
        crate::pk::check_key(key)?;
    }
    futures::future::try_join_all(keys.iter().map(|key| async move {
        match db.read_durable(crate::pk::state_key(stream, key)).await? {
            Some(bytes) => Ok(Some(crate::pk::KeyState::decode(&bytes)?)),
            None => Ok(None),
        }
    }))
    .await
}

/// Where the current rows of `keys` (encoded primary keys of `stream`) are in the lake, read
/// at once, in order; `None` for a key with no row in the lake.
pub(crate) async fn lake_rows(
    db: &impl KvRead,
    stream: inlet_core::ids::StreamId,
    keys: &[Vec<u8>],
) -> Result<Vec<Option<crate::pk::LakeRow>>, crate::IndexError> {
    for key in keys {
        crate::pk::check_key(key)?;
    }
    futures::future::try_join_all(keys.iter().map(|key| async move {
        match db.read(crate::pk::lake_row_key(stream, key)).await? {
            Some(bytes) => Ok(Some(crate::pk::LakeRow::decode(&bytes)?)),
            None => Ok(None),
        }
    }))
    .await
}

/// Up to `max` key states of `stream` whose key starts with `prefix`, in key order, durable
/// ones only.
pub(crate) async fn key_states_with_prefix(
    db: &impl KvRead,
    stream: inlet_core::ids::StreamId,
    prefix: &[u8],
    max: usize,
) -> Result<Vec<crate::pk::KeyState>, crate::IndexError> {
    crate::pk::check_key_prefix(prefix)?;
    let (start, end) = crate::pk::prefix_range(stream, prefix);
    let mut iter = db.range_durable(start, end).await?;
    let mut out = Vec::new();
    while out.len() < max {
        match iter.next().await? {
            Some(kv) => out.push(crate::pk::KeyState::decode(&kv.value)?),
            None => break,
        }
    }
    Ok(out)
}

/// Every key state of `stream` from one point of `db` (durable states only), with the
/// stream's durable tails read just before and after that point (`crate::ports::KeyScan`).
pub(crate) async fn scan_key_states(
    db: &impl KvRead,
    stream: inlet_core::ids::StreamId,
) -> Result<crate::ports::KeyScan, crate::IndexError> {
    // The iterator is one point of the database; the durable tail only moves forward, so the
    // tail read before it is at or below that point and the one read after at or above.
    let low = super::read_durable_tail(db, stream).await?.next_offset;
    let (start, end) = crate::pk::prefix_range(stream, &[]);
    let prefix_len = start.len();
    let iter = db.range_durable(start, end).await?;
    let high = super::read_durable_tail(db, stream).await?.next_offset;
    let pages = futures::stream::try_unfold(Some(iter), move |iter| async move {
        let Some(mut iter) = iter else {
            return Ok(None);
        };
        let mut page = Vec::new();
        let mut bytes = 0;
        while page.len() < crate::ports::KEY_SCAN_PAGE_ENTRIES
            && bytes < crate::ports::KEY_SCAN_PAGE_BYTES
        {
            let Some(kv) = iter.next().await? else {
                return Ok((!page.is_empty()).then_some((page, None)));
            };
            let key = kv.key[prefix_len..].to_vec();
            crate::pk::check_key(&key)?;
            bytes += key.len() + kv.value.len();
            page.push(crate::ports::ScannedKey {
                key,
                state: crate::pk::KeyState::decode(&kv.value)?,
            });
        }
        Ok::<_, crate::IndexError>(Some((page, Some(iter))))
    });
    Ok(crate::ports::KeyScan {
        low,
        high,
        pages: Box::pin(pages),
    })
}
