//! Aligned text tables, measured in terminal columns rather than bytes or chars, so that
//! process names in CJK or with emoji (two columns each) keep the columns straight.

use unicode_width::UnicodeWidthStr;

/// Which side a column's cells hug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table: a header and rows of cells, rendered with two spaces between columns.
#[derive(Debug)]
pub struct Table {
    header: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: Vec<(&'static str, Align)>) -> Self {
        Self {
            header,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as lines ending in `\n`; the last column is not padded.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|(h, _)| h.width()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.width());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|(h, _)| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, ((cell, width), (_, align))) in
                row.iter().zip(&widths).zip(&self.header).enumerate()
            {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = width.saturating_sub(cell.width());
                let last = i + 1 == columns;
                match align {
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(cell);
                    }
                    Align::Left => {
                        line.push_str(cell);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_characters_keep_columns_aligned() {
        let mut table = Table::new(vec![("NAME", Align::Left), ("VRAM", Align::Right)]);
        table.push(vec!["python".into(), "1.5 GiB".into()]);
        table.push(vec!["训练".into(), "512 MiB".into()]);
        table.push(vec!["🦀run".into(), "12 MiB".into()]);
        let text = table.render();
        let columns: Vec<usize> = text.lines().map(UnicodeWidthStr::width).collect();
        assert!(columns.iter().all(|&w| w == columns[0]), "{text}");
        assert_eq!(
            text,
            "NAME       VRAM\npython  1.5 GiB\n训练    512 MiB\n🦀run    12 MiB\n"
        );
    }
}
