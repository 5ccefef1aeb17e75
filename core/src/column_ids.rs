//! Stable column ids: what lets a column be renamed or dropped while rows written before keep
//! their meaning.
//!
//! Each column of a table gets an id when the table is created (1, 2, ... in schema order) or
//! when ALTER adds it (one above the highest id the table ever had). A rename or a widening
//! keeps the id; a drop retires it and no later column gets it again. Chunks and lake files
//! keep the schema they were written under, and a read maps the columns it wants to theirs by
//! id, never by name: a column dropped and then added again under the same name is a new
//! column, and reads as null in the rows written before.
//!
//! The id is the top-level field's Arrow metadata [`COLUMN_ID_KEY`] (as Iceberg's Arrow
//! mapping carries `PARQUET:field_id`), so it travels with every stored and sent schema; the
//! highest id ever given is the schema's metadata [`LAST_COLUMN_ID_KEY`] (Iceberg's
//! `last-column-id`). Schemas stored before ids existed are numbered when loaded
//! ([`number_history`]): until then columns could only be added and widened, so a name meant
//! one column throughout.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_schema::{Field, FieldRef, Schema, SchemaRef};

use crate::ids::SchemaId;

/// Field metadata key holding a column's id.
pub const COLUMN_ID_KEY: &str = "inlet.column.id";
/// Schema metadata key holding the highest column id the table ever gave.
pub const LAST_COLUMN_ID_KEY: &str = "inlet.last-column-id";

/// A column's id, stable across renames and widenings, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColumnId(pub u32);

/// The id of `field`, if it has one.
pub fn column_id(field: &Field) -> Option<ColumnId> {
    field
        .metadata()
        .get(COLUMN_ID_KEY)
        .and_then(|id| id.parse().ok())
        .map(ColumnId)
}

/// `field` with id `id`.
pub fn with_column_id(field: &Field, id: ColumnId) -> FieldRef {
    let mut metadata = field.metadata().clone();
    metadata.insert(COLUMN_ID_KEY.to_owned(), id.0.to_string());
    Arc::new(field.clone().with_metadata(metadata))
}

/// `field` without an id: what reads return (ids are the catalog's bookkeeping, not data).
pub fn without_column_id(field: &Field) -> Field {
    let mut metadata = field.metadata().clone();
    metadata.remove(COLUMN_ID_KEY);
    field.clone().with_metadata(metadata)
}

/// The highest column id `schema` records as ever given, or else the highest of its columns'.
pub fn last_column_id(schema: &Schema) -> ColumnId {
    let recorded = schema
        .metadata()
        .get(LAST_COLUMN_ID_KEY)
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    let highest = schema
        .fields()
        .iter()
        .filter_map(|field| column_id(field))
        .map(|id| id.0)
        .max()
        .unwrap_or(0);
    ColumnId(recorded.max(highest))
}

/// The position of the column with id `id` in `schema`.
pub fn position_of(schema: &Schema, id: ColumnId) -> Option<usize> {
    schema
        .fields()
        .iter()
        .position(|field| column_id(field) == Some(id))
}

/// Where each column of one schema is, by id: built once per schema a read maps from, so
/// mapping a wide table's columns costs one pass, not one scan per column.
pub struct ColumnPositions<'a> {
    schema: &'a Schema,
    by_id: HashMap<ColumnId, usize>,
}

impl<'a> ColumnPositions<'a> {
    pub fn of(schema: &'a Schema) -> Self {
        let by_id = schema
            .fields()
            .iter()
            .enumerate()
            .filter_map(|(i, field)| Some((column_id(field)?, i)))
            .collect();
        Self { schema, by_id }
    }

    /// The position of the column `wanted` stands for: the one with its id, or, when either
    /// side has no ids (a schema built by hand, not by the catalog), the one of its name.
    pub fn of_field(&self, wanted: &Field) -> Option<usize> {
        match column_id(wanted) {
            Some(id) if !self.by_id.is_empty() => self.by_id.get(&id).copied(),
            _ => self.schema.index_of(wanted.name()).ok(),
        }
    }
}

/// `schema` with each of `fields` given the next id after `last` where it has none, and the
/// last id recorded.
pub fn numbered(schema: &Schema, fields: Vec<FieldRef>, last: ColumnId) -> SchemaRef {
    let mut last = last;
    let fields: Vec<FieldRef> = fields
        .into_iter()
        .map(|field| match column_id(&field) {
            Some(_) => field,
            None => {
                last = ColumnId(last.0 + 1);
                with_column_id(&field, last)
            }
        })
        .collect();
    let mut metadata = schema.metadata().clone();
    metadata.insert(LAST_COLUMN_ID_KEY.to_owned(), last.0.to_string());
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// `schema` with `added` after its columns, each given the next id above every id the table
/// ever gave (whatever id a definition carried goes: ids are the catalog's to give).
pub fn with_added(schema: &Schema, added: &[FieldRef]) -> SchemaRef {
    let mut last = last_column_id(schema);
    let added = added.iter().map(|field| {
        last = ColumnId(last.0 + 1);
        with_column_id(field, last)
    });
    let fields: Vec<FieldRef> = schema.fields().iter().cloned().chain(added).collect();
    let mut metadata = schema.metadata().clone();
    metadata.insert(LAST_COLUMN_ID_KEY.to_owned(), last.0.to_string());
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// `schema` as a new table's: its columns numbered 1, 2, ... in order, whatever ids the
/// definition carried (a schema copied from another table, say).
pub fn numbered_afresh(schema: &Schema) -> SchemaRef {
    let fields = schema
        .fields()
        .iter()
        .map(|field| Arc::new(without_column_id(field)))
        .collect();
    numbered(schema, fields, ColumnId(0))
}

/// A table's schemas by id (the current one among them) with every column numbered: schemas
/// stored before ids existed get, in version order, the id their name had in an earlier
/// version, or the next one. Schemas that have ids keep them.
pub fn number_history(schemas: BTreeMap<SchemaId, SchemaRef>) -> BTreeMap<SchemaId, SchemaRef> {
    let mut by_name: HashMap<String, ColumnId> = HashMap::new();
    let mut last = ColumnId(0);
    let mut numbered_schemas = BTreeMap::new();
    for (version, schema) in schemas {
        let fields: Vec<FieldRef> = schema
            .fields()
            .iter()
            .map(|field| {
                if let Some(id) = column_id(field) {
                    by_name.insert(field.name().clone(), id);
                    last = last.max(id);
                    return field.clone();
                }
                let id = *by_name.entry(field.name().clone()).or_insert_with(|| {
                    last = ColumnId(last.0 + 1);
                    last
                });
                with_column_id(field, id)
            })
            .collect();
        last = last.max(last_column_id(&schema));
        numbered_schemas.insert(version, numbered(&schema, fields, last));
    }
    numbered_schemas
}

/// The newest of `schemas` (by id, in order) up to which every column kept its name and none
/// was dropped: what was written before renames and drops existed names its columns as this
/// schema does. `None` for no schemas.
pub fn names_stable_until<'a>(
    schemas: impl IntoIterator<Item = (SchemaId, &'a SchemaRef)>,
) -> Option<SchemaId> {
    let mut names: HashMap<ColumnId, &str> = HashMap::new();
    let mut stable = None;
    for (version, schema) in schemas {
        let ids: HashMap<ColumnId, &str> = schema
            .fields()
            .iter()
            .filter_map(|field| Some((column_id(field)?, field.name().as_str())))
            .collect();
        let kept = names
            .iter()
            .all(|(id, name)| ids.get(id).is_some_and(|now| now == name));
        if !kept {
            break;
        }
        names = ids;
        stable = Some(version);
    }
    stable
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;

    use super::*;

    fn schema(fields: &[&str]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|name| Field::new(*name, DataType::Int64, true))
                .collect::<Vec<_>>(),
        ))
    }

    fn ids(schema: &Schema) -> Vec<(String, u32)> {
        schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), column_id(f).map_or(0, |id| id.0)))
            .collect()
    }

    #[test]
    fn a_new_table_is_numbered_from_one_and_records_its_last_id() {
        let numbered = numbered_afresh(&schema(&["a", "b", "c"]));
        assert_eq!(
            ids(&numbered),
            [("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]
        );
        assert_eq!(last_column_id(&numbered), ColumnId(3));
        // Ids a copied schema carried are not kept.
        let copied = numbered_afresh(&Schema::new(vec![
            numbered.field(2).clone(),
            numbered.field(0).clone(),
        ]));
        assert_eq!(ids(&copied), [("c".into(), 1), ("a".into(), 2)]);
    }

    #[test]
    fn stored_schemas_without_ids_are_numbered_by_name_in_version_order() {
        let history = BTreeMap::from([
            (SchemaId(0), schema(&["a", "b"])),
            (SchemaId(1), schema(&["a", "b", "c"])),
            (SchemaId(2), schema(&["a", "b", "c", "d"])),
        ]);
        let numbered = number_history(history);
        assert_eq!(
            ids(&numbered[&SchemaId(0)]),
            [("a".into(), 1), ("b".into(), 2)]
        );
        assert_eq!(
            ids(&numbered[&SchemaId(2)]),
            [
                ("a".into(), 1),
                ("b".into(), 2),
                ("c".into(), 3),
                ("d".into(), 4)
            ]
        );
        assert_eq!(last_column_id(&numbered[&SchemaId(2)]), ColumnId(4));
        // Numbering twice changes nothing.
        assert_eq!(number_history(numbered.clone()), numbered);
    }

    #[test]
    fn names_are_stable_until_the_first_rename_or_drop() {
        let first = numbered_afresh(&schema(&["a", "b"]));
        let mut fields = first.fields().to_vec();
        fields.push(Arc::new(Field::new("c", DataType::Int64, true)));
        let added = numbered(&first, fields, ColumnId(2));
        let renamed = Arc::new(Schema::new(vec![
            Arc::new(added.field(0).clone().with_name("z")),
            added.fields()[1].clone(),
            added.fields()[2].clone(),
        ]));
        let dropped = Arc::new(Schema::new(vec![added.fields()[0].clone()]));
        let stable = |later: &SchemaRef| {
            let history = [
                (SchemaId(0), &first),
                (SchemaId(1), &added),
                (SchemaId(2), later),
            ];
            names_stable_until(history)
        };
        assert_eq!(stable(&renamed), Some(SchemaId(1)));
        assert_eq!(stable(&dropped), Some(SchemaId(1)));
        assert_eq!(stable(&added), Some(SchemaId(2)));
    }

    #[test]
    fn a_column_is_matched_by_id_and_by_name_only_without_ids() {
        let table = numbered_afresh(&schema(&["a", "b"]));
        let renamed = Field::new("z", DataType::Int64, true);
        let renamed = with_column_id(&renamed, ColumnId(2));
        assert_eq!(ColumnPositions::of(&table).of_field(&renamed), Some(1));
        // Same name, another id: a different column.
        let other = with_column_id(&Field::new("a", DataType::Int64, true), ColumnId(7));
        assert_eq!(ColumnPositions::of(&table).of_field(&other), None);
        // Hand-built schemas without ids match by name.
        assert_eq!(
            ColumnPositions::of(&schema(&["b", "a"])).of_field(&Field::new(
                "a",
                DataType::Int64,
                true
            )),
            Some(1)
        );
    }
}
