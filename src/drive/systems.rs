//! The model's kernels seen through the integrators' traits.

use crate::backend::{Kernels, Work};
use crate::batch::Draws;
use crate::integrate::{Cause, GradientSystem, LagrangianPoint, LagrangianSystem, OdeSystem};
use crate::plan::Kernel;

/// `y' = F(t, y)` through the model's kernels.
pub(super) struct FirstOrder<'k> {
    pub k: &'k Kernels,
    pub work: Work,
    /// Minibatches, drawn before each step.
    pub draws: Option<&'k mut Draws>,
}

impl OdeSystem for FirstOrder<'_> {
    fn dim(&self) -> usize {
        match self.k.kind {
            crate::ModelKind::Lagrangian => 2 * self.k.n,
            crate::ModelKind::Energy => self.k.n,
        }
    }
    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
        self.k.rhs(t, y, dy, &mut self.work)
    }
    /// No method of a run needs `∂F/∂y`: the implicit methods solve with the Lagrangian
    /// point ([`PointSystem`]).
    fn jacobian(&mut self, _t: f64, _y: &[f64], _jac: &mut [f64]) -> Result<(), Cause> {
        Err(Cause::Invalid("the first-order system of a run has no Jacobian".into()))
    }
    fn begin_step(&mut self, _t: f64) {
        if let Some(d) = self.draws.as_deref_mut() {
            d.next();
        }
    }
}

/// The Lagrangian point of the variational integrator and the canonical midpoint rule.
pub(super) struct PointSystem<'k> {
    pub k: &'k Kernels,
    pub work: Work,
}

impl LagrangianSystem for PointSystem<'_> {
    fn n(&self) -> usize {
        self.k.n
    }
    fn eval(&mut self, t: f64, q: &[f64], v: &[f64], p: &mut LagrangianPoint) -> Result<(), Cause> {
        self.k.point(t, q, v, p, &mut self.work)
    }
    fn band(&self) -> Option<usize> {
        self.k.point_band
    }
}

/// An energy model's `E`, `∇E`, `∇²E` and `g`.
pub(super) struct EnergySystem<'k> {
    pub k: &'k Kernels,
    pub work: Work,
    /// Minibatches, drawn before each step.
    pub draws: Option<&'k mut Draws>,
}

impl GradientSystem for EnergySystem<'_> {
    fn dim(&self) -> usize {
        self.k.n
    }
    fn energy(&mut self, t: f64, theta: &[f64]) -> f64 {
        let mut e = [0.0];
        self.k.eval_at(Kernel::Energy, t, theta, &mut e, &mut self.work);
        e[0]
    }
    fn gradient(&mut self, t: f64, theta: &[f64], grad: &mut [f64]) {
        self.k.eval_at(Kernel::Gradient, t, theta, grad, &mut self.work);
    }
    fn hessian(&mut self, t: f64, theta: &[f64], hess: &mut [f64]) {
        self.k.eval_at(Kernel::Hessian, t, theta, hess, &mut self.work);
    }
    fn metric(&mut self, t: f64, theta: &[f64], g: &mut [f64]) -> bool {
        let has = self.k.has(Kernel::Metric);
        if has {
            self.k.eval_at(Kernel::Metric, t, theta, g, &mut self.work);
        }
        has
    }
    fn begin_step(&mut self, _t: f64) {
        if let Some(d) = self.draws.as_deref_mut() {
            d.next();
        }
    }
}
