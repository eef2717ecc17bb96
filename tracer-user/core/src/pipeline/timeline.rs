//! Where each watch event's time went, and whom each stall held up.
//!
//! A watch event is decoded the moment its last byte enters the TLS layer
//! (or the socket, for cleartext). It is held here until the rest of its
//! timeline is known, then written out:
//!
//! - `t_source`: the traced process read the etcd watch response carrying
//!   the event's revision (its resourceVersion), from any etcd stream it
//!   reads. Revisions are remembered in a bounded table.
//! - `t_sent`: the last send of the Go TLS Write that carried its last byte
//!   (the kernel then holds every byte the conn's Writes carried; an HTTP/2
//!   server writes one frame batch at a time, so Writes do not overlap; see
//!   `tls_writes` for how a Write's end is found), or for cleartext the
//!   send syscall itself.
//! - `t_acked`: the first TCP ack from the peer at or past the socket's
//!   `write_seq` as of `t_sent`.
//!
//! An event whose ack does not come within the ack deadline (1 s after
//! `t_sent` by default, [`TimelineConfig::ack_deadline_ns`]), or that is
//! not sent within [`PENDING_LIMIT_NS`], or whose connection closes, or
//! that overflows its connection's queue, is written with the parts it has
//! and says which are missing: nothing is guessed, and no event waits
//! without bound.
//!
//! Initial events are not late events: the initial events of a watch-list
//! stream (marked by the decoder, up to the bookmark ending them), and
//! events whose revision was read from etcd before their watch opened or
//! is older than any revision read since the capture began (the watch
//! cache replaying its history to a watch resumed from an old
//! resourceVersion, or its state to an RV=0 watch) are `replayed`: they
//! have no ApiserverTimeSpan, and their `t_source` is not missing.
//!
//! Stall attribution: a socket stall (send buffer full, peer zero window)
//! held every stream with an event waiting during it, from the event's etcd
//! read (or first byte) until the client's ack covered it; each stream is
//! charged the longest such wait within the stall. The stream that
//! filled the buffer is the one with the most bytes sent but not acked when
//! the stall began. A stream-level window stall holds its own stream only;
//! a connection-level one holds the streams that were open.

use std::{collections::VecDeque, sync::Arc};

use foldhash::{HashMap, HashMapExt as _};

use super::{
    kinds::TimelinePart,
    output::{OutputEvent, StreamDelay, Timeline},
};

/// How long an event waits to be sent (its Write reported to the kernel)
/// before it is written without `t_sent`.
pub(crate) const PENDING_LIMIT_NS: u64 = 30_000_000_000;
/// How long after `t_sent` an event waits for its ack by default.
pub const DEFAULT_ACK_DEADLINE_NS: u64 = 1_000_000_000;
/// How long after a socket stall ends its report waits for the events it
/// held inside the apiserver: they reach the TLS layer only once the
/// stall is over, and only then say when they arrived from etcd.
pub(crate) const STALL_SETTLE_NS: u64 = 1_000_000_000;

/// How long an acked event stays in a connection's recent events while no
/// socket stall is open: a stall's start can be learnt a little after it
/// (its record comes through the ring with others), never a second after.
pub(crate) const RECENT_KEEP_NS: u64 = 1_000_000_000;

/// Bounds of the timeline tables.
#[derive(Clone, Copy, Debug)]
pub struct TimelineConfig {
    /// etcd revisions remembered with the time they were read.
    pub max_revisions: usize,
    /// Events waiting for `t_sent` or `t_acked`, per connection.
    pub max_pending_per_conn: usize,
    /// Recently sent events and write batches kept per connection, for
    /// stall attribution.
    pub max_recent_per_conn: usize,
    /// How long after `t_sent` an event waits for its ack before it is
    /// written without one.
    pub ack_deadline_ns: u64,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        Self {
            max_revisions: 1 << 20,
            max_pending_per_conn: 1 << 14,
            max_recent_per_conn: 1 << 10,
            ack_deadline_ns: DEFAULT_ACK_DEADLINE_NS,
        }
    }
}

/// What the timeline tables evicted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimelineStats {
    pub evicted_revisions: u64,
    /// Events written early (without `t_sent` or `t_acked`) because their
    /// connection's queue was full.
    pub evicted_pending: u64,
    /// Events written without an ack after the ack deadline, or without
    /// `t_sent` after [`PENDING_LIMIT_NS`].
    pub expired_pending: u64,
}

/// A decoded watch event waiting for the rest of its timeline.
struct Pending {
    /// A [`OutputEvent::WatchEvent`].
    event: OutputEvent,
    stream: u32,
    /// When it was read from etcd, if that was seen.
    t_source: Option<u64>,
    /// When it started waiting: its source time (not before its watch
    /// opened), else its first byte.
    t_from: u64,
    /// Read from etcd before its watch opened: replayed from the cache.
    replayed: bool,
    t_first: u64,
    t_last: u64,
    t_sent: Option<u64>,
    seq_end: Option<u32>,
}

/// A sent event, remembered for stall attribution.
#[derive(Clone)]
struct Sent {
    stream: u32,
    resource: Arc<str>,
    /// Its source time, else its first byte: when it started waiting.
    t_from: u64,
    t_sent: u64,
    bytes: u64,
    t_acked: Option<u64>,
}

#[derive(Default)]
struct ConnTimeline {
    /// Events whose last byte is written but not yet in the kernel.
    unsent: VecDeque<Pending>,
    /// In the kernel, waiting for the peer's ack, in `seq_end` order.
    unacked: VecDeque<Pending>,
    /// Sent events a socket stall may yet be charged with: the unacked,
    /// and the acked since [`RECENT_KEEP_NS`] ago or since the oldest open
    /// socket stall began (at most `max_recent_per_conn`).
    recent: VecDeque<Sent>,
    /// Events pushed out of `recent` while a socket stall was open that a
    /// stall may charge (see [`keep_for_stalls`]).
    stall_earliest: Vec<Sent>,
    /// Socket stalls begun and not yet ended, and the oldest one's start.
    open_stalls: u32,
    open_stall_since: Option<u64>,
    /// Window stalls that ended: (start, end, stream or None for the
    /// connection window).
    window_stalls: VecDeque<(u64, u64, Option<u32>)>,
    /// Socket stalls that ended: (start, end).
    socket_stalls: VecDeque<(u64, u64)>,
    /// Socket stall reports still collecting the streams they held.
    settling: Vec<SettlingStall>,
    /// When each open watch stream's request was seen.
    opened: HashMap<u32, u64>,
    /// The resource of the last event sent: a connection's events name
    /// few resources, so [`Sent`] shares this one rather than copy it.
    last_resource: Option<Arc<str>>,
    /// The latest ack seen, and when: it can come before the record of
    /// the send it acknowledges (on loopback the peer's ACK is processed
    /// inside the send, before the send's record is stamped), and on a
    /// quiet connection no later ack would cover that send.
    last_ack: Option<(u32, u64)>,
}

impl ConnTimeline {
    fn resource_label(&mut self, resource: &str) -> Arc<str> {
        match &self.last_resource {
            Some(label) if **label == *resource => label.clone(),
            _ => {
                let label: Arc<str> = resource.into();
                self.last_resource = Some(label.clone());
                label
            }
        }
    }
}

/// The resource of a pending [`OutputEvent::WatchEvent`].
fn resource_of(event: &OutputEvent) -> &str {
    match event {
        OutputEvent::WatchEvent { resource, .. } => resource,
        _ => "",
    }
}

/// A socket stall whose report is held for [`STALL_SETTLE_NS`].
struct SettlingStall {
    start: u64,
    end: u64,
    report: OutputEvent,
    held: Vec<StreamDelay>,
}

/// Charges `stream` a delay, keeping the largest per stream.
fn charge(held: &mut Vec<StreamDelay>, stream: u32, resource: &str, delay: u64) {
    if delay == 0 {
        return;
    }
    match held.iter_mut().find(|d| d.stream == stream) {
        Some(d) => d.delay_ns = d.delay_ns.max(delay),
        None => held.push(StreamDelay {
            stream,
            resource: (!resource.is_empty()).then(|| resource.to_owned()),
            delay_ns: delay,
        }),
    }
}

/// `a` is at or before `b` in wrapping sequence space.
fn seq_le(a: u32, b: u32) -> bool {
    b.wrapping_sub(a) < 1 << 31
}

/// Length of the overlap of `[a0, a1]` and `[b0, b1]`.
fn overlap(a0: u64, a1: u64, b0: u64, b1: u64) -> u64 {
    a1.min(b1).saturating_sub(a0.max(b0))
}

/// Every connection's pending events and the etcd revisions seen.
pub(crate) struct Timelines {
    config: TimelineConfig,
    revisions: HashMap<i64, u64>,
    revision_order: VecDeque<i64>,
    /// The lowest revision read from etcd since the capture began.
    first_revision: Option<i64>,
    conns: HashMap<u64, ConnTimeline>,
    stats: TimelineStats,
}

impl Timelines {
    pub(crate) fn new(config: TimelineConfig) -> Self {
        Self {
            config,
            revisions: HashMap::new(),
            revision_order: VecDeque::new(),
            first_revision: None,
            conns: HashMap::new(),
            stats: TimelineStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> TimelineStats {
        self.stats
    }

    /// The traced process read an etcd event of `revision` at `t`. The
    /// first reading counts (a revision reaches the apiserver once per
    /// etcd watch that covers its key).
    pub(crate) fn on_etcd(&mut self, revision: i64, t: u64) {
        if self.revisions.contains_key(&revision) {
            return;
        }
        self.first_revision = Some(self.first_revision.map_or(revision, |f| f.min(revision)));
        if self.revision_order.len() >= self.config.max_revisions
            && let Some(old) = self.revision_order.pop_front()
        {
            self.revisions.remove(&old);
            self.stats.evicted_revisions += 1;
        }
        self.revisions.insert(revision, t);
        self.revision_order.push_back(revision);
    }

    /// A watch request opened `stream` on `conn` at `t`: its events' waits
    /// start no earlier.
    pub(crate) fn on_stream_open(&mut self, conn: u64, stream: u32, t: u64) {
        let max = self.config.max_pending_per_conn;
        let timeline = self.conns.entry(conn).or_default();
        if timeline.opened.len() >= max {
            // Streams that ended without a seen end; forget them all
            // rather than grow.
            timeline.opened.clear();
        }
        timeline.opened.insert(stream, t);
    }

    pub(crate) fn on_stream_end(&mut self, conn: u64, stream: u32) {
        if let Some(timeline) = self.conns.get_mut(&conn) {
            timeline.opened.remove(&stream);
        }
    }

    /// A watch event the process wrote on `conn`. `sent`: the kernel already
    /// holds it (cleartext), at this time and `write_seq`.
    pub(crate) fn on_watch_event(
        &mut self,
        conn: u64,
        event: OutputEvent,
        sent: Option<(u64, Option<u32>)>,
        out: &mut Vec<OutputEvent>,
    ) {
        let OutputEvent::WatchEvent {
            stream,
            t_first_byte,
            t_last_byte,
            ref resource,
            ref resource_version,
            ref timeline,
            ..
        } = event
        else {
            out.push(event);
            return;
        };
        let max = self.config.max_pending_per_conn;
        // The initial events of a watch-list stream, marked by the decoder.
        let initial = timeline.replayed;
        let revision = resource_version.parse::<i64>().ok();
        let t_source = revision
            .and_then(|rv| self.revisions.get(&rv).copied())
            // A revision read after the event was written belongs to
            // another watch (a resourceVersion reused by a relist).
            .filter(|&t| t <= t_first_byte);
        // Older than every revision read since the capture began: the
        // watch cache's history or state, not a change being delivered.
        let predates = t_source.is_none()
            && revision
                .zip(self.first_revision)
                .is_some_and(|(rv, first)| rv < first);
        let timeline = self.conns.entry(conn).or_default();
        let opened = timeline.opened.get(&stream).copied();
        let replayed = initial || predates || t_source.zip(opened).is_some_and(|(s, o)| s < o);
        let t_from = match (t_source, opened) {
            (Some(s), Some(o)) => s.max(o),
            (Some(s), None) => s,
            (None, _) => t_first_byte,
        };
        // An event that came from etcd before a stall ended but reached the
        // TLS layer only after it was held inside the apiserver.
        if t_source.is_some() {
            for stall in &mut timeline.settling {
                charge(
                    &mut stall.held,
                    stream,
                    resource,
                    overlap(t_from, t_first_byte, stall.start, stall.end),
                );
            }
        }
        let pending = Pending {
            event,
            stream,
            t_source,
            t_from,
            replayed,
            t_first: t_first_byte,
            t_last: t_last_byte,
            t_sent: None,
            seq_end: None,
        };
        timeline.unsent.push_back(pending);
        if let Some((t, seq)) = sent {
            self.on_sent(conn, t, seq, out);
        }
        let timeline = self.conns.get_mut(&conn).expect("inserted above");
        while timeline.unsent.len() + timeline.unacked.len() > max {
            let oldest = if timeline.unacked.is_empty() {
                timeline.unsent.pop_front()
            } else {
                timeline.unacked.pop_front()
            };
            if let Some(p) = oldest {
                self.stats.evicted_pending += 1;
                let p = finish(timeline, &self.revisions, p, None);
                out.push(p);
            }
        }
    }

    /// Every event written on `conn` so far reached the kernel at `t`;
    /// `seq_end`: the socket's `write_seq` then, when the socket is known.
    pub(crate) fn on_sent(
        &mut self,
        conn: u64,
        t: u64,
        seq_end: Option<u32>,
        out: &mut Vec<OutputEvent>,
    ) {
        let Some(timeline) = self.conns.get_mut(&conn) else {
            return;
        };
        let max_recent = self.config.max_recent_per_conn;
        while let Some(mut p) = timeline.unsent.pop_front() {
            p.t_sent = Some(t);
            p.seq_end = seq_end;
            let resource = timeline.resource_label(resource_of(&p.event));
            push_recent(
                timeline,
                Sent {
                    stream: p.stream,
                    resource,
                    t_from: p.t_from,
                    t_sent: t,
                    bytes: event_bytes(&p.event),
                    t_acked: None,
                },
                max_recent,
            );
            if seq_end.is_some() {
                timeline.unacked.push_back(p);
            } else {
                out.push(finish(timeline, &self.revisions, p, None));
            }
        }
        // Already acknowledged: counted at the send's time (the ack was
        // processed before the send's record was stamped).
        if let (Some((ack, t_ack)), Some(end)) = (timeline.last_ack, seq_end)
            && seq_le(end, ack)
        {
            self.on_ack(conn, ack, t_ack.max(t), out);
        }
    }

    /// The Write carrying `conn`'s unsent events made no send (it failed):
    /// they never reached the kernel, and are written without `t_sent`.
    pub(crate) fn on_unsent(&mut self, conn: u64, out: &mut Vec<OutputEvent>) {
        let Some(timeline) = self.conns.get_mut(&conn) else {
            return;
        };
        while let Some(p) = timeline.unsent.pop_front() {
            out.push(finish(timeline, &self.revisions, p, None));
        }
    }

    /// The peer of `conn` acknowledged everything before `ack` at `t`.
    pub(crate) fn on_ack(&mut self, conn: u64, ack: u32, t: u64, out: &mut Vec<OutputEvent>) {
        // Kept even before any event: the first one's ack may come first.
        let timeline = self.conns.entry(conn).or_default();
        if timeline.last_ack.is_none_or(|(last, _)| seq_le(last, ack)) {
            timeline.last_ack = Some((ack, t));
        }
        while let Some(p) = timeline.unacked.front() {
            let Some(seq_end) = p.seq_end else { break };
            if !seq_le(seq_end, ack) {
                break;
            }
            let p = timeline.unacked.pop_front().expect("front exists");
            // A stall that held it until now (a zero window, say).
            for stall in &mut timeline.settling {
                charge(
                    &mut stall.held,
                    p.stream,
                    resource_of(&p.event),
                    overlap(p.t_from, t, stall.start, stall.end),
                );
            }
            let t_sent = p.t_sent;
            for sent in timeline.recent.iter_mut().rev() {
                if sent.t_acked.is_some() {
                    break;
                }
                if Some(sent.t_sent) <= t_sent {
                    sent.t_acked = Some(t);
                }
            }
            out.push(finish(timeline, &self.revisions, p, Some(t)));
        }
        // What no stall can be charged with any more: acked before every
        // open stall began, or (none open) well before now. Acks come in
        // send order, so these are at the front.
        let keep_from = timeline
            .open_stall_since
            .unwrap_or(t.saturating_sub(RECENT_KEEP_NS));
        while timeline
            .recent
            .front()
            .is_some_and(|s| s.t_acked.is_some_and(|a| a < keep_from))
        {
            timeline.recent.pop_front();
        }
    }

    /// A socket stall on `conn` began at `start`: the events acked from
    /// then on are kept for its report.
    pub(crate) fn on_socket_stall_start(&mut self, conn: u64, start: u64) {
        let timeline = self.conns.entry(conn).or_default();
        timeline.open_stalls += 1;
        timeline.open_stall_since = Some(timeline.open_stall_since.map_or(start, |s| s.min(start)));
    }

    /// Writes out what waited too long for its ack, and the stall reports
    /// that have settled (as of `now`).
    pub(crate) fn expire(&mut self, now: u64, out: &mut Vec<OutputEvent>) {
        // In connection order: the output does not depend on a hash seed.
        let mut conns: Vec<u64> = self.conns.keys().copied().collect();
        conns.sort_unstable();
        for conn in conns {
            let timeline = self.conns.get_mut(&conn).expect("listed above");
            let (done, settling): (Vec<_>, Vec<_>) = std::mem::take(&mut timeline.settling)
                .into_iter()
                .partition(|s| s.end + STALL_SETTLE_NS <= now);
            timeline.settling = settling;
            out.extend(done.into_iter().map(SettlingStall::into_report));
            let deadline = self.config.ack_deadline_ns;
            while let Some(p) = timeline.unacked.front() {
                if p.t_sent.unwrap_or(p.t_last) + deadline > now {
                    break;
                }
                let p = timeline.unacked.pop_front().expect("front exists");
                self.stats.expired_pending += 1;
                let waited = now.saturating_sub(p.t_from);
                let mut event = finish(timeline, &self.revisions, p, None);
                if let OutputEvent::WatchEvent { timeline, .. } = &mut event
                    && !timeline.replayed
                {
                    timeline.unacked_after_ns = Some(waited);
                }
                out.push(event);
            }
            // Never sent (a Write whose sends were not all seen): bounded
            // too. Later events of the connection wait behind it.
            while let Some(p) = timeline.unsent.front() {
                if p.t_last + PENDING_LIMIT_NS > now {
                    break;
                }
                let p = timeline.unsent.pop_front().expect("front exists");
                self.stats.expired_pending += 1;
                out.push(finish(timeline, &self.revisions, p, None));
            }
        }
    }

    /// `conn` ended: its pending events are written with what they have.
    pub(crate) fn on_close(&mut self, conn: u64, out: &mut Vec<OutputEvent>) {
        let Some(mut timeline) = self.conns.remove(&conn) else {
            return;
        };
        for stall in timeline.settling.drain(..) {
            out.push(stall.into_report());
        }
        while let Some(p) = timeline.unacked.pop_front() {
            out.push(finish(&timeline, &self.revisions, p, None));
        }
        while let Some(p) = timeline.unsent.pop_front() {
            out.push(finish(&timeline, &self.revisions, p, None));
        }
    }

    /// A window stall on `conn` ended; returns the streams it held.
    /// `stream`: the stalled stream, or `None` for the connection window
    /// (then `open_streams` were held).
    pub(crate) fn on_window_stall(
        &mut self,
        conn: u64,
        start: u64,
        end: u64,
        stream: Option<u32>,
        open_streams: &[u32],
    ) -> Vec<StreamDelay> {
        let max = self.config.max_recent_per_conn;
        let timeline = self.conns.entry(conn).or_default();
        if timeline.window_stalls.len() >= max {
            timeline.window_stalls.pop_front();
        }
        timeline.window_stalls.push_back((start, end, stream));
        let held: &[u32] = match &stream {
            Some(s) => std::slice::from_ref(s),
            None => open_streams,
        };
        held.iter()
            .map(|&stream| StreamDelay {
                stream,
                resource: None,
                delay_ns: end.saturating_sub(start),
            })
            .collect()
    }

    /// A socket stall on `conn` ended. Its `report` (a `socket_stall`) is
    /// held for [`STALL_SETTLE_NS`] while events it held inside the
    /// apiserver come out, then written with `held` (the streams whose
    /// events waited, each charged the longest wait within the stall) and
    /// `filled_by` (the stream with the most bytes sent but not acked when
    /// the stall began).
    pub(crate) fn on_socket_stall(
        &mut self,
        conn: u64,
        start: u64,
        end: u64,
        report: OutputEvent,
        out: &mut Vec<OutputEvent>,
    ) {
        let max = self.config.max_recent_per_conn;
        let timeline = self.conns.entry(conn).or_default();
        timeline.open_stalls = timeline.open_stalls.saturating_sub(1);
        let earliest = if timeline.open_stalls == 0 {
            timeline.open_stall_since = None;
            std::mem::take(&mut timeline.stall_earliest)
        } else {
            timeline.stall_earliest.clone()
        };
        if timeline.socket_stalls.len() >= max {
            timeline.socket_stalls.pop_front();
        }
        timeline.socket_stalls.push_back((start, end));
        let mut held = Vec::new();
        // Delivered (acked) during the stall, or still unacked: waited
        // from its source (or first byte) until the client's ack.
        for sent in timeline.recent.iter().chain(&earliest) {
            let delivered = sent.t_acked.unwrap_or(end);
            if delivered >= start && sent.t_from <= end {
                charge(
                    &mut held,
                    sent.stream,
                    &sent.resource,
                    overlap(sent.t_from, delivered, start, end),
                );
            }
        }
        // Written but still unsent: waited at least until the stall ended.
        for p in &timeline.unsent {
            charge(
                &mut held,
                p.stream,
                resource_of(&p.event),
                overlap(p.t_from, end, start, end),
            );
        }
        // Whose bytes were in flight when it began.
        let mut in_flight: Vec<(u32, u64)> = Vec::new();
        for sent in timeline.recent.iter().chain(&earliest) {
            if sent.t_sent <= start && sent.t_acked.is_none_or(|a| a > start) {
                match in_flight.iter_mut().find(|(s, _)| *s == sent.stream) {
                    Some((_, b)) => *b += sent.bytes,
                    None => in_flight.push((sent.stream, sent.bytes)),
                }
            }
        }
        let filled = in_flight
            .iter()
            .max_by_key(|(stream, bytes)| (*bytes, std::cmp::Reverse(*stream)))
            .map(|(s, _)| *s);
        let mut report = report;
        if let OutputEvent::SocketStall { filled_by, .. } = &mut report {
            *filled_by = filled;
        }
        if timeline.settling.len() >= max {
            out.push(timeline.settling.remove(0).into_report());
        }
        timeline.settling.push(SettlingStall {
            start,
            end,
            report,
            held,
        });
    }
}

impl SettlingStall {
    fn into_report(self) -> OutputEvent {
        let mut report = self.report;
        if let OutputEvent::SocketStall { held, .. } = &mut report {
            let mut streams = self.held;
            streams.sort_by_key(|d| d.stream);
            *held = streams;
        }
        report
    }
}

fn push_recent(timeline: &mut ConnTimeline, sent: Sent, max: usize) {
    if timeline.recent.len() >= max
        && let Some(old) = timeline.recent.pop_front()
        && let Some(since) = timeline.open_stall_since
        && old.t_acked.is_none_or(|a| a >= since)
    {
        keep_for_stalls(&mut timeline.stall_earliest, old);
    }
    timeline.recent.push_back(sent);
}

/// A long stall's backlog outnumbers `recent`: what it pushes out is kept
/// here if some stall could charge it more than what is kept already. An
/// event that started waiting earlier and was delivered later is charged
/// at least as much by any stall, so per stream only the events no other
/// beats on both counts are kept: at most [`KEPT_PER_STREAM`], the ones
/// that began waiting earliest (a long stall charges by those).
fn keep_for_stalls(kept: &mut Vec<Sent>, old: Sent) {
    let delivered = |s: &Sent| s.t_acked.unwrap_or(u64::MAX);
    let beats = |a: &Sent, b: &Sent| a.t_from <= b.t_from && delivered(a) >= delivered(b);
    if kept
        .iter()
        .any(|k| k.stream == old.stream && beats(k, &old))
    {
        return;
    }
    kept.retain(|k| !(k.stream == old.stream && beats(&old, k)));
    // The stream's count, and its latest-waiting event (no allocation:
    // this runs for each event a long stall's backlog pushes out).
    let mut same = 0;
    let mut latest: Option<usize> = None;
    for (i, k) in kept
        .iter()
        .enumerate()
        .filter(|(_, k)| k.stream == old.stream)
    {
        same += 1;
        if latest.is_none_or(|l| kept[l].t_from < k.t_from) {
            latest = Some(i);
        }
    }
    if same >= KEPT_PER_STREAM
        && let Some(latest) = latest
    {
        if kept[latest].t_from <= old.t_from {
            return;
        }
        kept.remove(latest);
    }
    if kept.len() < MAX_STALL_EARLIEST {
        kept.push(old);
    }
}

/// Events [`keep_for_stalls`] keeps per stream, and in all (a connection
/// has at most a few hundred streams open: the server's
/// SETTINGS_MAX_CONCURRENT_STREAMS).
const KEPT_PER_STREAM: usize = 8;
const MAX_STALL_EARLIEST: usize = 2048;

fn event_bytes(event: &OutputEvent) -> u64 {
    match event {
        OutputEvent::WatchEvent { bytes, .. } => *bytes,
        _ => 0,
    }
}

/// The event with its timeline filled in from what is known. A source
/// not known when the event was decoded may be by now: its etcd read was
/// decoded later (see `late_sources`).
fn finish(
    conn: &ConnTimeline,
    revisions: &HashMap<i64, u64>,
    mut p: Pending,
    t_acked: Option<u64>,
) -> OutputEvent {
    if p.t_source.is_none()
        && !p.replayed
        && let OutputEvent::WatchEvent {
            resource_version, ..
        } = &p.event
        && let Some(&t) = resource_version
            .parse::<i64>()
            .ok()
            .and_then(|rv| revisions.get(&rv))
        && t <= p.t_first
    {
        p.t_source = Some(t);
        p.replayed = conn.opened.get(&p.stream).is_some_and(|&o| t < o);
    }
    let t_source = p.t_source;
    let mut event = p.event;
    if let OutputEvent::WatchEvent { timeline, .. } = &mut event {
        let span_start = p.t_from;
        let span_end = p.t_sent.unwrap_or(p.t_last);
        let flow_control_wait_ns = conn
            .window_stalls
            .iter()
            .filter(|(_, _, s)| s.is_none_or(|s| s == p.stream))
            .map(|&(a, b, _)| overlap(span_start, span_end, a, b))
            .sum();
        let socket_buffer_wait_ns = conn
            .socket_stalls
            .iter()
            .map(|&(a, b)| overlap(span_start, span_end, a, b))
            .sum();
        let mut missing = Vec::new();
        // A replayed event's source is the cache, not an etcd read now.
        if t_source.is_none() && !p.replayed {
            missing.push(TimelinePart::TSource);
        }
        if p.t_sent.is_none() {
            missing.push(TimelinePart::TSent);
        }
        if t_acked.is_none() {
            missing.push(TimelinePart::TAcked);
        }
        *timeline = Timeline {
            t_source,
            t_sent: p.t_sent,
            t_acked,
            // A replayed event's span is its age, not a delivery delay.
            apiserver_time_span_ns: t_source.filter(|_| !p.replayed).map(|s| p.t_first - s),
            replayed: p.replayed,
            socket_queue_ns: p.t_sent.map(|s| s.saturating_sub(p.t_last)),
            wire_client_ns: p.t_sent.zip(t_acked).map(|(s, a)| a.saturating_sub(s)),
            flow_control_wait_ns,
            socket_buffer_wait_ns,
            missing,
            unacked_after_ns: None,
            write: None,
        };
    }
    event
}

#[cfg(test)]
mod tests {
    use super::{super::kinds::StallCause, *};

    fn sent(stream: u32, t_from: u64, t_acked: Option<u64>) -> Sent {
        Sent {
            stream,
            resource: "pods".into(),
            t_from,
            t_sent: t_from,
            bytes: 1,
            t_acked,
        }
    }

    #[test]
    fn events_pushed_out_during_a_stall_are_kept_when_some_stall_could_charge_them_more() {
        let mut kept = Vec::new();
        // Acked early in the stall, then one in flight across it: neither
        // beats the other (the first waited from earlier, the second was
        // delivered later), so both stay.
        keep_for_stalls(&mut kept, sent(1, 10, Some(20)));
        keep_for_stalls(&mut kept, sent(1, 15, Some(90)));
        assert_eq!(kept.len(), 2);
        // Waited from later and delivered earlier: beaten, dropped.
        keep_for_stalls(&mut kept, sent(1, 16, Some(80)));
        assert_eq!(kept.len(), 2);
        // Beats both: replaces them.
        keep_for_stalls(&mut kept, sent(1, 5, None));
        assert_eq!(kept.len(), 1);
        // Another stream is kept apart; a stream keeps at most
        // KEPT_PER_STREAM, those that began waiting first.
        for i in 0..20 {
            keep_for_stalls(&mut kept, sent(2, 100 + i, Some(110 + i)));
        }
        let of_2: Vec<u64> = kept
            .iter()
            .filter(|k| k.stream == 2)
            .map(|k| k.t_from)
            .collect();
        assert_eq!(of_2, (100..108).collect::<Vec<_>>());
        assert_eq!(kept.iter().filter(|k| k.stream == 1).count(), 1);
    }

    fn event(stream: u32, rv: &str, t_first: u64, t_last: u64, bytes: u64) -> OutputEvent {
        OutputEvent::test_watch_event(stream, rv, t_first, t_last, bytes)
    }

    fn timeline_of(event: &OutputEvent) -> &Timeline {
        match event {
            OutputEvent::WatchEvent { timeline, .. } => timeline,
            other => panic!("not a watch event: {other:?}"),
        }
    }

    fn small() -> TimelineConfig {
        TimelineConfig {
            max_revisions: 4,
            max_pending_per_conn: 2,
            max_recent_per_conn: 8,
            ack_deadline_ns: DEFAULT_ACK_DEADLINE_NS,
        }
    }

    #[test]
    fn an_event_gets_every_part_once_its_ack_arrives() {
        let mut t = Timelines::new(TimelineConfig::default());
        let mut out = Vec::new();
        t.on_etcd(100, 1_000);
        t.on_watch_event(7, event(1, "100", 1_500, 1_600, 300), None, &mut out);
        t.on_sent(7, 1_700, Some(5_000), &mut out);
        t.on_ack(7, 4_999, 1_900, &mut out);
        assert!(out.is_empty(), "not acked yet: {out:?}");
        t.on_ack(7, 5_000, 2_000, &mut out);
        assert_eq!(out.len(), 1);
        let tl = timeline_of(&out[0]);
        assert_eq!(tl.t_source, Some(1_000));
        assert_eq!(tl.apiserver_time_span_ns, Some(500));
        assert_eq!(tl.t_sent, Some(1_700));
        assert_eq!(tl.socket_queue_ns, Some(100));
        assert_eq!(tl.t_acked, Some(2_000));
        assert_eq!(tl.wire_client_ns, Some(300));
        assert!(tl.missing.is_empty());
    }

    #[test]
    fn a_source_decoded_after_the_event_but_read_before_it_counts_at_the_ack() {
        let mut t = Timelines::new(TimelineConfig::default());
        let mut out = Vec::new();
        t.on_watch_event(7, event(1, "100", 1_500, 1_600, 300), None, &mut out);
        // The etcd read at 1000 was decoded only now (its connection was
        // joined mid-way); one read after the event is another watch's.
        t.on_etcd(100, 1_000);
        t.on_watch_event(7, event(1, "101", 1_650, 1_650, 300), None, &mut out);
        t.on_etcd(101, 1_660);
        t.on_sent(7, 1_700, Some(5_000), &mut out);
        t.on_ack(7, 5_000, 2_000, &mut out);
        assert_eq!(out.len(), 2);
        let tl = timeline_of(&out[0]);
        assert_eq!(tl.t_source, Some(1_000));
        assert_eq!(tl.apiserver_time_span_ns, Some(500));
        assert!(tl.missing.is_empty());
        assert_eq!(timeline_of(&out[1]).t_source, None);
    }

    #[test]
    fn acks_wrap_around_sequence_space() {
        let mut t = Timelines::new(TimelineConfig::default());
        let mut out = Vec::new();
        t.on_watch_event(7, event(1, "1", 10, 10, 1), None, &mut out);
        t.on_sent(7, 20, Some(u32::MAX - 5), &mut out);
        t.on_watch_event(7, event(1, "2", 30, 30, 1), None, &mut out);
        t.on_sent(7, 40, Some(10), &mut out);
        t.on_ack(7, u32::MAX, 50, &mut out);
        assert_eq!(out.len(), 1);
        t.on_ack(7, 10, 60, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(timeline_of(&out[1]).t_acked, Some(60));
    }

    #[test]
    fn unmeasurable_parts_are_named_not_guessed() {
        let mut t = Timelines::new(TimelineConfig::default());
        let mut out = Vec::new();
        // No etcd revision seen, socket unknown: written at once, no ack.
        t.on_watch_event(7, event(1, "100", 10, 20, 5), None, &mut out);
        t.on_sent(7, 30, None, &mut out);
        assert_eq!(out.len(), 1);
        let tl = timeline_of(&out[0]);
        assert_eq!(
            tl.missing,
            vec![TimelinePart::TSource, TimelinePart::TAcked]
        );
        assert_eq!(tl.apiserver_time_span_ns, None);
        assert_eq!(tl.t_sent, Some(30));
        // A connection that closes first: what it has.
        t.on_watch_event(7, event(1, "101", 40, 40, 5), None, &mut out);
        t.on_close(7, &mut out);
        assert_eq!(
            timeline_of(&out[1]).missing,
            vec![
                TimelinePart::TSource,
                TimelinePart::TSent,
                TimelinePart::TAcked
            ]
        );
    }

    #[test]
    fn a_revision_read_after_the_event_was_written_is_not_its_source() {
        let mut t = Timelines::new(TimelineConfig::default());
        let mut out = Vec::new();
        t.on_etcd(100, 5_000);
        t.on_watch_event(
            7,
            event(1, "100", 1_000, 1_000, 5),
            Some((1_000, None)),
            &mut out,
        );
        assert_eq!(timeline_of(&out[0]).t_source, None);
    }

    #[test]
    fn tables_are_bounded_and_count_what_they_drop() {
        let mut t = Timelines::new(small());
        let mut out = Vec::new();
        for rev in 1..=6 {
            t.on_etcd(rev, rev as u64);
        }
        assert_eq!(t.stats().evicted_revisions, 2);
        for i in 0..3 {
            t.on_watch_event(7, event(1, "5", 10 + i, 10 + i, 1), None, &mut out);
        }
        assert_eq!(out.len(), 1, "the oldest of three is written early");
        assert_eq!(t.stats().evicted_pending, 1);
        assert_eq!(
            timeline_of(&out[0]).missing,
            vec![TimelinePart::TSent, TimelinePart::TAcked]
        );
        assert_eq!(timeline_of(&out[0]).t_source, Some(5));
    }

    #[test]
    fn an_ack_that_never_comes_expires_at_the_deadline_after_the_send() {
        let mut t = Timelines::new(TimelineConfig::default());
        let mut out = Vec::new();
        t.on_watch_event(7, event(1, "1", 10, 10, 1), None, &mut out);
        t.on_sent(7, 20, Some(100), &mut out);
        t.expire(20 + DEFAULT_ACK_DEADLINE_NS - 1, &mut out);
        assert!(out.is_empty());
        t.expire(20 + DEFAULT_ACK_DEADLINE_NS, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(t.stats().expired_pending, 1);
        assert_eq!(
            timeline_of(&out[0]).missing,
            vec![TimelinePart::TSource, TimelinePart::TAcked]
        );
        // What it had waited by then, from its first byte: a lower bound
        // of its delivery.
        assert_eq!(
            timeline_of(&out[0]).unacked_after_ns,
            Some(10 + DEFAULT_ACK_DEADLINE_NS)
        );
    }

    #[test]
    fn an_ack_read_before_the_send_it_covers_still_acks_it() {
        let mut t = Timelines::new(TimelineConfig::default());
        let mut out = Vec::new();
        // On loopback the peer's ACK is processed inside the send, before
        // the send's record is stamped: its record comes first.
        t.on_ack(7, 100, 19, &mut out);
        t.on_watch_event(7, event(1, "1", 10, 10, 1), None, &mut out);
        t.on_sent(7, 20, Some(100), &mut out);
        assert_eq!(out.len(), 1, "acked at once, not at the deadline");
        let timeline = timeline_of(&out[0]);
        assert_eq!(timeline.t_acked, Some(20), "at the send's time");
        assert_eq!(timeline.wire_client_ns, Some(0));
        // An older ack does not cover a later send.
        let mut out = Vec::new();
        t.on_watch_event(7, event(1, "2", 30, 30, 1), None, &mut out);
        t.on_sent(7, 31, Some(150), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn an_event_never_sent_is_written_without_t_sent_after_the_pending_limit() {
        let mut t = Timelines::new(TimelineConfig::default());
        let mut out = Vec::new();
        t.on_watch_event(7, event(1, "1", 10, 10, 1), None, &mut out);
        t.expire(10 + PENDING_LIMIT_NS - 1, &mut out);
        assert!(out.is_empty(), "a slow send is not a lost one");
        t.expire(10 + PENDING_LIMIT_NS, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            timeline_of(&out[0]).missing,
            vec![
                TimelinePart::TSource,
                TimelinePart::TSent,
                TimelinePart::TAcked
            ]
        );
    }

    #[test]
    fn initial_events_and_revisions_older_than_the_capture_are_replayed_not_late() {
        let mut t = Timelines::new(TimelineConfig::default());
        let mut out = Vec::new();
        t.on_etcd(50, 5);
        // Marked initial by the decoder (a watch-list stream).
        let mut initial = event(1, "60", 10, 10, 1);
        if let OutputEvent::WatchEvent { timeline, .. } = &mut initial {
            timeline.replayed = true;
        }
        t.on_watch_event(7, initial, Some((11, Some(1))), &mut out);
        // Older than any revision read since the capture began.
        t.on_watch_event(7, event(1, "40", 12, 12, 1), Some((13, Some(2))), &mut out);
        // Newer but not (yet) read: late, its source missing.
        t.on_watch_event(7, event(1, "70", 14, 14, 1), Some((15, Some(3))), &mut out);
        t.on_ack(7, 3, 20, &mut out);
        let got: Vec<(bool, Vec<TimelinePart>)> = out
            .iter()
            .map(|e| (timeline_of(e).replayed, timeline_of(e).missing.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (true, vec![]),
                (true, vec![]),
                (false, vec![TimelinePart::TSource]),
            ]
        );
        assert!(
            out.iter()
                .all(|e| timeline_of(e).apiserver_time_span_ns.is_none())
        );
    }

    fn stall_report() -> OutputEvent {
        OutputEvent::SocketStall {
            ts: 500,
            conn: Some(7),
            pid: 1,
            fd: 3,
            cause: StallCause::SendBufferFull,
            start: 200,
            duration_ns: 300,
            flaps: 0,
            client: None,
            peer: None,
            held: Vec::new(),
            filled_by: None,
        }
    }

    fn held_of(event: &OutputEvent) -> (Vec<(u32, u64)>, Option<u32>) {
        match event {
            OutputEvent::SocketStall {
                held, filled_by, ..
            } => (
                held.iter().map(|d| (d.stream, d.delay_ns)).collect(),
                *filled_by,
            ),
            other => panic!("not a socket stall: {other:?}"),
        }
    }

    #[test]
    fn a_full_send_buffer_charges_the_streams_that_waited_and_names_the_filler() {
        let mut t = Timelines::new(TimelineConfig::default());
        let mut out = Vec::new();
        // Stream 5 was sent and acked before; stream 1 sends a big event
        // just before the stall (not acked when it starts); stream 3 writes
        // one during it, sent at its end; stream 9's event came from etcd
        // during the stall but was held inside the apiserver until after.
        t.on_etcd(4, 350);
        t.on_watch_event(7, event(5, "1", 10, 10, 100), None, &mut out);
        t.on_sent(7, 20, Some(100), &mut out);
        t.on_ack(7, 100, 30, &mut out);
        t.on_watch_event(7, event(1, "2", 90, 95, 60_000), None, &mut out);
        t.on_sent(7, 100, Some(60_100), &mut out);
        t.on_watch_event(7, event(3, "3", 150, 150, 500), None, &mut out);
        out.clear();
        t.on_socket_stall(7, 200, 500, stall_report(), &mut out);
        assert!(out.is_empty(), "held while it settles");
        t.on_sent(7, 520, Some(60_600), &mut out);
        t.on_watch_event(
            7,
            event(9, "4", 530, 530, 50),
            Some((530, Some(60_650))),
            &mut out,
        );
        t.on_ack(7, 60_650, 600, &mut out);
        let acked: Vec<_> = std::mem::take(&mut out);
        assert_eq!(
            timeline_of(&acked[1]).socket_buffer_wait_ns,
            300,
            "stream 3"
        );
        assert_eq!(
            timeline_of(&acked[2]).socket_buffer_wait_ns,
            150,
            "stream 9"
        );
        t.expire(500 + STALL_SETTLE_NS - 1, &mut out);
        assert!(out.is_empty());
        t.expire(500 + STALL_SETTLE_NS, &mut out);
        assert_eq!(out.len(), 1);
        // Stream 1's event was in the kernel before the stall but acked
        // only after it: it waited the whole stall too.
        assert_eq!(
            held_of(&out[0]),
            (vec![(1, 300), (3, 300), (9, 150)], Some(1))
        );
    }

    fn recent_streams(t: &Timelines, conn: u64) -> Vec<u32> {
        t.conns[&conn].recent.iter().map(|s| s.stream).collect()
    }

    #[test]
    fn acked_events_leave_the_recent_table_unless_an_open_stall_may_be_charged_with_them() {
        fn send(t: &mut Timelines, stream: u32, rv: &str, at: u64, seq: u32, acked_at: u64) {
            let mut out = Vec::new();
            t.on_watch_event(7, event(stream, rv, at, at, 100), None, &mut out);
            t.on_sent(7, at, Some(seq), &mut out);
            t.on_ack(7, seq, acked_at, &mut out);
        }
        let mut t = Timelines::new(TimelineConfig::default());
        let s = RECENT_KEEP_NS;
        // Acked at 1 s, then another acked 2 s later: the first is gone.
        send(&mut t, 1, "1", s, 100, s);
        send(&mut t, 3, "2", 3 * s, 200, 3 * s + 1);
        assert_eq!(recent_streams(&t, 7), [3]);
        // A stall opens at 4 s: what is acked from then on stays, however
        // long the stall lasts; what was acked before it goes.
        t.on_socket_stall_start(7, 4 * s);
        send(&mut t, 5, "3", 4 * s, 300, 5 * s);
        send(&mut t, 9, "4", 9 * s, 400, 9 * s);
        assert_eq!(recent_streams(&t, 7), [5, 9]);
        let mut out = Vec::new();
        t.on_socket_stall(7, 4 * s, 10 * s, stall_report(), &mut out);
        t.expire(10 * s + STALL_SETTLE_NS, &mut out);
        assert_eq!(held_of(&out[0]).0, [(5, s)], "stream 5 waited 4-5 s");
        // Closed: the next ack trims again.
        send(&mut t, 11, "5", 12 * s, 500, 12 * s);
        assert_eq!(recent_streams(&t, 7), [11]);
    }

    #[test]
    fn a_closing_connection_releases_its_stall_reports() {
        let mut t = Timelines::new(TimelineConfig::default());
        let mut out = Vec::new();
        t.on_watch_event(7, event(3, "3", 150, 150, 500), None, &mut out);
        t.on_socket_stall(7, 200, 500, stall_report(), &mut out);
        t.on_close(7, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(held_of(&out[0]), (vec![(3, 300)], None));
    }

    #[test]
    fn a_stream_window_stall_holds_only_its_stream() {
        let mut t = Timelines::new(TimelineConfig::default());
        let mut out = Vec::new();
        let held = t.on_window_stall(7, 100, 400, Some(3), &[1, 3, 5]);
        assert_eq!(held.len(), 1);
        assert_eq!((held[0].stream, held[0].delay_ns), (3, 300));
        let held = t.on_window_stall(7, 500, 600, None, &[1, 3]);
        assert_eq!(
            held.iter().map(|d| d.stream).collect::<Vec<_>>(),
            vec![1, 3]
        );
        // Events of stream 1 and 3 written after waiting since 50.
        t.on_etcd(9, 50);
        t.on_etcd(10, 50);
        t.on_watch_event(7, event(1, "9", 700, 700, 1), Some((700, None)), &mut out);
        t.on_watch_event(7, event(3, "10", 700, 700, 1), Some((700, None)), &mut out);
        assert_eq!(timeline_of(&out[0]).flow_control_wait_ns, 100);
        assert_eq!(timeline_of(&out[1]).flow_control_wait_ns, 400);
    }

    #[test]
    fn an_event_read_before_its_watch_opened_is_a_replay_not_a_delay() {
        let mut t = Timelines::new(TimelineConfig::default());
        let mut out = Vec::new();
        t.on_etcd(5, 500);
        t.on_etcd(6, 1_100);
        t.on_stream_open(7, 1, 1_000);
        t.on_watch_event(
            7,
            event(1, "5", 1_200, 1_200, 1),
            Some((1_200, None)),
            &mut out,
        );
        t.on_watch_event(
            7,
            event(1, "6", 1_300, 1_300, 1),
            Some((1_300, None)),
            &mut out,
        );
        let (old, live) = (timeline_of(&out[0]), timeline_of(&out[1]));
        assert!(old.replayed && old.t_source == Some(500));
        assert_eq!(old.apiserver_time_span_ns, None);
        assert!(!live.replayed);
        assert_eq!(live.apiserver_time_span_ns, Some(200));
    }
}
