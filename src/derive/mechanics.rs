//! The Euler–Lagrange equations of a Lagrangian model, and the derivatives
//! the implicit methods evaluate.

use super::LagrangianEquations;
use crate::model::Model;
use crate::sym::{ExprId, SymId};

/// The Euler–Lagrange equations of a Lagrangian model.
pub fn euler_lagrange(model: &mut Model) -> LagrangianEquations {
    let q = model.var_syms();
    let v = model.velocity_syms();
    let time = model.time;
    let a = &mut model.arena;
    let l0 = model.lagrangian.expect("a Lagrangian model has a Lagrangian");
    let l = a.simplify(l0);
    let r = model.dissipation.map(|r| a.simplify(r));
    let momenta: Vec<ExprId> = v
        .iter()
        .map(|&vi| {
            let p = a.diff(l, vi);
            a.simplify(p)
        })
        .collect();
    // Entry (i, j) or term j is zero unless p_i contains v_j or q_j: look only
    // at the symbols each p_i contains (a lattice's p_i holds one velocity).
    let zero = a.int(0);
    let free: Vec<Vec<SymId>> = momenta.iter().map(|&p| a.free_symbols(&[p])).collect();
    let mass_matrix = super::sparse_jacobian(a, &momenta, &v);
    let coordinate: std::collections::HashMap<SymId, usize> = q.iter().enumerate().map(|(j, &s)| (s, j)).collect();
    let forcing: Vec<ExprId> = (0..q.len())
        .map(|i| {
            let mut terms = vec![a.diff(l, q[i])];
            // Only the coordinates p_i contains add terms (p_i is small; L is not).
            let mut js: Vec<usize> = free[i].iter().filter_map(|s| coordinate.get(s).copied()).collect();
            js.sort_unstable();
            for j in js {
                let d = a.diff(momenta[i], q[j]);
                let vj = a.sym(v[j]);
                let t = a.mul(&[d, vj]);
                terms.push(a.neg(t));
            }
            let dt = a.diff(momenta[i], time);
            terms.push(a.neg(dt));
            if let Some(r) = r {
                let rv = a.diff(r, v[i]);
                terms.push(a.neg(rv));
            }
            terms.push(model.forces[i]);
            let f = a.add(&terms);
            a.simplify(f)
        })
        .collect();
    let mut h_terms: Vec<ExprId> = (0..q.len())
        .map(|i| {
            let vi = a.sym(v[i]);
            a.mul(&[vi, momenta[i]])
        })
        .collect();
    h_terms.push(a.neg(l));
    let h = a.add(&h_terms);
    let energy = a.simplify(h);
    let n = mass_matrix.len();
    let diagonal_mass = (0..n).all(|i| (0..n).all(|j| i == j || a.is_zero(mass_matrix[i][j])));
    LagrangianEquations {
        diagonal_mass,
        lagrangian: l,
        dissipation: r,
        momenta,
        mass_matrix,
        forcing,
        energy,
        temperature: None,
        friction: None,
        power: zero,
        point: None,
        jacobian: None,
        indexed: None,
    }
}

/// `L_v, L_q, F, L_vv, L_vq, L_qq, F_v, F_q, L_vt`, in the order
/// [`crate::integrate::LagrangianPoint`] stores them, with `F = −∂R/∂v + Q`.
pub(super) fn lagrangian_point(model: &mut Model, e: &LagrangianEquations) -> Vec<ExprId> {
    let q = model.var_syms();
    let v = model.velocity_syms();
    let n = q.len();
    let a = &mut model.arena;
    let lq: Vec<ExprId> = q.iter().map(|&s| a.diff(e.lagrangian, s)).collect();
    let force: Vec<ExprId> = (0..n)
        .map(|i| match e.dissipation {
            Some(r) => {
                let rv = a.diff(r, v[i]);
                a.sub(model.forces[i], rv)
            }
            None => model.forces[i],
        })
        .collect();
    let mut out = e.momenta.clone();
    out.extend(&lq);
    out.extend(&force);
    out.extend(e.mass_matrix.iter().flatten());
    // Entry (i, j) is zero unless row i contains symbol j: a lattice's rows hold a few
    // symbols each, so only those are differentiated (`n²` calls cost seconds at 4,096).
    let zero = a.int(0);
    let mut jac = |rows: &[ExprId], by: &[SymId], out: &mut Vec<ExprId>| {
        for &r in rows {
            let free = a.free_symbols(&[r]);
            for &s in by {
                out.push(if free.binary_search(&s).is_ok() { a.diff(r, s) } else { zero });
            }
        }
    };
    jac(&e.momenta, &q, &mut out);
    jac(&lq, &q, &mut out);
    jac(&force, &v, &mut out);
    jac(&force, &q, &mut out);
    for &p in &e.momenta {
        out.push(a.diff(p, model.time));
    }
    out
}
