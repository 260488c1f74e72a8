//! The fleet screen's terminal loop: the local screen's terminal handling (raw mode, the
//! alternate screen, restoring on exit, panic and SIGTERM, the size fallbacks), with reads
//! from the [`Reader`] instead of a monitor.
//!
//! The loop waits for input at most [`POLL`], then takes whatever reads arrived; it draws only
//! when a read, a key or a resize came.

use std::io::BufWriter;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

#[cfg(feature = "fleet")]
use super::reader::Seeder;
use super::reader::{Read, Reader};
use super::state::{FleetApp, FleetSettings};
use super::{FLEET_INTERVAL, draw};
use crate::cli::TopArgs;
use crate::cmd::top::terminal::{self, enter, need_a_terminal, restore, restore_on_panic};
use crate::cmd::top::theme::Theme;
use crate::fleet::{CollectOptions, Source};
use crate::outcome::Outcome;
use crate::output::Output;
use crate::signals;

/// How long the loop waits for input before looking for a new read.
const POLL: Duration = Duration::from_millis(100);

/// What the header names before the first read says.
fn source_text(source: &Source) -> String {
    match source {
        Source::Hosts(targets) => format!(
            "hosts ({} endpoint{})",
            targets.len(),
            if targets.len() == 1 { "" } else { "s" }
        ),
        Source::TargetsFrom { server } => format!("targets-from {server}"),
        Source::Prometheus { server, selector } => match selector {
            Some(sel) => format!("prometheus {server} {sel}"),
            None => format!("prometheus {server}"),
        },
    }
}

/// Runs the fleet screen until the user quits.
pub(crate) fn run(
    args: &TopArgs,
    source: Source,
    options: CollectOptions,
    out: &Output,
) -> Outcome {
    if let Err(outcome) = need_a_terminal(out) {
        return outcome;
    }
    let interval = args.interval.unwrap_or(FLEET_INTERVAL);
    let settings = FleetSettings {
        theme: Theme::choose(
            args.theme,
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        ),
        ascii: args.ascii,
        interval,
        history_from_prometheus: cfg!(feature = "fleet")
            && matches!(source, Source::Prometheus { .. }),
    };
    let app = FleetApp::new(settings, source_text(&source));
    #[cfg(feature = "fleet")]
    let seeder = Seeder::for_source(&source, &options, interval);
    let reader = match Reader::start(source, options, interval, crate::fleet::collect) {
        Ok(reader) => reader,
        Err(e) => {
            out.say(&format!("cannot start reading the fleet: {e}"));
            return Outcome::CouldNotTell;
        }
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
    let result = event_loop(
        app,
        &reader,
        #[cfg(feature = "fleet")]
        seeder.as_ref(),
        args.exit_after_frames,
    );
    drop(guard);
    drop(reader);
    match result {
        Ok(()) => Outcome::Success,
        Err(e) => {
            out.say(&format!("the terminal failed: {e}"));
            Outcome::CouldNotTell
        }
    }
}

type Backend = CrosstermBackend<BufWriter<std::io::Stdout>>;

fn apply(app: &mut FleetApp, read: Read) {
    match read {
        Ok(fleet) => app.set_fleet(Arc::new(fleet), Instant::now()),
        Err(e) => app.set_error(e.to_string()),
    }
}

fn event_loop(
    mut app: FleetApp,
    reader: &Reader,
    #[cfg(feature = "fleet")] seeder: Option<&Seeder>,
    exit_after_frames: Option<u32>,
) -> std::io::Result<()> {
    let (w, h) = terminal::terminal_size(None);
    app.size = (w, h);
    let backend = CrosstermBackend::new(BufWriter::with_capacity(1 << 16, std::io::stdout()));
    let mut term = Terminal::with_options(
        backend,
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, w, h)),
        },
    )?;
    let mut dirty = true;
    let mut drawn_with_data = 0_u32;
    loop {
        if signals::stop_requested() {
            return Ok(());
        }
        for read in reader.poll() {
            apply(&mut app, read);
            dirty = true;
        }
        #[cfg(feature = "fleet")]
        if let Some(seeder) = seeder {
            if let Some(name) = app.seed_wanted.take()
                && let Some(node) = app.node(&name)
            {
                seeder.fetch(name, node.endpoint.clone());
            }
            for (name, past) in seeder.poll() {
                app.seed_history(&name, past, Instant::now(), std::time::SystemTime::now());
                dirty = true;
            }
        }
        if dirty {
            draw(&mut term, &mut app)?;
            dirty = false;
            if app.fleet.is_some() {
                drawn_with_data = drawn_with_data.saturating_add(1);
                if exit_after_frames.is_some_and(|n| drawn_with_data >= n) {
                    return Ok(());
                }
            }
        }
        if !event::poll(POLL)? {
            continue;
        }
        loop {
            let event = match event::read()? {
                Event::Resize(w, h) => {
                    let (w, h) = terminal::terminal_size(Some((w, h)));
                    term.resize(Rect::new(0, 0, w, h))?;
                    Event::Resize(w, h)
                }
                other => other,
            };
            if app.update(&event) {
                return Ok(());
            }
            if !event::poll(Duration::ZERO)? {
                break;
            }
        }
        dirty = true;
    }
}

fn draw(term: &mut Terminal<Backend>, app: &mut FleetApp) -> std::io::Result<()> {
    let (w, h) = app.size;
    let area = Rect::new(0, 0, w, h);
    if term.get_frame().area() != area {
        term.resize(area)?;
    }
    app.set_layout(draw::layout(app, area));
    term.draw(|screen| {
        let area = screen.area();
        draw::draw_into(screen.buffer_mut(), area, app);
    })?;
    Ok(())
}
