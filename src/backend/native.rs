//! The native backend: every kernel, the first-order system and the plan's
//! compiled loop in one Cranelift module ([`crate::jit`]).

use super::{Backend, Layout, Work};
use crate::integrate::Cause;
use crate::jit::{self, EmBlockFn, ExprKernel, FailureCause, FlowSpec, JitError, LoopFn, OdeSpec, Scheme};
use crate::model::ModelKind;
use crate::plan::Loop;

/// Kernels compiled to native code.
pub(super) struct Native {
    compiled: jit::NativeCode,
    kind: ModelKind,
    compiled_loop: Option<Loop>,
}

impl Native {
    pub(super) fn build(layout: &Layout<'_>, compiled_loop: Option<Loop>, keep_ir: bool) -> Result<Native, JitError> {
        let model = layout.model;
        let exprs: Vec<ExprKernel> = layout
            .kernels
            .iter()
            .map(|(k, outputs)| ExprKernel {
                name: k.name().into(),
                inputs: layout.inputs.to_vec(),
                outputs: outputs.clone(),
                batch: layout.batch.filter(|_| *k == crate::plan::Kernel::Gradient),
            })
            .collect();
        let params = model.param_syms();
        let (mut ode, mut flow) = (None, None);
        match &layout.system {
            Some(s) if s.kind == ModelKind::Lagrangian => {
                ode = Some(OdeSpec {
                    n: model.vars.len(),
                    time: model.time,
                    coords: model.var_syms(),
                    velocities: model.velocity_syms(),
                    params,
                    mass: s.matrix.clone().unwrap_or(jit::Matrix::Dense(Vec::new())),
                    forcing: s.vector.clone(),
                    batch: layout.batch,
                    rows: s.segments.as_ref().map(|segs| {
                        segs.iter()
                            .map(|g| jit::RowLoop { rows: g.rows.clone(), index: g.index, expr: g.expr })
                            .collect()
                    }),
                })
            }
            Some(s) => {
                flow = Some(FlowSpec {
                    time: model.time,
                    state: model.var_syms(),
                    params,
                    rhs: s.vector.clone(),
                    metric: s.matrix.clone(),
                    batch: layout.batch,
                })
            }
            None => {}
        }
        let loops: &[Scheme] = match compiled_loop {
            Some(Loop::Rk4) => &[Scheme::Rk4],
            Some(Loop::Verlet) => &[Scheme::Verlet],
            Some(Loop::EulerMaruyama) => &[Scheme::EulerMaruyama],
            None => &[],
        };
        let compiled = jit::compile_with(&model.arena, &exprs, ode.as_ref(), flow.as_ref(), loops, keep_ir)?;
        Ok(Native { compiled, kind: model.kind, compiled_loop })
    }

    /// The cause of a singular system matrix: the mass matrix or the metric.
    fn singular(&self) -> Cause {
        match self.kind {
            ModelKind::Lagrangian => Cause::SingularMassMatrix,
            ModelKind::Energy => Cause::SingularMetric,
        }
    }
}

impl Backend for Native {
    fn eval(&self, index: usize, x: &[f64], out: &mut [f64], _scratch: &mut Vec<f64>) {
        self.compiled.expr(index).expect("every kernel of the layout was compiled").call(x, out)
    }

    fn rhs(&self, t: f64, y: &[f64], params: &[f64], dy: &mut [f64], _work: &mut Work) -> Result<(), Cause> {
        let f = match self.kind {
            ModelKind::Lagrangian => self.compiled.ode_rhs(),
            ModelKind::Energy => self.compiled.flow_rhs(),
        }
        .expect("the plan compiles the system");
        f.call(t, y, params, dy).map_err(|_| self.singular())
    }

    fn step_loop(&self) -> Option<LoopFn<'_>> {
        match (self.kind, self.compiled_loop?) {
            (ModelKind::Lagrangian, Loop::Rk4) => self.compiled.rk4_loop(),
            (ModelKind::Lagrangian, Loop::Verlet) => self.compiled.verlet_loop(),
            (ModelKind::Energy, Loop::Rk4) => self.compiled.flow_rk4_loop(),
            _ => None,
        }
    }

    fn em_block(&self) -> Option<EmBlockFn<'_>> {
        self.compiled.em_block()
    }

    fn ir(&self) -> Option<&str> {
        self.compiled.ir()
    }

    fn instruction_count(&self) -> Option<usize> {
        Some(self.compiled.instruction_count())
    }
}

/// The cause of a compiled loop's failure, for a system of `kind`.
pub fn failure_cause(kind: ModelKind, cause: FailureCause) -> Cause {
    match (cause, kind) {
        (FailureCause::Singular, ModelKind::Lagrangian) => Cause::SingularMassMatrix,
        (FailureCause::Singular, ModelKind::Energy) => Cause::SingularMetric,
        (FailureCause::NonFinite, _) => Cause::NonFinite,
    }
}
