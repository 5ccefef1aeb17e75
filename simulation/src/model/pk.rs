//! The model of primary-key tables: what their producers sent and were acknowledged, what
//! lookups and changelog reads returned, and at the end the changelog and key state a fresh
//! process reads back. [`PkModel::check`] replays each bucket's final changelog from offset
//! 0 with its own merge engine ([`apply`], written from the documented semantics, not
//! calling the code's) and checks:
//!
//! - **the changelog is well formed**: offsets ascend below the bucket's tail, one change per
//!   offset but an update's `-U` then `+U`, which share it;
//! - **before images**: every `-U` and `-D` holds exactly the replayed current row of its key,
//!   a `+I` only comes for a key without one;
//! - **acked writes are applied, at their offsets, as the engine says**: at every offset an
//!   ack covers, the changelog holds what the write's row does to the replayed state (nothing
//!   when ignored, `+I`, `-U`/`+U` with the merged row, or `-D`), with the ack's commit time;
//!   so no acknowledged write is lost, moved or applied twice;
//! - **unacknowledged writes** (outcome unknown) may or may not have landed, at offsets no
//!   ack covers: a `+I`/`+U` there must be the merged row of a sent, unacknowledged write's
//!   row (never one of an acknowledged write, never the same row twice), a `-D` the key of a
//!   sent, unacknowledged delete;
//! - **final lookups equal the replayed key state**: every key's row and `_offset` (the
//!   offset that wrote it), or no row;
//! - **lookups read their writes**: a lookup's row is one the key had at some point of the
//!   replay at or after every offset acked before the lookup started (on its process, or
//!   before that process opened), never a row the key never had;
//! - **changelog reads are slices of the final changelog**: each read's rows of a bucket are
//!   the final changelog's from its start offset, in order (projected, without `-U` when
//!   asked); a whole read reaches every change below the offsets acked before it started.
//! - **snapshot reads are the changelog replayed**: each bucket of a snapshot read (taken
//!   while writes go on, and once at the end) holds exactly the rows of the final changelog
//!   below the offset it is as of, replayed (each live key once, as `+I`, with the `_offset`
//!   and commit time of the row that wrote it, in key order at the end), and that offset
//!   covers every ack given before the read started.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use inlet_core::table::AggregateFn;

use super::{Ack, combine, same_offsets};
use crate::config::{EngineSpec, PkTableSpec};
use crate::data::{AppendId, FLAG, KEY, PAYLOAD, SCORE, SEQ, Value, row_fingerprints};
use crate::pk::{PkOp, PkShape, key_buckets, key_of, pk_row};

/// Violations one bucket's replay reports before it stops (its state is then unknown).
const MAX_PER_BUCKET: usize = 3;

#[derive(Debug)]
pub struct PkRecord {
    pub table: usize,
    pub shape: PkShape,
    pub sent_at: Duration,
    pub acks: Vec<Ack>,
    pub gave_up: bool,
}

/// A changelog row's `_change_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Insert,
    UpdateBefore,
    UpdateAfter,
    Delete,
}

impl Kind {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "+I" => Self::Insert,
            "-U" => Self::UpdateBefore,
            "+U" => Self::UpdateAfter,
            "-D" => Self::Delete,
            _ => return None,
        })
    }
}

/// One row of a changelog read.
#[derive(Clone, Debug)]
pub struct ChangeRow {
    pub bucket: u32,
    pub offset: u64,
    pub commit_ts: i64,
    pub kind: Kind,
    /// Fingerprint of each projected column, in projection order.
    pub fingerprints: Vec<u64>,
    /// The producer, sequence and row of the row's image, when projected.
    pub identity: Option<(AppendId, u32)>,
    /// The key, when projected.
    pub key: Option<i64>,
}

/// A key's row as a lookup returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// `_offset`: the changelog offset that wrote the row.
    pub offset: u64,
    pub bucket: u32,
    /// One fingerprint over every column.
    pub fingerprint: u64,
}

#[derive(Debug)]
pub struct LookupObservation {
    pub who: String,
    pub table: usize,
    pub keys: Vec<i64>,
    pub found: Vec<Option<Found>>,
    /// Per key: the end of the offsets of its bucket acked before the lookup started.
    pub must_reach: Vec<u64>,
}

/// What one changelog read returned of one bucket.
#[derive(Debug)]
pub struct ChangeObservation {
    pub who: String,
    pub table: usize,
    pub bucket: u32,
    pub start: u64,
    pub projection: Arc<Vec<usize>>,
    pub omit_update_before: bool,
    pub rows: Vec<ChangeRow>,
    /// For a whole read (not cut short, no limit): the end of the offsets acked before it
    /// started, which it must cover.
    pub must_reach: Option<u64>,
}

/// What a snapshot read returned: per bucket that had rows, the offset it is as of and the
/// rows in the order they came; per bucket, the end of the acks given before it started.
#[derive(Debug)]
pub struct SnapshotObservation {
    pub who: String,
    pub table: usize,
    pub buckets: BTreeMap<u32, (u64, Vec<ChangeRow>)>,
    pub must_reach: Vec<u64>,
}

/// The primary-key tables as the auditor read them back: `[table][bucket]` changelogs and
/// tails, and `[table][key]` lookups of keys `0..keys + 3`.
#[derive(Debug, Default)]
pub struct PkFinal {
    pub changelogs: Vec<Vec<Vec<ChangeRow>>>,
    pub tails: Vec<Vec<u64>>,
    pub lookups: Vec<Vec<Option<Found>>>,
    /// `[table]`: the rows of a snapshot read (every column), in the order they came.
    pub snapshots: Vec<Vec<ChangeRow>>,
}

#[derive(Debug, Default)]
pub struct PkModel {
    pub writes: BTreeMap<AppendId, PkRecord>,
    lookups: Vec<LookupObservation>,
    changelogs: Vec<ChangeObservation>,
    snapshots: Vec<SnapshotObservation>,
}

type Row = [Value; 7];

/// What a row written to a key does, by the engine.
#[derive(Clone, Debug)]
enum Effect {
    Ignored,
    Insert(Row),
    Update(Row),
    Delete,
}

/// One offset of a final changelog.
#[derive(Clone, Debug)]
enum Entry<'a> {
    Insert(&'a ChangeRow),
    Update(&'a ChangeRow, &'a ChangeRow),
    Delete(&'a ChangeRow),
}

/// A key's state at each point of the replay: `(from, row)`, where the row (the offset that
/// wrote it and a fingerprint of its columns, or none) holds from snapshot point `from` (the
/// number of rows applied) until the next entry's.
type History = Vec<(u64, Option<(u64, u64)>)>;

impl PkModel {
    pub fn sent(&mut self, id: AppendId, table: usize, shape: &PkShape, at: Duration) {
        self.writes.entry(id).or_insert_with(|| PkRecord {
            table,
            shape: shape.clone(),
            sent_at: at,
            acks: Vec::new(),
            gave_up: false,
        });
    }

    /// Records an ack; returns what is wrong with it (every ack of one write must be the
    /// same, and cover its rows).
    pub fn acked(&mut self, id: AppendId, ack: Ack) -> Vec<String> {
        let Some(record) = self.writes.get_mut(&id) else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        if let Some(first) = record.acks.first()
            && !same_offsets(&first.buckets, &ack.buckets)
        {
            problems.push(format!(
                "pk write {id:?} was acked twice with different offsets: {:?} at {:?} on node \
                 {}, then {:?} at {:?} on node {}",
                first.buckets, first.at, first.node, ack.buckets, ack.at, ack.node
            ));
        }
        let rows: u64 = ack.buckets.iter().map(|b| b.row_count).sum();
        if rows != u64::from(record.shape.rows) {
            problems.push(format!(
                "pk write {id:?} of {} rows was acked with {rows} rows: {:?}",
                record.shape.rows, ack.buckets
            ));
        }
        record.acks.push(ack);
        problems
    }

    pub fn gave_up(&mut self, id: AppendId) {
        if let Some(record) = self.writes.get_mut(&id) {
            record.gave_up = true;
        }
    }

    pub fn looked_up(&mut self, observation: LookupObservation) {
        self.lookups.push(observation);
    }

    pub fn read_changelog(&mut self, observation: ChangeObservation) {
        self.changelogs.push(observation);
    }

    pub fn read_snapshot(&mut self, observation: SnapshotObservation) {
        self.snapshots.push(observation);
    }

    /// The end of the acked offsets of `(table, bucket)` that a read on `node` (opened at
    /// `opened`), started at `at`, must include: acks given before `at` by `node` itself or
    /// before `node` opened.
    pub fn acked_end(
        &self,
        table: usize,
        bucket: u32,
        node: u32,
        opened: Duration,
        at: Duration,
    ) -> u64 {
        let first_acks = self
            .writes
            .values()
            .filter(|record| record.table == table)
            .filter_map(|record| record.acks.first());
        super::acked_end_of(first_acks, bucket, node, opened, at)
    }

    pub fn acked_count(&self) -> usize {
        self.writes.values().filter(|r| !r.acks.is_empty()).count()
    }

    /// Checks the final changelogs and lookups against the acknowledged writes, and every
    /// observation against them.
    pub fn check(
        &self,
        tables: &[PkTableSpec],
        last: &PkFinal,
        max_payload: u32,
        problems: &mut Vec<String>,
    ) {
        for (t, table) in tables.iter().enumerate() {
            let (Some(changelog), Some(tails)) = (last.changelogs.get(t), last.tails.get(t)) else {
                continue;
            };
            let routes = key_buckets(table.keys + 3, table.buckets);
            let mut state: BTreeMap<i64, (u64, Row)> = BTreeMap::new();
            let mut histories: BTreeMap<i64, History> = BTreeMap::new();
            let mut replayed = true;
            for (bucket, rows) in changelog.iter().enumerate() {
                let tail = tails.get(bucket).copied().unwrap_or(0);
                replayed &= self.replay(
                    t,
                    table,
                    bucket as u32,
                    rows,
                    tail,
                    &routes,
                    max_payload,
                    &mut state,
                    &mut histories,
                    problems,
                );
            }
            if !replayed {
                // The replayed state is not the table's: comparing with it says nothing more.
                continue;
            }
            self.check_final_lookups(t, table, last, &routes, &state, problems);
            check_final_snapshot(t, last, changelog, &routes, &state, problems);
            self.check_lookups(t, &histories, problems);
            self.check_changelog_reads(t, changelog, problems);
            self.check_snapshot_reads(t, changelog, problems);
        }
    }

    /// Where each acknowledged row of `table` sits in `bucket`: offset → (write, row).
    fn acked_rows(
        &self,
        t: usize,
        bucket: u32,
        tail: u64,
        routes: &[u32],
        max_payload: u32,
        problems: &mut Vec<String>,
    ) -> BTreeMap<u64, (AppendId, u32, i64)> {
        let mut out = BTreeMap::new();
        for (id, record) in self.writes.iter().filter(|(_, r)| r.table == t) {
            let Some(ack) = record.acks.first() else {
                continue;
            };
            let Some(part) = ack.buckets.iter().find(|b| b.bucket.0 == bucket) else {
                continue;
            };
            let rows: Vec<u32> = (0..record.shape.rows)
                .filter(|row| {
                    let key = key_of(&pk_row(*id, &record.shape, *row, max_payload));
                    routes[key as usize] == bucket
                })
                .collect();
            let (base, end) = (part.base_offset.0, part.base_offset.0 + part.row_count);
            if rows.len() as u64 != part.row_count {
                problems.push(format!(
                    "k{t}/b{bucket}@{base}..{end}: pk write {id:?} was acked with {} rows in \
                     this bucket, but {} of its rows route here",
                    part.row_count,
                    rows.len()
                ));
                continue;
            }
            if end > tail {
                problems.push(format!(
                    "k{t}/b{bucket}@{base}..{end}: acked to pk write {id:?} at {:?} on node {}, \
                     but the bucket's changelog ends at offset {tail}",
                    ack.at, ack.node
                ));
            }
            for (i, row) in rows.into_iter().enumerate() {
                if let Some((other, _, _)) =
                    out.insert(base + i as u64, (*id, row, part.commit_ts.0))
                {
                    problems.push(format!(
                        "k{t}/b{bucket}@{}: acked to both {other:?} and {id:?}",
                        base + i as u64
                    ));
                }
            }
        }
        out
    }

    /// Replays one bucket's final changelog against the writes (see the module's doc); false
    /// when it had to stop.
    #[allow(clippy::too_many_arguments)]
    fn replay(
        &self,
        t: usize,
        table: &PkTableSpec,
        bucket: u32,
        rows: &[ChangeRow],
        tail: u64,
        routes: &[u32],
        max_payload: u32,
        state: &mut BTreeMap<i64, (u64, Row)>,
        histories: &mut BTreeMap<i64, History>,
        problems: &mut Vec<String>,
    ) -> bool {
        let start = problems.len();
        let acked = self.acked_rows(t, bucket, tail, routes, max_payload, problems);
        let Some(entries) = entries(t, bucket, rows, tail, problems) else {
            return false;
        };
        // Rows of unacknowledged writes seen landed, and where.
        let mut landed: BTreeMap<(AppendId, u32), u64> = BTreeMap::new();
        for offset in 0..tail {
            if problems.len() - start >= MAX_PER_BUCKET {
                return false;
            }
            let at = format!("k{t}/b{bucket}@{offset}");
            let entry = entries.get(&offset);
            let (id, row, expected) = if let Some((id, row, commit_ts)) = acked.get(&offset) {
                if let Some(entry) = entry
                    && entry.commit_ts() != *commit_ts
                {
                    problems.push(format!(
                        "{at}: acked with commit time {commit_ts}, the changelog says {}",
                        entry.commit_ts()
                    ));
                }
                (*id, *row, None)
            } else {
                // No ack covers this offset: whatever landed here had an unknown outcome.
                match entry {
                    None => continue,
                    Some(Entry::Delete(before)) => {
                        let key = before.key.unwrap_or(-1);
                        let deleted = self.writes.iter().any(|(id, r)| {
                            r.table == t
                                && r.acks.is_empty()
                                && r.shape.op == PkOp::Delete
                                && (0..r.shape.rows).any(|row| {
                                    key_of(&pk_row(*id, &r.shape, row, max_payload)) == key
                                })
                        });
                        if !deleted {
                            problems.push(format!(
                                "{at}: -D of key {key}, which no unacknowledged delete names \
                                 (and no ack covers this offset)"
                            ));
                            continue;
                        }
                        (
                            AppendId {
                                producer: 0,
                                seq: 0,
                            },
                            0,
                            Some(key),
                        )
                    }
                    Some(Entry::Insert(after) | Entry::Update(_, after)) => {
                        let Some((id, row)) = after.identity else {
                            unreachable!("the audit reads every column");
                        };
                        let Some(record) = self.writes.get(&id).filter(|r| r.table == t) else {
                            problems.push(format!(
                                "{at}: a {:?} of row {row} of {id:?}, which nobody sent to k{t}",
                                after.kind
                            ));
                            continue;
                        };
                        if let Some(ack) = record.acks.first() {
                            problems.push(format!(
                                "{at}: a {:?} of row {row} of {id:?}, which was acked at {:?} \
                                 with other offsets: {:?}",
                                after.kind, ack.at, ack.buckets
                            ));
                            continue;
                        }
                        if record.shape.op == PkOp::Delete || row >= record.shape.rows {
                            problems.push(format!(
                                "{at}: a {:?} of row {row} of {id:?}, a {:?} of {} rows",
                                after.kind, record.shape.op, record.shape.rows
                            ));
                            continue;
                        }
                        if let Some(first) = landed.insert((id, row), offset) {
                            problems.push(format!(
                                "{at}: row {row} of {id:?} landed twice, at {first} and here"
                            ));
                        }
                        (id, row, None)
                    }
                }
            };
            // The change the engine makes of this row, against the replayed state.
            let (key, effect) = match expected {
                Some(key) => (key, Effect::Delete),
                None => {
                    let record = &self.writes[&id];
                    let values = pk_row(id, &record.shape, row, max_payload);
                    let key = key_of(&values);
                    let current = state.get(&key).map(|(_, row)| row);
                    (
                        key,
                        apply(
                            &table.engine,
                            record.shape.op,
                            &record.shape.columns,
                            current,
                            &values,
                        ),
                    )
                }
            };
            let current = state.get(&key).map(|(_, row)| fingerprint(row));
            let shown = entry
                .map(|e| e.describe())
                .unwrap_or_else(|| "nothing".to_owned());
            let ok = match (&effect, entry) {
                (Effect::Ignored, None) => true,
                (Effect::Insert(new), Some(Entry::Insert(after))) => {
                    current.is_none() && matches(after, new)
                }
                (Effect::Update(new), Some(Entry::Update(before, after))) => {
                    current == Some(combine(&before.fingerprints)) && matches(after, new)
                }
                (Effect::Delete, Some(Entry::Delete(before))) => {
                    current == Some(combine(&before.fingerprints))
                }
                _ => false,
            };
            if !ok {
                problems.push(format!(
                    "{at}: row {row} of {id:?} ({}) on key {key} should give {} against the \
                     replayed row {}, the changelog has {shown}",
                    if acked.contains_key(&offset) {
                        "acked"
                    } else {
                        "not acked"
                    },
                    effect.describe(),
                    match state.get(&key) {
                        Some((written, _)) => format!("written at {written}"),
                        None => "(none)".to_owned(),
                    },
                ));
                return false;
            }
            let next = match effect {
                Effect::Ignored => continue,
                Effect::Insert(row) | Effect::Update(row) => {
                    let next = Some((offset, fingerprint(&row)));
                    state.insert(key, (offset, row));
                    next
                }
                Effect::Delete => {
                    state.remove(&key);
                    None
                }
            };
            histories
                .entry(key)
                .or_insert_with(|| vec![(0, None)])
                .push((offset + 1, next));
        }
        problems.len() == start
    }

    fn check_final_lookups(
        &self,
        t: usize,
        table: &PkTableSpec,
        last: &PkFinal,
        routes: &[u32],
        state: &BTreeMap<i64, (u64, Row)>,
        problems: &mut Vec<String>,
    ) {
        let Some(found) = last.lookups.get(t) else {
            return;
        };
        if found.len() != table.keys as usize + 3 {
            problems.push(format!(
                "audit: the final lookup of k{t} returned {} results for {} keys",
                found.len(),
                table.keys + 3
            ));
            return;
        }
        for (key, found) in found.iter().enumerate() {
            let expected = state.get(&(key as i64)).map(|(offset, row)| Found {
                offset: *offset,
                bucket: routes[key],
                fingerprint: fingerprint(row),
            });
            if *found != expected {
                problems.push(format!(
                    "k{t}: the final lookup of key {key} returned {found:?}, the replayed \
                     changelog's state is {expected:?}"
                ));
            }
        }
    }

    fn check_lookups(
        &self,
        t: usize,
        histories: &BTreeMap<i64, History>,
        problems: &mut Vec<String>,
    ) {
        let never = vec![(0, None)];
        for lookup in self.lookups.iter().filter(|l| l.table == t) {
            for ((key, found), must_reach) in lookup
                .keys
                .iter()
                .zip(&lookup.found)
                .zip(&lookup.must_reach)
            {
                let history = histories.get(key).unwrap_or(&never);
                let seen = found.map(|f| (f.offset, f.fingerprint));
                // The points of the replay where the key had the row the lookup saw.
                let held: Vec<(u64, Option<u64>)> = history
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, row))| *row == seen)
                    .map(|(i, (from, _))| (*from, history.get(i + 1).map(|(next, _)| next - 1)))
                    .collect();
                if held.is_empty() {
                    problems.push(format!(
                        "{}: a lookup of k{t} key {key} returned {found:?}, a row the key never \
                         had in the final changelog",
                        lookup.who
                    ));
                } else if !held
                    .iter()
                    .any(|(_, until)| until.is_none_or(|u| u >= *must_reach))
                {
                    problems.push(format!(
                        "{}: a lookup of k{t} key {key} returned {found:?}, which the key held \
                         only at points {held:?} of its bucket, before offsets up to {must_reach} \
                         had been acked (read-your-writes)",
                        lookup.who
                    ));
                }
            }
        }
    }

    /// Each snapshot read of a bucket is the final changelog below the offset it is as of,
    /// replayed (every key's row and the offset that wrote it), and that offset covers the
    /// acks given before the read started.
    fn check_snapshot_reads(
        &self,
        t: usize,
        changelog: &[Vec<ChangeRow>],
        problems: &mut Vec<String>,
    ) {
        for read in self.snapshots.iter().filter(|r| r.table == t) {
            for (bucket, all) in changelog.iter().enumerate() {
                let bucket = bucket as u32;
                let at = read.buckets.get(&bucket).map(|(at, _)| *at);
                let who = format!("{}: the snapshot of k{t} bucket {bucket}", read.who);
                let reach = read.must_reach.get(bucket as usize).copied().unwrap_or(0);
                if let Some(at) = at
                    && at < reach
                {
                    problems.push(format!("{who} is as of {at}, before the acked end {reach}"));
                }
                let mut expected: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
                for row in all.iter().filter(|row| at.is_none_or(|at| row.offset < at)) {
                    let Some(key) = row.key else { continue };
                    match row.kind {
                        Kind::Insert | Kind::UpdateAfter => {
                            expected.insert(key, (row.offset, combine(&row.fingerprints)));
                        }
                        Kind::Delete => {
                            expected.remove(&key);
                        }
                        Kind::UpdateBefore => {}
                    }
                }
                let rows = read.buckets.get(&bucket).map(|(_, rows)| rows.as_slice());
                let mut seen: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
                for row in rows.unwrap_or_default() {
                    let key = row.key.unwrap_or(-1);
                    if row.kind != Kind::Insert
                        || seen
                            .insert(key, (row.offset, combine(&row.fingerprints)))
                            .is_some()
                    {
                        problems.push(format!("{who}: key {key} as {:?}, or twice", row.kind));
                    }
                }
                if at.is_none() {
                    problems.push(format!("{who}: no batch of it came"));
                    continue;
                }
                if seen != expected {
                    problems.push(format!(
                        "{who} as of {at:?}: {} rows, the changelog below it replays to {}",
                        seen.len(),
                        expected.len()
                    ));
                }
            }
        }
    }

    fn check_changelog_reads(
        &self,
        t: usize,
        changelog: &[Vec<ChangeRow>],
        problems: &mut Vec<String>,
    ) {
        for read in self.changelogs.iter().filter(|r| r.table == t) {
            let Some(all) = changelog.get(read.bucket as usize) else {
                continue;
            };
            let expected: Vec<&ChangeRow> = all
                .iter()
                .filter(|row| row.offset >= read.start)
                .filter(|row| !(read.omit_update_before && row.kind == Kind::UpdateBefore))
                .collect();
            let at = format!(
                "{}: a changelog read of k{t}/b{} from {}",
                read.who, read.bucket, read.start
            );
            for (i, row) in read.rows.iter().enumerate() {
                let Some(final_row) = expected.get(i) else {
                    problems.push(format!(
                        "{at} returned {} rows, the final changelog has {} from there",
                        read.rows.len(),
                        expected.len()
                    ));
                    break;
                };
                let projected: Vec<u64> = read
                    .projection
                    .iter()
                    .map(|c| final_row.fingerprints[*c])
                    .collect();
                if row.offset != final_row.offset
                    || row.kind != final_row.kind
                    || row.commit_ts != final_row.commit_ts
                    || row.fingerprints != projected
                {
                    problems.push(format!(
                        "{at}: its row {i} ({:?} at {}) differs from the final changelog's \
                         ({:?} at {})",
                        row.kind, row.offset, final_row.kind, final_row.offset
                    ));
                    break;
                }
            }
            if let Some(must_reach) = read.must_reach {
                let due = expected.iter().filter(|r| r.offset < must_reach).count();
                if read.rows.len() < due {
                    problems.push(format!(
                        "{at} returned {} rows, but the final changelog has {due} below offset \
                         {must_reach}, acked before the read started",
                        read.rows.len()
                    ));
                }
            }
        }
    }
}

/// Groups one bucket's final changelog by offset, checking its form.
fn entries<'a>(
    t: usize,
    bucket: u32,
    rows: &'a [ChangeRow],
    tail: u64,
    problems: &mut Vec<String>,
) -> Option<BTreeMap<u64, Entry<'a>>> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < rows.len() {
        let row = &rows[i];
        let at = format!("k{t}/b{bucket}@{}", row.offset);
        if row.offset >= tail {
            problems.push(format!("{at}: a change at or above the tail {tail}"));
            return None;
        }
        let entry = match row.kind {
            Kind::Insert => Entry::Insert(row),
            Kind::Delete => Entry::Delete(row),
            Kind::UpdateAfter => {
                problems.push(format!("{at}: a +U without its -U"));
                return None;
            }
            Kind::UpdateBefore => match rows.get(i + 1) {
                Some(after) if after.kind == Kind::UpdateAfter && after.offset == row.offset => {
                    i += 1;
                    if after.key != row.key {
                        problems.push(format!(
                            "{at}: -U of key {:?}, +U of key {:?}",
                            row.key, after.key
                        ));
                        return None;
                    }
                    Entry::Update(row, after)
                }
                _ => {
                    problems.push(format!("{at}: a -U not followed by its +U"));
                    return None;
                }
            },
        };
        if out
            .last_key_value()
            .is_some_and(|(last, _)| *last >= row.offset)
        {
            problems.push(format!("{at}: offsets do not ascend"));
            return None;
        }
        out.insert(row.offset, entry);
        i += 1;
    }
    Some(out)
}

impl Entry<'_> {
    fn commit_ts(&self) -> i64 {
        match self {
            Self::Insert(row) | Self::Update(row, _) | Self::Delete(row) => row.commit_ts,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Insert(after) => format!("+I of {:?}", after.identity),
            Self::Update(before, after) => {
                format!("-U of {:?} / +U of {:?}", before.identity, after.identity)
            }
            Self::Delete(before) => format!("-D of {:?}", before.identity),
        }
    }
}

impl Effect {
    fn describe(&self) -> String {
        match self {
            Self::Ignored => "nothing".to_owned(),
            Self::Insert(row) => format!("+I of {:?}", identity(row)),
            Self::Update(row) => format!("-U/+U of {:?}", identity(row)),
            Self::Delete => "-D".to_owned(),
        }
    }
}

fn identity(row: &Row) -> (Value, Value, Value) {
    (row[0].clone(), row[1].clone(), row[2].clone())
}

/// The final snapshot read is the replayed state: every live key once, as `+I`, with the
/// `_offset` and `_timestamp` of the changelog row that wrote it, each bucket in key order.
fn check_final_snapshot(
    t: usize,
    last: &PkFinal,
    changelog: &[Vec<ChangeRow>],
    routes: &[u32],
    state: &BTreeMap<i64, (u64, Row)>,
    problems: &mut Vec<String>,
) {
    let Some(rows) = last.snapshots.get(t) else {
        return;
    };
    let mut read: BTreeMap<i64, Found> = BTreeMap::new();
    let mut last_key: BTreeMap<u32, i64> = BTreeMap::new();
    for row in rows {
        let Some(key) = row.key else {
            problems.push(format!("k{t}: a snapshot row without its key: {row:?}"));
            return;
        };
        let at = format!(
            "k{t}: the snapshot row of key {key} (bucket {})",
            row.bucket
        );
        if row.kind != Kind::Insert {
            problems.push(format!("{at} is a {:?}, not an insert", row.kind));
        }
        if last_key
            .insert(row.bucket, key)
            .is_some_and(|before| before >= key)
        {
            problems.push(format!("{at} is out of key order"));
        }
        let written = changelog.get(row.bucket as usize).and_then(|rows| {
            rows.iter().find(|c| {
                c.offset == row.offset && matches!(c.kind, Kind::Insert | Kind::UpdateAfter)
            })
        });
        if written.map(|c| c.commit_ts) != Some(row.commit_ts) {
            problems.push(format!(
                "{at} has offset {} and time {}; the changelog row there is {written:?}",
                row.offset, row.commit_ts
            ));
        }
        let found = Found {
            offset: row.offset,
            bucket: row.bucket,
            fingerprint: combine(&row.fingerprints),
        };
        if read.insert(key, found).is_some() {
            problems.push(format!("{at} came twice"));
        }
    }
    let expected: BTreeMap<i64, Found> = state
        .iter()
        .map(|(key, (offset, row))| {
            let found = Found {
                offset: *offset,
                bucket: routes.get(*key as usize).copied().unwrap_or(u32::MAX),
                fingerprint: fingerprint(row),
            };
            (*key, found)
        })
        .collect();
    if read != expected {
        let differ: Vec<i64> = expected
            .keys()
            .chain(read.keys())
            .filter(|key| read.get(key) != expected.get(key))
            .copied()
            .collect();
        problems.push(format!(
            "k{t}: the final snapshot differs from the replayed changelog's state at keys \
             {differ:?}"
        ));
    }
}

fn fingerprint(row: &Row) -> u64 {
    combine(&row_fingerprints(row))
}

fn matches(read: &ChangeRow, row: &Row) -> bool {
    read.fingerprints.as_slice() == row_fingerprints(row).as_slice()
}

/// What `new` (a row of a write `op` carrying `columns`) does to a key whose row is
/// `current`, under `engine`: the documented semantics (README, "Primary-key tables").
fn apply(
    engine: &EngineSpec,
    op: PkOp,
    columns: &[usize],
    current: Option<&Row>,
    new: &Row,
) -> Effect {
    match (op, current) {
        (PkOp::Delete, None) => Effect::Ignored,
        (PkOp::Delete, Some(_)) => Effect::Delete,
        // A new key's row is the write's (a partial one's other columns null).
        (_, None) => Effect::Insert(new.clone()),
        (PkOp::Partial, Some(current)) => {
            Effect::Update(merge(engine, Some(columns), current, new))
        }
        (PkOp::Upsert, Some(current)) => match engine {
            EngineSpec::LastRow => Effect::Update(new.clone()),
            EngineSpec::FirstRow => Effect::Ignored,
            EngineSpec::Versioned => {
                if version(new) > version(current) {
                    Effect::Update(new.clone())
                } else {
                    Effect::Ignored
                }
            }
            EngineSpec::Aggregation { .. } => Effect::Update(merge(engine, None, current, new)),
        },
    }
}

fn version(row: &Row) -> i64 {
    match row[SEQ] {
        Value::Int64(seq) => seq,
        _ => unreachable!("seq is int64"),
    }
}

/// A row merged cell by cell: columns a partial write does not carry keep their value, the
/// others are the aggregate (aggregation) or the new value.
fn merge(engine: &EngineSpec, columns: Option<&[usize]>, current: &Row, new: &Row) -> Row {
    std::array::from_fn(|column| {
        if columns.is_some_and(|carried| !carried.contains(&column)) {
            return current[column].clone();
        }
        let function = match engine {
            EngineSpec::Aggregation {
                payload,
                score,
                flag,
            } => match column {
                PAYLOAD => Some(*payload),
                SCORE => Some(*score),
                FLAG => Some(*flag),
                KEY => None,
                _ => Some(AggregateFn::LastNonNullValue),
            },
            _ => None,
        };
        match function {
            None => new[column].clone(),
            Some(function) => aggregate(function, &current[column], &new[column]),
        }
    })
}

fn aggregate(function: AggregateFn, old: &Value, new: &Value) -> Value {
    use std::cmp::Ordering;
    let keep_old = |order: Ordering| match function {
        AggregateFn::Max => order != Ordering::Less,
        _ => order != Ordering::Greater,
    };
    match (old, new) {
        (Value::Utf8(old), Value::Utf8(new)) => {
            Value::Utf8(cell(function, old.clone(), new.clone(), |a, b| {
                if keep_old(a.cmp(&b)) { a } else { b }
            }))
        }
        (Value::Float64(old), Value::Float64(new)) => {
            Value::Float64(cell(function, *old, *new, |a, b| match function {
                AggregateFn::Sum => a + b,
                _ => {
                    if keep_old(a.total_cmp(&b)) {
                        a
                    } else {
                        b
                    }
                }
            }))
        }
        (Value::Boolean(old), Value::Boolean(new)) => {
            Value::Boolean(cell(function, *old, *new, |a, b| match function {
                AggregateFn::BoolAnd => a && b,
                _ => a || b,
            }))
        }
        // The identity columns: never null, `last_non_null_value`.
        _ => new.clone(),
    }
}

/// One nullable cell of an aggregate: nulls are skipped but by `last_value`/`first_value`.
fn cell<T>(
    function: AggregateFn,
    old: Option<T>,
    new: Option<T>,
    both: impl Fn(T, T) -> T,
) -> Option<T> {
    match function {
        AggregateFn::LastValue => new,
        AggregateFn::FirstValue => old,
        AggregateFn::LastNonNullValue => new.or(old),
        AggregateFn::FirstNonNullValue => old.or(new),
        _ => match (old, new) {
            (Some(old), Some(new)) => Some(both(old, new)),
            (old, new) => old.or(new),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::COLUMNS;

    fn row(seq: i64, score: Option<f64>, flag: Option<bool>) -> Row {
        [
            Value::Int64(1),
            Value::Int64(seq),
            Value::Int32(0),
            Value::Int64(7),
            Value::Utf8(Some(format!("p{seq}"))),
            Value::Float64(score),
            Value::Boolean(flag),
        ]
    }

    #[test]
    fn the_engines_merge_as_documented() {
        let all: Vec<usize> = (0..COLUMNS).collect();
        let (old, new) = (row(5, Some(1.5), Some(true)), row(3, None, Some(false)));
        assert!(matches!(
            apply(&EngineSpec::FirstRow, PkOp::Upsert, &all, Some(&old), &new),
            Effect::Ignored
        ));
        assert!(matches!(
            apply(&EngineSpec::Versioned, PkOp::Upsert, &all, Some(&old), &new),
            Effect::Ignored
        ));
        assert!(matches!(
            apply(&EngineSpec::Versioned, PkOp::Upsert, &all, Some(&new), &old),
            Effect::Update(_)
        ));
        assert!(matches!(
            apply(&EngineSpec::LastRow, PkOp::Delete, &[KEY], None, &new),
            Effect::Ignored
        ));
        let sum = EngineSpec::Aggregation {
            payload: AggregateFn::FirstValue,
            score: AggregateFn::Sum,
            flag: AggregateFn::BoolAnd,
        };
        let Effect::Update(merged) = apply(&sum, PkOp::Upsert, &all, Some(&old), &new) else {
            panic!("an aggregation updates");
        };
        assert_eq!(merged[SEQ], Value::Int64(3));
        assert_eq!(merged[PAYLOAD], old[PAYLOAD]);
        assert_eq!(merged[SCORE], Value::Float64(Some(1.5)));
        assert_eq!(merged[FLAG], Value::Boolean(Some(false)));
        // A partial update keeps what it does not carry.
        let carried = [0, 1, 2, KEY, FLAG];
        let Effect::Update(merged) = apply(
            &EngineSpec::LastRow,
            PkOp::Partial,
            &carried,
            Some(&old),
            &new,
        ) else {
            panic!("a partial update updates");
        };
        assert_eq!(merged[PAYLOAD], old[PAYLOAD]);
        assert_eq!(merged[SCORE], old[SCORE]);
        assert_eq!(merged[FLAG], new[FLAG]);
    }
}
