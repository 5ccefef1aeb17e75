//! The primary-key workload: what producers of primary-key tables write (upserts, partial
//! upserts and deletes over a small key space, so keys repeat), the producers themselves
//! (idempotent, retrying exactly like the log producers), the clients that look keys up and
//! read the changelog, and the audit's read of every changelog and key at the end. What is
//! checked against what is in [`crate::model::pk`].
//!
//! As for log tables, every value a write sends is a function of (producer, sequence, row)
//! ([`PkShape::of`], [`pk_row`]): a retry resends exactly the same rows, and the model knows
//! what any row it reads back must hold.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use futures::StreamExt;
use inlet_core::bucket::bucket_rows;
use inlet_core::error::HasKind;
use inlet_core::ids::Offset;
use inlet_core::table::{
    OPTION_MERGE_AGGREGATE_PREFIX, OPTION_MERGE_ENGINE, OPTION_MERGE_VERSION_COLUMN,
    TableDescriptor,
};
use inlet_index::ProducerRef;
use inlet_reader::{FetchRequest, SnapshotPart, StartPosition};
use inlet_writer::WriteOp;

use crate::config::{EngineSpec, PkTableSpec, projection};
use crate::data::{
    AppendId, AppendShape, COLUMNS, FLAG, KEY, PAYLOAD, PRODUCER, ROW, SCORE, SEQ, Value,
    column_array, column_name, read_rows, row_values, table_schema, value_at,
};
use crate::model::Ack;
use crate::model::pk::{
    ChangeObservation, ChangeRow, Found, Kind, LookupObservation, PkFinal, SnapshotObservation,
};
use crate::rng::{SimRng, hash};
use crate::workload::{Outcome, describe, on_node, retryable};
use crate::world::{DATABASE, Node, World};

/// What one write asks of its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PkOp {
    Upsert,
    /// An upsert of some columns: the identity columns, the key and a subset of the others.
    Partial,
    /// Deletes by key: the batches carry the key column only.
    Delete,
}

impl PkOp {
    fn write_op(self) -> WriteOp {
        match self {
            Self::Upsert => WriteOp::Upsert,
            Self::Partial => WriteOp::PartialUpsert,
            Self::Delete => WriteOp::Delete,
        }
    }
}

/// How a write is sent: its operation, rows, the table columns it carries (in table order)
/// and how the rows are split into batches.
#[derive(Clone, Debug)]
pub struct PkShape {
    pub op: PkOp,
    pub rows: u32,
    pub columns: Vec<usize>,
    pub splits: Vec<u32>,
    /// The key space of its table (keys `0..keys`).
    pub keys: u32,
}

impl PkShape {
    pub fn of(
        id: AppendId,
        max_rows: u32,
        deletes: f64,
        partials: f64,
        table: &PkTableSpec,
    ) -> Self {
        let mut rng = SimRng::new(hash(&[id.producer, id.seq, 0x9C0]));
        let roll = rng.unit();
        let op = if roll < deletes {
            PkOp::Delete
        } else if table.engine.allows_partial() && roll < deletes + partials {
            PkOp::Partial
        } else {
            PkOp::Upsert
        };
        let rows = rng.log_between(1, u64::from(max_rows.max(1))) as u32;
        let columns = match op {
            PkOp::Delete => vec![KEY],
            PkOp::Partial => [PRODUCER, SEQ, ROW, KEY]
                .into_iter()
                .chain(
                    [PAYLOAD, SCORE, FLAG]
                        .into_iter()
                        .filter(|_| rng.chance(0.5)),
                )
                .collect(),
            // A full upsert may leave nullable columns out: the writer fills them with nulls.
            PkOp::Upsert => (0..COLUMNS)
                .filter(|c| ![PAYLOAD, SCORE, FLAG].contains(c) || !rng.chance(0.1))
                .collect(),
        };
        let mut columns = columns;
        columns.sort_unstable();
        let parts = rng.between(1, 2).min(u64::from(rows)) as u32;
        let cut = if parts > 1 {
            rng.between(1, u64::from(rows - 1)) as u32
        } else {
            rows
        };
        let splits = if cut < rows {
            vec![cut, rows - cut]
        } else {
            vec![rows]
        };
        Self {
            op,
            rows,
            columns,
            splits,
            keys: table.keys,
        }
    }
}

/// Every value of row `row` of write `id`: a key from the table's small key space, the
/// identity columns, and the log workload's payload values where the write carries them
/// (nulls elsewhere). A delete's row matters only by its key.
pub fn pk_row(id: AppendId, shape: &PkShape, row: u32, max_payload: u32) -> [Value; 7] {
    let omitted = [PAYLOAD, SCORE, FLAG]
        .into_iter()
        .filter(|c| !shape.columns.contains(c))
        .collect();
    let log_shape = AppendShape {
        rows: shape.rows,
        splits: shape.splits.clone(),
        omitted,
        order: (0..COLUMNS).collect(),
    };
    let mut values = row_values(id, &log_shape, row, max_payload);
    let key = hash(&[id.producer, id.seq, u64::from(row), 0xCE1]) % u64::from(shape.keys.max(1));
    values[KEY] = Value::Int64(key as i64);
    values
}

pub fn key_of(values: &[Value; 7]) -> i64 {
    match values[KEY] {
        Value::Int64(key) => key,
        _ => unreachable!("the key column is int64"),
    }
}

/// The batches a write sends, exactly as every retry of it sends them.
pub fn pk_batches(id: AppendId, shape: &PkShape, max_payload: u32) -> Vec<RecordBatch> {
    let schema = table_schema();
    let fields: Vec<Field> = shape
        .columns
        .iter()
        .map(|c| schema.field(*c).clone())
        .collect();
    let batch_schema = Arc::new(Schema::new(fields));
    let mut batches = Vec::with_capacity(shape.splits.len());
    let mut first = 0;
    for rows in &shape.splits {
        let values: Vec<[Value; 7]> = (first..first + rows)
            .map(|row| pk_row(id, shape, row, max_payload))
            .collect();
        let arrays = shape
            .columns
            .iter()
            .map(|column| column_array(*column, &values))
            .collect();
        batches.push(
            RecordBatch::try_new(batch_schema.clone(), arrays).expect("pk write batch is valid"),
        );
        first += rows;
    }
    batches
}

/// The bucket of each key `0..keys` (the writer's routing by the bucket key, `key`).
pub fn key_buckets(keys: u32, buckets: u32) -> Vec<u32> {
    let column = Int64Array::from_iter_values(0..i64::from(keys));
    let schema = Arc::new(Schema::new(vec![Field::new("key", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(column)]).expect("a key batch");
    bucket_rows(&batch, &[0], buckets)
}

/// The table's definition: keyed by `key`, its merge engine as options, never in the lake.
pub fn descriptor(table: &PkTableSpec) -> TableDescriptor {
    let mut options = crate::world::lake_options(table.lake);
    options.insert(
        OPTION_MERGE_ENGINE.to_owned(),
        table.engine.name().to_owned(),
    );
    match &table.engine {
        EngineSpec::Versioned => {
            options.insert(OPTION_MERGE_VERSION_COLUMN.to_owned(), "seq".to_owned());
        }
        EngineSpec::Aggregation {
            payload,
            score,
            flag,
        } => {
            for (column, function) in [(PAYLOAD, payload), (SCORE, score), (FLAG, flag)] {
                options.insert(
                    format!("{OPTION_MERGE_AGGREGATE_PREFIX}{}", column_name(column)),
                    function.name().to_owned(),
                );
            }
        }
        EngineSpec::LastRow | EngineSpec::FirstRow => {}
    }
    TableDescriptor {
        schema: table_schema(),
        bucket_count: table.buckets,
        bucket_key: vec!["key".to_owned()],
        partition_key: Vec::new(),
        primary_key: vec!["key".to_owned()],
        comment: String::new(),
        options,
    }
}

/// Decodes a changelog batch whose first columns are `projection`, then `_bucket`, `_offset`,
/// `_timestamp` and `_change_type`.
pub fn change_rows(batch: &RecordBatch, projection: &[usize]) -> Result<Vec<ChangeRow>, String> {
    let columns = batch.num_columns();
    if columns != projection.len() + 4 {
        return Err(format!(
            "changelog batch has {columns} columns, expected {}",
            projection.len() + 4
        ));
    }
    let kinds = batch
        .column(columns - 1)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or("the last column of a changelog batch is not a string")?;
    let rows = read_rows(
        &batch
            .project(&(0..columns - 1).collect::<Vec<_>>())
            .map_err(|e| e.to_string())?,
        projection,
    )?;
    let key_at = projection.iter().position(|c| *c == KEY);
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            let kind = Kind::parse(kinds.value(i))
                .ok_or_else(|| format!("unknown change type `{}`", kinds.value(i)))?;
            let key = match key_at {
                Some(at) => match value_at(batch.column(at), KEY, i)? {
                    Value::Int64(key) => Some(key),
                    _ => None,
                },
                None => None,
            };
            Ok(ChangeRow {
                bucket: row.bucket,
                offset: row.offset,
                commit_ts: row.commit_ts,
                kind,
                fingerprints: row.fingerprints,
                identity: row.identity,
                key,
            })
        })
        .collect()
}

/// Looks `keys` up in `table` on `node`: for each key its row (with every column), if any.
async fn lookup(
    node: &Node,
    table: &str,
    keys: &[i64],
) -> Outcome<Result<Vec<Option<Found>>, String>, inlet_reader::FetchError> {
    let schema = Arc::new(Schema::new(vec![Field::new("key", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from_iter_values(keys.iter().copied()))],
    )
    .expect("a key batch");
    match on_node(
        node,
        None,
        node.reader.lookup(DATABASE, table, &[batch], &[]),
    )
    .await
    {
        Outcome::Done(result) => Outcome::Done(decode_lookup(keys, &result)),
        Outcome::Failed(error) => Outcome::Failed(error),
        Outcome::TimedOut => Outcome::TimedOut,
        Outcome::ProcessDied => Outcome::ProcessDied,
    }
}

fn decode_lookup(
    keys: &[i64],
    result: &inlet_reader::LookupResult,
) -> Result<Vec<Option<Found>>, String> {
    let rows = &result.rows;
    if result.found.len() != keys.len() {
        return Err(format!(
            "a lookup of {} keys returned {} found flags",
            keys.len(),
            result.found.len()
        ));
    }
    let hits = result.found.iter().filter(|f| **f).count();
    if rows.num_rows() != hits || rows.num_columns() != COLUMNS + 2 {
        return Err(format!(
            "a lookup found {hits} keys but returned {} rows of {} columns",
            rows.num_rows(),
            rows.num_columns()
        ));
    }
    let offsets = rows
        .column(COLUMNS)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or("a lookup's `_offset` is not int64")?;
    let buckets = rows
        .column(COLUMNS + 1)
        .as_any()
        .downcast_ref::<arrow_array::Int32Array>()
        .ok_or("a lookup's `_bucket` is not int32")?;
    let mut out = Vec::with_capacity(keys.len());
    let mut next = 0;
    for (key, found) in keys.iter().zip(&result.found) {
        if !found {
            out.push(None);
            continue;
        }
        let values = (0..COLUMNS)
            .map(|c| value_at(rows.column(c), c, next))
            .collect::<Result<Vec<_>, _>>()?;
        if values[KEY] != Value::Int64(*key) {
            return Err(format!(
                "a lookup of key {key} returned the row of {:?}",
                values[KEY]
            ));
        }
        let fingerprints: Vec<u64> = values
            .iter()
            .enumerate()
            .map(|(c, v)| v.fingerprint(c))
            .collect();
        out.push(Some(Found {
            offset: offsets.value(next) as u64,
            bucket: buckets.value(next) as u32,
            fingerprint: crate::model::combine(&fingerprints),
        }));
        next += 1;
    }
    Ok(out)
}

/// A producer of one primary-key table: upserts, partial upserts and deletes with increasing
/// sequence numbers, each retried with the same sequence number while its outcome is unknown.
pub async fn producer(world: Arc<World>, index: usize) {
    let spec = world.cfg.pk.producers[index].clone();
    let table = world.cfg.pk.tables[spec.table].clone();
    let mut rng = SimRng::new(world.cfg.seed).fork("pk-producer", index as u64);
    let name = format!("kp{index}");
    world.trace.event(format!(
        "{name} is producer {} on {}: up to {} rows per write, timeout {:?}, {} attempts",
        spec.id, table.name, spec.max_rows, spec.timeout, spec.attempts
    ));
    let mut seq = 0;
    loop {
        tokio::time::sleep(rng.millis(spec.think.0, spec.think.1)).await;
        if world.stopping.get() {
            break;
        }
        seq += 1;
        let id = AppendId {
            producer: spec.id,
            seq,
        };
        let shape = PkShape::of(id, spec.max_rows, spec.deletes, spec.partials, &table);
        let batches = pk_batches(id, &shape, world.cfg.max_payload);
        world.model().pk.sent(id, spec.table, &shape, world.now());
        let producer = Some(ProducerRef {
            id: spec.id,
            sequence: seq,
        });
        let mut attempt = 0;
        let acked = loop {
            attempt += 1;
            let draining = world.stopping.get();
            let (limit, timeout) = if draining {
                (
                    crate::workload::DRAIN_ATTEMPTS,
                    spec.timeout.max(crate::workload::DRAIN_TIMEOUT),
                )
            } else {
                (spec.attempts, spec.timeout)
            };
            if attempt > limit {
                break false;
            }
            let node = world.primary().await;
            world.trace.event(format!(
                "{name} sends seq {seq} ({:?}, {} rows) to {} on node {}, attempt {attempt}",
                shape.op, shape.rows, table.name, node.id
            ));
            let call = node.writer.write(
                DATABASE,
                &table.name,
                shape.op.write_op(),
                &batches,
                producer,
            );
            match on_node(&node, Some(timeout), call).await {
                Outcome::Done(buckets) => {
                    world.trace.event(format!(
                        "{name} acked seq {seq}: {} ts={}",
                        describe(&buckets),
                        buckets.first().map(|b| b.commit_ts.0).unwrap_or_default()
                    ));
                    let ack = Ack {
                        buckets,
                        at: world.now(),
                        node: node.id,
                    };
                    let problems = world.model().pk.acked(id, ack);
                    for problem in problems {
                        world.violation(problem);
                    }
                    break true;
                }
                Outcome::Failed(error) => {
                    world
                        .trace
                        .event(format!("{name} seq {seq} failed: {error}"));
                    if !retryable(error.kind()) {
                        world.violation(format!(
                            "{name}: write {seq} ({:?}) to {} on node {} was refused: {error}",
                            shape.op, table.name, node.id
                        ));
                    }
                }
                Outcome::TimedOut => world.trace.event(format!("{name} seq {seq} timed out")),
                Outcome::ProcessDied => world
                    .trace
                    .event(format!("{name} seq {seq}: node {} died", node.id)),
            }
            tokio::time::sleep(rng.millis(5, 200)).await;
        };
        if !acked {
            world.trace.event(format!(
                "{name} gives up on seq {seq}; its outcome stays unknown"
            ));
            world.model().pk.gave_up(id);
        }
    }
    world.trace.event(format!("{name} done"));
}

/// Looks keys up and reads changelogs of the primary-key tables, from time to time, until
/// the run stops. What each returned is recorded with what it must include (the acks given
/// before it started) and checked against the final changelog.
pub async fn reader(world: Arc<World>, index: usize) {
    let spec = world.cfg.pk.readers[index].clone();
    let who = format!("kr{index}");
    let mut rng = SimRng::new(world.cfg.seed).fork("pk-reader", index as u64);
    loop {
        tokio::time::sleep(rng.millis(spec.interval.0, spec.interval.1)).await;
        if world.stopping.get() {
            break;
        }
        let node = world.primary().await;
        let t = rng.below(world.cfg.pk.tables.len());
        let table = world.cfg.pk.tables[t].clone();
        if rng.chance(0.6) {
            // A few keys, now and then one that is never written.
            let mut keys: Vec<i64> = (0..rng.between(1, u64::from(table.keys.min(16))))
                .map(|_| rng.below(table.keys as usize) as i64)
                .collect();
            if rng.chance(0.2) {
                keys.push(i64::from(table.keys) + rng.below(3) as i64);
            }
            keys.sort_unstable();
            keys.dedup();
            read_keys(&world, &who, &node, t, &table, keys).await;
        } else if rng.chance(0.25) {
            read_snapshot(&world, &who, &node, t, &table).await;
        } else {
            read_changelog(&world, &who, &node, t, &table, &mut rng, spec.pause).await;
        }
    }
    world.trace.event(format!("{who} done"));
}

async fn read_keys(
    world: &World,
    who: &str,
    node: &Node,
    t: usize,
    table: &PkTableSpec,
    keys: Vec<i64>,
) {
    let started = world.now();
    let routes = key_buckets(table.keys + 3, table.buckets);
    let must_reach: Vec<u64> = {
        let model = world.model();
        let opened = model.opened(node.id);
        keys.iter()
            .map(|k| {
                model
                    .pk
                    .acked_end(t, routes[*k as usize], node.id, opened, started)
            })
            .collect()
    };
    let found = match lookup(node, &table.name, &keys).await {
        Outcome::Done(Ok(found)) => found,
        Outcome::Done(Err(error)) => {
            world.violation(format!("{who}: a lookup of {} failed: {error}", table.name));
            return;
        }
        Outcome::Failed(error) => {
            world.trace.event(format!(
                "{who} cannot look up {} on node {}: {error}",
                table.name, node.id
            ));
            if !retryable(error.kind()) {
                world.violation(format!(
                    "{who}: a lookup of {} on node {} failed: {error}",
                    table.name, node.id
                ));
            }
            return;
        }
        Outcome::TimedOut | Outcome::ProcessDied => return,
    };
    world.trace.event(format!(
        "{who} looked up {} keys {keys:?} of {} on node {}: {} found",
        keys.len(),
        table.name,
        node.id,
        found.iter().flatten().count()
    ));
    world.model().pk.looked_up(LookupObservation {
        who: who.to_owned(),
        table: t,
        keys,
        found,
        must_reach,
    });
}

async fn read_changelog(
    world: &World,
    who: &str,
    node: &Node,
    t: usize,
    table: &PkTableSpec,
    rng: &mut SimRng,
    pause: std::time::Duration,
) {
    let chosen = projection(rng);
    let projection = Arc::new(if chosen.is_empty() {
        (0..COLUMNS).collect::<Vec<_>>()
    } else {
        chosen.clone()
    });
    let limit = rng.chance(0.3).then(|| rng.log_between(1, 100));
    let omit_update_before = rng.chance(0.2);
    let (buckets, start) = if rng.chance(0.5) {
        ((0..table.buckets).collect::<Vec<_>>(), 0)
    } else {
        let bucket = rng.below(table.buckets as usize) as u32;
        let listed = on_node(
            node,
            None,
            node.reader
                .list_offsets(DATABASE, &table.name, &[], &[bucket], StartPosition::Latest),
        )
        .await;
        let Outcome::Done(offsets) = listed else {
            return;
        };
        let latest = offsets.first().map(|o| o.latest.0).unwrap_or(0);
        (vec![bucket], rng.between(0, latest))
    };
    let started = world.now();
    let must_reach: Vec<u64> = {
        let model = world.model();
        let opened = model.opened(node.id);
        buckets
            .iter()
            .map(|b| model.pk.acked_end(t, *b, node.id, opened, started))
            .collect()
    };
    let request = FetchRequest {
        database: DATABASE.to_owned(),
        table: table.name.clone(),
        partitions: Vec::new(),
        buckets: if buckets.len() == table.buckets as usize {
            Vec::new()
        } else {
            buckets.clone()
        },
        start: StartPosition::Offset(Offset(start)),
        columns: chosen.iter().map(|c| column_name(*c).to_owned()).collect(),
        follow: false,
        limit,
        omit_update_before,
        reset_to_earliest: false,
    };
    let mut stream = match on_node(node, None, node.reader.fetch(request)).await {
        Outcome::Done(stream) => stream,
        Outcome::Failed(error) => {
            world.trace.event(format!(
                "{who} cannot read the changelog of {}: {error}",
                table.name
            ));
            if !retryable(error.kind()) {
                world.violation(format!(
                    "{who}: a changelog read of {} from {start} on node {} failed: {error}",
                    table.name, node.id
                ));
            }
            return;
        }
        Outcome::TimedOut | Outcome::ProcessDied => return,
    };
    let mut seen: Vec<Vec<ChangeRow>> = buckets.iter().map(|_| Vec::new()).collect();
    let mut complete = true;
    loop {
        let item = tokio::select! {
            biased;
            () = node.life.dead() => None,
            item = stream.next() => Some(item),
        };
        let fetched = match item {
            None => {
                complete = false;
                break;
            }
            Some(None) => break,
            Some(Some(Ok(fetched))) => fetched,
            Some(Some(Err(error))) => {
                world
                    .trace
                    .event(format!("{who} changelog read failed: {error}"));
                if !retryable(error.kind()) {
                    world.violation(format!(
                        "{who}: a changelog read of {} on node {} failed: {error}",
                        table.name, node.id
                    ));
                }
                complete = false;
                break;
            }
        };
        let rows = match change_rows(&fetched.batch, &projection) {
            Ok(rows) => rows,
            Err(error) => {
                world.violation(format!("{who}: {}: {error}", table.name));
                return;
            }
        };
        for row in rows {
            let Some(slot) = buckets.iter().position(|b| *b == row.bucket) else {
                world.violation(format!(
                    "{who}: a changelog read of buckets {buckets:?} of {} returned bucket {}",
                    table.name, row.bucket
                ));
                return;
            };
            seen[slot].push(row);
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    world.trace.event(format!(
        "{who} read the changelog of {} buckets {buckets:?} from {start} limit {limit:?}{} on \
         node {}: {:?} rows",
        table.name,
        if omit_update_before {
            " without -U"
        } else {
            ""
        },
        node.id,
        seen.iter().map(Vec::len).collect::<Vec<_>>()
    ));
    let whole = complete && limit.is_none();
    let mut model = world.model();
    for ((bucket, rows), reach) in buckets.iter().zip(seen).zip(must_reach) {
        model.pk.read_changelog(ChangeObservation {
            who: who.to_owned(),
            table: t,
            bucket: *bucket,
            start,
            projection: projection.clone(),
            omit_update_before,
            rows,
            must_reach: whole.then_some(reach),
        });
    }
}

/// Reads every primary-key table's changelog from offset 0 with every column, and looks up
/// every key of its key space (and a few never written), on `node` with the store healed.
pub(crate) async fn audit(world: &World, node: &Node) -> PkFinal {
    let all: Vec<usize> = (0..COLUMNS).collect();
    let mut out = PkFinal::default();
    for table in &world.cfg.pk.tables {
        let tails: Vec<u64> = node
            .reader
            .list_offsets(DATABASE, &table.name, &[], &[], StartPosition::Latest)
            .await
            .expect("offsets are listed while the store has no faults")
            .iter()
            .map(|o| o.latest.0)
            .collect();
        let mut changelog: Vec<Vec<ChangeRow>> = vec![Vec::new(); table.buckets as usize];
        let request = FetchRequest {
            database: DATABASE.to_owned(),
            table: table.name.clone(),
            partitions: Vec::new(),
            buckets: Vec::new(),
            start: StartPosition::Earliest,
            columns: Vec::new(),
            follow: false,
            limit: None,
            omit_update_before: false,
            reset_to_earliest: false,
        };
        match read_all(node, request.clone(), &all).await {
            Err(error) => world.violation(format!(
                "audit: reading the changelog of {} failed: {error}",
                table.name
            )),
            Ok(rows) => {
                for row in rows {
                    match changelog.get_mut(row.bucket as usize) {
                        Some(bucket) => bucket.push(row),
                        None => world.violation(format!(
                            "audit: the changelog of {} returned bucket {}",
                            table.name, row.bucket
                        )),
                    }
                }
            }
        }
        let keys: Vec<i64> = (0..i64::from(table.keys) + 3).collect();
        let found = match lookup(node, &table.name, &keys).await {
            Outcome::Done(Ok(found)) => found,
            Outcome::Done(Err(error)) => {
                world.violation(format!("audit: a lookup of {}: {error}", table.name));
                Vec::new()
            }
            Outcome::Failed(error) => {
                world.violation(format!(
                    "audit: cannot look up the keys of {}: {error}",
                    table.name
                ));
                Vec::new()
            }
            Outcome::TimedOut | Outcome::ProcessDied => Vec::new(),
        };
        let snapshot = match read_all(
            node,
            FetchRequest {
                start: StartPosition::Snapshot,
                ..request
            },
            &all,
        )
        .await
        {
            Ok(rows) => rows,
            Err(error) => {
                world.violation(format!(
                    "audit: a snapshot read of {} failed: {error}",
                    table.name
                ));
                Vec::new()
            }
        };
        world.trace.event(format!(
            "final changelog of {}: {:?} rows, tails {tails:?}, {} keys found, {} in a snapshot",
            table.name,
            changelog.iter().map(Vec::len).collect::<Vec<_>>(),
            found.iter().flatten().count(),
            snapshot.len()
        ));
        out.tails.push(tails);
        out.changelogs.push(changelog);
        out.lookups.push(found);
        out.snapshots.push(snapshot);
    }
    out
}

/// Reads a snapshot of every bucket of `table` (every column) while writes go on, and
/// records what it returned, with the acks it must include.
async fn read_snapshot(world: &World, who: &str, node: &Node, t: usize, table: &PkTableSpec) {
    let started = world.now();
    let must_reach: Vec<u64> = {
        let model = world.model();
        let opened = model.opened(node.id);
        (0..table.buckets)
            .map(|b| model.pk.acked_end(t, b, node.id, opened, started))
            .collect()
    };
    let request = FetchRequest {
        database: DATABASE.to_owned(),
        table: table.name.clone(),
        partitions: Vec::new(),
        buckets: Vec::new(),
        start: StartPosition::Snapshot,
        columns: Vec::new(),
        follow: false,
        limit: None,
        omit_update_before: false,
        reset_to_earliest: false,
    };
    let mut stream = match on_node(node, None, node.reader.fetch(request)).await {
        Outcome::Done(stream) => stream,
        Outcome::Failed(error) => {
            if !retryable(error.kind()) {
                world.violation(format!(
                    "{who}: a snapshot read of {} on node {} failed: {error}",
                    table.name, node.id
                ));
            }
            return;
        }
        Outcome::TimedOut | Outcome::ProcessDied => return,
    };
    let all: Vec<usize> = (0..COLUMNS).collect();
    let mut buckets: BTreeMap<u32, (u64, Vec<ChangeRow>)> = BTreeMap::new();
    let mut ended = std::collections::BTreeSet::new();
    loop {
        let item = tokio::select! {
            biased;
            () = node.life.dead() => return,
            item = stream.next() => item,
        };
        let fetched = match item {
            None => break,
            Some(Ok(fetched)) => fetched,
            Some(Err(error)) => {
                if !retryable(error.kind()) {
                    world.violation(format!(
                        "{who}: a snapshot read of {} on node {} failed: {error}",
                        table.name, node.id
                    ));
                }
                return;
            }
        };
        let rows = match change_rows(&fetched.batch, &all) {
            Ok(rows) => rows,
            Err(error) => {
                world.violation(format!("{who}: {}: {error}", table.name));
                return;
            }
        };
        if fetched.snapshot == SnapshotPart::Last && !ended.insert(fetched.bucket.0) {
            world.violation(format!(
                "{who}: the snapshot of bucket {} of {} ended twice",
                fetched.bucket.0, table.name
            ));
        }
        let (at, seen) = buckets
            .entry(fetched.bucket.0)
            .or_insert((fetched.high_watermark.0, Vec::new()));
        if *at != fetched.high_watermark.0 {
            world.violation(format!(
                "{who}: a snapshot of bucket {} of {} came as of {at} and {}",
                fetched.bucket.0, table.name, fetched.high_watermark.0
            ));
        }
        seen.extend(rows);
    }
    if ended.len() != table.buckets as usize {
        world.violation(format!(
            "{who}: a snapshot read of {} ended the snapshots of buckets {ended:?} only",
            table.name
        ));
    }
    world.trace.event(format!(
        "{who} read a snapshot of {} on node {}: {:?}",
        table.name,
        node.id,
        buckets
            .iter()
            .map(|(b, (at, rows))| (*b, *at, rows.len()))
            .collect::<Vec<_>>()
    ));
    world.model().pk.read_snapshot(SnapshotObservation {
        who: who.to_owned(),
        table: t,
        buckets,
        must_reach,
    });
}

/// Every row a non-following fetch of every column returns, in the order they came.
async fn read_all(
    node: &Node,
    request: FetchRequest,
    all: &[usize],
) -> Result<Vec<ChangeRow>, String> {
    let mut stream = node
        .reader
        .fetch(request)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        let fetched = item.map_err(|e| e.to_string())?;
        out.extend(change_rows(&fetched.batch, all)?);
    }
    Ok(out)
}

/// The rows of the lake table of a primary-key table, per key as [`Found`] (its `_offset`,
/// bucket and a fingerprint of its values, as a lookup gives them), read with iceberg-rust's
/// scan of the committed snapshot. None before the first commit.
pub(crate) async fn lake_rows(
    world: &World,
    node: &Node,
    info: &inlet_core::table::TableInfo,
) -> Result<Vec<(i64, Found)>, String> {
    use futures::TryStreamExt;

    let record = node
        .index
        .lake_table(info.id)
        .await
        .map_err(|e| e.to_string())?;
    let Some(location) = record.and_then(|record| record.metadata_location) else {
        return Ok(Vec::new());
    };
    let ident = iceberg::TableIdent::from_strs([info.database.as_str(), info.name.as_str()])
        .map_err(|e| e.to_string())?;
    let table = inlet_compactor::lake::LakeTable::load(&world.lake_storage(), ident, &location)
        .await
        .map_err(|e| e.to_string())?;
    let batches: Vec<RecordBatch> = table
        .iceberg_table()
        .map_err(|e| e.to_string())?
        .scan()
        .select_all()
        .build()
        .map_err(|e| e.to_string())?
        .to_arrow()
        .await
        .map_err(|e| e.to_string())?
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for batch in &batches {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| format!("the lake table has no `{name}` column"))
        };
        let offsets = column(inlet_core::table::OFFSET_COLUMN)?
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or("the lake's `_offset` is not int64")?;
        let buckets = column(inlet_core::table::BUCKET_COLUMN)?
            .as_any()
            .downcast_ref::<arrow_array::Int32Array>()
            .ok_or("the lake's `_bucket` is not int32")?;
        let columns = (0..COLUMNS)
            .map(|c| column(column_name(c)).cloned())
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let values = columns
                .iter()
                .enumerate()
                .map(|(c, array)| value_at(array, c, row))
                .collect::<Result<Vec<_>, _>>()?;
            let Value::Int64(key) = values[KEY] else {
                return Err(format!("a lake row's key is {:?}", values[KEY]));
            };
            let fingerprints: Vec<u64> = values
                .iter()
                .enumerate()
                .map(|(c, v)| v.fingerprint(c))
                .collect();
            out.push((
                key,
                Found {
                    offset: offsets.value(row) as u64,
                    bucket: buckets.value(row) as u32,
                    fingerprint: crate::model::combine(&fingerprints),
                },
            ));
        }
    }
    out.sort_by_key(|(key, found)| (*key, found.offset));
    Ok(out)
}
