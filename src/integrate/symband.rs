//! Symmetric band matrices: the mass matrix or metric whose entries vanish more than `b`
//! places off the diagonal (a lattice with coupled kinetic energy, a finite-element string),
//! solved in time `O(n·b²)` and memory `O(n·b)` instead of `O(n³)` and `O(n²)`
//! (docs/numerics.md §Structure of the mass matrix).
//!
//! A matrix is given by its upper band, row by row: row `i` holds `a_ij` for
//! `j = i ..= i + b`, at `i·(b + 1) + (j − i)`; entries past the last column are ignored.
//! A dense symmetric matrix is the band `b = n − 1`. The factorisation is Cholesky
//! `A = UᵀU` in the same layout when every pivot exceeds `1e-12·max|a_ij|`, and otherwise
//! LU with partial pivoting in band storage ([`super::banded::Banded`]), whose factors stay
//! within the band widened by `b`; after LU, or whenever asked, the reciprocal condition
//! number of the matrix scaled to a unit diagonal is estimated as for a dense matrix
//! ([`super::linalg::factor`]) and a value below `1e-12` is a singular matrix.

use super::banded::Banded;
use super::linalg::{rcond_scaled, RCOND_MIN};
use super::Cause;

/// A pivot is accepted by Cholesky when it exceeds this fraction of the largest entry (the
/// test of the kernels' unrolled Cholesky, `crate::jit::runtime::SINGULAR_RTOL`).
pub const PIVOT_RTOL: f64 = 1e-12;

/// The number of stored entries of an `n × n` symmetric matrix of half-bandwidth `b`.
pub fn band_len(n: usize, b: usize) -> usize {
    n * (b + 1)
}

/// The index of entry `(i, j)`, `i ≤ j ≤ i + b`, in the upper band's layout.
pub fn band_index(b: usize, i: usize, j: usize) -> usize {
    debug_assert!(i <= j && j <= i + b);
    i * (b + 1) + (j - i)
}

/// A factorised symmetric band matrix.
#[derive(Clone, Debug)]
pub enum BandFactor {
    /// `A = UᵀU`, `U` upper triangular with the band of `A`, in its layout; `inv` holds the
    /// reciprocals of its diagonal, so that a solve multiplies where it would divide.
    Cholesky { n: usize, b: usize, u: Vec<f64>, inv: Vec<f64> },
    /// `P A = L U` with partial pivoting.
    Lu(Banded),
}

impl BandFactor {
    /// The order of the matrix.
    pub fn n(&self) -> usize {
        match self {
            BandFactor::Cholesky { n, .. } => *n,
            BandFactor::Lu(m) => m.m,
        }
    }

    /// Overwrites `x` (holding `b`) with the solution of `A x = b`.
    pub fn solve(&self, x: &mut [f64]) {
        match self {
            BandFactor::Cholesky { n, b, u, inv } => cholesky_solve(u, inv, *n, *b, x),
            BandFactor::Lu(m) => m.solve(x),
        }
    }
}

/// Factorises the symmetric band matrix `a` (order `n`, half-bandwidth `b`, the layout of the
/// module). `check_condition` asks for the condition estimate after a successful Cholesky too
/// (it is always made after LU). `Err(Cause::SingularMassMatrix)` for a non-finite entry, a
/// breakdown or an ill-conditioned matrix.
pub fn factor(a: &[f64], n: usize, b: usize, check_condition: bool) -> Result<BandFactor, Cause> {
    let b = b.min(n.saturating_sub(1));
    let w = b + 1;
    debug_assert!(a.len() >= band_len(n, b));
    let entry = |i: usize, j: usize| a[i * w + (j - i)];
    let Some(tol) = pivot_tolerance(a, n, b) else { return Err(Cause::SingularMassMatrix) };
    let cholesky = {
        let mut u = a[..band_len(n, b)].to_vec();
        let mut inv = vec![0.0; n];
        cholesky_in_place(&mut u, &mut inv, n, b, tol).then_some(BandFactor::Cholesky { n, b, u, inv })
    };
    let (f, check) = match cholesky {
        Some(f) => (f, check_condition),
        None => {
            let mut m = Banded::zeros(n, b, b);
            for i in 0..n {
                for j in i..(i + w).min(n) {
                    m.add(i, j, entry(i, j));
                    if j != i {
                        m.add(j, i, entry(i, j));
                    }
                }
            }
            m.factor().map_err(|_| Cause::SingularMassMatrix)?;
            (BandFactor::Lu(m), true)
        }
    };
    if check {
        // The condition of S A S, s_i = 1/√|a_ii| (1 where a_ii = 0), as for a dense matrix.
        let s: Vec<f64> = (0..n)
            .map(|i| match entry(i, i).abs() {
                d if d > 0.0 => 1.0 / d.sqrt(),
                _ => 1.0,
            })
            .collect();
        // ‖S A S‖₁ by columns: column j holds rows j − b ..= j + b.
        let norm = (0..n)
            .map(|j| {
                (j.saturating_sub(b)..(j + w).min(n))
                    .map(|i| (s[i] * entry(i.min(j), i.max(j)) * s[j]).abs())
                    .sum::<f64>()
            })
            .fold(0.0, f64::max);
        // A is symmetric, so a solve with Aᵀ is a solve with A.
        let rcond = rcond_scaled(n, norm, &s, &|v| f.solve(v), &|v| f.solve(v));
        if rcond.is_nan() || rcond < RCOND_MIN {
            return Err(Cause::SingularMassMatrix);
        }
    }
    Ok(f)
}

/// The smallest pivot Cholesky accepts, `PIVOT_RTOL` times the largest `|a_ij|` of the band,
/// or `None` when an entry is not finite.
pub fn pivot_tolerance(a: &[f64], n: usize, b: usize) -> Option<f64> {
    let w = b + 1;
    let mut largest = 0.0_f64;
    for i in 0..n {
        for &v in &a[i * w..i * w + w.min(n - i)] {
            if !v.is_finite() {
                return None;
            }
            largest = largest.max(v.abs());
        }
    }
    Some(PIVOT_RTOL * largest)
}

/// Cholesky `A = UᵀU` in place in the band layout, right-looking (LAPACK's `dpbtf2`): row
/// `i` of `U` is finished, then subtracted from the rows below it, so that every inner loop
/// runs along contiguous rows. `inv` receives the reciprocals of the diagonal. `false` when a
/// pivot is not above `tol` (the matrix is then partly overwritten).
pub fn cholesky_in_place(u: &mut [f64], inv: &mut [f64], n: usize, b: usize, tol: f64) -> bool {
    let w = b + 1;
    for i in 0..n {
        let d = u[i * w];
        if d.is_nan() || d <= tol {
            return false;
        }
        let d = d.sqrt();
        let r = 1.0 / d;
        u[i * w] = d;
        inv[i] = r;
        let m = b.min(n - 1 - i);
        let (head, tail) = u.split_at_mut((i + 1) * w);
        let row = &mut head[i * w..i * w + m + 1];
        for v in &mut row[1..] {
            *v *= r;
        }
        // Row i + s of the trailing block loses u_{i,i+s}·u_{i,l} at column l ≥ i + s.
        for s in 1..=m {
            let uis = row[s];
            let below = &mut tail[(s - 1) * w..(s - 1) * w + (m - s + 1)];
            for (x, &uil) in below.iter_mut().zip(&row[s..=m]) {
                *x -= uis * uil;
            }
        }
    }
    true
}

/// Overwrites `x` with `A⁻¹x` from the factor of [`cholesky_in_place`].
pub fn cholesky_solve(u: &[f64], inv: &[f64], n: usize, b: usize, x: &mut [f64]) {
    let w = b + 1;
    // Uᵀ z = x: once z_i is known, it leaves the later rows (column-oriented, contiguous).
    for i in 0..n {
        let zi = x[i] * inv[i];
        x[i] = zi;
        let m = b.min(n - 1 - i);
        for (xj, &uij) in x[i + 1..=i + m].iter_mut().zip(&u[i * w + 1..=i * w + m]) {
            *xj -= uij * zi;
        }
    }
    // U x = z, row by row.
    for i in (0..n).rev() {
        let m = b.min(n - 1 - i);
        let s: f64 = u[i * w + 1..=i * w + m].iter().zip(&x[i + 1..=i + m]).map(|(u, x)| u * x).sum();
        x[i] = (x[i] - s) * inv[i];
    }
}

/// The half-bandwidth of a symmetric `n × n` matrix given as `is_zero(i, j)` for `i < j`: the
/// largest `j − i` of an entry that is not identically zero.
pub fn half_bandwidth(n: usize, is_zero: impl Fn(usize, usize) -> bool) -> usize {
    (0..n).map(|i| (i + 1..n).rev().find(|&j| !is_zero(i, j)).map_or(0, |j| j - i)).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrate::linalg;

    /// The upper band of a row-major dense symmetric matrix.
    fn band_of(a: &[f64], n: usize, b: usize) -> Vec<f64> {
        let mut out = vec![0.0; band_len(n, b)];
        for i in 0..n {
            for j in i..(i + b + 1).min(n) {
                out[band_index(b, i, j)] = a[i * n + j];
            }
        }
        out
    }

    /// A symmetric matrix of half-bandwidth `b` with entries from a fixed sequence; `shift`
    /// is added to the diagonal.
    fn matrix(n: usize, b: usize, shift: f64) -> Vec<f64> {
        let mut a = vec![0.0; n * n];
        let mut seed = 12345u64;
        for i in 0..n {
            for j in i..(i + b + 1).min(n) {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let v = (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                a[i * n + j] = v;
                a[j * n + i] = v;
            }
            a[i * n + i] += shift;
        }
        a
    }

    fn check_against_dense(n: usize, b: usize, shift: f64, cholesky: bool) {
        let a = matrix(n, b, shift);
        let rhs: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
        let f = factor(&band_of(&a, n, b), n, b, true).expect("regular");
        assert_eq!(matches!(f, BandFactor::Cholesky { .. }), cholesky);
        let mut x = rhs.clone();
        f.solve(&mut x);
        let mut y = rhs.clone();
        linalg::solve_spd_or_lu(&mut a.clone(), &mut y, n).unwrap();
        for (u, v) in x.iter().zip(&y) {
            assert!((u - v).abs() <= 1e-12 * (1.0 + v.abs()), "{u} against {v}");
        }
        // And the residual.
        for i in 0..n {
            let r: f64 = (0..n).map(|j| a[i * n + j] * x[j]).sum::<f64>() - rhs[i];
            assert!(r.abs() < 1e-12, "residual {r}");
        }
    }

    #[test]
    fn positive_definite_bands_agree_with_the_dense_solver() {
        for (n, b) in [(1, 0), (5, 1), (40, 1), (40, 3), (17, 16), (30, 29)] {
            check_against_dense(n, b, 2.0 * (b as f64 + 1.0), true);
        }
    }

    #[test]
    fn indefinite_bands_go_to_lu() {
        for (n, b) in [(6, 1), (40, 2), (12, 11)] {
            check_against_dense(n, b, 0.05, false);
        }
    }

    #[test]
    fn singular_and_non_finite_bands_are_refused() {
        // [[1, 1], [1, 1]] in band storage, b = 1.
        assert!(factor(&[1.0, 1.0, 1.0, 0.0], 2, 1, true).is_err());
        assert!(factor(&[1.0, f64::NAN, 1.0, 0.0], 2, 1, true).is_err());
        // Badly conditioned: pivots 1 and 3e-12 pass Cholesky's test (1e-12), the condition
        // estimate (about 7.5e-13) does not.
        let eps = 3e-12;
        let a = [1.0, 1.0, 1.0 + eps, 0.0];
        assert!(factor(&a, 2, 1, false).is_ok());
        assert!(factor(&a, 2, 1, true).is_err());
    }

    #[test]
    fn bandwidth_is_the_farthest_nonzero_entry() {
        assert_eq!(half_bandwidth(5, |_, _| true), 0);
        assert_eq!(half_bandwidth(5, |i, j| j - i > 1), 1);
        assert_eq!(half_bandwidth(5, |i, j| !(i == 0 && j == 4)), 4);
    }
}
