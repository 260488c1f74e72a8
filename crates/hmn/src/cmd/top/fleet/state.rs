//! The state of the fleet screen and the one function that changes it.
//!
//! Pure like the local screen's [`App`]: a key, a resize or a new read changes only
//! [`FleetApp`], and drawing reads it, so scripted input is tested without a terminal. Inside
//! a node (`Enter`), the node is shown by a local [`App`] fed frames rebuilt from the node
//! ([`super::drill`]); keys go to it, except those that leave (`Esc`, `q`) or that a
//! read-only screen refuses (`k`, `R`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use hypomnesis::History;
use ratatui::layout::Rect;

use super::drill;
use super::nodes::{self, NodeColumn, NodeFilter, NodeSort};
use crate::cmd::top::app::{App, Effect, Mode as LocalMode, Settings};
use crate::cmd::top::theme::Theme;
use crate::cmd::top::ui;
use crate::fleet::{Fleet, Node};

/// Why `k` does nothing here.
pub(crate) const NO_SIGNALS: &str = "read-only: these processes run on other machines, so the \
     fleet screen sends no signals (run hmn top on the node for k)";

/// Why `R` does nothing here.
pub(crate) const NO_RECORDING: &str = "R records this machine only: for the fleet over time \
     use hmn ps --hosts … --json, or query Prometheus";

/// Settings fixed for the session.
#[derive(Debug, Clone)]
pub(crate) struct FleetSettings {
    pub(crate) theme: Theme,
    pub(crate) ascii: bool,
    /// How often the fleet is read.
    pub(crate) interval: Duration,
    /// The source is a Prometheus server: a node opened asks it for the node's last hour
    /// ([`FleetApp::seed_wanted`]), so its chart does not start empty.
    pub(crate) history_from_prometheus: bool,
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self {
            theme: Theme::default(),
            ascii: false,
            interval: super::FLEET_INTERVAL,
            history_from_prometheus: false,
        }
    }
}

/// How the nodes are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum View {
    /// One row per node.
    #[default]
    List,
    /// One cell per node, coloured by its free fraction.
    Grid,
}

/// Past this many nodes the heat grid is shown (unless `g` chose the list).
pub(crate) const GRID_FROM: usize = 101;

/// What the fleet screen is doing besides listing nodes.
#[derive(Debug, Clone, Default)]
pub(crate) enum FleetMode {
    #[default]
    Normal,
    /// Typing a filter after `/`.
    Filter { input: String },
    /// The `s` sort menu, `choice` highlighted (an index into [`NodeColumn::ALL`]).
    SortMenu { choice: usize },
    /// The key help (`?`), and the node to go back to when it was opened on one.
    Help { back: Option<Box<Drill>> },
    /// One node, shown on the local screen's panels.
    Node(Box<Drill>),
}

/// One node opened with `Enter`.
#[derive(Debug, Clone)]
pub(crate) struct Drill {
    /// The node's name (its row is found again by name after every read).
    pub(crate) name: String,
    /// The local screen's state, showing the node.
    pub(crate) app: App,
    /// The node is no longer in the fleet the source lists: the last frame stays.
    pub(crate) gone: bool,
}

/// Where things were when last drawn (set from [`super::draw::layout`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FleetLayout {
    pub(crate) view: Option<View>,
    /// The list's data rows, or the grid's cells area.
    pub(crate) body: Rect,
    /// Grid cells per line (1 for the list).
    pub(crate) columns: usize,
}

/// The whole state of the fleet screen.
#[derive(Debug, Clone, Default)]
pub(crate) struct FleetApp {
    pub(crate) settings: FleetSettings,
    /// What is read: `hosts`, `prometheus http://…`, before the first read says.
    pub(crate) source: String,
    /// The newest read, `None` before the first.
    pub(crate) fleet: Option<Arc<Fleet>>,
    /// Why the newest read failed (the read before it stays shown); `None` after a good one.
    pub(crate) error: Option<String>,
    /// The nodes shown, in order: indices into the fleet's nodes.
    pub(crate) rows: Vec<usize>,
    pub(crate) sort: NodeSort,
    /// The filter in force, and its text.
    pub(crate) filter: Option<(String, NodeFilter)>,
    /// The selected node, by name.
    pub(crate) selected: Option<String>,
    /// The first list row (or grid line) shown.
    pub(crate) scroll: usize,
    /// `g` chose a view; `None`: the list, or the grid past 100 nodes or when the rows do not
    /// fit.
    pub(crate) view: Option<View>,
    pub(crate) mode: FleetMode,
    pub(crate) status: Option<String>,
    pub(crate) size: (u16, u16),
    pub(crate) layout: FleetLayout,
    /// Each node's history since the screen started, by name (the node screen's chart).
    pub(crate) histories: HashMap<String, History>,
    /// When the newest read arrived.
    pub(crate) now: Option<Instant>,
    /// Nodes whose last hour was asked of Prometheus (once each; a failed ask is forgotten,
    /// so opening the node again asks again).
    pub(crate) seeded: HashSet<String>,
    /// The node whose last hour the screen loop is to fetch ([`FleetApp::seed_history`] takes
    /// the answer); the loop takes it.
    pub(crate) seed_wanted: Option<String>,
}

impl FleetApp {
    pub(crate) fn new(settings: FleetSettings, source: String) -> Self {
        Self {
            settings,
            source,
            size: (80, 24),
            ..Self::default()
        }
    }

    /// Shows a new read, arrived at `now`: records each node's history, re-lists, and
    /// refreshes an open node.
    pub(crate) fn set_fleet(&mut self, fleet: Arc<Fleet>, now: Instant) {
        self.error = None;
        self.source.clone_from(&fleet.source);
        for node in &fleet.nodes {
            let frame = drill::frame(node, now, fleet.taken_at);
            self.histories
                .entry(node.name.clone())
                .or_insert_with(|| drill::history(self.settings.interval))
                .record(&frame);
        }
        let names: std::collections::HashSet<&str> =
            fleet.nodes.iter().map(|n| n.name.as_str()).collect();
        self.histories
            .retain(|name, _| names.contains(name.as_str()));
        self.fleet = Some(fleet);
        self.now = Some(now);
        self.relist();
        self.refresh_drill();
    }

    /// The last hour of node `name` as Prometheus kept it (`fetched` at `now`, wall time
    /// `now_wall`) replaces the history recorded since the screen started, followed by the
    /// newest live frame: Prometheus holds the same period the live reads covered, so nothing
    /// is lost. A failed fetch keeps the live history and says why.
    #[cfg(feature = "fleet")]
    pub(crate) fn seed_history(
        &mut self,
        name: &str,
        fetched: Result<Vec<crate::fleet::prometheus::DeviceHistory>, crate::fleet::FleetError>,
        now: Instant,
        now_wall: std::time::SystemTime,
    ) {
        let past = match fetched {
            Ok(past) => past,
            Err(e) => {
                self.seeded.remove(name);
                self.say_of(
                    name,
                    format!(
                        "{name}: no history from Prometheus ({e}); the chart starts with this screen"
                    ),
                );
                return;
            }
        };
        let (Some(fleet), Some(live_at)) = (self.fleet.clone(), self.now) else {
            return;
        };
        // A node no longer listed keeps what it has: there is no live frame to end on.
        let Some(node) = fleet.nodes.iter().find(|n| n.name == name) else {
            return;
        };
        let frames = drill::past_frames(node, &past, now, now_wall, live_at);
        // Nothing placeable (the node's series under another `instance`, or none kept): the
        // live reads are all there is, so they stay.
        if frames.is_empty() {
            self.say_of(
                name,
                format!("{name}: Prometheus kept no memory history for it; the chart starts with this screen"),
            );
            return;
        }
        let mut history = drill::history(self.settings.interval);
        for frame in &frames {
            history.record(frame);
        }
        history.record(&drill::frame(node, live_at, fleet.taken_at));
        self.histories.insert(name.to_owned(), history);
        self.refresh_drill();
    }

    /// Puts `why` on node `name`'s status line when it is open, else on the list's.
    #[cfg(feature = "fleet")]
    fn say_of(&mut self, name: &str, why: String) {
        match &mut self.mode {
            FleetMode::Node(drill) | FleetMode::Help { back: Some(drill) }
                if drill.name == name =>
            {
                drill.app.status = Some(why);
            }
            _ => self.status = Some(why),
        }
    }

    /// A read failed: says why and keeps the last fleet shown (the reader retries).
    pub(crate) fn set_error(&mut self, why: String) {
        self.error = Some(why);
    }

    /// The node named `name` in the newest read.
    pub(crate) fn node(&self, name: &str) -> Option<&Node> {
        self.fleet.as_ref()?.nodes.iter().find(|n| n.name == name)
    }

    /// The node shown on row `i`.
    pub(crate) fn row_node(&self, i: usize) -> Option<&Node> {
        self.fleet.as_ref()?.nodes.get(*self.rows.get(i)?)
    }

    /// Which view the nodes are shown in, at `list_rows` rows of room.
    pub(crate) fn view_for(&self, list_rows: usize) -> View {
        self.view.unwrap_or({
            let n = self.rows.len();
            if n >= GRID_FROM || n > list_rows {
                View::Grid
            } else {
                View::List
            }
        })
    }

    /// Sets where things are from the drawing's layout (and sizes an open node's screen).
    pub(crate) fn set_layout(&mut self, layout: FleetLayout) {
        self.layout = layout;
        let (w, h) = self.size;
        if let FleetMode::Node(drill) | FleetMode::Help { back: Some(drill) } = &mut self.mode {
            drill.app.size = (w, h);
            let inner = ui::layout(&drill.app, Rect::new(0, 0, w, h));
            let rewidth = inner.chart_buckets != drill.app.layout.chart_buckets;
            drill.app.layout = inner;
            if rewidth && let Some(history) = self.histories.get(&drill.name) {
                drill.app.refresh(history);
            }
        }
        self.keep_selection_visible();
    }

    /// Re-arranges the rows (filter, sort), keeping the selection on the same node, or at the
    /// same place when it left the list.
    fn relist(&mut self) {
        let old = self.selected_index();
        let Some(fleet) = self.fleet.clone() else {
            return;
        };
        self.rows = nodes::arrange(&fleet, self.sort, self.filter.as_ref().map(|(_, f)| f));
        let index = self
            .selected_index()
            .or_else(|| old.map(|i| i.min(self.rows.len().saturating_sub(1))))
            .or(Some(0));
        self.select(index);
    }

    pub(crate) fn selected_index(&self) -> Option<usize> {
        let name = self.selected.as_deref()?;
        (0..self.rows.len()).find(|&i| self.row_node(i).is_some_and(|n| n.name == name))
    }

    /// Selects row `index` (clamped; nothing when the list is empty).
    fn select(&mut self, index: Option<usize>) {
        let Some(last) = self.rows.len().checked_sub(1) else {
            self.selected = None;
            self.scroll = 0;
            return;
        };
        let index = index.unwrap_or(0).min(last);
        self.selected = self.row_node(index).map(|n| n.name.clone());
        self.keep_selection_visible();
    }

    /// Lines of the body and nodes per line, at least 1 each.
    fn page(&self) -> (usize, usize) {
        (
            usize::from(self.layout.body.height).max(1),
            self.layout.columns.max(1),
        )
    }

    /// Scrolls so the selected node shows (`scroll` counts lines: list rows, grid lines).
    fn keep_selection_visible(&mut self) {
        let (lines, per_line) = self.page();
        let Some(index) = self.selected_index() else {
            self.scroll = 0;
            return;
        };
        let line = index / per_line;
        if line < self.scroll {
            self.scroll = line;
        } else if line >= self.scroll + lines {
            self.scroll = line + 1 - lines;
        }
        let all_lines = self.rows.len().div_ceil(per_line);
        self.scroll = self.scroll.min(all_lines.saturating_sub(lines));
    }

    fn move_selection(&mut self, by: isize) {
        let at = self.selected_index().unwrap_or(0);
        self.select(Some(at.saturating_add_signed(by)));
    }

    /// Applies one input event; `true` when the screen must quit.
    pub(crate) fn update(&mut self, event: &Event) -> bool {
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => self.on_key(*key),
            Event::Resize(w, h) => {
                self.size = (*w, *h);
                false
            }
            _ => false,
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c' | 'C')) {
            return true;
        }
        match std::mem::take(&mut self.mode) {
            FleetMode::Normal => return self.on_normal_key(key),
            FleetMode::Filter { input } => self.on_filter_key(key, input),
            FleetMode::SortMenu { choice } => self.on_sort_menu_key(key, choice),
            FleetMode::Help { back } => match key.code {
                KeyCode::Char('q') => return true,
                KeyCode::Esc | KeyCode::Char('?') => {
                    self.mode = back.map_or(FleetMode::Normal, FleetMode::Node);
                }
                _ => self.mode = FleetMode::Help { back },
            },
            FleetMode::Node(drill) => return self.on_node_key(key, drill),
        }
        false
    }

    fn on_normal_key(&mut self, key: KeyEvent) -> bool {
        self.status = None;
        let (lines, per_line) = self.page();
        let grid = self.layout.view == Some(View::Grid);
        let step = |n: usize| isize::try_from(n).unwrap_or(isize::MAX);
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return true,
            KeyCode::Up => self.move_selection(-step(per_line)),
            KeyCode::Down => self.move_selection(step(per_line)),
            KeyCode::Left if grid => self.move_selection(-1),
            KeyCode::Right if grid => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-step(lines * per_line)),
            KeyCode::PageDown => self.move_selection(step(lines * per_line)),
            KeyCode::Home => self.select(Some(0)),
            KeyCode::End => self.select(Some(usize::MAX)),
            KeyCode::Char('s') => {
                self.mode = FleetMode::SortMenu {
                    choice: self.sort.column.position(),
                };
            }
            KeyCode::Char('<') => self.step_sort_column(-1),
            KeyCode::Char('>') => self.step_sort_column(1),
            KeyCode::Char('I') => {
                self.sort.descending = !self.sort.descending;
                self.relist();
            }
            KeyCode::Char('/') => {
                self.mode = FleetMode::Filter {
                    input: self
                        .filter
                        .as_ref()
                        .map(|(t, _)| t.clone())
                        .unwrap_or_default(),
                };
            }
            KeyCode::Char('g') => {
                self.view = Some(match self.layout.view {
                    Some(View::Grid) => View::List,
                    _ => View::Grid,
                });
                self.scroll = 0;
            }
            KeyCode::Enter => self.open_selected(),
            KeyCode::Char('k') => self.status = Some(NO_SIGNALS.to_owned()),
            KeyCode::Char('R') => self.status = Some(NO_RECORDING.to_owned()),
            KeyCode::Char('?') => self.mode = FleetMode::Help { back: None },
            _ => {}
        }
        false
    }

    fn on_filter_key(&mut self, key: KeyEvent, mut input: String) {
        match key.code {
            KeyCode::Esc => return,
            KeyCode::Enter => {
                self.filter = NodeFilter::parse(&input).map(|f| (input.trim().to_owned(), f));
                self.relist();
                return;
            }
            KeyCode::Backspace => {
                input.pop();
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => input.push(c),
            _ => {}
        }
        self.mode = FleetMode::Filter { input };
    }

    fn on_sort_menu_key(&mut self, key: KeyEvent, choice: usize) {
        let last = NodeColumn::ALL.len() - 1;
        let choice = match key.code {
            KeyCode::Up => choice.saturating_sub(1),
            KeyCode::Down => (choice + 1).min(last),
            KeyCode::Enter => {
                self.sort_by(NodeColumn::ALL[choice.min(last)]);
                return;
            }
            KeyCode::Esc | KeyCode::Char('q') => return,
            _ => choice,
        };
        self.mode = FleetMode::SortMenu { choice };
    }

    /// Sorts by `column` in its own direction; the column already sorted by flips.
    fn sort_by(&mut self, column: NodeColumn) {
        if self.sort.column == column {
            self.sort.descending = !self.sort.descending;
        } else {
            self.sort = NodeSort {
                column,
                descending: column.default_descending(),
            };
        }
        self.relist();
    }

    fn step_sort_column(&mut self, step: isize) {
        let at = self.sort.column.position();
        let to = at
            .saturating_add_signed(step)
            .min(NodeColumn::ALL.len() - 1);
        if to != at {
            self.sort_by(NodeColumn::ALL[to]);
        }
    }

    /// `Enter`: the selected node on the local screen's panels.
    fn open_selected(&mut self) {
        let Some(name) = self.selected.clone() else {
            self.status = Some("no node to open".to_owned());
            return;
        };
        let settings = Settings {
            readonly: true,
            theme: self.settings.theme,
            ascii: self.settings.ascii,
            interval: self.settings.interval,
            me: None,
            replay: false,
        };
        let mut app = App::new(settings);
        app.size = self.size;
        if self.settings.history_from_prometheus && self.seeded.insert(name.clone()) {
            self.seed_wanted = Some(name.clone());
        }
        self.mode = FleetMode::Node(Box::new(Drill {
            name,
            app,
            gone: false,
        }));
        self.refresh_drill();
    }

    /// Shows the open node's newest figures (after a read, or on opening it).
    fn refresh_drill(&mut self) {
        let (FleetMode::Node(drill) | FleetMode::Help { back: Some(drill) }) = &mut self.mode
        else {
            return;
        };
        let (Some(fleet), Some(now)) = (self.fleet.as_ref(), self.now) else {
            return;
        };
        let Some(node) = fleet.nodes.iter().find(|n| n.name == drill.name) else {
            drill.gone = true;
            return;
        };
        drill.gone = false;
        let frame = Arc::new(drill::frame(node, now, fleet.taken_at));
        let (w, h) = self.size;
        drill.app.size = (w, h);
        drill.app.layout = ui::layout(&drill.app, Rect::new(0, 0, w, h));
        match self.histories.get(&drill.name) {
            Some(history) => drill.app.set_frame(frame, history, now),
            None => {
                let history = drill::history(self.settings.interval);
                drill.app.set_frame(frame, &history, now);
            }
        }
    }

    /// A key on an open node: `Esc` (with no overlay open) goes back, `q` quits, `k` and `R`
    /// are refused with the reason, `?` is the fleet help; the rest is the local screen's.
    fn on_node_key(&mut self, key: KeyEvent, mut drill: Box<Drill>) -> bool {
        let local_normal = drill.app.mode == LocalMode::Normal;
        match key.code {
            KeyCode::Esc if local_normal => {
                self.select_named(&drill.name);
                return false;
            }
            KeyCode::Char('q') if local_normal => return true,
            KeyCode::Char('k') if local_normal => {
                drill.app.status = Some(NO_SIGNALS.to_owned());
            }
            KeyCode::Char('R') if local_normal => {
                drill.app.status = Some(NO_RECORDING.to_owned());
            }
            KeyCode::Char('?') if local_normal => {
                self.mode = FleetMode::Help { back: Some(drill) };
                return false;
            }
            _ => {
                let effects = drill.app.update(&Event::Key(key));
                for effect in effects {
                    match effect {
                        Effect::Quit => return true,
                        Effect::Refresh => {
                            if let Some(history) = self.histories.get(&drill.name) {
                                drill.app.refresh(history);
                            }
                        }
                        // Never sent: the node's app is read-only, and this is not this
                        // machine's process.
                        Effect::Signal { .. } => {
                            drill.app.status = Some(NO_SIGNALS.to_owned());
                        }
                        Effect::ToggleRecording => {
                            drill.app.status = Some(NO_RECORDING.to_owned());
                        }
                    }
                }
            }
        }
        self.mode = FleetMode::Node(drill);
        false
    }

    fn select_named(&mut self, name: &str) {
        self.selected = Some(name.to_owned());
        self.relist();
    }

    /// The open node, if one is open (also under the help opened on it).
    pub(crate) fn drill(&self) -> Option<&Drill> {
        match &self.mode {
            FleetMode::Node(d) | FleetMode::Help { back: Some(d) } => Some(d),
            _ => None,
        }
    }
}
