//! The clients: idempotent producers, followers tailing one bucket, and readers fetching
//! from random positions with random projections. Each talks to the current primary, gives
//! up on a request when that process dies (its outcome is then unknown), records what it was
//! acknowledged or shown in the model, and checks each read as it arrives.
//!
//! To add a workload: write an `async fn(world: Arc<World>, index: usize)` here, give it a
//! spec in `config.rs` drawn from its own forked RNG stream, and spawn it in
//! `world::run_world` next to the others; record what it learns in the model.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use inlet_core::error::{ErrorKind, HasKind};
use inlet_core::ids::{Offset, TimestampMicros};
use inlet_index::ProducerRef;
use inlet_reader::{FetchRequest, FetchStream, StartPosition};
use inlet_writer::BucketAppend;

use crate::clock::SIM_EPOCH_MICROS;
use crate::config::projection;
use crate::data::{
    AppendId, AppendShape, COLUMNS, ReadRow, append_batches, column_name, read_rows,
};
use crate::model::{Ack, Observation, SeenRow, Skip, TimestampSeek};
use crate::rng::SimRng;
use crate::world::{DATABASE, Node, World};

/// Attempts a producer makes on its last append once the store is healed: enough that it
/// can only fail to land if Inlet has lost liveness.
pub(crate) const DRAIN_ATTEMPTS: u32 = 200;

/// How long a producer waits for each attempt once the store is healed.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How a request to a process ended.
pub(crate) enum Outcome<T, E> {
    Done(T),
    Failed(E),
    TimedOut,
    ProcessDied,
}

/// Runs `call` against `node` unless the process dies first, or `timeout` passes.
pub(crate) async fn on_node<T, E>(
    node: &Node,
    timeout: Option<Duration>,
    call: impl Future<Output = Result<T, E>>,
) -> Outcome<T, E> {
    let timeout = async {
        match timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        () = node.life.dead() => Outcome::ProcessDied,
        result = call => match result {
            Ok(value) => Outcome::Done(value),
            Err(error) => Outcome::Failed(error),
        },
        () = timeout => Outcome::TimedOut,
    }
}

/// Errors a client may see from a healthy system under faults: it retries them. Any other
/// kind means Inlet rejected valid input or lost data.
pub(crate) fn retryable(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Unavailable | ErrorKind::Fenced | ErrorKind::Internal
    )
}

pub(crate) fn describe(buckets: &[BucketAppend]) -> String {
    buckets
        .iter()
        .map(|b| format!("b{}@{}+{}", b.bucket.0, b.base_offset.0, b.row_count))
        .collect::<Vec<_>>()
        .join(",")
}

/// An idempotent producer: appends to one table with increasing sequence numbers and
/// retries each append whose outcome is unknown with the same producer id and sequence.
pub async fn producer(world: Arc<World>, index: usize) {
    let spec = world.cfg.producers[index].clone();
    let table = world.cfg.tables[spec.table].name.clone();
    let mut rng = SimRng::new(world.cfg.seed).fork("producer", index as u64);
    let name = format!("p{index}");
    world.trace.event(format!(
        "{name} is producer {} on t{}: up to {} rows per append, timeout {:?}, {} attempts",
        spec.id, spec.table, spec.max_rows, spec.timeout, spec.attempts
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
        let shape = AppendShape::of(id, spec.max_rows);
        let batches = append_batches(id, &shape, world.cfg.max_payload);
        world.model().sent(id, spec.table, &shape, world.now());
        let producer = Some(ProducerRef {
            id: spec.id,
            sequence: seq,
        });
        let mut attempt = 0;
        let acked = loop {
            attempt += 1;
            let draining = world.stopping.get();
            let (limit, timeout) = if draining {
                (DRAIN_ATTEMPTS, spec.timeout.max(DRAIN_TIMEOUT))
            } else {
                (spec.attempts, spec.timeout)
            };
            if attempt > limit {
                break false;
            }
            let node = world.primary().await;
            world.trace.event(format!(
                "{name} sends seq {seq} ({} rows) to t{} on node {}, attempt {attempt}",
                shape.rows, spec.table, node.id
            ));
            let call = node.writer.append(DATABASE, &table, &batches, producer);
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
                    world.model().acked(id, ack);
                    break true;
                }
                Outcome::Failed(error) => {
                    world
                        .trace
                        .event(format!("{name} seq {seq} failed: {error}"));
                    if !retryable(error.kind()) {
                        world.violation(format!(
                            "{name}: append {seq} to {table} on node {} was refused: {error}",
                            node.id
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
            world.model().gave_up(id);
        }
    }
    world.trace.event(format!("{name} done"));
}

/// Checks and records the rows of one fetched batch of a read of `buckets`, where `next`
/// holds each bucket's next expected offset (`None`: not known yet) and is advanced past
/// the batch; `None` on a violation.
fn take_batch(
    world: &World,
    who: &str,
    table: usize,
    projection: &Arc<Vec<usize>>,
    rows: Vec<ReadRow>,
    buckets: &[u32],
    next: &mut [Option<u64>],
) -> Option<()> {
    let Some(first) = rows.first() else {
        return Some(());
    };
    let Some(slot) = buckets.iter().position(|b| *b == first.bucket) else {
        world.violation(format!(
            "{who}: a read of buckets {buckets:?} of t{table} returned bucket {}",
            first.bucket
        ));
        return None;
    };
    for row in &rows {
        if row.bucket != first.bucket {
            world.violation(format!("{who}: one batch held rows of two buckets"));
            return None;
        }
        if let Some(expected) = next[slot]
            && row.offset > expected
            && world.cfg.tables[table].retention.is_some()
        {
            // A read with `reset_to_earliest` that fell behind retention goes on from the
            // earliest offset; the final check makes sure what it skipped expired.
            world.model().skipped(Skip {
                who: who.to_owned(),
                table,
                bucket: row.bucket,
                from: expected,
                to: row.offset,
                at: world.now(),
            });
            next[slot] = Some(row.offset);
        }
        if let Some(expected) = next[slot]
            && row.offset != expected
        {
            world.violation(format!(
                "{who}: a read of t{table}/b{} returned offset {} where {expected} was next",
                row.bucket, row.offset
            ));
            return None;
        }
        next[slot] = Some(row.offset + 1);
    }
    world.model().observed(Observation {
        who: who.to_owned(),
        table,
        projection: projection.clone(),
        rows: rows.iter().map(SeenRow::of).collect(),
    });
    Some(())
}

/// Follows one bucket from offset 0, reconnecting to the next primary from where it was
/// whenever its process dies, until it reaches the final tail.
pub async fn follower(world: Arc<World>, index: usize) {
    let spec = world.cfg.followers[index].clone();
    let table = world.cfg.tables[spec.table].name.clone();
    let who = format!("f{index}");
    let columns: Vec<String> = spec
        .projection
        .iter()
        .map(|c| column_name(*c).to_owned())
        .collect();
    let projection = Arc::new(if spec.projection.is_empty() {
        (0..COLUMNS).collect()
    } else {
        spec.projection.clone()
    });
    let mut rng = SimRng::new(world.cfg.seed).fork("follower", index as u64);
    let reached = |next: u64, tails: &Option<Vec<Vec<u64>>>| {
        tails
            .as_ref()
            .is_some_and(|t| next >= t[spec.table][spec.bucket as usize])
    };
    let expires = world.cfg.tables[spec.table].retention.is_some();
    let mut next = 0u64;
    'connect: loop {
        if reached(next, &world.final_tails.get()) {
            break;
        }
        let node = world.primary().await;
        let request = FetchRequest {
            database: DATABASE.to_owned(),
            table: table.clone(),
            partitions: Vec::new(),
            buckets: vec![spec.bucket],
            start: StartPosition::Offset(Offset(next)),
            columns: columns.clone(),
            follow: true,
            limit: None,
            omit_update_before: false,
            reset_to_earliest: expires,
        };
        world.trace.event(format!(
            "{who} follows t{}/b{} from {next} on node {}",
            spec.table, spec.bucket, node.id
        ));
        let mut stream: FetchStream = match on_node(&node, None, node.reader.fetch(request)).await {
            Outcome::Done(stream) => stream,
            Outcome::Failed(error) => {
                world.trace.event(format!("{who} cannot fetch: {error}"));
                if !retryable(error.kind()) {
                    world.violation(format!(
                        "{who}: following t{}/b{} from {next} on node {} failed: {error}",
                        spec.table, spec.bucket, node.id
                    ));
                }
                tokio::time::sleep(rng.millis(10, 300)).await;
                continue;
            }
            Outcome::TimedOut | Outcome::ProcessDied => continue,
        };
        loop {
            let item = tokio::select! {
                biased;
                () = node.life.dead() => continue 'connect,
                () = world.final_tails.wait_for(|t| reached(next, t).then_some(())) => {
                    break 'connect;
                }
                tail = expired_to_tail(&world, &node, spec.table, spec.bucket), if expires => {
                    // A read reset to an earliest offset with nothing above it sends nothing:
                    // the rest of the bucket expired while this follower was behind.
                    world.model().skipped(Skip {
                        who: who.clone(),
                        table: spec.table,
                        bucket: spec.bucket,
                        from: next,
                        to: tail,
                        at: world.now(),
                    });
                    next = tail;
                    break 'connect;
                }
                item = stream.next() => item,
            };
            let fetched = match item {
                Some(Ok(fetched)) => fetched,
                Some(Err(error)) => {
                    world.trace.event(format!("{who} read failed: {error}"));
                    if !retryable(error.kind()) {
                        world.violation(format!(
                            "{who}: following t{}/b{} on node {} failed: {error}",
                            spec.table, spec.bucket, node.id
                        ));
                    }
                    tokio::time::sleep(rng.millis(10, 300)).await;
                    continue 'connect;
                }
                None => {
                    world.trace.event(format!("{who}'s fetch ended"));
                    continue 'connect;
                }
            };
            let rows = match read_rows(&fetched.batch, &projection) {
                Ok(rows) => rows,
                Err(error) => {
                    world.violation(format!("{who}: {error}"));
                    break 'connect;
                }
            };
            let (from, count) = (rows.first().map(|r| r.offset).unwrap_or(next), rows.len());
            let mut slot = [Some(next)];
            if take_batch(
                &world,
                &who,
                spec.table,
                &projection,
                rows,
                &[spec.bucket],
                &mut slot,
            )
            .is_none()
            {
                break 'connect;
            }
            next = slot[0].unwrap_or(next);
            world.trace.event(format!(
                "{who} got {from}..{next} ({count} rows, hw {}) on node {}",
                fetched.high_watermark, node.id
            ));
            if reached(next, &world.final_tails.get()) {
                break 'connect;
            }
            if !spec.pause.is_zero() {
                tokio::time::sleep(spec.pause).await;
            }
        }
    }
    world.trace.event(format!("{who} done at {next}"));
}

/// Once the final tails are known: waits until retention expired every offset of the
/// bucket below its final tail (as `node` lists its earliest offset), and returns that tail.
async fn expired_to_tail(world: &World, node: &Node, table: usize, bucket: u32) -> u64 {
    let tails = world.final_tails.wait_for(|tails| tails.clone()).await;
    let tail = tails[table][bucket as usize];
    let name = &world.cfg.tables[table].name;
    loop {
        let listed = node
            .reader
            .list_offsets(DATABASE, name, &[], &[bucket], StartPosition::Latest)
            .await;
        if let Ok(offsets) = listed
            && offsets.first().is_some_and(|o| o.earliest.0 >= tail)
        {
            return tail;
        }
        tokio::time::sleep(EXPIRY_POLL).await;
    }
}

/// How often a follower of a table with retention that waits for the final tail checks
/// whether the rest of its bucket expired instead.
const EXPIRY_POLL: Duration = Duration::from_millis(500);

/// Reads a random table from a random position (earliest, an offset, a time) with a random
/// projection and sometimes a row limit, until the run stops.
pub async fn reader(world: Arc<World>, index: usize) {
    let spec = world.cfg.readers[index].clone();
    let who = format!("r{index}");
    let mut rng = SimRng::new(world.cfg.seed).fork("reader", index as u64);
    loop {
        tokio::time::sleep(rng.millis(spec.interval.0, spec.interval.1)).await;
        if world.stopping.get() {
            break;
        }
        let node = world.primary().await;
        let t = rng.below(world.cfg.tables.len());
        let table = world.cfg.tables[t].clone();
        let chosen = projection(&mut rng);
        let projection = Arc::new(if chosen.is_empty() {
            (0..COLUMNS).collect::<Vec<_>>()
        } else {
            chosen.clone()
        });
        let limit = rng.chance(0.5).then(|| rng.log_between(1, 500));
        let (buckets, start) = match rng.below(3) {
            0 => (
                (0..table.buckets).collect::<Vec<_>>(),
                StartPosition::Earliest,
            ),
            1 => {
                let bucket = rng.below(table.buckets as usize) as u32;
                let listed = on_node(
                    &node,
                    None,
                    node.reader.list_offsets(
                        DATABASE,
                        &table.name,
                        &[],
                        &[bucket],
                        StartPosition::Latest,
                    ),
                )
                .await;
                let Outcome::Done(offsets) = listed else {
                    continue;
                };
                let latest = offsets.first().map(|o| o.latest.0).unwrap_or(0);
                (
                    vec![bucket],
                    StartPosition::Offset(Offset(rng.between(0, latest))),
                )
            }
            _ => {
                let elapsed = world.now().as_micros() as u64;
                let ts = SIM_EPOCH_MICROS + rng.between(0, elapsed) as i64;
                (
                    (0..table.buckets).collect(),
                    StartPosition::Timestamp(TimestampMicros(ts)),
                )
            }
        };
        let started = world.now();
        let must_reach: Vec<u64> = {
            let model = world.model();
            buckets
                .iter()
                .map(|b| model.acked_end(t, *b, node.id, started))
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
            start,
            columns: chosen.iter().map(|c| column_name(*c).to_owned()).collect(),
            follow: false,
            limit,
            omit_update_before: false,
            reset_to_earliest: table.retention.is_some(),
        };
        let mut stream = match on_node(&node, None, node.reader.fetch(request)).await {
            Outcome::Done(stream) => stream,
            Outcome::Failed(error) => {
                world
                    .trace
                    .event(format!("{who} cannot read t{t} from {start:?}: {error}"));
                if !retryable(error.kind()) {
                    world.violation(format!(
                        "{who}: a read of t{t} from {start:?} on node {} failed: {error}",
                        node.id
                    ));
                }
                continue;
            }
            Outcome::TimedOut | Outcome::ProcessDied => continue,
        };
        let mut next: Vec<Option<u64>> = buckets
            .iter()
            .map(|_| match start {
                StartPosition::Earliest => Some(0),
                StartPosition::Offset(o) => Some(o.0),
                _ => None,
            })
            .collect();
        let mut complete = true;
        let mut rows_read = 0;
        loop {
            let item = tokio::select! {
                biased;
                () = node.life.dead() => None,
                item = stream.next() => Some(item),
            };
            let Some(item) = item else {
                complete = false;
                break;
            };
            let fetched = match item {
                None => break,
                Some(Ok(fetched)) => fetched,
                Some(Err(error)) => {
                    world.trace.event(format!("{who} read failed: {error}"));
                    if !retryable(error.kind()) {
                        world.violation(format!(
                            "{who}: a read of t{t} from {start:?} on node {} failed: {error}",
                            node.id
                        ));
                    }
                    complete = false;
                    break;
                }
            };
            let rows = match read_rows(&fetched.batch, &projection) {
                Ok(rows) => rows,
                Err(error) => {
                    world.violation(format!("{who}: {error}"));
                    complete = false;
                    break;
                }
            };
            if let (StartPosition::Timestamp(ts), Some(first)) = (start, rows.first())
                && let Some(slot) = buckets.iter().position(|b| *b == first.bucket)
                && next[slot].is_none()
            {
                world.model().seeked(TimestampSeek {
                    who: who.clone(),
                    table: t,
                    bucket: first.bucket,
                    ts: ts.0,
                    first_offset: first.offset,
                });
            }
            rows_read += rows.len();
            if take_batch(&world, &who, t, &projection, rows, &buckets, &mut next).is_none() {
                complete = false;
                break;
            }
            if !spec.pause.is_zero() {
                tokio::time::sleep(spec.pause).await;
            }
        }
        world.trace.event(format!(
            "{who} read t{t} buckets {buckets:?} from {start:?} limit {limit:?} on node {}: \
             {rows_read} rows, ends {next:?}",
            node.id
        ));
        // A whole read from a known offset must reach every row acked before it started.
        if complete && limit.is_none() && !matches!(start, StartPosition::Timestamp(_)) {
            for (slot, bucket) in buckets.iter().enumerate() {
                let end = next[slot].unwrap_or(0);
                if end < must_reach[slot] && table.retention.is_some() {
                    // Nothing to read from `end` on: those acked rows must have expired.
                    world.model().skipped(Skip {
                        who: who.clone(),
                        table: t,
                        bucket: *bucket,
                        from: end,
                        to: must_reach[slot],
                        at: world.now(),
                    });
                } else if end < must_reach[slot] {
                    world.violation(format!(
                        "{who}: a read of t{t}/b{bucket} from {start:?} on node {} started at \
                         {started:?} and ended at offset {end}, but offsets up to {} had been \
                         acked",
                        node.id, must_reach[slot]
                    ));
                }
            }
        }
    }
    world.trace.event(format!("{who} done"));
}
