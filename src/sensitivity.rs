//! Planning forward sensitivities (`lagc run --sensitivities g,init.x`): which
//! parameters and initial values, the columns `d(X)/d(P)` they add, and the
//! methods whose discrete map is differentiated exactly (docs/numerics.md
//! §Sensitivities). The integration itself is `drive::sensitivity`.

use crate::derive::Equations;
use crate::model::{Method, Model, ModelKind};
use crate::plan::{Kernel, Layout, Plan};
use crate::sym::SymKind;

/// What a sensitivity is taken with respect to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The parameter at this index of the model's params.
    Param(usize),
    /// The initial value of the state column at this index (`init.x`).
    Init(usize),
}

/// The sensitivities of a run: the targets, their names as asked, and the
/// initial sensitivities `∂y0/∂P` (`d × k`, row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Sensitivity {
    pub targets: Vec<Target>,
    pub names: Vec<String>,
    pub initial: Vec<f64>,
    /// The number of outputs `∂A/∂y` of the `jacobian` kernel (0 when the
    /// system's matrix does not depend on the state).
    pub matrix_y: usize,
    /// Whether the system's matrix depends on neither the state nor time, so
    /// that it is factored once per run.
    pub constant_matrix: bool,
    /// The kernel of the system's matrix (`M` or `g`); `None` when the
    /// Jacobian's vector is already solved (no metric, or equations by
    /// segments, whose vector is the acceleration `f/m`).
    pub matrix: Option<Kernel>,
    /// The number of outputs of the `jacobian` kernel.
    pub outputs: usize,
}

impl Sensitivity {
    /// The number of targets.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there is no target.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// The methods whose steps the sensitivities follow: the discrete map
/// differentiated (`rk4`, `euler`, `verlet`), or the variational equations on
/// the same adaptive steps (`dopri5`).
fn differentiated(method: Method, kind: ModelKind) -> bool {
    matches!(
        (method, kind),
        (Method::Rk4 | Method::Dopri5, _)
            | (Method::Euler, ModelKind::Energy)
            | (Method::Verlet, ModelKind::Lagrangian)
    )
}

/// The column of the sensitivity of state column `x` to `p`.
pub fn column(x: &str, p: &str) -> String {
    format!("d({x})/d({p})")
}

impl Plan {
    /// The plan with the sensitivities of every state column to `names`
    /// (params, or `init.x` for the initial value of state column `x`): the
    /// columns `d(X)/d(P)` after all others, the `jacobian` kernel, and the
    /// Rust integrator instead of a compiled loop. Refused, with the reason,
    /// for methods other than `rk4`, `dopri5`, `verlet` and `euler`, ensembles and
    /// minibatches, and names that are neither.
    pub fn with_sensitivities(mut self, model: &Model, eq: &Equations, names: &[String]) -> Result<Plan, String> {
        if !differentiated(self.method, self.kind) {
            return Err(format!(
                "--sensitivities follows the steps of rk4, dopri5, verlet (Lagrangian models) and euler \
                 (energy models), not `{}`; run with --method rk4 or dopri5",
                self.method
            ));
        }
        if let Layout::Ensemble { particles } = self.layout {
            return Err(format!(
                "--sensitivities follows one trajectory, not an ensemble of {particles} particles; \
                 give fixed `init` values and no --particles"
            ));
        }
        if self.batch.is_some() {
            return Err("--sensitivities needs the exact dynamics, not minibatches; drop `batch`".into());
        }
        let jacobian = match eq {
            Equations::Lagrangian(e) => e.jacobian.as_ref(),
            Equations::Energy(e) => e.jacobian.as_ref(),
        }
        .ok_or("--sensitivities: the Jacobians of the system were not derived")?;
        if names.is_empty() {
            return Err("--sensitivities needs at least one name: a param, or init.x".into());
        }
        let d = self.dim();
        let state: Vec<String> = self.trajectory_columns[1..=d].to_vec();
        let mut targets = Vec::new();
        for name in names {
            let target = if let Some(x) = name.strip_prefix("init.") {
                let j = state.iter().position(|s| s == x).ok_or_else(|| {
                    format!("--sensitivities {name}: `{x}` is not a state column; state columns: {}", state.join(", "))
                })?;
                Target::Init(j)
            } else {
                let i = model.params.iter().position(|p| p.name == *name).ok_or_else(|| {
                    let params: Vec<&str> = model.params.iter().map(|p| p.name.as_str()).collect();
                    let known = if params.is_empty() { "the model has no params".into() } else { params.join(", ") };
                    format!(
                        "--sensitivities {name}: not a param of the model (params: {known}; initial values: init.x)"
                    )
                })?;
                Target::Param(i)
            };
            if targets.contains(&target) {
                return Err(format!("--sensitivities names `{name}` twice"));
            }
            targets.push(target);
        }
        let k = targets.len();
        let env = model.env();
        let np = model.params.len();
        let mut initial = vec![0.0; d * k];
        for (c, t) in targets.iter().enumerate() {
            for j in 0..d {
                initial[j * k + c] = match *t {
                    Target::Init(i) => f64::from(u8::from(i == j)),
                    Target::Param(p) => model.arena.eval(jacobian.init_p[j * np + p], &env),
                };
            }
        }
        for x in &state {
            for p in names {
                self.trajectory_columns.push(column(x, p));
            }
        }
        self.columns = self.trajectory_columns.clone();
        let matrix = match self.kind {
            ModelKind::Lagrangian if self.indexed => None,
            ModelKind::Lagrangian => Some(Kernel::Mass),
            ModelKind::Energy => Kernel::Metric.expressions(model, eq).map(|_| Kernel::Metric),
        };
        for kernel in matrix.into_iter().chain([Kernel::Jacobian]) {
            if !self.kernels.contains(&kernel) {
                self.kernels.push(kernel);
            }
        }
        self.system = true;
        self.compiled = None;
        let matrix_y = jacobian.matrix_y.len();
        let outputs =
            jacobian.vector_y.len() + jacobian.vector_p.len() + jacobian.matrix_y.len() + jacobian.matrix_p.len();
        let a = &model.arena;
        let constant_matrix = matrix
            .and_then(|m| m.expressions(model, eq))
            .is_none_or(|m| m.iter().all(|&e| !a.depends(e, |k| !matches!(k, SymKind::Param(_) | SymKind::Pi))));
        self.sensitivity =
            Some(Sensitivity { targets, names: names.to_vec(), initial, matrix_y, constant_matrix, matrix, outputs });
        Ok(self)
    }
}
