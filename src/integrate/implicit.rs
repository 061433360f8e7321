//! The implicit midpoint rule, solved by Newton's method: on a first-order system
//! `y' = F(t, y)` ([`midpoint`]), and on the Hamiltonian form of a Lagrangian model in
//! `(q, p)` ([`canonical_midpoint`]), the one that is symplectic whatever `L`.

use super::explicit::check_dim;
use super::linalg;
use super::{all_finite, drive, norm, Cause, Failure, Grid, LagrangianSystem, Observer, OdeSystem, Stats, Stepper};

/// The largest number of Newton iterations in one step.
pub(super) const NEWTON_MAX_ITERATIONS: usize = 20;

/// The relative Newton tolerance: stop at `‖Δ‖ ≤ 1e-12 (1 + ‖Y‖)`.
pub(super) const NEWTON_TOLERANCE: f64 = 1e-12;

/// One step of `y1 = y0 + h F(t + h/2, (y0 + y1)/2)`.
struct ImplicitMidpoint<'a, S> {
    sys: &'a mut S,
    y: Vec<f64>,
    next: Vec<f64>,
    mid: Vec<f64>,
    f: Vec<f64>,
    jac: Vec<f64>,
    residual: Vec<f64>,
    stats: Stats,
}

impl<S: OdeSystem> Stepper for ImplicitMidpoint<'_, S> {
    fn step(&mut self, t: f64, h: f64) -> Result<(), Cause> {
        let n = self.y.len();
        let t_mid = t + 0.5 * h;
        // Explicit Euler predictor.
        self.sys.rhs(t, &self.y, &mut self.f)?;
        self.stats.rhs_evals += 1;
        for i in 0..n {
            self.next[i] = self.y[i] + h * self.f[i];
        }
        for _ in 0..NEWTON_MAX_ITERATIONS {
            self.stats.newton_iterations += 1;
            for i in 0..n {
                self.mid[i] = 0.5 * (self.y[i] + self.next[i]);
            }
            self.sys.rhs(t_mid, &self.mid, &mut self.f)?;
            self.sys.jacobian(t_mid, &self.mid, &mut self.jac)?;
            self.stats.rhs_evals += 1;
            // G(Y) = Y − y0 − h F(t̄, (y0 + Y)/2), J = I − (h/2) ∂F/∂y.
            for i in 0..n {
                self.residual[i] = self.next[i] - self.y[i] - h * self.f[i];
            }
            for (idx, j) in self.jac.iter_mut().enumerate() {
                let diagonal = if idx / n == idx % n { 1.0 } else { 0.0 };
                *j = diagonal - 0.5 * h * *j;
            }
            if !all_finite(&self.residual) {
                return Err(Cause::NonFinite);
            }
            let factor = linalg::factor(&self.jac, n).map_err(|_| Cause::SingularNewtonMatrix)?;
            factor.solve(&mut self.residual);
            for i in 0..n {
                self.next[i] -= self.residual[i];
            }
            if !all_finite(&self.next) {
                return Err(Cause::NonFinite);
            }
            if norm(&self.residual) <= NEWTON_TOLERANCE * (1.0 + norm(&self.next)) {
                self.y.copy_from_slice(&self.next);
                self.stats.steps += 1;
                return Ok(());
            }
        }
        Err(Cause::NewtonDiverged { iterations: NEWTON_MAX_ITERATIONS })
    }
    fn row(&self) -> &[f64] {
        &self.y
    }
    fn stats(&self) -> Stats {
        self.stats
    }
}

/// Integrates `y' = F(t, y)` by the implicit midpoint rule, Newton's method with
/// `J = I − (h/2) ∂F/∂y` from an explicit Euler predictor, stopping at
/// `‖ΔY‖ ≤ 1e-12 (1 + ‖Y‖)` and failing with [`Cause::NewtonDiverged`] after 20 iterations.
/// Order 2; conserves quadratic invariants exactly. It is symplectic when `y` is a canonical
/// pair `(q, p)`, or `(q, v)` with a constant mass matrix; on `(q, v)` with a mass matrix that
/// depends on `q` it is not: Lagrangian models use [`canonical_midpoint`].
pub fn midpoint(sys: &mut impl OdeSystem, grid: &Grid, y0: &[f64], obs: &mut impl Observer) -> Result<Stats, Failure> {
    let n = sys.dim();
    check_dim(grid, y0, n)?;
    let mut method = ImplicitMidpoint {
        sys,
        y: y0.to_vec(),
        next: vec![0.0; n],
        mid: vec![0.0; n],
        f: vec![0.0; n],
        jac: vec![0.0; n * n],
        residual: vec![0.0; n],
        stats: Stats::default(),
    };
    drive(grid, &mut method, obs)
}

/// Integrates a Lagrangian model by the implicit midpoint rule applied to its Hamiltonian
/// form in `(q, p)`, `p = L_v`, which is symplectic for any `L` (docs/numerics.md §Implicit
/// midpoint). With `q̄ = (q_k + q_{k+1})/2`, `p̄ = (p_k + p_{k+1})/2` and `v̄ = ∂H/∂p(q̄, p̄)`,
/// which solves `p̄ = L_v(q̄, v̄)`, and `∂H/∂q = −L_q` at `(q̄, v̄)`, the rule reads
/// `q_{k+1} = q_k + h v̄`, `p_{k+1} = p_k + h (L_q + F)(q̄, v̄, t_k + h/2)`, with the force
/// `F` added to the momentum update. Eliminating `q_{k+1}` and `p_{k+1}` leaves `n`
/// equations in `v̄`, `L_v − (h/2)(L_q + F) − p_k = 0` at `q̄ = q_k + (h/2)v̄`: the discrete
/// Euler–Lagrange equations of [`super::variational`], so the two methods are one map and
/// share one Newton iteration (the exact Jacobian, a residual at rounding level). Rows are
/// `(q, v)`, with `v_k` solving `L_v(q_k, v_k, t_k) = p_k`.
pub fn canonical_midpoint(
    sys: &mut impl LagrangianSystem,
    grid: &Grid,
    q0: &[f64],
    v0: &[f64],
    obs: &mut impl Observer,
) -> Result<Stats, Failure> {
    super::variational::discrete_lagrangian(sys, grid, q0, v0, obs)
}

#[cfg(test)]
mod tests {
    use super::super::explicit::tests::{angular_momentum, Kepler, Oscillator, OscillatorLagrangian, DAMPED_Q10};
    use super::super::{lagrangian_system, LagrangianPoint};
    use super::*;
    use crate::integrate::Stop;

    #[test]
    fn harmonic_oscillator_rotates_by_two_atan_half_h() {
        let h = 0.1;
        let phi = 2.0 * (h / 2.0_f64).atan();
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 10.0, dt: h, every: 1 };
        midpoint(&mut Oscillator { damping: 0.0 }, &grid, &[1.0, 0.0], &mut rows).unwrap();
        assert_eq!(rows.len(), 101);
        let worst = rows
            .iter()
            .enumerate()
            .map(|(k, (_, y))| {
                let a = k as f64 * phi;
                (y[0] - a.cos()).abs().max((y[1] + a.sin()).abs())
            })
            .fold(0.0, f64::max);
        eprintln!("midpoint closed form worst error: {worst:e}");
        assert!(worst < 1e-11, "{worst:e}");
    }

    #[test]
    fn kepler_angular_momentum_is_conserved() {
        let h = 2.0 * std::f64::consts::PI / 628.0;
        let grid = Grid { t0: 0.0, t_end: 4.0 * std::f64::consts::PI, dt: h, every: 1 };
        let mut worst = 0.0_f64;
        let mut obs = |_t: f64, y: &[f64]| -> Result<(), Stop> {
            worst = worst.max((angular_momentum(y) - 0.8).abs());
            Ok(())
        };
        midpoint(&mut Kepler, &grid, &[0.4, 0.0, 0.0, 2.0], &mut obs).unwrap();
        eprintln!("midpoint Kepler angular momentum drift: {worst:e}");
        assert!(worst < 1e-12, "{worst:e}");
    }

    #[test]
    fn damped_oscillator_at_second_order() {
        // Global error O(h²): 2.04e-5 at h = 0.01 (measured); assert 3e-5, and that
        // halving h divides it by 4.
        let error = |h: f64| {
            let mut rows = Vec::new();
            let grid = Grid { t0: 0.0, t_end: 10.0, dt: h, every: 10_000 };
            midpoint(&mut Oscillator { damping: 0.2 }, &grid, &[1.0, 0.0], &mut rows).unwrap();
            (rows.last().unwrap().1[0] - DAMPED_Q10).abs()
        };
        let (e1, e2) = (error(0.01), error(0.005));
        eprintln!("midpoint damped q(10) error: {e1:e} (h = 0.01), {e2:e} (h = 0.005)");
        assert!(e1 < 3e-5, "{e1:e}");
        assert!((e1 / e2 - 4.0).abs() < 0.1, "{}", e1 / e2);
        // The Lagrangian first-order form with its finite-difference Jacobian agrees.
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 10.0, dt: 0.01, every: 10_000 };
        let mut sys = lagrangian_system(OscillatorLagrangian { damping: 0.2 });
        midpoint(&mut sys, &grid, &[1.0, 0.0], &mut rows).unwrap();
        let e3 = (rows.last().unwrap().1[0] - DAMPED_Q10).abs();
        assert!((e3 - e1).abs() < 1e-10, "{e3:e} vs {e1:e}");
    }

    /// The spherical pendulum `L = ½(θ'² + sin²θ φ'²) + cos θ`, `q = (θ, φ)`: a mass matrix
    /// that depends on `θ`; `φ` is cyclic.
    pub(in crate::integrate) struct SphericalPendulum;
    impl LagrangianSystem for SphericalPendulum {
        fn n(&self) -> usize {
            2
        }
        fn eval(&mut self, _t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
            let (s, c) = q[0].sin_cos();
            out.lv.copy_from_slice(&[v[0], s * s * v[1]]);
            out.lq.copy_from_slice(&[s * c * v[1] * v[1] - s, 0.0]);
            out.lvv.copy_from_slice(&[1.0, 0.0, 0.0, s * s]);
            out.lvq.copy_from_slice(&[0.0, 0.0, 2.0 * s * c * v[1], 0.0]);
            out.lqq.copy_from_slice(&[(c * c - s * s) * v[1] * v[1] - c, 0.0, 0.0, 0.0]);
            Ok(())
        }
    }

    /// `(q, p)` of a spherical pendulum row `(θ, φ, θ', φ')`.
    fn canonical(y: &[f64]) -> [f64; 4] {
        [y[0], y[1], y[2], y[0].sin().powi(2) * y[3]]
    }

    /// One step of length `h` from `(q, p)`, by the rule on `(q, p)` or on `(q, v)`.
    fn one_step(x: [f64; 4], h: f64, in_q_p: bool) -> [f64; 4] {
        let v = [x[2], x[3] / x[0].sin().powi(2)];
        let grid = Grid { t0: 0.0, t_end: h, dt: h, every: 1 };
        let mut rows = Vec::new();
        if in_q_p {
            canonical_midpoint(&mut SphericalPendulum, &grid, &x[..2], &v, &mut rows).unwrap();
        } else {
            let y0 = [x[0], x[1], v[0], v[1]];
            midpoint(&mut lagrangian_system(SphericalPendulum), &grid, &y0, &mut rows).unwrap();
        }
        canonical(&rows.last().unwrap().1)
    }

    /// `max |JᵀΩJ − Ω|` of the one-step map's Jacobian by central differences of step 1e-5.
    fn symplecticity_error(h: f64, in_q_p: bool) -> f64 {
        let x0 = [1.0, 0.0, 0.3, 0.9];
        let mut jac = [[0.0; 4]; 4];
        for j in 0..4 {
            let (mut xp, mut xm) = (x0, x0);
            xp[j] += 1e-5;
            xm[j] -= 1e-5;
            let (fp, fm) = (one_step(xp, h, in_q_p), one_step(xm, h, in_q_p));
            for i in 0..4 {
                jac[i][j] = (fp[i] - fm[i]) / 2e-5;
            }
        }
        let omega = |i: usize, k: usize| match (i, k) {
            (0, 2) | (1, 3) => 1.0,
            (2, 0) | (3, 1) => -1.0,
            _ => 0.0,
        };
        let mut worst = 0.0_f64;
        for a in 0..4 {
            for b in 0..4 {
                let s: f64 = (0..4)
                    .flat_map(|i| (0..4).map(move |k| (i, k)))
                    .map(|(i, k)| jac[i][a] * omega(i, k) * jac[k][b])
                    .sum();
                worst = worst.max((s - omega(a, b)).abs());
            }
        }
        worst
    }

    #[test]
    fn the_rule_is_symplectic_in_q_p_and_not_in_q_v() {
        let (qp, qv) = (symplecticity_error(0.1, true), symplecticity_error(0.1, false));
        eprintln!("spherical pendulum symplecticity error at h = 0.1: (q, p) {qp:e}, (q, v) {qv:e}");
        assert!(qp < 1e-7, "{qp:e}");
        // The measurement tells the two apart.
        assert!(qv > 1e-5, "{qv:e}");
    }

    #[test]
    fn spherical_pendulum_keeps_lz_in_q_p() {
        let grid = Grid { t0: 0.0, t_end: 1000.0, dt: 0.1, every: 1 };
        let (mut worst_qp, mut worst_qv) = (0.0_f64, 0.0_f64);
        let lz0 = 1.0_f64.sin().powi(2) * 0.9;
        let mut obs = |_t: f64, y: &[f64]| -> Result<(), Stop> {
            worst_qp = worst_qp.max((canonical(y)[3] - lz0).abs() / lz0);
            Ok(())
        };
        let v0 = [0.3, 0.9];
        canonical_midpoint(&mut SphericalPendulum, &grid, &[1.0, 0.0], &v0, &mut obs).unwrap();
        let mut obs = |_t: f64, y: &[f64]| -> Result<(), Stop> {
            worst_qv = worst_qv.max((canonical(y)[3] - lz0).abs() / lz0);
            Ok(())
        };
        midpoint(&mut lagrangian_system(SphericalPendulum), &grid, &[1.0, 0.0, 0.3, 0.9], &mut obs).unwrap();
        eprintln!("spherical pendulum L_z relative drift over t = 1000: (q, p) {worst_qp:e}, (q, v) {worst_qv:e}");
        assert!(worst_qp < 1e-12, "{worst_qp:e}");
        assert!(worst_qv > 1e-8, "{worst_qv:e}");
    }

    /// `y' = −y³` with a Jacobian that lies, so Newton cannot converge.
    struct WrongJacobian;
    impl OdeSystem for WrongJacobian {
        fn dim(&self) -> usize {
            1
        }
        fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
            dy[0] = -y[0] * y[0] * y[0];
            Ok(())
        }
        fn jacobian(&mut self, _t: f64, _y: &[f64], jac: &mut [f64]) -> Result<(), Cause> {
            jac[0] = 1.0e3;
            Ok(())
        }
    }

    #[test]
    fn newton_divergence_is_reported() {
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 1.0, dt: 0.5, every: 1 };
        let err = midpoint(&mut WrongJacobian, &grid, &[3.0], &mut rows).unwrap_err();
        assert!(matches!(err.cause, Cause::NewtonDiverged { iterations: 20 } | Cause::NonFinite), "{err}");
        assert_eq!((err.t, err.state), (0.0, vec![3.0]));
    }
}
