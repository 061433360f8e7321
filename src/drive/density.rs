//! `fokker-planck`: the density of a model's particles on a grid of cells,
//! advanced by [`integrate::fokker_planck`] (docs/numerics.md §Fokker–Planck).
//!
//! The energy (and the metric, whose inverse is the mobility) are evaluated on
//! the grid by the plan's compiled kernels: `E` at the cell centres, `g` at the
//! faces between cells. When `E`, `g` or the temperature depend on time they are
//! evaluated again at the end of every step (the time the implicit step solves
//! at); otherwise once. The random `init` is the initial density: a normal law's
//! or a uniform law's probability of each cell, conditioned on the domain.

use super::rows::RowSink;
use super::{Ctx, RunError, Summary};
use crate::backend::Work;
use crate::integrate::fokker_planck::{self as fp, Cells, Faces, Functionals, Tridiagonal};
use crate::integrate::{Cause, Grid};
use crate::model::{Init, Model};
use crate::plan::Kernel;
use crate::sym::{fmt_float, SymKind};

/// One axis of the grid: its variable, the cells' edges and centres.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Axis {
    pub name: String,
    pub edges: Vec<f64>,
    pub centres: Vec<f64>,
}

/// The density at every output time of a `fokker-planck` run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Density {
    pub axes: Vec<Axis>,
    pub times: Vec<f64>,
    /// Row-major, times × cells: the density (probability per unit length) of each cell.
    pub values: Vec<f64>,
}

impl Density {
    /// The number of cells of one frame.
    pub fn frame_len(&self) -> usize {
        self.axes.iter().map(|a| a.centres.len()).product()
    }

    /// The density at output time `k`.
    pub fn frame(&self, k: usize) -> &[f64] {
        let n = self.frame_len();
        &self.values[k * n..(k + 1) * n]
    }
}

/// What changes with time: whether `E`, `g` or `T` depend on `t`.
fn varies(model: &Model) -> bool {
    let a = &model.arena;
    let timed = |x| a.depends(x, |k| k == SymKind::Time);
    model.energy.is_some_and(timed)
        || model.temperature.is_some_and(timed)
        || model.metric.iter().flatten().flatten().any(|&g| timed(g))
}

/// The grid and the model evaluated on it at one time.
struct Field<'a> {
    ctx: &'a Ctx<'a>,
    cells: Cells,
    work: Work,
    out: Vec<f64>,
    /// `E` at the cell centres, `1/g` at the interior faces, `T`.
    energy: Vec<f64>,
    mobility: Vec<f64>,
    temperature: f64,
    faces: Faces,
}

impl Field<'_> {
    fn failure(&self, t: f64, x: f64, cause: Cause) -> RunError {
        let name = self.ctx.model.vars[0].name.clone();
        RunError::Numerical { t, state: vec![(name, x)], cause, particle: None }
    }

    /// Evaluates `E`, `g` and `T` at time `t` and the faces' fluxes from them.
    fn at(&mut self, t: f64) -> Result<(), RunError> {
        let (model, k) = (self.ctx.model, self.ctx.k);
        let temperature = match model.temperature {
            Some(x) => {
                let mut env = model.env();
                env.set(model.time, t);
                model.arena.eval(x, &env)
            }
            None => 0.0,
        };
        if !(temperature >= 0.0 && temperature.is_finite()) {
            return Err(RunError::Setup(Cause::Invalid(format!(
                "the temperature must be a finite number ≥ 0, not {} (at t = {})",
                fmt_float(temperature),
                fmt_float(t)
            ))));
        }
        self.temperature = temperature;
        self.out.resize(1, 0.0);
        self.energy.clear();
        for i in 0..self.cells.cells {
            let x = self.cells.centre(i);
            k.eval_at(Kernel::Energy, t, &[x], &mut self.out, &mut self.work);
            if !self.out[0].is_finite() {
                return Err(self.failure(t, x, Cause::NonFinite));
            }
            self.energy.push(self.out[0]);
        }
        self.mobility.clear();
        for f in 1..self.cells.cells {
            let x = self.cells.edge(f);
            let m = if k.has(Kernel::Metric) {
                k.eval_at(Kernel::Metric, t, &[x], &mut self.out, &mut self.work);
                1.0 / self.out[0]
            } else {
                1.0
            };
            if !(m.is_finite() && m > 0.0) {
                return Err(self.failure(t, x, Cause::SingularMetric));
            }
            self.mobility.push(m);
        }
        self.faces = Faces::scharfetter_gummel(&self.energy, &self.mobility, temperature, self.cells.h());
        Ok(())
    }
}

/// The initial density: each cell's probability under the `init` law,
/// conditioned on the domain, divided by the cell's width.
fn initial_density(model: &Model, cells: &Cells) -> Result<Vec<f64>, RunError> {
    let env = model.env();
    let v = |x| model.arena.eval(x, &env);
    let setup = |m: String| RunError::Setup(Cause::Invalid(m));
    let name = &model.vars[0].name;
    let mass: Vec<f64> = match model.init[0] {
        Init::Normal { mean, std } => {
            let (m, s) = (v(mean), v(std));
            if !(s > 0.0 && s.is_finite() && m.is_finite()) {
                return Err(setup(format!(
                    "the initial density normal({}, {}) of `{name}` needs a finite mean and a positive standard \
                     deviation",
                    fmt_float(m),
                    fmt_float(s)
                )));
            }
            (0..cells.cells).map(|i| fp::normal_mass(cells.edge(i), cells.edge(i + 1), m, s)).collect()
        }
        Init::Uniform { lo, hi } => {
            let (a, b) = (v(lo), v(hi));
            if !(a < b && a.is_finite() && b.is_finite()) {
                return Err(setup(format!(
                    "the initial density uniform({}, {}) of `{name}` needs finite bounds, the lower one first",
                    fmt_float(a),
                    fmt_float(b)
                )));
            }
            (0..cells.cells).map(|i| (cells.edge(i + 1).min(b) - cells.edge(i).max(a)).max(0.0) / (b - a)).collect()
        }
        Init::Value(_) => unreachable!("plan::misfit refuses a point mass"),
    };
    let total: f64 = mass.iter().sum();
    if total.is_nan() || total <= 1e-300 {
        return Err(setup(format!(
            "the initial density of `{name}` has no mass in its domain [{}, {}]; widen the domain or move the init",
            fmt_float(cells.lo),
            fmt_float(cells.hi)
        )));
    }
    let h = cells.h();
    Ok(mass.iter().map(|m| m / total / h).collect())
}

/// Runs the density of a 1-D energy model from `t0` to `t_end` and writes a
/// row per output time.
pub(super) fn run(ctx: &Ctx<'_>, sink: &mut dyn RowSink) -> Result<Summary, RunError> {
    let (model, cfg) = (ctx.model, ctx.cfg);
    let env = model.env();
    let domain = model.domain_of(0).expect("plan::misfit asks for a domain");
    let (lo, hi) = (model.arena.eval(domain.lo, &env), model.arena.eval(domain.hi, &env));
    if !(lo < hi && lo.is_finite() && hi.is_finite()) {
        return Err(RunError::Setup(Cause::Invalid(format!(
            "the domain [{}, {}] of `{}` is not an interval",
            fmt_float(lo),
            fmt_float(hi),
            model.vars[0].name
        ))));
    }
    let cells = Cells { lo, hi, cells: cfg.cells };
    let h = cells.h();
    let mut rho = initial_density(model, &cells)?;
    let grid = Grid { t0: cfg.t0, t_end: cfg.t_end, dt: cfg.dt, every: cfg.every };
    let steps = grid.steps().map_err(RunError::Setup)?;
    let mut field = Field {
        ctx,
        cells,
        work: Work::default(),
        out: vec![],
        energy: vec![],
        mobility: vec![],
        temperature: 0.0,
        faces: Faces::default(),
    };
    field.at(grid.t0)?;
    let varying = varies(model);
    let mut density = cfg.keep_density.then(|| Density {
        axes: vec![Axis { name: model.vars[0].name.clone(), edges: cells.edges(), centres: cells.centres() }],
        ..Density::default()
    });
    let mut summary = Summary::default();
    let mut row = Vec::with_capacity(7);
    let mut record = |t: f64, rho: &[f64], field: &Field<'_>, summary: &mut Summary| -> Result<(), RunError> {
        let f = Functionals::of(rho, &field.energy, field.temperature, h);
        let (mean, std) = fp::moments(rho, |i| cells.centre(i));
        row.clear();
        row.extend_from_slice(&[t, f.mass, mean, std, f.energy, f.entropy, f.free_energy]);
        sink.row(&row)?;
        if let Some(d) = density.as_mut() {
            d.times.push(t);
            d.values.extend_from_slice(rho);
        }
        summary.rows += 1;
        summary.final_energy = f.free_energy;
        summary.final_means = ctx.plan.columns[1..].iter().cloned().zip(row[1..].iter().copied()).collect();
        Ok(())
    };
    record(grid.t0, &rho, &field, &mut summary)?;
    let mut tri = Tridiagonal::default();
    for step in 0..steps {
        let t = grid.time(step, steps);
        if ctx.control.interrupted() {
            return Err(RunError::Interrupted { t });
        }
        let t1 = grid.time(step + 1, steps);
        if varying {
            field.at(t1)?;
        }
        if let Err(cause) = fp::implicit_step(&mut rho, t1 - t, &field.faces, &mut tri) {
            let worst = rho.iter().position(|r| !r.is_finite()).unwrap_or(0);
            return Err(field.failure(t, cells.centre(worst), cause));
        }
        summary.steps = step + 1;
        ctx.control.add_progress(1);
        if grid.is_output(step + 1, steps) {
            record(t1, &rho, &field, &mut summary)?;
        }
    }
    summary.density = density;
    summary.particles = 0;
    Ok(summary)
}
