//! The state of `hmn top`'s screen and the one function that changes it.
//!
//! Why pure: a key press, a click or a new frame changes only [`App`]; drawing reads it, and
//! side effects (quitting, sending a signal, starting a recording, re-reading the history)
//! come back as [`Effect`]s for the terminal loop to carry out. So scripted input is tested by
//! calling [`App::update`] and looking at the state or a snapshot of the drawn buffer, and a
//! fake signal sender proves what `k` would send.
//!
//! Rows and charts: [`App::refresh`] reads both from the frame and the history. A key that
//! only re-sorts, filters or nests the table re-arranges the rows it has at once (no history
//! needed); a key that changes what the charts show (the zoom, the selected process) returns
//! [`Effect::Refresh`], and the loop calls [`App::refresh`] with its history.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use hypomnesis::Frame;
use ratatui::layout::{Position, Rect};

use super::charts::{self, Charts, HistorySource, Zoom};
use super::filter::Filter;
use super::lineage::ProcessFacts;
use super::rows::{self, Column, Lineage, ProcessRow, RowQuery, Sort};
use super::theme::Theme;

/// A signal `k` can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Term,
    Kill,
    Int,
    Hup,
    Stop,
    Cont,
}

impl Signal {
    /// The signal menu's entries, in order.
    pub(crate) const ALL: [Self; 6] = [
        Self::Term,
        Self::Kill,
        Self::Int,
        Self::Hup,
        Self::Stop,
        Self::Cont,
    ];

    /// `SIGTERM`, …
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Term => "SIGTERM",
            Self::Kill => "SIGKILL",
            Self::Int => "SIGINT",
            Self::Hup => "SIGHUP",
            Self::Stop => "SIGSTOP",
            Self::Cont => "SIGCONT",
        }
    }
}

/// What the screen is doing besides showing the machine: each mode owns the keyboard until it
/// ends.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Mode {
    #[default]
    Normal,
    /// Typing a filter after `/`; `input` is the text so far, `error` why it does not parse.
    Filter {
        input: String,
        error: Option<String>,
    },
    /// The `s` sort menu, `choice` highlighted (an index into [`Column::ALL`]).
    SortMenu { choice: usize },
    /// One process's detail (`Enter`).
    Detail { pid: u32 },
    /// The `k` signal menu for `pid`, `choice` highlighted (an index into [`Signal::ALL`]).
    SignalMenu { pid: u32, choice: usize },
    /// Asking to confirm sending `signal` to `pid`.
    ConfirmSignal { pid: u32, signal: Signal },
    /// The `F` fits overlay: `input` is the size typed so far, `size` it parsed to.
    Fits { input: String, size: Option<u64> },
    /// The key help (`?`).
    Help,
}

/// What the terminal loop must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    Quit,
    /// Send `signal` to `pid` (only ever after a confirmation, never with `--readonly`).
    Signal {
        pid: u32,
        signal: Signal,
    },
    /// `R` pressed: start recording, or stop the one running.
    ToggleRecording,
    /// What the charts show changed (the zoom, the selected process): call
    /// [`App::refresh`] with the history.
    Refresh,
}

/// Settings fixed for the session (from the command line and the environment).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `--readonly`: no signal menu.
    pub(crate) readonly: bool,
    pub(crate) theme: Theme,
    /// `--ascii`: no box drawing or block characters.
    pub(crate) ascii: bool,
    /// The device refresh interval (`--interval`).
    pub(crate) interval: Duration,
    /// The user running `hmn top`, as the library names users (for `u` and dimming other
    /// users' processes).
    pub(crate) me: Option<String>,
    /// Playing a recording back (`--replay`): nothing live, no signals.
    pub(crate) replay: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            readonly: false,
            theme: Theme::default(),
            ascii: false,
            interval: Duration::from_secs(1),
            me: None,
            replay: false,
        }
    }
}

/// Where each part of the screen was when last drawn (set by the terminal loop from
/// `ui::layout`): the mouse needs it to know which header, row or device was clicked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ScreenLayout {
    pub(crate) header: Rect,
    pub(crate) devices: Rect,
    pub(crate) chart: Rect,
    pub(crate) table: Rect,
    pub(crate) footer: Rect,
    /// The table's visible columns, left to right: the column, its x and its width. Their
    /// titles are on the line just above `table_rows`.
    pub(crate) columns: Vec<(Column, u16, u16)>,
    /// The table's data rows (below its header line); row `i` of it shows
    /// `app.rows[app.table_scroll + i]`.
    pub(crate) table_rows: Rect,
    /// Each visible device's area in the devices panel.
    pub(crate) device_cells: Vec<(u32, Rect)>,
    /// How many points wide the history chart is (the buckets to read).
    pub(crate) chart_buckets: usize,
}

/// How many rows one turn of the mouse wheel moves.
const WHEEL_ROWS: usize = 3;

/// The whole state of the screen.
#[derive(Debug, Clone, Default)]
pub(crate) struct App {
    pub(crate) settings: Settings,
    /// The newest frame, `None` before the first.
    pub(crate) frame: Option<Arc<Frame>>,
    /// When the newest frame was shown (for ages and chart ends).
    pub(crate) now: Option<Instant>,
    /// The process table's rows: sorted, filtered, in tree order when `tree` is on.
    pub(crate) rows: Vec<ProcessRow>,
    /// Every row of the frame, figures filled in, before the filter, the sort and the tree.
    pub(crate) all_rows: Vec<ProcessRow>,
    pub(crate) charts: Charts,
    pub(crate) zoom: Zoom,
    pub(crate) sort: Sort,
    /// `t`: processes under their parents, with subtree totals.
    pub(crate) tree: bool,
    /// `c`: the history chart shows the selected process's VRAM instead of each GPU's
    /// memory used.
    pub(crate) chart_of_process: bool,
    /// The filter in force (`/`), and the text it was parsed from.
    pub(crate) filter: Option<(String, Filter)>,
    /// `u`: only my processes.
    pub(crate) only_mine: bool,
    /// The selected process (kept by pid across refreshes), `None` when the table is empty.
    pub(crate) selected: Option<u32>,
    /// The device of the selected row: a process on several GPUs has a row on each.
    pub(crate) selected_gpu: Option<u32>,
    /// The first table row shown.
    pub(crate) table_scroll: usize,
    /// The first device shown when the device panel scrolls.
    pub(crate) device_scroll: usize,
    pub(crate) mode: Mode,
    /// A one-line message for the footer (a signal sent, a recording started, an error).
    pub(crate) status: Option<String>,
    /// Where `R` is recording, while it is.
    pub(crate) recording: Option<std::path::PathBuf>,
    /// The terminal's size, columns × rows.
    pub(crate) size: (u16, u16),
    /// Where things were when last drawn.
    pub(crate) layout: ScreenLayout,
    /// Where processes' parents and start times come from (the terminal loop sets
    /// [`super::lineage::LiveFacts`] for a live screen); `None`: unknown.
    pub(crate) facts: Option<Arc<dyn ProcessFacts>>,
    /// The lineage of each process in the frame, asked of `facts` once per process.
    pub(crate) lineages: HashMap<u32, Lineage>,
    /// Each (pid, device)'s VRAM when first seen with a known figure (the Δ column's base).
    pub(crate) first_seen: HashMap<(u32, u32), u64>,
}

impl App {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            settings,
            size: (80, 24),
            ..Self::default()
        }
    }

    /// Shows `frame` (shown at `now`), re-reading rows and charts.
    pub(crate) fn set_frame(
        &mut self,
        frame: Arc<Frame>,
        history: &dyn HistorySource,
        now: Instant,
    ) {
        self.frame = Some(frame);
        self.now = Some(now);
        self.refresh(history);
    }

    /// Re-reads rows and charts from the current frame and `history` (after a new frame, a
    /// zoom, a new selection), the chart as wide as the last layout says.
    pub(crate) fn refresh(&mut self, history: &dyn HistorySource) {
        let (Some(frame), Some(now)) = (self.frame.clone(), self.now) else {
            return;
        };
        self.learn(&frame);
        let query = RowQuery {
            me: self.settings.me.as_deref(),
            now,
            lineage: &self.lineages,
            first_seen: &self.first_seen,
        };
        self.all_rows = rows::read(&frame, &query, history);
        self.relist();
        let buckets = self.layout.chart_buckets.max(1);
        self.charts = charts::read(&frame, self.zoom, self.selected, history, now, buckets);
    }

    /// Updates the per-process caches for `frame`: lineages of processes new to it, first
    /// VRAM readings; forgets processes that left it.
    fn learn(&mut self, frame: &Frame) {
        let mut present: HashSet<(u32, u32)> = HashSet::new();
        for p in frame.processes() {
            present.insert((p.pid, p.device_index));
            if !self.lineages.contains_key(&p.pid) {
                let lineage = self
                    .facts
                    .as_ref()
                    .map(|f| f.lineage(p.pid))
                    .unwrap_or_default();
                self.lineages.insert(p.pid, lineage);
            }
            if let Some(used) = p.used_bytes {
                self.first_seen
                    .entry((p.pid, p.device_index))
                    .or_insert(used);
            }
        }
        let pids: HashSet<u32> = present.iter().map(|(pid, _)| *pid).collect();
        self.lineages.retain(|pid, _| pids.contains(pid));
        self.first_seen.retain(|key, _| present.contains(key));
    }

    /// Re-arranges `all_rows` into `rows` (filter, only mine, sort, tree), keeping the
    /// selection on the same process, or at the same place when it left the table.
    fn relist(&mut self) {
        let old_index = self.selected_index();
        let filter = self.filter.as_ref().map(|(_, f)| f);
        let only_mine = self.only_mine;
        let keep =
            |row: &ProcessRow| (!only_mine || row.mine) && filter.is_none_or(|f| f.matches(row));
        let lineages = &self.lineages;
        let parent = |pid: u32| lineages.get(&pid).and_then(|l| l.parent);
        self.rows = rows::arrange(&self.all_rows, self.sort, self.tree, &keep, &parent);
        let index = self
            .find_selected()
            .or_else(|| old_index.map(|i| i.min(self.rows.len().saturating_sub(1))))
            .or(Some(0));
        self.select(index);
    }

    /// The selected row: the selected process's row on the selected device, or its first.
    pub(crate) fn selected_index(&self) -> Option<usize> {
        self.find_selected()
    }

    fn find_selected(&self) -> Option<usize> {
        let pid = self.selected?;
        self.rows
            .iter()
            .position(|r| r.pid == pid && r.gpu == self.selected_gpu)
            .or_else(|| self.rows.iter().position(|r| r.pid == pid))
    }

    /// Selects row `index` (clamped; nothing when the table is empty) and scrolls the table
    /// so it shows.
    fn select(&mut self, index: Option<usize>) {
        let Some(last) = self.rows.len().checked_sub(1) else {
            self.selected = None;
            self.selected_gpu = None;
            self.table_scroll = 0;
            return;
        };
        let index = index.unwrap_or(0).min(last);
        self.selected = Some(self.rows[index].pid);
        self.selected_gpu = self.rows[index].gpu;
        let height = self.page();
        if index < self.table_scroll {
            self.table_scroll = index;
        } else if index >= self.table_scroll + height {
            self.table_scroll = index + 1 - height;
        }
        self.table_scroll = self
            .table_scroll
            .min(self.rows.len().saturating_sub(height));
    }

    /// The fits overlay's cells for the size typed; empty outside the overlay or while the
    /// text is not a size.
    pub(crate) fn fits_cells(&self) -> Vec<FitsCell> {
        match (&self.mode, &self.frame) {
            (
                Mode::Fits {
                    size: Some(size), ..
                },
                Some(frame),
            ) => fits_devices(frame, *size),
            _ => Vec::new(),
        }
    }

    /// How many table rows show at once (at least 1).
    fn page(&self) -> usize {
        usize::from(self.layout.table_rows.height).max(1)
    }

    /// Applies one input event; returns what the terminal loop must do.
    pub(crate) fn update(&mut self, event: &Event) -> Vec<Effect> {
        let before = (self.selected, self.selected_gpu, self.zoom);
        let mut effects = match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => self.on_key(*key),
            Event::Mouse(mouse) => {
                self.on_mouse(*mouse);
                Vec::new()
            }
            Event::Resize(w, h) => {
                self.size = (*w, *h);
                Vec::new()
            }
            _ => Vec::new(),
        };
        if (self.selected, self.selected_gpu, self.zoom) != before
            && !effects.contains(&Effect::Quit)
        {
            effects.push(Effect::Refresh);
        }
        effects
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c' | 'C')) {
            return vec![Effect::Quit];
        }
        match self.mode.clone() {
            Mode::Normal => self.on_normal_key(key),
            Mode::Filter { input, .. } => {
                self.on_filter_key(key, input);
                Vec::new()
            }
            Mode::Fits { input, .. } => {
                self.on_fits_key(key, input);
                Vec::new()
            }
            Mode::ConfirmSignal { pid, signal } => {
                self.mode = Mode::Normal;
                let confirmed = matches!(key.code, KeyCode::Char('y' | 'Y'));
                if confirmed && let Err(why) = self.signals_allowed() {
                    self.status = Some(why);
                    return Vec::new();
                }
                if confirmed {
                    vec![Effect::Signal { pid, signal }]
                } else {
                    self.status = Some(format!("{} not sent to {pid}", signal.name()));
                    Vec::new()
                }
            }
            _ if key.code == KeyCode::Char('q') => vec![Effect::Quit],
            _ if key.code == KeyCode::Esc => {
                self.mode = Mode::Normal;
                Vec::new()
            }
            Mode::SortMenu { choice } => {
                self.on_sort_menu_key(key, choice);
                Vec::new()
            }
            Mode::SignalMenu { pid, choice } => {
                self.on_signal_menu_key(key, pid, choice);
                Vec::new()
            }
            Mode::Help => {
                if key.code == KeyCode::Char('?') {
                    self.mode = Mode::Normal;
                }
                Vec::new()
            }
            Mode::Detail { .. } => Vec::new(),
        }
    }

    fn on_normal_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        self.status = None;
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return vec![Effect::Quit],
            KeyCode::Up => self.move_selection(-1),
            KeyCode::Down => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-signed(self.page())),
            KeyCode::PageDown => self.move_selection(signed(self.page())),
            KeyCode::Home => self.select(Some(0)),
            KeyCode::End => self.select(Some(usize::MAX)),
            KeyCode::Left | KeyCode::Char('[') => self.scroll_devices(-1),
            KeyCode::Right | KeyCode::Char(']') => self.scroll_devices(1),
            KeyCode::Char('s') => {
                self.mode = Mode::SortMenu {
                    choice: self.sort.column.position(),
                };
            }
            KeyCode::Char('<') => self.step_sort_column(-1),
            KeyCode::Char('>') => self.step_sort_column(1),
            KeyCode::Char('I') => {
                self.sort.descending = !self.sort.descending;
                self.relist();
            }
            KeyCode::Char('t') => {
                self.tree = !self.tree;
                self.relist();
            }
            KeyCode::Char('u') => self.toggle_only_mine(),
            KeyCode::Char('/') => {
                self.mode = Mode::Filter {
                    input: String::new(),
                    error: None,
                };
            }
            KeyCode::Enter => match self.selected {
                Some(pid) => self.mode = Mode::Detail { pid },
                None => self.status = Some("no process to show".to_owned()),
            },
            KeyCode::Char('k') => self.open_signal_menu(),
            KeyCode::Char('F') => {
                self.mode = Mode::Fits {
                    input: String::new(),
                    size: None,
                };
            }
            KeyCode::Char('+' | '=') => self.zoom_by(-1),
            KeyCode::Char('-') => self.zoom_by(1),
            KeyCode::Char('R') => return vec![Effect::ToggleRecording],
            KeyCode::Char('c') => self.chart_of_process = !self.chart_of_process,
            KeyCode::Char('?') => self.mode = Mode::Help,
            _ => {}
        }
        Vec::new()
    }

    fn on_filter_key(&mut self, key: KeyEvent, mut input: String) {
        match key.code {
            KeyCode::Esc => self.mode = Mode::Normal,
            KeyCode::Enter => match Filter::parse(&input) {
                Ok(Filter::All) => {
                    self.filter = None;
                    self.mode = Mode::Normal;
                    self.relist();
                }
                Ok(filter) => {
                    self.filter = Some((input.trim().to_owned(), filter));
                    self.mode = Mode::Normal;
                    self.relist();
                }
                Err(error) => {
                    self.mode = Mode::Filter {
                        input,
                        error: Some(error),
                    };
                }
            },
            KeyCode::Backspace => {
                input.pop();
                self.mode = Mode::Filter { input, error: None };
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                input.push(c);
                self.mode = Mode::Filter { input, error: None };
            }
            _ => {}
        }
    }

    fn on_fits_key(&mut self, key: KeyEvent, mut input: String) {
        match key.code {
            KeyCode::Esc => {
                self.mode = Mode::Normal;
                return;
            }
            KeyCode::Backspace => {
                input.pop();
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => input.push(c),
            _ => return,
        }
        let size = crate::values::parse_size(input.trim()).ok();
        self.mode = Mode::Fits { input, size };
    }

    fn on_sort_menu_key(&mut self, key: KeyEvent, choice: usize) {
        let last = Column::ALL.len() - 1;
        match key.code {
            KeyCode::Up => {
                self.mode = Mode::SortMenu {
                    choice: choice.saturating_sub(1),
                };
            }
            KeyCode::Down => {
                self.mode = Mode::SortMenu {
                    choice: (choice + 1).min(last),
                };
            }
            KeyCode::Enter => {
                self.mode = Mode::Normal;
                self.sort_by(Column::ALL[choice.min(last)]);
            }
            _ => {}
        }
    }

    fn on_signal_menu_key(&mut self, key: KeyEvent, pid: u32, choice: usize) {
        let last = Signal::ALL.len() - 1;
        match key.code {
            KeyCode::Up => {
                self.mode = Mode::SignalMenu {
                    pid,
                    choice: choice.saturating_sub(1),
                };
            }
            KeyCode::Down => {
                self.mode = Mode::SignalMenu {
                    pid,
                    choice: (choice + 1).min(last),
                };
            }
            KeyCode::Enter => {
                self.mode = Mode::ConfirmSignal {
                    pid,
                    signal: Signal::ALL[choice.min(last)],
                };
            }
            _ => {}
        }
    }

    /// Why signals cannot be sent in this session, if they cannot.
    fn signals_allowed(&self) -> Result<(), String> {
        if self.settings.readonly {
            Err("signals are off: hmn top runs with --readonly".to_owned())
        } else if self.settings.replay {
            Err("signals are off: playing a recording back, its processes are not live".to_owned())
        } else {
            Ok(())
        }
    }

    fn open_signal_menu(&mut self) {
        if let Err(why) = self.signals_allowed() {
            self.status = Some(why);
            return;
        }
        match self.selected {
            Some(pid) => self.mode = Mode::SignalMenu { pid, choice: 0 },
            None => self.status = Some("no process selected to signal".to_owned()),
        }
    }

    fn toggle_only_mine(&mut self) {
        if !self.only_mine && self.settings.me.is_none() {
            self.status = Some("cannot tell which user runs hmn top: showing everyone".to_owned());
            return;
        }
        self.only_mine = !self.only_mine;
        self.relist();
    }

    /// Sorts by `column`: largest first for figures, in reading order for names; the column
    /// already sorted by flips its direction.
    fn sort_by(&mut self, column: Column) {
        if self.sort.column == column {
            self.sort.descending = !self.sort.descending;
        } else {
            self.sort = Sort {
                column,
                descending: column.default_descending(),
            };
        }
        self.relist();
    }

    /// `<` / `>`: the column left or right of the sorted one (stopping at the ends), in its
    /// own default direction.
    fn step_sort_column(&mut self, step: isize) {
        let at = self.sort.column.position();
        let to = at.saturating_add_signed(step).min(Column::ALL.len() - 1);
        if to != at {
            self.sort_by(Column::ALL[to]);
        }
    }

    fn move_selection(&mut self, by: isize) {
        let at = self.selected_index().unwrap_or(0);
        self.select(Some(at.saturating_add_signed(by)));
    }

    fn scroll_devices(&mut self, by: isize) {
        let devices = self.frame.as_ref().map_or(0, |f| f.devices.len());
        self.device_scroll = self
            .device_scroll
            .saturating_add_signed(by)
            .min(devices.saturating_sub(1));
    }

    /// `+` (`by` -1): a narrower span; `-` (`by` 1): a wider one; stopping at the ends of
    /// [`Zoom::ALL`].
    fn zoom_by(&mut self, by: isize) {
        let at = Zoom::ALL.iter().position(|z| *z == self.zoom).unwrap_or(0);
        let to = at.saturating_add_signed(by).min(Zoom::ALL.len() - 1);
        self.zoom = Zoom::ALL[to];
    }

    fn on_mouse(&mut self, mouse: MouseEvent) {
        if self.mode != Mode::Normal {
            return;
        }
        let at = Position::new(mouse.column, mouse.row);
        let over_devices = self.layout.devices.contains(at);
        match mouse.kind {
            MouseEventKind::ScrollUp if over_devices => self.scroll_devices(-1),
            MouseEventKind::ScrollDown if over_devices => self.scroll_devices(1),
            MouseEventKind::ScrollUp => self.move_selection(-signed(WHEEL_ROWS)),
            MouseEventKind::ScrollDown => self.move_selection(signed(WHEEL_ROWS)),
            MouseEventKind::Down(MouseButton::Left) => self.click(at),
            _ => {}
        }
    }

    fn click(&mut self, at: Position) {
        let rows = self.layout.table_rows;
        if rows.y > 0 && at.y == rows.y - 1 {
            let column = self
                .layout
                .columns
                .iter()
                .find(|(_, x, width)| at.x >= *x && at.x < x.saturating_add(*width))
                .map(|(c, _, _)| *c);
            if let Some(column) = column {
                self.sort_by(column);
            }
        } else if rows.contains(at) {
            let index = self.table_scroll + usize::from(at.y - rows.y);
            if index < self.rows.len() {
                self.select(Some(index));
            }
        }
    }
}

/// A row count as a signed step.
fn signed(rows: usize) -> isize {
    isize::try_from(rows).unwrap_or(isize::MAX)
}

/// One device (`mig` `None`) or MIG instance (`gi/ci`) in the fits overlay, and whether the
/// size fits there now: `(device index, mig, fits)`.
pub(crate) type FitsCell = (u32, Option<(u32, u32)>, bool);

/// The `F` overlay's answer for `size` bytes: per device of `frame`, and per MIG instance of
/// a device in MIG mode, whether an allocation of `size` fits now. A device fits as
/// `hmn fits` decides for it alone ([`crate::cmd::fits::decide`]: the library's budget,
/// [`hypomnesis::GpuDeviceInfo::budget_bytes`], at least `size`; on a unified-memory device
/// the host memory it really allocates from), or, when the library could not decide a
/// budget, its free memory at least `size`; a MIG instance fits when its GPU instance's free
/// memory is at least `size` (an allocation cannot cross instances). Neither figure known:
/// not lit (`false`); `top` shows the reason for the unknown figure elsewhere.
/// Devices in the frame's order, each followed by its MIG instances (those with both ids).
pub(crate) fn fits_devices(frame: &Frame, size: u64) -> Vec<FitsCell> {
    let mut out = Vec::new();
    for device in &frame.devices {
        let info = &device.device;
        let verdict = crate::cmd::fits::decide(size, &[Ok(info.clone())]);
        let fits = verdict
            .fits
            .or_else(|| info.free_bytes.map(|free| free >= size));
        out.push((info.index, None, fits == Some(true)));
        for mig in &info.mig_instances {
            if let Some(ids) = mig.gpu_instance_id.zip(mig.compute_instance_id) {
                out.push((
                    info.index,
                    Some(ids),
                    mig.free_bytes.is_some_and(|f| f >= size),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
