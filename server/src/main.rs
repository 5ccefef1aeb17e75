//! `inlet`: parses the command line, sets up logging and runs the command.

use clap::Parser;
use inlet::cli::{Cli, Command, one_line, run};
use tracing_subscriber::EnvFilter;

/// jemalloc, not glibc's malloc: the server allocates and frees many small buffers per
/// request on every core (SlateDB rows and blocks, Arrow arrays, gRPC frames), where glibc's
/// arena locks and chunk consolidation were a fifth of the CPU in a profile of batched
/// lookups. Measured with `inlet bench --sections pk --duration 4s --rows 250000` on a local
/// directory (2 cores, two runs each, 2026-12-07), glibc / mimalloc / jemalloc: upserts
/// 72-81k / 87-90k / 107-109k rows/s, batched lookups 94-95k / 119-148k / 144-149k keys/s,
/// changelog reads 1.00 / 1.32-1.58 / 1.76-1.82 M rows/s, peak RSS 785-789 / 766-796 /
/// 801-809 MiB; with 2M rows, appends 339-364k / 325-329k / 420-429k rows/s.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The server logs at info; client commands stay quiet unless RUST_LOG asks. SlateDB
    // logs its whole settings (~1.5 KB of JSON) and its compactions at info: Inlet's own
    // "index opened" line says what an operator needs, so SlateDB speaks only from warn on.
    // RUST_LOG replaces all of this (e.g. `RUST_LOG=info` to see SlateDB's lines again).
    let default_level = match cli.command {
        Command::Serve(_) => "info,slatedb=warn",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            std::process::ExitCode::FAILURE
        }
    }
}
