//! Expression kernels: functions `fn(x, out)` that read their inputs from an array and write the
//! values of their expressions in order.

use super::ModuleBuilder;
use crate::jit::translate::{mem, Input, Plan};
use crate::jit::JitError;
use crate::sym::{ExprId, Node, SymId};
use cranelift_codegen::ir::{types, InstBuilder, StackSlotData, StackSlotKind, Value};
use cranelift_module::{FuncId, Module};
use std::collections::HashMap;

/// An expression kernel whose plan has more nodes than this is compiled as
/// parts of about this size, each computing a partial sum of one expression
/// (the energy of a lattice is a sum of thousands of terms): register
/// allocation grows faster than a function, so parts keep the compile time
/// linear in the kernel. The partial sums are added in order.
const PART_NODES: usize = 8_000;

impl ModuleBuilder<'_> {
    /// An expression kernel `fn(x, out)`.
    pub fn expr_kernel(&mut self, name: &str, inputs: &[SymId], plan: &Plan) -> Result<FuncId, JitError> {
        if plan.node_count() > 2 * PART_NODES && !plan.has_loops() {
            return self.expr_kernel_in_parts(name, inputs, plan);
        }
        let p = self.module.target_config().pointer_type();
        let sig = self.signature(&[p, p], &[]);
        self.function(&format!("expr_{name}"), sig, |tr, args| {
            let (x, out) = (args[0], args[1]);
            // Inputs are loaded where first used and outputs stored as soon as
            // computed, so that no value lives across the whole kernel.
            let syms = load_inputs(inputs, x);
            tr.eval_streamed(plan, &syms, |tr, i, v| {
                tr.builder.ins().store(mem(), v, out, (8 * i) as i32);
            });
            tr.builder.ins().return_(&[]);
        })
    }

    /// The kernel as parts: each root a sum of groups of its terms (or one
    /// group of itself), each group a function writing its partial sum.
    fn expr_kernel_in_parts(&mut self, name: &str, inputs: &[SymId], plan: &Plan) -> Result<FuncId, JitError> {
        let arena = self.arena;
        let p = self.module.target_config().pointer_type();
        let sig = self.signature(&[p, p], &[]);
        // Per root, its groups of terms.
        let mut groups: Vec<Vec<Vec<ExprId>>> = Vec::new();
        for &r in &plan.roots {
            let terms: Vec<ExprId> = match arena.node(r) {
                Node::Add(xs) => xs.to_vec(),
                _ => vec![r],
            };
            let mut root_groups = vec![Vec::new()];
            let mut size = 0;
            for t in terms {
                let s = arena.dag_size(&[t]);
                if size + s > PART_NODES && !root_groups.last().is_some_and(|g: &Vec<ExprId>| g.is_empty()) {
                    root_groups.push(Vec::new());
                    size = 0;
                }
                size += s;
                root_groups.last_mut().expect("one group").push(t);
            }
            groups.push(root_groups);
        }
        let mut parts: Vec<FuncId> = Vec::new();
        for (k, terms) in groups.iter().flatten().enumerate() {
            let part = Plan::batched(arena, terms, inputs, name, None)?;
            let id = self.function(&format!("expr_{name}_part{k}"), sig.clone(), |tr, args| {
                let (x, out) = (args[0], args[1]);
                let syms = load_inputs(inputs, x);
                let mut vals: Vec<Option<Value>> = vec![None; terms.len()];
                tr.eval_streamed(&part, &syms, |_, i, v| vals[i] = Some(v));
                // Left to right, as a sum is evaluated everywhere.
                let mut acc = vals[0].expect("every term is computed");
                for v in &vals[1..] {
                    acc = tr.builder.ins().fadd(acc, v.expect("every term is computed"));
                }
                tr.builder.ins().store(mem(), acc, out, 0);
                tr.builder.ins().return_(&[]);
            })?;
            parts.push(id);
        }
        let total: usize = groups.iter().map(Vec::len).sum();
        self.function(&format!("expr_{name}"), sig, |tr, args| {
            let (x, out) = (args[0], args[1]);
            let slot = tr.builder.create_sized_stack_slot(StackSlotData::new(
                StackSlotKind::ExplicitSlot,
                (8 * total) as u32,
                3,
            ));
            let mut k = 0;
            for (i, root_groups) in groups.iter().enumerate() {
                let mut acc: Option<Value> = None;
                for _ in root_groups {
                    let addr = tr.builder.ins().stack_addr(tr.pointer, slot, (8 * k) as i32);
                    let f = tr.module.declare_func_in_func(parts[k], tr.builder.func);
                    tr.builder.ins().call(f, &[x, addr]);
                    let v = tr.builder.ins().load(types::F64, mem(), addr, 0);
                    acc = Some(match acc {
                        None => v,
                        Some(a) => tr.builder.ins().fadd(a, v),
                    });
                    k += 1;
                }
                tr.builder.ins().store(mem(), acc.expect("a root has a group"), out, (8 * i) as i32);
            }
            tr.builder.ins().return_(&[]);
        })
    }
}

/// Every input read from `x[k]` where first used.
fn load_inputs(inputs: &[SymId], x: Value) -> HashMap<SymId, Input> {
    inputs.iter().enumerate().map(|(k, s)| (*s, Input::Load { ptr: x, offset: (8 * k) as i32 })).collect()
}
