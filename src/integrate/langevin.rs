//! The Euler–Maruyama method for overdamped Langevin dynamics
//! `dθ = −g⁻¹∇E dt + √(2T) g^{-1/2} dW`.

use rand::Rng;
use rand_distr::StandardNormal;

use super::explicit::check_dim;
use super::linalg;
use super::{drive, fail_at_start, Cause, Failure, GradientSystem, Grid, Observer, Stats, Stepper};

/// One Euler–Maruyama step with its buffers and random number generator.
struct EulerMaruyama<'a, S, R> {
    sys: &'a mut S,
    rng: &'a mut R,
    temperature: f64,
    theta: Vec<f64>,
    grad: Vec<f64>,
    metric: Vec<f64>,
    noise: Vec<f64>,
    stats: Stats,
}

impl<S: GradientSystem, R: Rng> Stepper for EulerMaruyama<'_, S, R> {
    fn step(&mut self, t: f64, h: f64) -> Result<(), Cause> {
        let n = self.theta.len();
        self.sys.gradient(t, &self.theta, &mut self.grad);
        self.stats.rhs_evals += 1;
        for xi in self.noise.iter_mut() {
            *xi = self.rng.sample(StandardNormal);
        }
        if self.sys.metric(t, &self.theta, &mut self.metric) {
            let singular = |_| Cause::Other("singular metric g(θ)".into());
            linalg::factor(&self.metric, n).map_err(singular)?.solve(&mut self.grad);
            let root = linalg::inverse_sqrt(&self.metric, n).map_err(singular)?;
            let xi = self.noise.clone();
            linalg::mat_vec(&root, &xi, &mut self.noise);
        }
        let amplitude = (2.0 * self.temperature * h).sqrt();
        for i in 0..n {
            self.theta[i] += -h * self.grad[i] + amplitude * self.noise[i];
        }
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

/// Integrates `dθ = −g⁻¹∇E dt + √(2T) g^{-1/2} dW` by Euler–Maruyama:
/// `θ ← θ − h g⁻¹∇E + √(2Th) g^{-1/2} ξ`, `ξ ~ N(0, I)`, with `g` (the identity for the
/// Euclidean metric) evaluated at the current `θ`. With a non-constant metric this omits the
/// divergence (Itô) drift correction, so it samples the Gibbs density only for constant `g`.
/// The stationary law is biased by `O(h)`. Rows are `θ`.
pub fn euler_maruyama(
    sys: &mut impl GradientSystem,
    grid: &Grid,
    temperature: f64,
    theta0: &[f64],
    rng: &mut impl Rng,
    obs: &mut impl Observer,
) -> Result<Stats, Failure> {
    let n = sys.dim();
    check_dim(grid, theta0, n)?;
    if !(temperature >= 0.0 && temperature.is_finite()) {
        let cause = Cause::Other(format!("temperature must be non-negative, not {temperature}"));
        return Err(fail_at_start(grid, theta0, cause));
    }
    let mut method = EulerMaruyama {
        sys,
        rng,
        temperature,
        theta: theta0.to_vec(),
        grad: vec![0.0; n],
        metric: vec![0.0; n * n],
        noise: vec![0.0; n],
        stats: Stats::default(),
    };
    drive(grid, &mut method, obs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// `N` independent particles in `E = Σ k θ_i²/2`, with an optional constant scalar metric.
    struct Ensemble {
        n: usize,
        k: f64,
        metric: Option<f64>,
    }

    impl GradientSystem for Ensemble {
        fn dim(&self) -> usize {
            self.n
        }
        fn energy(&mut self, _t: f64, th: &[f64]) -> f64 {
            0.5 * self.k * th.iter().map(|x| x * x).sum::<f64>()
        }
        fn gradient(&mut self, _t: f64, th: &[f64], g: &mut [f64]) {
            for (gi, x) in g.iter_mut().zip(th) {
                *gi = self.k * x;
            }
        }
        fn hessian(&mut self, _t: f64, _th: &[f64], hs: &mut [f64]) {
            hs.fill(0.0);
            for i in 0..self.n {
                hs[i * self.n + i] = self.k;
            }
        }
        fn metric(&mut self, _t: f64, _th: &[f64], g: &mut [f64]) -> bool {
            match self.metric {
                Some(m) => {
                    g.fill(0.0);
                    for i in 0..self.n {
                        g[i * self.n + i] = m;
                    }
                    true
                }
                None => false,
            }
        }
    }

    fn mean_and_variance(x: &[f64]) -> (f64, f64) {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn ornstein_uhlenbeck_mean_and_stationary_variance() {
        // k = 2, T = 0.5, h = 0.01: EM mean (1 − kh)^n, variance v∞(1 − (1 − kh)^{2n}),
        // v∞ = T/(k(1 − kh/2)) = 0.2525253.
        let (k, temperature, h, particles) = (2.0, 0.5, 0.01, 20_000);
        let mut sys = Ensemble { n: particles, k, metric: None };
        let mut rng = ChaCha8Rng::seed_from_u64(20240611);
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 5.0, dt: h, every: 50 };
        let theta0 = vec![1.0; particles];
        euler_maruyama(&mut sys, &grid, temperature, &theta0, &mut rng, &mut rows).unwrap();
        let v_inf = temperature / (k * (1.0 - k * h / 2.0));
        assert!((v_inf - 0.2525253).abs() < 1e-7);
        for (step, (t, th)) in rows.iter().enumerate().skip(1) {
            let n = (step * 50) as i32;
            assert!((t - n as f64 * h).abs() < 1e-12);
            let decay = (1.0 - k * h).powi(n);
            let variance = v_inf * (1.0 - decay * decay);
            let (m, v) = mean_and_variance(th);
            let se_mean = (variance / particles as f64).sqrt();
            let se_var = variance * (2.0 / particles as f64).sqrt();
            assert!((m - decay).abs() < 5.0 * se_mean, "t = {t}: mean {m} vs {decay}");
            assert!((v - variance).abs() < 5.0 * se_var, "t = {t}: variance {v} vs {variance}");
            if step == rows.len() - 1 {
                eprintln!(
                    "OU at t = {t}: mean {m:.5} (exact {decay:.2e}, SE {se_mean:.1e}), \
                     variance {v:.5} (exact {variance:.7}, SE {se_var:.1e})"
                );
            }
        }
    }

    /// `E = k|θ|²/2` in the plane with the constant metric `g`.
    struct Metric2 {
        k: f64,
        g: [f64; 4],
    }

    impl GradientSystem for Metric2 {
        fn dim(&self) -> usize {
            2
        }
        fn energy(&mut self, _t: f64, th: &[f64]) -> f64 {
            0.5 * self.k * (th[0] * th[0] + th[1] * th[1])
        }
        fn gradient(&mut self, _t: f64, th: &[f64], g: &mut [f64]) {
            g[0] = self.k * th[0];
            g[1] = self.k * th[1];
        }
        fn hessian(&mut self, _t: f64, _th: &[f64], hs: &mut [f64]) {
            hs.copy_from_slice(&[self.k, 0.0, 0.0, self.k]);
        }
        fn metric(&mut self, _t: f64, _th: &[f64], g: &mut [f64]) -> bool {
            g.copy_from_slice(&self.g);
            true
        }
    }

    #[test]
    fn constant_metric_scales_drift_and_noise() {
        // Before equilibrium the metric shapes the spread. The EM covariance after n steps from θ = 0 obeys Σ ← AΣAᵀ + 2Th g⁻¹ with
        // A = I − hk g⁻¹; compare each component's sample variance with it.
        let (k, temperature, h, steps, particles) = (2.0, 0.5, 0.05, 10, 4000);
        let g = [3.0, 1.0, 1.0, 2.0];
        let det = g[0] * g[3] - g[1] * g[2];
        let gi = [g[3] / det, -g[1] / det, -g[2] / det, g[0] / det];
        let a = [1.0 - h * k * gi[0], -h * k * gi[1], -h * k * gi[2], 1.0 - h * k * gi[3]];
        let mul = |x: [f64; 4], y: [f64; 4]| {
            [x[0] * y[0] + x[1] * y[2], x[0] * y[1] + x[1] * y[3], x[2] * y[0] + x[3] * y[2], x[2] * y[1] + x[3] * y[3]]
        };
        let at = [a[0], a[2], a[1], a[3]];
        let mut sigma = [0.0; 4];
        for _ in 0..steps {
            let s = mul(mul(a, sigma), at);
            sigma = [0, 1, 2, 3].map(|i| s[i] + 2.0 * temperature * h * gi[i]);
        }
        let mut sys = Metric2 { k, g };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let grid = Grid { t0: 0.0, t_end: steps as f64 * h, dt: h, every: steps };
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for _ in 0..particles {
            let mut obs = |_t: f64, th: &[f64]| -> Result<(), String> {
                xs.push(th[0]);
                ys.push(th[1]);
                Ok(())
            };
            euler_maruyama(&mut sys, &grid, temperature, &[0.0, 0.0], &mut rng, &mut obs).unwrap();
            // Keep only the final row of each run.
            xs.remove(xs.len() - 2);
            ys.remove(ys.len() - 2);
        }
        for (samples, expected) in [(&xs, sigma[0]), (&ys, sigma[3])] {
            let (_, v) = mean_and_variance(samples);
            let se = expected * (2.0 / particles as f64).sqrt();
            eprintln!("EM with metric: variance {v:.5} vs {expected:.5} (SE {se:.1e})");
            assert!((v - expected).abs() < 5.0 * se, "{v} vs {expected}");
        }
        // The test can fail: ignoring the metric would make both variances equal.
        let se = sigma[0] * (2.0 / particles as f64).sqrt();
        assert!((sigma[0] - sigma[3]).abs() > 10.0 * se);
    }

    #[test]
    fn zero_temperature_is_gradient_descent() {
        let mut sys = Ensemble { n: 2, k: 2.0, metric: None };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.0, t_end: 1.0, dt: 0.1, every: 10 };
        euler_maruyama(&mut sys, &grid, 0.0, &[1.0, -1.0], &mut rng, &mut rows).unwrap();
        let th = &rows.last().unwrap().1;
        assert!((th[0] - 0.8f64.powi(10)).abs() < 1e-15 && (th[1] + 0.8f64.powi(10)).abs() < 1e-15);
        let err = euler_maruyama(&mut sys, &grid, -1.0, &[1.0, -1.0], &mut rng, &mut rows);
        assert!(err.is_err());
    }
}
