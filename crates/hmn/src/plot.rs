//! `hmn run --plot FILE.svg`: RAM and GPU memory over time, as an SVG image.
//!
//! Drawn with `plotters`' SVG backend, which writes text as SVG `<text>` (no fonts, no system
//! libraries). Series: the tree's RSS, and per device the tree's GPU memory and the device's
//! memory in use. A long run is thinned so the file stays small: past [`MAX_POINTS`], pairs of
//! points merge into one that keeps the larger value of each series, so no peak disappears
//! from the picture.
//!
//! The image is drawn into memory and written to the file in one go: a write that fails (a
//! full disk, a file-size limit) removes the file rather than leave an empty or cut SVG. Text
//! that came from outside (CMD's arguments, device names) may hold control characters, which
//! XML 1.0 forbids even as character references; they are drawn as visible escapes (`\x1b`).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

/// Points kept before thinning.
pub const MAX_POINTS: usize = 4096;

/// One sample's plotted values.
#[derive(Debug, Clone)]
pub struct PlotSeries {
    pub seconds: f64,
    pub ram: Option<u64>,
    pub gpu_tree: Vec<Option<u64>>,
    pub gpu_used: Vec<Option<u64>>,
}

/// The points of a run, thinned as it grows.
#[derive(Debug)]
pub struct PlotData {
    devices: usize,
    points: Vec<PlotSeries>,
    /// How many samples each new point stands for.
    stride: usize,
    pending: Option<(PlotSeries, usize)>,
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn merge(a: &PlotSeries, b: &PlotSeries) -> PlotSeries {
    PlotSeries {
        seconds: b.seconds,
        ram: max_opt(a.ram, b.ram),
        gpu_tree: a
            .gpu_tree
            .iter()
            .zip(&b.gpu_tree)
            .map(|(x, y)| max_opt(*x, *y))
            .collect(),
        gpu_used: a
            .gpu_used
            .iter()
            .zip(&b.gpu_used)
            .map(|(x, y)| max_opt(*x, *y))
            .collect(),
    }
}

impl PlotData {
    pub fn new(devices: usize) -> Self {
        Self {
            devices,
            points: Vec::new(),
            stride: 1,
            pending: None,
        }
    }

    pub fn push(&mut self, sample: &PlotSeries) {
        let (merged, count) = match self.pending.take() {
            Some((p, n)) => (merge(&p, sample), n + 1),
            None => (sample.clone(), 1),
        };
        if count < self.stride {
            self.pending = Some((merged, count));
            return;
        }
        self.points.push(merged);
        if self.points.len() >= MAX_POINTS {
            self.points = self
                .points
                .chunks(2)
                .map(|pair| match pair {
                    [a, b] => merge(a, b),
                    [a] => a.clone(),
                    _ => unreachable_free(pair),
                })
                .collect();
            self.stride *= 2;
        }
    }

    /// The points, with a sample still being merged at the end.
    pub fn points(&self) -> Vec<PlotSeries> {
        let mut points = self.points.clone();
        if let Some((p, _)) = &self.pending {
            points.push(p.clone());
        }
        points
    }
}

/// `chunks(2)` yields one or two elements; this keeps the match total without a panic.
fn unreachable_free(pair: &[PlotSeries]) -> PlotSeries {
    pair.first().cloned().unwrap_or(PlotSeries {
        seconds: 0.0,
        ram: None,
        gpu_tree: Vec::new(),
        gpu_used: Vec::new(),
    })
}

/// A series to draw: its legend label, its points (seconds, unit), its colour.
type Line = (String, Vec<(f64, f64)>, RGBColor);

/// `color` halfway to white.
fn lighter(color: RGBColor) -> RGBColor {
    let half = |c: u8| c + (255 - c) / 2;
    RGBColor(half(color.0), half(color.1), half(color.2))
}

/// Draws `data` into `path`. `devices` are the devices' labels, in the data's order.
pub fn draw(path: &Path, title: &str, data: &PlotData, devices: &[String]) -> Result<(), String> {
    let mut svg = String::new();
    render(&mut svg, title, data, devices)?;
    std::fs::write(path, svg.as_bytes()).map_err(|e| {
        let removed = match crate::output::remove_partial(path) {
            Ok(true) => "; the partial file was removed".to_owned(),
            Ok(false) => String::new(),
            Err(r) => format!("; the partial file could not be removed either ({r})"),
        };
        format!("{e}{removed}")
    })
}

/// `text` with every character XML 1.0 does not allow (C0 controls but tab and line breaks
/// too, since a title is one line; DEL and C1 controls, allowed but invisible; U+FFFE and
/// U+FFFF) written as a visible `\xNN` / `\u{NNNN}` escape.
pub fn xml_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let code = u32::from(c);
        if c.is_control() || code == 0xFFFE || code == 0xFFFF {
            if code <= 0xFF {
                let _ = write!(out, "\\x{code:02x}");
            } else {
                let _ = write!(out, "\\u{{{code:04x}}}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Draws the plot as SVG text into `svg`.
fn render(
    svg: &mut String,
    title: &str,
    data: &PlotData,
    devices: &[String],
) -> Result<(), String> {
    let title = xml_safe(title);
    let devices: Vec<String> = devices.iter().map(|d| xml_safe(d)).collect();
    let points = data.points();
    let to_string = |e: &dyn std::fmt::Display| e.to_string();
    let largest = points
        .iter()
        .flat_map(|p| {
            std::iter::once(p.ram)
                .chain(p.gpu_tree.iter().copied())
                .chain(p.gpu_used.iter().copied())
        })
        .flatten()
        .max()
        .unwrap_or(0);
    let (unit, scale) = if largest >= 4 << 30 {
        ("GiB", f64::from(1u32 << 30))
    } else {
        ("MiB", f64::from(1u32 << 20))
    };
    #[allow(clippy::cast_precision_loss)] // plotting needs no more than f64's 53 bits
    let value = |bytes: u64| bytes as f64 / scale;
    let x_end = points.last().map_or(1.0, |p| p.seconds).max(0.001);
    let y_end = (value(largest) * 1.1).max(1.0);

    let root = SVGBackend::with_string(svg, (1000, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| to_string(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_end, 0.0..y_end)
        .map_err(|e| to_string(&e))?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc(format!("memory ({unit})"))
        .draw()
        .map_err(|e| to_string(&e))?;

    let line = |select: &dyn Fn(&PlotSeries) -> Option<u64>| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter_map(|p| select(p).map(|b| (p.seconds, value(b))))
            .collect()
    };
    let palette = [RED, MAGENTA, GREEN, CYAN, BLACK];
    let mut series: Vec<Line> = vec![("RAM: tree RSS".to_owned(), line(&|p| p.ram), BLUE)];
    for (k, label) in devices.iter().enumerate().take(data.devices) {
        let color = palette.get(k % palette.len()).copied().unwrap_or(RED);
        series.push((
            format!("{label}: tree"),
            line(&|p| p.gpu_tree.get(k).copied().flatten()),
            color,
        ));
        series.push((
            format!("{label}: whole device"),
            line(&|p| p.gpu_used.get(k).copied().flatten()),
            lighter(color),
        ));
    }
    for (label, points, color) in series {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| to_string(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| to_string(&e))?;
    root.present().map_err(|e| to_string(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(seconds: f64, ram: u64) -> PlotSeries {
        PlotSeries {
            seconds,
            ram: Some(ram),
            gpu_tree: vec![None],
            gpu_used: vec![Some(ram / 2)],
        }
    }

    #[test]
    fn control_characters_become_visible_escapes_and_the_rest_is_kept() {
        assert_eq!(
            xml_safe("a\x1b[1mb\tc\u{7f}\u{9b}"),
            r"a\x1b[1mb\x09c\x7f\x9b"
        );
        assert_eq!(xml_safe("\u{fffe}é<&>"), r"\u{fffe}é<&>");
    }

    #[test]
    fn thinning_keeps_every_peak_and_the_whole_run() {
        let mut data = PlotData::new(1);
        let n = MAX_POINTS * 3;
        for i in 0..n {
            // One spike in a flat run.
            let ram = if i == 5_000 { 999 } else { 10 };
            #[allow(clippy::cast_precision_loss)]
            data.push(&point(i as f64, ram));
        }
        let points = data.points();
        assert!(points.len() < MAX_POINTS, "{}", points.len());
        assert_eq!(points.iter().filter_map(|p| p.ram).max(), Some(999));
        #[allow(clippy::cast_precision_loss)]
        let last = (n - 1) as f64;
        assert_eq!(points.last().map(|p| p.seconds), Some(last));
        assert_eq!(points.first().map(|p| p.ram), Some(Some(10)));
    }

    #[test]
    fn the_svg_has_both_series_axis_labels_and_a_legend() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let mut data = PlotData::new(1);
        for i in 0..50_u32 {
            data.push(&point(f64::from(i) / 10.0, u64::from(i) << 20));
        }
        draw(&path, "hmn run: test", &data, &["GPU 0".to_owned()]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        // A series is a 2-pixel polyline through its points; the legend's samples are
        // 2-point polylines.
        let lines: Vec<usize> = svg
            .split("<polyline")
            .skip(1)
            .filter(|p| p.contains("stroke-width=\"2\""))
            .filter_map(|p| p.split("points=\"").nth(1)?.split('"').next())
            .map(|points| points.split_whitespace().count())
            .collect();
        assert_eq!(
            lines.iter().filter(|&&n| n >= 50).count(),
            2,
            "RAM and the device's memory, every point: {lines:?}"
        );
        assert_eq!(
            lines.iter().filter(|&&n| n == 2).count(),
            3,
            "three legend entries"
        );
        for text in [
            "time (s)",
            "memory (MiB)",
            "RAM: tree RSS",
            "GPU 0: whole device",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
    }
}
