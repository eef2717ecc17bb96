//! `cargo xtask bench decode`: decode throughput of watchtrace's HTTP/2 and
//! watch decoders on a JSON and a protobuf watch connection, next to the
//! `h2` crate reading the same bytes, in one run.
//!
//! The benchmark itself is `tracer-user/examples/decode_bench` (it needs
//! the watchtrace library, and h2 and tokio as dev-dependencies, which this
//! crate must not pull in: `setup` has to build on a bare machine). This
//! builds it in release mode and runs it.

use std::process::Command;

use clap::Args;

use crate::{process, setup};

#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// Size of each capture, in MiB of server-to-client bytes.
    #[arg(long, default_value_t = 64)]
    mib: u32,
    /// Watch streams interleaved on the connection.
    #[arg(long, default_value_t = 8)]
    streams: u32,
    /// Runs per measurement (the median is printed).
    #[arg(long, default_value_t = 5)]
    reps: u32,
}

pub(crate) fn run(args: &DecodeArgs) -> anyhow::Result<()> {
    setup::run()?;
    process::run(
        Command::new("cargo")
            .args(["run", "--release", "--quiet", "--package", "tracer-user"])
            .args(["--example", "decode_bench", "--"])
            .args(["--mib", &args.mib.to_string()])
            .args(["--streams", &args.streams.to_string()])
            .args(["--reps", &args.reps.to_string()]),
    )
}
