//! Project automation: `cargo xtask setup | test | image | bench | demo | testbed | fuzz`.
//!
//! Everything a fresh machine lacks is installed by `setup`, which every
//! other command runs first, so the README's two commands work on their own.

mod bench;
mod bench_agent;
mod bench_decode;
mod bench_overhead;
mod demo;
mod fuzz;
mod image;
mod process;
mod setup;
mod test;
mod testbed;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what this machine lacks (idempotent; a second run is a no-op).
    Setup,
    /// Every test: fmt, clippy, unit, golden/replay, root-only eBPF, testbed.
    Test(test::TestArgs),
    /// Build the container image (deploy/Containerfile) offline with buildah;
    /// print its size and digest.
    Image(image::ImageArgs),
    /// Benchmarks that print figures (`overhead`, `capture`, `watch`, `decode`).
    Bench(bench::BenchArgs),
    /// Start the testbed and show watchtrace on it.
    Demo(demo::DemoArgs),
    /// Build a fuzz/ target with cargo-fuzz's instrumentation and run it.
    Fuzz(fuzz::FuzzArgs),
    /// Start etcd, fake-apiserver and watch-load together (flags pass through).
    Testbed {
        /// Flags for testbed-run (see `cargo xtask testbed -- -h`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Setup => setup::run(),
        Command::Test(args) => test::run(&args),
        Command::Image(args) => image::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Testbed { args } => testbed::run(&args),
        Command::Fuzz(args) => fuzz::run(&args),
    }
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}
