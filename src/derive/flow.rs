//! The gradient flow of an energy model, and the derivatives of the energy
//! as written that the methods evaluate.

use super::{EnergyEquations, FlowKernels};
use crate::model::Model;
use crate::sym::ExprId;

/// The gradient flow of an energy model, with the Hessian of the energy as
/// written when `hessian_wanted` is set.
pub fn gradient_flow(model: &mut Model, hessian_wanted: bool) -> EnergyEquations {
    let th = model.var_syms();
    let a = &mut model.arena;
    let e = a.simplify(model.energy.expect("an energy model has an energy"));
    let gradient: Vec<ExprId> = th
        .iter()
        .map(|&s| {
            let g = a.diff(e, s);
            a.simplify(g)
        })
        .collect();
    // Entry (i, j) is zero unless ∂E/∂θ_i contains θ_j: look only at those.
    let hessian = super::sparse_jacobian(a, &gradient, &th);
    let metric = model.metric.clone().map(|g| {
        g.into_iter().map(|row| row.into_iter().map(|x| a.simplify(x)).collect()).collect::<Vec<Vec<ExprId>>>()
    });
    let n = th.len();
    let diagonal = metric.as_ref().is_none_or(|g| (0..n).all(|i| (0..n).all(|j| i == j || a.is_zero(g[i][j]))));
    let flow = diagonal.then(|| {
        (0..n)
            .map(|i| {
                let ng = a.neg(gradient[i]);
                let f = match &metric {
                    Some(g) => a.div(ng, g[i][i]),
                    None => ng,
                };
                a.simplify(f)
            })
            .collect()
    });
    // After the display forms, so that the expansion budget is spent as before.
    let kernel = flow_kernels(model, hessian_wanted);
    let power = model.arena.int(0);
    EnergyEquations {
        energy: e,
        gradient,
        hessian,
        metric,
        flow,
        temperature: model.temperature,
        divergence: None,
        power,
        kernel,
        jacobian: None,
        metric_derivatives: None,
    }
}

/// The derivatives of the energy as written: `E`, `∇E`, `−∇E`, `g`, and `∇²E`
/// when asked.
fn flow_kernels(model: &mut Model, hessian: bool) -> FlowKernels {
    let th = model.var_syms();
    let a = &mut model.arena;
    let energy = model.energy.expect("an energy model has an energy");
    let gradient: Vec<ExprId> = th.iter().map(|&s| a.diff(energy, s)).collect();
    let zero = a.int(0);
    let hessian = hessian.then(|| {
        gradient
            .iter()
            .flat_map(|&g| {
                let free = a.free_symbols(&[g]);
                th.iter().map(|&s| if free.binary_search(&s).is_ok() { a.diff(g, s) } else { zero }).collect::<Vec<_>>()
            })
            .collect()
    });
    // The kernels' gradient: sums over data with their bodies factored (after the Hessian,
    // which is taken of the gradient as it comes).
    let gradient: Vec<ExprId> = gradient.iter().map(|&g| a.factor_sums(g)).collect();
    let descent = gradient.iter().map(|&g| a.neg(g)).collect();
    let n = th.len();
    let diagonal_metric =
        model.metric.as_ref().is_some_and(|g| (0..n).all(|i| (0..n).all(|j| i == j || a.is_zero(g[i][j]))));
    let metric = model.metric.as_ref().map(|g| g.iter().flatten().copied().collect());
    // ∇₁W: the pair energy's gradient in the first particle's state, a function of (x, x~).
    let pair_gradient = model.interaction.as_ref().map(|w| th.iter().map(|&s| a.diff(w.w, s)).collect());
    let pair = model.interaction.as_ref().map(|w| w.w);
    FlowKernels { energy, gradient, descent, metric, diagonal_metric, hessian, pair_gradient, pair }
}
