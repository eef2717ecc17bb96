//! `watchtrace count`: attach everything to the targets, drain the ring
//! buffer without keeping anything, and print the kernel's counts once a
//! second and the probes' cost at the end. The quickest way to see that
//! capture works on a host, and what it costs.

use anyhow::Context as _;
use tracer_common::counters::Counter;

use crate::{
    agent::{Session, SessionOptions, until_stopped},
    cli::CountArgs,
    loader,
};

/// Runs until `--duration` elapses or Ctrl-C.
pub async fn run(args: CountArgs) -> anyhow::Result<()> {
    let _stats = loader::enable_bpf_stats().context("BPF run-time statistics")?;
    let mut session = Session::start(SessionOptions::new(args.targets.clone(), args.ringbuf_size))?;
    if !args.wait {
        session.rescan()?;
        if session.targets().is_empty() {
            anyhow::bail!(
                "no target process found ({}); start it first, pass --pid/--comm/--exe, or --wait",
                args.targets.describe()
            );
        }
    }
    let mut records = 0u64;
    let mut bytes = 0u64;
    let stop = until_stopped(args.duration);
    let mut sink = |record: &[u8]| {
        records += 1;
        bytes += record.len() as u64;
    };
    session.run(&mut sink, stop).await?;
    let counts = session.counters()?;
    let line: Vec<String> = counts
        .iter()
        .map(|(c, v)| format!("{}={v}", c.name()))
        .collect();
    println!("records={records} record_bytes={bytes} {}", line.join(" "));
    for program in session.tracer().program_stats() {
        if program.run_count > 0 {
            println!(
                "program {} runs={} mean_ns={}",
                program.name,
                program.run_count,
                program.mean_ns().unwrap_or(0)
            );
        }
    }
    let lost = counts
        .iter()
        .find(|(c, _)| *c == Counter::LostBytes)
        .map_or(0, |(_, v)| *v);
    if lost > 0 {
        tracing::warn!(lost, "bytes were lost; raise --ringbuf-size");
    }
    Ok(())
}
