//! `watchtrace run`: the headless agent. Attaches to the targets (waiting
//! for them to appear), runs every record through the pipeline and writes
//! the events as JSON lines.

use std::{
    fs::OpenOptions,
    io::{self, BufWriter, Write as _},
};

use anyhow::Context as _;

use crate::{
    agent::{Session, SessionOptions, until_stopped},
    cli::RunArgs,
    clock,
    pipeline::{Pipeline, PipelineConfig},
};

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut session = Session::start(SessionOptions::new(args.targets.clone(), args.ringbuf_size))?;
    let mut out: Option<Box<dyn io::Write>> = match args.events.as_deref() {
        None => None,
        Some(path) if path.as_os_str() == "-" => Some(Box::new(BufWriter::new(io::stdout()))),
        Some(path) => Some(Box::new(BufWriter::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ))),
    };
    let mut pipeline = Pipeline::new(PipelineConfig::default(), clock::realtime_offset_ns());
    let mut write_error = None;
    let stop = until_stopped(args.duration);
    tracing::info!(targets = %args.targets.describe(), "running; waiting for targets");
    session
        .run(
            |record| {
                pipeline.on_record(record, &mut |event| {
                    if let Some(out) = out.as_mut()
                        && write_error.is_none()
                        && let Err(e) = serde_json::to_writer(&mut *out, &event)
                            .map_err(io::Error::from)
                            .and_then(|()| out.write_all(b"\n"))
                    {
                        write_error = Some(e);
                    }
                });
            },
            stop,
        )
        .await?;
    if let Some(mut out) = out {
        out.flush().context("writing events")?;
    }
    if let Some(e) = write_error {
        return Err(e).context("writing events");
    }
    let stats = pipeline.stats();
    let streams = pipeline.stream_stats();
    tracing::info!(
        records = stats.records,
        captured_bytes = streams.captured_bytes,
        gap_bytes = streams.gap_bytes,
        "stopped"
    );
    // The loss counters, on stdout for scripts and benchmarks.
    let counters = session.counters()?;
    let line: Vec<String> = counters
        .iter()
        .map(|(c, v)| format!("{}={v}", c.name()))
        .collect();
    println!(
        "records={} captured_bytes={} gaps={} gap_bytes={} {}",
        stats.records,
        streams.captured_bytes,
        streams.gaps,
        streams.gap_bytes,
        line.join(" ")
    );
    Ok(())
}
