//! `watchtrace top --replay FILE`: a recording in the live view, as an
//! investigation tool. Paced by its timestamps (or unpaced); `--since` and
//! `--until` bound it; `p` pauses, `.` steps a second, `n` plays on to the
//! next stall and pauses there. At its end the screen holds the last state
//! that had connections: a recording usually ends with every client
//! closing, and an empty table explains nothing.

use std::{
    fs::File,
    io::{BufReader, Read},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::top::{Feed, Pump, run_ui};
use crate::{
    cli::ReplayBound,
    model::{Model, ModelConfig, Snapshot},
    pipeline::{Ending, OutputEvent, Pipeline, PipelineConfig},
    recording::Reader,
    tui::{Due, Pacer, ReplayControl, format_clock},
};

/// What `.` moves the replay by, in recording time.
const STEP_NS: u64 = 1_000_000_000;

/// How a replay is bounded and paced.
#[derive(Clone, Copy, Debug)]
pub struct ReplayOptions {
    /// Recording time per wall time; 0: as fast as possible.
    pub speed: f64,
    pub since: Option<ReplayBound>,
    pub until: Option<ReplayBound>,
}

/// Runs the view on the recording at `path` until `q`.
pub fn replay(path: &Path, options: ReplayOptions) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = Reader::new(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("reading {}", path.display()))?;
    let speed_text = if options.speed > 0.0 {
        format!("x{}", options.speed)
    } else {
        "unpaced".to_owned()
    };
    let source = format!("replay: {} ({speed_text})", path.display());
    let mut feed = ReplayFeed::new(reader, options);
    let result = run_ui(source, &mut feed);
    tracing::info!(records = feed.records, "top: replay stopped");
    result
}

/// A recording fed at its own pace.
struct ReplayFeed<R: Read> {
    reader: Reader<R>,
    pipeline: Pipeline,
    model: Model,
    pacer: Pacer,
    offset_ns: i128,
    options: ReplayOptions,
    /// `--until`, in record time, once the first record fixed it.
    until_ns: Option<u64>,
    first_ns: Option<u64>,
    start: Instant,
    /// A record read but not due yet.
    held: Option<Vec<u8>>,
    records: u64,
    /// Why the replay ended (end of file, `--until`, or a damaged tail).
    end: Option<String>,
    /// The model's state just before the latest run of connection closes
    /// began (see [`ReplayFeed::feed`]), and when.
    before_closes: Option<(Snapshot, u64)>,
    /// The record stream is in a run of closes.
    closing: bool,
    /// A stall began or ended (for `n`).
    stall_seen: bool,
}

impl<R: Read> ReplayFeed<R> {
    fn new(reader: Reader<R>, options: ReplayOptions) -> Self {
        let offset_ns = reader.metadata().realtime_offset_ns;
        Self {
            reader,
            pipeline: Pipeline::new(PipelineConfig::default(), offset_ns),
            model: Model::new(ModelConfig::default()),
            pacer: Pacer::new(options.speed),
            offset_ns,
            options,
            until_ns: None,
            first_ns: None,
            start: Instant::now(),
            held: None,
            records: 0,
            end: None,
            before_closes: None,
            closing: false,
            stall_seen: false,
        }
    }

    /// A bound in record time (CLOCK_MONOTONIC), given the first record's.
    fn record_time(&self, bound: ReplayBound, first: u64) -> u64 {
        match bound {
            ReplayBound::Offset(ns) => first.saturating_add(ns),
            ReplayBound::Unix(ns) => (i128::from(ns) - self.offset_ns).max(0) as u64,
        }
    }

    /// Unix ns of a record time.
    fn unix(&self, ts: u64) -> u64 {
        (i128::from(ts) + self.offset_ns).max(0) as u64
    }

    /// One record through the pipeline into the model. Before the first
    /// close of a run of connection closes, the model's state is kept: it
    /// is what the end of the recording shows if every connection closed.
    fn feed(&mut self, bytes: &[u8]) {
        let (model, before, closing, stall_seen) = (
            &mut self.model,
            &mut self.before_closes,
            &mut self.closing,
            &mut self.stall_seen,
        );
        self.pipeline.on_record(bytes, &mut |event| {
            match &event {
                OutputEvent::ConnClose { ts, .. } => {
                    if !*closing && model.connection_count() > 0 {
                        *before = Some((model.snapshot(), *ts));
                    }
                    *closing = true;
                }
                // A closed connection's streams end just before it does.
                OutputEvent::StreamEnd {
                    how: Ending::ConnectionClosed,
                    ..
                } if !*closing => {
                    if model.connection_count() > 0 {
                        *before = Some((model.snapshot(), event.ts()));
                    }
                    *closing = true;
                }
                OutputEvent::WatchEvent { .. } | OutputEvent::Request { .. } => *closing = false,
                OutputEvent::StallStart { .. }
                | OutputEvent::SocketStall { .. }
                | OutputEvent::WindowStall { .. } => *stall_seen = true,
                _ => {}
            }
            model.on_event(&event);
        });
        self.records += 1;
    }

    fn finish(&mut self, why: String) -> Pump {
        self.end = Some(why);
        self.held = None;
        Pump {
            refresh_now: true,
            ..Pump::default()
        }
    }
}

/// A record's CLOCK_MONOTONIC stamp (the header's first field).
fn record_ts(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

impl<R: Read> Feed for ReplayFeed<R> {
    fn pump(&mut self, deadline: Instant) -> anyhow::Result<Pump> {
        if self.end.is_some() {
            return Ok(Pump::default());
        }
        self.pacer.tick(self.start.elapsed());
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(Pump {
                    next_due: Some(now),
                    ..Pump::default()
                });
            }
            let bytes = match self.held.take() {
                Some(bytes) => bytes,
                None => {
                    let next = self.reader.advance();
                    for d in self.reader.take_damage() {
                        tracing::warn!(at = d.at, bytes = d.bytes, frames = d.frames, what = ?d.what, "damaged recording");
                    }
                    match next {
                        Ok(true) => self.reader.record().to_vec(),
                        Ok(false) => {
                            let why = format!("end of recording ({} records)", self.records);
                            return Ok(self.finish(why));
                        }
                        Err(e) => {
                            tracing::warn!("replay stopped early: {e}");
                            let why =
                                format!("recording damaged after {} records: {e}", self.records);
                            return Ok(self.finish(why));
                        }
                    }
                }
            };
            let ts = record_ts(&bytes);
            if self.first_ns.is_none() {
                self.first_ns = Some(ts);
                if let Some(since) = self.options.since {
                    let at = self.record_time(since, ts);
                    self.pacer.start_at(at);
                }
                self.until_ns = self.options.until.map(|u| self.record_time(u, ts));
            }
            if let Some(until) = self.until_ns
                && ts > until
            {
                let why = format!(
                    "--until {} reached ({} records)",
                    format_clock(self.unix(until)),
                    self.records
                );
                return Ok(self.finish(why));
            }
            match self.pacer.due(ts) {
                Due::Now => {
                    self.feed(&bytes);
                    if self.pacer.seeking() && std::mem::take(&mut self.stall_seen) {
                        self.pacer.pause();
                        return Ok(Pump {
                            refresh_now: true,
                            ..Pump::default()
                        });
                    }
                }
                Due::After(wait) => {
                    self.held = Some(bytes);
                    return Ok(Pump {
                        next_due: Some(now + wait.min(Duration::from_secs(1))),
                        ..Pump::default()
                    });
                }
                Due::Held => {
                    self.held = Some(bytes);
                    return Ok(Pump::default());
                }
            }
        }
    }

    fn snapshot(&mut self) -> Snapshot {
        if let Some(position) = self.pacer.position() {
            // While playing, the recording's clock moves on between
            // records, so rates fall over its quiet spells as they did
            // live. At the end the clock stops.
            if self.end.is_none() && !self.pacer.seeking() {
                let unix = self.unix(position);
                self.model.advance(unix);
            }
        }
        let now = self.model.snapshot();
        match (&self.end, &self.before_closes) {
            // Every connection closed by the end: show the state just
            // before they closed, whole (the stalls the closes ended were
            // going on then).
            (Some(_), Some((before, _))) if now.connections.is_empty() => before.clone(),
            _ => now,
        }
    }

    fn status(&self) -> Option<String> {
        let end = self.end.as_ref()?;
        Some(match &self.before_closes {
            Some((_, at)) if self.model.connection_count() == 0 => format!(
                "{end}; every connection closed from {} UTC: showing the state before",
                format_clock(*at)
            ),
            _ => end.clone(),
        })
    }

    fn replay(&self) -> bool {
        true
    }

    fn control(&mut self, control: ReplayControl) {
        match control {
            ReplayControl::TogglePause if self.pacer.paused() => self.pacer.resume(),
            ReplayControl::TogglePause => self.pacer.pause(),
            ReplayControl::Step => self.pacer.step(STEP_NS),
            ReplayControl::NextStall => {
                self.stall_seen = false;
                self.pacer.seek();
            }
        }
    }

    fn paused(&self) -> bool {
        self.pacer.paused()
    }
}
