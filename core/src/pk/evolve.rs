//! Row images of a table's earlier schemas, read under its current one: what lets a
//! primary-key table's columns change while its key state and changelog keep the images
//! written before.
//!
//! An image names the schema it was written under ([`super::row`]). One of an earlier schema
//! is upgraded to the current schema the way a chunk is read under it
//! (`ChunkRead::read_under`): its columns are matched by [column id](crate::column_ids), a
//! column added since is null, a widened one is widened, a dropped one is left out. Nothing
//! is rewritten in place: the key state keeps an old image until the key is written again
//! (the index owner then stores the merged row under the current schema), so an ALTER costs
//! nothing however many keys the table has, and reading an old image costs one decode and
//! one encode more.

use std::borrow::Cow;
use std::collections::BTreeMap;

use arrow_array::{ArrayRef, RecordBatch, new_null_array};
use arrow_schema::SchemaRef;

use super::PkCodecError;
use super::merge::{column_mask, mask_has};
use super::row::{RowEncoder, decode_rows, image_header};
use crate::column_ids::ColumnPositions;
use crate::column_types::widen;
use crate::ids::SchemaId;
use crate::table::TableInfo;

/// The rows of `images` (of any schema `table` has had) as a batch of its current schema.
pub fn decode_images(table: &TableInfo, images: &[&[u8]]) -> Result<RecordBatch, PkCodecError> {
    let upgraded = upgrade_images(table, images)?;
    let refs: Vec<&[u8]> = upgraded.iter().map(|image| image.as_ref()).collect();
    decode_rows(&table.descriptor.schema, table.schema_id, &refs)
}

/// `image` as an image of `table`'s current schema: itself if it is one.
pub fn upgrade_image<'a>(
    table: &TableInfo,
    image: &'a [u8],
) -> Result<Cow<'a, [u8]>, PkCodecError> {
    Ok(upgrade_images(table, &[image])?.remove(0))
}

/// `images` as images of `table`'s current schema, in order; those that are already borrowed.
/// The images of each earlier schema are decoded together, given the current columns and
/// encoded again.
pub fn upgrade_images<'a>(
    table: &TableInfo,
    images: &[&'a [u8]],
) -> Result<Vec<Cow<'a, [u8]>>, PkCodecError> {
    let mut stale: BTreeMap<SchemaId, Vec<usize>> = BTreeMap::new();
    for (i, image) in images.iter().enumerate() {
        let (schema_id, _) = image_header(image)?;
        if schema_id != table.schema_id {
            stale.entry(schema_id).or_default().push(i);
        }
    }
    let mut out: Vec<Cow<'a, [u8]>> = images.iter().map(|image| Cow::Borrowed(*image)).collect();
    for (schema_id, rows) in stale {
        let schema = schema_of(table, schema_id)?;
        let old: Vec<&[u8]> = rows.iter().map(|&i| images[i]).collect();
        let current = to_current(table, &decode_rows(schema, schema_id, &old)?)?;
        let encoder = RowEncoder::new(&current, table.schema_id)?;
        for (row, &i) in rows.iter().enumerate() {
            let mut image = Vec::new();
            encoder.encode(row, &mut image)?;
            out[i] = Cow::Owned(image);
        }
    }
    Ok(out)
}

/// The mask of a partial update written under schema `schema_id` (its bits are that
/// schema's columns) as a mask of `table`'s current columns: a column the writer did not
/// know is not written.
pub fn upgrade_mask(
    table: &TableInfo,
    schema_id: SchemaId,
    mask: &[u8],
) -> Result<Vec<u8>, PkCodecError> {
    let current = &table.descriptor.schema;
    if schema_id == table.schema_id {
        return Ok(mask.to_vec());
    }
    let written = ColumnPositions::of(schema_of(table, schema_id)?);
    let columns = current
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, field)| {
            written
                .of_field(field)
                .filter(|&position| mask_has(mask, position))
                .map(|_| i)
        });
    Ok(column_mask(current.fields().len(), columns))
}

/// The schema `schema_id` of `table`: one the table had, or an error saying it is newer
/// (the reader's catalog is behind: read again) or unknown (corrupt).
fn schema_of(table: &TableInfo, schema_id: SchemaId) -> Result<&SchemaRef, PkCodecError> {
    table
        .schema_of(schema_id)
        .ok_or(if schema_id > table.schema_id {
            PkCodecError::NewerSchema {
                schema_id: schema_id.0,
                known: table.schema_id.0,
            }
        } else {
            PkCodecError::Malformed {
                what: "row image",
                reason: format!(
                    "written under schema {}, which table {} never had",
                    schema_id.0,
                    table.qualified_name()
                ),
            }
        })
}

/// `batch` (rows of an earlier schema of `table`) with the current columns: matched by id,
/// widened where ALTER widened them, null where added since.
fn to_current(table: &TableInfo, batch: &RecordBatch) -> Result<RecordBatch, PkCodecError> {
    let current = &table.descriptor.schema;
    let old = batch.schema();
    let old = ColumnPositions::of(&old);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(current.fields().len());
    for field in current.fields() {
        let column = match old.of_field(field) {
            None => new_null_array(field.data_type(), batch.num_rows()),
            Some(i) if batch.column(i).data_type() == field.data_type() => batch.column(i).clone(),
            Some(i) => widen(batch.column(i), field.data_type()).ok_or_else(|| {
                PkCodecError::Malformed {
                    what: "row image",
                    reason: format!(
                        "column `{}` is {} in its schema and {} now, which is no widening",
                        field.name(),
                        batch.column(i).data_type(),
                        field.data_type()
                    ),
                }
            })?,
        };
        columns.push(column);
    }
    RecordBatch::try_new(current.clone(), columns).map_err(|error| PkCodecError::Malformed {
        what: "row image",
        reason: format!("does not fit the current schema: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};
    use arrow_array::{Int32Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;
    use crate::ids::{DatabaseId, TableId, TimestampMicros};
    use crate::table::{SchemaHistory, TableAlteration, TableDescriptor};

    /// A primary-key table `(id, qty int32, note)`, and the same table after `qty` widened to
    /// int64, `note` was dropped and `extra` added.
    fn tables() -> (TableInfo, TableInfo) {
        let descriptor = TableDescriptor {
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("qty", DataType::Int32, true),
                Field::new("note", DataType::Utf8, true),
            ])),
            bucket_count: 1,
            bucket_key: vec![],
            partition_key: vec![],
            primary_key: vec!["id".to_owned()],
            comment: String::new(),
            options: Default::default(),
        }
        .with_defaults();
        let before = TableInfo {
            id: TableId(1),
            database: "d".into(),
            database_id: DatabaseId(1),
            name: "t".into(),
            schema_id: SchemaId(0),
            descriptor: descriptor.clone(),
            created_at: TimestampMicros(0),
            previous_schemas: SchemaHistory::default(),
            partitions: Default::default(),
        };
        let altered = descriptor
            .altered(&TableAlteration {
                drop_columns: vec!["note".to_owned()],
                add_columns: vec![Arc::new(Field::new("extra", DataType::Utf8, true))],
                widen_columns: vec![Arc::new(Field::new("qty", DataType::Int64, true))],
                ..TableAlteration::default()
            })
            .expect("altered");
        let after = TableInfo {
            schema_id: SchemaId(1),
            descriptor: altered,
            previous_schemas: SchemaHistory::default().with(SchemaId(0), descriptor.schema),
            partitions: Default::default(),
            ..before.clone()
        };
        (before, after)
    }

    fn images(table: &TableInfo, batch: &RecordBatch) -> Vec<Vec<u8>> {
        let encoder = RowEncoder::new(batch, table.schema_id).expect("encoder");
        (0..batch.num_rows())
            .map(|row| {
                let mut image = Vec::new();
                encoder.encode(row, &mut image).expect("image");
                image
            })
            .collect()
    }

    #[test]
    fn images_of_an_earlier_schema_read_under_the_current_one_by_column_id() {
        let (before, after) = tables();
        let old = RecordBatch::try_new(
            before.descriptor.schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(Int32Array::from(vec![Some(7), None])),
                Arc::new(StringArray::from(vec!["a", "b"])),
            ],
        )
        .expect("batch");
        let new = RecordBatch::try_new(
            after.descriptor.schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![3])),
                Arc::new(Int64Array::from(vec![1 << 40])),
                Arc::new(StringArray::from(vec!["x"])),
            ],
        )
        .expect("batch");
        let mut all = images(&before, &old);
        all.extend(images(&after, &new));
        // Old and new images mixed, in order.
        let refs: Vec<&[u8]> = vec![&all[0], &all[2], &all[1]];
        let rows = decode_images(&after, &refs).expect("decodes");
        assert_eq!(rows.schema(), after.descriptor.schema);
        let ids = rows.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values().to_vec(), [1, 3, 2]);
        let qty = rows.column(1).as_primitive::<Int64Type>();
        assert_eq!(
            qty.iter().collect::<Vec<_>>(),
            [Some(7), Some(1 << 40), None]
        );
        // `note` was dropped; `extra` is null in the old rows.
        let extra = rows.column(2).as_string::<i32>();
        assert_eq!(extra.iter().collect::<Vec<_>>(), [None, Some("x"), None]);
        // A current image is not copied; an old one is re-encoded under the current schema.
        assert!(matches!(
            upgrade_image(&after, &all[2]),
            Ok(Cow::Borrowed(_))
        ));
        let upgraded = upgrade_image(&after, &all[0]).expect("upgrades");
        assert_eq!(image_header(&upgraded).map(|h| h.0), Ok(SchemaId(1)));
        // The old table cannot read an image of a schema it does not know yet.
        assert!(matches!(
            decode_images(&before, &[&all[2]]),
            Err(PkCodecError::NewerSchema {
                schema_id: 1,
                known: 0
            })
        ));
        let qty_old = decode_images(&before, &[&all[0]]).expect("its own schema");
        assert_eq!(qty_old.column(1).as_primitive::<Int32Type>().value(0), 7);
    }

    #[test]
    fn a_partial_update_mask_of_an_earlier_schema_names_the_same_columns_now() {
        let (_, after) = tables();
        // Schema 0 wrote `id` and `note`; `note` is gone, `extra` was not known.
        let mask = column_mask(3, [0, 2]);
        let upgraded = upgrade_mask(&after, SchemaId(0), &mask).expect("upgrades");
        assert_eq!(upgraded, column_mask(3, [0]));
        let mask = column_mask(3, [1]);
        assert_eq!(
            upgrade_mask(&after, SchemaId(0), &mask).expect("upgrades"),
            column_mask(3, [1])
        );
        assert!(upgrade_mask(&after, SchemaId(9), &mask).is_err());
    }
}
