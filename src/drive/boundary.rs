//! A boundary-value solve: the model's Lagrangian point through
//! [`crate::integrate::stationary_action`], the discrete action, and the
//! solution's rows written as a run writes them (docs/numerics.md
//! §Boundary-value problems).

use super::rows::{Rows, StopReason};
use super::systems::PointSystem;
use super::{initial_state, show_state, Control, Summary};
use crate::backend::{Kernels, Work};
use crate::integrate::{self, BoundaryError, Endpoints, LagrangianPoint, Observer};
use crate::model::Model;
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
}

/// Solves the boundary-value problem of a Lagrangian model from its `init`
/// positions to `cfg.target` with the kernels of `plan` (the `variational`
/// plan: the Lagrangian point and the row), and writes the solution's rows.
pub fn solve(
    model: &Model,
    plan: &Plan,
    k: &Kernels,
    cfg: &SolveConfig,
    sink: &mut dyn super::RowSink,
    control: Control<'_>,
) -> Result<SolveSummary, SolveError> {
    let n = k.n;
    let start = initial_state(model)[..n].to_vec();
    let ends = Endpoints { t0: cfg.t0, t_end: cfg.t_end, steps: cfg.steps, start: &start, end: &cfg.target };
    let mut sys = PointSystem { k, work: Work::default() };
    let solution = integrate::stationary_action(&mut sys, &ends, cfg.guess.as_deref()).map_err(|error| {
        let state = match &error {
            BoundaryError::Failed { state, .. } => {
                plan.trajectory_columns[1..=state.len()].iter().cloned().zip(state.iter().copied()).collect()
            }
            _ => vec![],
        };
        SolveError::Numerical { error, state }
    })?;
    // L = v·L_v − H at each segment's midpoint.
    let energy = if k.has(Kernel::Energy) { Kernel::Energy } else { Kernel::Row };
    let mut point = LagrangianPoint::new(n);
    let (mut work, mut out, mut y) = (Work::default(), vec![0.0; k.outputs(energy)], vec![0.0; 2 * n]);
    let action = integrate::discrete_action(&ends, n, &solution.q, |t, q, v| {
        if k.point(t, q, v, &mut point, &mut work).is_err() {
            return f64::NAN;
        }
        y[..n].copy_from_slice(q);
        y[n..].copy_from_slice(v);
        k.eval_at(energy, t, &y, &mut out, &mut work);
        v.iter().zip(&point.lv).map(|(a, b)| a * b).sum::<f64>() - out[0]
    });
    let mut rows = Rows::new(plan, k, sink, control, false);
    for node in 0..=cfg.steps {
        y[..n].copy_from_slice(&solution.q[node * n..(node + 1) * n]);
        y[n..].copy_from_slice(&solution.v[node * n..(node + 1) * n]);
        if rows.row(ends.time(node), &y).is_err() {
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
