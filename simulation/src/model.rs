//! The model the guarantees are checked against: what producers sent and what was
//! acknowledged to them, what every reader saw, and at the end the committed log as a fresh
//! process reads it back. The checks compare these with each other, never with the code's
//! own view of its state.
//!
//! The guarantees, each checked by [`Model::check`] (and, for single reads, as they happen):
//! - **acked rows readable at their offsets**: every acknowledged append's rows are in the
//!   final log exactly at the offsets of its ack, with the ack's commit time;
//! - **dense, unique offsets**: every stream's final log holds offsets `0..tail` with no gap,
//!   and no row of any append appears twice;
//! - **atomic appends**: an append is in the log with all its rows or with none;
//! - **acked order**: a producer's acknowledged appends keep their order in every bucket;
//! - **content**: every row holds exactly the values its producer sent;
//! - **prefix-consistent reads**: every read returns consecutive offsets from where it
//!   started, and every row it returned is the final log's row at that offset (so nothing
//!   that was not durable was ever visible, and every reader, before or after crashes and
//!   takeovers, saw the same log);
//! - **reads see acked rows**: a read that starts after an ack, on the process that gave it or
//!   on one opened later, returns at least up to that ack's end;
//! - **timestamp seeks**: a read from a time starts at the first row committed at or after it;
//! - **retention**: in a table with `retention`, offsets may be gone from the final log only
//!   as a prefix of each bucket, and only rows committed more than `retention` before the
//!   audit; an acked row inside retention is never lost, and a read that skipped offsets
//!   (it set `reset_to_earliest` and fell behind) skipped only offsets that expired.

pub mod pk;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use inlet_writer::BucketAppend;

use crate::clock::SIM_EPOCH_MICROS;
use crate::config::TableSpec;
use crate::data::{AppendId, AppendShape, FLAG, ReadRow, Value, row_fingerprints, row_values};

/// The most violations a run records; the first ones explain a failure.
const MAX_VIOLATIONS: usize = 50;

#[derive(Debug)]
pub struct AppendRecord {
    pub table: usize,
    pub shape: AppendShape,
    pub sent_at: Duration,
    pub acks: Vec<Ack>,
    pub gave_up: bool,
}

#[derive(Clone, Debug)]
pub struct Ack {
    pub buckets: Vec<BucketAppend>,
    pub at: Duration,
    pub node: u32,
}

/// Rows one read returned from one bucket.
#[derive(Debug)]
pub struct Observation {
    pub who: String,
    pub table: usize,
    pub projection: Arc<Vec<usize>>,
    pub rows: Vec<SeenRow>,
}

/// What a reader saw of one row: where, when it was committed, and one fingerprint over
/// the projected columns' values.
#[derive(Clone, Copy, Debug)]
pub struct SeenRow {
    pub bucket: u32,
    pub offset: u64,
    pub commit_ts: i64,
    pub fingerprint: u64,
}

impl SeenRow {
    pub fn of(row: &ReadRow) -> Self {
        Self {
            bucket: row.bucket,
            offset: row.offset,
            commit_ts: row.commit_ts,
            fingerprint: combine(&row.fingerprints),
        }
    }
}

/// The fingerprint of a null `flag`.
fn null_flag() -> u64 {
    Value::Boolean(None).fingerprint(FLAG)
}

/// One fingerprint over several column fingerprints, in order.
pub fn combine(fingerprints: &[u64]) -> u64 {
    crate::rng::hash(fingerprints)
}

/// A read that started from a timestamp, and the first offset it returned in a bucket.
#[derive(Debug)]
pub struct TimestampSeek {
    pub who: String,
    pub table: usize,
    pub bucket: u32,
    pub ts: i64,
    pub first_offset: u64,
}

/// One row of the final log.
#[derive(Clone, Debug)]
pub struct LogRow {
    pub id: AppendId,
    pub row: u32,
    pub commit_ts: i64,
    pub fingerprints: [u64; 7],
}

/// The committed log as the auditor read it: `[table][bucket][offset]`; `None` where WAL
/// retention expired the offset (only in tables with `retention`, only as a prefix).
pub type FinalLog = Vec<Vec<Vec<Option<LogRow>>>>;

/// An acked range of one bucket: base and end offsets, commit time (µs).
type CommittedRange = (u64, u64, i64);

/// Offsets a read with `reset_to_earliest` skipped, or did not reach though they were acked
/// before it started: `from..to` of one bucket, which must have expired by `at`.
#[derive(Debug)]
pub struct Skip {
    pub who: String,
    pub table: usize,
    pub bucket: u32,
    pub from: u64,
    pub to: u64,
    /// When the read saw them gone (simulated time).
    pub at: Duration,
}

#[derive(Debug, Default)]
pub struct Model {
    pub appends: BTreeMap<AppendId, AppendRecord>,
    observations: Vec<Observation>,
    seeks: Vec<TimestampSeek>,
    skips: Vec<Skip>,
    violations: Vec<String>,
    /// Opening time of every process, by id.
    nodes: BTreeMap<u32, Duration>,
    /// The primary-key tables' writes and reads.
    pub pk: pk::PkModel,
}

impl Model {
    pub fn violation(&mut self, text: String) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(text);
        }
    }

    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// When process `node` opened.
    pub fn opened(&self, node: u32) -> Duration {
        self.nodes.get(&node).copied().unwrap_or_default()
    }

    pub fn node_opened(&mut self, node: u32, at: Duration) {
        self.nodes.insert(node, at);
    }

    pub fn sent(&mut self, id: AppendId, table: usize, shape: &AppendShape, at: Duration) {
        self.appends.entry(id).or_insert_with(|| AppendRecord {
            table,
            shape: shape.clone(),
            sent_at: at,
            acks: Vec::new(),
            gave_up: false,
        });
    }

    /// Records an ack; every ack of one append (retries included) must be the same.
    pub fn acked(&mut self, id: AppendId, ack: Ack) {
        let Some(record) = self.appends.get_mut(&id) else {
            return;
        };
        let mut problems = Vec::new();
        if let Some(first) = record.acks.first()
            && !same_offsets(&first.buckets, &ack.buckets)
        {
            problems.push(format!(
                "append {id:?} was acked twice with different offsets: {:?} at {:?} on node {}, \
                 then {:?} at {:?} on node {}",
                first.buckets, first.at, first.node, ack.buckets, ack.at, ack.node
            ));
        }
        let rows: u64 = ack.buckets.iter().map(|b| b.row_count).sum();
        if rows != u64::from(record.shape.rows) {
            problems.push(format!(
                "append {id:?} of {} rows was acked with {rows} rows: {:?}",
                record.shape.rows, ack.buckets
            ));
        }
        record.acks.push(ack);
        for problem in problems {
            self.violation(problem);
        }
    }

    pub fn gave_up(&mut self, id: AppendId) {
        if let Some(record) = self.appends.get_mut(&id) {
            record.gave_up = true;
        }
    }

    pub fn observed(&mut self, observation: Observation) {
        self.observations.push(observation);
    }

    pub fn skipped(&mut self, skip: Skip) {
        self.skips.push(skip);
    }

    pub fn seeked(&mut self, seek: TimestampSeek) {
        self.seeks.push(seek);
    }

    /// The end of the acked rows of `(table, bucket)` that a read on `node`, started at
    /// `at`, must return: acks given before `at` by `node` itself or before `node` opened.
    pub fn acked_end(&self, table: usize, bucket: u32, node: u32, at: Duration) -> u64 {
        let opened = self.nodes.get(&node).copied().unwrap_or_default();
        let first_acks = self
            .appends
            .values()
            .filter(|record| record.table == table)
            .filter_map(|record| record.acks.first());
        acked_end_of(first_acks, bucket, node, opened, at)
    }

    pub fn acked_count(&self) -> usize {
        self.appends.values().filter(|r| !r.acks.is_empty()).count()
    }

    /// Checks the final log, audited at `audited_at` (simulated time), against everything
    /// acknowledged and observed.
    pub fn check(
        &mut self,
        log: &FinalLog,
        max_payload: u32,
        tables: &[TableSpec],
        audited_at: Duration,
        flag_replaced: Option<(usize, Option<i64>)>,
    ) {
        let mut problems = Vec::new();
        // A row committed before this time (µs) may have expired from its table.
        let expirable = |table: usize| {
            tables
                .get(table)
                .and_then(|spec| spec.retention)
                .map(|r| SIM_EPOCH_MICROS + audited_at.as_micros() as i64 - r.as_micros() as i64)
        };
        self.check_log(log, max_payload, flag_replaced, &mut problems);
        self.check_expired(log, &expirable, &mut problems);
        self.check_acks(log, &expirable, &mut problems);
        let replaced_table = flag_replaced.map(|(table, _)| table);
        self.check_observations(log, max_payload, replaced_table, &mut problems);
        self.check_seeks(log, &mut problems);
        self.check_skips(log, tables, &mut problems);
        for problem in problems {
            self.violation(problem);
        }
    }

    /// Checks the primary-key tables as the auditor read them back (`pk::PkModel::check`).
    pub fn check_pk(
        &mut self,
        tables: &[crate::config::PkTableSpec],
        last: &pk::PkFinal,
        max_payload: u32,
    ) {
        let mut problems = Vec::new();
        self.pk.check(tables, last, max_payload, &mut problems);
        for problem in problems {
            self.violation(problem);
        }
    }

    /// Content, uniqueness, atomicity and commit-time order of the final log.
    /// In the table of `flag_replaced` (`evolve::replace_flag`), `flag` must read null in the
    /// rows committed before the replacement was first asked for (the time given), and may
    /// read null instead of the value sent in the later ones.
    fn check_log(
        &self,
        log: &FinalLog,
        max_payload: u32,
        flag_replaced: Option<(usize, Option<i64>)>,
        problems: &mut Vec<String>,
    ) {
        let mut seen: BTreeMap<AppendId, BTreeSet<u32>> = BTreeMap::new();
        for (table, buckets) in log.iter().enumerate() {
            for (bucket, rows) in buckets.iter().enumerate() {
                let mut last_ts = i64::MIN;
                for (offset, row) in rows.iter().enumerate() {
                    let Some(row) = row else { continue };
                    let at = format!("t{table}/b{bucket}@{offset}");
                    if row.commit_ts < last_ts {
                        problems.push(format!(
                            "{at}: commit time {} goes back from {last_ts}",
                            row.commit_ts
                        ));
                    }
                    last_ts = row.commit_ts;
                    let Some(record) = self.appends.get(&row.id) else {
                        problems.push(format!("{at}: row of {:?}, which nobody sent", row.id));
                        continue;
                    };
                    if record.table != table {
                        problems.push(format!(
                            "{at}: row of {:?}, which was sent to table t{}",
                            row.id, record.table
                        ));
                    }
                    if row.row >= record.shape.rows {
                        problems.push(format!(
                            "{at}: row {} of {:?}, which has {} rows",
                            row.row, row.id, record.shape.rows
                        ));
                        continue;
                    }
                    let expected =
                        row_fingerprints(&row_values(row.id, &record.shape, row.row, max_payload));
                    let mut nulled = expected;
                    nulled[FLAG] = null_flag();
                    let matches = match flag_replaced {
                        Some((replaced, from)) if replaced == table => {
                            let before = from.is_some_and(|from| row.commit_ts < from);
                            nulled == row.fingerprints || (!before && expected == row.fingerprints)
                        }
                        _ => expected == row.fingerprints,
                    };
                    if !matches {
                        problems.push(format!(
                            "{at}: row {} of {:?} does not hold the values that were sent",
                            row.row, row.id
                        ));
                    }
                    if !seen.entry(row.id).or_default().insert(row.row) {
                        problems.push(format!(
                            "{at}: row {} of {:?} is in the log twice",
                            row.row, row.id
                        ));
                    }
                }
            }
        }
        // An append of a table that expired some offsets may have lost some of its buckets'
        // rows to retention (each bucket's part is one chunk, which expires whole).
        let expired_tables: BTreeSet<usize> = log
            .iter()
            .enumerate()
            .filter(|(_, buckets)| buckets.iter().flatten().any(Option::is_none))
            .map(|(table, _)| table)
            .collect();
        for (id, rows) in &seen {
            let record = self.appends.get(id);
            if record.is_some_and(|r| expired_tables.contains(&r.table)) {
                continue;
            }
            let expected = record.map(|r| r.shape.rows).unwrap_or(0);
            if rows.len() as u32 != expected {
                problems.push(format!(
                    "append {id:?} is in the log with {} of its {expected} rows",
                    rows.len()
                ));
            }
        }
    }

    /// Expired offsets are a prefix of each bucket, in tables with retention only.
    fn check_expired(
        &self,
        log: &FinalLog,
        expirable: &dyn Fn(usize) -> Option<i64>,
        problems: &mut Vec<String>,
    ) {
        for (table, buckets) in log.iter().enumerate() {
            for (bucket, rows) in buckets.iter().enumerate() {
                let expired = rows.iter().take_while(|row| row.is_none()).count();
                if expired > 0 && expirable(table).is_none() {
                    problems.push(format!(
                        "t{table}/b{bucket}: offsets 0..{expired} are gone, but the table has no \
                         retention"
                    ));
                }
                if let Some(offset) = rows[expired..].iter().position(Option::is_none) {
                    problems.push(format!(
                        "t{table}/b{bucket}: offset {} is gone but earlier ones are not: expiry \
                         is not a prefix",
                        expired + offset
                    ));
                }
            }
        }
    }

    /// Acked rows at their acked offsets (or expired, if their commit is older than the
    /// table's retention allows), and each producer's acked appends in order.
    fn check_acks(
        &self,
        log: &FinalLog,
        expirable: &dyn Fn(usize) -> Option<i64>,
        problems: &mut Vec<String>,
    ) {
        let mut ranges: BTreeMap<ProducerBucket, Vec<AckedRange>> = BTreeMap::new();
        for (id, record) in &self.appends {
            let Some(ack) = record.acks.first() else {
                continue;
            };
            let mut rows = BTreeSet::new();
            let mut any_expired = false;
            for part in &ack.buckets {
                let bucket = part.bucket.0;
                let stream = log
                    .get(record.table)
                    .and_then(|t| t.get(bucket as usize))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let (base, end) = (part.base_offset.0, part.base_offset.0 + part.row_count);
                let at = format!("t{}/b{bucket}@{base}..{end}", record.table);
                if end > stream.len() as u64 {
                    problems.push(format!(
                        "{at}: acked to {id:?} at {:?} on node {}, but the log of that bucket \
                         ends at {}",
                        ack.at,
                        ack.node,
                        stream.len()
                    ));
                    continue;
                }
                let mut last_row = None;
                let mut expired = false;
                for offset in base..end {
                    let Some(row) = &stream[offset as usize] else {
                        expired = true;
                        if expirable(record.table).is_none_or(|before| part.commit_ts.0 >= before) {
                            problems.push(format!(
                                "{at}: acked to {id:?} at {:?} on node {} with commit time {}, \
                                 but offset {offset} is gone though retention keeps it",
                                ack.at, ack.node, part.commit_ts.0
                            ));
                        }
                        break;
                    };
                    if row.id != *id {
                        problems.push(format!(
                            "{at}: acked to {id:?} at {:?} on node {}, but offset {offset} holds \
                             row {} of {:?}",
                            ack.at, ack.node, row.row, row.id
                        ));
                        break;
                    }
                    if row.commit_ts != part.commit_ts.0 {
                        problems.push(format!(
                            "{at}: acked with commit time {}, the log says {}",
                            part.commit_ts.0, row.commit_ts
                        ));
                    }
                    if last_row.is_some_and(|last| last >= row.row) {
                        problems.push(format!("{at}: rows of {id:?} out of order"));
                    }
                    last_row = Some(row.row);
                    rows.insert(row.row);
                }
                ranges
                    .entry((id.producer, record.table, bucket))
                    .or_default()
                    .push((id.seq, base, end));
                any_expired |= expired;
            }
            if !any_expired
                && rows.len() as u32 != record.shape.rows
                && problems.len() < MAX_VIOLATIONS
                && ack.buckets.iter().all(|b| {
                    log.get(record.table)
                        .and_then(|t| t.get(b.bucket.0 as usize))
                        .is_some_and(|s| b.base_offset.0 + b.row_count <= s.len() as u64)
                })
            {
                problems.push(format!(
                    "append {id:?}: its ack covers {} of its {} rows",
                    rows.len(),
                    record.shape.rows
                ));
            }
        }
        for ((producer, table, bucket), mut list) in ranges {
            list.sort_unstable();
            for pair in list.windows(2) {
                let ((s1, _, end1), (s2, base2, _)) = (pair[0], pair[1]);
                if base2 < end1 {
                    problems.push(format!(
                        "t{table}/b{bucket}: producer {producer}'s acked append {s2} is at \
                         offset {base2}, before the end {end1} of its earlier append {s1}"
                    ));
                }
            }
        }
    }

    /// Every row any reader saw is the final log's row at that offset.
    /// In table `flag_replaced` a reader's `flag` may be the value sent or null, whatever the
    /// final log holds (a read that started before the replacement keeps the old column).
    fn check_observations(
        &self,
        log: &FinalLog,
        max_payload: u32,
        flag_replaced: Option<usize>,
        problems: &mut Vec<String>,
    ) {
        for observation in &self.observations {
            for row in &observation.rows {
                let at = format!(
                    "{} saw t{}/b{}@{}",
                    observation.who, observation.table, row.bucket, row.offset
                );
                let Some(logged) = log
                    .get(observation.table)
                    .and_then(|t| t.get(row.bucket as usize))
                    .and_then(|s| s.get(row.offset as usize))
                else {
                    problems.push(format!("{at}, which is not in the committed log"));
                    break;
                };
                // Expired since: nothing left to compare it with.
                let Some(logged) = logged else { continue };
                let expected: Vec<u64> = observation
                    .projection
                    .iter()
                    .map(|c| logged.fingerprints[*c])
                    .collect();
                let mut matches = combine(&expected) == row.fingerprint;
                if !matches
                    && flag_replaced == Some(observation.table)
                    && let Some(at) = observation.projection.iter().position(|c| *c == FLAG)
                    && let Some(record) = self.appends.get(&logged.id)
                {
                    let sent = row_fingerprints(&row_values(
                        logged.id,
                        &record.shape,
                        logged.row,
                        max_payload,
                    ))[FLAG];
                    matches = [sent, null_flag()].into_iter().any(|flag| {
                        let mut alternative = expected.clone();
                        alternative[at] = flag;
                        combine(&alternative) == row.fingerprint
                    });
                }
                if !matches || logged.commit_ts != row.commit_ts {
                    problems.push(format!(
                        "{at}: it differs from the committed row there (row {} of {:?}, \
                         committed at {}; the reader's row was committed at {})",
                        logged.row, logged.id, logged.commit_ts, row.commit_ts
                    ));
                    break;
                }
            }
        }
    }

    fn check_seeks(&self, log: &FinalLog, problems: &mut Vec<String>) {
        for seek in &self.seeks {
            let Some(stream) = log
                .get(seek.table)
                .and_then(|t| t.get(seek.bucket as usize))
            else {
                continue;
            };
            let first = seek.first_offset as usize;
            let before_ok = stream[..first.min(stream.len())]
                .iter()
                .flatten()
                .last()
                .is_none_or(|row| row.commit_ts < seek.ts);
            let at_ok = stream
                .get(first)
                .and_then(Option::as_ref)
                .is_none_or(|row| row.commit_ts >= seek.ts);
            if !before_ok || !at_ok {
                problems.push(format!(
                    "{}: a read of t{}/b{} from time {} started at offset {first}, which is not \
                     the first row committed at or after that time",
                    seek.who, seek.table, seek.bucket, seek.ts
                ));
            }
        }
    }

    /// Every offset a read skipped is gone from the final log, and was old enough to have
    /// expired when the read skipped it (checked for acked offsets, whose commit time is
    /// known).
    fn check_skips(&self, log: &FinalLog, tables: &[TableSpec], problems: &mut Vec<String>) {
        if self.skips.is_empty() {
            return;
        }
        // Commit time of every acked range: (table, bucket) -> [(base, end, commit µs)].
        let mut committed: BTreeMap<(usize, u32), Vec<CommittedRange>> = BTreeMap::new();
        for record in self.appends.values() {
            for part in record.acks.first().iter().flat_map(|ack| &ack.buckets) {
                committed
                    .entry((record.table, part.bucket.0))
                    .or_default()
                    .push((
                        part.base_offset.0,
                        part.base_offset.0 + part.row_count,
                        part.commit_ts.0,
                    ));
            }
        }
        for skip in &self.skips {
            let who = format!(
                "{}: a read of t{}/b{} skipped offsets {}..{} at {:?}",
                skip.who, skip.table, skip.bucket, skip.from, skip.to, skip.at
            );
            let stream = log
                .get(skip.table)
                .and_then(|t| t.get(skip.bucket as usize))
                .map(Vec::as_slice)
                .unwrap_or_default();
            if let Some(offset) = (skip.from..skip.to)
                .find(|offset| stream.get(*offset as usize).is_none_or(Option::is_some))
            {
                problems.push(format!("{who}, but offset {offset} did not expire"));
                continue;
            }
            let Some(retention) = tables.get(skip.table).and_then(|t| t.retention) else {
                problems.push(format!("{who}, but the table has no retention"));
                continue;
            };
            let before =
                SIM_EPOCH_MICROS + skip.at.as_micros() as i64 - retention.as_micros() as i64;
            let ranges = committed
                .get(&(skip.table, skip.bucket))
                .map(Vec::as_slice)
                .unwrap_or_default();
            if let Some((base, _, ts)) = ranges
                .iter()
                .find(|(base, end, ts)| *base < skip.to && *end > skip.from && *ts >= before)
            {
                problems.push(format!(
                    "{who}, but offset {base} was committed at {ts}, within retention then"
                ));
            }
        }
    }
}

/// A producer's rows in one bucket: `(producer, table, bucket)`.
/// The end of the acked rows of `bucket` that a read on `node` (opened at `opened`),
/// started at `at`, must return, given each append's first ack: acks given before `at` by
/// `node` itself or before `node` opened.
pub(crate) fn acked_end_of<'a>(
    first_acks: impl Iterator<Item = &'a Ack>,
    bucket: u32,
    node: u32,
    opened: Duration,
    at: Duration,
) -> u64 {
    first_acks
        .filter(|ack| ack.at <= at && (ack.node == node || ack.at < opened))
        .flat_map(|ack| ack.buckets.iter())
        .filter(|b| b.bucket.0 == bucket)
        .map(|b| b.base_offset.0 + b.row_count)
        .max()
        .unwrap_or(0)
}

type ProducerBucket = (u64, usize, u32);

/// Where an acked append landed in one bucket: `(seq, first offset, end offset)`.
type AckedRange = (u64, u64, u64);

pub(crate) fn same_offsets(a: &[BucketAppend], b: &[BucketAppend]) -> bool {
    let key = |list: &[BucketAppend]| {
        let mut v: Vec<(u32, u64, u64, i64)> = list
            .iter()
            .map(|x| (x.bucket.0, x.base_offset.0, x.row_count, x.commit_ts.0))
            .collect();
        v.sort_unstable();
        v
    };
    key(a) == key(b)
}
