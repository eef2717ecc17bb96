//! The stall log: the most recent stalls, newest first, bounded (the
//! oldest line goes, and is counted, when it is full).

use std::collections::VecDeque;

use super::snapshot::StallRow;

#[derive(Clone, Debug)]
pub(crate) struct StallLog {
    cap: usize,
    rows: VecDeque<StallRow>,
    evicted: u64,
}

impl StallLog {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            rows: VecDeque::new(),
            evicted: 0,
        }
    }

    /// Adds a stall; the log stays ordered by end time, newest first (a
    /// socket stall and a window stall may end out of order).
    pub(crate) fn push(&mut self, row: StallRow) {
        let at = self
            .rows
            .iter()
            .position(|r| r.ts <= row.ts)
            .unwrap_or(self.rows.len());
        self.rows.insert(at, row);
        if self.rows.len() > self.cap {
            self.rows.pop_back();
            self.evicted += 1;
        }
    }

    pub(crate) fn rows(&self) -> impl Iterator<Item = &StallRow> {
        self.rows.iter()
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ts: u64) -> StallRow {
        StallRow {
            ts,
            ..StallRow::default()
        }
    }

    #[test]
    fn newest_first_and_bounded() {
        let mut log = StallLog::new(3);
        for ts in [10, 30, 20, 40] {
            log.push(row(ts));
        }
        let order: Vec<u64> = log.rows().map(|r| r.ts).collect();
        assert_eq!(order, [40, 30, 20]);
        assert_eq!(log.evicted(), 1);
    }
}
