//! `watchtrace replay`: a recording through the userspace pipeline, no root
//! needed.

use std::{
    fs::File,
    io::{self, BufReader, BufWriter, Write as _},
};

use anyhow::Context as _;

use crate::{
    cli::ReplayArgs,
    pipeline::{Pipeline, PipelineConfig},
    recording::Reader,
};

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let file =
        File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
    let mut reader = Reader::new(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("reading {}", args.input.display()))?;
    let config = PipelineConfig {
        workers: args.workers.count(),
        ..PipelineConfig::default()
    };
    let mut pipeline = Pipeline::new(config, reader.metadata().realtime_offset_ns);
    let mut out: Option<Box<dyn io::Write>> = match args.events.as_deref() {
        None => None,
        Some(path) if path.as_os_str() == "-" => {
            Some(Box::new(BufWriter::new(io::stdout().lock())))
        }
        Some(path) => Some(Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ))),
    };
    let mut lines = 0u64;
    let mut write_error = None;
    let mut write = |event: crate::pipeline::OutputEvent| {
        lines += 1;
        if let Some(out) = out.as_mut()
            && write_error.is_none()
            && let Err(e) = serde_json::to_writer(&mut *out, &event)
                .map_err(io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
        {
            write_error = Some(e);
        }
    };
    let result = loop {
        match reader.next_record() {
            Ok(Some(bytes)) => pipeline.on_record(bytes, &mut write),
            Ok(None) => break Ok(()),
            // Everything before a damaged tail has been processed.
            Err(e) => break Err(e),
        }
    };
    pipeline.flush(&mut write);
    if let Some(mut out) = out {
        out.flush().context("writing events")?;
    }
    if let Some(e) = write_error {
        return Err(e).context("writing events");
    }
    let stats = pipeline.stats();
    let streams = pipeline.stream_stats();
    eprintln!(
        "replayed {} records: {lines} events, {} undecodable records, captured {} bytes, {} gaps ({} bytes)",
        stats.records,
        stats.undecodable_records,
        streams.captured_bytes,
        streams.gaps,
        streams.gap_bytes
    );
    result.with_context(|| format!("reading {}", args.input.display()))
}
