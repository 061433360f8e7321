//! The variational integrator of the midpoint discrete Lagrangian
//! `L_d(q_k, q_{k+1}) = h L((q_k + q_{k+1})/2, (q_{k+1} − q_k)/h, t_k + h/2)`, with forces by
//! the discrete Lagrange–d'Alembert principle. Its map in `(q, p)` is the implicit midpoint
//! rule of the Hamiltonian form, which [`super::canonical_midpoint`] runs through the same
//! step (docs/numerics.md §Implicit midpoint, §Variational integrator).

use super::banded::Banded;
use super::implicit::NEWTON_MAX_ITERATIONS;
use super::linalg;
use super::{
    all_finite, drive, fail_at_start, norm, Cause, Failure, Grid, LagrangianPoint, LagrangianSystem, Observer, Stats,
    Stepper,
};

/// A residual that stops decreasing at most this fraction of its scale is at the rounding
/// floor of its evaluation (about `ε` times the scale, more with cancellation inside the
/// kernels).
const FLOOR: f64 = 1e-10;

/// Newton's stopping rule on a residual `r` with a scale `s` (docs/numerics.md §Variational
/// integrator): stop at `r = 0`; or, once `‖r‖` no longer halves from one iterate to the
/// next, take the best iterate if its residual is at most `1e-10·s`; else go on. Newton
/// halves the residual at every update until rounding stops it, so a run goes on to the
/// rounding floor: stopping earlier, at a residual of a few `ε·s`, leaves errors of one sign
/// (Newton approaches from one side) that add up in the momenta over long runs.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stopping {
    /// The smallest residual norm seen.
    best: f64,
    /// The previous iterate's residual norm.
    previous: f64,
}

/// What Newton does after evaluating a residual.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Update and evaluate again.
    Continue,
    /// The current iterate solves the equations exactly.
    Converged,
    /// The residual is at its rounding floor: the best iterate is converged.
    Floor,
}

impl Stopping {
    pub(super) fn new() -> Self {
        Stopping { best: f64::INFINITY, previous: f64::INFINITY }
    }

    /// Records the residual norm `r` of the current iterate at scale `s`: whether it is the
    /// best so far, and what to do next.
    pub(super) fn check(&mut self, r: f64, s: f64) -> (bool, Verdict) {
        let is_best = r < self.best;
        if is_best {
            self.best = r;
        }
        let stalled = r > 0.5 * self.previous;
        self.previous = r;
        let verdict = if r == 0.0 {
            Verdict::Converged
        } else if stalled && self.best <= FLOOR * s {
            Verdict::Floor
        } else {
            Verdict::Continue
        };
        (is_best, verdict)
    }
}

/// The discrete Euler–Lagrange map in `(q, p)`, reporting rows `(q, v)`. The unknown of each
/// step is `v̄ = (q_{k+1} − q_k)/h`: it keeps its relative precision when `q` grows (an
/// unbounded angle), so that the residual can reach rounding level.
struct DiscreteLagrangian<'a, S> {
    sys: &'a mut S,
    n: usize,
    q: Vec<f64>,
    /// The discrete momenta `p_k`.
    p: Vec<f64>,
    /// `(q_k, v_k)` with `L_v(q_k, v_k, t_k) = p_k`.
    row: Vec<f64>,
    point: LagrangianPoint,
    /// The Newton iterate `v̄`.
    v_mid: Vec<f64>,
    q_mid: Vec<f64>,
    /// The best iterate: `v̄`, or `v` in the velocity solve.
    best: Vec<f64>,
    /// `p_{k+1}` at the current iterate and at the best.
    trial_p: Vec<f64>,
    best_p: Vec<f64>,
    residual: Vec<f64>,
    /// The Newton matrix, dense (`n × n`) or in band storage.
    jac: Newton,
    stats: Stats,
}

/// Where the Newton matrices are factored: dense, or in band storage when the point's
/// matrices are banded ([`LagrangianSystem::band`]) and the model is at least
/// [`BANDED_MIN`] coordinates long.
enum Newton {
    Dense(Vec<f64>),
    Banded(Banded),
}

/// The fewest coordinates whose Newton matrices are factored in band storage; below, a
/// dense factorisation costs about as little.
pub const BANDED_MIN: usize = 64;

/// Whether `n` coordinates with point matrices of half-bandwidth `band` are solved in band
/// storage: at least [`BANDED_MIN`] of them, and a band narrower than a quarter of `n`.
pub fn banded_newton(n: usize, band: Option<usize>) -> bool {
    band.is_some_and(|b| n >= BANDED_MIN && 4 * b < n)
}

impl Newton {
    fn new(n: usize, band: Option<usize>) -> Newton {
        match band {
            Some(b) if banded_newton(n, band) => Newton::Banded(Banded::zeros(n, b, b)),
            _ => Newton::Dense(vec![0.0; n * n]),
        }
    }

    /// Solves `A x = r` in place for the matrix with entries `entry(i, j)`, each read only
    /// within the band when the storage is banded.
    fn solve(&mut self, n: usize, r: &mut [f64], entry: impl Fn(usize, usize) -> f64) -> Result<(), Cause> {
        match self {
            Newton::Dense(a) => {
                for i in 0..n {
                    for j in 0..n {
                        a[i * n + j] = entry(i, j);
                    }
                }
                linalg::solve_spd_or_lu(a, r, n)
            }
            Newton::Banded(a) => {
                a.clear();
                let b = a.kl;
                for i in 0..n {
                    for j in i.saturating_sub(b)..(i + b + 1).min(n) {
                        a.add(i, j, entry(i, j));
                    }
                }
                a.factor().map_err(|_| Cause::SingularMassMatrix)?;
                a.solve(r);
                if r.iter().all(|v| v.is_finite()) {
                    Ok(())
                } else {
                    Err(Cause::NonFinite)
                }
            }
        }
    }
}

impl<S: LagrangianSystem> DiscreteLagrangian<'_, S> {
    /// Evaluates the derivatives of `L` at `q̄ = q_k + (h/2)v̄`, `v̄`, `t̄`.
    fn eval_midpoint(&mut self, t_mid: f64, h: f64) -> Result<(), Cause> {
        for i in 0..self.n {
            self.q_mid[i] = self.q[i] + 0.5 * h * self.v_mid[i];
        }
        self.stats.rhs_evals += 1;
        self.sys.eval(t_mid, &self.q_mid, &self.v_mid, &mut self.point)
    }

    /// Solves `L_v(q, v, t) = p` for `v` by Newton's method from the current velocity,
    /// stopping by [`Stopping`] with the scale `‖L_v‖ + ‖p‖`.
    fn velocity(&mut self, t: f64) -> Result<(), Cause> {
        let n = self.n;
        let mut stop = Stopping::new();
        for _ in 0..=NEWTON_MAX_ITERATIONS {
            let (q, v) = self.row.split_at_mut(n);
            self.sys.eval(t, q, v, &mut self.point)?;
            self.stats.rhs_evals += 1;
            for i in 0..n {
                self.residual[i] = self.point.lv[i] - self.p[i];
            }
            if !all_finite(&self.residual) {
                return Err(Cause::NonFinite);
            }
            let (is_best, verdict) = stop.check(norm(&self.residual), norm(&self.point.lv) + norm(&self.p));
            if is_best {
                self.best.copy_from_slice(v);
            }
            // The velocity is defined only by a regular L_vv: it is factorised even when the
            // residual is already at rounding.
            let lvv = &self.point.lvv;
            self.jac.solve(n, &mut self.residual, |i, j| lvv[i * n + j])?;
            match verdict {
                Verdict::Converged => return Ok(()),
                Verdict::Floor => {
                    v.copy_from_slice(&self.best);
                    return Ok(());
                }
                Verdict::Continue => {}
            }
            for (vi, r) in v.iter_mut().zip(&self.residual) {
                *vi -= r;
            }
        }
        Err(Cause::NewtonDiverged { iterations: NEWTON_MAX_ITERATIONS })
    }
}

impl<S: LagrangianSystem> Stepper for DiscreteLagrangian<'_, S> {
    fn step(&mut self, t: f64, h: f64) -> Result<(), Cause> {
        let n = self.n;
        let t_mid = t + 0.5 * h;
        self.v_mid.copy_from_slice(&self.row[n..]);
        let mut stop = Stopping::new();
        let mut iterations = 0;
        loop {
            self.eval_midpoint(t_mid, h)?;
            let pt = &self.point;
            // r = L_v − (h/2)(L_q + F) − p_k; p_{k+1} = L_v + (h/2)(L_q + F); the scale
            // ‖(|L_v| + |(h/2)(L_q + F)| + |p_k|)_i‖ (docs/numerics.md §Variational integrator).
            let mut scale = 0.0;
            for i in 0..n {
                let half_kick = 0.5 * h * (pt.lq[i] + pt.force[i]);
                self.residual[i] = pt.lv[i] - half_kick - self.p[i];
                self.trial_p[i] = pt.lv[i] + half_kick;
                let size = pt.lv[i].abs() + half_kick.abs() + self.p[i].abs();
                scale += size * size;
            }
            if !all_finite(&self.residual) {
                return Err(Cause::NonFinite);
            }
            let (is_best, verdict) = stop.check(norm(&self.residual), scale.sqrt());
            if is_best {
                self.best.copy_from_slice(&self.v_mid);
                self.best_p.copy_from_slice(&self.trial_p);
            }
            if verdict != Verdict::Continue {
                break;
            }
            if iterations == NEWTON_MAX_ITERATIONS {
                return Err(Cause::NewtonDiverged { iterations });
            }
            iterations += 1;
            self.stats.newton_iterations += 1;
            // ∂r/∂v̄ = L_vv + (h/2)(L_vq − L_vqᵀ) − (h²/4)(L_qq + F_q) − (h/2)F_v.
            self.jac.solve(n, &mut self.residual, |i, j| {
                let ij = i * n + j;
                pt.lvv[ij] + 0.5 * h * (pt.lvq[ij] - pt.lvq[j * n + i])
                    - 0.25 * h * h * (pt.lqq[ij] + pt.force_q[ij])
                    - 0.5 * h * pt.force_v[ij]
            })?;
            for i in 0..n {
                self.v_mid[i] -= self.residual[i];
            }
        }
        // The best iterate: q_{k+1} = q_k + h v̄, and its p_{k+1}.
        for i in 0..n {
            self.q[i] += h * self.best[i];
        }
        self.p.copy_from_slice(&self.best_p);
        self.row[..n].copy_from_slice(&self.q);
        self.velocity(t + h)?;
        self.stats.steps += 1;
        Ok(())
    }
    fn row(&self) -> &[f64] {
        &self.row
    }
    fn is_finite(&self) -> bool {
        all_finite(&self.row) && all_finite(&self.p)
    }
    fn stats(&self) -> Stats {
        self.stats
    }
}

/// Integrates a Lagrangian model by the midpoint variational integrator.
///
/// Each step solves `r(v̄) = L_v − (h/2)(L_q + F) − p_k = 0` for `v̄ = (q_{k+1} − q_k)/h` by
/// Newton's method from `v_k`, with the exact Jacobian from the Lagrangian point (all
/// derivatives at `q̄ = q_k + (h/2)v̄`, `v̄`, `t_k + h/2`), until `r` is at rounding level
/// relative to the momenta, where it stops decreasing ([`Stopping`]; at most 20 updates), then sets
/// `q_{k+1} = q_k + h v̄` and `p_{k+1} = L_v + (h/2)(L_q + F)`. It starts from
/// `p_0 = L_v(q_0, v_0, t_0)` and reports `v_k` solving `L_v(q_k, v_k, t_k) = p_k`. Rows are
/// `(q, v)`. Symplectic, order 2, and keeps the momentum of every symmetry to rounding.
pub fn variational(
    sys: &mut impl LagrangianSystem,
    grid: &Grid,
    q0: &[f64],
    v0: &[f64],
    obs: &mut impl Observer,
) -> Result<Stats, Failure> {
    discrete_lagrangian(sys, grid, q0, v0, obs)
}

/// Runs the discrete Euler–Lagrange map of [`variational`] from `(q0, v0)`.
pub(super) fn discrete_lagrangian(
    sys: &mut impl LagrangianSystem,
    grid: &Grid,
    q0: &[f64],
    v0: &[f64],
    obs: &mut impl Observer,
) -> Result<Stats, Failure> {
    let n = sys.n();
    let band = sys.band();
    let start: Vec<f64> = q0.iter().chain(v0).copied().collect();
    if q0.len() != n || v0.len() != n {
        let cause = Cause::Invalid(format!(
            "the model has {n} coordinates, the initial state {} positions and {} velocities",
            q0.len(),
            v0.len()
        ));
        return Err(fail_at_start(grid, &start, cause));
    }
    let mut point = LagrangianPoint::new(n);
    if !all_finite(&start) {
        return Err(fail_at_start(grid, &start, Cause::NonFinite));
    }
    sys.eval(grid.t0, q0, v0, &mut point).map_err(|c| fail_at_start(grid, &start, c))?;
    let p = point.lv.clone();
    let mut method = DiscreteLagrangian {
        sys,
        n,
        q: q0.to_vec(),
        p,
        row: start,
        point,
        v_mid: vec![0.0; n],
        q_mid: vec![0.0; n],
        best: vec![0.0; n],
        trial_p: vec![0.0; n],
        best_p: vec![0.0; n],
        residual: vec![0.0; n],
        jac: Newton::new(n, band),
        stats: Stats { rhs_evals: 1, ..Stats::default() },
    };
    drive(grid, &mut method, obs)
}

#[cfg(test)]
mod tests {
    use super::super::explicit::tests::{angular_momentum, OscillatorLagrangian, DAMPED_Q10};
    use super::*;
    use crate::integrate::Stop;
    use std::f64::consts::PI;

    /// `L = ½|v|² + 1/|q|`.
    struct KeplerLagrangian;
    impl LagrangianSystem for KeplerLagrangian {
        fn n(&self) -> usize {
            2
        }
        fn eval(&mut self, _t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
            let r2 = q[0] * q[0] + q[1] * q[1];
            let r3 = r2 * r2.sqrt();
            let r5 = r3 * r2;
            out.lv.copy_from_slice(v);
            out.lq[0] = -q[0] / r3;
            out.lq[1] = -q[1] / r3;
            out.lvv.copy_from_slice(&[1.0, 0.0, 0.0, 1.0]);
            out.lqq[0] = -1.0 / r3 + 3.0 * q[0] * q[0] / r5;
            out.lqq[1] = 3.0 * q[0] * q[1] / r5;
            out.lqq[2] = out.lqq[1];
            out.lqq[3] = -1.0 / r3 + 3.0 * q[1] * q[1] / r5;
            Ok(())
        }
    }

    #[test]
    fn harmonic_oscillator_equals_midpoint_in_q_p() {
        let h = 0.1;
        let phi = 2.0 * (h / 2.0_f64).atan();
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 10.0, dt: h, every: 1 };
        let mut sys = OscillatorLagrangian { damping: 0.0 };
        variational(&mut sys, &grid, &[1.0], &[0.0], &mut rows).unwrap();
        let worst = rows
            .iter()
            .enumerate()
            .map(|(k, (_, y))| {
                let a = k as f64 * phi;
                (y[0] - a.cos()).abs().max((y[1] + a.sin()).abs())
            })
            .fold(0.0, f64::max);
        eprintln!("variational closed form worst error: {worst:e}");
        assert!(worst < 1e-11, "{worst:e}");
    }

    #[test]
    fn kepler_angular_momentum_is_conserved() {
        let h = 2.0 * PI / 628.0;
        let grid = Grid { t0: 0.0, t_end: 4.0 * PI, dt: h, every: 1 };
        let mut worst = 0.0_f64;
        let mut obs = |_t: f64, y: &[f64]| -> Result<(), Stop> {
            worst = worst.max((angular_momentum(y) - 0.8).abs());
            Ok(())
        };
        variational(&mut KeplerLagrangian, &grid, &[0.4, 0.0], &[0.0, 2.0], &mut obs).unwrap();
        eprintln!("variational Kepler angular momentum drift: {worst:e}");
        assert!(worst < 1e-12, "{worst:e}");
    }

    #[test]
    fn damped_oscillator_at_second_order_with_monotone_energy() {
        // Global error O(h²): 2.04e-5 at h = 0.01 (measured); assert 3e-5, and that
        // halving h divides it by 4.
        let run = |h: f64| {
            let mut rows = Vec::new();
            let grid = Grid { t0: 0.0, t_end: 10.0, dt: h, every: 1 };
            let mut sys = OscillatorLagrangian { damping: 0.2 };
            variational(&mut sys, &grid, &[1.0], &[0.0], &mut rows).unwrap();
            rows
        };
        let rows = run(0.01);
        let e1 = (rows.last().unwrap().1[0] - DAMPED_Q10).abs();
        let e2 = (run(0.005).last().unwrap().1[0] - DAMPED_Q10).abs();
        eprintln!("variational damped q(10) error: {e1:e} (h = 0.01), {e2:e} (h = 0.005)");
        assert!(e1 < 3e-5, "{e1:e}");
        assert!((e1 / e2 - 4.0).abs() < 0.1, "{}", e1 / e2);
        let energy: Vec<f64> = rows.iter().map(|(_, y)| 0.5 * (y[0] * y[0] + y[1] * y[1])).collect();
        assert!(energy.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn stopping_waits_for_rounding_or_a_floor() {
        let mut s = Stopping::new();
        // Quadratic convergence goes on while the residual halves, down to its floor.
        assert_eq!(s.check(1e-3, 1.0), (true, Verdict::Continue));
        assert_eq!(s.check(1e-9, 1.0), (true, Verdict::Continue));
        assert_eq!(s.check(1e-16, 1.0), (true, Verdict::Continue));
        assert_eq!(s.check(2e-16, 1.0), (false, Verdict::Floor));
        assert_eq!(Stopping::new().check(0.0, 1.0), (true, Verdict::Converged));
        // A floor above rounding, from cancellation.
        let mut s = Stopping::new();
        s.check(1e-3, 1.0);
        assert_eq!(s.check(3e-13, 1.0), (true, Verdict::Continue));
        assert_eq!(s.check(2e-13, 1.0), (true, Verdict::Floor));
        // Stalling far from rounding is no convergence.
        let mut s = Stopping::new();
        s.check(1e-3, 1.0);
        assert_eq!(s.check(0.9e-3, 1.0), (true, Verdict::Continue));
        // The scale is that of the momenta.
        for (scale, verdict) in [(1e3, Verdict::Floor), (1.0, Verdict::Continue)] {
            let mut s = Stopping::new();
            s.check(1e-3, scale);
            assert_eq!(s.check(2e-8, scale), (true, Verdict::Continue));
            assert_eq!(s.check(3e-8, scale), (false, verdict));
        }
    }

    /// Kepler in polar form, `L = ½(r'² + r²φ'²) + 1/r`: `φ` grows without bound.
    struct PolarKepler;
    impl LagrangianSystem for PolarKepler {
        fn n(&self) -> usize {
            2
        }
        fn eval(&mut self, _t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
            let r = q[0];
            out.lv.copy_from_slice(&[v[0], r * r * v[1]]);
            out.lq.copy_from_slice(&[r * v[1] * v[1] - 1.0 / (r * r), 0.0]);
            out.lvv.copy_from_slice(&[1.0, 0.0, 0.0, r * r]);
            out.lvq.copy_from_slice(&[0.0, 0.0, 2.0 * r * v[1], 0.0]);
            out.lqq.copy_from_slice(&[v[1] * v[1] + 2.0 / (r * r * r), 0.0, 0.0, 0.0]);
            Ok(())
        }
    }

    #[test]
    fn polar_kepler_keeps_r2_phi_dot_over_100_periods() {
        // Was 6.3e-10 with a stopping test on the update relative to |q|.
        let h = 2.0 * PI / 628.0;
        let grid = Grid { t0: 0.0, t_end: 200.0 * PI, dt: h, every: 1 };
        let mut worst = 0.0_f64;
        let mut phi = 0.0;
        let mut obs = |_t: f64, y: &[f64]| -> Result<(), Stop> {
            worst = worst.max((y[0] * y[0] * y[3] - 0.8).abs() / 0.8);
            phi = y[1];
            Ok(())
        };
        variational(&mut PolarKepler, &grid, &[0.4, 0.0], &[0.0, 5.0], &mut obs).unwrap();
        eprintln!("variational polar Kepler r²φ' relative drift over 100 periods: {worst:e} (φ = {phi})");
        assert!(phi > 600.0);
        assert!(worst < 1e-12, "{worst:e}");
    }

    /// `L = ½v² − ½q²` whose point reports `L_vv = 10³`: Newton contracts by about
    /// `1 − 10⁻³` per update and cannot converge within its cap.
    struct LyingMass;
    impl LagrangianSystem for LyingMass {
        fn n(&self) -> usize {
            1
        }
        fn eval(&mut self, _t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
            out.lv[0] = v[0];
            out.lq[0] = -q[0];
            out.lvv[0] = 1e3;
            out.lqq[0] = -1.0;
            Ok(())
        }
    }

    #[test]
    fn newton_cap_is_a_failure_with_time_and_state() {
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 1.0, dt: 0.1, every: 1 };
        let err = variational(&mut LyingMass, &grid, &[1.0], &[0.5], &mut rows).unwrap_err();
        assert_eq!(err.cause, Cause::NewtonDiverged { iterations: NEWTON_MAX_ITERATIONS });
        assert_eq!((err.t, err.state), (0.0, vec![1.0, 0.5]));
    }

    /// `L = ½ a v² − ½ q²` with `a = 0`: no dynamics to solve for.
    struct Massless;
    impl LagrangianSystem for Massless {
        fn n(&self) -> usize {
            1
        }
        fn eval(&mut self, _t: f64, q: &[f64], _v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
            out.lq[0] = -q[0];
            out.lqq[0] = -1.0;
            Ok(())
        }
    }

    #[test]
    fn singular_mass_matrix_is_reported() {
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 1.0, dt: 0.1, every: 1 };
        // At h = 0.1 the Newton matrix is −(h/4)L_qq, nonsingular, but the velocity solve
        // needs L_vv = 0.
        let err = variational(&mut Massless, &grid, &[1.0], &[0.0], &mut rows).unwrap_err();
        assert_eq!(err.cause, Cause::SingularMassMatrix);
        assert_eq!((err.t, err.state), (0.0, vec![1.0, 0.0]));
    }

    /// An FPUT-α lattice of `n` sites with fixed ends and a mass that depends on the next
    /// site, `½(1 + β u_{i+1}²) v_i²`: its point matrices are tridiagonal and `L_vq` is not
    /// symmetric. `band` says so or not.
    struct Lattice {
        n: usize,
        band: Option<usize>,
    }
    const ALPHA: f64 = 0.25;
    const BETA: f64 = 0.1;
    impl LagrangianSystem for Lattice {
        fn n(&self) -> usize {
            self.n
        }
        fn band(&self) -> Option<usize> {
            self.band
        }
        fn eval(&mut self, _t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
            let n = self.n;
            let at = |k: isize| if k < 0 || k >= n as isize { 0.0 } else { q[k as usize] };
            out.lqq.iter_mut().for_each(|x| *x = 0.0);
            out.lvq.iter_mut().for_each(|x| *x = 0.0);
            for i in 0..n {
                let next = at(i as isize + 1);
                let m = 1.0 + BETA * next * next;
                out.lv[i] = m * v[i];
                out.lvv[i * n + i] = m;
                if i + 1 < n {
                    out.lvq[i * n + i + 1] = 2.0 * BETA * next * v[i];
                }
                // V = Σ_bonds ½d² + α/3 d³ with d = u_{k+1} − u_k, the walls at 0.
                let (left, right) = (q[i] - at(i as isize - 1), next - q[i]);
                let (fl, fr) = (left + ALPHA * left * left, right + ALPHA * right * right);
                let (kl, kr) = (1.0 + 2.0 * ALPHA * left, 1.0 + 2.0 * ALPHA * right);
                let before = if i > 0 { v[i - 1] } else { 0.0 };
                out.lq[i] = BETA * q[i] * before * before - fl + fr;
                out.lqq[i * n + i] = BETA * before * before - kl - kr;
                if i > 0 {
                    out.lqq[i * n + i - 1] = kl;
                }
                if i + 1 < n {
                    out.lqq[i * n + i + 1] = kr;
                }
            }
            Ok(())
        }
    }

    /// The same lattice stepped with its Newton matrices in band storage and dense: the
    /// two factorisations solve the same systems, so the trajectories agree to rounding
    /// (and the band one is taken: the lattice is longer than [`BANDED_MIN`]).
    #[test]
    fn band_storage_steps_as_the_dense_factorisation_does() {
        let n = 80;
        assert!(banded_newton(n, Some(1)) && !banded_newton(n, None) && !banded_newton(BANDED_MIN - 1, Some(1)));
        let q0: Vec<f64> = (0..n).map(|i| (PI * (i + 1) as f64 / (n + 1) as f64).sin()).collect();
        let v0: Vec<f64> = (0..n).map(|i| 0.3 * (3.0 * PI * (i + 1) as f64 / (n + 1) as f64).sin()).collect();
        let grid = Grid { t0: 0.0, t_end: 20.0, dt: 0.05, every: 1 };
        let (mut band, mut dense) = (Vec::new(), Vec::new());
        let by_band = variational(&mut Lattice { n, band: Some(1) }, &grid, &q0, &v0, &mut band).unwrap();
        let by_dense = variational(&mut Lattice { n, band: None }, &grid, &q0, &v0, &mut dense).unwrap();
        assert_eq!(band.len(), 401);
        // A wrong Newton matrix still converges, to the same iterate, but slower: the
        // iterations tell.
        let (a, b) = (by_band.newton_iterations as f64, by_dense.newton_iterations as f64);
        assert!((a - b).abs() <= 0.01 * b, "{a} Newton iterations in band storage, {b} dense");
        let worst = band
            .iter()
            .zip(&dense)
            .flat_map(|((_, a), (_, b))| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .fold(0.0, f64::max);
        assert!(worst < 1e-11, "band and dense differ by {worst:e}");
        // Not a trivial motion: the state moved by order one.
        let moved = band[400].1.iter().zip(q0.iter().chain(&v0)).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(moved > 0.1, "{moved}");
    }
}
