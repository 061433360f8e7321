//! Checks of the derived equations that need numbers: an identically
//! singular mass matrix.

use super::LagrangianEquations;
use crate::diag::Diagnostic;
use crate::model::Model;
use crate::sym::{ExprId, SymKind};

/// An identically singular mass matrix: singular, by the test the
/// integrators use ([`crate::integrate::linalg::factor`], or
/// [`crate::integrate::linalg::solve_diagonal`] for a diagonal one), at every
/// one of a few random points (positions, velocities and time drawn in [0.3, 1.3]).
pub(super) fn singular_mass_matrix(model: &Model, eq: &LagrangianEquations) -> Option<Diagnostic> {
    let n = eq.mass_matrix.len();
    let entries: Vec<ExprId> = if eq.diagonal_mass {
        (0..n).map(|i| eq.mass_matrix[i][i]).collect()
    } else {
        eq.mass_matrix.iter().flatten().copied().collect()
    };
    let mut env = model.env();
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        0.3 + (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    for _ in 0..3 {
        for (s, sym) in model.arena.symbols() {
            if matches!(sym.kind, SymKind::Coord(_) | SymKind::Velocity(_) | SymKind::Time) {
                env.set(s, next());
            }
        }
        let m = model.arena.eval_many(&entries, &env);
        let regular = if eq.diagonal_mass {
            crate::integrate::linalg::solve_diagonal(&m, &mut vec![0.0; n]).is_ok()
        } else {
            crate::integrate::linalg::factor(&m, n).is_ok()
        };
        if regular {
            return None;
        }
    }
    Some(
        Diagnostic::new(model.spans.main, "the mass matrix is singular")
            .label("∂²L/∂q'∂q' has no inverse for any state")
            .help("the Lagrangian must be quadratic (or at least strictly convex) in every velocity; a term linear in q' alone gives no dynamics"),
    )
}

/// A zero on the constant diagonal of an indexed model's mass matrix, at the
/// parameters' values.
pub(super) fn singular_indexed(model: &Model, eq: &LagrangianEquations) -> Option<Diagnostic> {
    let ix = eq.indexed.as_ref()?;
    let env = model.env();
    let entries: Vec<ExprId> = ix.mass.iter().map(|s| s.expr).collect();
    let m = model.arena.eval_many(&entries, &env);
    let bad = m.iter().position(|x| *x == 0.0 || !x.is_finite())?;
    let row = ix.mass[bad].rows.start;
    Some(
        Diagnostic::new(model.spans.main, "the mass matrix is singular")
            .label(format!("∂²L/∂q'∂q' is {} for `{}`", m[bad], model.vars[row].name))
            .help("the Lagrangian must be quadratic (or at least strictly convex) in every velocity; a term linear in q' alone gives no dynamics"),
    )
}
