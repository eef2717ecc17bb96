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
    let filter = tracing_subscriber::EnvFilter::new(&cli.log);
    let json = cli.log_format == LogFormat::Json;
    if let Command::Top(args) = &cli.command {
        // The view owns the terminal: logs go to a file, never the screen.
        let path = commands::top::log_path(args.log_file.as_deref());
        let file = match commands::top::open_log(&path) {
            Ok(file) => std::sync::Mutex::new(file),
            Err(e) => {
                eprintln!("watchtrace: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let logs = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(file)
            .with_ansi(false);
        if json {
            logs.json().flatten_event(true).init();
        } else {
            logs.init();
        }
    } else {
        let logs = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        if json {
            logs.json().flatten_event(true).init();
            // Only when logs go to stderr: top logs to a file and prints
            // its fatal error as text once the view is closed.
            JSON_LOGS.store(true, Ordering::Relaxed);
        } else {
            logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
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
        Command::Top(args) => match args.replay.clone() {
            Some(path) => match commands::top_replay::replay(
                &path,
                commands::top_replay::ReplayOptions {
                    speed: args.speed,
                    since: args.since,
                    until: args.until,
                },
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("watchtrace: {e:#}");
                    ExitCode::FAILURE
                }
            },
            None => run_async(commands::top::live(args)),
        },
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
