//! The figure of a `fokker-planck` run: the density as a heat map over
//! `(t, x)` with the mean drawn over it, the free energy against time, and the
//! first and last densities beside the Gibbs density `exp(−E/T)/Z` on the grid.

use super::panel::{Mark, Panel};
use super::render::compose;
use super::series::{pairs, Table};
use super::{PlotError, PlotInfo};
use crate::drive::Density;
use plotters::style::RGBColor;

/// Columns of the heat map at most (times), and rows (cells).
const HEAT_TIMES: usize = 240;
const HEAT_CELLS: usize = 160;

/// A perceptually ordered colour scale (viridis, at five stops) at `u ∈ [0, 1]`.
fn viridis(u: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] =
        [(68.0, 1.0, 84.0), (59.0, 82.0, 139.0), (33.0, 145.0, 140.0), (94.0, 201.0, 98.0), (253.0, 231.0, 37.0)];
    let u = if u.is_finite() { u.clamp(0.0, 1.0) } else { 0.0 };
    let at = u * (STOPS.len() - 1) as f64;
    let i = (at.floor() as usize).min(STOPS.len() - 2);
    let f = at - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + f * (y - x)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Groups `n` items into at most `max` consecutive runs: the bounds of each.
fn groups(n: usize, max: usize) -> Vec<(usize, usize)> {
    let per = n.div_ceil(max).max(1);
    (0..n).step_by(per).map(|a| (a, (a + per).min(n))).collect()
}

/// Draws a 1-D density run: `rows` has the run's `columns` (`t`, `mass`,
/// `x_mean`, …, `free_energy`); `gibbs`, when given, is `exp(−E/T)/Z` at the
/// cell centres.
pub fn density_flow_svg(
    info: &PlotInfo,
    columns: &[String],
    rows: &[Vec<f64>],
    density: &Density,
    gibbs: Option<&[f64]>,
) -> Result<String, PlotError> {
    let data = Table::new(info, columns, rows)?;
    let t = data.column("t")?;
    if density.axes.len() == 2 {
        return snapshots_svg(info, &data, &t, density);
    }
    let axis = density.axes.first().ok_or(PlotError::Empty("the density has no grid"))?;
    let var = &axis.name;
    let frames = density.times.len();
    if frames == 0 {
        return Err(PlotError::Empty("no density"));
    }
    let cells = axis.centres.len();
    // The heat map: times (between midpoints of output times) × cells, averaged in blocks.
    let times = &density.times;
    let t_edge = |k: usize| -> f64 {
        match (k, frames) {
            (_, 1) => times[0] + if k == 0 { -0.5 } else { 0.5 },
            (0, _) => times[0],
            (k, n) if k >= n => times[n - 1],
            (k, _) => 0.5 * (times[k - 1] + times[k]),
        }
    };
    let (tg, xg) = (groups(frames, HEAT_TIMES), groups(cells, HEAT_CELLS));
    let mut blocks = Vec::with_capacity(tg.len() * xg.len());
    for &(a, b) in &tg {
        for &(c, d) in &xg {
            let mut sum = 0.0;
            for k in a..b {
                sum += density.frame(k)[c..d].iter().sum::<f64>();
            }
            blocks.push((t_edge(a), t_edge(b), axis.edges[c], axis.edges[d], sum / ((b - a) * (d - c)) as f64));
        }
    }
    let top = blocks.iter().map(|b| b.4).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let heat: Vec<_> = blocks
        .into_iter()
        .map(|(x0, x1, y0, y1, v)| (x0, x1, y0, y1, viridis(v / top.max(f64::MIN_POSITIVE))))
        .collect();
    let mean = pairs(&format!("{var}_mean"), &t, &data.column(&format!("{var}_mean"))?)?;
    let white = RGBColor(255, 255, 255);
    let mut map = Panel::new(
        &format!("density of {var} over time (dark 0, yellow {})", super::compact(top, 3)),
        "t",
        var,
        vec![
            Mark::Cells(heat),
            Mark::Line { label: Some(format!("{var}_mean")), points: mean, color: white, width: 1 },
        ],
    );
    let (x_lo, x_hi) = (axis.edges[0], axis.edges[cells]);
    map.ranges = Some((t_edge(0)..t_edge(frames), x_lo..x_hi));

    let free = pairs("free_energy", &t, &data.column("free_energy")?)?;
    let free_panel = Panel::new("free energy ∫Eρ + T∫ρ log ρ", "t", "free energy", vec![Mark::line(None, free, 0)]);

    let line = |k: usize| axis.centres.iter().copied().zip(density.frame(k).iter().copied()).collect::<Vec<_>>();
    let mut marks = vec![
        Mark::line(Some(&format!("t = {}", super::compact(times[0], 4))), line(0), 2),
        Mark::line(Some(&format!("t = {}", super::compact(times[frames - 1], 4))), line(frames - 1), 0),
    ];
    if let Some(g) = gibbs.filter(|g| g.len() == cells && g.iter().all(|v| v.is_finite())) {
        marks.push(Mark::line(Some("exp(−E/T)/Z"), axis.centres.iter().copied().zip(g.iter().copied()).collect(), 1));
    }
    let snapshots = Panel { y_from_zero: true, ..Panel::new(&format!("density of {var}"), var, "density", marks) };

    let mut title = format!("{} — Fokker–Planck on {cells} cells", info.model);
    if let Some(temp) = info.temperature {
        title.push_str(&format!(", T = {temp}"));
    }
    compose(&title, &[], &[map, free_panel, snapshots])
}

/// A 2-D density: snapshots over `(x, y)` at four output times (the first, the
/// last and two between), each on its own colour scale, and the free energy.
fn snapshots_svg(info: &PlotInfo, data: &Table<'_>, t: &[f64], density: &Density) -> Result<String, PlotError> {
    let (ax, ay) = (&density.axes[0], &density.axes[1]);
    let (nx, ny) = (ax.centres.len(), ay.centres.len());
    let frames = density.times.len();
    if frames == 0 {
        return Err(PlotError::Empty("no density"));
    }
    let mut picks: Vec<usize> = (0..4).map(|k| k * (frames - 1) / 3).collect();
    picks.dedup();
    let mut panels = vec![];
    let (xg, yg) = (groups(nx, HEAT_CELLS / 2), groups(ny, HEAT_CELLS / 2));
    for k in picks {
        let frame = density.frame(k);
        let mut blocks = Vec::with_capacity(xg.len() * yg.len());
        for &(a, b) in &xg {
            for &(c, d) in &yg {
                let sum: f64 = (a..b).map(|i| frame[i * ny + c..i * ny + d].iter().sum::<f64>()).sum();
                blocks.push((ax.edges[a], ax.edges[b], ay.edges[c], ay.edges[d], sum / ((b - a) * (d - c)) as f64));
            }
        }
        let top = blocks.iter().map(|b| b.4).filter(|v| v.is_finite()).fold(0.0, f64::max);
        let heat = blocks
            .into_iter()
            .map(|(x0, x1, y0, y1, v)| (x0, x1, y0, y1, viridis(v / top.max(f64::MIN_POSITIVE))))
            .collect();
        let caption = format!(
            "density at t = {} (dark 0, yellow {})",
            super::compact(density.times[k], 4),
            super::compact(top, 3)
        );
        let mut panel = Panel::new(&caption, &ax.name, &ay.name, vec![Mark::Cells(heat)]);
        panel.ranges = Some((ax.edges[0]..ax.edges[nx], ay.edges[0]..ay.edges[ny]));
        panels.push(panel);
    }
    let free = pairs("free_energy", t, &data.column("free_energy")?)?;
    panels.push(Panel::new("free energy ∫Eρ + T∫ρ log ρ", "t", "free energy", vec![Mark::line(None, free, 0)]));
    let mut title = format!("{} — Fokker–Planck on {nx} × {ny} cells", info.model);
    if let Some(temp) = info.temperature {
        title.push_str(&format!(", T = {temp}"));
    }
    compose(&title, &[], &panels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cover_every_item_once() {
        for (n, max) in [(10, 3), (400, 160), (5, 10), (1, 1)] {
            let g = groups(n, max);
            assert!(g.len() <= max);
            assert_eq!(g[0].0, 0);
            assert_eq!(g.last().unwrap().1, n);
            assert!(g.windows(2).all(|w| w[0].1 == w[1].0));
        }
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
    }
}
