//! Driving a planned run: the one driver of single trajectories and
//! ensembles, from initial states to rows.
//!
//! A run is a set of particles computed in blocks ([`ensemble`]): a single
//! trajectory is one block of one particle whose rows stream to the sink as
//! they are computed; an ensemble is many blocks, run in parallel, whose rows
//! are reduced to the mean and standard deviation of every column and
//! written at the end. Deterministic methods integrate each particle's
//! trajectory ([`trajectory`]); Langevin dynamics advance a whole block one
//! step at a time. [`rows`] turns states into rows (energy, gradient norm,
//! observes) and keeps the summary.
//!
//! The caller owns interruption and progress ([`Control`]); an interrupted or
//! failed run has written every row computed before it and says so in a typed
//! [`RunError`].

mod boundary;
mod density;
mod ensemble;
mod langevin;
mod particles;
mod rows;
mod sensitivity;
mod settings;
mod systems;
mod trajectory;

pub use boundary::{solve, SolveConfig, SolveError, SolveSummary};
pub use density::{Axis, Density};
pub use ensemble::{BAND_QUANTILES, BLOCK};
pub use rows::{RowSink, SinkError};
pub use settings::{
    RunConfig, RunOptions, SettingsError, DEFAULT_ATOL, DEFAULT_CELLS, DEFAULT_DT, DEFAULT_DURATION, DEFAULT_RTOL,
};

use crate::backend::Kernels;
use crate::integrate::{Cause, Failure};
use crate::model::{Init, Method, Model};
use crate::plan::{Misfit, Plan};
use crate::sym::fmt_float;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What a finished run reports.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub steps: usize,
    pub rejected: usize,
    pub rows: usize,
    /// The drift of `H` (conservative Lagrangian models, single
    /// trajectories): over every step when the run options ask for it
    /// ([`RunConfig::energy_every_step`]), else over the rows written.
    pub energy_drift: Option<Drift>,
    pub final_energy: f64,
    pub final_grad_norm: Option<f64>,
    /// Ensembles: the number of particles, the final mean of every column,
    /// and every particle's final row, every column but `t`.
    pub particles: usize,
    pub final_means: Vec<(String, f64)>,
    pub finals: Vec<Vec<f64>>,
    /// Ensembles run with [`RunConfig::bands`]: quantiles of every column at
    /// every output time, over a sample of the particles.
    pub bands: Option<Bands>,
    /// `fokker-planck` runs with [`RunConfig::keep_density`]: the density at every output time.
    pub density: Option<Density>,
}

/// Per output row and column (without `t`), the quantiles `quantiles.0`
/// and `quantiles.1` of the column over the first `particles` particles.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bands {
    pub particles: usize,
    pub quantiles: (f64, f64),
    pub rows: Vec<Vec<(f64, f64)>>,
}

/// How far `H` moved from its initial value over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Drift {
    /// `H` at the start.
    pub h0: f64,
    /// The largest `|H − H0|`.
    pub max_abs: f64,
}

impl Drift {
    /// Below this `|H0|`, a relative drift says nothing and the absolute one is reported.
    pub const TINY_H0: f64 = 1e-12;

    /// The largest `|H − H0| / |H0|`, or `None` when `|H0|` is too small to divide by.
    pub fn relative(&self) -> Option<f64> {
        (self.h0.abs() >= Self::TINY_H0).then(|| self.max_abs / self.h0.abs())
    }
}

/// The caller's hold on a run: a flag that stops it at its next row (or
/// ensemble step), and a counter of the particle-steps done, for progress
/// displays (an ensemble's rows come only at its end).
#[derive(Clone, Copy, Default)]
pub struct Control<'a> {
    pub interrupt: Option<&'a AtomicBool>,
    pub progress: Option<&'a AtomicU64>,
}

impl Control<'_> {
    /// Whether the caller asked the run to stop.
    pub fn interrupted(&self) -> bool {
        self.interrupt.is_some_and(|f| f.load(Ordering::Relaxed))
    }

    fn add_progress(&self, particle_steps: usize) {
        if let Some(p) = self.progress {
            p.fetch_add(particle_steps as u64, Ordering::Relaxed);
        }
    }
}

/// A run that did not end well. Every row before it has been written.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// [`Control::interrupt`] was set; the run stopped at time `t`.
    #[error("interrupted at t = {}", fmt_float(*.t))]
    Interrupted { t: f64 },
    /// The numbers failed: the time, the named state, the cause, and for an
    /// ensemble the first particle that failed.
    #[error("{cause}{} at t = {}; state: {}", particle_note(*.particle), fmt_float(*.t), show_state(.state))]
    Numerical { t: f64, state: Vec<(String, f64)>, cause: Cause, particle: Option<usize> },
    /// The method does not fit the model.
    #[error("method `{method}` does not fit this model: {}; {}", .misfit.why, .misfit.help)]
    Misfit { method: Method, misfit: Misfit },
    /// The kernels could not be built.
    #[error(transparent)]
    Build(#[from] crate::backend::BuildError),
    /// A value the run needs is unusable: the temperature, the metric of the
    /// noise, an initial value.
    #[error("{0}")]
    Setup(Cause),
    /// The sink refused a row (an output error).
    #[error(transparent)]
    Output(#[from] SinkError),
}

fn particle_note(p: Option<usize>) -> String {
    p.map(|p| format!(" (particle {p})")).unwrap_or_default()
}

/// The state as `name = value` pairs, each value the shortest text that reads
/// back to it (`1e200`, not 201 digits).
fn show_state(state: &[(String, f64)]) -> String {
    state.iter().map(|(n, x)| format!("{n} = {}", fmt_float(*x))).collect::<Vec<_>>().join(", ")
}

/// One run's fixed inputs, shared by every block.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub model: &'a Model,
    pub plan: &'a Plan,
    pub k: &'a Kernels,
    pub cfg: &'a RunConfig,
    pub control: Control<'a>,
}

impl Ctx<'_> {
    /// A numerical failure with the state named by column (or the
    /// interruption it really is).
    fn numerical(&self, f: Failure, particle: Option<usize>) -> RunError {
        let cause = self.cause_of(&f);
        let names = &self.plan.trajectory_columns[1..=f.state.len()];
        RunError::Numerical { t: f.t, state: names.iter().cloned().zip(f.state).collect(), cause, particle }
    }

    /// The cause of `f`, told apart where the integrator cannot: a matrix found
    /// singular inside a step is [`Cause::SingularInStep`] when the system
    /// evaluates at the step's starting state (so the matrix is regular there;
    /// docs/numerics.md §Singular matrices).
    fn cause_of(&self, f: &Failure) -> Cause {
        let matrix = match f.cause {
            Cause::SingularMassMatrix => "mass matrix",
            Cause::SingularMetric => "metric",
            _ => return f.cause.clone(),
        };
        if !self.plan.system || self.plan.batch.is_some() || f.state.len() != self.plan.dim() {
            return f.cause.clone();
        }
        let mut dy = vec![0.0; f.state.len()];
        match self.k.rhs(f.t, &f.state, &mut dy, &mut crate::backend::Work::default()) {
            Ok(()) => Cause::SingularInStep { matrix, rate: dy.iter().fold(0.0, |m, x| m.max(x.abs())) },
            Err(_) => f.cause.clone(),
        }
    }
}

/// Runs a planned model with its kernels (built by [`Kernels::build`] for
/// `plan`), writing rows to `sink`.
pub fn run(
    model: &Model,
    plan: &Plan,
    k: &Kernels,
    cfg: &RunConfig,
    sink: &mut dyn RowSink,
    control: Control<'_>,
) -> Result<Summary, RunError> {
    let ctx = Ctx { model, plan, k, cfg, control };
    match plan.method {
        Method::FokkerPlanck => return density::run(&ctx, sink),
        Method::Svgd => return particles::run(&ctx, sink),
        Method::Em | Method::Euler if model.interaction.is_some() => return particles::interacting(&ctx, sink),
        _ => {}
    }
    ensemble::run(&ctx, sink)
}

/// The initial state (positions then velocities, or the state) at the
/// parameters' values, random initial values at their means.
pub fn initial_state(model: &Model) -> Vec<f64> {
    let env = model.env();
    let value = |i: &Init| match *i {
        Init::Value(x) => model.arena.eval(x, &env),
        Init::Normal { mean, .. } => model.arena.eval(mean, &env),
        Init::Uniform { lo, hi } => 0.5 * (model.arena.eval(lo, &env) + model.arena.eval(hi, &env)),
    };
    model.init.iter().chain(&model.init_velocity).map(value).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_prints_its_numbers_in_their_shortest_form() {
        let e = RunError::Numerical {
            t: 1e300,
            state: vec![("x".into(), 1e200), ("v".into(), -2.5e-300), ("y".into(), 0.1)],
            cause: Cause::NonFinite,
            particle: None,
        };
        assert_eq!(
            e.to_string(),
            "non-finite state (NaN or infinity) at t = 1e300; state: x = 1e200, v = -2.5e-300, y = 0.1"
        );
        assert_eq!(RunError::Interrupted { t: 1e200 }.to_string(), "interrupted at t = 1e200");
    }
}
