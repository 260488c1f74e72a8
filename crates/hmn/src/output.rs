//! Where text goes and whether it is coloured.
//!
//! stdout carries data and stderr carries talk. A closed stdout (`hmn ps | head -1`) is not
//! an error: the reader has what it wanted, so writes are dropped quietly and the exit code
//! is unaffected. Colour follows `--color`, then `NO_COLOR`, then whether stdout is a
//! terminal.

use std::io::{IsTerminal, Write};

use crate::cli::ColorChoice;

/// A terminal colour for emphasis.
#[derive(Debug, Clone, Copy)]
pub enum Tone {
    Good,
    Warn,
    Bad,
}

/// stdout/stderr writer with the colour decision made once.
#[derive(Debug)]
pub struct Output {
    color: bool,
}

impl Output {
    pub fn new(choice: ColorChoice) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && std::io::stdout().is_terminal(),
        };
        Self { color }
    }

    /// Writes data to stdout; a closed pipe ends the output silently.
    pub fn data(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush());
    }

    /// Writes one line of talk to stderr, prefixed `hmn: `.
    pub fn say(&self, line: &str) {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "hmn: {line}");
    }

    /// `text` in `tone`'s colour when colour is on.
    pub fn paint(&self, text: &str, tone: Tone) -> String {
        if !self.color {
            return text.to_owned();
        }
        let code = match tone {
            Tone::Good => "32",
            Tone::Warn => "33",
            Tone::Bad => "31",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// Serialises `value` as pretty JSON on stdout.
    pub fn json<T: serde::Serialize>(&self, value: &T) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => self.data(&format!("{text}\n")),
            Err(e) => self.say(&format!("could not encode JSON: {e}")),
        }
    }
}
