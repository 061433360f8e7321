//! The Cranelift backend: compiles expression DAGs of [`crate::sym`] into
//! native kernels.
//!
//! [`compile`] takes the arena and what to compile (named expression kernels,
//! the Euler–Lagrange right-hand side [`OdeSpec`], a first-order flow
//! [`FlowSpec`]) and returns a [`NativeCode`] module holding every function in
//! one `JITModule`. Each kernel walks its DAG in topological order once, so a
//! node shared by several outputs (the arena hash-conses) is computed once,
//! and `sin u`, `cos u` of the same `u` cost one `sincos` call.
//!
//! **Semantics:** a kernel computes exactly what `Arena::eval_many` computes,
//! in the same order of operations, except for the elementary functions
//! (calls into the same libm) and non-small powers (`pow`).
//!
//! **Architecture Invariant:** `jit` reads `sym` and never changes it; every
//! `unsafe` block is in this file or in [`runtime`], next to the signature it
//! relies on.

mod codegen;
mod linsolve;
mod runtime;
#[cfg(test)]
mod tests;
mod translate;

use crate::sym::{Arena, ExprId, SymId};
pub use codegen::{one_row_at_a_time, Scheme};
use codegen::{ModuleBuilder, System, CAUSE_NON_FINITE, CAUSE_SINGULAR};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId};
use std::marker::PhantomData;
use translate::Plan;

pub use linsolve::UNROLLED_MAX;

/// One kernel to compile: reads the symbols `inputs` from an array `x`
/// (`x[k]` is the value of `inputs[k]`) and writes `outputs` in order. `name`
/// labels the function in the IR; kernels are found by their position.
#[derive(Clone, Debug)]
pub struct ExprKernel {
    pub name: String,
    pub inputs: Vec<SymId>,
    pub outputs: Vec<ExprId>,
    /// Sums over all the rows of a data table run over the step's minibatch.
    pub batch: Option<crate::batch::Batch>,
}

/// The Euler–Lagrange right-hand side `y' = F(t, y)` of `M(q, v, t) q'' = f(q, v, t)`
/// with `n` coordinates, `y = (q, v)` and `F = (v, M⁻¹ f)`.
///
/// `mass_matrix` is `n × n`, row-major and symmetric: only the entries on and
/// above the diagonal are read. When `diagonal` is set it holds only the `n`
/// diagonal entries of a diagonal `M`, and the solve is a division each.
#[derive(Clone, Debug)]
pub struct OdeSpec {
    pub n: usize,
    pub time: SymId,
    pub coords: Vec<SymId>,
    pub velocities: Vec<SymId>,
    pub params: Vec<SymId>,
    /// `M`; with `rows`, only a [`Matrix::Factored`] is read (the rows are then `f`), any
    /// other is ignored (the rows are the accelerations).
    pub mass: Matrix,
    pub forcing: Vec<ExprId>,
    /// See [`ExprKernel::batch`].
    pub batch: Option<crate::batch::Batch>,
    /// The accelerations by segments of rows (a model with indexed
    /// structure); `mass_matrix` and `forcing` are then empty.
    pub rows: Option<Vec<RowLoop>>,
}

/// The matrix `A` of a system `A x = b` (a mass matrix or a metric, symmetric), by its
/// structure (docs/numerics.md §Structure of the mass matrix).
#[derive(Clone, Debug)]
pub enum Matrix {
    /// The `n` diagonal entries: a division each.
    Diagonal(Vec<ExprId>),
    /// All `n × n` entries, row-major.
    Dense(Vec<ExprId>),
    /// The upper band of half-bandwidth `band`, row by row (the layout of
    /// [`crate::integrate::symband`]): entries past the last column are ignored.
    Banded { band: usize, entries: Vec<ExprId> },
    /// A matrix of the parameters alone, factored by the caller at the parameters' values
    /// (once per run); `None` when it could not be factored (a singular matrix, which the
    /// system then reports at every evaluation). The compiled code keeps the factor alive.
    Factored(Option<std::sync::Arc<crate::integrate::symband::BandFactor>>),
}

impl Matrix {
    /// The number of expressions the matrix holds for a system of `n` rows.
    pub fn expected_len(&self, n: usize) -> usize {
        match self {
            Matrix::Diagonal(_) => n,
            Matrix::Dense(_) => n * n,
            Matrix::Banded { band, .. } => crate::integrate::symband::band_len(n, *band),
            Matrix::Factored(_) => 0,
        }
    }

    /// The expressions the matrix holds.
    pub fn entries(&self) -> &[ExprId] {
        match self {
            Matrix::Diagonal(e) | Matrix::Dense(e) | Matrix::Banded { entries: e, .. } => e,
            Matrix::Factored(_) => &[],
        }
    }
}

/// Rows of a system's solved part that share one expression: one row, or a
/// loop over member indices `k` of a family (row `base + k`).
#[derive(Clone, Debug)]
pub struct RowLoop {
    pub rows: std::ops::Range<usize>,
    /// The loop's index (of kind `Index`, over the members the rows hold) and
    /// the row of member 0; `None` for one concrete row.
    pub index: Option<(SymId, usize)>,
    pub expr: ExprId,
}

/// A first-order system `y' = F(t, y)` given directly, such as the gradient
/// flow of an energy model: `F = rhs`, or `F = g⁻¹ rhs` with the symmetric
/// metric `g` (`dim × dim`, row-major, upper triangle read; or, when
/// `diagonal` is set, its `dim` diagonal entries) solved in-kernel.
#[derive(Clone, Debug)]
pub struct FlowSpec {
    pub time: SymId,
    pub state: Vec<SymId>,
    pub params: Vec<SymId>,
    pub rhs: Vec<ExprId>,
    pub metric: Option<Matrix>,
    /// See [`ExprKernel::batch`].
    pub batch: Option<crate::batch::Batch>,
}

/// Errors of [`compile`].
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("kernel `{kernel}` reads the symbol `{symbol}`, which is not one of its inputs")]
    UnboundSymbol { kernel: String, symbol: String },
    #[error("two kernels are named `{0}`")]
    DuplicateKernel(String),
    #[error("{what} has {found} entries, expected {expected}")]
    Shape { what: &'static str, expected: usize, found: usize },
    #[error("Cranelift could not compile `{function}`: {message}")]
    Codegen { function: String, message: String },
    #[error("Cranelift could not set up the JIT: {0}")]
    Setup(String),
}

/// The matrix of the right-hand side (mass matrix or metric) is singular:
/// non-finite entries, or no pivot order in which every pivot exceeds
/// `runtime::SINGULAR_RTOL` times its largest entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("singular mass matrix")]
pub struct Singular;

/// Why a compiled loop stopped before the last step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCause {
    /// The matrix of the system (the mass matrix, or the metric of a flow) was
    /// singular at one of the step's stages.
    Singular,
    /// The step produced a non-finite state.
    NonFinite,
}

/// A compiled loop stopped at step `step` (the step from `t` to `t + h` failed);
/// the state and the rows written are those of step `step`.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error("integration failed at step {step} (t = {t}): {cause:?}")]
pub struct LoopFailure {
    pub step: usize,
    pub t: f64,
    pub cause: FailureCause,
}

type ExprPtr = unsafe extern "C" fn(*const f64, *mut f64);
type RhsPtr = unsafe extern "C" fn(f64, *const f64, *const f64, *mut f64) -> i32;
type EmPtr = unsafe extern "C" fn(f64, f64, i64, *mut f64, *const f64, *const f64, *mut i64) -> i64;
type LoopPtr = unsafe extern "C" fn(f64, f64, i64, i64, *mut f64, *const f64, *mut f64, *mut i64, *mut f64) -> i64;

#[derive(Clone, Copy)]
struct ExprEntry {
    ptr: ExprPtr,
    inputs: usize,
    outputs: usize,
}

#[derive(Clone, Copy)]
struct SystemEntry {
    rhs: RhsPtr,
    rk4: Option<LoopPtr>,
    verlet: Option<LoopPtr>,
    em: Option<EmPtr>,
    dim: usize,
    params: usize,
    /// Doubles of scratch the system's loops need (none when they keep the state in registers).
    loop_scratch: usize,
}

/// A compiled model: owns the code of all its kernels, freed on drop.
pub struct NativeCode {
    module: Option<JITModule>,
    /// The expression kernels, in the order they were given to [`compile`].
    exprs: Vec<ExprEntry>,
    ode: Option<SystemEntry>,
    flow: Option<SystemEntry>,
    ir: Option<String>,
    instructions: usize,
    /// The factors the compiled code reads ([`Matrix::Factored`]), kept alive with it.
    _factors: Vec<std::sync::Arc<crate::integrate::symband::BandFactor>>,
}

// SAFETY: after `finalize_definitions` the module is never mutated until drop,
// and the compiled functions are pure: they read their arguments and write
// only through the pointers they are given.
unsafe impl Send for NativeCode {}
unsafe impl Sync for NativeCode {}

impl Drop for NativeCode {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: every function pointer handed out borrows `self`, so none
            // of them is alive or running now.
            unsafe { module.free_memory() };
        }
    }
}

/// A compiled expression kernel.
#[derive(Clone, Copy)]
pub struct ExprFn<'a> {
    entry: ExprEntry,
    _module: PhantomData<&'a NativeCode>,
}

impl ExprFn<'_> {
    /// Evaluates the kernel: `x[k]` is the value of `inputs[k]`.
    ///
    /// # Panics
    /// If `x` or `out` does not have the kernel's number of inputs or outputs.
    pub fn call(&self, x: &[f64], out: &mut [f64]) {
        assert_eq!(x.len(), self.entry.inputs, "kernel input length");
        assert_eq!(out.len(), self.entry.outputs, "kernel output length");
        // SAFETY: the lengths match the kernel's signature.
        unsafe { (self.entry.ptr)(x.as_ptr(), out.as_mut_ptr()) }
    }
}

/// A compiled right-hand side `dy = F(t, y)`.
#[derive(Clone, Copy)]
pub struct RhsFn<'a> {
    entry: SystemEntry,
    _module: PhantomData<&'a NativeCode>,
}

impl RhsFn<'_> {
    /// Evaluates `dy = F(t, y)` with the parameters `params` (in the spec's order).
    ///
    /// # Panics
    /// If a slice does not have the system's dimension or parameter count.
    pub fn call(&self, t: f64, y: &[f64], params: &[f64], dy: &mut [f64]) -> Result<(), Singular> {
        let e = &self.entry;
        assert_eq!(y.len(), e.dim, "state length");
        assert_eq!(dy.len(), e.dim, "derivative length");
        assert_eq!(params.len(), e.params, "parameter count");
        // SAFETY: the lengths match the kernel's signature.
        match unsafe { (e.rhs)(t, y.as_ptr(), params.as_ptr(), dy.as_mut_ptr()) } {
            0 => Ok(()),
            _ => Err(Singular),
        }
    }
}

/// A compiled fixed-step integration loop (RK4 or Störmer–Verlet).
#[derive(Clone, Copy)]
pub struct LoopFn<'a> {
    ptr: LoopPtr,
    dim: usize,
    params: usize,
    /// Doubles of scratch the loop works in; 0 when it keeps the state in registers.
    scratch: usize,
    _module: PhantomData<&'a NativeCode>,
}

impl LoopFn<'_> {
    /// Takes `n_steps` steps of size `h` from `(t0, y)`, step `k` starting
    /// at `t0 + k·h`. Appends the rows `(t, y…)` of steps `0, every, 2·every, …`
    /// to `out_rows` (`every = 0` counts as 1) and leaves the final state in `y`.
    ///
    /// On failure (a singular matrix or a non-finite state) `y` holds the last
    /// good state and `out_rows` the rows written before it.
    ///
    /// # Panics
    /// If `y` or `params` does not have the system's dimension or parameter count.
    #[allow(clippy::too_many_arguments)]
    pub fn call(
        &self,
        t0: f64,
        h: f64,
        n_steps: usize,
        every: usize,
        y: &mut [f64],
        params: &[f64],
        out_rows: &mut Vec<f64>,
    ) -> Result<usize, LoopFailure> {
        assert_eq!(y.len(), self.dim, "state length");
        assert_eq!(params.len(), self.params, "parameter count");
        let every = every.max(1);
        let width = self.dim + 1;
        let rows = n_steps / every + 1;
        out_rows.reserve(rows * width);
        let base = out_rows.len();
        let mut cause = 0i64;
        let mut scratch = vec![0.0; self.scratch];
        // SAFETY: `out_rows` has room for every row the loop can write, `scratch`
        // has the length the loop uses, and the other lengths match the kernel's signature.
        let done = unsafe {
            (self.ptr)(
                t0,
                h,
                n_steps as i64,
                every as i64,
                y.as_mut_ptr(),
                params.as_ptr(),
                out_rows.as_mut_ptr().add(base),
                &mut cause,
                scratch.as_mut_ptr(),
            )
        } as usize;
        // SAFETY: the loop wrote the rows of steps 0, every, … ≤ done.
        unsafe { out_rows.set_len(base + (done / every + 1) * width) };
        let fail = |cause| Err(LoopFailure { step: done, t: t0 + done as f64 * h, cause });
        match cause {
            0 => Ok(done),
            CAUSE_SINGULAR => fail(FailureCause::Singular),
            CAUSE_NON_FINITE => fail(FailureCause::NonFinite),
            other => unreachable!("the loop reported cause {other}"),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
}

/// A compiled Euler–Maruyama step for a block of particles of a flow.
#[derive(Clone, Copy)]
pub struct EmBlockFn<'a> {
    ptr: EmPtr,
    dim: usize,
    params: usize,
    _module: PhantomData<&'a NativeCode>,
}

impl EmBlockFn<'_> {
    /// Moves every particle `i` (row `i` of `theta`, `dim` wide) to
    /// `θ_i + h·F(t, θ_i) + noise_i`. On failure, the particles before the
    /// failing one have moved, it and those after it have not, and the error
    /// gives its index and the cause.
    ///
    /// # Panics
    /// If `theta` and `noise` differ in length, are not whole rows, or
    /// `params` does not have the system's parameter count.
    pub fn call(
        &self,
        t: f64,
        h: f64,
        theta: &mut [f64],
        noise: &[f64],
        params: &[f64],
    ) -> Result<(), (usize, FailureCause)> {
        assert_eq!(theta.len(), noise.len(), "noise length");
        assert_eq!(theta.len() % self.dim.max(1), 0, "whole particles");
        assert_eq!(params.len(), self.params, "parameter count");
        let np = theta.len() / self.dim.max(1);
        let mut cause = 0i64;
        // SAFETY: the lengths match the kernel's signature.
        let done =
            unsafe { (self.ptr)(t, h, np as i64, theta.as_mut_ptr(), noise.as_ptr(), params.as_ptr(), &mut cause) }
                as usize;
        match cause {
            0 => Ok(()),
            CAUSE_SINGULAR => Err((done, FailureCause::Singular)),
            CAUSE_NON_FINITE => Err((done, FailureCause::NonFinite)),
            other => unreachable!("the block reported cause {other}"),
        }
    }
}

impl NativeCode {
    /// The Euler–Maruyama block step of the flow or, for underdamped Langevin
    /// dynamics, of the first-order system, if it was compiled.
    pub fn em_block(&self) -> Option<EmBlockFn<'_>> {
        let e = self.flow.or(self.ode)?;
        e.em.map(|ptr| EmBlockFn { ptr, dim: e.dim, params: e.params, _module: PhantomData })
    }

    /// The expression kernel at `index` in the list given to [`compile`].
    pub fn expr(&self, index: usize) -> Option<ExprFn<'_>> {
        self.exprs.get(index).map(|&entry| ExprFn { entry, _module: PhantomData })
    }

    /// The Euler–Lagrange right-hand side, if an [`OdeSpec`] was compiled.
    pub fn ode_rhs(&self) -> Option<RhsFn<'_>> {
        self.ode.map(|entry| RhsFn { entry, _module: PhantomData })
    }

    /// The RK4 loop of the Euler–Lagrange system.
    pub fn rk4_loop(&self) -> Option<LoopFn<'_>> {
        self.ode.and_then(|e| e.loop_fn(e.rk4))
    }

    /// The Störmer–Verlet loop of the Euler–Lagrange system.
    pub fn verlet_loop(&self) -> Option<LoopFn<'_>> {
        self.ode.and_then(|e| e.loop_fn(e.verlet))
    }

    /// The right-hand side of the [`FlowSpec`], if one was compiled.
    pub fn flow_rhs(&self) -> Option<RhsFn<'_>> {
        self.flow.map(|entry| RhsFn { entry, _module: PhantomData })
    }

    /// The RK4 loop of the flow.
    pub fn flow_rk4_loop(&self) -> Option<LoopFn<'_>> {
        self.flow.and_then(|e| e.loop_fn(e.rk4))
    }

    /// The CLIF text of every compiled function (after optimisation), if
    /// compiled keeping it.
    pub fn ir(&self) -> Option<&str> {
        self.ir.as_deref()
    }

    /// The number of CLIF instructions over all compiled functions.
    pub fn instruction_count(&self) -> usize {
        self.instructions
    }
}

impl SystemEntry {
    fn loop_fn<'a>(&self, ptr: Option<LoopPtr>) -> Option<LoopFn<'a>> {
        ptr.map(|ptr| LoopFn {
            ptr,
            dim: self.dim,
            params: self.params,
            scratch: self.loop_scratch,
            _module: PhantomData,
        })
    }
}

fn check_len(what: &'static str, found: usize, expected: usize) -> Result<(), JitError> {
    if found == expected {
        Ok(())
    } else {
        Err(JitError::Shape { what, expected, found })
    }
}

/// Modules of more planned nodes than this are compiled with Cranelift's
/// single-pass register allocator, smaller ones with the backtracking one.
/// The backtracking allocator's time grows faster than the code on long
/// straight-line functions with many values live at once (a dense Hessian):
/// the midpoint kernels of 20 bodies took 0.9 s to compile with it and 0.05 s
/// with the single-pass one, and a 50-link chain 0.3 s and 0.07 s. On code
/// that large both run at the same speed (within 5%, alternated runs), as
/// loads and stores dominate; on small and looped code the backtracking
/// allocator's code is faster (up to 2× for a pair loop), and below this
/// size it compiles in under about 50 ms.
const SINGLE_PASS_NODES: usize = 4_000;

/// The register allocator for a module of `nodes` planned nodes (see
/// [`SINGLE_PASS_NODES`]).
fn regalloc_for(nodes: usize) -> &'static str {
    if nodes > SINGLE_PASS_NODES {
        "single_pass"
    } else {
        "backtracking"
    }
}

/// Compiles the kernels of one model into one module, with an RK4 loop for
/// each system.
#[cfg(test)]
pub fn compile(
    arena: &Arena,
    exprs: &[ExprKernel],
    ode: Option<&OdeSpec>,
    flow: Option<&FlowSpec>,
) -> Result<NativeCode, JitError> {
    compile_with(arena, exprs, ode, flow, &[Scheme::Rk4], true)
}

/// Compiles the kernels of one model into one module, with a loop of each of
/// `loops` for each system it applies to (Verlet to the Euler–Lagrange system
/// only, the Euler–Maruyama block to the flow only). The CLIF text of every
/// function is kept if `keep_ir`.
pub fn compile_with(
    arena: &Arena,
    exprs: &[ExprKernel],
    ode: Option<&OdeSpec>,
    flow: Option<&FlowSpec>,
    loops: &[Scheme],
    keep_ir: bool,
) -> Result<NativeCode, JitError> {
    let mut names = std::collections::HashSet::new();
    let mut expr_plans = Vec::with_capacity(exprs.len());
    for k in exprs {
        if !names.insert(k.name.as_str()) {
            return Err(JitError::DuplicateKernel(k.name.clone()));
        }
        let layout = codegen::Outputs::of(arena, &k.outputs);
        let computed: Vec<ExprId> = layout.computed.iter().map(|&i| k.outputs[i]).collect();
        expr_plans.push((Plan::batched(arena, &computed, &k.inputs, &k.name, k.batch)?, layout));
    }
    let ode_sys = ode.map(|s| ode_system(arena, s)).transpose()?;
    let flow_sys = flow.map(|s| flow_system(arena, s)).transpose()?;

    let setup = |e: cranelift_module::ModuleError| JitError::Setup(e.to_string());
    let verifier = if cfg!(debug_assertions) { "true" } else { "false" };
    let nodes: usize = expr_plans.iter().map(|(p, _)| p.node_count()).sum::<usize>()
        + ode_sys.iter().chain(&flow_sys).map(|s| s.plan.node_count()).sum::<usize>();
    let regalloc = regalloc_for(nodes);
    let mut jit = JITBuilder::with_flags(
        &[("opt_level", "speed"), ("enable_verifier", verifier), ("regalloc_algorithm", regalloc)],
        default_libcall_names(),
    )
    .map_err(setup)?;
    runtime::register(&mut jit);
    let mut mb = ModuleBuilder::new(JITModule::new(jit), arena, keep_ir);

    let mut expr_ids: Vec<FuncId> = Vec::with_capacity(exprs.len());
    for (k, plan) in exprs.iter().zip(&expr_plans) {
        expr_ids.push(mb.expr_kernel(&k.name, &k.inputs, &plan.0, &plan.1)?);
    }
    let mut system_ids = Vec::new();
    for (sys, is_ode) in ode_sys.iter().map(|s| (s, true)).chain(flow_sys.iter().map(|s| (s, false))) {
        let rhs = mb.rhs(sys)?;
        let rk4 = loops.contains(&Scheme::Rk4).then(|| mb.step_loop(sys, rhs, Scheme::Rk4)).transpose()?;
        let verlet =
            (is_ode && loops.contains(&Scheme::Verlet)).then(|| mb.step_loop(sys, rhs, Scheme::Verlet)).transpose()?;
        let em = loops.contains(&Scheme::EulerMaruyama).then(|| mb.em_block(sys, rhs)).transpose()?;
        system_ids.push((rhs, rk4, verlet, em));
    }
    mb.module.finalize_definitions().map_err(setup)?;

    let ir = keep_ir.then(|| mb.ir_text());
    let instructions = mb.instructions;
    let module = mb.module;
    let factors = [ode.map(|s| &s.mass), flow.and_then(|s| s.metric.as_ref())]
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            Matrix::Factored(f) => f.clone(),
            _ => None,
        })
        .collect();
    let mut compiled =
        NativeCode { module: None, exprs: Vec::new(), ode: None, flow: None, ir, instructions, _factors: factors };
    for (k, id) in exprs.iter().zip(expr_ids) {
        // SAFETY: `expr_kernel` defined this function with the `ExprPtr` signature.
        let ptr = unsafe { std::mem::transmute::<*const u8, ExprPtr>(module.get_finalized_function(id)) };
        let entry = ExprEntry { ptr, inputs: k.inputs.len(), outputs: k.outputs.len() };
        compiled.exprs.push(entry);
    }
    let mut ids = system_ids.into_iter();
    for (sys, slot) in [(ode_sys.as_ref(), &mut compiled.ode), (flow_sys.as_ref(), &mut compiled.flow)] {
        let Some(sys) = sys else { continue };
        let (rhs, rk4, verlet, em) = ids.next().expect("one set of functions per system");
        // SAFETY: `rhs` and `step_loop` defined these with the `RhsPtr` and `LoopPtr` signatures.
        let rhs = unsafe { std::mem::transmute::<*const u8, RhsPtr>(module.get_finalized_function(rhs)) };
        // SAFETY: as above, for the loops.
        let as_loop =
            |id: FuncId| unsafe { std::mem::transmute::<*const u8, LoopPtr>(module.get_finalized_function(id)) };
        let (rk4, verlet) = (rk4.map(as_loop), verlet.map(as_loop));
        // SAFETY: `em_block` defined this with the `EmPtr` signature.
        let em = em.map(|id| unsafe { std::mem::transmute::<*const u8, EmPtr>(module.get_finalized_function(id)) });
        let loop_scratch =
            if sys.steps_in_memory() || !sys.looped.is_empty() { codegen::scratch_len(sys.dim()) } else { 0 };
        *slot = Some(SystemEntry { rhs, rk4, verlet, em, dim: sys.dim(), params: sys.params.len(), loop_scratch });
    }
    compiled.module = Some(module);
    Ok(compiled)
}

/// A dense matrix too large to factor in unrolled code, as the band `b = n − 1`: its
/// entries are then streamed into the scratch array and solved out of line, never held in
/// the kernel's registers or stack frame.
fn out_of_line(m: &Matrix, n: usize) -> Option<Matrix> {
    match m {
        Matrix::Dense(e) if n > linsolve::UNROLLED_MAX => {
            let b = n - 1;
            let mut entries = vec![e[0]; crate::integrate::symband::band_len(n, b)];
            for i in 0..n {
                for j in i..n {
                    entries[crate::integrate::symband::band_index(b, i, j)] = e[i * n + j];
                }
            }
            Some(Matrix::Banded { band: b, entries })
        }
        _ => None,
    }
}

fn ode_system(arena: &Arena, s: &OdeSpec) -> Result<System, JitError> {
    let n = s.n;
    check_len("the coordinates", s.coords.len(), n)?;
    check_len("the velocities", s.velocities.len(), n)?;
    if let Some(rows) = &s.rows {
        let state: Vec<SymId> = s.coords.iter().chain(&s.velocities).copied().collect();
        return System::looped(arena, "ode", (s.time, state, s.params.clone()), n..2 * n, rows, &s.mass);
    }
    check_len("the mass matrix", s.mass.entries().len(), s.mass.expected_len(n))?;
    check_len("the forcing", s.forcing.len(), n)?;
    let state: Vec<SymId> = s.coords.iter().chain(&s.velocities).copied().collect();
    let wide = out_of_line(&s.mass, n);
    let matrix = (n > 0).then(|| wide.as_ref().unwrap_or(&s.mass));
    System::new(arena, "ode", (s.time, state, s.params.clone()), n..2 * n, matrix, &s.forcing, s.batch)
}

fn flow_system(arena: &Arena, s: &FlowSpec) -> Result<System, JitError> {
    let d = s.state.len();
    check_len("the flow's right-hand side", s.rhs.len(), d)?;
    if let Some(g) = &s.metric {
        check_len("the metric", g.entries().len(), g.expected_len(d))?;
    }
    let wide = s.metric.as_ref().and_then(|g| out_of_line(g, d));
    let matrix = s.metric.as_ref().filter(|_| d > 0).map(|g| wide.as_ref().unwrap_or(g));
    System::new(arena, "flow", (s.time, s.state.clone(), s.params.clone()), 0..0, matrix, &s.rhs, s.batch)
}
