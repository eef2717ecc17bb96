//! The HPACK dynamic table ([RFC 7541 §2.3.2, §4]), including the case this
//! tool meets most: a table whose older part is unknown because we joined
//! the connection late (or lost a header block in a gap).
//!
//! # Partial knowledge
//!
//! The real table is `[entries inserted since we started watching]` (newest
//! first) followed by `[entries from before, unknown to us]`. Indices count
//! from the newest entry, so the entries we saw inserted keep their exact
//! indices however many unknown ones sit behind them: an index within our
//! entries resolves, an index past them is [`Lookup::Unknown`] (never a
//! guess). Eviction removes the oldest entries first, so the unknown ones go
//! before any of ours; once ours alone fill the table's capacity, no unknown
//! entry can remain and the table is *complete*.
//!
//! The capacity itself may be unknown after joining. We then use the best
//! bound available (a size update seen since, else the acknowledged
//! `SETTINGS_HEADER_TABLE_SIZE`, else an assumed default), and say which.
//!
//! # Bounds
//!
//! Memory is bounded by the capacity when known and by a retain cap
//! otherwise. Keeping an entry the real table already evicted is harmless
//! (the encoder never refers to it); dropping one it still has only turns
//! later references to it into `Unknown`, and makes the table partial again.
//!
//! An entry whose name was itself unknown (a literal that named an unknown
//! entry) has an unknown size; we count it at its lower bound
//! (`value + 32`), which keeps entries too long rather than too short.
//! While such an entry is in the table, the table is not *complete* either:
//! complete means every reference decodes to known bytes.

use std::collections::VecDeque;

use super::{HpackError, static_table::STATIC_TABLE};

/// Per-entry overhead in the table size (RFC 7541 §4.1).
pub(crate) const ENTRY_OVERHEAD: usize = 32;

/// What a complete table's capacity is known from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableSizeBasis {
    /// A dynamic table size update seen since we started watching.
    SizeUpdate,
    /// The acknowledged `SETTINGS_HEADER_TABLE_SIZE`, an upper bound of the
    /// capacity.
    SettingsLimit,
    /// The configured assumption (RFC default 4096); unverified. If a later
    /// reference shows it wrong the table goes back to partial.
    Assumed,
}

/// A dynamic table entry.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// `None` when the literal that inserted it named an unknown entry.
    pub(crate) name: Option<Box<[u8]>>,
    pub(crate) value: Box<[u8]>,
    /// Exact size, or its lower bound when `name` is unknown.
    size: usize,
}

/// Result of resolving an index.
#[derive(Debug)]
pub(crate) enum Lookup<'a> {
    Static(&'static [u8], &'static [u8]),
    Dynamic(&'a Entry),
    /// Refers to an entry inserted before we started watching.
    Unknown,
}

/// Whether entries from before we started watching can remain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Knowledge {
    /// None can: every entry is one we saw inserted.
    NoRemnants {
        basis: TableSizeBasis,
    },
    Partial,
}

/// A dynamic table, possibly partially known.
#[derive(Debug)]
pub(crate) struct DynamicTable {
    /// Newest first.
    entries: VecDeque<Entry>,
    /// Sum of entry sizes (a lower bound if some are inexact).
    size: usize,
    /// Current capacity, if known.
    capacity: Option<u32>,
    /// Acknowledged `SETTINGS_HEADER_TABLE_SIZE`, if known.
    limit: Option<u32>,
    knowledge: Knowledge,
    /// Entries whose name is unknown.
    unknown_names: usize,
    /// [`DynamicTable::is_complete`] as last reported.
    complete_reported: bool,
    /// Memory bound when the capacity is unknown or larger.
    retain_cap: usize,
    /// Capacity assumed for completeness when nothing better is known.
    assumed: Option<u32>,
    /// Set when the table becomes complete; taken by the decoder.
    became_complete: Option<TableSizeBasis>,
    evictions: u64,
}

impl DynamicTable {
    /// A table from the start of a connection: empty, complete, capacity
    /// and limit at the protocol default.
    pub(crate) fn from_start(retain_cap: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            size: 0,
            capacity: Some(4096),
            limit: Some(4096),
            // The capacity is exactly known from the start.
            knowledge: Knowledge::NoRemnants {
                basis: TableSizeBasis::SizeUpdate,
            },
            unknown_names: 0,
            complete_reported: true,
            retain_cap,
            assumed: Some(4096),
            became_complete: None,
            evictions: 0,
        }
    }

    /// A table joined mid-connection: nothing known.
    pub(crate) fn mid_stream(retain_cap: usize, assumed: Option<u32>) -> Self {
        let mut t = Self::from_start(retain_cap);
        t.assumed = assumed;
        t.limit = None;
        t.forget_all();
        t
    }

    /// Header blocks were lost: forget the entries (their indices are no
    /// longer known) and the capacity (a size update may have been lost).
    /// The SETTINGS limit is tracked elsewhere and survives.
    pub(crate) fn forget_all(&mut self) {
        self.evictions += self.entries.len() as u64;
        self.entries.clear();
        self.size = 0;
        self.unknown_names = 0;
        self.capacity = None;
        self.knowledge = Knowledge::Partial;
        self.became_complete = None;
        self.complete_reported = false;
        self.check_complete();
    }

    /// Every reference resolves to known bytes: no entry from before we
    /// started watching can remain, and no entry has an unknown name.
    pub(crate) fn is_complete(&self) -> bool {
        matches!(self.knowledge, Knowledge::NoRemnants { .. }) && self.unknown_names == 0
    }

    pub(crate) fn take_became_complete(&mut self) -> Option<TableSizeBasis> {
        self.became_complete.take()
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.evictions
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn capacity(&self) -> Option<u32> {
        self.capacity
    }

    /// Resolves an HPACK index (1-based; static first).
    pub(crate) fn get(&mut self, index: u32) -> Result<Lookup<'_>, HpackError> {
        let i = index as usize;
        if i == 0 {
            return Err(HpackError::ZeroIndex);
        }
        if let Some(&(name, value)) = STATIC_TABLE.get(i - 1) {
            return Ok(Lookup::Static(name, value));
        }
        let j = i - 1 - STATIC_TABLE.len();
        if j < self.entries.len() {
            return Ok(Lookup::Dynamic(&self.entries[j]));
        }
        match self.knowledge {
            Knowledge::Partial => Ok(Lookup::Unknown),
            Knowledge::NoRemnants {
                basis: TableSizeBasis::Assumed,
            } => {
                // The assumed capacity was too small: entries from before we
                // joined are still there.
                self.knowledge = Knowledge::Partial;
                self.update_complete();
                Ok(Lookup::Unknown)
            }
            Knowledge::NoRemnants { .. } => Err(HpackError::InvalidIndex {
                index,
                dynamic_len: self.entries.len(),
            }),
        }
    }

    /// The acknowledged `SETTINGS_HEADER_TABLE_SIZE` changed (`None`: it may
    /// have changed and we do not know to what).
    pub(crate) fn set_limit(&mut self, limit: Option<u32>) {
        self.limit = limit;
        // The capacity only changes with the encoder's size update, which
        // must follow a decrease; until then evict against what we know.
        let (cap, exact) = self.eviction_target();
        self.evict_to(cap, exact);
        self.check_complete();
    }

    /// A dynamic table size update (RFC 7541 §6.3).
    pub(crate) fn size_update(&mut self, new: u32) -> Result<(), HpackError> {
        if let Some(limit) = self.limit
            && new > limit
        {
            return Err(HpackError::SizeUpdateTooLarge { size: new, limit });
        }
        self.capacity = Some(new);
        let (cap, exact) = self.eviction_target();
        self.evict_to(cap, exact);
        self.check_complete();
        Ok(())
    }

    /// Inserts an entry (RFC 7541 §4.4). `name` is `None` if unknown.
    pub(crate) fn insert(&mut self, name: Option<Box<[u8]>>, value: Box<[u8]>) {
        // An unknown name is at least empty.
        let size = name.as_ref().map_or(0, |n| n.len()) + value.len() + ENTRY_OVERHEAD;
        let (cap, exact) = self.eviction_target();
        if size > cap {
            // An entry larger than the capacity empties the table and is not
            // added. If `cap` is the real capacity (or bounds it from above)
            // that also empties the unknown part.
            self.evictions += self.entries.len() as u64;
            self.entries.clear();
            self.size = 0;
            self.unknown_names = 0;
            self.mark_evicted(exact);
            self.check_complete();
            return;
        }
        self.unknown_names += usize::from(name.is_none());
        self.entries.push_front(Entry { name, value, size });
        self.size += size;
        self.evict_to(cap, exact);
        self.check_complete();
    }

    /// The size to evict down to, and whether evicting there mirrors the
    /// real table (`Some(basis)`) or may drop entries it still holds
    /// (`None`: only a memory bound).
    fn eviction_target(&self) -> (usize, Option<TableSizeBasis>) {
        let bound = |v: u32, basis| {
            let v = v as usize;
            if v <= self.retain_cap {
                (v, Some(basis))
            } else {
                (self.retain_cap, None)
            }
        };
        match (self.capacity, self.limit) {
            (Some(c), _) => bound(c, TableSizeBasis::SizeUpdate),
            // The capacity is at most the limit: evicting at the limit keeps
            // entries the real table may have dropped, which is harmless.
            (None, Some(l)) => bound(l, TableSizeBasis::SettingsLimit),
            (None, None) => (self.retain_cap, None),
        }
    }

    fn evict_to(&mut self, cap: usize, exact: Option<TableSizeBasis>) {
        let mut evicted = false;
        while self.size > cap {
            let Some(e) = self.entries.pop_back() else {
                break;
            };
            self.size -= e.size;
            self.unknown_names -= usize::from(e.name.is_none());
            self.evictions += 1;
            evicted = true;
        }
        if evicted {
            self.mark_evicted(exact);
        }
    }

    /// One of *our* entries went: with an exact bound every unknown entry
    /// (older) went before it; with a memory bound we may have dropped one
    /// the encoder can still name.
    fn mark_evicted(&mut self, exact: Option<TableSizeBasis>) {
        match exact {
            Some(basis) => self.set_no_remnants(basis),
            None => self.knowledge = Knowledge::Partial,
        }
    }

    /// While partial: if our entries leave no room for even an empty
    /// unknown entry (32 bytes) under the capacity bound, none remain.
    /// Then reports a change of completeness.
    fn check_complete(&mut self) {
        if self.knowledge == Knowledge::Partial {
            let bound = match (self.capacity, self.limit, self.assumed) {
                (Some(c), _, _) => Some((c, TableSizeBasis::SizeUpdate)),
                (None, Some(l), _) => Some((l, TableSizeBasis::SettingsLimit)),
                (None, None, Some(a)) => Some((a, TableSizeBasis::Assumed)),
                (None, None, None) => None,
            };
            if let Some((bound, basis)) = bound
                && self.size + ENTRY_OVERHEAD > bound as usize
            {
                self.set_no_remnants(basis);
            }
        }
        self.update_complete();
    }

    fn set_no_remnants(&mut self, basis: TableSizeBasis) {
        if self.knowledge == Knowledge::Partial {
            self.knowledge = Knowledge::NoRemnants { basis };
        }
    }

    /// Records the moment the table becomes complete.
    fn update_complete(&mut self) {
        let now = self.is_complete();
        if now
            && !self.complete_reported
            && let Knowledge::NoRemnants { basis } = self.knowledge
        {
            self.became_complete = Some(basis);
        }
        self.complete_reported = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Box<[u8]> {
        s.as_bytes().into()
    }

    fn value_at(t: &mut DynamicTable, i: u32) -> Option<Vec<u8>> {
        match t.get(i).unwrap() {
            Lookup::Dynamic(e) => Some(e.value.to_vec()),
            Lookup::Static(..) => panic!("static"),
            Lookup::Unknown => None,
        }
    }

    // Invariant: entries inserted after joining resolve at their exact
    // index; indices past them are Unknown, never a guess.
    #[test]
    fn mid_stream_resolves_new_entries_and_marks_old_unknown() {
        let mut t = DynamicTable::mid_stream(65536, None);
        t.insert(Some(b("a")), b("1"));
        t.insert(Some(b("b")), b("2"));
        assert_eq!(value_at(&mut t, 62).as_deref(), Some(&b"2"[..]));
        assert_eq!(value_at(&mut t, 63).as_deref(), Some(&b"1"[..]));
        assert_eq!(value_at(&mut t, 64), None);
        assert!(!t.is_complete());
    }

    // Invariant: once our entries fill the known capacity, no older entry
    // can remain: the table is complete and out-of-range is an error.
    #[test]
    fn becomes_complete_when_new_entries_fill_capacity() {
        let mut t = DynamicTable::mid_stream(65536, None);
        t.size_update(100).unwrap();
        assert!(!t.is_complete());
        // 1 + 35 + 32 = 68: an unknown 32-byte entry could still fit.
        t.insert(Some(b("n")), b(&"v".repeat(35)));
        assert!(!t.is_complete());
        // 68 + 33 > 100: it cannot.
        t.insert(Some(b("")), b(""));
        t.insert(Some(b("m")), b(&"v".repeat(36)));
        assert!(t.is_complete());
        assert_eq!(t.take_became_complete(), Some(TableSizeBasis::SizeUpdate));
        assert!(matches!(
            t.get(63),
            Err(HpackError::InvalidIndex { index: 63, .. })
        ));
    }

    // Invariant: an entry with an unknown name keeps the table incomplete
    // (a reference to it would be Unknown) until it is evicted.
    #[test]
    fn unknown_names_block_completeness() {
        let mut t = DynamicTable::mid_stream(65536, None);
        t.size_update(100).unwrap();
        t.insert(None, b(&"v".repeat(40))); // >= 72 bytes
        assert!(!t.is_complete());
        t.insert(Some(b("n")), b(&"w".repeat(40))); // evicts the unknown one
        assert!(t.is_complete());
        assert_eq!(t.take_became_complete(), Some(TableSizeBasis::SizeUpdate));
    }

    // Invariant: a size update to 0 empties the table, so it is complete.
    #[test]
    fn size_update_to_zero_completes() {
        let mut t = DynamicTable::mid_stream(65536, None);
        t.size_update(0).unwrap();
        assert!(t.is_complete());
    }

    // Invariant: completeness on an *assumed* capacity is withdrawn when a
    // reference proves older entries still exist.
    #[test]
    fn assumed_completeness_is_withdrawn() {
        let mut t = DynamicTable::mid_stream(65536, Some(64));
        t.insert(Some(b("n")), b("v"));
        assert_eq!(t.take_became_complete(), Some(TableSizeBasis::Assumed));
        assert!(matches!(t.get(63), Ok(Lookup::Unknown)));
        assert!(!t.is_complete());
    }

    // Invariant: eviction is oldest-first, exact sizes, counted (RFC 7541
    // §4.4); an oversized entry empties the table.
    #[test]
    fn eviction_order_and_counter() {
        let mut t = DynamicTable::from_start(65536);
        t.size_update(100).unwrap();
        t.insert(Some(b("a")), b("1")); // 34
        t.insert(Some(b("b")), b("2")); // 68
        t.insert(Some(b("c")), b("3")); // 102 > 100: evict "a"
        assert_eq!(t.len(), 2);
        assert_eq!(t.size(), 68);
        assert_eq!(t.evictions(), 1);
        assert_eq!(value_at(&mut t, 63).as_deref(), Some(&b"2"[..]));
        t.insert(Some(b("big")), b(&"x".repeat(100)));
        assert_eq!(t.len(), 0);
        assert_eq!(t.evictions(), 3);
    }

    // Invariant: a size update above the acknowledged limit is an error.
    #[test]
    fn size_update_respects_limit() {
        let mut t = DynamicTable::from_start(65536);
        assert!(t.size_update(4097).is_err());
        t.set_limit(Some(8192));
        assert!(t.size_update(8192).is_ok());
        assert_eq!(t.capacity(), Some(8192));
    }

    // Invariant: memory stays under the retain cap even when the capacity
    // is unknown, and dropping entries that way leaves the table partial.
    #[test]
    fn retain_cap_bounds_memory() {
        let mut t = DynamicTable::mid_stream(100, None);
        for _ in 0..10 {
            t.insert(Some(b("n")), b("v"));
        }
        assert!(t.size() <= 100);
        assert!(!t.is_complete());
    }
}
