//! The Störmer–Verlet method for `L = ½ vᵀMv − V(q)` with a constant mass matrix `M`.

use super::linalg::{self, Factor};
use super::{all_finite, drive, fail_at_start, Cause, Failure, Grid, Observer, Stats, Stepper};

/// Störmer–Verlet in `(q, p)`, `p = Mv`, reporting rows `(q, v)`.
struct StormerVerlet<G> {
    n: usize,
    grad_v: G,
    mass: Factor,
    q: Vec<f64>,
    p: Vec<f64>,
    /// `(q, v)`, with `v = M⁻¹p`.
    row: Vec<f64>,
    /// `∇V(q)` at the current point, reused as the first kick of the next step.
    grad: Vec<f64>,
    stats: Stats,
}

impl<G: FnMut(f64, &[f64], &mut [f64])> Stepper for StormerVerlet<G> {
    fn step(&mut self, t: f64, h: f64) -> Result<(), Cause> {
        let n = self.n;
        // p½ = p − (h/2)∇V(q); the gradient is the one left by the previous step.
        for i in 0..n {
            self.p[i] -= 0.5 * h * self.grad[i];
        }
        // q ← q + h M⁻¹ p½.
        let mut velocity = self.p.clone();
        self.mass.solve(&mut velocity);
        for (q, v) in self.q.iter_mut().zip(&velocity) {
            *q += h * v;
        }
        // p ← p½ − (h/2)∇V(q).
        (self.grad_v)(t + h, &self.q, &mut self.grad);
        self.stats.rhs_evals += 1;
        for i in 0..n {
            self.p[i] -= 0.5 * h * self.grad[i];
        }
        velocity.copy_from_slice(&self.p);
        self.mass.solve(&mut velocity);
        self.row[..n].copy_from_slice(&self.q);
        self.row[n..].copy_from_slice(&velocity);
        self.stats.steps += 1;
        Ok(())
    }
    fn row(&self) -> &[f64] {
        &self.row
    }
    fn is_finite(&self) -> bool {
        all_finite(&self.row) && all_finite(&self.p) && all_finite(&self.grad)
    }
    fn stats(&self) -> Stats {
        self.stats
    }
}

/// Integrates `M q'' = −∇V(q, t)` by Störmer–Verlet, a symplectic method of order 2.
///
/// `grad_v(t, q, grad)` writes `∇V`. `mass_matrix` is `M` itself (row-major `n × n`),
/// factorised once; a singular `M` fails at `t0` with [`Cause::SingularMassMatrix`].
/// Rows are `(q, v)` with `v = M⁻¹p`.
pub fn verlet(
    n: usize,
    mut grad_v: impl FnMut(f64, &[f64], &mut [f64]),
    mass_matrix: &[f64],
    grid: &Grid,
    q0: &[f64],
    v0: &[f64],
    obs: &mut impl Observer,
) -> Result<Stats, Failure> {
    let start: Vec<f64> = q0.iter().chain(v0).copied().collect();
    if q0.len() != n || v0.len() != n || mass_matrix.len() != n * n {
        let cause = Cause::Other(format!("verlet expects {n} coordinates and an {n}×{n} mass matrix"));
        return Err(fail_at_start(grid, &start, cause));
    }
    let mass = linalg::factor(mass_matrix, n).map_err(|c| fail_at_start(grid, &start, c))?;
    let mut p = vec![0.0; n];
    linalg::mat_vec(mass_matrix, v0, &mut p);
    let mut grad = vec![0.0; n];
    grad_v(grid.t0, q0, &mut grad);
    let mut method = StormerVerlet {
        n,
        grad_v,
        mass,
        q: q0.to_vec(),
        p,
        row: start,
        grad,
        stats: Stats { rhs_evals: 1, ..Stats::default() },
    };
    drive(grid, &mut method, obs)
}

#[cfg(test)]
mod tests {
    use super::super::explicit::tests::{angular_momentum, kepler_energy, Kepler};
    use super::super::rk4;
    use super::*;
    use std::f64::consts::PI;

    fn kepler_gradient(_t: f64, q: &[f64], grad: &mut [f64]) {
        let r3 = (q[0] * q[0] + q[1] * q[1]).powf(1.5);
        grad[0] = q[0] / r3;
        grad[1] = q[1] / r3;
    }

    #[test]
    fn harmonic_oscillator_closed_form() {
        // q_n = cos(nθ), p_n = −sin θ sin(nθ)/h with cos θ = 1 − h²/2.
        let h = 0.1;
        let theta = (1.0 - h * h / 2.0_f64).acos();
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 10.0, dt: h, every: 1 };
        let grad = |_t: f64, q: &[f64], g: &mut [f64]| g[0] = q[0];
        verlet(1, grad, &[1.0], &grid, &[1.0], &[0.0], &mut rows).unwrap();
        assert_eq!(rows.len(), 101);
        let worst = rows
            .iter()
            .enumerate()
            .map(|(k, (_, y))| {
                let a = k as f64 * theta;
                let p = -theta.sin() * a.sin() / h;
                (y[0] - a.cos()).abs().max((y[1] - p).abs())
            })
            .fold(0.0, f64::max);
        eprintln!("verlet closed form worst error: {worst:e}");
        assert!(worst < 1e-11, "{worst:e}");
    }

    #[test]
    fn constant_mass_matrix_is_used() {
        // M = 4: q'' = −q/4, so q = cos(t/2); compare with the closed form for ω = 1/2.
        let h = 0.1;
        let theta = (1.0 - h * h / 8.0_f64).acos();
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 5.0, dt: h, every: 50 };
        let grad = |_t: f64, q: &[f64], g: &mut [f64]| g[0] = q[0];
        verlet(1, grad, &[4.0], &grid, &[1.0], &[0.0], &mut rows).unwrap();
        let q = rows.last().unwrap().1[0];
        assert!((q - (50.0 * theta).cos()).abs() < 1e-12, "{q}");
        let err = verlet(1, grad, &[0.0], &grid, &[1.0], &[0.0], &mut rows).unwrap_err();
        assert_eq!(err.cause, Cause::SingularMassMatrix);
    }

    #[test]
    fn kepler_orbit_closure_and_angular_momentum() {
        let h = 2.0 * PI / 628.0;
        let grid = Grid { t0: 0.0, t_end: 2.0 * PI, dt: h, every: 1 };
        let mut rows = Vec::new();
        let identity = [1.0, 0.0, 0.0, 1.0];
        verlet(2, kepler_gradient, &identity, &grid, &[0.4, 0.0], &[0.0, 2.0], &mut rows).unwrap();
        let y = &rows.last().unwrap().1;
        let closure = (y[0] - 0.4).hypot(y[1]);
        let drift = rows.iter().map(|(_, y)| (angular_momentum(y) - 0.8).abs()).fold(0.0, f64::max);
        eprintln!("verlet Kepler orbit closure {closure:e}, angular momentum drift {drift:e}");
        assert!((closure / 1.4e-2 - 1.0).abs() < 0.1, "{closure:e}");
        assert!(drift < 1e-12, "{drift:e}");
    }

    /// The largest `|ΔH|` in the first and in the last tenth of a run of `periods` Kepler
    /// periods at `h = 2π/628`, for Verlet and for RK4.
    fn energy_error_growth(periods: usize, steps_per_period: usize) -> [(f64, f64); 2] {
        let h = 2.0 * PI / steps_per_period as f64;
        let grid = Grid { t0: 0.0, t_end: periods as f64 * 2.0 * PI, dt: h, every: 1 };
        let total = periods * steps_per_period;
        let tenth = total / 10;
        let split = |errors: &[f64]| {
            let first = errors[..tenth].iter().copied().fold(0.0, f64::max);
            let last = errors[total - tenth..].iter().copied().fold(0.0, f64::max);
            (first, last)
        };
        let y0 = [0.4, 0.0, 0.0, 2.0];
        let h0 = kepler_energy(&y0);
        let mut errors = Vec::with_capacity(total + 1);
        let mut obs = |_t: f64, y: &[f64]| -> Result<(), String> {
            errors.push((kepler_energy(y) - h0).abs());
            Ok(())
        };
        let identity = [1.0, 0.0, 0.0, 1.0];
        verlet(2, kepler_gradient, &identity, &grid, &y0[..2], &y0[2..], &mut obs).unwrap();
        let symplectic = split(&errors[1..]);
        errors.clear();
        let mut obs = |_t: f64, y: &[f64]| -> Result<(), String> {
            errors.push((kepler_energy(y) - h0).abs());
            Ok(())
        };
        rk4(&mut Kepler, &grid, &y0, &mut obs).unwrap();
        let runge_kutta = split(&errors[1..]);
        [symplectic, runge_kutta]
    }

    fn assert_discriminates(periods: usize, rk4_growth: f64) {
        let [(v_first, v_last), (r_first, r_last)] = energy_error_growth(periods, 628);
        eprintln!(
            "{periods} periods: verlet max|ΔH| {v_first:.3e} → {v_last:.3e}, \
             rk4 {r_first:.3e} → {r_last:.3e}"
        );
        assert!(v_last <= 1.5 * v_first, "verlet grew: {v_first:e} → {v_last:e}");
        assert!(r_last >= rk4_growth * r_first, "rk4 did not grow: {r_first:e} → {r_last:e}");
        assert!((v_first / 3.71e-4 - 1.0).abs() < 0.05, "{v_first:e}");
    }

    #[test]
    fn symplectic_energy_error_does_not_grow_20_periods() {
        // Over 20 periods RK4's drift grows by about 5× (measured 5.04×), not yet 5×
        // reliably: assert 3×, still far from Verlet's 1.0×.
        assert_discriminates(20, 3.0);
    }

    #[test]
    fn symplectic_energy_error_does_not_grow_200_periods() {
        if std::env::var("LAGC_SLOW_TESTS").as_deref() != Ok("1") {
            eprintln!("skipped: set LAGC_SLOW_TESTS=1");
            return;
        }
        assert_discriminates(200, 5.0);
    }

    #[test]
    fn halving_h_quarters_the_energy_amplitude() {
        let amplitude = |steps: usize| energy_error_growth(10, steps)[0].0;
        let ratio = amplitude(628) / amplitude(1256);
        eprintln!("verlet energy amplitude ratio on halving h: {ratio:.3}");
        assert!((ratio - 4.0).abs() < 0.4, "{ratio}");
    }
}
