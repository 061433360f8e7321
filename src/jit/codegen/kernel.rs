//! Expression kernels: functions `fn(x, out)` that read their inputs from an array and write the
//! values of their expressions in order.

use super::ModuleBuilder;
use crate::jit::translate::{mem, Input, Plan};
use crate::jit::JitError;
use crate::sym::SymId;
use cranelift_codegen::ir::InstBuilder;
use cranelift_module::{FuncId, Module};
use std::collections::HashMap;

impl ModuleBuilder<'_> {
    /// An expression kernel `fn(x, out)`.
    pub fn expr_kernel(&mut self, name: &str, inputs: &[SymId], plan: &Plan) -> Result<FuncId, JitError> {
        let p = self.module.target_config().pointer_type();
        let sig = self.signature(&[p, p], &[]);
        self.function(&format!("expr_{name}"), sig, |tr, args| {
            let (x, out) = (args[0], args[1]);
            // Inputs are loaded where first used and outputs stored as soon as
            // computed, so that no value lives across the whole kernel.
            let syms: HashMap<SymId, Input> =
                inputs.iter().enumerate().map(|(k, s)| (*s, Input::Load { ptr: x, offset: (8 * k) as i32 })).collect();
            tr.eval_streamed(plan, &syms, |tr, i, v| {
                tr.builder.ins().store(mem(), v, out, (8 * i) as i32);
            });
            tr.builder.ins().return_(&[]);
        })
    }
}
