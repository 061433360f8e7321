//! Methods that move every particle by all the others: Stein variational
//! gradient descent (`svgd`, docs/numerics.md §Stein variational gradient
//! descent), and particles with an `interaction` under `em` or `euler`
//! (docs/numerics.md §Interacting particles). A step needs the whole set of particles, so these runs do not go
//! through the blocks of [`super::ensemble`]; their rows are an ensemble's
//! (the mean and standard deviation of every column over the particles).
//!
//! **Invariant:** the output depends on the seed and the particle count, never
//! on the number of threads: the initial particles are drawn from the same
//! streams as an ensemble's, every per-particle sum runs over the others in
//! index order, and the column moments are summed in particle order.

use super::rows::RowSink;
use super::{ensemble, Ctx, RunError, Summary};
use crate::backend::Work;
use crate::integrate::{Cause, Grid};
use crate::plan::Kernel;
use crate::sym::fmt_float;
use rayon::prelude::*;

/// The most particles whose median pairwise distance is taken over all pairs;
/// beyond it, over the pairs of the first this many particles.
pub const MEDIAN_PARTICLES: usize = 1000;

/// The most particles `svgd` runs: its step sums over all `N²` pairs.
pub const MAX_PAIR_PARTICLES: usize = 100_000;

/// The temperature at time `t`: the model's, or 1 without one.
fn temperature(ctx: &Ctx<'_>, t: f64) -> Result<f64, RunError> {
    let model = ctx.model;
    let temp = match model.temperature {
        Some(x) => {
            let mut env = model.env();
            env.set(model.time, t);
            model.arena.eval(x, &env)
        }
        None => 1.0,
    };
    if temp > 0.0 && temp.is_finite() {
        Ok(temp)
    } else {
        Err(RunError::Setup(Cause::Invalid(format!(
            "svgd moves particles towards exp(−E/T) and needs a temperature T > 0, not {} (at t = {})",
            fmt_float(temp),
            fmt_float(t)
        ))))
    }
}

/// Each particle's row of a trajectory (`t`, the state, `energy`,
/// `grad_norm`, the observes) reduced to the mean and standard deviation of
/// every column, in particle order.
fn moments_row(ctx: &Ctx<'_>, t: f64, x: &[f64], n: usize, out: &mut Vec<f64>) {
    let k = ctx.k;
    let width = ctx.plan.trajectory_columns.len() - 1;
    let outputs = k.outputs(Kernel::Row);
    let rows: Vec<Vec<f64>> = x
        .par_chunks(n)
        .map_init(Work::default, |work, y| {
            let mut v = vec![0.0; outputs];
            k.eval_at(Kernel::Row, t, y, &mut v, work);
            let mut row = Vec::with_capacity(width);
            row.extend_from_slice(y);
            row.push(v[0]);
            row.push(v[1..1 + n].iter().map(|g| g * g).sum::<f64>().sqrt());
            row.extend_from_slice(&v[1 + n..]);
            row
        })
        .collect();
    let count = rows.len() as f64;
    out.clear();
    out.push(t);
    for c in 0..width {
        let mean = rows.iter().map(|r| r[c]).sum::<f64>() / count;
        let var = rows.iter().map(|r| (r[c] - mean).powi(2)).sum::<f64>() / count;
        out.push(mean);
        out.push(var.max(0.0).sqrt());
    }
}

/// The row of the particles at time `t`: an ensemble's moments, or the one
/// particle's trajectory row.
fn particles_row(ctx: &Ctx<'_>, t: f64, x: &[f64], n: usize, out: &mut Vec<f64>) {
    if ctx.plan.is_ensemble() {
        return moments_row(ctx, t, x, n, out);
    }
    moments_row(ctx, t, x, n, out);
    // One particle: its value is the mean; drop the standard deviations.
    let means: Vec<f64> = out[1..].iter().step_by(2).copied().collect();
    out.truncate(1);
    out.extend(means);
}

/// The drift `−∇E(x_i) − (1/N) Σ_j ∇₁W(x_i, x_j)` of every particle, the pair
/// sum over `j` in index order; `Err` names the first particle whose drift is not finite.
fn interacting_drift(ctx: &Ctx<'_>, t: f64, x: &[f64], n: usize, drift: &mut [f64]) -> Result<(), usize> {
    let k = ctx.k;
    let count = x.len() / n;
    drift.par_chunks_mut(n).enumerate().for_each_init(
        || (Work::default(), vec![0.0; n]),
        |(work, g), (i, d)| {
            let xi = &x[i * n..(i + 1) * n];
            k.eval_at(Kernel::Gradient, t, xi, g, work);
            d.iter_mut().zip(g.iter()).for_each(|(d, g)| *d = -g);
            // x = [t, x_i…, x_j…, params…]: only the other particle's slots change along the sum.
            let mut y = Vec::with_capacity(2 * n);
            y.extend_from_slice(xi);
            y.extend_from_slice(xi);
            k.input(t, &y, &mut work.x);
            let mut sum = vec![0.0; n];
            for j in 0..count {
                work.x[1 + n..1 + 2 * n].copy_from_slice(&x[j * n..(j + 1) * n]);
                k.eval(Kernel::PairGradient, &work.x, g, &mut work.scratch);
                sum.iter_mut().zip(g.iter()).for_each(|(s, g)| *s += g);
            }
            d.iter_mut().zip(&sum).for_each(|(d, s)| *d -= s / count as f64);
        },
    );
    match drift.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(i / n),
        None => Ok(()),
    }
}

/// Runs particles with an `interaction`: Euler–Maruyama with the model's
/// temperature (`em`), or explicit Euler without one (`euler`).
pub(super) fn interacting(ctx: &Ctx<'_>, sink: &mut dyn RowSink) -> Result<Summary, RunError> {
    use rand::Rng;
    let (model, cfg) = (ctx.model, ctx.cfg);
    let n = model.vars.len();
    let count = ctx.plan.particles();
    if count > MAX_PAIR_PARTICLES {
        return Err(RunError::Setup(Cause::Invalid(format!(
            "an interaction sums over every pair of particles: {count} particles are {:.1e} pair evaluations per \
             step; run at most {MAX_PAIR_PARTICLES} particles",
            (count as f64).powi(2)
        ))));
    }
    let mut rngs: Vec<_> = (0..count).map(|p| ensemble::stream(cfg.seed, p)).collect();
    let mut x: Vec<f64> = rngs.iter_mut().flat_map(|r| ensemble::initial_state(model, r)).collect();
    let grid = Grid { t0: cfg.t0, t_end: cfg.t_end, dt: cfg.dt, every: cfg.every };
    let steps = grid.steps().map_err(RunError::Setup)?;
    let noisy = cfg.method == crate::model::Method::Em;
    let mut drift = vec![0.0; x.len()];
    let mut row = vec![];
    let mut summary = Summary { particles: if ctx.plan.is_ensemble() { count } else { 0 }, ..Summary::default() };
    let mut record = |t: f64, x: &[f64], summary: &mut Summary| -> Result<(), RunError> {
        particles_row(ctx, t, x, n, &mut row);
        sink.row(&row)?;
        summary.rows += 1;
        let names = &ctx.plan.columns[1..];
        summary.final_means = names.iter().cloned().zip(row[1..].iter().copied()).collect();
        Ok(())
    };
    record(grid.t0, &x, &mut summary)?;
    for step in 0..steps {
        let t = grid.time(step, steps);
        if ctx.control.interrupted() {
            return Err(RunError::Interrupted { t });
        }
        let h = grid.time(step + 1, steps) - t;
        let scale = if noisy { (2.0 * temperature(ctx, t)? * h).sqrt() } else { 0.0 };
        if let Err(p) = interacting_drift(ctx, t, &x, n, &mut drift) {
            let names = model.vars.iter().map(|v| v.name.clone());
            let state = names.zip(x[p * n..(p + 1) * n].iter().copied()).collect();
            return Err(RunError::Numerical { t, state, cause: Cause::NonFinite, particle: Some(p) });
        }
        for (p, rng) in rngs.iter_mut().enumerate() {
            for c in 0..n {
                let xi: f64 = if noisy { rng.sample(rand_distr::StandardNormal) } else { 0.0 };
                x[p * n + c] += h * drift[p * n + c] + scale * xi;
            }
        }
        summary.steps = step + 1;
        ctx.control.add_progress(count);
        if grid.is_output(step + 1, steps) {
            record(grid.time(step + 1, steps), &x, &mut summary)?;
        }
    }
    summary.finals = x.chunks(n).map(<[f64]>::to_vec).collect();
    Ok(summary)
}

/// `−∇E/T` at every particle, in order; `Err` names the first particle whose gradient is not finite.
fn scores(ctx: &Ctx<'_>, t: f64, temp: f64, x: &[f64], n: usize, s: &mut [f64]) -> Result<(), usize> {
    let k = ctx.k;
    s.par_chunks_mut(n).zip(x.par_chunks(n)).for_each_init(Work::default, |work, (g, y)| {
        k.eval_at(Kernel::Gradient, t, y, g, work);
        g.iter_mut().for_each(|v| *v = -*v / temp);
    });
    match s.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(i / n),
        None => Ok(()),
    }
}

/// The median heuristic `h = med²/log(N + 1)`, `med` the median distance between
/// particles (over the first [`MEDIAN_PARTICLES`] of them).
fn median_bandwidth(x: &[f64], n: usize) -> f64 {
    let m = (x.len() / n).min(MEDIAN_PARTICLES);
    let mut d2: Vec<f64> = Vec::with_capacity(m * m.saturating_sub(1) / 2);
    for i in 0..m {
        for j in i + 1..m {
            d2.push((0..n).map(|c| (x[i * n + c] - x[j * n + c]).powi(2)).sum());
        }
    }
    if d2.is_empty() {
        return 1.0;
    }
    let mid = d2.len() / 2;
    let (_, med2, _) = d2.select_nth_unstable_by(mid, f64::total_cmp);
    let h = *med2 / ((x.len() / n) as f64 + 1.0).ln();
    if h > 0.0 && h.is_finite() {
        h
    } else {
        1.0
    }
}

/// The SVGD direction of every particle:
/// `φ(x_i) = (1/N) Σ_j k(x_j, x_i) s_j + ∇_{x_j} k(x_j, x_i)` with
/// `k(x, y) = exp(−|x − y|²/h)`, so `∇_{x_j} k = (2/h)(x_i − x_j) k`.
fn directions(x: &[f64], s: &[f64], n: usize, h: f64, phi: &mut [f64]) {
    let count = x.len() / n;
    phi.par_chunks_mut(n).enumerate().for_each(|(i, p)| {
        let xi = &x[i * n..(i + 1) * n];
        p.iter_mut().for_each(|v| *v = 0.0);
        for j in 0..count {
            let xj = &x[j * n..(j + 1) * n];
            let d2: f64 = xi.iter().zip(xj).map(|(a, b)| (a - b) * (a - b)).sum();
            let kij = (-d2 / h).exp();
            for c in 0..n {
                p[c] += kij * (s[j * n + c] + 2.0 * (xi[c] - xj[c]) / h);
            }
        }
        p.iter_mut().for_each(|v| *v /= count as f64);
    });
}

/// Runs `svgd` and writes the ensemble's rows.
pub(super) fn run(ctx: &Ctx<'_>, sink: &mut dyn RowSink) -> Result<Summary, RunError> {
    let (model, cfg) = (ctx.model, ctx.cfg);
    let n = model.vars.len();
    let count = ctx.plan.particles();
    if count > MAX_PAIR_PARTICLES {
        return Err(RunError::Setup(Cause::Invalid(format!(
            "svgd sums over every pair of particles: {count} particles are {:.1e} kernel evaluations per step; \
             run at most {MAX_PAIR_PARTICLES} particles",
            (count as f64).powi(2)
        ))));
    }
    let mut x: Vec<f64> =
        (0..count).flat_map(|p| ensemble::initial_state(model, &mut ensemble::stream(cfg.seed, p))).collect();
    let grid = Grid { t0: cfg.t0, t_end: cfg.t_end, dt: cfg.dt, every: cfg.every };
    let steps = grid.steps().map_err(RunError::Setup)?;
    let fixed = model.settings.bandwidth;
    let (mut s, mut phi) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let mut row = vec![];
    let mut summary = Summary { particles: count, ..Summary::default() };
    let mut record = |t: f64, x: &[f64], summary: &mut Summary| -> Result<(), RunError> {
        moments_row(ctx, t, x, n, &mut row);
        sink.row(&row)?;
        summary.rows += 1;
        let names = &ctx.plan.trajectory_columns[1..];
        summary.final_means = names.iter().cloned().zip(row[1..].iter().step_by(2).copied()).collect();
        Ok(())
    };
    record(grid.t0, &x, &mut summary)?;
    for step in 0..steps {
        let t = grid.time(step, steps);
        if ctx.control.interrupted() {
            return Err(RunError::Interrupted { t });
        }
        let temp = temperature(ctx, t)?;
        if let Err(p) = scores(ctx, t, temp, &x, n, &mut s) {
            let names = model.vars.iter().map(|v| v.name.clone());
            let state = names.zip(x[p * n..(p + 1) * n].iter().copied()).collect();
            return Err(RunError::Numerical { t, state, cause: Cause::NonFinite, particle: Some(p) });
        }
        let h = fixed.unwrap_or_else(|| median_bandwidth(&x, n));
        directions(&x, &s, n, h, &mut phi);
        let dt = grid.time(step + 1, steps) - t;
        for (xi, p) in x.iter_mut().zip(&phi) {
            *xi += dt * p;
        }
        summary.steps = step + 1;
        ctx.control.add_progress(count);
        if grid.is_output(step + 1, steps) {
            record(grid.time(step + 1, steps), &x, &mut summary)?;
        }
    }
    summary.finals = x.chunks(n).map(<[f64]>::to_vec).collect();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direction_matches_a_direct_sum() {
        // Three particles in 1-D, scores of N(0, 1): s = −x.
        let x = [-1.0, 0.5, 2.0];
        let s: Vec<f64> = x.iter().map(|v| -v).collect();
        let h = 0.7;
        let mut phi = [0.0; 3];
        directions(&x, &s, 1, h, &mut phi);
        for i in 0..3 {
            let direct: f64 = (0..3)
                .map(|j| {
                    let k = (-(x[i] - x[j]).powi(2) / h).exp();
                    k * s[j] + k * 2.0 * (x[i] - x[j]) / h
                })
                .sum::<f64>()
                / 3.0;
            assert!((phi[i] - direct).abs() < 1e-15);
        }
    }

    #[test]
    fn the_median_heuristic_uses_the_median_distance() {
        // Distances 1, 2, 3: median 2, so h = 4/ln 4.
        let h = median_bandwidth(&[0.0, 1.0, 3.0], 1);
        assert!((h - 4.0 / 4f64.ln()).abs() < 1e-15);
    }
}
