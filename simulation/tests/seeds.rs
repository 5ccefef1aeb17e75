//! The simulation in CI: a fixed set of seeds must find no violation, a seed run twice must
//! give the same trace, and the harness must catch a bug re-introduced on purpose.
//!
//! A failing seed prints its report and the command that replays it. Random seeds beyond
//! this set: `cargo run -p inlet-simulation --release -- --seeds 1000 --jobs 2`.

use std::collections::BTreeSet;

use inlet_simulation::{Profile, SimConfig, SimOptions, check_replay, run_checked};

/// Seeds that found a bug, kept after its fix so it stays fixed.
///
/// 19, 41, 49: the sequencer decided idempotent appends per (producer, table) and commit
/// request rather than per sequence number, so a WAL object holding two appends of one
/// producer (a copy of `s` still buffered when the producer moved on to `s + 1`) committed
/// a retry twice or acked `s + 1` with the offsets of `s` (fixed in 010030b).
///
/// 189: a follower that started before `row` was widened (ALTER) met a chunk of the newer
/// schema and failed it as corrupt ("chunk has schema 1, which table never had"); reads now
/// keep the schema they started with (fixed in 9479d70).
const REGRESSION_SEEDS: &[u64] = &[19, 41, 49, 189];

/// The fixed suite: the first fifty seeds from 1, regression seeds included (they run in
/// their own test).
fn suite() -> Vec<u64> {
    (1..)
        .filter(|seed| !REGRESSION_SEEDS.contains(seed))
        .take(50 - REGRESSION_SEEDS.len())
        .collect()
}

/// Runs every seed with the default options; fails with every failing seed's report.
fn run_seeds(seeds: &[u64]) {
    let options = SimOptions::default();
    let failures: Vec<String> = seeds
        .iter()
        .filter_map(|seed| run_checked(*seed, &options).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} seed(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// The suite in groups, so the test harness spreads them over its threads. The profile of
// each seed (calm, faulty, crashy, chaotic) is drawn from the seed, so all are covered.
#[test]
fn seeds_group_1() {
    run_seeds(&suite()[0..10]);
}

#[test]
fn seeds_group_2() {
    run_seeds(&suite()[10..20]);
}

#[test]
fn seeds_group_3() {
    run_seeds(&suite()[20..30]);
}

#[test]
fn seeds_group_4() {
    run_seeds(&suite()[30..40]);
}

#[test]
fn seeds_group_5() {
    run_seeds(&suite()[40..]);
}

#[test]
fn regression_seeds() {
    run_seeds(REGRESSION_SEEDS);
}

/// The fixed suite runs primary-key tables under every merge engine, with deletes and
/// partial updates, some tiered into the lake, with the writer and reader both in process and
/// over the wire: a seed set
/// drawn without them would check nothing of the keyed path.
/// The suite changes columns mid-run (`evolve`): a widening and a replacement of `flag`, of
/// tiered tables (the lake schema evolves, WAL and lake reads must agree) and of others.
#[test]
fn the_suite_changes_columns_of_tiered_and_other_tables() {
    let options = SimOptions::default();
    let configs: Vec<SimConfig> = suite()
        .into_iter()
        .map(|seed| SimConfig::from_seed(seed, &options))
        .collect();
    let replaced: Vec<bool> = configs
        .iter()
        .filter_map(|cfg| {
            let spec = cfg.flag_replacement.as_ref()?;
            (spec.at < cfg.duration).then(|| cfg.tables[spec.table].lake.is_some())
        })
        .collect();
    assert!(
        replaced.contains(&true) && replaced.contains(&false),
        "the suite replaces `flag` of tiered and untiered tables: {replaced:?}"
    );
    assert!(
        configs
            .iter()
            .any(|cfg| cfg.widening.is_some() && cfg.flag_replacement.is_some()),
        "some run both widens a column and replaces one"
    );
}

/// The suite creates and drops partitions (a partitioned scratch table: partitions created
/// by appends through the owner, half of them dropped and purged mid-run) in some runs, and
/// drops whole tables in others.
#[test]
fn the_suite_creates_and_drops_partitions() {
    let options = SimOptions::default();
    let scratch: Vec<bool> = suite()
        .into_iter()
        .filter_map(|seed| Some(SimConfig::from_seed(seed, &options).scratch?.partitioned))
        .collect();
    assert!(
        scratch.iter().filter(|partitioned| **partitioned).count() >= 5 && scratch.contains(&false),
        "the suite drops partitions in some runs and tables in others: {scratch:?}"
    );
}

#[test]
fn the_suite_covers_primary_key_tables() {
    let options = SimOptions::default();
    let configs: Vec<SimConfig> = suite()
        .into_iter()
        .map(|seed| SimConfig::from_seed(seed, &options))
        .filter(|cfg| !cfg.pk.tables.is_empty())
        .collect();
    let engines: BTreeSet<&str> = configs
        .iter()
        .flat_map(|cfg| cfg.pk.tables.iter().map(|t| t.engine.name()))
        .collect();
    assert_eq!(
        engines,
        BTreeSet::from(["aggregation", "first_row", "last_row", "versioned"]),
        "the suite's primary-key tables miss a merge engine"
    );
    assert!(
        configs.iter().any(|cfg| cfg.remote_roles) && configs.iter().any(|cfg| !cfg.remote_roles),
        "the suite's primary-key runs are not both in process and over the wire"
    );
    assert!(
        configs.iter().any(|cfg| cfg
            .pk
            .producers
            .iter()
            .any(|p| p.deletes > 0.1 && p.partials > 0.1)),
        "no primary-key producer of the suite sends deletes and partial updates"
    );
    assert!(
        configs
            .iter()
            .any(|cfg| cfg.pk.tables.iter().any(|t| t.lake.is_some())),
        "no primary-key table of the suite is tiered into the lake"
    );
}

/// The same seed twice in one process gives the same event trace (`check_replay`: between
/// the runs `HashMap`s get new keys, so an outcome that depended on hash order would show).
/// The seeds draw what the harness once had to leave out to stay deterministic: flushes by
/// size racing the linger timer, several followers of one stream, followers of several; and
/// the writer and reader over the wire module (gRPC on in-memory pipes) as well as in process.
#[test]
fn a_seed_replays_exactly() {
    let runs: Vec<(u64, SimOptions)> = [
        (7, Profile::Chaotic),
        (8, Profile::Crashy),
        (9, Profile::Faulty),
    ]
    .into_iter()
    .map(|(seed, profile)| {
        let options = SimOptions {
            profile: Some(profile),
            ..SimOptions::default()
        };
        (seed, options)
    })
    .collect();
    let configs: Vec<SimConfig> = runs
        .iter()
        .map(|(seed, options)| SimConfig::from_seed(*seed, options))
        .collect();
    let streams = |cfg: &SimConfig| {
        cfg.followers
            .iter()
            .map(|f| (f.table, f.bucket))
            .collect::<BTreeSet<_>>()
            .len()
    };
    assert!(
        configs
            .iter()
            .any(|cfg| cfg.writer.flush_bytes < cfg.writer.max_buffered_bytes),
        "no seed flushes by size"
    );
    assert!(
        configs.iter().any(|cfg| streams(cfg) < cfg.followers.len()),
        "no seed has several followers of one stream"
    );
    assert!(
        configs.iter().any(|cfg| streams(cfg) > 1),
        "no seed has followers of several streams"
    );
    assert!(
        configs.iter().any(|cfg| cfg.remote_roles) && configs.iter().any(|cfg| !cfg.remote_roles),
        "the seeds do not run the writer and reader both in process and over the wire"
    );
    assert!(
        configs.iter().any(|cfg| !cfg.pk.tables.is_empty()),
        "no replayed seed has primary-key tables"
    );
    for (seed, options) in &runs {
        let outcome = check_replay(*seed, options).unwrap_or_else(|report| panic!("{report}"));
        assert!(
            outcome.acked_appends > 0,
            "seed {seed} acked nothing: the run checks nothing"
        );
    }
}

/// With `IndexOptions::ack_before_durable` (the sequencer acks before the commit is durable),
/// crashes lose acknowledged rows and reuse their offsets: the harness must say so, with a
/// seed that replays it.
#[test]
fn acking_before_durable_is_caught() {
    let options = SimOptions {
        profile: Some(Profile::Crashy),
        ack_before_durable: true,
        ..SimOptions::default()
    };
    let caught = (1..=5).find_map(|seed| run_checked(seed, &options).err());
    let Some(report) = caught else {
        panic!("no seed of 1..=5 caught acks before durability");
    };
    assert!(
        report.contains("--ack-before-durable") && report.contains("replay: cargo run"),
        "a failure must print the command that replays it:\n{report}"
    );
    assert!(
        report.contains("acked to"),
        "the failure must be an acknowledged row lost or moved:\n{report}"
    );
}
