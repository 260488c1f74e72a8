//! Colours of `hmn top`: by default the terminal's own 16 ANSI colours, so light and dark
//! terminals both work; `--theme` picks another palette, `NO_COLOR` or `mono` none.

use crate::cli::ThemeChoice;

/// A palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Theme {
    /// The terminal's own 16 ANSI colours.
    #[default]
    Default,
    Dark,
    Light,
    HighContrast,
    /// No colour: emphasis by bold, reverse and underline only.
    Mono,
}

impl Theme {
    /// The palette for `--theme` (absent: the default) and `NO_COLOR` (set and not empty:
    /// mono, whatever `--theme` says).
    pub(crate) fn choose(choice: Option<ThemeChoice>, no_color: bool) -> Self {
        if no_color {
            return Self::Mono;
        }
        match choice.unwrap_or_default() {
            ThemeChoice::Default => Self::Default,
            ThemeChoice::Dark => Self::Dark,
            ThemeChoice::Light => Self::Light,
            ThemeChoice::HighContrast => Self::HighContrast,
            ThemeChoice::Mono => Self::Mono,
        }
    }
}
