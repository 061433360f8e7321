//! Particles in blocks: the one path of every run. A single trajectory is one
//! block of one particle whose rows stream to the sink; an ensemble is many
//! blocks, each reduced to the mean and standard deviation of every column
//! per output time.
//!
//! **Invariant:** an ensemble's result depends on the seed and the particle
//! count, never on the number of threads. Particles are grouped in blocks of
//! [`BLOCK`]; each block is computed independently (in any thread) and the
//! blocks' statistics are merged in block order.
//!
//! Particle `p` draws from ChaCha8 seeded with `seed`, stream `p`: first its
//! random initial values (`init x ~ normal(m, s)` or `uniform(a, b)`, in
//! declaration order), then, for Langevin dynamics, the noise of every step
//! (docs/numerics.md §Euler–Maruyama). Langevin dynamics advance a whole block one step
//! per call of the compiled Euler–Maruyama block (or of its Rust twin,
//! [`integrate::em_block_step`]); deterministic methods run each particle's
//! trajectory as a single run would.

use super::rows::{RowSink, Rows, SinkError, StopReason};
use super::systems::FirstOrder;
use super::{trajectory, Bands, Ctx, RunConfig, RunError, Summary};
use crate::backend::{failure_cause, Work};
use crate::integrate::{self, Cause, Failure, Grid, Observer, Stop};
use crate::model::{Init, Method, Model};
use crate::plan::Layout;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

/// Particles per block: the unit of parallel work and of the fixed
/// reduction order.
pub const BLOCK: usize = 256;

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

/// Where a block's rows go: straight to the run's sink (a single
/// trajectory), or into the block's moments per output time.
enum Out<'s> {
    Stream(&'s mut dyn RowSink),
    Moments(Accumulate),
}

/// The moments of a block's rows, per output row and column (without `t`).
#[derive(Default)]
struct Accumulate {
    moments: Vec<Vec<Moments>>,
    times: Vec<f64>,
    /// The output row the next row goes to.
    row: usize,
    width: usize,
    /// Whether each row goes to the next output time (one particle's
    /// trajectory) or all rows to the same one (every particle at one time).
    advance: bool,
    /// Every particle's row, per output row (particle after particle), when
    /// this block is part of the sample that quantile bands are taken from.
    sample: Option<Vec<Vec<f64>>>,
    /// How many of the block's particles (its first ones) the sample holds.
    sample_limit: usize,
}

impl RowSink for Out<'_> {
    fn row(&mut self, values: &[f64]) -> Result<(), SinkError> {
        let a = match self {
            Out::Stream(sink) => return sink.row(values),
            Out::Moments(a) => a,
        };
        if a.row == a.moments.len() {
            a.moments.push(vec![Moments::default(); a.width]);
            a.times.push(values[0]);
        }
        for (m, &x) in a.moments[a.row].iter_mut().zip(&values[1..]) {
            m.push(x);
        }
        if let Some(s) = &mut a.sample {
            if s.len() <= a.row {
                s.resize(a.row + 1, vec![]);
            }
            if s[a.row].len() < a.sample_limit * a.width {
                s[a.row].extend_from_slice(&values[1..]);
            }
        }
        if a.advance {
            a.row += 1;
        }
        Ok(())
    }
}

/// What a block computed.
struct BlockResult {
    moments: Vec<Vec<Moments>>,
    /// The block's rows, when it is part of the sample of the quantile bands.
    sample: Option<Vec<Vec<f64>>>,
    times: Vec<f64>,
    finals: Vec<Vec<f64>>,
    steps: usize,
    rejected: usize,
    /// The summary of a single trajectory's rows.
    summary: Summary,
    /// The first failure in the block: particle, output rows it completed, failure,
    /// and why the run was stopped if it was.
    failure: Option<(usize, usize, Failure, Option<StopReason>)>,
}

/// The initial state of a particle, drawn from its stream.
pub(super) fn initial_state(model: &Model, rng: &mut ChaCha8Rng) -> Vec<f64> {
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
pub(super) fn stream(seed: u64, p: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(p as u64);
    rng
}

/// The noise matrix `√(2T) g^{-1/2}` of a Langevin run, at the parameters' values.
fn noise_scale(ctx: &Ctx<'_>) -> Result<Vec<f64>, RunError> {
    let model = ctx.model;
    let env = model.env();
    let t = model.temperature.map(|t| model.arena.eval(t, &env)).unwrap_or(0.0);
    let g: Option<Vec<f64>> =
        model.metric.as_ref().map(|g| g.iter().flatten().map(|&x| model.arena.eval(x, &env)).collect());
    integrate::noise_scale(t, g.as_deref(), ctx.k.n).map_err(RunError::Setup)
}

/// Runs every particle of the plan and writes the rows: a single
/// trajectory's as they come, an ensemble's means and standard deviations
/// at the end. `Summary::finals` holds every particle's final state.
pub(super) fn run(ctx: &Ctx<'_>, sink: &mut dyn RowSink) -> Result<Summary, RunError> {
    let scale = if ctx.cfg.method == Method::Em { Some(noise_scale(ctx)?) } else { None };
    let width = ctx.plan.trajectory_columns.len() - 1;
    let block = |range: std::ops::Range<usize>, out: Out<'_>| match &scale {
        Some(s) => langevin_block(ctx, range, s, out),
        None => deterministic_block(ctx, range, out),
    };
    let Layout::Ensemble { particles } = ctx.plan.layout else {
        let r = block(0..1, Out::Stream(sink));
        return match r.failure {
            None => Ok(Summary { steps: r.steps, rejected: r.rejected, finals: r.finals, ..r.summary }),
            Some((_, _, f, Some(StopReason::Interrupted))) => Err(RunError::Interrupted { t: f.t }),
            Some((_, _, _, Some(StopReason::Output(e)))) => Err(RunError::Output(e)),
            Some((_, _, f, None)) => Err(ctx.numerical(f, None)),
        };
    };
    let sampled = if ctx.cfg.bands { sampled_particles(ctx.cfg, particles, width) } else { 0 };
    let moments = |advance, b: usize| {
        let sample_limit = sampled.saturating_sub(b * BLOCK).min(BLOCK);
        let sample = (sample_limit > 0).then(Vec::new);
        Out::Moments(Accumulate { width, advance, sample, sample_limit, ..Accumulate::default() })
    };
    let deterministic = scale.is_none();
    let results: Vec<BlockResult> = (0..particles.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| block(b * BLOCK..((b + 1) * BLOCK).min(particles), moments(deterministic, b)))
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
            out.push(m.std());
        }
        sink.row(&out)?;
    }
    if let Some((p, _, f, stop)) = results.iter().filter_map(|r| r.failure.clone()).min_by_key(|f| f.0) {
        return Err(match stop {
            Some(StopReason::Output(e)) => RunError::Output(e),
            Some(StopReason::Interrupted) => {
                RunError::Interrupted { t: times.get(total.len().wrapping_sub(1)).copied().unwrap_or(f.t) }
            }
            None => ctx.numerical(f, Some(p)),
        });
    }
    let names = &ctx.plan.trajectory_columns[1..];
    let last = total.last();
    let bands = (sampled > 0).then(|| bands(&results, sampled, total.len(), width));
    Ok(Summary {
        bands,
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

/// The quantiles of the bands of an ensemble's figure.
pub const BAND_QUANTILES: (f64, f64) = (0.1, 0.9);

/// How many particles (the first ones) the quantile bands are taken from:
/// at most 1,024, and no more than keep 2²² numbers (32 MB) over all output
/// rows; none when fewer than 20 would fit.
fn sampled_particles(cfg: &RunConfig, particles: usize, width: usize) -> usize {
    let grid = Grid { t0: cfg.t0, t_end: cfg.t_end, dt: cfg.dt, every: cfg.every };
    let rows = grid.steps().map_or(1, |s| s / cfg.every + 2);
    let fit = (1usize << 22) / rows.saturating_mul(width.max(1)).max(1);
    let k = particles.min(4 * BLOCK).min(fit);
    if k < 20 {
        0
    } else {
        k
    }
}

/// The quantile bands over the sampled blocks' particles, for the first
/// `complete` output rows.
fn bands(results: &[BlockResult], particles: usize, complete: usize, width: usize) -> Bands {
    let sampled: Vec<&Vec<Vec<f64>>> = results.iter().filter_map(|r| r.sample.as_ref()).collect();
    let (qlo, qhi) = BAND_QUANTILES;
    let rows = (0..complete)
        .map(|r| {
            (0..width)
                .map(|c| {
                    let mut v: Vec<f64> = sampled
                        .iter()
                        .filter_map(|s| s.get(r))
                        .flat_map(|row| row.iter().skip(c).step_by(width).copied())
                        .filter(|x| x.is_finite())
                        .collect();
                    v.sort_by(f64::total_cmp);
                    (quantile(&v, qlo), quantile(&v, qhi))
                })
                .collect()
        })
        .collect();
    Bands { particles, quantiles: BAND_QUANTILES, rows }
}

/// The `q`-quantile of sorted values, interpolated linearly between order
/// statistics (NaN for no values).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n => {
            let at = q * (n - 1) as f64;
            let (i, frac) = (at.floor() as usize, at.fract());
            let j = (i + 1).min(n - 1);
            sorted[i] + frac * (sorted[j] - sorted[i])
        }
    }
}

/// Rows that also keep the last state handed to them.
struct KeepLast<'r, 'a> {
    rows: Rows<'a>,
    last: &'r mut Vec<f64>,
}

impl Observer for KeepLast<'_, '_> {
    fn row(&mut self, t: f64, y: &[f64]) -> Result<(), Stop> {
        self.last.clear();
        self.last.extend_from_slice(y);
        self.rows.row(t, y)
    }

    fn sees_steps(&self) -> bool {
        self.rows.sees_steps()
    }

    fn step(&mut self, t: f64, y: &[f64]) {
        self.rows.step(t, y);
    }
}

/// Each particle's trajectory in turn.
fn deterministic_block(ctx: &Ctx<'_>, range: std::ops::Range<usize>, mut out: Out<'_>) -> BlockResult {
    let mut res = empty_result();
    for p in range {
        let y0 = initial_state(ctx.model, &mut stream(ctx.cfg.seed, p));
        if let Out::Moments(a) = &mut out {
            a.row = 0;
        }
        let mut last = y0.clone();
        let every_step = ctx.cfg.energy_every_step && matches!(out, Out::Stream(_));
        let (outcome, stop, summary) = {
            let rows = Rows::new(ctx.plan, ctx.k, &mut out, ctx.control, every_step);
            let mut keep_last = KeepLast { rows, last: &mut last };
            let outcome = trajectory::integrate(ctx, p, &y0, &mut keep_last);
            let rows = &mut keep_last.rows;
            (outcome, rows.stop.take(), std::mem::take(&mut rows.summary))
        };
        let done_rows = match &out {
            Out::Moments(a) => a.row,
            Out::Stream(_) => summary.rows,
        };
        res.summary = summary;
        match outcome {
            Ok(s) => {
                res.steps = res.steps.max(s.steps);
                res.rejected = res.rejected.max(s.rejected);
                ctx.control.add_progress(s.steps);
            }
            Err(f) => {
                if res.failure.is_none() {
                    res.failure = Some((p, done_rows, f, stop));
                }
            }
        }
        res.finals.push(last);
    }
    if let Out::Moments(a) = out {
        res.moments = a.moments;
        res.times = a.times;
        res.sample = a.sample;
    }
    res
}

fn empty_result() -> BlockResult {
    BlockResult {
        moments: vec![],
        sample: None,
        times: vec![],
        finals: vec![],
        steps: 0,
        rejected: 0,
        summary: Summary::default(),
        failure: None,
    }
}

/// The whole block one Euler–Maruyama step at a time.
fn langevin_block(ctx: &Ctx<'_>, range: std::ops::Range<usize>, scale: &[f64], mut out: Out<'_>) -> BlockResult {
    let (k, cfg) = (ctx.k, ctx.cfg);
    let n = k.n;
    let count = range.len();
    let mut rngs: Vec<ChaCha8Rng> = range.clone().map(|p| stream(cfg.seed, p)).collect();
    let mut theta: Vec<f64> = rngs.iter_mut().flat_map(|r| initial_state(ctx.model, r)).collect();
    let mut noise = vec![0.0; theta.len()];
    let mut xi = vec![0.0; n];
    let mut res = empty_result();
    let grid = Grid { t0: cfg.t0, t_end: cfg.t_end, dt: cfg.dt, every: cfg.every };
    let steps = match grid.steps() {
        Ok(s) => s,
        Err(c) => {
            res.failure = Some((range.start, 0, Failure { t: cfg.t0, state: theta[..n].to_vec(), cause: c }, None));
            return res;
        }
    };
    let block_step = k.em_block();
    let mut rust_twin = FirstOrder { k, work: Work::default(), draws: None };
    // A batched em run is one particle (`Plan::with_batch`): one minibatch per step.
    let mut draws = ctx.plan.batch.map(|b| crate::batch::Draws::new(b, cfg.seed, range.start));
    let mut summary = Summary::default();
    // Writes every particle's row at time `t`; `Err` when the sink stopped the run.
    let mut record = |out: &mut Out<'_>, t: f64, theta: &[f64], written: &mut usize| -> Result<(), StopReason> {
        if let Out::Moments(a) = out {
            a.row = a.moments.len();
        }
        let mut rows = Rows::new(ctx.plan, k, out, super::Control::default(), false);
        for y in theta.chunks(n) {
            // Moments never refuse a row; a stream may.
            if rows.row(t, y).is_err() {
                return Err(rows.stop.take().expect("a stopped row says why"));
            }
        }
        *written += 1;
        summary.rows += rows.summary.rows;
        summary.final_energy = rows.summary.final_energy;
        summary.final_grad_norm = rows.summary.final_grad_norm;
        Ok(())
    };
    let mut written = 0;
    if let Err(stop) = record(&mut out, grid.t0, &theta, &mut written) {
        res.failure = Some((
            range.start,
            0,
            Failure { t: grid.t0, state: theta[..n].to_vec(), cause: Cause::Stopped },
            Some(stop),
        ));
    }
    for step in 0..steps {
        if res.failure.is_some() {
            break;
        }
        let t = grid.time(step, steps);
        if ctx.control.interrupted() {
            let f = Failure { t, state: theta[..n].to_vec(), cause: Cause::Stopped };
            res.failure = Some((range.start, written, f, Some(StopReason::Interrupted)));
            break;
        }
        let h = grid.time(step + 1, steps) - t;
        let sh = h.sqrt();
        for (p, rng) in rngs.iter_mut().enumerate() {
            for x in xi.iter_mut() {
                *x = rng.sample::<f64, _>(StandardNormal);
            }
            integrate::em_noise(scale, sh, &xi, &mut noise[p * n..(p + 1) * n]);
        }
        if let Some(d) = draws.as_mut() {
            d.next();
        }
        let moved = match &block_step {
            Some(f) => f.call(t, h, &mut theta, &noise, k.params()).map_err(|(i, c)| (i, failure_cause(k.kind, c))),
            None => integrate::em_block_step(&mut rust_twin, t, h, &mut theta, &noise),
        };
        if let Err((i, cause)) = moved {
            let state = theta[i * n..(i + 1) * n].to_vec();
            res.failure = Some((range.start + i, written, Failure { t, state, cause }, None));
            break;
        }
        res.steps = step + 1;
        ctx.control.add_progress(count);
        if grid.is_output(step + 1, steps) {
            let t_out = grid.time(step + 1, steps);
            if let Err(stop) = record(&mut out, t_out, &theta, &mut written) {
                let f = Failure { t: t_out, state: theta[..n].to_vec(), cause: Cause::Stopped };
                res.failure = Some((range.start, written, f, Some(stop)));
            }
        }
    }
    res.summary = summary;
    res.finals = theta.chunks(n.max(1)).map(|c| c.to_vec()).collect();
    if let Out::Moments(a) = out {
        res.moments = a.moments;
        res.times = a.times;
        res.sample = a.sample;
    }
    res
}
