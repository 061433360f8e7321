//! Numerical integrators for equations of motion and gradient flows.
//!
//! Every method advances a state on a fixed output [`Grid`]: times are `t0 + k·dt`, never
//! accumulated, the last step is shortened so that the run ends exactly at `t_end`, and rows
//! go to an [`Observer`] at `t0`, at every `every`-th step and at the last step. Adaptive
//! methods (`dopri5`) choose their own steps and write the same grid by dense output.
//!
//! Models reach the integrators through three small traits: [`OdeSystem`] for a first-order
//! system `y' = F(t, y)`, [`LagrangianSystem`] for the derivatives of a Lagrangian, and
//! [`GradientSystem`] for an energy with an optional metric. Adapters turn the latter two into
//! first-order systems ([`lagrangian_system`], [`gradient_flow_system`]) so that `rk4`, `euler`,
//! `dopri5` and `midpoint` run them.
//!
//! A failure never panics: it returns a [`Failure`] with the time and the last good state
//! (the state at the start of the step that failed), and the [`Cause`].

mod banded;
mod boundary;
mod dopri5;
mod explicit;
pub mod fokker_planck;
mod gradient;
mod implicit;
mod lagrangian;
mod langevin;
pub mod linalg;
pub mod symband;
mod variational;
mod verlet;

pub use self::banded::{Banded, SingularAt};
pub use self::boundary::{discrete_action, stationary_action, BoundaryError, Endpoints, Trajectory};
pub use self::dopri5::{dopri5, dopri5_controlled};
pub use self::explicit::{euler, rk4};
pub use self::gradient::{gradient_descent, gradient_flow_system, minimizing_movement, GradientFlow};
pub use self::implicit::{canonical_midpoint, midpoint};
pub use self::lagrangian::{lagrangian_system, FirstOrderLagrangian};
pub use self::langevin::{baoab_step, em_block_step, em_noise, noise_scale, psd_sqrt, OuStep};
pub use self::variational::{banded_newton, variational, BANDED_MIN};
pub use self::verlet::verlet;

use crate::sym::fmt_float;
use std::fmt;

/// Why a step failed. Displayed in messages such as "singular mass matrix".
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// The mass matrix `L_vv` has non-finite entries, cannot be factorised, or its
    /// reciprocal condition number is below `1e-12`.
    SingularMassMatrix,
    /// The state or a derivative became infinite or NaN.
    NonFinite,
    /// Newton's method did not converge within its iteration limit.
    NewtonDiverged { iterations: usize },
    /// The adaptive step size fell below the resolution of the time axis.
    StepSizeUnderflow { h: f64 },
    /// The proximal (minimizing movement) step failed; the message says how.
    ProxFailed(String),
    /// The metric `g(θ)` has non-finite entries or cannot be factorised.
    SingularMetric,
    /// The Newton matrix of an implicit step cannot be factorised.
    SingularNewtonMatrix,
    /// The mass matrix (or the metric) is regular at the state a step started
    /// from but not at one of the step's stages; `rate` is the largest `|y'|`
    /// at that state. A large rate says that the stages overflowed.
    SingularInStep { matrix: &'static str, rate: f64 },
    /// The observer asked the run to stop (an interruption or an output error); the
    /// observer knows which.
    Stopped,
    /// The input cannot be integrated: an invalid grid, tolerance or state length.
    Invalid(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::SingularMassMatrix => write!(f, "singular mass matrix"),
            Cause::NonFinite => write!(f, "non-finite state (NaN or infinity)"),
            Cause::NewtonDiverged { iterations } => {
                write!(f, "Newton iteration did not converge in {iterations} iterations")
            }
            Cause::StepSizeUnderflow { h } => write!(f, "step size underflow (h = {h:e})"),
            Cause::ProxFailed(why) => write!(f, "proximal step failed: {why}"),
            Cause::SingularMetric => write!(f, "singular metric g(θ)"),
            Cause::SingularNewtonMatrix => write!(f, "singular Newton matrix in the implicit midpoint rule"),
            Cause::SingularInStep { matrix, rate } => write!(
                f,
                "singular {matrix} inside a step, though regular where the step began (|y'| reaches {} \
                 there, so the step's stages can overflow; take a smaller step or smaller parameter values)",
                fmt_float(*rate)
            ),
            Cause::Stopped => write!(f, "stopped"),
            Cause::Invalid(why) => write!(f, "{why}"),
        }
    }
}

/// A failed integration.
///
/// `t` and `state` are the last good point: the time and the full state (in the layout of the
/// observer rows) at the start of the step that failed. When the initial state itself is
/// unusable (non-finite, or an invalid grid) they are `t0` and the initial state as given.
#[derive(Debug, Clone)]
pub struct Failure {
    pub t: f64,
    pub state: Vec<f64>,
    pub cause: Cause,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at t = {}", self.cause, fmt_float(self.t))
    }
}

impl std::error::Error for Failure {}

/// A first-order system `y' = F(t, y)`.
pub trait OdeSystem {
    /// The length of the state `y`.
    fn dim(&self) -> usize;
    /// Writes `F(t, y)` into `dy`.
    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause>;
    /// Writes `∂F/∂y`, row-major `dim × dim`, into `jac`. Used by implicit midpoint.
    fn jacobian(&mut self, t: f64, y: &[f64], jac: &mut [f64]) -> Result<(), Cause>;
    /// Called by the explicit fixed-step methods before each step (at `t`), so
    /// that a system can change what its stages see, such as a minibatch.
    fn begin_step(&mut self, _t: f64) {}
}

impl<S: OdeSystem + ?Sized> OdeSystem for &mut S {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn begin_step(&mut self, t: f64) {
        (**self).begin_step(t)
    }
    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
        (**self).rhs(t, y, dy)
    }
    fn jacobian(&mut self, t: f64, y: &[f64], jac: &mut [f64]) -> Result<(), Cause> {
        (**self).jacobian(t, y, jac)
    }
}

/// The derivatives of a Lagrangian `L(q, v, t)` and of the non-conservative force
/// `F = −R_v + Q` at one point. Vectors have length `n`; matrices are `n × n`, row-major.
#[derive(Debug, Clone, Default)]
pub struct LagrangianPoint {
    /// `∂L/∂v`, the momenta.
    pub lv: Vec<f64>,
    /// `∂L/∂q`.
    pub lq: Vec<f64>,
    /// The non-conservative force `F = −R_v + Q`.
    pub force: Vec<f64>,
    /// `∂²L/∂v_i∂v_j`, the mass matrix.
    pub lvv: Vec<f64>,
    /// `[i*n + j] = ∂²L/∂v_i∂q_j`.
    pub lvq: Vec<f64>,
    /// `∂²L/∂q_i∂q_j`.
    pub lqq: Vec<f64>,
    /// `∂F_i/∂v_j`.
    pub force_v: Vec<f64>,
    /// `∂F_i/∂q_j`.
    pub force_q: Vec<f64>,
    /// `∂²L/∂v_i∂t`; zero for a Lagrangian without explicit time dependence. Only the
    /// first-order form ([`lagrangian_system`]) uses it.
    pub lvt: Vec<f64>,
}

impl LagrangianPoint {
    /// A point for `n` coordinates with every entry zero.
    pub fn new(n: usize) -> Self {
        LagrangianPoint {
            lv: vec![0.0; n],
            lq: vec![0.0; n],
            force: vec![0.0; n],
            lvv: vec![0.0; n * n],
            lvq: vec![0.0; n * n],
            lqq: vec![0.0; n * n],
            force_v: vec![0.0; n * n],
            force_q: vec![0.0; n * n],
            lvt: vec![0.0; n],
        }
    }
}

/// A model given by a Lagrangian and a non-conservative force.
pub trait LagrangianSystem {
    /// The number of coordinates `n`.
    fn n(&self) -> usize;
    /// Fills `out` (already sized by [`LagrangianPoint::new`]) at `(q, v, t)`.
    fn eval(&mut self, t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause>;
    /// `Some(b)` when every matrix of the point is zero at every state more than `b`
    /// diagonals from the main one (a lattice's are tridiagonal): the implicit methods then
    /// factor their Newton matrices in band storage.
    fn band(&self) -> Option<usize> {
        None
    }
}

impl<S: LagrangianSystem + ?Sized> LagrangianSystem for &mut S {
    fn n(&self) -> usize {
        (**self).n()
    }
    fn band(&self) -> Option<usize> {
        (**self).band()
    }
    fn eval(&mut self, t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
        (**self).eval(t, q, v, out)
    }
}

/// An energy model: `E(θ, t)`, its gradient and Hessian, and an optional metric `g(θ)`.
pub trait GradientSystem {
    /// The length of `θ`.
    fn dim(&self) -> usize;
    /// The energy `E(θ, t)`.
    fn energy(&mut self, t: f64, theta: &[f64]) -> f64;
    /// Writes `∇E(θ, t)` into `grad`.
    fn gradient(&mut self, t: f64, theta: &[f64], grad: &mut [f64]);
    /// Writes `∇²E(θ, t)`, row-major, into `hess`.
    fn hessian(&mut self, t: f64, theta: &[f64], hess: &mut [f64]);
    /// Writes `g(θ)` row-major and returns true, or returns false for the Euclidean metric.
    fn metric(&mut self, t: f64, theta: &[f64], g: &mut [f64]) -> bool;
    /// See [`OdeSystem::begin_step`].
    fn begin_step(&mut self, _t: f64) {}
}

impl<S: GradientSystem + ?Sized> GradientSystem for &mut S {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn begin_step(&mut self, t: f64) {
        (**self).begin_step(t)
    }
    fn energy(&mut self, t: f64, theta: &[f64]) -> f64 {
        (**self).energy(t, theta)
    }
    fn gradient(&mut self, t: f64, theta: &[f64], grad: &mut [f64]) {
        (**self).gradient(t, theta, grad)
    }
    fn hessian(&mut self, t: f64, theta: &[f64], hess: &mut [f64]) {
        (**self).hessian(t, theta, hess)
    }
    fn metric(&mut self, t: f64, theta: &[f64], g: &mut [f64]) -> bool {
        (**self).metric(t, theta, g)
    }
}

/// An observer's request to stop the run (Ctrl-C, a write error). The observer keeps the
/// reason; the run fails with [`Cause::Stopped`] at that row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop;

/// Receives output rows. Returning `Err(Stop)` stops the run.
pub trait Observer {
    /// Takes the row `y` at time `t`.
    fn row(&mut self, t: f64, y: &[f64]) -> Result<(), Stop>;

    /// Whether the observer looks at every step, written or not ([`Observer::step`]).
    fn sees_steps(&self) -> bool {
        false
    }

    /// Sees the state `y` after a step that ends at `t` and is not written as a row
    /// (called only when [`Observer::sees_steps`]).
    fn step(&mut self, _t: f64, _y: &[f64]) {}
}

impl<F: FnMut(f64, &[f64]) -> Result<(), Stop>> Observer for F {
    fn row(&mut self, t: f64, y: &[f64]) -> Result<(), Stop> {
        self(t, y)
    }
}

/// A recorder that keeps every row.
impl Observer for Vec<(f64, Vec<f64>)> {
    fn row(&mut self, t: f64, y: &[f64]) -> Result<(), Stop> {
        self.push((t, y.to_vec()));
        Ok(())
    }
}

/// The output grid of a run: from `t0` to `t_end` in steps of `dt`, writing a row every
/// `every` steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    pub t0: f64,
    pub t_end: f64,
    pub dt: f64,
    pub every: usize,
}

impl Grid {
    /// Checks the grid and returns its number of steps, `ceil((t_end − t0)/dt − 1e-9)`.
    pub fn steps(&self) -> Result<usize, Cause> {
        if !(self.t0.is_finite() && self.t_end.is_finite() && self.dt.is_finite()) {
            return Err(Cause::Invalid("the time grid is not finite".into()));
        }
        if self.dt <= 0.0 {
            return Err(Cause::Invalid(format!("dt must be positive, not {}", fmt_float(self.dt))));
        }
        if self.t_end < self.t0 {
            return Err(Cause::Invalid(format!(
                "t_end = {} lies before t0 = {}",
                fmt_float(self.t_end),
                fmt_float(self.t0)
            )));
        }
        if self.every == 0 {
            return Err(Cause::Invalid("every must be at least 1".into()));
        }
        if self.t_end == self.t0 {
            return Ok(0);
        }
        let steps = ((self.t_end - self.t0) / self.dt - 1e-9).ceil().max(1.0);
        if steps > 1e15 {
            return Err(Cause::Invalid(format!("too many steps ({steps:e})")));
        }
        Ok(steps as usize)
    }

    /// The time of step `k` of `steps`: `t0 + k·dt`, and exactly `t_end` for the last.
    pub fn time(&self, k: usize, steps: usize) -> f64 {
        if k >= steps {
            self.t_end
        } else {
            self.t0 + k as f64 * self.dt
        }
    }

    /// Whether the state after step `k` of `steps` is written: every `every`-th and the last.
    pub fn is_output(&self, k: usize, steps: usize) -> bool {
        k.is_multiple_of(self.every) || k == steps
    }
}

/// Counts of work done by a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Accepted steps.
    pub steps: usize,
    /// Rejected steps (adaptive methods only).
    pub rejected: usize,
    /// Evaluations of the model: right-hand sides, gradients or Lagrangian points.
    pub rhs_evals: usize,
    /// Newton iterations, summed over all steps (implicit methods only).
    pub newton_iterations: usize,
}

/// A one-step method with its own internal state, driven over a grid by [`drive`].
trait Stepper {
    /// Advances from `t` to `t + h`.
    fn step(&mut self, t: f64, h: f64) -> Result<(), Cause>;
    /// The state as written to the observer: `(q, v)` for mechanics, `θ` for energies.
    fn row(&self) -> &[f64];
    /// Whether the whole internal state (including hidden parts such as momenta) is finite.
    fn is_finite(&self) -> bool {
        all_finite(self.row())
    }
    fn stats(&self) -> Stats;
}

/// Whether every entry is finite.
fn all_finite(x: &[f64]) -> bool {
    x.iter().all(|v| v.is_finite())
}

/// The failure for a run that could not start.
fn fail_at_start(grid: &Grid, y0: &[f64], cause: Cause) -> Failure {
    Failure { t: grid.t0, state: y0.to_vec(), cause }
}

/// Writes a row, turning an observer's refusal into a failure at that row.
fn emit(obs: &mut impl Observer, t: f64, y: &[f64]) -> Result<(), Failure> {
    obs.row(t, y).map_err(|Stop| Failure { t, state: y.to_vec(), cause: Cause::Stopped })
}

/// Runs a fixed-step method over the grid: checks the initial state, writes the rows,
/// and after each step checks that the state is finite.
fn drive(grid: &Grid, method: &mut impl Stepper, obs: &mut impl Observer) -> Result<Stats, Failure> {
    let steps = grid.steps().map_err(|cause| fail_at_start(grid, method.row(), cause))?;
    if !method.is_finite() {
        return Err(fail_at_start(grid, method.row(), Cause::NonFinite));
    }
    emit(obs, grid.t0, method.row())?;
    let sees_steps = obs.sees_steps();
    let mut last_good = method.row().to_vec();
    for k in 0..steps {
        let t = grid.time(k, steps);
        let h = if k + 1 == steps { grid.t_end - t } else { grid.dt };
        let failed = match method.step(t, h) {
            Err(cause) => Some(cause),
            Ok(()) if !method.is_finite() => Some(Cause::NonFinite),
            Ok(()) => None,
        };
        if let Some(cause) = failed {
            return Err(Failure { t, state: last_good, cause });
        }
        last_good.copy_from_slice(method.row());
        if grid.is_output(k + 1, steps) {
            emit(obs, grid.time(k + 1, steps), method.row())?;
        } else if sees_steps {
            obs.step(grid.time(k + 1, steps), method.row());
        }
    }
    Ok(method.stats())
}

/// The Euclidean norm.
fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_counts_steps_and_shortens_the_last() {
        let g = Grid { t0: 0.0, t_end: 1.0, dt: 0.3, every: 1 };
        assert_eq!(g.steps(), Ok(4));
        assert_eq!(g.time(3, 4), 0.8999999999999999);
        assert_eq!(g.time(4, 4), 1.0);
        let g = Grid { t0: 0.0, t_end: 10.0, dt: 0.1, every: 1 };
        assert_eq!(g.steps(), Ok(100));
        let g = Grid { t0: 2.0, t_end: 2.0, dt: 0.1, every: 1 };
        assert_eq!(g.steps(), Ok(0));
        let bad = Grid { t0: 0.0, t_end: 1.0, dt: 0.0, every: 1 };
        assert!(bad.steps().is_err());
        let bad = Grid { t0: 0.0, t_end: 1.0, dt: 0.1, every: 0 };
        assert!(bad.steps().is_err());
    }

    #[test]
    fn causes_display_as_messages() {
        assert_eq!(Cause::SingularMassMatrix.to_string(), "singular mass matrix");
        assert_eq!(
            Cause::NewtonDiverged { iterations: 20 }.to_string(),
            "Newton iteration did not converge in 20 iterations"
        );
    }
}
