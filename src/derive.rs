//! Derivation: from a model to its equations of motion (docs/language.md §What lagc derives).
//!
//! Lagrangian models: momenta `p = ∂L/∂v`, mass matrix `M = ∂²L/∂v∂v`,
//! forcing `f = ∂L/∂q − (∂²L/∂v∂q)·v − ∂²L/∂v∂t − ∂R/∂v + Q` so that
//! `M q'' = f`, and the energy `H = v·p − L`.
//!
//! Energy models: the gradient `∇E`, the Hessian `∇²E`, the metric and the
//! flow `θ' = −g⁻¹∇E`.
//!
//! Every result is simplified ([`Arena::simplify`]): expanded, with the
//! Pythagorean and angle-sum identities applied, so that the equations read
//! like a textbook and stay small.

use crate::diag::Diagnostic;
use crate::model::{Method, Model, ModelKind};
use crate::sym::{ExprId, SymKind};

/// The derived equations of a Lagrangian model.
#[derive(Clone, Debug)]
pub struct LagrangianEquations {
    /// `L`, simplified.
    pub lagrangian: ExprId,
    /// `R`, simplified, when given.
    pub dissipation: Option<ExprId>,
    /// `p_i = ∂L/∂q_i'`.
    pub momenta: Vec<ExprId>,
    /// `M_ij = ∂²L/∂q_i'∂q_j'`, row-major rows.
    pub mass_matrix: Vec<Vec<ExprId>>,
    /// `f` of `M q'' = f`.
    pub forcing: Vec<ExprId>,
    /// `H = v·p − L`.
    pub energy: ExprId,
}

/// The derived equations of an energy model.
#[derive(Clone, Debug)]
pub struct EnergyEquations {
    pub energy: ExprId,
    pub gradient: Vec<ExprId>,
    /// `∇²E`, row-major rows.
    pub hessian: Vec<Vec<ExprId>>,
    /// `g(θ)` when the model declares one.
    pub metric: Option<Vec<Vec<ExprId>>>,
    /// `θ' = −g⁻¹∇E`, when the metric is Euclidean or diagonal (otherwise
    /// the linear solve is numeric, in the kernel).
    pub flow: Option<Vec<ExprId>>,
    pub temperature: Option<ExprId>,
}

/// The equations of either kind of model.
#[derive(Clone, Debug)]
pub enum Equations {
    Lagrangian(LagrangianEquations),
    Energy(EnergyEquations),
}

/// Derives the equations of motion. Errors (an identically singular mass
/// matrix, a method that does not fit) carry the span of the statement at
/// fault.
pub fn derive(model: &mut Model) -> Result<Equations, Vec<Diagnostic>> {
    let eq = derive_unchecked(model)?;
    if model.arena.overflowed() {
        return Err(vec![Diagnostic::new(model.spans.main, "the derivation grew too large")
            .label(format!(
                "the equations need more than {} expression nodes or {} operands",
                crate::sym::MAX_NODES,
                crate::sym::MAX_OPERANDS
            ))
            .help("write the model with fewer nested products of sums, or with smaller families")]);
    }
    Ok(eq)
}

fn derive_unchecked(model: &mut Model) -> Result<Equations, Vec<Diagnostic>> {
    match model.kind {
        ModelKind::Lagrangian => {
            let eq = euler_lagrange(model);
            let mut errors = Vec::new();
            if let Some(d) = check_mass_matrix(model, &eq) {
                errors.push(d);
            }
            if model.settings.method == Some(Method::Verlet) {
                if let Err(why) = verlet_fits(model, &eq) {
                    errors.push(
                        Diagnostic::new(
                            model.spans.method.unwrap_or(model.spans.main),
                            "method `verlet` does not fit this model",
                        )
                        .label(why)
                        .help("use `midpoint` or `variational` for a symplectic method on this model"),
                    );
                }
            }
            if errors.is_empty() {
                Ok(Equations::Lagrangian(eq))
            } else {
                Err(errors)
            }
        }
        ModelKind::Energy => Ok(Equations::Energy(gradient_flow(model))),
    }
}

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
    let mass_matrix: Vec<Vec<ExprId>> = momenta
        .iter()
        .map(|&p| {
            v.iter()
                .map(|&vj| {
                    let m = a.diff(p, vj);
                    a.simplify(m)
                })
                .collect()
        })
        .collect();
    let forcing: Vec<ExprId> = (0..q.len())
        .map(|i| {
            let mut terms = vec![a.diff(l, q[i])];
            for j in 0..q.len() {
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
    LagrangianEquations { lagrangian: l, dissipation: r, momenta, mass_matrix, forcing, energy }
}

/// The gradient flow of an energy model.
pub fn gradient_flow(model: &mut Model) -> EnergyEquations {
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
    let hessian: Vec<Vec<ExprId>> = gradient
        .iter()
        .map(|&g| {
            th.iter()
                .map(|&s| {
                    let h = a.diff(g, s);
                    a.simplify(h)
                })
                .collect()
        })
        .collect();
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
    EnergyEquations { energy: e, gradient, hessian, metric, flow, temperature: model.temperature }
}

/// An identically singular mass matrix: singular, by the test the
/// integrators use ([`crate::integrate::linalg::factor`]), at every one of a
/// few random points (positions, velocities and time drawn in [0.3, 1.3]).
fn check_mass_matrix(model: &Model, eq: &LagrangianEquations) -> Option<Diagnostic> {
    let n = eq.mass_matrix.len();
    let entries: Vec<ExprId> = eq.mass_matrix.iter().flatten().copied().collect();
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
        if crate::integrate::linalg::factor(&m, n).is_ok() {
            return None;
        }
    }
    Some(
        Diagnostic::new(model.spans.main, "the mass matrix is singular")
            .label("∂²L/∂q'∂q' has no inverse for any state")
            .help("the Lagrangian must be quadratic (or at least strictly convex) in every velocity; a term linear in q' alone gives no dynamics"),
    )
}

/// Whether `L = ½ v·Mv − V(q)` with constant `M` and no dissipation or
/// force, as Störmer–Verlet needs. `Err` says what is wrong.
pub fn verlet_fits(model: &Model, eq: &LagrangianEquations) -> Result<(), String> {
    let a = &model.arena;
    let not_const = |e: ExprId| a.depends(e, |k| !matches!(k, SymKind::Param(_) | SymKind::Pi));
    if eq.mass_matrix.iter().flatten().any(|&m| not_const(m)) {
        return Err("its mass matrix depends on the state or on time".into());
    }
    if model.dissipation.is_some() || model.forces.iter().any(|&f| !a.is_zero(f)) {
        return Err("it has dissipation or forces".into());
    }
    // With constant M, L − ½v·Mv must not depend on v or t.
    let is_vel_or_time = |k: SymKind| matches!(k, SymKind::Time);
    if a.depends(eq.lagrangian, is_vel_or_time) {
        return Err("its Lagrangian depends on time".into());
    }
    for &p in &eq.momenta {
        // With constant M, p = M·v unless a velocity-dependent potential adds to it.
        if a.depends(p, |k| matches!(k, SymKind::Coord(_))) {
            return Err("its momenta depend on the coordinates (a velocity-dependent potential)".into());
        }
    }
    Ok(())
}
