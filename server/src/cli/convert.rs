//! Conversions the CLI needs: a compact schema syntax, JSON lines / CSV input read with the
//! table's schema, and table / JSON lines output.

use anyhow::{Context, anyhow, bail};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use inlet_core::column_defaults::{DEFAULT_KEY, doc_of};
use std::io::Read;
use std::io::{BufRead, Write};
use std::str::FromStr;
use std::sync::Arc;

/// Parses `name:type[ not null], ...`. Types are short names (`int64`, `string`,
/// `timestamp`, ...) or any Arrow type in its display form (`Decimal128(10, 2)`).
pub fn parse_schema(spec: &str) -> anyhow::Result<Schema> {
    let mut fields = Vec::new();
    for column in split_top_level(spec) {
        let column = column.trim();
        if column.is_empty() {
            continue;
        }
        let (name, rest) = column
            .split_once(':')
            .ok_or_else(|| anyhow!("column `{column}` needs a type: write `name:type`"))?;
        let rest = rest.trim();
        let (type_name, nullable) = match rest.to_ascii_lowercase().strip_suffix("not null") {
            Some(stripped) => (rest[..stripped.len()].trim(), false),
            None => (rest, true),
        };
        fields.push(Field::new(name.trim(), parse_type(type_name)?, nullable));
    }
    if fields.is_empty() {
        bail!("schema `{spec}` has no columns");
    }
    Ok(Schema::new(fields))
}

/// Splits at commas that are not inside parentheses.
fn split_top_level(spec: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0i32, 0, Vec::new());
    for (i, c) in spec.char_indices() {
        match c {
            '(' | '<' => depth += 1,
            ')' | '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&spec[start..]);
    parts
}

fn parse_type(name: &str) -> anyhow::Result<DataType> {
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
    Ok(match name.to_ascii_lowercase().as_str() {
        "bool" | "boolean" => DataType::Boolean,
        "int8" | "tinyint" => DataType::Int8,
        "int16" | "smallint" => DataType::Int16,
        "int32" | "int" | "integer" => DataType::Int32,
        "int64" | "bigint" | "long" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" | "float" | "real" => DataType::Float32,
        "float64" | "double" => DataType::Float64,
        "string" | "utf8" | "text" | "varchar" => DataType::Utf8,
        "binary" | "bytes" => DataType::Binary,
        "date" | "date32" => DataType::Date32,
        "timestamp" | "timestamptz" => utc(),
        "timestamp_ntz" => DataType::Timestamp(TimeUnit::Microsecond, None),
        _ => DataType::from_str(name).map_err(|_| {
            anyhow!("unknown column type `{name}` (try int64, string, double, bool, timestamp)")
        })?,
    })
}

/// Input formats `inlet produce` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// One JSON object per line.
    Json,
    /// Comma-separated values with a header row.
    Csv,
}

/// Reads all of `input` as batches of at most `batch_rows` rows with the table's schema.
/// Every defect names the line (JSON) or record (CSV) at fault.
pub fn read_input(
    input: Box<dyn BufRead>,
    format: InputFormat,
    schema: &SchemaRef,
    batch_rows: usize,
) -> anyhow::Result<Vec<RecordBatch>> {
    let batches: Result<Vec<RecordBatch>, _> = match format {
        InputFormat::Json => arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(batch_rows)
            .with_strict_mode(true)
            .build(input)
            .context("cannot read json lines")?
            .collect(),
        InputFormat::Csv => {
            let (header, input) = read_csv_header(input)?;
            arrow_csv::ReaderBuilder::new(csv_schema(&header, schema)?)
                .with_header(true)
                .with_batch_size(batch_rows)
                .build_buffered(input)
                .context("cannot read csv")?
                .collect()
        }
    };
    batches.map_err(|e| anyhow!("invalid input for this table's schema: {e}"))
}

/// Reads the CSV header line and returns its column names and the input with the header
/// put back in front.
fn read_csv_header(mut input: Box<dyn BufRead>) -> anyhow::Result<(Vec<String>, Box<dyn BufRead>)> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("cannot read the csv header")?;
    let names = line
        .trim_end_matches(['\r', '\n'])
        .split(',')
        .map(|name| name.trim().trim_matches('"').to_owned())
        .collect();
    let rest = std::io::Cursor::new(line.into_bytes()).chain(input);
    Ok((names, Box::new(rest)))
}

/// The table's fields in the order the CSV header names them; columns the file leaves out
/// are filled with nulls by the server (or rejected if required).
fn csv_schema(header: &[String], table: &SchemaRef) -> anyhow::Result<SchemaRef> {
    let fields = header
        .iter()
        .map(|name| {
            table
                .field_with_name(name)
                .cloned()
                .map_err(|_| anyhow!("csv column `{name}` is not a column of the table"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Output formats `inlet consume` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// One JSON object per line.
    Json,
}

/// Writes batches in the chosen format.
pub fn write_output(
    out: &mut dyn Write,
    format: OutputFormat,
    batches: &[RecordBatch],
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table => {
            if batches.iter().any(|b| b.num_rows() > 0) {
                writeln!(
                    out,
                    "{}",
                    arrow_cast::pretty::pretty_format_batches(batches)?
                )?;
            }
        }
        OutputFormat::Json => {
            let mut writer = arrow_json::LineDelimitedWriter::new(out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
    }
    Ok(())
}

/// Parses a `--from` value: `earliest`, `latest`, `snapshot` (primary-key tables), an
/// offset, or an RFC 3339 time.
pub fn parse_start(value: &str) -> anyhow::Result<inlet_proto::v1::StartPosition> {
    use inlet_proto::v1::start_position::Position;
    let position = match value {
        "earliest" => Position::Earliest(true),
        "latest" => Position::Latest(true),
        "snapshot" => Position::Snapshot(true),
        _ => match value.parse::<u64>() {
            Ok(offset) => Position::Offset(offset),
            Err(_) => {
                let nanos = arrow_cast::parse::string_to_timestamp_nanos(value).map_err(|_| {
                    anyhow!(
                        "invalid --from `{value}`: use earliest, latest, snapshot, an offset or \
                         a time like 2026-01-31T12:00:00Z"
                    )
                })?;
                Position::TimestampMicros(nanos.div_euclid(1000))
            }
        },
    };
    Ok(inlet_proto::v1::StartPosition {
        position: Some(position),
    })
}

/// One line per column, for `table describe`: name, type, `not null`, its default and its
/// doc.
pub fn describe_schema(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| {
            let null = if f.is_nullable() { "" } else { " not null" };
            let default = f
                .metadata()
                .get(DEFAULT_KEY)
                .map(|value| format!(" default {value}"))
                .unwrap_or_default();
            let doc = doc_of(f)
                .map(|doc| format!("  -- {doc}"))
                .unwrap_or_default();
            format!("  {}: {}{null}{default}{doc}", f.name(), f.data_type())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The seeded mutations the decoder tests use (core/tests/support), for the CLI's inputs.
#[cfg(test)]
#[path = "../../../core/tests/support/mutate.rs"]
mod mutate;

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use inlet_core::rng::SplitMix64;

    use super::mutate;
    use super::*;

    /// Mutated schema specs, positions and input files (the bytes a user hands the CLI) get
    /// an error or a value, never a panic.
    #[test]
    fn described_columns_show_their_defaults_and_docs() {
        let tier = Field::new("tier", DataType::Int32, false).with_metadata(
            [
                (DEFAULT_KEY.to_owned(), "3".to_owned()),
                (
                    inlet_core::column_defaults::DOC_KEY.to_owned(),
                    "service tier".to_owned(),
                ),
            ]
            .into_iter()
            .collect(),
        );
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, true), tier]);
        assert_eq!(
            describe_schema(&schema),
            "  id: Int64\n  tier: Int32 not null default 3  -- service tier"
        );
    }

    #[test]
    fn mutated_cli_input_never_panics() {
        let schema: SchemaRef = Arc::new(
            parse_schema("id:int64 not null, name:string, at:timestamp, price:Decimal128(10, 2)")
                .expect("parses"),
        );
        let json = br#"{"id":1,"name":"a","at":"2024-01-01T00:00:00Z","price":"1.25"}
{"id":2,"name":null,"at":null,"price":null}
"#;
        let csv = b"id,name,at,price\n1,a,2024-01-01T00:00:00Z,1.25\n2,,,\n";
        let spec = b"id:int64 not null, name:string, price:Decimal128(10, 2), t:timestamp";
        let mut rng = SplitMix64::new(0xc11);
        for case in 0..5_000 {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let input = mutate::mutate(json, &mut rng);
                let _ = read_input(
                    Box::new(std::io::Cursor::new(input)),
                    InputFormat::Json,
                    &schema,
                    7,
                );
                let input = mutate::mutate(csv, &mut rng);
                let _ = read_input(
                    Box::new(std::io::Cursor::new(input)),
                    InputFormat::Csv,
                    &schema,
                    7,
                );
                let spec = mutate::mutate(spec, &mut rng);
                let _ = parse_schema(&String::from_utf8_lossy(&spec));
                let start = mutate::mutate(b"2024-01-01T00:00:01Z", &mut rng);
                let _ = parse_start(&String::from_utf8_lossy(&start));
            }));
            assert!(outcome.is_ok(), "case {case} panicked");
        }
    }

    #[test]
    fn parses_the_compact_schema_syntax() {
        let schema = parse_schema("id:int64 not null, name:string, price:Decimal128(10, 2)")
            .expect("parses");
        assert_eq!(schema.fields().len(), 3);
        assert!(!schema.field(0).is_nullable());
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert_eq!(schema.field(2).data_type(), &DataType::Decimal128(10, 2));
        assert!(parse_schema("id").is_err());
        assert!(parse_schema("id:nonsense").is_err());
    }

    #[test]
    fn parses_start_positions() {
        use inlet_proto::v1::start_position::Position;
        assert_eq!(
            parse_start("42").expect("offset").position,
            Some(Position::Offset(42))
        );
        assert_eq!(
            parse_start("1970-01-01T00:00:01Z").expect("time").position,
            Some(Position::TimestampMicros(1_000_000))
        );
        assert!(parse_start("yesterday").is_err());
    }
}
