//! `cargo xtask bench capture`: what capture costs the traced server.
//!
//! The traced server is a Go crypto/tls peer (testbed's tls-writer: one TLS
//! connection over loopback, a server that reads everything, a client that
//! makes N Writes of a fixed size), run once bare and once with watchtrace
//! attached (every probe, the ring buffer drained), in the same invocation.
//! It prints both throughputs, their ratio, what watchtrace captured and
//! lost, and each probe's mean run time from the kernel's BPF stats.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use crate::{process, setup, testbed, workspace_root};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    which: Which,
}

#[derive(Debug, Subcommand)]
enum Which {
    /// Throughput of a Go TLS server with and without watchtrace attached.
    Capture {
        /// Number of Write calls.
        #[arg(long, default_value_t = 40_000)]
        writes: u64,
        /// Bytes per Write (16 KiB: a full TLS record, as an apiserver
        /// streaming large events writes).
        #[arg(long, default_value_t = 16 * 1024)]
        size: u64,
    },
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    setup::run()?;
    testbed::build()?;
    process::run(Command::new("cargo").args(["build", "--release", "--package", "tracer-user"]))?;
    match args.which {
        Which::Capture { writes, size } => capture(writes, size),
    }
}

/// A started tls-writer, waiting for "go".
struct Writer {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    pid: u32,
}

fn start_writer(writes: u64, size: u64) -> anyhow::Result<Writer> {
    let mut child = Command::new(testbed::bin_dir().join("tls-writer"))
        .args([
            "-n",
            &writes.to_string(),
            "-base",
            &size.to_string(),
            "-step",
            "0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting tls-writer")?;
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let pid = line
        .trim()
        .strip_prefix("ready ")
        .context("tls-writer did not say ready")?
        .parse()?;
    Ok(Writer { child, stdout, pid })
}

/// Sends "go", waits for "done n bytes ns"; returns (bytes, seconds).
fn finish_writer(mut writer: Writer) -> anyhow::Result<(u64, f64)> {
    writer
        .child
        .stdin
        .take()
        .context("stdin")?
        .write_all(b"go\n")?;
    let mut line = String::new();
    writer.stdout.read_line(&mut line)?;
    if !writer.child.wait()?.success() {
        bail!("tls-writer failed: {line}");
    }
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [_, _, bytes, ns] = fields[..] else {
        bail!("unexpected tls-writer output: {line}")
    };
    Ok((bytes.parse()?, ns.parse::<f64>()? / 1e9))
}

fn capture(writes: u64, size: u64) -> anyhow::Result<()> {
    let watchtrace = workspace_root().join("target/release/watchtrace");
    let bare = finish_writer(start_writer(writes, size)?)?;

    let writer = start_writer(writes, size)?;
    let mut tracer = Command::new(&watchtrace)
        .args(["count", "--pid", &writer.pid.to_string(), "--log", "info"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting watchtrace count")?;
    // Attached once it says it is tracing the pid.
    let stderr = BufReader::new(tracer.stderr.take().context("stderr")?);
    let (attached_tx, attached_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("tracing") {
                let _ = attached_tx.send(());
            }
        }
    });
    attached_rx
        .recv_timeout(Duration::from_secs(30))
        .context("watchtrace did not attach")?;
    let traced = finish_writer(writer)?;
    // Let it drain, then stop it (SIGINT) to read its report.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: plain kill(2) on a child we own.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let output = tracer.wait_with_output()?;
    if started.elapsed() > Duration::from_secs(10) || !output.status.success() {
        bail!("watchtrace count did not stop cleanly: {}", output.status);
    }
    let report = String::from_utf8_lossy(&output.stdout);

    let mbps = |(bytes, secs): (u64, f64)| bytes as f64 / secs / 1e6;
    println!(
        "capture bench: {writes} Writes of {size} bytes through Go crypto/tls over loopback (tls-writer)"
    );
    println!("  without watchtrace: {:8.1} MB/s of plaintext", mbps(bare));
    println!(
        "  with watchtrace:    {:8.1} MB/s of plaintext",
        mbps(traced)
    );
    println!("  ratio (with / without): {:.3}", mbps(traced) / mbps(bare));
    for line in report.lines() {
        if let Some(counters) = line.strip_prefix("records=") {
            let wanted = [
                "chunk_bytes",
                "lost_bytes",
                "ringbuf_drops",
                "tls_write_bytes",
            ];
            let picked: Vec<&str> = counters
                .split_whitespace()
                .filter(|kv| wanted.iter().any(|w| kv.starts_with(&format!("{w}="))))
                .collect();
            println!("  kernel counters: {}", picked.join(" "));
        } else if let Some(program) = line.strip_prefix("program ") {
            println!("  probe {program}");
        }
    }
    Ok(())
}
