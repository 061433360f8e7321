//! The general Lagrangian as a first-order system: `y = (q, v)`, `q' = v`, `M v' = f` with
//! `M = L_vv` and `f = L_q − L_vq·v − L_vt + F`, `F = −R_v + Q`.

use super::linalg;
use super::{Cause, LagrangianPoint, LagrangianSystem, OdeSystem};

/// A [`LagrangianSystem`] seen as the first-order system `(q, v)' = (v, M⁻¹f)`.
///
/// The mass matrix is solved by Cholesky with an LU fallback (an indefinite but nonsingular
/// `M` is legal); a singular `M` gives [`Cause::SingularMassMatrix`]. The Jacobian, which
/// would need third derivatives of `L`, is taken by central finite differences of the
/// right-hand side.
pub struct FirstOrderLagrangian<S> {
    sys: S,
    point: LagrangianPoint,
    scratch: (Vec<f64>, Vec<f64>, Vec<f64>),
}

/// Wraps a Lagrangian model so that `rk4`, `euler`, `dopri5` and `midpoint` can run it.
pub fn lagrangian_system<S: LagrangianSystem>(sys: S) -> FirstOrderLagrangian<S> {
    let n = sys.n();
    FirstOrderLagrangian {
        sys,
        point: LagrangianPoint::new(n),
        scratch: (vec![0.0; 2 * n], vec![0.0; 2 * n], vec![0.0; 2 * n]),
    }
}

impl<S: LagrangianSystem> FirstOrderLagrangian<S> {
    /// The wrapped model.
    pub fn inner(&mut self) -> &mut S {
        &mut self.sys
    }
}

impl<S: LagrangianSystem> OdeSystem for FirstOrderLagrangian<S> {
    fn dim(&self) -> usize {
        2 * self.sys.n()
    }

    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
        let n = self.sys.n();
        let (q, v) = y.split_at(n);
        self.sys.eval(t, q, v, &mut self.point)?;
        let p = &self.point;
        let (dq, dv) = dy.split_at_mut(n);
        dq.copy_from_slice(v);
        for (i, dvi) in dv.iter_mut().enumerate() {
            let lvq_v: f64 = (0..n).map(|j| p.lvq[i * n + j] * v[j]).sum();
            let lvt = p.lvt.get(i).copied().unwrap_or(0.0);
            *dvi = p.lq[i] - lvq_v - lvt + p.force[i];
        }
        let mut mass = p.lvv.clone();
        linalg::solve_spd_or_lu(&mut mass, dv, n)
    }

    fn jacobian(&mut self, t: f64, y: &[f64], jac: &mut [f64]) -> Result<(), Cause> {
        let m = y.len();
        let (mut yp, mut fp, mut fm) = std::mem::take(&mut self.scratch);
        yp.copy_from_slice(y);
        for j in 0..m {
            let step = f64::EPSILON.cbrt() * y[j].abs().max(1.0);
            yp[j] = y[j] + step;
            self.rhs(t, &yp, &mut fp)?;
            yp[j] = y[j] - step;
            self.rhs(t, &yp, &mut fm)?;
            yp[j] = y[j];
            for i in 0..m {
                jac[i * m + j] = (fp[i] - fm[i]) / (2.0 * step);
            }
        }
        self.scratch = (yp, fp, fm);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::explicit::tests::OscillatorLagrangian;
    use super::super::{rk4, Grid};
    use super::*;

    /// `L = ½ a v² − ½ q²` with a mass `a` that can be zero.
    struct Massive(f64);
    impl LagrangianSystem for Massive {
        fn n(&self) -> usize {
            1
        }
        fn eval(&mut self, _t: f64, q: &[f64], v: &[f64], out: &mut LagrangianPoint) -> Result<(), Cause> {
            out.lv[0] = self.0 * v[0];
            out.lq[0] = -q[0];
            out.lvv[0] = self.0;
            out.lqq[0] = -1.0;
            Ok(())
        }
    }

    #[test]
    fn singular_mass_matrix_is_reported_with_time_and_state() {
        let mut rows = Vec::new();
        let grid = Grid { t0: 0.5, t_end: 1.0, dt: 0.1, every: 1 };
        let err = rk4(&mut lagrangian_system(Massive(0.0)), &grid, &[1.0, 2.0], &mut rows).unwrap_err();
        assert_eq!(err.cause, Cause::SingularMassMatrix);
        assert_eq!((err.t, err.state), (0.5, vec![1.0, 2.0]));
        assert_eq!(err.cause.to_string(), "singular mass matrix");
        // A negative mass is indefinite but legal.
        rk4(&mut lagrangian_system(Massive(-1.0)), &grid, &[1.0, 2.0], &mut rows).unwrap();
    }

    #[test]
    fn finite_difference_jacobian_matches_the_exact_one() {
        let mut sys = lagrangian_system(OscillatorLagrangian { damping: 0.2 });
        let mut jac = [0.0; 4];
        sys.jacobian(0.0, &[0.3, -0.7], &mut jac).unwrap();
        let exact = [0.0, 1.0, -1.0, -0.2];
        for (a, b) in jac.iter().zip(exact) {
            assert!((a - b).abs() < 1e-9, "{jac:?}");
        }
    }
}
