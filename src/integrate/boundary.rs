//! Boundary-value problems by discrete stationary action (docs/numerics.md §Boundary-value
//! problems): the trajectory `q_0, …, q_N` on `N` equal steps with `q_0` and `q_N` given that
//! makes the midpoint discrete action `Σ h L(½(q_k + q_{k+1}), (q_{k+1} − q_k)/h, t_{k+½})`
//! stationary, forces entering by the discrete Lagrange–d'Alembert principle as in
//! [`super::variational`]. Newton's method solves the discrete Euler–Lagrange equations of all
//! interior points at once with their exact block-tridiagonal Jacobian, factorised in band
//! storage ([`Banded`]) in time linear in `N`.

use super::banded::{Banded, SingularAt};
use super::linalg;
use super::variational::{Stopping, Verdict};
use super::{all_finite, norm, Cause, LagrangianPoint, LagrangianSystem};
use crate::sym::fmt_float;

/// At most this many Newton updates.
pub const NEWTON_MAX_ITERATIONS: usize = 50;

/// The smallest step fraction the line search tries.
const SMALLEST_STEP: f64 = 1.0 / 4096.0;

/// Newton's floor is `1e-10` of its scale (§Variational integrator); the rounding of `v̄`,
/// `ε(|q_k| + |q_{k+1}|)/h` times `|L_vv|`, enters that scale at 64 times its size: weighted
/// by `64ε/1e-10`.
const ROUNDING_WEIGHT: f64 = 64.0 * f64::EPSILON / 1e-10;

/// Inverse iterations that estimate the Jacobian's eigenvalue nearest zero.
const INVERSE_ITERATIONS: usize = 30;

/// The problem: `N` steps from `q(t0) = start` to `q(t_end) = end`.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints<'a> {
    pub t0: f64,
    pub t_end: f64,
    pub steps: usize,
    pub start: &'a [f64],
    pub end: &'a [f64],
}

impl Endpoints<'_> {
    /// The time of node `k`: `t0 + k·h`, the last exactly `t_end`.
    pub fn time(&self, k: usize) -> f64 {
        if k == self.steps {
            self.t_end
        } else {
            self.t0 + k as f64 * self.h()
        }
    }

    /// The step `h = (t_end − t0)/N`.
    pub fn h(&self) -> f64 {
        (self.t_end - self.t0) / self.steps as f64
    }

    /// The straight line from `start` to `end`, node after node.
    pub fn straight_line(&self) -> Vec<f64> {
        let mut q = Vec::with_capacity((self.steps + 1) * self.start.len());
        for k in 0..=self.steps {
            let s = k as f64 / self.steps as f64;
            q.extend(self.start.iter().zip(self.end).map(|(a, b)| a + s * (b - a)));
        }
        q
    }
}

/// A stationary discrete trajectory.
#[derive(Clone, Debug)]
pub struct Trajectory {
    /// The positions `q_k`, node after node (`(N + 1)·n` numbers).
    pub q: Vec<f64>,
    /// The discrete momenta `p_k` (docs/numerics.md §Boundary-value problems).
    pub p: Vec<f64>,
    /// The velocities `v_k` with `L_v(q_k, v_k, t_k) = p_k`.
    pub v: Vec<f64>,
    /// Newton updates taken.
    pub iterations: usize,
    /// The norm of the discrete Euler–Lagrange residual at the solution, and its scale (the
    /// norm of the momenta and impulses it sums).
    pub residual: f64,
    pub scale: f64,
}

/// Why a boundary-value problem has no solution here.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BoundaryError {
    /// Newton's method stopped short of the solution.
    #[error(
        "Newton's method did not converge in {iterations} iterations: the residual of the discrete \
         Euler–Lagrange equations is {} ({} of its scale){}",
        fmt_float(*.residual),
        fmt_e(*.residual / .scale),
        if *.stalled { ", and no step along Newton's direction reduces it" } else { "" }
    )]
    NoConvergence { iterations: usize, residual: f64, scale: f64, stalled: bool },
    /// The Jacobian cannot be factorised: the linearised problem has a nonzero solution
    /// vanishing at both ends, a Jacobi field, so `t_end` is conjugate to `t0` along the path.
    #[error(
        "the Jacobian of the discrete Euler–Lagrange equations is singular (elimination stopped at \
         t = {}): the endpoints are conjugate points along this path, so the path is not isolated",
        fmt_float(*.t)
    )]
    Singular { t: f64 },
    /// The Jacobian at the solution has an eigenvalue within the discretization error of zero:
    /// the endpoints are conjugate to within what `N` steps resolve.
    #[error(
        "the endpoints are conjugate points, or nearly: the Jacobian of the discrete Euler–Lagrange \
         equations at the solution has an eigenvalue within its discretization error of zero ({} of \
         the kinetic scale at its eigenvector's frequency, against an error of {}), so the path is \
         not isolated",
        fmt_e(*.gap),
        fmt_e(*.bound)
    )]
    Conjugate { gap: f64, bound: f64 },
    /// The Lagrangian could not be evaluated (or the velocity not solved) at time `t`, state
    /// `(q, v)`.
    #[error("{cause} at t = {}", fmt_float(*.t))]
    Failed { t: f64, state: Vec<f64>, cause: Cause },
    /// The input is unusable.
    #[error("{0}")]
    Invalid(String),
}

fn fmt_e(x: f64) -> String {
    format!("{x:.1e}")
}

/// The discrete Euler–Lagrange equations of the interior nodes and their Jacobian.
struct Assembly {
    n: usize,
    steps: usize,
    point: LagrangianPoint,
    q_mid: Vec<f64>,
    v_mid: Vec<f64>,
    /// The residual `r_k = p⁺_{k−1} − p⁻_k` of the interior nodes.
    r: Vec<f64>,
    /// Per residual entry, the sum of the magnitudes of the terms it adds, and the rounding
    /// of `v̄` they carry.
    size: Vec<f64>,
    rounding: Vec<f64>,
    jac: Banded,
    /// Per segment, `p⁻_k = L_v − (h/2)(L_q + F)` and `p⁺_k = L_v + (h/2)(L_q + F)`.
    minus: Vec<f64>,
    plus: Vec<f64>,
}

impl Assembly {
    fn new(n: usize, steps: usize) -> Assembly {
        let m = (steps - 1) * n;
        let band = (2 * n).saturating_sub(1);
        Assembly {
            n,
            steps,
            point: LagrangianPoint::new(n),
            q_mid: vec![0.0; n],
            v_mid: vec![0.0; n],
            r: vec![0.0; m],
            size: vec![0.0; m],
            rounding: vec![0.0; m],
            jac: Banded::zeros(m, band, band),
            minus: vec![0.0; steps * n],
            plus: vec![0.0; steps * n],
        }
    }

    /// Evaluates segment `s`'s point at its midpoint; `Err` names the failure.
    fn segment(
        &mut self,
        sys: &mut impl LagrangianSystem,
        ends: &Endpoints,
        q: &[f64],
        s: usize,
    ) -> Result<(), BoundaryError> {
        let (n, h) = (self.n, ends.h());
        let (left, right) = (&q[s * n..(s + 1) * n], &q[(s + 1) * n..(s + 2) * n]);
        for i in 0..n {
            self.q_mid[i] = 0.5 * (left[i] + right[i]);
            self.v_mid[i] = (right[i] - left[i]) / h;
        }
        let t = ends.t0 + (s as f64 + 0.5) * h;
        let failed = |me: &Self, cause| BoundaryError::Failed {
            t,
            state: me.q_mid.iter().chain(&me.v_mid).copied().collect(),
            cause,
        };
        if let Err(cause) = sys.eval(t, &self.q_mid, &self.v_mid, &mut self.point) {
            return Err(failed(self, cause));
        }
        let pt = &self.point;
        for i in 0..n {
            let half_kick = 0.5 * h * (pt.lq[i] + pt.force[i]);
            self.minus[s * n + i] = pt.lv[i] - half_kick;
            self.plus[s * n + i] = pt.lv[i] + half_kick;
        }
        if !all_finite(&self.minus[s * n..(s + 1) * n]) || !all_finite(&self.plus[s * n..(s + 1) * n]) {
            return Err(failed(self, Cause::NonFinite));
        }
        Ok(())
    }

    /// The residual at the nodes `q` (all of them, ends included), with the Jacobian when
    /// `jacobian`; returns the residual's norm, its scale (the momenta and impulses it sums),
    /// and the scale of its rounding floor (those and the rounding of `v̄` they carry).
    fn assemble(
        &mut self,
        sys: &mut impl LagrangianSystem,
        ends: &Endpoints,
        q: &[f64],
        jacobian: bool,
    ) -> Result<(f64, f64, f64), BoundaryError> {
        let (n, steps, h) = (self.n, self.steps, ends.h());
        self.r.iter_mut().for_each(|x| *x = 0.0);
        self.size.iter_mut().for_each(|x| *x = 0.0);
        self.rounding.iter_mut().for_each(|x| *x = 0.0);
        if jacobian {
            self.jac.clear();
        }
        for s in 0..steps {
            self.segment(sys, ends, q, s)?;
            let pt = &self.point;
            // Node s (interior when s ≥ 1) receives −p⁻_s, node s + 1 (when s + 1 < N) p⁺_s.
            let rows = [(s >= 1).then(|| s - 1), (s + 1 < steps).then_some(s)];
            for i in 0..n {
                // The rounding of v̄ = (q_{k+1} − q_k)/h, about ε(|q_k| + |q_{k+1}|)/h, moves L_v by
                // L_vv times it: the floor of the residual grows with |q|/h.
                let rounding: f64 =
                    (0..n).map(|j| pt.lvv[i * n + j].abs() * (q[s * n + j].abs() + q[(s + 1) * n + j].abs()) / h).sum();
                let size = pt.lv[i].abs() + (0.5 * h * (pt.lq[i] + pt.force[i])).abs();
                if let Some(b) = rows[0] {
                    self.r[b * n + i] -= self.minus[s * n + i];
                    self.size[b * n + i] += size;
                    self.rounding[b * n + i] += rounding;
                }
                if let Some(b) = rows[1] {
                    self.r[b * n + i] += self.plus[s * n + i];
                    self.size[b * n + i] += size;
                    self.rounding[b * n + i] += rounding;
                }
            }
            if !jacobian {
                continue;
            }
            // With G = L_q + F: ∂(L_v, G)/∂q̄ = (L_vq, L_qq + F_q), ∂(L_v, G)/∂v̄ = (L_vv, L_vqᵀ + F_v);
            // q̄ moves by ½ of either end, v̄ by ∓1/h.
            for i in 0..n {
                for j in 0..n {
                    let ij = i * n + j;
                    let (lvq, lvv) = (pt.lvq[ij], pt.lvv[ij]);
                    let gq = pt.lqq[ij] + pt.force_q[ij];
                    let gv = pt.lvq[j * n + i] + pt.force_v[ij];
                    let lv_left = 0.5 * lvq - lvv / h;
                    let lv_right = 0.5 * lvq + lvv / h;
                    let g_left = 0.5 * h * (0.5 * gq - gv / h);
                    let g_right = 0.5 * h * (0.5 * gq + gv / h);
                    // Columns: node s (unknown s − 1) on the left, node s + 1 (unknown s) on the right.
                    let cols = [(rows[0], lv_left, g_left), (rows[1], lv_right, g_right)];
                    for (col, dlv, dg) in cols {
                        let Some(c) = col else { continue };
                        if let Some(b) = rows[0] {
                            self.jac.add(b * n + i, c * n + j, -(dlv - dg));
                        }
                        if let Some(b) = rows[1] {
                            self.jac.add(b * n + i, c * n + j, dlv + dg);
                        }
                    }
                }
            }
        }
        let scale = norm(&self.size);
        let floor =
            self.size.iter().zip(&self.rounding).map(|(a, b)| (a + ROUNDING_WEIGHT * b).powi(2)).sum::<f64>().sqrt();
        Ok((norm(&self.r), scale, floor))
    }
}

/// The time of unknown `row`: its node's.
fn time_of_row(ends: &Endpoints, n: usize, row: usize) -> f64 {
    ends.time(row / n.max(1) + 1)
}

/// Solves the boundary-value problem from `guess` (all `(N + 1)·n` node positions; the
/// straight line when `None`; its ends are replaced by the given ones).
///
/// Newton's method with a backtracking line search on the residual's norm, stopping as the
/// variational integrator does at the residual's rounding floor (`1e-10` of its scale at
/// most). At the solution the eigenvalue of the Jacobian nearest zero is estimated by inverse
/// iteration and compared with the discretization error of the Jacobi operator at the
/// frequency of its eigenvector: when it is no larger, the endpoints are (nearly) conjugate and
/// the problem is refused ([`BoundaryError::Conjugate`]).
pub fn stationary_action(
    sys: &mut impl LagrangianSystem,
    ends: &Endpoints,
    guess: Option<&[f64]>,
) -> Result<Trajectory, BoundaryError> {
    let n = sys.n();
    let steps = ends.steps;
    if ends.start.len() != n || ends.end.len() != n {
        return Err(BoundaryError::Invalid(format!(
            "the model has {n} coordinates, the ends {} and {} positions",
            ends.start.len(),
            ends.end.len()
        )));
    }
    if steps == 0 || ends.t_end <= ends.t0 || ends.t_end.is_nan() || !ends.h().is_finite() || ends.h() <= 0.0 {
        return Err(BoundaryError::Invalid(
            "a boundary-value problem needs t_end after t0 and at least one step".into(),
        ));
    }
    let mut q = match guess {
        Some(g) if g.len() == (steps + 1) * n => g.to_vec(),
        Some(g) => {
            return Err(BoundaryError::Invalid(format!(
                "the guess has {} numbers, not {} ({} nodes of {n} coordinates)",
                g.len(),
                (steps + 1) * n,
                steps + 1
            )))
        }
        None => ends.straight_line(),
    };
    q[..n].copy_from_slice(ends.start);
    q[steps * n..].copy_from_slice(ends.end);
    if !all_finite(&q) {
        return Err(BoundaryError::Invalid("the ends and the guess must be finite numbers".into()));
    }
    let m = (steps - 1) * n;
    let mut asm = Assembly::new(n, steps);
    let (mut r_norm, mut scale, mut floor) = asm.assemble(sys, ends, &q, true)?;
    let mut stop = Stopping::new();
    let mut best = q.clone();
    let (mut best_norm, mut best_scale, mut best_floor) = (r_norm, scale, floor);
    let mut iterations = 0;
    let mut step = vec![0.0; m];
    let mut trial = q.clone();
    loop {
        let (is_best, verdict) = stop.check(r_norm, floor);
        if is_best {
            best.copy_from_slice(&q);
            (best_norm, best_scale, best_floor) = (r_norm, scale, floor);
        }
        if verdict != Verdict::Continue || m == 0 {
            break;
        }
        if iterations == NEWTON_MAX_ITERATIONS {
            return Err(BoundaryError::NoConvergence {
                iterations,
                residual: best_norm,
                scale: best_scale,
                stalled: false,
            });
        }
        if let Err(SingularAt { row }) = asm.jac.factor() {
            return Err(BoundaryError::Singular { t: time_of_row(ends, n, row) });
        }
        step.copy_from_slice(&asm.r);
        asm.jac.solve(&mut step);
        iterations += 1;
        // Backtracking: the first fraction of the step that reduces ‖r‖ enough (Armijo).
        let mut alpha = 1.0;
        let accepted = loop {
            trial.copy_from_slice(&q);
            for (x, d) in trial[n..(steps) * n].iter_mut().zip(&step) {
                *x -= alpha * d;
            }
            match asm.assemble(sys, ends, &trial, true) {
                Ok(next) if next.0 <= (1.0 - 1e-4 * alpha) * r_norm => break Some(next),
                // A residual at its rounding floor can only stall.
                Ok(next) if next.0 <= 1e-10 * next.2 && next.0 <= r_norm => break Some(next),
                _ if alpha <= SMALLEST_STEP => break None,
                _ => alpha *= 0.5,
            }
        };
        match accepted {
            Some(next) => {
                q.copy_from_slice(&trial);
                (r_norm, scale, floor) = next;
            }
            None if best_norm <= 1e-10 * best_floor => break,
            None => {
                return Err(BoundaryError::NoConvergence {
                    iterations,
                    residual: best_norm,
                    scale: best_scale,
                    stalled: true,
                })
            }
        }
    }
    let q = best;
    asm.assemble(sys, ends, &q, true)?;
    if m > 0 {
        if let Err(SingularAt { row }) = asm.jac.factor() {
            return Err(BoundaryError::Singular { t: time_of_row(ends, n, row) });
        }
        conjugate_check(sys, ends, &q, &mut asm)?;
    }
    // p_0 = p⁻_0, p_{k+1} = p⁺_k.
    let mut p = Vec::with_capacity((steps + 1) * n);
    p.extend_from_slice(&asm.minus[..n]);
    p.extend_from_slice(&asm.plus);
    let v = velocities(sys, ends, &q, &p)?;
    Ok(Trajectory { q, p, v, iterations, residual: best_norm, scale: best_scale })
}

/// Refuses a solution whose Jacobian (factorised in `asm.jac`) has an eigenvalue `λ` within
/// the discretization error of zero: with the eigenvector `x` (unit norm, zero at the ends),
/// `|λ|/h ≤ K·Σ|Δx|²`, where `K = Σ Δxᵀ L_vv Δx / h²` is the kinetic part of the Jacobi
/// operator's quadratic form at `x` and `Σ|Δx|² ≈ (ωh)²` the relative error `O((ωh)²)` of the
/// midpoint rule at the eigenvector's frequency `ω` (docs/numerics.md §Boundary-value problems).
fn conjugate_check(
    sys: &mut impl LagrangianSystem,
    ends: &Endpoints,
    q: &[f64],
    asm: &mut Assembly,
) -> Result<(), BoundaryError> {
    let (n, steps, h) = (asm.n, asm.steps, ends.h());
    let m = asm.r.len();
    // A fixed start with every frequency in it.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut x: Vec<f64> = (0..m)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64 + 0.5
        })
        .collect();
    let mut lambda = f64::INFINITY;
    for _ in 0..INVERSE_ITERATIONS {
        let size = norm(&x);
        x.iter_mut().for_each(|v| *v /= size);
        let mut y = x.clone();
        asm.jac.solve(&mut y);
        let grown = norm(&y);
        if !(grown.is_finite() && grown > 0.0) {
            return Err(BoundaryError::Singular { t: ends.time(steps / 2) });
        }
        lambda = 1.0 / grown;
        x = y;
    }
    let size = norm(&x);
    x.iter_mut().for_each(|v| *v /= size);
    // x at node k (zero at the ends).
    let at = |k: usize, i: usize| if k == 0 || k == steps { 0.0 } else { x[(k - 1) * n + i] };
    let (mut kinetic, mut roughness) = (0.0, 0.0);
    let mut dx = vec![0.0; n];
    for s in 0..steps {
        asm.segment(sys, ends, q, s)?;
        for (i, d) in dx.iter_mut().enumerate() {
            *d = at(s + 1, i) - at(s, i);
            roughness += *d * *d;
        }
        for i in 0..n {
            for j in 0..n {
                kinetic += dx[i] * asm.point.lvv[i * n + j] * dx[j];
            }
        }
    }
    let kinetic = kinetic.abs() / (h * h);
    let gap = lambda / h / kinetic;
    if lambda / h <= kinetic * roughness {
        return Err(BoundaryError::Conjugate { gap, bound: roughness });
    }
    Ok(())
}

/// The velocities at the nodes: `L_v(q_k, v_k, t_k) = p_k` by Newton's method from the mean of
/// the neighbouring segments' `v̄`, stopping at the residual's rounding floor.
fn velocities(
    sys: &mut impl LagrangianSystem,
    ends: &Endpoints,
    q: &[f64],
    p: &[f64],
) -> Result<Vec<f64>, BoundaryError> {
    let (n, steps, h) = (sys.n(), ends.steps, ends.h());
    let mut v = vec![0.0; (steps + 1) * n];
    let mut point = LagrangianPoint::new(n);
    let mut residual = vec![0.0; n];
    let mut best = vec![0.0; n];
    for k in 0..=steps {
        let t = ends.time(k);
        let (lo, hi) = (k.saturating_sub(1), (k + 1).min(steps));
        let span = (hi - lo) as f64 * h;
        for i in 0..n {
            v[k * n + i] = (q[hi * n + i] - q[lo * n + i]) / span;
        }
        let qk = &q[k * n..(k + 1) * n];
        let pk = &p[k * n..(k + 1) * n];
        let vk = &mut v[k * n..(k + 1) * n];
        let failed =
            |vk: &[f64], cause| BoundaryError::Failed { t, state: qk.iter().chain(vk).copied().collect(), cause };
        let mut stop = Stopping::new();
        let mut done = false;
        for _ in 0..=super::implicit::NEWTON_MAX_ITERATIONS {
            if let Err(cause) = sys.eval(t, qk, vk, &mut point) {
                return Err(failed(vk, cause));
            }
            for i in 0..n {
                residual[i] = point.lv[i] - pk[i];
            }
            if !all_finite(&residual) {
                return Err(failed(vk, Cause::NonFinite));
            }
            let (is_best, verdict) = stop.check(norm(&residual), norm(&point.lv) + norm(pk));
            if is_best {
                best.copy_from_slice(vk);
            }
            if let Err(cause) = linalg::solve_spd_or_lu(&mut point.lvv, &mut residual, n) {
                return Err(failed(vk, cause));
            }
            match verdict {
                Verdict::Converged => {
                    done = true;
                    break;
                }
                Verdict::Floor => {
                    vk.copy_from_slice(&best);
                    done = true;
                    break;
                }
                Verdict::Continue => vk.iter_mut().zip(&residual).for_each(|(x, r)| *x -= r),
            }
        }
        if !done {
            let iterations = super::implicit::NEWTON_MAX_ITERATIONS;
            return Err(failed(vk, Cause::NewtonDiverged { iterations }));
        }
    }
    Ok(v)
}

/// The discrete action `Σ h L(q̄_k, v̄_k, t_{k+½})` of the nodes `q`, with `lagrangian`
/// evaluating `L(q, v, t)`.
pub fn discrete_action(
    ends: &Endpoints,
    n: usize,
    q: &[f64],
    mut lagrangian: impl FnMut(f64, &[f64], &[f64]) -> f64,
) -> f64 {
    let h = ends.h();
    let (mut q_mid, mut v_mid) = (vec![0.0; n], vec![0.0; n]);
    let mut action = 0.0;
    for s in 0..ends.steps {
        for i in 0..n {
            q_mid[i] = 0.5 * (q[s * n + i] + q[(s + 1) * n + i]);
            v_mid[i] = (q[(s + 1) * n + i] - q[s * n + i]) / h;
        }
        action += h * lagrangian(ends.t0 + (s as f64 + 0.5) * h, &q_mid, &v_mid);
    }
    action
}

#[cfg(test)]
#[path = "boundary_tests.rs"]
mod tests;
