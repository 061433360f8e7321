//! The stochastic and thermodynamic side of a model (docs/numerics.md
//! §Underdamped Langevin, §Riemannian Langevin, §Work and heat): the friction
//! matrix of a Lagrangian model with a temperature, the divergence of the
//! inverse of a state-dependent metric, and the power of the explicit time
//! dependence and of the forces, whose integral is the work.

use crate::diag::Diagnostic;
use crate::model::Model;
use crate::sym::{Arena, ExprId, SymKind};

/// `Γ = ∂²R/∂q'∂q'`, row-major rows. It must not depend on the velocities:
/// the fluctuation–dissipation relation that makes `exp(−H/T)` stationary
/// needs a friction linear in them.
pub(super) fn friction(model: &mut Model, dissipation: ExprId) -> Result<Vec<Vec<ExprId>>, Diagnostic> {
    let v = model.velocity_syms();
    let a = &mut model.arena;
    let rv: Vec<ExprId> = v.iter().map(|&vi| a.diff(dissipation, vi)).collect();
    let rows = super::sparse_jacobian(a, &rv, &v);
    let velocity_dependent = rows.iter().flatten().any(|&g| a.depends(g, |k| matches!(k, SymKind::Velocity(_))));
    if velocity_dependent {
        let span = model.spans.dissipation.unwrap_or(model.spans.main);
        return Err(Diagnostic::new(span, "with a temperature, the dissipation must be quadratic in the velocities")
            .label("∂²R/∂q'∂q' depends on the velocities here")
            .help(
                "the fluctuation–dissipation relation needs a friction force linear in q': \
                 write R = ½ q'·Γ(q) q', e.g. `dissipation = 1/2*gamma*x'^2`",
            ));
    }
    Ok(rows)
}

/// The power of a Lagrangian model's explicit time dependence and forces,
/// `∂H/∂t + Q·q' = −∂L/∂t + Q·q'`, whose integral is the work.
pub(super) fn lagrangian_power(model: &mut Model, lagrangian: ExprId) -> ExprId {
    let v = model.velocity_syms();
    let a = &mut model.arena;
    let lt = a.diff(lagrangian, model.time);
    let mut terms = vec![a.neg(lt)];
    for (&f, &vi) in model.forces.iter().zip(&v) {
        if !a.is_zero(f) {
            let vs = a.sym(vi);
            terms.push(a.mul(&[f, vs]));
        }
    }
    a.add(&terms)
}

/// The power of an energy model's explicit time dependence, `∂E/∂t`.
pub(super) fn energy_power(model: &mut Model) -> ExprId {
    let e = model.energy.expect("an energy model has an energy");
    model.arena.diff(e, model.time)
}

/// The most state variables of a non-diagonal state-dependent metric whose
/// inverse is derived symbolically (by cofactors).
pub const MAX_COFACTOR_DIM: usize = 3;

/// `(∇·g⁻¹)_i = Σ_j ∂(g⁻¹)_ij/∂θ_j`, the drift that keeps `exp(−E/T)`
/// stationary under Riemannian Langevin dynamics with a metric `g(θ)`, or
/// `None` when `g` does not depend on the state.
pub(super) fn metric_divergence(model: &mut Model) -> Result<Option<Vec<ExprId>>, Diagnostic> {
    let Some(g) = model.metric.clone() else { return Ok(None) };
    let th = model.var_syms();
    let n = th.len();
    let a = &mut model.arena;
    if !g.iter().flatten().any(|&x| depends_on_state(a, x)) {
        return Ok(None);
    }
    let diagonal = (0..n).all(|i| (0..n).all(|j| i == j || a.is_zero(g[i][j])));
    if !diagonal && n > MAX_COFACTOR_DIM {
        let span = model.spans.metric.unwrap_or(model.spans.main);
        return Err(Diagnostic::new(span, "the divergence of this metric's inverse is not derived")
            .label(format!("a full {n}×{n} metric that depends on the state"))
            .help(format!(
                "Riemannian Langevin dynamics derives g⁻¹ symbolically: give a diagonal metric, or at most \
                 {MAX_COFACTOR_DIM} state variables"
            )));
    }
    let inverse = symbolic_inverse(a, &g, diagonal);
    let divergence = (0..n)
        .map(|i| {
            let terms: Vec<ExprId> = (0..n).map(|j| a.diff(inverse[i][j], th[j])).collect();
            let d = a.add(&terms);
            a.simplify(d)
        })
        .collect();
    Ok(Some(divergence))
}

fn depends_on_state(a: &Arena, x: ExprId) -> bool {
    a.depends(x, |k| !matches!(k, SymKind::Param(_) | SymKind::Pi | SymKind::Time))
}

/// `g⁻¹` of a diagonal matrix, or by cofactors of one of at most
/// [`MAX_COFACTOR_DIM`] rows.
fn symbolic_inverse(a: &mut Arena, g: &[Vec<ExprId>], diagonal: bool) -> Vec<Vec<ExprId>> {
    let n = g.len();
    let zero = a.int(0);
    let one = a.int(1);
    if diagonal {
        return (0..n).map(|i| (0..n).map(|j| if i == j { a.div(one, g[i][i]) } else { zero }).collect()).collect();
    }
    // The cofactor C_ij, the determinant of g without row i and column j, signed.
    let minor = |a: &mut Arena, skip_r: usize, skip_c: usize| -> ExprId {
        let rows: Vec<usize> = (0..n).filter(|&r| r != skip_r).collect();
        let cols: Vec<usize> = (0..n).filter(|&c| c != skip_c).collect();
        match rows.len() {
            0 => one,
            1 => g[rows[0]][cols[0]],
            _ => {
                let p = a.mul(&[g[rows[0]][cols[0]], g[rows[1]][cols[1]]]);
                let q = a.mul(&[g[rows[0]][cols[1]], g[rows[1]][cols[0]]]);
                a.sub(p, q)
            }
        }
    };
    let mut cof = vec![vec![zero; n]; n];
    for (i, row) in cof.iter_mut().enumerate() {
        for (j, c) in row.iter_mut().enumerate() {
            let m = minor(a, i, j);
            *c = if (i + j) % 2 == 0 { m } else { a.neg(m) };
        }
    }
    let det_terms: Vec<ExprId> = (0..n).map(|j| a.mul(&[g[0][j], cof[0][j]])).collect();
    let det = a.add(&det_terms);
    // (g⁻¹)_ij = C_ji / det.
    (0..n).map(|i| (0..n).map(|j| a.div(cof[j][i], det)).collect()).collect()
}
