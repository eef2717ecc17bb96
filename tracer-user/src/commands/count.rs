//! `watchtrace count`: the first probes end to end. Attaches the tracepoint
//! and the Go TLS uprobe to the targets and prints the kernel's counts.

use std::{collections::BTreeSet, time::Duration};

use anyhow::{Context as _, bail};
use tracer_common::counters::Counter;

use crate::{
    cli::CountArgs,
    loader::{LoadOptions, Tracer},
    symbols, targets, tracefs,
    tracepoints::{self, Layouts},
};

/// Runs until `--duration` elapses or Ctrl-C.
pub async fn run(args: CountArgs) -> anyhow::Result<()> {
    let root = tracefs::ensure_mounted().context("tracefs")?;
    let layouts = Layouts::read(&root).context("reading tracepoint layouts")?;
    let mut tracer = Tracer::load(
        LoadOptions {
            ringbuf_bytes: args.ringbuf_size,
            ..LoadOptions::default()
        },
        &layouts,
    )
    .context("loading eBPF programs (try `watchtrace check`)")?;
    let found = targets::scan(&args.targets);
    if found.is_empty() {
        bail!(
            "no target process found (selectors: {:?}); start it first or pass --pid/--comm/--exe",
            args.targets
        );
    }
    let mut binaries = BTreeSet::new();
    for target in &found {
        tracer.add_target(target.pid)?;
        tracing::info!(pid = target.pid, comm = %target.comm, "tracing");
        if let Some(exe) = &target.exe {
            binaries.insert(exe.clone());
        }
    }
    tracer.attach_tracepoint(&tracepoints::SOCK_SEND_LENGTH)?;
    for exe in &binaries {
        match symbols::resolve(exe, symbols::GO_TLS_WRITE) {
            Ok(location) => {
                tracer.attach_go_tls_write(exe, location.file_offset)?;
                tracing::info!(binary = %exe.display(), "attached {}", symbols::GO_TLS_WRITE);
            }
            Err(e) => tracing::warn!("no TLS plaintext for {}: {e}", exe.display()),
        }
    }
    // Drain the ring buffer so it never fills while counting.
    let mut events = tracer.take_events()?;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let deadline = args
        .duration
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut records = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        while events.next().is_some() {
            records += 1;
        }
        let counts = tracer.counters()?;
        let line: Vec<String> = counts
            .iter()
            .map(|(c, v)| format!("{}={v}", c.name()))
            .collect();
        println!("records={records} {}", line.join(" "));
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
    }
    let drops = tracer.counter(Counter::RingbufDrops)?;
    if drops > 0 {
        tracing::warn!(drops, "ring buffer was full; raise --ringbuf-size");
    }
    Ok(())
}
