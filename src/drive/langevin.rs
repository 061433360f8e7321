//! Langevin dynamics: a block of particles advanced together, one step at a
//! time, by Euler–Maruyama or BAOAB (docs/numerics.md §Euler–Maruyama,
//! §Underdamped Langevin, §Riemannian Langevin, §BAOAB).
//!
//! Particle `p` draws its initial values and then its noise from its own
//! stream, so an ensemble does not depend on the thread count. The
//! temperature may follow a schedule `T(t)`; it is evaluated once per step, at
//! the step's start (Itô). The noise of a step is
//! - energy models, constant metric: `√(2Th) g^{-1/2} ξ`;
//! - energy models, metric `g(θ)`: `√(2Th) L⁻ᵀ ξ` with `g = LLᵀ`, plus the drift
//!   `h T ∇·g⁻¹`;
//! - Lagrangian models: `√(2Th) M⁻¹ Γ^{1/2} ξ` on the velocities, once per run
//!   when `M` and `Γ` are constant, else per particle and step.

use super::ensemble::{empty_result, initial_state, stream, BlockResult, Out};
use super::rows::{Ledger, Rows, StopReason};
use super::systems::FirstOrder;
use super::{Ctx, Summary};
use crate::backend::{failure_cause, Kernels, Work};
use crate::integrate::{self, linalg, Cause, Failure, Grid, OuStep};
use crate::model::{Method, Model, ModelKind};
use crate::plan::Kernel;
use crate::sym::{ExprId, SymKind};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// The temperature of a run: a number, or a schedule `T(t)` of time and parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Temperature {
    Constant(f64),
    Schedule(ExprId),
}

impl Temperature {
    /// The model's temperature (zero without one).
    pub(crate) fn of(model: &Model) -> Temperature {
        match model.temperature {
            None => Temperature::Constant(0.0),
            Some(t) if model.arena.depends(t, |k| k == SymKind::Time) => Temperature::Schedule(t),
            Some(t) => Temperature::Constant(model.arena.eval(t, &model.env())),
        }
    }

    /// `T(t)`, checked to be a non-negative number.
    pub(crate) fn at(self, model: &Model, t: f64) -> Result<f64, Cause> {
        let value = match self {
            Temperature::Constant(v) => v,
            Temperature::Schedule(e) => {
                let mut env = model.env();
                env.set(model.time, t);
                model.arena.eval(e, &env)
            }
        };
        if value >= 0.0 && value.is_finite() {
            Ok(value)
        } else {
            Err(Cause::Invalid(format!(
                "the temperature must be a non-negative number, not {} (at t = {})",
                crate::sym::fmt_float(value),
                crate::sym::fmt_float(t)
            )))
        }
    }
}

/// A constant noise matrix: row-major, or its diagonal.
enum Scale {
    Dense(Vec<f64>),
    Diagonal(Vec<f64>),
}

impl Scale {
    /// `out = c · S ξ`.
    #[inline]
    fn apply(&self, c: f64, xi: &[f64], out: &mut [f64]) {
        match self {
            Scale::Dense(s) => integrate::em_noise(s, c, xi, out),
            Scale::Diagonal(s) => {
                for ((o, si), x) in out.iter_mut().zip(s).zip(xi) {
                    *o = c * (si * x);
                }
            }
        }
    }
}

/// How the noise of one particle's step is made.
enum Diffusion {
    /// `√2 S` with `SSᵀ` the diffusion matrix over `T`, the same for every particle;
    /// it enters the state at `offset` (the velocities of a Lagrangian model).
    Constant { s: Scale, offset: usize },
    /// `M(q)` or `Γ(q)` depend on the state or on time.
    Mechanical,
    /// A metric `g(θ)`: its Cholesky factor and the divergence of its inverse.
    Riemannian,
}

/// A Langevin run's fixed parts.
struct Dynamics<'a> {
    k: &'a Kernels,
    n: usize,
    dim: usize,
    temperature: Temperature,
    diffusion: Diffusion,
    /// Constant `M` and `Γ` (BAOAB's Ornstein–Uhlenbeck step).
    mechanical: Option<crate::plan::MechanicalNoise>,
}

impl<'a> Dynamics<'a> {
    fn new(ctx: &Ctx<'a>) -> Result<Dynamics<'a>, Cause> {
        let (model, k) = (ctx.model, ctx.k);
        let n = k.n;
        let dim = if model.kind == ModelKind::Lagrangian { 2 * n } else { n };
        // A constant matrix is the same at any state: take it at zero.
        let (t0, zero, mut work) = (ctx.cfg.t0, vec![0.0; dim], Work::default());
        let mut at = |kernel: Kernel| {
            let mut out = vec![0.0; k.outputs(kernel)];
            k.eval_at(kernel, t0, &zero, &mut out, &mut work);
            out
        };
        let diffusion = match (model.kind, &ctx.plan.mechanical_noise) {
            (ModelKind::Energy, _) if !ctx.plan.constant_noise => Diffusion::Riemannian,
            (ModelKind::Energy, _) if k.has(Kernel::Metric) => Diffusion::Constant {
                s: Scale::Dense(integrate::noise_scale(1.0, Some(&at(Kernel::Metric)), n)?),
                offset: 0,
            },
            (ModelKind::Energy, _) => {
                Diffusion::Constant { s: Scale::Diagonal(vec![std::f64::consts::SQRT_2; n]), offset: 0 }
            }
            (ModelKind::Lagrangian, Some(c)) if c.diagonal => {
                let mut s = Vec::with_capacity(n);
                for (&m, &g) in c.mass.iter().zip(&c.friction) {
                    if !(m > 0.0 && m.is_finite()) {
                        return Err(Cause::SingularMassMatrix);
                    }
                    s.push(std::f64::consts::SQRT_2 * integrate::psd_sqrt(&[g], 1)?[0] / m);
                }
                Diffusion::Constant { s: Scale::Diagonal(s), offset: n }
            }
            (ModelKind::Lagrangian, Some(c)) => {
                Diffusion::Constant { s: Scale::Dense(mechanical_scale(&c.mass, &c.friction, n)?), offset: n }
            }
            (ModelKind::Lagrangian, None) => Diffusion::Mechanical,
        };
        Ok(Dynamics {
            k,
            n,
            dim,
            temperature: Temperature::of(model),
            diffusion,
            mechanical: ctx.plan.mechanical_noise.clone(),
        })
    }

    /// The increment `out` (length `dim`) that the noise adds to a particle at
    /// `(t, y)` over a step `h` at temperature `temp`, for the draws `xi`.
    #[allow(clippy::too_many_arguments)]
    fn kick(
        &self,
        t: f64,
        h: f64,
        temp: f64,
        y: &[f64],
        xi: &[f64],
        out: &mut [f64],
        work: &mut Work,
        buf: &mut Scratch,
    ) -> Result<(), Cause> {
        let n = self.n;
        // `out` is the particle's row of a buffer that starts at zero; the part of the
        // state the noise never enters (a Lagrangian's positions) stays zero.
        let c = (h * temp).sqrt();
        match &self.diffusion {
            Diffusion::Constant { s, offset } => s.apply(c, xi, &mut out[*offset..*offset + n]),
            Diffusion::Mechanical => {
                self.eval(Kernel::Mass, t, y, work, &mut buf.a);
                self.eval(Kernel::Friction, t, y, work, &mut buf.b);
                let s = mechanical_scale(&buf.a, &buf.b, n)?;
                integrate::em_noise(&s, c, xi, &mut out[n..2 * n]);
            }
            Diffusion::Riemannian => {
                self.eval(Kernel::Metric, t, y, work, &mut buf.a);
                let l = linalg::cholesky(&buf.a, n).ok_or(Cause::SingularMetric)?;
                // z = L⁻ᵀ ξ, so that z zᵀ has mean g⁻¹.
                let z = &mut out[..n];
                z.copy_from_slice(xi);
                for i in (0..n).rev() {
                    let s: f64 = (i + 1..n).map(|j| l[j * n + i] * z[j]).sum();
                    z[i] = (z[i] - s) / l[i * n + i];
                }
                let scale = (2.0f64).sqrt() * c;
                z.iter_mut().for_each(|x| *x *= scale);
                self.eval(Kernel::Divergence, t, y, work, &mut buf.b);
                for (o, d) in out.iter_mut().zip(&buf.b) {
                    *o += h * temp * d;
                }
            }
        }
        Ok(())
    }

    /// A kernel's outputs at `(t, y)`, into `out`.
    fn eval(&self, kernel: Kernel, t: f64, y: &[f64], work: &mut Work, out: &mut Vec<f64>) {
        out.resize(self.k.outputs(kernel), 0.0);
        self.k.eval_at(kernel, t, y, out, work);
    }
}

/// Buffers of a block's noise, reused from particle to particle.
#[derive(Default)]
struct Scratch {
    a: Vec<f64>,
    b: Vec<f64>,
}

/// `√2 M⁻¹ Γ^{1/2}`: the velocities' noise matrix over `√T` of underdamped Langevin dynamics.
fn mechanical_scale(m: &[f64], gamma: &[f64], n: usize) -> Result<Vec<f64>, Cause> {
    let b = integrate::psd_sqrt(gamma, n)?;
    let f = linalg::factor(m, n).map_err(|_| Cause::SingularMassMatrix)?;
    let mut s = vec![0.0; n * n];
    let mut col = vec![0.0; n];
    for j in 0..n {
        for i in 0..n {
            col[i] = b[i * n + j];
        }
        f.solve(&mut col);
        for i in 0..n {
            s[i * n + j] = std::f64::consts::SQRT_2 * col[i];
        }
    }
    Ok(s)
}

/// Every particle of `range` from its initial state to `t_end`, by `em` or
/// `baoab`, with the rows written at the output times.
pub(super) fn block(ctx: &Ctx<'_>, range: std::ops::Range<usize>, mut out: Out<'_>) -> BlockResult {
    let (k, cfg) = (ctx.k, ctx.cfg);
    let n = k.n;
    let count = range.len();
    let mut rngs: Vec<ChaCha8Rng> = range.clone().map(|p| stream(cfg.seed, p)).collect();
    let mut theta: Vec<f64> = rngs.iter_mut().flat_map(|r| initial_state(ctx.model, r)).collect();
    let mut res = empty_result();
    let fail_at = |res: &mut BlockResult, t: f64, state: &[f64], cause: Cause| {
        res.failure = Some((range.start, 0, Failure { t, state: state.to_vec(), cause }, None));
    };
    let dynamics = match Dynamics::new(ctx) {
        Ok(d) => d,
        Err(c) => {
            fail_at(&mut res, cfg.t0, &theta[..n.min(theta.len())], c);
            return res;
        }
    };
    let dim = dynamics.dim;
    let grid = Grid { t0: cfg.t0, t_end: cfg.t_end, dt: cfg.dt, every: cfg.every };
    let steps = match grid.steps() {
        Ok(s) => s,
        Err(c) => {
            fail_at(&mut res, cfg.t0, &theta[..dim], c);
            return res;
        }
    };
    let mut ledgers: Vec<Ledger> = if ctx.plan.thermo { vec![Ledger::default(); count] } else { vec![] };
    let mut work = Work::default();
    let mut finals: Vec<Vec<f64>> = vec![vec![]; count];
    let mut summary = Summary::default();
    // Writes every particle's row at time `t`; `Err` when the sink stopped the run.
    let mut record = |out: &mut Out<'_>,
                      t: f64,
                      theta: &[f64],
                      ledgers: &mut [Ledger],
                      written: &mut usize,
                      work: &mut Work|
     -> Result<(), StopReason> {
        if let Out::Moments(a) = out {
            a.row = a.moments.len();
        }
        let mut rows = Rows::new(ctx.plan, k, out, super::Control::default(), false);
        for (p, y) in theta.chunks(dim).enumerate() {
            let r = match ledgers.get_mut(p) {
                Some(l) => {
                    l.advance(k, work, t, y);
                    rows.row_with(t, y, l)
                }
                None => integrate::Observer::row(&mut rows, t, y),
            };
            // Moments never refuse a row; a stream may.
            if r.is_err() {
                return Err(rows.stop.take().expect("a stopped row says why"));
            }
            finals[p].clear();
            finals[p].extend_from_slice(&rows.last_row()[1..]);
        }
        *written += 1;
        summary.rows += rows.summary.rows;
        summary.final_energy = rows.summary.final_energy;
        summary.final_grad_norm = rows.summary.final_grad_norm;
        Ok(())
    };
    let mut written = 0;
    if let Err(stop) = record(&mut out, grid.t0, &theta, &mut ledgers, &mut written, &mut work) {
        let f = Failure { t: grid.t0, state: theta[..dim].to_vec(), cause: Cause::Stopped };
        res.failure = Some((range.start, 0, f, Some(stop)));
    }
    let mut stepper = match cfg.method {
        Method::Baoab => Stepper::baoab(&dynamics, &theta),
        _ => Stepper::em(&dynamics, theta.len()),
    };
    // A batched em run is one particle (`Plan::with_batch`): one minibatch per step.
    let mut draws = ctx.plan.batch.map(|b| crate::batch::Draws::new(b, cfg.seed, range.start));
    let mut xi = vec![0.0; count * n];
    for step in 0..steps {
        if res.failure.is_some() {
            break;
        }
        let t = grid.time(step, steps);
        if ctx.control.interrupted() {
            let f = Failure { t, state: theta[..dim].to_vec(), cause: Cause::Stopped };
            res.failure = Some((range.start, written, f, Some(StopReason::Interrupted)));
            break;
        }
        let h = grid.time(step + 1, steps) - t;
        for (p, rng) in rngs.iter_mut().enumerate() {
            for x in &mut xi[p * n..(p + 1) * n] {
                *x = rng.sample::<f64, _>(StandardNormal);
            }
        }
        if let Some(d) = draws.as_mut() {
            d.next();
        }
        let moved = dynamics
            .temperature
            .at(ctx.model, t)
            .map_err(|c| (0, c))
            .and_then(|temp| stepper.step(&dynamics, t, h, temp, &mut theta, &xi, &mut work));
        if let Err((i, cause)) = moved {
            let state = theta[i * dim..(i + 1) * dim].to_vec();
            res.failure = Some((range.start + i, written, Failure { t, state, cause }, None));
            break;
        }
        let t_next = grid.time(step + 1, steps);
        res.steps = step + 1;
        ctx.control.add_progress(count);
        if grid.is_output(step + 1, steps) {
            if let Err(stop) = record(&mut out, t_next, &theta, &mut ledgers, &mut written, &mut work) {
                let f = Failure { t: t_next, state: theta[..dim].to_vec(), cause: Cause::Stopped };
                res.failure = Some((range.start, written, f, Some(stop)));
            }
        } else if k.has(Kernel::Power) {
            for (l, y) in ledgers.iter_mut().zip(theta.chunks(dim)) {
                l.advance(k, &mut work, t_next, y);
            }
        }
    }
    res.summary = summary;
    res.finals = finals;
    if let Out::Moments(a) = out {
        res.moments = a.moments;
        res.times = a.times;
        res.sample = a.sample;
    }
    res
}

/// The method's step of a whole block.
enum Stepper<'k> {
    /// Euler–Maruyama: the compiled block step (or its Rust twin) after the noise.
    Em { noise: Vec<f64>, twin: FirstOrder<'k> },
    /// BAOAB: each particle's acceleration at its current state (first same as last),
    /// and the OU step of the last step size.
    Baoab { accel: Vec<f64>, ou: Option<(f64, OuStep)>, started: bool, twin: FirstOrder<'k> },
}

impl<'k> Stepper<'k> {
    fn em(d: &Dynamics<'k>, len: usize) -> Stepper<'k> {
        Stepper::Em { noise: vec![0.0; len], twin: FirstOrder { k: d.k, work: Work::default(), draws: None } }
    }

    fn baoab(d: &Dynamics<'k>, theta: &[f64]) -> Stepper<'k> {
        let count = theta.len() / d.dim.max(1);
        Stepper::Baoab {
            accel: vec![0.0; count * d.n],
            ou: None,
            started: false,
            twin: FirstOrder { k: d.k, work: Work::default(), draws: None },
        }
    }

    /// Moves every particle of `theta` from `t` to `t + h`; on failure, the
    /// index of the first particle that failed and why.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        d: &Dynamics<'_>,
        t: f64,
        h: f64,
        temp: f64,
        theta: &mut [f64],
        xi: &[f64],
        work: &mut Work,
    ) -> Result<(), (usize, Cause)> {
        let (n, dim) = (d.n, d.dim);
        match self {
            Stepper::Em { noise, twin } => {
                let mut buf = Scratch::default();
                for (p, y) in theta.chunks(dim).enumerate() {
                    let out = &mut noise[p * dim..(p + 1) * dim];
                    d.kick(t, h, temp, y, &xi[p * n..(p + 1) * n], out, work, &mut buf).map_err(|c| (p, c))?;
                }
                match d.k.em_block() {
                    Some(f) => {
                        f.call(t, h, theta, noise, d.k.params()).map_err(|(i, c)| (i, failure_cause(d.k.kind, c)))
                    }
                    None => integrate::em_block_step(twin, t, h, theta, noise),
                }
            }
            Stepper::Baoab { accel, ou, started, twin } => {
                let mut y = vec![0.0; dim];
                let mut dy = vec![0.0; dim];
                let mut acc = |t: f64, q: &[f64], a: &mut [f64]| -> Result<(), Cause> {
                    // With constant M and forces of q and t alone, M⁻¹F(q, t) is the
                    // acceleration at v = 0.
                    y[..n].copy_from_slice(q);
                    y[n..].iter_mut().for_each(|v| *v = 0.0);
                    integrate::OdeSystem::rhs(twin, t, &y, &mut dy)?;
                    a.copy_from_slice(&dy[n..]);
                    Ok(())
                };
                if !*started {
                    for (p, s) in theta.chunks(dim).enumerate() {
                        acc(t, &s[..n], &mut accel[p * n..(p + 1) * n]).map_err(|c| (p, c))?;
                    }
                    *started = true;
                }
                if ou.as_ref().is_none_or(|(h0, _)| *h0 != h) {
                    let c = d
                        .mechanical
                        .as_ref()
                        .ok_or_else(|| (0, Cause::Invalid("baoab needs a constant mass matrix and friction".into())))?;
                    let step = if c.diagonal {
                        OuStep::diagonal(&c.mass, &c.friction, h)
                    } else {
                        OuStep::new(&c.mass, &c.friction, n, h)
                    };
                    *ou = Some((h, step.map_err(|c| (0, c))?));
                }
                let ou = &ou.as_ref().expect("set above").1;
                let mut tmp = vec![0.0; n];
                let sqrt_t = temp.sqrt();
                for (p, s) in theta.chunks_mut(dim).enumerate() {
                    let (q, v) = s.split_at_mut(n);
                    let a = &mut accel[p * n..(p + 1) * n];
                    integrate::baoab_step(&mut acc, ou, sqrt_t, t, h, q, v, a, &xi[p * n..(p + 1) * n], &mut tmp)
                        .map_err(|c| (p, c))?;
                }
                Ok(())
            }
        }
    }
}
