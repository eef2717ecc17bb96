//! Stream lifecycle tracking ([RFC 9113 §5.1]), bounded.
//!
//! Each tracked stream records how it started, whether each side has ended
//! its half (END_STREAM), and each side's send window. Streams leave the
//! table when they end; their ids are remembered for a while so that late
//! frames (WINDOW_UPDATE or RST_STREAM racing the end) are not mistaken for
//! new streams.
//!
//! # Bounds
//!
//! At most `cap` streams are tracked. When full, the least recently active
//! stream is evicted (a linear scan, only at the cap) and reported as ended
//! by eviction; `evictions` counts them. The memory of ended ids is a FIFO
//! of `closed_cap` entries.
//!
//! # Streams we did not see open
//!
//! Client streams have odd ids, server (pushed) streams even ids, and each
//! side opens its streams in increasing id order (§5.1.1). A frame on an
//! untracked id is classified with that: an id above the highest one seen
//! opening is a stream whose opening we missed (before we attached, or in
//! lost bytes); when attached mid-connection, so is an id below the first
//! stream seen opening. Any other untracked id ended earlier (or was
//! evicted), and is not tracked again.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    hash::{BuildHasherDefault, Hasher},
};

use super::{event::Flow, flow::Window};

/// How a tracked stream started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamOrigin {
    /// Its opening HEADERS was seen.
    Opened,
    /// Promised by a PUSH_PROMISE that was seen.
    Pushed,
    /// First seen mid-stream: opened before we attached, or its opening was
    /// lost. Its request headers (and half-close state) may be unknown.
    PreExisting,
}

/// State of one side's half of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SideState {
    /// May still send.
    Open,
    /// Sent END_STREAM.
    Ended,
    /// Not known (a pre-existing stream's side that has not sent since).
    Unknown,
}

/// One tracked stream.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamEntry {
    pub(crate) id: u32,
    pub(crate) origin: StreamOrigin,
    /// Indexed by [`Flow::idx`] of the sending side.
    pub(crate) side: [SideState; 2],
    /// Send windows, indexed by sender.
    pub(crate) window: [Window; 2],
    pub(crate) last_active_ts: u64,
}

impl StreamEntry {
    /// Ended: no side may still send, and at least one side ended. A side
    /// of unknown state is taken as ended when the other side ends (a
    /// pre-existing stream's request half usually ended long before).
    pub(crate) fn is_finished(&self) -> bool {
        !self.side.contains(&SideState::Open) && self.side.contains(&SideState::Ended)
    }

    pub(crate) fn side(&self, dir: Flow) -> SideState {
        self.side[dir.idx()]
    }
}

/// How to treat a frame on an untracked stream id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Untracked {
    /// Ended earlier or evicted: do not track again.
    Ended,
    /// Its opening was not seen: track it as pre-existing.
    Unseen,
    /// Above every id seen opening: a HEADERS from its initiator opens it.
    New,
}

/// Multiplicative hash for stream ids (sequential odd numbers), cheaper
/// than SipHash on the per-frame path. Ids come from the traced peers, but
/// the table is capped, so a collision attack only costs time up to the cap.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IdBuild = BuildHasherDefault<IdHasher>;

/// The bounded stream table of one connection.
#[derive(Debug)]
pub(crate) struct StreamTable {
    map: HashMap<u32, StreamEntry, IdBuild>,
    cap: usize,
    closed: VecDeque<u32>,
    closed_set: HashSet<u32, IdBuild>,
    closed_cap: usize,
    /// Highest id seen opening, per parity (index `id & 1`).
    max_opened: [u32; 2],
    /// First id seen opening after a mid-connection attach, per parity.
    first_opened: [Option<u32>; 2],
    mid_stream: bool,
    evictions: u64,
}

impl StreamTable {
    pub(crate) fn new(cap: usize, closed_cap: usize, mid_stream: bool) -> Self {
        Self {
            map: HashMap::default(),
            cap: cap.max(1),
            closed: VecDeque::new(),
            closed_set: HashSet::default(),
            closed_cap,
            max_opened: [0; 2],
            first_opened: [None; 2],
            mid_stream,
            evictions: 0,
        }
    }

    pub(crate) fn get(&self, id: u32) -> Option<&StreamEntry> {
        self.map.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut StreamEntry> {
        self.map.get_mut(&id)
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Tracked ids, ascending.
    pub(crate) fn ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.map.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub(crate) fn entries_mut(&mut self) -> impl Iterator<Item = &mut StreamEntry> {
        self.map.values_mut()
    }

    /// Classifies an id that is not tracked.
    pub(crate) fn classify(&self, id: u32) -> Untracked {
        if self.closed_set.contains(&id) {
            return Untracked::Ended;
        }
        let parity = (id & 1) as usize;
        if id > self.max_opened[parity] {
            return Untracked::New;
        }
        match self.first_opened[parity] {
            Some(first) if self.mid_stream && id < first => Untracked::Unseen,
            _ => Untracked::Ended,
        }
    }

    /// Records that `id` was seen opening.
    pub(crate) fn note_opened(&mut self, id: u32) {
        let parity = (id & 1) as usize;
        self.max_opened[parity] = self.max_opened[parity].max(id);
        self.first_opened[parity].get_or_insert(id);
    }

    /// Starts tracking a stream; returns the stream evicted to make room.
    pub(crate) fn insert(&mut self, entry: StreamEntry) -> Option<StreamEntry> {
        let evicted = if self.map.len() >= self.cap && !self.map.contains_key(&entry.id) {
            let lru = self
                .map
                .values()
                .min_by_key(|e| (e.last_active_ts, e.id))
                .map(|e| e.id);
            let evicted = lru.and_then(|id| self.remove(id));
            if evicted.is_some() {
                self.evictions += 1;
            }
            evicted
        } else {
            None
        };
        self.map.insert(entry.id, entry);
        evicted
    }

    /// Stops tracking a stream, remembering its id as ended.
    pub(crate) fn remove(&mut self, id: u32) -> Option<StreamEntry> {
        let e = self.map.remove(&id)?;
        if self.closed_cap > 0 {
            if self.closed.len() >= self.closed_cap
                && let Some(old) = self.closed.pop_front()
            {
                self.closed_set.remove(&old);
            }
            self.closed.push_back(id);
            self.closed_set.insert(id);
        }
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u32, ts: u64) -> StreamEntry {
        StreamEntry {
            id,
            origin: StreamOrigin::Opened,
            side: [SideState::Open; 2],
            window: [Window::unknown(); 2],
            last_active_ts: ts,
        }
    }

    // Invariant: at the cap, the least recently active stream is evicted
    // and counted.
    #[test]
    fn evicts_least_recently_active() {
        let mut t = StreamTable::new(2, 8, false);
        assert!(t.insert(entry(1, 10)).is_none());
        assert!(t.insert(entry(3, 5)).is_none());
        let evicted = t.insert(entry(5, 20)).unwrap();
        assert_eq!(evicted.id, 3);
        assert_eq!(t.evictions(), 1);
        assert_eq!(t.ids(), [1, 5]);
        assert_eq!(t.classify(3), Untracked::Ended);
    }

    // Invariant: from the start, an untracked id below the highest opened
    // one ended; above it, it is new.
    #[test]
    fn classify_from_start() {
        let mut t = StreamTable::new(8, 8, false);
        t.note_opened(7);
        assert_eq!(t.classify(5), Untracked::Ended);
        assert_eq!(t.classify(9), Untracked::New);
        assert_eq!(t.classify(2), Untracked::New);
    }

    // Invariant: attached mid-connection, ids below the first stream seen
    // opening may be pre-existing streams.
    #[test]
    fn classify_mid_stream() {
        let mut t = StreamTable::new(8, 8, true);
        assert_eq!(t.classify(5), Untracked::New);
        t.note_opened(11);
        t.note_opened(13);
        assert_eq!(t.classify(5), Untracked::Unseen);
        assert_eq!(t.classify(11), Untracked::Ended);
        assert_eq!(t.classify(15), Untracked::New);
    }

    // Invariant: the memory of ended ids is bounded.
    #[test]
    fn closed_memory_is_bounded() {
        let mut t = StreamTable::new(8, 2, false);
        for id in [1, 3, 5] {
            t.insert(entry(id, 0));
            t.remove(id);
        }
        assert_eq!(t.closed.len(), 2);
        assert!(!t.closed_set.contains(&1));
    }

    // Invariant: a stream is finished when no side may send and one ended.
    #[test]
    fn finished_rule() {
        let mut e = entry(1, 0);
        e.side = [SideState::Ended, SideState::Open];
        assert!(!e.is_finished());
        e.side = [SideState::Ended, SideState::Unknown];
        assert!(e.is_finished());
        e.side = [SideState::Unknown, SideState::Unknown];
        assert!(!e.is_finished());
    }
}
