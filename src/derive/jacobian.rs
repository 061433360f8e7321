//! The Jacobians of the first-order system `y' = F(t, y; p)` that forward
//! sensitivities need (docs/numerics.md §Sensitivities): the derivatives of
//! its vector (`f` of `M q'' = f`, or `−∇E`) and of its matrix (`M` or `g`)
//! with respect to the state and to every parameter, and the derivatives of
//! the initial values with respect to the parameters. The derivative of
//! `M⁻¹f` or `g⁻¹(−∇E)` is formed from them numerically, by one solve per
//! column: `∂(M⁻¹f) = M⁻¹(∂f − (∂M) M⁻¹f)`.

use super::indexed::Indexed;
use super::Equations;
use crate::diag::Diagnostic;
use crate::model::{Init, Model, ModelKind};
use crate::sym::{ExprId, SymKind};

/// The most entries the sensitivities' tables may have (`n² (d + P)` for the
/// matrix's derivatives): 10⁷, about 40 MB of node ids before any simplification.
pub const MAX_JACOBIAN_ENTRIES: usize = 10_000_000;

/// The derivatives of the first-order system, with `d` the state's length
/// (`2n` or `n`) and `P` the number of parameters; all tables row-major.
#[derive(Clone, Debug)]
pub struct Jacobian {
    /// `∂v_i/∂y_j` of the vector `v` (`f` or `−∇E`): `n × d`.
    pub vector_y: Vec<ExprId>,
    /// `∂v_i/∂p_k`: `n × P`.
    pub vector_p: Vec<ExprId>,
    /// `∂A_ij/∂y_l` of the matrix `A` (`M`, or the metric `g`): `n² × d`;
    /// empty when there is no matrix or it does not depend on the state.
    pub matrix_y: Vec<ExprId>,
    /// `∂A_ij/∂p_k`: `n² × P`; empty when there is no matrix or it does not
    /// depend on the parameters.
    pub matrix_p: Vec<ExprId>,
    /// `∂y0_j/∂p_k` of the initial values: `d × P` (0 for random ones).
    pub init_p: Vec<ExprId>,
}

impl Jacobian {
    /// The expressions of the `jacobian` kernel: `vector_y`, `vector_p`,
    /// `matrix_y`, `matrix_p`, in that order.
    pub fn kernel(&self) -> Vec<ExprId> {
        [&self.vector_y, &self.vector_p, &self.matrix_y, &self.matrix_p].into_iter().flatten().copied().collect()
    }
}

/// The system's matrix (`M` or `g`), row-major; empty when there is none,
/// or for equations by segments (whose constant diagonal `M` is divided out; a band one is
/// written out before the Jacobians are taken).
fn matrix_of(eq: &Equations) -> Vec<ExprId> {
    match eq {
        Equations::Lagrangian(e) if e.indexed.is_some() => vec![],
        Equations::Lagrangian(e) => e.mass_matrix.iter().flatten().copied().collect(),
        Equations::Energy(e) => e.kernel.metric.clone().unwrap_or_default(),
    }
}

/// Whether the matrix depends on the state, and on the params.
fn matrix_depends(model: &Model, matrix: &[ExprId]) -> (bool, bool) {
    let on = |pred: fn(SymKind) -> bool| matrix.iter().any(|&m| model.arena.depends(m, pred));
    let on_state = on(|k| matches!(k, SymKind::Coord(_) | SymKind::Velocity(_) | SymKind::State(_)));
    (on_state, on(|k| matches!(k, SymKind::Param(_))))
}

/// The number of outputs of the `jacobian` kernel [`jacobians`] would derive
/// (`n d + n P`, and `n² d`, `n² P` for a matrix that depends on the state or
/// the params), counted without deriving anything: what the memory guard
/// counts before the derivatives are taken.
pub fn outputs(model: &Model, eq: &Equations) -> usize {
    let n = model.vars.len();
    let d = match model.kind {
        ModelKind::Lagrangian => 2 * n,
        ModelKind::Energy => n,
    };
    let np = model.params.len();
    let (on_state, on_params) = matrix_depends(model, &matrix_of(eq));
    let by = d * usize::from(on_state) + np * usize::from(on_params);
    n.saturating_mul(n).saturating_mul(by).saturating_add(n.saturating_mul(d + np))
}

/// Derives the Jacobians of the model's first-order system and keeps them in
/// `eq`; refused, with the size, when their tables would be too large.
pub fn jacobians(model: &mut Model, eq: &mut Equations) -> Result<(), Diagnostic> {
    let n = model.vars.len();
    // Equations by segments with a band `M` become equations per row first: the
    // sensitivities solve with `M` (its derivatives by the params included) as a written-out
    // model does, and the run then uses the written-out system.
    if let Equations::Lagrangian(e) = eq {
        if e.indexed.as_ref().is_some_and(|ix| !ix.diagonal()) {
            let (momenta, mass, forcing) = e.written_out(&mut model.arena);
            (e.momenta, e.mass_matrix, e.forcing) = (momenta, mass, forcing);
            e.diagonal_mass = false;
            e.indexed = None;
        }
    }
    let mut state = model.var_syms();
    state.extend(model.velocity_syms());
    let params = model.param_syms();
    let matrix = matrix_of(eq);
    // A constant matrix (the usual `M`) has no derivatives to keep: n² (d + P) zeros.
    let (on_state, on_params) = matrix_depends(model, &matrix);
    let entries = outputs(model, eq);
    if entries > MAX_JACOBIAN_ENTRIES {
        let what = match model.kind {
            ModelKind::Lagrangian => "coordinates",
            ModelKind::Energy => "state variables",
        };
        return Err(Diagnostic::new(model.spans.main, format!("sensitivities of {n} {what} are too large"))
            .label(format!(
                "the derivatives of the system's matrix and vector would have {entries} entries, more than {MAX_JACOBIAN_ENTRIES}"
            ))
            .help("run the sensitivities of a smaller instance of the model (fewer coordinates or params)"));
    }
    let vector: Vec<ExprId> = match &*eq {
        // Equations by segments have a constant diagonal `M`: the vector is the
        // acceleration `f/m` written out row by row, and there is no matrix.
        Equations::Lagrangian(e) => match &e.indexed {
            Some(ix) => {
                let a = &mut model.arena;
                (0..n).map(|i| Indexed::find(&ix.acceleration, i).at(a, i)).collect()
            }
            None => e.forcing.clone(),
        },
        Equations::Energy(e) => e.kernel.descent.clone(),
    };
    let a = &mut model.arena;
    let table = |a: &mut crate::sym::Arena, rows: &[ExprId], by: &[crate::sym::SymId]| -> Vec<ExprId> {
        rows.iter().flat_map(|&r| by.iter().map(|&s| a.diff(r, s)).collect::<Vec<_>>()).collect()
    };
    let vector_y = table(a, &vector, &state);
    let vector_p = table(a, &vector, &params);
    let matrix_y = if on_state { table(a, &matrix, &state) } else { vec![] };
    let matrix_p = if on_params { table(a, &matrix, &params) } else { vec![] };
    let zero = a.int(0);
    let init: Vec<ExprId> = model
        .init
        .iter()
        .chain(&model.init_velocity)
        .map(|i| match *i {
            Init::Value(x) => x,
            _ => zero,
        })
        .collect();
    let init_p = table(&mut model.arena, &init, &params);
    if model.arena.overflowed() {
        return Err(Diagnostic::new(model.spans.main, "the sensitivities' derivatives grew too large")
            .label(format!("they need more than {} expression nodes", crate::sym::MAX_NODES))
            .help("run the sensitivities of a smaller instance of the model"));
    }
    let jac = Jacobian { vector_y, vector_p, matrix_y, matrix_p, init_p };
    match eq {
        Equations::Lagrangian(e) => e.jacobian = Some(jac),
        Equations::Energy(e) => e.jacobian = Some(jac),
    }
    Ok(())
}
