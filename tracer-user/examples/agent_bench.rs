//! The agent's CPU per watch event, on a real recording: what `watchtrace
//! run` does with each record (the pipeline, then the live model a batch at
//! a time, the model advanced every second and `/metrics` rendered every
//! 15 s of recorded time), timed in CPU time of this thread. Deterministic,
//! unlike the live figure of `cargo xtask bench overhead`, so a change to
//! the agent's hot path can be measured before and after. Run it through
//! `cargo xtask bench agent` (which records the overhead bench's workload
//! first), or directly:
//! `cargo run --release -p tracer-user --example agent_bench -- FILE [--reps N]`.

#[path = "support/agent_path.rs"]
mod agent_path;
#[path = "support/cpu.rs"]
mod cpu;

use std::{fs::File, io::BufReader};

use agent_path::AgentPath;
use watchtrace::recording::Reader;

/// The agent drains the ring at least this often (agent/session.rs).
const BATCH_NS: u64 = 20_000_000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: agent_bench FILE [--reps N]"))?;
    let mut reps = 5usize;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reps" => reps = args.next().and_then(|v| v.parse().ok()).unwrap_or(reps),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let mut reader = Reader::new(BufReader::new(File::open(&path)?))?;
    let offset = reader.metadata().realtime_offset_ns;
    let mut records = Vec::new();
    while let Some(bytes) = reader.next_record()? {
        records.push(bytes.to_vec());
    }
    let span_ns = match (records.first(), records.last()) {
        (Some(a), Some(b)) => ts(b).saturating_sub(ts(a)),
        _ => anyhow::bail!("{path}: no records"),
    };

    let mut times = Vec::new();
    let mut events = 0;
    for _ in 0..reps {
        let start = cpu::thread_cpu();
        events = replay(&records, offset);
        times.push(cpu::thread_cpu() - start);
    }
    times.sort();
    let median = times[times.len() / 2];
    let us_per_event = median.as_secs_f64() * 1e6 / events.max(1) as f64;
    println!(
        "agent replay: {} records over {:.1} s recorded, {events} watch events sent, {reps} runs, \
         median {:.3} CPU s (min {:.3}, max {:.3}), {:.0} ns/record",
        records.len(),
        span_ns as f64 / 1e9,
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64(),
        median.as_nanos() as f64 / records.len() as f64,
    );
    println!(
        "agent: us_per_event={us_per_event:.2} records_per_event={:.2} events={events}",
        records.len() as f64 / events.max(1) as f64
    );
    Ok(())
}

/// One pass over the records as `watchtrace run` consumes them, a drain
/// every [`BATCH_NS`] of recorded time; returns the watch events the traced
/// process sent.
fn replay(records: &[Vec<u8>], offset: i128) -> u64 {
    let mut agent = AgentPath::new(offset);
    let mut next_batch = 0;
    for record in records {
        let now = ts(record);
        if now >= next_batch {
            agent.batch_done(now);
            next_batch = now + BATCH_NS;
        }
        agent.record(record);
    }
    agent.batch_done(records.last().map_or(0, |r| ts(r)));
    agent.sent
}

/// A record's timestamp (the first field of its header).
fn ts(record: &[u8]) -> u64 {
    record
        .get(..8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}
