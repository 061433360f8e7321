//! Fixed-step explicit methods: the classical Runge–Kutta method and explicit Euler.

use super::{drive, Cause, Failure, Grid, Observer, OdeSystem, Stats, Stepper};

/// The classical fourth-order Runge–Kutta step with its stage storage.
struct RungeKutta4<'a, S> {
    sys: &'a mut S,
    y: Vec<f64>,
    k: [Vec<f64>; 4],
    stage: Vec<f64>,
    stats: Stats,
}

impl<S: OdeSystem> Stepper for RungeKutta4<'_, S> {
    fn step(&mut self, t: f64, h: f64) -> Result<(), Cause> {
        self.sys.begin_step(t);
        let [k1, k2, k3, k4] = &mut self.k;
        let hh = h * 0.5;
        self.sys.rhs(t, &self.y, k1)?;
        for (s, (y, k)) in self.stage.iter_mut().zip(self.y.iter().zip(k1.iter())) {
            *s = y + hh * k;
        }
        self.sys.rhs(t + hh, &self.stage, k2)?;
        for (s, (y, k)) in self.stage.iter_mut().zip(self.y.iter().zip(k2.iter())) {
            *s = y + hh * k;
        }
        self.sys.rhs(t + hh, &self.stage, k3)?;
        for (s, (y, k)) in self.stage.iter_mut().zip(self.y.iter().zip(k3.iter())) {
            *s = y + h * k;
        }
        self.sys.rhs(t + h, &self.stage, k4)?;
        // y + h/6 · (((k1 + 2 k2) + 2 k3) + k4), as the compiled loop of `jit` computes it.
        let h6 = h / 6.0;
        for i in 0..self.y.len() {
            self.y[i] += h6 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
        self.stats.steps += 1;
        self.stats.rhs_evals += 4;
        Ok(())
    }
    fn row(&self) -> &[f64] {
        &self.y
    }
    fn stats(&self) -> Stats {
        self.stats
    }
}

/// Integrates `y' = F(t, y)` by the classical Runge–Kutta method with step `grid.dt`
/// (docs/numerics.md §RK4). This is the reference for the compiled RK4 loop of `jit`: the
/// same operations in the same order.
pub fn rk4(sys: &mut impl OdeSystem, grid: &Grid, y0: &[f64], obs: &mut impl Observer) -> Result<Stats, Failure> {
    let n = sys.dim();
    check_dim(grid, y0, n)?;
    let mut method = RungeKutta4 {
        sys,
        y: y0.to_vec(),
        k: [vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]],
        stage: vec![0.0; n],
        stats: Stats::default(),
    };
    drive(grid, &mut method, obs)
}

/// The explicit Euler step.
struct ExplicitEuler<'a, S> {
    sys: &'a mut S,
    y: Vec<f64>,
    dy: Vec<f64>,
    stats: Stats,
}

impl<S: OdeSystem> Stepper for ExplicitEuler<'_, S> {
    fn step(&mut self, t: f64, h: f64) -> Result<(), Cause> {
        self.sys.begin_step(t);
        self.sys.rhs(t, &self.y, &mut self.dy)?;
        for (y, dy) in self.y.iter_mut().zip(&self.dy) {
            *y += h * dy;
        }
        self.stats.steps += 1;
        self.stats.rhs_evals += 1;
        Ok(())
    }
    fn row(&self) -> &[f64] {
        &self.y
    }
    fn stats(&self) -> Stats {
        self.stats
    }
}

/// Integrates `y' = F(t, y)` by explicit Euler, `y ← y + h F(t, y)`.
pub fn euler(sys: &mut impl OdeSystem, grid: &Grid, y0: &[f64], obs: &mut impl Observer) -> Result<Stats, Failure> {
    let n = sys.dim();
    check_dim(grid, y0, n)?;
    let mut method = ExplicitEuler { sys, y: y0.to_vec(), dy: vec![0.0; n], stats: Stats::default() };
    drive(grid, &mut method, obs)
}

/// Fails when the initial state does not have the system's dimension.
pub(super) fn check_dim(grid: &Grid, y0: &[f64], n: usize) -> Result<(), Failure> {
    if y0.len() == n {
        Ok(())
    } else {
        Err(super::fail_at_start(
            grid,
            y0,
            Cause::Invalid(format!("initial state has {} entries, expected {n}", y0.len())),
        ))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{lagrangian_system, LagrangianPoint, LagrangianSystem};
    use super::*;
    use crate::integrate::Stop;

    /// `y = (q, v)`, `q'' = −q − c q'`: the harmonic oscillator, damped when `c > 0`.
    pub struct Oscillator {
        pub damping: f64,
    }

    impl OdeSystem for Oscillator {
        fn dim(&self) -> usize {
            2
        }
        fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
            dy[0] = y[1];
            dy[1] = -y[0] - self.damping * y[1];
            Ok(())
        }
        fn jacobian(&mut self, _t: f64, _y: &[f64], jac: &mut [f64]) -> Result<(), Cause> {
            jac.copy_from_slice(&[0.0, 1.0, -1.0, -self.damping]);
            Ok(())
        }
    }

    /// `L = ½|v|² + 1/|q|` in the plane.
    pub struct Kepler;

    impl OdeSystem for Kepler {
        fn dim(&self) -> usize {
            4
        }
        fn rhs(&mut self, _t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
            let r3 = (y[0] * y[0] + y[1] * y[1]).powf(1.5);
            dy[0] = y[2];
            dy[1] = y[3];
            dy[2] = -y[0] / r3;
            dy[3] = -y[1] / r3;
            Ok(())
        }
        fn jacobian(&mut self, _t: f64, y: &[f64], jac: &mut [f64]) -> Result<(), Cause> {
            let (x, z) = (y[0], y[1]);
            let r2 = x * x + z * z;
            let r3 = r2.powf(1.5);
            let r5 = r2 * r3;
            jac.fill(0.0);
            jac[2] = 1.0;
            jac[4 + 3] = 1.0;
            jac[8] = -1.0 / r3 + 3.0 * x * x / r5;
            jac[8 + 1] = 3.0 * x * z / r5;
            jac[12] = 3.0 * x * z / r5;
            jac[12 + 1] = -1.0 / r3 + 3.0 * z * z / r5;
            Ok(())
        }
    }

    /// The Kepler energy `½|v|² − 1/|q|` of a row.
    pub fn kepler_energy(y: &[f64]) -> f64 {
        0.5 * (y[2] * y[2] + y[3] * y[3]) - 1.0 / y[0].hypot(y[1])
    }

    /// The angular momentum `q × v` of a Kepler row.
    pub fn angular_momentum(y: &[f64]) -> f64 {
        y[0] * y[3] - y[1] * y[2]
    }

    /// `L = ½v² − ½q²` with Rayleigh function `R = (c/2) v²`, as a Lagrangian.
    pub struct OscillatorLagrangian {
        pub damping: f64,
    }

    impl LagrangianSystem for OscillatorLagrangian {
        fn n(&self) -> usize {
            1
        }
        fn eval(&mut self, _t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
            out.lv[0] = v[0];
            out.lq[0] = -q[0];
            out.force[0] = -self.damping * v[0];
            out.lvv[0] = 1.0;
            out.lvq[0] = 0.0;
            out.lqq[0] = -1.0;
            out.force_v[0] = -self.damping;
            out.force_q[0] = 0.0;
            Ok(())
        }
    }

    /// The damped oscillator `R = 0.1 q'²` at `t = 10` (docs/numerics.md, answer 4).
    pub const DAMPED_Q10: f64 = -0.33685168059045;

    fn final_row(rows: &[(f64, Vec<f64>)]) -> (f64, Vec<f64>) {
        rows.last().cloned().unwrap()
    }

    #[test]
    fn rk4_harmonic_oscillator_at_h_0_01() {
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 10.0, dt: 0.01, every: 100 };
        let stats = rk4(&mut Oscillator { damping: 0.0 }, &grid, &[1.0, 0.0], &mut rows).unwrap();
        assert_eq!(stats.steps, 1000);
        let (t, y) = final_row(&rows);
        assert_eq!(t, 10.0);
        let error = (y[0] - 10f64.cos()).abs().max((y[1] + 10f64.sin()).abs());
        eprintln!("rk4 h=0.01 error at t=10: {error:e}");
        assert!(error < 1e-9, "{error:e}");
        assert_eq!(rows.len(), 11);
    }

    #[test]
    fn rk4_energy_factor_per_step() {
        // 10⁵ steps of h = 0.1: H/H0 = (1 − h⁶/72 + h⁸/576)^(10⁵) = 0.99861380886.
        let mut last = None;
        let grid = Grid { t0: 0.0, t_end: 1e4, dt: 0.1, every: 100_000 };
        let mut obs = |_t: f64, y: &[f64]| -> Result<(), Stop> {
            last = Some(0.5 * (y[0] * y[0] + y[1] * y[1]));
            Ok(())
        };
        let stats = rk4(&mut Oscillator { damping: 0.0 }, &grid, &[1.0, 0.0], &mut obs).unwrap();
        assert_eq!(stats.steps, 100_000);
        let ratio = last.unwrap() / 0.5;
        eprintln!("rk4 h=0.1 H/H0 after 1e5 steps: {ratio:.14}");
        assert!((ratio / 0.99861380886 - 1.0).abs() < 1e-9, "{ratio}");
    }

    #[test]
    fn rk4_damped_oscillator() {
        // Global error O(h⁴): 2.4e-10 at h = 0.01 (measured); assert 1e-8.
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 10.0, dt: 0.01, every: 1000 };
        let mut sys = Oscillator { damping: 0.2 };
        rk4(&mut sys, &grid, &[1.0, 0.0], &mut rows).unwrap();
        let error = (rows.last().unwrap().1[0] - DAMPED_Q10).abs();
        eprintln!("rk4 damped q(10) error: {error:e}");
        assert!(error < 1e-8, "{error:e}");
        // The same through the Lagrangian first-order form, R = 0.1 v² → F = −0.2 v.
        let mut rows = Vec::new();
        let mut lag = lagrangian_system(OscillatorLagrangian { damping: 0.2 });
        rk4(&mut lag, &grid, &[1.0, 0.0], &mut rows).unwrap();
        let error = (rows.last().unwrap().1[0] - DAMPED_Q10).abs();
        assert!(error < 1e-8, "{error:e}");
    }

    #[test]
    fn kepler_orbit_closure_rk4() {
        let h = 2.0 * std::f64::consts::PI / 628.0;
        let grid = Grid { t0: 0.0, t_end: 2.0 * std::f64::consts::PI, dt: h, every: 1000 };
        let mut rows = Vec::new();
        let stats = rk4(&mut Kepler, &grid, &[0.4, 0.0, 0.0, 2.0], &mut rows).unwrap();
        assert_eq!(stats.steps, 628);
        let y = &rows.last().unwrap().1;
        let closure = (y[0] - 0.4).hypot(y[1]);
        eprintln!("rk4 Kepler orbit closure: {closure:e}");
        assert!((closure / 1.4e-6 - 1.0).abs() < 0.1, "{closure:e}");
    }

    #[test]
    fn output_every_third_step_and_the_last() {
        let mut rows = Vec::new();
        let grid = Grid { t0: 1.0, t_end: 2.0, dt: 0.1, every: 3 };
        rk4(&mut Oscillator { damping: 0.0 }, &grid, &[1.0, 0.0], &mut rows).unwrap();
        let times: Vec<f64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(times, vec![1.0, 1.0 + 3.0 * 0.1, 1.0 + 6.0 * 0.1, 1.0 + 9.0 * 0.1, 2.0]);
        // A grid whose last step is short.
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 1.0, dt: 0.3, every: 2 };
        euler(&mut Oscillator { damping: 0.0 }, &grid, &[1.0, 0.0], &mut rows).unwrap();
        let times: Vec<f64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(times, vec![0.0, 0.6, 1.0]);
        // Explicit Euler's last step has length 0.1: v = −(0.3·3 + 0.1) + O(h²) terms.
        let (q, v) = (rows[2].1[0], rows[2].1[1]);
        let (mut eq, mut ev) = (1.0, 0.0);
        for h in [0.3, 0.3, 0.3, 1.0 - 0.8999999999999999] {
            (eq, ev) = (eq + h * ev, ev - h * eq);
        }
        assert_eq!((q, v), (eq, ev));
    }

    #[test]
    fn zero_length_run_writes_only_the_initial_row() {
        let mut rows = Vec::new();
        let grid = Grid { t0: 3.0, t_end: 3.0, dt: 0.1, every: 1 };
        let stats = rk4(&mut Oscillator { damping: 0.0 }, &grid, &[1.0, 0.0], &mut rows).unwrap();
        assert_eq!(rows, vec![(3.0, vec![1.0, 0.0])]);
        assert_eq!(stats.steps, 0);
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
    fn non_finite_failure_carries_the_last_good_state() {
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 5.0, dt: 0.25, every: 1 };
        let err = euler(&mut BlowUp, &grid, &[1.0], &mut rows).unwrap_err();
        assert_eq!(err.cause, Cause::NonFinite);
        let (t, y) = rows.last().unwrap();
        assert_eq!(err.t, *t);
        assert_eq!(&err.state, y);
        assert!(err.state[0].is_finite() && err.t > 1.0);
        let err = rk4(&mut BlowUp, &grid, &[f64::NAN], &mut rows).unwrap_err();
        assert_eq!((err.cause, err.t), (Cause::NonFinite, 0.0));
    }

    #[test]
    fn observer_refusal_stops_the_run() {
        let mut count = 0;
        let mut obs = |_t: f64, _y: &[f64]| -> Result<(), Stop> {
            count += 1;
            if count == 3 {
                Err(Stop)
            } else {
                Ok(())
            }
        };
        let grid = Grid { t0: 0.0, t_end: 1.0, dt: 0.1, every: 1 };
        let err = rk4(&mut Oscillator { damping: 0.0 }, &grid, &[1.0, 0.0], &mut obs).unwrap_err();
        assert_eq!(err.cause, Cause::Stopped);
        assert!((err.t - 0.2).abs() < 1e-15);
    }
}
