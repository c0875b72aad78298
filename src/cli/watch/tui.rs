//! The interactive screen of `qyl watch` (stdout a terminal): the newest
//! records as a table under a header with the connection and counts, which
//! can be paused, filtered as you type, and opened into a trace waterfall.
//!
//! The screen runs on the calling thread (crossterm's key reads block); the
//! stream and trace requests run on the runtime and hand their results over
//! through channels, so a slow qyl never freezes the keys.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;
use regex::Regex;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::filter::{typed_filter, Selection};
use super::line::{self, Cells};
use super::record::{Kind, Level, LiveRecord};
use super::stream::{self, Notice, Update};
use super::waterfall::{self, Waterfall};
use crate::cli::client::Remote;

/// Rows kept on screen, and rows held while paused: enough to scroll back
/// through a burst, bounded so a busy service cannot grow the watch.
const MAX_ROWS: usize = 5000;

/// How often the screen redraws when nothing is typed.
const FRAME: Duration = Duration::from_millis(100);

pub fn run(runtime: &Runtime, remote: Remote, selection: Selection) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel(4096);
    let follower = runtime.spawn(stream::follow(
        remote.clone(),
        selection.server_params(),
        tx,
    ));
    // SIGTERM must still restore the terminal: the loop sees the flag and
    // returns through the guard. After SIGHUP there is no terminal to
    // restore, and crossterm's read of the closed tty spins without
    // returning to the loop: exit at once.
    let stop = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let _guard = runtime.enter();
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            let stop = stop.clone();
            runtime.spawn(async move {
                term.recv().await;
                stop.store(true, Ordering::Relaxed);
            });
        }
        if let Ok(mut hangup) = signal(SignalKind::hangup()) {
            runtime.spawn(async move {
                hangup.recv().await;
                std::process::exit(129);
            });
        }
    }

    let mut terminal = ratatui::try_init().context("opening the terminal screen")?;
    let restore = RestoreOnDrop;
    let mut app = App::new(remote.base.clone(), selection);
    let (trace_tx, trace_rx) = std::sync::mpsc::channel::<(String, anyhow::Result<Waterfall>)>();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        // Take what arrived, but redraw at least once per batch of this
        // size so a flood does not stall the keys.
        for _ in 0..MAX_ROWS {
            match rx.try_recv() {
                Ok(update) => app.receive(update),
                Err(_) => break,
            }
        }
        if follower.is_finished() {
            // The server refused the watch (401, 400): leave the screen and
            // say why.
            drop(restore);
            return match runtime.block_on(follower) {
                Ok(result) => result,
                Err(e) => Err(e).context("the live stream's task failed"),
            };
        }
        while let Ok((id, result)) = trace_rx.try_recv() {
            app.trace_loaded(&id, result);
        }
        terminal
            .draw(|f| app.draw(f))
            .context("drawing the screen")?;
        if !event::poll(FRAME).context("reading the keyboard")? {
            continue;
        }
        let Event::Key(key) = event::read().context("reading the keyboard")? else {
            continue;
        };
        if key.kind == KeyEventKind::Release {
            continue;
        }
        match app.key(key) {
            Action::None => {}
            Action::Quit => return Ok(()),
            Action::OpenTrace(trace_id) => {
                let remote = remote.clone();
                let done = trace_tx.clone();
                runtime.spawn(async move {
                    let path = format!("/api/v1/traces/{trace_id}");
                    let result = remote
                        .get_json::<serde_json::Value>(&path)
                        .await
                        .map(|tree| waterfall::from_trace(&trace_id, &tree));
                    let _ = done.send((trace_id, result));
                });
            }
        }
    }
}

/// Leaves raw mode and the alternate screen on every way out of [`run`]
/// (ratatui's panic hook covers panics).
struct RestoreOnDrop;

impl Drop for RestoreOnDrop {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// What a key asks of the loop.
#[derive(Debug, PartialEq)]
enum Action {
    None,
    Quit,
    OpenTrace(String),
}

struct Shown {
    record: Box<LiveRecord>,
    cells: Cells,
    /// The line and the attributes, for the filter.
    search: String,
}

enum View {
    List,
    Trace {
        trace_id: String,
        loaded: Option<Result<Waterfall, String>>,
        scroll: usize,
    },
}

struct App {
    url: String,
    selection: Selection,
    connected: bool,
    /// The last notice and when it came, shown in the header.
    notice: Option<(String, Instant)>,
    rows: VecDeque<Shown>,
    /// Rows that arrived while paused, shown on resume.
    held: VecDeque<Shown>,
    /// Rows that arrived while paused beyond what `held` keeps.
    held_dropped: u64,
    paused: bool,
    counts: [u64; 4],
    filter_text: String,
    filter: Option<Regex>,
    editing_filter: bool,
    /// The selected row's seq; `None` follows the newest row.
    selected: Option<u64>,
    /// First visible row (an index into the filtered rows).
    top: usize,
    /// Table rows that fit, from the last draw (for PgUp/PgDn).
    page: usize,
    view: View,
}

impl App {
    fn new(url: String, selection: Selection) -> App {
        App {
            url,
            selection,
            connected: false,
            notice: None,
            rows: VecDeque::new(),
            held: VecDeque::new(),
            held_dropped: 0,
            paused: false,
            counts: [0; 4],
            filter_text: String::new(),
            filter: None,
            editing_filter: false,
            selected: None,
            top: 0,
            page: 10,
            view: View::List,
        }
    }

    fn receive(&mut self, update: Update) {
        match update {
            Update::Record(r) => {
                if !self.selection.keeps(&r) {
                    return;
                }
                self.counts[r.kind as usize] += 1;
                let cells = line::cells(&r, self.selection.genai);
                let search = format!(
                    "{} {} {} {} {} {}",
                    cells.kind,
                    cells.service,
                    cells.status,
                    cells.text,
                    r.trace_id.as_deref().unwrap_or(""),
                    r.searchable_extra()
                );
                let shown = Shown {
                    record: r,
                    cells,
                    search,
                };
                if self.paused {
                    push_bounded(&mut self.held, shown, &mut self.held_dropped);
                } else {
                    push_bounded(&mut self.rows, shown, &mut 0);
                }
            }
            Update::Notice(n) => {
                match &n {
                    // The header says "connected" already; only a
                    // reconnection is news.
                    Notice::Connected { reconnected, .. } => {
                        self.connected = true;
                        if !reconnected {
                            return;
                        }
                    }
                    Notice::Disconnected { .. } => self.connected = false,
                    Notice::Gap { .. } | Notice::Lagged { .. } => {}
                }
                self.notice = Some((n.to_string(), Instant::now()));
            }
        }
    }

    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if !paused {
            for shown in self.held.drain(..) {
                push_bounded(&mut self.rows, shown, &mut 0);
            }
            self.held_dropped = 0;
        }
    }

    /// Indexes of the rows that pass the typed filter.
    fn visible(&self) -> Vec<usize> {
        match &self.filter {
            None => (0..self.rows.len()).collect(),
            Some(re) => (0..self.rows.len())
                .filter(|&i| re.is_match(&self.rows[i].search))
                .collect(),
        }
    }

    /// The selected row's position among `visible`; the newest when
    /// following, or when the selected row has scrolled out of memory.
    fn position(&self, visible: &[usize]) -> Option<usize> {
        let last = visible.len().checked_sub(1)?;
        match self.selected {
            None => Some(last),
            Some(seq) => Some(
                visible
                    .iter()
                    .position(|&i| self.rows[i].record.seq == seq)
                    .unwrap_or(last),
            ),
        }
    }

    fn key(&mut self, key: KeyEvent) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c')) {
            return Action::Quit;
        }
        if self.editing_filter {
            match key.code {
                KeyCode::Esc => {
                    self.filter_text.clear();
                    self.editing_filter = false;
                }
                KeyCode::Enter => self.editing_filter = false,
                KeyCode::Backspace => {
                    self.filter_text.pop();
                }
                KeyCode::Char(c) => self.filter_text.push(c),
                _ => {}
            }
            self.filter = typed_filter(&self.filter_text);
            return Action::None;
        }
        if let View::Trace { scroll, .. } = &mut self.view {
            match key.code {
                KeyCode::Char('q') => return Action::Quit,
                KeyCode::Esc | KeyCode::Backspace | KeyCode::Left => self.view = View::List,
                KeyCode::Up => *scroll = scroll.saturating_sub(1),
                KeyCode::Down => *scroll += 1,
                KeyCode::PageUp => *scroll = scroll.saturating_sub(self.page),
                KeyCode::PageDown => *scroll += self.page,
                _ => {}
            }
            return Action::None;
        }
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char(' ') | KeyCode::Char('p') => self.set_paused(!self.paused),
            KeyCode::Char('/') => {
                self.editing_filter = true;
            }
            KeyCode::Esc => {
                self.filter_text.clear();
                self.filter = None;
            }
            KeyCode::Up => self.move_selection(-1),
            KeyCode::Down => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-(self.page as isize)),
            KeyCode::PageDown => self.move_selection(self.page as isize),
            KeyCode::Home => self.move_selection(isize::MIN / 2),
            KeyCode::End => self.selected = None,
            KeyCode::Enter => {
                let visible = self.visible();
                if let Some(p) = self.position(&visible) {
                    let r = &self.rows[visible[p]].record;
                    if let Some(trace_id) = r.trace_id.clone() {
                        self.view = View::Trace {
                            trace_id: trace_id.clone(),
                            loaded: None,
                            scroll: 0,
                        };
                        return Action::OpenTrace(trace_id);
                    }
                    self.notice = Some((
                        format!("this {} has no trace", r.kind.as_str()),
                        Instant::now(),
                    ));
                }
            }
            _ => {}
        }
        Action::None
    }

    fn move_selection(&mut self, by: isize) {
        let visible = self.visible();
        let Some(p) = self.position(&visible) else {
            return;
        };
        let last = visible.len() - 1;
        let to = (p as isize + by).clamp(0, last as isize) as usize;
        // Moving down onto the newest row resumes following.
        self.selected = if to == last && by > 0 {
            None
        } else {
            Some(self.rows[visible[to]].record.seq)
        };
    }

    fn trace_loaded(&mut self, id: &str, result: anyhow::Result<Waterfall>) {
        if let View::Trace {
            trace_id, loaded, ..
        } = &mut self.view
        {
            if trace_id == id {
                *loaded = Some(result.map_err(|e| format!("{e:#}")));
            }
        }
    }

    fn draw(&mut self, f: &mut Frame) {
        let [header, body, footer] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Min(1),
            Constraint::Length(1),
        ])
        .areas(f.area());
        self.draw_header(f, header);
        self.page = body.height.saturating_sub(1).max(1) as usize;
        match &self.view {
            View::List => self.draw_list(f, body),
            View::Trace { .. } => self.draw_trace(f, body),
        }
        let help = match (&self.view, self.editing_filter) {
            (_, true) => "type to filter  enter keep  esc clear",
            (View::List, _) => {
                "space/p pause  / filter  esc clear  ↑↓ PgUp PgDn select  enter trace  q quit"
            }
            (View::Trace { .. }, _) => "↑↓ scroll  esc back  q quit",
        };
        f.render_widget(
            Paragraph::new(help).style(Style::default().fg(Color::DarkGray)),
            footer,
        );
    }

    fn draw_header(&self, f: &mut Frame, area: Rect) {
        let state = if self.connected {
            Span::styled("● connected", Style::default().fg(Color::Green))
        } else {
            Span::styled("○ disconnected", Style::default().fg(Color::Yellow))
        };
        let mut first = vec![
            Span::styled("qyl watch ", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!("{}  ", self.url)),
            state,
        ];
        if self.paused {
            let held = self.held.len() as u64 + self.held_dropped;
            first.push(Span::styled(
                format!("  PAUSED ({held} new)"),
                Style::default()
                    .fg(Color::Black)
                    .bg(Color::Yellow)
                    .add_modifier(Modifier::BOLD),
            ));
        }
        if let Some((notice, at)) = &self.notice {
            if at.elapsed() < Duration::from_secs(30) {
                first.push(Span::styled(
                    format!("  {notice}"),
                    Style::default().fg(Color::DarkGray),
                ));
            }
        }
        let [spans, logs, errors, functions] = self.counts;
        let shown = self.visible().len();
        let mut second = vec![Span::raw(format!(
            "spans {spans}  logs {logs}  error groups {errors}  functions {functions}  showing {shown}/{}",
            self.rows.len()
        ))];
        if self.editing_filter || !self.filter_text.is_empty() {
            let cursor = if self.editing_filter { "▏" } else { "" };
            second.push(Span::styled(
                format!("  filter: /{}{cursor}", self.filter_text),
                Style::default().fg(Color::Cyan),
            ));
        }
        f.render_widget(
            Paragraph::new(vec![Line::from(first), Line::from(second)]),
            area,
        );
    }

    fn draw_list(&mut self, f: &mut Frame, area: Rect) {
        let visible = self.visible();
        let height = self.page;
        let position = self.position(&visible);
        if let Some(p) = position {
            if p < self.top {
                self.top = p;
            } else if p >= self.top + height {
                self.top = p + 1 - height;
            }
        }
        self.top = self.top.min(visible.len().saturating_sub(height));
        let highlight = self.selected.is_some();
        let rows = visible
            .iter()
            .enumerate()
            .skip(self.top)
            .take(height)
            .map(|(p, &i)| {
                let shown = &self.rows[i];
                let c = &shown.cells;
                let style = level_style(shown.record.level);
                let mut row = Row::new(vec![
                    Cell::from(c.time.clone()).style(Style::default().fg(Color::DarkGray)),
                    Cell::from(c.kind).style(kind_style(shown.record.kind)),
                    Cell::from(c.service.clone()).style(Style::default().fg(Color::Cyan)),
                    Cell::from(format!("{:>9}", c.duration)),
                    Cell::from(c.status.clone()).style(style),
                    Cell::from(c.text.clone()).style(match shown.record.level {
                        Level::Ok | Level::Normal => Style::default(),
                        _ => style,
                    }),
                    Cell::from(c.trace.clone()).style(Style::default().fg(Color::DarkGray)),
                ]);
                if highlight && Some(p) == position {
                    row = row.style(Style::default().add_modifier(Modifier::REVERSED));
                }
                row
            });
        let table = Table::new(
            rows,
            [
                Constraint::Length(12),
                Constraint::Length(5),
                Constraint::Length(line::SERVICE_WIDTH as u16),
                Constraint::Length(9),
                Constraint::Length(7),
                Constraint::Fill(1),
                Constraint::Length(8),
            ],
        )
        .header(
            Row::new([
                "time",
                "kind",
                "service",
                "duration",
                "status",
                "name / body",
                "trace",
            ])
            .style(Style::default().add_modifier(Modifier::BOLD)),
        );
        f.render_widget(table, area);
    }

    fn draw_trace(&self, f: &mut Frame, area: Rect) {
        let View::Trace {
            trace_id,
            loaded,
            scroll,
        } = &self.view
        else {
            return;
        };
        let w = match loaded {
            None => {
                f.render_widget(Paragraph::new(format!("loading trace {trace_id}…")), area);
                return;
            }
            Some(Err(e)) => {
                f.render_widget(
                    Paragraph::new(format!("trace {trace_id}: {e}"))
                        .style(Style::default().fg(Color::Red)),
                    area,
                );
                return;
            }
            Some(Ok(w)) => w,
        };
        let width = area.width as usize;
        let name_width = (width * 2 / 5).clamp(20, 60);
        let service_width = 14;
        let duration_width = 9;
        let bar_width = width.saturating_sub(name_width + service_width + duration_width + 3);
        let title = Line::from(Span::styled(
            format!(
                "trace {}  {} spans  {}  {} logs",
                w.trace_id,
                w.rows.len(),
                line::format_duration(w.duration_ms),
                w.logs.len()
            ),
            Style::default().add_modifier(Modifier::BOLD),
        ));
        let mut lines = Vec::new();
        for row in &w.rows {
            let name = line::fit(
                &format!("{}{}", "  ".repeat(row.depth), row.name),
                name_width,
            );
            let colour = if row.error { Color::Red } else { Color::Blue };
            lines.push(Line::from(vec![
                Span::raw(format!("{name:<name_width$} ")),
                Span::styled(
                    format!(
                        "{:<service_width$} ",
                        line::fit(&row.service, service_width)
                    ),
                    Style::default().fg(Color::Cyan),
                ),
                Span::styled(
                    format!("{:<bar_width$}", waterfall::bar(row, bar_width)),
                    Style::default().fg(colour),
                ),
                Span::raw(format!(
                    " {:>duration_width$}",
                    line::format_duration(row.duration_ms)
                )),
            ]));
        }
        if !w.logs.is_empty() {
            lines.push(Line::raw(""));
            lines.push(Line::from(Span::styled(
                "logs",
                Style::default().add_modifier(Modifier::BOLD),
            )));
        }
        for log in &w.logs {
            lines.push(Line::from(vec![
                Span::styled(
                    format!("{} ", line::local_time(log.time_ns)),
                    Style::default().fg(Color::DarkGray),
                ),
                Span::styled(format!("{:<7} ", log.status), level_style(log.level)),
                Span::raw(log.text.replace(['\n', '\r'], " ⏎ ")),
            ]));
        }
        // The title stays; the rest scrolls.
        let scroll = (*scroll).min(lines.len().saturating_sub(1));
        let shown: Vec<Line> = std::iter::once(title)
            .chain(lines.into_iter().skip(scroll))
            .collect();
        f.render_widget(Paragraph::new(shown), area);
    }
}

fn push_bounded(rows: &mut VecDeque<Shown>, shown: Shown, dropped: &mut u64) {
    if rows.len() == MAX_ROWS {
        rows.pop_front();
        *dropped += 1;
    }
    rows.push_back(shown);
}

fn level_style(level: Level) -> Style {
    match level {
        Level::Error => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        Level::Warn => Style::default().fg(Color::Yellow),
        Level::Ok => Style::default().fg(Color::Green),
        Level::Quiet => Style::default().fg(Color::DarkGray),
        Level::Normal => Style::default(),
    }
}

fn kind_style(kind: Kind) -> Style {
    match kind {
        Kind::Error => Style::default().fg(Color::Magenta),
        Kind::Function => Style::default().fg(Color::Cyan),
        _ => Style::default().fg(Color::DarkGray),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span(seq: u64, name: &str) -> Update {
        Update::Record(Box::new(LiveRecord::new(
            seq,
            Kind::Span,
            json!({"name": name, "service_name": "shop", "trace_id": format!("{seq:032x}"), "status_code": "OK"}),
        )))
    }

    fn press(app: &mut App, code: KeyCode) -> Action {
        app.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn type_text(app: &mut App, text: &str) {
        for c in text.chars() {
            press(app, KeyCode::Char(c));
        }
    }

    #[test]
    fn paused_rows_are_held_and_shown_on_resume() {
        let mut app = App::new("http://x".into(), Selection::default());
        app.receive(span(1, "a"));
        press(&mut app, KeyCode::Char(' '));
        app.receive(span(2, "b"));
        assert_eq!((app.rows.len(), app.held.len()), (1, 1));
        press(&mut app, KeyCode::Char('p'));
        assert_eq!((app.rows.len(), app.held.len()), (2, 0));
    }

    #[test]
    fn typed_filter_narrows_and_esc_clears() {
        let mut app = App::new("http://x".into(), Selection::default());
        for (seq, name) in [(1, "GET /cart"), (2, "POST /pay"), (3, "GET /home")] {
            app.receive(span(seq, name));
        }
        press(&mut app, KeyCode::Char('/'));
        type_text(&mut app, "get ");
        assert_eq!(app.visible(), [0, 2]);
        press(&mut app, KeyCode::Enter);
        // Keys are commands again once the filter is kept.
        assert_eq!(
            press(&mut app, KeyCode::Enter),
            Action::OpenTrace(format!("{:032x}", 3))
        );
        press(&mut app, KeyCode::Esc);
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.visible().len(), 3);
    }

    #[test]
    fn selection_moves_and_follows_the_newest_again() {
        let mut app = App::new("http://x".into(), Selection::default());
        for seq in 1..=3 {
            app.receive(span(seq, "s"));
        }
        press(&mut app, KeyCode::Up);
        press(&mut app, KeyCode::Up);
        assert_eq!(app.selected, Some(1));
        assert_eq!(
            press(&mut app, KeyCode::Enter),
            Action::OpenTrace(format!("{:032x}", 1))
        );
        press(&mut app, KeyCode::Esc);
        press(&mut app, KeyCode::PageDown);
        assert_eq!(app.selected, None);
    }
}
