//! Banded matrices: Gaussian elimination with partial pivoting in band storage, in time and
//! memory linear in the order (docs/numerics.md §Boundary-value problems). The Newton matrix of
//! a boundary-value problem is block tridiagonal; with row pivoting its factors stay within the
//! band widened by the lower bandwidth.

/// A square matrix of order `m` with `kl` diagonals below the main one and `ku` above, stored
/// by columns with room for the fill-in of pivoting: entry `(i, j)` with
/// `−(kl + ku) ≤ i − j ≤ kl` at `j·ld + kl + ku + i − j`, `ld = 2·kl + ku + 1`.
#[derive(Clone, Debug)]
pub struct Banded {
    pub m: usize,
    pub kl: usize,
    pub ku: usize,
    ld: usize,
    values: Vec<f64>,
    /// The row swapped with row `j` at elimination step `j`.
    pivots: Vec<usize>,
}

/// A pivot that vanishes against the matrix's largest entry: the matrix is singular to
/// working precision. `row` is where elimination stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SingularAt {
    pub row: usize,
}

/// A pivot at most this fraction of the largest entry is taken as zero.
const PIVOT_RTOL: f64 = 1e-14;

impl Banded {
    /// The zero matrix of order `m` with bandwidths `kl` and `ku`.
    pub fn zeros(m: usize, kl: usize, ku: usize) -> Banded {
        let ld = 2 * kl + ku + 1;
        Banded { m, kl, ku, ld, values: vec![0.0; ld * m], pivots: vec![0; m] }
    }

    /// The bytes a matrix of order `m` with bandwidths `kl`, `ku` holds.
    pub fn bytes(m: usize, kl: usize, ku: usize) -> u64 {
        (m as u64).saturating_mul((2 * kl + ku + 1) as u64 * 8 + 8)
    }

    /// Sets every entry to zero.
    pub fn clear(&mut self) {
        self.values.iter_mut().for_each(|v| *v = 0.0);
    }

    fn at(&self, i: usize, j: usize) -> usize {
        j * self.ld + self.kl + self.ku + i - j
    }

    /// Adds `x` to entry `(i, j)`, which must lie within the band.
    pub fn add(&mut self, i: usize, j: usize, x: f64) {
        debug_assert!(i <= j + self.kl && j <= i + self.ku, "({i}, {j}) outside the band");
        let k = self.at(i, j);
        self.values[k] += x;
    }

    /// Entry `(i, j)` before factorisation; zero outside the band.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        if i > j + self.kl || j > i + self.ku {
            0.0
        } else {
            self.values[self.at(i, j)]
        }
    }

    /// `y = A·x` before factorisation.
    pub fn mul(&self, x: &[f64], y: &mut [f64]) {
        for (i, yi) in y.iter_mut().enumerate().take(self.m) {
            let lo = i.saturating_sub(self.kl);
            let hi = (i + self.ku).min(self.m - 1);
            *yi = (lo..=hi).map(|j| self.values[self.at(i, j)] * x[j]).sum();
        }
    }

    /// Factorises `P·A = L·U` in place. A pivot at most `1e-14` times the largest entry of `A`
    /// is a singular matrix.
    pub fn factor(&mut self) -> Result<(), SingularAt> {
        let (m, kl, ku) = (self.m, self.kl, self.ku);
        let largest = self.values.iter().fold(0.0_f64, |a, v| a.max(v.abs()));
        if !largest.is_finite() {
            return Err(SingularAt { row: 0 });
        }
        for j in 0..m {
            let last = (j + kl).min(m - 1);
            let mut p = j;
            for i in j + 1..=last {
                if self.values[self.at(i, j)].abs() > self.values[self.at(p, j)].abs() {
                    p = i;
                }
            }
            self.pivots[j] = p;
            let pivot = self.values[self.at(p, j)];
            if pivot.is_nan() || pivot.abs() <= PIVOT_RTOL * largest {
                return Err(SingularAt { row: j });
            }
            let right = (j + kl + ku).min(m - 1);
            if p != j {
                for c in j..=right {
                    let (a, b) = (self.at(j, c), self.at(p, c));
                    self.values.swap(a, b);
                }
            }
            for i in j + 1..=last {
                let l = self.values[self.at(i, j)] / pivot;
                let k = self.at(i, j);
                self.values[k] = l;
                if l != 0.0 {
                    for c in j + 1..=right {
                        let u = self.values[self.at(j, c)];
                        let k = self.at(i, c);
                        self.values[k] -= l * u;
                    }
                }
            }
        }
        Ok(())
    }

    /// Solves `A·x = b` in place after [`Banded::factor`].
    pub fn solve(&self, b: &mut [f64]) {
        let (m, kl, ku) = (self.m, self.kl, self.ku);
        for j in 0..m {
            b.swap(j, self.pivots[j]);
            let bj = b[j];
            let last = (j + kl).min(m - 1);
            for (i, bi) in b.iter_mut().enumerate().take(last + 1).skip(j + 1) {
                *bi -= self.values[self.at(i, j)] * bj;
            }
        }
        for j in (0..m).rev() {
            b[j] /= self.values[self.at(j, j)];
            let bj = b[j];
            let first = j.saturating_sub(kl + ku);
            for (i, bi) in b.iter_mut().enumerate().take(j).skip(first) {
                *bi -= self.values[self.at(i, j)] * bj;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudo-random number in `[-1, 1)` from a 64-bit state.
    fn next(s: &mut u64) -> f64 {
        *s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    #[test]
    fn solves_against_a_dense_elimination() {
        let mut s = 7;
        for (m, kl, ku) in [(1, 0, 0), (7, 1, 1), (12, 3, 3), (20, 2, 5), (9, 4, 0)] {
            let mut a = Banded::zeros(m, kl, ku);
            let mut dense = vec![0.0; m * m];
            for i in 0..m {
                for j in i.saturating_sub(kl)..=(i + ku).min(m - 1) {
                    // Small diagonals, so that rows must be swapped.
                    let x = next(&mut s) + if i == j { 0.01 } else { 0.0 };
                    a.add(i, j, x);
                    dense[i * m + j] = x;
                }
            }
            let x_true: Vec<f64> = (0..m).map(|_| next(&mut s)).collect();
            let mut b = vec![0.0; m];
            a.mul(&x_true, &mut b);
            let mut d = dense.clone();
            let mut bd = b.clone();
            crate::integrate::linalg::solve_spd_or_lu(&mut d, &mut bd, m).unwrap();
            a.factor().unwrap();
            a.solve(&mut b);
            let err = b.iter().zip(&x_true).fold(0.0_f64, |e, (x, y)| e.max((x - y).abs()));
            let err_dense = bd.iter().zip(&x_true).fold(0.0_f64, |e, (x, y)| e.max((x - y).abs()));
            assert!(err < 1e-10 && err_dense < 1e-10, "m = {m}: {err:e}, dense {err_dense:e}");
        }
    }

    #[test]
    fn a_zero_pivot_is_singular() {
        // [[1, 0, 0], [1, 1, 1], [0, 1, 1]]: the second row is the first plus the third.
        let mut a = Banded::zeros(3, 1, 1);
        for (i, j, x) in [(0, 0, 2.0), (0, 1, 1.0), (1, 0, 1.0), (1, 1, 1.0), (1, 2, 1.0), (2, 1, 1.0), (2, 2, 1.0)] {
            a.add(i, j, x);
        }
        assert!(a.clone().factor().is_ok());
        let mut b = Banded::zeros(3, 1, 1);
        for (i, j, x) in [(0, 0, 1.0), (1, 0, 1.0), (1, 1, 1.0), (1, 2, 1.0), (2, 1, 1.0), (2, 2, 1.0)] {
            b.add(i, j, x);
        }
        assert_eq!(b.factor(), Err(SingularAt { row: 2 }));
    }
}
