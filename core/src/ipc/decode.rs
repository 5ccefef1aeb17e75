//! Decoding an Arrow IPC stream that came from outside, from the bytes actually received.
//!
//! arrow-ipc's `StreamReader` reads a length from the stream and allocates a buffer of that
//! size before it reads the bytes, so one forged length aborts the process; and it trusts a
//! record batch's metadata, so a forged buffer list panics inside arrow. Here every message is
//! framed over the received bytes, every length is checked against what remains before it is
//! used, the schema is converted by our own checked converter (`schema.rs`), and each record
//! batch's field nodes and buffers are walked against the schema and its body
//! (`layout.rs`) before arrow-ipc decodes it, zero-copy from the received buffer, with full
//! validation. A panic that still escapes arrow becomes [`IpcDecodeError::DecoderPanic`].
//!
//! Memory: the batches reference the received buffer; arrow copies a buffer only when it is
//! misaligned, so decoding allocates at most about the input's size again, plus per-message
//! bookkeeping, and never anything sized by a number read from the stream.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::read_record_batch;
use arrow_ipc::{Message, MessageHeader};
use arrow_schema::SchemaRef;

use super::error::IpcDecodeError;
use super::layout::check_layout;
use super::schema::schema_from_fb;
use crate::column_types::first_unsupported;
use crate::limits::{MAX_CACHED_SCHEMA_MESSAGE_BYTES, MAX_CACHED_SCHEMAS, MAX_REQUEST_ROWS};

/// The marker before a message's metadata length (absent in the pre-1.0 framing).
const CONTINUATION: u32 = 0xFFFF_FFFF;

/// A decoded Arrow IPC stream: its schema and its record batches, in order.
#[derive(Clone, Debug)]
pub struct IpcStream {
    /// The schema every batch has.
    pub schema: SchemaRef,
    /// The record batches, which reference the decoded buffer.
    pub batches: Vec<RecordBatch>,
}

impl IpcStream {
    /// Rows in all batches.
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Decodes a whole stream: a schema message, then record batch messages, optionally ended by
/// an end-of-stream marker. Rejects dictionaries (no stored type uses them), compressed
/// bodies, anything after the end-of-stream marker and more than [`MAX_REQUEST_ROWS`] rows.
pub fn decode_stream(bytes: Buffer) -> Result<IpcStream, IpcDecodeError> {
    guarded(|| decode_stream_unguarded(&bytes))
}

/// [`decode_stream`] that takes the schema from `schemas` when its message's bytes were seen
/// before, instead of parsing it again: for the append path, where each producer sends the
/// same schema with every append. A hit is exactly what parsing those bytes would give.
pub fn decode_stream_cached(
    bytes: Buffer,
    schemas: &SchemaCache,
) -> Result<IpcStream, IpcDecodeError> {
    guarded(|| decode_stream_with(&bytes, Some(schemas)))
}

/// Parsed schemas by the exact bytes of their schema message; at most [`MAX_CACHED_SCHEMAS`]
/// of at most [`MAX_CACHED_SCHEMA_MESSAGE_BYTES`] each (larger messages are parsed every
/// time), emptied when full.
#[derive(Debug, Default)]
pub struct SchemaCache {
    parsed: Mutex<HashMap<Box<[u8]>, SchemaRef>>,
}

impl SchemaCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Schemas cached now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, SchemaRef>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.parsed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get_or_parse(
        &self,
        message: &[u8],
        parse: impl FnOnce() -> Result<SchemaRef, IpcDecodeError>,
    ) -> Result<SchemaRef, IpcDecodeError> {
        if message.len() > MAX_CACHED_SCHEMA_MESSAGE_BYTES {
            return parse();
        }
        if let Some(schema) = self.lock().get(message) {
            return Ok(schema.clone());
        }
        let schema = parse()?;
        let mut parsed = self.lock();
        if parsed.len() >= MAX_CACHED_SCHEMAS {
            parsed.clear();
        }
        parsed.insert(message.into(), schema.clone());
        Ok(schema)
    }
}

/// Decodes only the schema of a stream (the first message); later messages must be framed
/// correctly but are not decoded. For table schemas, from clients and from the index.
pub fn decode_schema(bytes: &[u8]) -> Result<SchemaRef, IpcDecodeError> {
    guarded(|| decode_schema_unguarded(bytes))
}

/// [`decode_stream`] without the panic guard: for fuzz targets and the mutation suite, which
/// must see a panic as the failure it is rather than as an error value.
#[doc(hidden)]
pub fn decode_stream_unguarded(bytes: &Buffer) -> Result<IpcStream, IpcDecodeError> {
    decode_stream_with(bytes, None)
}

/// [`decode_stream_cached`] without the panic guard, for the fuzz targets.
#[doc(hidden)]
pub fn decode_stream_cached_unguarded(
    bytes: &Buffer,
    schemas: &SchemaCache,
) -> Result<IpcStream, IpcDecodeError> {
    decode_stream_with(bytes, Some(schemas))
}

fn decode_stream_with(
    bytes: &Buffer,
    schemas: Option<&SchemaCache>,
) -> Result<IpcStream, IpcDecodeError> {
    let mut messages = Messages::new(bytes.as_slice());
    let schema = read_schema_cached(&mut messages, schemas)?;
    let mut batches = Vec::new();
    let mut rows = 0u64;
    while let Some(framed) = messages.next().transpose()? {
        let index = batches.len();
        if framed.message.header_type() != MessageHeader::RecordBatch {
            return Err(unexpected(&framed, "a record batch"));
        }
        let body_len = framed.body.len();
        let layout =
            check_layout(framed.message, &schema, body_len).map_err(|e| IpcDecodeError::Batch {
                index,
                detail: e.to_string(),
            })?;
        // check_layout rejected negative row counts.
        rows = rows.saturating_add(layout.batch.length() as u64);
        if rows > MAX_REQUEST_ROWS as u64 {
            return Err(IpcDecodeError::TooManyRows {
                rows,
                limit: MAX_REQUEST_ROWS,
            });
        }
        let body = bytes.slice_with_length(framed.body.start, body_len);
        let batch = read_record_batch(
            &body,
            layout.batch,
            Arc::clone(&schema),
            &HashMap::new(),
            None,
            &framed.message.version(),
        )
        .map_err(|source| IpcDecodeError::Arrow { index, source })?;
        batches.push(batch);
    }
    Ok(IpcStream { schema, batches })
}

/// [`decode_schema`] without the panic guard (see [`decode_stream_unguarded`]).
#[doc(hidden)]
pub fn decode_schema_unguarded(bytes: &[u8]) -> Result<SchemaRef, IpcDecodeError> {
    let mut messages = Messages::new(bytes);
    let schema = read_schema(&mut messages)?;
    for framed in messages {
        framed?;
    }
    Ok(schema)
}

fn read_schema(messages: &mut Messages<'_>) -> Result<SchemaRef, IpcDecodeError> {
    read_schema_cached(messages, None)
}

fn read_schema_cached(
    messages: &mut Messages<'_>,
    schemas: Option<&SchemaCache>,
) -> Result<SchemaRef, IpcDecodeError> {
    let framed = messages.next().ok_or(IpcDecodeError::Empty)??;
    match schemas {
        Some(schemas) => schemas.get_or_parse(framed.metadata, || parse_schema(&framed)),
        None => parse_schema(&framed),
    }
}

/// The schema in `framed`, which must be a schema message, checked to hold stored types only.
fn parse_schema(framed: &Framed<'_>) -> Result<SchemaRef, IpcDecodeError> {
    let Some(schema) = framed.message.header_as_schema() else {
        return Err(unexpected(framed, "a schema"));
    };
    if !framed.body.is_empty() {
        return Err(IpcDecodeError::Schema {
            detail: format!("the schema message has a {}-byte body", framed.body.len()),
        });
    }
    let schema = schema_from_fb(schema).map_err(|detail| IpcDecodeError::Schema { detail })?;
    // schema_from_fb builds stored types only; this keeps it honest if the list changes.
    if let Some((column, data_type)) = first_unsupported(&schema) {
        return Err(IpcDecodeError::Schema {
            detail: format!("column `{column}` has type {data_type}, which inlet does not store"),
        });
    }
    Ok(Arc::new(schema))
}

fn unexpected(framed: &Framed<'_>, expected: &'static str) -> IpcDecodeError {
    let header = framed.message.header_type();
    let found = match header {
        MessageHeader::Schema => "schema".to_owned(),
        MessageHeader::DictionaryBatch => "dictionary batch".to_owned(),
        MessageHeader::RecordBatch => "record batch".to_owned(),
        MessageHeader::Tensor => "tensor".to_owned(),
        MessageHeader::SparseTensor => "sparse tensor".to_owned(),
        other => format!("message of unknown type {}", other.0),
    };
    IpcDecodeError::UnexpectedMessage {
        offset: framed.offset,
        found,
        expected,
    }
}

/// Runs a decode, turning a panic inside arrow into an error.
fn guarded<T>(decode: impl FnOnce() -> Result<T, IpcDecodeError>) -> Result<T, IpcDecodeError> {
    catch_unwind(AssertUnwindSafe(decode)).unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Err(IpcDecodeError::DecoderPanic { detail })
    })
}

/// One framed message: its parsed metadata and where its body lies in the stream.
struct Framed<'a> {
    /// Byte offset of the message's first byte (its continuation marker or length).
    offset: usize,
    message: Message<'a>,
    /// The message's metadata (the flatbuffer `message` was parsed from).
    metadata: &'a [u8],
    body: std::ops::Range<usize>,
}

/// The messages of a stream, each checked against the bytes that remain.
struct Messages<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Set once the end-of-stream marker (or the end of the bytes) is reached, or after an
    /// error: the iterator yields nothing more.
    done: bool,
}

impl<'a> Messages<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Messages {
            bytes,
            pos: 0,
            done: false,
        }
    }

    fn read_u32(&self, at: usize, what: &'static str) -> Result<u32, IpcDecodeError> {
        let word = self
            .bytes
            .get(at..)
            .and_then(|rest| rest.get(..4))
            .ok_or_else(|| IpcDecodeError::Truncated {
                what,
                offset: at,
                needed: 4,
                remaining: self.bytes.len().saturating_sub(at),
            })?;
        let mut out = [0u8; 4];
        out.copy_from_slice(word);
        Ok(u32::from_le_bytes(out))
    }

    /// The next message, `None` at the end of the stream.
    fn frame(&mut self) -> Result<Option<Framed<'a>>, IpcDecodeError> {
        let offset = self.pos;
        if offset == self.bytes.len() {
            return Ok(None);
        }
        let first = self.read_u32(offset, "message length")?;
        let (meta_len, meta_start) = if first == CONTINUATION {
            (self.read_u32(offset + 4, "message length")?, offset + 8)
        } else {
            (first, offset + 4)
        };
        let meta_len = i64::from(meta_len as i32);
        if meta_len == 0 {
            let count = self.bytes.len() - meta_start;
            if count != 0 {
                return Err(IpcDecodeError::TrailingBytes { offset, count });
            }
            return Ok(None);
        }
        if meta_len < 0 {
            return Err(IpcDecodeError::NegativeLength {
                what: "message metadata",
                offset,
                len: meta_len,
            });
        }
        let remaining = self.bytes.len() - meta_start;
        let meta_len = meta_len as usize;
        if meta_len > remaining {
            return Err(IpcDecodeError::Truncated {
                what: "message metadata",
                offset,
                needed: meta_len as u64,
                remaining,
            });
        }
        let meta_end = meta_start + meta_len;
        let message =
            arrow_ipc::root_as_message(&self.bytes[meta_start..meta_end]).map_err(|e| {
                IpcDecodeError::NotAMessage {
                    offset,
                    detail: e.to_string(),
                }
            })?;
        let body_len = message.bodyLength();
        if body_len < 0 {
            return Err(IpcDecodeError::NegativeLength {
                what: "message body",
                offset,
                len: body_len,
            });
        }
        let remaining = self.bytes.len() - meta_end;
        if body_len as u64 > remaining as u64 {
            return Err(IpcDecodeError::Truncated {
                what: "message body",
                offset,
                needed: body_len as u64,
                remaining,
            });
        }
        let body = meta_end..meta_end + body_len as usize;
        self.pos = body.end;
        Ok(Some(Framed {
            offset,
            message,
            metadata: &self.bytes[meta_start..meta_end],
            body,
        }))
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Framed<'a>, IpcDecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let framed = self.frame().transpose();
        if !matches!(framed, Some(Ok(_))) {
            self.done = true;
        }
        framed
    }
}
