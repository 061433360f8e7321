//! The figure of an ensemble: the mean of each variable and of the energy against time
//! with a band of the 10–90% quantiles over the particles (or mean ± one standard deviation
//! when the run kept no quantiles), and a histogram of the final particles with the Gibbs
//! density over it.

use super::density::{density_histogram, gibbs_density};
use super::panel::{color, Mark, Panel};
use super::render::compose;
use super::series::{finite_range, thin, Table};
use super::{PlotError, PlotInfo};
use crate::drive::Bands;
use crate::ModelKind;

/// Draws an ensemble from its rows alone: mean ± one standard deviation of up to four
/// variables and of the energy against time, and a density histogram of the first variable
/// over the final particles (`finals[p][k]` is variable `k` of particle `p`; the panel is
/// left out when `finals` is empty). For a one-dimensional energy model with a positive
/// temperature `T`, the Gibbs density `exp(−E(x)/T)/Z` of `energy` is drawn over the
/// histogram.
pub fn ensemble_svg(
    info: &PlotInfo,
    columns: &[String],
    rows: &[Vec<f64>],
    finals: &[Vec<f64>],
    energy: Option<&dyn Fn(f64) -> f64>,
) -> Result<String, PlotError> {
    ensemble_svg_with_bands(info, columns, rows, finals, energy, None)
}

/// As [`ensemble_svg`], with the bands drawn from the quantiles the run kept
/// (`Summary::bands`): a band never leaves the range of the particles' values,
/// as mean ± std does for a skewed or two-peaked distribution.
pub fn ensemble_svg_with_bands(
    info: &PlotInfo,
    columns: &[String],
    rows: &[Vec<f64>],
    finals: &[Vec<f64>],
    energy: Option<&dyn Fn(f64) -> f64>,
    bands: Option<&Bands>,
) -> Result<String, PlotError> {
    let data = Table::new(info, columns, rows)?;
    let t = data.column("t")?;
    let mut panels = Vec::new();
    let mut names: Vec<&str> = info.vars.iter().take(4).map(String::as_str).collect();
    names.push("energy");
    for (k, name) in names.into_iter().enumerate() {
        let mean = data.column(&format!("{name}_mean"))?;
        let quantiles = bands.and_then(|b| {
            // The column's index among the trajectory's columns without `t`.
            let c = columns.iter().position(|c| *c == format!("{name}_mean"))?.checked_sub(1)? / 2;
            let rows: Vec<(f64, f64)> = b.rows.iter().map(|r| r.get(c).copied()).collect::<Option<_>>()?;
            (rows.len() == t.len()).then_some((b, rows))
        });
        let (title, label, line, band) = match quantiles {
            Some((b, q)) => {
                let (lo, hi) = b.quantiles;
                let (line, band) = quantile_band(name, &t, &mean, &q)?;
                let pct = |x: f64| format!("{}%", (100.0 * x).round());
                let label = format!("{}–{} of {} particles", pct(lo), pct(hi), b.particles);
                (format!("{name}: mean and {}–{} band", pct(lo), pct(hi)), label, line, band)
            }
            None => {
                let std = data.column(&format!("{name}_std"))?;
                let (line, band) = band(name, &t, &mean, &std)?;
                (format!("{name}: mean ± std"), format!("{name}_mean ± {name}_std"), line, band)
            }
        };
        let positive = band.iter().all(|&(_, y)| y > 0.0);
        let mut panel = Panel::new(
            &title,
            "t",
            name,
            vec![
                Mark::Band { label, polygon: band, color: color(k) },
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

/// The mean line and the closed polygon between the quantiles `q[k] = (lo, hi)`.
#[allow(clippy::type_complexity)]
fn quantile_band(
    name: &str,
    t: &[f64],
    mean: &[f64],
    q: &[(f64, f64)],
) -> Result<(Vec<(f64, f64)>, Vec<(f64, f64)>), PlotError> {
    let rows: Vec<(f64, f64, f64, f64)> = (0..t.len())
        .map(|k| (t[k], mean[k], q[k].0, q[k].1))
        .filter(|(a, b, c, d)| a.is_finite() && b.is_finite() && c.is_finite() && d.is_finite())
        .collect();
    if rows.is_empty() {
        return Err(PlotError::NonFinite(format!("{name}_mean")));
    }
    let thinned = thin(rows.iter().map(|&(t, m, lo, hi)| (t, m, lo, hi)).collect());
    let line = thinned.iter().map(|&(t, m, _, _)| (t, m)).collect();
    let upper = thinned.iter().map(|&(t, _, _, hi)| (t, hi));
    let lower = thinned.iter().rev().map(|&(t, _, lo, _)| (t, lo));
    Ok((line, upper.chain(lower).collect()))
}
