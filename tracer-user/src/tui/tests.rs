//! The view on ratatui's TestBackend: hand-built snapshots rendered, keys
//! pressed, cells read back.

use ratatui::{
    Terminal,
    backend::TestBackend,
    buffer::Buffer,
    crossterm::event::{KeyCode, KeyEvent, KeyModifiers},
    style::Color,
};

use super::{Action, App, Mode, Tab, render};
use crate::model::{ConnRow, Snapshot, StallRow, Totals, WatchRow};

fn conn(id: u64, client: &str, peer: &str, tx: f64, rx: f64) -> ConnRow {
    ConnRow {
        conn: id,
        pid: 4242,
        comm: "kube-apiserver".into(),
        peer: Some(peer.into()),
        client: Some(client.into()),
        tls: true,
        streams: 2,
        watches: 2,
        tx_bytes_per_s: tx,
        rx_bytes_per_s: rx,
        unacked_bytes: Some(1000),
        srtt_us: Some(250),
        stall_ns_last_min: 0,
        max_concurrent_streams: Some(250),
    }
}

fn watch(conn: u64, stream: u32, resource: &str, client: &str, events: f64) -> WatchRow {
    WatchRow {
        conn,
        stream,
        resource: resource.into(),
        namespace: "default".into(),
        client: Some(client.into()),
        resource_version_kind: "exact".into(),
        events_per_s: events,
        bytes_per_s: events * 1000.0,
        last_resource_version: format!("{}", 1000 + stream),
        p99_apiserver_ns: Some(2_000_000),
        p99_delay_ns: Some(5_000_000),
        last_writer: Some("kubectl".into()),
        last_etcd_watch_delay_ns: Some(3_000_000),
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        now: 1_704_164_645_678_000_000,
        totals: Totals {
            events_per_s: 42.0,
            bytes_per_s: 12_345.0,
            connections: 3,
            watches: 4,
            apiserver_p99_ns: Some(250_000_000),
            apiserver_events_last_min: 900,
            slo_met: Some(true),
            stalls_last_min: 1,
            lost_bytes: 0,
            lists_last_min: 2,
        },
        connections: vec![
            conn(1, "kube-scheduler", "10.0.0.1:40001", 500.0, 30.0),
            conn(2, "kubelet", "10.0.0.2:40002", 9_000.0, 10.0),
            conn(
                3,
                "kube-controller-manager",
                "10.0.0.3:40003",
                2_000.0,
                20.0,
            ),
        ],
        watches: vec![
            watch(1, 1, "pods", "kube-scheduler", 1.0),
            watch(2, 1, "pods", "kubelet", 30.0),
            watch(2, 3, "configmaps", "kubelet", 2.0),
            watch(3, 5, "deployments.apps", "kube-controller-manager", 9.0),
        ],
        stalls: vec![StallRow {
            ongoing: false,
            ts: 1_704_164_645_000_000_000,
            conn: Some(2),
            cause: "stream_window".into(),
            stream: Some(1),
            duration_ns: 1_500_000_000,
            client: Some("kubelet".into()),
            peer: Some("10.0.0.2:40002".into()),
            held: vec![(1, 1_500_000_000)],
            filled_by: None,
        }],
    }
}

fn draw(app: &App) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(160, 30)).unwrap();
    terminal.draw(|f| render(f, app)).unwrap();
    terminal.backend().buffer().clone()
}

fn lines(buffer: &Buffer) -> Vec<String> {
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

fn screen(app: &App) -> String {
    lines(&draw(app)).join("\n")
}

/// The table's data rows (lines inside the box after the header row), in
/// screen order, as the text of the column that identifies them.
fn rows_containing(app: &App, needles: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for line in lines(&draw(app)) {
        for n in needles {
            if line.contains(n) && line.starts_with('│') {
                out.push((*n).to_owned());
            }
        }
    }
    out
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, keys: &str) {
    for c in keys.chars() {
        assert_eq!(app.on_key(key(KeyCode::Char(c))), Action::Continue, "{c}");
    }
}

fn app() -> App {
    let mut app = App::new("replay: test.wtrec");
    app.on_snapshot(snapshot());
    app
}

const CLIENTS: [&str; 3] = ["kubelet", "kube-controller-manager", "kube-scheduler"];

#[test]
fn header_shows_totals_time_and_the_slo() {
    let text = screen(&app());
    assert!(text.contains("replay: test.wtrec"), "{text}");
    assert!(text.contains("03:04:05.678 UTC"), "{text}");
    assert!(
        text.contains(
            "conns 3  watches 4  events/s 42  bytes/s 12.3K  lists/min 2  stalls/min 1  lost 0B"
        ),
        "{text}"
    );
    assert!(text.contains(" MET "), "{text}");
    assert!(text.contains("P99 250ms over 900 events"), "{text}");
    assert!(!text.contains("FROZEN"));
    assert!(text.contains("1 Connections (3)"), "{text}");
    assert!(text.contains("2 Watches (4)"), "{text}");
    assert!(text.contains("3 Stall log (1)"), "{text}");
}

/// The background of the SLO verdict's first cell.
fn slo_colour(slo_met: Option<bool>) -> (Color, String) {
    let mut snap = snapshot();
    snap.totals.slo_met = slo_met;
    if slo_met.is_none() {
        snap.totals.apiserver_p99_ns = None;
    }
    let mut app = App::new("x");
    app.on_snapshot(snap);
    let buffer = draw(&app);
    let text = lines(&buffer)[2].clone();
    let x = text.find("P99 ApiserverTimeSpan").unwrap();
    let x = x + text[x..].find("  ").unwrap() + 2;
    let column = text[..x].chars().count() as u16;
    (buffer[(column, 2)].bg, text)
}

#[test]
fn the_slo_is_green_when_met_red_when_not_and_grey_when_unknown() {
    let (met, text) = slo_colour(Some(true));
    assert_eq!(met, Color::Green, "{text}");
    let (missed, text) = slo_colour(Some(false));
    assert_eq!(missed, Color::Red, "{text}");
    assert!(text.contains("NOT MET"), "{text}");
    let (unknown, text) = slo_colour(None);
    assert_eq!(unknown, Color::DarkGray, "{text}");
    assert!(text.contains("UNKNOWN"), "{text}");
    assert!(text.contains("no event with a source time"), "{text}");
}

#[test]
fn connections_sort_by_tx_then_any_column_either_way() {
    let mut app = app();
    // Default: TX B/s, largest first.
    assert_eq!(
        rows_containing(&app, &CLIENTS),
        ["kubelet", "kube-controller-manager", "kube-scheduler"]
    );
    assert!(screen(&app).contains("TX B/s▼"));
    // Next column: RX B/s, largest first.
    press(&mut app, "s");
    assert!(screen(&app).contains("RX B/s▼"));
    assert_eq!(
        rows_containing(&app, &CLIENTS),
        ["kube-scheduler", "kube-controller-manager", "kubelet"]
    );
    // Reversed.
    press(&mut app, "S");
    assert!(screen(&app).contains("RX B/s▲"));
    assert_eq!(
        rows_containing(&app, &CLIENTS),
        ["kubelet", "kube-controller-manager", "kube-scheduler"]
    );
    // Back past TX to WATCHES (all equal: identity order), then the
    // client column, A to Z (text sorts ascending when chosen).
    press(&mut app, "<<");
    assert!(screen(&app).contains("WATCHES▼"));
    assert_eq!(
        rows_containing(&app, &CLIENTS),
        ["kube-scheduler", "kubelet", "kube-controller-manager"]
    );
    press(&mut app, "<<<");
    assert!(screen(&app).contains("CLIENT▲"));
    assert_eq!(
        rows_containing(&app, &CLIENTS),
        ["kube-controller-manager", "kube-scheduler", "kubelet"]
    );
}

#[test]
fn the_selection_stays_on_its_row_across_refreshes_and_resorts() {
    let mut app = app();
    app.on_key(key(KeyCode::Down));
    assert_eq!(app.selected(), 1);
    assert_eq!(app.connections()[1].conn, 3);
    // conn 3 becomes the busiest: it moves to the top and stays selected.
    let mut snap = snapshot();
    snap.connections[2].tx_bytes_per_s = 99_999.0;
    app.on_snapshot(snap);
    assert_eq!(app.selected(), 0);
    assert_eq!(app.connections()[0].conn, 3);
    let text = screen(&app);
    let selected = text.lines().find(|l| l.contains("> ")).unwrap();
    assert!(selected.contains("kube-controller-manager"), "{selected}");
    // It vanishes: the cursor stays in place, clamped.
    let mut snap = snapshot();
    snap.connections.retain(|c| c.conn != 3);
    app.on_snapshot(snap);
    assert_eq!(app.selected(), 0);
    app.on_key(key(KeyCode::End));
    assert_eq!(app.selected(), 1);
    app.on_key(key(KeyCode::Down));
    assert_eq!(app.selected(), 1, "no move past the end");
}

#[test]
fn a_filter_keeps_rows_whose_client_or_resource_matches() {
    let mut app = app();
    press(&mut app, "/");
    assert_eq!(app.mode(), Mode::Filter);
    // `q` is text while typing a filter, not quit.
    press(&mut app, "SCHEDq");
    app.on_key(key(KeyCode::Backspace));
    assert_eq!(app.filter(), "sched");
    assert!(screen(&app).contains("/sched█"));
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.mode(), Mode::Normal);
    assert_eq!(rows_containing(&app, &CLIENTS), ["kube-scheduler"]);
    assert!(screen(&app).contains("filter: \"sched\""));
    assert!(screen(&app).contains("1 Connections (1)"));
    // By resource on the watches tab.
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.filter(), "");
    press(&mut app, "2/config");
    app.on_key(key(KeyCode::Enter));
    let text = screen(&app);
    assert!(text.contains("configmaps"), "{text}");
    assert!(!text.contains("deployments.apps"), "{text}");
    // Nothing matches: said so.
    app.on_key(key(KeyCode::Esc));
    press(&mut app, "/nothing-like-this");
    assert!(screen(&app).contains("no rows match the filter"));
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.filter(), "");
    assert_eq!(app.watches().len(), 4);
}

#[test]
fn enter_drills_into_a_connections_watches_and_esc_comes_back() {
    let mut app = app();
    // Select kubelet's connection (the busiest, first row) and drill.
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.tab(), Tab::Watches);
    assert_eq!(app.drill(), Some(2));
    let text = screen(&app);
    assert!(
        text.contains("Watches of conn 2 from 10.0.0.2:40002 (kubelet)"),
        "{text}"
    );
    assert!(text.contains("2:1 ") && text.contains("2:3 "), "{text}");
    assert!(!text.contains("deployments.apps"), "{text}");
    assert!(!text.contains("kube-scheduler"), "{text}");
    // Who wrote the last event each watch carried, and etcd's delay.
    assert!(
        text.contains("WRITER") && text.contains("ETCD DLY"),
        "{text}"
    );
    assert!(
        text.contains("kubectl") && text.contains("3.00ms"),
        "{text}"
    );
    // Sorted by events/s: stream 1 (30/s) above stream 3 (2/s).
    assert_eq!(
        app.watches().iter().map(|w| w.stream).collect::<Vec<_>>(),
        [1, 3]
    );
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.tab(), Tab::Connections);
    assert_eq!(app.drill(), None);
    assert_eq!(app.connections()[app.selected()].conn, 2);
    // From the stall log too: the stall's connection; Esc goes back to
    // the stall log, not to the connections.
    press(&mut app, "3");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.drill(), Some(2));
    assert_eq!(app.tab(), Tab::Watches);
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.tab(), Tab::Stalls);
    assert_eq!(app.drill(), None);
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.drill(), Some(2));
    // Switching tabs leaves the drill-down.
    press(&mut app, "2");
    assert_eq!(app.drill(), None);
    assert_eq!(app.watches().len(), 4);
}

#[test]
fn freeze_holds_the_screen_until_unfrozen() {
    let mut app = app();
    press(&mut app, "f");
    assert!(app.frozen());
    assert!(screen(&app).contains("FROZEN"));
    let mut newer = snapshot();
    newer.totals.connections = 99;
    app.on_snapshot(newer.clone());
    assert!(screen(&app).contains("conns 3 "), "frozen screen changed");
    assert_eq!(app.refreshes(), 1);
    press(&mut app, " ");
    assert!(!app.frozen());
    let text = screen(&app);
    assert!(text.contains("conns 99 "), "{text}");
    assert!(!text.contains("FROZEN"));
    assert_eq!(app.refreshes(), 2);
}

#[test]
fn help_overlays_the_keys_and_any_key_closes_it() {
    let mut app = app();
    press(&mut app, "?");
    assert_eq!(app.mode(), Mode::Help);
    let text = screen(&app);
    assert!(text.contains(" Keys "), "{text}");
    assert!(text.contains("freeze / unfreeze"), "{text}");
    press(&mut app, "x");
    assert_eq!(app.mode(), Mode::Normal);
    assert!(!screen(&app).contains(" Keys "));
    // `q` in help quits.
    press(&mut app, "?");
    assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::Quit);
}

#[test]
fn q_and_ctrl_c_quit_from_any_mode() {
    let mut app = app();
    assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::Quit);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.on_key(ctrl_c), Action::Quit);
    press(&mut app, "/");
    assert_eq!(app.on_key(ctrl_c), Action::Quit);
}

#[test]
fn before_the_first_snapshot_the_view_says_it_is_waiting() {
    let app = App::new("live: --comm kube-apiserver");
    let text = screen(&app);
    assert!(text.contains("waiting for the first refresh"), "{text}");
    assert!(text.contains("waiting for data"), "{text}");
    assert!(text.contains("UNKNOWN"), "{text}");
}

#[test]
fn the_stall_log_shows_cause_duration_and_held_streams() {
    let mut app = app();
    press(&mut app, "3");
    let text = screen(&app);
    let row = text.lines().find(|l| l.contains("stream_window")).unwrap();
    for cell in [
        "03:04:05.000",
        "1.50s",
        "10.0.0.2:40002",
        "kubelet",
        "1:1.50s",
    ] {
        assert!(row.contains(cell), "{cell} missing in {row}");
    }
}

/// A stall still going on: 7.2 s so far on conn 3, `ts` the snapshot's
/// time, nothing held or filled by yet.
fn ongoing(snap: &Snapshot) -> StallRow {
    StallRow {
        ongoing: true,
        ts: snap.now,
        conn: Some(3),
        cause: "peer_zero_window".into(),
        stream: None,
        duration_ns: 7_200_000_000,
        client: Some("kube-controller-manager".into()),
        peer: Some("10.0.0.3:40003".into()),
        held: Vec::new(),
        filled_by: None,
    }
}

#[test]
fn an_ongoing_stall_is_marked_highlighted_and_stays_first() {
    let mut snap = snapshot();
    snap.stalls.insert(0, ongoing(&snap));
    let mut app = App::new("x");
    app.on_snapshot(snap.clone());
    press(&mut app, "3");
    let buffer = draw(&app);
    let shown = lines(&buffer);
    let y = shown
        .iter()
        .position(|l| l.contains("peer_zero_window"))
        .unwrap();
    let row = &shown[y];
    for cell in [
        "ONGOING",
        "7.20s…",
        "10.0.0.3:40003",
        "kube-controller-manager",
    ] {
        assert!(row.contains(cell), "{cell} missing in {row}");
    }
    // Drawn in red, the ended stall below it not.
    let x = row.find("peer_zero_window").unwrap();
    let x = row[..x].chars().count() as u16;
    assert_eq!(buffer[(x, y as u16)].fg, Color::Red, "{row}");
    let ended = shown
        .iter()
        .position(|l| l.contains("stream_window"))
        .unwrap();
    assert!(ended > y, "the ongoing stall is above the ended one");
    let x = shown[ended].find("stream_window").unwrap();
    let x = shown[ended][..x].chars().count() as u16;
    assert_ne!(buffer[(x, ended as u16)].fg, Color::Red);
    // First under any sort: by duration ascending it would be last.
    press(&mut app, "ssS");
    assert!(screen(&app).contains("DURATION▲"));
    assert!(app.stalls()[0].ongoing);
    assert_eq!(
        rows_containing(&app, &["peer_zero_window", "stream_window"]),
        ["peer_zero_window", "stream_window"]
    );
    // The selection stays on it while it grows (its `ts` moves with now).
    press(&mut app, "g");
    let mut later = snap.clone();
    later.now += 1_000_000_000;
    later.stalls[0] = StallRow {
        ts: later.now,
        duration_ns: 8_200_000_000,
        ..ongoing(&snap)
    };
    later.stalls.push(StallRow {
        ts: snap.now - 1,
        ..later.stalls[1].clone()
    });
    app.on_snapshot(later);
    assert!(app.stalls()[app.selected()].ongoing);
    assert!(screen(&app).contains("8.20s…"));
    // A filter finds the stalls going on.
    press(&mut app, "/ongoing");
    assert_eq!(app.stalls().len(), 1);
    assert!(app.stalls()[0].ongoing);
}

#[test]
fn namespace_is_all_for_cluster_wide_requests_and_dash_when_not_seen() {
    let mut snap = snapshot();
    snap.watches[0].namespace = String::new();
    snap.watches[1].namespace = String::new();
    snap.watches[1].resource_version_kind = "unknown".into();
    let mut app = App::new("x");
    app.on_snapshot(snap);
    press(&mut app, "2");
    let text = screen(&app);
    let row = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {text}"))
            .split_whitespace()
            .nth(3)
            .unwrap()
            .to_owned()
    };
    // watch 1:1 (kube-scheduler) was requested cluster-wide; 2:1's request
    // was never seen.
    assert_eq!(row("1:1 "), "(all)", "{text}");
    assert_eq!(row("2:1 "), "-", "{text}");
    assert_eq!(row("2:3 "), "default", "{text}");
}

#[test]
fn an_empty_tab_says_what_is_missing_and_whether_targets_remain() {
    let mut app = App::new("live: --exe x");
    app.on_snapshot(Snapshot::default());
    app.set_targets(Some(0));
    let text = screen(&app);
    assert!(
        text.contains("no open connections (targets 0: no traced process is running)"),
        "{text}"
    );
    app.set_targets(Some(2));
    press(&mut app, "2");
    assert!(screen(&app).contains("no open watch streams (targets 2)"));
    press(&mut app, "3");
    assert!(screen(&app).contains("no stalls yet (targets 2)"));
    // A replay has no targets to count.
    let mut replay = App::new("replay: x");
    replay.on_snapshot(Snapshot::default());
    let text = screen(&replay);
    assert!(text.contains("no open connections"), "{text}");
    assert!(!text.contains("targets"), "{text}");
}

#[test]
fn the_help_and_the_prompt_say_what_each_tab_filters_on() {
    let mut app = app();
    press(&mut app, "?");
    let text = screen(&app);
    for line in [
        "Connections: client, peer, process or \"tls\"",
        "Watches: client, resource or namespace",
        "Stall log: client, peer, cause or \"ongoing\"",
    ] {
        assert!(text.contains(line), "{line} missing: {text}");
    }
    press(&mut app, "x2/");
    let text = screen(&app);
    assert!(
        text.contains("filter watches by client, resource or namespace"),
        "{text}"
    );
    // What the help says is what the filter does: a process name matches
    // on connections, not on watches.
    app.on_key(key(KeyCode::Esc));
    press(&mut app, "1/kube-apiserver");
    assert_eq!(app.connections().len(), 3);
    press(&mut app, "2");
    assert_eq!(app.watches().len(), 0);
    app.on_key(key(KeyCode::Esc));
    press(&mut app, "1/tls");
    assert_eq!(app.connections().len(), 3, "every test connection is TLS");
}

#[test]
fn a_tls_connection_shows_tls_after_its_process() {
    let mut snap = snapshot();
    snap.connections[0].comm = "fake-apiserver".into();
    snap.connections[0].pid = 4_194_304;
    let mut app = App::new("x");
    app.on_snapshot(snap);
    let text = screen(&app);
    assert!(text.contains("fake-apiserver/4194304 tls"), "{text}");
}

#[test]
fn a_small_terminal_still_renders() {
    let mut terminal = Terminal::new(TestBackend::new(40, 8)).unwrap();
    let mut app = app();
    press(&mut app, "?");
    terminal.draw(|f| render(f, &app)).unwrap();
    let mut terminal = Terminal::new(TestBackend::new(1, 1)).unwrap();
    terminal.draw(|f| render(f, &app)).unwrap();
}
