//! `fokker-planck`: the density of a model's particles on a grid of cells (a
//! line in 1-D, `x` rows of `y` cells in 2-D), advanced by
//! [`crate::integrate::fokker_planck`] (docs/numerics.md §Fokker–Planck).
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
    /// Row-major, times × cells (× cells): the density (probability per unit length, or
    /// area) of each cell.
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

/// The grid: one axis, or two (`x` rows of `y` cells, row-major).
#[derive(Clone, Debug)]
struct Grid2 {
    axes: Vec<Cells>,
}

impl Grid2 {
    /// Cells along `x` and along `y` (1 for a 1-D grid).
    fn shape(&self) -> (usize, usize) {
        (self.axes[0].cells, self.axes.get(1).map_or(1, |c| c.cells))
    }

    /// The volume of a cell.
    fn dv(&self) -> f64 {
        self.axes.iter().map(Cells::h).product()
    }

    /// The state at the centre of cell `(i, j)`.
    fn centre(&self, i: usize, j: usize, out: &mut Vec<f64>) {
        out.clear();
        out.push(self.axes[0].centre(i));
        if let Some(y) = self.axes.get(1) {
            out.push(y.centre(j));
        }
    }
}

/// The grid and the model evaluated on it at one time.
struct Field<'a> {
    ctx: &'a Ctx<'a>,
    grid: Grid2,
    work: Work,
    out: Vec<f64>,
    at: Vec<f64>,
    /// `E` at the cell centres (row-major), and `T`.
    energy: Vec<f64>,
    temperature: f64,
    /// `W(x_i, x_j)` between the cells of a 1-D grid, row-major, with an `interaction`;
    /// empty otherwise. The potential the fluxes see: `E + W∗ρ`.
    pair: Vec<f64>,
    potential: Vec<f64>,
    /// The mobilities at the faces of each line along `x` and along `y`.
    x_mobility: Vec<Vec<f64>>,
    y_mobility: Vec<Vec<f64>>,
    /// The faces of each line of cells along `x` (one per `y` cell), and along `y` (one per
    /// `x` cell; none in 1-D).
    x_lines: Vec<Faces>,
    y_lines: Vec<Faces>,
}

impl Field<'_> {
    fn failure(&self, t: f64, at: &[f64], cause: Cause) -> RunError {
        let names = self.ctx.model.vars.iter().map(|v| v.name.clone());
        RunError::Numerical { t, state: names.zip(at.iter().copied()).collect(), cause, particle: None }
    }

    /// The mobility `1/g_kk` at the state `self.at` (1 without a metric).
    fn mobility(&mut self, t: f64, k: usize) -> Result<f64, RunError> {
        let kernels = self.ctx.k;
        let m = if kernels.has(Kernel::Metric) {
            let n = self.grid.axes.len();
            self.out.resize(n * n, 0.0);
            kernels.eval_at(Kernel::Metric, t, &self.at, &mut self.out, &mut self.work);
            1.0 / self.out[k * n + k]
        } else {
            1.0
        };
        if m.is_finite() && m > 0.0 {
            Ok(m)
        } else {
            Err(self.failure(t, &self.at.clone(), Cause::SingularMetric))
        }
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
        let (nx, ny) = self.grid.shape();
        self.energy.clear();
        self.out.resize(1, 0.0);
        for i in 0..nx {
            for j in 0..ny {
                self.grid.centre(i, j, &mut self.at);
                k.eval_at(Kernel::Energy, t, &self.at, &mut self.out, &mut self.work);
                if !self.out[0].is_finite() {
                    let why = "the energy is not finite in this cell: give a `domain` where E is defined";
                    return Err(self.failure(t, &self.at.clone(), Cause::Invalid(why.into())));
                }
                self.energy.push(self.out[0]);
            }
        }
        self.x_mobility.clear();
        for j in 0..ny {
            let mut m = Vec::with_capacity(nx);
            for f in 1..nx {
                self.grid.centre(f, j, &mut self.at);
                self.at[0] = self.grid.axes[0].edge(f);
                m.push(self.mobility(t, 0)?);
            }
            self.x_mobility.push(m);
        }
        self.y_mobility.clear();
        if self.grid.axes.len() == 2 {
            for i in 0..nx {
                let mut m = Vec::with_capacity(ny);
                for f in 1..ny {
                    self.grid.centre(i, f, &mut self.at);
                    self.at[1] = self.grid.axes[1].edge(f);
                    m.push(self.mobility(t, 1)?);
                }
                self.y_mobility.push(m);
            }
        }
        if k.has(Kernel::Pair) {
            self.pair.clear();
            let centres = self.grid.axes[0].centres();
            for &xi in &centres {
                for &xj in &centres {
                    k.input(t, &[xi, xj], &mut self.work.x);
                    k.eval(Kernel::Pair, &self.work.x, &mut self.out, &mut self.work.scratch);
                    if !self.out[0].is_finite() {
                        return Err(self.failure(t, &[xi], Cause::NonFinite));
                    }
                    self.pair.push(self.out[0]);
                }
            }
        }
        Ok(())
    }

    /// The potential `E + W∗ρ` (`E` alone without an interaction) and the faces' fluxes from it.
    fn faces(&mut self, rho: &[f64]) {
        let (nx, ny) = self.grid.shape();
        self.potential.clone_from(&self.energy);
        if !self.pair.is_empty() {
            let dv = self.grid.dv();
            for (i, v) in self.potential.iter_mut().enumerate() {
                *v += dv * self.pair[i * nx..(i + 1) * nx].iter().zip(rho).map(|(w, r)| w * r).sum::<f64>();
            }
        }
        let (hx, hy) = (self.grid.axes[0].h(), self.grid.axes.get(1).map_or(1.0, Cells::h));
        let temperature = self.temperature;
        let mut e = Vec::with_capacity(nx);
        self.x_lines.clear();
        for j in 0..ny {
            e.clear();
            e.extend((0..nx).map(|i| self.potential[i * ny + j]));
            self.x_lines.push(Faces::scharfetter_gummel(&e, &self.x_mobility[j], temperature, hx));
        }
        self.y_lines.clear();
        for (i, m) in self.y_mobility.iter().enumerate() {
            let line = &self.potential[i * ny..(i + 1) * ny];
            self.y_lines.push(Faces::scharfetter_gummel(line, m, temperature, hy));
        }
    }

    /// `½∬ W ρ ρ`, the interaction's energy (0 without one).
    fn pair_energy(&self, rho: &[f64]) -> f64 {
        let n = rho.len();
        if self.pair.is_empty() {
            return 0.0;
        }
        let dv = self.grid.dv();
        let mut sum = 0.0;
        for (i, ri) in rho.iter().enumerate() {
            sum += ri * self.pair[i * n..(i + 1) * n].iter().zip(rho).map(|(w, r)| w * r).sum::<f64>();
        }
        0.5 * dv * dv * sum
    }

    /// One step of `dt`: backward Euler along every line of cells in `x`, then in `y`
    /// (docs/numerics.md §Fokker–Planck); `Err` names the cell that failed.
    fn step(&mut self, rho: &mut [f64], dt: f64, t: f64, tri: &mut Tridiagonal) -> Result<(), RunError> {
        let (nx, ny) = self.grid.shape();
        let mut line = vec![0.0; nx];
        for j in 0..ny {
            for i in 0..nx {
                line[i] = rho[i * ny + j];
            }
            if let Err(cause) = fp::implicit_step(&mut line, dt, &self.x_lines[j], tri) {
                let i = line.iter().position(|r| !r.is_finite()).unwrap_or(0);
                self.grid.centre(i, j, &mut self.at);
                return Err(self.failure(t, &self.at.clone(), cause));
            }
            for i in 0..nx {
                rho[i * ny + j] = line[i];
            }
        }
        for (i, faces) in self.y_lines.iter().enumerate() {
            let cells = &mut rho[i * ny..(i + 1) * ny];
            if let Err(cause) = fp::implicit_step(cells, dt, faces, tri) {
                let j = cells.iter().position(|r| !r.is_finite()).unwrap_or(0);
                self.grid.centre(i, j, &mut self.at);
                return Err(self.failure(t, &self.at.clone(), cause));
            }
        }
        Ok(())
    }
}

/// The initial density of one variable: each cell's probability under its
/// `init` law, conditioned on the domain (unnormalised: the masses).
fn initial_masses(model: &Model, k: usize, cells: &Cells) -> Result<Vec<f64>, RunError> {
    let env = model.env();
    let v = |x| model.arena.eval(x, &env);
    let setup = |m: String| RunError::Setup(Cause::Invalid(m));
    let name = &model.vars[k].name;
    let mass: Vec<f64> = match model.init[k] {
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
    Ok(mass)
}

/// The initial density: the product of each variable's law (their `init`s
/// are independent), conditioned on the domain, per unit volume.
fn initial_density(model: &Model, grid: &Grid2) -> Result<Vec<f64>, RunError> {
    let x = initial_masses(model, 0, &grid.axes[0])?;
    let y = if grid.axes.len() == 2 { initial_masses(model, 1, &grid.axes[1])? } else { vec![1.0] };
    let total: f64 = x.iter().sum::<f64>() * y.iter().sum::<f64>();
    let dv = grid.dv();
    Ok(x.iter().flat_map(|a| y.iter().map(move |b| a * b / total / dv)).collect())
}

/// Runs the density of a 1-D or 2-D energy model from `t0` to `t_end` and
/// writes a row per output time.
pub(super) fn run(ctx: &Ctx<'_>, sink: &mut dyn RowSink) -> Result<Summary, RunError> {
    let (model, cfg) = (ctx.model, ctx.cfg);
    let env = model.env();
    let mut axes = vec![];
    for (k, var) in model.vars.iter().enumerate() {
        let domain = model.domain_of(k).expect("plan::misfit asks for a domain");
        let (lo, hi) = (model.arena.eval(domain.lo, &env), model.arena.eval(domain.hi, &env));
        if !(lo < hi && lo.is_finite() && hi.is_finite()) {
            return Err(RunError::Setup(Cause::Invalid(format!(
                "the domain [{}, {}] of `{}` is not an interval",
                fmt_float(lo),
                fmt_float(hi),
                var.name
            ))));
        }
        axes.push(Cells { lo, hi, cells: cfg.cells });
    }
    let grid = Grid2 { axes };
    let (nx, ny) = grid.shape();
    let dv = grid.dv();
    let mut rho = initial_density(model, &grid)?;
    let times = Grid { t0: cfg.t0, t_end: cfg.t_end, dt: cfg.dt, every: cfg.every };
    let steps = times.steps().map_err(RunError::Setup)?;
    let mut field = Field {
        ctx,
        grid: grid.clone(),
        work: Work::default(),
        out: vec![],
        at: vec![],
        energy: vec![],
        temperature: 0.0,
        x_lines: vec![],
        y_lines: vec![],
        pair: vec![],
        potential: vec![],
        x_mobility: vec![],
        y_mobility: vec![],
    };
    field.at(times.t0)?;
    field.faces(&rho);
    let varying = varies(model);
    let interacting = model.interaction.is_some();
    let mut density = cfg.keep_density.then(|| Density {
        axes: model
            .vars
            .iter()
            .zip(&grid.axes)
            .map(|(v, c)| Axis { name: v.name.clone(), edges: c.edges(), centres: c.centres() })
            .collect(),
        ..Density::default()
    });
    let mut summary = Summary::default();
    let mut row = Vec::with_capacity(ctx.plan.columns.len());
    let mut marginal = vec![];
    let mut record = |t: f64, rho: &[f64], field: &Field<'_>, summary: &mut Summary| -> Result<(), RunError> {
        let mut f = Functionals::of(rho, &field.energy, field.temperature, dv);
        let w = field.pair_energy(rho);
        f.energy += w;
        f.free_energy += w;
        row.clear();
        row.extend_from_slice(&[t, f.mass]);
        for (k, axis) in grid.axes.iter().enumerate() {
            marginal.clear();
            if k == 0 {
                marginal.extend(rho.chunks(ny).map(|r| r.iter().sum::<f64>()));
            } else {
                marginal.extend((0..ny).map(|j| (0..nx).map(|i| rho[i * ny + j]).sum::<f64>()));
            }
            let (mean, std) = fp::moments(&marginal, |i| axis.centre(i));
            row.extend_from_slice(&[mean, std]);
        }
        row.extend_from_slice(&[f.energy, f.entropy, f.free_energy]);
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
    record(times.t0, &rho, &field, &mut summary)?;
    let mut tri = Tridiagonal::default();
    for step in 0..steps {
        let t = times.time(step, steps);
        if ctx.control.interrupted() {
            return Err(RunError::Interrupted { t });
        }
        let t1 = times.time(step + 1, steps);
        if varying {
            field.at(t1)?;
        }
        if varying || interacting {
            // W∗ρ at the step's start: the step is implicit in ρ through E, explicit through W∗ρ.
            field.faces(&rho);
        }
        field.step(&mut rho, t1 - t, t, &mut tri)?;
        summary.steps = step + 1;
        ctx.control.add_progress(1);
        if times.is_output(step + 1, steps) {
            record(t1, &rho, &field, &mut summary)?;
        }
    }
    summary.density = density;
    Ok(summary)
}
