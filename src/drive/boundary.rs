//! A boundary-value solve: the model's Lagrangian point (or, for an energy
//! model, the geodesic Lagrangian of its metric, [`Geodesic`]) through
//! [`crate::integrate::stationary_action`], the discrete action, and the
//! solution's rows written as a run writes them (docs/numerics.md
//! §Boundary-value problems).

use super::rows::{Rows, StopReason};
use super::systems::PointSystem;
use super::{initial_state, show_state, Control, Summary};
use crate::backend::{Kernels, Work};
use crate::integrate::{self, BoundaryError, Cause, Endpoints, LagrangianPoint, LagrangianSystem, Observer};
use crate::model::{Model, ModelKind};
use crate::plan::{Kernel, Plan};

/// What a boundary-value problem asks: the span, the steps, `q(t_end)`, and a
/// starting path (all `steps + 1` nodes; the straight line when `None`).
#[derive(Clone, Debug)]
pub struct SolveConfig {
    pub t0: f64,
    pub t_end: f64,
    pub steps: usize,
    pub target: Vec<f64>,
    pub guess: Option<Vec<f64>>,
}

/// What a solve reports besides its rows.
#[derive(Clone, Debug, Default)]
pub struct SolveSummary {
    /// The discrete action `Σ h L` of the solution.
    pub action: f64,
    /// Newton updates taken.
    pub iterations: usize,
    /// The residual's norm at the solution and its scale.
    pub residual: f64,
    pub scale: f64,
    /// The rows' summary (the drift of `H` of a conservative model).
    pub rows: Summary,
}

/// A solve that did not end well.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// No solution: the numbers say why, with the state named by column when
    /// an evaluation failed.
    #[error("{error}{}", if .state.is_empty() { String::new() } else { format!("; state: {}", show_state(.state)) })]
    Numerical { error: BoundaryError, state: Vec<(String, f64)> },
    /// The sink refused a row, or the caller interrupted the writing.
    #[error("{0}")]
    Output(String),
    /// The kernels lack what the problem needs: an energy model's geodesic
    /// needs [`Kernel::MetricDerivatives`].
    #[error("{0}")]
    Kernels(String),
}

/// Solves the boundary-value problem of a model from its `init` positions to
/// `cfg.target` and writes the solution's rows. A Lagrangian model needs the
/// kernels of the `variational` plan (the Lagrangian point and the row), an
/// energy model those of a plan with its metric and the metric's derivatives
/// ([`Kernel::MetricDerivatives`], for its geodesic).
pub fn solve(
    model: &Model,
    plan: &Plan,
    k: &Kernels,
    cfg: &SolveConfig,
    sink: &mut dyn super::RowSink,
    control: Control<'_>,
) -> Result<SolveSummary, SolveError> {
    let n = k.n;
    if model.kind == ModelKind::Energy && !k.has(Kernel::MetricDerivatives) {
        return Err(SolveError::Kernels(
            "the geodesic needs the metric's derivatives: derive them (`Compiled::derive_metric_derivatives`) \
             and add the kernel `metric_derivatives` to the plan"
                .into(),
        ));
    }
    let start = initial_state(model)[..n].to_vec();
    let ends = Endpoints { t0: cfg.t0, t_end: cfg.t_end, steps: cfg.steps, start: &start, end: &cfg.target };
    let solution = match model.kind {
        ModelKind::Lagrangian => {
            integrate::stationary_action(&mut PointSystem { k, work: Work::default() }, &ends, cfg.guess.as_deref())
        }
        ModelKind::Energy => integrate::stationary_action(&mut Geodesic::new(k), &ends, cfg.guess.as_deref()),
    }
    .map_err(|error| {
        let state = match &error {
            BoundaryError::Failed { state, .. } => {
                let names = velocity_names(plan, n);
                names.into_iter().zip(state.iter().copied()).collect()
            }
            _ => vec![],
        };
        SolveError::Numerical { error, state }
    })?;
    let mut point = LagrangianPoint::new(n);
    let mut y = vec![0.0; 2 * n];
    let action = match model.kind {
        // L = v·L_v − H at each segment's midpoint.
        ModelKind::Lagrangian => {
            let energy = if k.has(Kernel::Energy) { Kernel::Energy } else { Kernel::Row };
            let (mut work, mut out) = (Work::default(), vec![0.0; k.outputs(energy)]);
            integrate::discrete_action(&ends, n, &solution.q, |t, q, v| {
                if k.point(t, q, v, &mut point, &mut work).is_err() {
                    return f64::NAN;
                }
                y[..n].copy_from_slice(q);
                y[n..].copy_from_slice(v);
                k.eval_at(energy, t, &y, &mut out, &mut work);
                v.iter().zip(&point.lv).map(|(a, b)| a * b).sum::<f64>() - out[0]
            })
        }
        // L = ½ v·g v.
        ModelKind::Energy => {
            let mut sys = Geodesic::new(k);
            integrate::discrete_action(&ends, n, &solution.q, |t, q, v| {
                if sys.eval(t, q, v, &mut point).is_err() {
                    return f64::NAN;
                }
                0.5 * v.iter().zip(&point.lv).map(|(a, b)| a * b).sum::<f64>()
            })
        }
    };
    let mut rows = Rows::new(plan, k, sink, control, false);
    // An energy model's rows are its state alone.
    let width = if model.kind == ModelKind::Energy { n } else { 2 * n };
    for node in 0..=cfg.steps {
        y[..n].copy_from_slice(&solution.q[node * n..(node + 1) * n]);
        y[n..].copy_from_slice(&solution.v[node * n..(node + 1) * n]);
        if rows.row(ends.time(node), &y[..width]).is_err() {
            return Err(SolveError::Output(match rows.stop.take() {
                Some(StopReason::Output(e)) => e.0,
                _ => "interrupted while writing the rows".into(),
            }));
        }
    }
    Ok(SolveSummary {
        action,
        iterations: solution.iterations,
        residual: solution.residual,
        scale: solution.scale,
        rows: rows.summary,
    })
}

/// The names of a failed evaluation's state `(q, v)`: the columns of a
/// Lagrangian model's rows, or an energy model's variables and their
/// velocities `θ'`.
fn velocity_names(plan: &Plan, n: usize) -> Vec<String> {
    let vars = &plan.trajectory_columns[1..=n];
    match plan.kind {
        ModelKind::Lagrangian => plan.trajectory_columns[1..=2 * n].to_vec(),
        ModelKind::Energy => vars.iter().cloned().chain(vars.iter().map(|v| format!("{v}'"))).collect(),
    }
}

/// The geodesic Lagrangian `L = ½ v·g(θ) v` of an energy model's metric
/// (docs/numerics.md §Geodesics), with the metric's derivatives `∂g/∂θ` and
/// `∂²g/∂θ∂θ` from the kernel [`Kernel::MetricDerivatives`] (derived
/// symbolically), so that `L_q`, `L_vq` and `L_qq` are exact.
pub(super) struct Geodesic<'k> {
    k: &'k Kernels,
    work: Work,
    /// `g` at the point, row-major.
    g: Vec<f64>,
    /// `∂g/∂θ_k` (`k`-major, each row-major in `(i, j)`), then `∂²g/∂θ_k∂θ_l`.
    derivatives: Vec<f64>,
}

impl<'k> Geodesic<'k> {
    pub(super) fn new(k: &'k Kernels) -> Self {
        let n = k.n;
        Geodesic { k, work: Work::default(), g: vec![0.0; n * n], derivatives: vec![0.0; n * n * n * (1 + n)] }
    }
}

impl LagrangianSystem for Geodesic<'_> {
    fn n(&self) -> usize {
        self.k.n
    }

    fn eval(&mut self, t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
        let n = self.k.n;
        let nn = n * n;
        let k = self.k;
        k.eval_at(Kernel::Metric, t, q, &mut self.g, &mut self.work);
        k.eval_at(Kernel::MetricDerivatives, t, q, &mut self.derivatives, &mut self.work);
        let (dg, d2g) = self.derivatives.split_at(n * nn);
        let quad = |m: &[f64]| -> f64 { (0..n).map(|i| (0..n).map(|j| v[i] * m[i * n + j] * v[j]).sum::<f64>()).sum() };
        for i in 0..n {
            out.lv[i] = (0..n).map(|j| self.g[i * n + j] * v[j]).sum();
            out.lq[i] = 0.5 * quad(&dg[i * nn..(i + 1) * nn]);
            for j in 0..n {
                out.lvv[i * n + j] = self.g[i * n + j];
                // ∂(g v)_i/∂θ_j.
                out.lvq[i * n + j] = (0..n).map(|m| dg[j * nn + i * n + m] * v[m]).sum();
                out.lqq[i * n + j] = 0.5 * quad(&d2g[(i * n + j) * nn..(i * n + j + 1) * nn]);
            }
        }
        let all = out.lv.iter().chain(&out.lq).chain(&out.lvv).chain(&out.lvq).chain(&out.lqq);
        if all.into_iter().any(|x| !x.is_finite()) {
            return Err(Cause::NonFinite);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The geodesic point of the Fisher metric `diag(1/σ², 2/σ²)` against its derivatives by
    /// hand: `L = (v_μ² + 2v_σ²)/(2σ²)`.
    #[test]
    fn the_geodesic_point_of_the_fisher_metric() {
        let src = "state mu, sigma\nenergy = mu^2 + sigma^2\nmetric = diag(1/sigma^2, 2/sigma^2)\n";
        let mut c = crate::compile_for(src, "fisher", &[], Some(crate::Method::Euler)).unwrap();
        c.derive_metric_derivatives().unwrap();
        let mut plan = crate::plan::plan(&c.model, &c.equations, crate::Method::Euler, None).unwrap();
        plan.kernels.push(Kernel::MetricDerivatives);
        let k = Kernels::build_best(&c.model, &c.equations, &plan).unwrap();
        let (q, v) = ([0.3, 0.7], [1.5, -0.4]);
        let (s, w) = (q[1], v[0] * v[0] + 2.0 * v[1] * v[1]);
        let mut p = LagrangianPoint::new(2);
        Geodesic::new(&k).eval(0.0, &q, &v, &mut p).unwrap();
        let close =
            |a: &[f64], b: &[f64], tol: f64| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * y.abs().max(1.0));
        assert!(close(&p.lv, &[v[0] / (s * s), 2.0 * v[1] / (s * s)], 1e-15), "{:?}", p.lv);
        assert!(close(&p.lvv, &[1.0 / (s * s), 0.0, 0.0, 2.0 / (s * s)], 1e-15), "{:?}", p.lvv);
        assert!(close(&p.lq, &[0.0, -w / s.powi(3)], 1e-15), "{:?}", p.lq);
        let lvq = [0.0, -2.0 * v[0] / s.powi(3), 0.0, -4.0 * v[1] / s.powi(3)];
        assert!(close(&p.lvq, &lvq, 1e-15), "{:?}", p.lvq);
        assert!(close(&p.lqq, &[0.0, 0.0, 0.0, 3.0 * w / s.powi(4)], 1e-15), "{:?}", p.lqq);
    }
}
