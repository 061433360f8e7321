//! Gradient flows `θ' = −g(θ)⁻¹∇E(θ)`: explicit Euler (gradient descent), the minimizing
//! movement (proximal, implicit Euler) scheme, and an adapter for the general methods.

use super::explicit::{check_dim, euler};
use super::linalg::{self, Factor};
use super::{all_finite, drive, norm, Cause, Failure, GradientSystem, Grid, Observer, OdeSystem, Stats, Stepper};

/// A [`GradientSystem`] seen as the first-order system `θ' = −g(θ)⁻¹∇E(θ)`.
///
/// The Jacobian is `−∇²E` for the Euclidean metric and central finite differences of the
/// right-hand side otherwise. A singular metric gives [`Cause::SingularMetric`].
pub struct GradientFlow<S> {
    sys: S,
    grad: Vec<f64>,
    metric: Vec<f64>,
    scratch: (Vec<f64>, Vec<f64>, Vec<f64>),
}

/// Wraps an energy model so that `rk4`, `euler`, `dopri5` and `midpoint` can run its
/// gradient flow. Rows are `θ`.
pub fn gradient_flow_system<S: GradientSystem>(sys: S) -> GradientFlow<S> {
    let n = sys.dim();
    GradientFlow {
        sys,
        grad: vec![0.0; n],
        metric: vec![0.0; n * n],
        scratch: (vec![0.0; n], vec![0.0; n], vec![0.0; n]),
    }
}

impl<S: GradientSystem> GradientFlow<S> {
    /// The wrapped model.
    pub fn inner(&mut self) -> &mut S {
        &mut self.sys
    }
}

/// The error for a metric that cannot be solved with.
fn singular_metric(_: Cause) -> Cause {
    Cause::SingularMetric
}

impl<S: GradientSystem> OdeSystem for GradientFlow<S> {
    fn dim(&self) -> usize {
        self.sys.dim()
    }

    fn begin_step(&mut self, t: f64) {
        self.sys.begin_step(t)
    }

    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
        let n = y.len();
        self.sys.gradient(t, y, &mut self.grad);
        if self.sys.metric(t, y, &mut self.metric) {
            linalg::factor(&self.metric, n).map_err(singular_metric)?.solve(&mut self.grad);
        }
        for (d, g) in dy.iter_mut().zip(&self.grad) {
            *d = -g;
        }
        Ok(())
    }

    fn jacobian(&mut self, t: f64, y: &[f64], jac: &mut [f64]) -> Result<(), Cause> {
        let n = y.len();
        if !self.sys.metric(t, y, &mut self.metric) {
            self.sys.hessian(t, y, jac);
            jac.iter_mut().for_each(|j| *j = -*j);
            return Ok(());
        }
        let (mut yp, mut fp, mut fm) = std::mem::take(&mut self.scratch);
        yp.copy_from_slice(y);
        for j in 0..n {
            let step = f64::EPSILON.cbrt() * y[j].abs().max(1.0);
            yp[j] = y[j] + step;
            self.rhs(t, &yp, &mut fp)?;
            yp[j] = y[j] - step;
            self.rhs(t, &yp, &mut fm)?;
            yp[j] = y[j];
            for i in 0..n {
                jac[i * n + j] = (fp[i] - fm[i]) / (2.0 * step);
            }
        }
        self.scratch = (yp, fp, fm);
        Ok(())
    }
}

/// Runs gradient descent, explicit Euler on the gradient flow:
/// `θ ← θ − h g(θ)⁻¹∇E(θ)`, the metric solved (not inverted). Rows are `θ`.
pub fn gradient_descent(
    sys: &mut impl GradientSystem,
    grid: &Grid,
    theta0: &[f64],
    obs: &mut impl Observer,
) -> Result<Stats, Failure> {
    euler(&mut gradient_flow_system(sys), grid, theta0, obs)
}

/// The largest number of Newton iterations in one proximal step.
const PROX_MAX_ITERATIONS: usize = 100;

/// The Armijo sufficient-decrease constant.
const ARMIJO: f64 = 1e-4;

/// The rise of `Φ`, relative to `max(1, |Φ|)`, tolerated as round-off when a full Newton
/// step reduces `‖G‖`; a hundred such steps stay below the dissipation check's `1e-12`.
const NOISE: f64 = 1e-14;

/// One minimizing movement step: `θ_{k+1} = argmin Φ(θ)`,
/// `Φ(θ) = E(θ) + (θ − θ_k)ᵀ g_k (θ − θ_k)/(2h)`.
struct MinimizingMovement<'a, S> {
    sys: &'a mut S,
    n: usize,
    theta: Vec<f64>,
    trial: Vec<f64>,
    metric: Vec<f64>,
    grad: Vec<f64>,
    residual: Vec<f64>,
    jac: Vec<f64>,
    stats: Stats,
}

impl<S: GradientSystem> MinimizingMovement<'_, S> {
    /// `g_k`-weighted squared distance `(x − θ_k)ᵀ g_k (x − θ_k)`.
    fn distance2(&self, x: &[f64]) -> f64 {
        let n = self.n;
        let d: Vec<f64> = x.iter().zip(&self.theta).map(|(a, b)| a - b).collect();
        (0..n).map(|i| d[i] * (0..n).map(|j| self.metric[i * n + j] * d[j]).sum::<f64>()).sum()
    }

    /// The proximal objective `Φ` at `x`.
    fn objective(&mut self, t: f64, h: f64, x: &[f64]) -> f64 {
        self.stats.rhs_evals += 1;
        self.sys.energy(t, x) + self.distance2(x) / (2.0 * h)
    }

    /// Writes `G(x) = g_k(x − θ_k)/h + ∇E(x)` into `residual`.
    fn optimality(&mut self, t: f64, h: f64, x: &[f64]) {
        let n = self.n;
        self.sys.gradient(t, x, &mut self.grad);
        self.stats.rhs_evals += 1;
        for i in 0..n {
            let gd: f64 = (0..n).map(|j| self.metric[i * n + j] * (x[j] - self.theta[j])).sum();
            self.residual[i] = gd / h + self.grad[i];
        }
    }

    /// Factorises `J = g_k/h + ∇²E(x)` by Cholesky, adding a Levenberg shift `μI` (growing
    /// tenfold) until it is positive definite.
    fn newton_matrix(&mut self, t: f64, h: f64, x: &[f64]) -> Result<Factor, Cause> {
        let n = self.n;
        self.sys.hessian(t, x, &mut self.jac);
        for (j, g) in self.jac.iter_mut().zip(&self.metric) {
            *j += g / h;
        }
        if !all_finite(&self.jac) {
            return Err(Cause::NonFinite);
        }
        let scale = (0..n).map(|i| self.jac[i * n + i].abs()).fold(0.0, f64::max).max(1e-300);
        let mut shift = 0.0;
        let mut shifted = self.jac.clone();
        for _ in 0..40 {
            if let Some(l) = linalg::cholesky(&shifted, n) {
                return Ok(Factor::Cholesky { n, l });
            }
            shift = if shift == 0.0 { 1e-10 * scale } else { 10.0 * shift };
            shifted.copy_from_slice(&self.jac);
            for i in 0..n {
                shifted[i * n + i] += shift;
            }
        }
        Err(Cause::ProxFailed("no Levenberg shift made the Newton matrix positive definite".into()))
    }
}

impl<S: GradientSystem> Stepper for MinimizingMovement<'_, S> {
    fn step(&mut self, t: f64, h: f64) -> Result<(), Cause> {
        let n = self.n;
        let t_new = t + h;
        if !self.sys.metric(t, &self.theta, &mut self.metric) {
            self.metric.fill(0.0);
            for i in 0..n {
                self.metric[i * n + i] = 1.0;
            }
        }
        let metric = linalg::factor(&self.metric, n).map_err(singular_metric)?;
        let theta_k = self.theta.clone();
        let energy_k = self.sys.energy(t_new, &theta_k);
        self.sys.gradient(t_new, &theta_k, &mut self.grad);
        self.stats.rhs_evals += 2;
        if !energy_k.is_finite() || !all_finite(&self.grad) {
            return Err(Cause::NonFinite);
        }
        let tolerance = 1e-10 * norm(&self.grad).max(1.0);
        // Start from the explicit step, unless it raises Φ above Φ(θ_k) = E_k.
        let mut x = self.grad.clone();
        metric.solve(&mut x);
        for i in 0..n {
            x[i] = theta_k[i] - h * x[i];
        }
        let mut phi = self.objective(t_new, h, &x);
        if phi.is_nan() || phi > energy_k {
            x.copy_from_slice(&theta_k);
            phi = energy_k;
        }
        let mut iterations = 0;
        loop {
            self.optimality(t_new, h, &x);
            if !all_finite(&self.residual) {
                return Err(Cause::NonFinite);
            }
            if iterations > 0 && norm(&self.residual) <= tolerance {
                break;
            }
            if iterations == PROX_MAX_ITERATIONS {
                return Err(Cause::NewtonDiverged { iterations });
            }
            iterations += 1;
            self.stats.newton_iterations += 1;
            let newton = self.newton_matrix(t_new, h, &x)?;
            let mut delta = self.residual.clone();
            newton.solve(&mut delta);
            // Δ = −J⁻¹G is a descent direction of Φ, whose gradient is G.
            let slope: f64 = -delta.iter().zip(&self.residual).map(|(d, g)| d * g).sum::<f64>();
            let mut alpha = 1.0;
            let mut trial = std::mem::take(&mut self.trial);
            let accepted = loop {
                for i in 0..n {
                    trial[i] = x[i] - alpha * delta[i];
                }
                let phi_trial = self.objective(t_new, h, &trial);
                if phi_trial <= phi + ARMIJO * alpha * slope {
                    phi = phi_trial;
                    break true;
                }
                // Near the solution the decrease of Φ drowns in its round-off (E may cancel
                // internally); then take the full Newton step if it reduces ‖G‖ and does not
                // raise Φ beyond that noise.
                if alpha == 1.0 && phi_trial <= phi + NOISE * phi.abs().max(1.0) {
                    let before = norm(&self.residual);
                    let saved = self.residual.clone();
                    self.optimality(t_new, h, &trial);
                    if norm(&self.residual) < before {
                        phi = phi_trial;
                        break true;
                    }
                    self.residual = saved;
                }
                alpha *= 0.5;
                if alpha < 1e-12 {
                    break false;
                }
            };
            if !accepted {
                self.trial = trial;
                return Err(Cause::ProxFailed("the Armijo line search failed".into()));
            }
            x.copy_from_slice(&trial);
            self.trial = trial;
        }
        // The energy dissipation inequality E_{k+1} + ‖Δ‖²_{g_k}/(2h) ≤ E_k, to round-off.
        let energy_new = self.sys.energy(t_new, &x);
        self.stats.rhs_evals += 1;
        let dissipated = energy_new + self.distance2(&x) / (2.0 * h);
        if !dissipation_holds(dissipated, energy_k) {
            return Err(Cause::ProxFailed(format!(
                "energy dissipation inequality violated: {dissipated:e} > {energy_k:e}"
            )));
        }
        self.theta.copy_from_slice(&x);
        self.stats.steps += 1;
        Ok(())
    }
    fn row(&self) -> &[f64] {
        &self.theta
    }
    fn stats(&self) -> Stats {
        self.stats
    }
}

/// Whether `E_{k+1} + ‖Δ‖²/(2h)`, given as `dissipated`, is at most `E_k` up to
/// `1e-12·max(1, |E_k|)`.
fn dissipation_holds(dissipated: f64, energy_k: f64) -> bool {
    dissipated <= energy_k + 1e-12 * energy_k.abs().max(1.0)
}

/// Runs the minimizing movement scheme (the proximal or implicit Euler step of the gradient
/// flow): `θ_{k+1} = argmin E(θ) + ‖θ − θ_k‖²_{g_k}/(2h)` with `g_k = g(θ_k, t_k)`, the
/// energy taken at `t_{k+1}`.
///
/// Newton's method on `G(θ) = g_k(θ − θ_k)/h + ∇E(θ)` with `J = g_k/h + ∇²E`, a Levenberg
/// shift when `J` is not positive definite, and Armijo backtracking on `Φ`. It starts from the
/// explicit step, or from `θ_k` if the explicit step raises `Φ` above `E_k` (so `Φ` decreases
/// from `E_k` and the dissipation inequality holds by construction), takes at least one Newton
/// step and stops at `‖G‖ ≤ 1e-10·max(1, ‖∇E(θ_k)‖)`. Every step is checked against
/// `E_{k+1} + ‖Δ‖²_{g_k}/(2h) ≤ E_k + 1e-12·max(1, |E_k|)`; a violation fails with
/// [`Cause::ProxFailed`]. Rows are `θ`.
pub fn minimizing_movement(
    sys: &mut impl GradientSystem,
    grid: &Grid,
    theta0: &[f64],
    obs: &mut impl Observer,
) -> Result<Stats, Failure> {
    let n = sys.dim();
    check_dim(grid, theta0, n)?;
    let mut method = MinimizingMovement {
        sys,
        n,
        theta: theta0.to_vec(),
        trial: vec![0.0; n],
        metric: vec![0.0; n * n],
        grad: vec![0.0; n],
        residual: vec![0.0; n],
        jac: vec![0.0; n * n],
        stats: Stats::default(),
    };
    drive(grid, &mut method, obs)
}

#[cfg(test)]
mod tests {
    use super::super::{dopri5, rk4};
    use super::*;

    /// `E = ½ Σ c_i θ_i²`, optionally with a constant metric.
    pub struct Quadratic {
        pub c: Vec<f64>,
        pub metric: Option<Vec<f64>>,
    }

    impl GradientSystem for Quadratic {
        fn dim(&self) -> usize {
            self.c.len()
        }
        fn energy(&mut self, _t: f64, theta: &[f64]) -> f64 {
            0.5 * theta.iter().zip(&self.c).map(|(x, c)| c * x * x).sum::<f64>()
        }
        fn gradient(&mut self, _t: f64, theta: &[f64], grad: &mut [f64]) {
            for i in 0..theta.len() {
                grad[i] = self.c[i] * theta[i];
            }
        }
        fn hessian(&mut self, _t: f64, theta: &[f64], hess: &mut [f64]) {
            let n = theta.len();
            hess.fill(0.0);
            for i in 0..n {
                hess[i * n + i] = self.c[i];
            }
        }
        fn metric(&mut self, _t: f64, _theta: &[f64], g: &mut [f64]) -> bool {
            match &self.metric {
                Some(m) => {
                    g.copy_from_slice(m);
                    true
                }
                None => false,
            }
        }
    }

    /// `E = (1 − x)² + 100 (y − x²)²`.
    struct Rosenbrock;
    impl GradientSystem for Rosenbrock {
        fn dim(&self) -> usize {
            2
        }
        fn energy(&mut self, _t: f64, th: &[f64]) -> f64 {
            (1.0 - th[0]).powi(2) + 100.0 * (th[1] - th[0] * th[0]).powi(2)
        }
        fn gradient(&mut self, _t: f64, th: &[f64], g: &mut [f64]) {
            let (x, y) = (th[0], th[1]);
            g[0] = -2.0 * (1.0 - x) - 400.0 * x * (y - x * x);
            g[1] = 200.0 * (y - x * x);
        }
        fn hessian(&mut self, _t: f64, th: &[f64], hs: &mut [f64]) {
            let (x, y) = (th[0], th[1]);
            hs[0] = 2.0 - 400.0 * (y - x * x) + 800.0 * x * x;
            hs[1] = -400.0 * x;
            hs[2] = -400.0 * x;
            hs[3] = 200.0;
        }
        fn metric(&mut self, _t: f64, _theta: &[f64], _g: &mut [f64]) -> bool {
            false
        }
    }

    fn relative(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn euler_on_the_quadratic_is_exact() {
        for h in [0.01, 0.1, 0.25] {
            let mut rows = Vec::new();
            let grid = Grid { t0: 0.0, t_end: 50.0 * h, dt: h, every: 1 };
            let mut sys = Quadratic { c: vec![1.0, 10.0], metric: None };
            gradient_descent(&mut sys, &grid, &[1.0, 1.0], &mut rows).unwrap();
            assert_eq!(rows.len(), 51);
            let worst = rows
                .iter()
                .enumerate()
                .map(|(k, (_, th))| {
                    let k = k as i32;
                    relative(th[0], (1.0 - h).powi(k)).max(relative(th[1], (1.0 - 10.0 * h).powi(k)))
                })
                .fold(0.0, f64::max);
            eprintln!("gradient descent h = {h}: worst relative error {worst:e}");
            assert!(worst < 1e-14, "h = {h}: {worst:e}");
        }
        // h > 0.2 diverges: |1 − 10h| > 1.
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 2.5, dt: 0.25, every: 10 };
        let mut sys = Quadratic { c: vec![1.0, 10.0], metric: None };
        gradient_descent(&mut sys, &grid, &[1.0, 1.0], &mut rows).unwrap();
        assert!(rows.last().unwrap().1[1].abs() > 50.0);
    }

    #[test]
    fn prox_on_the_quadratic_is_exact_in_one_newton_iteration() {
        for h in [0.01, 0.5, 10.0] {
            let mut rows = Vec::new();
            let grid = Grid { t0: 0.0, t_end: 20.0 * h, dt: h, every: 1 };
            let mut sys = Quadratic { c: vec![1.0, 10.0], metric: None };
            let stats = minimizing_movement(&mut sys, &grid, &[1.0, 1.0], &mut rows).unwrap();
            assert_eq!(stats.newton_iterations, 20, "h = {h}");
            let worst = rows
                .iter()
                .enumerate()
                .map(|(k, (_, th))| {
                    let k = k as i32;
                    relative(th[0], (1.0 + h).powi(-k)).max(relative(th[1], (1.0 + 10.0 * h).powi(-k)))
                })
                .fold(0.0, f64::max);
            eprintln!("prox h = {h}: worst relative error {worst:e}");
            // The Newton update θ_k − J⁻¹G cancels about log10(1 + 10h) digits per step.
            assert!(worst < 1e-12, "h = {h}: {worst:e}");
        }
    }

    #[test]
    fn metric_is_solved_not_ignored() {
        // g = diag(2, 5): θ' = −(θ1/2, 10θ2/5), so Euler gives ((1 − h/2)^k, (1 − 2h)^k).
        let metric = Some(vec![2.0, 0.0, 0.0, 5.0]);
        let mut sys = Quadratic { c: vec![1.0, 10.0], metric: metric.clone() };
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 1.0, dt: 0.1, every: 10 };
        gradient_descent(&mut sys, &grid, &[1.0, 1.0], &mut rows).unwrap();
        let th = &rows.last().unwrap().1;
        assert!(relative(th[0], 0.95f64.powi(10)) < 1e-14 && relative(th[1], 0.8f64.powi(10)) < 1e-14);
        // Prox: θ1 ← θ1/(1 + h/2), θ2 ← θ2/(1 + 2h).
        let mut rows = Vec::new();
        minimizing_movement(&mut sys, &grid, &[1.0, 1.0], &mut rows).unwrap();
        let th = &rows.last().unwrap().1;
        assert!(relative(th[0], 1.05f64.powi(-10)) < 1e-13);
        assert!(relative(th[1], 1.2f64.powi(-10)) < 1e-13);
        // The adapter with a metric (finite-difference Jacobian) under RK4 and dopri5.
        let mut flow = gradient_flow_system(Quadratic { c: vec![1.0, 10.0], metric });
        let mut jac = [0.0; 4];
        flow.jacobian(0.0, &[0.3, 0.2], &mut jac).unwrap();
        assert!(jac.iter().zip([-0.5, 0.0, 0.0, -2.0]).all(|(a, b)| (a - b).abs() < 1e-9));
        let mut rows = Vec::new();
        rk4(&mut flow, &grid, &[1.0, 1.0], &mut rows).unwrap();
        let th = &rows.last().unwrap().1;
        // RK4 at h = 0.1 on the rate 2: about 3e-5 relative error.
        assert!(relative(th[0], (-0.5f64).exp()) < 1e-6 && relative(th[1], (-2.0f64).exp()) < 1e-4);
        let mut rows = Vec::new();
        dopri5(&mut flow, &grid, 1e-10, 1e-12, &[1.0, 1.0], &mut rows).unwrap();
        let th = &rows.last().unwrap().1;
        assert!(relative(th[0], (-0.5f64).exp()) < 1e-8 && relative(th[1], (-2.0f64).exp()) < 1e-8);
    }

    #[test]
    fn prox_dissipates_energy_on_rosenbrock() {
        for h in [0.1, 1.0, 10.0] {
            let mut rows = Vec::new();
            let grid = Grid { t0: 0.0, t_end: 100.0 * h, dt: h, every: 1 };
            let stats = minimizing_movement(&mut Rosenbrock, &grid, &[-1.2, 1.0], &mut rows)
                .unwrap_or_else(|f| panic!("h = {h}: {f}"));
            // Recheck the inequality independently of the implementation.
            for w in rows.windows(2) {
                let (a, b) = (&w[0].1, &w[1].1);
                let (ea, eb) = (Rosenbrock.energy(0.0, a), Rosenbrock.energy(0.0, b));
                let d2 = (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
                assert!(eb + d2 / (2.0 * h) <= ea + 1e-12 * ea.abs().max(1.0), "h = {h}");
            }
            let last = &rows.last().unwrap().1;
            eprintln!("prox Rosenbrock h = {h}: {stats:?}, θ_100 = ({:.9}, {:.9})", last[0], last[1]);
        }
    }

    #[test]
    fn prox_reaches_the_rosenbrock_minimum() {
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 100.0, dt: 1.0, every: 1 };
        minimizing_movement(&mut Rosenbrock, &grid, &[-1.2, 1.0], &mut rows).unwrap();
        let k = rows
            .iter()
            .position(|(_, th)| (th[0] - 1.0).abs().max((th[1] - 1.0).abs()) < 1e-6)
            .expect("prox at h = 1 did not reach (1, 1) within 100 steps");
        eprintln!("prox h = 1 reaches (1, 1) to 1e-6 at step {k}");
    }

    #[test]
    fn dissipation_check_can_fail() {
        assert!(dissipation_holds(1.0, 1.0));
        assert!(dissipation_holds(1.0 + 5e-13, 1.0));
        assert!(!dissipation_holds(1.0 + 2e-12, 1.0));
        assert!(!dissipation_holds(f64::NAN, 1.0));
    }
}
