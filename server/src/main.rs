//! `inlet`: parses the command line, sets up logging and runs the command.

use clap::Parser;
use inlet::cli::{Cli, Command, one_line, run};
use tracing_subscriber::EnvFilter;

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
