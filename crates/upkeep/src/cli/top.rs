//! `upkeep top`: a live terminal view of the services, like `pm2 monit`.
//!
//! Nothing here polls and nothing reads `/proc`: the daemon pushes the service list (state,
//! pid, CPU, memory, restarts) over one connection (`/api/v1/live/services`) as events are
//! committed and every two seconds for the figures that change without one, and the selected
//! service's log comes from the logs route, followed (`follow=true`) so new lines appear as
//! they are written. Keys act through the same routes as `upkeep restart|stop|start`. When the
//! stream ends (the daemon stopped, restarted, or re-executed itself for `upkeep upgrade`),
//! the view stays and connects again until a daemon answers.
//!
//! The screen is drawn from [`View`], which holds all that is shown and decides what a key
//! means ([`View::key`]); the loop in [`run`] only moves messages: keys from a thread that
//! blocks on the terminal, lists and log bytes from tasks that read the daemon's answers.
//! So the view is tested without a terminal or a daemon (a `TestBackend` draws it).

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use http_body_util::BodyExt;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};
use tokio::sync::mpsc;
use upkeep_core::State;
use upkeep_core::api::{ActionResult, ServiceInfo};
use upkeep_core::i18n::{Msg, tr};

use super::client::{ApiPath, Client};
use super::{Global, Usage, escape, output};

/// Log lines kept for the pane (more than any screen shows).
const LOG_KEEP: usize = 500;
/// Lines asked for when a service is selected.
const LOG_TAIL: usize = 200;

/// What the loop hears.
enum Input {
    Terminal(TermEvent),
    /// A new service list from the daemon.
    Services(Vec<ServiceInfo>),
    /// The list's stream ended: the daemon stopped, or the connection broke.
    LiveEnded(String),
    /// A daemon answers again after the stream ended.
    Reconnected,
    /// Bytes of the log of the selection numbered `generation`.
    Log {
        generation: u64,
        bytes: Vec<u8>,
    },
    /// An action's outcome, for the status line.
    Said(String),
}

/// What a key asks for, beyond what the view changes by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Todo {
    Nothing,
    Quit,
    /// `restart`, `stop` or `start` of the named service.
    Act(&'static str, upkeep_core::ServiceName),
    /// Show the log of the selected service from its tail (selection, stream or pause changed).
    Relog,
}

/// Everything on screen, and what keys do to it.
struct View {
    services: Vec<ServiceInfo>,
    table: TableState,
    /// The selected service's name: kept across lists, whose order or length may change.
    selected: Option<upkeep_core::ServiceName>,
    log: VecDeque<String>,
    /// A line the log stream has begun and not yet ended.
    log_partial: String,
    stderr: bool,
    follow: bool,
    /// Numbers the log streams: bytes of an older one (of a previous selection) are dropped.
    generation: u64,
    status: String,
}

impl View {
    fn new() -> View {
        View {
            services: Vec::new(),
            table: TableState::default(),
            selected: None,
            log: VecDeque::new(),
            log_partial: String::new(),
            stderr: false,
            follow: true,
            generation: 0,
            status: String::new(),
        }
    }

    /// Takes a new list; says whether the selection changed (its log is then shown anew).
    fn services(&mut self, list: Vec<ServiceInfo>) -> bool {
        self.services = list;
        let before = self.selected.clone();
        let at = self
            .selected
            .as_ref()
            .and_then(|s| self.services.iter().position(|i| &i.status.name == s))
            .or(if self.services.is_empty() {
                None
            } else {
                Some(
                    self.table
                        .selected()
                        .unwrap_or(0)
                        .min(self.services.len() - 1),
                )
            });
        self.table.select(at);
        self.selected = at.map(|i| self.services[i].status.name.clone());
        self.selected != before
    }

    fn select(&mut self, at: usize) -> Todo {
        if self.services.is_empty() {
            return Todo::Nothing;
        }
        let at = at.min(self.services.len() - 1);
        if self.table.selected() == Some(at) {
            return Todo::Nothing;
        }
        self.table.select(Some(at));
        self.selected = Some(self.services[at].status.name.clone());
        Todo::Relog
    }

    fn key(&mut self, key: KeyEvent) -> Todo {
        if key.kind == KeyEventKind::Release {
            return Todo::Nothing;
        }
        let at = self.table.selected().unwrap_or(0);
        let act = |action, view: &View| {
            view.selected
                .clone()
                .map_or(Todo::Nothing, |name| Todo::Act(action, name))
        };
        match key.code {
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Todo::Quit,
            KeyCode::Char('q') | KeyCode::Esc => Todo::Quit,
            KeyCode::Down | KeyCode::Char('j') => self.select(at + 1),
            KeyCode::Up | KeyCode::Char('k') => self.select(at.saturating_sub(1)),
            KeyCode::Home | KeyCode::Char('g') => self.select(0),
            KeyCode::End | KeyCode::Char('G') => self.select(usize::MAX),
            KeyCode::Char('r') => act("restart", self),
            KeyCode::Char('x') => act("stop", self),
            KeyCode::Char('s') => act("start", self),
            KeyCode::Char('e') => {
                self.stderr = !self.stderr;
                Todo::Relog
            }
            KeyCode::Char('f') => {
                self.follow = !self.follow;
                Todo::Relog
            }
            _ => Todo::Nothing,
        }
    }

    /// Starts a new log: what comes from older streams is dropped from now on.
    fn new_log(&mut self) -> u64 {
        self.generation += 1;
        self.log.clear();
        self.log_partial.clear();
        self.generation
    }

    fn log_bytes(&mut self, generation: u64, bytes: &[u8]) {
        if generation != self.generation {
            return;
        }
        self.log_partial.push_str(&String::from_utf8_lossy(bytes));
        while let Some(end) = self.log_partial.find('\n') {
            let line: String = self.log_partial.drain(..=end).collect();
            self.log
                .push_back(escape::field(line.trim_end_matches('\n')).into_owned());
            if self.log.len() > LOG_KEEP {
                self.log.pop_front();
            }
        }
    }

    fn draw(&mut self, frame: &mut Frame) {
        let rows = self.services.len() as u16 + 3;
        let [list, log, footer] = Layout::vertical([
            Constraint::Max(rows.max(4)),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(frame.area());

        let header = [
            Msg::ColName,
            Msg::ColState,
            Msg::ColPid,
            Msg::ColCpu,
            Msg::ColMemory,
            Msg::ColRestarts,
            Msg::ColUptime,
        ]
        .map(|m| tr(m, &[]));
        let body = self.services.iter().map(|i| {
            Row::new(vec![
                Span::raw(i.status.name.to_string()),
                Span::styled(i.status.state.as_str(), state_style(i.status.state)),
                Span::raw(i.status.pid.map_or("-".into(), |p| p.to_string())),
                Span::raw(i.cpu_percent.map_or("-".into(), |c| format!("{c:.1}%"))),
                Span::raw(i.memory_bytes.map_or("-".into(), output::bytes)),
                Span::raw(i.status.restarts.to_string()),
                Span::raw(output::uptime(i)),
            ])
        });
        let name_width = self
            .services
            .iter()
            .map(|i| i.status.name.as_str().chars().count())
            .chain([header[0].chars().count()])
            .max()
            .unwrap_or(4) as u16;
        let widths = [
            Constraint::Length(name_width + 2),
            Constraint::Length(12),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(11),
            Constraint::Length(9),
            Constraint::Length(10),
        ];
        let table = Table::new(body, widths)
            .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .highlight_symbol("> ")
            .highlight_spacing(ratatui::widgets::HighlightSpacing::Always)
            .block(Block::new().borders(Borders::ALL).title(" upkeep top "));
        frame.render_stateful_widget(table, list, &mut self.table);

        let stream = if self.stderr { "stderr" } else { "stdout" };
        let paused = if self.follow {
            String::new()
        } else {
            format!(" ({})", tr(Msg::TopPaused, &[]))
        };
        let title = match &self.selected {
            Some(name) => format!(" {name} {stream}{paused} "),
            None => format!(" {} ", tr(Msg::NoServices, &[])),
        };
        // The newest lines that fit, oldest on top.
        let fit = log.height.saturating_sub(2) as usize;
        let skip = self.log.len().saturating_sub(fit);
        let lines: Vec<Line> = self
            .log
            .iter()
            .skip(skip)
            .map(|l| Line::raw(l.as_str()))
            .collect();
        frame.render_widget(
            Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(title)),
            log,
        );

        let keys = tr(Msg::TopKeys, &[]);
        let text = if self.status.is_empty() {
            keys
        } else {
            format!("{}  |  {keys}", self.status)
        };
        frame.render_widget(
            Paragraph::new(text).style(Style::new().add_modifier(Modifier::DIM)),
            footer,
        );
    }
}

fn state_style(state: State) -> Style {
    let color = match state {
        State::Up => Color::Green,
        State::Starting | State::Recovering | State::Degraded | State::Stopping => Color::Yellow,
        State::Down | State::Failed | State::Exited => Color::Red,
        State::Stopped | State::Maintenance | State::Unknown => Color::DarkGray,
    };
    Style::new().fg(color)
}

pub fn run(g: &Global) -> Result<ExitCode> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Usage(tr(Msg::TopNeedsTerminal, &[])).into());
    }
    let client = Arc::new(g.client()?);
    super::runtime()?.block_on(async move {
        // Connected before the screen is taken, so "no daemon runs" prints as any error does.
        let live = client
            .send(
                hyper::Method::GET,
                ApiPath::new("/api/v1/live/services").query("every", "2s"),
                None,
            )
            .await?
            .into_body();
        let mut terminal = ratatui::init();
        let result = main_loop(&mut terminal, client, live).await;
        ratatui::restore();
        result
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn main_loop(
    terminal: &mut ratatui::DefaultTerminal,
    client: Arc<Client>,
    live: hyper::body::Incoming,
) -> Result<()> {
    let (tx, mut rx) = mpsc::channel::<Input>(64);
    // The terminal blocks on read: a thread of its own, which ends with the process.
    let keys = tx.clone();
    std::thread::spawn(move || {
        while let Ok(ev) = crossterm::event::read() {
            if keys.blocking_send(Input::Terminal(ev)).is_err() {
                return;
            }
        }
    });
    tokio::spawn(follow_live(client.clone(), live, tx.clone()));

    let mut view = View::new();
    let mut log_task: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        terminal
            .draw(|f| view.draw(f))
            .context("drawing the screen")?;
        let Some(input) = rx.recv().await else {
            return Ok(());
        };
        let todo = match input {
            Input::Terminal(TermEvent::Key(key)) => view.key(key),
            Input::Terminal(_) => Todo::Nothing, // a resize: drawn again above
            Input::Services(list) => {
                if view.services(list) {
                    Todo::Relog
                } else {
                    Todo::Nothing
                }
            }
            Input::LiveEnded(why) => {
                view.status = why;
                Todo::Nothing
            }
            Input::Reconnected => {
                view.status = tr(Msg::TopReconnected, &[]);
                // The log being followed ended with the connection: follow it again.
                Todo::Relog
            }
            Input::Log { generation, bytes } => {
                view.log_bytes(generation, &bytes);
                Todo::Nothing
            }
            Input::Said(text) => {
                view.status = text;
                Todo::Nothing
            }
        };
        match todo {
            Todo::Nothing => {}
            Todo::Quit => return Ok(()),
            Todo::Act(action, name) => {
                view.status = format!("{name}: {action}...");
                let (client, tx) = (client.clone(), tx.clone());
                tokio::spawn(async move {
                    let path = ApiPath::new("/api/v1/services")
                        .segment(&name)
                        .segment(action);
                    let said = match client.post::<ActionResult>(path, None::<&()>).await {
                        Ok(_) => format!("{name}: {}", tr(done_msg(action), &[])),
                        Err(e) => format!("{name}: {e}"),
                    };
                    let _ = tx
                        .send(Input::Said(escape::field(&said).into_owned()))
                        .await;
                });
            }
            Todo::Relog => {
                if let Some(t) = log_task.take() {
                    t.abort();
                }
                let generation = view.new_log();
                if let Some(name) = view.selected.clone() {
                    let path = ApiPath::new("/api/v1/services")
                        .segment(&name)
                        .segment("logs")
                        .query("n", LOG_TAIL)
                        .query("stderr", view.stderr)
                        .query("follow", view.follow);
                    log_task = Some(tokio::spawn(read_log(
                        client.clone(),
                        path,
                        generation,
                        tx.clone(),
                    )));
                }
            }
        }
    }
}

fn done_msg(action: &str) -> Msg {
    match action {
        "stop" => Msg::Stopped,
        "start" => Msg::Started,
        _ => Msg::Restarted,
    }
}

/// The live list for as long as the view is open: when the stream ends (the daemon stopped,
/// restarted or re-executed itself for `upkeep upgrade`), it says so and connects again, every
/// 250 ms at first, then every 2 s, until a daemon answers.
async fn follow_live(client: Arc<Client>, first: hyper::body::Incoming, tx: mpsc::Sender<Input>) {
    let mut body = first;
    loop {
        let Some(why) = read_live(body, &tx).await else {
            return;
        };
        let said = format!("{why}; {}", tr(Msg::TopReconnecting, &[]));
        if tx.send(Input::LiveEnded(said)).await.is_err() {
            return;
        }
        let mut pause = Duration::from_millis(250);
        body = loop {
            tokio::time::sleep(pause).await;
            if tx.is_closed() {
                return;
            }
            let path = ApiPath::new("/api/v1/live/services").query("every", "2s");
            match client.send(hyper::Method::GET, path, None).await {
                Ok(r) => break r.into_body(),
                Err(_) => pause = (pause * 2).min(Duration::from_secs(2)),
            }
        };
        if tx.send(Input::Reconnected).await.is_err() {
            return;
        }
    }
}

/// Reads the live list, one JSON array a line, until the stream ends; answers why it ended
/// (None: the view is gone).
async fn read_live(mut body: hyper::body::Incoming, tx: &mpsc::Sender<Input>) -> Option<String> {
    let mut pending: Vec<u8> = Vec::new();
    let why = loop {
        let frame = match body.frame().await {
            None => break tr(Msg::TopStreamEnded, &[]),
            Some(Err(e)) => break format!("{}: {e}", tr(Msg::TopStreamEnded, &[])),
            Some(Ok(frame)) => frame,
        };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.extend_from_slice(data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            match serde_json::from_slice::<Vec<ServiceInfo>>(&line) {
                Ok(list) => {
                    if tx.send(Input::Services(list)).await.is_err() {
                        return None;
                    }
                }
                Err(e) => {
                    let said = format!("unexpected answer from the daemon: {e}");
                    let _ = tx.send(Input::Said(said)).await;
                }
            }
        }
    };
    Some(why)
}

/// Sends a log's bytes as they come (its tail, then, when followed, what is written next).
async fn read_log(client: Arc<Client>, path: ApiPath, generation: u64, tx: mpsc::Sender<Input>) {
    let mut body = match client.send(hyper::Method::GET, path, None).await {
        Ok(r) => r.into_body(),
        Err(e) => {
            let _ = tx
                .send(Input::Said(escape::field(&e.to_string()).into_owned()))
                .await;
            return;
        }
    };
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            let bytes = data.to_vec();
            if tx.send(Input::Log { generation, bytes }).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;

    fn info(name: &str, state: &str, pid: Option<u32>) -> ServiceInfo {
        serde_json::from_value(serde_json::json!({
            "name": name, "state": state, "pid": pid, "since": null, "restarts": 2,
            "last_exit": null, "dropped_lines": 0, "desired": "running",
            "cpu_percent": 1.5, "memory_bytes": 2_097_152, "processes": 1,
        }))
        .unwrap()
    }

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn name(n: &str) -> upkeep_core::ServiceName {
        upkeep_core::ServiceName::new(n).unwrap()
    }

    fn screen(view: &mut View) -> String {
        let mut t = ratatui::Terminal::new(TestBackend::new(100, 20)).unwrap();
        t.draw(|f| view.draw(f)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol().to_owned())
                    .collect::<String>()
                    + "\n"
            })
            .collect()
    }

    #[test]
    fn the_selection_follows_its_service_across_lists() {
        let mut v = View::new();
        assert!(v.services(vec![
            info("api", "up", Some(10)),
            info("web", "up", Some(11))
        ]));
        assert_eq!(v.selected, Some(name("api")));
        assert_eq!(v.key(key('j')), Todo::Relog);
        assert_eq!(v.key(key('j')), Todo::Nothing, "already the last");
        // A new service sorts before it: the selection stays on web.
        assert!(!v.services(vec![
            info("aaa", "up", Some(9)),
            info("api", "up", Some(10)),
            info("web", "up", Some(11)),
        ]));
        assert_eq!(v.table.selected(), Some(2));
        // web is removed: the selection falls on what is there.
        assert!(v.services(vec![info("aaa", "up", Some(9))]));
        assert_eq!(v.selected, Some(name("aaa")));
        assert!(v.services(vec![]));
        assert_eq!(v.selected, None);
        assert_eq!(v.key(key('r')), Todo::Nothing, "nothing to restart");
    }

    #[test]
    fn keys_act_on_the_selected_service() {
        let mut v = View::new();
        v.services(vec![
            info("api", "up", Some(10)),
            info("web", "up", Some(11)),
        ]);
        v.key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
        assert_eq!(v.key(key('r')), Todo::Act("restart", name("web")));
        assert_eq!(v.key(key('x')), Todo::Act("stop", name("web")));
        assert_eq!(v.key(key('s')), Todo::Act("start", name("web")));
        assert_eq!(v.key(key('f')), Todo::Relog);
        assert!(!v.follow);
        assert_eq!(v.key(key('e')), Todo::Relog);
        assert!(v.stderr);
        assert_eq!(v.key(key('q')), Todo::Quit);
        assert_eq!(
            v.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Todo::Quit
        );
    }

    #[test]
    fn log_lines_of_an_older_selection_are_dropped_and_escaped() {
        let mut v = View::new();
        let old = v.new_log();
        let now = v.new_log();
        v.log_bytes(old, b"stale\n");
        v.log_bytes(now, b"2026-01-01T00:00:00Z hel");
        assert!(v.log.is_empty(), "half a line waits for its end");
        v.log_bytes(now, b"lo \x1b[2J\nnext\n");
        assert_eq!(v.log, ["2026-01-01T00:00:00Z hello \\x1b[2J", "next"]);
        for i in 0..LOG_KEEP {
            v.log_bytes(now, format!("{i}\n").as_bytes());
        }
        assert_eq!(v.log.len(), LOG_KEEP);
        assert_eq!(v.log.front().map(String::as_str), Some("0"));
    }

    #[test]
    fn the_screen_shows_each_service_and_the_log() {
        let mut v = View::new();
        v.services(vec![
            info("api", "up", Some(4242)),
            info("web", "failed", None),
        ]);
        let g = v.new_log();
        v.log_bytes(g, b"2026-01-01T00:00:00Z listening on 8080\n");
        let s = screen(&mut v);
        assert!(
            s.contains("api") && s.contains("4242") && s.contains("1.5%"),
            "{s}"
        );
        assert!(s.contains("2.0 MiB"), "{s}");
        assert!(s.contains("web") && s.contains("failed"), "{s}");
        assert!(s.contains("api stdout"), "{s}");
        assert!(s.contains("listening on 8080"), "{s}");
        assert!(s.contains("restart"), "the keys are shown: {s}");
    }
}
