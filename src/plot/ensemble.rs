//! The figure of an ensemble: bands of mean ± one standard deviation against time, and a
//! histogram of the final particles with the Gibbs density over it.

use super::density::{density_histogram, gibbs_density};
use super::panel::{color, Mark, Panel};
use super::render::compose;
use super::series::{finite_range, thin, Table};
use super::{PlotError, PlotInfo};
use crate::ModelKind;

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
    compose(&title, &[], &panels)
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
