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

    /// The kernel as parts: consecutive expressions packed into functions of
    /// about [`PART_NODES`] nodes that write their values, and an expression
    /// larger than that (a sum of many terms) split into groups of terms whose
    /// partial sums are added in order.
    fn expr_kernel_in_parts(&mut self, name: &str, inputs: &[SymId], plan: &Plan) -> Result<FuncId, JitError> {
        let arena = self.arena;
        let p = self.module.target_config().pointer_type();
        let sig = self.signature(&[p, p], &[]);
        // The parts, in order: roots written whole, or groups of one root's terms.
        enum Part {
            Whole(Vec<usize>),
            Terms(usize, Vec<ExprId>),
        }
        let mut parts: Vec<Part> = Vec::new();
        let mut size = 0;
        for (i, &r) in plan.roots.iter().enumerate() {
            let s = arena.dag_size(&[r]);
            match arena.node(r) {
                Node::Add(xs) if s > PART_NODES => {
                    let mut group: Vec<ExprId> = Vec::new();
                    let mut g_size = 0;
                    for &t in xs.iter() {
                        let ts = arena.dag_size(&[t]);
                        if g_size + ts > PART_NODES && !group.is_empty() {
                            parts.push(Part::Terms(i, std::mem::take(&mut group)));
                            g_size = 0;
                        }
                        g_size += ts;
                        group.push(t);
                    }
                    parts.push(Part::Terms(i, group));
                    size = PART_NODES;
                }
                _ => {
                    match parts.last_mut() {
                        Some(Part::Whole(roots)) if size + s <= PART_NODES => roots.push(i),
                        _ => {
                            parts.push(Part::Whole(vec![i]));
                            size = 0;
                        }
                    }
                    size += s;
                }
            }
        }
        let mut ids: Vec<FuncId> = Vec::new();
        for (k, part) in parts.iter().enumerate() {
            let roots: Vec<ExprId> = match part {
                Part::Whole(is) => is.iter().map(|&i| plan.roots[i]).collect(),
                Part::Terms(_, terms) => terms.clone(),
            };
            let sub = Plan::batched(arena, &roots, inputs, name, None)?;
            let id = self.function(&format!("expr_{name}_part{k}"), sig.clone(), |tr, args| {
                let (x, out) = (args[0], args[1]);
                let syms = load_inputs(inputs, x);
                match part {
                    Part::Whole(is) => {
                        tr.eval_streamed(&sub, &syms, |tr, j, v| {
                            tr.builder.ins().store(mem(), v, out, (8 * is[j]) as i32);
                        });
                    }
                    Part::Terms(..) => {
                        let mut vals: Vec<Option<Value>> = vec![None; roots.len()];
                        tr.eval_streamed(&sub, &syms, |_, j, v| vals[j] = Some(v));
                        // Left to right, as a sum is evaluated everywhere.
                        let mut acc = vals[0].expect("every term is computed");
                        for v in &vals[1..] {
                            acc = tr.builder.ins().fadd(acc, v.expect("every term is computed"));
                        }
                        tr.builder.ins().store(mem(), acc, out, 0);
                    }
                }
                tr.builder.ins().return_(&[]);
            })?;
            ids.push(id);
        }
        self.function(&format!("expr_{name}"), sig, |tr, args| {
            let (x, out) = (args[0], args[1]);
            let slot = tr.builder.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 8, 3));
            let addr = tr.builder.ins().stack_addr(tr.pointer, slot, 0);
            // The partial sums of the root being split, added in order.
            let mut acc: Option<(usize, Value)> = None;
            for (part, &id) in parts.iter().zip(&ids) {
                let f = tr.module.declare_func_in_func(id, tr.builder.func);
                match part {
                    Part::Whole(_) => {
                        tr.builder.ins().call(f, &[x, out]);
                    }
                    Part::Terms(i, _) => {
                        tr.builder.ins().call(f, &[x, addr]);
                        let v = tr.builder.ins().load(types::F64, mem(), addr, 0);
                        let sum = match acc {
                            Some((j, a)) if j == *i => tr.builder.ins().fadd(a, v),
                            _ => v,
                        };
                        acc = Some((*i, sum));
                        tr.builder.ins().store(mem(), sum, out, (8 * i) as i32);
                    }
                }
            }
            tr.builder.ins().return_(&[]);
        })
    }
}

/// Every input read from `x[k]` where first used.
fn load_inputs(inputs: &[SymId], x: Value) -> HashMap<SymId, Input> {
    inputs.iter().enumerate().map(|(k, s)| (*s, Input::Load { ptr: x, offset: (8 * k) as i32 })).collect()
}
