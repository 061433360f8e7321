//! Forward sensitivities of one trajectory (docs/numerics.md §Sensitivities):
//! the method's steps applied to the state together with its sensitivities
//! `S = ∂y/∂P`, whose right-hand side is `(∂F/∂y) S + ∂F/∂P`. A Runge–Kutta
//! step of this augmented system computes the state exactly as the step of
//! the system alone, and its `S` part is the derivative of that step, so the
//! columns `d(X)/d(P)` are the exact derivatives of the computed trajectory.

use super::Ctx;
use crate::backend::{Kernels, Work};
use crate::integrate::{self, linalg, Cause, Failure, Grid, Observer, OdeSystem, Stats, Stop};
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
    /// The length of `∂A/∂y` in the kernel's output (0 when `A` does not depend on the state).
    matrix_y: usize,
    a: Vec<f64>,
    /// The factored matrix, kept over the run when it is constant.
    factor: Option<linalg::Factor>,
    /// `A S'` of the rows `A⁻¹v`, `n × k`, and one of its columns.
    b: Vec<f64>,
    col: Vec<f64>,
}

impl<'a> Augmented<'a> {
    fn new(k: &'a Kernels, s: &'a Sensitivity, matrix_y: usize) -> Augmented<'a> {
        let n = k.n;
        let d = match k.kind {
            ModelKind::Lagrangian => 2 * n,
            ModelKind::Energy => n,
        };
        Augmented {
            k,
            s,
            work: Work::default(),
            n,
            d,
            np: k.params().len(),
            matrix: s.matrix,
            jac: vec![0.0; k.outputs(Kernel::Jacobian)],
            matrix_y,
            factor: None,
            a: vec![],
            b: vec![],
            col: vec![],
        }
    }

    /// `S' = (∂F/∂y) S + ∂F/∂P` at `(t, y)`, with `f = F(t, y)` already computed:
    /// for `F = A⁻¹v` (`A` being `M` or `g`, or the identity), the rows of
    /// `A⁻¹(∂v/∂y S + ∂v/∂P − Σ_l (∂A/∂y_l · A⁻¹v) S_l − ∂A/∂P · A⁻¹v)`, and for a
    /// Lagrangian the rows `q' = v` before them. One solve per target.
    fn derivative(&mut self, t: f64, y: &[f64], f: &[f64], s: &[f64], ds: &mut [f64]) -> Result<(), Cause> {
        let (n, d, np, kk) = (self.n, self.d, self.np, self.s.len());
        self.k.eval_at(Kernel::Jacobian, t, y, &mut self.jac, &mut self.work);
        if self.jac.iter().any(|x| !x.is_finite()) {
            return Err(Cause::NonFinite);
        }
        // The rows of F that are A⁻¹v start at `off`; a Lagrangian's first n rows are q' = v.
        let off = d - n;
        let accel = &f[off..];
        let (vy, rest) = self.jac.split_at(n * d);
        let (vp, rest) = rest.split_at(n * np);
        // The matrix's derivatives by the state and by the params, each absent when 0.
        let (my, mp) = rest.split_at(self.matrix_y);
        let b = &mut self.b;
        b.clear();
        b.resize(n * kk, 0.0);
        for i in 0..n {
            for z in 0..d {
                let v = vy[i * d + z];
                if v != 0.0 {
                    for c in 0..kk {
                        b[i * kk + c] += v * s[z * kk + c];
                    }
                }
            }
        }
        for (c, t) in self.s.targets.iter().enumerate() {
            if let Target::Param(p) = *t {
                for i in 0..n {
                    b[i * kk + c] += vp[i * np + p];
                    if !mp.is_empty() {
                        let w: f64 = (0..n).map(|j| mp[(i * n + j) * np + p] * accel[j]).sum();
                        b[i * kk + c] -= w;
                    }
                }
            }
        }
        if !my.is_empty() {
            for z in 0..d {
                for i in 0..n {
                    let w: f64 = (0..n).map(|j| my[(i * n + j) * d + z] * accel[j]).sum();
                    for c in 0..kk {
                        b[i * kk + c] -= w * s[z * kk + c];
                    }
                }
            }
        }
        if let Some(m) = self.matrix {
            if self.factor.is_none() || !self.s.constant_matrix {
                self.a.resize(n * n, 0.0);
                self.k.eval_at(m, t, y, &mut self.a, &mut self.work);
                let singular = if m == Kernel::Mass { Cause::SingularMassMatrix } else { Cause::SingularMetric };
                self.factor = Some(linalg::factor(&self.a, n).map_err(|_| singular)?);
            }
            let factor = self.factor.as_ref().expect("factored above");
            for c in 0..kk {
                self.col.clear();
                self.col.extend((0..n).map(|i| b[i * kk + c]));
                factor.solve(&mut self.col);
                for i in 0..n {
                    b[i * kk + c] = self.col[i];
                }
            }
        }
        ds[..off * kk].copy_from_slice(&s[n * kk..(n + off) * kk]);
        ds[off * kk..].copy_from_slice(b);
        Ok(())
    }
}

impl OdeSystem for Augmented<'_> {
    fn dim(&self) -> usize {
        self.d * (1 + self.s.len())
    }

    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
        let d = self.d;
        let (state, s) = y.split_at(d);
        let (f, ds) = dy.split_at_mut(d);
        self.k.rhs(t, state, f, &mut self.work)?;
        self.derivative(t, state, f, s, ds)?;
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
pub(super) fn integrate(ctx: &Ctx<'_>, s: &Sensitivity, y0: &[f64], obs: &mut impl Observer) -> Result<Stats, Failure> {
    let cfg = ctx.cfg;
    let grid = Grid { t0: cfg.t0, t_end: cfg.t_end, dt: cfg.dt, every: cfg.every };
    let mut sys = Augmented::new(ctx.k, s, s.matrix_y);
    let d = sys.d;
    let mut start = y0.to_vec();
    start.extend_from_slice(&s.initial);
    let result = match cfg.method {
        Method::Rk4 => integrate::rk4(&mut sys, &grid, &start, obs),
        Method::Euler => integrate::euler(&mut sys, &grid, &start, obs),
        Method::Verlet => verlet(&mut sys, &grid, y0, obs),
        // The error control on the state alone: the steps are those of the run without sensitivities.
        Method::Dopri5 => integrate::dopri5_controlled(&mut sys, &grid, cfg.rtol, cfg.atol, &start, d, obs),
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

/// Störmer–Verlet of the coordinates `[q, S_q]` and velocities `[v, S_v]`: with the
/// acceleration `[a(q), a_q S_q + a_P]`, the kick–drift–kick step of the augmented
/// system is the derivative of the step of `q, v` (docs/numerics.md § Sensitivities).
fn verlet(sys: &mut Augmented<'_>, grid: &Grid, y0: &[f64], obs: &mut impl Observer) -> Result<Stats, Failure> {
    let (n, kk) = (sys.n, sys.s.len());
    let initial = sys.s.initial.clone();
    let q0: Vec<f64> = y0[..n].iter().chain(&initial[..n * kk]).copied().collect();
    let v0: Vec<f64> = y0[n..].iter().chain(&initial[n * kk..]).copied().collect();
    let (mut y, mut f) = (vec![0.0; 2 * n], vec![0.0; 2 * n]);
    let (mut s, mut ds) = (vec![0.0; 2 * n * kk], vec![0.0; 2 * n * kk]);
    let accel = |t: f64, q: &[f64], a: &mut [f64]| {
        // Forces of q alone (as Verlet requires): the velocities and S_v play no part.
        y[..n].copy_from_slice(&q[..n]);
        sys.k.rhs(t, &y, &mut f, &mut sys.work)?;
        s[..n * kk].copy_from_slice(&q[n..]);
        sys.derivative(t, &y, &f, &s, &mut ds)?;
        a[..n].copy_from_slice(&f[n..]);
        a[n..].copy_from_slice(&ds[n * kk..]);
        Ok(())
    };
    let mut rows = Reorder { obs, n, kk, buf: vec![] };
    integrate::verlet(n * (1 + kk), accel, grid, &q0, &v0, &mut rows).map_err(|mut f| {
        f.state = rows.reorder(&f.state).to_vec();
        f
    })
}

/// Rows `[q, S_q, v, S_v]` of the augmented Verlet step as `[q, v, S_q, S_v]`.
struct Reorder<'o, O> {
    obs: &'o mut O,
    n: usize,
    kk: usize,
    buf: Vec<f64>,
}

impl<O> Reorder<'_, O> {
    /// Fills `buf` with `y` reordered (or as it is, if it is not a whole augmented row).
    fn reorder(&mut self, y: &[f64]) -> &[f64] {
        let (n, m) = (self.n, self.n * (1 + self.kk));
        self.buf.clear();
        if y.len() != 2 * m {
            self.buf.extend_from_slice(y);
            return &self.buf;
        }
        self.buf.extend_from_slice(&y[..n]);
        self.buf.extend_from_slice(&y[m..m + n]);
        self.buf.extend_from_slice(&y[n..m]);
        self.buf.extend_from_slice(&y[m + n..]);
        &self.buf
    }
}

impl<O: Observer> Observer for Reorder<'_, O> {
    fn row(&mut self, t: f64, y: &[f64]) -> Result<(), Stop> {
        self.reorder(y);
        let buf = std::mem::take(&mut self.buf);
        let r = self.obs.row(t, &buf);
        self.buf = buf;
        r
    }

    fn sees_steps(&self) -> bool {
        self.obs.sees_steps()
    }

    fn step(&mut self, t: f64, y: &[f64]) {
        self.reorder(y);
        let buf = std::mem::take(&mut self.buf);
        self.obs.step(t, &buf);
        self.buf = buf;
    }
}
