//! What `watchtrace run` does with each record (its drain loop's consumer
//! in commands/run.rs, without the JSON lines): the pipeline, its events a
//! batch at a time into the live model, the model advanced every second
//! and `/metrics` rendered every 15 s, on the records' own clock. The
//! benchmarks time this.
#![allow(dead_code, reason = "shared by the benchmarks; each uses part")]

use tracer_common::record::Direction;
use watchtrace::{
    metrics,
    model::{Model, ModelConfig},
    pipeline::{OutputEvent, Pipeline, PipelineConfig},
};

const TICK_NS: u64 = 1_000_000_000;
const SCRAPE_NS: u64 = 15_000_000_000;

pub(crate) struct AgentPath {
    pipeline: Pipeline,
    model: Model,
    batch: Vec<OutputEvent>,
    /// Unix ns minus the records' monotonic ns.
    offset: i128,
    next_tick: u64,
    next_scrape: u64,
    rendered: usize,
    /// Watch events the traced process sent, so far.
    pub(crate) sent: u64,
}

impl AgentPath {
    pub(crate) fn new(offset: i128) -> Self {
        Self::with_workers(offset, 1)
    }

    /// With `workers` decoding threads (`run --workers`).
    pub(crate) fn with_workers(offset: i128, workers: usize) -> Self {
        let config = PipelineConfig {
            workers,
            ..PipelineConfig::default()
        };
        Self {
            pipeline: Pipeline::new(config, offset),
            model: Model::new(ModelConfig::default()),
            batch: Vec::new(),
            offset,
            next_tick: 0,
            next_scrape: 0,
            rendered: 0,
            sent: 0,
        }
    }

    pub(crate) fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// One record, as the ring hands it over.
    pub(crate) fn record(&mut self, bytes: &[u8]) {
        let (batch, sent) = (&mut self.batch, &mut self.sent);
        self.pipeline
            .on_record(bytes, &mut |event| collect(batch, sent, event));
    }

    /// A drain ended at `now` (the records' clock): what decoding workers
    /// still hold of it, the batch into the model, then a tick and a
    /// scrape when they are due.
    pub(crate) fn batch_done(&mut self, now: u64) {
        let (batch, sent) = (&mut self.batch, &mut self.sent);
        self.pipeline
            .flush(&mut |event| collect(batch, sent, event));
        for event in &self.batch {
            self.model.on_event(event);
        }
        self.batch.clear();
        if now >= self.next_tick {
            self.model
                .advance((i128::from(now) + self.offset).max(0) as u64);
            self.next_tick = now + TICK_NS;
        }
        if now >= self.next_scrape {
            self.rendered += metrics::render(&self.model).len();
            self.next_scrape = now + SCRAPE_NS;
        }
        std::hint::black_box(self.rendered);
    }
}

/// An event into the batch, counting the watch events sent.
fn collect(batch: &mut Vec<OutputEvent>, sent: &mut u64, event: OutputEvent) {
    if matches!(
        event,
        OutputEvent::WatchEvent {
            direction: Direction::Egress,
            ..
        }
    ) {
        *sent += 1;
    }
    batch.push(event);
}
