//! `watchtrace run`: the headless agent. Attaches to the targets (waiting
//! for them to appear), runs every record through the pipeline, writes the
//! events as JSON lines, and feeds them to the live model that `/metrics`
//! serves.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use anyhow::Context as _;
use tracer_common::counters::Counter;

use crate::{
    agent::{Consumer, Degraded, Session, SessionOptions, until_stopped},
    cli::{MetricsAddr, RunArgs},
    clock,
    events_out::{EventsOut, SessionStart, Warning},
    exposition::Exposition,
    metrics_server::{self, Health},
    model::{CaptureFigures, Model, ModelConfig, ProbeFigures},
    pipeline::{OutputEvent, Pipeline, PipelineConfig, TimelineConfig},
};

/// `/healthz` fails when the drain loop has not ticked for this long (it
/// ticks every second, between ring-buffer reads, however busy).
const STALE_AFTER: Duration = Duration::from_secs(10);

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut options = SessionOptions::new(args.targets.clone(), args.ringbuf_size);
    options.load.ebpf_log = args.ebpf_log.map(Into::into);
    let mut session = Session::start(options)?;
    let mut events = EventsOut::open(args.events.as_deref(), args.time_format)?;
    let offset = clock::realtime_offset_ns();
    let workers = args.workers.count();
    events.write_line(&SessionStart::new(
        unix_now(offset),
        args.targets.describe(),
        workers,
    ));
    let pipeline = Pipeline::new(
        PipelineConfig {
            workers,
            timeline: TimelineConfig {
                ack_deadline_ns: crate::cli::seconds_ns(args.ack_deadline),
                ..TimelineConfig::default()
            },
            ..PipelineConfig::default()
        },
        offset,
    );
    let health = Arc::new(Health::new(STALE_AFTER));

    // The model exists only to be served.
    let (model, _server) = match args.metrics_addr {
        MetricsAddr::Off => (None, None),
        MetricsAddr::At(addr) => {
            let listener = metrics_server::bind(addr)
                .await
                .with_context(|| format!("listening on --metrics-addr {addr}"))?;
            let model = Arc::new(Mutex::new(Model::new(ModelConfig::default())));
            let exposition = Exposition::new(model.clone());
            let render: metrics_server::Render = Arc::new(move |format| exposition.render(format));
            let server = AbortOnDrop(tokio::spawn(metrics_server::serve(
                listener,
                render,
                health.clone(),
            )));
            // What the probes cost, for the metrics, sampled: the kernel's
            // statistics cost every program run while they are on.
            session.sample_probe_stats();
            (Some(model), Some(server))
        }
    };

    let stop = until_stopped(args.duration);
    tracing::info!(targets = %args.targets.describe(), workers, "running; waiting for targets");
    health.set_running(true);
    let mut agent = Agent {
        pipeline,
        events,
        model,
        health: health.clone(),
        offset,
        batch: Vec::new(),
        written: Written::default(),
        warned: BTreeSet::new(),
    };
    let result = session.run(&mut agent, stop).await;
    health.set_running(false);
    result?;
    // What waits for more input (recent writes' fan-out) is written now.
    let batch = &mut agent.batch;
    agent.pipeline.finish(&mut |event| batch.push(event));
    agent.batch_done();
    let Agent {
        pipeline,
        events,
        written,
        ..
    } = agent;
    events.finish().context("writing events")?;

    let stats = pipeline.stats();
    let streams = pipeline.stream_stats();
    tracing::info!(
        records = stats.records,
        captured_bytes = streams.captured_bytes,
        gap_bytes = written.gap_bytes,
        "stopped"
    );
    // The loss counters, on stdout for scripts and benchmarks.
    let counters = session.counters()?;
    let line: Vec<String> = counters
        .iter()
        .map(|(c, v)| format!("{}={v}", c.name()))
        .collect();
    // Gaps and undecodable bytes as the lines written say: the two agree.
    println!(
        "records={} captured_bytes={} gaps={} gap_bytes={} lost_outside_connections={} undecodable={} {}",
        stats.records,
        streams.captured_bytes,
        written.gaps,
        written.gap_bytes,
        stats.lost_outside_connections,
        written.undecodable,
        line.join(" ")
    );
    Ok(())
}

/// The drain loop's consumer: records through the pipeline, its events
/// (a batch at a time) to the JSON lines and the model.
struct Agent {
    pipeline: Pipeline,
    events: EventsOut,
    model: Option<Arc<Mutex<Model>>>,
    health: Arc<Health>,
    offset: i128,
    /// The current batch's events: the model's lock is taken once a batch.
    batch: Vec<OutputEvent>,
    /// Counts of the loss lines written, for the final summary.
    written: Written,
    /// What a `warning` line was written for.
    warned: BTreeSet<Degraded>,
}

/// Loss lines written so far.
#[derive(Debug, Default)]
struct Written {
    gaps: u64,
    gap_bytes: u64,
    undecodable: u64,
}

impl Consumer for Agent {
    fn record(&mut self, bytes: &[u8]) {
        let batch = &mut self.batch;
        self.pipeline
            .on_record(bytes, &mut |event| batch.push(event));
    }

    fn batch_done(&mut self) {
        // With decoding workers: what they still hold of this drain.
        let batch = &mut self.batch;
        self.pipeline.flush(&mut |event| batch.push(event));
        if self.batch.is_empty() {
            return;
        }
        for event in &self.batch {
            match event {
                OutputEvent::Gap { len, .. } => {
                    self.written.gaps += 1;
                    self.written.gap_bytes += len;
                }
                OutputEvent::Undecodable { .. } => self.written.undecodable += 1,
                _ => {}
            }
            self.events.write_line(event);
        }
        if let Some(model) = self.model.as_deref() {
            let mut model = lock(model);
            for event in &self.batch {
                model.on_event(event);
            }
        }
        self.batch.clear();
    }

    fn tick(&mut self, session: &Session) {
        self.health.beat();
        let degraded = session.degraded();
        if degraded.len() > self.warned.len() {
            let now = unix_now(self.offset);
            for (what, why) in degraded {
                if self.warned.insert(*what) {
                    self.events
                        .write_line(&Warning::new(now, what.as_str(), why));
                }
            }
            let reasons: Vec<String> = degraded
                .iter()
                .map(|(what, why)| format!("{}: {why}", what.as_str()))
                .collect();
            self.health.set_degraded(Some(reasons.join("; ")));
        }
        self.events.flush();
        if let Some(model) = self.model.as_deref() {
            let mut model = lock(model);
            let figures = capture_figures(session, model.capture().ringbuf_drops);
            model.set_capture(figures);
            // Rates fall to zero while nothing happens.
            model.advance(unix_now(self.offset));
        }
    }
}

/// The kernel's figures for the model: ring-buffer drops, the probes'
/// costs, the number of targets. A failed counter read keeps the drops
/// seen before (a counter never goes back).
pub(crate) fn capture_figures(session: &Session, drops_before: u64) -> CaptureFigures {
    let ringbuf_drops = match session.counters() {
        Ok(counters) => counters
            .iter()
            .find(|(c, _)| *c == Counter::RingbufDrops)
            .map_or(0, |(_, v)| *v),
        Err(e) => {
            tracing::debug!("reading the kernel counters: {e:#}");
            drops_before
        }
    };
    CaptureFigures {
        ringbuf_drops,
        programs: session
            .probe_estimates()
            .into_iter()
            .flatten()
            .map(|(program, estimate)| ProbeFigures {
                program: program.clone(),
                runs: estimate.runs as u64,
                run_ns: estimate.run_ns as u64,
            })
            .collect(),
        targets: session.targets().len(),
        degraded: session.degraded().keys().map(|d| d.as_str()).collect(),
    }
}

/// Unix time now, on the pipeline's clock (monotonic plus its offset).
pub(crate) fn unix_now(offset_ns: i128) -> u64 {
    (i128::from(clock::monotonic_ns()) + offset_ns).max(0) as u64
}

/// The model, even if a panic elsewhere poisoned its lock: a counter
/// update cut short is better served than nothing.
fn lock(model: &Mutex<Model>) -> MutexGuard<'_, Model> {
    model.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stops the metrics server when `run` returns.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
