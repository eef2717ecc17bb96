//! HTTP/2 window stalls, one per fault: the rule socket stalls follow
//! (see `conn::stalls`). A stream whose client stopped reading for seconds
//! comes back with a backlog that exhausts its window again and again for
//! µs to ms while it drains; siblings touch zero for µs now and then. Each
//! of those is a real window stall in the decoder, but no fault: an
//! episode of one window lasts from its first start to the end of its
//! longest on-phase, restarts within `QUIET_NS` are flaps counted on it,
//! its `stall_start` comes once an on-phase has lasted `MIN_STALL_NS`, and
//! one where none did is no stall (dropped, counted). Each on-phase still
//! counts, as it happened, in the waits of the events it held.

use std::collections::BTreeMap;

use super::{
    kinds::{StallCause, StallScope},
    output::{OutputEvent, StreamDelay},
};
use crate::conn::Episode;

/// Which window: connection (no stream) or a stream's, on a connection.
type Key = (u64, StallScope, Option<u32>);

struct Open {
    episode: Episode,
    /// The on-phases' `window_stall` lines merged: the first one, with the
    /// held streams' longest waits and every open stream.
    merged: Option<OutputEvent>,
}

/// The open episodes, by window.
#[derive(Default)]
pub(crate) struct WindowStalls {
    open: BTreeMap<Key, Open>,
    /// Episodes dropped as too brief to be stalls.
    brief: u64,
}

impl WindowStalls {
    pub(crate) fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    pub(crate) fn brief(&self) -> u64 {
        self.brief
    }

    /// A window stall's `stall_start` from the decoder: an on-phase
    /// begins. Returns it unchanged if it is no window stall's.
    pub(crate) fn on_start(&mut self, event: OutputEvent) -> Option<OutputEvent> {
        let OutputEvent::StallStart {
            ts,
            conn: Some(conn),
            cause,
            stream,
        } = event
        else {
            return Some(event);
        };
        let scope = match cause {
            StallCause::ConnectionWindow => StallScope::Connection,
            StallCause::StreamWindow => StallScope::Stream,
            _ => return Some(event),
        };
        self.open
            .entry((conn, scope, stream))
            .and_modify(|o| o.episode.on(ts))
            .or_insert_with(|| Open {
                episode: Episode::new(ts),
                merged: None,
            });
        None
    }

    /// A window stall's `window_stall` line (its held streams found): an
    /// on-phase ended. Returns it unchanged if it is no window stall.
    pub(crate) fn on_end(&mut self, event: OutputEvent) -> Option<OutputEvent> {
        let OutputEvent::WindowStall {
            ts,
            conn,
            scope,
            stream,
            start,
            ..
        } = event
        else {
            return Some(event);
        };
        let open = self
            .open
            .entry((conn, scope, stream))
            .or_insert_with(|| Open {
                // Its start was not seen (a decoder that began mid-stall).
                episode: Episode::new(start),
                merged: None,
            });
        open.episode.off(ts);
        match &mut open.merged {
            None => open.merged = Some(event),
            Some(merged) => merge(merged, event),
        }
        None
    }

    /// As of `now`: the `stall_start` of episodes that have lasted long
    /// enough, and the `window_stall` of those whose end is final.
    pub(crate) fn poll(&mut self, now: u64, emit: &mut impl FnMut(OutputEvent)) {
        let mut over = Vec::new();
        for (&key, open) in &mut self.open {
            if open.episode.announce(now) {
                emit(stall_start(key, open.episode.start_ns));
            }
            if open.episode.is_over(now) {
                over.push(key);
            }
        }
        for key in over {
            let open = self.open.remove(&key).expect("listed above");
            self.finish(open, emit);
        }
    }

    /// `conn` closed at `ts`: its episodes end.
    pub(crate) fn on_close(&mut self, conn: u64, ts: u64, emit: &mut impl FnMut(OutputEvent)) {
        let keys: Vec<Key> = self
            .open
            .range((conn, StallScope::Connection, None)..)
            .take_while(|(k, _)| k.0 == conn)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let mut open = self.open.remove(&key).expect("listed above");
            open.episode.off(ts);
            self.finish(open, emit);
        }
    }

    /// The input ended: the episodes that ended are final (one still on
    /// has only its `stall_start`, as a stall going on at the end has).
    pub(crate) fn flush(&mut self, emit: &mut impl FnMut(OutputEvent)) {
        for (_, open) in std::mem::take(&mut self.open) {
            if open.episode.ended_ns.is_some() {
                self.finish(open, emit);
            }
        }
    }

    fn finish(&mut self, open: Open, emit: &mut impl FnMut(OutputEvent)) {
        if open.episode.brief() {
            self.brief += 1;
            return;
        }
        // Every episode that ended has a line to merge (the decoder ends
        // its stalls when the connection closes).
        let Some(mut event) = open.merged else {
            return;
        };
        if let OutputEvent::WindowStall {
            ts,
            start,
            duration_ns,
            flaps,
            ..
        } = &mut event
        {
            let e = &open.episode;
            *start = e.start_ns;
            *ts = e.end_ns();
            *duration_ns = e.end_ns().saturating_sub(e.start_ns);
            *flaps = e.flaps;
        }
        emit(event);
    }
}

fn stall_start((conn, scope, stream): Key, ts: u64) -> OutputEvent {
    OutputEvent::StallStart {
        ts,
        conn: Some(conn),
        cause: match scope {
            StallScope::Connection => StallCause::ConnectionWindow,
            StallScope::Stream => StallCause::StreamWindow,
        },
        stream,
    }
}

/// Adds a later on-phase's held streams and open streams to `merged`.
fn merge(merged: &mut OutputEvent, later: OutputEvent) {
    let (
        OutputEvent::WindowStall {
            open_streams, held, ..
        },
        OutputEvent::WindowStall {
            open_streams: more_open,
            held: more_held,
            ..
        },
    ) = (merged, later)
    else {
        return;
    };
    for s in more_open {
        if !open_streams.contains(&s) {
            open_streams.push(s);
        }
    }
    for h in more_held {
        match held.iter_mut().find(|k| k.stream == h.stream) {
            Some(k) => keep_longest(k, h),
            None => held.push(h),
        }
    }
}

fn keep_longest(kept: &mut StreamDelay, other: StreamDelay) {
    if other.delay_ns > kept.delay_ns {
        *kept = other;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{conn::QUIET_NS, pipeline::Role};

    const MS: u64 = 1_000_000;

    fn start(ts: u64, stream: u32) -> OutputEvent {
        OutputEvent::StallStart {
            ts,
            conn: Some(1),
            cause: StallCause::StreamWindow,
            stream: Some(stream),
        }
    }

    fn end(start: u64, ts: u64, stream: u32, held_ns: u64) -> OutputEvent {
        OutputEvent::WindowStall {
            ts,
            conn: 1,
            scope: StallScope::Stream,
            stream: Some(stream),
            sender: Role::Server,
            start,
            duration_ns: ts - start,
            flaps: 0,
            open_streams: vec![stream],
            held: vec![StreamDelay {
                stream,
                resource: None,
                delay_ns: held_ns,
            }],
        }
    }

    /// Feeds `(start, end)` on-phases of stream 3, polling as time passes,
    /// then waits out the quiet period.
    fn run(w: &mut WindowStalls, phases: &[(u64, u64)]) -> Vec<OutputEvent> {
        let mut out = Vec::new();
        for &(a, b) in phases {
            w.poll(a, &mut |e| out.push(e));
            assert!(w.on_start(start(a, 3)).is_none());
            w.poll(b, &mut |e| out.push(e));
            assert!(w.on_end(end(a, b, 3, b - a)).is_none());
        }
        let last = phases.last().unwrap().1;
        w.poll(last + QUIET_NS, &mut |e| out.push(e));
        out
    }

    #[test]
    fn a_long_stall_and_its_catch_up_flaps_are_one_stall_with_its_flaps_counted() {
        let mut w = WindowStalls::default();
        let out = run(
            &mut w,
            &[
                (1_000 * MS, 4_700 * MS),
                (4_701 * MS, 4_702 * MS),
                (4_703 * MS, 4_706 * MS),
            ],
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(matches!(out[0], OutputEvent::StallStart { ts, .. } if ts == 1_000 * MS));
        let OutputEvent::WindowStall {
            ts,
            start,
            duration_ns,
            flaps,
            ref held,
            ..
        } = out[1]
        else {
            panic!("{:?}", out[1]);
        };
        // From the first start to the end of the longest on-phase.
        assert_eq!(
            (start, ts, duration_ns),
            (1_000 * MS, 4_700 * MS, 3_700 * MS)
        );
        assert_eq!(flaps, 2);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].delay_ns, 3_700 * MS);
        assert!(w.is_empty());
    }

    #[test]
    fn touches_of_zero_shorter_than_the_minimum_are_no_stall() {
        let mut w = WindowStalls::default();
        let out = run(
            &mut w,
            &[(1_000 * MS, 1_001 * MS), (1_002 * MS, 1_005 * MS)],
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(w.brief(), 1);
        // However many come close together: 30 ms of touches of 2 to 4 ms.
        let out = run(
            &mut w,
            &[
                (2_000 * MS, 2_003 * MS),
                (2_010 * MS, 2_013 * MS),
                (2_020 * MS, 2_024 * MS),
                (2_028 * MS, 2_030 * MS),
            ],
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(w.brief(), 2);
    }

    #[test]
    fn a_stall_that_lasts_is_announced_while_it_goes_on() {
        let mut w = WindowStalls::default();
        let mut out = Vec::new();
        assert!(w.on_start(start(1_000 * MS, 3)).is_none());
        w.poll(1_005 * MS, &mut |e| out.push(e));
        assert!(out.is_empty(), "not yet: {out:?}");
        w.poll(1_010 * MS, &mut |e| out.push(e));
        assert_eq!(out.len(), 1);
        // Its connection closes while it goes on: it ends there.
        w.on_close(1, 2_000 * MS, &mut |e| out.push(e));
        assert_eq!(out.len(), 1, "no line without its end seen: {out:?}");
        assert!(w.is_empty());
    }
}
