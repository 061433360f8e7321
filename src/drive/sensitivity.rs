//! Forward sensitivities of one trajectory (docs/numerics.md §Sensitivities):
//! the method's steps applied to the state together with its sensitivities
//! `S = ∂y/∂P`, whose right-hand side is `(∂F/∂y) S + ∂F/∂P`. A Runge–Kutta
//! step of this augmented system computes the state exactly as the step of
//! the system alone, and its `S` part is the derivative of that step, so the
//! columns `d(X)/d(P)` are the exact derivatives of the computed trajectory.

use super::Ctx;
use crate::backend::{Kernels, Work};
use crate::integrate::{self, linalg, Cause, Failure, Grid, Observer, OdeSystem, Stats};
use crate::model::{Method, ModelKind};
use crate::plan::Kernel;
use crate::sensitivity::{Sensitivity, Target};

/// The state and its sensitivities as one first-order system: `[y, S]` with
/// `S` row-major `d × k`.
struct Augmented<'a> {
    k: &'a Kernels,
    s: &'a Sensitivity,
    work: Work,
    /// Coordinates or state variables, the state's length, the params.
    n: usize,
    d: usize,
    np: usize,
    /// The system's matrix (`M` or `g`), if any.
    matrix: Option<Kernel>,
    jac: Vec<f64>,
    a: Vec<f64>,
    /// `∂F/∂y` (`d × d`) and `∂F/∂P` (`d × k`).
    fy: Vec<f64>,
    fp: Vec<f64>,
    col: Vec<f64>,
}

impl<'a> Augmented<'a> {
    fn new(k: &'a Kernels, s: &'a Sensitivity) -> Augmented<'a> {
        let n = k.n;
        let d = match k.kind {
            ModelKind::Lagrangian => 2 * n,
            ModelKind::Energy => n,
        };
        let matrix = [Kernel::Mass, Kernel::Metric].into_iter().find(|&m| k.has(m));
        Augmented {
            k,
            s,
            work: Work::default(),
            n,
            d,
            np: k.params().len(),
            matrix,
            jac: vec![0.0; k.outputs(Kernel::Jacobian)],
            a: vec![],
            fy: vec![0.0; d * d],
            fp: vec![0.0; d * s.len()],
            col: vec![0.0; n],
        }
    }

    /// `∂F/∂y` and `∂F/∂P` at `(t, y)`, with `f = F(t, y)` already computed.
    fn jacobians(&mut self, t: f64, y: &[f64], f: &[f64]) -> Result<(), Cause> {
        let (n, d, np, kk) = (self.n, self.d, self.np, self.s.len());
        self.k.eval_at(Kernel::Jacobian, t, y, &mut self.jac, &mut self.work);
        if self.jac.iter().any(|x| !x.is_finite()) {
            return Err(Cause::NonFinite);
        }
        // The rows of F that are M⁻¹f (or g⁻¹(−∇E)) start at `off`; a Lagrangian's first
        // n rows are q' = v.
        let off = d - n;
        let accel = &f[off..];
        self.fy.fill(0.0);
        self.fp.fill(0.0);
        for i in 0..off {
            self.fy[i * d + n + i] = 1.0;
        }
        let (vy, rest) = self.jac.split_at(n * d);
        let (vp, rest) = rest.split_at(n * np);
        let (my, mp) = rest.split_at(rest.len().min(n * n * d));
        let factor = match self.matrix {
            Some(m) => {
                self.a.resize(n * n, 0.0);
                self.k.eval_at(m, t, y, &mut self.a, &mut self.work);
                let singular = if m == Kernel::Mass { Cause::SingularMassMatrix } else { Cause::SingularMetric };
                Some(linalg::factor(&self.a, n).map_err(|_| singular)?)
            }
            None => None,
        };
        // Column z of ∂(A⁻¹v)/∂z = A⁻¹(∂v/∂z − (∂A/∂z) A⁻¹v), for z a state entry or a target.
        let columns = d + kk;
        for z in 0..columns {
            // `None`: the state entry z; `Some(p)`: the param p.
            let param = match z.checked_sub(d).map(|c| self.s.targets[c]) {
                None => None,
                Some(Target::Init(_)) => continue,
                Some(Target::Param(p)) => Some(p),
            };
            let dv = |i: usize| param.map_or_else(|| vy[i * d + z], |p| vp[i * np + p]);
            let dm = |r: usize| param.map_or_else(|| my[r * d + z], |p| mp[r * np + p]);
            for i in 0..n {
                let mut c = dv(i);
                if factor.is_some() {
                    for j in 0..n {
                        c -= dm(i * n + j) * accel[j];
                    }
                }
                self.col[i] = c;
            }
            if let Some(f) = &factor {
                f.solve(&mut self.col);
            }
            for i in 0..n {
                if z < d {
                    self.fy[(off + i) * d + z] = self.col[i];
                } else {
                    self.fp[(off + i) * kk + (z - d)] = self.col[i];
                }
            }
        }
        Ok(())
    }
}

impl OdeSystem for Augmented<'_> {
    fn dim(&self) -> usize {
        self.d * (1 + self.s.len())
    }

    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
        let (d, kk) = (self.d, self.s.len());
        let (state, s) = y.split_at(d);
        let (f, ds) = dy.split_at_mut(d);
        self.k.rhs(t, state, f, &mut self.work)?;
        self.jacobians(t, state, f)?;
        // S' = (∂F/∂y) S + ∂F/∂P.
        for i in 0..d {
            for c in 0..kk {
                let mut x = self.fp[i * kk + c];
                for j in 0..d {
                    x += self.fy[i * d + j] * s[j * kk + c];
                }
                ds[i * kk + c] = x;
            }
        }
        if ds.iter().all(|x| x.is_finite()) {
            Ok(())
        } else {
            Err(Cause::NonFinite)
        }
    }

    fn jacobian(&mut self, _t: f64, _y: &[f64], _jac: &mut [f64]) -> Result<(), Cause> {
        Err(Cause::Invalid("sensitivities are computed by explicit steps only".into()))
    }
}

/// Integrates the trajectory from `y0` with its sensitivities; rows carry the
/// state then `S`, which `Rows` writes after every other column.
pub(super) fn integrate(
    ctx: &Ctx<'_>,
    s: &Sensitivity,
    y0: &[f64],
    obs: &mut impl Observer,
) -> Result<Stats, Failure> {
    let cfg = ctx.cfg;
    let grid = Grid { t0: cfg.t0, t_end: cfg.t_end, dt: cfg.dt, every: cfg.every };
    let mut sys = Augmented::new(ctx.k, s);
    let d = sys.d;
    let mut start = y0.to_vec();
    start.extend_from_slice(&s.initial);
    let result = match cfg.method {
        Method::Rk4 => integrate::rk4(&mut sys, &grid, &start, obs),
        Method::Euler => integrate::euler(&mut sys, &grid, &start, obs),
        m => Err(Failure {
            t: cfg.t0,
            state: y0.to_vec(),
            cause: Cause::Invalid(format!("sensitivities are not differentiated through `{m}`")),
        }),
    };
    // A failure names the state, not its sensitivities.
    result.map_err(|mut f| {
        f.state.truncate(d);
        f
    })
}
