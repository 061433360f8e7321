//! Checks of the derived equations that need numbers: an identically
//! singular mass matrix.

use super::LagrangianEquations;
use crate::diag::Diagnostic;
use crate::model::Model;
use crate::sym::{ExprId, SymKind};

/// An identically singular mass matrix: singular, by the test the
/// integrators use ([`crate::integrate::symband::factor`] in the matrix's band, or
/// [`crate::integrate::linalg::solve_diagonal`] for a diagonal one), at every
/// one of a few random points (positions, velocities and time drawn in [0.3, 1.3]).
pub(super) fn singular_mass_matrix(model: &Model, eq: &LagrangianEquations) -> Option<Diagnostic> {
    let n = eq.mass_matrix.len();
    if n == 0 {
        return None;
    }
    let at = |i: usize, j: usize| eq.mass_matrix[i][j];
    let shape = super::MatrixShape::of(&model.arena, n, at);
    let entries: Vec<ExprId> = if eq.diagonal_mass {
        (0..n).map(|i| eq.mass_matrix[i][i]).collect()
    } else {
        shape.band_entries(at, eq.mass_matrix[0][0])
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
            crate::integrate::symband::factor(&m, n, shape.band, true).is_ok()
        };
        if regular {
            return None;
        }
        // A matrix of the parameters alone is the same at every point.
        if shape.constant {
            break;
        }
    }
    Some(
        Diagnostic::new(model.spans.main, "the mass matrix is singular")
            .label("∂²L/∂q'∂q' has no inverse for any state")
            .help("the Lagrangian must be quadratic (or at least strictly convex) in every velocity; a term linear in q' alone gives no dynamics"),
    )
}

/// An indexed model's constant mass matrix that is singular at the parameters' values: a
/// zero on its diagonal, or (a band) a failed factorisation.
pub(super) fn singular_indexed(model: &Model, eq: &LagrangianEquations) -> Option<Diagnostic> {
    let ix = eq.indexed.as_ref()?;
    let env = model.env();
    let entries: Vec<ExprId> = ix.mass.iter().map(|s| s.expr).collect();
    let m = model.arena.eval_many(&entries, &env);
    let label = match m.iter().position(|x| *x == 0.0 || !x.is_finite()) {
        Some(bad) if ix.diagonal() => {
            format!("∂²L/∂q'∂q' is {} for `{}`", m[bad], model.vars[ix.mass[bad].rows.start].name)
        }
        _ if !ix.diagonal() => {
            let n = model.vars.len();
            let band = ix.band_values(&model.arena, &env);
            crate::integrate::symband::factor(&band, n, ix.band(), true).err()?;
            format!("∂²L/∂q'∂q' is constant and has no inverse (a band of {} diagonals)", 2 * ix.band() + 1)
        }
        _ => return None,
    };
    Some(
        Diagnostic::new(model.spans.main, "the mass matrix is singular")
            .label(label)
            .help("the Lagrangian must be quadratic (or at least strictly convex) in every velocity; a term linear in q' alone gives no dynamics"),
    )
}
