//! The sequencer: the single task that writes the index. It owns the stream tails, folds
//! queued commits into one SlateDB write batch (dense offsets, producer dedup), waits until
//! the batch is durable, then publishes the new tails and replies; catalog and lake changes
//! go through it too, so every index write has one author and one order.

use super::*;
use crate::pk::{Change, ChangeRecord, KeyState};
use inlet_core::pk::evolve::{upgrade_image, upgrade_mask};
use inlet_core::pk::merge::{MergeEngine, MergeError, merge_images};
use inlet_core::pk::ops::PkOp;

/// The single task that writes the index.
pub(super) struct Sequencer {
    pub(super) shared: Arc<Shared>,
    /// Tails as of the last durable batch, for every stream committed to since open.
    pub(super) tails: HashMap<StreamId, StreamTail>,
    /// Idempotent-producer state as of the last durable batch, per (producer, table).
    pub(super) producers: HashMap<(u64, TableId), ProducerState>,
    /// Lake records and watermarks as of the last durable batch, for tables and streams
    /// touched since open.
    pub(super) lake_records: HashMap<TableId, LakeTableRecord>,
    pub(super) lake_watermarks: HashMap<StreamId, keys::LakeWatermark>,
    pub(super) producer_ttl: Duration,
    /// Key states made durable, so recent keys skip their read.
    pub(super) key_cache: super::key_cache::KeyStateCache,
    pub(super) counters: Counters,
    /// Test only, see [`IndexOptions::ack_before_durable`].
    pub(super) ack_before_durable: bool,
}

/// A group of commits decided but not yet written.
struct StagedGroup {
    batch: WriteBatch,
    tails: HashMap<StreamId, StreamTail>,
    producers: HashMap<(u64, TableId), ProducerState>,
    results: Vec<Vec<Result<CommittedChunk, ChunkRejected>>>,
    /// Key states this group wrote (by state key; `None`: deleted), read back by its later
    /// chunks instead of the database, which does not have them yet.
    key_states: HashMap<Vec<u8>, Option<KeyState>>,
}

/// What to do with the chunks of one idempotent append.
enum ProducerDecision {
    Commit,
    /// A retry of the producer's last append: answer with its ranges, write nothing.
    Duplicate(Vec<ProducedRange>),
    /// Older than the producer's last append (holds that sequence).
    Stale(u64),
}

impl ProducerDecision {
    fn rejection(&self, chunk: &ChunkCommitRequest) -> Option<ChunkRejected> {
        let producer = chunk.producer?;
        match self {
            Self::Commit => None,
            Self::Duplicate(ranges) => Some(ChunkRejected::Duplicate {
                stream: chunk.stream,
                producer: producer.id,
                sequence: producer.sequence,
                ranges: ranges.clone(),
            }),
            Self::Stale(last) => Some(ChunkRejected::StaleSequence {
                stream: chunk.stream,
                producer: producer.id,
                sequence: producer.sequence,
                last: *last,
            }),
        }
    }
}

impl Sequencer {
    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut next = commands.recv().await;
        while let Some(command) = next.take() {
            if let Some(error) = self.shared.stopped_error() {
                reject(command, error);
                next = commands.recv().await;
                continue;
            }
            match command {
                Command::Catalog { change, reply } => {
                    let result = self.apply_catalog(change).await;
                    if result.is_ok() {
                        // Remote roles drop the tables they cached (`Index::catalog_changes`).
                        self.shared
                            .catalog_version
                            .send_modify(|version| *version += 1);
                    }
                    let _ = reply.send(result);
                }
                Command::Lake { change, reply } => {
                    let result = self.apply_lake(change).await;
                    let _ = reply.send(result);
                }
                Command::Retention { table, reply } => {
                    let result = self.expire_wal(table).await;
                    let _ = reply.send(result);
                }
                Command::Purge { table, reply } => {
                    let result = self.purge_table(table).await;
                    let _ = reply.send(result);
                }
                Command::PurgePartition {
                    table,
                    partition,
                    reply,
                } => {
                    let result = self.purge_partition(table, partition).await;
                    let _ = reply.send(result);
                }
                Command::Commit { request, reply } => {
                    let mut group = vec![(request, reply)];
                    while group.len() < MAX_COMMITS_PER_BATCH {
                        match commands.try_recv() {
                            Ok(Command::Commit { request, reply }) => group.push((request, reply)),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit_group(group).await;
                }
            }
            if next.is_none() {
                next = commands.recv().await;
            }
        }
    }

    /// Writes a batch and waits until it is durable. On failure the sequencer stops: what
    /// reached object storage is unknown, so the in-memory state can no longer be trusted.
    pub(super) async fn write_durably(&self, batch: WriteBatch) -> Result<(), IndexError> {
        let result = async {
            let handle = self.shared.db.write(batch).await?;
            if self.ack_before_durable {
                // The bug `IndexOptions::ack_before_durable` re-introduces for tests: SlateDB
                // makes the batch durable later, in the background, or never if we crash.
                return Ok(());
            }
            self.shared
                .db
                .flush_with_options(FlushOptions {
                    flush_type: FlushType::Wal,
                })
                .await?;
            handle.await_durable().await
        }
        .await;
        result.map_err(|error| {
            let error = IndexError::from_slatedb(&error);
            tracing::error!(%error, "index write failed; the sequencer stops");
            self.shared.stop(error.clone());
            error
        })
    }

    pub(super) async fn tail(&mut self, stream: StreamId) -> Result<StreamTail, IndexError> {
        if let Some(tail) = self.tails.get(&stream) {
            return Ok(*tail);
        }
        let tail = read_tail(&self.shared.db, stream).await?;
        self.tails.insert(stream, tail);
        // Make the stream's sender exist before anything is written for it, holding the
        // durable tail: see `INDEX_READ`.
        self.shared
            .tails()
            .entry(stream)
            .or_insert_with(|| watch::Sender::new(tail));
        Ok(tail)
    }

    async fn commit_group(&mut self, group: Vec<(CommitRequest, oneshot::Sender<CommitReply>)>) {
        match self.stage_group(&group).await {
            Ok(staged) => {
                if !staged.tails.is_empty()
                    && let Err(error) = self.write_durably(staged.batch).await
                {
                    for (_, reply) in group {
                        let _ = reply.send(Err(error.clone()));
                    }
                    return;
                }
                self.publish(staged.tails);
                self.producers.extend(staged.producers);
                // Durable now: what the group read and wrote is what the index holds.
                for (key, state) in staged.key_states {
                    self.key_cache.insert(key, state);
                }
                for ((_, reply), outcome) in group.into_iter().zip(staged.results) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                // Staging only reads: nothing was written, so only this group fails.
                tracing::warn!(%error, "index read failed while staging commits");
                for (_, reply) in group {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Decides every chunk of a group and builds the one write batch that records it.
    async fn stage_group(
        &mut self,
        group: &[(CommitRequest, oneshot::Sender<CommitReply>)],
    ) -> Result<StagedGroup, IndexError> {
        let now = self.shared.env.clock.now();
        let mut staged = StagedGroup {
            batch: WriteBatch::new(),
            tails: HashMap::new(),
            producers: HashMap::new(),
            results: Vec::with_capacity(group.len()),
            key_states: HashMap::new(),
        };
        self.prefetch_key_states(group, &mut staged).await?;
        for (request, _) in group {
            let decisions = self
                .producer_decisions(request, now, &staged.producers)
                .await?;
            let mut outcome = Vec::with_capacity(request.chunks.len());
            // Ranges committed per (producer, table), by sequence: one WAL object may hold
            // several appends of one producer (e.g. a copy of `s` still buffered when the
            // producer moved on to `s + 1`).
            let mut produced: HashMap<(u64, TableId), BTreeMap<u64, Vec<ProducedRange>>> =
                HashMap::new();
            for chunk in &request.chunks {
                let keyed = match self.check_chunk(chunk) {
                    Ok(keyed) => keyed,
                    Err(rejected) => {
                        outcome.push(Err(rejected));
                        continue;
                    }
                };
                if let Some(producer) = chunk.producer {
                    let key = (producer.id, chunk.stream.table, producer.sequence);
                    if let Some(rejected) = decisions.get(&key).and_then(|d| d.rejection(chunk)) {
                        outcome.push(Err(rejected));
                        continue;
                    }
                }
                let tail = match staged.tails.get(&chunk.stream) {
                    Some(tail) => *tail,
                    None => self.tail(chunk.stream).await?,
                };
                let commit_ts = now.max(tail.last_commit_ts);
                let entry = ChunkEntry {
                    object: request.object,
                    chunk_offset: chunk.chunk_offset,
                    chunk_len: chunk.chunk_len,
                    meta_len: chunk.meta_len,
                    body_offset: chunk.body_offset,
                    chunk_crc: chunk.chunk_crc,
                    meta_crc: chunk.meta_crc,
                    footer_offset: request.footer_offset,
                    footer_len: request.footer_len,
                    schema_id: chunk.schema_id,
                    base_offset: tail.next_offset,
                    row_count: chunk.row_count,
                    commit_ts,
                    columns: chunk.columns.clone(),
                };
                let end = entry.end_offset();
                if let (Some(writes), Some(keyed)) = (&chunk.pk_writes, &keyed) {
                    let applied = self
                        .apply_key_writes(
                            chunk.stream,
                            tail.next_offset,
                            commit_ts,
                            writes,
                            keyed,
                            &mut staged,
                        )
                        .await?;
                    match applied {
                        Ok(record) => staged
                            .batch
                            .put(crate::pk::change_key(chunk.stream, end), record.encode()),
                        Err(rejected) => {
                            outcome.push(Err(rejected));
                            continue;
                        }
                    }
                }
                staged
                    .batch
                    .put(chunk_key(chunk.stream, end), entry.encode());
                staged.batch.put(
                    time_index_key(chunk.stream, commit_ts, end),
                    encode_u64(tail.next_offset.0),
                );
                staged.tails.insert(
                    chunk.stream,
                    StreamTail {
                        next_offset: end,
                        earliest_offset: tail.earliest_offset,
                        last_commit_ts: commit_ts,
                        wal_bytes: tail.wal_bytes.saturating_add(chunk.chunk_len),
                    },
                );
                if let Some(producer) = chunk.producer {
                    let ranges = produced
                        .entry((producer.id, chunk.stream.table))
                        .or_default()
                        .entry(producer.sequence)
                        .or_default();
                    ranges.push(ProducedRange {
                        partition: chunk.stream.partition,
                        bucket: chunk.stream.bucket,
                        base_offset: tail.next_offset,
                        row_count: chunk.row_count,
                        commit_ts,
                    });
                }
                outcome.push(Ok(CommittedChunk {
                    base_offset: tail.next_offset,
                    commit_ts,
                }));
            }
            for ((producer, table), mut by_sequence) in produced {
                // The newest committed append is what a retry can ask for.
                let Some((sequence, ranges)) = by_sequence.pop_last() else {
                    continue;
                };
                let state = ProducerState {
                    last_sequence: sequence,
                    last_seen: now,
                    ranges,
                };
                let ttl = PutOptions {
                    ttl: Ttl::ExpireAfterMillis(self.producer_ttl.as_millis() as u64),
                };
                staged
                    .batch
                    .put_with_options(producer_key(producer, table), state.encode(), &ttl);
                staged.producers.insert((producer, table), state);
            }
            staged.results.push(outcome);
        }
        for (stream, tail) in &staged.tails {
            staged.batch.put(tail_key(*stream), tail.encode());
        }
        Ok(staged)
    }

    /// For each idempotent append in a request: commit it, or answer it as a retry of the
    /// producer's last append, or reject it as older than that.
    ///
    /// Decided per (producer, table, sequence), in sequence order: a request may hold several
    /// appends of one producer, and each is compared with the last one committed before it.
    async fn producer_decisions(
        &mut self,
        request: &CommitRequest,
        now: TimestampMicros,
        staged: &HashMap<(u64, TableId), ProducerState>,
    ) -> Result<HashMap<(u64, TableId, u64), ProducerDecision>, IndexError> {
        let mut sequences: BTreeMap<(u64, TableId), std::collections::BTreeSet<u64>> =
            BTreeMap::new();
        for chunk in &request.chunks {
            if let Some(producer) = chunk.producer {
                sequences
                    .entry((producer.id, chunk.stream.table))
                    .or_default()
                    .insert(producer.sequence);
            }
        }
        let ttl_micros = i64::try_from(self.producer_ttl.as_micros()).unwrap_or(i64::MAX);
        let mut decisions = HashMap::new();
        for (key, sequences) in sequences {
            let known = match staged.get(&key) {
                Some(state) => Some(state.clone()),
                None => self.producer_state(key).await?,
            };
            let mut last =
                known.filter(|state| now.0.saturating_sub(state.last_seen.0) <= ttl_micros);
            for sequence in sequences {
                let decision = match &last {
                    Some(state) if sequence == state.last_sequence => {
                        ProducerDecision::Duplicate(state.ranges.clone())
                    }
                    Some(state) if sequence < state.last_sequence => {
                        ProducerDecision::Stale(state.last_sequence)
                    }
                    _ => {
                        // Committed in this request: later sequences compare against it.
                        last = Some(ProducerState {
                            last_sequence: sequence,
                            last_seen: now,
                            ranges: Vec::new(),
                        });
                        ProducerDecision::Commit
                    }
                };
                decisions.insert((key.0, key.1, sequence), decision);
            }
        }
        Ok(decisions)
    }

    async fn producer_state(
        &mut self,
        key: (u64, TableId),
    ) -> Result<Option<ProducerState>, IndexError> {
        if let Some(state) = self.producers.get(&key) {
            return Ok(Some(state.clone()));
        }
        match self.shared.db.get(producer_key(key.0, key.1)).await? {
            Some(bytes) => {
                let state = ProducerState::decode(&bytes)?;
                self.producers.insert(key, state.clone());
                Ok(Some(state))
            }
            None => Ok(None),
        }
    }

    /// Makes durable tails visible to readers and wakes followers.
    pub(super) fn publish(&mut self, durable: HashMap<StreamId, StreamTail>) {
        // In stream order, not the map's (which differs from process to process): followers
        // run in the order they are woken, and the simulation must replay that order.
        let mut durable: Vec<(StreamId, StreamTail)> = durable.into_iter().collect();
        durable.sort_unstable_by_key(|(stream, _)| *stream);
        let mut tails = self.shared.tails();
        for (stream, tail) in durable {
            self.tails.insert(stream, tail);
            match tails.get(&stream) {
                Some(sender) => {
                    sender.send_replace(tail);
                }
                None => {
                    tails.insert(stream, watch::Sender::new(tail));
                }
            }
        }
    }

    /// Reads the current state of every key the group's primary-key chunks write, all at
    /// once (spread over tasks), into the group's view: one wait for the whole group instead
    /// of one per chunk.
    async fn prefetch_key_states(
        &mut self,
        group: &[(CommitRequest, oneshot::Sender<CommitReply>)],
        staged: &mut StagedGroup,
    ) -> Result<(), IndexError> {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (request, _) in group {
            for chunk in &request.chunks {
                let Some(writes) = &chunk.pk_writes else {
                    continue;
                };
                for write in writes.iter() {
                    let key = crate::pk::state_key(chunk.stream, &write.key);
                    if !seen.insert(key.clone()) {
                        continue;
                    }
                    match self.key_cache.get(&key) {
                        Some(state) => {
                            staged.key_states.insert(key, state);
                        }
                        None => keys.push(key),
                    }
                }
            }
        }
        let refs: Vec<&Vec<u8>> = keys.iter().collect();
        let states = read_key_states(&self.shared, &refs).await?;
        staged.key_states.extend(keys.into_iter().zip(states));
        Ok(())
    }

    /// Applies the rows of a primary-key chunk whose first offset is `base`, committed at
    /// `committed`, to the key state,
    /// in offset order, per the table's merge engine; returns what each row changed, or why
    /// the chunk is refused (a merge that fails, e.g. a sum that overflows), in which case
    /// nothing of it is staged. Reads the keys the group has not written yet from the
    /// database, all at once.
    async fn apply_key_writes(
        &self,
        stream: StreamId,
        base: Offset,
        committed: TimestampMicros,
        writes: &[PkWrite],
        keyed: &KeyedTable,
        staged: &mut StagedGroup,
    ) -> Result<Result<ChangeRecord, ChunkRejected>, IndexError> {
        let state_keys: Vec<Vec<u8>> = writes
            .iter()
            .map(|write| crate::pk::state_key(stream, &write.key))
            .collect();
        // Read before staging began (`prefetch_key_states`); a chunk of a stream that was
        // refused then is refused again before it gets here.
        let unread: Vec<&Vec<u8>> = {
            let mut seen = std::collections::HashSet::new();
            state_keys
                .iter()
                .filter(|key| !staged.key_states.contains_key(*key) && seen.insert(*key))
                .collect()
        };
        let read = read_key_states(&self.shared, &unread).await?;
        for (key, state) in unread.into_iter().zip(read) {
            staged.key_states.insert(key.clone(), state);
        }
        // Decide every row first (on a view of this chunk's own changes over the group's),
        // so a refused chunk stages nothing.
        let mut chunk_states: HashMap<&Vec<u8>, Option<KeyState>> = HashMap::new();
        let mut changes = Vec::with_capacity(writes.len());
        let mut next_states = Vec::with_capacity(writes.len());
        for (i, (write, state_key)) in writes.iter().zip(&state_keys).enumerate() {
            let offset = Offset(base.0 + i as u64);
            let current = match chunk_states.get(state_key) {
                Some(state) => state.clone(),
                None => staged.key_states.get(state_key).cloned().flatten(),
            };
            let (change, next) = match merge(keyed, write, (offset, committed), current) {
                Ok(merged) => merged,
                Err(error) => {
                    return Ok(Err(ChunkRejected::MergeFailed {
                        stream,
                        table: keyed.name.clone(),
                        offset: offset.0,
                        reason: error.to_string(),
                    }));
                }
            };
            if let Some(next) = &next {
                chunk_states.insert(state_key, next.clone());
            }
            next_states.push(next);
            changes.push(change);
        }
        for (state_key, next) in state_keys.into_iter().zip(next_states) {
            match &next {
                Some(Some(state)) => staged.batch.put(&state_key, state.encode()),
                Some(None) => staged.batch.delete(&state_key),
                None => continue,
            }
            staged.key_states.insert(state_key, next.flatten());
        }
        Ok(Ok(ChangeRecord { changes }))
    }

    /// Checks a chunk against its table; returns what a primary-key table's writes need.
    fn check_chunk(&self, chunk: &ChunkCommitRequest) -> Result<Option<KeyedTable>, ChunkRejected> {
        let stream = chunk.stream;
        let catalog = self.shared.catalog();
        let table = catalog
            .tables
            .get(&stream.table)
            .ok_or(ChunkRejected::TableDropped { stream })?;
        // A chunk written under an earlier schema (by a writer that has not seen the change
        // yet) is as good as a current one: readers decode it with its own schema.
        let Some(schema) = table.schema_of(chunk.schema_id) else {
            return Err(ChunkRejected::SchemaChanged {
                stream,
                expected: chunk.schema_id.0,
                current: table.schema_id.0,
            });
        };
        let partition_exists = match table.descriptor.partition_key.is_empty() {
            true => stream.partition == UNPARTITIONED,
            false => table.partitions.get(stream.partition).is_some(),
        };
        if !partition_exists || stream.bucket.0 >= table.descriptor.bucket_count {
            return Err(ChunkRejected::NoSuchStream {
                stream,
                bucket_count: table.descriptor.bucket_count,
            });
        }
        let table_columns = schema.fields().len();
        let found = chunk.columns.len();
        if found != 0 && (found != table_columns || found > MAX_INDEXED_COLUMN_RANGES) {
            return Err(ChunkRejected::ColumnRanges {
                stream,
                found,
                columns: table_columns,
            });
        }
        let refuse = |reason: String| ChunkRejected::PrimaryKeyWrites { stream, reason };
        let writes = match (&chunk.pk_writes, table.is_primary_key_table()) {
            (None, false) => return Ok(None),
            (None, true) => {
                return Err(refuse(format!(
                    "table {} has a primary key; its chunks carry key writes",
                    table.qualified_name()
                )));
            }
            (Some(_), false) => {
                return Err(refuse(format!(
                    "table {} has no primary key",
                    table.qualified_name()
                )));
            }
            (Some(writes), true) => writes,
        };
        if writes.len() != chunk.row_count as usize {
            return Err(refuse(format!(
                "{} key writes for {} rows",
                writes.len(),
                chunk.row_count
            )));
        }
        let engine = table
            .merge_engine()
            .map_err(|e| refuse(format!("merge engine: {e}")))?;
        let mask_len = table_columns.div_ceil(8);
        for (row, write) in writes.iter().enumerate() {
            let defect = if crate::pk::check_key(&write.key).is_err() {
                Some("a malformed key")
            } else if matches!(engine, MergeEngine::Versioned { .. })
                && write.op == PkOp::Upsert
                && write.version.is_none()
            {
                Some("no version, which the `versioned` merge engine needs")
            } else if write.columns.is_some() && !engine.allows_partial_updates() {
                Some("a partial update, which this table's merge engine does not take")
            } else if write
                .columns
                .as_ref()
                .is_some_and(|mask| mask.len() != mask_len)
            {
                Some("a column mask that does not fit the table's columns")
            } else {
                None
            };
            if let Some(defect) = defect {
                return Err(refuse(format!("row {row} has {defect}")));
            }
        }
        Ok(Some(KeyedTable {
            name: table.qualified_name(),
            engine,
            table: table.clone(),
            chunk_schema: chunk.schema_id,
        }))
    }

    async fn apply_catalog(
        &mut self,
        change: CatalogChange,
    ) -> Result<CatalogOutcome, CatalogError> {
        let now = self.shared.env.clock.now();
        match change {
            CatalogChange::CreateDatabase {
                name,
                comment,
                if_not_exists,
            } => {
                validate_name("database", &name)?;
                if let Some(existing) = self.shared.catalog().databases.get(&name) {
                    return if if_not_exists {
                        Ok(CatalogOutcome::Database(existing.clone()))
                    } else {
                        Err(CatalogError::DatabaseExists { database: name })
                    };
                }
                let id = self.counters.database;
                let record = DatabaseRecord {
                    version: CATALOG_RECORD_VERSION,
                    id,
                    name: name.clone(),
                    comment: comment.clone(),
                    created_at_micros: now.0,
                };
                let mut batch = WriteBatch::new();
                batch.put(database_key(&name), encode_record(&record));
                batch.put(counter_key(DATABASE_COUNTER), encode_u64(id + 1));
                self.write_durably(batch).await?;
                self.counters.database = id + 1;
                let info = DatabaseInfo {
                    id: DatabaseId(id),
                    name: name.clone(),
                    comment,
                    created_at: now,
                };
                self.catalog_mut().databases.insert(name, info.clone());
                tracing::info!(database = %info.name, id, "database created");
                Ok(CatalogOutcome::Database(info))
            }
            CatalogChange::DropDatabase { name, options } => {
                let Some(database) = self.shared.catalog().databases.get(&name).cloned() else {
                    return if options.if_exists {
                        Ok(CatalogOutcome::Dropped)
                    } else {
                        Err(CatalogError::DatabaseNotFound { database: name })
                    };
                };
                let tables: Vec<Arc<TableInfo>> = {
                    let catalog = self.shared.catalog();
                    catalog
                        .tables
                        .values()
                        .filter(|t| t.database_id == database.id)
                        .cloned()
                        .collect()
                };
                if !tables.is_empty() && !options.cascade {
                    return Err(CatalogError::DatabaseNotEmpty {
                        database: name,
                        tables: tables.len(),
                    });
                }
                let mut batch = WriteBatch::new();
                for table in &tables {
                    self.put_dropped_table(&mut batch, table, now, options.purge_lake)
                        .await?;
                }
                batch.delete(database_key(&name));
                self.write_durably(batch).await?;
                let mut catalog = self.catalog_mut();
                for table in &tables {
                    catalog.tables.remove(&table.id);
                    catalog
                        .by_name
                        .remove(&(table.database.clone(), table.name.clone()));
                }
                catalog.databases.remove(&name);
                tracing::info!(database = %name, tables = tables.len(), "database dropped");
                Ok(CatalogOutcome::Dropped)
            }
            CatalogChange::CreateTable {
                database,
                name,
                descriptor,
                if_not_exists,
            } => {
                validate_name("table", &name)?;
                let descriptor = descriptor.with_defaults();
                descriptor.validate()?;
                let database_info = self.shared.catalog().databases.get(&database).cloned();
                let Some(database_info) = database_info else {
                    return Err(CatalogError::DatabaseNotFound { database });
                };
                let existing = self.live_table(&database, &name);
                if let Some(existing) = existing {
                    return if if_not_exists {
                        Ok(CatalogOutcome::Table(existing))
                    } else {
                        Err(CatalogError::TableExists {
                            database,
                            table: name,
                        })
                    };
                }
                let id = self.counters.table;
                let record = TableRecord {
                    version: CATALOG_RECORD_VERSION,
                    id,
                    database_id: database_info.id.0,
                    database: database.clone(),
                    name: name.clone(),
                    schema_id: 0,
                    bucket_count: descriptor.bucket_count,
                    bucket_key: descriptor.bucket_key.clone(),
                    partition_key: descriptor.partition_key.clone(),
                    primary_key: descriptor.primary_key.clone(),
                    comment: descriptor.comment.clone(),
                    options: descriptor.options.clone(),
                    created_at_micros: now.0,
                    dropped_at_micros: None,
                    purge_lake: false,
                    last_partition_id: 0,
                };
                let schema_bytes = schema_to_ipc(&descriptor.schema).map_err(|e| {
                    IndexError::Storage(format!("cannot encode schema of `{database}.{name}`: {e}"))
                })?;
                let mut batch = WriteBatch::new();
                batch.put(table_key(TableId(id)), encode_record(&record));
                batch.put(schema_key(TableId(id), SchemaId(0)), schema_bytes);
                batch.put(table_name_key(database_info.id, &name), encode_u64(id));
                batch.put(counter_key(TABLE_COUNTER), encode_u64(id + 1));
                self.write_durably(batch).await?;
                self.counters.table = id + 1;
                let info = Arc::new(table_info(
                    &record,
                    descriptor.schema.clone(),
                    SchemaHistory::default(),
                ));
                let mut catalog = self.catalog_mut();
                catalog
                    .by_name
                    .insert((database.clone(), name.clone()), info.id);
                catalog.tables.insert(info.id, info.clone());
                tracing::info!(table = %info.qualified_name(), id, "table created");
                Ok(CatalogOutcome::Table(info))
            }
            CatalogChange::AlterTable {
                database,
                name,
                alteration,
            } => self.alter_table(database, name, alteration).await,
            CatalogChange::Grant { grant, add } => self.change_grant(grant, add).await,
            CatalogChange::AddPartitions {
                database,
                name,
                values,
            } => self.add_partitions(database, name, values, now).await,
            CatalogChange::DropPartitions {
                database,
                name,
                values,
                if_exists,
            } => {
                self.drop_partitions(database, name, values, if_exists, now)
                    .await
            }
            CatalogChange::DropTable {
                database,
                name,
                options,
            } => {
                let table = self.live_table(&database, &name);
                let Some(table) = table else {
                    return if options.if_exists {
                        Ok(CatalogOutcome::Dropped)
                    } else {
                        Err(CatalogError::TableNotFound {
                            database,
                            table: name,
                        })
                    };
                };
                let mut batch = WriteBatch::new();
                self.put_dropped_table(&mut batch, &table, now, options.purge_lake)
                    .await?;
                self.write_durably(batch).await?;
                let mut catalog = self.catalog_mut();
                catalog.tables.remove(&table.id);
                catalog.by_name.remove(&(database, name));
                tracing::info!(table = %table.qualified_name(), "table dropped");
                Ok(CatalogOutcome::Dropped)
            }
        }
    }

    /// Adds or removes a grant: the whole record is rewritten (grants are few).
    async fn change_grant(
        &mut self,
        grant: Grant,
        add: bool,
    ) -> Result<CatalogOutcome, CatalogError> {
        let mut grants = Grants::clone(&self.shared.catalog().grants);
        let changed = if add {
            if grants.len() >= MAX_GRANTS {
                return Err(CatalogError::TooManyGrants {
                    grants: grants.len(),
                    max: MAX_GRANTS,
                });
            }
            grants.insert(grant.clone())
        } else {
            grants.remove(&grant)
        };
        if changed {
            let record = GrantsRecord {
                version: CATALOG_RECORD_VERSION,
                grants: grants.clone(),
            };
            let mut batch = WriteBatch::new();
            batch.put(keys::grants_key(), encode_record(&record));
            self.write_durably(batch).await?;
            self.catalog_mut().grants = Arc::new(grants);
            tracing::info!(%grant, add, "permissions changed");
        }
        Ok(CatalogOutcome::Granted(changed))
    }

    /// The live table `database.name`, if any.
    fn live_table(&self, database: &str, name: &str) -> Option<Arc<TableInfo>> {
        let catalog = self.shared.catalog();
        catalog
            .by_name
            .get(&(database.to_owned(), name.to_owned()))
            .and_then(|id| catalog.tables.get(id).cloned())
    }

    /// The catalog record of a live table.
    async fn table_record(&self, table: &TableInfo) -> Result<TableRecord, IndexError> {
        let bytes = self
            .shared
            .db
            .get(table_key(table.id))
            .await?
            .ok_or_else(|| {
                CodecError::Json(format!("record of table {} is missing", table.id.0))
            })?;
        Ok(decode_record(&bytes)?)
    }

    /// Writes a table's new options and comment to its record and the catalog.
    async fn alter_table(
        &self,
        database: String,
        name: String,
        alteration: TableAlteration,
    ) -> Result<CatalogOutcome, CatalogError> {
        let table = self.live_table(&database, &name);
        let Some(table) = table else {
            return Err(CatalogError::TableNotFound {
                database,
                table: name,
            });
        };
        let descriptor = table.descriptor.altered(&alteration)?;
        let mut record = self.table_record(&table).await?;
        record.options = descriptor.options.clone();
        record.comment = descriptor.comment.clone();
        // A renamed bucket key column takes the key with it.
        record.bucket_key = descriptor.bucket_key.clone();
        let mut batch = WriteBatch::new();
        // New columns: the next schema id, its schema beside the earlier ones (chunks keep
        // the id they were written under and decode with that schema).
        let (schema_id, previous_schemas) = if descriptor.schema == table.descriptor.schema {
            (table.schema_id, table.previous_schemas.clone())
        } else {
            let next = SchemaId(table.schema_id.0 + 1);
            let schema_bytes = schema_to_ipc(&descriptor.schema).map_err(|e| {
                IndexError::Storage(format!(
                    "cannot encode schema {} of `{database}.{name}`: {e}",
                    next.0
                ))
            })?;
            batch.put(schema_key(table.id, next), schema_bytes);
            record.schema_id = next.0;
            let previous = table
                .previous_schemas
                .with(table.schema_id, table.descriptor.schema.clone());
            (next, previous)
        };
        batch.put(table_key(table.id), encode_record(&record));
        self.write_durably(batch).await?;
        let info = Arc::new(TableInfo {
            descriptor,
            schema_id,
            previous_schemas,
            ..(*table).clone()
        });
        self.catalog_mut().tables.insert(info.id, info.clone());
        tracing::info!(
            table = %info.qualified_name(),
            schema_id = info.schema_id.0,
            options = ?info.descriptor.options,
            "table altered"
        );
        Ok(CatalogOutcome::Table(info))
    }

    /// Creates the partitions among `values` that table `database.name` lacks, in one write.
    async fn add_partitions(
        &self,
        database: String,
        name: String,
        values: Vec<Vec<String>>,
        now: TimestampMicros,
    ) -> Result<CatalogOutcome, CatalogError> {
        let Some(table) = self.live_table(&database, &name) else {
            return Err(CatalogError::TableNotFound {
                database,
                table: name,
            });
        };
        let refuse = |reason: String| CatalogError::PartitionsRefused {
            table: table.qualified_name(),
            reason,
        };
        let key = &table.descriptor.partition_key;
        if key.is_empty() {
            return Err(refuse("the table has no partition key".to_owned()));
        }
        if values.len() > MAX_PARTITIONS_ADDED_AT_ONCE {
            return Err(refuse(format!(
                "{} partitions asked for at once, more than the limit of \
                 {MAX_PARTITIONS_ADDED_AT_ONCE}",
                values.len()
            )));
        }
        let mut added: Vec<Partition> = Vec::new();
        let mut ids = Vec::with_capacity(values.len());
        let mut next = table.partitions.next_id();
        for partition_values in values {
            if partition_values.len() != key.len() {
                return Err(refuse(format!(
                    "{} values {partition_values:?} for a partition key of {} columns {key:?}",
                    partition_values.len(),
                    key.len()
                )));
            }
            for (value, column) in partition_values.iter().zip(key) {
                let data_type = table
                    .descriptor
                    .schema
                    .field_with_name(column)
                    .map(|field| field.data_type().clone())
                    .map_err(|e| refuse(e.to_string()))?;
                check_value_of_type(value, &data_type)
                    .map_err(|reason| refuse(format!("column `{column}`: {reason}")))?;
            }
            let existing = table.partitions.find(&partition_values).or_else(|| {
                added
                    .iter()
                    .find(|partition| partition.values == partition_values)
                    .map(|partition| partition.id)
            });
            if let Some(id) = existing {
                ids.push(id);
                continue;
            }
            ids.push(next);
            added.push(Partition {
                id: next,
                values: partition_values,
                created_at: now,
            });
            next = PartitionId(next.0 + 1);
        }
        if added.is_empty() {
            return Ok(CatalogOutcome::Partitions(table, ids));
        }
        let count = table.partitions.len() + added.len();
        let streams = count * table.descriptor.bucket_count as usize;
        if count > MAX_PARTITIONS_PER_TABLE || streams > MAX_STREAMS_PER_TABLE {
            return Err(refuse(format!(
                "it would have {count} partitions of {} buckets, more than the limits of \
                 {MAX_PARTITIONS_PER_TABLE} partitions and {MAX_STREAMS_PER_TABLE} streams; \
                 drop old ones first",
                table.descriptor.bucket_count
            )));
        }
        let mut batch = WriteBatch::new();
        let mut table_record = self.table_record(&table).await?;
        // The ids given so far, so a purged partition's id is not given again.
        table_record.last_partition_id = next.0 - 1;
        batch.put(table_key(table.id), encode_record(&table_record));
        for partition in &added {
            let record = PartitionRecord {
                version: CATALOG_RECORD_VERSION,
                values: partition.values.clone(),
                created_at_micros: now.0,
                dropped_at_micros: None,
            };
            batch.put(
                partition_key(table.id, partition.id),
                encode_record(&record),
            );
        }
        self.write_durably(batch).await?;
        let names: Vec<String> = added.iter().map(Partition::name).collect();
        let info = Arc::new(TableInfo {
            partitions: table.partitions.with(added),
            ..(*table).clone()
        });
        self.catalog_mut().tables.insert(info.id, info.clone());
        tracing::info!(table = %info.qualified_name(), partitions = ?names, "partitions created");
        Ok(CatalogOutcome::Partitions(info, ids))
    }

    /// Marks the partitions of `values` dropped, in one write: they leave the table's live
    /// partitions; their records stay, with the drop time, until a purge deletes their
    /// streams' entries (`purge.rs`).
    async fn drop_partitions(
        &self,
        database: String,
        name: String,
        values: Vec<Vec<String>>,
        if_exists: bool,
        now: TimestampMicros,
    ) -> Result<CatalogOutcome, CatalogError> {
        let Some(table) = self.live_table(&database, &name) else {
            return Err(CatalogError::TableNotFound {
                database,
                table: name,
            });
        };
        let refuse = |reason: String| CatalogError::PartitionsRefused {
            table: table.qualified_name(),
            reason,
        };
        if table.descriptor.partition_key.is_empty() {
            return Err(refuse("the table has no partition key".to_owned()));
        }
        let mut dropped = Vec::new();
        for partition_values in &values {
            match table.partitions.find(partition_values) {
                Some(id) if !dropped.contains(&id) => dropped.push(id),
                Some(_) => {}
                None if if_exists => {}
                None => {
                    return Err(refuse(format!(
                        "there is no partition `{}` to drop",
                        partition_name(partition_values)
                    )));
                }
            }
        }
        if dropped.is_empty() {
            return Ok(CatalogOutcome::Partitions(table, dropped));
        }
        let mut batch = WriteBatch::new();
        for id in &dropped {
            let key = partition_key(table.id, *id);
            let bytes = self
                .shared
                .db
                .get(&key)
                .await
                .map_err(IndexError::from)?
                .ok_or_else(|| {
                    IndexError::from(CodecError::Json(format!(
                        "record of partition {} of table {} is missing",
                        id.0, table.id.0
                    )))
                })?;
            let mut record: PartitionRecord = decode_record(&bytes).map_err(IndexError::from)?;
            record.dropped_at_micros = Some(now.0);
            batch.put(key, encode_record(&record));
        }
        self.write_durably(batch).await?;
        let info = Arc::new(TableInfo {
            partitions: table.partitions.without(&dropped),
            ..(*table).clone()
        });
        self.catalog_mut().tables.insert(info.id, info.clone());
        tracing::info!(table = %info.qualified_name(), partitions = ?dropped, "partitions dropped");
        Ok(CatalogOutcome::Partitions(info, dropped))
    }

    /// Marks a table dropped: its name is freed at once; its streams stay in the index until
    /// a compactor purges them (`purge.rs`).
    async fn put_dropped_table(
        &self,
        batch: &mut WriteBatch,
        table: &TableInfo,
        now: TimestampMicros,
        purge_lake: bool,
    ) -> Result<(), IndexError> {
        let mut record = self.table_record(table).await?;
        record.dropped_at_micros = Some(now.0);
        record.purge_lake = purge_lake;
        batch.put(table_key(table.id), encode_record(&record));
        batch.delete(table_name_key(table.database_id, &table.name));
        Ok(())
    }

    fn catalog_mut(&self) -> std::sync::RwLockWriteGuard<'_, Catalog> {
        self.shared.catalog.write().expect("catalog lock poisoned")
    }
}

/// Tasks a chunk's key-state reads are spread over, so they use every core: a read of the
/// key state is a few microseconds of CPU (memtables, bloom filters, blocks), and one task
/// would hold a group of 4,000 upserted rows to 20 ms of reads on one core.
const KEY_READ_TASKS: usize = 4;

/// Key-state reads each of those tasks keeps in flight (a read that misses the block cache
/// waits out the store's latency).
const KEY_READS_IN_FLIGHT: usize = 32;

/// The current state of each of `keys` (state keys), in order, read in parallel.
async fn read_key_states(
    shared: &Arc<Shared>,
    keys: &[&Vec<u8>],
) -> Result<Vec<Option<KeyState>>, IndexError> {
    use futures::StreamExt;

    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let per_task = keys.len().div_ceil(KEY_READ_TASKS);
    let tasks: Vec<_> = keys
        .chunks(per_task)
        .map(|part| {
            let part: Vec<Vec<u8>> = part.iter().map(|key| (*key).clone()).collect();
            let shared = shared.clone();
            tokio::spawn(async move {
                let db = &shared.db;
                futures::stream::iter(part)
                    .map(|key| async move {
                        let value = db.get_with_options(key, &INDEX_READ).await?;
                        let state = value.map(|bytes| KeyState::decode(&bytes)).transpose()?;
                        Ok::<_, IndexError>(state)
                    })
                    .buffered(KEY_READS_IN_FLIGHT)
                    .collect::<Vec<_>>()
                    .await
            })
        })
        .collect();
    let mut states = Vec::with_capacity(keys.len());
    for task in tasks {
        let part = task
            .await
            .map_err(|e| IndexError::Storage(format!("a key-state read task failed: {e}")))?;
        for state in part {
            states.push(state?);
        }
    }
    Ok(states)
}

/// What the sequencer needs of a primary-key table to apply its writes.
pub(super) struct KeyedTable {
    /// `database.table`, for messages.
    name: String,
    engine: MergeEngine,
    /// The table as the chunk was checked against; merged rows take its current schema.
    table: Arc<TableInfo>,
    /// The schema the chunk (its images and partial-update masks) was written under.
    chunk_schema: SchemaId,
}

/// What `write` (at `offset`, committed at that time) does to a key whose current row is
/// `current`: the change, and the key's next state (`None`: unchanged; `Some(None)`:
/// deleted). Partial updates and the `aggregation` engine merge the two images cell by
/// cell; the other engines keep a row whole.
fn merge(
    keyed: &KeyedTable,
    write: &PkWrite,
    (offset, committed): (Offset, TimestampMicros),
    current: Option<KeyState>,
) -> Result<(Change, Option<Option<KeyState>>), MergeError> {
    let written = |image: Vec<u8>| KeyState {
        offset,
        committed,
        version: write.version,
        image,
    };
    let cell_merge =
        write.columns.is_some() || matches!(keyed.engine, MergeEngine::Aggregation { .. });
    Ok(match (write.op, current) {
        (PkOp::Delete, None) => (Change::Ignored, None),
        (PkOp::Delete, Some(current)) => (
            Change::Delete {
                before: current.image,
            },
            Some(None),
        ),
        // A partial update of a new key: the other columns are null (the writer filled
        // them), so the row written is the chunk's.
        (PkOp::Upsert, None) => (
            Change::Insert { after: None },
            Some(Some(written(write.image.clone()))),
        ),
        (PkOp::Upsert, Some(current)) if cell_merge => {
            // Either image may be of an earlier schema (a key not written since an ALTER, a
            // writer that has not seen it): both are merged under the current one.
            let table = &keyed.table;
            let old = upgrade_image(table, &current.image)?;
            let new = upgrade_image(table, &write.image)?;
            let mask = match write.columns.as_deref() {
                Some(mask) => Some(upgrade_mask(table, keyed.chunk_schema, mask)?),
                None => None,
            };
            let merged = merge_images(
                (&table.descriptor.schema, table.schema_id),
                &keyed.engine,
                mask.as_deref(),
                &old,
                &new,
            )?;
            let after = (merged != *new).then(|| merged.clone());
            (
                Change::Update {
                    before: current.image,
                    after,
                },
                Some(Some(written(merged))),
            )
        }
        (PkOp::Upsert, Some(current)) => {
            let replaces = match &keyed.engine {
                MergeEngine::LastRow | MergeEngine::Aggregation { .. } => true,
                MergeEngine::FirstRow => false,
                MergeEngine::Versioned { .. } => write.version > current.version,
            };
            if replaces {
                (
                    Change::Update {
                        before: current.image,
                        after: None,
                    },
                    Some(Some(written(write.image.clone()))),
                )
            } else {
                (Change::Ignored, None)
            }
        }
    })
}

fn reject(command: Command, error: IndexError) {
    match command {
        Command::Commit { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::Catalog { reply, .. } => {
            let _ = reply.send(Err(error.into()));
        }
        Command::Lake { reply, .. } => {
            let _ = reply.send(Err(error.into()));
        }
        Command::Retention { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::Purge { reply, .. } | Command::PurgePartition { reply, .. } => {
            let _ = reply.send(Err(error));
        }
    }
}
