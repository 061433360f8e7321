//! One trajectory of a deterministic method: the method's integrator over the
//! model's kernels, or its compiled loop where the plan has one.

use super::systems::{EnergySystem, FirstOrder, PointSystem};
use super::Ctx;
use crate::backend::{failure_cause, Work};
use crate::batch::Draws;
use crate::integrate::{self, Cause, Failure, Grid, Observer, Stats};
use crate::jit::LoopFn;
use crate::model::{Method, ModelKind};

/// Integrates particle `particle`'s trajectory from `y0`, handing its rows to `obs`.
pub(super) fn integrate(ctx: &Ctx<'_>, particle: usize, y0: &[f64], obs: &mut impl Observer) -> Result<Stats, Failure> {
    let (k, cfg) = (ctx.k, ctx.cfg);
    let n = k.n;
    let grid = Grid { t0: cfg.t0, t_end: cfg.t_end, dt: cfg.dt, every: cfg.every };
    let mut draws = ctx.plan.batch.map(|b| Draws::new(b, cfg.seed, particle));
    if let Some(s) = &ctx.plan.sensitivity {
        return super::sensitivity::integrate(ctx, s, y0, obs);
    }
    if let Some(step_loop) = k.step_loop() {
        return compiled(step_loop, ctx, &grid, y0, obs, draws.as_mut());
    }
    match (k.kind, cfg.method) {
        (_, Method::Rk4) => {
            integrate::rk4(&mut FirstOrder { k, work: Work::default(), draws: draws.as_mut() }, &grid, y0, obs)
        }
        (_, Method::Dopri5) => {
            let mut first = FirstOrder { k, work: Work::default(), draws: None };
            integrate::dopri5(&mut first, &grid, cfg.rtol, cfg.atol, y0, obs)
        }
        (ModelKind::Lagrangian, Method::Midpoint) => {
            let mut sys = PointSystem { k, work: Work::default() };
            integrate::canonical_midpoint(&mut sys, &grid, &y0[..n], &y0[n..], obs)
        }
        (ModelKind::Lagrangian, Method::Variational) => {
            let mut sys = PointSystem { k, work: Work::default() };
            integrate::variational(&mut sys, &grid, &y0[..n], &y0[n..], obs)
        }
        (ModelKind::Lagrangian, Method::Verlet) => {
            // With constant M and forces of q alone, a(q) is the right-hand side at v = 0;
            // it is evaluated once per step, each time with a fresh minibatch.
            let mut sys = FirstOrder { k, work: Work::default(), draws: None };
            let (mut y, mut dy) = (vec![0.0; 2 * n], vec![0.0; 2 * n]);
            let accel = |t: f64, q: &[f64], a: &mut [f64]| {
                if let Some(d) = draws.as_mut() {
                    d.next();
                }
                y[..n].copy_from_slice(q);
                integrate::OdeSystem::rhs(&mut sys, t, &y, &mut dy)?;
                a.copy_from_slice(&dy[n..]);
                Ok(())
            };
            integrate::verlet(n, accel, &grid, &y0[..n], &y0[n..], obs)
        }
        (ModelKind::Energy, Method::Euler) => {
            let mut sys = EnergySystem { k, work: Work::default(), draws: draws.as_mut() };
            integrate::gradient_descent(&mut sys, &grid, y0, obs)
        }
        (ModelKind::Energy, Method::Prox) => {
            integrate::minimizing_movement(&mut EnergySystem { k, work: Work::default(), draws: None }, &grid, y0, obs)
        }
        (kind, m) => Err(Failure {
            t: cfg.t0,
            state: y0.to_vec(),
            cause: Cause::Invalid(format!("method `{m}` does not run on a {kind} model")),
        }),
    }
}

/// A fixed-step method by its compiled loop: every step in native code,
/// rows handed back in blocks, the last (possibly shorter) step too. Row
/// times are `t0 + k·dt` exactly, as on [`Grid`].
fn compiled(
    step_loop: LoopFn<'_>,
    ctx: &Ctx<'_>,
    grid: &Grid,
    y0: &[f64],
    obs: &mut impl Observer,
    draws: Option<&mut Draws>,
) -> Result<Stats, Failure> {
    let fail = |t: f64, state: &[f64], cause: Cause| Failure { t, state: state.to_vec(), cause };
    let steps = grid.steps().map_err(|c| fail(grid.t0, y0, c))?;
    if y0.iter().any(|v| !v.is_finite()) {
        return Err(fail(grid.t0, y0, Cause::NonFinite));
    }
    if let Some(d) = draws {
        return compiled_batched(step_loop, ctx, grid, y0, obs, d);
    }
    let mut y = y0.to_vec();
    let d = y.len();
    obs.row(grid.t0, &y).map_err(|_| fail(grid.t0, y0, Cause::Stopped))?;
    let full = steps.saturating_sub(1);
    // An observer that sees every step gets every step's state from the loop,
    // and only the output steps as rows.
    let every = if obs.sees_steps() { 1 } else { grid.every };
    let block = block_steps(every, grid.every, d);
    let mut rows = Vec::new();
    let mut done = 0usize;
    let mut stats = Stats::default();
    let params = ctx.k.params();
    loop {
        // The full steps in blocks, then the last one, shortened to end at t_end exactly.
        let (h, n, every) = if done < full {
            (grid.dt, block.min(full - done), every)
        } else if done < steps {
            (grid.t_end - grid.time(done, steps), 1, 1)
        } else {
            break;
        };
        let first_step = done;
        rows.clear();
        let result = step_loop.call(grid.time(done, steps), h, n, every, &mut y, params, &mut rows);
        // Every row this call computed is written, even after an interruption;
        // the call's first row repeats the last one written.
        let mut stopped = None;
        for (r, row) in rows.chunks(d + 1).enumerate().skip(1) {
            let k = first_step + r * every;
            let t = grid.time(k, steps);
            if !grid.is_output(k, steps) {
                obs.step(t, &row[1..]);
            } else if obs.row(t, &row[1..]).is_err() {
                stopped = Some(fail(t, &row[1..], Cause::Stopped));
            }
        }
        if let Some(f) = stopped {
            return Err(f);
        }
        match result {
            Ok(m) => {
                done += m;
                stats.steps += m;
            }
            Err(f) => {
                return Err(fail(grid.time(first_step + f.step, steps), &y, failure_cause(ctx.k.kind, f.cause)));
            }
        }
    }
    Ok(stats)
}

/// Steps per call of the compiled loop, which hands back every `every`-th state (1, or
/// the output interval `output_every`) of `d` numbers: about 2¹⁶, so that rows, the
/// progress bar and an interruption are seen often, and no more states than fit in 2²²
/// numbers (32 MB), so that memory stays bounded at any size. When the loop hands back
/// only output steps, a block is a whole number of output intervals, so each call starts
/// on an output step and its first row repeats the last one written; when it hands back
/// every step, any block does, and an output interval longer than a block (`--every` past
/// the run's length) spans several calls instead of holding all its steps at once.
fn block_steps(every: usize, output_every: usize, d: usize) -> usize {
    let rows_per_call = ((1usize << 16) / every).min((1usize << 22) / (d + 1)).max(1);
    if every == 1 {
        rows_per_call
    } else {
        output_every * (every * rows_per_call / output_every).max(1)
    }
}

/// The compiled loop with minibatches: one step per call, each after drawing
/// its rows; rows written on the output steps.
fn compiled_batched(
    step_loop: LoopFn<'_>,
    ctx: &Ctx<'_>,
    grid: &Grid,
    y0: &[f64],
    obs: &mut impl Observer,
    draws: &mut Draws,
) -> Result<Stats, Failure> {
    let fail = |t: f64, state: &[f64], cause: Cause| Failure { t, state: state.to_vec(), cause };
    let steps = grid.steps().map_err(|c| fail(grid.t0, y0, c))?;
    let mut y = y0.to_vec();
    obs.row(grid.t0, &y).map_err(|_| fail(grid.t0, y0, Cause::Stopped))?;
    let params = ctx.k.params();
    let mut rows = Vec::new();
    for step in 0..steps {
        // Full steps of `dt`, the last one shortened to end at `t_end`, as in `compiled`.
        let t = grid.time(step, steps);
        let h = if step + 1 < steps { grid.dt } else { grid.t_end - t };
        draws.next();
        rows.clear();
        step_loop
            .call(t, h, 1, 1, &mut y, params, &mut rows)
            .map_err(|f| fail(t, &y, failure_cause(ctx.k.kind, f.cause)))?;
        let t1 = grid.time(step + 1, steps);
        if grid.is_output(step + 1, steps) {
            obs.row(t1, &y).map_err(|_| fail(t1, &y, Cause::Stopped))?;
        } else if obs.sees_steps() {
            obs.step(t1, &y);
        }
    }
    Ok(Stats { steps, ..Stats::default() })
}

#[cfg(test)]
mod tests {
    use super::block_steps;

    #[test]
    fn a_call_holds_a_bounded_number_of_states_and_starts_on_an_output_step() {
        for d in [1, 4, 100, 10_000, 1 << 22] {
            for output_every in [1, 7, 1000, 65_536, 1 << 20, 100_000_000] {
                // Every step handed back (the drift of H, work): any block, memory bounded.
                let block = block_steps(1, output_every, d);
                assert!(block >= 1 && (block + 1) * (d + 1) <= (1 << 22) + 2 * (d + 1), "{d} {output_every}");
                // Output steps only: whole output intervals, one state per interval.
                let block = block_steps(output_every, output_every, d);
                assert_eq!(block % output_every, 0, "{d} {output_every}");
                assert!((block / output_every + 1) * (d + 1) <= (1 << 22) + 2 * (d + 1), "{d} {output_every}");
            }
        }
    }
}
