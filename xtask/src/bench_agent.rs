//! `cargo xtask bench agent`: the agent's CPU per watch event, replayed.
//!
//! Runs `bench overhead`'s watch load, records it with `watchtrace record`
//! for a few seconds, then replays the recording through what `watchtrace
//! run` does with each record (`tracer-user/examples/agent_bench`: the
//! pipeline, the live model, `/metrics` rendering), timed in CPU time of
//! one thread. The live figure (`bench overhead`'s `agent_us_per_event`)
//! also carries the drain loop and the machine's noise; this one is
//! deterministic, for measuring a change to the agent before and after.

use std::process::Command;

use anyhow::Context as _;
use clap::Args;

use crate::{
    bench_overhead::{Running, Workload},
    process, workspace_root,
};

#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// Seconds of traffic to record.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Replays (the median is reported).
    #[arg(long, default_value_t = 7)]
    reps: u32,
    /// Replay this recording instead of recording the load (to compare
    /// builds on the same bytes).
    #[arg(long)]
    recording: Option<std::path::PathBuf>,
    #[command(flatten)]
    workload: Workload,
}

pub(crate) fn run(args: &AgentArgs) -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(format!(
        "/dev/shm/watchtrace-bench-agent-{}",
        std::process::id()
    ));
    let recording = match &args.recording {
        Some(path) => path.clone(),
        None => {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let load = Running::start(&dir, &args.workload)?;
            let path = dir.join("load.wtrec");
            process::run(
                Command::new(workspace_root().join("target/release/watchtrace"))
                    .args(["record", "--pid", &load.server.to_string()])
                    .args(["--duration", &args.seconds.to_string()])
                    .arg("--output")
                    .arg(&path),
            )
            .context("recording the load")?;
            load.stop();
            println!("agent bench: {}", args.workload.describe());
            path
        }
    };
    let result = process::run(
        Command::new("cargo")
            .args(["run", "--release", "--quiet", "--package", "tracer-user"])
            .args(["--example", "agent_bench", "--"])
            .arg(&recording)
            .args(["--reps", &args.reps.to_string()]),
    );
    // The recording holds plaintext: never leave it behind.
    if args.recording.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}
