//! The terminal `hmn top` draws on: raw mode and the alternate screen, restored on exit, on a
//! panic and on SIGTERM; the size, with fallbacks when the terminal reports 0×0; and the
//! event loop that redraws only on new data or input.
//!
//! Why the loop polls: input (crossterm) and new frames (the monitor's thread) arrive on two
//! sources that cannot be waited on together, so the loop waits for input at most
//! [`Source::wait`] (100 ms live) and then asks the source for a newer frame — one lock per
//! wake-up, about ten a second, far below the CPU budget (1 % of a core). Nothing is drawn
//! unless a frame, a key, a click or a resize came.
//!
//! Why restoring is idempotent and global: the terminal must come back whichever way `top`
//! ends — the loop returning, an error, a panic (the hook restores, then the default hook
//! prints the message on the normal screen) or a stop signal (SIGTERM, SIGHUP: caught by
//! [`crate::signals`], seen by the loop within one wait) — and each of those paths calls
//! [`restore`], which acts once.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event};
use crossterm::{cursor, execute, terminal};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

use super::app::{App, Effect, Settings};
use super::recording::Recorder;
use super::source::{Live, Replay, Source, parse_recording};
use super::theme::Theme;
use super::{signal, ui};
use crate::cli::{GlobalArgs, TopArgs};
use crate::driver::guarded_probe;
use crate::outcome::Outcome;
use crate::output::Output;
use crate::signals;

/// How often this machine is read when `--interval` is not given.
pub(crate) const LOCAL_INTERVAL: Duration = Duration::from_secs(1);

/// The size used when the terminal reports none and `COLUMNS` / `LINES` do not say either.
pub(crate) const FALLBACK_SIZE: (u16, u16) = (80, 24);

/// A file to write, when set, how the first screen showing a frame went (for the benches and
/// the pseudo-terminal tests; not documented to users): `first_screen_us=N`, microseconds
/// from the start of `hmn top`, and `size=WxH`, the size it was drawn at.
pub(crate) const TIMING_ENV: &str = "HMN_TOP_TIMING_FILE";

/// Set to anything, `top` panics right after its first screen (for the pseudo-terminal test
/// that proves a panic gives the terminal back; not documented to users).
pub(crate) const PANIC_ENV: &str = "HMN_TOP_TEST_PANIC";

/// The size to draw at: the terminal's report, each side falling back to `COLUMNS` /
/// `LINES` when the terminal says 0 (a serial console, some CI pseudo-terminals), then to
/// 80×24.
pub(crate) fn effective_size(
    reported: Option<(u16, u16)>,
    columns: Option<&str>,
    lines: Option<&str>,
) -> (u16, u16) {
    let from_env = |v: Option<&str>| {
        v.and_then(|s| s.trim().parse::<u16>().ok())
            .filter(|n| *n > 0)
    };
    let (w, h) = reported.unwrap_or((0, 0));
    let w = if w > 0 {
        w
    } else {
        from_env(columns).unwrap_or(FALLBACK_SIZE.0)
    };
    let h = if h > 0 {
        h
    } else {
        from_env(lines).unwrap_or(FALLBACK_SIZE.1)
    };
    (w, h)
}

/// [`effective_size`] of this terminal, reporting `reported` (or asking it).
pub(crate) fn terminal_size(reported: Option<(u16, u16)>) -> (u16, u16) {
    let reported = reported.or_else(|| terminal::size().ok());
    effective_size(
        reported,
        std::env::var("COLUMNS").ok().as_deref(),
        std::env::var("LINES").ok().as_deref(),
    )
}

/// Whether the terminal is in `top`'s modes (raw, alternate screen, mouse, hidden cursor).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Puts the terminal in `top`'s modes. The guard (or [`restore`]) undoes them.
pub(crate) fn enter() -> std::io::Result<ScreenGuard> {
    terminal::enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    execute!(
        std::io::stdout(),
        terminal::EnterAlternateScreen,
        event::EnableMouseCapture,
        cursor::Hide
    )?;
    Ok(ScreenGuard)
}

/// Gives the terminal back as it was: the normal screen, cursor shown, mouse released, cooked
/// mode. Safe to call from any path, any number of times; only the first call after
/// [`enter`] acts. Errors are ignored: a terminal gone (SIGHUP) cannot be restored anyway.
pub(crate) fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut out = std::io::stdout();
        let _ = execute!(
            out,
            event::DisableMouseCapture,
            terminal::LeaveAlternateScreen,
            cursor::Show
        );
        let _ = out.flush();
        let _ = terminal::disable_raw_mode();
    }
}

/// Restores the terminal when dropped (a return, an error, an unwinding panic).
pub(crate) struct ScreenGuard;

impl Drop for ScreenGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// A panic restores the terminal first, so the default hook's message lands on the normal
/// screen, readable, and the shell is usable after.
pub(crate) fn restore_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        default(info);
    }));
}

/// The history the live monitor keeps: the widest zoom (`1h`), so that zoom is full — every
/// reading of the last 10 minutes, the rest in min/max/last blocks: an hour of 64 GPUs and
/// 1,000 processes in about 13 MiB (BENCHMARKS.md; raw, it would be ~40 MB). This is the one
/// place to change it.
fn history_window() -> Duration {
    super::charts::Zoom::OneHour.span()
}

/// Before touching the terminal: on a pipe there is nothing to draw on. Says so (suggesting
/// `hmn watch`) and gives the outcome to exit with.
pub(crate) fn need_a_terminal(out: &Output) -> Result<(), Outcome> {
    let not_tty = [
        ("stdout", std::io::stdout().is_terminal()),
        ("stdin", std::io::stdin().is_terminal()),
    ]
    .into_iter()
    .filter(|(_, tty)| !tty)
    .map(|(name, _)| name)
    .collect::<Vec<_>>();
    if !not_tty.is_empty() {
        out.say(&format!(
            "`hmn top` is an interactive screen and needs a terminal, but {} {} not one. For \
             a log of GPU memory over time use `hmn watch` (`hmn watch --json` for NDJSON).",
            not_tty.join(" and "),
            if not_tty.len() == 1 { "is" } else { "are" }
        ));
        return Err(Outcome::CouldNotTell);
    }
    Ok(())
}

/// Runs the screen until the user quits.
pub(crate) fn run(global: &GlobalArgs, args: &TopArgs, out: &Output) -> Outcome {
    let started = Instant::now();
    if let Err(outcome) = need_a_terminal(out) {
        return outcome;
    }
    let probe = Arc::new(guarded_probe(global.timeout));
    let mut source = match open_source(&probe, args) {
        Ok(source) => source,
        Err(message) => {
            out.say(&message);
            return Outcome::CouldNotTell;
        }
    };
    let settings = Settings {
        readonly: args.readonly || args.replay.is_some(),
        theme: Theme::choose(
            args.theme,
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        ),
        ascii: args.ascii,
        interval: args.interval.unwrap_or(LOCAL_INTERVAL),
        me: probe.process_user(std::process::id()),
        replay: args.replay.is_some(),
    };
    if let Err(e) = signals::install() {
        out.say(&format!("cannot catch SIGTERM: {e}; `q` still quits"));
    }
    restore_on_panic();
    let guard = match enter() {
        Ok(guard) => guard,
        Err(e) => {
            restore();
            out.say(&format!("cannot set up the terminal: {e}"));
            return Outcome::CouldNotTell;
        }
    };
    let timing = std::env::var_os(TIMING_ENV).map(PathBuf::from);
    let mut app = App::new(settings);
    // A live screen knows each process's parent and start (the tree view, AGE); a replay
    // does not.
    if matches!(source, Source::Live(_)) {
        app.facts = Some(Arc::new(super::lineage::LiveFacts::new(Arc::clone(&probe))));
    }
    let result = Screen {
        app,
        source: &mut source,
        recorder: None,
        record_dir: args.record_dir.clone(),
        started,
        timing,
        exit_after_frames: args.exit_after_frames,
    }
    .run();
    drop(guard);
    // Stops the monitor (waiting a bounded time for a frame in progress).
    drop(source);
    let outcome = match result {
        Ok(messages) => {
            for m in messages {
                out.say(&m);
            }
            Outcome::Success
        }
        Err(e) => {
            out.say(&format!("the terminal failed: {e}"));
            Outcome::CouldNotTell
        }
    };
    // A driver call still hung would hold the vendor library's exit handlers forever.
    crate::driver::leave_if_driver_hung(&probe, i32::from(u8::from(outcome)));
    outcome
}

/// The live monitor, or the recording `--replay` names.
fn open_source(probe: &Arc<hypomnesis::Probe>, args: &TopArgs) -> Result<Source, String> {
    if let Some(path) = &args.replay {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the recording {}: {e}", path.display()))?;
        let recording = parse_recording(&text, Instant::now()).map_err(|e| {
            format!(
                "{} is not a recording hmn can play back: {e}. Recordings are what `R` writes \
                 in `hmn top`, or the output of `hmn watch --json`.",
                path.display()
            )
        })?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        return Ok(Source::Replay(Box::new(Replay::new(
            recording,
            args.replay_speed,
            name,
        ))));
    }
    let monitor = hypomnesis::Monitor::builder()
        .interval(args.interval.unwrap_or(LOCAL_INTERVAL))
        .process_every(3)
        .window(hypomnesis::monitor::DEFAULT_WINDOW)
        .long_window(history_window())
        .telemetry(true)
        .process_details(true)
        .start(Arc::clone(probe));
    Ok(Source::Live(Live::new(monitor)))
}

type Backend = CrosstermBackend<BufWriter<std::io::Stdout>>;

/// The running screen: the state, where frames come from, and what `R` writes to.
struct Screen<'a> {
    app: App,
    source: &'a mut Source,
    recorder: Option<Recorder>,
    record_dir: Option<PathBuf>,
    started: Instant,
    timing: Option<PathBuf>,
    exit_after_frames: Option<u32>,
}

impl Screen<'_> {
    /// The event loop; returns the lines to print on the normal screen after (where a
    /// recording went).
    fn run(mut self) -> std::io::Result<Vec<String>> {
        let (w, h) = terminal_size(None);
        self.app.size = (w, h);
        let backend = CrosstermBackend::new(BufWriter::with_capacity(1 << 16, std::io::stdout()));
        let mut terminal = Terminal::with_options(
            backend,
            TerminalOptions {
                viewport: Viewport::Fixed(Rect::new(0, 0, w, h)),
            },
        )?;
        let mut dirty = true;
        let mut frames_drawn = 0_u32;
        let mut source_status = None;
        loop {
            if signals::stop_requested() {
                break;
            }
            let now = Instant::now();
            if let Some((frame, at)) = self.source.poll(now) {
                self.record(&frame);
                self.app.set_frame(frame, self.source.history(), at);
                dirty = true;
            }
            let status = self.source.status();
            if status != source_status {
                if status.is_some() || self.app.status == source_status {
                    self.app.status.clone_from(&status);
                }
                source_status = status;
                dirty = true;
            }
            if dirty {
                self.draw(&mut terminal)?;
                dirty = false;
                if self.app.frame.is_some() {
                    frames_drawn = frames_drawn.saturating_add(1);
                    if frames_drawn == 1 {
                        self.write_timing();
                        if std::env::var_os(PANIC_ENV).is_some() {
                            panic!("{PANIC_ENV} is set: panicking after the first screen");
                        }
                    }
                    if self.exit_after_frames.is_some_and(|n| frames_drawn >= n) {
                        break;
                    }
                }
            }
            if !event::poll(self.source.wait(now))? {
                continue;
            }
            // Everything that queued up, then one redraw.
            loop {
                let event = event::read()?;
                if self.on_event(&mut terminal, &event)? {
                    return Ok(self.finish());
                }
                if !event::poll(Duration::ZERO)? {
                    break;
                }
            }
            dirty = true;
        }
        Ok(self.finish())
    }

    /// Applies one input event; `true` when `top` must quit.
    fn on_event(
        &mut self,
        terminal: &mut Terminal<Backend>,
        event: &Event,
    ) -> std::io::Result<bool> {
        let event = match event {
            Event::Resize(w, h) => {
                let (w, h) = terminal_size(Some((*w, *h)));
                terminal.resize(Rect::new(0, 0, w, h))?;
                Event::Resize(w, h)
            }
            other => other.clone(),
        };
        let effects = self.app.update(&event);
        // The one place signals are sent: `carry_out` refuses them in a read-only or replay
        // session and puts what came of each in the status line.
        signal::carry_out(&effects, &mut signal::OsSignals, &mut self.app);
        let mut quit = false;
        for effect in effects {
            match effect {
                Effect::Quit => quit = true,
                Effect::Signal { .. } => {}
                Effect::ToggleRecording => self.toggle_recording(),
                Effect::Refresh => self.app.refresh(self.source.history()),
            }
        }
        Ok(quit)
    }

    /// Draws the state; re-reads the charts first when the chart's width changed.
    fn draw(&mut self, terminal: &mut Terminal<Backend>) -> std::io::Result<()> {
        let (w, h) = self.app.size;
        let area = Rect::new(0, 0, w, h);
        if terminal.get_frame().area() != area {
            terminal.resize(area)?;
        }
        let layout = ui::layout(&self.app, area);
        let rewidth = layout.chart_buckets != self.app.layout.chart_buckets;
        self.app.layout = layout;
        if rewidth {
            self.app.refresh(self.source.history());
        }
        terminal.draw(|screen| ui::draw(screen, &self.app))?;
        Ok(())
    }

    /// `R`: starts a recording, or stops the one running.
    fn toggle_recording(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            let records = recorder.records();
            self.app.recording = None;
            self.app.status = Some(match recorder.finish() {
                Ok(path) => format!("recording stopped: {records} records in {}", path.display()),
                Err(e) => format!("recording stopped, its end may be missing: {e}"),
            });
            return;
        }
        if self.app.settings.replay {
            self.app.status = Some("nothing to record: this is a replay".into());
            return;
        }
        match Recorder::start(self.record_dir.as_deref(), self.app.settings.interval) {
            Ok(recorder) => {
                self.app.status = Some(format!(
                    "recording to {} (R stops)",
                    recorder.path().display()
                ));
                self.app.recording = Some(recorder.path().to_path_buf());
                self.recorder = Some(recorder);
                if let Some(frame) = self.app.frame.clone() {
                    self.record(&frame);
                }
            }
            Err(e) => self.app.status = Some(e),
        }
    }

    /// Writes `frame` to the recording, if one runs; a write that fails stops it and says so.
    fn record(&mut self, frame: &hypomnesis::Frame) {
        let Some(recorder) = self.recorder.as_mut() else {
            return;
        };
        if let Err(e) = recorder.write(frame) {
            let path = recorder.path().display().to_string();
            self.recorder = None;
            self.app.recording = None;
            self.app.status = Some(format!(
                "recording stopped: cannot write {path}: {e} (the lines written are whole)"
            ));
        }
    }

    fn write_timing(&self) {
        if let Some(path) = &self.timing {
            let us = self.started.elapsed().as_micros();
            let (w, h) = self.app.size;
            let _ = std::fs::write(path, format!("first_screen_us={us}\nsize={w}x{h}\n"));
        }
    }

    /// Ends a recording still running; the lines to print after the screen is restored.
    fn finish(mut self) -> Vec<String> {
        let Some(recorder) = self.recorder.take() else {
            return Vec::new();
        };
        let records = recorder.records();
        vec![match recorder.finish() {
            Ok(path) => format!("recorded {records} records to {}", path.display()),
            Err(e) => format!("the recording's end may be missing: {e}"),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reported_size_is_used_as_it_is() {
        assert_eq!(
            effective_size(Some((132, 43)), Some("90"), Some("30")),
            (132, 43)
        );
    }

    #[test]
    fn a_zero_size_report_falls_back_to_columns_and_lines() {
        assert_eq!(
            effective_size(Some((0, 0)), Some("100"), Some("30")),
            (100, 30)
        );
        assert_eq!(effective_size(None, Some(" 120 "), Some("40")), (120, 40));
    }

    #[test]
    fn without_columns_and_lines_a_zero_size_is_80_by_24() {
        assert_eq!(effective_size(Some((0, 0)), None, None), (80, 24));
        assert_eq!(
            effective_size(Some((0, 0)), Some("0"), Some("lots")),
            (80, 24)
        );
    }

    #[test]
    fn each_side_falls_back_on_its_own() {
        assert_eq!(
            effective_size(Some((0, 50)), Some("100"), Some("30")),
            (100, 50)
        );
        assert_eq!(effective_size(Some((70, 0)), None, None), (70, 24));
    }
}
