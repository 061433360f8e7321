//! Störmer–Verlet for a system whose accelerations are given by segments of
//! rows (`System::looped`): two passes over the state per step, as a
//! hand-written lattice loop makes them. The first kicks and drifts; the
//! second computes the new accelerations segment by segment and kicks with
//! each as soon as it is known. The state is double-buffered: a step writes the
//! other buffer and the two swap once it is known finite, so a failed step
//! leaves the last accepted state. The arithmetic is that of the loop in
//! `step_memory.rs`, operation for operation (docs/numerics.md §Störmer–Verlet).

use super::step_memory::{copy, count_step, row_time};
use super::system::{emit_counted, two_rows};
use super::{ModuleBuilder, System, CAUSE_NON_FINITE};
use crate::jit::translate::{lanes_mem, mem, FunctionTranslator, LANES};
use cranelift_codegen::ir::{condcodes::IntCC, types, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::Variable;
use cranelift_module::{FuncId, Module};

/// `ptr + byte + offset` as a value of type `ty`: a double, or two ([`LANES`]).
fn load(tr: &mut FunctionTranslator, ty: Type, ptr: Value, byte: Value, offset: i32) -> Value {
    let addr = tr.builder.ins().iadd(ptr, byte);
    tr.builder.ins().load(ty, flags(ty), addr, offset)
}

fn store(tr: &mut FunctionTranslator, v: Value, ptr: Value, byte: Value, offset: i32) {
    let ty = tr.builder.func.dfg.value_type(v);
    let addr = tr.builder.ins().iadd(ptr, byte);
    tr.builder.ins().store(flags(ty), v, addr, offset);
}

/// The memory flags of an access of type `ty` to the state and scratch arrays (8-byte aligned).
fn flags(ty: Type) -> MemFlagsData {
    if ty == LANES {
        lanes_mem()
    } else {
        mem()
    }
}

/// What a step has seen of its values' finiteness: the bitwise or of `x − x` over every
/// value `x`, which is `+0` for a finite `x` and NaN otherwise; one accumulator for single
/// values and one for pairs. A bitwise `or` keeps the chain from value to value one cycle long.
#[derive(Clone, Copy)]
struct Watch {
    one: Variable,
    two: Variable,
}

impl Watch {
    fn declare(tr: &mut FunctionTranslator) -> Watch {
        let one = tr.builder.declare_var(types::F64);
        let two = tr.builder.declare_var(LANES);
        Watch { one, two }
    }

    /// Both accumulators to `+0`, at the start of a step.
    fn reset(self, tr: &mut FunctionTranslator) {
        let zero = tr.builder.ins().f64const(0.0);
        let zeros = tr.builder.ins().splat(LANES, zero);
        tr.builder.def_var(self.one, zero);
        tr.builder.def_var(self.two, zeros);
    }

    fn see(self, tr: &mut FunctionTranslator, x: Value) {
        let var = if tr.builder.func.dfg.value_type(x) == LANES { self.two } else { self.one };
        let d = tr.builder.ins().fsub(x, x);
        let a = tr.builder.use_var(var);
        let s = tr.builder.ins().bor(a, d);
        tr.builder.def_var(var, s);
    }

    /// Whether some value seen is not finite: an `i8`, nonzero when one is not.
    fn any_non_finite(self, tr: &mut FunctionTranslator) -> Value {
        let (one, two) = (tr.builder.use_var(self.one), tr.builder.use_var(self.two));
        let lo = tr.builder.ins().extractlane(two, 0);
        let hi = tr.builder.ins().extractlane(two, 1);
        let both = tr.builder.ins().bor(lo, hi);
        let all = tr.builder.ins().bor(one, both);
        let bits = tr.builder.ins().bitcast(types::I64, MemFlagsData::new(), all);
        tr.builder.ins().icmp_imm_s(IntCC::NotEqual, bits, 0)
    }
}

impl ModuleBuilder<'_> {
    /// The Verlet loop of a looped system, with the signature of `step_loop`;
    /// `scratch` holds `4 n + 2 n` doubles (see [`super::scratch_len`]).
    pub(super) fn verlet_looped(&mut self, sys: &System) -> Result<FuncId, crate::jit::JitError> {
        let p = self.module.target_config().pointer_type();
        let i64t = types::I64;
        let sig = self.signature(&[types::F64, types::F64, i64t, i64t, p, p, p, p, p], &[i64t]);
        self.function(&format!("{}_verlet", sys.name), sig, |tr, args| {
            let (t0, h, n_steps, every) = (args[0], args[1], args[2], args[3]);
            let (y, p_ptr, rows, cause, scratch) = (args[4], args[5], args[6], args[7], args[8]);
            let d = sys.dim();
            let n = d / 2;
            let nb = (8 * n) as i32;
            let stride = (8 * (d + 1)) as i64;
            // Buffers: the other state (2n), the accelerations of both states (n each).
            let other = scratch;
            let acc_a = tr.builder.ins().iadd_imm_s(scratch, (8 * d) as i64);
            let acc_b = tr.builder.ins().iadd_imm_s(scratch, (8 * (d + n)) as i64);

            let cur_var = tr.builder.declare_var(p);
            let next_var = tr.builder.declare_var(p);
            let acc_var = tr.builder.declare_var(p);
            let acc_next_var = tr.builder.declare_var(p);
            let k_var = tr.builder.declare_var(i64t);
            let cd_var = tr.builder.declare_var(i64t);
            let row_var = tr.builder.declare_var(p);
            let watch = Watch::declare(tr);
            for (v, x) in [(cur_var, y), (next_var, other), (acc_var, acc_a), (acc_next_var, acc_b)] {
                tr.builder.def_var(v, x);
            }
            let zero = tr.builder.ins().iconst(i64t, 0);
            tr.builder.def_var(k_var, zero);
            tr.builder.def_var(cd_var, every);
            let half = tr.builder.ins().f64const(0.5);
            let hh = tr.builder.ins().fmul(h, half);

            // The first row, and a(q) of the initial state.
            tr.builder.ins().store(mem(), t0, rows, 0);
            let first = tr.builder.ins().iadd_imm_s(rows, 8);
            copy(tr, first, y, d);
            let next_row = tr.builder.ins().iadd_imm_s(rows, stride);
            tr.builder.def_var(row_var, next_row);
            sys.emit_segments(tr, t0, (y, p_ptr), &mut |tr, byte, a| store(tr, a, acc_a, byte, 0));

            let header = tr.builder.create_block();
            let body = tr.builder.create_block();
            let commit = tr.builder.create_block();
            let write_row = tr.builder.create_block();
            let finish = tr.builder.create_block();
            let non_finite = tr.builder.create_block();
            tr.builder.set_cold_block(non_finite);
            tr.builder.ins().jump(header, &[]);

            tr.builder.switch_to_block(header);
            let k = tr.builder.use_var(k_var);
            let end = tr.builder.ins().icmp(IntCC::SignedGreaterThanOrEqual, k, n_steps);
            tr.builder.ins().brif(end, finish, &[], body, &[]);

            // One step from `cur` into `next`.
            tr.builder.switch_to_block(body);
            let (cur, nxt, acc, acc_new) = (
                tr.builder.use_var(cur_var),
                tr.builder.use_var(next_var),
                tr.builder.use_var(acc_var),
                tr.builder.use_var(acc_next_var),
            );
            watch.reset(tr);
            // v½ = v + h/2 a(q), q' = q + h v½, two coordinates at a time, then the last of an odd count.
            let (hh2, h2) = (tr.builder.ins().splat(LANES, hh), tr.builder.ins().splat(LANES, h));
            let kick_drift = |tr: &mut FunctionTranslator, i: Value, ty: Type| {
                let byte = tr.builder.ins().imul_imm_s(i, 8);
                let (q, v, a) = (load(tr, ty, cur, byte, 0), load(tr, ty, cur, byte, nb), load(tr, ty, acc, byte, 0));
                let (hh, h) = if ty == LANES { (hh2, h2) } else { (hh, h) };
                let ka = tr.builder.ins().fmul(hh, a);
                let vh = tr.builder.ins().fadd(v, ka);
                let dq = tr.builder.ins().fmul(h, vh);
                let q1 = tr.builder.ins().fadd(q, dq);
                store(tr, q1, nxt, byte, 0);
                store(tr, vh, nxt, byte, nb);
                watch.see(tr, q1);
            };
            let pairs = if two_rows() { n / 2 } else { 0 };
            emit_counted(tr, 0, pairs as i64, |tr, j| {
                let i = tr.builder.ins().imul_imm_s(j, 2);
                kick_drift(tr, i, LANES);
            });
            emit_counted(tr, 2 * pairs as i64, n as i64, |tr, i| kick_drift(tr, i, types::F64));
            // a(q') row by row, and v' = v½ + h/2 a(q') with each.
            let kf = tr.builder.ins().fcvt_from_sint(types::F64, k);
            let one = tr.builder.ins().f64const(1.0);
            let k1 = tr.builder.ins().fadd(kf, one);
            let kh = tr.builder.ins().fmul(k1, h);
            let t4 = tr.builder.ins().fadd(t0, kh);
            sys.emit_segments(tr, t4, (nxt, p_ptr), &mut |tr, byte, a| {
                // `byte` is 8·row, the row a coordinate's index; `a` one row or two.
                let ty = tr.builder.func.dfg.value_type(a);
                store(tr, a, acc_new, byte, 0);
                let vh = load(tr, ty, nxt, byte, nb);
                let hh = if ty == LANES { hh2 } else { hh };
                let ka = tr.builder.ins().fmul(hh, a);
                let v1 = tr.builder.ins().fadd(vh, ka);
                store(tr, v1, nxt, byte, nb);
                watch.see(tr, v1);
            });
            let bad = watch.any_non_finite(tr);
            tr.builder.ins().brif(bad, non_finite, &[], commit, &[]);

            // Accept: swap the buffers; write a row every `every` steps.
            tr.builder.switch_to_block(commit);
            tr.builder.def_var(cur_var, nxt);
            tr.builder.def_var(next_var, cur);
            tr.builder.def_var(acc_var, acc_new);
            tr.builder.def_var(acc_next_var, acc);
            count_step(tr, (k_var, cd_var), write_row, header);

            tr.builder.switch_to_block(write_row);
            let row = row_time(tr, k_var, row_var, (t0, h));
            let cur = tr.builder.use_var(cur_var);
            let values = tr.builder.ins().iadd_imm_s(row, 8);
            copy(tr, values, cur, d);
            let next_row = tr.builder.ins().iadd_imm_s(row, stride);
            tr.builder.def_var(row_var, next_row);
            tr.builder.def_var(cd_var, every);
            tr.builder.ins().jump(header, &[]);

            // Exits: the last accepted state goes to `y`; report the steps done.
            for (block, code) in [(finish, 0), (non_finite, CAUSE_NON_FINITE)] {
                tr.builder.switch_to_block(block);
                let cur = tr.builder.use_var(cur_var);
                let same = tr.builder.ins().icmp(IntCC::Equal, cur, y);
                let back = tr.builder.create_block();
                let out = tr.builder.create_block();
                tr.builder.ins().brif(same, out, &[], back, &[]);
                tr.builder.switch_to_block(back);
                copy(tr, y, cur, d);
                tr.builder.ins().jump(out, &[]);
                tr.builder.switch_to_block(out);
                let c = tr.builder.ins().iconst(i64t, code);
                tr.builder.ins().store(mem(), c, cause, 0);
                let k = tr.builder.use_var(k_var);
                tr.builder.ins().return_(&[k]);
            }
        })
    }
}
