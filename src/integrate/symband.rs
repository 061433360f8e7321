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
const PIVOT_RTOL: f64 = 1e-12;

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
            BandFactor::Cholesky { n, b, u, inv } => {
                let (n, b) = (*n, *b);
                // Uᵀ z = rhs, then U x = z.
                for i in 0..n {
                    let mut s = x[i];
                    for k in i.saturating_sub(b)..i {
                        s -= u[band_index(b, k, i)] * x[k];
                    }
                    x[i] = s * inv[i];
                }
                for i in (0..n).rev() {
                    let row = &u[i * (b + 1)..(i + 1) * (b + 1)];
                    let mut s = x[i];
                    for (d, &uij) in row.iter().enumerate().take((n - i).min(b + 1)).skip(1) {
                        s -= uij * x[i + d];
                    }
                    x[i] = s * inv[i];
                }
            }
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
    let mut largest = 0.0_f64;
    for i in 0..n {
        for j in i..(i + w).min(n) {
            let v = entry(i, j);
            if !v.is_finite() {
                return Err(Cause::SingularMassMatrix);
            }
            largest = largest.max(v.abs());
        }
    }
    let tol = PIVOT_RTOL * largest;
    let cholesky = (|| {
        let mut u = vec![0.0; band_len(n, b)];
        for i in 0..n {
            for j in i..(i + w).min(n) {
                let mut s = entry(i, j);
                for k in j.saturating_sub(b)..i {
                    s -= u[band_index(b, k, i)] * u[band_index(b, k, j)];
                }
                if j == i {
                    if s.is_nan() || s <= tol {
                        return None;
                    }
                    u[band_index(b, i, i)] = s.sqrt();
                } else {
                    u[band_index(b, i, j)] = s / u[band_index(b, i, i)];
                }
            }
        }
        let inv = (0..n).map(|i| 1.0 / u[band_index(b, i, i)]).collect();
        Some(BandFactor::Cholesky { n, b, u, inv })
    })();
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
