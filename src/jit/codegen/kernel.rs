//! Expression kernels: functions `fn(x, out)` that read their inputs from an array and write the
//! values of their expressions in order.

use super::ModuleBuilder;
use crate::jit::translate::{mem, Plan};
use crate::jit::JitError;
use crate::sym::SymId;
use cranelift_codegen::ir::{types, InstBuilder};
use cranelift_module::{FuncId, Module};
use std::collections::HashMap;

impl ModuleBuilder<'_> {
    /// An expression kernel `fn(x, out)`.
    pub fn expr_kernel(&mut self, name: &str, inputs: &[SymId], plan: &Plan) -> Result<FuncId, JitError> {
        let p = self.module.target_config().pointer_type();
        let sig = self.signature(&[p, p], &[]);
        self.function(&format!("expr_{name}"), sig, |tr, args| {
            let (x, out) = (args[0], args[1]);
            let mut syms = HashMap::new();
            for (k, s) in inputs.iter().enumerate() {
                if plan.free.contains(s) {
                    let v = tr.builder.ins().load(types::F64, mem(), x, (8 * k) as i32);
                    syms.insert(*s, v);
                }
            }
            let vals = tr.eval(plan, &syms);
            tr.store_f64s(out, 0, &vals);
            tr.builder.ins().return_(&[]);
        })
    }
}
