//! Expression kernels: functions `fn(x, out)` that read their inputs from an array and write the
//! values of their expressions in order.

use super::ModuleBuilder;
use crate::jit::translate::FunctionTranslator;
use crate::jit::translate::{mem, Input, Plan};
use crate::jit::JitError;
use crate::sym::{Arena, ExprId, Node, SymId};
use cranelift_codegen::ir::{condcodes::IntCC, types, InstBuilder, StackSlotData, StackSlotKind, Value};
use cranelift_module::{FuncId, Module};
use std::collections::HashMap;
use std::ops::Range;

/// An expression kernel whose plan has more nodes than this is compiled as
/// parts of about this size, each computing a partial sum of one expression
/// (the energy of a lattice is a sum of thousands of terms): register
/// allocation grows faster than a function, so parts keep the compile time
/// linear in the kernel. The partial sums are added in order.
const PART_NODES: usize = 8_000;

/// Runs of at least this many consecutive outputs with the same constant
/// value (the zeros of a dense table of second derivatives) are written by a
/// loop instead of a store each, so that code size follows the nonzeros.
const FILL_MIN: usize = 16;

/// Where an expression kernel's values go: runs of equal constants written
/// by loops, and the outputs computed from the plan (the plan's roots are
/// `computed`'s outputs, in order).
#[derive(Clone, Debug)]
pub(crate) struct Outputs {
    /// Output ranges and the constant each holds.
    pub fills: Vec<(Range<usize>, f64)>,
    /// The outputs the plan computes, by output index.
    pub computed: Vec<usize>,
}

impl Outputs {
    /// The layout of `outputs`: runs of [`FILL_MIN`] or more equal numbers
    /// filled, the rest computed.
    pub fn of(arena: &Arena, outputs: &[ExprId]) -> Outputs {
        let mut fills = Vec::new();
        let mut computed = Vec::with_capacity(outputs.len());
        let mut i = 0;
        while i < outputs.len() {
            let run = match arena.node(outputs[i]) {
                Node::Num(_) => outputs[i..].iter().take_while(|&&e| e == outputs[i]).count(),
                _ => 1,
            };
            match arena.node(outputs[i]) {
                Node::Num(n) if run >= FILL_MIN => fills.push((i..i + run, n.to_f64())),
                _ => computed.extend(i..i + run),
            }
            i += run;
        }
        Outputs { fills, computed }
    }

    /// Writes every run of constants to the output array `out`.
    fn emit_fills(&self, tr: &mut FunctionTranslator, out: Value) {
        for (range, value) in &self.fills {
            emit_fill(tr, out, range, *value);
        }
    }

    /// The byte offset in the output array of the plan's root `j`.
    fn offset(&self, j: usize) -> i32 {
        (8 * self.computed[j]) as i32
    }
}

/// Writes `value` to `out[range]` in a counted loop.
fn emit_fill(tr: &mut FunctionTranslator, out: Value, range: &Range<usize>, value: f64) {
    let header = tr.builder.create_block();
    let body = tr.builder.create_block();
    let exit = tr.builder.create_block();
    tr.builder.append_block_param(header, types::I64);
    let c = tr.builder.ins().f64const(value);
    let start = tr.builder.ins().iconst(types::I64, 8 * range.start as i64);
    tr.builder.ins().jump(header, &[start.into()]);
    tr.builder.switch_to_block(header);
    let at = tr.builder.block_params(header)[0];
    let end = tr.builder.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, at, 8 * range.end as i64);
    tr.builder.ins().brif(end, exit, &[], body, &[]);
    tr.builder.switch_to_block(body);
    tr.builder.seal_block(body);
    let addr = tr.builder.ins().iadd(out, at);
    tr.builder.ins().store(mem(), c, addr, 0);
    let next = tr.builder.ins().iadd_imm_s(at, 8);
    tr.builder.ins().jump(header, &[next.into()]);
    tr.builder.seal_block(header);
    tr.builder.switch_to_block(exit);
    tr.builder.seal_block(exit);
}

impl ModuleBuilder<'_> {
    /// An expression kernel `fn(x, out)`.
    pub fn expr_kernel(
        &mut self,
        name: &str,
        inputs: &[SymId],
        plan: &Plan,
        outputs: &Outputs,
    ) -> Result<FuncId, JitError> {
        if plan.node_count() > 2 * PART_NODES && !plan.has_loops() {
            return self.expr_kernel_in_parts(name, inputs, plan, outputs);
        }
        let p = self.module.target_config().pointer_type();
        let sig = self.signature(&[p, p], &[]);
        self.function(&format!("expr_{name}"), sig, |tr, args| {
            let (x, out) = (args[0], args[1]);
            outputs.emit_fills(tr, out);
            // Inputs are loaded where first used and outputs stored as soon as
            // computed, so that no value lives across the whole kernel.
            let syms = load_inputs(inputs, x);
            tr.eval_streamed(plan, &syms, |tr, i, v| {
                tr.builder.ins().store(mem(), v, out, outputs.offset(i));
            });
            tr.builder.ins().return_(&[]);
        })
    }

    /// The kernel as parts: consecutive expressions packed into functions of
    /// about [`PART_NODES`] nodes that write their values, and an expression
    /// larger than that (a sum of many terms) split into groups of terms whose
    /// partial sums are added in order.
    fn expr_kernel_in_parts(
        &mut self,
        name: &str,
        inputs: &[SymId],
        plan: &Plan,
        outputs: &Outputs,
    ) -> Result<FuncId, JitError> {
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
                            tr.builder.ins().store(mem(), v, out, outputs.offset(is[j]));
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
            outputs.emit_fills(tr, out);
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
                        tr.builder.ins().store(mem(), sum, out, outputs.offset(*i));
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
