//! The Fokker–Planck equation `∂ρ/∂t = ∇·(m (ρ ∇E + T ∇ρ))` on a grid of
//! cells: finite volumes with Scharfetter–Gummel (exponentially fitted) fluxes,
//! no flux through the ends, and backward Euler steps (docs/numerics.md
//! §Fokker–Planck). In 1-D each step is one tridiagonal solve.
//!
//! The scheme writes the flux between cells `i` and `i+1` as
//! `J = (m/h)[T·B(ΔE/T) ρ_i − T·B(−ΔE/T) ρ_{i+1}]` with `B(z) = z/(eᶻ − 1)`,
//! which vanishes exactly on the discrete Gibbs density `exp(−E_i/T)`; the
//! implicit step's matrix has columns summing to one and non-positive
//! off-diagonals, so the density stays positive and its mass is conserved to
//! rounding, and the step is a Markov kernel with the Gibbs density as its
//! stationary law, so the discrete free energy never increases.

use super::Cause;

/// A uniform grid of `cells` cells on `[lo, hi]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cells {
    pub lo: f64,
    pub hi: f64,
    pub cells: usize,
}

impl Cells {
    /// The cell width.
    pub fn h(&self) -> f64 {
        (self.hi - self.lo) / self.cells as f64
    }

    /// The centre of cell `i`.
    pub fn centre(&self, i: usize) -> f64 {
        self.lo + (i as f64 + 0.5) * self.h()
    }

    /// The edge between cells `i − 1` and `i` (`edge(0) = lo`, `edge(cells) = hi`).
    pub fn edge(&self, i: usize) -> f64 {
        if i == self.cells {
            self.hi
        } else {
            self.lo + i as f64 * self.h()
        }
    }

    pub fn centres(&self) -> Vec<f64> {
        (0..self.cells).map(|i| self.centre(i)).collect()
    }

    pub fn edges(&self) -> Vec<f64> {
        (0..=self.cells).map(|i| self.edge(i)).collect()
    }
}

/// The Bernoulli function `B(z) = z/(eᶻ − 1)`, with `B(0) = 1`, accurate for
/// every `z` (a series near 0, `exp_m1` elsewhere; `B(z) → −z` as `z → −∞`).
pub fn bernoulli(z: f64) -> f64 {
    if z.abs() < 1e-3 {
        // 1 − z/2 + z²/12 − z⁴/720: the truncation is below 1e-16 here.
        let z2 = z * z;
        1.0 - 0.5 * z + z2 / 12.0 - z2 * z2 / 720.0
    } else if z > 700.0 {
        z * (-z).exp()
    } else {
        z / z.exp_m1()
    }
}

/// `T·B(d/T)`: the weight of the upstream density in the flux across an energy
/// step `d`; at `T = 0` its limit `max(−d, 0)` (upwinding).
pub fn fitted(d: f64, temperature: f64) -> f64 {
    if temperature > 0.0 {
        temperature * bernoulli(d / temperature)
    } else {
        (-d).max(0.0)
    }
}

/// The coefficients of the fluxes across the interior faces of a line of
/// cells: `J_f = fwd[f] ρ_f − bwd[f] ρ_{f+1}` times `1/h`, with the mobility
/// and the `1/h` of the gradient folded in (so `dρ_i/dt = −(J_i − J_{i−1})/h`).
#[derive(Clone, Debug, Default)]
pub struct Faces {
    pub fwd: Vec<f64>,
    pub bwd: Vec<f64>,
}

impl Faces {
    /// The Scharfetter–Gummel faces of cells with energies `e`, the mobility
    /// `mobility[f]` on face `f` (between cells `f` and `f + 1`), at
    /// temperature `temperature`, cell width `h`.
    pub fn scharfetter_gummel(e: &[f64], mobility: &[f64], temperature: f64, h: f64) -> Faces {
        let n = e.len().saturating_sub(1);
        let mut f = Faces { fwd: Vec::with_capacity(n), bwd: Vec::with_capacity(n) };
        for i in 0..n {
            let d = e[i + 1] - e[i];
            let m = mobility[i] / (h * h);
            f.fwd.push(m * fitted(d, temperature));
            f.bwd.push(m * fitted(-d, temperature));
        }
        f
    }

    /// `dρ/dt` of the semi-discrete equation.
    pub fn apply(&self, rho: &[f64], out: &mut [f64]) {
        out.iter_mut().for_each(|x| *x = 0.0);
        for f in 0..self.fwd.len() {
            let j = self.fwd[f] * rho[f] - self.bwd[f] * rho[f + 1];
            out[f] -= j;
            out[f + 1] += j;
        }
    }
}

/// Scratch space of [`implicit_step`].
#[derive(Clone, Debug, Default)]
pub struct Tridiagonal {
    c: Vec<f64>,
    d: Vec<f64>,
}

/// One backward Euler step `(I − dt·L) ρ⁺ = ρ` of the line's generator `L`,
/// in place: the tridiagonal system solved by the Thomas algorithm, which
/// needs no pivoting since the matrix is diagonally dominant by columns.
/// `Err` when a coefficient is not finite.
pub fn implicit_step(rho: &mut [f64], dt: f64, faces: &Faces, work: &mut Tridiagonal) -> Result<(), Cause> {
    let n = rho.len();
    work.c.resize(n, 0.0);
    work.d.resize(n, 0.0);
    let (fwd, bwd) = (&faces.fwd, &faces.bwd);
    // Row i: −dt·fwd[i−1] ρ_{i−1} + (1 + dt(fwd[i] + bwd[i−1])) ρ_i − dt·bwd[i] ρ_{i+1}.
    let lower = |i: usize| if i > 0 { -dt * fwd[i - 1] } else { 0.0 };
    let upper = |i: usize| if i + 1 < n { -dt * bwd[i] } else { 0.0 };
    let diag = |i: usize| 1.0 + dt * (if i + 1 < n { fwd[i] } else { 0.0 } + if i > 0 { bwd[i - 1] } else { 0.0 });
    let mut denom = diag(0);
    work.c[0] = upper(0) / denom;
    work.d[0] = rho[0] / denom;
    for (i, &r) in rho.iter().enumerate().skip(1) {
        let a = lower(i);
        denom = diag(i) - a * work.c[i - 1];
        if !(denom.is_finite() && denom > 0.0) {
            return Err(Cause::NonFinite);
        }
        work.c[i] = upper(i) / denom;
        work.d[i] = (r - a * work.d[i - 1]) / denom;
    }
    rho[n - 1] = work.d[n - 1];
    for i in (0..n - 1).rev() {
        rho[i] = work.d[i] - work.c[i] * rho[i + 1];
    }
    if rho.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(Cause::NonFinite)
    }
}

/// The functionals of a density on the grid (each an integral, a sum over
/// cells times the cell volume `dv`): mass, `∫ E ρ`, `−∫ ρ log ρ` and the free
/// energy `∫ E ρ + T ∫ ρ log ρ`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Functionals {
    pub mass: f64,
    pub energy: f64,
    pub entropy: f64,
    pub free_energy: f64,
}

impl Functionals {
    pub fn of(rho: &[f64], e: &[f64], temperature: f64, dv: f64) -> Functionals {
        let (mut mass, mut energy, mut entropy) = (0.0, 0.0, 0.0);
        for (&r, &ei) in rho.iter().zip(e) {
            mass += r;
            energy += ei * r;
            if r > 0.0 {
                entropy -= r * r.ln();
            }
        }
        let (mass, energy, entropy) = (mass * dv, energy * dv, entropy * dv);
        Functionals { mass, energy, entropy, free_energy: energy - temperature * entropy }
    }
}

/// The mean and standard deviation of `x` under the density (normalised by its mass).
pub fn moments(rho: &[f64], x: impl Fn(usize) -> f64) -> (f64, f64) {
    let mass: f64 = rho.iter().sum();
    let mean = rho.iter().enumerate().map(|(i, r)| r * x(i)).sum::<f64>() / mass;
    let var = rho.iter().enumerate().map(|(i, r)| r * (x(i) - mean).powi(2)).sum::<f64>() / mass;
    (mean, var.max(0.0).sqrt())
}

/// `erf(x)`: a series of positive terms for `|x| ≤ 3`, else `1 − erfc(x)`
/// from its continued fraction; both accurate to a few units in 1e-15.
pub fn erf(x: f64) -> f64 {
    if x.abs() > 3.0 {
        return x.signum() * (1.0 - erfc_cf(x.abs()));
    }
    // erf x = (2/√π) e^{−x²} Σ (2x²)ⁿ x / (1·3·…·(2n+1)).
    let (mut term, mut sum, x2) = (x, x, 2.0 * x * x);
    for n in 1..200 {
        term *= x2 / (2 * n + 1) as f64;
        sum += term;
        if term.abs() < 1e-17 * sum.abs() {
            break;
        }
    }
    std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp() * sum
}

/// `erfc(x)` for `x > 0` by its continued fraction (modified Lentz).
fn erfc_cf(x: f64) -> f64 {
    // erfc x = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))).
    let tiny = 1e-300;
    let mut f = x;
    let (mut c, mut d) = (x, 0.0);
    for n in 1..500 {
        let a = n as f64 / 2.0;
        d = x + a * d;
        d = if d.abs() < tiny { 1.0 / tiny } else { 1.0 / d };
        c = x + a / c;
        if c.abs() < tiny {
            c = tiny;
        }
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (f * std::f64::consts::PI.sqrt())
}

/// The probability of `[a, b]` under `normal(mean, std)`, without the
/// cancellation of `Φ(b) − Φ(a)` in a tail.
pub fn normal_mass(a: f64, b: f64, mean: f64, std: f64) -> f64 {
    let s = std * std::f64::consts::SQRT_2;
    let (za, zb) = ((a - mean) / s, (b - mean) / s);
    if za > 0.0 {
        0.5 * (upper(za) - upper(zb))
    } else if zb < 0.0 {
        0.5 * (upper(-zb) - upper(-za))
    } else {
        0.5 * (erf(zb) - erf(za))
    }
}

/// `erfc(z)` for `z ≥ 0`.
fn upper(z: f64) -> f64 {
    if z > 3.0 {
        erfc_cf(z)
    } else {
        1.0 - erf(z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // Values from Abramowitz & Stegun, table 7.1, and erfc(5) = 1.537_459_794_428_035e-12.
        assert!((erf(0.5) - 0.5204998778130465).abs() < 1e-15);
        assert!((erf(1.0) - 0.8427007929497149).abs() < 1e-15);
        assert!((erf(2.0) - 0.9953222650189527).abs() < 1e-15);
        assert!((erf(-1.0) + 0.8427007929497149).abs() < 1e-15);
        assert!((erfc_cf(5.0) / 1.537_459_794_428_035e-12 - 1.0).abs() < 1e-13);
        // Both branches agree where they meet.
        assert!(((1.0 - erf(3.0)) / erfc_cf(3.0) - 1.0).abs() < 1e-10);
    }

    #[test]
    fn bernoulli_is_smooth_across_its_branches() {
        for z in [-1e-3f64, 1e-3, -1.0, 2.0, 750.0, -750.0] {
            let exact = if z > 700.0 { z * (-z).exp() } else { z / z.exp_m1() };
            assert!((bernoulli(z) - exact).abs() <= 1e-14 * exact.abs().max(1e-300), "B({z})");
        }
        assert!((bernoulli(-800.0) - 800.0).abs() < 1e-12);
        assert_eq!(fitted(-2.0, 0.0), 2.0);
        assert_eq!(fitted(2.0, 0.0), 0.0);
    }

    #[test]
    fn gibbs_density_has_no_flux() {
        let cells = Cells { lo: -2.0, hi: 2.0, cells: 40 };
        let e: Vec<f64> = cells.centres().iter().map(|x| x.powi(4) - x * x).collect();
        let t = 0.3;
        let faces = Faces::scharfetter_gummel(&e, &vec![1.5; 39], t, cells.h());
        let gibbs: Vec<f64> = e.iter().map(|e| (-e / t).exp()).collect();
        let mut d = vec![0.0; 40];
        faces.apply(&gibbs, &mut d);
        assert!(d.iter().all(|x| x.abs() < 1e-12), "{d:?}");
    }

    #[test]
    fn an_implicit_step_conserves_mass_and_matches_a_dense_solve() {
        let cells = Cells { lo: 0.0, hi: 1.0, cells: 7 };
        let e: Vec<f64> = cells.centres().iter().map(|x| (5.0 * x).sin()).collect();
        let faces = Faces::scharfetter_gummel(&e, &[1.0; 6], 0.2, cells.h());
        let rho0: Vec<f64> = (0..7).map(|i| 1.0 + i as f64).collect();
        let mut rho = rho0.clone();
        let dt = 0.01;
        implicit_step(&mut rho, dt, &faces, &mut Tridiagonal::default()).unwrap();
        // The residual of (I − dt L) ρ⁺ = ρ⁰.
        let mut l = vec![0.0; 7];
        faces.apply(&rho, &mut l);
        for i in 0..7 {
            assert!((rho[i] - dt * l[i] - rho0[i]).abs() < 1e-13);
        }
        let m0: f64 = rho0.iter().sum();
        assert!((rho.iter().sum::<f64>() - m0).abs() < 1e-13 * m0);
        assert!(rho.iter().all(|&r| r > 0.0));
    }

    #[test]
    fn normal_masses_sum_to_one() {
        let total: f64 = (0..200).map(|i| normal_mass(-10.0 + 0.1 * i as f64, -9.9 + 0.1 * i as f64, 0.3, 1.2)).sum();
        assert!((total - 1.0).abs() < 1e-14);
        // Far in the tail, no cancellation: P(X > 6) = 9.865876450376946e-10.
        assert!((normal_mass(6.0, 60.0, 0.0, 1.0) / 9.865876450376946e-10 - 1.0).abs() < 1e-13);
    }
}
