//! `inlet-simulation`: runs one seed (to replay a failure), N random seeds, or random seeds
//! until one fails. Exits non-zero on the first failing seed, after printing its report and
//! the command that replays it.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use clap::Parser;
use inlet_simulation::{Profile, SimOptions, check_replay, replay_command, run_checked};

#[derive(Parser, Debug)]
#[command(about = "Deterministic simulation of Inlet's index owner, writer and reader")]
struct Args {
    /// Run (replay) exactly this seed.
    #[arg(long, conflicts_with_all = ["seeds", "forever"])]
    seed: Option<u64>,
    /// Run this many random seeds.
    #[arg(long, conflicts_with = "forever")]
    seeds: Option<u64>,
    /// Run random seeds until one fails (or Ctrl-C).
    #[arg(long)]
    forever: bool,
    /// First seed of `--seeds`/`--forever` (then consecutive); random by default.
    #[arg(long)]
    start: Option<u64>,
    /// Keep running seeds after one fails; report every failing seed at the end.
    #[arg(long)]
    keep_going: bool,
    /// Seeds run in parallel, each on its own thread and runtime.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Force a profile: calm, faulty, crashy or chaotic (drawn from the seed by default).
    #[arg(long, value_parser = parse_profile)]
    profile: Option<Profile>,
    /// Turn on the test-only bug `IndexOptions::ack_before_durable`, which must be caught.
    #[arg(long)]
    ack_before_durable: bool,
    /// Run every seed twice and fail it when the two traces differ (it must replay exactly).
    #[arg(long)]
    check_determinism: bool,
    /// Print the whole event trace of a `--seed` run.
    #[arg(long)]
    trace: bool,
    /// Also print the code's own logs (RUST_LOG syntax, e.g. `info` or `inlet_index=debug`).
    #[arg(long)]
    log: Option<String>,
}

fn parse_profile(name: &str) -> Result<Profile, String> {
    Profile::parse(name).ok_or_else(|| format!("unknown profile `{name}`"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(filter) = &args.log {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .without_time()
            .init();
    }
    let options = SimOptions {
        profile: args.profile,
        ack_before_durable: args.ack_before_durable,
        verbose: args.trace && args.seed.is_some(),
    };
    if let Some(seed) = args.seed {
        return if run_one(seed, &options, args.check_determinism) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let count = if args.forever {
        u64::MAX
    } else {
        args.seeds.unwrap_or(1)
    };
    let start = args
        .start
        .unwrap_or_else(|| RandomState::new().hash_one(std::process::id()));
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            scope.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= count {
                        break;
                    }
                    let seed = start.wrapping_add(i);
                    if !run_one(seed, &options, args.check_determinism) {
                        stop.store(!args.keep_going, Ordering::SeqCst);
                        failures.lock().expect("failures lock poisoned").push(seed);
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().expect("failures lock poisoned");
    failures.sort_unstable();
    for seed in &failures {
        eprintln!(
            "FAILED: seed {seed}; replay: {}",
            replay_command(*seed, &options)
        );
    }
    if failures.is_empty() {
        println!(
            "all {} seeds passed",
            next.load(Ordering::SeqCst).min(count)
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs one seed (twice with `replay`, comparing traces) and prints its result; true when it
/// passed.
fn run_one(seed: u64, options: &SimOptions, replay: bool) -> bool {
    #[allow(clippy::disallowed_methods)] // wall time of the simulation itself, for the report
    let started = std::time::Instant::now();
    let result = if replay {
        check_replay(seed, options)
    } else {
        run_checked(seed, options)
    };
    match result {
        Ok(outcome) => {
            println!(
                "seed {seed} ok{}: {} appends acked, {} rows, {} processes, {:.1}s simulated \
                 in {:.2}s, trace digest {:016x}",
                if replay { " (replayed exactly)" } else { "" },
                outcome.acked_appends,
                outcome.rows,
                outcome.nodes,
                outcome.simulated.as_secs_f64(),
                started.elapsed().as_secs_f64(),
                outcome.digest
            );
            true
        }
        Err(report) => {
            eprintln!("{report}");
            false
        }
    }
}
