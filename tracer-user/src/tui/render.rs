//! Drawing the [`App`] into a ratatui frame. Pure: reads the state, writes
//! cells; tests render into ratatui's `TestBackend`.

use ratatui::{
    Frame,
    layout::{Alignment, Constraint, Flex, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Cell, Clear, Paragraph, Row as TableRow, Table, TableState, Tabs},
};

use crate::model::{ConnRow, Delay, Snapshot, StallRow, WatchRow};

use super::{
    app::{App, Mode, Sort, Tab},
    columns::{Column, Mark, Row},
    format::{bytes, clock, delay, duration_ns, si},
};

/// The reference objective: P99 ApiserverTimeSpan over the last minute
/// below this.
const SLO_NS: u64 = 1_000_000_000;

/// Draws the whole screen.
pub fn render(frame: &mut Frame<'_>, app: &App) {
    let header_lines = header_lines(app, frame.area().width);
    let [header, tabs, body, footer] = Layout::vertical([
        Constraint::Length(header_lines.len() as u16),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header_lines), header);
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

/// The header: what is shown and when; the SLOs an on-call cares about
/// (the reference ApiserverTimeSpan, delivery overall and for the worst
/// client); the totals; and a banner while any stall goes on. Each line is
/// cut to `width`, ending in `…` when cut.
fn header_lines(app: &App, width: u16) -> Vec<Line<'static>> {
    let dim = Style::new().fg(Color::DarkGray);
    // Most telling first: a narrow screen cuts the end (the source).
    let mut first = vec![Span::styled(
        "watchtrace top",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    for (on, text) in [(app.paused(), " PAUSED "), (app.frozen(), " FROZEN ")] {
        if on {
            first.push(Span::raw("  "));
            first.push(Span::styled(
                text,
                Style::new()
                    .fg(Color::Black)
                    .bg(Color::Yellow)
                    .add_modifier(Modifier::BOLD),
            ));
        }
    }
    if let Some(s) = app.snapshot().filter(|s| s.now != 0) {
        first.push(Span::raw(format!("  {} UTC", clock(s.now))));
    }
    if let Some(status) = app.status() {
        first.push(Span::styled(
            format!("  {status}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    first.push(Span::styled(format!("  refresh #{}", app.refreshes()), dim));
    first.push(Span::raw(format!("  {}", app.source())));
    let empty = Snapshot::default();
    let snap = app.snapshot().unwrap_or(&empty);
    let t = &snap.totals;
    let mut totals = vec![Span::raw(format!(
        "conns {}  watches {}  stalls (last min) {}, {}  events/s {}  bytes/s {}  LISTs (last min) {}  lost {}",
        t.connections,
        t.watches,
        t.stalls_last_min,
        seconds(t.stall_ns_last_min),
        si(t.events_per_s),
        si(t.bytes_per_s),
        t.lists_last_min,
        bytes(t.lost_bytes),
    ))];
    if app.snapshot().is_none() {
        totals.push(Span::styled("  (waiting for the first refresh)", dim));
    }
    let mut lines = vec![
        Line::from(first),
        slo_line(snap),
        delivery_line(snap),
        Line::from(totals),
    ];
    if let Some(banner) = stall_banner(snap) {
        lines.push(banner);
    }
    lines.into_iter().map(|l| fit(l, width)).collect()
}

/// A duration with its unit always said (`0s`, never a bare `0`).
fn seconds(ns: u64) -> String {
    if ns == 0 {
        "0s".to_owned()
    } else {
        duration_ns(ns)
    }
}

/// A verdict badge: black on the colour, so it reads without colour too.
fn badge(text: &'static str, color: Color) -> Span<'static> {
    Span::styled(
        text,
        Style::new()
            .fg(Color::Black)
            .bg(color)
            .add_modifier(Modifier::BOLD),
    )
}

/// Delivery: P99 of ack − source (the event's etcd read, else its first
/// byte, to the client's TCP ack) over the last minute, overall and for
/// the worst client by name; red past the objective's 1 s; `≥` while
/// unacknowledged events count with what they had waited (a lower bound).
fn delivery_line(snap: &Snapshot) -> Line<'static> {
    let t = &snap.totals;
    let late = |d: Delay| d.ns >= SLO_NS;
    let Some(p99) = t.delivery_p99 else {
        return Line::from(vec![
            Span::raw("Delivery P99 (last min)  "),
            badge(" UNKNOWN ", Color::DarkGray),
            Span::styled(
                "  no acknowledged event in the last minute",
                Style::new().fg(Color::DarkGray),
            ),
        ]);
    };
    let mut spans = vec![
        Span::raw("Delivery P99 (last min)  "),
        if late(p99) {
            badge(" LATE ", Color::Red)
        } else {
            badge(" OK ", Color::Green)
        },
        Span::raw(format!(
            "  {} over {} events",
            delay(p99),
            t.delivery_events_last_min
        )),
    ];
    if let Some((client, worst)) = &t.worst_client {
        let style = if late(*worst) {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        spans.push(Span::raw("  worst: "));
        spans.push(Span::styled(format!("{client} {}", delay(*worst)), style));
    }
    Line::from(spans)
}

/// While any stall goes on: the longest one's cause, client, connection
/// and duration so far, and how many others.
fn stall_banner(snap: &Snapshot) -> Option<Line<'static>> {
    let ongoing: Vec<&StallRow> = snap.stalls.iter().filter(|s| s.ongoing).collect();
    let worst = ongoing.iter().max_by_key(|s| s.duration_ns)?;
    // Most telling first: a narrow screen cuts the end.
    let mut text = format!(
        " !! STALL ONGOING {} so far: {}, client {}",
        duration_ns(worst.duration_ns),
        worst.cause,
        worst.client.as_deref().unwrap_or("unknown")
    );
    if ongoing.len() > 1 {
        text.push_str(&format!(" (+{} more)", ongoing.len() - 1));
    }
    if let Some(conn) = worst.conn {
        text.push_str(&format!(", conn {conn}"));
    }
    if let Some(stream) = worst.stream {
        text.push_str(&format!(" stream {stream}"));
    }
    if let Some(peer) = &worst.peer {
        text.push_str(&format!(" ({peer})"));
    }
    text.push(' ');
    Some(Line::from(Span::styled(
        text,
        Style::new()
            .fg(Color::White)
            .bg(Color::Red)
            .add_modifier(Modifier::BOLD),
    )))
}

/// `line` cut to `width` cells, ending in `…` when anything was cut.
fn fit(line: Line<'static>, width: u16) -> Line<'static> {
    let width = usize::from(width);
    if line.width() <= width {
        return line;
    }
    let mut left = width.saturating_sub(1);
    let mut spans = Vec::new();
    for span in line.spans {
        if left == 0 {
            break;
        }
        let text: String = span.content.chars().take(left).collect();
        left -= text.chars().count();
        spans.push(Span::styled(text, span.style));
    }
    spans.push(Span::raw("…"));
    Line::from(spans)
}

/// `text` cut to `width` chars, ending in `…` when cut.
pub(crate) fn cut(text: String, width: usize) -> String {
    if text.chars().count() <= width {
        return text;
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
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
        badge(verdict, color),
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

/// The columns that fit `avail` cells, in order, with their widths. They
/// drop from the right (the columns are ordered by importance); a number's
/// column is never narrower than its widest value in `cells` (each row's
/// texts), so numbers are never cut; a text column may take what is left,
/// its texts then cut with `…`.
fn fit_columns<R: Row>(
    columns: &[Column<R>],
    cells: &[Vec<String>],
    avail: u16,
) -> Vec<(usize, u16)> {
    let mut out = Vec::new();
    let mut used: u16 = 0;
    for (i, c) in columns.iter().enumerate() {
        let spacing = u16::from(i > 0);
        let need = if c.numeric {
            cells
                .iter()
                .map(|row| row[i].chars().count() as u16)
                .chain([c.width, c.title.chars().count() as u16 + 1])
                .max()
                .unwrap_or(c.width)
        } else {
            c.width
        };
        let left = avail.saturating_sub(used + spacing);
        if need <= left {
            out.push((i, need));
            used += spacing + need;
        } else {
            // A text column shrinks into what is left (if that still
            // holds its title); then nothing more fits.
            if !c.numeric && left >= (c.title.chars().count() as u16 + 1).max(6) {
                out.push((i, left));
            }
            break;
        }
    }
    out
}

fn render_table<R: Row>(frame: &mut Frame<'_>, area: Rect, app: &App, rows: &[&R], title: String) {
    let columns = R::shown_columns(app.drill().is_some());
    let Sort { column, descending } = app.sort(app.tab());
    // Inside the borders, less the selection's `> `.
    let avail = area.width.saturating_sub(4);
    // Each cell's text, once: the widths are measured on them.
    let mut cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| (c.cell)(r)).collect())
        .collect();
    let shown = fit_columns(columns, &cells, avail);
    let header = TableRow::new(shown.iter().map(|&(i, width)| {
        let c = &columns[i];
        let mark = if i == column {
            if descending { "▼" } else { "▲" }
        } else {
            ""
        };
        let text = cut(format!("{}{mark}", c.title), usize::from(width));
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
    let body = rows.iter().zip(cells.iter_mut()).map(|(r, texts)| {
        let row = TableRow::new(shown.iter().map(|&(i, width)| {
            let c = &columns[i];
            let text = std::mem::take(&mut texts[i]);
            if c.numeric {
                Cell::from(Line::from(text).alignment(Alignment::Right))
            } else {
                Cell::from(cut(text, usize::from(width)))
            }
        }));
        match r.mark() {
            Mark::Urgent => row.style(URGENT),
            Mark::Warn => row.style(WARN),
            Mark::None => row,
        }
    });
    // A text column at the end takes the spare width; numbers stay
    // next to their neighbours.
    let widths: Vec<Constraint> = shown
        .iter()
        .enumerate()
        .map(|(n, &(i, width))| {
            if n + 1 == shown.len() && !columns[i].numeric {
                Constraint::Min(width)
            } else {
                Constraint::Length(width)
            }
        })
        .collect();
    let block = Block::bordered().title(cut(title, usize::from(area.width.saturating_sub(2))));
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
        _ => {
            let replay = if app.replay() {
                "p pause  . step 1s  n next stall  "
            } else {
                ""
            };
            Line::from(Span::styled(
                format!(
                    "q quit  ? help  {replay}Tab/1-3 tabs  s/</> sort  S reverse  / filter  Enter drill  Esc back  f freeze"
                ),
                Style::new().fg(Color::DarkGray),
            ))
        }
    };
    frame.render_widget(Paragraph::new(fit(line, area.width)), area);
}

/// A stall still going on (the row also shows `!!`).
const URGENT: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
/// Stalled in the last minute, or late (the row also shows `!`).
const WARN: Style = Style::new().fg(Color::Yellow);

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
    ("p", "replay: pause / resume the recording"),
    (".", "replay: step one second of the recording (pauses)"),
    ("n", "replay: play on to the next stall, and pause there"),
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
