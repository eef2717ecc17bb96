//! The live view's state as a pure state machine: fed key events and
//! snapshots, it keeps the tab, each tab's sort, the filter, the selection,
//! the drill-down and the freeze. It never touches the terminal, so every
//! behaviour is testable without one.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use std::collections::HashMap;

use crate::model::{ConnRow, Snapshot, StallRow, WatchRow};

use super::columns::{Column, Row, matches, octave};

/// The tabs, in display order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Connections,
    Watches,
    Stalls,
}

impl Tab {
    pub const ALL: [Tab; 3] = [Tab::Connections, Tab::Watches, Tab::Stalls];

    fn index(self) -> usize {
        match self {
            Tab::Connections => 0,
            Tab::Watches => 1,
            Tab::Stalls => 2,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Tab::Connections => "Connections",
            Tab::Watches => "Watches",
            Tab::Stalls => "Stall log",
        }
    }
}

/// How a tab is sorted: a column index into its columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub column: usize,
    pub descending: bool,
}

/// What keys do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing a filter after `/`.
    Filter,
    /// The help overlay is shown.
    Help,
}

/// What the caller must do after a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    Quit,
    /// Steer the replay (ignored live).
    Replay(ReplayControl),
}

/// What a key asks of a replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayControl {
    /// Pause, or play on.
    TogglePause,
    /// Feed one more second of the recording, then stay paused.
    Step,
    /// Play (unpaced) until the next stall begins or ends, then pause.
    NextStall,
}

/// Rows moved by PageUp/PageDown.
const PAGE: usize = 10;

/// Which row of each tab is selected: its index in the tab's current view,
/// and its identity, so a refresh or a re-sort keeps the same row selected.
#[derive(Clone, Debug, Default)]
struct Selection<K> {
    cursor: usize,
    anchor: Option<K>,
}

impl<K: Copy + PartialEq> Selection<K> {
    /// Re-finds the anchored row in `keys` (the view in order), or keeps the
    /// cursor's position (clamped) and anchors whatever row is there.
    fn place(&mut self, keys: &[K]) {
        if let Some(anchor) = self.anchor
            && let Some(i) = keys.iter().position(|k| *k == anchor)
        {
            self.cursor = i;
            return;
        }
        self.cursor = self.cursor.min(keys.len().saturating_sub(1));
        self.anchor = keys.get(self.cursor).copied();
    }

    fn move_to(&mut self, keys: &[K], cursor: usize) {
        self.cursor = cursor.min(keys.len().saturating_sub(1));
        self.anchor = keys.get(self.cursor).copied();
    }
}

/// The live view's state.
#[derive(Debug)]
pub struct App {
    /// What is being shown (the targets, or the recording), for the header.
    source: String,
    /// The snapshot on screen; `None` until the first refresh.
    snapshot: Option<Snapshot>,
    /// The newest snapshot that arrived while frozen.
    pending: Option<Snapshot>,
    tab: Tab,
    sorts: [Sort; 3],
    /// Lower-case filter text; empty for none.
    filter: String,
    mode: Mode,
    /// The connection whose watches the Watches tab is limited to, and the
    /// tab the drill-down was opened from (Esc goes back there).
    drill: Option<(u64, Tab)>,
    conns: Selection<u64>,
    watches: Selection<(u64, u32)>,
    stalls: Selection<(u64, u64, u32)>,
    conn_ranking: Ranking<u64>,
    watch_ranking: Ranking<(u64, u32)>,
    stall_ranking: Ranking<(u64, u64, u32)>,
    frozen: bool,
    refreshes: u64,
    status: Option<String>,
    /// How many processes are traced (live only).
    targets: Option<usize>,
    /// A recording is shown (the replay keys work).
    replay: bool,
    /// The replay is paused.
    paused: bool,
}

fn default_sort<R: Row>() -> Sort {
    Sort {
        column: R::DEFAULT_SORT.0,
        descending: R::DEFAULT_SORT.1,
    }
}

/// What keeps a tab's order steady between refreshes: each row's sticky
/// harm rank and its place in the previous view.
#[derive(Clone, Debug)]
struct Ranking<K> {
    /// Per row: ongoing, stall-time octave, delay octave (see
    /// [`Ranking::update`]).
    ranks: HashMap<K, (bool, i64, i64)>,
    /// Per row: its index in the view last shown.
    order: HashMap<K, usize>,
}

impl<K> Default for Ranking<K> {
    fn default() -> Self {
        Self {
            ranks: HashMap::new(),
            order: HashMap::new(),
        }
    }
}

/// How far past its octave a value must move before its row's rank
/// changes (a quarter octave): a value wavering at an octave's edge does
/// not make its row jump back and forth.
const HYSTERESIS: f64 = 0.25;

/// The octave of `ns`, kept at `prev` while within [`HYSTERESIS`] of it.
fn sticky(prev: Option<i64>, ns: u64) -> i64 {
    let x = octave(ns);
    match prev {
        Some(p) if x >= p as f64 - HYSTERESIS && x < (p + 1) as f64 + HYSTERESIS => p,
        _ => x.floor() as i64,
    }
}

impl<K: Copy + Eq + std::hash::Hash> Ranking<K> {
    /// New harm ranks for `rows`, sticky to the previous ones.
    fn update<R: Row<Key = K>>(&mut self, rows: &[R]) {
        let mut ranks = HashMap::with_capacity(rows.len());
        for r in rows {
            let Some(h) = r.harm() else { continue };
            let prev = self.ranks.get(&r.key());
            ranks.insert(
                r.key(),
                (
                    h.ongoing,
                    sticky(prev.map(|p| p.1), h.stall_ns),
                    sticky(prev.map(|p| p.2), h.delay_ns),
                ),
            );
        }
        self.ranks = ranks;
    }

    /// Remembers the order shown.
    fn shown(&mut self, keys: impl Iterator<Item = K>) {
        self.order = keys.enumerate().map(|(i, k)| (k, i)).collect();
    }
}

/// `rows` that match `needle` and `keep`, ordered by `sort`. Column 0 of a
/// ranked table is the worst-first order, by the sticky ranks. Ties keep
/// their previous places (then the rows' identity order), so equal rows
/// never swap between refreshes.
fn view<'a, R: Row>(
    rows: &'a [R],
    sort: Sort,
    ranking: &Ranking<R::Key>,
    needle: &str,
    keep: impl Fn(&R) -> bool,
) -> Vec<&'a R> {
    let columns = R::columns();
    let column = sort.column.min(columns.len() - 1);
    let cmp = columns[column].cmp;
    let by_harm = column == 0 && !ranking.ranks.is_empty();
    let mut out: Vec<&R> = rows
        .iter()
        .filter(|r| keep(r) && matches(*r, needle))
        .collect();
    let place = |r: &R| ranking.order.get(&r.key()).copied().unwrap_or(usize::MAX);
    out.sort_by(|a, b| {
        let by_column = if by_harm {
            ranking
                .ranks
                .get(&a.key())
                .cmp(&ranking.ranks.get(&b.key()))
        } else {
            cmp(a, b)
        };
        let by_column = if sort.descending {
            by_column.reverse()
        } else {
            by_column
        };
        by_column
            .then_with(|| place(a).cmp(&place(b)))
            .then_with(|| a.key().cmp(&b.key()))
    });
    out
}

impl App {
    /// `source` names what is shown, e.g. `live: --comm kube-apiserver`.
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            snapshot: None,
            pending: None,
            tab: Tab::Connections,
            sorts: [
                default_sort::<ConnRow>(),
                default_sort::<WatchRow>(),
                default_sort::<StallRow>(),
            ],
            filter: String::new(),
            mode: Mode::Normal,
            drill: None,
            conns: Selection::default(),
            watches: Selection::default(),
            stalls: Selection::default(),
            conn_ranking: Ranking::default(),
            watch_ranking: Ranking::default(),
            stall_ranking: Ranking::default(),
            frozen: false,
            refreshes: 0,
            status: None,
            targets: None,
            replay: false,
            paused: false,
        }
    }

    // ---- what the renderer reads ----

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    pub fn tab(&self) -> Tab {
        self.tab
    }

    pub fn sort(&self, tab: Tab) -> Sort {
        self.sorts[tab.index()]
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn drill(&self) -> Option<u64> {
        self.drill.map(|(conn, _)| conn)
    }

    /// How many processes are traced, when live.
    pub fn targets(&self) -> Option<usize> {
        self.targets
    }

    pub fn frozen(&self) -> bool {
        self.frozen
    }

    pub fn replay(&self) -> bool {
        self.replay
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    /// A recording is shown: the replay keys (`p`, `.`, `n`) work.
    pub fn set_replay(&mut self, replay: bool) {
        self.replay = replay;
    }

    /// Whether the replay is paused now (the feed decides: a step or the
    /// next stall pause it).
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Snapshots shown so far.
    pub fn refreshes(&self) -> u64 {
        self.refreshes
    }

    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// The selected row's index in the current tab's view.
    pub fn selected(&self) -> usize {
        match self.tab {
            Tab::Connections => self.conns.cursor,
            Tab::Watches => self.watches.cursor,
            Tab::Stalls => self.stalls.cursor,
        }
    }

    /// The connections tab's rows, filtered and sorted.
    pub fn connections(&self) -> Vec<&ConnRow> {
        let rows = self.snapshot.as_ref().map_or(&[][..], |s| &s.connections);
        view(
            rows,
            self.sorts[0],
            &self.conn_ranking,
            &self.filter,
            |_| true,
        )
    }

    /// The watches tab's rows, filtered, sorted and limited to the drilled
    /// connection.
    pub fn watches(&self) -> Vec<&WatchRow> {
        let rows = self.snapshot.as_ref().map_or(&[][..], |s| &s.watches);
        view(
            rows,
            self.sorts[1],
            &self.watch_ranking,
            &self.filter,
            |r| self.drill().is_none_or(|c| r.conn == c),
        )
    }

    /// The stall log's rows, filtered and sorted, stalls still going on
    /// first whatever the sort: they are what on-call is looking for.
    pub fn stalls(&self) -> Vec<&StallRow> {
        let rows = self.snapshot.as_ref().map_or(&[][..], |s| &s.stalls);
        let mut out = view(
            rows,
            self.sorts[2],
            &self.stall_ranking,
            &self.filter,
            |_| true,
        );
        // Stable: each part keeps the chosen order.
        out.sort_by_key(|r| !r.ongoing);
        out
    }

    // ---- inputs ----

    /// A new snapshot from the model. While frozen it is kept aside and
    /// shown on unfreeze.
    pub fn on_snapshot(&mut self, snapshot: Snapshot) {
        if self.frozen {
            self.pending = Some(snapshot);
            return;
        }
        self.conn_ranking.update(&snapshot.connections);
        self.watch_ranking.update(&snapshot.watches);
        self.snapshot = Some(snapshot);
        self.refreshes += 1;
        self.replace();
    }

    /// A line for the header (e.g. "end of recording").
    pub fn set_status(&mut self, status: Option<String>) {
        self.status = status;
    }

    /// How many processes are traced (live mode), so an empty view can
    /// say whether the targets are gone.
    pub fn set_targets(&mut self, targets: Option<usize>) {
        self.targets = targets;
    }

    /// A key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::Continue;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        match self.mode {
            Mode::Help => {
                if key.code == KeyCode::Char('q') {
                    return Action::Quit;
                }
                self.mode = Mode::Normal;
            }
            Mode::Filter => self.on_filter_key(key),
            Mode::Normal => return self.on_normal_key(key, ctrl),
        }
        Action::Continue
    }

    fn on_filter_key(&mut self, key: KeyEvent) {
        match key.code {
            KeyCode::Enter => self.mode = Mode::Normal,
            KeyCode::Esc => {
                self.filter.clear();
                self.mode = Mode::Normal;
            }
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Char(c) => self.filter.extend(c.to_lowercase()),
            _ => return,
        }
        self.replace();
    }

    fn on_normal_key(&mut self, key: KeyEvent, ctrl: bool) -> Action {
        if ctrl {
            return Action::Continue;
        }
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Char('/') => self.mode = Mode::Filter,
            KeyCode::Char('f' | ' ') => self.toggle_freeze(),
            KeyCode::Tab => self.switch(Tab::ALL[(self.tab.index() + 1) % 3]),
            KeyCode::BackTab => self.switch(Tab::ALL[(self.tab.index() + 2) % 3]),
            KeyCode::Char('1') => self.switch(Tab::Connections),
            KeyCode::Char('2') => self.switch(Tab::Watches),
            KeyCode::Char('3') => self.switch(Tab::Stalls),
            KeyCode::Char('s' | '>') => self.shift_sort(1),
            KeyCode::Char('<') => self.shift_sort(-1),
            KeyCode::Char('S' | 'r') => {
                let sort = &mut self.sorts[self.tab.index()];
                sort.descending = !sort.descending;
                self.replace();
            }
            KeyCode::Up | KeyCode::Char('k') => self.step(-1),
            KeyCode::Down | KeyCode::Char('j') => self.step(1),
            KeyCode::PageUp => self.step(-(PAGE as isize)),
            KeyCode::PageDown => self.step(PAGE as isize),
            KeyCode::Home | KeyCode::Char('g') => self.jump(0),
            KeyCode::End | KeyCode::Char('G') => self.jump(usize::MAX),
            KeyCode::Enter => self.drill_in(),
            KeyCode::Esc => self.back(),
            KeyCode::Char('p') if self.replay => {
                return Action::Replay(ReplayControl::TogglePause);
            }
            KeyCode::Char('.') if self.replay => return Action::Replay(ReplayControl::Step),
            KeyCode::Char('n') if self.replay => {
                return Action::Replay(ReplayControl::NextStall);
            }
            _ => {}
        }
        Action::Continue
    }

    fn toggle_freeze(&mut self) {
        self.frozen = !self.frozen;
        if !self.frozen
            && let Some(newest) = self.pending.take()
        {
            self.on_snapshot(newest);
        }
    }

    fn switch(&mut self, tab: Tab) {
        self.drill = None;
        self.tab = tab;
        self.replace();
    }

    /// Moves the sort to the next (or previous) column; numbers sort
    /// largest first, text A to Z.
    fn shift_sort(&mut self, by: isize) {
        let count = match self.tab {
            Tab::Connections => ConnRow::columns().len(),
            Tab::Watches => WatchRow::shown_columns(self.drill().is_some()).len(),
            Tab::Stalls => StallRow::columns().len(),
        };
        let sort = &mut self.sorts[self.tab.index()];
        sort.column = (sort.column as isize + by).rem_euclid(count as isize) as usize;
        sort.descending = match self.tab {
            Tab::Connections => numeric(ConnRow::columns(), sort.column),
            Tab::Watches => numeric(WatchRow::columns(), sort.column),
            Tab::Stalls => numeric(StallRow::columns(), sort.column),
        };
        self.replace();
    }

    fn keys(&self) -> Keys {
        match self.tab {
            Tab::Connections => Keys::Conns(self.connections().iter().map(|r| r.key()).collect()),
            Tab::Watches => Keys::Watches(self.watches().iter().map(|r| r.key()).collect()),
            Tab::Stalls => Keys::Stalls(self.stalls().iter().map(|r| r.key()).collect()),
        }
    }

    fn jump(&mut self, to: usize) {
        match self.keys() {
            Keys::Conns(k) => self.conns.move_to(&k, to),
            Keys::Watches(k) => self.watches.move_to(&k, to),
            Keys::Stalls(k) => self.stalls.move_to(&k, to),
        }
    }

    fn step(&mut self, by: isize) {
        let to = self.selected().saturating_add_signed(by);
        self.jump(to);
    }

    /// Re-places every tab's selection after the rows changed.
    fn replace(&mut self) {
        let conns: Vec<u64> = self.connections().iter().map(|r| r.key()).collect();
        let watches: Vec<(u64, u32)> = self.watches().iter().map(|r| r.key()).collect();
        let stalls: Vec<(u64, u64, u32)> = self.stalls().iter().map(|r| r.key()).collect();
        self.conns.place(&conns);
        self.watches.place(&watches);
        self.stalls.place(&stalls);
        self.conn_ranking.shown(conns.into_iter());
        self.watch_ranking.shown(watches.into_iter());
        self.stall_ranking.shown(stalls.into_iter());
    }

    /// Enter: from a connection (or a stall on one) to its watches.
    fn drill_in(&mut self) {
        let conn = match self.tab {
            Tab::Connections => self.connections().get(self.conns.cursor).map(|r| r.conn),
            Tab::Stalls => self.stalls().get(self.stalls.cursor).and_then(|r| r.conn),
            Tab::Watches => None,
        };
        if let Some(conn) = conn {
            self.drill = Some((conn, self.tab));
            self.tab = Tab::Watches;
            self.watches = Selection::default();
            self.replace();
        }
    }

    /// Esc: out of a drill-down (back to the tab it was opened from, on
    /// the same row), else clears the filter.
    fn back(&mut self) {
        if let Some((conn, from)) = self.drill.take() {
            self.tab = from;
            if from == Tab::Connections {
                self.conns.anchor = Some(conn);
            }
        } else {
            self.filter.clear();
        }
        self.replace();
    }
}

fn numeric<R>(columns: &[Column<R>], i: usize) -> bool {
    columns.get(i).is_some_and(|c| c.numeric)
}

enum Keys {
    Conns(Vec<u64>),
    Watches(Vec<(u64, u32)>),
    Stalls(Vec<(u64, u64, u32)>),
}
