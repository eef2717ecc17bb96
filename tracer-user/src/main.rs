//! The `watchtrace` binary: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

use clap::Parser as _;
use watchtrace::{
    cli::{Cli, Command},
    commands,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::new(&cli.log);
    if let Command::Top(args) = &cli.command {
        // The view owns the terminal: logs go to a file, never the screen.
        let path = commands::top::log_path(args.log_file.as_deref());
        match commands::top::open_log(&path) {
            Ok(file) => tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .init(),
            Err(e) => {
                eprintln!("watchtrace: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
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
            Some(path) => match commands::top::replay(&path, args.speed) {
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
            eprintln!("watchtrace: {e:#}");
            ExitCode::FAILURE
        }
    }
}
