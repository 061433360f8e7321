//! Ensembles: many particles of one model, each on its own reproducible
//! random stream, run in parallel and summarised per output time by the
//! mean and standard deviation of every column.
//!
//! **Invariant:** the result depends on the seed and the particle count,
//! never on the number of threads. Particles are grouped in blocks of fixed
//! size; each block is computed independently (in any thread) and the
//! blocks' statistics are merged in block order.
//!
//! Particle `p` draws from ChaCha8 seeded with `seed`, stream `p`: first its
//! random initial values (`init x ~ normal(m, s)` or `uniform(a, b)`, in
//! declaration order), then, for Langevin dynamics, the noise of every step.
//!
//! Langevin dynamics (`em`) advance a whole block one step per call of the
//! compiled Euler–Maruyama kernel; deterministic methods run each particle's
//! trajectory as a single run would.

use crate::derive::Equations;
use crate::integrate::{self, linalg, Cause, Failure, Grid};
use crate::kernels::{Kernels, Work};
use crate::model::{Init, Method, Model, ModelKind};
use crate::run::{self, RowSink, RunConfig, RunError, Summary};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

/// Particles per block: the unit of parallel work and of the fixed
/// reduction order.
pub const BLOCK: usize = 256;

/// Particles of an ensemble when the model has random initial values but
/// says nothing of their number.
pub const DEFAULT_PARTICLES: usize = 1000;

/// Running mean and sum of squared deviations (Welford), mergeable (Chan et al.).
#[derive(Clone, Copy, Debug, Default)]
struct Moments {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    fn merge(&mut self, o: &Moments) {
        if o.n == 0.0 {
            return;
        }
        let n = self.n + o.n;
        let d = o.mean - self.mean;
        self.mean += d * o.n / n;
        self.m2 += o.m2 + d * d * self.n * o.n / n;
        self.n = n;
    }

    /// The standard deviation over the particles (dividing by their number).
    fn std(&self) -> f64 {
        if self.n > 0.0 {
            (self.m2 / self.n).max(0.0).sqrt()
        } else {
            0.0
        }
    }
}

/// The ensemble's output columns: `t`, then `X_mean`, `X_std` for every
/// column `X` of a single run.
pub fn columns(model: &Model) -> Vec<String> {
    let single = run::columns(model);
    let mut c = vec!["t".to_string()];
    for name in &single[1..] {
        c.push(format!("{name}_mean"));
        c.push(format!("{name}_std"));
    }
    c
}

/// Whether a run of this model with these settings is an ensemble.
pub fn is_ensemble(model: &Model, cfg: &RunConfig) -> bool {
    cfg.particles.is_some() || model.has_random_init()
}

/// The statistics of one block: per output row and column (without `t`).
struct BlockResult {
    moments: Vec<Vec<Moments>>,
    times: Vec<f64>,
    finals: Vec<Vec<f64>>,
    steps: usize,
    /// The first failure in the block: particle, rows it completed, failure.
    failure: Option<(usize, usize, Failure)>,
}

/// Accumulates the rows of single-particle runs into a block's moments.
struct Accumulate<'a> {
    moments: &'a mut Vec<Vec<Moments>>,
    times: &'a mut Vec<f64>,
    row: usize,
    width: usize,
    /// Whether each row goes to the next output time (one particle's
    /// trajectory) or all rows to the same one (every particle at one time).
    advance: bool,
}

impl RowSink for Accumulate<'_> {
    fn row(&mut self, values: &[f64]) -> Result<(), String> {
        if self.row == self.moments.len() {
            self.moments.push(vec![Moments::default(); self.width]);
            self.times.push(values[0]);
        }
        for (m, &x) in self.moments[self.row].iter_mut().zip(&values[1..]) {
            m.push(x);
        }
        if self.advance {
            self.row += 1;
        }
        Ok(())
    }
}

/// The initial state of particle `p`, drawn from its stream.
fn initial_state(model: &Model, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let env = model.env();
    let a = &model.arena;
    model
        .init
        .iter()
        .chain(&model.init_velocity)
        .map(|i| match *i {
            Init::Value(x) => a.eval(x, &env),
            Init::Normal { mean, std } => {
                let z: f64 = rng.sample(StandardNormal);
                a.eval(mean, &env) + a.eval(std, &env) * z
            }
            Init::Uniform { lo, hi } => {
                let (lo, hi) = (a.eval(lo, &env), a.eval(hi, &env));
                lo + (hi - lo) * rng.random::<f64>()
            }
        })
        .collect()
}

/// The stream of particle `p`.
fn stream(seed: u64, p: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(p as u64);
    rng
}

/// The noise scale `√(2T) g^{-1/2}` (row-major), for a constant metric.
fn noise_scale(model: &Model, k: &Kernels) -> Result<Vec<f64>, String> {
    let n = k.n;
    let env = model.env();
    let t = model.temperature.map(|t| model.arena.eval(t, &env)).unwrap_or(0.0);
    if !(t >= 0.0 && t.is_finite()) {
        return Err(format!("the temperature must be a non-negative number, not {t}"));
    }
    let mut s = vec![0.0; n * n];
    match &model.metric {
        None => (0..n).for_each(|i| s[i * n + i] = 1.0),
        Some(g) => {
            let g: Vec<f64> = g.iter().flatten().map(|&x| model.arena.eval(x, &env)).collect();
            s = linalg::inverse_sqrt(&g, n).map_err(|_| "the metric is not positive definite".to_string())?;
        }
    }
    let c = (2.0 * t).sqrt();
    Ok(s.into_iter().map(|x| c * x).collect())
}

/// Runs the ensemble and writes one row of means and standard deviations
/// per output time (or, for a single Langevin trajectory, `plain`, the
/// values alone in the columns of a single run). `Summary::finals` holds
/// every particle's final state.
pub fn run_ensemble(
    model: &Model,
    eq: &Equations,
    k: &Kernels,
    cfg: &RunConfig,
    sink: &mut dyn RowSink,
    plain: bool,
) -> Result<Summary, RunError> {
    let particles = if plain { 1 } else { cfg.particles.map(|p| p as usize).unwrap_or(DEFAULT_PARTICLES) };
    let width = run::columns(model).len() - 1;
    let scale = if cfg.method == Method::Em { Some(noise_scale(model, k).map_err(RunError::Setup)?) } else { None };
    let blocks: Vec<usize> = (0..particles.div_ceil(BLOCK)).collect();
    let results: Vec<BlockResult> = blocks
        .par_iter()
        .map(|&b| {
            let range = b * BLOCK..((b + 1) * BLOCK).min(particles);
            match &scale {
                Some(s) => langevin_block(model, eq, k, cfg, range, s, width),
                None => deterministic_block(model, eq, k, cfg, range, width),
            }
        })
        .collect();
    // Merge in block order; rows complete for every particle come first.
    let complete = results.iter().map(|r| r.failure.as_ref().map(|f| f.1).unwrap_or(r.times.len())).min().unwrap_or(0);
    let mut total: Vec<Vec<Moments>> = vec![vec![Moments::default(); width]; complete];
    for r in &results {
        for (row, m) in total.iter_mut().zip(&r.moments) {
            for (a, b) in row.iter_mut().zip(m) {
                a.merge(b);
            }
        }
    }
    let times = results.first().map(|r| r.times.clone()).unwrap_or_default();
    let mut out = Vec::with_capacity(1 + 2 * width);
    for (row, t) in total.iter().zip(&times) {
        out.clear();
        out.push(*t);
        for m in row {
            out.push(m.mean);
            if !plain {
                out.push(m.std());
            }
        }
        sink.row(&out).map_err(RunError::Output)?;
    }
    if let Some((p, _, f)) = results.iter().filter_map(|r| r.failure.clone()).min_by_key(|f| f.0) {
        let mut e = run::numerical(model, f);
        if let (RunError::Interrupted { t }, Some(last)) = (&mut e, times.get(total.len().wrapping_sub(1))) {
            *t = *last;
        }
        if let RunError::Numerical { cause, .. } = &mut e {
            *cause = format!("{cause} (particle {p})");
        }
        return Err(e);
    }
    let names = &run::columns(model)[1..];
    let last = total.last();
    Ok(Summary {
        steps: results.iter().map(|r| r.steps).max().unwrap_or(0),
        rows: total.len(),
        particles,
        final_means: last
            .map(|row| names.iter().cloned().zip(row.iter().map(|m| m.mean)).collect())
            .unwrap_or_default(),
        finals: results.into_iter().flat_map(|r| r.finals).collect(),
        ..Summary::default()
    })
}

fn deterministic_block(
    model: &Model,
    eq: &Equations,
    k: &Kernels,
    cfg: &RunConfig,
    range: std::ops::Range<usize>,
    width: usize,
) -> BlockResult {
    let mut res = BlockResult { moments: vec![], times: vec![], finals: vec![], steps: 0, failure: None };
    for p in range {
        let y0 = initial_state(model, &mut stream(cfg.seed, p));
        let mut acc = Accumulate { moments: &mut res.moments, times: &mut res.times, row: 0, width, advance: true };
        let mut last = y0.clone();
        let outcome = {
            let mut rows = run::Rows::new(model, eq, k, &mut acc);
            let mut keep_last = |t: f64, y: &[f64]| {
                last.clear();
                last.extend_from_slice(y);
                integrate::Observer::row(&mut rows, t, y)
            };
            run::integrate_one(model, k, cfg, &y0, &mut keep_last)
        };
        match outcome {
            Ok(s) => {
                res.steps = res.steps.max(s.steps);
                run::ENSEMBLE_WORK.fetch_add(s.steps as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Err(f) => {
                if res.failure.is_none() {
                    res.failure = Some((p, acc.row, f));
                }
            }
        }
        res.finals.push(last);
    }
    res
}

fn langevin_block(
    model: &Model,
    eq: &Equations,
    k: &Kernels,
    cfg: &RunConfig,
    range: std::ops::Range<usize>,
    scale: &[f64],
    width: usize,
) -> BlockResult {
    let n = k.n;
    let count = range.len();
    let mut rngs: Vec<ChaCha8Rng> = range.clone().map(|p| stream(cfg.seed, p)).collect();
    let mut theta: Vec<f64> = rngs.iter_mut().flat_map(|r| initial_state(model, r)).collect();
    let mut noise = vec![0.0; theta.len()];
    let mut xi = vec![0.0; n];
    let mut res = BlockResult { moments: vec![], times: vec![], finals: vec![], steps: 0, failure: None };
    let grid = Grid { t0: cfg.t0, t_end: cfg.t_end, dt: cfg.dt, every: cfg.every };
    let steps = match grid.steps() {
        Ok(s) => s,
        Err(c) => {
            res.failure = Some((range.start, 0, Failure { t: cfg.t0, state: theta[..n].to_vec(), cause: c }));
            return res;
        }
    };
    let mut work = Work::default();
    let block_step = k.em_block();
    let record = |res: &mut BlockResult, t: f64, theta: &[f64]| {
        let row = res.moments.len();
        let mut acc = Accumulate { moments: &mut res.moments, times: &mut res.times, row, width, advance: false };
        let mut rows = run::Rows::new(model, eq, k, &mut acc);
        for y in theta.chunks(n) {
            // Accumulating never fails.
            let _ = integrate::Observer::row(&mut rows, t, y);
        }
    };
    record(&mut res, grid.t0, &theta);
    for step in 0..steps {
        let t = grid.time(step, steps);
        if run::interrupted() {
            let cause = Cause::Other(run::INTERRUPTED.into());
            res.failure = Some((range.start, res.moments.len(), Failure { t, state: theta[..n].to_vec(), cause }));
            break;
        }
        let h = grid.time(step + 1, steps) - t;
        let sh = h.sqrt();
        for (p, rng) in rngs.iter_mut().enumerate() {
            for x in xi.iter_mut() {
                *x = rng.sample::<f64, _>(StandardNormal);
            }
            for i in 0..n {
                noise[p * n + i] = sh * (0..n).map(|j| scale[i * n + j] * xi[j]).sum::<f64>();
            }
        }
        let moved = match &block_step {
            Some(f) => f.call(t, h, &mut theta, &noise, k.params()).map_err(|(i, c)| {
                let cause = match c {
                    crate::jit::FailureCause::Singular => Cause::Other("singular metric g(θ)".into()),
                    crate::jit::FailureCause::NonFinite => Cause::NonFinite,
                };
                (i, cause)
            }),
            None => portable_em_step(k, t, h, &mut theta, &noise, &mut work),
        };
        if let Err((i, cause)) = moved {
            let state = theta[i * n..(i + 1) * n].to_vec();
            res.failure = Some((range.start + i, res.moments.len(), Failure { t, state, cause }));
            break;
        }
        res.steps = step + 1;
        run::ENSEMBLE_WORK.fetch_add(count as u64, std::sync::atomic::Ordering::Relaxed);
        if grid.is_output(step + 1, steps) {
            record(&mut res, grid.time(step + 1, steps), &theta);
        }
    }
    res.finals = theta.chunks(n).map(|c| c.to_vec()).collect();
    debug_assert_eq!(res.finals.len(), count);
    res
}

/// The Euler–Maruyama step of a block in Rust, through the right-hand side.
fn portable_em_step(
    k: &Kernels,
    t: f64,
    h: f64,
    theta: &mut [f64],
    noise: &[f64],
    work: &mut Work,
) -> Result<(), (usize, Cause)> {
    let n = k.n;
    let mut f = vec![0.0; n];
    for (i, (y, xi)) in theta.chunks_mut(n).zip(noise.chunks(n)).enumerate() {
        k.rhs(t, y, &mut f, work).map_err(|c| (i, c))?;
        for j in 0..n {
            y[j] += h * f[j] + xi[j];
        }
        if y.iter().any(|v| !v.is_finite()) {
            return Err((i, Cause::NonFinite));
        }
    }
    Ok(())
}

/// Whether `method` may run an ensemble of this model.
pub fn fits(model: &Model, method: Method) -> Result<(), String> {
    if method == Method::Em {
        let g_depends = model.metric.as_ref().is_some_and(|g| {
            g.iter().flatten().any(|&x| {
                model.arena.depends(x, |k| !matches!(k, crate::sym::SymKind::Param(_) | crate::sym::SymKind::Pi))
            })
        });
        if g_depends {
            return Err("method `em` needs a constant metric: with g(θ) the noise needs an Itô correction that lagc does not derive".into());
        }
        if model.kind != ModelKind::Energy {
            return Err("method `em` is for energy models with a temperature".into());
        }
    }
    Ok(())
}
