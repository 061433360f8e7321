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

    /// Hager's estimate of the reciprocal condition number `1/(‖B‖₁‖B⁻¹‖₁)` of
    /// `B = S A S`, `S = diag(s)`, given `‖B‖₁`. With `s_i = 1/√|a_ii|` this is
    /// the condition of `A` with its units taken out: a diagonal `A` is well
    /// conditioned however different its entries.
    fn rcond(&self, n: usize, norm_b: f64, s: &[f64]) -> f64 {
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
            self.solve(&mut y);
            unscale(&mut y);
            estimate = y.iter().map(|v| v.abs()).sum::<f64>();
            let mut z: Vec<f64> = y.iter().map(|v| if *v >= 0.0 { 1.0 } else { -1.0 }).collect();
            unscale(&mut z);
            self.solve_transposed(&mut z);
            unscale(&mut z);
            let (j, zmax) = z.iter().enumerate().fold(
                (0, 0.0_f64),
                |(bj, bv), (i, v)| {
                    if v.abs() > bv {
                        (i, v.abs())
                    } else {
                        (bj, bv)
                    }
                },
            );
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
}

/// The 1-norm (largest column sum) of a matrix.
fn norm_1(a: &[f64], n: usize) -> f64 {
    (0..n).map(|j| (0..n).map(|i| a[i * n + j].abs()).sum::<f64>()).fold(0.0, f64::max)
}

/// Factorises a symmetric matrix as `L Lᵀ`, or returns `None` when it is not (numerically)
/// positive definite. Only the lower triangle of `a` is read.
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= l[j * n + k] * l[j * n + k];
        }
        if !d.is_finite() || d <= 0.0 {
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
}
