//! The compiled functions: their signatures and bodies, defined one after the
//! other into one [`JITModule`].
//!
//! | function | signature |
//! |---|---|
//! | expression kernel | `fn(x: *const f64, out: *mut f64)` |
//! | right-hand side | `fn(t: f64, y: *const f64, p: *const f64, dy: *mut f64) -> i32` (0 ok, 1 singular) |
//! | RK4 loop | `fn(t0: f64, h: f64, n_steps: i64, every: i64, y: *mut f64, p: *const f64, rows: *mut f64, cause: *mut i64) -> i64` (steps done) |

mod em;
mod ir;
mod kernel;
mod step;
mod step_looped;
mod step_memory;
mod system;

pub(crate) use kernel::Outputs;
pub(crate) use step_memory::scratch_len;

use super::translate::{Externs, FunctionTranslator};
use super::JitError;
use crate::sym::Arena;
use cranelift_codegen::ir::{types, AbiParam, Signature, UserFuncName, Value};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Linkage, Module};

pub use system::one_row_at_a_time;
pub(crate) use system::System;

/// A fixed-step method compiled as one loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// The classical Runge–Kutta method.
    Rk4,
    /// Störmer–Verlet, for a Lagrangian system with constant mass matrix and
    /// forces that depend on the coordinates alone.
    Verlet,
    /// One Euler–Maruyama step of a block of particles of a first-order flow.
    EulerMaruyama,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Rk4 => "rk4",
            Scheme::Verlet => "verlet",
            Scheme::EulerMaruyama => "em",
        }
    }
}

/// Why a loop stopped early (the value written through `cause`).
pub(crate) const CAUSE_SINGULAR: i64 = 1;
pub(crate) const CAUSE_NON_FINITE: i64 = 2;

/// The module under construction and the text of what has been compiled.
pub(crate) struct ModuleBuilder<'a> {
    pub module: JITModule,
    arena: &'a Arena,
    ctx: Context,
    fctx: FunctionBuilderContext,
    externs: Externs,
    /// The CLIF of every function, after optimisation, with raw external
    /// names; kept only if `keep_ir`.
    ir: Vec<String>,
    keep_ir: bool,
    pub instructions: usize,
}

impl<'a> ModuleBuilder<'a> {
    pub fn new(module: JITModule, arena: &'a Arena, keep_ir: bool) -> Self {
        let ctx = module.make_context();
        ModuleBuilder {
            module,
            arena,
            ctx,
            fctx: FunctionBuilderContext::new(),
            externs: Externs::default(),
            ir: Vec::new(),
            keep_ir,
            instructions: 0,
        }
    }

    fn signature(&self, params: &[types::Type], returns: &[types::Type]) -> Signature {
        let mut sig = self.module.make_signature();
        sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
        sig.returns.extend(returns.iter().map(|&t| AbiParam::new(t)));
        sig
    }

    /// Declares, builds and compiles one function.
    fn function(
        &mut self,
        name: &str,
        sig: Signature,
        body: impl FnOnce(&mut FunctionTranslator, &[Value]),
    ) -> Result<FuncId, JitError> {
        let codegen =
            |e: cranelift_module::ModuleError| JitError::Codegen { function: name.to_string(), message: e.to_string() };
        let id = self.module.declare_function(name, Linkage::Local, &sig).map_err(codegen)?;
        self.ctx.func.signature = sig;
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());
        {
            let mut builder = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let entry = builder.create_block();
            builder.append_block_params_for_function_params(entry);
            builder.switch_to_block(entry);
            let args = builder.block_params(entry).to_vec();
            let mut tr = FunctionTranslator::new(builder, &mut self.module, self.arena, &mut self.externs);
            body(&mut tr, &args);
            tr.builder.seal_all_blocks();
            let config = tr.module.target_config();
            tr.builder.finalize(config);
        }
        self.module.define_function(id, &mut self.ctx).map_err(codegen)?;
        let func = &self.ctx.func;
        self.instructions += func.layout.blocks().map(|b| func.layout.block_insts(b).count()).sum::<usize>();
        if self.keep_ir {
            self.ir.push(func.display().to_string());
        }
        self.module.clear_context(&mut self.ctx);
        Ok(id)
    }
}
