//! The `watchtrace` binary: parse the command line, set up logging, dispatch.

use std::{
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
};

use clap::Parser as _;
use watchtrace::{
    cli::{Cli, Command, LogFormat},
    commands,
};

/// Set with `--log-format json`: the fatal error then goes out as a JSON log
/// line too, so a log collector sees why the agent stopped.
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => {
            logs.json().flatten_event(true).init();
            JSON_LOGS.store(true, Ordering::Relaxed);
        }
    }
    match cli.command {
        Command::Check => match commands::check::run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(reason) => {
                eprintln!("watchtrace check failed: {reason}");
                ExitCode::FAILURE
            }
        },
        Command::Count(args) => run_async(commands::count::run(args)),
        Command::Record(args) => run_async(commands::record::run(args)),
        Command::Run(args) => run_async(commands::run::run(args)),
        Command::Replay(args) => match commands::replay::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("watchtrace: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Runs an async command on a multi-threaded runtime; errors print with
/// their full context chain.
fn run_async(command: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("watchtrace: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if JSON_LOGS.load(Ordering::Relaxed) {
                tracing::error!(error = %format!("{e:#}"), "watchtrace stopped");
            } else {
                eprintln!("watchtrace: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
