//! The Störmer–Verlet method for `M q'' = f(q)` with a constant mass matrix `M`
//! (docs/numerics.md §Störmer–Verlet).

use super::{all_finite, drive, fail_at_start, Cause, Failure, Grid, Observer, Stats, Stepper};

/// Störmer–Verlet in velocity form, rows `(q, v)`.
struct StormerVerlet<A> {
    n: usize,
    accel: A,
    /// `(q, v)`.
    row: Vec<f64>,
    /// `a(q) = M⁻¹f(q)` at the current point, reused as the first kick of the next step.
    a: Vec<f64>,
    v_half: Vec<f64>,
    stats: Stats,
}

impl<A: FnMut(f64, &[f64], &mut [f64]) -> Result<(), Cause>> Stepper for StormerVerlet<A> {
    fn step(&mut self, t: f64, h: f64) -> Result<(), Cause> {
        let n = self.n;
        let hh = h * 0.5;
        let (q, v) = self.row.split_at_mut(n);
        // v½ = v + (h/2) a(q); q ← q + h v½; v ← v½ + (h/2) a(q).
        for ((vh, vi), ai) in self.v_half.iter_mut().zip(v.iter()).zip(&self.a) {
            *vh = vi + hh * ai;
        }
        for (qi, vh) in q.iter_mut().zip(&self.v_half) {
            *qi += h * vh;
        }
        (self.accel)(t + h, q, &mut self.a)?;
        self.stats.rhs_evals += 1;
        for ((vi, vh), ai) in v.iter_mut().zip(&self.v_half).zip(&self.a) {
            *vi = vh + hh * ai;
        }
        self.stats.steps += 1;
        Ok(())
    }
    fn row(&self) -> &[f64] {
        &self.row
    }
    fn is_finite(&self) -> bool {
        all_finite(&self.row) && all_finite(&self.a)
    }
    fn stats(&self) -> Stats {
        self.stats
    }
}

/// Integrates `q'' = a(q)` (with `a = M⁻¹f` for a constant `M`) by Störmer–Verlet, a
/// symplectic method of order 2: `v½ = v + (h/2) a(q)`, `q' = q + h v½`,
/// `v' = v½ + (h/2) a(q')`.
///
/// `accel(t, q, a)` writes the acceleration, or fails (a singular mass matrix). It is
/// evaluated once per step. This is the reference for the compiled Verlet loop of `jit`,
/// which computes the same operations in the same order. Rows are `(q, v)`.
pub fn verlet(
    n: usize,
    mut accel: impl FnMut(f64, &[f64], &mut [f64]) -> Result<(), Cause>,
    grid: &Grid,
    q0: &[f64],
    v0: &[f64],
    obs: &mut impl Observer,
) -> Result<Stats, Failure> {
    let start: Vec<f64> = q0.iter().chain(v0).copied().collect();
    if q0.len() != n || v0.len() != n {
        let cause = Cause::Invalid(format!("verlet expects {n} coordinates and {n} velocities"));
        return Err(fail_at_start(grid, &start, cause));
    }
    let mut a = vec![0.0; n];
    accel(grid.t0, q0, &mut a).map_err(|c| fail_at_start(grid, &start, c))?;
    let mut method = StormerVerlet {
        n,
        accel,
        row: start,
        a,
        v_half: vec![0.0; n],
        stats: Stats { rhs_evals: 1, ..Stats::default() },
    };
    drive(grid, &mut method, obs)
}

#[cfg(test)]
mod tests {
    use super::super::explicit::tests::{angular_momentum, kepler_energy, Kepler};
    use super::super::rk4;
    use super::*;
    use crate::integrate::Stop;
    use std::f64::consts::PI;

    fn kepler_accel(_t: f64, q: &[f64], a: &mut [f64]) -> Result<(), Cause> {
        let r3 = (q[0] * q[0] + q[1] * q[1]).powf(1.5);
        a[0] = -q[0] / r3;
        a[1] = -q[1] / r3;
        Ok(())
    }

    #[test]
    fn harmonic_oscillator_closed_form() {
        // q_n = cos(nθ), p_n = −sin θ sin(nθ)/h with cos θ = 1 − h²/2.
        let h = 0.1;
        let theta = (1.0 - h * h / 2.0_f64).acos();
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 10.0, dt: h, every: 1 };
        let accel = |_t: f64, q: &[f64], a: &mut [f64]| {
            a[0] = -q[0];
            Ok(())
        };
        verlet(1, accel, &grid, &[1.0], &[0.0], &mut rows).unwrap();
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
        let accel = |_t: f64, q: &[f64], a: &mut [f64]| {
            a[0] = -q[0] / 4.0;
            Ok(())
        };
        verlet(1, accel, &grid, &[1.0], &[0.0], &mut rows).unwrap();
        let q = rows.last().unwrap().1[0];
        assert!((q - (50.0 * theta).cos()).abs() < 1e-12, "{q}");
        let singular = |_t: f64, _q: &[f64], _a: &mut [f64]| Err(Cause::SingularMassMatrix);
        let err = verlet(1, singular, &grid, &[1.0], &[0.0], &mut rows).unwrap_err();
        assert_eq!((err.t, err.cause), (0.0, Cause::SingularMassMatrix));
    }

    #[test]
    fn kepler_orbit_closure_and_angular_momentum() {
        let h = 2.0 * PI / 628.0;
        let grid = Grid { t0: 0.0, t_end: 2.0 * PI, dt: h, every: 1 };
        let mut rows = Vec::new();
        verlet(2, kepler_accel, &grid, &[0.4, 0.0], &[0.0, 2.0], &mut rows).unwrap();
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
        let mut obs = |_t: f64, y: &[f64]| -> Result<(), Stop> {
            errors.push((kepler_energy(y) - h0).abs());
            Ok(())
        };
        verlet(2, kepler_accel, &grid, &y0[..2], &y0[2..], &mut obs).unwrap();
        let symplectic = split(&errors[1..]);
        errors.clear();
        let mut obs = |_t: f64, y: &[f64]| -> Result<(), Stop> {
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
