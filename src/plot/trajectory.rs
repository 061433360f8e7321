//! The figure of a single trajectory: coordinates (or state) against time, the energy error
//! on a log axis, the observes, positions in the plane, phase portraits, and the path of a
//! two-dimensional energy model over contours of its energy.

use super::contour::{contour_levels, contour_lines};
use super::panel::{color, label_of, Mark, Panel};
use super::render::{compact, compose};
use super::series::{finite_range, pairs, Table};
use super::{cartesian_pairs, observe_columns, PlotError, PlotInfo};
use crate::ModelKind;

/// The most series in the coordinates panel and the most phase portraits and observe panels.
const MAX_SERIES: usize = 10;
const MAX_PHASE: usize = 4;
const MAX_OBSERVES: usize = 4;
const MAX_SENSITIVITY_PANELS: usize = 2;

/// Draws a single trajectory: the coordinates (or state) against time, the energy error
/// on a log axis (docs/language.md, § Plots), each observe, the positions of every
/// Cartesian pair of observes in one panel of equal aspect, and phase portraits `q`
/// against `q'` for up to four coordinates of a Lagrangian model, or, for a
/// two-dimensional energy model, the path over contour lines of `energy2d` when it is
/// given. A note under the title says what is left out.
pub fn trajectory_svg(
    info: &PlotInfo,
    columns: &[String],
    rows: &[Vec<f64>],
    energy2d: Option<&dyn Fn(f64, f64) -> f64>,
) -> Result<String, PlotError> {
    let data = Table::new(info, columns, rows)?;
    let t = data.column("t")?;
    let mut panels = Vec::new();
    let mut notes = Vec::new();

    let mut lines = Vec::new();
    for (k, var) in info.vars.iter().take(MAX_SERIES).enumerate() {
        lines.push(Mark::line(Some(var), pairs(var, &t, &data.column(var)?)?, k));
    }
    let caption = if info.kind == ModelKind::Lagrangian { "coordinates" } else { "state" };
    let n = info.vars.len();
    let caption = if n > MAX_SERIES {
        notes.push(format!("{caption}: the first {MAX_SERIES} of {n} drawn"));
        format!("{caption} (first {MAX_SERIES} of {n})")
    } else {
        caption.to_string()
    };
    panels.push(Panel::new(&caption, "t", &label_of(&info.vars), lines));
    panels.push(energy_panel(info, &t, &data.column("energy")?)?);

    let observes = observe_columns(info, columns);
    // A Lagrangian model's coordinates may be Cartesian too (a planet's `x`, `y`); an energy
    // model's state in two dimensions has its path panel.
    let mut named = if info.kind == ModelKind::Lagrangian { info.vars.clone() } else { Vec::new() };
    named.extend(observes.iter().cloned());
    let pairs_xy = cartesian_pairs(&named);
    if !pairs_xy.is_empty() {
        panels.push(positions_panel(&data, &pairs_xy)?);
    }
    let single: Vec<&String> = observes.iter().filter(|o| !pairs_xy.iter().any(|(x, y)| x == *o || y == *o)).collect();
    for name in single.iter().take(MAX_OBSERVES) {
        panels.push(observe_panel(name, &t, &data.column(name)?)?);
    }
    if single.len() > MAX_OBSERVES {
        notes.push(format!("observes: {MAX_OBSERVES} of {} drawn", single.len()));
    }

    // `--sensitivities`: a panel per coordinate (or state variable), one line per name.
    for var in info.vars.iter().take(MAX_SENSITIVITY_PANELS) {
        let prefix = format!("d({var})/d(");
        let lines = columns
            .iter()
            .filter(|c| c.starts_with(&prefix))
            .take(MAX_SERIES)
            .enumerate()
            .map(|(k, c)| Ok(Mark::line(Some(&c[prefix.len()..c.len() - 1]), pairs(c, &t, &data.column(c)?)?, k)))
            .collect::<Result<Vec<_>, PlotError>>()?;
        if !lines.is_empty() {
            panels.push(Panel::new(&format!("sensitivities of {var}"), "t", &format!("d({var})/d(·)"), lines));
        }
    }

    if info.kind == ModelKind::Lagrangian {
        for (k, var) in info.vars.iter().take(MAX_PHASE).enumerate() {
            let velocity = format!("{var}'");
            let points = pairs(var, &data.column(var)?, &data.column(&velocity)?)?;
            let caption = format!("phase portrait {var}");
            panels.push(Panel::new(&caption, var, &velocity, vec![Mark::line(None, points, k)]));
        }
        if n > MAX_PHASE {
            notes.push(format!("phase portraits of {MAX_PHASE} of {n} coordinates"));
        }
    } else if info.vars.len() == 2 {
        panels.push(path_panel(info, &data, energy2d)?);
    }
    let title = format!("{} — {} model, {} rows", info.model, info.kind, rows.len());
    compose(&title, &notes, &panels)
}

/// The energy on a log axis: `|H − H0|/|H0|` for a conservative model (`|H − H0|` when
/// `H0` is tiny), `H − H_min` or `E − E_min` otherwise, `H_min`/`E_min` the run's smallest;
/// zeros (the first row, an exact minimum) are left out. docs/language.md, § Plots.
pub(super) fn energy_panel(info: &PlotInfo, t: &[f64], energy: &[f64]) -> Result<Panel, PlotError> {
    let points = pairs("energy", t, energy)?;
    let name = if info.kind == ModelKind::Lagrangian { "H" } else { "E" };
    let (caption, label, values): (String, String, Vec<(f64, f64)>) = if info.conservative {
        let h0 = points[0].1;
        let scale = points.iter().map(|p| p.1.abs()).fold(0.0, f64::max);
        let relative = h0.abs() >= RELATIVE_MIN.max(1e-3 * scale);
        let d = if relative { h0.abs() } else { 1.0 };
        let values = points.iter().map(|&(t, h)| (t, (h - h0).abs() / d)).collect();
        let h0 = compact(h0, 6);
        if relative {
            (format!("relative energy error, {name}0 = {h0}"), format!("|{name} − {name}0|/|{name}0|"), values)
        } else {
            (format!("energy error, {name}0 = {h0}"), format!("|{name} − {name}0|"), values)
        }
    } else {
        let min = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let values = points.iter().map(|&(t, e)| (t, e - min)).collect();
        (format!("energy above its minimum, {name}_min = {}", compact(min, 6)), format!("{name} − {name}_min"), values)
    };
    let positive = values.iter().any(|p| p.1 > 0.0);
    let caption = if positive { caption } else { format!("{caption}: constant") };
    Ok(Panel { log_y: positive, ..Panel::new(&caption, "t", &label, vec![Mark::line(None, values, 0)]) })
}

/// The smallest `|H0|` an energy error is relative to.
const RELATIVE_MIN: f64 = 1e-10;

/// One observe against time; a nearly constant one as its change from the first value, a
/// positive one spanning three decades on a log axis.
fn observe_panel(name: &str, t: &[f64], values: &[f64]) -> Result<Panel, PlotError> {
    let points = pairs(name, t, values)?;
    let (lo, hi) = finite_range(points.iter().map(|p| p.1)).unwrap_or((0.0, 0.0));
    let v0 = points[0].1;
    if hi > lo && hi - lo < 1e-6 * v0.abs() {
        let shifted = points.iter().map(|&(t, v)| (t, v - v0)).collect();
        let label = format!("{name} − {}", compact(v0, 12));
        return Ok(Panel::new(name, "t", &label, vec![Mark::line(None, shifted, 0)]));
    }
    // A positive observe spanning three decades or more (an objective falling to its
    // minimum 0) is drawn on a log axis.
    let log_y = lo > 0.0 && hi >= 1e3 * lo;
    Ok(Panel { log_y, ..Panel::new(name, "t", name, vec![Mark::line(None, points, 0)]) })
}

/// The positions of each Cartesian pair of observes in one plane of equal aspect, with each
/// final position marked.
fn positions_panel(data: &Table, xy: &[(String, String)]) -> Result<Panel, PlotError> {
    let mut marks = Vec::new();
    let mut ends = Vec::new();
    for (k, (x, y)) in xy.iter().enumerate() {
        let path = pairs(x, &data.column(x)?, &data.column(y)?)?;
        ends.push(Mark::Dot(path[path.len() - 1], color(k)));
        marks.push(Mark::line(Some(&format!("({x}, {y})")), path, k));
    }
    marks.extend(ends);
    let (xl, yl) = if xy.len() == 1 { (xy[0].0.clone(), xy[0].1.clone()) } else { ("x".into(), "y".into()) };
    Ok(Panel { equal_aspect: true, ..Panel::new("positions (• at the end)", &xl, &yl, marks) })
}

/// The path of a two-dimensional energy model, over labelled contour lines of its energy.
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
        for (level, line) in contour_lines(e, xr.clone(), yr.clone(), N, &levels) {
            marks.push(Mark::Contour { level: compact(level, 3), points: line });
        }
    }
    let start = path[0];
    marks.push(Mark::line(Some("path"), path, 1));
    marks.push(Mark::Dot(start, color(1)));
    let caption = if energy2d.is_some() { "path over contours of E (• start)" } else { "path (• start)" };
    let mut panel = Panel::new(caption, a, b, marks);
    panel.ranges = Some((xr, yr));
    Ok(panel)
}
