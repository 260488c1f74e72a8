//! The state of `hmn top`'s screen and the one function that changes it.
//!
//! Why pure: a key press, a click or a new frame changes only [`App`]; drawing reads it, and
//! side effects (quitting, sending a signal, starting a recording) come back as [`Effect`]s
//! for the terminal loop to carry out. So scripted input is tested by calling
//! [`App::update`] and looking at the state or a snapshot of the drawn buffer, and a fake
//! signal sender proves what `k` would send.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use hypomnesis::Frame;
use ratatui::layout::Rect;

use super::charts::{self, Charts, HistorySource, Zoom};
use super::filter::Filter;
use super::rows::{self, Column, ProcessRow, RowQuery, Sort};
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
    /// The `s` sort menu, `choice` highlighted.
    SortMenu { choice: usize },
    /// One process's detail (`Enter`).
    Detail { pid: u32 },
    /// The `k` signal menu for `pid`, `choice` highlighted.
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
    /// The table's visible columns, left to right: the column, its x and its width.
    pub(crate) columns: Vec<(Column, u16, u16)>,
    /// The table's data rows (below its header line); row `i` of it shows
    /// `app.rows[app.table_scroll + i]`.
    pub(crate) table_rows: Rect,
    /// Each visible device's area in the devices panel.
    pub(crate) device_cells: Vec<(u32, Rect)>,
    /// How many points wide the history chart is (the buckets to read).
    pub(crate) chart_buckets: usize,
}

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
    pub(crate) charts: Charts,
    pub(crate) zoom: Zoom,
    pub(crate) sort: Sort,
    /// `t`: processes under their parents, with subtree totals.
    pub(crate) tree: bool,
    /// The filter in force (`/`), and the text it was parsed from.
    pub(crate) filter: Option<(String, Filter)>,
    /// `u`: only my processes.
    pub(crate) only_mine: bool,
    /// The selected process (kept by pid across refreshes), `None` when the table is empty.
    pub(crate) selected: Option<u32>,
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
    /// zoom, a sort or a filter), the chart as wide as the last layout says.
    pub(crate) fn refresh(&mut self, history: &dyn HistorySource) {
        let (Some(frame), Some(now)) = (self.frame.clone(), self.now) else {
            return;
        };
        let filter = self.filter.as_ref().map(|(_, f)| f);
        let only_mine = self.only_mine;
        let keep =
            |row: &ProcessRow| (!only_mine || row.mine) && filter.is_none_or(|f| f.matches(row));
        let query = RowQuery {
            sort: self.sort,
            tree: self.tree,
            keep: &keep,
            me: self.settings.me.as_deref(),
            now,
        };
        self.rows = rows::build(&frame, &query, history);
        let buckets = self.layout.chart_buckets.max(1);
        self.charts = charts::read(&frame, self.zoom, self.selected, history, now, buckets);
    }

    /// Applies one input event; returns what the terminal loop must do.
    pub(crate) fn update(&mut self, event: &Event) -> Vec<Effect> {
        match event {
            Event::Key(key) if key.kind != KeyEventKind::Release => self.on_key(*key),
            Event::Resize(w, h) => {
                self.size = (*w, *h);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl_c =
            key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl_c || (self.mode == Mode::Normal && matches!(key.code, KeyCode::Char('q'))) {
            return vec![Effect::Quit];
        }
        Vec::new()
    }
}
