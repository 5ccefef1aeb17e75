//! The checked layout of an Arrow IPC record batch message: the field nodes and buffers its
//! metadata lists, walked against a schema and the body's length before arrow-ipc's reader
//! (which trusts the metadata and panics on some inconsistencies) ever sees them. Used for
//! client input (`ipc::decode_stream`) and for WAL chunks (`wal::decode`).

use std::ops::Range;

use arrow_ipc::{Message, MetadataVersion};
use arrow_schema::{DataType, Field, Schema};

/// Why a record batch message does not fit its schema and body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LayoutError {
    /// The metadata contradicts the schema or the body.
    #[error("{detail}")]
    InvalidMetadata { detail: String },
    /// The schema has a type whose layout this walker does not know.
    #[error("unsupported type for column `{column}`: {data_type}")]
    UnsupportedType { column: String, data_type: DataType },
}

/// What a record batch message says about its body, checked against a schema.
pub(crate) struct BatchLayout<'a> {
    /// The flatbuffer record batch, for arrow-ipc's reader.
    pub(crate) batch: arrow_ipc::RecordBatch<'a>,
    /// Body byte span of each top-level column: from the start of its first buffer to the end
    /// of its last one; empty (at the end of the previous column) if it has no buffers.
    pub(crate) columns: Vec<Range<usize>>,
}

/// Parses `meta` as an Arrow IPC message and checks it with [`check_layout`].
pub(crate) fn parse_layout<'a>(
    meta: &'a [u8],
    schema: &Schema,
    body_len: usize,
) -> Result<BatchLayout<'a>, LayoutError> {
    let message = arrow_ipc::root_as_message(meta).map_err(|e| LayoutError::InvalidMetadata {
        detail: format!("not an arrow ipc message: {e}"),
    })?;
    check_layout(message, schema, body_len)
}

/// Checks a record batch message against `schema` and a body of `body_len` bytes, so that
/// arrow-ipc's reader can only return errors: the field nodes and buffers are exactly as many
/// as the schema needs, every buffer lies inside the body in increasing order, row counts are
/// consistent and validity buffers cover their rows.
///
/// The buffers of an Arrow IPC record batch are laid out depth-first in field order, so each
/// top-level column's buffers are contiguous: that is what makes per-column ranges possible.
pub(crate) fn check_layout<'a>(
    message: Message<'a>,
    schema: &Schema,
    body_len: usize,
) -> Result<BatchLayout<'a>, LayoutError> {
    let invalid = |detail: String| LayoutError::InvalidMetadata { detail };
    if message.version() != MetadataVersion::V5 {
        return Err(invalid(format!(
            "metadata version {:?}, expected V5",
            message.version()
        )));
    }
    let batch = message.header_as_record_batch().ok_or_else(|| {
        invalid(format!(
            "message holds a {:?}, expected a record batch",
            message.header_type()
        ))
    })?;
    if usize::try_from(message.bodyLength()).ok() != Some(body_len) {
        return Err(invalid(format!(
            "body length is {}, the chunk body has {body_len} bytes",
            message.bodyLength()
        )));
    }
    if batch.compression().is_some() {
        return Err(invalid(
            "the body is compressed; inlet reads uncompressed arrow ipc bodies only".to_string(),
        ));
    }
    if batch
        .variadicBufferCounts()
        .is_some_and(|counts| !counts.is_empty())
    {
        return Err(invalid(
            "variadic buffer counts for a schema without view types".to_string(),
        ));
    }
    let row_count = batch.length();
    if row_count < 0 {
        return Err(invalid(format!("negative row count {row_count}")));
    }
    let nodes = batch
        .nodes()
        .ok_or_else(|| invalid("no field nodes".to_string()))?;
    let buffers = batch
        .buffers()
        .ok_or_else(|| invalid("no buffer list".to_string()))?;
    // Plain copies; bounded by the metadata's size (16 bytes each in the flatbuffer).
    let mut walker = LayoutWalker {
        nodes: nodes
            .iter()
            .map(|node| (node.length(), node.null_count()))
            .collect(),
        buffers: buffers
            .iter()
            .map(|buffer| (buffer.offset(), buffer.length()))
            .collect(),
        next_node: 0,
        spans: Vec::new(),
        body_len,
    };

    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let first_buffer = walker.spans.len();
        let column_rows = walker.field(field)?;
        if column_rows != row_count {
            return Err(invalid(format!(
                "column `{}` has {column_rows} rows, the batch has {row_count}",
                field.name()
            )));
        }
        let end = walker.spans.last().map_or(0, |span| span.end);
        let start = walker
            .spans
            .get(first_buffer)
            .map_or(end, |span| span.start);
        columns.push(start..end);
    }
    if walker.next_node != walker.nodes.len() || walker.spans.len() != walker.buffers.len() {
        return Err(invalid(format!(
            "{} field nodes and {} buffers, the schema uses {} and {}",
            walker.nodes.len(),
            walker.buffers.len(),
            walker.next_node,
            walker.spans.len()
        )));
    }
    Ok(BatchLayout { batch, columns })
}

/// Walks a schema's fields over an IPC record batch's field nodes and buffers in the order
/// arrow-ipc writes (and reads) them.
struct LayoutWalker {
    /// `(length, null_count)` of each field node.
    nodes: Vec<(i64, i64)>,
    /// `(offset, length)` of each buffer.
    buffers: Vec<(i64, i64)>,
    next_node: usize,
    /// Body spans of the buffers consumed so far; also counts them.
    spans: Vec<Range<usize>>,
    body_len: usize,
}

impl LayoutWalker {
    /// Consumes the node and buffers of `field` (and its children); returns the field's length.
    ///
    /// Buffer counts per type, as arrow-ipc 58 writes them with metadata version 5: Null has
    /// none; every other type starts with a validity buffer (empty if there are no nulls);
    /// fixed-width types, booleans and fixed-size binary add their values (2 in all), strings
    /// and binary their offsets and data (3), lists and maps their offsets and then the child
    /// (2 + child), fixed-size lists just the child (1 + child), structs their children
    /// (1 + children).
    fn field(&mut self, field: &Field) -> Result<i64, LayoutError> {
        let (length, null_count) = self.node(field)?;
        let data_type = field.data_type();
        let data_buffers = match data_type {
            DataType::Null => {
                if null_count != length {
                    return Err(LayoutError::InvalidMetadata {
                        detail: format!(
                            "null field `{}` has length {length} but null count {null_count}",
                            field.name()
                        ),
                    });
                }
                return Ok(length);
            }
            DataType::Utf8 | DataType::Binary | DataType::LargeUtf8 | DataType::LargeBinary => 2,
            DataType::List(_) | DataType::LargeList(_) | DataType::Map(_, _) => 1,
            DataType::FixedSizeList(_, _) | DataType::Struct(_) => 0,
            DataType::BinaryView
            | DataType::Utf8View
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::Union(_, _)
            | DataType::Dictionary(_, _)
            | DataType::RunEndEncoded(_, _) => {
                return Err(LayoutError::UnsupportedType {
                    column: field.name().clone(),
                    data_type: data_type.clone(),
                });
            }
            // Boolean, fixed-size binary and every fixed-width (primitive) type.
            _ => 1,
        };
        self.validity(field, length, null_count)?;
        let specs = arrow_data::layout(data_type).buffers;
        for index in 0..data_buffers {
            self.data_buffer(field, specs.get(index))?;
        }
        match data_type {
            DataType::List(child)
            | DataType::LargeList(child)
            | DataType::Map(child, _)
            | DataType::FixedSizeList(child, _) => {
                self.field(child)?;
            }
            DataType::Struct(children) => {
                for child in children {
                    self.field(child)?;
                }
            }
            _ => {}
        }
        Ok(length)
    }

    fn node(&mut self, field: &Field) -> Result<(i64, i64), LayoutError> {
        let Some(&(length, null_count)) = self.nodes.get(self.next_node) else {
            return Err(LayoutError::InvalidMetadata {
                detail: format!("no field node left for field `{}`", field.name()),
            });
        };
        self.next_node += 1;
        if length < 0 || null_count < 0 || null_count > length {
            return Err(LayoutError::InvalidMetadata {
                detail: format!(
                    "field `{}` has length {length} and null count {null_count}",
                    field.name()
                ),
            });
        }
        Ok((length, null_count))
    }

    /// Consumes the next buffer, which must lie in the body after the previous one.
    fn buffer(&mut self, field: &Field) -> Result<Range<usize>, LayoutError> {
        let Some(&(offset, length)) = self.buffers.get(self.spans.len()) else {
            return Err(LayoutError::InvalidMetadata {
                detail: format!("no buffer left for field `{}`", field.name()),
            });
        };
        let previous_end = self.spans.last().map_or(0, |span| span.end);
        let span = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(length).ok())
            .and_then(|(start, len)| Some(start..start.checked_add(len)?))
            .filter(|span| span.start >= previous_end && span.end <= self.body_len);
        let Some(span) = span else {
            return Err(LayoutError::InvalidMetadata {
                detail: format!(
                    "buffer {} of field `{}` at {offset}+{length} is out of order or outside \
                     the {}-byte body",
                    self.spans.len(),
                    field.name(),
                    self.body_len
                ),
            });
        };
        self.spans.push(span.clone());
        Ok(span)
    }

    /// Consumes a values or offsets buffer. Arrow views fixed-width buffers as slices of their
    /// element type and panics if the length is not a multiple of the element width.
    fn data_buffer(
        &mut self,
        field: &Field,
        spec: Option<&arrow_data::BufferSpec>,
    ) -> Result<(), LayoutError> {
        let span = self.buffer(field)?;
        if let Some(&arrow_data::BufferSpec::FixedWidth { byte_width, .. }) = spec
            && byte_width > 0
            && span.len() % byte_width != 0
        {
            return Err(LayoutError::InvalidMetadata {
                detail: format!(
                    "buffer of field `{}` has {} bytes, not a multiple of its {byte_width}-byte \
                     elements",
                    field.name(),
                    span.len()
                ),
            });
        }
        Ok(())
    }

    /// Consumes a validity buffer, which must hold a bit per row if the field has nulls.
    fn validity(&mut self, field: &Field, length: i64, null_count: i64) -> Result<(), LayoutError> {
        let span = self.buffer(field)?;
        let bits = (span.len() as u64).saturating_mul(8);
        if null_count > 0 && bits < length as u64 {
            return Err(LayoutError::InvalidMetadata {
                detail: format!(
                    "validity buffer of field `{}` has {} bytes for {length} rows",
                    field.name(),
                    span.len()
                ),
            });
        }
        Ok(())
    }
}
