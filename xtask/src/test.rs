//! `cargo xtask test`: every test, in one command, as root.

use std::process::Command;

use anyhow::bail;
use clap::Args;

use crate::{process, setup, testbed};

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Skip rustfmt and clippy (for quick local iterations; CI never does).
    #[arg(long)]
    no_lint: bool,
}

pub(crate) fn run(args: &TestArgs) -> anyhow::Result<()> {
    setup::run()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("cargo xtask test loads eBPF programs and must run as root");
    }
    if !args.no_lint {
        process::run(Command::new("cargo").args(["fmt", "--all", "--check"]))?;
        process::run(Command::new("cargo").args([
            "clippy",
            "--workspace",
            "--exclude",
            "tracer-ebpf",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    testbed::build()?;
    process::run(&mut testbed::go(&["vet", "./..."]))?;
    // Unit, golden/replay and the root-only eBPF tests (marked #[ignore] so a
    // plain `cargo test` as a user skips them visibly).
    process::run(
        Command::new("cargo")
            .env("WATCHTRACE_TESTBED_BIN", testbed::bin_dir())
            .env("WATCHTRACE_GO", setup::go_binary())
            .args([
                "test",
                "--workspace",
                "--exclude",
                "tracer-ebpf",
                "--",
                "--include-ignored",
            ]),
    )?;
    process::run(&mut testbed::go(&["test", "-count=1", "./..."]))?;
    eprintln!("xtask test: all passed");
    Ok(())
}
