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
use crate::model::{ConnRow, Delay, Snapshot, StallRow, Totals, WatchRow};

/// A P99 delay that is no lower bound.
fn exact(ns: u64) -> Option<Delay> {
    Some(Delay {
        ns,
        at_least: false,
    })
}

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
        srtt_ns: Some(250_000),
        stall_ns_last_min: 0,
        stall_ongoing: None,
        p99_delay: exact(5_000_000),
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
        p99_delay: exact(5_000_000),
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
            delivery_p99: exact(40_000_000),
            delivery_events_last_min: 800,
            worst_client: Some(("kubelet".into(), exact(90_000_000).unwrap())),
            stalls_last_min: 1,
            stall_ns_last_min: 1_500_000_000,
            stalls_ongoing: 0,
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
            flaps: 0,
            client: Some("kubelet".into()),
            peer: Some("10.0.0.2:40002".into()),
            held: vec![(1, 1_500_000_000)],
            filled_by: None,
        }],
    }
}

fn draw(app: &App) -> Buffer {
    draw_at(app, 200)
}

fn draw_at(app: &App, width: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, 30)).unwrap();
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
    // A count says it is one; a duration says its unit.
    assert!(
        text.contains(
            "conns 3  watches 4  stalls (last min) 1, 1.50s  events/s 42  bytes/s 12.3K  \
             LISTs (last min) 2  lost 0B"
        ),
        "{text}"
    );
    assert!(text.contains(" MET "), "{text}");
    assert!(text.contains("P99 250ms over 900 events"), "{text}");
    assert!(
        text.contains(
            "Delivery P99 (last min)   OK   40.0ms over 800 events  worst: kubelet 90.0ms"
        ),
        "{text}"
    );
    assert!(!text.contains("STALL ONGOING"), "{text}");
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
    let text = lines(&buffer)[1].clone();
    let x = text.find("P99 ApiserverTimeSpan").unwrap();
    let x = x + text[x..].find("  ").unwrap() + 2;
    let column = text[..x].chars().count() as u16;
    (buffer[(column, 1)].bg, text)
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
fn connections_sort_worst_first_then_by_any_column_either_way() {
    let mut app = app();
    // Default: worst first; all healthy, so in identity order.
    assert!(screen(&app).contains("!▼"), "{}", screen(&app));
    assert_eq!(
        rows_containing(&app, &CLIENTS),
        ["kube-scheduler", "kubelet", "kube-controller-manager"]
    );
    // TX B/s, largest first.
    press(&mut app, "ssssss");
    assert!(screen(&app).contains("TX B/s▼"));
    assert_eq!(
        rows_containing(&app, &CLIENTS),
        ["kubelet", "kube-controller-manager", "kube-scheduler"]
    );
    // RX B/s, largest first, then reversed.
    press(&mut app, "ss");
    assert!(screen(&app).contains("RX B/s▼"));
    assert_eq!(
        rows_containing(&app, &CLIENTS),
        ["kube-scheduler", "kube-controller-manager", "kubelet"]
    );
    press(&mut app, "S");
    assert!(screen(&app).contains("RX B/s▲"));
    assert_eq!(
        rows_containing(&app, &CLIENTS),
        ["kubelet", "kube-controller-manager", "kube-scheduler"]
    );
    // SENDQ: all equal, so the rows keep the places they had.
    press(&mut app, "<");
    assert!(screen(&app).contains("SENDQ▼"));
    assert_eq!(
        rows_containing(&app, &CLIENTS),
        ["kubelet", "kube-controller-manager", "kube-scheduler"]
    );
    // The client column, A to Z (text sorts ascending when chosen).
    press(&mut app, "<<<<<");
    assert!(screen(&app).contains("CLIENT▲"));
    assert_eq!(
        rows_containing(&app, &CLIENTS),
        ["kube-controller-manager", "kube-scheduler", "kubelet"]
    );
}

/// Connections with harm: conn 3 stalled now, conn 1 stalled earlier in
/// the minute, conn 2 late.
fn harmed() -> Snapshot {
    let mut snap = snapshot();
    snap.connections[2].stall_ongoing = Some("peer_zero_window".into());
    snap.connections[2].stall_ns_last_min = 4_000_000_000;
    snap.connections[0].stall_ns_last_min = 350_000_000;
    snap.connections[1].p99_delay = exact(7_270_000_000);
    snap
}

#[test]
fn the_worst_connection_comes_first_marked_by_symbol_and_colour() {
    let mut app = App::new("x");
    app.on_snapshot(harmed());
    // Stall going on, then stall time in the last minute, then delay.
    assert_eq!(
        rows_containing(&app, &CLIENTS),
        ["kube-controller-manager", "kube-scheduler", "kubelet"]
    );
    let buffer = draw(&app);
    let shown = lines(&buffer);
    let row = |client: &str| {
        let y = shown
            .iter()
            .position(|l| l.starts_with('│') && l.contains(client))
            .unwrap();
        (y as u16, shown[y].clone())
    };
    let (y, text) = row("kube-controller-manager");
    assert!(text.contains("!!"), "{text}");
    assert!(text.contains("4.00s…"), "a stall going on says so: {text}");
    let x = text.find("kube-controller-manager").unwrap();
    assert_eq!(buffer[(text[..x].chars().count() as u16, y)].fg, Color::Red);
    for client in ["kube-scheduler", "kubelet"] {
        let (y, text) = row(client);
        assert!(
            text.contains("│  ! ") || text.contains("│>  ! ") || text.contains(" ! "),
            "{text}"
        );
        assert!(!text.contains("!!"), "{text}");
        let x = text.find(client).unwrap();
        assert_eq!(
            buffer[(text[..x].chars().count() as u16, y)].fg,
            Color::Yellow,
            "{text}"
        );
    }
    // A healthy row has no mark.
    let mut snap = snapshot();
    snap.connections.truncate(1);
    app.on_snapshot(snap);
    let text = screen(&app);
    let line = text
        .lines()
        .find(|l| l.starts_with('│') && l.contains("kube-scheduler"))
        .unwrap();
    assert!(!line.contains('!'), "{line}");
}

#[test]
fn the_order_holds_while_values_waver_within_the_hysteresis() {
    let mut app = App::new("x");
    let mut snap = snapshot();
    // Two late connections in one octave (1.1 s and 1.2 s): equals.
    snap.connections[0].p99_delay = exact(1_100_000_000);
    snap.connections[1].p99_delay = exact(1_200_000_000);
    app.on_snapshot(snap.clone());
    assert_eq!(app.connections()[0].conn, 1, "same octave: identity order");
    // They waver, conn 1 even just past the octave's edge (2.05 s): no
    // row moves.
    for (a, b) in [
        (1_200_000_000, 1_100_000_000),
        (2_050_000_000, 1_150_000_000),
    ] {
        snap.connections[0].p99_delay = exact(a);
        snap.connections[1].p99_delay = exact(b);
        app.on_snapshot(snap.clone());
        let order: Vec<u64> = app.connections().iter().map(|c| c.conn).collect();
        assert_eq!(order, [1, 2, 3], "{a} {b}");
    }
    // A real change (conn 2 at 3 s, well into the next octave) moves it up.
    snap.connections[1].p99_delay = exact(3_000_000_000);
    app.on_snapshot(snap);
    assert_eq!(app.connections()[0].conn, 2);
}

#[test]
fn a_stall_going_on_shows_a_banner_with_cause_client_and_duration() {
    let mut snap = harmed();
    snap.stalls.insert(0, ongoing(&snap));
    snap.totals.stalls_ongoing = 1;
    let mut app = App::new("x");
    app.on_snapshot(snap.clone());
    let text = screen(&app);
    assert!(
        text.contains(
            "!! STALL ONGOING 7.20s so far: peer_zero_window, client kube-controller-manager, \
             conn 3 (10.0.0.3:40003)"
        ),
        "{text}"
    );
    // Two going on: the longest named, the rest counted.
    let mut second = ongoing(&snap);
    second.conn = Some(1);
    second.duration_ns = 1_000_000_000;
    snap.stalls.insert(0, second);
    app.on_snapshot(snap);
    assert!(screen(&app).contains("client kube-controller-manager (+1 more), conn 3"));
}

#[test]
fn delivery_names_the_worst_client_and_turns_red_past_a_second() {
    let mut snap = snapshot();
    snap.totals.delivery_p99 = exact(2_500_000_000);
    snap.totals.worst_client = Some(("kubelet".into(), exact(7_270_000_000).unwrap()));
    let mut app = App::new("x");
    app.on_snapshot(snap);
    let buffer = draw(&app);
    let shown = lines(&buffer);
    let y = shown
        .iter()
        .position(|l| l.starts_with("Delivery"))
        .unwrap();
    let text = &shown[y];
    assert!(text.contains(" LATE "), "{text}");
    assert!(text.contains("worst: kubelet 7.27s"), "{text}");
    let x = text.find("kubelet").unwrap();
    assert_eq!(
        buffer[(text[..x].chars().count() as u16, y as u16)].fg,
        Color::Red
    );
    let x = text.find(" LATE ").unwrap();
    assert_eq!(
        buffer[(text[..x].chars().count() as u16, y as u16)].bg,
        Color::Red
    );
}

#[test]
fn a_delay_counting_unacknowledged_waits_reads_at_least_in_the_headline_and_the_tables() {
    // A stopped client: its events count with what they had waited at the
    // ack deadline, a lower bound of their delay.
    let at_least = Delay {
        ns: 1_160_000_000,
        at_least: true,
    };
    let mut snap = snapshot();
    snap.totals.delivery_p99 = Some(at_least);
    snap.totals.worst_client = Some(("kubelet".into(), at_least));
    snap.connections[0].p99_delay = Some(at_least);
    let mut app = App::new("x");
    app.on_snapshot(snap);
    let shown = screen(&app);
    let delivery = shown.lines().find(|l| l.starts_with("Delivery")).unwrap();
    assert!(delivery.contains(" LATE   ≥1.16s over"), "{delivery}");
    assert!(delivery.contains("worst: kubelet ≥1.16s"), "{delivery}");
    assert!(
        shown
            .lines()
            .any(|l| !l.starts_with("Delivery") && l.contains(" ≥1.16s")),
        "the connection's P99 DELAY: {shown}"
    );
    // An exact delay has no mark.
    assert!(
        shown.contains("5.00ms") && !shown.contains("≥5.00ms"),
        "{shown}"
    );
}

#[test]
fn narrow_terminals_drop_columns_from_the_right_and_cut_text_with_an_ellipsis() {
    let mut snap = harmed();
    snap.connections[1].peer = Some("[fd00:1234:5678:9abc::17]:43764".into());
    snap.stalls.insert(0, ongoing(&snap));
    let mut app = App::new("replay: a-rather-long-recording-name-from-production.wtrec");
    app.on_snapshot(snap);
    for width in [200u16, 120, 80] {
        let shown = lines(&draw_at(&app, width));
        let header = shown.iter().find(|l| l.contains("CLIENT")).unwrap();
        // Whole titles only: never `TREAMS` or `ATCHES`.
        for word in header.split(|c: char| c == '│' || c.is_whitespace()) {
            let word = word.trim_end_matches(['▼', '▲']);
            if word.is_empty() {
                continue;
            }
            assert!(
                [
                    "!", "CONN", "CLIENT", "STALL", "s/min", "P99", "DELAY", "PEER", "TX", "B/s",
                    "SENDQ", "RX", "STREAMS", "WATCHES", "SRTT", "PROCESS"
                ]
                .contains(&word),
                "{width} cols: {word:?} in {header}"
            );
        }
        // Numbers are never cut.
        let kubelet = shown
            .iter()
            .find(|l| l.starts_with('│') && l.contains("kubelet"))
            .unwrap();
        assert!(kubelet.contains("7.27s"), "{width} cols: {kubelet}");
        // Every line fits, and what was cut ends in `…`.
        for line in &shown {
            assert!(line.chars().count() <= usize::from(width));
        }
        let text = shown.join("\n");
        match width {
            200 => {
                assert!(header.contains("PROCESS"), "{header}");
                assert!(text.contains("[fd00:1234:5678:9abc:…"), "{text}");
            }
            120 => {
                assert!(
                    !header.contains("PROCESS") && header.contains("TX B/s"),
                    "{header}"
                );
            }
            _ => {
                assert!(
                    !header.contains("TX B/s") && header.contains("P99 DELAY"),
                    "{header}"
                );
                // The banner and the header lines are cut with `…`.
                assert!(
                    shown
                        .iter()
                        .any(|l| l.contains("STALL ONGOING") && l.trim_end().ends_with('…')),
                    "{text}"
                );
            }
        }
    }
}

#[test]
fn the_selection_stays_on_its_row_across_refreshes_and_resorts() {
    let mut app = app();
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Down));
    assert_eq!(app.selected(), 2);
    assert_eq!(app.connections()[2].conn, 3);
    // conn 3 stalls: it moves to the top and stays selected.
    let mut snap = snapshot();
    snap.connections[2].stall_ongoing = Some("send_buffer_full".into());
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
    // Select kubelet's connection (the second row) and drill.
    app.on_key(key(KeyCode::Down));
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
    // Worst first; equal, so in stream order.
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
        flaps: 0,
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
        .position(|l| l.starts_with('│') && l.contains("peer_zero_window"))
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
            .nth(5)
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
