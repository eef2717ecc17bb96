//! From a write to its watchers: the stage after the join, fed every
//! output event in order, that joins a mutating request the traced
//! apiserver served to the etcd call that committed it, and that revision
//! to every watch event carrying it.
//!
//! - A `request` line of a create, update, patch or delete opens an
//!   in-flight write.
//! - An `etcd_request` line writing a key (`txn`, `put`, `delete_range`)
//!   is matched to the in-flight write of that object: same resource,
//!   namespace and name (a create, whose path has no name, matches any
//!   name; the oldest create still uncommitted wins). Its revision and
//!   read time are the write's commit; a failed compare is a conflict (a
//!   retry follows).
//! - The `write` line, at the end of the writer's response, gets the
//!   commit filled in.
//! - Each served `watch_event` of a committed revision gets its writer,
//!   `t_committed` and the delays from it; the revision's watchers are
//!   counted, and a `write_fanout` line says how many it reached once no
//!   more can come (its events wait at most `PENDING_LIMIT_NS` for their
//!   ack, so a little after that). etcd notifies its watchers before it
//!   answers the write, so while a write is in flight, served watch events
//!   whose revision is not committed yet wait (at most [`HOLD_NS`], in
//!   order) for the commit.
//!
//! Bounded: in-flight writes and committed revisions have caps; the oldest
//! go first, counted (a revision evicted early writes its fan-out then).

use std::collections::VecDeque;

use foldhash::HashMap;
use tracer_common::record::Direction;

use super::{
    kinds::EtcdResult,
    output::{OutputEvent, WriteJoin},
    timeline::PENDING_LIMIT_NS,
};
use crate::etcd::{KvOp, parse_registry_key};

/// How long after its commit a revision waits for more watch events
/// before its fan-out is written: every event of it is written within
/// `PENDING_LIMIT_NS` of being sent.
pub(crate) const FANOUT_WINDOW_NS: u64 = PENDING_LIMIT_NS + 2_000_000_000;

/// Bounds.
const MAX_INFLIGHT: usize = 4096;
const MAX_COMMITS: usize = 1 << 16;
const MAX_HELD: usize = 1 << 14;
/// How long a served watch event waits for its revision's commit while a
/// write is in flight (on the events' clock).
const HOLD_NS: u64 = 100_000_000;

/// A mutating request being served.
struct Inflight {
    create: bool,
    /// The plural resource (no group: etcd keys carry none for built-ins).
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    client: String,
    t_request: u64,
    /// Its commit: revision, read time, the call's round trip, the name
    /// in its key.
    commit: Option<(i64, u64, Option<u64>, String)>,
    calls: u32,
    conflicts: u32,
}

/// A committed revision, waiting for its watch events.
struct Commit {
    resource: Option<String>,
    writer: String,
    t_request: u64,
    t_committed: u64,
    watchers: u32,
    t_last_acked: Option<u64>,
    etcd_watch_delay_ns: Option<i64>,
}

/// What the stage dropped at its caps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WritesStats {
    pub evicted_inflight: u64,
    pub evicted_commits: u64,
    /// Watch events written before their wait was over (the held queue
    /// was full).
    pub released_early: u64,
}

#[derive(Default)]
pub(crate) struct Writes {
    inflight: HashMap<(u64, u32), Inflight>,
    inflight_order: VecDeque<(u64, u32)>,
    commits: HashMap<i64, Commit>,
    /// Revisions in commit order, with their commit time.
    commit_order: VecDeque<(i64, u64)>,
    /// Served watch events waiting for the commit of their revision: etcd
    /// notifies its watchers before it answers the write (by microseconds
    /// to milliseconds), so an event can reach here before its commit.
    held: VecDeque<OutputEvent>,
    now: u64,
    stats: WritesStats,
}

impl Writes {
    pub(crate) fn stats(&self) -> WritesStats {
        self.stats
    }

    /// Takes `event` into account, fills it in, and emits it (and any
    /// fan-out now complete).
    pub(crate) fn on_event(&mut self, mut event: OutputEvent, emit: &mut impl FnMut(OutputEvent)) {
        match &mut event {
            OutputEvent::Request {
                ts,
                conn,
                stream,
                verb,
                resource,
                namespace,
                name,
                user_agent,
                ..
            } if matches!(verb.as_str(), "create" | "update" | "patch" | "delete") => {
                let plural = resource
                    .as_deref()
                    .unwrap_or_default()
                    .split('.')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let write = Inflight {
                    create: verb == "create",
                    plural,
                    namespace: namespace.clone(),
                    name: name.clone(),
                    client: user_agent
                        .as_deref()
                        .map_or_else(String::new, super::client_name),
                    t_request: *ts,
                    commit: None,
                    calls: 0,
                    conflicts: 0,
                };
                self.open(*conn, *stream, write);
            }
            OutputEvent::EtcdRequest {
                op,
                result,
                key: Some(key),
                revision,
                t_request,
                t_response,
                rtt_ns,
                ..
            } if *op != KvOp::Range => {
                self.on_etcd_write(key, *result, *revision, *t_request, *t_response, *rtt_ns);
            }
            OutputEvent::Write {
                conn,
                stream,
                name,
                t_committed,
                revision,
                etcd_rtt_ns,
                etcd_calls,
                etcd_conflicts,
                ..
            } => {
                if let Some(w) = self.inflight.remove(&(*conn, *stream)) {
                    *etcd_calls = w.calls;
                    *etcd_conflicts = w.conflicts;
                    if let Some((rev, t, rtt, key_name)) = w.commit {
                        *revision = Some(rev);
                        *t_committed = Some(t);
                        *etcd_rtt_ns = rtt;
                        name.get_or_insert(key_name);
                    }
                }
            }
            OutputEvent::StreamEnd { conn, stream, .. } => {
                self.inflight.remove(&(*conn, *stream));
            }
            _ => {}
        }
        self.now = self.now.max(event.ts());
        let served = matches!(
            event,
            OutputEvent::WatchEvent {
                direction: Direction::Egress,
                ..
            }
        );
        if served && self.held.is_empty() && self.inflight.is_empty() {
            // No write in flight: nothing to wait for.
            self.emit_watch_event(event, emit);
        } else if served {
            self.held.push_back(event);
            if self.held.len() > MAX_HELD {
                let oldest = self.held.pop_front().expect("not empty");
                self.stats.released_early += 1;
                self.emit_watch_event(oldest, emit);
            }
        } else {
            // A watch's or connection's end comes after its events.
            let ended = match &event {
                OutputEvent::StreamEnd { conn, stream, .. } => Some((*conn, Some(*stream))),
                OutputEvent::ConnClose { conn, .. } => Some((*conn, None)),
                _ => None,
            };
            if let Some((conn, stream)) = ended
                && !self.held.is_empty()
            {
                let (done, kept): (VecDeque<_>, VecDeque<_>) =
                    std::mem::take(&mut self.held).into_iter().partition(|e| {
                        matches!(e, OutputEvent::WatchEvent { conn: c, stream: s, .. }
                            if *c == conn && stream.is_none_or(|stream| *s == stream))
                    });
                self.held = kept;
                for held in done {
                    self.emit_watch_event(held, emit);
                }
            }
            emit(event);
        }
        self.release(emit);
        while let Some(&(rev, t)) = self.commit_order.front() {
            if t.saturating_add(FANOUT_WINDOW_NS) > self.now {
                break;
            }
            self.commit_order.pop_front();
            self.emit_fanout(rev, emit);
        }
    }

    /// Writes the held watch events that may go: in order, each once its
    /// revision is committed, or no write in flight can commit it, or it
    /// has waited [`HOLD_NS`].
    fn release(&mut self, emit: &mut impl FnMut(OutputEvent)) {
        if self.held.is_empty() {
            return;
        }
        let pending = self.inflight.values().any(|w| w.commit.is_none());
        while let Some(front) = self.held.front() {
            let OutputEvent::WatchEvent {
                resource_version,
                ts,
                ..
            } = front
            else {
                unreachable!("only served watch events are held")
            };
            let committed = resource_version
                .parse::<i64>()
                .is_ok_and(|rv| self.commits.contains_key(&rv));
            if !committed && pending && ts.saturating_add(HOLD_NS) > self.now {
                break;
            }
            let event = self.held.pop_front().expect("front exists");
            self.emit_watch_event(event, emit);
        }
    }

    /// A served watch event: joined to the write of its revision, if one
    /// committed it, and counted in its fan-out.
    fn emit_watch_event(&mut self, mut event: OutputEvent, emit: &mut impl FnMut(OutputEvent)) {
        if !self.commits.is_empty()
            && let OutputEvent::WatchEvent {
                resource_version,
                t_first_byte,
                timeline,
                ..
            } = &mut event
            && let Some(c) = resource_version
                .parse::<i64>()
                .ok()
                .and_then(|rv| self.commits.get_mut(&rv))
        {
            let delay = timeline.t_source.map(|s| s as i64 - c.t_committed as i64);
            c.watchers += 1;
            c.t_last_acked = c.t_last_acked.max(timeline.t_acked);
            c.etcd_watch_delay_ns = c.etcd_watch_delay_ns.or(delay);
            timeline.write = Some(WriteJoin {
                t_committed: c.t_committed,
                writer: c.writer.clone(),
                etcd_watch_delay_ns: delay,
                commit_to_send_ns: *t_first_byte as i64 - c.t_committed as i64,
                write_to_ack_ns: timeline.t_acked.map(|a| a.saturating_sub(c.t_request)),
            });
        }
        emit(event);
    }

    /// The input ended: every held event and every revision's fan-out, as
    /// they stand.
    pub(crate) fn finish(&mut self, emit: &mut impl FnMut(OutputEvent)) {
        while let Some(event) = self.held.pop_front() {
            self.emit_watch_event(event, emit);
        }
        while let Some((rev, _)) = self.commit_order.pop_front() {
            self.emit_fanout(rev, emit);
        }
        self.inflight.clear();
        self.inflight_order.clear();
    }

    fn open(&mut self, conn: u64, stream: u32, write: Inflight) {
        if self.inflight.len() >= MAX_INFLIGHT {
            while let Some(old) = self.inflight_order.pop_front() {
                if self.inflight.remove(&old).is_some() {
                    self.stats.evicted_inflight += 1;
                    break;
                }
            }
        }
        // Keys of writes already answered linger in the order: trimmed.
        if self.inflight_order.len() > 2 * MAX_INFLIGHT {
            self.inflight_order
                .retain(|k| self.inflight.contains_key(k));
        }
        self.inflight.insert((conn, stream), write);
        self.inflight_order.push_back((conn, stream));
    }

    fn on_etcd_write(
        &mut self,
        key: &str,
        result: EtcdResult,
        revision: Option<i64>,
        t_request: u64,
        t_response: Option<u64>,
        rtt_ns: Option<u64>,
    ) {
        let Some(object) = parse_registry_key(key) else {
            return;
        };
        // The writer: an in-flight write of this object begun before the
        // call (a named one first; else the oldest uncommitted create).
        let matches = |w: &Inflight| {
            w.plural == object.resource
                && w.namespace == object.namespace
                && w.t_request <= t_request
                && w.commit.is_none()
        };
        let named = self
            .inflight
            .iter()
            .filter(|(_, w)| matches(w) && w.name.as_deref() == Some(&object.name))
            .min_by_key(|(_, w)| w.t_request)
            .map(|(k, _)| *k);
        let found = named.or_else(|| {
            self.inflight
                .iter()
                .filter(|(_, w)| matches(w) && w.create && w.name.is_none())
                .min_by_key(|(_, w)| w.t_request)
                .map(|(k, _)| *k)
        });
        let Some(w) = found.and_then(|k| self.inflight.get_mut(&k)) else {
            return;
        };
        w.calls += 1;
        match (result, revision, t_response) {
            (EtcdResult::Conflict, ..) => w.conflicts += 1,
            (EtcdResult::Ok, Some(rev), Some(t)) => {
                w.commit = Some((rev, t, rtt_ns, object.name.clone()));
                let commit = Commit {
                    resource: Some(object.resource.clone()),
                    writer: w.client.clone(),
                    t_request: w.t_request,
                    t_committed: t,
                    watchers: 0,
                    t_last_acked: None,
                    etcd_watch_delay_ns: None,
                };
                self.commit(rev, t, commit);
            }
            _ => {}
        }
    }

    fn commit(&mut self, rev: i64, t: u64, commit: Commit) {
        if self.commits.len() >= MAX_COMMITS
            && let Some((old, _)) = self.commit_order.pop_front()
        {
            // Written now, with the watchers it has: counted as evicted.
            self.commits.remove(&old);
            self.stats.evicted_commits += 1;
        }
        if self.commits.insert(rev, commit).is_none() {
            self.commit_order.push_back((rev, t));
        }
    }

    fn emit_fanout(&mut self, rev: i64, emit: &mut impl FnMut(OutputEvent)) {
        let Some(c) = self.commits.remove(&rev) else {
            return;
        };
        emit(OutputEvent::WriteFanout {
            ts: self.now.max(c.t_committed),
            revision: rev,
            resource: c.resource,
            writer: c.writer,
            t_committed: c.t_committed,
            watchers: c.watchers,
            t_last_acked: c.t_last_acked,
            commit_to_last_ack_ns: c.t_last_acked.map(|a| a.saturating_sub(c.t_committed)),
            etcd_watch_delay_ns: c.etcd_watch_delay_ns,
        });
    }
}
