//! The columns of each tab: title, width, cell text and sort order, and
//! what a filter matches. Pure: the app sorts and filters with these, the
//! renderer draws with them, so a column's text and its order cannot drift
//! apart.

use std::cmp::Ordering;

use crate::model::{ConnRow, Delay, StallRow, WatchRow};

use super::format::{clock, delay, duration_ns, or_dash, si};

/// The model's resource-version kind of a watch whose request was not seen.
const RV_UNKNOWN: &str = "unknown";

/// One column of a table.
pub(crate) struct Column<R: 'static> {
    pub title: &'static str,
    /// Width in cells; the last column of a tab takes what is left.
    pub width: u16,
    /// Numbers are right-aligned.
    pub numeric: bool,
    pub cell: fn(&R) -> String,
    /// Ascending order; `None` (unknown) sorts below every value.
    pub cmp: fn(&R, &R) -> Ordering,
}

/// A row type of a tab.
pub(crate) trait Row: 'static {
    /// Identity of a row across refreshes (keeps the selection on it).
    type Key: Copy + Ord + std::hash::Hash + std::fmt::Debug;
    fn key(&self) -> Self::Key;
    fn columns() -> &'static [Column<Self>]
    where
        Self: Sized;
    /// Index of the column sorted by when the tab is first shown, and
    /// whether descending.
    const DEFAULT_SORT: (usize, bool);
    /// The texts a filter is matched against (client, resource, ...).
    fn haystack(&self) -> [Option<&str>; 4];
    /// What [`Row::haystack`] holds, in words, for the help and the
    /// filter prompt.
    const FILTERED_BY: &'static str;
    /// How much harm the row shows now, for the worst-first order and
    /// its mark; `None` for a table not ranked so.
    fn harm(&self) -> Option<Harm> {
        None
    }
    /// The fields several tabs show alike (`-` when `None`).
    fn client(&self) -> Option<&String>;
    fn peer(&self) -> Option<&String> {
        None
    }
    fn p99_delay(&self) -> Option<Delay> {
        None
    }
    /// How the row is drawn: a problem row is marked by a symbol and a
    /// colour (never colour alone).
    fn mark(&self) -> Mark {
        self.harm().map_or(Mark::None, |h| h.mark())
    }
    /// The columns shown: in a drill-down (one connection's rows), some
    /// tables show more.
    fn shown_columns(drill: bool) -> &'static [Column<Self>]
    where
        Self: Sized,
    {
        let _ = drill;
        Self::columns()
    }
}

/// Delivery delay at which a row is marked: the reference objective's
/// 1 s.
pub(crate) const LATE_NS: u64 = 1_000_000_000;

/// What harm a row shows: the worst-first order ranks by a stall going on,
/// then stall time in the last minute, then P99 delivery delay.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Harm {
    pub ongoing: bool,
    pub stall_ns: u64,
    pub delay_ns: u64,
}

/// How a row is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mark {
    None,
    /// Stalled in the last minute, or late (P99 delay ≥ 1 s).
    Warn,
    /// A stall going on now.
    Urgent,
}

impl Mark {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Mark::None => "",
            Mark::Warn => "!",
            Mark::Urgent => "!!",
        }
    }
}

impl Harm {
    pub(crate) fn mark(self) -> Mark {
        if self.ongoing {
            Mark::Urgent
        } else if self.stall_ns > 0 || self.delay_ns >= LATE_NS {
            Mark::Warn
        } else {
            Mark::None
        }
    }
}

/// A duration's rank: 0 below 1 ms, then one per doubling (half-open
/// octaves from 1 ms). Rows within an octave of each other are equals to
/// the worst-first order, so small changes do not reorder them.
pub(crate) fn octave(ns: u64) -> f64 {
    if ns < 1_000_000 {
        0.0
    } else {
        1.0 + (ns as f64 / 1e6).log2()
    }
}

/// The worst-first order without hysteresis: ongoing, then octaves of
/// stall time, then of delay.
fn harm_cmp(a: Option<Harm>, b: Option<Harm>) -> Ordering {
    let rank = |h: Option<Harm>| {
        h.map(|h| {
            (
                h.ongoing,
                octave(h.stall_ns) as i64,
                octave(h.delay_ns) as i64,
            )
        })
    };
    rank(a).cmp(&rank(b))
}

/// Does `row` contain `needle` (already lower-case) in a filterable field?
pub(crate) fn matches<R: Row>(row: &R, needle: &str) -> bool {
    needle.is_empty()
        || row
            .haystack()
            .iter()
            .flatten()
            .any(|text| text.to_lowercase().contains(needle))
}

fn f64_cmp(a: f64, b: f64) -> Ordering {
    a.total_cmp(&b)
}

fn text(s: Option<&String>) -> String {
    s.cloned().unwrap_or_else(|| "-".to_owned())
}

impl Row for ConnRow {
    type Key = u64;
    const DEFAULT_SORT: (usize, bool) = (0, true);

    fn key(&self) -> u64 {
        self.conn
    }

    fn client(&self) -> Option<&String> {
        self.client.as_ref()
    }

    fn peer(&self) -> Option<&String> {
        self.peer.as_ref()
    }

    fn p99_delay(&self) -> Option<Delay> {
        self.p99_delay
    }

    fn harm(&self) -> Option<Harm> {
        Some(Harm {
            ongoing: self.stall_ongoing.is_some(),
            stall_ns: self.stall_ns_last_min,
            delay_ns: self.p99_delay.map_or(0, |d| d.ns),
        })
    }

    fn columns() -> &'static [Column<Self>] {
        CONN_COLUMNS
    }

    fn haystack(&self) -> [Option<&str>; 4] {
        [
            self.client.as_deref(),
            self.peer.as_deref(),
            Some(&self.comm),
            self.tls.then_some("tls"),
        ]
    }

    const FILTERED_BY: &'static str = "client, peer, process or \"tls\"";
}

/// The `!` column: the row's mark, ordered worst first (the app adds
/// hysteresis to that order).
const fn mark_column<R: Row>() -> Column<R> {
    Column {
        title: "!",
        width: 2,
        numeric: false,
        cell: |r| {
            r.harm()
                .map_or_else(String::new, |h| h.mark().symbol().to_owned())
        },
        cmp: |a, b| harm_cmp(a.harm(), b.harm()),
    }
}

const fn client_column<R: Row>() -> Column<R> {
    Column {
        title: "CLIENT",
        width: 24,
        numeric: false,
        cell: |r| text(r.client()),
        cmp: |a, b| a.client().cmp(&b.client()),
    }
}

const fn peer_column<R: Row>() -> Column<R> {
    Column {
        title: "PEER",
        width: 22,
        numeric: false,
        cell: |r| text(r.peer()),
        cmp: |a, b| a.peer().cmp(&b.peer()),
    }
}

/// P99 delivery delay over the last minute (`≥` when a lower bound).
const fn delay_column<R: Row>() -> Column<R> {
    Column {
        title: "P99 DELAY",
        width: 10,
        numeric: true,
        cell: |r| or_dash(r.p99_delay(), delay),
        cmp: |a, b| a.p99_delay().cmp(&b.p99_delay()),
    }
}

static CONN_COLUMNS: &[Column<ConnRow>] = &[
    mark_column(),
    Column {
        title: "CONN",
        width: 6,
        numeric: true,
        cell: |r| r.conn.to_string(),
        cmp: |a, b| a.conn.cmp(&b.conn),
    },
    client_column(),
    Column {
        title: "STALL s/min",
        width: 11,
        numeric: true,
        // `…`: a stall is going on, still growing.
        cell: |r| {
            let d = duration_ns(r.stall_ns_last_min);
            if r.stall_ongoing.is_some() {
                format!("{d}…")
            } else {
                d
            }
        },
        cmp: |a, b| a.stall_ns_last_min.cmp(&b.stall_ns_last_min),
    },
    delay_column(),
    peer_column(),
    Column {
        title: "TX B/s",
        width: 8,
        numeric: true,
        cell: |r| si(r.tx_bytes_per_s),
        cmp: |a, b| f64_cmp(a.tx_bytes_per_s, b.tx_bytes_per_s),
    },
    Column {
        title: "SENDQ",
        width: 8,
        numeric: true,
        cell: |r| or_dash(r.unacked_bytes, |v| si(f64::from(v))),
        cmp: |a, b| a.unacked_bytes.cmp(&b.unacked_bytes),
    },
    Column {
        title: "RX B/s",
        width: 8,
        numeric: true,
        cell: |r| si(r.rx_bytes_per_s),
        cmp: |a, b| f64_cmp(a.rx_bytes_per_s, b.rx_bytes_per_s),
    },
    Column {
        title: "STREAMS",
        width: 9,
        numeric: true,
        cell: |r| match r.max_concurrent_streams {
            Some(max) => format!("{}/{max}", r.streams),
            None => r.streams.to_string(),
        },
        cmp: |a, b| a.streams.cmp(&b.streams),
    },
    Column {
        title: "WATCHES",
        width: 8,
        numeric: true,
        cell: |r| r.watches.to_string(),
        cmp: |a, b| a.watches.cmp(&b.watches),
    },
    Column {
        title: "SRTT",
        width: 8,
        numeric: true,
        cell: |r| or_dash(r.srtt_ns, duration_ns),
        cmp: |a, b| a.srtt_ns.cmp(&b.srtt_ns),
    },
    Column {
        title: "PROCESS",
        // comm (at most 15) + `/` + pid (at most 7 digits) + ` tls`.
        width: 27,
        numeric: false,
        cell: |r| {
            let tls = if r.tls { " tls" } else { "" };
            format!("{}/{}{tls}", r.comm, r.pid)
        },
        cmp: |a, b| (&a.comm, a.pid).cmp(&(&b.comm, b.pid)),
    },
];

impl Row for WatchRow {
    type Key = (u64, u32);
    const DEFAULT_SORT: (usize, bool) = (0, true);

    fn key(&self) -> (u64, u32) {
        (self.conn, self.stream)
    }

    fn client(&self) -> Option<&String> {
        self.client.as_ref()
    }

    fn p99_delay(&self) -> Option<Delay> {
        self.p99_delay
    }

    fn harm(&self) -> Option<Harm> {
        Some(Harm {
            ongoing: false,
            stall_ns: 0,
            delay_ns: self.p99_delay.map_or(0, |d| d.ns),
        })
    }

    fn columns() -> &'static [Column<Self>] {
        WATCH_COLUMNS
    }

    /// The writer and etcd delay columns only in a connection's
    /// drill-down: the full table keeps its width for the clients.
    fn shown_columns(drill: bool) -> &'static [Column<Self>] {
        if drill {
            WATCH_COLUMNS
        } else {
            &WATCH_COLUMNS[..WATCH_COLUMNS.len() - DRILL_ONLY_WATCH_COLUMNS]
        }
    }

    fn haystack(&self) -> [Option<&str>; 4] {
        [
            self.client.as_deref(),
            Some(&self.resource),
            Some(&self.namespace),
            None,
        ]
    }

    const FILTERED_BY: &'static str = "client, resource or namespace";
}

/// The last columns of [`WATCH_COLUMNS`], shown in a drill-down only.
const DRILL_ONLY_WATCH_COLUMNS: usize = 2;

static WATCH_COLUMNS: &[Column<WatchRow>] = &[
    mark_column(),
    Column {
        title: "CONN:STREAM",
        width: 12,
        numeric: false,
        cell: |r| format!("{}:{}", r.conn, r.stream),
        cmp: |a, b| (a.conn, a.stream).cmp(&(b.conn, b.stream)),
    },
    client_column(),
    delay_column(),
    Column {
        title: "RESOURCE",
        width: 20,
        numeric: false,
        cell: |r| r.resource.clone(),
        cmp: |a, b| a.resource.cmp(&b.resource),
    },
    Column {
        title: "NAMESPACE",
        width: 16,
        numeric: false,
        cell: |r| namespace(r).to_owned(),
        cmp: |a, b| a.namespace.cmp(&b.namespace),
    },
    Column {
        title: "P99 APISRV",
        width: 10,
        numeric: true,
        cell: |r| or_dash(r.p99_apiserver_ns, duration_ns),
        cmp: |a, b| a.p99_apiserver_ns.cmp(&b.p99_apiserver_ns),
    },
    Column {
        title: "EV/s",
        width: 7,
        numeric: true,
        cell: |r| si(r.events_per_s),
        cmp: |a, b| f64_cmp(a.events_per_s, b.events_per_s),
    },
    Column {
        title: "B/s",
        width: 8,
        numeric: true,
        cell: |r| si(r.bytes_per_s),
        cmp: |a, b| f64_cmp(a.bytes_per_s, b.bytes_per_s),
    },
    Column {
        title: "LAST RV",
        width: 12,
        numeric: true,
        cell: |r| {
            if r.last_resource_version.is_empty() {
                "-".to_owned()
            } else {
                r.last_resource_version.clone()
            }
        },
        // resourceVersions are opaque strings, but etcd's are integers:
        // order those numerically.
        cmp: |a, b| {
            let num = |s: &str| s.parse::<u64>().ok();
            num(&a.last_resource_version)
                .cmp(&num(&b.last_resource_version))
                .then_with(|| a.last_resource_version.cmp(&b.last_resource_version))
        },
    },
    Column {
        title: "RV@START",
        width: 8,
        numeric: false,
        cell: |r| r.resource_version_kind.clone(),
        cmp: |a, b| a.resource_version_kind.cmp(&b.resource_version_kind),
    },
    Column {
        title: "WRITER",
        width: 18,
        numeric: false,
        cell: |r| text(r.last_writer.as_ref()),
        cmp: |a, b| a.last_writer.cmp(&b.last_writer),
    },
    Column {
        title: "ETCD DLY",
        width: 9,
        numeric: true,
        // Negative (the watch read before the write's response): shown as 0.
        cell: |r| {
            or_dash(
                r.last_etcd_watch_delay_ns.map(|n| n.max(0) as u64),
                duration_ns,
            )
        },
        cmp: |a, b| a.last_etcd_watch_delay_ns.cmp(&b.last_etcd_watch_delay_ns),
    },
];

impl Row for StallRow {
    type Key = (u64, u64, u32);
    const DEFAULT_SORT: (usize, bool) = (0, true);

    /// An ongoing stall's `ts` is the snapshot's time, new at every
    /// refresh: it is keyed as the newest possible, so a selection on it
    /// stays there while it lasts.
    fn key(&self) -> (u64, u64, u32) {
        (
            if self.ongoing { u64::MAX } else { self.ts },
            self.conn.unwrap_or(0),
            self.stream.unwrap_or(u32::MAX),
        )
    }

    fn columns() -> &'static [Column<Self>] {
        STALL_COLUMNS
    }

    fn haystack(&self) -> [Option<&str>; 4] {
        [
            self.client.as_deref(),
            self.peer.as_deref(),
            Some(&self.cause),
            self.ongoing.then_some("ongoing"),
        ]
    }

    const FILTERED_BY: &'static str = "client, peer, cause or \"ongoing\"";

    fn client(&self) -> Option<&String> {
        self.client.as_ref()
    }

    fn peer(&self) -> Option<&String> {
        self.peer.as_ref()
    }

    fn mark(&self) -> Mark {
        if self.ongoing {
            Mark::Urgent
        } else {
            Mark::None
        }
    }
}

static STALL_COLUMNS: &[Column<StallRow>] = &[
    Column {
        title: "ENDED (UTC)",
        width: 13,
        numeric: false,
        cell: |r| {
            if r.ongoing {
                "ONGOING".to_owned()
            } else {
                clock(r.ts)
            }
        },
        cmp: |a, b| (a.ongoing, a.ts).cmp(&(b.ongoing, b.ts)),
    },
    Column {
        title: "CAUSE",
        width: 18,
        numeric: false,
        cell: |r| r.cause.clone(),
        cmp: |a, b| a.cause.cmp(&b.cause),
    },
    Column {
        title: "DURATION",
        width: 9,
        numeric: true,
        // `…`: so far, still growing.
        cell: |r| {
            let d = duration_ns(r.duration_ns);
            if r.ongoing { format!("{d}…") } else { d }
        },
        cmp: |a, b| a.duration_ns.cmp(&b.duration_ns),
    },
    client_column(),
    Column {
        title: "CONN",
        width: 6,
        numeric: true,
        cell: |r| or_dash(r.conn, |c| c.to_string()),
        cmp: |a, b| a.conn.cmp(&b.conn),
    },
    Column {
        title: "STREAM",
        width: 7,
        numeric: true,
        cell: |r| or_dash(r.stream, |s| s.to_string()),
        cmp: |a, b| a.stream.cmp(&b.stream),
    },
    Column {
        title: "FLAPS",
        width: 6,
        numeric: true,
        cell: |r| r.flaps.to_string(),
        cmp: |a, b| a.flaps.cmp(&b.flaps),
    },
    peer_column(),
    Column {
        title: "FILLED BY",
        width: 9,
        numeric: true,
        cell: |r| or_dash(r.filled_by, |s| s.to_string()),
        cmp: |a, b| a.filled_by.cmp(&b.filled_by),
    },
    Column {
        title: "HELD (stream:delay)",
        width: 30,
        numeric: false,
        cell: |r| held(&r.held),
        cmp: |a, b| max_held(&a.held).cmp(&max_held(&b.held)),
    },
];

/// A watch's namespace: `(all)` for a cluster-wide request, `-` when the
/// request was not seen (the stream was open before watchtrace attached),
/// so nothing is known of it.
fn namespace(r: &WatchRow) -> &str {
    if !r.namespace.is_empty() {
        &r.namespace
    } else if r.resource_version_kind == RV_UNKNOWN {
        "-"
    } else {
        "(all)"
    }
}

/// The held streams, longest delay first: `5:1.20s 7:300ms +3`.
fn held(streams: &[(u32, u64)]) -> String {
    if streams.is_empty() {
        return "-".to_owned();
    }
    let mut sorted = streams.to_vec();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let shown = 3;
    let mut out: Vec<String> = sorted
        .iter()
        .take(shown)
        .map(|(stream, delay)| format!("{stream}:{}", duration_ns(*delay)))
        .collect();
    if sorted.len() > shown {
        out.push(format!("+{}", sorted.len() - shown));
    }
    out.join(" ")
}

fn max_held(streams: &[(u32, u64)]) -> u64 {
    streams.iter().map(|s| s.1).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_sort_below_known_ones() {
        let known = ConnRow {
            srtt_ns: Some(1_000),
            ..ConnRow::default()
        };
        let unknown = ConnRow::default();
        let srtt = CONN_COLUMNS.iter().find(|c| c.title == "SRTT").unwrap();
        assert_eq!((srtt.cmp)(&unknown, &known), Ordering::Less);
        assert_eq!((srtt.cell)(&unknown), "-");
        assert_eq!((srtt.cell)(&known), "1µs");
    }

    #[test]
    fn resource_versions_order_numerically() {
        let rv = |s: &str| WatchRow {
            last_resource_version: s.to_owned(),
            ..WatchRow::default()
        };
        let col = WATCH_COLUMNS.iter().find(|c| c.title == "LAST RV").unwrap();
        assert_eq!((col.cmp)(&rv("9"), &rv("10")), Ordering::Less);
        assert_eq!((col.cmp)(&rv("100"), &rv("99")), Ordering::Greater);
    }

    #[test]
    fn held_streams_show_the_longest_delays_first() {
        assert_eq!(held(&[]), "-");
        assert_eq!(
            held(&[(1, 5_000_000), (3, 1_200_000_000), (5, 300_000_000), (7, 1)]),
            "3:1.20s 5:300ms 1:5.00ms +1"
        );
    }

    #[test]
    fn filters_match_client_resource_and_peer_case_insensitively() {
        let w = WatchRow {
            resource: "pods".into(),
            client: Some("Kubelet".into()),
            ..WatchRow::default()
        };
        assert!(matches(&w, "kube"));
        assert!(matches(&w, "pod"));
        assert!(!matches(&w, "secrets"));
        assert!(matches(&w, ""));
        let c = ConnRow {
            peer: Some("10.0.0.7:5123".into()),
            ..ConnRow::default()
        };
        assert!(matches(&c, "10.0.0.7"));
    }
}
