//! Text that others chose, made safe for a terminal.
//!
//! Process names, command lines, user names and device names are chosen by whoever started
//! the process or wrote the driver. Printed raw, `printf '\e]0;owned\a'` as a process name
//! sets the terminal's title, `\e[2J` clears it, a newline forges a row of `hmn ps`, and a
//! right-to-left override (U+202E) shows `exe.txt` for `txt.exe`. Every text output therefore
//! passes such strings through [`escape`] (or the [`Shown`] wrapper) at the point where they
//! meet our own text, as `ls` and `ps` do; JSON carries the raw string, which its encoder
//! escapes itself.
//!
//! What is escaped, and how it shows:
//! - ESC as `\e`, newline `\n`, carriage return `\r`, tab `\t`;
//! - every other C0 control and DEL as `\xNN` (`\x07`, `\x7f`);
//! - C1 controls (U+0080–U+009F, which some terminals take as CSI and OSC), the bidirectional
//!   marks, embeddings, overrides and isolates (U+061C, U+200E, U+200F, U+202A–U+202E,
//!   U+2066–U+2069) and the line and paragraph separators (U+2028, U+2029) as `\u{NNNN}`
//!   in lower-case hex.
//!
//! Backslashes stay as they are: Windows paths in command lines stay readable, and the raw
//! string is one `--json` away. Hand-rolled (a `match` on code points) because the crates that
//! escape for terminals either quote for a shell or strip instead of showing.

use std::borrow::Cow;
use std::fmt::{self, Write};

use unicode_width::UnicodeWidthChar;

/// How one character shows on a terminal: itself, or an escape.
enum Shape {
    Plain,
    Escape(&'static str),
    Byte(u32),
    Unicode(u32),
}

fn shape(c: char) -> Shape {
    match c {
        '\x1b' => Shape::Escape("\\e"),
        '\n' => Shape::Escape("\\n"),
        '\r' => Shape::Escape("\\r"),
        '\t' => Shape::Escape("\\t"),
        '\0'..='\x1f' | '\x7f' => Shape::Byte(u32::from(c)),
        '\u{80}'..='\u{9f}'
        | '\u{061c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{2028}'
        | '\u{2029}' => Shape::Unicode(u32::from(c)),
        _ => Shape::Plain,
    }
}

fn needs_escape(c: char) -> bool {
    !matches!(shape(c), Shape::Plain)
}

fn write_char(f: &mut impl Write, c: char) -> fmt::Result {
    match shape(c) {
        Shape::Plain => f.write_char(c),
        Shape::Escape(text) => f.write_str(text),
        Shape::Byte(code) => write!(f, "\\x{code:02x}"),
        Shape::Unicode(code) => write!(f, "\\u{{{code:x}}}"),
    }
}

/// `text` as it may be printed on a terminal; borrowed when nothing needed escaping.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        // Writing into a String cannot fail.
        let _ = write_char(&mut out, c);
    }
    Cow::Owned(out)
}

/// Displays a string escaped, for `format!("GPU [{}]", Shown(name))` without an allocation.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.chars().try_for_each(|c| write_char(f, c))
    }
}

/// Terminal columns `text` takes (CJK and most emoji take two; combining marks none).
pub fn width(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}

/// The ellipsis that marks a cut.
pub const ELLIPSIS: char = '…';

/// `text` cut to at most `columns` terminal columns, ending in `…` when anything was cut.
/// A wide character that would straddle the limit is left out whole, so the result may be
/// one column short.
pub fn truncate(text: &str, columns: usize) -> Cow<'_, str> {
    if width(text) <= columns {
        return Cow::Borrowed(text);
    }
    if columns == 0 {
        return Cow::Borrowed("");
    }
    let room = columns - 1; // the ellipsis takes one column
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > room {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push(ELLIPSIS);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_newlines_show_as_backslash_escapes() {
        assert_eq!(escape("\x1b]0;owned\x07title"), "\\e]0;owned\\x07title");
        assert_eq!(escape("evil\x1b[2Jname"), "evil\\e[2Jname");
        assert_eq!(escape("two\nlines\r\tend"), "two\\nlines\\r\\tend");
        assert_eq!(escape("nul\0del\x7f"), "nul\\x00del\\x7f");
    }

    #[test]
    fn c1_controls_and_bidirectional_overrides_show_as_unicode_escapes() {
        assert_eq!(escape("a\u{9b}31m"), "a\\u{9b}31m");
        assert_eq!(escape("\u{85}"), "\\u{85}");
        assert_eq!(escape("invoice\u{202e}fdp.exe"), "invoice\\u{202e}fdp.exe");
        for c in [
            '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
            '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{2028}', '\u{2029}',
        ] {
            let shown = escape(&c.to_string()).into_owned();
            assert_eq!(shown, format!("\\u{{{:x}}}", u32::from(c)));
        }
    }

    #[test]
    fn ordinary_names_are_borrowed_unchanged() {
        for name in [
            "python3",
            "训练脚本",
            "🦀run",
            "C:\\Program Files\\x.exe",
            "é",
        ] {
            assert!(matches!(escape(name), Cow::Borrowed(_)), "{name}");
            assert_eq!(Shown(name).to_string(), name);
        }
    }

    #[test]
    fn shown_escapes_like_escape() {
        let raw = "a\x1b[31mb\u{202e}c\n";
        assert_eq!(Shown(raw).to_string(), escape(raw));
    }

    #[test]
    fn truncation_counts_columns_and_ends_in_an_ellipsis() {
        assert_eq!(truncate("python3", 10), "python3");
        assert_eq!(truncate("llama-server", 6), "llama…");
        assert_eq!(width(&truncate("训练脚本", 5)), 5);
        assert_eq!(truncate("训练脚本", 5), "训练…");
        assert_eq!(
            truncate("训练脚本", 4),
            "训…",
            "a straddling wide char is left out"
        );
        assert_eq!(truncate("abc", 1), "…");
        assert_eq!(truncate("abc", 0), "");
    }
}
