//! Deterministic simulation of Inlet: the real index owner (`inlet_index::Index`), writer
//! (`inlet_writer::Writer`), reader (`inlet_reader::Reader` over `inlet_cache::PagedCache`) and
//! compactor (`inlet_compactor::Compactor`, see [`lake`]) run in-process on one current-thread tokio runtime with paused time, against an in-memory
//! bucket that injects faults (`inlet_store::FaultStore`), while producers, followers and
//! readers hammer them and a chaos schedule crashes, restarts and replaces processes.
//!
//! One `u64` seed fixes everything: the workload, the settings, the faults, the chaos and
//! every timing, so a run replays exactly ([`replay_command`]). What each run checks is in
//! [`model`]; how it runs is in [`world`]; `docs/simulation.md` explains how to extend it.

pub mod clock;
pub mod config;
pub mod data;
pub mod evolve;
pub mod lake;
pub mod model;
pub mod pk;
pub mod rng;
pub mod scratch;
pub mod signal;
pub mod stamp;
pub mod store;
pub mod tails;
pub mod trace;
pub mod workload;
pub mod world;

use std::panic::AssertUnwindSafe;

pub use config::{Profile, SimConfig, SimOptions};
pub use world::Outcome;

/// Runs the world of `seed` to its end on a fresh current-thread runtime with paused time.
pub fn run(seed: u64, options: &SimOptions) -> Outcome {
    let cfg = SimConfig::from_seed(seed, options);
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_time().start_paused(true);
    // tokio draws from a generator of its own, which only `tokio_unstable` builds can seed;
    // a default build keeps it out of everything a run's outcome depends on (see
    // docs/simulation.md, "Determinism"), and a `tokio_unstable` build seeds it as well.
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()));
    let runtime = builder.build().expect("a current-thread runtime builds");
    runtime.block_on(world::run_world(cfg))
}

/// Runs `seed` and returns a report of its violations (or of a panic), or `Ok` with the
/// outcome when the run is clean.
pub fn run_checked(seed: u64, options: &SimOptions) -> Result<Outcome, String> {
    let outcome = run_caught(seed, options)?;
    if outcome.violations.is_empty() {
        Ok(outcome)
    } else {
        Err(failure_report(seed, options, &outcome))
    }
}

/// [`run_checked`], then `seed` once more in this process: `Ok` with the first outcome when
/// the run is clean and both runs gave the same trace, otherwise a report (of the violations,
/// or naming the first event where the traces part). Between the two runs `HashMap`s get new
/// keys and tokio's unseeded generator moves on, so an outcome that depended on either shows.
pub fn check_replay(seed: u64, options: &SimOptions) -> Result<Outcome, String> {
    let first = run_checked(seed, options)?;
    let second = run_caught(seed, options)?;
    if first.digest == second.digest {
        return Ok(first);
    }
    let diverged = first
        .trace
        .iter()
        .zip(&second.trace)
        .position(|(a, b)| a != b)
        .unwrap_or(first.trace.len().min(second.trace.len()));
    Err(format!(
        "simulation seed {seed} gave two traces; they part at event {diverged}:\n  {}\n  {}\n\
         replay: {}",
        first.trace.get(diverged).map_or("(end)", String::as_str),
        second.trace.get(diverged).map_or("(end)", String::as_str),
        replay_command(seed, options)
    ))
}

/// Runs `seed`; a panic becomes a report with the command that replays it.
fn run_caught(seed: u64, options: &SimOptions) -> Result<Outcome, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| run(seed, options))).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".to_owned());
        format!(
            "simulation seed {seed} panicked: {message}\nreplay: {}",
            replay_command(seed, options)
        )
    })
}

/// The one-line command that replays `seed` exactly (in a build like this one: a
/// `tokio_unstable` build seeds tokio's generator, which may change the run).
pub fn replay_command(seed: u64, options: &SimOptions) -> String {
    let mut command = if cfg!(tokio_unstable) {
        format!(
            "RUSTFLAGS=\"--cfg tokio_unstable\" cargo run -p inlet-simulation \
             --target-dir target/sim -- --seed {seed}"
        )
    } else {
        format!("cargo run -p inlet-simulation -- --seed {seed}")
    };
    if let Some(profile) = options.profile {
        command.push_str(&format!(" --profile {}", profile.name()));
    }
    if options.ack_before_durable {
        command.push_str(" --ack-before-durable");
    }
    command.push_str(" --trace");
    command
}

/// What a failed run prints: its violations, the end of its trace and how to replay it.
pub fn failure_report(seed: u64, options: &SimOptions, outcome: &Outcome) -> String {
    const TAIL: usize = 30;
    let mut report = format!(
        "simulation seed {seed} found {} violation(s):\n",
        outcome.violations.len()
    );
    for violation in outcome.violations.iter().take(10) {
        report.push_str(&format!("  - {violation}\n"));
    }
    report.push_str(&format!(
        "last {TAIL} of {} trace events:\n",
        outcome.trace.len()
    ));
    for line in &outcome.trace[outcome.trace.len().saturating_sub(TAIL)..] {
        report.push_str(&format!("  {line}\n"));
    }
    report.push_str(&format!("replay: {}\n", replay_command(seed, options)));
    report
}
