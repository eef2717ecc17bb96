//! The live model: aggregates the pipeline's [`OutputEvent`]s into what
//! `top` shows ([`Snapshot`]) and what `/metrics` exports ([`Families`] and
//! the gauges below). Pure: fed events, asked for views; no clocks, no I/O.
//! Its clock is the newest event's `ts` (or [`Model::advance`]), so a
//! replay gives the same figures as the live run did.
//!
//! [`OutputEvent`]: crate::pipeline::OutputEvent

mod capture;
mod conn;
mod count_histogram;
mod delivery;
mod families;
mod histogram;
mod labels;
mod rolling;
mod snapshot;
mod stall_log;
mod stream;
mod table;
mod window;

use std::collections::BTreeMap;

pub use capture::{CaptureFigures, ProbeFigures};
pub use count_histogram::{COUNT_BUCKETS, CountHistogram};
pub use families::{EventKey, Families, RequestKey};
pub use histogram::{BUCKETS_S, Buckets, Histogram};
pub use labels::{OTHER, UNKNOWN};
pub use snapshot::{ConnRow, Delay, Snapshot, StallRow, Totals, WatchRow};

use self::{
    conn::ConnState,
    delivery::DelayWindow,
    families::add,
    labels::{Label, LabelSet, program_name},
    rolling::RollingSum,
    stall_log::StallLog,
    stream::{RV_UNKNOWN, StreamFigures},
    table::Table,
    window::Window,
};
use tracer_common::record::Direction;

use crate::pipeline::{
    Ending, OutputEvent, Role, StallCause, StallScope, StreamDelay, Timeline, direction_name,
};

const SECOND_NS: u64 = 1_000_000_000;
const MINUTE_NS: u64 = 60 * SECOND_NS;

/// The event types a watch sends; anything else is labelled `other`.
const EVENT_TYPES: [&str; 5] = ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"];

/// Bounds and thresholds.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    pub max_connections: usize,
    pub max_streams: usize,
    /// Lines kept in the stall log.
    pub max_stall_log: usize,
    /// Distinct `client` label values before `other`.
    pub max_clients: usize,
    /// Distinct `resource` label values before `other`.
    pub max_resources: usize,
    /// Distinct ERROR `code` label values before `other`.
    pub max_error_codes: usize,
    /// Samples in the last-minute ApiserverTimeSpan window (all watches).
    pub window_samples: usize,
    /// Samples in each watch's last-minute windows.
    pub watch_window_samples: usize,
    /// The objective: P99 ApiserverTimeSpan over the last minute below this.
    pub slo_ns: u64,
    /// A watch that lasted within this of its `timeoutSeconds` ended on
    /// time, not forced (the server's timer and our stamps differ a little).
    pub timeout_slack_ns: u64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_streams: 65_536,
            max_stall_log: 256,
            max_clients: 64,
            max_resources: 256,
            max_error_codes: 32,
            window_samples: 65_536,
            watch_window_samples: 1024,
            slo_ns: SECOND_NS,
            timeout_slack_ns: SECOND_NS,
        }
    }
}

/// The aggregate of every event seen.
#[derive(Debug)]
pub struct Model {
    config: ModelConfig,
    /// Newest event time (Unix epoch ns).
    now: u64,
    conns: Table<u64, ConnState>,
    streams: Table<(u64, u32), StreamFigures>,
    clients: LabelSet,
    resources: LabelSet,
    error_codes: LabelSet,
    stall_log: StallLog,
    /// Stalls begun and not yet ended: (conn, cause, stream) -> start.
    open_stalls: BTreeMap<(Option<u64>, &'static str, Option<u32>), u64>,
    families: Families,
    /// ApiserverTimeSpan of every watch event over the last minute.
    apiserver_ns: Window,
    /// Delivery (source, or first byte, to ack; a lower bound when no
    /// ack came in time) of every served watch event over the last
    /// minute, and per client label (bounded by the client label set):
    /// its last minute for `top`, its histogram since start for
    /// `/metrics`, one lookup per event.
    delivery_ns: DelayWindow,
    client_delivery: BTreeMap<Label, (DelayWindow, Histogram)>,
    events: RollingSum,
    bytes: RollingSum,
    stalls_min: RollingSum,
    stall_ns_min: RollingSum,
    lists_min: RollingSum,
    /// Latency samples dropped from the windows of streams that ended.
    ended_window_evictions: u64,
    capture: CaptureFigures,
}

impl Model {
    pub fn new(config: ModelConfig) -> Self {
        Self {
            conns: Table::new(config.max_connections),
            streams: Table::new(config.max_streams),
            clients: LabelSet::new(config.max_clients),
            resources: LabelSet::new(config.max_resources),
            error_codes: LabelSet::new(config.max_error_codes),
            stall_log: StallLog::new(config.max_stall_log),
            open_stalls: BTreeMap::new(),
            apiserver_ns: Window::new(MINUTE_NS, config.window_samples),
            delivery_ns: DelayWindow::new(config.window_samples),
            client_delivery: BTreeMap::new(),
            config,
            now: 0,
            families: Families::with_known_labels(),
            events: RollingSum::smoothed_rate(),
            bytes: RollingSum::smoothed_rate(),
            stalls_min: RollingSum::per_minute(),
            stall_ns_min: RollingSum::per_minute(),
            lists_min: RollingSum::per_minute(),
            ended_window_evictions: 0,
            capture: CaptureFigures::default(),
        }
    }

    /// Stalls going on now, by cause: how many, and their seconds so far
    /// (every known cause, 0 when none).
    pub fn ongoing_stalls(&self) -> BTreeMap<&'static str, (u64, f64)> {
        let mut out: BTreeMap<&'static str, (u64, f64)> =
            STALL_CAUSES.iter().map(|c| (*c, (0, 0.0))).collect();
        for ((_, cause, _), start) in &self.open_stalls {
            let entry = out.entry(cause).or_default();
            entry.0 += 1;
            entry.1 += self.now.saturating_sub(*start) as f64 / 1e9;
        }
        out
    }

    /// Each client's delivery histogram since start
    /// (`watchtrace_delivery_seconds`).
    pub fn delivery_by_client(&self) -> impl Iterator<Item = (&str, &Histogram)> {
        self.client_delivery
            .iter()
            .map(|(client, (_, h))| (client.as_ref(), h))
    }

    /// Open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// The model's clock: the newest event time, or a later one given to
    /// [`Model::advance`].
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Moves the clock forward without an event, so rates fall to zero
    /// while nothing happens (the live agent calls it every second with the
    /// wall clock; a replay need not). Never moves it back.
    pub fn advance(&mut self, now: u64) {
        self.now = self.now.max(now);
        self.apiserver_ns.trim(self.now);
        self.delivery_ns.trim(self.now);
        for (w, _) in self.client_delivery.values_mut() {
            w.trim(self.now);
        }
    }

    /// The capture's own figures (replaces the previous ones).
    pub fn set_capture(&mut self, figures: CaptureFigures) {
        self.capture = figures;
    }

    pub fn capture(&self) -> &CaptureFigures {
        &self.capture
    }

    /// The counters and histograms since start.
    pub fn families(&self) -> &Families {
        &self.families
    }

    /// P99 ApiserverTimeSpan over the last minute, when any event had one.
    pub fn apiserver_p99_ns(&self) -> Option<u64> {
        self.apiserver_ns.quantile(self.now, 0.99)
    }

    /// Open connections by client label (`unknown` before any request).
    pub fn connections_by_client(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (_, c) in self.conns.iter() {
            let client = c.client.as_deref().unwrap_or(UNKNOWN);
            add(&mut out, client.to_owned(), 1);
        }
        out
    }

    /// Open watch streams by client label.
    pub fn watch_streams_by_client(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (_, s) in self.streams.iter().filter(|(_, s)| s.watch) {
            add(&mut out, s.client.to_string(), 1);
        }
        out
    }

    /// Entries dropped from each bounded table (label sets count the
    /// values folded into `other`).
    pub fn evictions(&self) -> BTreeMap<&'static str, u64> {
        let stream_windows: u64 = self
            .streams
            .iter()
            .map(|(_, s)| s.apiserver_ns.evicted() + s.delay_ns.evicted())
            .sum();
        BTreeMap::from([
            ("connections", self.conns.evicted()),
            ("streams", self.streams.evicted()),
            ("stall_log", self.stall_log.evicted()),
            ("client_labels", self.clients.folded()),
            ("resource_labels", self.resources.folded()),
            ("error_code_labels", self.error_codes.folded()),
            (
                "latency_samples",
                self.apiserver_ns.evicted() + stream_windows + self.ended_window_evictions,
            ),
        ])
    }

    /// Takes one event into account.
    pub fn on_event(&mut self, event: &OutputEvent) {
        let ts = event_ts(event);
        self.now = self.now.max(ts);
        match event {
            OutputEvent::ConnOpen {
                conn,
                pid,
                comm,
                peer,
                tls,
                ..
            } => {
                let mut state = ConnState::new();
                state.pid = *pid;
                state.comm.clone_from(comm);
                state.peer.clone_from(peer);
                state.tls = *tls;
                if let Some((gone, _)) = self.conns.insert(*conn, ts, state) {
                    self.drop_streams_of(gone, true);
                }
            }
            OutputEvent::ConnAddress { conn, peer, .. } => {
                self.conn(*conn, ts).peer = Some(peer.clone());
            }
            OutputEvent::ConnClose { conn, .. } => {
                self.conns.remove(conn);
                self.drop_streams_of(*conn, false);
            }
            OutputEvent::ConnSample {
                conn,
                bytes_out,
                bytes_in,
                unacked_bytes,
                srtt_ns,
                ..
            } => {
                let now = self.now;
                let c = self.conn(*conn, ts);
                c.tx.add(ts, bytes_out.saturating_sub(c.last_bytes_out), now);
                c.rx.add(ts, bytes_in.saturating_sub(c.last_bytes_in), now);
                c.last_bytes_out = c.last_bytes_out.max(*bytes_out);
                c.last_bytes_in = c.last_bytes_in.max(*bytes_in);
                // A sample without them (the socket's info was not read)
                // keeps the last known values: no `0`/`-` flicker.
                if unacked_bytes.is_some() {
                    c.unacked_bytes = *unacked_bytes;
                }
                if srtt_ns.is_some() {
                    c.srtt_ns = *srtt_ns;
                }
            }
            OutputEvent::Settings {
                conn,
                sender,
                max_concurrent_streams,
                ..
            } => {
                let c = self.conn(*conn, ts);
                if *sender == Role::Server && max_concurrent_streams.is_some() {
                    c.max_concurrent_streams = *max_concurrent_streams;
                }
            }
            OutputEvent::Request {
                conn,
                stream,
                verb,
                resource,
                namespace,
                watch,
                resource_version_kind,
                timeout_seconds,
                user_agent,
                send_initial_events,
                ..
            } => {
                // A watch-list request (KEP-3157) is counted apart: its
                // initial events are a LIST streamed.
                let verb = if *watch && *send_initial_events == Some(true) {
                    "watchlist"
                } else {
                    verb.as_str()
                };
                let client = match user_agent {
                    Some(ua) => Some(self.clients.label(program_name(ua))),
                    None => None,
                };
                let c = self.conn(*conn, ts);
                if client.is_some() {
                    c.client.clone_from(&client);
                }
                // No user-agent on this request: the connection's client
                // is still the one program that opened it.
                let client = client
                    .or_else(|| c.client.clone())
                    .unwrap_or_else(|| self.clients.unknown());
                if matches!(verb, "list" | "watch" | "watchlist") {
                    add(
                        &mut self.families.requests,
                        (
                            verb.to_owned(),
                            resource_version_kind.as_str().to_owned(),
                            client.to_string(),
                        ),
                        1,
                    );
                }
                if verb == "list" {
                    self.lists_min.add(ts, 1, self.now);
                }
                let mut s = StreamFigures::new(ts, client, self.config.watch_window_samples);
                s.watch = *watch;
                s.request_seen = true;
                s.timeout_seconds = *timeout_seconds;
                s.resource = match resource {
                    Some(r) => self.resources.label(r),
                    None => "".into(),
                };
                // Empty stays "not known" (no request seen); a request
                // without a namespace spans them all.
                s.namespace = namespace.clone().unwrap_or_else(|| "(all)".to_owned());
                s.rv_kind = resource_version_kind.as_str().to_owned();
                if let Some((_, old)) = self.streams.insert((*conn, *stream), ts, s) {
                    self.ended_window_evictions += window_evictions(&old);
                }
            }
            OutputEvent::WatchEvent {
                conn,
                stream,
                resource,
                event_type,
                resource_version,
                error_code,
                bytes,
                timeline,
                t_first_byte,
                direction,
                ..
            } => self.on_watch_event(
                (*conn, *stream),
                ts,
                WatchEventRef {
                    resource,
                    event_type,
                    resource_version,
                    error_code: *error_code,
                    bytes: *bytes,
                    t_first_byte: *t_first_byte,
                    timeline,
                    received: *direction == Direction::Ingress,
                },
            ),
            OutputEvent::StreamEnd {
                conn,
                stream,
                how,
                by,
                ..
            } => self.on_stream_end((*conn, *stream), ts, *how, *by),
            OutputEvent::Gap { direction, len, .. } => {
                add(
                    &mut self.families.lost_bytes,
                    direction_name(*direction).to_owned(),
                    *len,
                );
            }
            OutputEvent::SocketStall {
                conn,
                cause,
                duration_ns,
                client,
                peer,
                held,
                filled_by,
                flaps,
                ..
            } => {
                let client = client.as_deref().map(|c| self.clients.label(c));
                self.on_stall(Stall {
                    ts,
                    conn: *conn,
                    cause: cause.as_str(),
                    stream: None,
                    duration_ns: *duration_ns,
                    flaps: *flaps,
                    client,
                    peer: peer.clone(),
                    held,
                    filled_by: *filled_by,
                });
            }
            OutputEvent::WindowStall {
                conn,
                scope,
                stream,
                duration_ns,
                flaps,
                held,
                ..
            } => self.on_stall(Stall {
                ts,
                conn: Some(*conn),
                cause: match scope {
                    StallScope::Connection => StallCause::ConnectionWindow.as_str(),
                    StallScope::Stream => StallCause::StreamWindow.as_str(),
                },
                stream: *stream,
                duration_ns: *duration_ns,
                flaps: *flaps,
                client: None,
                peer: None,
                held,
                filled_by: None,
            }),
            OutputEvent::StallStart {
                conn,
                cause,
                stream,
                ..
            } => {
                // Bounded like the stall log: the oldest open one goes.
                if self.open_stalls.len() >= self.config.max_stall_log
                    && let Some(oldest) = self
                        .open_stalls
                        .iter()
                        .min_by_key(|(_, t)| **t)
                        .map(|(k, _)| *k)
                {
                    self.open_stalls.remove(&oldest);
                }
                self.open_stalls
                    .insert((*conn, cause.as_str(), *stream), ts);
            }
            OutputEvent::WatchListSynced {
                resource,
                duration_ns,
                ..
            } => {
                let resource = self.resources.label(resource);
                self.families
                    .watch_list_initial
                    .entry(resource)
                    .or_default()
                    .observe_ns(*duration_ns);
            }
            OutputEvent::ListResponse {
                conn,
                resource,
                resource_version_kind,
                user_agent,
                status,
                encoding,
                wire_bytes,
                decoded_bytes,
                duration_ns,
                ..
            } => {
                let client = match user_agent {
                    Some(ua) => self.clients.label(program_name(ua)),
                    None => self
                        .conns
                        .get(conn)
                        .and_then(|c| c.client.clone())
                        .unwrap_or_else(|| self.clients.unknown()),
                };
                let resource = self
                    .resources
                    .label(resource.as_deref().unwrap_or_default());
                let encoding = encoding.as_str();
                let key = (
                    resource.clone(),
                    client,
                    resource_version_kind.as_str(),
                    encoding,
                    *status,
                );
                add(&mut self.families.list_responses, key, 1);
                let f = &mut self.families;
                add(&mut f.list_bytes, (resource.clone(), encoding), *wire_bytes);
                if let Some(decoded) = decoded_bytes {
                    add(
                        &mut f.list_decoded_bytes,
                        (resource.clone(), encoding),
                        *decoded,
                    );
                }
                f.list_duration
                    .entry(resource)
                    .or_default()
                    .observe_ns(*duration_ns);
            }
            OutputEvent::EtcdRequest {
                op, result, rtt_ns, ..
            } => {
                let f = &mut self.families;
                add(&mut f.etcd_requests, (op.as_str(), result.as_str()), 1);
                if let Some(ns) = rtt_ns {
                    f.etcd_request_seconds
                        .entry(op.as_str())
                        .or_default()
                        .observe_ns(*ns);
                }
            }
            OutputEvent::Undecodable {
                layer,
                reason,
                bytes,
                ..
            } => {
                add(&mut self.families.undecodable, (*layer, *reason), 1);
                add(
                    &mut self.families.undecodable_bytes,
                    (*layer, *reason),
                    *bytes,
                );
            }
            OutputEvent::Write {
                resource,
                verb,
                client,
                status,
                ..
            } => {
                let resource = self
                    .resources
                    .label(resource.as_deref().unwrap_or_default());
                let client = self.clients.label(client.as_deref().unwrap_or(UNKNOWN));
                let code = status.map_or_else(|| "unknown".to_owned(), |s| s.to_string());
                add(
                    &mut self.families.writes,
                    (resource, verb.clone(), client, code),
                    1,
                );
            }
            OutputEvent::WriteFanout {
                resource,
                watchers,
                etcd_watch_delay_ns,
                ..
            } => {
                let resource = self
                    .resources
                    .label(resource.as_deref().unwrap_or_default());
                let f = &mut self.families;
                f.watch_fanout.observe(u64::from(*watchers));
                if let Some(ns) = etcd_watch_delay_ns {
                    f.etcd_watch_delay
                        .entry(resource)
                        .or_default()
                        .observe_ns((*ns).max(0) as u64);
                }
            }
            OutputEvent::EtcdEvent { .. } | OutputEvent::HpackKnown { .. } => {}
        }
    }

    /// The connection `id`, created if unseen (its `conn_open` may predate
    /// a table eviction).
    fn conn(&mut self, id: u64, ts: u64) -> &mut ConnState {
        if let Some((gone, _)) = self.conns.ensure(&id, ts, ConnState::new) {
            self.drop_streams_of(gone, true);
        }
        self.conns.touch(&id, ts).expect("just ensured")
    }

    /// Forgets a connection's streams (it closed, or was evicted).
    fn drop_streams_of(&mut self, conn: u64, evicted: bool) {
        let n = self.streams.remove_range((conn, 0)..=(conn, u32::MAX));
        if evicted {
            self.streams.count_evicted(n as u64);
        }
    }

    fn on_watch_event(&mut self, key: (u64, u32), ts: u64, e: WatchEventRef<'_>) {
        let now = self.now;
        let resource = self.resources.label(e.resource);
        let conn_client = self.conn(key.0, ts).client.clone();
        let unknown = self.clients.unknown();
        let window_samples = self.config.watch_window_samples;
        let evicted = self.streams.ensure(&key, ts, || {
            // A watch opened before we attached: no request, so its
            // client is the connection's, if another request named it.
            let mut s = StreamFigures::new(ts, conn_client.unwrap_or(unknown), window_samples);
            s.resource.clone_from(&resource);
            s.rv_kind = RV_UNKNOWN.to_owned();
            s
        });
        if let Some((_, old)) = evicted {
            self.ended_window_evictions += window_evictions(&old);
        }
        let s = self.streams.touch(&key, ts).expect("just ensured");
        s.watch = true;
        let client = s.client.clone();
        s.events.add(ts, 1, now);
        s.bytes.add(ts, e.bytes, now);
        // Reuses the buffer: one allocation less per event.
        s.last_resource_version.clear();
        s.last_resource_version.push_str(e.resource_version);
        if let Some(w) = &e.timeline.write {
            if s.last_writer.as_deref() != Some(w.writer.as_str()) {
                s.last_writer = Some(w.writer.clone());
            }
            s.last_etcd_watch_delay_ns = w.etcd_watch_delay_ns;
        }
        if e.received {
            // The traced process read it as a client (the apiserver
            // proxying an aggregated API's watch, or a traced controller):
            // not an event it served, so none of the served-event families
            // or totals, and no timeline to judge.
            add(&mut self.families.watch_events_received, resource, 1);
            return;
        }
        let t = e.timeline;
        if let Some(span) = t.apiserver_time_span_ns {
            s.apiserver_ns.push(ts, span, now);
        }
        // Acknowledged: its delay. Not acknowledged within the deadline:
        // how long it had waited then, a lower bound (a client that stops
        // reading must show as late while it does, not once it resumes).
        let delay = match (t.t_acked, t.unacked_after_ns) {
            (Some(acked), _) => Some(acked.saturating_sub(t.t_source.unwrap_or(e.t_first_byte))),
            (None, waited) => waited,
        };
        if let Some(delay) = delay
            && !t.replayed
        {
            let lower_bound = t.t_acked.is_none();
            s.delay_ns.push(ts, delay, lower_bound, now);
            self.delivery_ns.push(ts, delay, lower_bound, now);
            let samples = self.config.window_samples / 16;
            let (window, histogram) = self
                .client_delivery
                .entry(client.clone())
                .or_insert_with(|| (DelayWindow::new(samples), Histogram::default()));
            window.push(ts, delay, lower_bound, now);
            histogram.observe_ns(delay);
        }

        let event_type: &'static str = EVENT_TYPES
            .iter()
            .find(|t| **t == e.event_type)
            .copied()
            .unwrap_or(OTHER);
        let f = &mut self.families;
        add(
            &mut f.watch_events,
            (resource.clone(), event_type, client.clone()),
            1,
        );
        add(
            &mut f.watch_event_bytes,
            (resource.clone(), client),
            e.bytes,
        );
        match event_type {
            "BOOKMARK" => add(&mut f.bookmarks, resource.clone(), 1),
            "ERROR" => {
                let code = match e.error_code {
                    Some(c) => self.error_codes.label(&c.to_string()),
                    None => self.error_codes.unknown(),
                };
                add(&mut f.watch_errors, (resource.clone(), code), 1);
            }
            _ => {}
        }
        if let Some(span) = t.apiserver_time_span_ns {
            f.apiserver_time_span
                .entry(resource.clone())
                .or_default()
                .observe_ns(span);
            self.apiserver_ns.push(ts, span, now);
        }
        if let Some(q) = t.socket_queue_ns {
            f.socket_queue
                .entry(resource.clone())
                .or_default()
                .observe_ns(q);
        }
        if let Some(w) = t.wire_client_ns {
            f.wire_client
                .entry(resource.clone())
                .or_default()
                .observe_ns(w);
        }
        if let Some(ns) = t.write.as_ref().and_then(|w| w.write_to_ack_ns) {
            f.write_to_ack
                .entry(resource.clone())
                .or_default()
                .observe_ns(ns);
        }
        if t.replayed {
            // The watch's initial state, not a delivery: no timeline to
            // judge.
            add(&mut f.initial_events, resource.clone(), 1);
        } else {
            for missing in &t.missing {
                add(
                    &mut f.timeline_incomplete,
                    (resource.clone(), missing.as_str()),
                    1,
                );
            }
        }
        self.events.add(ts, 1, now);
        self.bytes.add(ts, e.bytes, now);
    }

    fn on_stream_end(&mut self, key: (u64, u32), ts: u64, how: Ending, by: Option<Role>) {
        if how == Ending::Goaway {
            let c = self.conn(key.0, ts);
            if c.last_goaway_ts != Some(ts) {
                c.last_goaway_ts = Some(ts);
                self.families.goaways += 1;
            }
        }
        let Some(s) = self.streams.remove(&key) else {
            return;
        };
        self.ended_window_evictions += window_evictions(&s);
        // The server ended it: END_STREAM on a watch response only comes
        // from the server (the client's came with the request), and a
        // reset or GOAWAY says who sent it. A closed connection says
        // nothing about who closed it, and eviction is ours.
        let by_server = match how {
            Ending::EndStream => true,
            Ending::RstStream | Ending::Goaway => by == Some(Role::Server),
            Ending::ConnectionClosed | Ending::Evicted => false,
        };
        // Only watches whose request we saw: the timeout of an older one
        // is unknown, so its end may have been on time.
        if !(s.watch && s.request_seen && by_server) {
            return;
        }
        let early = match s.timeout_seconds {
            Some(t) if t > 0 => {
                let lasted = ts.saturating_sub(s.opened);
                lasted.saturating_add(self.config.timeout_slack_ns)
                    < (t as u64).saturating_mul(SECOND_NS)
            }
            // Without a timeout the client meant to watch until it chose to stop.
            _ => true,
        };
        if early {
            add(&mut self.families.forced_closes, s.client.to_string(), 1);
        }
    }

    fn on_stall(&mut self, stall: Stall<'_>) {
        let now = self.now;
        let conn = stall.conn.map(|c| self.conn(c, stall.ts).clone());
        let client = stall
            .client
            .or_else(|| conn.as_ref().and_then(|c| c.client.clone()));
        let peer = stall
            .peer
            .or_else(|| conn.as_ref().and_then(|c| c.peer.clone()));
        self.open_stalls
            .remove(&(stall.conn, stall.cause, stall.stream));
        if let Some(id) = stall.conn {
            self.conn(id, stall.ts)
                .stall_ns
                .add(stall.ts, stall.duration_ns, now);
        }
        let f = &mut self.families;
        add(&mut f.stalls, stall.cause.to_owned(), 1);
        add(&mut f.stall_ns, stall.cause.to_owned(), stall.duration_ns);
        for h in stall.held {
            // The held stream's own client, else the stall's.
            let who = stall
                .conn
                .and_then(|c| self.streams.get(&(c, h.stream)))
                .map(|s| s.client.to_string())
                .or_else(|| client.as_deref().map(str::to_owned))
                .unwrap_or_else(|| UNKNOWN.to_owned());
            add(
                &mut f.stall_delay_ns,
                (stall.cause.to_owned(), who),
                h.delay_ns,
            );
        }
        self.stalls_min.add(stall.ts, 1, now);
        self.stall_ns_min.add(stall.ts, stall.duration_ns, now);
        self.stall_log.push(StallRow {
            ts: stall.ts,
            conn: stall.conn,
            cause: stall.cause.to_owned(),
            stream: stall.stream,
            duration_ns: stall.duration_ns,
            flaps: stall.flaps,
            ongoing: false,
            client: client.as_deref().map(str::to_owned),
            peer,
            held: stall.held.iter().map(|h| (h.stream, h.delay_ns)).collect(),
            filled_by: stall.filled_by,
        });
    }

    /// The live view now.
    pub fn snapshot(&self) -> Snapshot {
        let now = self.now;
        let p99 = self.apiserver_p99_ns();
        let mut per_conn: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
        let mut watches = Vec::new();
        for (&(conn, stream), s) in self.streams.iter() {
            let counts = per_conn.entry(conn).or_default();
            counts.0 += 1;
            if !s.watch {
                continue;
            }
            counts.1 += 1;
            watches.push(WatchRow {
                conn,
                stream,
                resource: s.resource.to_string(),
                namespace: s.namespace.clone(),
                client: Some(s.client.to_string()).filter(|c| c != UNKNOWN),
                resource_version_kind: s.rv_kind.clone(),
                events_per_s: s.events.rate(now),
                bytes_per_s: s.bytes.rate(now),
                last_resource_version: s.last_resource_version.clone(),
                p99_apiserver_ns: s.apiserver_ns.quantile(now, 0.99),
                p99_delay: s.delay_ns.p99(now),
                last_writer: s.last_writer.clone(),
                last_etcd_watch_delay_ns: s.last_etcd_watch_delay_ns,
            });
        }
        // A connection's worst watch; "at least" if any of its watches is
        // (that one's true delay may be the worst).
        let mut conn_delay: BTreeMap<u64, Delay> = BTreeMap::new();
        for w in &watches {
            if let Some(d) = w.p99_delay {
                let worst = conn_delay.entry(w.conn).or_default();
                worst.ns = worst.ns.max(d.ns);
                worst.at_least |= d.at_least;
            }
        }
        let connections = self
            .conns
            .iter()
            .map(|(&conn, c)| {
                let (streams, watches) = per_conn.get(&conn).copied().unwrap_or_default();
                let ongoing = self
                    .open_stalls
                    .iter()
                    .filter(|((c, _, _), _)| *c == Some(conn))
                    .min_by_key(|(_, start)| **start);
                ConnRow {
                    conn,
                    pid: c.pid,
                    comm: c.comm.clone(),
                    peer: c.peer.clone(),
                    client: c.client.as_deref().map(str::to_owned),
                    tls: c.tls,
                    streams,
                    watches,
                    tx_bytes_per_s: c.tx.rate(now),
                    rx_bytes_per_s: c.rx.rate(now),
                    unacked_bytes: c.unacked_bytes,
                    srtt_ns: c.srtt_ns,
                    // Ended stalls of the last minute, plus the longest
                    // going on.
                    stall_ns_last_min: c.stall_ns.sum(now)
                        + ongoing.map_or(0, |(_, &start)| {
                            now.saturating_sub(start).min(60 * SECOND_NS)
                        }),
                    stall_ongoing: ongoing.map(|((_, cause, _), _)| (*cause).to_owned()),
                    p99_delay: conn_delay.get(&conn).copied(),
                    max_concurrent_streams: c.max_concurrent_streams,
                }
            })
            .collect();
        Snapshot {
            now,
            totals: Totals {
                events_per_s: self.events.rate(now),
                bytes_per_s: self.bytes.rate(now),
                connections: self.conns.len(),
                watches: watches.len(),
                apiserver_p99_ns: p99,
                apiserver_events_last_min: self.apiserver_ns.count(now),
                slo_met: p99.map(|p| p < self.config.slo_ns),
                delivery_p99: self.delivery_ns.p99(now),
                delivery_events_last_min: self.delivery_ns.count(now),
                worst_client: self
                    .client_delivery
                    .iter()
                    .filter_map(|(client, (w, _))| Some((client.to_string(), w.p99(now)?)))
                    .max_by(|a, b| a.1.ns.cmp(&b.1.ns).then_with(|| b.0.cmp(&a.0))),
                stalls_last_min: self.stalls_min.sum(now),
                stall_ns_last_min: self.stall_ns_min.sum(now),
                stalls_ongoing: self.open_stalls.len(),
                lost_bytes: self.families.lost_bytes.values().sum(),
                lists_last_min: self.lists_min.sum(now),
            },
            connections,
            watches,
            // Ongoing stalls first (newest first), then the log.
            stalls: {
                let mut open: Vec<StallRow> = self
                    .open_stalls
                    .iter()
                    .map(|(&(conn, cause, stream), &start)| {
                        let c = conn.and_then(|id| self.conns.get(&id));
                        StallRow {
                            ts: now,
                            ongoing: true,
                            conn,
                            cause: cause.to_owned(),
                            stream,
                            duration_ns: now.saturating_sub(start),
                            flaps: 0,
                            client: c.and_then(|c| c.client.as_deref().map(str::to_owned)),
                            peer: c.and_then(|c| c.peer.clone()),
                            held: Vec::new(),
                            filled_by: None,
                        }
                    })
                    .collect();
                open.sort_by_key(|r| std::cmp::Reverse(r.duration_ns));
                open.extend(self.stall_log.rows().cloned());
                open
            },
        }
    }
}

/// The parts of a `watch_event` the model reads.
struct WatchEventRef<'a> {
    resource: &'a str,
    event_type: &'a str,
    resource_version: &'a str,
    error_code: Option<i32>,
    bytes: u64,
    t_first_byte: u64,
    timeline: &'a Timeline,
    /// Direction `in`: the traced process received it.
    received: bool,
}

/// A socket or window stall, as the model reads it.
struct Stall<'a> {
    ts: u64,
    conn: Option<u64>,
    cause: &'static str,
    stream: Option<u32>,
    duration_ns: u64,
    flaps: u32,
    /// Client label, when the event named one.
    client: Option<Label>,
    peer: Option<String>,
    held: &'a [StreamDelay],
    filled_by: Option<u32>,
}

fn window_evictions(s: &StreamFigures) -> u64 {
    s.apiserver_ns.evicted() + s.delay_ns.evicted()
}

fn event_ts(event: &OutputEvent) -> u64 {
    event.ts()
}

/// Every stall cause, as labels spell them.
pub(crate) const STALL_CAUSES: [&str; 4] = [
    "send_buffer_full",
    "peer_zero_window",
    "connection_window",
    "stream_window",
];

#[cfg(test)]
mod tests;
