//! Everything after the capture, as one pure function of the record
//! stream: byte streams, sockets, HTTP/2, watch events and etcd watch
//! responses, turned into [`OutputEvent`]s. The live agent and `replay` feed
//! it the same records, so a recording reproduces a run exactly.

mod attribution;
mod conn_table;
mod connection;
mod decoding;
mod etcd_call;
mod http1;
mod join;
pub mod kinds;
mod late_sources;
mod list_response;
pub mod output;
#[cfg(test)]
mod tests;
mod timeline;
mod window_stalls;
mod workers;
mod writes;

use crate::{
    capture::{DecodeError, StreamStats, decode},
    conn::Sockets,
};
pub use connection::resource_of_kind;
use decoding::{Batch, Decoding, DecodingStats};
use join::Join;
pub use kinds::{
    Ending, EtcdResult, ResourceVersionKind, StallCause, StallScope, TimelinePart,
    UndecodableLayer, UndecodableReason, direction_name,
};
pub use late_sources::LateSourceStats;
pub use list_response::ListEncoding;
pub use output::{OutputEvent, Role, StreamDelay, Timeline, WriteJoin};
pub use timeline::{DEFAULT_ACK_DEADLINE_NS, TimelineConfig, TimelineStats};
use workers::Workers;
use writes::Writes;
pub use writes::WritesStats;

/// Bounds of the pipeline's tables, and its threads.
#[derive(Clone, Copy, Debug)]
pub struct PipelineConfig {
    /// Byte streams reassembled, per decoding shard.
    pub max_streams: usize,
    pub max_sockets: usize,
    /// Connections tracked; also the decoders kept per decoding shard.
    pub max_connections: usize,
    pub timeline: TimelineConfig,
    /// Threads that decode connections (each a shard of the sockets). 1:
    /// decoding runs inline, on the caller's thread. Whatever the number,
    /// the output is the same.
    pub workers: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_streams: 1 << 16,
            max_sockets: 1 << 16,
            max_connections: 1 << 15,
            timeline: TimelineConfig::default(),
            workers: 1,
        }
    }
}

/// Counters of what the pipeline could not use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    pub records: u64,
    pub undecodable_records: u64,
    pub evicted_connections: u64,
    /// Names of sockets (fds, Go TLS conns, pre-attach anchors) the
    /// attribution index forgot because its tables were full.
    pub evicted_names: u64,
    /// Bytes the kernel lost from streams that are no connection (a TLS
    /// socket's ciphertext, seen before it was known to be TLS): they have
    /// no `gap` line. With the gap lines' bytes, the kernel's lost bytes.
    pub lost_outside_connections: u64,
    /// Connection decoders a decoding shard dropped at its cap (the
    /// connection's next bytes are decoded as joined mid-way).
    pub evicted_decoders: u64,
    /// Go TLS Writes never reported sent before the next one began (the
    /// kernel's record count did not add up): their events have no
    /// `t_sent`.
    pub tls_writes_unsent: u64,
    pub timeline: TimelineStats,
    /// Watch events held for an etcd read decoded late.
    pub late_sources: LateSourceStats,
    /// HTTP/2 window stall episodes shorter than `MIN_STALL_NS`: no stall.
    pub brief_window_stalls: u64,
    pub writes: WritesStats,
}

/// The pipeline: each record's bytes decoded per connection (inline, or on
/// worker threads by socket), then joined in record order.
pub struct Pipeline {
    offset_ns: i128,
    records: u64,
    undecodable_records: u64,
    /// The latest record's time.
    last_ts_ns: u64,
    decoding: Decoding,
    /// Set with more than one worker; `decoding` is then unused.
    workers: Option<Workers>,
    join: Join,
    /// After the join: writes joined to their commits and watchers.
    writes: Writes,
    batch: Batch,
}

impl Pipeline {
    /// `offset_ns`: Unix time minus the records' monotonic clock.
    pub fn new(config: PipelineConfig, offset_ns: i128) -> Self {
        let decoding = || Decoding::new(config.max_streams, config.max_connections, offset_ns);
        let workers = (config.workers > 1).then(|| Workers::spawn(config.workers, decoding));
        Self {
            offset_ns,
            records: 0,
            undecodable_records: 0,
            last_ts_ns: 0,
            decoding: decoding(),
            workers,
            join: Join::new(
                config.max_sockets,
                config.max_connections,
                config.timeline,
                offset_ns,
            ),
            writes: Writes::default(),
            batch: Batch::default(),
        }
    }

    pub fn stats(&self) -> PipelineStats {
        let join = self.join.stats();
        PipelineStats {
            records: self.records,
            undecodable_records: self.undecodable_records,
            evicted_connections: join.evicted_connections,
            evicted_names: join.evicted_names,
            lost_outside_connections: join.lost_outside_connections,
            evicted_decoders: self.decoding_stats().evicted_decoders,
            tls_writes_unsent: join.tls_writes_unsent,
            timeline: join.timeline,
            late_sources: join.late_sources,
            brief_window_stalls: join.brief_window_stalls,
            writes: self.writes.stats(),
        }
    }

    pub fn sockets(&self) -> &Sockets {
        self.join.sockets()
    }

    pub fn stream_stats(&self) -> StreamStats {
        self.decoding_stats().streams
    }

    fn decoding_stats(&self) -> DecodingStats {
        match &self.workers {
            Some(workers) => workers.stats(),
            None => self.decoding.stats(),
        }
    }

    /// Feeds one record's bytes; output goes to `emit`. With workers, a
    /// record's output may come with a later record's, or with
    /// [`Pipeline::flush`].
    pub fn on_record(&mut self, bytes: &[u8], emit: &mut impl FnMut(OutputEvent)) {
        self.records += 1;
        let record = match decode(bytes) {
            Ok(record) => record,
            Err(e) => return self.on_undecodable(bytes.len(), &e, emit),
        };
        self.last_ts_ns = record.header().ts_ns;
        let writes = &mut self.writes;
        let emit = &mut |e| writes.on_event(e, emit);
        match &mut self.workers {
            Some(workers) => workers.on_record(bytes, &record, &mut self.join, emit),
            None => {
                self.decoding.on_record(&record, &mut self.batch);
                self.join.on_record(&record, &mut self.batch, emit);
            }
        }
    }

    /// A record this build cannot read: an `undecodable` line, after the
    /// output of every record before it (so the same for any workers).
    fn on_undecodable(
        &mut self,
        len: usize,
        error: &DecodeError,
        emit: &mut impl FnMut(OutputEvent),
    ) {
        self.undecodable_records += 1;
        self.flush(emit);
        emit(OutputEvent::Undecodable {
            // It has no trustworthy time of its own.
            ts: (i128::from(self.last_ts_ns) + self.offset_ns).max(0) as u64,
            conn: None,
            stream: None,
            layer: UndecodableLayer::Record,
            reason: match error {
                DecodeError::Short { .. } => UndecodableReason::Short,
                DecodeError::ChunkLength { .. } | DecodeError::ImplausibleOffset { .. } => {
                    UndecodableReason::Malformed
                }
                DecodeError::UnknownKind { .. } => UndecodableReason::UnknownKind,
            },
            bytes: len as u64,
            direction: None,
            stream_offset: None,
        });
    }

    /// Writes the output of every record fed so far (with workers, waits
    /// for them).
    pub fn flush(&mut self, emit: &mut impl FnMut(OutputEvent)) {
        if let Some(workers) = &mut self.workers {
            let writes = &mut self.writes;
            workers.flush(&mut self.join, &mut |e| writes.on_event(e, emit));
        }
    }

    /// The input ended: flushes, then writes what waits for more input
    /// (the fan-out of recent writes).
    pub fn finish(&mut self, emit: &mut impl FnMut(OutputEvent)) {
        self.flush(emit);
        let writes = &mut self.writes;
        self.join.finish(&mut |e| writes.on_event(e, emit));
        self.writes.finish(emit);
    }
}

/// A client's program name: its user-agent up to the first `/`
/// (`kube-controller-manager/v1.32.0 (linux/amd64) ...`).
pub fn client_name(user_agent: &str) -> String {
    user_agent
        .split('/')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}
