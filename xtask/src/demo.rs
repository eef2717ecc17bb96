//! `cargo xtask demo`: the testbed (etcd, fake-apiserver, watch clients)
//! with a fault injected part-way, shown live in `watchtrace top`.
//!
//! The load is light so a newcomer's machine stays responsive. After
//! `--fault-after` seconds one client connection stops reading its socket
//! for `--fault-for` seconds: the apiserver's send buffer for that
//! connection fills, and `top` shows the stall (Stall log tab) with the
//! streams it held, while the other connections keep flowing. Without a
//! terminal (CI, pipes) it runs `watchtrace run` instead and prints the
//! stall lines.

use std::{
    io::IsTerminal as _,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::Context as _;
use clap::Args;

use crate::{process, setup, testbed, workspace_root};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How long the testbed runs, in seconds (`top` stays until `q`).
    #[arg(long, default_value_t = 90)]
    duration: u64,
    /// Seconds after the load starts when one connection stops reading.
    #[arg(long, default_value_t = 20)]
    fault_after: u64,
    /// How long it stops reading, in seconds.
    #[arg(long, default_value_t = 8)]
    fault_for: u64,
}

pub(crate) fn run(args: &DemoArgs) -> anyhow::Result<()> {
    setup::run()?;
    testbed::build()?;
    process::run(Command::new("cargo").args(["build", "--release", "--package", "tracer-user"]))?;
    let watchtrace = workspace_root().join("target/release/watchtrace");
    let mut bed = Command::new(testbed::bin_dir().join("testbed-run"))
        // The load starts after the view has attached, so it sees every
        // request (clients, resourceVersions) from the first byte.
        .args(["-load-delay", "6s"])
        .args(["-duration", &format!("{}s", args.duration), "--"])
        .args(["-conns", "4", "-watches-per-conn", "3"])
        .args(["-resources", "configmaps,secrets", "-write-rate", "50"])
        .args(["-object-size", "16384"])
        .args([
            "-stall-conn",
            "1",
            "-stall-conn-after",
            &format!("{}s", args.fault_after),
            "-stall-conn-for",
            &format!("{}s", args.fault_for),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the testbed")?;
    println!(
        "demo: the testbed runs for {} s. About {} s after the load starts, one client connection stops reading its socket for {} s.",
        args.duration, args.fault_after, args.fault_for
    );
    println!(
        "      It shows at once as an ongoing peer_zero_window stall at the top of the Stall log (key 3), and its"
    );
    println!(
        "      connection's STALL s/min grows (key 1). When it ends, the log shows the streams it held (HELD) and the"
    );
    println!(
        "      stream whose bytes filled the pipe (FILLED BY); other connections stay clean. ? for keys, q to quit."
    );
    // etcd and fake-apiserver start before the view attaches.
    thread::sleep(Duration::from_secs(4));
    // By path: only this checkout's fake-apiserver.
    let exe = testbed::bin_dir()
        .join("fake-apiserver")
        .canonicalize()
        .context("the testbed's fake-apiserver")?;
    let result = if std::io::stdout().is_terminal() {
        process::run(Command::new(&watchtrace).arg("top").arg("--exe").arg(&exe))
    } else {
        let events =
            std::env::temp_dir().join(format!("watchtrace-demo-{}.jsonl", std::process::id()));
        let r = process::run(
            Command::new(&watchtrace)
                .args(["run", "--exe"])
                .arg(&exe)
                .arg("--duration")
                .arg((args.fault_after + args.fault_for + 10).to_string())
                .args(["--metrics-addr", "off", "--events"])
                .arg(&events),
        );
        if let Ok(text) = std::fs::read_to_string(&events) {
            for line in text
                .lines()
                .filter(|l| l.contains("\"kind\":\"socket_stall\"") && l.contains("\"held\":[{"))
            {
                println!("{line}");
            }
        }
        let _ = std::fs::remove_file(&events);
        r
    };
    // SIGTERM, so testbed-run stops etcd and removes its data directory.
    // SAFETY: plain kill(2) on a child we own.
    unsafe { libc::kill(bed.id() as i32, libc::SIGTERM) };
    let _ = bed.wait();
    result
}
