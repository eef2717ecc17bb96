//! Watch events that left their timeline without a source while the
//! traced process's outbound bytes were still undecoded.
//!
//! A decoder that joins a connection mid-way (every connection open when
//! the capture began) first looks for a frame boundary, holding what it
//! reads meanwhile; those frames are decoded, with the times they were
//! read, once the boundary is confirmed, often by the next read. An
//! apiserver that read an etcd event in such bytes may have written it to
//! its watchers, and had it acked, before then: the watch event would go
//! out without the `t_source` that was read in time but decoded late. So an
//! event without a source waits here while an outbound connection holds
//! undecoded bytes from before the event's first byte, at most
//! [`MAX_WAIT_NS`], and goes on with its source if that came. In the steady
//! state no connection holds undecoded bytes and nothing waits.

use std::collections::VecDeque;

use super::{
    TimelinePart,
    output::{OutputEvent, Timeline},
};
use tracer_common::record::Direction;

/// How long (after its first byte) an event waits for a late source.
pub(crate) const MAX_WAIT_NS: u64 = 1_000_000_000;
/// Events held at once; the oldest goes on without its source past this.
pub(crate) const MAX_HELD: usize = 4096;

/// Counters of the late sources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LateSourceStats {
    /// Events held, then given the source decoded late.
    pub filled: u64,
    /// Events held for [`MAX_WAIT_NS`] whose source never came.
    pub expired: u64,
    /// Events written early, without waiting, because [`MAX_HELD`] were.
    pub evicted: u64,
}

struct Held {
    event: OutputEvent,
    revision: i64,
    t_first: u64,
}

/// The held events, in the order they left their timelines.
#[derive(Default)]
pub(crate) struct LateSources {
    held: VecDeque<Held>,
    stats: LateSourceStats,
}

impl LateSources {
    pub(crate) fn stats(&self) -> LateSourceStats {
        self.stats
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Passes `event` on, or holds it. `horizon`: the Unix time of the
    /// oldest bytes an outbound connection holds undecoded, if any does. An
    /// etcd event gives its revision's held events their source.
    pub(crate) fn offer(
        &mut self,
        event: OutputEvent,
        horizon: Option<u64>,
        emit: &mut impl FnMut(OutputEvent),
    ) {
        match &event {
            OutputEvent::EtcdEvent {
                revision,
                t_received,
                ..
            } if !self.held.is_empty() => {
                let (revision, t) = (*revision, *t_received);
                emit(event);
                let mut i = 0;
                while i < self.held.len() {
                    if self.held[i].revision == revision {
                        let held = self.held.remove(i).expect("within bounds");
                        emit(self.fill(held, t));
                    } else {
                        i += 1;
                    }
                }
            }
            OutputEvent::WatchEvent {
                direction: Direction::Egress,
                t_first_byte,
                resource_version,
                timeline,
                ..
            } if horizon.is_some_and(|h| h <= *t_first_byte)
                && timeline.missing.contains(&TimelinePart::TSource) =>
            {
                let Ok(revision) = resource_version.parse() else {
                    return emit(event);
                };
                if self.held.len() >= MAX_HELD
                    && let Some(oldest) = self.held.pop_front()
                {
                    self.stats.evicted += 1;
                    emit(oldest.event);
                }
                let t_first = *t_first_byte;
                self.held.push_back(Held {
                    event,
                    revision,
                    t_first,
                });
            }
            _ => emit(event),
        }
    }

    /// Passes on the events whose source can no longer come late (every
    /// byte before their first is decoded: `horizon` is past it, or none)
    /// or that waited [`MAX_WAIT_NS`] by `now`, as they are.
    pub(crate) fn release(
        &mut self,
        horizon: Option<u64>,
        now: u64,
        emit: &mut impl FnMut(OutputEvent),
    ) {
        if self.held.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.held.len() {
            let h = &self.held[i];
            let decoded = horizon.is_none_or(|t| t > h.t_first);
            let waited = h.t_first + MAX_WAIT_NS <= now;
            if decoded || waited {
                if waited && !decoded {
                    self.stats.expired += 1;
                }
                emit(self.held.remove(i).expect("within bounds").event);
            } else {
                i += 1;
            }
        }
    }

    /// The input ended: everything held goes on as it is.
    pub(crate) fn flush(&mut self, emit: &mut impl FnMut(OutputEvent)) {
        self.held.drain(..).for_each(|h| emit(h.event));
    }

    /// The held event with the source read at `t` (not after its first
    /// byte: a revision read later belongs to another watch).
    fn fill(&mut self, held: Held, t: u64) -> OutputEvent {
        let mut event = held.event;
        if t > held.t_first {
            return event;
        }
        if let OutputEvent::WatchEvent { timeline, .. } = &mut event {
            self.stats.filled += 1;
            let Timeline {
                t_source,
                apiserver_time_span_ns,
                missing,
                unacked_after_ns,
                ..
            } = timeline;
            *t_source = Some(t);
            *apiserver_time_span_ns = Some(held.t_first - t);
            missing.retain(|p| *p != TimelinePart::TSource);
            // An unacked event's wait counts from its source too.
            if let Some(waited) = unacked_after_ns {
                *waited += held.t_first - t;
            }
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch_event(rv: &str, t_first: u64) -> OutputEvent {
        let mut e = OutputEvent::test_watch_event(1, rv, t_first, t_first, 100);
        if let OutputEvent::WatchEvent { timeline, .. } = &mut e {
            timeline.missing = vec![TimelinePart::TSource];
        }
        e
    }

    fn etcd_event(revision: i64, t: u64) -> OutputEvent {
        OutputEvent::test_etcd_event(revision, t)
    }

    fn source(e: &OutputEvent) -> Option<u64> {
        match e {
            OutputEvent::WatchEvent { timeline, .. } => timeline.t_source,
            _ => None,
        }
    }

    #[test]
    fn an_event_written_while_etcd_bytes_were_undecoded_gets_its_late_source() {
        let mut late = LateSources::default();
        let mut out = Vec::new();
        late.offer(watch_event("7", 1_000), Some(900), &mut |e| out.push(e));
        assert!(out.is_empty(), "held");
        late.offer(etcd_event(7, 950), None, &mut |e| out.push(e));
        assert_eq!(out.len(), 2);
        assert_eq!(source(&out[1]), Some(950));
        let OutputEvent::WatchEvent { timeline, .. } = &out[1] else {
            panic!("{:?}", out[1]);
        };
        assert_eq!(timeline.apiserver_time_span_ns, Some(50));
        assert!(timeline.missing.is_empty());
        assert_eq!(late.stats().filled, 1);
    }

    #[test]
    fn with_every_byte_decoded_an_event_without_a_source_goes_on_at_once() {
        let mut late = LateSources::default();
        let mut out = Vec::new();
        // No undecoded bytes, or only bytes read after the event.
        late.offer(watch_event("7", 1_000), None, &mut |e| out.push(e));
        late.offer(watch_event("8", 1_000), Some(1_001), &mut |e| out.push(e));
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|e| source(e).is_none()));
    }

    #[test]
    fn a_held_event_goes_on_without_a_source_once_the_bytes_before_it_are_decoded_or_it_waited_too_long()
     {
        let mut late = LateSources::default();
        let mut out = Vec::new();
        late.offer(watch_event("7", 1_000), Some(900), &mut |e| out.push(e));
        late.offer(watch_event("8", 5_000), Some(900), &mut |e| out.push(e));
        late.release(Some(900), 2_000, &mut |e| out.push(e));
        assert!(out.is_empty());
        // Decoded up to 2000: the first event's source is not in them.
        late.release(Some(2_000), 2_000, &mut |e| out.push(e));
        assert_eq!(out.len(), 1);
        late.release(Some(2_000), 5_000 + MAX_WAIT_NS, &mut |e| out.push(e));
        assert_eq!(out.len(), 2);
        assert_eq!(late.stats().expired, 1);
        assert!(out.iter().all(|e| source(e).is_none()));
    }

    #[test]
    fn a_revision_read_after_the_event_was_written_is_not_its_source() {
        let mut late = LateSources::default();
        let mut out = Vec::new();
        late.offer(watch_event("7", 1_000), Some(900), &mut |e| out.push(e));
        late.offer(etcd_event(7, 1_100), None, &mut |e| out.push(e));
        assert_eq!(out.len(), 2);
        assert_eq!(source(&out[1]), None);
        assert_eq!(late.stats().filled, 0);
    }

    #[test]
    fn at_the_cap_the_oldest_held_event_goes_on_and_is_counted() {
        let mut late = LateSources::default();
        let mut out = Vec::new();
        for i in 0..=MAX_HELD as u64 {
            late.offer(watch_event("7", 1_000 + i), Some(900), &mut |e| out.push(e));
        }
        assert_eq!(out.len(), 1);
        assert_eq!(late.stats().evicted, 1);
        late.flush(&mut |e| out.push(e));
        assert_eq!(out.len(), MAX_HELD + 1);
    }
}
