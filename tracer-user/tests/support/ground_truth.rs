//! The testbed's ground-truth log (docs/testbed.md) and a recording's
//! output, read the same way by every test that scores one against the
//! other.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufRead as _, BufReader},
    path::Path,
};

use serde_json::Value;
use watchtrace::{
    pipeline::{OutputEvent, PipelineConfig},
    recording::Reader,
    replay::{Line, replay},
};

/// An event's type, resourceVersion and framed size (before any gzip).
pub(crate) type Event = (String, String, u64);
/// The event sequences of the watches of each request path (two watches
/// can share a path), sorted so both sides line up.
pub(crate) type Events = BTreeMap<String, Vec<Vec<Event>>>;

/// Every record of a ground-truth log.
pub(crate) fn records(path: &Path) -> Vec<Value> {
    BufReader::new(File::open(path).unwrap())
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect()
}

/// The ground-truth records of `kind`.
pub(crate) fn of_kind<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}

/// Groups streams' sequences by path, each path's list sorted.
pub(crate) fn by_path(streams: impl Iterator<Item = (String, Vec<Event>)>) -> Events {
    let mut out = Events::new();
    for (path, events) in streams {
        out.entry(path).or_default().push(events);
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

/// The event writes of the ground truth, by watch path, in order.
pub(crate) fn writes(records: &[Value]) -> Events {
    let mut by_stream: BTreeMap<(String, u64), Vec<(u64, Event)>> = BTreeMap::new();
    for v in of_kind(records, "write") {
        let key = (
            v["path"].as_str().unwrap().to_owned(),
            v["stream"].as_u64().unwrap(),
        );
        let event = (
            v["event_type"].as_str().unwrap().to_owned(),
            v["rv"].as_str().unwrap_or_default().to_owned(),
            v["bytes"].as_u64().unwrap(),
        );
        by_stream
            .entry(key)
            .or_default()
            .push((v["seq"].as_u64().unwrap(), event));
    }
    by_path(by_stream.into_iter().map(|((path, _), mut writes)| {
        writes.sort_by_key(|(seq, _)| *seq);
        (path, writes.into_iter().map(|(_, e)| e).collect())
    }))
}

/// Every output event of a recording, replayed as `watchtrace replay` does.
pub(crate) fn replayed(recording: &Path) -> Vec<OutputEvent> {
    let mut reader = Reader::new(BufReader::new(File::open(recording).unwrap())).unwrap();
    let mut out = Vec::new();
    replay(&mut reader, PipelineConfig::default(), |line| {
        if let Line::Event(e) = line {
            out.push(e);
        }
    });
    out
}

/// The request path of every (conn, stream) whose request was seen.
pub(crate) fn paths(events: &[OutputEvent]) -> BTreeMap<(u64, u32), String> {
    events
        .iter()
        .filter_map(|e| match e {
            OutputEvent::Request {
                conn, stream, path, ..
            } => Some(((*conn, *stream), path.clone())),
            _ => None,
        })
        .collect()
}

/// The watch events of streams whose request was seen, by path (as
/// [`writes`] reads the ground truth), and how many events belonged to no
/// seen request.
pub(crate) fn watch_events(events: &[OutputEvent]) -> (Events, usize) {
    let paths = paths(events);
    let mut streams: BTreeMap<(u64, u32), Vec<Event>> = BTreeMap::new();
    let mut unmatched = 0;
    for e in events {
        if let OutputEvent::WatchEvent {
            conn,
            stream,
            event_type,
            resource_version,
            bytes,
            ..
        } = e
        {
            if paths.contains_key(&(*conn, *stream)) {
                streams.entry((*conn, *stream)).or_default().push((
                    event_type.to_string(),
                    resource_version.to_string(),
                    *bytes,
                ));
            } else {
                unmatched += 1;
            }
        }
    }
    let events = by_path(
        streams
            .into_iter()
            .map(|(key, events)| (paths[&key].clone(), events)),
    );
    (events, unmatched)
}

/// Bytes the capture lost (gap lines).
pub(crate) fn gap_bytes(events: &[OutputEvent]) -> u64 {
    events
        .iter()
        .map(|e| match e {
            OutputEvent::Gap { len, .. } => *len,
            _ => 0,
        })
        .sum()
}
