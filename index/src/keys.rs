//! The SlateDB key layout and the binary value codecs of the hot index records.
//!
//! Every key starts with a one-byte prefix naming its kind. Integers in keys are big-endian
//! so byte order is numeric order; values carry a leading format-version byte. The layout is
//! documented in `docs/index-layout.md`; prefixes and versions are persisted: never renumber.

use inlet_core::ids::{
    Bucket, DatabaseId, Offset, PartitionId, SchemaId, StreamId, TableId, TimestampMicros,
    WalObjectId,
};
use inlet_core::limits::MAX_INDEXED_COLUMN_RANGES;
use inlet_core::wal::ColumnRange;

/// Key prefixes. Persisted: never renumber, never reuse.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPrefix {
    /// `0x01 | database name` → database record (JSON).
    DatabaseByName = 0x01,
    /// `0x02 | database id u64 | table name` → table id u64.
    TableByName = 0x02,
    /// `0x03 | table id u64` → table record (JSON).
    Table = 0x03,
    /// `0x04 | table id u64 | schema id u32` → Arrow IPC schema.
    Schema = 0x04,
    /// `0x05 | counter name` → next id u64.
    Counter = 0x05,
    /// `0x06` → every permission grant of the cluster (JSON, `GrantsRecord`).
    Grants = 0x06,
    /// `0x07 | table id u64 | partition id u32` → partition record (JSON), dropped ones
    /// included (their ids are never given again).
    Partition = 0x07,
    /// `0x10 | stream` → stream tail.
    StreamTail = 0x10,
    /// `0x11 | stream | end offset u64` → chunk entry (end offset is exclusive).
    Chunk = 0x11,
    /// `0x12 | stream | commit timestamp (sign-flipped i64) | end offset u64` → base offset u64.
    TimeIndex = 0x12,
    /// `0x20 | producer id u64 | table id u64` → idempotent-producer state (expires by TTL).
    Producer = 0x20,
    /// `0x30 | table id u64` → lake table record (JSON): Iceberg metadata pointer, lease.
    LakeTable = 0x30,
    /// `0x31 | stream` → lake watermark: offsets below it are in the lake.
    LakeWatermark = 0x31,
    /// `0x32 | stream | end offset u64` → lake file entry (end offset is exclusive).
    LakeFile = 0x32,
    /// `0x40 | stream | primary key` → key state: the key's current row (`crate::pk`).
    PkState = 0x40,
    /// `0x41 | stream | end offset u64` → change record of the primary-key chunk ending there.
    PkChange = 0x41,
    /// `0x42 | stream | primary key` → lake row: the data file and position of the key's
    /// current row in the lake table (`crate::pk::LakeRow`), for position deletes.
    PkLakeRow = 0x42,
}

/// Length of an encoded stream id inside keys.
pub const STREAM_KEY_LEN: usize = 16;

/// The key of the grants record.
pub fn grants_key() -> Vec<u8> {
    vec![KeyPrefix::Grants as u8]
}

pub(crate) fn with_prefix(prefix: KeyPrefix, capacity: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + capacity);
    key.push(prefix as u8);
    key
}

pub(crate) fn push_stream(key: &mut Vec<u8>, stream: StreamId) {
    key.extend_from_slice(&stream.table.0.to_be_bytes());
    key.extend_from_slice(&stream.partition.0.to_be_bytes());
    key.extend_from_slice(&stream.bucket.0.to_be_bytes());
}

/// Maps an i64 onto a u64 with the same order (flips the sign bit).
fn ordered_i64(value: i64) -> u64 {
    (value as u64) ^ (1 << 63)
}

pub fn database_key(name: &str) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::DatabaseByName, name.len());
    key.extend_from_slice(name.as_bytes());
    key
}

/// The range of all database keys.
pub fn database_range() -> (Vec<u8>, Vec<u8>) {
    (
        vec![KeyPrefix::DatabaseByName as u8],
        vec![KeyPrefix::DatabaseByName as u8 + 1],
    )
}

pub fn table_name_key(database: DatabaseId, table: &str) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::TableByName, 8 + table.len());
    key.extend_from_slice(&database.0.to_be_bytes());
    key.extend_from_slice(table.as_bytes());
    key
}

/// The range of all table-name keys of one database.
pub fn table_name_range(database: DatabaseId) -> (Vec<u8>, Vec<u8>) {
    let start = table_name_key(database, "");
    let mut end = with_prefix(KeyPrefix::TableByName, 8);
    match database.0.checked_add(1) {
        Some(next) => end.extend_from_slice(&next.to_be_bytes()),
        None => end[0] += 1,
    }
    (start, end)
}

/// Every key under `prefix` of table `table`: for the prefixes whose keys start with a
/// stream (or, for schemas, a table id), all of the table's entries of that kind.
pub fn table_range(prefix: KeyPrefix, table: TableId) -> (Vec<u8>, Vec<u8>) {
    let mut start = with_prefix(prefix, 8);
    start.extend_from_slice(&table.0.to_be_bytes());
    let mut end = with_prefix(prefix, 8);
    match table.0.checked_add(1) {
        Some(next) => end.extend_from_slice(&next.to_be_bytes()),
        None => end[0] += 1,
    }
    (start, end)
}

/// Every key under `prefix` of one partition of `table`: for the prefixes whose keys start
/// with a stream, all of the partition's entries of that kind; for partition records, its
/// record.
pub fn partition_range(
    prefix: KeyPrefix,
    table: TableId,
    partition: PartitionId,
) -> (Vec<u8>, Vec<u8>) {
    let mut start = with_prefix(prefix, 12);
    start.extend_from_slice(&table.0.to_be_bytes());
    start.extend_from_slice(&partition.0.to_be_bytes());
    let mut end = start.clone();
    // The next partition of the table, or past the table when this is the last id.
    match partition.0.checked_add(1) {
        Some(next) => end[9..13].copy_from_slice(&next.to_be_bytes()),
        None => return (start, table_range(prefix, table).1),
    }
    (start, end)
}

pub fn table_key(table: TableId) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::Table, 8);
    key.extend_from_slice(&table.0.to_be_bytes());
    key
}

pub fn schema_key(table: TableId, schema: SchemaId) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::Schema, 12);
    key.extend_from_slice(&table.0.to_be_bytes());
    key.extend_from_slice(&schema.0.to_be_bytes());
    key
}

pub fn partition_key(table: TableId, partition: PartitionId) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::Partition, 12);
    key.extend_from_slice(&table.0.to_be_bytes());
    key.extend_from_slice(&partition.0.to_be_bytes());
    key
}

/// The table and partition ids of a partition key.
pub fn decode_partition_key(key: &[u8]) -> Result<(TableId, PartitionId), CodecError> {
    let mut reader = Reader::new(key);
    reader.u8()?;
    let table = TableId(reader.u64()?);
    let partition = PartitionId(reader.u32()?);
    reader.finish()?;
    Ok((table, partition))
}

pub fn counter_key(name: &str) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::Counter, name.len());
    key.extend_from_slice(name.as_bytes());
    key
}

pub fn tail_key(stream: StreamId) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::StreamTail, STREAM_KEY_LEN);
    push_stream(&mut key, stream);
    key
}

pub fn chunk_key(stream: StreamId, end_offset: Offset) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::Chunk, STREAM_KEY_LEN + 8);
    push_stream(&mut key, stream);
    key.extend_from_slice(&end_offset.0.to_be_bytes());
    key
}

/// The chunk keys of `stream` whose end offset is greater than `offset`: the first of them
/// is the chunk holding `offset`, if it exists.
pub fn chunks_from(stream: StreamId, offset: Offset) -> (Vec<u8>, Vec<u8>) {
    let start = chunk_key(stream, Offset(offset.0.saturating_add(1)));
    let mut end = with_prefix(KeyPrefix::Chunk, STREAM_KEY_LEN + 9);
    push_stream(&mut end, stream);
    end.extend_from_slice(&[0xFF; 9]);
    (start, end)
}

/// Decodes the end offset from a chunk key.
pub fn decode_chunk_key(key: &[u8]) -> Result<(StreamId, Offset), CodecError> {
    if key.len() != 1 + STREAM_KEY_LEN + 8 || key[0] != KeyPrefix::Chunk as u8 {
        return Err(CodecError::BadKey { len: key.len() });
    }
    let mut r = Reader::new(&key[1..]);
    let stream = r.stream()?;
    Ok((stream, Offset(r.u64()?)))
}

pub fn time_index_key(stream: StreamId, commit_ts: TimestampMicros, end: Offset) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::TimeIndex, STREAM_KEY_LEN + 16);
    push_stream(&mut key, stream);
    key.extend_from_slice(&ordered_i64(commit_ts.0).to_be_bytes());
    key.extend_from_slice(&end.0.to_be_bytes());
    key
}

/// Time-index keys of `stream` at or after `ts`.
pub fn time_index_from(stream: StreamId, ts: TimestampMicros) -> (Vec<u8>, Vec<u8>) {
    let start = time_index_key(stream, ts, Offset(0));
    let mut end = with_prefix(KeyPrefix::TimeIndex, STREAM_KEY_LEN + 17);
    push_stream(&mut end, stream);
    end.extend_from_slice(&[0xFF; 17]);
    (start, end)
}

pub fn producer_key(producer: u64, table: TableId) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::Producer, 16);
    key.extend_from_slice(&producer.to_be_bytes());
    key.extend_from_slice(&table.0.to_be_bytes());
    key
}

/// What one bucket of an idempotent append got, as remembered for retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProducedRange {
    pub partition: PartitionId,
    pub bucket: Bucket,
    pub base_offset: Offset,
    pub row_count: u32,
    pub commit_ts: TimestampMicros,
}

/// The last append of one producer to one table: a retry of it gets these offsets back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerState {
    pub last_sequence: u64,
    /// When the producer last appended; state idle longer than the producer TTL is gone.
    pub last_seen: TimestampMicros,
    pub ranges: Vec<ProducedRange>,
}

impl ProducerState {
    /// Ranges of unpartitioned tables: bucket, base offset, rows, commit time (24 bytes).
    const VERSION_UNPARTITIONED: u8 = 1;
    /// Ranges with their partition first (28 bytes).
    const VERSION_PARTITIONED: u8 = 2;

    pub fn encode(&self) -> Vec<u8> {
        // A state whose ranges are all of partition 0 keeps the first layout, so what
        // unpartitioned tables store does not change.
        let partitioned = self.ranges.iter().any(|r| r.partition != PartitionId(0));
        let range_len = if partitioned { 28 } else { 24 };
        let mut out = Vec::with_capacity(21 + range_len * self.ranges.len());
        out.push(match partitioned {
            true => Self::VERSION_PARTITIONED,
            false => Self::VERSION_UNPARTITIONED,
        });
        out.extend_from_slice(&self.last_sequence.to_be_bytes());
        out.extend_from_slice(&self.last_seen.0.to_be_bytes());
        out.extend_from_slice(&(self.ranges.len() as u32).to_be_bytes());
        for range in &self.ranges {
            if partitioned {
                out.extend_from_slice(&range.partition.0.to_be_bytes());
            }
            out.extend_from_slice(&range.bucket.0.to_be_bytes());
            out.extend_from_slice(&range.base_offset.0.to_be_bytes());
            out.extend_from_slice(&range.row_count.to_be_bytes());
            out.extend_from_slice(&range.commit_ts.0.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        let partitioned = match r.u8()? {
            Self::VERSION_UNPARTITIONED => false,
            Self::VERSION_PARTITIONED => true,
            version => {
                return Err(CodecError::Version {
                    version,
                    supported: Self::VERSION_PARTITIONED,
                });
            }
        };
        let range_len = if partitioned { 28 } else { 24 };
        let last_sequence = r.u64()?;
        let last_seen = TimestampMicros(r.i64()?);
        let count = r.u32()? as usize;
        // Bound the allocation by what is there.
        if count > r.bytes.len() / range_len {
            return Err(CodecError::Truncated {
                needed: count * range_len - r.bytes.len(),
            });
        }
        let mut ranges = Vec::with_capacity(count);
        for _ in 0..count {
            let partition = match partitioned {
                true => PartitionId(r.u32()?),
                false => PartitionId(0),
            };
            ranges.push(ProducedRange {
                partition,
                bucket: Bucket(r.u32()?),
                base_offset: Offset(r.u64()?),
                row_count: r.u32()?,
                commit_ts: TimestampMicros(r.i64()?),
            });
        }
        r.finish()?;
        Ok(Self {
            last_sequence,
            last_seen,
            ranges,
        })
    }
}

/// A value or key that could not be decoded: the index is corrupt or from a newer version.
#[derive(Debug, Clone, thiserror::Error, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum CodecError {
    #[error("index value truncated: needed {needed} more bytes")]
    Truncated { needed: usize },
    #[error("unsupported index value version {version} (this build reads {supported})")]
    Version { version: u8, supported: u8 },
    #[error("malformed index key of {len} bytes")]
    BadKey { len: usize },
    #[error("index value has {extra} trailing bytes")]
    Trailing { extra: usize },
    #[error("malformed index record: {0}")]
    Json(String),
    #[error(
        "index entry lists {count} column ranges (1 to {MAX_INDEXED_COLUMN_RANGES} when listed)"
    )]
    ColumnRanges { count: usize },
    #[error("index entry's offsets overflow: base {base} plus {rows} rows")]
    OffsetOverflow { base: u64, rows: u64 },
}

/// Rejects an entry whose end offset would not fit a u64, so `end_offset` cannot overflow.
fn check_end(base: Offset, rows: u64) -> Result<(), CodecError> {
    match base.0.checked_add(rows) {
        Some(_) => Ok(()),
        None => Err(CodecError::OffsetOverflow { base: base.0, rows }),
    }
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        if self.bytes.len() < N {
            return Err(CodecError::Truncated {
                needed: N - self.bytes.len(),
            });
        }
        let (head, rest) = self.bytes.split_at(N);
        self.bytes = rest;
        let mut out = [0u8; N];
        out.copy_from_slice(head);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take::<1>()?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.take()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    fn u128(&mut self) -> Result<u128, CodecError> {
        Ok(u128::from_be_bytes(self.take()?))
    }
    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        if self.bytes.len() < len {
            return Err(CodecError::Truncated {
                needed: len - self.bytes.len(),
            });
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }
    pub(crate) fn stream(&mut self) -> Result<StreamId, CodecError> {
        Ok(StreamId::new(
            TableId(self.u64()?),
            PartitionId(self.u32()?),
            Bucket(self.u32()?),
        ))
    }
    pub(crate) fn version(&mut self, supported: u8) -> Result<(), CodecError> {
        let version = self.u8()?;
        if version != supported {
            return Err(CodecError::Version { version, supported });
        }
        Ok(())
    }
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }
    pub(crate) fn finish(self) -> Result<(), CodecError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(CodecError::Trailing {
                extra: self.bytes.len(),
            })
        }
    }
}

/// The durable end of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamTail {
    /// Offset the next committed row gets (= number of rows ever committed).
    pub next_offset: Offset,
    /// First offset still readable.
    pub earliest_offset: Offset,
    /// Commit time of the last chunk; commit times never go backwards within a stream.
    pub last_commit_ts: TimestampMicros,
    /// Bytes of the chunks the chunk index holds for the stream: committed, and neither
    /// tiered away nor expired. What size retention bounds. Tails written before it was
    /// kept (value version 1) count only the chunks committed since.
    pub wal_bytes: u64,
}

impl StreamTail {
    pub const EMPTY: StreamTail = StreamTail {
        next_offset: Offset(0),
        earliest_offset: Offset(0),
        last_commit_ts: TimestampMicros(i64::MIN),
        wal_bytes: 0,
    };
    const VERSION: u8 = 2;
    /// Written before [`StreamTail::wal_bytes`] was kept; decodes with `wal_bytes` 0.
    const VERSION_WITHOUT_BYTES: u8 = 1;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(33);
        out.push(Self::VERSION);
        out.extend_from_slice(&self.next_offset.0.to_be_bytes());
        out.extend_from_slice(&self.earliest_offset.0.to_be_bytes());
        out.extend_from_slice(&self.last_commit_ts.0.to_be_bytes());
        out.extend_from_slice(&self.wal_bytes.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        let format = r.u8()?;
        if format != Self::VERSION && format != Self::VERSION_WITHOUT_BYTES {
            return Err(CodecError::Version {
                version: format,
                supported: Self::VERSION,
            });
        }
        let tail = Self {
            next_offset: Offset(r.u64()?),
            earliest_offset: Offset(r.u64()?),
            last_commit_ts: TimestampMicros(r.i64()?),
            wal_bytes: match format {
                Self::VERSION => r.u64()?,
                _ => 0,
            },
        };
        r.finish()?;
        Ok(tail)
    }
}

/// Where one committed chunk lives and which offsets it holds. Keyed by its end offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    pub object: WalObjectId,
    /// Byte offset of the chunk in the object.
    pub chunk_offset: u64,
    /// Length of the chunk (IPC metadata, padding and body).
    pub chunk_len: u64,
    pub meta_len: u32,
    /// Start of the IPC body within the chunk.
    pub body_offset: u32,
    /// crc32c over the whole chunk.
    pub chunk_crc: u32,
    /// crc32c over the chunk's IPC metadata, for reads that GET only some columns.
    pub meta_crc: u32,
    /// Where the object's footer is, for ranged column reads.
    pub footer_offset: u64,
    pub footer_len: u32,
    pub schema_id: SchemaId,
    pub base_offset: Offset,
    pub row_count: u32,
    pub commit_ts: TimestampMicros,
    /// Body byte range and crc of each column, in schema order, so a column-pruned read
    /// needs no footer; empty for tables wider than [`MAX_INDEXED_COLUMN_RANGES`] (and for
    /// entries written before the ranges were kept), whose pruned reads use the footer.
    pub columns: Vec<ColumnRange>,
}

impl ChunkEntry {
    /// An entry without column ranges.
    const VERSION: u8 = 1;
    /// An entry with column ranges (at least one, at most [`MAX_INDEXED_COLUMN_RANGES`]).
    const VERSION_WITH_COLUMNS: u8 = 2;
    /// Bytes of one column range: offset, length, crc.
    const COLUMN_RANGE_LEN: usize = 8 + 8 + 4;

    /// One past the last offset in the chunk.
    pub fn end_offset(&self) -> Offset {
        Offset(self.base_offset.0 + u64::from(self.row_count))
    }

    /// The body's length: what follows the metadata and its padding.
    pub fn body_len(&self) -> u64 {
        self.chunk_len.saturating_sub(u64::from(self.body_offset))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(90 + self.columns.len() * Self::COLUMN_RANGE_LEN);
        out.push(if self.columns.is_empty() {
            Self::VERSION
        } else {
            Self::VERSION_WITH_COLUMNS
        });
        out.extend_from_slice(&self.object.0.to_be_bytes());
        out.extend_from_slice(&self.chunk_offset.to_be_bytes());
        out.extend_from_slice(&self.chunk_len.to_be_bytes());
        out.extend_from_slice(&self.meta_len.to_be_bytes());
        out.extend_from_slice(&self.body_offset.to_be_bytes());
        out.extend_from_slice(&self.chunk_crc.to_be_bytes());
        out.extend_from_slice(&self.meta_crc.to_be_bytes());
        out.extend_from_slice(&self.footer_offset.to_be_bytes());
        out.extend_from_slice(&self.footer_len.to_be_bytes());
        out.extend_from_slice(&self.schema_id.0.to_be_bytes());
        out.extend_from_slice(&self.base_offset.0.to_be_bytes());
        out.extend_from_slice(&self.row_count.to_be_bytes());
        out.extend_from_slice(&self.commit_ts.0.to_be_bytes());
        if !self.columns.is_empty() {
            let count = u16::try_from(self.columns.len())
                .expect("the sequencer keeps at most MAX_INDEXED_COLUMN_RANGES column ranges");
            out.extend_from_slice(&count.to_be_bytes());
            for column in &self.columns {
                out.extend_from_slice(&column.offset.to_be_bytes());
                out.extend_from_slice(&column.len.to_be_bytes());
                out.extend_from_slice(&column.crc32c.to_be_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != Self::VERSION && version != Self::VERSION_WITH_COLUMNS {
            return Err(CodecError::Version {
                version,
                supported: Self::VERSION_WITH_COLUMNS,
            });
        }
        let mut entry = Self {
            object: WalObjectId(r.u128()?),
            chunk_offset: r.u64()?,
            chunk_len: r.u64()?,
            meta_len: r.u32()?,
            body_offset: r.u32()?,
            chunk_crc: r.u32()?,
            meta_crc: r.u32()?,
            footer_offset: r.u64()?,
            footer_len: r.u32()?,
            schema_id: SchemaId(r.u32()?),
            base_offset: Offset(r.u64()?),
            row_count: r.u32()?,
            commit_ts: TimestampMicros(r.i64()?),
            columns: Vec::new(),
        };
        if version == Self::VERSION_WITH_COLUMNS {
            let count = usize::from(u16::from_be_bytes(r.take()?));
            // Zero ranges is written as version 1, so the encoding stays canonical.
            if count == 0 || count > MAX_INDEXED_COLUMN_RANGES {
                return Err(CodecError::ColumnRanges { count });
            }
            let mut columns = Vec::with_capacity(count);
            for _ in 0..count {
                columns.push(ColumnRange {
                    offset: r.u64()?,
                    len: r.u64()?,
                    crc32c: r.u32()?,
                });
            }
            entry.columns = columns;
        }
        r.finish()?;
        check_end(entry.base_offset, u64::from(entry.row_count))?;
        Ok(entry)
    }
}

pub fn lake_table_key(table: TableId) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::LakeTable, 8);
    key.extend_from_slice(&table.0.to_be_bytes());
    key
}

pub fn lake_watermark_key(stream: StreamId) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::LakeWatermark, STREAM_KEY_LEN);
    push_stream(&mut key, stream);
    key
}

pub fn lake_file_key(stream: StreamId, end_offset: Offset) -> Vec<u8> {
    let mut key = with_prefix(KeyPrefix::LakeFile, STREAM_KEY_LEN + 8);
    push_stream(&mut key, stream);
    key.extend_from_slice(&end_offset.0.to_be_bytes());
    key
}

/// The lake file keys of `stream` whose end offset is greater than `offset`.
pub fn lake_files_from(stream: StreamId, offset: Offset) -> (Vec<u8>, Vec<u8>) {
    let start = lake_file_key(stream, Offset(offset.0.saturating_add(1)));
    let mut end = with_prefix(KeyPrefix::LakeFile, STREAM_KEY_LEN + 9);
    push_stream(&mut end, stream);
    end.extend_from_slice(&[0xFF; 9]);
    (start, end)
}

/// The chunk keys of `stream` whose end offset is at most `offset`: chunks wholly below it.
pub fn chunks_below(stream: StreamId, offset: Offset) -> (Vec<u8>, Vec<u8>) {
    (
        chunk_key(stream, Offset(0)),
        chunk_key(stream, Offset(offset.0.saturating_add(1))),
    )
}

/// Every chunk key of every stream.
pub fn all_chunks() -> (Vec<u8>, Vec<u8>) {
    (
        vec![KeyPrefix::Chunk as u8],
        vec![KeyPrefix::Chunk as u8 + 1],
    )
}

/// How far a stream is tiered into the lake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LakeWatermark {
    /// Offsets below this are in the lake (and may be gone from the WAL).
    pub offset: Offset,
    /// When the watermark last moved (index commit time); `i64::MIN` if never.
    pub updated_at: TimestampMicros,
}

impl LakeWatermark {
    pub const EMPTY: LakeWatermark = LakeWatermark {
        offset: Offset(0),
        updated_at: TimestampMicros(i64::MIN),
    };
    const VERSION: u8 = 1;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        out.push(Self::VERSION);
        out.extend_from_slice(&self.offset.0.to_be_bytes());
        out.extend_from_slice(&self.updated_at.0.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        r.version(Self::VERSION)?;
        let watermark = Self {
            offset: Offset(r.u64()?),
            updated_at: TimestampMicros(r.i64()?),
        };
        r.finish()?;
        Ok(watermark)
    }
}

/// One Parquet data file of the lake holding the offsets `[base_offset, end_offset)` of one
/// stream, for offset reads below the watermark. Keyed by its end offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LakeFileEntry {
    /// The file's object path in the store (not a URL), e.g.
    /// `lake/db/events-3/data/_bucket=0/<name>.parquet`.
    pub path: String,
    pub base_offset: Offset,
    pub row_count: u64,
    /// Size of the file in bytes.
    pub file_size: u64,
    /// The snapshot that added the file.
    pub snapshot_id: i64,
    /// Smallest and largest `_timestamp` in the file.
    pub min_ts: TimestampMicros,
    pub max_ts: TimestampMicros,
    /// The table schema whose column names the file's columns have (the one the lake table's
    /// schema reflected when the file was written): a read finds a column under the name it
    /// had then. `None` for files tiered before columns could be renamed or dropped, whose
    /// names are those of [`TableInfo::schema_before_renames`](inlet_core::table::TableInfo).
    pub schema_id: Option<SchemaId>,
}

impl LakeFileEntry {
    /// Version 2 appends the schema id.
    const VERSION: u8 = 2;
    /// Version 1 entries have no schema id (files tiered before columns had ids).
    const VERSION_WITHOUT_SCHEMA: u8 = 1;

    /// One past the last offset in the file.
    pub fn end_offset(&self) -> Offset {
        Offset(self.base_offset.0 + self.row_count)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(53 + self.path.len());
        out.push(match self.schema_id {
            Some(_) => Self::VERSION,
            None => Self::VERSION_WITHOUT_SCHEMA,
        });
        out.extend_from_slice(&self.base_offset.0.to_be_bytes());
        out.extend_from_slice(&self.row_count.to_be_bytes());
        out.extend_from_slice(&self.file_size.to_be_bytes());
        out.extend_from_slice(&self.snapshot_id.to_be_bytes());
        out.extend_from_slice(&self.min_ts.0.to_be_bytes());
        out.extend_from_slice(&self.max_ts.0.to_be_bytes());
        let len = u32::try_from(self.path.len()).expect("object paths are far shorter than 4 GiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.path.as_bytes());
        if let Some(schema) = self.schema_id {
            out.extend_from_slice(&schema.0.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != Self::VERSION && version != Self::VERSION_WITHOUT_SCHEMA {
            return Err(CodecError::Version {
                version,
                supported: Self::VERSION,
            });
        }
        let base_offset = Offset(r.u64()?);
        let row_count = r.u64()?;
        let file_size = r.u64()?;
        let snapshot_id = r.i64()?;
        let min_ts = TimestampMicros(r.i64()?);
        let max_ts = TimestampMicros(r.i64()?);
        let len = r.u32()? as usize;
        let path = String::from_utf8(r.bytes(len)?.to_vec())
            .map_err(|e| CodecError::Json(format!("lake file path is not UTF-8: {e}")))?;
        let schema_id = match version {
            Self::VERSION_WITHOUT_SCHEMA => None,
            _ => Some(SchemaId(r.u32()?)),
        };
        r.finish()?;
        check_end(base_offset, row_count)?;
        Ok(Self {
            path,
            base_offset,
            row_count,
            file_size,
            snapshot_id,
            min_ts,
            max_ts,
            schema_id,
        })
    }
}

/// Encodes a u64 value (ids, counters, base offsets).
pub fn encode_u64(value: u64) -> Vec<u8> {
    value.to_be_bytes().to_vec()
}

pub fn decode_u64(bytes: &[u8]) -> Result<u64, CodecError> {
    let mut r = Reader::new(bytes);
    let value = r.u64()?;
    r.finish()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn stream() -> impl Strategy<Value = StreamId> {
        (any::<u64>(), any::<u32>(), any::<u32>())
            .prop_map(|(t, p, b)| StreamId::new(TableId(t), PartitionId(p), Bucket(b)))
    }

    fn entry() -> impl Strategy<Value = ChunkEntry> {
        (
            any::<u128>(),
            any::<(u64, u64, u32, u32, u32, u32)>(),
            any::<(u64, u32, u32)>(),
            any::<(u64, u32, i64)>(),
            proptest::collection::vec(any::<(u64, u64, u32)>(), 0..4),
        )
            .prop_map(|(object, a, b, c, columns)| ChunkEntry {
                object: WalObjectId(object),
                chunk_offset: a.0,
                chunk_len: a.1,
                meta_len: a.2,
                body_offset: a.3,
                chunk_crc: a.4,
                meta_crc: a.5,
                footer_offset: b.0,
                footer_len: b.1,
                schema_id: SchemaId(b.2),
                base_offset: Offset(c.0 >> 1),
                row_count: c.1,
                commit_ts: TimestampMicros(c.2),
                columns: columns
                    .into_iter()
                    .map(|(offset, len, crc32c)| ColumnRange {
                        offset,
                        len,
                        crc32c,
                    })
                    .collect(),
            })
    }

    #[test]
    fn column_range_counts_outside_the_bound_are_rejected() {
        let entry = ChunkEntry {
            object: WalObjectId(7),
            chunk_offset: 0,
            chunk_len: 100,
            meta_len: 10,
            body_offset: 16,
            chunk_crc: 1,
            meta_crc: 2,
            footer_offset: 200,
            footer_len: 50,
            schema_id: SchemaId(1),
            base_offset: Offset(0),
            row_count: 3,
            commit_ts: TimestampMicros(5),
            columns: Vec::new(),
        };
        let without = entry.encode();
        assert_eq!(without[0], ChunkEntry::VERSION);
        // Version 2 with zero ranges is not canonical (version 1 says that), and more than
        // the bound would let a corrupt entry ask for an unbounded allocation.
        for count in [0u16, MAX_INDEXED_COLUMN_RANGES as u16 + 1, u16::MAX] {
            let mut bytes = without.clone();
            bytes[0] = ChunkEntry::VERSION_WITH_COLUMNS;
            bytes.extend_from_slice(&count.to_be_bytes());
            bytes.extend(std::iter::repeat_n(0u8, usize::from(count) * 20));
            assert_eq!(
                ChunkEntry::decode(&bytes),
                Err(CodecError::ColumnRanges {
                    count: usize::from(count)
                })
            );
        }
    }

    proptest! {
        #[test]
        fn chunk_entries_round_trip(e in entry()) {
            prop_assert_eq!(ChunkEntry::decode(&e.encode()), Ok(e));
        }

        #[test]
        fn truncated_or_extended_entries_are_rejected(e in entry(), cut in 0usize..200) {
            let bytes = e.encode();
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(ChunkEntry::decode(&bytes[..cut]).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(ChunkEntry::decode(&longer).is_err());
        }

        #[test]
        fn producer_states_round_trip(
            seq in any::<u64>(),
            seen in any::<i64>(),
            ranges in proptest::collection::vec(any::<(u32, u64, u32, i64)>(), 0..8),
            partitions in proptest::collection::vec(0u32..3, 8),
        ) {
            let state = ProducerState {
                last_sequence: seq,
                last_seen: TimestampMicros(seen),
                ranges: ranges
                    .into_iter()
                    .zip(partitions)
                    .map(|((b, o, n, t), p)| ProducedRange {
                        partition: PartitionId(p),
                        bucket: Bucket(b),
                        base_offset: Offset(o),
                        row_count: n,
                        commit_ts: TimestampMicros(t),
                    })
                    .collect(),
            };
            let bytes = state.encode();
            prop_assert_eq!(ProducerState::decode(&bytes), Ok(state));
            prop_assert!(ProducerState::decode(&bytes[..bytes.len() - 1]).is_err());
        }

        #[test]
        fn tails_round_trip(
            n in any::<u64>(), e in any::<u64>(), ts in any::<i64>(), b in any::<u64>()
        ) {
            let tail = StreamTail {
                next_offset: Offset(n),
                earliest_offset: Offset(e),
                last_commit_ts: TimestampMicros(ts),
                wal_bytes: b,
            };
            let bytes = tail.encode();
            prop_assert_eq!(StreamTail::decode(&bytes), Ok(tail));
            prop_assert!(StreamTail::decode(&bytes[..bytes.len() - 1]).is_err());
            // A version 1 tail (before `wal_bytes`) still reads, with no bytes counted.
            let mut v1 = bytes[..25].to_vec();
            v1[0] = 1;
            prop_assert_eq!(
                StreamTail::decode(&v1),
                Ok(StreamTail { wal_bytes: 0, ..tail })
            );
        }

        /// Key order is (stream, end offset) order, so a forward seek finds the chunk that
        /// holds an offset.
        #[test]
        fn chunk_keys_sort_by_stream_then_offset(
            s1 in stream(), s2 in stream(), o1 in any::<u64>(), o2 in any::<u64>()
        ) {
            let k1 = chunk_key(s1, Offset(o1));
            let k2 = chunk_key(s2, Offset(o2));
            prop_assert_eq!(k1.cmp(&k2), (s1, o1).cmp(&(s2, o2)));
            prop_assert_eq!(decode_chunk_key(&k1), Ok((s1, Offset(o1))));
            let (start, end) = chunks_from(s1, Offset(o1.saturating_sub(1)));
            prop_assert!(start <= k1 && k1 < end);
        }

        #[test]
        fn time_keys_sort_by_timestamp_including_negative(
            s in stream(), t1 in any::<i64>(), t2 in any::<i64>()
        ) {
            let k1 = time_index_key(s, TimestampMicros(t1), Offset(0));
            let k2 = time_index_key(s, TimestampMicros(t2), Offset(0));
            prop_assert_eq!(k1.cmp(&k2), t1.cmp(&t2));
        }
    }

    #[test]
    fn unknown_versions_are_rejected() {
        let mut bytes = StreamTail::EMPTY.encode();
        bytes[0] = 9;
        assert_eq!(
            StreamTail::decode(&bytes),
            Err(CodecError::Version {
                version: 9,
                supported: 2
            })
        );
    }

    /// A lake file entry of version 1 (before schema ids) still decodes, without a schema;
    /// one with a schema id is version 2; each round-trips, and neither takes extra bytes.
    #[test]
    fn lake_file_entries_of_both_versions_decode() {
        let v1 = LakeFileEntry {
            path: "lake/db/t/data/_bucket=0/a.parquet".to_owned(),
            base_offset: Offset(10),
            row_count: 5,
            file_size: 1234,
            snapshot_id: -3,
            min_ts: TimestampMicros(1),
            max_ts: TimestampMicros(2),
            schema_id: None,
        };
        let bytes = v1.encode();
        assert_eq!(bytes[0], 1);
        assert_eq!(LakeFileEntry::decode(&bytes), Ok(v1.clone()));
        let v2 = LakeFileEntry {
            schema_id: Some(SchemaId(7)),
            ..v1
        };
        let bytes = v2.encode();
        assert_eq!(bytes[0], 2);
        assert_eq!(LakeFileEntry::decode(&bytes), Ok(v2));
        assert!(LakeFileEntry::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(LakeFileEntry::decode(&longer).is_err());
        let mut newer = bytes;
        newer[0] = 3;
        assert!(matches!(
            LakeFileEntry::decode(&newer),
            Err(CodecError::Version { version: 3, .. })
        ));
    }

    /// A v1 chunk entry as written by this version: if this changes, old indexes break.
    #[test]
    fn chunk_entry_v1_fixture_still_decodes() {
        let fixture = "010000000000000000000000000000000700000000000000100000000000000200000000\
                       400000004800abcdef123456780000000000000040000000180000000000000000000000\
                       05000000030000000000000064";
        let bytes: Vec<u8> = (0..fixture.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&fixture[i..i + 2], 16).expect("hex fixture"))
            .collect();
        let entry = ChunkEntry::decode(&bytes).expect("v1 fixture decodes");
        assert_eq!(entry.object, WalObjectId(7));
        assert_eq!(entry.chunk_offset, 16);
        assert_eq!(entry.chunk_len, 512);
        assert_eq!(entry.meta_len, 64);
        assert_eq!(entry.body_offset, 72);
        assert_eq!(entry.chunk_crc, 0x00ab_cdef);
        assert_eq!(entry.meta_crc, 0x1234_5678);
        assert_eq!(entry.footer_offset, 64);
        assert_eq!(entry.footer_len, 24);
        assert_eq!(entry.schema_id, SchemaId(0));
        assert_eq!(entry.base_offset, Offset(5));
        assert_eq!(entry.row_count, 3);
        assert_eq!(entry.commit_ts, TimestampMicros(100));
        assert_eq!(entry.encode(), bytes);
    }
}
