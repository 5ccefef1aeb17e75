//! Partitions of a table: which columns may form a partition key, the values that name a
//! row's partition, and the set of a table's partitions as the catalog holds it.
//!
//! A partitioned table's rows go to a partition (by the values of its partition-key columns),
//! then to a bucket of it: each partition has the table's bucket count, and each of its
//! buckets is a stream of its own ([`StreamId`](crate::ids::StreamId)). A table without a
//! partition key has one partition, [`UNPARTITIONED`]; a partitioned table's partitions are
//! numbered from 1 by the index owner, in creation order, and an id is never reused.
//!
//! A partition is named by its values as strings (Fluss's partition names): integers in
//! decimal, dates as `YYYY-MM-DD`, booleans as `true`/`false`, strings as they are. A value
//! becomes a path segment in the lake (`day=2026-12-07`), so it is 1 to
//! [`MAX_PARTITION_VALUE_BYTES`] ASCII letters, digits, `_`, `-` and `.`, and not `.` or `..`.

pub mod auto;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::DataType;

use crate::ids::{PartitionId, TimestampMicros};

/// The partition of every row of a table without a partition key.
pub const UNPARTITIONED: PartitionId = PartitionId(0);

/// Most columns a partition key may have.
pub const MAX_PARTITION_KEY_COLUMNS: usize = 4;

/// Most partitions a table may have at once: a year of hourly partitions. Each partition is
/// a set of streams the catalog lists on every node, so the count is bounded.
pub const MAX_PARTITIONS_PER_TABLE: usize = 10_000;

/// Most streams (partitions × buckets) a partitioned table may have: every node lists a
/// table's streams for its offsets, retention and status, so their number is bounded too.
pub const MAX_STREAMS_PER_TABLE: usize = 100_000;

/// Most partitions one request (an append, or an explicit add) may create: one malformed
/// batch (a timestamp in a string column) must not fill the catalog with thousands.
pub const MAX_PARTITIONS_ADDED_AT_ONCE: usize = 64;

/// Longest value of one partition-key column, in bytes.
pub const MAX_PARTITION_VALUE_BYTES: usize = 128;

/// Between the values of a multi-column partition's name (Fluss's separator).
pub const PARTITION_NAME_SEPARATOR: &str = "$";

/// Whether a column of this type may be in a partition key: a type whose values have one
/// exact string form (no floats, no nested types).
pub fn is_partition_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Date32
            | DataType::Boolean
    )
}

/// Checks one partition value as a user or a row gives it.
pub fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("a partition value cannot be empty".to_owned());
    }
    if value.len() > MAX_PARTITION_VALUE_BYTES {
        return Err(format!(
            "partition value `{}...` is {} bytes, more than the limit of \
             {MAX_PARTITION_VALUE_BYTES}",
            value.chars().take(32).collect::<String>(),
            value.len()
        ));
    }
    if value == "." || value == ".." {
        return Err(format!("partition value `{value}` is not allowed"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "partition value `{value}` contains {c:?}; values are ASCII letters, digits, `_`, \
             `-` and `.`"
        ));
    }
    Ok(())
}

/// Checks a partition value given as text (a partition created up front) against its
/// column's type: it must be the exact string form a row of that type has ([`partition_rows`]),
/// or no row could ever be in the partition.
pub fn check_value_of_type(value: &str, data_type: &DataType) -> Result<(), String> {
    check_value(value)?;
    let text = StringArray::from(vec![value]);
    let typed = arrow_cast::cast::cast_with_options(
        &text,
        data_type,
        &arrow_cast::cast::CastOptions {
            safe: false,
            ..Default::default()
        },
    )
    .map_err(|_| format!("partition value `{value}` is not a {data_type}"))?;
    let back = arrow_cast::cast(&typed, &DataType::Utf8).map_err(|e| e.to_string())?;
    let back = back.as_any().downcast_ref::<StringArray>();
    match back.map(|back| back.value(0)) {
        Some(same) if same == value => Ok(()),
        Some(canonical) => Err(format!(
            "partition value `{value}` of a {data_type} column is written `{canonical}`"
        )),
        None => Err(format!("partition value `{value}` is not a {data_type}")),
    }
}

/// The name of the partition with these values: the values joined by `$`.
pub fn partition_name(values: &[String]) -> String {
    values.join(PARTITION_NAME_SEPARATOR)
}

/// One partition of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub id: PartitionId,
    /// The partition key's values, in partition-key order.
    pub values: Vec<String>,
    pub created_at: TimestampMicros,
}

impl Partition {
    pub fn name(&self) -> String {
        partition_name(&self.values)
    }
}

/// The live partitions of a table, by id, with their values indexed. Empty for a table without
/// a partition key (its one partition is [`UNPARTITIONED`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Partitions {
    by_id: Arc<BTreeMap<PartitionId, Partition>>,
    by_values: Arc<BTreeMap<Vec<String>, PartitionId>>,
    /// The highest id ever given in this table, dropped partitions included.
    last_id: u32,
}

impl Partitions {
    /// The partitions of a table whose highest partition id ever given is `last_id`.
    pub fn new(partitions: impl IntoIterator<Item = Partition>, last_id: u32) -> Self {
        let by_id: BTreeMap<PartitionId, Partition> =
            partitions.into_iter().map(|p| (p.id, p)).collect();
        let by_values = by_id.values().map(|p| (p.values.clone(), p.id)).collect();
        let last_id = by_id.keys().map(|id| id.0).max().unwrap_or(0).max(last_id);
        Self {
            by_id: Arc::new(by_id),
            by_values: Arc::new(by_values),
            last_id,
        }
    }

    /// These partitions without `dropped` (the highest id given stays).
    pub fn without(&self, dropped: &[PartitionId]) -> Self {
        Self::new(
            self.by_id
                .values()
                .filter(|p| !dropped.contains(&p.id))
                .cloned(),
            self.last_id,
        )
    }

    /// These partitions and `added`.
    pub fn with(&self, added: impl IntoIterator<Item = Partition>) -> Self {
        Self::new(self.by_id.values().cloned().chain(added), self.last_id)
    }

    pub fn get(&self, id: PartitionId) -> Option<&Partition> {
        self.by_id.get(&id)
    }

    /// The id of the partition with these values, if it exists.
    pub fn find(&self, values: &[String]) -> Option<PartitionId> {
        self.by_values.get(values).copied()
    }

    /// The partitions in id (creation) order.
    pub fn iter(&self) -> impl Iterator<Item = &Partition> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The id the next partition gets.
    pub fn next_id(&self) -> PartitionId {
        PartitionId(self.last_id + 1)
    }

    pub fn last_id(&self) -> u32 {
        self.last_id
    }
}

/// Why rows could not be given a partition.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum PartitionValueError {
    #[error("partition-key column `{column}` is not in the batch")]
    MissingColumn { column: String },
    #[error("partition-key column `{column}` is null in row {row}; partition keys cannot be null")]
    Null { column: String, row: usize },
    #[error("partition-key column `{column}`: {reason}")]
    Invalid { column: String, reason: String },
}

/// One partition's rows of a batch: its values, and the rows (in batch order) that have them.
pub type PartitionRows = (Vec<String>, Vec<u32>);

/// The rows of `batch` by partition, in the order each partition first appears: each row's
/// partition values are the string form of its `columns` (the partition key, by name). Each
/// column is cast to text once and rows are grouped by slices of it, so a value is copied
/// and checked ([`check_value`]) once per partition, not once per row.
pub fn partition_rows(
    batch: &RecordBatch,
    columns: &[String],
) -> Result<Vec<PartitionRows>, PartitionValueError> {
    let mut texts = Vec::with_capacity(columns.len());
    for column in columns {
        let array =
            batch
                .column_by_name(column)
                .ok_or_else(|| PartitionValueError::MissingColumn {
                    column: column.clone(),
                })?;
        let invalid = |reason: String| PartitionValueError::Invalid {
            column: column.clone(),
            reason,
        };
        if !is_partition_type(array.data_type()) {
            return Err(invalid(format!(
                "type {} cannot name a partition",
                array.data_type()
            )));
        }
        let text = arrow_cast::cast(array, &DataType::Utf8).map_err(|e| invalid(e.to_string()))?;
        if let Some(row) = (0..text.len()).find(|row| text.is_null(*row)) {
            return Err(PartitionValueError::Null {
                column: column.clone(),
                row,
            });
        }
        texts.push(text);
    }
    let texts: Vec<&StringArray> = texts
        .iter()
        .map(|text| text.as_any().downcast_ref::<StringArray>())
        .collect::<Option<_>>()
        .ok_or_else(|| PartitionValueError::Invalid {
            column: columns.join(","),
            reason: "cast to text gave no strings".to_owned(),
        })?;
    let mut groups: Vec<PartitionRows> = Vec::new();
    let mut group_of: HashMap<Vec<&str>, usize> = HashMap::new();
    for row in 0..batch.num_rows() {
        let key: Vec<&str> = texts.iter().map(|text| text.value(row)).collect();
        let group = match group_of.get(&key) {
            Some(group) => *group,
            None => {
                for (value, column) in key.iter().zip(columns) {
                    check_value(value).map_err(|reason| PartitionValueError::Invalid {
                        column: column.clone(),
                        reason,
                    })?;
                }
                groups.push((key.iter().map(|v| v.to_string()).collect(), Vec::new()));
                group_of.insert(key, groups.len() - 1);
                groups.len() - 1
            }
        };
        groups[group].1.push(row as u32);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{BooleanArray, Date32Array, Int64Array};
    use arrow_schema::{Field, Schema};

    fn batch() -> Result<RecordBatch, arrow_schema::ArrowError> {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("day", DataType::Date32, false),
                Field::new("region", DataType::Utf8, false),
                Field::new("n", DataType::Int64, false),
                Field::new("flag", DataType::Boolean, false),
            ])),
            vec![
                Arc::new(Date32Array::from(vec![20_794, 20_795])),
                Arc::new(StringArray::from(vec!["eu-west", "us.east"])),
                Arc::new(Int64Array::from(vec![-5, 7])),
                Arc::new(BooleanArray::from(vec![true, false])),
            ],
        )
    }

    #[test]
    fn rows_get_the_string_form_of_their_partition_columns()
    -> Result<(), Box<dyn std::error::Error>> {
        let columns = ["day", "region", "n", "flag"].map(str::to_owned);
        let groups = partition_rows(&batch()?, &columns)?;
        assert_eq!(groups[0].0, ["2026-12-07", "eu-west", "-5", "true"]);
        assert_eq!(groups[1].0, ["2026-12-08", "us.east", "7", "false"]);
        assert_eq!(partition_name(&groups[0].0), "2026-12-07$eu-west$-5$true");
        Ok(())
    }

    #[test]
    fn rows_group_by_partition_in_first_appearance_order() -> Result<(), Box<dyn std::error::Error>>
    {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("r", DataType::Utf8, false)])),
            vec![Arc::new(StringArray::from(vec!["b", "a", "b", "c", "a"]))],
        )?;
        let groups = partition_rows(&batch, &["r".to_owned()])?;
        let expected: Vec<PartitionRows> = vec![
            (vec!["b".to_owned()], vec![0, 2]),
            (vec!["a".to_owned()], vec![1, 4]),
            (vec!["c".to_owned()], vec![3]),
        ];
        assert_eq!(groups, expected);
        Ok(())
    }

    #[test]
    fn values_that_cannot_be_a_path_segment_are_refused() {
        assert!(check_value("2026-12-07").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "é", "a$b"] {
            assert!(check_value(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_value(&"x".repeat(MAX_PARTITION_VALUE_BYTES)).is_ok());
        assert!(check_value(&"x".repeat(MAX_PARTITION_VALUE_BYTES + 1)).is_err());
    }

    #[test]
    fn a_null_or_unfit_value_names_its_column() -> Result<(), Box<dyn std::error::Error>> {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("r", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec![
                Some("a"),
                None,
                Some("b c"),
            ]))],
        )?;
        let error = partition_rows(&batch, &["r".to_owned()]).err();
        assert_eq!(
            error,
            Some(PartitionValueError::Null {
                column: "r".to_owned(),
                row: 1
            })
        );
        let slice = batch.slice(2, 1);
        assert!(matches!(
            partition_rows(&slice, &["r".to_owned()]),
            Err(PartitionValueError::Invalid { column, .. }) if column == "r"
        ));
        Ok(())
    }

    #[test]
    fn values_given_as_text_must_be_the_form_rows_have() {
        assert!(check_value_of_type("2026-12-07", &DataType::Date32).is_ok());
        assert!(check_value_of_type("notadate", &DataType::Date32).is_err());
        assert!(check_value_of_type("-7", &DataType::Int32).is_ok());
        assert!(check_value_of_type("007", &DataType::Int32).is_err());
        assert!(check_value_of_type("300", &DataType::Int8).is_err());
        assert!(check_value_of_type("true", &DataType::Boolean).is_ok());
        assert!(check_value_of_type("yes", &DataType::Boolean).is_err());
        assert!(check_value_of_type("any-thing", &DataType::Utf8).is_ok());
    }

    #[test]
    fn ids_are_never_reused_and_values_find_their_partition() {
        let partition = |id, value: &str| Partition {
            id: PartitionId(id),
            values: vec![value.to_owned()],
            created_at: TimestampMicros(0),
        };
        let partitions = Partitions::new([partition(1, "a"), partition(3, "c")], 5);
        assert_eq!(partitions.next_id(), PartitionId(6));
        assert_eq!(partitions.find(&["c".to_owned()]), Some(PartitionId(3)));
        assert_eq!(partitions.find(&["b".to_owned()]), None);
        let more = partitions.with([partition(6, "b")]);
        assert_eq!(more.find(&["b".to_owned()]), Some(PartitionId(6)));
        assert_eq!(more.next_id(), PartitionId(7));
        assert_eq!(more.len(), 3);
    }
}
