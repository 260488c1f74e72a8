//! Aligned text tables, measured in terminal columns rather than bytes or chars, so that
//! process names in CJK or with emoji (two columns each) keep the columns straight.
//!
//! Every cell is escaped ([`crate::text::escape`]) as it is pushed: tables show names and
//! command lines that other processes chose. Our own colour codes therefore never go in a
//! cell.
//!
//! A table can fit a width (the terminal's): its *flexible* columns are cut with `…` down to
//! their minimum, then its *optional* columns are left out, lowest rank first, and what is
//! still too wide is cut further (never below a few columns). Without a width nothing is cut,
//! which is what a pipe or a file gets.

use crate::text::{self, width};

/// Which side a column's cells hug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// The narrowest a flexible column is cut to when even its minimum does not fit.
const FLOOR: usize = 4;

#[derive(Debug)]
struct Column {
    title: &'static str,
    align: Align,
    /// Left out when the table does not fit; lower ranks go first.
    drop_rank: Option<u8>,
    /// May be cut with `…`, first down to this many columns.
    flexible_min: Option<usize>,
}

/// A table: a header and rows of cells, rendered with two spaces between columns.
#[derive(Debug)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: Vec<(&'static str, Align)>) -> Self {
        Self {
            columns: header
                .into_iter()
                .map(|(title, align)| Column {
                    title,
                    align,
                    drop_rank: None,
                    flexible_min: None,
                })
                .collect(),
            rows: Vec::new(),
        }
    }

    fn column_mut(&mut self, title: &str) -> Option<&mut Column> {
        self.columns.iter_mut().find(|c| c.title == title)
    }

    /// Lets column `title` be left out when the table does not fit; rank 0 goes first.
    pub fn optional(mut self, title: &str, rank: u8) -> Self {
        if let Some(column) = self.column_mut(title) {
            column.drop_rank = Some(rank);
        }
        self
    }

    /// Lets column `title` be cut with `…` when the table does not fit, down to `min`
    /// columns before any column is left out.
    pub fn flexible(mut self, title: &str, min: usize) -> Self {
        if let Some(column) = self.column_mut(title) {
            column.flexible_min = Some(min.max(FLOOR));
        }
        self
    }

    /// Adds a row; cells are escaped for the terminal here.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(
            row.into_iter()
                .map(|cell| match text::escape(&cell) {
                    std::borrow::Cow::Borrowed(_) => cell,
                    std::borrow::Cow::Owned(escaped) => escaped,
                })
                .collect(),
        );
    }

    /// The table as lines ending in `\n` (the last column is not padded), fitted into
    /// `max_width` terminal columns (see the module docs); `None` renders it whole.
    pub fn render_within(&self, max_width: Option<usize>) -> String {
        let natural = self.natural_widths();
        let (shown, widths) = match max_width {
            Some(max) => self.fit(&natural, max),
            None => ((0..self.columns.len()).collect(), natural),
        };
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| c.title.to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (position, &i) in shown.iter().enumerate() {
                let Some(column) = self.columns.get(i) else {
                    continue;
                };
                let cell = row.get(i).map_or("", String::as_str);
                let width = widths.get(i).copied().unwrap_or(0);
                let cell = text::truncate(cell, width);
                if position > 0 {
                    line.push_str("  ");
                }
                let pad = width.saturating_sub(text::width(&cell));
                let last = position + 1 == shown.len();
                match column.align {
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(&cell);
                    }
                    Align::Left => {
                        line.push_str(&cell);
                        if !last {
                            line.push_str(&" ".repeat(pad));
                        }
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    fn natural_widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.columns.iter().map(|c| width(c.title)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        widths
    }

    /// Which columns to show and how wide each is, to fit `max` columns.
    fn fit(&self, natural: &[usize], max: usize) -> (Vec<usize>, Vec<usize>) {
        let mut drop_order: Vec<(u8, usize)> = self
            .columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.drop_rank.map(|rank| (rank, i)))
            .collect();
        drop_order.sort_unstable();
        let mut dropped: Vec<usize> = Vec::new();
        loop {
            let shown: Vec<usize> = (0..self.columns.len())
                .filter(|i| !dropped.contains(i))
                .collect();
            let at_last = dropped.len() == drop_order.len();
            let floor = |i: usize, c: &Column| match c.flexible_min {
                Some(min) if at_last => natural[i].min(FLOOR.max(width(c.title).min(min))),
                Some(min) => natural[i].min(min),
                None => natural[i],
            };
            let widths = self.shrink(natural, &shown, max, floor);
            let total: usize =
                shown.iter().map(|&i| widths[i]).sum::<usize>() + 2 * shown.len().saturating_sub(1);
            if total <= max || at_last {
                return (shown, widths);
            }
            if let Some(&(_, next)) = drop_order.get(dropped.len()) {
                dropped.push(next);
            }
        }
    }

    /// Natural widths, with the shown flexible columns narrowed (the widest first, never
    /// below `floor`) until the shown columns fit `max` or cannot narrow further.
    fn shrink(
        &self,
        natural: &[usize],
        shown: &[usize],
        max: usize,
        floor: impl Fn(usize, &Column) -> usize,
    ) -> Vec<usize> {
        let mut widths = natural.to_vec();
        let separators = 2 * shown.len().saturating_sub(1);
        let mut total: usize = shown.iter().map(|&i| widths[i]).sum::<usize>() + separators;
        while total > max {
            let widest = shown
                .iter()
                .filter_map(|&i| {
                    let column = self.columns.get(i)?;
                    column.flexible_min?;
                    (widths[i] > floor(i, column)).then_some((widths[i], i))
                })
                .max();
            let Some((_, i)) = widest else {
                break;
            };
            widths[i] -= 1;
            total -= 1;
        }
        widths
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_width::UnicodeWidthStr;

    #[test]
    fn wide_characters_keep_columns_aligned() {
        let mut table = Table::new(vec![("NAME", Align::Left), ("VRAM", Align::Right)]);
        table.push(vec!["python".into(), "1.5 GiB".into()]);
        table.push(vec!["训练".into(), "512 MiB".into()]);
        table.push(vec!["🦀run".into(), "12 MiB".into()]);
        let text = table.render_within(None);
        let columns: Vec<usize> = text.lines().map(UnicodeWidthStr::width).collect();
        assert!(columns.iter().all(|&w| w == columns[0]), "{text}");
        assert_eq!(
            text,
            "NAME       VRAM\npython  1.5 GiB\n训练    512 MiB\n🦀run    12 MiB\n"
        );
    }

    #[test]
    fn cells_are_escaped_so_a_name_cannot_forge_rows_or_move_the_cursor() {
        let mut table = Table::new(vec![("PID", Align::Right), ("NAME", Align::Left)]);
        table.push(vec!["1".into(), "evil\n2  root\x1b[2J".into()]);
        let text = table.render_within(None);
        assert_eq!(text, "PID  NAME\n  1  evil\\n2  root\\e[2J\n");
        assert_eq!(text.lines().count(), 2);
    }

    fn sample() -> Table {
        let mut table = Table::new(vec![
            ("PID", Align::Right),
            ("USER", Align::Left),
            ("NAME", Align::Left),
            ("VRAM", Align::Right),
            ("SPILL", Align::Left),
            ("COMMAND", Align::Left),
        ])
        .optional("SPILL", 0)
        .optional("USER", 1)
        .flexible("NAME", 8)
        .flexible("COMMAND", 12);
        table.push(vec![
            "4242".into(),
            "alice".into(),
            "llama-server-long-name".into(),
            "1.5 GiB".into(),
            "n/a".into(),
            "/opt/llama/llama-server-long-name -m model.gguf --port 8080".into(),
        ]);
        table.push(vec![
            "7".into(),
            "bob".into(),
            "训练脚本训练脚本".into(),
            "512 MiB".into(),
            "n/a".into(),
            "python3 train.py".into(),
        ]);
        table
    }

    fn widest_line(text: &str) -> usize {
        text.lines().map(UnicodeWidthStr::width).max().unwrap_or(0)
    }

    #[test]
    fn without_a_width_nothing_is_cut() {
        let text = sample().render_within(None);
        assert!(text.contains("--port 8080"), "{text}");
        assert!(!text.contains('…'), "{text}");
    }

    #[test]
    fn flexible_columns_are_cut_with_an_ellipsis_before_any_column_is_dropped() {
        let whole = widest_line(&sample().render_within(None));
        let text = sample().render_within(Some(whole - 20));
        assert!(widest_line(&text) <= whole - 20, "{text}");
        assert!(text.contains('…'), "{text}");
        assert!(text.contains("SPILL") && text.contains("USER"), "{text}");
    }

    #[test]
    fn optional_columns_go_in_rank_order_once_flexible_ones_are_at_their_minimum() {
        // PID 4 + USER 5 + NAME 8 + VRAM 7 + SPILL 5 + COMMAND 12 + 5 separators of 2 = 51.
        let text = sample().render_within(Some(50));
        assert!(!text.contains("SPILL"), "{text}");
        assert!(text.contains("USER"), "{text}");
        assert!(widest_line(&text) <= 50, "{text}");
        let text = sample().render_within(Some(40));
        assert!(!text.contains("SPILL") && !text.contains("USER"), "{text}");
        assert!(widest_line(&text) <= 40, "{text}");
    }

    #[test]
    fn wide_characters_are_cut_whole_and_columns_stay_aligned() {
        let mut table =
            Table::new(vec![("NAME", Align::Left), ("VRAM", Align::Right)]).flexible("NAME", 4);
        table.push(vec!["训练脚本训练脚本".into(), "1.5 GiB".into()]);
        table.push(vec!["python3-long-name".into(), "12 MiB".into()]);
        let text = table.render_within(Some(15));
        assert_eq!(text, "NAME       VRAM\n训练…   1.5 GiB\npytho…   12 MiB\n");
        let widths: Vec<usize> = text.lines().map(UnicodeWidthStr::width).collect();
        assert!(widths.iter().all(|&w| w == widths[0] && w <= 15), "{text}");
    }

    #[test]
    fn a_table_too_wide_even_when_cut_is_cut_as_far_as_it_goes() {
        let text = sample().render_within(Some(10));
        for line in text.lines() {
            assert!(line.starts_with(|c: char| c == ' ' || c.is_ascii_alphanumeric()));
        }
        assert!(text.contains("PID") && text.contains("VRAM"), "{text}");
    }
}
