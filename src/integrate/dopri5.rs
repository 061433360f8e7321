//! The Dormand–Prince 5(4) method with SciPy's step size controller, Hairer's initial step
//! selection, first-same-as-last stages, and Shampine's quartic dense output for the grid.

use super::explicit::check_dim;
use super::{all_finite, emit, fail_at_start, Cause, Failure, Grid, Observer, OdeSystem, Stats};

const C: [f64; 7] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];

/// The stage coefficients `a[i][j]`, `j < i`; the last row is `b` (first same as last).
const A: [[f64; 6]; 7] = [
    [0.0; 6],
    [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
    [19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0, 0.0, 0.0],
    [9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0, 0.0],
    [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0],
];

/// The error weights `e = b − b̂`.
const E: [f64; 7] =
    [71.0 / 57600.0, 0.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0, 22.0 / 525.0, -1.0 / 40.0];

/// Shampine's dense output: `y(t_n + x h) = y_n + h Σ_j k_j Σ_m P[j][m] x^(m+1)`.
const P: [[f64; 4]; 7] = [
    [1.0, -8048581381.0 / 2820520608.0, 8663915743.0 / 2820520608.0, -12715105075.0 / 11282082432.0],
    [0.0, 0.0, 0.0, 0.0],
    [0.0, 131558114200.0 / 32700410799.0, -68118460800.0 / 10900136933.0, 87487479700.0 / 32700410799.0],
    [0.0, -1754552775.0 / 470086768.0, 14199869525.0 / 1410260304.0, -10690763975.0 / 1880347072.0],
    [0.0, 127303824393.0 / 49829197408.0, -318862633887.0 / 49829197408.0, 701980252875.0 / 199316789632.0],
    [0.0, -282668133.0 / 205662961.0, 2019193451.0 / 616988883.0, -1453857185.0 / 822651844.0],
    [0.0, 40617522.0 / 29380423.0, -110615467.0 / 29380423.0, 69997945.0 / 29380423.0],
];

const SAFETY: f64 = 0.9;
const MIN_FACTOR: f64 = 0.2;
const MAX_FACTOR: f64 = 10.0;

/// The root mean square of a vector.
fn rms(x: impl Iterator<Item = f64>, n: usize) -> f64 {
    (x.map(|v| v * v).sum::<f64>() / n.max(1) as f64).sqrt()
}

/// The initial step of Hairer, Nørsett & Wanner II.4 (SciPy's `select_initial_step`), for an
/// error estimator of order 4, capped by the length of the interval.
fn initial_step(
    sys: &mut impl OdeSystem,
    t0: f64,
    y0: &[f64],
    f0: &[f64],
    m: usize,
    interval: f64,
    (rtol, atol): (f64, f64),
) -> Result<f64, Cause> {
    let n = y0.len();
    if interval == 0.0 {
        return Ok(0.0);
    }
    // The norms are over the first `m` components, those under error control.
    let scale: Vec<f64> = y0[..m].iter().map(|y| atol + y.abs() * rtol).collect();
    let d0 = rms(y0.iter().zip(&scale).map(|(y, s)| y / s), m);
    let d1 = rms(f0.iter().zip(&scale).map(|(f, s)| f / s), m);
    let h0 = if d0 < 1e-5 || d1 < 1e-5 { 1e-6 } else { 0.01 * d0 / d1 };
    let h0 = h0.min(interval);
    let y1: Vec<f64> = y0.iter().zip(f0).map(|(y, f)| y + h0 * f).collect();
    let mut f1 = vec![0.0; n];
    sys.rhs(t0 + h0, &y1, &mut f1)?;
    let d2 = rms(f1.iter().zip(f0).zip(&scale).map(|((a, b), s)| (a - b) / s), m) / h0;
    let h1 = if d1 <= 1e-15 && d2 <= 1e-15 { (h0 * 1e-3).max(1e-6) } else { (0.01 / d1.max(d2)).powf(1.0 / 5.0) };
    Ok((100.0 * h0).min(h1).min(interval))
}

/// Integrates `y' = F(t, y)` by Dormand–Prince 5(4) with relative and absolute tolerances
/// `rtol`, `atol`, writing the grid rows by dense output.
///
/// The steps are the solver's own, as in SciPy's `RK45`: only `t_end` limits them. A step is
/// accepted when the scaled RMS error is at most 1. A step that produces a non-finite state
/// is rejected and retried smaller; when the step falls below ten units in the last place of
/// `t` the run fails with [`Cause::StepSizeUnderflow`] (or [`Cause::NonFinite`] if the last
/// attempt was not finite), at the last accepted point.
pub fn dopri5(
    sys: &mut impl OdeSystem,
    grid: &Grid,
    rtol: f64,
    atol: f64,
    y0: &[f64],
    obs: &mut impl Observer,
) -> Result<Stats, Failure> {
    let n = sys.dim();
    dopri5_controlled(sys, grid, rtol, atol, y0, n, obs)
}

/// [`dopri5`] with the error control (the initial step and each step's error)
/// on the first `controlled` components only: the rest are carried along by
/// the same stages and dense output. For a state followed by its
/// sensitivities the steps are then those of the state alone, the same as
/// without them (docs/numerics.md § Sensitivities).
pub fn dopri5_controlled(
    sys: &mut impl OdeSystem,
    grid: &Grid,
    rtol: f64,
    atol: f64,
    y0: &[f64],
    controlled: usize,
    obs: &mut impl Observer,
) -> Result<Stats, Failure> {
    let n = sys.dim();
    let m = controlled.min(n);
    check_dim(grid, y0, n)?;
    let steps = grid.steps().map_err(|c| fail_at_start(grid, y0, c))?;
    if !(rtol > 0.0 && atol >= 0.0 && rtol.is_finite() && atol.is_finite()) {
        let cause = Cause::Invalid(format!("invalid tolerances rtol = {rtol}, atol = {atol}"));
        return Err(fail_at_start(grid, y0, cause));
    }
    if !all_finite(y0) {
        return Err(fail_at_start(grid, y0, Cause::NonFinite));
    }
    emit(obs, grid.t0, y0)?;
    if steps == 0 {
        return Ok(Stats::default());
    }
    let mut stats = Stats::default();
    let mut t = grid.t0;
    let mut y = y0.to_vec();
    let at = |t: f64, y: &[f64], cause: Cause| Failure { t, state: y.to_vec(), cause };

    let mut k: Vec<Vec<f64>> = vec![vec![0.0; n]; 7];
    sys.rhs(t, &y, &mut k[0]).map_err(|c| at(t, &y, c))?;
    stats.rhs_evals += 1;
    if !all_finite(&k[0]) {
        return Err(at(t, &y, Cause::NonFinite));
    }
    let mut h_abs = initial_step(sys, t, &y, &k[0], m, grid.t_end - t, (rtol, atol)).map_err(|c| at(t, &y, c))?;
    stats.rhs_evals += 1;

    let mut y_new = vec![0.0; n];
    let mut stage = vec![0.0; n];
    let mut row = vec![0.0; n];
    // The next output step index: rows go out at grid steps every, 2·every, …, and `steps`.
    let mut next = grid.every.min(steps);
    let sees_steps = obs.sees_steps();
    while t < grid.t_end {
        let min_step = 10.0 * (next_up(t) - t);
        let mut rejected = false;
        let mut non_finite = false;
        let h = loop {
            if h_abs.is_nan() || h_abs < min_step {
                let cause = if non_finite { Cause::NonFinite } else { Cause::StepSizeUnderflow { h: h_abs } };
                return Err(at(t, &y, cause));
            }
            let t_new = (t + h_abs).min(grid.t_end);
            let h = t_new - t;
            h_abs = h;
            for s in 1..7 {
                for (i, st) in stage.iter_mut().enumerate() {
                    *st = y[i] + h * (0..s).map(|j| A[s][j] * k[j][i]).sum::<f64>();
                }
                if s == 6 {
                    // With a7 = b the last stage point is the new state (first same as last).
                    y_new.copy_from_slice(&stage);
                }
                sys.rhs(t + C[s] * h, &stage, &mut k[s]).map_err(|c| at(t, &y, c))?;
                stats.rhs_evals += 1;
            }
            let error = rms(
                (0..m).map(|i| {
                    let scale = atol + rtol * y[i].abs().max(y_new[i].abs());
                    h * (0..7).map(|j| E[j] * k[j][i]).sum::<f64>() / scale
                }),
                m,
            );
            if all_finite(&y_new) && error.is_finite() && error <= 1.0 {
                let mut factor = if error == 0.0 { MAX_FACTOR } else { MAX_FACTOR.min(SAFETY * error.powf(-0.2)) };
                if rejected {
                    factor = factor.min(1.0);
                }
                h_abs *= factor;
                break h;
            }
            non_finite = !(all_finite(&y_new) && error.is_finite());
            let factor = if non_finite { MIN_FACTOR } else { MIN_FACTOR.max(SAFETY * error.powf(-0.2)) };
            h_abs *= factor;
            rejected = true;
            stats.rejected += 1;
        };
        stats.steps += 1;
        let t_new = t + h;
        // Dense output for every grid row inside (t, t_new].
        while next <= steps {
            let t_out = grid.time(next, steps);
            if t_out > t_new {
                break;
            }
            if t_out == t_new {
                row.copy_from_slice(&y_new);
            } else {
                let x = (t_out - t) / h;
                for (i, r) in row.iter_mut().enumerate() {
                    let mut acc = 0.0;
                    for (j, kj) in k.iter().enumerate() {
                        let pj = &P[j];
                        acc += kj[i] * x * (pj[0] + x * (pj[1] + x * (pj[2] + x * pj[3])));
                    }
                    *r = y[i] + h * acc;
                }
            }
            emit(obs, t_out, &row)?;
            if next == steps {
                next = steps + 1;
            } else {
                next = (next + grid.every).min(steps);
            }
        }
        if sees_steps && t_new < grid.t_end {
            obs.step(t_new, &y_new);
        }
        t = t_new;
        y.copy_from_slice(&y_new);
        // First same as last: the seventh stage was evaluated at (t_new, y_new).
        k.swap(0, 6);
    }
    Ok(stats)
}

/// The next representable number above a finite `t`.
fn next_up(t: f64) -> f64 {
    if t == 0.0 {
        return f64::from_bits(1);
    }
    let bits = t.to_bits();
    if t > 0.0 {
        f64::from_bits(bits + 1)
    } else {
        f64::from_bits(bits - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::explicit::tests::{Oscillator, OscillatorLagrangian, DAMPED_Q10};
    use super::super::lagrangian_system;
    use super::*;

    #[test]
    fn dense_output_ends_at_the_fifth_order_solution() {
        for (j, pj) in P.iter().enumerate() {
            let b = if j < 6 { A[6][j] } else { 0.0 };
            assert!((pj.iter().sum::<f64>() - b).abs() < 1e-15, "row {j}");
        }
        assert!((A[6].iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!(E.iter().sum::<f64>().abs() < 1e-15);
    }

    #[test]
    fn harmonic_oscillator_matches_scipy() {
        // SciPy's RK45 takes 52 steps and ends 1.26e-6 from the exact solution.
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 10.0, dt: 10.0, every: 1 };
        let mut sys = Oscillator { damping: 0.0 };
        let stats = dopri5(&mut sys, &grid, 1e-6, 1e-9, &[1.0, 0.0], &mut rows).unwrap();
        let y = &rows.last().unwrap().1;
        let error = (y[0] - 10f64.cos()).hypot(y[1] + 10f64.sin());
        eprintln!("dopri5 harmonic: {stats:?}, end error {error:e}");
        assert!(stats.steps.abs_diff(52) <= 2, "{stats:?}");
        assert!(error < 1.26e-6 * 1.5 && error > 1.26e-6 / 1.5, "{error:e}");
        assert_eq!(stats.rhs_evals, 2 + 6 * (stats.steps + stats.rejected));
    }

    #[test]
    fn dense_output_on_a_fine_grid() {
        // The rows between steps are interpolated to about the tolerance.
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 10.0, dt: 0.01, every: 3 };
        let mut sys = Oscillator { damping: 0.0 };
        let stats = dopri5(&mut sys, &grid, 1e-8, 1e-10, &[1.0, 0.0], &mut rows).unwrap();
        assert_eq!(rows.len(), 1 + 333 + 1);
        assert!(stats.steps < 300);
        let worst = rows.iter().map(|(t, y)| (y[0] - t.cos()).abs()).fold(0.0, f64::max);
        eprintln!("dopri5 dense output worst error at rtol 1e-8: {worst:e}");
        assert!(worst < 1e-7, "{worst:e}");
        assert!((rows[1].0 - 0.03).abs() < 1e-17 && rows.last().unwrap().0 == 10.0);
    }

    /// The pendulum `θ'' = −sin θ`.
    struct Pendulum;
    impl OdeSystem for Pendulum {
        fn dim(&self) -> usize {
            2
        }
        fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
            dy[0] = y[1];
            dy[1] = -y[0].sin();
            Ok(())
        }
        fn jacobian(&mut self, _t: f64, y: &[f64], jac: &mut [f64]) -> Result<(), Cause> {
            jac.copy_from_slice(&[0.0, 1.0, -y[0].cos(), 0.0]);
            Ok(())
        }
    }

    #[test]
    fn pendulum_period() {
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 1.8, dt: 1e-3, every: 1 };
        let stats = dopri5(&mut Pendulum, &grid, 1e-12, 1e-14, &[1.0, 0.0], &mut rows).unwrap();
        let i = rows.iter().position(|(_, y)| y[0] < 0.0).unwrap();
        // Cubic interpolation through four rows around the crossing, solved by bisection.
        let pts: Vec<(f64, f64)> = rows[i - 2..i + 2].iter().map(|(t, y)| (*t, y[0])).collect();
        let cubic = |t: f64| -> f64 {
            (0..4)
                .map(|a| {
                    let w: f64 = (0..4).filter(|&b| b != a).map(|b| (t - pts[b].0) / (pts[a].0 - pts[b].0)).product();
                    w * pts[a].1
                })
                .sum()
        };
        let (mut lo, mut hi) = (rows[i - 1].0, rows[i].0);
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if cubic(mid) > 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let period = 4.0 * 0.5 * (lo + hi);
        let rel = (period / 6.699975664370453 - 1.0).abs();
        eprintln!("dopri5 pendulum period {period:.15}, relative error {rel:e}, {stats:?}");
        assert!(rel < 1e-9, "{rel:e}");
    }

    #[test]
    fn damped_oscillator() {
        // At rtol 1e-10, atol 1e-12 the global error is 2.8e-11 (measured); assert 1e-8.
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 10.0, dt: 10.0, every: 1 };
        let mut sys = lagrangian_system(OscillatorLagrangian { damping: 0.2 });
        dopri5(&mut sys, &grid, 1e-10, 1e-12, &[1.0, 0.0], &mut rows).unwrap();
        let error = (rows.last().unwrap().1[0] - DAMPED_Q10).abs();
        eprintln!("dopri5 damped q(10) error: {error:e}");
        assert!(error < 1e-8, "{error:e}");
    }

    /// `y' = y²` blows up at `t = 1` from `y0 = 1`.
    struct BlowUp;
    impl OdeSystem for BlowUp {
        fn dim(&self) -> usize {
            1
        }
        fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
            dy[0] = y[0] * y[0];
            Ok(())
        }
        fn jacobian(&mut self, _t: f64, y: &[f64], jac: &mut [f64]) -> Result<(), Cause> {
            jac[0] = 2.0 * y[0];
            Ok(())
        }
    }

    #[test]
    fn step_size_underflow_at_a_blow_up() {
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 2.0, dt: 0.5, every: 1 };
        let err = dopri5(&mut BlowUp, &grid, 1e-6, 1e-9, &[1.0], &mut rows).unwrap_err();
        eprintln!("dopri5 blow-up: {} with y = {:e}", err, err.state[0]);
        assert!(matches!(err.cause, Cause::StepSizeUnderflow { .. } | Cause::NonFinite));
        assert!((err.t - 1.0).abs() < 1e-3, "{}", err.t);
        assert!(err.state[0].is_finite());
        assert!(rows.last().unwrap().0 <= err.t);
    }

    #[test]
    fn zero_length_run() {
        let mut rows = Vec::new();
        let grid = Grid { t0: 1.0, t_end: 1.0, dt: 0.5, every: 1 };
        dopri5(&mut BlowUp, &grid, 1e-6, 1e-9, &[1.0], &mut rows).unwrap();
        assert_eq!(rows, vec![(1.0, vec![1.0])]);
    }
}
