//! Two compactors race on one table: rounds run concurrently many times while the clock runs
//! fast enough for leases to expire in the middle of rounds (so each compactor keeps taking
//! the table from the other, repairing it with no orphan grace, and finding its own commits
//! fenced). Every other round, a compactor that has staged its files stalls for a whole lease
//! (the clock jumps at the failpoint between staging and commit), so lapsed leases happen on
//! every run, not only when the machine is slow. Whatever interleaving happens, the Iceberg
//! table never holds an offset twice or skips one, and the index's watermarks always equal
//! the current snapshot's.

mod compactor_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::ensure;
use compactor_support::Harness;
use inlet_compactor::{CompactorOptions, Failpoint, FailpointHook, RoundError, RoundOutcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_compactors_never_duplicate_or_lose_offsets() -> anyhow::Result<()> {
    let h = Arc::new(Harness::new("race").await?);
    let table = h.table("events", 2, true).await?;
    let lease_ttl = Duration::from_millis(60);
    let options = CompactorOptions {
        lease_ttl,
        // Repair deletes every unreferenced file at once, including a deposed holder's
        // in-flight files: safe only because that holder can no longer commit.
        orphan_grace: Duration::ZERO,
        ..CompactorOptions::default()
    };
    // In a stall round, a compactor that has staged a round (data files, manifest, metadata)
    // sleeps through its whole lease before it commits: the rival may take the table and
    // repair it meanwhile, and the staged round must not commit.
    let stall_round = Arc::new(AtomicBool::new(false));
    let stalled = [
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    ];
    let stalling = |who: usize| {
        let (clock, stall_round, stalled) =
            (h.clock.clone(), stall_round.clone(), stalled[who].clone());
        FailpointHook::new(move |point| {
            if point == Failpoint::AfterMetadata && stall_round.load(Ordering::SeqCst) {
                clock.advance(lease_ttl + Duration::from_millis(1));
                stalled.store(true, Ordering::SeqCst);
            }
            Ok(())
        })
    };
    let a = Arc::new(h.compactor(
        1,
        CompactorOptions {
            failpoints: Some(stalling(0)),
            ..options.clone()
        },
    ));
    let b = Arc::new(h.compactor(
        2,
        CompactorOptions {
            failpoints: Some(stalling(1)),
            ..options
        },
    ));

    // The clock runs ~5x faster than real time.
    let running = Arc::new(AtomicBool::new(true));
    let ticker = {
        let (h, running) = (h.clone(), running.clone());
        tokio::spawn(async move {
            while running.load(Ordering::SeqCst) {
                h.clock.advance(Duration::from_millis(5));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };

    let (mut commits, mut lost, mut fenced, mut elsewhere) = ([0usize; 2], 0, 0, 0);
    let stalls = AtomicUsize::new(0);
    for i in 0..25u64 {
        h.append(&[(&table, 0, 1 + i % 4), (&table, 1, 3)]).await?;
        stall_round.store(i % 2 == 1, Ordering::SeqCst);
        for flag in &stalled {
            flag.store(false, Ordering::SeqCst);
        }
        // Stagger the rivals differently each time, so either may hold the lease.
        let (delay_a, delay_b) = (i % 3, (i + 1) % 4);
        let (ra, rb) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_millis(delay_a)).await;
                a.tier_table(table.id).await
            },
            async {
                tokio::time::sleep(Duration::from_millis(delay_b)).await;
                b.tier_table(table.id).await
            }
        );
        for (who, round) in [(0, ra), (1, rb)] {
            if stalled[who].load(Ordering::SeqCst) {
                stalls.fetch_add(1, Ordering::SeqCst);
                ensure!(
                    matches!(
                        round.outcome,
                        Err(RoundError::LeaseLost { .. } | RoundError::Commit(_))
                    ),
                    "round {i}: compactor {who} outlived its lease after staging and still \
                     got {:?}",
                    round.outcome
                );
            }
            match round.outcome {
                Ok(RoundOutcome::Committed(_)) => commits[who] += 1,
                Ok(RoundOutcome::LeasedElsewhere { .. }) => elsewhere += 1,
                Ok(_) => {}
                Err(RoundError::LeaseLost { .. }) => lost += 1,
                Err(RoundError::Commit(error)) => {
                    ensure!(
                        matches!(
                            error,
                            inlet_index::LakeCommitError::Fenced { .. }
                                | inlet_index::LakeCommitError::Conflict { .. }
                        ),
                        "{error}"
                    );
                    fenced += 1;
                }
                Err(error) => anyhow::bail!("round {i}: {error}"),
            }
        }
        h.check_lake(&table).await?;
    }
    running.store(false, Ordering::SeqCst);
    ticker.await?;

    // Settle: leases expire, one compactor finishes the backlog.
    h.clock.advance(Duration::from_secs(1));
    for _ in 0..3 {
        let round = a.tier_table(table.id).await;
        ensure!(round.outcome.is_ok(), "{:?}", round.outcome);
    }
    let marks = h.check_lake(&table).await?;
    ensure!(
        marks == h.appended(&table),
        "{marks:?} vs {:?}",
        h.appended(&table)
    );
    let stalls = stalls.into_inner();
    eprintln!(
        "commits {commits:?}, leases lost {lost}, fenced or conflicted {fenced}, \
         leased elsewhere {elsewhere}, stalled after staging {stalls}"
    );
    ensure!(
        commits.iter().sum::<usize>() > 0,
        "some rounds committed: {commits:?}, lost {lost}, fenced {fenced}"
    );
    // The race this test exists for happened: rounds overlapped on the table, and rounds
    // lost their lease or were fenced at commit (at least every stalled one).
    ensure!(
        stalls > 0,
        "no round stalled after staging: the race was never set up"
    );
    ensure!(
        elsewhere > 0,
        "the rivals never ran on the table at the same time"
    );
    ensure!(
        lost + fenced >= stalls,
        "no race: leases lost {lost}, fenced or conflicted {fenced}, stalls {stalls}"
    );
    Ok(())
}

/// The interleaving the lease epochs exist for, forced with failpoints: compactor A stages a
/// round and stalls; its lease expires; B takes the table, repairs it (deleting A's staged
/// files: no orphan grace) and crashes before committing; B's lease expires too. A wakes up
/// and could take the lease again and win the compare-and-swap (the pointer did not move),
/// committing metadata whose files are gone. It must not: the round's lease epoch changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_holder_never_commits_over_a_repair() -> anyhow::Result<()> {
    use inlet_compactor::{Failpoint, FailpointHook, InjectedCrash};

    let h = Arc::new(Harness::new("race-deposed").await?);
    let table = h.table("events", 1, true).await?;
    h.append(&[(&table, 0, 10)]).await?;
    let ttl = Duration::from_secs(5);
    let base = CompactorOptions {
        lease_ttl: ttl,
        orphan_grace: Duration::ZERO,
        ..CompactorOptions::default()
    };

    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel::<()>();
    let reached_tx = std::sync::Mutex::new(Some(reached_tx));
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    let stall = FailpointHook::new(move |point| {
        if point == Failpoint::AfterMetadata
            && let Some(reached) = reached_tx.lock().expect("lock").take()
        {
            let _ = reached.send(());
            // Blocks this worker thread until the test lets the round go on.
            let _ = go_rx.lock().expect("lock").recv();
        }
        Ok(())
    });
    let a = Arc::new(h.compactor(
        1,
        CompactorOptions {
            failpoints: Some(stall),
            ..base.clone()
        },
    ));
    let stalled = {
        let (a, id) = (a.clone(), table.id);
        tokio::spawn(async move { a.tier_table(id).await })
    };
    reached_rx.await?;

    h.clock.advance(ttl + Duration::from_secs(1));
    let crash = FailpointHook::new(|point| match point {
        Failpoint::AfterDataFiles => Err(InjectedCrash {
            reason: "B crashes".into(),
        }),
        _ => Ok(()),
    });
    let b = h.compactor(
        2,
        CompactorOptions {
            failpoints: Some(crash),
            ..base.clone()
        },
    );
    let round = b.tier_table(table.id).await;
    let repair = round.repair.clone().expect("B took the lease and repaired");
    ensure!(
        repair.orphans_deleted > 0,
        "A's staged files deleted: {repair:?}"
    );
    ensure!(
        matches!(round.outcome, Err(RoundError::Crash(_))),
        "{:?}",
        round.outcome
    );
    drop(b);
    h.clock.advance(ttl + Duration::from_secs(1));

    go_tx.send(())?;
    let round = stalled.await?;
    ensure!(
        matches!(round.outcome, Err(RoundError::LeaseLost { .. })),
        "the deposed round must not commit: {:?}",
        round.outcome
    );
    let marks = h.check_lake(&table).await?;
    ensure!(marks[&0] == 0, "{marks:?}");

    // A, now knowing nothing, repairs and tiers everything exactly once.
    let round = a.tier_table(table.id).await;
    ensure!(
        matches!(round.outcome, Ok(RoundOutcome::Committed(_))),
        "{:?}",
        round.outcome
    );
    let marks = h.check_lake(&table).await?;
    ensure!(marks == h.appended(&table), "{marks:?}");
    Ok(())
}
