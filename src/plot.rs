//! SVG plots of a run: data in, an SVG document out, no file I/O.
//!
//! A figure is a grid of panels under a title that names the model. Each panel
//! is drawn by plotters into its own SVG fragment and placed in the figure as a
//! `<g class="panel">` group whose `<title>` is the panel's caption, so a reader
//! (or a test) can tell the panels apart. Non-finite values are skipped, long
//! series are thinned to at most [`MAX_POINTS`] points, and no fonts are read:
//! text is left to the SVG viewer.

use crate::ModelKind;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::collections::HashMap;
use std::ops::Range;

/// What a plot needs to know about the model.
#[derive(Clone, Debug)]
pub struct PlotInfo {
    /// The model's name, shown in the figure's title.
    pub model: String,
    /// Lagrangian or energy model: decides the columns and panels.
    pub kind: ModelKind,
    /// The coordinate (or state) names, as written in the columns.
    pub vars: Vec<String>,
    /// The temperature of a Langevin model, if any.
    pub temperature: Option<f64>,
}

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// There are no rows, no variables, or no columns to draw.
    #[error("nothing to plot: {0}")]
    Empty(&'static str),
    /// A column the plot needs is not among the columns given.
    #[error("the column `{0}` is missing")]
    MissingColumn(String),
    /// A row does not have one value per column.
    #[error("row {row} has {len} values for {columns} columns")]
    RowLength { row: usize, len: usize, columns: usize },
    /// A series to be drawn has no finite value at all.
    #[error("the series `{0}` has no finite value")]
    NonFinite(String),
    /// plotters failed to draw.
    #[error("drawing failed: {0}")]
    Backend(String),
}

/// The longest series drawn; longer ones are thinned evenly, keeping the last point.
pub const MAX_POINTS: usize = 1500;
const PANEL: (u32, u32) = (560, 380);
const TITLE_HEIGHT: u32 = 40;
/// The series colours (matplotlib's first eight), as `0xRRGGBB`.
const COLORS: [u32; 8] = [0x1f77b4, 0xd62728, 0x2ca02c, 0xff7f0e, 0x9467bd, 0x8c564b, 0xe377c2, 0x17becf];
const CONTOUR_COLOR: RGBColor = RGBColor(150, 150, 150);

fn color(k: usize) -> RGBColor {
    let c = COLORS[k % COLORS.len()];
    RGBColor((c >> 16) as u8, (c >> 8) as u8, c as u8)
}

/// One bar of a density histogram: the bin `[lo, hi)` and its height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    pub lo: f64,
    pub hi: f64,
    pub density: f64,
}

/// Draws a single trajectory: the coordinates (or state) against time, the
/// energy against time, and phase portraits `q` against `q'` for up to four
/// coordinates of a Lagrangian model, or, for a two-dimensional energy model,
/// the path over contour lines of `energy2d` when it is given.
pub fn trajectory_svg(
    info: &PlotInfo,
    columns: &[String],
    rows: &[Vec<f64>],
    energy2d: Option<&dyn Fn(f64, f64) -> f64>,
) -> Result<String, PlotError> {
    let data = Table::new(info, columns, rows)?;
    let t = data.column("t")?;
    let mut panels = Vec::new();

    let mut lines = Vec::new();
    for (k, var) in info.vars.iter().enumerate() {
        lines.push(Mark::line(Some(var), pairs(var, &t, &data.column(var)?)?, k));
    }
    let caption = if info.kind == ModelKind::Lagrangian { "coordinates" } else { "state" };
    panels.push(Panel::new(caption, "t", &label_of(&info.vars), lines));

    let energy = data.column("energy")?;
    let positive = energy.iter().filter(|e| e.is_finite()).all(|&e| e > 0.0);
    let name = if info.kind == ModelKind::Lagrangian { "H" } else { "E" };
    let line = vec![Mark::line(None, pairs("energy", &t, &energy)?, 0)];
    panels.push(Panel {
        log_y: info.kind == ModelKind::Energy && positive,
        ..Panel::new(&format!("energy {name}"), "t", "energy", line)
    });

    if info.kind == ModelKind::Lagrangian {
        for (k, var) in info.vars.iter().take(4).enumerate() {
            let velocity = format!("{var}'");
            let points = pairs(var, &data.column(var)?, &data.column(&velocity)?)?;
            let caption = format!("phase portrait {var}");
            panels.push(Panel::new(&caption, var, &velocity, vec![Mark::line(None, points, k)]));
        }
    } else if info.vars.len() == 2 {
        panels.push(path_panel(info, &data, energy2d)?);
    }
    let title = format!("{} — {} model, {} rows", info.model, info.kind, rows.len());
    compose(&title, &panels)
}

/// Draws an ensemble: mean ± one standard deviation of up to four variables and
/// of the energy against time, and a density histogram of the first variable
/// over the final particles (`finals[p][k]` is variable `k` of particle `p`;
/// the panel is left out when `finals` is empty). For a one-dimensional energy
/// model with a positive temperature `T`, the Gibbs density `exp(−E(x)/T)/Z` of
/// `energy` is drawn over the histogram.
pub fn ensemble_svg(
    info: &PlotInfo,
    columns: &[String],
    rows: &[Vec<f64>],
    finals: &[Vec<f64>],
    energy: Option<&dyn Fn(f64) -> f64>,
) -> Result<String, PlotError> {
    let data = Table::new(info, columns, rows)?;
    let t = data.column("t")?;
    let mut panels = Vec::new();
    let mut names: Vec<&str> = info.vars.iter().take(4).map(String::as_str).collect();
    names.push("energy");
    for (k, name) in names.into_iter().enumerate() {
        let mean = data.column(&format!("{name}_mean"))?;
        let std = data.column(&format!("{name}_std"))?;
        let (line, band) = band(name, &t, &mean, &std)?;
        let positive = band.iter().all(|&(_, y)| y > 0.0);
        let mut panel = Panel::new(
            &format!("{name}: mean ± std"),
            "t",
            name,
            vec![
                Mark::Band { label: format!("{name}_mean ± {name}_std"), polygon: band, color: color(k) },
                Mark::line(Some(&format!("{name}_mean")), line, k),
            ],
        );
        panel.log_y = name == "energy" && info.kind == ModelKind::Energy && positive;
        panels.push(panel);
    }

    let first: Vec<f64> = finals.iter().filter_map(|p| p.first().copied()).filter(|x| x.is_finite()).collect();
    if !first.is_empty() {
        let var = &info.vars[0];
        let bins = ((first.len() as f64).sqrt().ceil() as usize).clamp(5, 50);
        let mut marks = vec![Mark::Bars { label: format!("final {var}"), bars: density_histogram(&first, bins) }];
        let one_d = info.vars.len() == 1 && info.kind == ModelKind::Energy;
        let gibbs = energy.zip(info.temperature).filter(|&(_, temp)| temp > 0.0 && one_d);
        if let Some((e, temp)) = gibbs {
            let (lo, hi) = finite_range(first.iter().copied()).unwrap_or((-1.0, 1.0));
            let pad = 0.1 * (hi - lo).max(1e-9);
            let curve = gibbs_density(e, temp, lo - pad..hi + pad, 400);
            if !curve.is_empty() {
                marks.push(Mark::line(Some(&format!("exp(−E/T)/Z, T = {temp}")), curve, 1));
            }
        }
        let caption = format!("final {var} ({} particles)", finals.len());
        panels.push(Panel { y_from_zero: true, ..Panel::new(&caption, var, "density", marks) });
    }
    let mut title = format!("{} — ensemble of {} particles", info.model, finals.len());
    if let Some(temp) = info.temperature {
        title.push_str(&format!(", T = {temp}"));
    }
    compose(&title, &panels)
}

/// A density-normalised histogram of the finite `values` in `bins` equal bins
/// over their range: the bar areas sum to one.
pub fn density_histogram(values: &[f64], bins: usize) -> Vec<Bar> {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let Some((mut lo, mut hi)) = finite_range(finite.iter().copied()) else { return Vec::new() };
    if hi <= lo {
        lo -= 0.5;
        hi += 0.5;
    }
    let bins = bins.max(1);
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0usize; bins];
    for v in &finite {
        let k = (((v - lo) / width) as usize).min(bins - 1);
        counts[k] += 1;
    }
    let n = finite.len() as f64;
    let bar = |k: usize, c: usize| Bar {
        lo: lo + k as f64 * width,
        hi: lo + (k + 1) as f64 * width,
        density: c as f64 / (n * width),
    };
    counts.into_iter().enumerate().map(|(k, c)| bar(k, c)).collect()
}

/// The Gibbs density `exp(−E(x)/T)/Z` at `n` points over `range`, with `Z` by
/// the trapezoidal rule over the same points. Non-finite energies are left out.
pub fn gibbs_density(energy: &dyn Fn(f64) -> f64, temperature: f64, range: Range<f64>, n: usize) -> Vec<(f64, f64)> {
    let n = n.max(2);
    let xs: Vec<f64> = (0..n).map(|k| range.start + (range.end - range.start) * k as f64 / (n - 1) as f64).collect();
    let es: Vec<(f64, f64)> = xs.iter().map(|&x| (x, energy(x))).filter(|(_, e)| e.is_finite()).collect();
    let Some(e_min) = es.iter().map(|p| p.1).reduce(f64::min) else { return Vec::new() };
    let weights: Vec<(f64, f64)> = es.iter().map(|&(x, e)| (x, (-(e - e_min) / temperature).exp())).collect();
    let z: f64 = weights.windows(2).map(|w| 0.5 * (w[0].1 + w[1].1) * (w[1].0 - w[0].0)).sum();
    if !(z > 0.0 && z.is_finite()) {
        return Vec::new();
    }
    weights.into_iter().map(|(x, w)| (x, w / z)).collect()
}

/// `count` contour levels for the finite `values` of a function on a grid:
/// evenly spaced in `E`, or evenly spaced in `log(E − min)` when `E − min`
/// spans more than two decades (a valley or a minimum inside the grid).
pub fn contour_levels(values: &[f64], count: usize) -> Vec<f64> {
    let Some((min, max)) = finite_range(values.iter().copied()) else { return Vec::new() };
    let span = max - min;
    if span <= 0.0 || count == 0 {
        return Vec::new();
    }
    let smallest = values.iter().map(|v| v - min).filter(|d| d.is_finite() && *d > 0.0).fold(span, f64::min);
    let lowest = smallest.max(span * 1e-4);
    if span / lowest > 100.0 {
        let (a, b) = (lowest.ln(), span.ln());
        (0..count).map(|k| min + (a + (b - a) * (k as f64 + 0.5) / count as f64).exp()).collect()
    } else {
        (0..count).map(|k| min + span * (k as f64 + 0.5) / count as f64).collect()
    }
}

/// The contour lines of `f` at each of `levels`, by marching squares on an
/// `n × n` grid of cells over `x × y`, joined into polylines: a list of
/// `(level, points)`. Cells with a non-finite corner are skipped; saddle cells
/// are resolved by the value at the cell's centre.
pub fn contour_lines(
    f: &dyn Fn(f64, f64) -> f64,
    x: Range<f64>,
    y: Range<f64>,
    n: usize,
    levels: &[f64],
) -> Vec<(f64, Vec<(f64, f64)>)> {
    let n = n.max(1);
    let xs: Vec<f64> = (0..=n).map(|i| x.start + (x.end - x.start) * i as f64 / n as f64).collect();
    let ys: Vec<f64> = (0..=n).map(|j| y.start + (y.end - y.start) * j as f64 / n as f64).collect();
    let grid: Vec<Vec<f64>> = ys.iter().map(|&yj| xs.iter().map(|&xi| f(xi, yj)).collect()).collect();
    let mut out = Vec::new();
    for &c in levels {
        // An edge is named by its lower-left grid point and its direction (0 along x, 1 along y).
        let mut segments: Vec<[(Edge, (f64, f64)); 2]> = Vec::new();
        for j in 0..n {
            for i in 0..n {
                let v = [grid[j][i], grid[j][i + 1], grid[j + 1][i + 1], grid[j + 1][i]];
                if v.iter().any(|z| !z.is_finite()) {
                    continue;
                }
                let corner = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)];
                let edges: [Edge; 4] = [(0, i, j), (1, i + 1, j), (0, i, j + 1), (1, i, j)];
                let mut hits = Vec::with_capacity(4);
                for k in 0..4 {
                    let (a, b) = (v[k], v[(k + 1) % 4]);
                    if (a < c) != (b < c) {
                        let s = (c - a) / (b - a);
                        let (pa, pb) = (corner[k], corner[(k + 1) % 4]);
                        let px = xs[pa.0] + s * (xs[pb.0] - xs[pa.0]);
                        let py = ys[pa.1] + s * (ys[pb.1] - ys[pa.1]);
                        hits.push((edges[k], (px, py)));
                    }
                }
                match hits.len() {
                    2 => segments.push([hits[0], hits[1]]),
                    4 => {
                        let centre = (v[0] + v[1] + v[2] + v[3]) / 4.0;
                        if (centre < c) == (v[0] < c) {
                            segments.push([hits[0], hits[1]]);
                            segments.push([hits[2], hits[3]]);
                        } else {
                            segments.push([hits[0], hits[3]]);
                            segments.push([hits[1], hits[2]]);
                        }
                    }
                    _ => {}
                }
            }
        }
        out.extend(join_segments(&segments).into_iter().map(|line| (c, line)));
    }
    out
}

type Edge = (u8, usize, usize);

/// Chains segments that share a grid edge into polylines; each edge crossing
/// belongs to at most two segments, one in each neighbouring cell.
fn join_segments(segments: &[[(Edge, (f64, f64)); 2]]) -> Vec<Vec<(f64, f64)>> {
    let mut at: HashMap<Edge, Vec<usize>> = HashMap::new();
    for (k, s) in segments.iter().enumerate() {
        at.entry(s[0].0).or_default().push(k);
        at.entry(s[1].0).or_default().push(k);
    }
    let mut used = vec![false; segments.len()];
    let mut lines = Vec::new();
    for start in 0..segments.len() {
        if used[start] {
            continue;
        }
        used[start] = true;
        let mut line = vec![segments[start][0], segments[start][1]];
        for _ in 0..2 {
            while let Some(next) = at[&line[line.len() - 1].0].iter().copied().find(|&k| !used[k]) {
                used[next] = true;
                let s = segments[next];
                line.push(if s[0].0 == line[line.len() - 1].0 { s[1] } else { s[0] });
            }
            line.reverse();
        }
        lines.push(line.into_iter().map(|(_, p)| p).collect());
    }
    lines
}

/// The path of a two-dimensional energy model, over contour lines of its energy.
fn path_panel(info: &PlotInfo, data: &Table, energy2d: Option<&dyn Fn(f64, f64) -> f64>) -> Result<Panel, PlotError> {
    let (a, b) = (&info.vars[0], &info.vars[1]);
    let path = pairs(a, &data.column(a)?, &data.column(b)?)?;
    let (x0, x1) = finite_range(path.iter().map(|p| p.0)).unwrap_or((-1.0, 1.0));
    let (y0, y1) = finite_range(path.iter().map(|p| p.1)).unwrap_or((-1.0, 1.0));
    let widen = |lo: f64, hi: f64| {
        let pad = if hi > lo { 0.2 * (hi - lo) } else { 0.5 * lo.abs().max(1.0) };
        lo - pad..hi + pad
    };
    let (xr, yr) = (widen(x0, x1), widen(y0, y1));
    let mut marks = Vec::new();
    if let Some(e) = energy2d {
        const N: usize = 64;
        let mut values = Vec::with_capacity((N + 1) * (N + 1));
        for j in 0..=N {
            for i in 0..=N {
                let x = xr.start + (xr.end - xr.start) * i as f64 / N as f64;
                values.push(e(x, yr.start + (yr.end - yr.start) * j as f64 / N as f64));
            }
        }
        let levels = contour_levels(&values, 12);
        for (k, (_, line)) in contour_lines(e, xr.clone(), yr.clone(), N, &levels).into_iter().enumerate() {
            let label = (k == 0).then_some("E contours");
            marks.push(Mark::Line { label: label.map(String::from), points: line, color: CONTOUR_COLOR, width: 1 });
        }
    }
    let start = path[0];
    marks.push(Mark::line(Some("path"), path, 1));
    marks.push(Mark::Dot(start, color(1)));
    let mut panel = Panel::new("path over contours of E", a, b, marks);
    panel.ranges = Some((xr, yr));
    Ok(panel)
}

/// The columns of a run, checked to have one value per column in every row.
struct Table<'a> {
    columns: &'a [String],
    rows: &'a [Vec<f64>],
}

impl<'a> Table<'a> {
    fn new(info: &PlotInfo, columns: &'a [String], rows: &'a [Vec<f64>]) -> Result<Self, PlotError> {
        if info.vars.is_empty() {
            return Err(PlotError::Empty("the model has no variables"));
        }
        if columns.is_empty() {
            return Err(PlotError::Empty("no columns"));
        }
        if rows.is_empty() {
            return Err(PlotError::Empty("no rows"));
        }
        if let Some((row, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != columns.len()) {
            return Err(PlotError::RowLength { row, len: r.len(), columns: columns.len() });
        }
        Ok(Table { columns, rows })
    }

    fn column(&self, name: &str) -> Result<Vec<f64>, PlotError> {
        let k =
            self.columns.iter().position(|c| c == name).ok_or_else(|| PlotError::MissingColumn(name.to_string()))?;
        Ok(self.rows.iter().map(|r| r[k]).collect())
    }
}

/// The finite points `(x[i], y[i])`, thinned to [`MAX_POINTS`]; an error names `name` when there are none.
fn pairs(name: &str, x: &[f64], y: &[f64]) -> Result<Vec<(f64, f64)>, PlotError> {
    let points: Vec<(f64, f64)> =
        x.iter().zip(y).map(|(&a, &b)| (a, b)).filter(|(a, b)| a.is_finite() && b.is_finite()).collect();
    if points.is_empty() {
        return Err(PlotError::NonFinite(name.to_string()));
    }
    Ok(thin(points))
}

/// The mean line and the closed polygon of mean ± std.
#[allow(clippy::type_complexity)]
fn band(name: &str, t: &[f64], mean: &[f64], std: &[f64]) -> Result<(Vec<(f64, f64)>, Vec<(f64, f64)>), PlotError> {
    let rows: Vec<(f64, f64, f64)> = (0..t.len())
        .map(|k| (t[k], mean[k], std[k]))
        .filter(|(a, b, c)| a.is_finite() && b.is_finite() && c.is_finite())
        .collect();
    if rows.is_empty() {
        return Err(PlotError::NonFinite(format!("{name}_mean")));
    }
    let rows = thin(rows);
    let line = rows.iter().map(|&(t, m, _)| (t, m)).collect();
    let upper = rows.iter().map(|&(t, m, s)| (t, m + s));
    let lower = rows.iter().rev().map(|&(t, m, s)| (t, m - s));
    Ok((line, upper.chain(lower).collect()))
}

fn thin<T: Copy>(points: Vec<T>) -> Vec<T> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let stride = points.len().div_ceil(MAX_POINTS);
    let last = points[points.len() - 1];
    let mut kept: Vec<T> = points.into_iter().step_by(stride).collect();
    kept.push(last);
    kept
}

fn finite_range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |r, v| Some(r.map_or((v, v), |(a, b): (f64, f64)| (a.min(v), b.max(v)))))
}

/// The y label of a panel with one series per variable.
fn label_of(vars: &[String]) -> String {
    if vars.len() <= 4 {
        vars.join(", ")
    } else {
        format!("{}, …, {}", vars[0], vars[vars.len() - 1])
    }
}

/// What is drawn in a panel. A labelled mark gets a legend entry when the panel has more than one.
enum Mark {
    Line { label: Option<String>, points: Vec<(f64, f64)>, color: RGBColor, width: u32 },
    Band { label: String, polygon: Vec<(f64, f64)>, color: RGBColor },
    Bars { label: String, bars: Vec<Bar> },
    Dot((f64, f64), RGBColor),
}

impl Mark {
    fn line(label: Option<&str>, points: Vec<(f64, f64)>, k: usize) -> Mark {
        Mark::Line { label: label.map(String::from), points, color: color(k), width: 2 }
    }

    /// The legend entry: the label and the style of its swatch.
    fn legend(&self) -> Option<(String, ShapeStyle)> {
        match self {
            Mark::Line { label: Some(label), color, .. } => Some((label.clone(), color.filled())),
            Mark::Band { label, color, .. } => Some((label.clone(), color.mix(0.25).filled())),
            Mark::Bars { label, .. } => Some((label.clone(), color(0).mix(0.5).filled())),
            _ => None,
        }
    }

    fn points(&self) -> Vec<(f64, f64)> {
        match self {
            Mark::Line { points, .. } => points.clone(),
            Mark::Band { polygon, .. } => polygon.clone(),
            Mark::Bars { bars, .. } => bars.iter().flat_map(|b| [(b.lo, 0.0), (b.hi, b.density)]).collect(),
            Mark::Dot(p, _) => vec![*p],
        }
    }
}

/// One chart of the figure.
#[derive(Default)]
struct Panel {
    caption: String,
    x_label: String,
    y_label: String,
    marks: Vec<Mark>,
    log_y: bool,
    y_from_zero: bool,
    ranges: Option<(Range<f64>, Range<f64>)>,
}

impl Panel {
    fn new(caption: &str, x_label: &str, y_label: &str, marks: Vec<Mark>) -> Panel {
        Panel { caption: caption.into(), x_label: x_label.into(), y_label: y_label.into(), marks, ..Panel::default() }
    }

    /// The axis ranges: the data's, padded, positive for a log axis, from zero for a histogram.
    fn ranges(&self) -> (Range<f64>, Range<f64>) {
        if let Some(r) = &self.ranges {
            return r.clone();
        }
        let points: Vec<(f64, f64)> = self.marks.iter().flat_map(Mark::points).collect();
        let (x0, x1) = finite_range(points.iter().map(|p| p.0)).unwrap_or((0.0, 1.0));
        let ys = points.iter().map(|p| p.1).filter(|&y| !self.log_y || y > 0.0);
        let (mut y0, y1) = finite_range(ys).unwrap_or((0.0, 1.0));
        if self.y_from_zero {
            y0 = y0.min(0.0);
        }
        let pad = |lo: f64, hi: f64, f: f64| {
            if hi > lo {
                (lo - f * (hi - lo), hi + f * (hi - lo))
            } else {
                let d = if lo == 0.0 { 0.5 } else { 0.1 * lo.abs() };
                (lo - d, hi + d)
            }
        };
        let (x0, x1) = pad(x0, x1, 0.02);
        let (y0, y1) = if self.log_y {
            let (a, b) = pad(y0.log10(), y1.log10(), 0.05);
            (10f64.powf(a), 10f64.powf(b))
        } else if self.y_from_zero {
            (y0, pad(y0, y1, 0.05).1)
        } else {
            pad(y0, y1, 0.05)
        };
        (x0..x1, y0..y1)
    }
}

/// A tick label with as many decimals as the axis span needs (so that
/// neighbouring ticks differ), or in exponent form on a log axis.
fn tick_label(v: f64, span: f64, log: bool) -> String {
    if log {
        let a = v.abs();
        return if (1e-3..1e4).contains(&a) { format!("{}", (v * 1e6).round() / 1e6) } else { format!("{v:.0e}") };
    }
    if v == 0.0 {
        return "0".into();
    }
    let decimals =
        if span > 0.0 && span.is_finite() { (-(span / 6.0).log10()).ceil().max(0.0) as usize + 1 } else { 2 };
    format!("{:.*}", decimals.min(12), v)
}

fn backend<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError::Backend(e.to_string())
}

/// Draws one panel into an SVG fragment of its own.
fn draw_panel(panel: &Panel) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PANEL).into_drawing_area();
        root.fill(&WHITE).map_err(backend)?;
        let (xr, yr) = panel.ranges();
        let mut builder = ChartBuilder::on(&root);
        builder.caption(&panel.caption, ("sans-serif", 18)).margin(12).x_label_area_size(42).y_label_area_size(70);
        if panel.log_y {
            fill_chart(builder.build_cartesian_2d(xr, yr.log_scale()).map_err(backend)?, panel)?;
        } else {
            fill_chart(builder.build_cartesian_2d(xr, yr).map_err(backend)?, panel)?;
        }
        root.present().map_err(backend)?;
    }
    Ok(svg)
}

fn fill_chart<'a, Y>(
    mut chart: ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    panel: &Panel,
) -> Result<(), PlotError>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let (xr, yr) = panel.ranges();
    let (xspan, yspan) = (xr.end - xr.start, yr.end - yr.start);
    let x_fmt = |v: &f64| tick_label(*v, xspan, false);
    let y_fmt = |v: &f64| tick_label(*v, yspan, panel.log_y);
    chart
        .configure_mesh()
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .x_labels(6)
        .y_labels(6)
        .max_light_lines(0)
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(backend)?;
    let positive = |&(_, y): &(f64, f64)| !panel.log_y || y > 0.0;
    for mark in &panel.marks {
        let anno = match mark {
            Mark::Line { points, color, width, .. } => {
                chart.draw_series(LineSeries::new(points.iter().copied().filter(positive), color.stroke_width(*width)))
            }
            Mark::Band { polygon, color, .. } => {
                let area: Vec<(f64, f64)> = polygon.iter().copied().filter(positive).collect();
                chart.draw_series([Polygon::new(area, color.mix(0.25).filled())])
            }
            Mark::Bars { bars, .. } => {
                let live = bars.iter().filter(|b| b.density > 0.0);
                chart.draw_series(
                    live.map(|b| Rectangle::new([(b.lo, 0.0), (b.hi, b.density)], color(0).mix(0.5).filled())),
                )
            }
            Mark::Dot(p, c) => chart.draw_series([Circle::new(*p, 4, c.filled())]),
        }
        .map_err(backend)?;
        if let Some((label, style)) = mark.legend() {
            anno.label(label).legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], style));
        }
    }
    let labelled = panel.marks.iter().filter(|m| m.legend().is_some()).count();
    if labelled > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(backend)?;
    }
    Ok(())
}

/// Lays the panels out in a grid under the title: each panel's fragment becomes
/// a nested `<svg>` placed by `x`/`y`, inside a `<g class="panel">` with its caption as `<title>`.
fn compose(title: &str, panels: &[Panel]) -> Result<String, PlotError> {
    let cols = match panels.len() {
        0 => return Err(PlotError::Empty("no panels")),
        1 | 2 => panels.len(),
        3 | 4 => 2,
        _ => 3,
    };
    let grid_rows = panels.len().div_ceil(cols);
    let (w, h) = (PANEL.0 * cols as u32, TITLE_HEIGHT + PANEL.1 * grid_rows as u32);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n<title>{t}</title>\n\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#FFFFFF\"/>\n\
         <text class=\"figure-title\" x=\"{x}\" y=\"27\" text-anchor=\"middle\" font-family=\"sans-serif\" font-size=\"22\">{t}</text>\n",
        t = escape(title),
        x = w / 2,
    );
    for (k, panel) in panels.iter().enumerate() {
        let fragment = draw_panel(panel)?;
        let (x, y) = (PANEL.0 * (k % cols) as u32, TITLE_HEIGHT + PANEL.1 * (k / cols) as u32);
        let body = fragment
            .trim()
            .strip_prefix("<svg ")
            .ok_or_else(|| PlotError::Backend("unexpected SVG from plotters".into()))?;
        out.push_str(&format!(
            "<g class=\"panel\">\n<title>{}</title>\n<svg x=\"{x}\" y=\"{y}\" {body}\n</g>\n",
            escape(&panel.caption)
        ));
    }
    out.push_str("</svg>\n");
    Ok(out)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}
