//! Decoding on worker threads. Each worker decodes a shard of the sockets
//! (every record of a socket goes to the same one); the join takes each
//! record's decoding back in record order, so the output is the same for
//! any number of workers.
//!
//! Queues are bounded: at most [`MAX_IN_FLIGHT`] records and
//! [`MAX_IN_FLIGHT_BYTES`] bytes wait between the caller and the join;
//! past either, the caller waits for the workers.

use std::{
    collections::VecDeque,
    sync::mpsc::{self, Receiver, Sender, SyncSender},
    thread::JoinHandle,
};

use super::{
    decoding::{Batch, Decoding, DecodingStats, shard_of, stream_socket},
    join::Join,
    output::OutputEvent,
};
use crate::capture::{Record, decode};

/// Records waiting for the join, at most.
const MAX_IN_FLIGHT: usize = 8192;
/// Their bytes, at most.
const MAX_IN_FLIGHT_BYTES: usize = 16 << 20;
/// Records handed to a worker at once: one wakeup for many.
const SEND_BATCH: usize = 64;

/// A record waiting for the join.
struct Slot {
    /// The worker decoding it, if it carries stream bytes.
    shard: Option<usize>,
    /// All the join needs: a chunk's payload is the worker's.
    record: Record<'static>,
    len: usize,
}

/// Records handed to a worker, with emptied buffers for it to reuse: a
/// fresh allocation per record, freed on another thread, cost more than
/// the decoding it moved.
struct Job {
    records: Vec<Vec<u8>>,
    spare: Vec<Batch>,
}

/// A worker's output for a job, in its records' order, with the records'
/// buffers back for reuse.
struct Done {
    batches: Vec<Batch>,
    buffers: Vec<Vec<u8>>,
    stats: DecodingStats,
}

struct Shard {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Done>,
    /// Records not yet handed over.
    pending: Vec<Vec<u8>>,
    /// Decoded, not yet joined.
    ready: VecDeque<Batch>,
    /// Joined, emptied: go back with the next job.
    spare: Vec<Batch>,
    buffers: Vec<Vec<u8>>,
    stats: DecodingStats,
    thread: Option<JoinHandle<()>>,
}

impl Shard {
    fn push(&mut self, bytes: &[u8]) {
        let mut buffer = self.buffers.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(bytes);
        self.pending.push(buffer);
        if self.pending.len() >= SEND_BATCH {
            self.hand_over();
        }
    }

    fn hand_over(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let job = Job {
            records: std::mem::replace(&mut self.pending, Vec::with_capacity(SEND_BATCH)),
            spare: std::mem::take(&mut self.spare),
        };
        self.jobs
            .as_ref()
            .expect("open until drop")
            .send(job)
            .expect("a decoding worker stopped");
    }

    fn take(&mut self, done: Done) {
        self.ready.extend(done.batches);
        self.buffers.extend(done.buffers);
        self.stats = done.stats;
    }
}

pub(crate) struct Workers {
    shards: Vec<Shard>,
    slots: VecDeque<Slot>,
    in_flight_bytes: usize,
    /// The decoding of a record no worker decodes: nothing.
    empty: Batch,
}

impl Workers {
    /// `n` worker threads, each with its own `decoding()`.
    pub(crate) fn spawn(n: usize, decoding: impl Fn() -> Decoding) -> Self {
        let shards = (0..n)
            .map(|i| {
                let (jobs, inbox) = mpsc::sync_channel(MAX_IN_FLIGHT / SEND_BATCH + 1);
                let (outbox, results) = mpsc::channel();
                let decoding = decoding();
                let thread = std::thread::Builder::new()
                    .name(format!("wt-decode-{i}"))
                    .spawn(move || work(decoding, &inbox, &outbox))
                    .expect("spawning a decoding worker");
                Shard {
                    jobs: Some(jobs),
                    results,
                    pending: Vec::new(),
                    ready: VecDeque::new(),
                    spare: Vec::new(),
                    buffers: Vec::new(),
                    stats: DecodingStats::default(),
                    thread: Some(thread),
                }
            })
            .collect();
        Self {
            shards,
            slots: VecDeque::new(),
            in_flight_bytes: 0,
            empty: Batch::default(),
        }
    }

    pub(crate) fn stats(&self) -> DecodingStats {
        let mut total = DecodingStats::default();
        for shard in &self.shards {
            total.add(&shard.stats);
        }
        total
    }

    pub(crate) fn on_record(
        &mut self,
        bytes: &[u8],
        record: &Record<'_>,
        join: &mut Join,
        emit: &mut impl FnMut(OutputEvent),
    ) {
        let shard =
            stream_socket(record).map(|(tgid, sock)| shard_of(tgid, sock, self.shards.len()));
        if let Some(s) = shard {
            self.shards[s].push(bytes);
        }
        self.in_flight_bytes += bytes.len();
        self.slots.push_back(Slot {
            shard,
            record: record.without_payload(),
            len: bytes.len(),
        });
        self.join_ready(join, emit, false);
    }

    /// Joins every record fed so far.
    pub(crate) fn flush(&mut self, join: &mut Join, emit: &mut impl FnMut(OutputEvent)) {
        self.join_ready(join, emit, true);
    }

    /// Joins records in order while their decoding is done; waits for it
    /// when `all`, or when too much is in flight.
    fn join_ready(&mut self, join: &mut Join, emit: &mut impl FnMut(OutputEvent), all: bool) {
        while let Some(slot) = self.slots.front() {
            let mut batch = match slot.shard {
                None => std::mem::take(&mut self.empty),
                Some(s) => {
                    let shard = &mut self.shards[s];
                    while shard.ready.is_empty()
                        && let Ok(done) = shard.results.try_recv()
                    {
                        shard.take(done);
                    }
                    if shard.ready.is_empty() {
                        let wait = all
                            || self.slots.len() > MAX_IN_FLIGHT
                            || self.in_flight_bytes > MAX_IN_FLIGHT_BYTES;
                        if !wait {
                            return;
                        }
                        // Every worker gets what it has waiting, then this
                        // one is waited for.
                        self.shards.iter_mut().for_each(Shard::hand_over);
                        let shard = &mut self.shards[s];
                        let done = shard.results.recv().expect("a decoding worker stopped");
                        shard.take(done);
                    }
                    self.shards[s].ready.pop_front().expect("taken above")
                }
            };
            let slot = self.slots.pop_front().expect("front exists");
            self.in_flight_bytes -= slot.len;
            join.on_record(&slot.record, &mut batch, emit);
            match slot.shard {
                None => self.empty = batch,
                Some(s) => {
                    batch.clear();
                    self.shards[s].spare.push(batch);
                }
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for shard in &mut self.shards {
            // Closing its queue ends the worker.
            shard.jobs = None;
        }
        for shard in &mut self.shards {
            if let Some(thread) = shard.thread.take() {
                // A worker that panicked has said so already.
                let _ = thread.join();
            }
        }
    }
}

/// A worker: decodes the records it is handed, in order, until its queue
/// closes.
fn work(mut decoding: Decoding, inbox: &Receiver<Job>, outbox: &Sender<Done>) {
    while let Ok(Job { records, mut spare }) = inbox.recv() {
        let batches = records
            .iter()
            .map(|bytes| {
                let mut batch = spare.pop().unwrap_or_default();
                if let Ok(record) = decode(bytes) {
                    decoding.on_record(&record, &mut batch);
                }
                batch
            })
            .collect();
        let done = Done {
            batches,
            buffers: records,
            stats: decoding.stats(),
        };
        if outbox.send(done).is_err() {
            return;
        }
    }
}
