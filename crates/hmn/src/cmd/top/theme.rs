//! Colours of `hmn top`: by default the terminal's own 16 ANSI colours, so light and dark
//! terminals both work; `--theme` picks another palette, `NO_COLOR` or `mono` none.
//!
//! Why the default names ANSI colours (`Color::Red`) and never RGB: the user's terminal maps
//! them to its own palette, which it already made readable on its own background. `dark` and
//! `light` are tuned palettes for people who want them; `high-contrast` uses only black,
//! white and the bright colours, with bold; `mono` sets no colour at all and shows emphasis
//! with bold, reverse, underline and dim alone. Nothing on the screen tells two things apart
//! by colour only: bars use a different character per part, the sort column has an arrow.
//!
//! Drawing asks for a role ([`Styles`]), never a colour.

use ratatui::style::{Color, Modifier, Style};

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

/// The style of every role the screen draws, for one theme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Styles {
    /// Plain text.
    pub(crate) text: Style,
    /// Labels in front of figures (`RAM`, `swap`, `util`).
    pub(crate) label: Style,
    /// A panel's title line.
    pub(crate) title: Style,
    /// An unknown figure (`?`, `n/a`).
    pub(crate) unknown: Style,
    /// A figure past its warning level (memory nearly full, pressure, heat).
    pub(crate) warn: Style,
    /// A figure past its critical level.
    pub(crate) critical: Style,
    /// The used part of a memory bar.
    pub(crate) bar_used: Style,
    /// The reserved part (driver and firmware).
    pub(crate) bar_reserved: Style,
    /// The free part.
    pub(crate) bar_free: Style,
    /// A bar of GPU buffers in system RAM (GTT, shared memory).
    pub(crate) bar_system: Style,
    /// The process table's header line.
    pub(crate) table_header: Style,
    /// The header cell of the sort column.
    pub(crate) sort_column: Style,
    /// The selected row.
    pub(crate) selected: Style,
    /// Another user's process.
    pub(crate) dimmed: Style,
    /// Key names in the footer and help.
    pub(crate) key: Style,
    /// The footer's notes (the reasons behind `?`).
    pub(crate) note: Style,
    /// The status message and errors.
    pub(crate) status: Style,
    /// The recording indicator.
    pub(crate) recording: Style,
    /// An overlay's frame and title.
    pub(crate) overlay: Style,
    /// A device or instance where the size typed in the fits overlay fits.
    pub(crate) fits: Style,
    /// One where it does not.
    pub(crate) no_fit: Style,
    /// The chart's series, one colour per device, cycled.
    pub(crate) series: [Style; 6],
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

    /// Every theme, for the tests' matrix.
    #[cfg(test)]
    pub(crate) const ALL: [Self; 5] = [
        Self::Default,
        Self::Dark,
        Self::Light,
        Self::HighContrast,
        Self::Mono,
    ];

    /// The name `--theme` takes.
    #[cfg(test)]
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Dark => "dark",
            Self::Light => "light",
            Self::HighContrast => "high-contrast",
            Self::Mono => "mono",
        }
    }

    /// The styles of every role.
    pub(crate) const fn styles(self) -> Styles {
        match self {
            Self::Default => ansi(),
            Self::Dark => tuned(&DARK),
            Self::Light => tuned(&LIGHT),
            Self::HighContrast => high_contrast(),
            Self::Mono => mono(),
        }
    }
}

const fn fg(color: Color) -> Style {
    Style::new().fg(color)
}

const BOLD: Modifier = Modifier::BOLD;

/// The terminal's own colours, named.
const fn ansi() -> Styles {
    Styles {
        text: Style::new(),
        label: fg(Color::Cyan),
        title: Style::new().add_modifier(BOLD),
        unknown: fg(Color::Yellow),
        warn: fg(Color::Yellow).add_modifier(BOLD),
        critical: fg(Color::Red).add_modifier(BOLD),
        bar_used: fg(Color::Green),
        bar_reserved: fg(Color::Magenta),
        bar_free: fg(Color::DarkGray),
        bar_system: fg(Color::Blue),
        table_header: Style::new().add_modifier(Modifier::REVERSED),
        sort_column: Style::new()
            .add_modifier(Modifier::REVERSED)
            .add_modifier(BOLD)
            .add_modifier(Modifier::UNDERLINED),
        selected: fg(Color::Black).bg(Color::Cyan),
        dimmed: Style::new().add_modifier(Modifier::DIM),
        key: fg(Color::Cyan).add_modifier(BOLD),
        note: fg(Color::Yellow),
        status: fg(Color::Green),
        recording: fg(Color::Red).add_modifier(BOLD),
        overlay: fg(Color::Cyan),
        fits: fg(Color::Black).bg(Color::Green),
        no_fit: Style::new().add_modifier(Modifier::DIM),
        series: [
            fg(Color::Green),
            fg(Color::Cyan),
            fg(Color::Magenta),
            fg(Color::Yellow),
            fg(Color::Blue),
            fg(Color::Red),
        ],
    }
}

/// A tuned palette: colours picked for one background.
struct Tuned {
    text: Color,
    label: Color,
    accent: Color,
    warn: Color,
    critical: Color,
    used: Color,
    reserved: Color,
    free: Color,
    system: Color,
    selected_bg: Color,
    header_bg: Color,
    dim: Color,
    series: [Color; 6],
}

const DARK: Tuned = Tuned {
    text: Color::Rgb(0xd8, 0xde, 0xe9),
    label: Color::Rgb(0x88, 0xc0, 0xd0),
    accent: Color::Rgb(0x81, 0xa1, 0xc1),
    warn: Color::Rgb(0xeb, 0xcb, 0x8b),
    critical: Color::Rgb(0xbf, 0x61, 0x6a),
    used: Color::Rgb(0xa3, 0xbe, 0x8c),
    reserved: Color::Rgb(0xb4, 0x8e, 0xad),
    free: Color::Rgb(0x4c, 0x56, 0x6a),
    system: Color::Rgb(0x5e, 0x81, 0xac),
    selected_bg: Color::Rgb(0x43, 0x4c, 0x5e),
    header_bg: Color::Rgb(0x3b, 0x42, 0x52),
    dim: Color::Rgb(0x6b, 0x73, 0x85),
    series: [
        Color::Rgb(0xa3, 0xbe, 0x8c),
        Color::Rgb(0x88, 0xc0, 0xd0),
        Color::Rgb(0xb4, 0x8e, 0xad),
        Color::Rgb(0xeb, 0xcb, 0x8b),
        Color::Rgb(0x81, 0xa1, 0xc1),
        Color::Rgb(0xd0, 0x87, 0x70),
    ],
};

const LIGHT: Tuned = Tuned {
    text: Color::Rgb(0x24, 0x29, 0x2e),
    label: Color::Rgb(0x00, 0x5c, 0xc5),
    accent: Color::Rgb(0x03, 0x2f, 0x62),
    warn: Color::Rgb(0x9a, 0x67, 0x00),
    critical: Color::Rgb(0xcf, 0x22, 0x2e),
    used: Color::Rgb(0x1a, 0x7f, 0x37),
    reserved: Color::Rgb(0x82, 0x50, 0xdf),
    free: Color::Rgb(0xaf, 0xb8, 0xc1),
    system: Color::Rgb(0x09, 0x69, 0xda),
    selected_bg: Color::Rgb(0xdd, 0xf4, 0xff),
    header_bg: Color::Rgb(0xea, 0xee, 0xf2),
    dim: Color::Rgb(0x8c, 0x95, 0x9f),
    series: [
        Color::Rgb(0x1a, 0x7f, 0x37),
        Color::Rgb(0x09, 0x69, 0xda),
        Color::Rgb(0x82, 0x50, 0xdf),
        Color::Rgb(0x9a, 0x67, 0x00),
        Color::Rgb(0xbf, 0x39, 0x89),
        Color::Rgb(0xcf, 0x22, 0x2e),
    ],
};

const fn tuned(p: &Tuned) -> Styles {
    Styles {
        text: fg(p.text),
        label: fg(p.label),
        title: fg(p.accent).add_modifier(BOLD),
        unknown: fg(p.warn),
        warn: fg(p.warn).add_modifier(BOLD),
        critical: fg(p.critical).add_modifier(BOLD),
        bar_used: fg(p.used),
        bar_reserved: fg(p.reserved),
        bar_free: fg(p.free),
        bar_system: fg(p.system),
        table_header: fg(p.text).bg(p.header_bg).add_modifier(BOLD),
        sort_column: fg(p.label)
            .bg(p.header_bg)
            .add_modifier(BOLD)
            .add_modifier(Modifier::UNDERLINED),
        selected: fg(p.text).bg(p.selected_bg).add_modifier(BOLD),
        dimmed: fg(p.dim),
        key: fg(p.label).add_modifier(BOLD),
        note: fg(p.warn),
        status: fg(p.used),
        recording: fg(p.critical).add_modifier(BOLD),
        overlay: fg(p.accent),
        fits: fg(p.used)
            .add_modifier(BOLD)
            .add_modifier(Modifier::REVERSED),
        no_fit: fg(p.dim),
        series: [
            fg(p.series[0]),
            fg(p.series[1]),
            fg(p.series[2]),
            fg(p.series[3]),
            fg(p.series[4]),
            fg(p.series[5]),
        ],
    }
}

/// Black, white and the bright colours, bold where it matters.
const fn high_contrast() -> Styles {
    Styles {
        text: fg(Color::White),
        label: fg(Color::LightCyan).add_modifier(BOLD),
        title: fg(Color::White).add_modifier(BOLD),
        unknown: fg(Color::LightYellow).add_modifier(BOLD),
        warn: fg(Color::Black).bg(Color::LightYellow).add_modifier(BOLD),
        critical: fg(Color::White).bg(Color::Red).add_modifier(BOLD),
        bar_used: fg(Color::LightGreen),
        bar_reserved: fg(Color::LightMagenta),
        bar_free: fg(Color::White),
        bar_system: fg(Color::LightBlue),
        table_header: fg(Color::Black).bg(Color::White).add_modifier(BOLD),
        sort_column: fg(Color::Black)
            .bg(Color::LightYellow)
            .add_modifier(BOLD)
            .add_modifier(Modifier::UNDERLINED),
        selected: fg(Color::Black).bg(Color::LightCyan).add_modifier(BOLD),
        dimmed: fg(Color::Gray),
        key: fg(Color::LightYellow).add_modifier(BOLD),
        note: fg(Color::LightYellow),
        status: fg(Color::LightGreen).add_modifier(BOLD),
        recording: fg(Color::White).bg(Color::Red).add_modifier(BOLD),
        overlay: fg(Color::White).add_modifier(BOLD),
        fits: fg(Color::Black).bg(Color::LightGreen).add_modifier(BOLD),
        no_fit: fg(Color::Gray),
        series: [
            fg(Color::LightGreen),
            fg(Color::LightCyan),
            fg(Color::LightMagenta),
            fg(Color::LightYellow),
            fg(Color::LightBlue),
            fg(Color::LightRed),
        ],
    }
}

/// No colour: bold, reverse, underline and dim only.
const fn mono() -> Styles {
    let plain = Style::new();
    let bold = Style::new().add_modifier(BOLD);
    let reverse = Style::new().add_modifier(Modifier::REVERSED);
    Styles {
        text: plain,
        label: plain,
        title: bold,
        unknown: bold,
        warn: bold,
        critical: Style::new()
            .add_modifier(BOLD)
            .add_modifier(Modifier::UNDERLINED),
        bar_used: plain,
        bar_reserved: plain,
        bar_free: Style::new().add_modifier(Modifier::DIM),
        bar_system: plain,
        table_header: reverse,
        sort_column: Style::new()
            .add_modifier(Modifier::REVERSED)
            .add_modifier(BOLD)
            .add_modifier(Modifier::UNDERLINED),
        selected: reverse,
        dimmed: Style::new().add_modifier(Modifier::DIM),
        key: bold,
        note: plain,
        status: bold,
        recording: bold,
        overlay: bold,
        fits: reverse,
        no_fit: Style::new().add_modifier(Modifier::DIM),
        series: [plain; 6],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn colours(styles: &Styles) -> Vec<Color> {
        let s = styles;
        let mut all = vec![
            s.text,
            s.label,
            s.title,
            s.unknown,
            s.warn,
            s.critical,
            s.bar_used,
            s.bar_reserved,
            s.bar_free,
            s.bar_system,
            s.table_header,
            s.sort_column,
            s.selected,
            s.dimmed,
            s.key,
            s.note,
            s.status,
            s.recording,
            s.overlay,
            s.fits,
            s.no_fit,
        ];
        all.extend(s.series);
        all.iter()
            .flat_map(|style| [style.fg, style.bg])
            .flatten()
            .collect()
    }

    #[test]
    fn the_default_theme_uses_only_the_terminals_sixteen_named_colours() {
        for colour in colours(&Theme::Default.styles()) {
            assert!(
                !matches!(colour, Color::Rgb(..) | Color::Indexed(_)),
                "{colour:?} is not one of the 16 named ANSI colours"
            );
        }
    }

    #[test]
    fn the_mono_theme_sets_no_colour_at_all() {
        assert_eq!(colours(&Theme::Mono.styles()), Vec::<Color>::new());
    }

    #[test]
    fn no_color_wins_over_any_theme_choice() {
        assert_eq!(Theme::choose(Some(ThemeChoice::Dark), true), Theme::Mono);
        assert_eq!(Theme::choose(None, false), Theme::Default);
        assert_eq!(
            Theme::choose(Some(ThemeChoice::HighContrast), false),
            Theme::HighContrast
        );
    }
}
