//! `cargo xtask demo`: the main job on the embedded default. Starts the
//! testbed and shows watchtrace on it.

use std::{
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::Context as _;
use clap::Args;

use crate::{process, setup, testbed, workspace_root};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
}

pub(crate) fn run(args: &DemoArgs) -> anyhow::Result<()> {
    setup::run()?;
    testbed::build()?;
    process::run(Command::new("cargo").args(["build", "--release", "--package", "tracer-user"]))?;
    let watchtrace = workspace_root().join("target/release/watchtrace");
    // A light load: a newcomer's machine should stay responsive.
    let mut bed = Command::new(testbed::bin_dir().join("testbed-run"))
        .args([
            "-duration",
            &format!("{}s", args.duration + 10),
            "--",
            "-conns",
            "4",
            "-write-rate",
            "50",
        ])
        .stdout(Stdio::null())
        .spawn()
        .context("starting the testbed")?;
    // Give etcd and fake-apiserver time to start before attaching.
    thread::sleep(Duration::from_secs(5));
    let result = process::run(Command::new(&watchtrace).args([
        "count",
        "--comm",
        "fake-apiserver",
        "--wait",
        "--duration",
        &args.duration.to_string(),
    ]));
    // SIGTERM, so testbed-run stops etcd and removes its data directory.
    // SAFETY: plain kill(2) on a child we own.
    unsafe { libc::kill(bed.id() as i32, libc::SIGTERM) };
    let _ = bed.wait();
    result
}
