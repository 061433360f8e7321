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

/// The largest number of trial points in one proximal step.
const PROX_MAX_ITERATIONS: usize = 500;

/// A trial point is accepted when `Φ` falls by at least this fraction of the decrease the
/// quadratic model predicts.
const ACCEPT: f64 = 1e-4;

/// The stationarity tolerance, relative to the size of the two terms of `G`.
const STATIONARY: f64 = 1e-12;

/// `G` is known to about `ε·|J|·|x|` (the rounding of `x`); a residual within this multiple of
/// it is at rounding level.
const ROUNDING_G: f64 = 64.0 * f64::EPSILON;

/// `Φ` is known to about this multiple of `|E(x)| + ‖x − θ_k‖²_{g_k}/(2h)` plus the size of
/// the terms of `E` (see `newton_matrix`): a predicted decrease below it cannot be seen in `Φ`.
const ROUNDING_PHI: f64 = 16.0 * f64::EPSILON;

/// The total rise of `Φ` within rounding that one step may accept, relative to
/// `max(1, |E_k|)`: a tenth of the dissipation check's allowance.
const RISE_BUDGET: f64 = 1e-13;

/// One minimizing movement step: `θ_{k+1} = argmin Φ(θ)`,
/// `Φ(θ) = E(θ) + (θ − θ_k)ᵀ g_k (θ − θ_k)/(2h)`, by a trust-region Newton method
/// (docs/numerics.md §Minimizing movement).
struct MinimizingMovement<'a, S> {
    sys: &'a mut S,
    n: usize,
    theta: Vec<f64>,
    /// `g_k`, symmetrised.
    metric: Vec<f64>,
    /// `D = diag(√g_kii)`: the trust region is `‖D s‖ ≤ Δ`.
    scale: Vec<f64>,
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

    /// The proximal objective `Φ` at `x`, and the size `|E(x)| + ‖x − θ_k‖²_{g_k}/(2h)` of
    /// its terms.
    fn objective(&mut self, t: f64, h: f64, x: &[f64]) -> (f64, f64) {
        self.stats.rhs_evals += 1;
        let energy = self.sys.energy(t, x);
        let quadratic = self.distance2(x) / (2.0 * h);
        (energy + quadratic, energy.abs() + quadratic.abs())
    }

    /// Writes `∇E(x)` into `grad` and `G(x) = g_k(x − θ_k)/h + ∇E(x)` into `residual`.
    fn optimality(&mut self, t: f64, h: f64, x: &[f64]) -> Result<(), Cause> {
        let n = self.n;
        self.sys.gradient(t, x, &mut self.grad);
        self.stats.rhs_evals += 1;
        for i in 0..n {
            let gd: f64 = (0..n).map(|j| self.metric[i * n + j] * (x[j] - self.theta[j])).sum();
            self.residual[i] = gd / h + self.grad[i];
        }
        if all_finite(&self.residual) {
            Ok(())
        } else {
            Err(Cause::NonFinite)
        }
    }

    /// Writes `J = g_k/h + ∇²E(x)`, the Hessian of `Φ`, into `jac`, and returns
    /// `|x|ᵀ|∇E(x)| + |x|ᵀ|∇²E(x)||x|`, the size of the terms of `E` near `x` as far as its
    /// derivatives show them (exact for a quadratic form `½xᵀAx`, up to a factor 3).
    fn newton_matrix(&mut self, t: f64, h: f64, x: &[f64]) -> Result<f64, Cause> {
        let n = self.n;
        self.sys.hessian(t, x, &mut self.jac);
        let terms: f64 = (0..n)
            .map(|i| {
                x[i].abs() * (self.grad[i].abs() + (0..n).map(|j| self.jac[i * n + j].abs() * x[j].abs()).sum::<f64>())
            })
            .sum();
        for (j, g) in self.jac.iter_mut().zip(&self.metric) {
            *j += g / h;
        }
        if all_finite(&self.jac) {
            Ok(terms)
        } else {
            Err(Cause::NonFinite)
        }
    }

    /// Whether `‖G(x)‖` is at rounding level: at most `1e-12` of `‖∇E(x)‖ + ‖g_k(x − θ_k)/h‖`
    /// plus `64ε‖|J|·|x|‖`, the change of `G` when `x` is rounded.
    fn stationary(&self, x: &[f64]) -> bool {
        let n = self.n;
        let terms =
            norm(&self.grad) + self.residual.iter().zip(&self.grad).map(|(r, g)| (r - g) * (r - g)).sum::<f64>().sqrt();
        let rounding: Vec<f64> = (0..n).map(|i| (0..n).map(|j| self.jac[i * n + j].abs() * x[j].abs()).sum()).collect();
        norm(&self.residual) <= STATIONARY * terms + ROUNDING_G * norm(&rounding)
    }

    /// `g_k = g(θ_k, t)` symmetrised (the identity without a metric), which must be positive
    /// definite, and `D`.
    fn freeze_metric(&mut self, t: f64) -> Result<(), Cause> {
        let n = self.n;
        if self.sys.metric(t, &self.theta, &mut self.metric) {
            for i in 0..n {
                for j in 0..i {
                    let m = 0.5 * (self.metric[i * n + j] + self.metric[j * n + i]);
                    self.metric[i * n + j] = m;
                    self.metric[j * n + i] = m;
                }
            }
            if let Factor::Lu { .. } = linalg::factor(&self.metric, n).map_err(singular_metric)? {
                return Err(Cause::ProxFailed("the metric g(θ) is not positive definite".into()));
            }
        } else {
            self.metric.fill(0.0);
            for i in 0..n {
                self.metric[i * n + i] = 1.0;
            }
        }
        for i in 0..n {
            self.scale[i] = self.metric[i * n + i].sqrt();
        }
        Ok(())
    }
}

impl<S: GradientSystem> Stepper for MinimizingMovement<'_, S> {
    fn step(&mut self, t: f64, h: f64) -> Result<(), Cause> {
        let n = self.n;
        let t_new = t + h;
        self.freeze_metric(t)?;
        let energy_k = self.sys.energy(t_new, &self.theta);
        self.stats.rhs_evals += 1;
        if !energy_k.is_finite() {
            return Err(Cause::NonFinite);
        }
        let mut x = self.theta.clone();
        let (mut phi, mut size) = (energy_k, energy_k.abs());
        self.optimality(t_new, h, &x)?;
        let d = self.scale.clone();
        let mut radius = f64::INFINITY;
        let mut rejected = false;
        let mut rises = 0.0;
        let budget = RISE_BUDGET * energy_k.abs().max(1.0);
        let mut iterations = 0;
        let (mut a, mut g) = (vec![0.0; n * n], vec![0.0; n]);
        let mut trial = vec![0.0; n];
        loop {
            let terms = self.newton_matrix(t_new, h, &x).map_err(|c| runaway(c, energy_k, phi))?;
            for i in 0..n {
                g[i] = self.residual[i] / d[i];
                for j in 0..n {
                    a[i * n + j] = self.jac[i * n + j] / (d[i] * d[j]);
                }
            }
            let tr = match linalg::trust_region_step(&a, &g, n, radius) {
                Some(tr) => tr,
                None if radius.is_infinite() => {
                    // J is not positive definite: start from the length of the explicit step.
                    let x_size = x.iter().zip(&d).map(|(v, s)| (v * s).powi(2)).sum::<f64>().sqrt();
                    radius = (h * norm(&g)).max(1e-3 * x_size).max(1e-3);
                    linalg::trust_region_step(&a, &g, n, radius).ok_or(runaway(Cause::NonFinite, energy_k, phi))?
                }
                None => return Err(runaway(Cause::NonFinite, energy_k, phi)),
            };
            let stationary = self.stationary(&x);
            if stationary && tr.convex {
                break;
            }
            for i in 0..n {
                trial[i] = x[i] + tr.step[i] / d[i];
            }
            if trial == x {
                // The step is below the resolution of x.
                break;
            }
            // A decrease Φ cannot show (its rounding), or one the step may give up (the budget).
            let unseen = tr.predicted <= (ROUNDING_PHI * (size + terms)).max(budget);
            if unseen && !tr.newton && (rejected || tr.predicted <= 0.0) {
                // Within a region shrunk by rejections, no decrease Φ could show is left.
                break;
            }
            if iterations == PROX_MAX_ITERATIONS {
                return Err(Cause::ProxFailed(format!(
                    "no minimizer of Φ found in {PROX_MAX_ITERATIONS} trust-region iterations \
                     (Φ fell from {energy_k:e} to {phi:e}); is the energy bounded below?"
                )));
            }
            iterations += 1;
            self.stats.newton_iterations += 1;
            let (phi_trial, size_trial) = self.objective(t_new, h, &trial);
            let rho = if phi_trial.is_finite() { (phi - phi_trial) / tr.predicted } else { f64::NEG_INFINITY };
            let length = norm(&tr.step);
            if rho >= ACCEPT {
                x.copy_from_slice(&trial);
                (phi, size) = (phi_trial, size_trial);
                self.optimality(t_new, h, &x).map_err(|c| runaway(c, energy_k, phi))?;
                rejected = false;
                if rho < 0.25 {
                    radius = 0.25 * length;
                } else if rho > 0.75 && length >= 0.9 * radius {
                    radius *= 2.0;
                }
            } else if tr.newton && unseen {
                // The Newton step's decrease drowns in the rounding of Φ: take it if it reduces
                // ‖G‖ and the rises of Φ so taken stay within the budget; else x is the
                // minimizer to floating-point precision.
                let rise = (phi_trial - phi).max(0.0);
                if !(phi_trial.is_finite() && rises + rise <= budget) {
                    break;
                }
                let before = norm(&self.residual);
                let saved = (self.grad.clone(), self.residual.clone());
                if self.optimality(t_new, h, &trial).is_err() || norm(&self.residual) >= before {
                    (self.grad, self.residual) = saved;
                    break;
                }
                rises += rise;
                x.copy_from_slice(&trial);
                (phi, size) = (phi_trial, size_trial);
            } else {
                rejected = true;
                radius = if rho.is_finite() { 0.25 * length } else { 0.0625 * length };
            }
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

/// A non-finite value met after `Φ` has fallen below `E_k` suggests an energy unbounded
/// below: the iterates ran off until something overflowed.
fn runaway(cause: Cause, energy_k: f64, phi: f64) -> Cause {
    if cause == Cause::NonFinite && phi < energy_k {
        Cause::ProxFailed(format!(
            "non-finite energy derivatives after Φ fell from {energy_k:e} to {phi:e}; is the energy bounded below?"
        ))
    } else {
        cause
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
/// Each step minimizes `Φ(θ) = E(θ) + ‖θ − θ_k‖²_{g_k}/(2h)` from `θ_k` by a trust-region
/// Newton method with the exact Hessian `J = ∇²E + g_k/h` (docs/numerics.md §Minimizing
/// movement): a trial point is kept only when `Φ` decreases, so `Φ` never rises above
/// `Φ(θ_k) = E_k` beyond rounding and the dissipation inequality holds at any step size; the
/// step stops where `G = ∇E + g_k(θ − θ_k)/h` is at rounding level with `J` positive definite,
/// or where no decrease of `Φ` can be seen in floating point. It fails with
/// [`Cause::ProxFailed`] when the energy appears unbounded below (no minimizer within 500
/// iterations) or the metric is not positive definite, and with [`Cause::NonFinite`] on NaN.
/// Rows are `θ`.
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
        metric: vec![0.0; n * n],
        scale: vec![0.0; n],
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

    /// `E = x⁴/4 − x² + y²`, with a saddle at the origin.
    struct Saddle;
    impl GradientSystem for Saddle {
        fn dim(&self) -> usize {
            2
        }
        fn energy(&mut self, _t: f64, th: &[f64]) -> f64 {
            th[0].powi(4) / 4.0 - th[0] * th[0] + th[1] * th[1]
        }
        fn gradient(&mut self, _t: f64, th: &[f64], g: &mut [f64]) {
            g[0] = th[0].powi(3) - 2.0 * th[0];
            g[1] = 2.0 * th[1];
        }
        fn hessian(&mut self, _t: f64, th: &[f64], hs: &mut [f64]) {
            hs.copy_from_slice(&[3.0 * th[0] * th[0] - 2.0, 0.0, 0.0, 2.0]);
        }
        fn metric(&mut self, _t: f64, _theta: &[f64], _g: &mut [f64]) -> bool {
            false
        }
    }

    #[test]
    fn prox_leaves_an_exact_saddle_only_when_it_is_not_the_minimizer() {
        // Φ = x⁴/4 − x² + y² + |θ|²/(2h) from θ_k = 0, where ∇E = 0. For h < 1/2,
        // Φ ≥ x⁴/4 + (1/(2h) − 1)x² ≥ 0 = Φ(0): the step stays. For h > 1/2 the minimizers
        // are x² = 2 − 1/h, y = 0.
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 0.25, dt: 0.25, every: 1 };
        minimizing_movement(&mut Saddle, &grid, &[0.0, 0.0], &mut rows).unwrap();
        assert_eq!(rows[1].1, [0.0, 0.0]);
        for h in [1.0, 10.0, 1000.0] {
            let mut rows = Vec::new();
            let grid = Grid { t0: 0.0, t_end: h, dt: h, every: 1 };
            minimizing_movement(&mut Saddle, &grid, &[0.0, 0.0], &mut rows).unwrap_or_else(|f| panic!("h = {h}: {f}"));
            let th = &rows[1].1;
            let x = (2.0 - 1.0 / h).sqrt();
            assert!((th[0].abs() - x).abs() < 1e-12 && th[1].abs() < 1e-12, "h = {h}: {th:?} against (±{x}, 0)");
        }
    }

    #[test]
    fn prox_refuses_a_metric_that_is_not_positive_definite() {
        let mut sys = Quadratic { c: vec![1.0, 1.0], metric: Some(vec![1.0, 0.0, 0.0, -1.0]) };
        let grid = Grid { t0: 0.0, t_end: 1.0, dt: 1.0, every: 1 };
        let f = minimizing_movement(&mut sys, &grid, &[1.0, 1.0], &mut Vec::new()).unwrap_err();
        assert_eq!(f.cause, Cause::ProxFailed("the metric g(θ) is not positive definite".into()));
    }

    #[test]
    fn dissipation_check_can_fail() {
        assert!(dissipation_holds(1.0, 1.0));
        assert!(dissipation_holds(1.0 + 5e-13, 1.0));
        assert!(!dissipation_holds(1.0 + 2e-12, 1.0));
        assert!(!dissipation_holds(f64::NAN, 1.0));
    }
}
