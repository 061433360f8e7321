//! The figure of a single trajectory: coordinates (or state) and energy against time, phase
//! portraits, and the path of a two-dimensional energy model over contours of its energy.

use super::contour::{contour_levels, contour_lines};
use super::panel::{color, label_of, Mark, Panel, CONTOUR_COLOR};
use super::render::compose;
use super::series::{finite_range, pairs, Table};
use super::{PlotError, PlotInfo};
use crate::ModelKind;

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
