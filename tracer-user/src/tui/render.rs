//! Drawing the [`App`] into a ratatui frame. Pure: reads the state, writes
//! cells; tests render into ratatui's `TestBackend`.

use ratatui::{
    Frame,
    layout::{Alignment, Constraint, Flex, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Cell, Clear, Paragraph, Row as TableRow, Table, TableState, Tabs},
};

use crate::model::{ConnRow, Snapshot, StallRow, WatchRow};

use super::{
    app::{App, Mode, Sort, Tab},
    columns::Row,
    format::{bytes, clock, duration_ns, si},
};

/// The reference objective: P99 ApiserverTimeSpan over the last minute
/// below this.
const SLO_NS: u64 = 1_000_000_000;

/// Draws the whole screen.
pub fn render(frame: &mut Frame<'_>, app: &App) {
    let [header, tabs, body, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    render_header(frame, header, app);
    render_tabs(frame, tabs, app);
    match app.tab() {
        Tab::Connections => render_table(frame, body, app, &app.connections(), title(app)),
        Tab::Watches => render_table(frame, body, app, &app.watches(), title(app)),
        Tab::Stalls => render_table(frame, body, app, &app.stalls(), title(app)),
    }
    render_footer(frame, footer, app);
    if app.mode() == Mode::Help {
        render_help(frame, frame.area());
    }
}

fn render_header(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let dim = Style::new().fg(Color::DarkGray);
    let mut first = vec![
        Span::styled("watchtrace top", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw("  "),
        Span::raw(app.source().to_owned()),
    ];
    if let Some(s) = app.snapshot().filter(|s| s.now != 0) {
        first.push(Span::raw(format!("  {} UTC", clock(s.now))));
    }
    first.push(Span::styled(format!("  refresh #{}", app.refreshes()), dim));
    if let Some(status) = app.status() {
        first.push(Span::styled(
            format!("  {status}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    if app.frozen() {
        first.push(Span::raw("  "));
        first.push(Span::styled(
            " FROZEN ",
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        ));
    }
    let empty = Snapshot::default();
    let snap = app.snapshot().unwrap_or(&empty);
    let t = &snap.totals;
    let totals = Line::from(vec![
        Span::raw(format!(
            "conns {}  watches {}  events/s {}  bytes/s {}  lists/min {}  stalls/min {}  lost {}",
            t.connections,
            t.watches,
            si(t.events_per_s),
            si(t.bytes_per_s),
            t.lists_last_min,
            t.stalls_last_min,
            bytes(t.lost_bytes),
        )),
        if app.snapshot().is_none() {
            Span::styled("  (waiting for the first refresh)", dim)
        } else {
            Span::raw("")
        },
    ]);
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), totals, slo_line(snap)]),
        area,
    );
}

/// The reference SLO: green when met, red when not, grey when unknown.
fn slo_line(snap: &Snapshot) -> Line<'static> {
    let t = &snap.totals;
    let (verdict, color) = match t.slo_met {
        Some(true) => (" MET ", Color::Green),
        Some(false) => (" NOT MET ", Color::Red),
        None => (" UNKNOWN ", Color::DarkGray),
    };
    let detail = match t.apiserver_p99_ns {
        Some(p99) => format!(
            "P99 {} over {} events",
            duration_ns(p99),
            t.apiserver_events_last_min
        ),
        None => "no event with a source time in the last minute".to_owned(),
    };
    Line::from(vec![
        Span::raw(format!(
            "SLO: P99 ApiserverTimeSpan (last min) < {}  ",
            duration_ns(SLO_NS)
        )),
        Span::styled(
            verdict,
            Style::new()
                .fg(Color::Black)
                .bg(color)
                .add_modifier(Modifier::BOLD),
        ),
        Span::styled(format!("  {detail}"), Style::new().fg(color)),
    ])
}

fn render_tabs(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let counts = [
        app.connections().len(),
        app.watches().len(),
        app.stalls().len(),
    ];
    let titles: Vec<Line<'_>> = Tab::ALL
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(i, (tab, n))| Line::from(format!("{} {} ({n})", i + 1, tab.title())))
        .collect();
    let selected = Tab::ALL.iter().position(|t| *t == app.tab()).unwrap_or(0);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(Style::new().fg(Color::Black).bg(Color::Cyan)),
        area,
    );
}

/// The body's title: the tab, the drill-down and the filter.
fn title(app: &App) -> String {
    let mut title = app.tab().title().to_owned();
    if let Some(conn) = app.drill() {
        let row = app
            .snapshot()
            .and_then(|s| s.connections.iter().find(|c| c.conn == conn));
        title = format!("Watches of conn {conn}");
        if let Some(row) = row {
            if let Some(peer) = &row.peer {
                title.push_str(&format!(" from {peer}"));
            }
            if let Some(client) = &row.client {
                title.push_str(&format!(" ({client})"));
            }
        }
        title.push_str("  [Esc: back]");
    }
    if !app.filter().is_empty() {
        title.push_str(&format!("  filter: \"{}\"", app.filter()));
    }
    format!(" {title} ")
}

fn render_table<R: Row>(frame: &mut Frame<'_>, area: Rect, app: &App, rows: &[&R], title: String) {
    let columns = R::shown_columns(app.drill().is_some());
    let Sort { column, descending } = app.sort(app.tab());
    let header = TableRow::new(columns.iter().enumerate().map(|(i, c)| {
        let mark = if i == column {
            if descending { "▼" } else { "▲" }
        } else {
            ""
        };
        let text = format!("{}{mark}", c.title);
        let cell = if c.numeric {
            Line::from(text).alignment(Alignment::Right)
        } else {
            Line::from(text)
        };
        let style = if i == column {
            Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        };
        Cell::from(cell).style(style)
    }));
    let body = rows.iter().map(|r| {
        let row = TableRow::new(columns.iter().map(|c| {
            let text = (c.cell)(r);
            if c.numeric {
                Cell::from(Line::from(text).alignment(Alignment::Right))
            } else {
                Cell::from(text)
            }
        }));
        if r.urgent() { row.style(URGENT) } else { row }
    });
    // A text column at the end takes the spare width; numbers stay
    // next to their neighbours.
    let widths = columns.iter().enumerate().map(|(i, c)| {
        if i + 1 == columns.len() && !c.numeric {
            Constraint::Min(c.width)
        } else {
            Constraint::Length(c.width)
        }
    });
    let block = Block::bordered().title(title);
    if rows.is_empty() {
        let why = empty_reason(app);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let [head, rest] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
        frame.render_widget(
            Table::new(Vec::<TableRow<'_>>::new(), widths)
                .header(header)
                .column_spacing(1)
                .flex(Flex::Start),
            head,
        );
        frame.render_widget(
            Paragraph::new(why).style(Style::new().fg(Color::DarkGray)),
            rest,
        );
        return;
    }
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(1)
        .flex(Flex::Start)
        .block(block)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(Some(app.selected()));
    frame.render_stateful_widget(table, area, &mut state);
}

/// Why the current tab has no rows.
fn empty_reason(app: &App) -> String {
    if app.snapshot().is_none() {
        return "waiting for data".to_owned();
    }
    if !app.filter().is_empty() {
        return "no rows match the filter (Esc clears it)".to_owned();
    }
    let what = match app.tab() {
        Tab::Connections => "no open connections",
        Tab::Watches if app.drill().is_some() => "no open watch streams on this connection",
        Tab::Watches => "no open watch streams",
        Tab::Stalls => "no stalls yet",
    };
    match app.targets() {
        Some(0) => format!("{what} (targets 0: no traced process is running)"),
        Some(n) => format!("{what} (targets {n})"),
        None => what.to_owned(),
    }
}

/// What the filter matches on the current tab.
fn filtered_by(tab: Tab) -> &'static str {
    match tab {
        Tab::Connections => ConnRow::FILTERED_BY,
        Tab::Watches => WatchRow::FILTERED_BY,
        Tab::Stalls => StallRow::FILTERED_BY,
    }
}

fn render_footer(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let line = match app.mode() {
        Mode::Filter => Line::from(vec![
            Span::styled("/", Style::new().fg(Color::Yellow)),
            Span::raw(app.filter().to_owned()),
            Span::styled("█", Style::new().fg(Color::Yellow)),
            Span::styled(
                format!(
                    "   filter {} by {} (Enter: keep, Esc: clear)",
                    app.tab().title().to_lowercase(),
                    filtered_by(app.tab())
                ),
                Style::new().fg(Color::DarkGray),
            ),
        ]),
        _ => Line::from(Span::styled(
            "q quit  ? help  Tab/1-3 tabs  s/</> sort column  S reverse  / filter  Enter drill  Esc back  f freeze",
            Style::new().fg(Color::DarkGray),
        )),
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// A stall still going on.
const URGENT: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);

/// The keys, in a box over the middle of the screen; then what the filter
/// matches on each tab.
const HELP: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit (the terminal is restored)"),
    (
        "Tab, Shift-Tab, 1 2 3",
        "switch tab: connections, watches, stall log",
    ),
    ("Up/Down, j/k, PgUp/PgDn, g/G", "move the selection"),
    ("s or >, <", "sort by the next / previous column"),
    ("S or r", "reverse the sort"),
    ("/", "filter the rows (case-insensitive), on each tab by:"),
    (
        "Enter",
        "on a connection or stall: show that connection's watches",
    ),
    (
        "Esc",
        "back from a drill-down to its tab, else clear the filter",
    ),
    (
        "f or Space",
        "freeze / unfreeze the screen (data keeps flowing)",
    ),
    ("?", "this help (any key closes it)"),
];

/// The help's lines: the keys, with what `/` matches on each tab after
/// the `/` line.
fn help_lines() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (keys, what) in HELP {
        out.push(((*keys).to_owned(), (*what).to_owned()));
        if *keys == "/" {
            for tab in Tab::ALL {
                out.push((
                    String::new(),
                    format!("  {}: {}", tab.title(), filtered_by(tab)),
                ));
            }
        }
    }
    out
}

fn render_help(frame: &mut Frame<'_>, area: Rect) {
    let help = help_lines();
    let keys_width = help
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let what_width = help
        .iter()
        .map(|(_, w)| w.chars().count())
        .max()
        .unwrap_or(0);
    let width = ((keys_width + 2 + what_width + 2) as u16).min(area.width);
    let height = (help.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let lines: Vec<Line<'_>> = help
        .into_iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{keys:>keys_width$}  "),
                    Style::new().fg(Color::Cyan),
                ),
                Span::raw(what),
            ])
        })
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys ")),
        popup,
    );
}
