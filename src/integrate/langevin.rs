//! The Euler–Maruyama method for overdamped Langevin dynamics
//! `dθ = −g⁻¹∇E dt + √(2T) g^{-1/2} dW` with a constant metric `g` (docs/numerics.md §Euler–Maruyama).
//!
//! A run advances a block of particles together: [`noise_scale`] gives the matrix
//! `S = √(2T) g^{-1/2}` once, [`em_noise`] turns each particle's standard normal draws into
//! its increment `√h S ξ`, and [`em_block_step`] moves every particle by
//! `θ ← θ + h F(t, θ) + √h S ξ`. `em_block_step` is the reference for the compiled block
//! step of `jit`: both compute the same operations in the same order.

use super::linalg;
use super::{Cause, OdeSystem};

/// The noise matrix `S = √(2T) g^{-1/2}` (row-major `n × n`), for the temperature `T ≥ 0`
/// and the constant metric `g` (the identity when `None`).
pub fn noise_scale(temperature: f64, metric: Option<&[f64]>, n: usize) -> Result<Vec<f64>, Cause> {
    if !(temperature >= 0.0 && temperature.is_finite()) {
        return Err(Cause::Invalid(format!(
            "the temperature must be a non-negative number, not {}",
            crate::sym::fmt_float(temperature)
        )));
    }
    let mut s = vec![0.0; n * n];
    match metric {
        None => (0..n).for_each(|i| s[i * n + i] = 1.0),
        Some(g) => s = linalg::inverse_sqrt(g, n).map_err(|_| Cause::SingularMetric)?,
    }
    let c = (2.0 * temperature).sqrt();
    Ok(s.into_iter().map(|x| c * x).collect())
}

/// One particle's increment `out = √h · S ξ` for the standard normal draws `xi`.
pub fn em_noise(scale: &[f64], sqrt_h: f64, xi: &[f64], out: &mut [f64]) {
    let n = xi.len();
    for (i, o) in out.iter_mut().enumerate() {
        *o = sqrt_h * (0..n).map(|j| scale[i * n + j] * xi[j]).sum::<f64>();
    }
}

/// One Euler–Maruyama step of a block of particles (rows of `theta`, `sys.dim()` wide):
/// `θ_i ← θ_i + h F(t, θ_i) + noise_i`. On failure the particles before the failing one have
/// moved, it and those after it have not, and the error gives its index and the cause.
pub fn em_block_step(
    sys: &mut impl OdeSystem,
    t: f64,
    h: f64,
    theta: &mut [f64],
    noise: &[f64],
) -> Result<(), (usize, Cause)> {
    let n = sys.dim();
    let mut f = vec![0.0; n];
    let mut next = vec![0.0; n];
    for (i, (y, xi)) in theta.chunks_mut(n.max(1)).zip(noise.chunks(n.max(1))).enumerate() {
        sys.rhs(t, y, &mut f).map_err(|c| (i, c))?;
        for j in 0..n {
            next[j] = y[j] + h * f[j] + xi[j];
        }
        if next.iter().any(|v| !v.is_finite()) {
            return Err((i, Cause::NonFinite));
        }
        y.copy_from_slice(&next);
    }
    Ok(())
}

/// `B` with `B Bᵀ = A` for a symmetric positive semidefinite matrix `A` (row-major
/// `n × n`): `U diag(√λ) Uᵀ` from its eigen-decomposition. Eigenvalues down to
/// `−1e-12·max|λ|` count as zero (a friction on some coordinates only); below that, or
/// with a non-finite entry, `A` is not a friction matrix.
pub fn psd_sqrt(a: &[f64], n: usize) -> Result<Vec<f64>, Cause> {
    if a.len() != n * n || !a.iter().all(|v| v.is_finite()) {
        return Err(Cause::Invalid("the friction matrix Γ has a non-finite entry".into()));
    }
    let (values, vectors) = linalg::symmetric_eigen(a, n);
    let largest = values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    if let Some(l) = values.iter().find(|&&l| l < -1e-12 * largest) {
        return Err(Cause::Invalid(format!(
            "the friction matrix Γ = ∂²R/∂q'∂q' is not positive semidefinite (eigenvalue {}): \
             the dissipation would feed energy in",
            crate::sym::fmt_float(*l)
        )));
    }
    let roots: Vec<f64> = values.iter().map(|l| l.max(0.0).sqrt()).collect();
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..n).map(|k| vectors[i * n + k] * roots[k] * vectors[j * n + k]).sum();
        }
    }
    Ok(out)
}

/// The exact Ornstein–Uhlenbeck step of BAOAB's velocities over a step `h`,
/// `v ← C v + √T S ξ`, for constant `M` and `Γ` (docs/numerics.md §BAOAB): with
/// `A = M^{-1/2} Γ M^{-1/2} = U Λ Uᵀ`, `C = M^{-1/2} U e^{−hΛ} Uᵀ M^{1/2}` and
/// `S = M^{-1/2} U (1 − e^{−2hΛ})^{1/2} Uᵀ`, so that `v ~ N(0, T M⁻¹)` is kept exactly.
/// Diagonal `M` and `Γ` are stored as vectors.
#[derive(Clone, Debug)]
pub struct OuStep {
    n: usize,
    diagonal: bool,
    c: Vec<f64>,
    s: Vec<f64>,
}

impl OuStep {
    /// The step for the row-major matrices `m` (positive definite) and `gamma`
    /// (positive semidefinite).
    pub fn new(m: &[f64], gamma: &[f64], n: usize, h: f64) -> Result<OuStep, Cause> {
        let diagonal = (0..n).all(|i| (0..n).all(|j| i == j || (m[i * n + j] == 0.0 && gamma[i * n + j] == 0.0)));
        if diagonal {
            let d = |x: &[f64]| (0..n).map(|i| x[i * n + i]).collect::<Vec<f64>>();
            return OuStep::diagonal(&d(m), &d(gamma), h);
        }
        let m_inv_sqrt = linalg::inverse_sqrt(m, n)?;
        let (mv, mvec) = linalg::symmetric_eigen(m, n);
        let mut m_sqrt = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                m_sqrt[i * n + j] = (0..n).map(|k| mvec[i * n + k] * mv[k].sqrt() * mvec[j * n + k]).sum();
            }
        }
        let mul = |x: &[f64], y: &[f64]| -> Vec<f64> {
            let mut z = vec![0.0; n * n];
            for i in 0..n {
                for k in 0..n {
                    let xik = x[i * n + k];
                    if xik != 0.0 {
                        for j in 0..n {
                            z[i * n + j] += xik * y[k * n + j];
                        }
                    }
                }
            }
            z
        };
        let a = mul(&mul(&m_inv_sqrt, gamma), &m_inv_sqrt);
        psd_sqrt(gamma, n)?;
        let (lam, u) = linalg::symmetric_eigen(&a, n);
        let spectral = |f: &dyn Fn(f64) -> f64| -> Vec<f64> {
            let mut z = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    z[i * n + j] = (0..n).map(|k| u[i * n + k] * f(lam[k].max(0.0)) * u[j * n + k]).sum();
                }
            }
            z
        };
        let decay = spectral(&|l| (-h * l).exp());
        let spread = spectral(&|l| (1.0 - (-2.0 * h * l).exp()).max(0.0).sqrt());
        let c = mul(&mul(&m_inv_sqrt, &decay), &m_sqrt);
        let s = mul(&m_inv_sqrt, &spread);
        Ok(OuStep { n, diagonal, c, s })
    }

    /// The step for diagonal `M` and `Γ`, given by their diagonals:
    /// `c_i = e^{−hγ_i/m_i}`, `s_i = √((1 − c_i²)/m_i)`.
    pub fn diagonal(m: &[f64], gamma: &[f64], h: f64) -> Result<OuStep, Cause> {
        let n = m.len();
        let mut c = Vec::with_capacity(n);
        let mut s = Vec::with_capacity(n);
        for (&mi, &gi) in m.iter().zip(gamma) {
            if !(mi > 0.0 && mi.is_finite()) {
                return Err(Cause::SingularMassMatrix);
            }
            if !(gi >= 0.0 && gi.is_finite()) {
                return Err(Cause::Invalid(format!(
                    "the friction Γ has a negative or non-finite entry ({}) on its diagonal: \
                     the dissipation would feed energy in",
                    crate::sym::fmt_float(gi)
                )));
            }
            let e = (-h * gi / mi).exp();
            c.push(e);
            s.push(((1.0 - e * e) / mi).max(0.0).sqrt());
        }
        Ok(OuStep { n, diagonal: true, c, s })
    }

    /// `v ← C v + √T S ξ`, with `tmp` of length `n`.
    pub fn apply(&self, sqrt_t: f64, v: &mut [f64], xi: &[f64], tmp: &mut [f64]) {
        let n = self.n;
        if self.diagonal {
            for i in 0..n {
                v[i] = self.c[i] * v[i] + sqrt_t * self.s[i] * xi[i];
            }
            return;
        }
        for (i, out) in tmp[..n].iter_mut().enumerate() {
            let row_c = &self.c[i * n..(i + 1) * n];
            let row_s = &self.s[i * n..(i + 1) * n];
            *out = row_c.iter().zip(&*v).map(|(a, b)| a * b).sum::<f64>()
                + sqrt_t * row_s.iter().zip(xi).map(|(a, b)| a * b).sum::<f64>();
        }
        v.copy_from_slice(&tmp[..n]);
    }
}

/// One BAOAB step of one particle (Leimkuhler–Matthews; docs/numerics.md §BAOAB):
/// half kick, half drift, the exact OU step, half drift, half kick. `a` holds the
/// acceleration `M⁻¹F(q, t)` at the step's start on entry and at its end on exit, so a
/// step costs one evaluation of `accel`.
#[allow(clippy::too_many_arguments)]
pub fn baoab_step(
    accel: &mut impl FnMut(f64, &[f64], &mut [f64]) -> Result<(), Cause>,
    ou: &OuStep,
    sqrt_t: f64,
    t: f64,
    h: f64,
    q: &mut [f64],
    v: &mut [f64],
    a: &mut [f64],
    xi: &[f64],
    tmp: &mut [f64],
) -> Result<(), Cause> {
    let n = q.len();
    for i in 0..n {
        v[i] += 0.5 * h * a[i];
        q[i] += 0.5 * h * v[i];
    }
    ou.apply(sqrt_t, v, xi, tmp);
    for i in 0..n {
        q[i] += 0.5 * h * v[i];
    }
    accel(t + h, q, a)?;
    for i in 0..n {
        v[i] += 0.5 * h * a[i];
    }
    if q.iter().chain(&*v).all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(Cause::NonFinite)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{gradient_flow_system, GradientSystem};
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    /// `E = k θ²/2` for one particle, with an optional constant scalar metric.
    struct Well {
        k: f64,
    }

    impl GradientSystem for Well {
        fn dim(&self) -> usize {
            1
        }
        fn energy(&mut self, _t: f64, th: &[f64]) -> f64 {
            0.5 * self.k * th[0] * th[0]
        }
        fn gradient(&mut self, _t: f64, th: &[f64], g: &mut [f64]) {
            g[0] = self.k * th[0];
        }
        fn hessian(&mut self, _t: f64, _th: &[f64], hs: &mut [f64]) {
            hs[0] = self.k;
        }
        fn metric(&mut self, _t: f64, _th: &[f64], _g: &mut [f64]) -> bool {
            false
        }
    }

    /// `steps` Euler–Maruyama steps of size `h` of a block of particles, each drawing
    /// its noise from one stream.
    fn run_block(sys: &mut impl OdeSystem, scale: &[f64], h: f64, steps: usize, theta: &mut [f64], seed: u64) {
        let n = sys.dim();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut noise = vec![0.0; theta.len()];
        let mut xi = vec![0.0; n];
        for k in 0..steps {
            for p in 0..theta.len() / n {
                xi.iter_mut().for_each(|x| *x = rng.sample(StandardNormal));
                em_noise(scale, h.sqrt(), &xi, &mut noise[p * n..(p + 1) * n]);
            }
            em_block_step(sys, k as f64 * h, h, theta, &noise).unwrap();
        }
    }

    fn mean_and_variance(x: &[f64]) -> (f64, f64) {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn ornstein_uhlenbeck_mean_and_variance() {
        // k = 2, T = 0.5, h = 0.01 (docs/numerics.md, answer 6): the EM mean after n steps
        // is (1 − kh)^n, the variance v∞(1 − (1 − kh)^{2n}) with v∞ = T/(k(1 − kh/2)).
        // Each check is a 5-standard-error band: a false alarm about once in 1.7 million.
        let (k, temperature, h, particles) = (2.0, 0.5, 0.01, 20_000);
        let mut sys = gradient_flow_system(Well { k });
        let scale = noise_scale(temperature, None, 1).unwrap();
        let v_inf = temperature / (k * (1.0 - k * h / 2.0));
        assert!((v_inf - 0.2525253).abs() < 1e-7);
        let mut theta = vec![1.0; particles];
        for (round, steps) in [50usize, 200, 250].into_iter().enumerate() {
            run_block(&mut sys, &scale, h, steps, &mut theta, 20240611 + round as u64);
            let n: i32 = [50, 250, 500][round];
            let decay = (1.0 - k * h).powi(n);
            let variance = v_inf * (1.0 - decay * decay);
            let (m, v) = mean_and_variance(&theta);
            let se_mean = (variance / particles as f64).sqrt();
            let se_var = variance * (2.0 / particles as f64).sqrt();
            assert!((m - decay).abs() < 5.0 * se_mean, "step {n}: mean {m} vs {decay}");
            assert!((v - variance).abs() < 5.0 * se_var, "step {n}: variance {v} vs {variance}");
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
        // Before equilibrium the metric shapes the spread. The EM covariance after n steps
        // from θ = 0 obeys Σ ← AΣAᵀ + 2Th g⁻¹ with A = I − hk g⁻¹; compare each component's
        // sample variance with it (5 standard errors).
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
        let mut sys = gradient_flow_system(Metric2 { k, g });
        let scale = noise_scale(temperature, Some(&g), 2).unwrap();
        let mut theta = vec![0.0; 2 * particles];
        run_block(&mut sys, &scale, h, steps, &mut theta, 7);
        let xs: Vec<f64> = theta.iter().step_by(2).copied().collect();
        let ys: Vec<f64> = theta.iter().skip(1).step_by(2).copied().collect();
        for (samples, expected) in [(&xs, sigma[0]), (&ys, sigma[3])] {
            let (_, v) = mean_and_variance(samples);
            let se = expected * (2.0 / particles as f64).sqrt();
            assert!((v - expected).abs() < 5.0 * se, "{v} vs {expected}");
        }
        // The test can fail: ignoring the metric would make both variances equal.
        let se = sigma[0] * (2.0 / particles as f64).sqrt();
        assert!((sigma[0] - sigma[3]).abs() > 10.0 * se);
    }

    #[test]
    fn zero_temperature_is_gradient_descent() {
        let mut sys = gradient_flow_system(Well { k: 2.0 });
        let scale = noise_scale(0.0, None, 1).unwrap();
        let mut theta = vec![1.0, -1.0];
        run_block(&mut sys, &scale, 0.1, 10, &mut theta, 1);
        assert!((theta[0] - 0.8f64.powi(10)).abs() < 1e-15 && (theta[1] + 0.8f64.powi(10)).abs() < 1e-15);
        assert!(noise_scale(-1.0, None, 1).is_err());
        assert_eq!(noise_scale(1.0, Some(&[1.0, 2.0, 2.0, 1.0]), 2), Err(Cause::SingularMetric));
    }

    #[test]
    fn a_failing_particle_stops_the_block_where_it_is() {
        let mut sys = gradient_flow_system(Well { k: 2.0 });
        let mut theta = vec![1.0, f64::INFINITY, 3.0];
        let err = em_block_step(&mut sys, 0.0, 0.1, &mut theta, &[0.0; 3]).unwrap_err();
        assert_eq!(err.0, 1);
        assert_eq!(theta[0], 0.8);
        assert_eq!(theta[2], 3.0);
    }

    #[test]
    fn the_ou_step_keeps_the_maxwell_distribution_exactly() {
        // C (T M⁻¹) Cᵀ + T S Sᵀ = T M⁻¹ for full M and Γ (Γ singular: friction on one
        // combination only), and C → I − h M⁻¹Γ for a small step.
        let n = 3;
        let m = [2.0, 0.3, 0.1, 0.3, 1.0, 0.2, 0.1, 0.2, 1.5];
        let gamma = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.5];
        let m_inv = {
            let f = linalg::factor(&m, n).unwrap();
            let mut inv = vec![0.0; 9];
            for j in 0..n {
                let mut e = vec![0.0; n];
                e[j] = 1.0;
                f.solve(&mut e);
                for i in 0..n {
                    inv[i * n + j] = e[i];
                }
            }
            inv
        };
        for h in [0.01, 0.7, 5.0] {
            let ou = OuStep::new(&m, &gamma, n, h).unwrap();
            assert!(!ou.diagonal);
            let mut cov = vec![0.0; 9];
            for i in 0..n {
                for j in 0..n {
                    let mut x = 0.0;
                    for k in 0..n {
                        x += ou.s[i * n + k] * ou.s[j * n + k];
                        for l in 0..n {
                            x += ou.c[i * n + k] * m_inv[k * n + l] * ou.c[j * n + l];
                        }
                    }
                    cov[i * n + j] = x;
                }
            }
            for (a, b) in cov.iter().zip(&m_inv) {
                assert!((a - b).abs() < 1e-12, "h = {h}: {cov:?} vs {m_inv:?}");
            }
        }
        let h = 1e-4;
        let ou = OuStep::new(&m, &gamma, n, h).unwrap();
        let mut mg = [0.0; 9];
        for i in 0..n {
            for j in 0..n {
                mg[i * n + j] = (0..n).map(|k| m_inv[i * n + k] * gamma[k * n + j]).sum();
            }
        }
        for (i, (c, g)) in ou.c.iter().zip(mg).enumerate() {
            let id = if i % 4 == 0 { 1.0 } else { 0.0 };
            assert!((c - (id - h * g)).abs() < 1e-7, "{:?}", ou.c);
        }
        // A friction that feeds energy in is refused.
        assert!(OuStep::new(&m, &[1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0], n, 0.1).is_err());
    }
}
