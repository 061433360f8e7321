//! Running a model: numeric kernels for its derived equations, the method
//! chosen by the model or the command line, and the rows of the trajectory.
//!
//! Rows are `t`, the coordinates, the velocities (`q'`), `energy` (`H` or `E`),
//! `grad_norm` (energy models), then the observed quantities.

use crate::derive::{Equations, LagrangianEquations};
use crate::integrate::{self, linalg, Cause, Failure, Grid, LagrangianPoint, LagrangianSystem, OdeSystem, Stats};
use crate::model::{Init, Method, Model, ModelKind};
use crate::program::Program;
use crate::sym::{ExprId, SymId};
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
        Ok(RunConfig { method, t0, t_end, dt, rtol, atol, every: every as usize })
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
}

/// A run that stopped early. Every row before it has been written.
#[derive(Clone, Debug)]
pub enum RunError {
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
            RunError::Setup(m) | RunError::Output(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RunError {}

/// The output column names of a model.
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
/// parameters' values. Random initial values are an ensemble's business;
/// here they take their mean.
pub fn initial_state(model: &Model) -> Vec<f64> {
    let env = model.env();
    let value = |i: &Init| match *i {
        Init::Value(x) => model.arena.eval(x, &env),
        Init::Normal { mean, .. } => model.arena.eval(mean, &env),
        Init::Uniform { lo, hi } => 0.5 * (model.arena.eval(lo, &env) + model.arena.eval(hi, &env)),
    };
    model.init.iter().chain(&model.init_velocity).map(value).collect()
}

/// Numeric kernels of a model, with inputs `[t, vars…, velocities…, params…]`.
struct Kernels {
    inputs: Vec<SymId>,
    params: Vec<f64>,
    /// `M` (n²) then `f` (n).
    rhs: Program,
    /// The Lagrangian point (see [`LagrangianPoint`]), Lagrangian models only.
    point: Option<Program>,
    /// `E` or `H`, then observes; for energy models also `∇E`.
    row: Program,
    grad: Option<Program>,
    hess: Option<Program>,
    metric: Option<Program>,
    n: usize,
}

fn flatten(m: &[Vec<ExprId>]) -> Vec<ExprId> {
    m.iter().flatten().copied().collect()
}

impl Kernels {
    fn new(model: &mut Model, eq: &Equations) -> Kernels {
        let n = model.vars.len();
        let mut inputs = vec![model.time];
        inputs.extend(model.var_syms());
        inputs.extend(model.velocity_syms());
        inputs.extend(model.param_syms());
        let params = model.params.iter().map(|p| p.value).collect();
        let observes: Vec<ExprId> = model.observes.iter().map(|(_, x)| *x).collect();
        match eq {
            Equations::Lagrangian(e) => {
                let point = lagrangian_point_exprs(model, e);
                let a = &model.arena;
                let mut rhs = flatten(&e.mass_matrix);
                rhs.extend(&e.forcing);
                let mut row = vec![e.energy];
                row.extend(&observes);
                Kernels {
                    rhs: Program::new(a, &inputs, &rhs),
                    point: Some(Program::new(a, &inputs, &point)),
                    row: Program::new(a, &inputs, &row),
                    grad: None,
                    hess: None,
                    metric: None,
                    inputs,
                    params,
                    n,
                }
            }
            Equations::Energy(e) => {
                // Kernels differentiate the energy as written, not its expanded
                // display form: expansion cancels digits near a minimum.
                let th = model.var_syms();
                let a = &mut model.arena;
                let raw = model.energy.unwrap_or(e.energy);
                let gradient: Vec<ExprId> = th.iter().map(|&s| a.diff(raw, s)).collect();
                let hessian: Vec<ExprId> =
                    gradient.iter().flat_map(|&g| th.iter().map(|&s| a.diff(g, s)).collect::<Vec<_>>()).collect();
                let mut row = vec![raw];
                row.extend(&gradient);
                row.extend(&observes);
                let metric = model.metric.as_ref().map(|g| Program::new(a, &inputs, &flatten(g)));
                Kernels {
                    rhs: Program::new(a, &inputs, &[]),
                    point: None,
                    row: Program::new(a, &inputs, &row),
                    grad: Some(Program::new(a, &inputs, &gradient)),
                    hess: Some(Program::new(a, &inputs, &hessian)),
                    metric,
                    inputs,
                    params,
                    n,
                }
            }
        }
    }

    /// The input vector for time `t` and state `y` (vars, then velocities).
    fn input(&self, t: f64, y: &[f64], x: &mut Vec<f64>) {
        x.clear();
        x.push(t);
        x.extend_from_slice(y);
        x.resize(self.inputs.len() - self.params.len(), 0.0);
        x.extend_from_slice(&self.params);
    }
}

/// `L_v, L_q, F, L_vv, L_vq, L_qq, F_v, F_q, L_vt` as expressions, in the
/// order [`LagrangianPoint`] stores them.
fn lagrangian_point_exprs(model: &mut Model, e: &LagrangianEquations) -> Vec<ExprId> {
    let q = model.var_syms();
    let v = model.velocity_syms();
    let n = q.len();
    let a = &mut model.arena;
    let lq: Vec<ExprId> = q.iter().map(|&s| a.diff(e.lagrangian, s)).collect();
    let force: Vec<ExprId> = (0..n)
        .map(|i| {
            let mut f = model.forces[i];
            if let Some(r) = e.dissipation {
                let rv = a.diff(r, v[i]);
                let nrv = a.neg(rv);
                f = a.add2(f, nrv);
            }
            f
        })
        .collect();
    let mut out = e.momenta.clone();
    out.extend(&lq);
    out.extend(&force);
    out.extend(flatten(&e.mass_matrix));
    for i in 0..n {
        for &qj in &q {
            out.push(a.diff(e.momenta[i], qj));
        }
    }
    for &lqi in &lq {
        for &qj in &q {
            out.push(a.diff(lqi, qj));
        }
    }
    for &fi in &force {
        for &vj in &v {
            out.push(a.diff(fi, vj));
        }
    }
    for &fi in &force {
        for &qj in &q {
            out.push(a.diff(fi, qj));
        }
    }
    for &p in &e.momenta {
        out.push(a.diff(p, model.time));
    }
    out
}

/// `y' = (v, M⁻¹f)` from the `M, f` kernel.
struct FirstOrder<'k> {
    k: &'k Kernels,
    x: Vec<f64>,
    out: Vec<f64>,
    scratch: Vec<f64>,
}

impl OdeSystem for FirstOrder<'_> {
    fn dim(&self) -> usize {
        2 * self.k.n
    }
    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
        let n = self.k.n;
        self.k.input(t, y, &mut self.x);
        self.out.resize(n * n + n, 0.0);
        self.k.rhs.run(&self.x, &mut self.out, &mut self.scratch);
        let (m, f) = self.out.split_at_mut(n * n);
        linalg::solve_spd_or_lu(m, f, n)?;
        dy[..n].copy_from_slice(&y[n..]);
        dy[n..].copy_from_slice(f);
        Ok(())
    }
    fn jacobian(&mut self, t: f64, y: &[f64], jac: &mut [f64]) -> Result<(), Cause> {
        finite_difference_jacobian(self, t, y, jac)
    }
}

/// Central differences, for methods that need `∂F/∂y` of a solved system.
fn finite_difference_jacobian(sys: &mut impl OdeSystem, t: f64, y: &[f64], jac: &mut [f64]) -> Result<(), Cause> {
    let d = sys.dim();
    let mut yp = y.to_vec();
    let (mut fp, mut fm) = (vec![0.0; d], vec![0.0; d]);
    for j in 0..d {
        let h = 1e-6 * y[j].abs().max(1.0);
        yp[j] = y[j] + h;
        sys.rhs(t, &yp, &mut fp)?;
        yp[j] = y[j] - h;
        sys.rhs(t, &yp, &mut fm)?;
        yp[j] = y[j];
        for i in 0..d {
            jac[i * d + j] = (fp[i] - fm[i]) / (2.0 * h);
        }
    }
    Ok(())
}

struct PointSystem<'k> {
    k: &'k Kernels,
    x: Vec<f64>,
    out: Vec<f64>,
    scratch: Vec<f64>,
}

impl LagrangianSystem for PointSystem<'_> {
    fn n(&self) -> usize {
        self.k.n
    }
    fn eval(&mut self, t: f64, q: &[f64], v: &[f64], p: &mut LagrangianPoint) -> Result<(), Cause> {
        let n = self.k.n;
        let mut y = q.to_vec();
        y.extend_from_slice(v);
        self.k.input(t, &y, &mut self.x);
        self.out.resize(4 * n + 5 * n * n, 0.0);
        self.k.point.as_ref().expect("Lagrangian kernels").run(&self.x, &mut self.out, &mut self.scratch);
        let mut rest: &[f64] = &self.out;
        for dst in [&mut p.lv, &mut p.lq, &mut p.force] {
            dst.copy_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        for dst in [&mut p.lvv, &mut p.lvq, &mut p.lqq, &mut p.force_v, &mut p.force_q] {
            dst.copy_from_slice(&rest[..n * n]);
            rest = &rest[n * n..];
        }
        p.lvt.copy_from_slice(&rest[..n]);
        if self.out.iter().any(|x| !x.is_finite()) {
            return Err(Cause::NonFinite);
        }
        Ok(())
    }
}

struct EnergySystem<'k> {
    k: &'k Kernels,
    x: Vec<f64>,
    scratch: Vec<f64>,
}

impl integrate::GradientSystem for EnergySystem<'_> {
    fn dim(&self) -> usize {
        self.k.n
    }
    fn energy(&mut self, t: f64, theta: &[f64]) -> f64 {
        self.k.input(t, theta, &mut self.x);
        // The row program starts with the energy; only that output is kept.
        let mut out = [0.0];
        self.k.row.run(&self.x, &mut out, &mut self.scratch);
        out[0]
    }
    fn gradient(&mut self, t: f64, theta: &[f64], grad: &mut [f64]) {
        self.k.input(t, theta, &mut self.x);
        self.k.grad.as_ref().expect("energy kernels").run(&self.x, grad, &mut self.scratch);
    }
    fn hessian(&mut self, t: f64, theta: &[f64], hess: &mut [f64]) {
        self.k.input(t, theta, &mut self.x);
        self.k.hess.as_ref().expect("energy kernels").run(&self.x, hess, &mut self.scratch);
    }
    fn metric(&mut self, t: f64, theta: &[f64], g: &mut [f64]) -> bool {
        match &self.k.metric {
            Some(m) => {
                self.k.input(t, theta, &mut self.x);
                m.run(&self.x, g, &mut self.scratch);
                true
            }
            None => false,
        }
    }
}

/// Turns integrator rows `(t, y)` into output rows with energy and observes.
struct Rows<'a> {
    k: &'a Kernels,
    kind: ModelKind,
    n_observes: usize,
    sink: &'a mut dyn RowSink,
    x: Vec<f64>,
    out: Vec<f64>,
    scratch: Vec<f64>,
    row: Vec<f64>,
    summary: Summary,
    h0: Option<f64>,
    /// Whether `H` is conserved, so that its drift is worth reporting.
    conservative: bool,
    /// Set when the sink refused a row.
    sink_error: Option<String>,
}

impl integrate::Observer for Rows<'_> {
    fn row(&mut self, t: f64, y: &[f64]) -> Result<(), String> {
        let n = self.k.n;
        self.k.input(t, y, &mut self.x);
        let extra = if self.kind == ModelKind::Energy { n } else { 0 };
        self.out.resize(1 + extra + self.n_observes, 0.0);
        self.k.row.run(&self.x, &mut self.out, &mut self.scratch);
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
        self.sink.row(&self.row).inspect_err(|e| self.sink_error = Some(e.clone()))
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
    if model.has_random_init() {
        return Err("this model has random initial values (`~`): ensemble runs are not supported yet".into());
    }
    if cfg.method == Method::Em {
        return Err("Langevin runs (method em) are not supported yet; use euler, prox, rk4 or dopri5".into());
    }
    if let (Method::Verlet, Equations::Lagrangian(e)) = (cfg.method, eq) {
        crate::derive::verlet_fits(model, e)
            .map_err(|why| format!("method `verlet` does not fit this model: {why}; use midpoint or variational"))?;
    }
    Ok(())
}

/// Runs a model with its derived equations, writing rows to `sink`.
pub fn run(model: &mut Model, eq: &Equations, cfg: &RunConfig, sink: &mut dyn RowSink) -> Result<Summary, RunError> {
    check(model, eq, cfg).map_err(RunError::Setup)?;
    let k = Kernels::new(model, eq);
    let y0 = initial_state(model);
    let n = model.vars.len();
    let grid = Grid { t0: cfg.t0, t_end: cfg.t_end, dt: cfg.dt, every: cfg.every };
    let mut rows = Rows {
        k: &k,
        kind: model.kind,
        n_observes: model.observes.len(),
        sink,
        x: vec![],
        out: vec![],
        scratch: vec![],
        row: vec![],
        summary: Summary::default(),
        h0: None,
        conservative: is_conservative(model, eq),
        sink_error: None,
    };
    let first = || FirstOrder { k: &k, x: vec![], out: vec![], scratch: vec![] };
    let point = || PointSystem { k: &k, x: vec![], out: vec![], scratch: vec![] };
    let energy = || EnergySystem { k: &k, x: vec![], scratch: vec![] };
    let result: Result<Stats, Failure> = match (model.kind, cfg.method) {
        (ModelKind::Lagrangian, Method::Rk4) => integrate::rk4(&mut first(), &grid, &y0, &mut rows),
        (ModelKind::Lagrangian, Method::Dopri5) => {
            integrate::dopri5(&mut first(), &grid, cfg.rtol, cfg.atol, &y0, &mut rows)
        }
        (ModelKind::Lagrangian, Method::Midpoint) => {
            integrate::midpoint(&mut integrate::lagrangian_system(point()), &grid, &y0, &mut rows)
        }
        (ModelKind::Lagrangian, Method::Variational) => {
            integrate::variational(&mut point(), &grid, &y0[..n], &y0[n..], &mut rows)
        }
        (ModelKind::Lagrangian, Method::Verlet) => {
            let mut f = first();
            let mut m_and_f = vec![0.0; n * n + n];
            let mut scratch = vec![];
            let mut x = vec![];
            k.input(cfg.t0, &y0, &mut x);
            k.rhs.run(&x, &mut m_and_f, &mut scratch);
            let mass: Vec<f64> = m_and_f[..n * n].to_vec();
            let grad_v = |t: f64, q: &[f64], g: &mut [f64]| {
                let mut y = q.to_vec();
                y.resize(2 * n, 0.0);
                f.k.input(t, &y, &mut f.x);
                f.out.resize(n * n + n, 0.0);
                f.k.rhs.run(&f.x, &mut f.out, &mut f.scratch);
                for (gi, fi) in g.iter_mut().zip(&f.out[n * n..]) {
                    *gi = -fi;
                }
            };
            integrate::verlet(n, grad_v, &mass, &grid, &y0[..n], &y0[n..], &mut rows)
        }
        (ModelKind::Energy, Method::Euler) => integrate::gradient_descent(&mut energy(), &grid, &y0, &mut rows),
        (ModelKind::Energy, Method::Prox) => integrate::minimizing_movement(&mut energy(), &grid, &y0, &mut rows),
        (ModelKind::Energy, Method::Rk4) => {
            integrate::rk4(&mut integrate::gradient_flow_system(energy()), &grid, &y0, &mut rows)
        }
        (ModelKind::Energy, Method::Dopri5) => {
            integrate::dopri5(&mut integrate::gradient_flow_system(energy()), &grid, cfg.rtol, cfg.atol, &y0, &mut rows)
        }
        (kind, m) => return Err(RunError::Setup(format!("method `{m}` does not fit this {kind} model"))),
    };
    let mut summary = std::mem::take(&mut rows.summary);
    match result {
        Ok(stats) => {
            summary.steps = stats.steps;
            summary.rejected = stats.rejected;
            Ok(summary)
        }
        Err(_) if rows.sink_error.is_some() => Err(RunError::Output(rows.sink_error.take().unwrap_or_default())),
        Err(f) => {
            let mut names = columns(model)[1..=f.state.len()].to_vec();
            names.truncate(f.state.len());
            Err(RunError::Numerical {
                t: f.t,
                state: names.into_iter().zip(f.state).collect(),
                cause: f.cause.to_string(),
            })
        }
    }
}
