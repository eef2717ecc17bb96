//! `cargo xtask test`: every test, in one command, as root.

use std::process::Command;

use anyhow::bail;
use clap::Args;

use crate::{
    image,
    process::{self, Tally},
    setup, testbed,
};

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
    // The image the container test runs (tests/deploy_container.rs), from
    // the release binary of this tree.
    let built = image::build(image::TEST_TAG, true)?;
    image::print(&built);
    // Unit, golden/replay and the root-only eBPF tests (marked #[ignore] so a
    // plain `cargo test` as a user skips them visibly).
    let rust = process::run_counting(
        Command::new("cargo")
            .env("WATCHTRACE_TESTBED_BIN", testbed::bin_dir())
            .env("WATCHTRACE_GO", setup::go_binary())
            // deploy/ checks: pinned Kubernetes schemas and promtool.
            .env("WATCHTRACE_K8S_SCHEMAS", setup::k8s_schemas())
            .env("WATCHTRACE_PROMTOOL", setup::promtool())
            .env("WATCHTRACE_IMAGE", &built.tag)
            .args([
                "test",
                "--workspace",
                "--exclude",
                "tracer-ebpf",
                // Every test binary runs, so the summary counts every failure.
                "--no-fail-fast",
                "--",
                "--include-ignored",
            ])
            // Ignored tests named *throughput* or *stress* are measurements,
            // run by hand in release mode; every other ignored test is a
            // root-only test and runs here.
            .args(["--skip", "throughput", "--skip", "stress"]),
        count_cargo,
    )?;
    let go = process::run_counting(
        &mut testbed::go(&["test", "-count=1", "-v", "./..."]),
        count_go,
    )?;
    let passed = rust.passed + go.passed;
    let failed = rust.failed + go.failed;
    println!("summary: {passed} passed, {failed} failed");
    if failed > 0 {
        anyhow::bail!("{failed} failed");
    }
    Ok(())
}

/// Adds a libtest line `test result: ok. 9 passed; 0 failed; ...`.
fn count_cargo(line: &str, tally: &mut Tally) {
    let Some(rest) = line.strip_prefix("test result: ") else {
        return;
    };
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(label), Some(n)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match label {
            "passed" => tally.passed += n,
            "failed" => tally.failed += n,
            _ => {}
        }
    }
}

/// Adds a `go test -v` outcome line (top-level tests only).
fn count_go(line: &str, tally: &mut Tally) {
    if line.starts_with("--- PASS") {
        tally.passed += 1;
    } else if line.starts_with("--- FAIL") {
        tally.failed += 1;
    }
}
