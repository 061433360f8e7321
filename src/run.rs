//! Running a model: numeric kernels for its derived equations, the method
//! chosen by the model or the command line, and the rows of the trajectory.
//!
//! Rows are `t`, the coordinates, the velocities (`q'`), `energy` (`H` or `E`),
//! `grad_norm` (energy models), then the observed quantities.

use crate::derive::Equations;
use crate::integrate::{self, Cause, Failure, Grid, LagrangianPoint, LagrangianSystem, OdeSystem, Stats};
use crate::kernels::{Backend, Kernels, Work};
use crate::model::{Init, Method, Model, ModelKind};
use std::fmt;

/// The resolved settings of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    pub method: Method,
    pub t0: f64,
    pub t_end: f64,
    pub dt: f64,
    pub rtol: f64,
    pub atol: f64,
    pub every: usize,
    /// The number of particles of an ensemble run, when given.
    pub particles: Option<u64>,
    /// The seed of the particles' random streams.
    pub seed: u64,
}

/// Command-line choices that override the model's `simulate` line.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub method: Option<Method>,
    pub t0: Option<f64>,
    pub t_end: Option<f64>,
    pub dt: Option<f64>,
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
    pub every: Option<u64>,
    pub particles: Option<u64>,
    pub seed: Option<u64>,
}

/// Defaults where neither the model nor the command line says.
pub const DEFAULT_DT: f64 = 1e-3;
pub const DEFAULT_DURATION: f64 = 10.0;
pub const DEFAULT_RTOL: f64 = 1e-6;
pub const DEFAULT_ATOL: f64 = 1e-9;

impl RunConfig {
    /// Combines the command line, the model's `simulate` line and the defaults.
    /// `Err` says which value is unacceptable and what would be.
    pub fn resolve(model: &Model, o: &RunOptions) -> Result<RunConfig, String> {
        let s = &model.settings;
        let has_t = model.temperature.is_some();
        let default_method = if has_t { Method::Em } else { Method::Rk4 };
        let method = o.method.or(s.method).unwrap_or(default_method);
        if !method.fits(model.kind, has_t) {
            return Err(format!(
                "method `{method}` does not fit this {} model; use one of: {}",
                model.kind,
                Method::fitting(model.kind, has_t)
            ));
        }
        let t0 = o.t0.or(s.t0).unwrap_or(0.0);
        let t_end = o.t_end.or(s.t_end).unwrap_or(t0 + DEFAULT_DURATION);
        let dt = o.dt.or(s.dt).unwrap_or(DEFAULT_DT);
        let rtol = o.rtol.or(s.rtol).unwrap_or(DEFAULT_RTOL);
        let atol = o.atol.or(s.atol).unwrap_or(DEFAULT_ATOL);
        let every = o.every.or(s.every).unwrap_or(1);
        if !t0.is_finite() || !t_end.is_finite() {
            return Err("t0 and t_end must be finite numbers".into());
        }
        if t_end < t0 {
            return Err(format!("t_end ({t_end}) is before t0 ({t0}); give t_end ≥ t0"));
        }
        if !(dt > 0.0 && dt.is_finite()) {
            return Err(format!("dt must be a positive number, not {dt}"));
        }
        if rtol.is_nan() || atol.is_nan() || rtol <= 0.0 || atol <= 0.0 {
            return Err("rtol and atol must be positive numbers".into());
        }
        if every == 0 {
            return Err("every must be 1 or more (1 writes every step)".into());
        }
        let particles = o.particles.or(s.particles);
        if particles == Some(0) {
            return Err("particles must be 1 or more".into());
        }
        let seed = o.seed.or(s.seed).unwrap_or(0);
        Ok(RunConfig { method, t0, t_end, dt, rtol, atol, every: every as usize, particles, seed })
    }
}

/// Where rows go.
pub trait RowSink {
    fn row(&mut self, values: &[f64]) -> Result<(), String>;
}

impl RowSink for Vec<Vec<f64>> {
    fn row(&mut self, values: &[f64]) -> Result<(), String> {
        self.push(values.to_vec());
        Ok(())
    }
}

/// What a finished run reports.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub steps: usize,
    pub rejected: usize,
    pub rows: usize,
    /// The largest `|H − H0| / |H0|` over the rows written (Lagrangian models).
    pub max_energy_drift: Option<f64>,
    pub final_energy: f64,
    pub final_grad_norm: Option<f64>,
    /// Ensembles: the number of particles, the final mean of every column,
    /// and every particle's final state.
    pub particles: usize,
    pub final_means: Vec<(String, f64)>,
    pub finals: Vec<Vec<f64>>,
}

/// Set (by a signal handler, say) to stop every run in the process at its
/// next output row or ensemble step; the run then ends with
/// [`RunError::Interrupted`], every row before it written.
pub static INTERRUPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Particle-steps the ensembles of this process have completed, for
/// progress displays (an ensemble's rows come only at its end).
pub static ENSEMBLE_WORK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The message an interrupted integration carries in its failure.
pub(crate) const INTERRUPTED: &str = "interrupted";

/// Whether [`INTERRUPT`] is set.
pub fn interrupted() -> bool {
    INTERRUPT.load(std::sync::atomic::Ordering::Relaxed)
}

/// A run that stopped early. Every row before it has been written.
#[derive(Clone, Debug)]
pub enum RunError {
    /// [`INTERRUPT`] was set; the run stopped at time `t`.
    Interrupted { t: f64 },
    /// The numbers failed: the time, the named state and the cause.
    Numerical { t: f64, state: Vec<(String, f64)>, cause: String },
    /// The model and the method do not fit, or an initial value is invalid.
    Setup(String),
    /// The sink refused a row (an output error).
    Output(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Numerical { t, state, cause } => {
                let s: Vec<String> = state.iter().map(|(n, x)| format!("{n} = {x}")).collect();
                write!(f, "{cause} at t = {t}; state: {}", s.join(", "))
            }
            RunError::Interrupted { t } => write!(f, "interrupted at t = {t}"),
            RunError::Setup(m) | RunError::Output(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RunError {}

/// The output column names of a run: those of a single trajectory, or the
/// means and standard deviations of an ensemble.
pub fn output_columns(model: &Model, cfg: &RunConfig) -> Vec<String> {
    if crate::ensemble::is_ensemble(model, cfg) {
        crate::ensemble::columns(model)
    } else {
        columns(model)
    }
}

/// The output column names of a single trajectory.
pub fn columns(model: &Model) -> Vec<String> {
    let mut c = vec!["t".to_string()];
    c.extend(model.vars.iter().map(|v| v.name.clone()));
    if model.kind == ModelKind::Lagrangian {
        c.extend(model.vars.iter().map(|v| format!("{}'", v.name)));
    }
    c.push("energy".into());
    if model.kind == ModelKind::Energy {
        c.push("grad_norm".into());
    }
    c.extend(model.observes.iter().map(|(n, _)| n.clone()));
    c
}

/// The initial state (positions then velocities, or the state) at the
/// parameters' values. Random initial values are an ensemble's business
/// (see [`crate::ensemble`]); here they take their mean.
pub fn initial_state(model: &Model) -> Vec<f64> {
    let env = model.env();
    let value = |i: &Init| match *i {
        Init::Value(x) => model.arena.eval(x, &env),
        Init::Normal { mean, .. } => model.arena.eval(mean, &env),
        Init::Uniform { lo, hi } => 0.5 * (model.arena.eval(lo, &env) + model.arena.eval(hi, &env)),
    };
    model.init.iter().chain(&model.init_velocity).map(value).collect()
}

/// `y' = F(t, y)` through the model's kernels.
struct FirstOrder<'k> {
    k: &'k Kernels,
    work: Work,
}

impl OdeSystem for FirstOrder<'_> {
    fn dim(&self) -> usize {
        match self.k.kind {
            ModelKind::Lagrangian => 2 * self.k.n,
            ModelKind::Energy => self.k.n,
        }
    }
    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
        self.k.rhs(t, y, dy, &mut self.work)
    }
    fn jacobian(&mut self, t: f64, y: &[f64], jac: &mut [f64]) -> Result<(), Cause> {
        self.k.jacobian(t, y, jac, &mut self.work)
    }
}

struct PointSystem<'k> {
    k: &'k Kernels,
    work: Work,
}

impl LagrangianSystem for PointSystem<'_> {
    fn n(&self) -> usize {
        self.k.n
    }
    fn eval(&mut self, t: f64, q: &[f64], v: &[f64], p: &mut LagrangianPoint) -> Result<(), Cause> {
        self.k.point(t, q, v, p, &mut self.work)
    }
}

struct EnergySystem<'k> {
    k: &'k Kernels,
    work: Work,
}

impl EnergySystem<'_> {
    fn call(&mut self, name: &str, t: f64, theta: &[f64], out: &mut [f64]) {
        self.k.input(t, theta, &mut self.work.x);
        self.k.eval(name, &self.work.x, out, &mut self.work.scratch);
    }
}

impl integrate::GradientSystem for EnergySystem<'_> {
    fn dim(&self) -> usize {
        self.k.n
    }
    fn energy(&mut self, t: f64, theta: &[f64]) -> f64 {
        let mut e = [0.0];
        self.call("energy", t, theta, &mut e);
        e[0]
    }
    fn gradient(&mut self, t: f64, theta: &[f64], grad: &mut [f64]) {
        self.call("gradient", t, theta, grad);
    }
    fn hessian(&mut self, t: f64, theta: &[f64], hess: &mut [f64]) {
        self.call("hessian", t, theta, hess);
    }
    fn metric(&mut self, t: f64, theta: &[f64], g: &mut [f64]) -> bool {
        if self.k.has_metric() {
            self.call("metric", t, theta, g);
        }
        self.k.has_metric()
    }
}

/// A fixed-step method by its compiled loop: every full step in native
/// code, rows handed back in blocks; the last, possibly shorter, step by
/// `last_step` (the same method in Rust on a one-step grid). Row times are
/// `t0 + k·dt` exactly, as on [`Grid`].
fn fixed_step_compiled<O: integrate::Observer>(
    step_loop: crate::jit::LoopFn<'_>,
    params: &[f64],
    grid: &Grid,
    y0: &[f64],
    obs: &mut O,
    last_step: impl FnOnce(&Grid, &[f64], &mut SkipFirst<'_, O>) -> Result<Stats, Failure>,
) -> Result<Stats, Failure> {
    let fail = |t: f64, state: &[f64], cause: Cause| Failure { t, state: state.to_vec(), cause };
    let steps = grid.steps().map_err(|c| fail(grid.t0, y0, c))?;
    let mut y = y0.to_vec();
    let d = y.len();
    let other = |e: String| Cause::Other(e);
    obs.row(grid.t0, &y).map_err(|e| fail(grid.t0, y0, other(e)))?;
    let full = steps.saturating_sub(1);
    // Steps per call: about 2¹⁶, so that rows, the progress bar and an
    // interruption are seen often, and memory stays bounded. A block is a
    // whole number of output intervals, so each call starts on an output step
    // and its first row repeats the last one written.
    let block = grid.every * ((1usize << 16) / grid.every).max(1);
    let mut rows = Vec::new();
    let mut done = 0usize;
    let mut stats = Stats::default();
    while done < full {
        let n = block.min(full - done);
        rows.clear();
        let t_start = grid.time(done, steps);
        let result = step_loop.call(t_start, grid.dt, n, grid.every, &mut y, params, &mut rows);
        // Every row this call computed is written, even after an interruption.
        let mut stop = None;
        for (r, row) in rows.chunks(d + 1).enumerate().skip(1) {
            let step = done + r * grid.every;
            let t = grid.time(step, steps);
            match obs.row(t, &row[1..]) {
                Err(e) if e == INTERRUPTED => stop = Some(fail(t, &row[1..], other(e))),
                Err(e) => return Err(fail(t, &row[1..], other(e))),
                Ok(()) => {}
            }
        }
        if let Some(f) = stop {
            return Err(f);
        }
        match result {
            Ok(m) => {
                done += m;
                stats.steps += m;
            }
            Err(f) => {
                let cause = match f.cause {
                    crate::jit::FailureCause::Singular => Cause::SingularMassMatrix,
                    crate::jit::FailureCause::NonFinite => Cause::NonFinite,
                };
                return Err(fail(grid.time(done + f.step, steps), &y, cause));
            }
        }
    }
    if steps > full {
        // The last step, to t_end exactly.
        let t = grid.time(full, steps);
        let last = Grid { t0: t, t_end: grid.t_end, dt: grid.t_end - t, every: 1 };
        let mut skip_first = SkipFirst { inner: obs, skipped: false };
        stats.steps += last_step(&last, &y, &mut skip_first)?.steps;
    }
    Ok(stats)
}

/// An observer as a closure, for methods called from more than one place.
type RowFn<'a> = dyn FnMut(f64, &[f64]) -> Result<(), String> + 'a;

/// An observer that drops the first row (already written by the caller).
struct SkipFirst<'a, O> {
    inner: &'a mut O,
    skipped: bool,
}

impl<O: integrate::Observer> integrate::Observer for SkipFirst<'_, O> {
    fn row(&mut self, t: f64, y: &[f64]) -> Result<(), String> {
        if !self.skipped {
            self.skipped = true;
            return Ok(());
        }
        self.inner.row(t, y)
    }
}

/// Turns integrator rows `(t, y)` into output rows with energy and observes.
pub(crate) struct Rows<'a> {
    k: &'a Kernels,
    work: Work,
    kind: ModelKind,
    sink: &'a mut dyn RowSink,
    out: Vec<f64>,
    row: Vec<f64>,
    summary: Summary,
    h0: Option<f64>,
    /// Whether `H` is conserved, so that its drift is worth reporting.
    conservative: bool,
    /// Set when the sink refused a row.
    sink_error: Option<String>,
}

impl<'a> Rows<'a> {
    pub(crate) fn new(model: &Model, eq: &Equations, k: &'a Kernels, sink: &'a mut dyn RowSink) -> Rows<'a> {
        Rows {
            k,
            work: Work::default(),
            kind: model.kind,
            sink,
            out: vec![],
            row: vec![],
            summary: Summary::default(),
            h0: None,
            conservative: is_conservative(model, eq),
            sink_error: None,
        }
    }
}

impl integrate::Observer for Rows<'_> {
    fn row(&mut self, t: f64, y: &[f64]) -> Result<(), String> {
        let n = self.k.n;
        let extra = if self.kind == ModelKind::Energy { n } else { 0 };
        self.k.input(t, y, &mut self.work.x);
        self.out.resize(self.k.outputs("row"), 0.0);
        self.k.eval("row", &self.work.x, &mut self.out, &mut self.work.scratch);
        let energy = self.out[0];
        self.row.clear();
        self.row.push(t);
        self.row.extend_from_slice(y);
        self.row.push(energy);
        if self.kind == ModelKind::Energy {
            let g = self.out[1..1 + n].iter().map(|x| x * x).sum::<f64>().sqrt();
            self.row.push(g);
            self.summary.final_grad_norm = Some(g);
        } else if self.conservative {
            let h0 = *self.h0.get_or_insert(energy);
            let drift = (energy - h0).abs() / h0.abs().max(f64::MIN_POSITIVE);
            let m = self.summary.max_energy_drift.get_or_insert(0.0);
            *m = m.max(drift);
        }
        self.row.extend_from_slice(&self.out[1 + extra..]);
        self.summary.final_energy = energy;
        self.summary.rows += 1;
        self.sink.row(&self.row).inspect_err(|e| self.sink_error = Some(e.clone()))?;
        // An interruption keeps this row and stops the run.
        if interrupted() {
            return Err(INTERRUPTED.into());
        }
        Ok(())
    }
}

/// Whether `H` is conserved: no explicit time dependence, dissipation or force.
pub fn is_conservative(model: &Model, eq: &Equations) -> bool {
    let Equations::Lagrangian(e) = eq else { return false };
    let a = &model.arena;
    !a.depends(e.lagrangian, |k| k == crate::sym::SymKind::Time)
        && model.dissipation.is_none()
        && model.forces.iter().all(|&f| a.is_zero(f))
}

/// Whether this run can start: the method fits the model's structure and the
/// features it needs are there. Called by [`run`]; callers may call it before
/// they open any output.
pub fn check(model: &Model, eq: &Equations, cfg: &RunConfig) -> Result<(), String> {
    crate::ensemble::fits(model, cfg.method)?;
    if let (Method::Verlet, Equations::Lagrangian(e)) = (cfg.method, eq) {
        crate::derive::verlet_fits(model, e)
            .map_err(|why| format!("method `verlet` does not fit this model: {why}; use midpoint or variational"))?;
    }
    Ok(())
}

/// Runs a model with its derived equations, writing rows to `sink`, with
/// native kernels (or portable ones where Cranelift cannot compile them).
pub fn run(model: &mut Model, eq: &Equations, cfg: &RunConfig, sink: &mut dyn RowSink) -> Result<Summary, RunError> {
    check(model, eq, cfg).map_err(RunError::Setup)?;
    let k = build_kernels(model, eq, cfg.method);
    run_with(model, eq, &k, cfg, sink)
}

/// Native kernels for `method`, or portable ones if Cranelift refuses.
pub fn build_kernels(model: &mut Model, eq: &Equations, method: Method) -> Kernels {
    Kernels::new(model, eq, method, Backend::Native).unwrap_or_else(|_| {
        Kernels::new(model, eq, method, Backend::Portable).expect("the portable backend always builds")
    })
}

/// Runs with kernels already built (by [`Kernels::new`] for `cfg.method`).
pub fn run_with(
    model: &Model,
    eq: &Equations,
    k: &Kernels,
    cfg: &RunConfig,
    sink: &mut dyn RowSink,
) -> Result<Summary, RunError> {
    check(model, eq, cfg).map_err(RunError::Setup)?;
    if crate::ensemble::is_ensemble(model, cfg) || cfg.method == Method::Em {
        let plain = !crate::ensemble::is_ensemble(model, cfg);
        return crate::ensemble::run_ensemble(model, eq, k, cfg, sink, plain);
    }
    let y0 = initial_state(model);
    let mut rows = Rows::new(model, eq, k, sink);
    let result = integrate_one(model, k, cfg, &y0, &mut rows);
    let mut summary = std::mem::take(&mut rows.summary);
    match result {
        Ok(stats) => {
            summary.steps = stats.steps;
            summary.rejected = stats.rejected;
            Ok(summary)
        }
        Err(_) if rows.sink_error.is_some() => Err(RunError::Output(rows.sink_error.take().unwrap_or_default())),
        Err(f) => Err(numerical(model, f)),
    }
}

/// A numerical failure with the state named by column (or the interruption
/// it really is).
pub(crate) fn numerical(model: &Model, f: Failure) -> RunError {
    if f.cause == Cause::Other(INTERRUPTED.into()) {
        return RunError::Interrupted { t: f.t };
    }
    let names = &columns(model)[1..=f.state.len()];
    RunError::Numerical { t: f.t, state: names.iter().cloned().zip(f.state).collect(), cause: f.cause.to_string() }
}

/// Integrates one trajectory from `y0` with the deterministic method of `cfg`.
pub(crate) fn integrate_one(
    model: &Model,
    k: &Kernels,
    cfg: &RunConfig,
    y0: &[f64],
    rows: &mut impl integrate::Observer,
) -> Result<Stats, Failure> {
    let y0 = y0.to_vec();
    let n = model.vars.len();
    let grid = Grid { t0: cfg.t0, t_end: cfg.t_end, dt: cfg.dt, every: cfg.every };
    let first = || FirstOrder { k, work: Work::default() };
    let point = || PointSystem { k, work: Work::default() };
    let energy = || EnergySystem { k, work: Work::default() };
    match (model.kind, cfg.method) {
        (_, Method::Rk4) => match k.step_loop(Method::Rk4) {
            Some(f) => fixed_step_compiled(f, k.params(), &grid, &y0, &mut *rows, |g, y, obs| {
                integrate::rk4(&mut first(), g, y, obs)
            }),
            None => integrate::rk4(&mut first(), &grid, &y0, &mut *rows),
        },
        (_, Method::Dopri5) => integrate::dopri5(&mut first(), &grid, cfg.rtol, cfg.atol, &y0, &mut *rows),
        (ModelKind::Lagrangian, Method::Midpoint) => integrate::midpoint(&mut first(), &grid, &y0, &mut *rows),
        (ModelKind::Lagrangian, Method::Variational) => {
            integrate::variational(&mut point(), &grid, &y0[..n], &y0[n..], &mut *rows)
        }
        (ModelKind::Lagrangian, Method::Verlet) => {
            let mut work = Work::default();
            let mut mass = vec![0.0; n * n];
            k.input(cfg.t0, &y0, &mut work.x);
            k.eval("mass", &work.x, &mut mass, &mut work.scratch);
            // With constant M and no dissipation or force, f = −∇V(q).
            let grad_v = |t: f64, q: &[f64], g: &mut [f64]| {
                work.y.clear();
                work.y.extend_from_slice(q);
                work.y.resize(2 * n, 0.0);
                let y = std::mem::take(&mut work.y);
                k.input(t, &y, &mut work.x);
                work.y = y;
                k.eval("forcing", &work.x, g, &mut work.scratch);
                for gi in g.iter_mut() {
                    *gi = -*gi;
                }
            };
            let verlet = |g: &Grid, y: &[f64], obs: &mut RowFn<'_>| {
                integrate::verlet(n, grad_v, &mass, g, &y[..n], &y[n..], &mut { obs })
            };
            match k.step_loop(Method::Verlet) {
                Some(f) => fixed_step_compiled(f, k.params(), &grid, &y0, &mut *rows, |g, y, obs| {
                    verlet(g, y, &mut |t, r| integrate::Observer::row(obs, t, r))
                }),
                None => verlet(&grid, &y0, &mut |t, r| integrate::Observer::row(&mut *rows, t, r)),
            }
        }
        (ModelKind::Energy, Method::Euler) => integrate::gradient_descent(&mut energy(), &grid, &y0, &mut *rows),
        (ModelKind::Energy, Method::Prox) => integrate::minimizing_movement(&mut energy(), &grid, &y0, &mut *rows),
        (kind, m) => Err(Failure {
            t: cfg.t0,
            state: y0.clone(),
            cause: Cause::Other(format!("method `{m}` does not fit this {kind} model")),
        }),
    }
}
