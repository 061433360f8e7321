//! What a panel holds: its marks (lines, bands, bars and dots) with their colours and legend
//! entries, its caption and axis labels, and its axis ranges.

use super::density::Bar;
use super::series::finite_range;
use plotters::prelude::*;
use std::ops::Range;

/// The first series colours (Tableau 10, its grey replaced by indigo), as `0xRRGGBB`.
const COLORS: [u32; 10] =
    [0x1f77b4, 0xd62728, 0x2ca02c, 0xff7f0e, 0x9467bd, 0x8c564b, 0xe377c2, 0x17becf, 0xbcbd22, 0x393b79];

pub(super) const CONTOUR_COLOR: RGBColor = RGBColor(150, 150, 150);

/// The colour of series `k`: the ten of [`COLORS`], then hues a golden angle apart at
/// alternating lightness, so that no two series of a panel share a colour.
pub(super) fn color(k: usize) -> RGBColor {
    if k < COLORS.len() {
        let c = COLORS[k];
        return RGBColor((c >> 16) as u8, (c >> 8) as u8, c as u8);
    }
    let j = k - COLORS.len();
    let hue = (j as f64 * 137.507_764 + 15.0) % 360.0;
    let lightness = [0.32, 0.5, 0.42][j % 3];
    hsl(hue, 0.7, lightness)
}

fn hsl(h: f64, s: f64, l: f64) -> RGBColor {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    RGBColor(to(r), to(g), to(b))
}

/// The y label of a panel with one series per variable.
pub(super) fn label_of(vars: &[String]) -> String {
    if vars.len() <= 4 {
        vars.join(", ")
    } else {
        format!("{}, …, {}", vars[0], vars[vars.len() - 1])
    }
}

/// What is drawn in a panel. A labelled mark gets a legend entry when the panel has more than one.
pub(super) enum Mark {
    Line {
        label: Option<String>,
        points: Vec<(f64, f64)>,
        color: RGBColor,
        width: u32,
    },
    /// A contour line of the level written beside it.
    Contour {
        level: String,
        points: Vec<(f64, f64)>,
    },
    Band {
        label: String,
        polygon: Vec<(f64, f64)>,
        color: RGBColor,
    },
    Bars {
        label: String,
        bars: Vec<Bar>,
    },
    Dot((f64, f64), RGBColor),
    /// Filled rectangles `(x0, x1, y0, y1)` of one colour each: a heat map.
    Cells(Vec<(f64, f64, f64, f64, RGBColor)>),
}

impl Mark {
    pub(super) fn line(label: Option<&str>, points: Vec<(f64, f64)>, k: usize) -> Mark {
        Mark::Line { label: label.map(String::from), points, color: color(k), width: 2 }
    }

    /// The legend entry: the label and its colour, and whether the swatch is a filled box.
    pub(super) fn legend(&self) -> Option<(String, RGBAColor, bool)> {
        match self {
            Mark::Line { label: Some(label), color, .. } => Some((label.clone(), color.to_rgba(), false)),
            Mark::Band { label, color, .. } => Some((label.clone(), color.mix(0.25), true)),
            Mark::Bars { label, .. } => Some((label.clone(), color(0).mix(0.5), true)),
            _ => None,
        }
    }

    pub(super) fn points(&self) -> Vec<(f64, f64)> {
        match self {
            Mark::Line { points, .. } | Mark::Contour { points, .. } => points.clone(),
            Mark::Band { polygon, .. } => polygon.clone(),
            Mark::Bars { bars, .. } => bars.iter().flat_map(|b| [(b.lo, 0.0), (b.hi, b.density)]).collect(),
            Mark::Dot(p, _) => vec![*p],
            Mark::Cells(cells) => cells.iter().flat_map(|&(x0, x1, y0, y1, _)| [(x0, y0), (x1, y1)]).collect(),
        }
    }
}

/// One chart of the figure.
#[derive(Default)]
pub(super) struct Panel {
    pub(super) caption: String,
    pub(super) x_label: String,
    pub(super) y_label: String,
    pub(super) marks: Vec<Mark>,
    /// A logarithmic y axis: marks keep their values, points with `y ≤ 0` are left out.
    pub(super) log_y: bool,
    pub(super) y_from_zero: bool,
    /// One unit is as long on both axes (a picture of positions).
    pub(super) equal_aspect: bool,
    pub(super) ranges: Option<(Range<f64>, Range<f64>)>,
}

impl Panel {
    pub(super) fn new(caption: &str, x_label: &str, y_label: &str, marks: Vec<Mark>) -> Panel {
        Panel { caption: caption.into(), x_label: x_label.into(), y_label: y_label.into(), marks, ..Panel::default() }
    }

    /// The axis ranges: the data's, padded, positive for a log axis, from zero for a histogram.
    /// A log axis spans at most [`MAX_DECADES`] below its largest value.
    pub(super) fn ranges(&self) -> (Range<f64>, Range<f64>) {
        if let Some(r) = &self.ranges {
            return r.clone();
        }
        let points: Vec<(f64, f64)> = self.marks.iter().flat_map(Mark::points).collect();
        let (x0, x1) = finite_range(points.iter().map(|p| p.0)).unwrap_or((0.0, 1.0));
        let ys = points.iter().map(|p| p.1).filter(|&y| !self.log_y || y > 0.0);
        let (mut y0, y1) = finite_range(ys).unwrap_or(if self.log_y { (0.1, 1.0) } else { (0.0, 1.0) });
        if self.y_from_zero {
            y0 = y0.min(0.0);
        }
        let (x0, x1) = pad(x0, x1, 0.02);
        let (y0, y1) = if self.log_y {
            let (a, b) = (y0.log10().max(y1.log10() - MAX_DECADES), y1.log10());
            let (a, b) = if b - a < 0.3 { ((a + b) / 2.0 - 0.15, (a + b) / 2.0 + 0.15) } else { (a, b) };
            let (a, b) = pad(a, b, 0.05);
            (10f64.powf(a), 10f64.powf(b))
        } else if self.y_from_zero {
            (y0, pad(y0, y1, 0.05).1)
        } else {
            pad(y0, y1, 0.05)
        };
        (x0..x1, y0..y1)
    }
}

/// The most decades a log axis spans.
pub(super) const MAX_DECADES: f64 = 16.0;

fn pad(lo: f64, hi: f64, f: f64) -> (f64, f64) {
    if hi > lo {
        (lo - f * (hi - lo), hi + f * (hi - lo))
    } else {
        let d = if lo == 0.0 { 0.5 } else { 0.1 * lo.abs() };
        (lo - d, hi + d)
    }
}
