//! The numeric kernels of a planned run: the derived expressions of
//! [`crate::plan::Plan::kernels`] and the first-order system, as functions of
//! `x = [t, coordinates or state…, velocities…, parameters…]`.
//!
//! A [`Backend`] evaluates them; there are two, chosen once per run:
//! [`native`] compiles them with Cranelift (the default), [`portable`] runs
//! them as register programs ([`program::Program`]) where native code is not
//! wanted or Cranelift refuses. Both compute what the tree-walking evaluator
//! computes; the tests hold them to it. [`Kernels`] is the backend together
//! with the layout of its inputs and outputs, and the Rust parts every method
//! shares (the Lagrangian point).

mod native;
mod portable;
mod program;

#[doc(hidden)]
pub use crate::jit::one_row_at_a_time;
pub use crate::jit::{EmBlockFn, JitError, LoopFailure, LoopFn, Matrix};
pub use native::failure_cause;

use crate::derive::Equations;
use crate::integrate::{Cause, LagrangianPoint};
use crate::model::{Model, ModelKind};
use crate::plan::{Kernel, Plan};
use crate::sym::{ExprId, SymId};
use std::time::{Duration, Instant};

/// Which backend evaluates the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// Cranelift-compiled native code.
    Native,
    /// The portable register program of [`program::Program`].
    Portable,
}

/// Errors of [`Kernels::build`].
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Cranelift refused the kernels; the portable backend still builds them.
    #[error(transparent)]
    Jit(#[from] JitError),
    /// The plan needs a kernel whose expressions `derive` was not asked for.
    #[error("the kernel `{0}` needs derivatives that were not derived for this method")]
    NotDerived(Kernel),
}

/// Evaluates a run's kernels.
pub trait Backend: Send + Sync {
    /// Evaluates the expression kernel at `index` (in [`Kernels::kernels`]
    /// order) at `x` into `out`.
    fn eval(&self, index: usize, x: &[f64], out: &mut [f64], scratch: &mut Vec<f64>);
    /// The first-order right-hand side `dy = F(t, y)`; `Err` when the matrix
    /// of the system is singular.
    fn rhs(&self, t: f64, y: &[f64], params: &[f64], dy: &mut [f64], work: &mut Work) -> Result<(), Cause>;
    /// The compiled fixed-step loop of the plan, if it has one.
    fn step_loop(&self) -> Option<LoopFn<'_>> {
        None
    }
    /// The compiled Euler–Maruyama block step, if the plan has one.
    fn em_block(&self) -> Option<EmBlockFn<'_>> {
        None
    }
    /// The Cranelift IR of the compiled functions (native only).
    fn ir(&self) -> Option<&str> {
        None
    }
    /// The number of Cranelift instructions over all compiled functions (native only).
    fn instruction_count(&self) -> Option<usize> {
        None
    }
}

/// The inputs of every kernel and the expressions of each, as a backend
/// builds them.
pub struct Layout<'a> {
    pub model: &'a Model,
    /// `t`, the state, the parameters.
    pub inputs: &'a [SymId],
    pub kernels: &'a [(Kernel, Vec<ExprId>)],
    /// The first-order system, when the plan has one.
    pub system: Option<System>,
    /// The minibatch of the dynamics: the system and the gradient, never
    /// the rows' energy or observes.
    pub batch: Option<crate::batch::Batch>,
}

/// The first-order system `y' = F(t, y)`: `(v, M⁻¹f)` of a Lagrangian model,
/// or `g⁻¹(−∇E)` of an energy model (`matrix` is then the metric, if any).
#[derive(Clone, Debug)]
pub struct System {
    pub kind: ModelKind,
    /// `M` or `g`, by its structure.
    pub matrix: Option<Matrix>,
    /// `f` or `−∇E`.
    pub vector: Vec<ExprId>,
    /// The solved rows by segments, for a model with indexed structure
    /// ([`crate::derive::indexed`]): `vector` is then empty, and `matrix` `None` (the rows
    /// are the accelerations) or a factored band (the rows are `f`).
    pub segments: Option<Vec<crate::derive::indexed::Segment>>,
}

/// The row-major `n × n` matrix `m` of a system by its structure (docs/numerics.md
/// §Structure of the mass matrix): a diagonal one is divided by; a small one is solved by
/// unrolled code; a larger one of the parameters alone is factored here, once, at the
/// parameters' values; any other is solved in its band (the whole upper triangle when dense).
fn system_matrix(model: &Model, n: usize, m: impl Fn(usize, usize) -> ExprId + Copy) -> Matrix {
    let a = &model.arena;
    let shape = crate::derive::MatrixShape::of(a, n, m);
    if shape.diagonal() {
        return Matrix::Diagonal((0..n).map(|i| m(i, i)).collect());
    }
    if n <= crate::jit::UNROLLED_MAX {
        return Matrix::Dense((0..n * n).map(|k| m(k / n, k % n)).collect());
    }
    let entries = shape.band_entries(m, m(0, 0));
    if shape.constant {
        let values = a.eval_many(&entries, &model.env());
        let factor = crate::integrate::symband::factor(&values, n, shape.band, true).ok();
        return Matrix::Factored(factor.map(std::sync::Arc::new));
    }
    Matrix::Banded { band: shape.band, entries }
}

/// The kernels of one planned run.
pub struct Kernels {
    pub kind: ModelKind,
    /// Coordinates or state variables.
    pub n: usize,
    inputs: Vec<SymId>,
    params: Vec<f64>,
    kernels: Vec<(Kernel, Vec<ExprId>)>,
    backend: Box<dyn Backend>,
    which: BackendKind,
    /// The half-bandwidth of the Lagrangian point's matrices, when it has them
    /// ([`crate::integrate::LagrangianSystem::band`]).
    pub point_band: Option<usize>,
    /// Wall time spent building the kernels.
    pub build_time: Duration,
}

impl Kernels {
    /// Builds the kernels of `plan` with the `which` backend, keeping the
    /// text of the native code for [`Kernels::ir`].
    pub fn build(model: &Model, eq: &Equations, plan: &Plan, which: BackendKind) -> Result<Kernels, BuildError> {
        Kernels::build_keeping(model, eq, plan, which, true)
    }

    /// [`Kernels::build`], keeping the IR text only if `keep_ir`: a run does
    /// not print it, and for a large model the text is larger than the code
    /// (hundreds of megabytes for a dense Hessian of hundreds of coordinates).
    fn build_keeping(
        model: &Model,
        eq: &Equations,
        plan: &Plan,
        which: BackendKind,
        keep_ir: bool,
    ) -> Result<Kernels, BuildError> {
        let start = Instant::now();
        let mut inputs = vec![model.time];
        inputs.extend(model.var_syms());
        inputs.extend(model.velocity_syms());
        if plan.kernels.iter().any(|k| matches!(k, Kernel::PairGradient | Kernel::Pair)) {
            // The other particle's state, after this one's (read as 0 by the other kernels).
            inputs.extend(model.interaction.iter().flat_map(|w| w.twins.iter().copied()));
        }
        inputs.extend(model.param_syms());
        let mut kernels = plan
            .kernels
            .iter()
            .map(|&k| k.expressions(model, eq).map(|x| (k, x)).ok_or(BuildError::NotDerived(k)))
            .collect::<Result<Vec<_>, _>>()?;
        let n = model.vars.len();
        let point_band = kernels.iter().find(|(k, _)| *k == Kernel::Point).map(|(_, x)| point_band(model, n, x));
        // A banded point's kernel computes the band of its matrices only, not `5n²` entries.
        if let (Some(b), Some((_, x))) =
            (compact_band(n, point_band), kernels.iter_mut().find(|(k, _)| *k == Kernel::Point))
        {
            *x = compact_point(x, n, b);
        }
        let system = plan.system.then(|| match eq {
            Equations::Lagrangian(e) if e.indexed.is_some() => System {
                kind: ModelKind::Lagrangian,
                // A band `M` of constants: factored here, once (its rows compute `f`).
                matrix: e.indexed.as_ref().filter(|ix| !ix.diagonal()).map(|ix| {
                    let values = ix.band_values(&model.arena, &model.env());
                    let factor = crate::integrate::symband::factor(&values, n, ix.band(), true).ok();
                    Matrix::Factored(factor.map(std::sync::Arc::new))
                }),
                vector: Vec::new(),
                segments: e.indexed.as_ref().map(|ix| ix.acceleration.clone()),
            },
            Equations::Lagrangian(e) => System {
                kind: ModelKind::Lagrangian,
                matrix: Some(system_matrix(model, n, |i, j| e.mass_matrix[i][j])),
                vector: e.forcing.clone(),
                segments: None,
            },
            Equations::Energy(e) => {
                let k = &e.kernel;
                System {
                    kind: ModelKind::Energy,
                    matrix: k.metric.as_ref().map(|g| system_matrix(model, n, |i, j| g[i * n + j])),
                    vector: k.descent.clone(),
                    segments: None,
                }
            }
        });
        let layout = Layout { model, inputs: &inputs, kernels: &kernels, system, batch: plan.batch };
        let backend: Box<dyn Backend> = match which {
            BackendKind::Native => Box::new(native::Native::build(&layout, plan.compiled, keep_ir)?),
            BackendKind::Portable => Box::new(portable::Portable::build(&layout)),
        };
        Ok(Kernels {
            kind: model.kind,
            n: model.vars.len(),
            params: model.params.iter().map(|p| p.value).collect(),
            inputs,
            kernels,
            backend,
            which,
            point_band,
            build_time: start.elapsed(),
        })
    }

    /// Native kernels, or portable ones where Cranelift refuses; without
    /// the IR text.
    pub fn build_best(model: &Model, eq: &Equations, plan: &Plan) -> Result<Kernels, BuildError> {
        match Kernels::build_keeping(model, eq, plan, BackendKind::Native, false) {
            Err(BuildError::Jit(_)) => Kernels::build_keeping(model, eq, plan, BackendKind::Portable, false),
            other => other,
        }
    }

    /// The backend that was built.
    pub fn backend(&self) -> BackendKind {
        self.which
    }

    /// The expression kernels that were built, in order.
    pub fn kernels(&self) -> impl Iterator<Item = Kernel> + '_ {
        self.kernels.iter().map(|(k, _)| *k)
    }

    fn index(&self, k: Kernel) -> usize {
        self.kernels.iter().position(|(x, _)| *x == k).unwrap_or_else(|| panic!("the plan has no kernel `{k}`"))
    }

    /// Whether the kernel was built.
    pub fn has(&self, k: Kernel) -> bool {
        self.kernels.iter().any(|(x, _)| *x == k)
    }

    /// The expressions a kernel computes, in output order.
    pub fn expressions(&self, k: Kernel) -> &[ExprId] {
        &self.kernels[self.index(k)].1
    }

    /// The number of outputs of a kernel.
    pub fn outputs(&self, k: Kernel) -> usize {
        self.expressions(k).len()
    }

    /// The symbols of the input vector, in order.
    pub fn inputs(&self) -> &[SymId] {
        &self.inputs
    }

    /// The parameter values, in declaration order.
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// The Cranelift IR of every native kernel, if built by [`Kernels::build`].
    pub fn ir(&self) -> Option<&str> {
        self.backend.ir()
    }

    /// The number of Cranelift instructions over all native kernels.
    pub fn instruction_count(&self) -> Option<usize> {
        self.backend.instruction_count()
    }

    /// The plan's compiled fixed-step loop (native kernels only).
    pub fn step_loop(&self) -> Option<LoopFn<'_>> {
        self.backend.step_loop()
    }

    /// The compiled Euler–Maruyama block step (native kernels only).
    pub fn em_block(&self) -> Option<EmBlockFn<'_>> {
        self.backend.em_block()
    }

    /// Fills `x` for time `t` and state `y` (coordinates then velocities, or
    /// the state; missing velocities read as 0).
    pub fn input(&self, t: f64, y: &[f64], x: &mut Vec<f64>) {
        x.clear();
        x.push(t);
        x.extend_from_slice(y);
        x.resize(self.inputs.len() - self.params.len(), 0.0);
        x.extend_from_slice(&self.params);
    }

    /// Evaluates a kernel at `x` into `out` (sized by [`Kernels::outputs`]).
    ///
    /// # Panics
    /// If the plan did not build the kernel.
    pub fn eval(&self, k: Kernel, x: &[f64], out: &mut [f64], scratch: &mut Vec<f64>) {
        self.backend.eval(self.index(k), x, out, scratch)
    }

    /// Evaluates a kernel at time `t` and state `y`.
    pub fn eval_at(&self, k: Kernel, t: f64, y: &[f64], out: &mut [f64], work: &mut Work) {
        self.input(t, y, &mut work.x);
        self.backend.eval(self.index(k), &work.x, out, &mut work.scratch)
    }

    /// The right-hand side `y' = F(t, y)`: `(v, M⁻¹f)`, or the flow `−g⁻¹∇E`.
    pub fn rhs(&self, t: f64, y: &[f64], dy: &mut [f64], work: &mut Work) -> Result<(), Cause> {
        self.backend.rhs(t, y, &self.params, dy, work)?;
        if dy.iter().all(|v| v.is_finite()) {
            Ok(())
        } else {
            Err(Cause::NonFinite)
        }
    }

    /// The Lagrangian point at `(q, v, t)`.
    pub fn point(&self, t: f64, q: &[f64], v: &[f64], p: &mut LagrangianPoint, work: &mut Work) -> Result<(), Cause> {
        let n = self.n;
        let mut y = std::mem::take(&mut work.y);
        y.clear();
        y.extend_from_slice(q);
        y.extend_from_slice(v);
        let mut out = std::mem::take(&mut work.out);
        out.resize(self.outputs(Kernel::Point), 0.0);
        self.eval_at(Kernel::Point, t, &y, &mut out, work);
        work.y = y;
        let result = if out.iter().any(|x| !x.is_finite()) {
            Err(Cause::NonFinite)
        } else {
            let mut rest: &[f64] = &out;
            for dst in [&mut p.lv, &mut p.lq, &mut p.force] {
                dst.copy_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            for dst in [&mut p.lvv, &mut p.lvq, &mut p.lqq, &mut p.force_v, &mut p.force_q] {
                match compact_band(n, self.point_band) {
                    // Entries outside the band are zero in `p` from its start and stay so.
                    Some(b) => {
                        for (i, j) in band_entries(n, b) {
                            dst[i * n + j] = rest[0];
                            rest = &rest[1..];
                        }
                    }
                    None => {
                        dst.copy_from_slice(&rest[..n * n]);
                        rest = &rest[n * n..];
                    }
                }
            }
            p.lvt.copy_from_slice(&rest[..n]);
            Ok(())
        };
        work.out = out;
        result
    }
}

/// The largest `|i − j|` of an entry `(i, j)` that is not identically zero in any of the
/// five matrices of the Lagrangian point `x` (laid out as [`Kernels::point`] reads it).
fn point_band(model: &Model, n: usize, x: &[ExprId]) -> usize {
    let a = &model.arena;
    let matrices = &x[3 * n..3 * n + 5 * n * n];
    let zero = |i: usize, j: usize| matrices.chunks(n * n).all(|m| a.is_zero(m[i * n + j]) && a.is_zero(m[j * n + i]));
    crate::integrate::symband::half_bandwidth(n, zero)
}

/// `Some(b)` when the point kernel of `n` coordinates computes only the band `|i − j| ≤ b`
/// of its matrices ([`compact_point`]): when the Newton matrices are factored in band storage.
fn compact_band(n: usize, point_band: Option<usize>) -> Option<usize> {
    point_band.filter(|&b| crate::integrate::banded_newton(n, Some(b)))
}

/// The entries `(i, j)` of an `n × n` matrix with `|i − j| ≤ b`, row by row.
fn band_entries(n: usize, b: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).flat_map(move |i| (i.saturating_sub(b)..(i + b + 1).min(n)).map(move |j| (i, j)))
}

/// The point's expressions with each of its five matrices cut to its band.
fn compact_point(x: &[ExprId], n: usize, b: usize) -> Vec<ExprId> {
    let mut out = x[..3 * n].to_vec();
    for m in x[3 * n..3 * n + 5 * n * n].chunks(n * n) {
        out.extend(band_entries(n, b).map(|(i, j)| m[i * n + j]));
    }
    out.extend_from_slice(&x[3 * n + 5 * n * n..]);
    out
}

/// Scratch space for kernel calls, one per caller.
#[derive(Default)]
pub struct Work {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub out: Vec<f64>,
    pub m: Vec<f64>,
    pub scratch: Vec<f64>,
}
