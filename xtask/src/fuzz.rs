//! `cargo xtask fuzz <target> [-- libFuzzer flags]`: builds a `fuzz/`
//! target with the instrumentation cargo-fuzz would add (SanitizerCoverage
//! for libFuzzer, AddressSanitizer, debug assertions, overflow checks) and
//! runs it on `fuzz/corpus/<target>`. cargo-fuzz is not needed, so this
//! works offline; `cargo +nightly fuzz run` does the same where it is
//! installed.

use std::process::Command;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use crate::{process, workspace_root};

/// The flags cargo-fuzz 0.12 passes for libfuzzer-sys 0.4 targets.
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks";
/// AddressSanitizer, on by default (as cargo-fuzz); the targets are safe
/// Rust, where it finds little, and it slows allocation-heavy targets
/// (`watch_gzip`: 12x) so much that long runs are better without.
const ASAN: &str = " -Zsanitizer=address";
/// Sanitizers need an explicit target, so build scripts stay plain.
const TARGET: &str = "x86_64-unknown-linux-gnu";

#[derive(Debug, Args)]
pub(crate) struct FuzzArgs {
    /// A binary of fuzz/Cargo.toml (`watch_cbor`, `watch_gzip`, `h2_frames`, ...).
    target: String,
    /// Build without AddressSanitizer (its own target directory).
    #[arg(long)]
    no_asan: bool,
    /// Flags for libFuzzer, e.g. `-runs=10000000` or `-max_total_time=300`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    libfuzzer: Vec<String>,
}

pub(crate) fn run(args: &FuzzArgs) -> Result<()> {
    let dir = workspace_root().join("fuzz");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).context("fuzz/Cargo.toml")?;
    if !manifest.contains(&format!("name = \"{}\"", args.target)) {
        bail!("{} is not a target of fuzz/Cargo.toml", args.target);
    }
    let (flags, target_dir) = if args.no_asan {
        (RUSTFLAGS.to_owned(), dir.join("target-noasan"))
    } else {
        (format!("{RUSTFLAGS}{ASAN}"), dir.join("target"))
    };
    process::run(
        Command::new("cargo")
            .current_dir(&dir)
            .env("RUSTFLAGS", flags)
            .env("CARGO_TARGET_DIR", &target_dir)
            .args([
                "+nightly",
                "build",
                "--release",
                "--target",
                TARGET,
                "--bin",
            ])
            .arg(&args.target),
    )?;
    let corpus = dir.join("corpus").join(&args.target);
    let artifacts = dir.join("artifacts").join(&args.target);
    for d in [&corpus, &artifacts] {
        std::fs::create_dir_all(d).with_context(|| d.display().to_string())?;
    }
    let binary = target_dir.join(TARGET).join("release").join(&args.target);
    process::run(
        Command::new(binary)
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .args(&args.libfuzzer)
            .arg(&corpus),
    )
}
