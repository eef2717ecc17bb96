//! `watchtrace replay`: a recording through the userspace pipeline, no root
//! needed.

use std::{
    fs::File,
    io::{self, BufReader, BufWriter, Write as _},
};

use anyhow::Context as _;

use crate::{
    cli::ReplayArgs,
    pipeline::{PipelineConfig, TimelineConfig},
    recording::Reader,
    replay::{self, Line},
    time_format::write_json,
};

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let file =
        File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
    let mut reader = Reader::new(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("reading {}", args.input.display()))?;
    if !reader.verified() {
        tracing::warn!(
            input = %args.input.display(),
            "a version 2 recording: its frames carry no checksums, so damage to it cannot be detected"
        );
    }
    let config = PipelineConfig {
        workers: args.workers.count(),
        timeline: TimelineConfig {
            ack_deadline_ns: crate::cli::seconds_ns(args.ack_deadline),
            ..TimelineConfig::default()
        },
        ..PipelineConfig::default()
    };
    let mut out: Option<Box<dyn io::Write>> = match args.events.as_deref() {
        None => None,
        Some(path) if path.as_os_str() == "-" => {
            Some(Box::new(BufWriter::new(io::stdout().lock())))
        }
        Some(path) => Some(Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ))),
    };
    let mut write_error = None;
    let summary = replay::replay(&mut reader, config, |line: Line| {
        if let Line::Damage(d) = &line {
            tracing::warn!(at = d.at, bytes = d.bytes, frames = d.frames, what = ?d.what, "damaged recording");
        }
        if let Some(out) = out.as_mut()
            && write_error.is_none()
            && let Err(e) =
                write_json(&mut *out, &line, args.time_format).and_then(|()| out.write_all(b"\n"))
        {
            write_error = Some(e);
        }
    });
    if let Some(mut out) = out {
        out.flush().context("writing events")?;
    }
    if let Some(e) = write_error {
        return Err(e).context("writing events");
    }
    eprintln!(
        "replayed {} records: {} lines, captured {} bytes, {} gaps ({} bytes), {} undecodable, \
         {} damaged places in the recording ({} frames lost){}",
        summary.records,
        summary.lines,
        summary.streams.captured_bytes,
        summary.gaps,
        summary.gap_bytes,
        summary.undecodable,
        summary.damage,
        summary.lost_frames,
        if summary.verified {
            ""
        } else {
            " (unverified: a version 2 recording)"
        }
    );
    summary
        .end
        .with_context(|| format!("reading {}", args.input.display()))
}
