//! Small dense linear algebra: Cholesky and LU factorisations with singularity detection,
//! and the inverse square root of a symmetric positive definite matrix.
//!
//! Matrices are row-major `n × n` slices. A matrix is singular for our purposes when an entry
//! is not finite, the factorisation breaks down, or the reciprocal condition number in the
//! 1-norm (estimated by Hager's method) of the matrix scaled to a unit diagonal is below
//! [`RCOND_MIN`]: coordinates in very different units do not make a matrix singular.

use super::Cause;

/// The smallest reciprocal condition number accepted as nonsingular.
pub const RCOND_MIN: f64 = 1e-12;

/// A factorised square matrix, ready to solve `A x = b` for any number of right-hand sides.
#[derive(Debug, Clone)]
pub enum Factor {
    /// The lower Cholesky factor `L` of a symmetric positive definite `A = L Lᵀ`.
    Cholesky { n: usize, l: Vec<f64> },
    /// `P A = L U` with unit lower `L` and upper `U` packed together; `perm[i]` is the row of
    /// `A` that became row `i`.
    Lu { n: usize, lu: Vec<f64>, perm: Vec<usize> },
}

impl Factor {
    /// Overwrites `b` with the solution of `A x = b`.
    pub fn solve(&self, b: &mut [f64]) {
        match self {
            Factor::Cholesky { n, l } => cholesky_substitute(l, b, *n),
            Factor::Lu { n, lu, perm } => lu_substitute(lu, perm, b, *n),
        }
    }

    /// Overwrites `b` with the solution of `Aᵀ x = b`.
    pub fn solve_transposed(&self, b: &mut [f64]) {
        match self {
            Factor::Cholesky { n, l } => cholesky_substitute(l, b, *n),
            Factor::Lu { n, lu, perm } => lu_substitute_transposed(lu, perm, b, *n),
        }
    }

    /// Hager's estimate of the reciprocal condition number of `B = S A S`
    /// ([`rcond_scaled`]).
    fn rcond(&self, n: usize, norm_b: f64, s: &[f64]) -> f64 {
        rcond_scaled(n, norm_b, s, &|v| self.solve(v), &|v| self.solve_transposed(v))
    }
}

/// Hager's estimate of the reciprocal condition number `1/(‖B‖₁‖B⁻¹‖₁)` of
/// `B = S A S`, `S = diag(s)`, given `‖B‖₁` and solves with `A` and `Aᵀ`. With
/// `s_i = 1/√|a_ii|` this is the condition of `A` with its units taken out: a
/// diagonal `A` is well conditioned however different its entries.
pub(crate) fn rcond_scaled(
    n: usize,
    norm_b: f64,
    s: &[f64],
    solve: &dyn Fn(&mut [f64]),
    solve_transposed: &dyn Fn(&mut [f64]),
) -> f64 {
    if n == 0 {
        return 1.0;
    }
    // B⁻¹ = S⁻¹ A⁻¹ S⁻¹, and B⁻ᵀ likewise.
    let unscale = |v: &mut [f64]| v.iter_mut().zip(s).for_each(|(x, si)| *x /= si);
    let mut x = vec![1.0 / n as f64; n];
    let mut estimate = 0.0;
    for _ in 0..5 {
        let mut y = x.clone();
        unscale(&mut y);
        solve(&mut y);
        unscale(&mut y);
        estimate = y.iter().map(|v| v.abs()).sum::<f64>();
        let mut z: Vec<f64> = y.iter().map(|v| if *v >= 0.0 { 1.0 } else { -1.0 }).collect();
        unscale(&mut z);
        solve_transposed(&mut z);
        unscale(&mut z);
        let (j, zmax) = z
            .iter()
            .enumerate()
            .fold((0, 0.0_f64), |(bj, bv), (i, v)| if v.abs() > bv { (i, v.abs()) } else { (bj, bv) });
        let ztx: f64 = z.iter().zip(&x).map(|(a, b)| a * b).sum();
        if zmax <= ztx {
            break;
        }
        x.iter_mut().for_each(|v| *v = 0.0);
        x[j] = 1.0;
    }
    if !estimate.is_finite() || norm_b == 0.0 {
        return 0.0;
    }
    1.0 / (norm_b * estimate)
}

/// The 1-norm (largest column sum) of a matrix.
fn norm_1(a: &[f64], n: usize) -> f64 {
    (0..n).map(|j| (0..n).map(|i| a[i * n + j].abs()).sum::<f64>()).fold(0.0, f64::max)
}

/// Factorises a symmetric matrix as `L Lᵀ`, or returns `None` when it is not (numerically)
/// positive definite. Only the lower triangle of `a` is read.
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    cholesky_with_floor(a, n, 0.0)
}

/// Factorises a symmetric matrix as `L Lᵀ` when every pivot (the square of `L_jj`) exceeds
/// `floor`, or returns `None`: a matrix accepted here is positive definite with a margin, never
/// nearly singular. Only the lower triangle of `a` is read.
pub fn cholesky_with_floor(a: &[f64], n: usize, floor: f64) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= l[j * n + k] * l[j * n + k];
        }
        if !d.is_finite() || d <= floor.max(0.0) {
            return None;
        }
        let d = d.sqrt();
        l[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            l[i * n + j] = s / d;
        }
    }
    Some(l)
}

/// The smallest pivot, relative to the largest diagonal entry, that [`trust_region_step`]
/// accepts in a Cholesky factorisation of `A + λI`.
pub const PIVOT_FLOOR: f64 = 1e-12;

/// A step of the trust-region subproblem `min gᵀp + ½pᵀAp` subject to `‖p‖ ≤ Δ`.
#[derive(Debug, Clone)]
pub struct TrustStep {
    /// The step `p`.
    pub step: Vec<f64>,
    /// The decrease of the model, `−(gᵀp + ½pᵀAp)`.
    pub predicted: f64,
    /// Whether `p` is the Newton step `−A⁻¹g` (then `‖p‖ ≤ Δ`).
    pub newton: bool,
    /// Whether `A` itself passed the Cholesky factorisation with the pivot floor.
    pub convex: bool,
}

/// Solves the trust-region subproblem `min m(p) = gᵀp + ½pᵀAp`, `‖p‖ ≤ Δ`, for a symmetric
/// `A`, by the method of Moré and Sorensen (docs/numerics.md §Minimizing movement): the
/// Newton step when `A` is positive definite and the step fits, otherwise `p(λ) = −(A + λI)⁻¹g`
/// with `λ > max(0, −λ_min(A))` and `‖p(λ)‖` within 10% of `Δ`, found by Newton's method on
/// `1/‖p(λ)‖ − 1/Δ` safeguarded by a bracket that a failed factorisation raises; in the hard
/// case (the bracket closes on `−λ_min` with `‖p‖ < Δ`) the step is completed to the boundary
/// along an eigenvector of `λ_min`, found by inverse iteration.
///
/// Returns `None` when `A` or `g` is not finite, or when `Δ` is infinite and `A` is not
/// positive definite (the model has no minimizer).
pub fn trust_region_step(a: &[f64], g: &[f64], n: usize, radius: f64) -> Option<TrustStep> {
    if !a.iter().chain(g).all(|v| v.is_finite()) || radius.is_nan() || radius <= 0.0 {
        return None;
    }
    let diag = (0..n).map(|i| a[i * n + i].abs()).fold(0.0, f64::max);
    let floor = |lambda: f64| PIVOT_FLOOR * (diag + lambda);
    let shifted = |lambda: f64| -> Vec<f64> {
        let mut m = a.to_vec();
        (0..n).for_each(|i| m[i * n + i] += lambda);
        m
    };
    let step_of = |l: &[f64]| -> Vec<f64> {
        let mut p: Vec<f64> = g.iter().map(|v| -v).collect();
        cholesky_substitute(l, &mut p, n);
        p
    };
    let model = |p: &[f64]| -> f64 {
        let mut ap = vec![0.0; n];
        mat_vec(a, p, &mut ap);
        -(0..n).map(|i| p[i] * (g[i] + 0.5 * ap[i])).sum::<f64>()
    };
    let finish = |step: Vec<f64>, newton: bool, convex: bool| {
        let predicted = model(&step);
        Some(TrustStep { step, predicted, newton, convex })
    };
    let length = |p: &[f64]| p.iter().map(|v| v * v).sum::<f64>().sqrt();
    let at_zero = cholesky_with_floor(a, n, floor(0.0));
    let convex = at_zero.is_some();
    if let Some(l) = &at_zero {
        let p = step_of(l);
        if length(&p) <= radius {
            return finish(p, true, true);
        }
    }
    if radius.is_infinite() {
        return None;
    }
    let gnorm = length(g);
    let anorm = norm_1(a, n);
    if gnorm == 0.0 && anorm == 0.0 {
        return finish(vec![0.0; n], false, convex);
    }
    // λ* lies in [lo, hi]: λ* ≥ −λ_min ≥ −min a_ii, ‖p(λ*)‖ = Δ ≥ ‖g‖/(λ* + ‖A‖), and at
    // hi = ‖g‖/Δ + (1 + 10⁻³)‖A‖, A + hi·I ≥ (‖g‖/Δ + 10⁻³‖A‖)I gives ‖p(hi)‖ ≤ Δ.
    let min_diag = (0..n).map(|i| a[i * n + i]).fold(f64::INFINITY, f64::min);
    let mut lo = 0.0_f64.max(-min_diag).max(gnorm / radius - anorm);
    let mut hi = gnorm / radius + (1.0 + 1e-3) * anorm;
    let mut inside: Option<(Vec<f64>, Vec<f64>)> = None;
    let bisect = |lo: f64, hi: f64| (lo * hi).sqrt().max(lo + 0.01 * (hi - lo));
    let mut lambda = match &at_zero {
        // From λ = 0, where ‖p‖ > Δ, Newton's step on 1/‖p(λ)‖ − 1/Δ.
        Some(l) => {
            let p = step_of(l);
            let mut q = p.clone();
            forward_substitute(l, &mut q, n);
            let (pn, qn) = (length(&p), length(&q));
            let next = (pn / qn).powi(2) * (pn - radius) / radius;
            if next > lo && next < hi {
                next
            } else {
                bisect(lo, hi)
            }
        }
        None => bisect(lo, hi),
    };
    for _ in 0..200 {
        if hi - lo <= 1e-12 * hi {
            break;
        }
        let Some(l) = cholesky_with_floor(&shifted(lambda), n, floor(lambda)) else {
            lo = lambda;
            lambda = bisect(lo, hi);
            continue;
        };
        let p = step_of(&l);
        let pn = length(&p);
        if (pn - radius).abs() <= 0.1 * radius {
            return finish(p, false, convex);
        }
        if pn > radius {
            lo = lambda;
        } else {
            hi = lambda;
        }
        let mut q = p.clone();
        forward_substitute(&l, &mut q, n);
        let qn = length(&q);
        let next = lambda + (pn / qn).powi(2) * (pn - radius) / radius;
        if pn < radius {
            inside = Some((p, l));
        }
        lambda = if next > lo && next < hi { next } else { bisect(lo, hi) };
    }
    // The hard case: ‖p(λ)‖ < Δ as λ closes on −λ_min. Complete p along the eigenvector z of
    // λ_min (inverse iteration with the last factor) to the boundary, ‖p + τz‖ = Δ, choosing
    // the root of lower model value.
    let (p, l) = match inside {
        Some(pl) => pl,
        None => {
            let l = cholesky_with_floor(&shifted(hi), n, floor(hi))?;
            (step_of(&l), l)
        }
    };
    let mut z: Vec<f64> = (0..n).map(|i| 1.0 + 0.5 * ((i as f64) * 1.618_033_988_749_895).sin()).collect();
    for _ in 0..8 {
        cholesky_substitute(&l, &mut z, n);
        let zn = length(&z);
        if !zn.is_finite() || zn == 0.0 {
            return finish(p, false, convex);
        }
        z.iter_mut().for_each(|v| *v /= zn);
    }
    let pz: f64 = p.iter().zip(&z).map(|(a, b)| a * b).sum();
    let pn = length(&p);
    let root = (pz * pz + (radius * radius - pn * pn).max(0.0)).sqrt();
    let candidates = [-pz + root, -pz - root];
    let best = candidates
        .iter()
        .map(|tau| p.iter().zip(&z).map(|(pi, zi)| pi + tau * zi).collect::<Vec<f64>>())
        .max_by(|x, y| model(x).total_cmp(&model(y)))?;
    finish(best, false, convex)
}

/// Solves `L y = b` in place for the lower triangular `L`.
fn forward_substitute(l: &[f64], b: &mut [f64], n: usize) {
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// Solves `L Lᵀ x = b` in place.
fn cholesky_substitute(l: &[f64], b: &mut [f64], n: usize) {
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// Factorises `P A = L U` with partial pivoting, or returns `None` when a pivot is zero.
fn lu(a: &[f64], n: usize) -> Option<(Vec<f64>, Vec<usize>)> {
    let mut lu = a.to_vec();
    let mut perm: Vec<usize> = (0..n).collect();
    for k in 0..n {
        let p = (k..n).fold(k, |best, i| if lu[i * n + k].abs() > lu[best * n + k].abs() { i } else { best });
        if lu[p * n + k] == 0.0 || !lu[p * n + k].is_finite() {
            return None;
        }
        if p != k {
            for j in 0..n {
                lu.swap(p * n + j, k * n + j);
            }
            perm.swap(p, k);
        }
        let pivot = lu[k * n + k];
        for i in k + 1..n {
            let m = lu[i * n + k] / pivot;
            lu[i * n + k] = m;
            for j in k + 1..n {
                lu[i * n + j] -= m * lu[k * n + j];
            }
        }
    }
    Some((lu, perm))
}

/// Solves `A x = b` in place from `P A = L U`.
fn lu_substitute(lu: &[f64], perm: &[usize], b: &mut [f64], n: usize) {
    let mut x: Vec<f64> = perm.iter().map(|&p| b[p]).collect();
    for i in 0..n {
        for k in 0..i {
            x[i] -= lu[i * n + k] * x[k];
        }
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            x[i] -= lu[i * n + k] * x[k];
        }
        x[i] /= lu[i * n + i];
    }
    b.copy_from_slice(&x);
}

/// Solves `Aᵀ x = b` in place from `P A = L U`, i.e. `Uᵀ Lᵀ P x = b`.
fn lu_substitute_transposed(lu: &[f64], perm: &[usize], b: &mut [f64], n: usize) {
    let mut z = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            z[i] -= lu[k * n + i] * z[k];
        }
        z[i] /= lu[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            z[i] -= lu[k * n + i] * z[k];
        }
    }
    for (i, &p) in perm.iter().enumerate() {
        b[p] = z[i];
    }
}

/// Factorises `a` by Cholesky when it is symmetric positive definite and by LU with partial
/// pivoting otherwise, and checks that it is well conditioned.
pub fn factor(a: &[f64], n: usize) -> Result<Factor, Cause> {
    if a.len() != n * n || !a.iter().all(|v| v.is_finite()) {
        return Err(Cause::SingularMassMatrix);
    }
    let symmetric = (0..n).all(|i| (0..i).all(|j| a[i * n + j] == a[j * n + i]));
    let f = match symmetric.then(|| cholesky(a, n)).flatten() {
        Some(l) => Factor::Cholesky { n, l },
        None => {
            let (lu, perm) = lu(a, n).ok_or(Cause::SingularMassMatrix)?;
            Factor::Lu { n, lu, perm }
        }
    };
    // Equilibrate: the condition of S A S, s_i = 1/√|a_ii| (1 where a_ii = 0).
    let s: Vec<f64> = (0..n)
        .map(|i| match a[i * n + i].abs() {
            d if d > 0.0 => 1.0 / d.sqrt(),
            _ => 1.0,
        })
        .collect();
    let scaled: Vec<f64> = (0..n * n).map(|k| s[k / n] * a[k] * s[k % n]).collect();
    let rcond = f.rcond(n, norm_1(&scaled, n), &s);
    if rcond.is_nan() || rcond < RCOND_MIN {
        return Err(Cause::SingularMassMatrix);
    }
    Ok(f)
}

/// Solves `A x = b` in place (`b` becomes `x`), trying Cholesky first and falling back to LU.
/// `a` is left as it was. Singular or ill-conditioned matrices give
/// `Err(Cause::SingularMassMatrix)`.
pub fn solve_spd_or_lu(a: &mut [f64], b: &mut [f64], n: usize) -> Result<(), Cause> {
    let f = factor(a, n)?;
    f.solve(b);
    if b.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(Cause::NonFinite)
    }
}

/// Solves `D x = b` in place for the diagonal matrix with diagonal `d`: singular unless
/// every `d_i` is finite and nonzero (the test of [`factor`] on a diagonal matrix).
pub fn solve_diagonal(d: &[f64], b: &mut [f64]) -> Result<(), Cause> {
    // `|m| > |m|·RCOND_MIN` is false exactly for zero, infinite and NaN entries.
    let regular = |m: &f64| m.abs() > m.abs() * RCOND_MIN;
    if !d.iter().all(regular) {
        return Err(Cause::SingularMassMatrix);
    }
    for (x, m) in b.iter_mut().zip(d) {
        *x /= m;
    }
    if b.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(Cause::NonFinite)
    }
}

/// The eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations: eigenvalues and
/// the row-major matrix whose columns are the eigenvectors.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum();
        let total: f64 = m.iter().map(|x| x * x).sum();
        if off <= 1e-32 * total || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * akp - s * akq;
                    m[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * apk - s * aqk;
                    m[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| m[i * n + i]).collect(), v)
}

/// The inverse square root `A^{-1/2}` of a symmetric positive definite matrix (for constant
/// metrics), by Jacobi eigen-decomposition. A matrix with non-finite entries or an eigenvalue
/// not above `RCOND_MIN` times the largest is reported as singular.
pub fn inverse_sqrt(a: &[f64], n: usize) -> Result<Vec<f64>, Cause> {
    if a.len() != n * n || !a.iter().all(|v| v.is_finite()) {
        return Err(Cause::SingularMassMatrix);
    }
    let (values, vectors) = symmetric_eigen(a, n);
    let largest = values.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    if values.iter().any(|&l| l.is_nan() || l <= RCOND_MIN * largest) {
        return Err(Cause::SingularMassMatrix);
    }
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..n).map(|k| vectors[i * n + k] * vectors[j * n + k] / values[k].sqrt()).sum();
        }
    }
    Ok(out)
}

/// `y = A x` for a row-major `n × n` matrix.
pub fn mat_vec(a: &[f64], x: &[f64], y: &mut [f64]) {
    let n = x.len();
    for (i, yi) in y.iter_mut().enumerate() {
        *yi = a[i * n..(i + 1) * n].iter().zip(x).map(|(a, b)| a * b).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn residual(a: &[f64], x: &[f64], b: &[f64]) -> f64 {
        let mut ax = vec![0.0; b.len()];
        mat_vec(a, x, &mut ax);
        ax.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max)
    }

    #[test]
    fn solves_spd_by_cholesky() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        assert!(matches!(factor(&a, 3), Ok(Factor::Cholesky { .. })));
        let b = [1.0, -2.0, 3.0];
        let mut x = b;
        solve_spd_or_lu(&mut a.clone(), &mut x, 3).unwrap();
        assert!(residual(&a, &x, &b) < 1e-14);
    }

    #[test]
    fn solves_indefinite_and_nonsymmetric_by_lu() {
        // Indefinite but nonsingular: legal as a mass matrix.
        let a = [1.0, 0.0, 0.0, -2.0];
        assert!(matches!(factor(&a, 2), Ok(Factor::Lu { .. })));
        let a = [0.0, 2.0, 1.0, 1.0, 0.0, 3.0, 4.0, -1.0, 0.0];
        let b = [1.0, 2.0, 3.0];
        let mut x = b;
        solve_spd_or_lu(&mut a.clone(), &mut x, 3).unwrap();
        assert!(residual(&a, &x, &b) < 1e-14);
        // The transposed solve agrees with an explicit transpose.
        let at = [0.0, 1.0, 4.0, 2.0, 0.0, -1.0, 1.0, 3.0, 0.0];
        let f = factor(&a, 3).unwrap();
        let mut y = b;
        f.solve_transposed(&mut y);
        assert!(residual(&at, &y, &b) < 1e-14);
    }

    #[test]
    fn detects_singular_matrices() {
        let exactly_singular = [1.0, 2.0, 2.0, 4.0];
        assert_eq!(factor(&exactly_singular, 2).unwrap_err(), Cause::SingularMassMatrix);
        let nearly_singular = [1.0, 1.0, 1.0, 1.0 + 1e-14];
        assert_eq!(factor(&nearly_singular, 2).unwrap_err(), Cause::SingularMassMatrix);
        let non_finite = [1.0, f64::NAN, 0.0, 1.0];
        assert_eq!(factor(&non_finite, 2).unwrap_err(), Cause::SingularMassMatrix);
        let zero = [0.0; 9];
        assert_eq!(factor(&zero, 3).unwrap_err(), Cause::SingularMassMatrix);
        // Badly scaled but well conditioned relative to a tolerance of 1e-12 is fine.
        assert!(factor(&[1.0, 0.0, 0.0, 1e-10], 2).is_ok());
        let mut b = [1.0, 1.0];
        assert!(solve_spd_or_lu(&mut [1.0, 2.0, 2.0, 4.0], &mut b, 2).is_err());
    }

    #[test]
    fn units_do_not_make_a_matrix_singular() {
        // A coordinate whose inertia is 1e18 times another's (a term like
        // (46656 + q0)^3 in L): diagonal, so perfectly conditioned once scaled.
        let a = [7e17, 0.0, 0.0, 0.5];
        let f = factor(&a, 2).expect("a diagonal matrix is not singular");
        let mut x = [7e17, 1.0];
        f.solve(&mut x);
        assert!((x[0] - 1.0).abs() < 1e-15 && (x[1] - 2.0).abs() < 1e-15, "{x:?}");
        // Scaled or not, a nearly rank-one matrix still is singular.
        let (big, small) = (1e9, 1e-3);
        let rank_one = [big * big, big * small * (1.0 + 1e-14), big * small * (1.0 + 1e-14), small * small];
        assert_eq!(factor(&rank_one, 2).unwrap_err(), Cause::SingularMassMatrix);
        // Zero on the diagonal: no scaling there, and still singular.
        assert_eq!(factor(&[1e18, 0.0, 0.0, 0.0], 2).unwrap_err(), Cause::SingularMassMatrix);
    }

    #[test]
    fn inverse_square_root_squares_to_the_inverse() {
        let a = [2.0, 0.5, 0.1, 0.5, 1.0, 0.3, 0.1, 0.3, 3.0];
        let s = inverse_sqrt(&a, 3).unwrap();
        // s A s = I.
        for i in 0..3 {
            for j in 0..3 {
                let mut v = 0.0;
                for k in 0..3 {
                    for l in 0..3 {
                        v += s[i * 3 + k] * a[k * 3 + l] * s[l * 3 + j];
                    }
                }
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((v - expected).abs() < 1e-13, "{i}{j}: {v}");
            }
        }
        assert!(inverse_sqrt(&[1.0, 0.0, 0.0, -1.0], 2).is_err());
    }

    /// The exact minimum of `gᵀp + ½pᵀAp` over `‖p‖ ≤ r`, from the eigen-decomposition of `A`:
    /// `p_i = −ĝ_i/(λ_i + λ)` in the eigenbasis with `λ ≥ max(0, −λ_1)` found by bisection, and
    /// in the hard case the rest of the length along the first eigenvector.
    fn exact_model_minimum(a: &[f64], g: &[f64], n: usize, r: f64) -> f64 {
        let (values, vectors) = symmetric_eigen(a, n);
        let gh: Vec<f64> = (0..n).map(|k| (0..n).map(|i| vectors[i * n + k] * g[i]).sum()).collect();
        let min_value = values.iter().cloned().fold(f64::INFINITY, f64::min);
        let length2 = |lam: f64| (0..n).map(|k| (gh[k] / (values[k] + lam)).powi(2)).sum::<f64>();
        let model = |p: &[f64]| (0..n).map(|k| gh[k] * p[k] + 0.5 * values[k] * p[k] * p[k]).sum::<f64>();
        if min_value > 0.0 && length2(0.0) <= r * r {
            let p: Vec<f64> = (0..n).map(|k| -gh[k] / values[k]).collect();
            return model(&p);
        }
        let mut lo = (-min_value).max(0.0);
        let mut hi = lo + 1.0;
        while length2(hi) > r * r {
            hi *= 2.0;
        }
        if length2(lo * (1.0 + 1e-15) + 1e-300) > r * r {
            for _ in 0..300 {
                let mid = 0.5 * (lo + hi);
                if length2(mid) > r * r {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            let p: Vec<f64> = (0..n).map(|k| -gh[k] / (values[k] + hi)).collect();
            return model(&p);
        }
        // The hard case: the components off the lowest eigenvalue at λ = −λ_1, the rest along it.
        let lam = lo;
        let mut p: Vec<f64> =
            (0..n).map(|k| if values[k] > min_value { -gh[k] / (values[k] + lam) } else { 0.0 }).collect();
        let rest = (r * r - p.iter().map(|v| v * v).sum::<f64>()).max(0.0);
        let k1 = (0..n).find(|&k| values[k] == min_value).unwrap();
        p[k1] = rest.sqrt();
        model(&p)
    }

    /// The model value `gᵀp + ½pᵀAp`.
    fn model_value(a: &[f64], g: &[f64], p: &[f64]) -> f64 {
        let mut ap = vec![0.0; p.len()];
        mat_vec(a, p, &mut ap);
        (0..p.len()).map(|i| p[i] * (g[i] + 0.5 * ap[i])).sum()
    }

    #[test]
    fn trust_region_steps_minimize_the_model_on_their_sphere() {
        // Random symmetric matrices, definite and not, against the eigen-decomposition: the
        // step is the exact minimizer of the model within its own length, which lies within
        // 10% of Δ unless it is the Newton step inside the region.
        let mut state = 12345u64;
        let mut uniform = |a: f64, b: f64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            a + (b - a) * ((state >> 11) as f64 / (1u64 << 53) as f64)
        };
        for case in 0..500 {
            let n = 1 + case % 5;
            let mut a = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..=i {
                    let v = uniform(-2.0, 2.0);
                    a[i * n + j] = v;
                    a[j * n + i] = v;
                }
            }
            let g: Vec<f64> = (0..n).map(|_| uniform(-1.0, 1.0)).collect();
            let radius = 10f64.powf(uniform(-3.0, 2.0));
            let tr = trust_region_step(&a, &g, n, radius).unwrap();
            let length = tr.step.iter().map(|v| v * v).sum::<f64>().sqrt();
            if tr.newton {
                assert!(length <= radius && tr.convex, "case {case}");
            } else {
                assert!((length - radius).abs() <= 0.1 * radius, "case {case}: ‖p‖ = {length}, Δ = {radius}");
            }
            let m = model_value(&a, &g, &tr.step);
            assert!((tr.predicted + m).abs() <= 1e-12 * m.abs(), "case {case}");
            let exact = exact_model_minimum(&a, &g, n, length);
            assert!(m <= exact + 1e-9 * exact.abs(), "case {case}: m(p) = {m:e}, exact {exact:e}");
        }
    }

    #[test]
    fn trust_region_steps_in_the_hard_case_follow_negative_curvature() {
        // A = diag(−1, 2), g = (0, 1), Δ = 2: λ = 1, p = (±√(4 − 1/9), −1/3), m = −13/6.
        let a = [-1.0, 0.0, 0.0, 2.0];
        let tr = trust_region_step(&a, &[0.0, 1.0], 2, 2.0).unwrap();
        let m = model_value(&a, &[0.0, 1.0], &tr.step);
        assert!(!tr.newton && !tr.convex);
        assert!((m + 13.0 / 6.0).abs() < 0.05 * 13.0 / 6.0, "m = {m}, step {:?}", tr.step);
        assert!((tr.step[0].abs() - (4.0f64 - 1.0 / 9.0).sqrt()).abs() < 0.2, "{:?}", tr.step);
        // At a stationary point of an indefinite model (g = 0) the step is an eigenvector of the
        // negative eigenvalue: m = −Δ²/2.
        let tr = trust_region_step(&a, &[0.0, 0.0], 2, 2.0).unwrap();
        let m = model_value(&a, &[0.0, 0.0], &tr.step);
        assert!((m + 2.0).abs() < 0.4 && tr.step[1].abs() < 1e-6, "m = {m}, step {:?}", tr.step);
        // A positive definite model at a stationary point: no step.
        let tr = trust_region_step(&[1.0, 0.0, 0.0, 2.0], &[0.0, 0.0], 2, 2.0).unwrap();
        assert!(tr.newton && tr.step == [0.0, 0.0] && tr.predicted == 0.0);
        // No minimizer without a radius.
        assert!(trust_region_step(&a, &[0.0, 1.0], 2, f64::INFINITY).is_none());
    }

    #[test]
    fn cholesky_with_a_floor_refuses_nearly_singular_matrices() {
        let nearly = [1.0, 1.0, 1.0, 1.0 + 1e-14];
        assert!(cholesky(&nearly, 2).is_some());
        assert!(cholesky_with_floor(&nearly, 2, PIVOT_FLOOR).is_none());
        assert!(cholesky_with_floor(&[1.0, 0.5, 0.5, 1.0], 2, PIVOT_FLOOR).is_some());
    }
}
