//! Parameters from data (`lagc fit`): Levenberg–Marquardt on the weighted
//! residuals between a run and observations, with the run's forward
//! sensitivities as the exact Jacobian (docs/numerics.md §Fitting).
//!
//! Observations are taken at rows of the run: every observation time must be
//! a step of the run's grid `t0 + k·dt` (the run writes every step and the
//! rows at those times are compared); there is no interpolation.

use crate::drive::{RowSink, RunConfig, RunError, SinkError};
use crate::sensitivity::column;
use crate::sym::fmt_float;
use crate::Compiled;

/// Observed values: times, the run columns observed, and per time one value
/// per column (`None`: missing).
#[derive(Clone, Debug, PartialEq)]
pub struct Observations {
    pub times: Vec<f64>,
    pub columns: Vec<String>,
    pub values: Vec<Vec<Option<f64>>>,
}

/// A parameter to fit, in linear or log space (`log:m`, for one that must stay positive).
#[derive(Clone, Debug, PartialEq)]
pub struct Unknown {
    pub name: String,
    pub log: bool,
}

impl Unknown {
    /// Reads `m` or `log:m`.
    pub fn parse(s: &str) -> Unknown {
        match s.strip_prefix("log:") {
            Some(n) => Unknown { name: n.to_string(), log: true },
            None => Unknown { name: s.to_string(), log: false },
        }
    }
}

/// The result of a fit: each parameter's value and standard error, the
/// weighted residual norm and the iterations taken.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    pub params: Vec<(String, f64, f64)>,
    pub residual_norm: f64,
    pub iterations: usize,
    /// The number of residuals (observed cells).
    pub residuals: usize,
}

/// Why a fit failed.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("{0}")]
    Input(String),
    #[error(
        "no convergence after {iterations} iterations: residual norm {} (last relative change {}) at {}; \
         start nearer with --set, fit fewer params, or check that the model can follow the data \
         (a param that keeps growing has no finite best value)",
        fmt_float(*.residual), fmt_float(*.change), values_text(.values)
    )]
    NoConvergence { iterations: usize, residual: f64, change: f64, values: Vec<(String, f64)> },
    #[error(
        "the residuals at the starting values are not finite (sum of squares {}); \
         start elsewhere with --set, or check the data's scale",
        fmt_float(*.0)
    )]
    NotFinite(f64),
    #[error("the run at the starting values failed: {0}")]
    Run(RunError),
}

/// `a = 1, b = 2`: the params' values where a fit stopped.
fn values_text(values: &[(String, f64)]) -> String {
    values.iter().map(|(n, v)| format!("{n} = {}", fmt_float(*v))).collect::<Vec<_>>().join(", ")
}

/// The most Levenberg–Marquardt iterations.
pub const MAX_ITERATIONS: usize = 200;

/// Converged when the residual's sum of squares changes by less than this fraction.
const TOLERANCE: f64 = 1e-10;

/// Rows of a run kept at the observation times.
struct AtTimes<'a> {
    times: &'a [f64],
    tol: f64,
    next: usize,
    rows: Vec<Vec<f64>>,
    missed: Option<f64>,
}

impl RowSink for AtTimes<'_> {
    fn row(&mut self, values: &[f64]) -> Result<(), SinkError> {
        let t = values[0];
        while self.next < self.times.len() && self.times[self.next] < t - self.tol {
            self.missed.get_or_insert(self.times[self.next]);
            self.next += 1;
        }
        if self.next < self.times.len() && (self.times[self.next] - t).abs() <= self.tol {
            self.rows.push(values.to_vec());
            self.next += 1;
        }
        Ok(())
    }
}

/// The weighted residuals and their Jacobian (by the fit's coordinates: the
/// value, or its log) at the parameters' current values.
struct Evaluation {
    r: Vec<f64>,
    j: Vec<f64>,
}

/// Fits `unknowns` of `c` (whose Jacobians are derived) to `obs` with
/// `weights` per observed column. `cfg` is the run's; every observation time
/// must be one of its steps. The fitted values are left in `c.model`.
pub fn fit(
    c: &mut Compiled,
    cfg: &RunConfig,
    obs: &Observations,
    unknowns: &[Unknown],
    weights: &[f64],
) -> Result<Fit, FitError> {
    let index: Vec<usize> = unknowns
        .iter()
        .map(|u| {
            c.model.params.iter().position(|p| p.name == u.name).ok_or_else(|| {
                let known: Vec<&str> = c.model.params.iter().map(|p| p.name.as_str()).collect();
                FitError::Input(format!(
                    "--params: `{}` is not a param of the model (params: {})",
                    u.name,
                    known.join(", ")
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    for (u, &i) in unknowns.iter().zip(&index) {
        if u.log && c.model.params[i].value <= 0.0 {
            return Err(FitError::Input(format!(
                "--params log:{}: its starting value {} is not positive; --set it to a positive start",
                u.name,
                fmt_float(c.model.params[i].value)
            )));
        }
    }
    let names: Vec<String> = unknowns.iter().map(|u| u.name.clone()).collect();
    let cfg = RunConfig { every: 1, ..cfg.clone() };
    let plan = c.plan_sensitivities(&cfg, &names).map_err(|e| FitError::Input(e.to_string()))?;
    let col = |name: &str| plan.columns.iter().position(|c| c == name);
    let d = plan.dim();
    let state = &plan.columns[1..=d];
    let mut observed = Vec::new();
    for name in &obs.columns {
        let x = col(name).ok_or_else(|| {
            FitError::Input(format!(
                "--data: `{name}` is not a column of the run (columns: {})",
                plan.columns.join(", ")
            ))
        })?;
        if !state.contains(name) {
            return Err(FitError::Input(format!(
                "--data: `{name}` is not a state column; fit observes the state ({})",
                state.join(", ")
            )));
        }
        let sens: Vec<usize> = names.iter().map(|p| col(&column(name, p)).expect("a sensitivity column")).collect();
        observed.push((x, sens));
    }
    if let Some(&last) = obs.times.last() {
        if last > cfg.t_end + 1e-9 * cfg.dt {
            return Err(FitError::Input(format!(
                "--data: the observation at t = {} is after the run's end t_end = {}",
                fmt_float(last),
                fmt_float(cfg.t_end)
            )));
        }
    }
    let k = unknowns.len();
    let coords = |c: &Compiled| -> Vec<f64> {
        unknowns
            .iter()
            .zip(&index)
            .map(|(u, &i)| if u.log { c.model.params[i].value.ln() } else { c.model.params[i].value })
            .collect()
    };
    let set = |c: &mut Compiled, x: &[f64]| {
        for ((u, &i), &v) in unknowns.iter().zip(&index).zip(x) {
            c.model.params[i].value = if u.log { v.exp() } else { v };
        }
    };
    let evaluate = |c: &Compiled| -> Result<Evaluation, FitError> {
        let mut sink = AtTimes { times: &obs.times, tol: 1e-9 * cfg.dt, next: 0, rows: vec![], missed: None };
        c.run_sensitivities(&cfg, &names, &mut sink).map_err(FitError::Run)?;
        if let Some(t) = sink.missed.or_else(|| obs.times.get(sink.rows.len()).copied()) {
            return Err(FitError::Input(format!(
                "--data: the observation time {} is not a step of the run (t0 = {}, dt = {}); \
                 observations are compared with the rows at the same times",
                fmt_float(t),
                fmt_float(cfg.t0),
                fmt_float(cfg.dt)
            )));
        }
        let mut e = Evaluation { r: vec![], j: vec![] };
        for (row, values) in sink.rows.iter().zip(&obs.values) {
            for (((x, sens), v), w) in observed.iter().zip(values).zip(weights) {
                let Some(v) = v else { continue };
                e.r.push(w * (row[*x] - v));
                for &s in sens {
                    e.j.push(w * row[s]);
                }
            }
        }
        Ok(e)
    };
    let mut x = coords(c);
    let mut e = evaluate(c)?;
    // Log coordinates: ∂r/∂log p = p ∂r/∂p.
    let scale_log = |e: &mut Evaluation, x: &[f64]| {
        for row in e.j.chunks_mut(k) {
            for (c, u) in unknowns.iter().enumerate() {
                if u.log {
                    row[c] *= x[c].exp();
                }
            }
        }
    };
    scale_log(&mut e, &x);
    let m = e.r.len();
    if m <= k {
        return Err(FitError::Input(format!(
            "--data has {m} observed values, fewer than needed to fit {k} params and their errors"
        )));
    }
    let sum2 = |r: &[f64]| r.iter().map(|v| v * v).sum::<f64>();
    let mut cost = sum2(&e.r);
    if !cost.is_finite() {
        return Err(FitError::NotFinite(cost));
    }
    let mut lambda = 1e-3;
    let mut change = f64::INFINITY;
    for iteration in 1..=MAX_ITERATIONS {
        let (jtj, jtr) = normal(&e, k);
        let mut accepted = false;
        while lambda < 1e16 {
            let mut a = jtj.clone();
            for i in 0..k {
                a[i * k + i] += lambda * jtj[i * k + i].max(1e-300);
            }
            let mut step: Vec<f64> = jtr.iter().map(|g| -g).collect();
            if crate::integrate::linalg::solve_spd_or_lu(&mut a, &mut step, k).is_err() {
                lambda *= 10.0;
                continue;
            }
            let trial: Vec<f64> = x.iter().zip(&step).map(|(a, b)| a + b).collect();
            set(c, &trial);
            match evaluate(c) {
                Ok(mut t) if sum2(&t.r) <= cost => {
                    scale_log(&mut t, &trial);
                    let new = sum2(&t.r);
                    change = (cost - new) / cost.max(f64::MIN_POSITIVE);
                    let small_step = step.iter().zip(&trial).all(|(s, v)| s.abs() <= 1e-12 * (1.0 + v.abs()));
                    x = trial;
                    e = t;
                    cost = new;
                    lambda = (lambda / 10.0).max(1e-12);
                    accepted = true;
                    if change < TOLERANCE || small_step {
                        return Ok(finish(c, unknowns, &index, &x, &e, k, iteration));
                    }
                    break;
                }
                Err(FitError::Input(m)) => return Err(FitError::Input(m)),
                _ => lambda *= 10.0,
            }
        }
        if !accepted {
            // No step along the gradient lowers the residual: a minimum to rounding.
            set(c, &x);
            return Ok(finish(c, unknowns, &index, &x, &e, k, iteration));
        }
    }
    set(c, &x);
    let values = unknowns.iter().zip(&index).map(|(u, &i)| (u.name.clone(), c.model.params[i].value)).collect();
    Err(FitError::NoConvergence { iterations: MAX_ITERATIONS, residual: cost.sqrt(), change, values })
}

/// `JᵀJ` and `Jᵀr`.
fn normal(e: &Evaluation, k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut jtj = vec![0.0; k * k];
    let mut jtr = vec![0.0; k];
    for (row, r) in e.j.chunks(k).zip(&e.r) {
        for a in 0..k {
            jtr[a] += row[a] * r;
            for b in 0..k {
                jtj[a * k + b] += row[a] * row[b];
            }
        }
    }
    (jtj, jtr)
}

/// The estimates with their standard errors, `√diag((JᵀJ)⁻¹ s²)` with
/// `s² = |r|²/(m − k)`, by the delta method for log coordinates.
fn finish(
    c: &mut Compiled,
    unknowns: &[Unknown],
    index: &[usize],
    x: &[f64],
    e: &Evaluation,
    k: usize,
    iterations: usize,
) -> Fit {
    for ((u, &i), &v) in unknowns.iter().zip(index).zip(x) {
        c.model.params[i].value = if u.log { v.exp() } else { v };
    }
    let m = e.r.len();
    let cost: f64 = e.r.iter().map(|v| v * v).sum();
    let s2 = cost / (m - k) as f64;
    let (jtj, _) = normal(e, k);
    let variance: Vec<f64> = match crate::integrate::linalg::factor(&jtj, k) {
        Ok(f) => (0..k)
            .map(|a| {
                let mut unit = vec![0.0; k];
                unit[a] = 1.0;
                f.solve(&mut unit);
                unit[a] * s2
            })
            .collect(),
        Err(_) => vec![f64::INFINITY; k],
    };
    let params = unknowns
        .iter()
        .zip(index)
        .zip(&variance)
        .map(|((u, &i), v)| {
            let value = c.model.params[i].value;
            let se = v.sqrt();
            (u.name.clone(), value, if u.log { value * se } else { se })
        })
        .collect();
    Fit { params, residual_norm: cost.sqrt(), iterations, residuals: m }
}
