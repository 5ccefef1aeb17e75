//! Encodes one flush into a WAL object and uploads it under a fresh unique name with
//! put-if-absent. The object holds no offsets: it becomes data only when the index commits
//! it, and an object that is never committed is garbage.
//!
//! The upload retries transient errors with exponential backoff and jitter, bounded by an
//! attempt count and a deadline ([`UploadRetry`]). Retrying is safe because the name is
//! fresh and random and the PUT is put-if-absent: the only object that can be at that name
//! is one of our own attempts, so `AlreadyExists` on a retry means an earlier attempt whose
//! outcome was unknown (a timeout, a reset connection, a lost response) did land, and the
//! upload is done; no attempt can overwrite another's bytes. An upload that gives up leaves
//! at most an unreferenced object behind and acks nobody: the caller fails its appends.

use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::Bytes;
use inlet_cache::PagedCache;
use inlet_core::clock::{Env, IdGen};
use inlet_core::ids::{SchemaId, TimestampMicros, WalObjectId};
use inlet_core::pk::ops::PkWrite;
use inlet_core::wal::{ChunkInput, encode_wal_object};
use inlet_index::{ChunkCommitRequest, CommitRequest};
use slatedb::object_store::path::Path;
use slatedb::object_store::{self, ObjectStore, PutMode, PutOptions, PutPayload};
use tokio::time::Instant;

use crate::batcher::ChunkKey;
use crate::error::AppendError;
use crate::options::UploadRetry;

/// One stream's rows in a flush.
pub(crate) struct StreamChunk {
    pub(crate) key: ChunkKey,
    pub(crate) schema_id: SchemaId,
    pub(crate) batch: RecordBatch,
    pub(crate) first_append: TimestampMicros,
    pub(crate) last_append: TimestampMicros,
    /// Primary-key tables: each row's key write, for the index owner.
    pub(crate) key_writes: Option<Arc<Vec<PkWrite>>>,
}

/// Encodes and uploads the chunks; returns the commit request describing the object. The
/// uploaded bytes go into the read cache, so a co-located tail read never GETs them.
pub(crate) async fn upload(
    store: &Arc<dyn ObjectStore>,
    cache: &PagedCache,
    env: &Env,
    chunks: &[StreamChunk],
    retry: UploadRetry,
) -> Result<CommitRequest, AppendError> {
    let inputs: Vec<ChunkInput<'_>> = chunks
        .iter()
        .map(|chunk| ChunkInput {
            stream: chunk.key.stream,
            schema_id: chunk.schema_id,
            batch: &chunk.batch,
            min_ts: chunk.first_append,
            max_ts: chunk.last_append,
        })
        .collect();
    let encoded = encode_wal_object(&inputs)
        .map_err(|e| AppendError::Upload(format!("cannot encode wal object: {e}")))?;
    let millis = u64::try_from(env.clock.now().0 / 1000).unwrap_or(0);
    let object = WalObjectId::new(millis, env.ids.next_u128());
    let path = Path::from(object.path());
    let size = encoded.bytes.len();
    let attempts = put_if_absent(
        store.as_ref(),
        &path,
        &encoded.bytes,
        &retry,
        env.ids.as_ref(),
    )
    .await
    .map_err(AppendError::Upload)?;
    tracing::debug!(%object, size, chunks = chunks.len(), attempts, "wal object uploaded");
    cache.insert_object(&path, encoded.bytes.clone());
    Ok(CommitRequest {
        object,
        footer_offset: encoded.trailer.footer_offset,
        footer_len: encoded.trailer.footer_len,
        chunks: encoded
            .footer
            .chunks
            .iter()
            // The footer lists chunks in input order; each keeps its append's producer.
            .zip(chunks)
            .map(|(meta, chunk)| ChunkCommitRequest {
                pk_writes: chunk.key_writes.clone(),
                ..ChunkCommitRequest::from_meta(meta, chunk.key.producer)
            })
            .collect(),
    })
}

/// Puts `bytes` at the fresh name `path` with put-if-absent, retrying transient errors per
/// `retry`, with jitter drawn from `ids`. Returns the attempts it took, or why it gave up.
async fn put_if_absent(
    store: &dyn ObjectStore,
    path: &Path,
    bytes: &Bytes,
    retry: &UploadRetry,
    ids: &dyn IdGen,
) -> Result<u32, String> {
    let started = Instant::now();
    let deadline = started + retry.timeout;
    let options = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    let size = bytes.len();
    let give_up = |attempt: u32, why: &dyn std::fmt::Display| {
        format!(
            "put of wal object {path} ({size} bytes) failed after {attempt} attempts in {:?}: \
             {why}",
            started.elapsed()
        )
    };
    let mut delays = retry.delays(ids.next_u128() as u64);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let payload = PutPayload::from_bytes(bytes.clone());
        let put = store.put_opts(path, payload, options.clone());
        let error = match tokio::time::timeout_at(deadline, put).await {
            Ok(Ok(_)) => return Ok(attempt),
            // Only one of our own earlier attempts can have written this fresh name (80
            // random bits and the millisecond): its reply was lost, but the object is ours
            // and complete, since a PUT is atomic.
            Ok(Err(object_store::Error::AlreadyExists { .. })) if attempt > 1 => {
                tracing::debug!(%path, attempt, "wal object exists: an earlier attempt landed");
                return Ok(attempt);
            }
            Ok(Err(error)) => error,
            Err(_) => {
                let why = format!(
                    "upload_timeout of {:?} passed during the attempt",
                    retry.timeout
                );
                return Err(give_up(attempt, &why));
            }
        };
        let delay = match delays.next() {
            Some(delay) if is_transient(&error) => delay,
            // Refused for what it is, or the attempts are used up.
            _ => return Err(give_up(attempt, &error)),
        };
        if Instant::now() + delay >= deadline {
            let why = format!(
                "no time for another attempt within upload_timeout of {:?}: {error}",
                retry.timeout
            );
            return Err(give_up(attempt, &why));
        }
        tracing::warn!(%path, attempt, ?delay, %error, "wal upload failed; retrying");
        tokio::time::sleep(delay).await;
    }
}

/// Whether a failed PUT may succeed if sent again. Errors that say the request was refused
/// for what it is (the name exists, a condition failed, no permission, unsupported) do
/// not change by retrying; everything else (5xx, throttling, timeouts, connection resets,
/// which object_store reports as `Generic` once its own client gave up) may.
fn is_transient(error: &object_store::Error) -> bool {
    !matches!(
        error,
        object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotModified { .. }
            | object_store::Error::NotFound { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::UnknownConfigurationKey { .. }
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use inlet_core::clock::SeededIdGen;
    use inlet_store::{Op, ProbeStore, Step, matching};
    use slatedb::object_store::ObjectStoreExt;
    use slatedb::object_store::memory::InMemory;

    use super::*;

    /// An in-memory store whose PUTs follow `steps`, then `then`.
    fn scripted(steps: &[Step], then: Step) -> ProbeStore<InMemory> {
        let store = ProbeStore::new(InMemory::new());
        store.script(matching(|op, _| op == Op::Put), steps.iter().copied(), then);
        store
    }

    /// The PUTs the store was asked for, failed ones included.
    fn puts(store: &ProbeStore<InMemory>) -> usize {
        store
            .started()
            .iter()
            .filter(|request| request.op == Op::Put)
            .count()
    }

    fn retry(attempts: u32, timeout: Duration) -> UploadRetry {
        UploadRetry {
            attempts,
            timeout,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }

    fn path() -> Path {
        Path::from("wal/0000000000000000000000000000002a.wal")
    }

    async fn stored(store: &ProbeStore<InMemory>) -> Option<Bytes> {
        match store.inner().get(&path()).await {
            Ok(result) => Some(result.bytes().await.expect("body")),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(error) => panic!("get failed: {error}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_with_growing_jittered_backoff() {
        let store = scripted(&[Step::FailBefore, Step::FailBefore], Step::Pass);
        let ids = SeededIdGen::new(7);
        let policy = retry(5, Duration::from_secs(10));
        let bytes = Bytes::from_static(b"wal object");
        let started = Instant::now();
        let attempts = put_if_absent(&store, &path(), &bytes, &policy, &ids)
            .await
            .expect("third attempt lands");
        assert_eq!(attempts, 3);
        assert_eq!(stored(&store).await, Some(bytes));
        // Two sleeps: the first from 50..100 ms, the second from 100..200 ms, seeded from the
        // injected generator, so the same seed replays the same delays.
        let replay = SeededIdGen::new(7);
        let expected: Duration = policy.delays(replay.next_u128() as u64).take(2).sum();
        // (tokio's timer rounds each sleep up to the next millisecond)
        let elapsed = started.elapsed();
        assert!(
            elapsed >= expected && elapsed <= expected + Duration::from_millis(2),
            "slept {elapsed:?}, expected {expected:?}"
        );
        assert!(expected >= Duration::from_millis(150) && expected < Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_put_that_landed_before_failing_is_resolved_by_its_retry() {
        // The first attempt writes the object and reports a timeout; the retry finds the
        // name taken, which can only be that attempt: the upload is done, written once.
        let store = scripted(&[Step::FailAfter], Step::Pass);
        let bytes = Bytes::from_static(b"wal object");
        let ids = SeededIdGen::new(1);
        let attempts = put_if_absent(
            &store,
            &path(),
            &bytes,
            &retry(5, Duration::from_secs(10)),
            &ids,
        )
        .await
        .expect("resolved as landed");
        assert_eq!(attempts, 2);
        assert_eq!(puts(&store), 2);
        assert_eq!(stored(&store).await, Some(bytes));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_put_fails_at_once() {
        let store = scripted(&[Step::Refuse], Step::Pass);
        let ids = SeededIdGen::new(1);
        let error = put_if_absent(
            &store,
            &path(),
            &Bytes::from_static(b"x"),
            &retry(5, Duration::from_secs(10)),
            &ids,
        )
        .await
        .expect_err("permission denied is not retried");
        assert!(error.contains("after 1 attempts"), "{error}");
        assert!(error.contains("refused by the test's script"), "{error}");
        assert_eq!(puts(&store), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_taken_before_any_attempt_is_an_error_and_is_not_overwritten() {
        let store = scripted(&[], Step::Pass);
        let theirs = Bytes::from_static(b"someone else's object");
        store
            .inner()
            .put(&path(), PutPayload::from_bytes(theirs.clone()))
            .await
            .expect("put");
        let ids = SeededIdGen::new(1);
        let error = put_if_absent(
            &store,
            &path(),
            &Bytes::from_static(b"ours"),
            &retry(5, Duration::from_secs(10)),
            &ids,
        )
        .await
        .expect_err("a collision on the first attempt is not ours");
        assert!(error.contains("already exists"), "{error}");
        assert_eq!(stored(&store).await, Some(theirs));
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_bound_the_retries() {
        let store = scripted(&[], Step::FailBefore);
        let ids = SeededIdGen::new(1);
        let error = put_if_absent(
            &store,
            &path(),
            &Bytes::from_static(b"x"),
            &retry(3, Duration::from_secs(60)),
            &ids,
        )
        .await
        .expect_err("every attempt fails");
        assert!(error.contains("after 3 attempts"), "{error}");
        assert!(error.contains("injected failure of put"), "{error}");
        assert_eq!(puts(&store), 3);
        assert_eq!(stored(&store).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_bounds_a_hanging_store() {
        let store = scripted(&[Step::FailBefore, Step::Hang], Step::Pass);
        let ids = SeededIdGen::new(1);
        let started = Instant::now();
        let error = put_if_absent(
            &store,
            &path(),
            &Bytes::from_static(b"x"),
            &retry(5, Duration::from_secs(2)),
            &ids,
        )
        .await
        .expect_err("the second attempt never answers");
        assert!(error.contains("after 2 attempts"), "{error}");
        assert!(error.contains("upload_timeout"), "{error}");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_stops_retries_that_would_overrun_it() {
        let store = scripted(&[], Step::FailBefore);
        let ids = SeededIdGen::new(1);
        let started = Instant::now();
        let error = put_if_absent(
            &store,
            &path(),
            &Bytes::from_static(b"x"),
            &retry(1000, Duration::from_secs(1)),
            &ids,
        )
        .await
        .expect_err("the store stays down");
        assert!(error.contains("no time for another attempt"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(puts(&store) > 2);
    }

    #[test]
    fn delays_double_to_the_cap_jitter_by_seed_and_stop_after_the_attempts() {
        let policy = retry(8, Duration::from_secs(10));
        let bases = [50, 100, 200, 400, 800, 1000, 1000];
        for seed in [0, 1, 12_345, 1 << 40, u64::MAX] {
            let delays: Vec<Duration> = policy.delays(seed).collect();
            // One sleep between each two of the 8 attempts.
            assert_eq!(delays.len(), bases.len(), "seed {seed}");
            for (delay, base_ms) in delays.iter().zip(bases) {
                let base = Duration::from_millis(base_ms);
                assert!(
                    *delay >= base && *delay <= base * 2,
                    "seed {seed}: {delay:?} for a base of {base:?}"
                );
            }
            let again: Vec<Duration> = policy.delays(seed).collect();
            assert_eq!(delays, again, "a seed replays its sleeps");
        }
        let firsts: Vec<Duration> = (0..8u64)
            .map(|seed| policy.delays(seed).next().expect("a first sleep"))
            .collect();
        assert!(
            firsts.windows(2).any(|w| w[0] != w[1]),
            "jitter varies with the seed: {firsts:?}"
        );
        assert_eq!(retry(1, Duration::from_secs(1)).delays(0).count(), 0);
    }
}
