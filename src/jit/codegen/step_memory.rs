//! The fixed-step loops of large systems, whose right-hand side is called out of line: the
//! state stays in the caller's array and every stage works on scratch arrays the caller
//! provides, through short counted loops. Code size and register pressure then do not grow
//! with the system, and nothing sized by the system lives on the stack. The arithmetic is
//! that of the loops in `step.rs`, operation for operation.

use super::system::call_checked;
use super::{ModuleBuilder, Scheme, System, CAUSE_NON_FINITE, CAUSE_SINGULAR};
use crate::jit::translate::{mem, FunctionTranslator};
use cranelift_codegen::ir::{
    condcodes::{FloatCC, IntCC},
    types, Block, InstBuilder, Value,
};
use cranelift_frontend::Variable;
use cranelift_module::{FuncId, Module};

/// Doubles of scratch a loop over a system of dimension `d` needs: RK4 uses `k1…k4`, the
/// stage state and the new state; Verlet fewer.
pub(crate) fn scratch_len(d: usize) -> usize {
    6 * d
}

/// Emits `for off in (0..8·count).step_by(8) { body(tr, off) }`, `off` the byte offset of
/// entry `i` as an `i64` value.
fn emit_for(tr: &mut FunctionTranslator, count: usize, mut body: impl FnMut(&mut FunctionTranslator, Value)) {
    let i64t = types::I64;
    let var = tr.builder.declare_var(i64t);
    let zero = tr.builder.ins().iconst(i64t, 0);
    tr.builder.def_var(var, zero);
    let header = tr.builder.create_block();
    let body_block = tr.builder.create_block();
    let exit = tr.builder.create_block();
    tr.builder.ins().jump(header, &[]);
    tr.builder.switch_to_block(header);
    let off = tr.builder.use_var(var);
    let end = tr.builder.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, off, (8 * count) as i64);
    tr.builder.ins().brif(end, exit, &[], body_block, &[]);
    tr.builder.switch_to_block(body_block);
    body(tr, off);
    let next = tr.builder.ins().iadd_imm_s(off, 8);
    tr.builder.def_var(var, next);
    tr.builder.ins().jump(header, &[]);
    tr.builder.switch_to_block(exit);
}

/// An accepted step: `k += 1` and the countdown to the next row; to
/// `write_row` when a row is due, else back to `header`.
pub(super) fn count_step(
    tr: &mut FunctionTranslator,
    (k_var, cd_var): (Variable, Variable),
    write_row: Block,
    header: Block,
) {
    let k = tr.builder.use_var(k_var);
    let k_next = tr.builder.ins().iadd_imm_s(k, 1);
    tr.builder.def_var(k_var, k_next);
    let cd = tr.builder.use_var(cd_var);
    let cd_next = tr.builder.ins().iadd_imm_s(cd, -1);
    tr.builder.def_var(cd_var, cd_next);
    let due = tr.builder.ins().icmp_imm_s(IntCC::Equal, cd_next, 0);
    tr.builder.ins().brif(due, write_row, &[], header, &[]);
}

/// Stores the time `t0 + k h` of step `k` at the start of the current row;
/// returns the row's address.
pub(super) fn row_time(
    tr: &mut FunctionTranslator,
    k_var: Variable,
    row_var: Variable,
    (t0, h): (Value, Value),
) -> Value {
    let k = tr.builder.use_var(k_var);
    let kf = tr.builder.ins().fcvt_from_sint(types::F64, k);
    let kh = tr.builder.ins().fmul(kf, h);
    let t = tr.builder.ins().fadd(t0, kh);
    let row = tr.builder.use_var(row_var);
    tr.builder.ins().store(mem(), t, row, 0);
    row
}

/// `ptr[off]` as a double.
fn load_at(tr: &mut FunctionTranslator, ptr: Value, off: Value) -> Value {
    let addr = tr.builder.ins().iadd(ptr, off);
    tr.builder.ins().load(types::F64, mem(), addr, 0)
}

/// `ptr[off] = v`.
fn store_at(tr: &mut FunctionTranslator, v: Value, ptr: Value, off: Value) {
    let addr = tr.builder.ins().iadd(ptr, off);
    tr.builder.ins().store(mem(), v, addr, 0);
}

/// `dst[i] = src[i]` for `count` doubles.
pub(super) fn copy(tr: &mut FunctionTranslator, dst: Value, src: Value, count: usize) {
    emit_for(tr, count, |tr, off| {
        let v = load_at(tr, src, off);
        store_at(tr, v, dst, off);
    });
}

/// `dst[i] = y[i] + a·x[i]` for `count` doubles.
fn axpy(tr: &mut FunctionTranslator, dst: Value, y: Value, a: Value, x: Value, count: usize) {
    emit_for(tr, count, |tr, off| {
        let xi = load_at(tr, x, off);
        let yi = load_at(tr, y, off);
        let ax = tr.builder.ins().fmul(a, xi);
        let s = tr.builder.ins().fadd(yi, ax);
        store_at(tr, s, dst, off);
    });
}

/// Whether some one of `count` doubles at `ptr` is not finite: `Σ 0·x_i` is NaN exactly when
/// some `x_i` is not.
fn any_non_finite(tr: &mut FunctionTranslator, ptr: Value, count: usize) -> Value {
    let var = tr.builder.declare_var(types::F64);
    let zero = tr.builder.ins().f64const(0.0);
    tr.builder.def_var(var, zero);
    emit_for(tr, count, |tr, off| {
        let x = load_at(tr, ptr, off);
        let zero = tr.builder.ins().f64const(0.0);
        let z = tr.builder.ins().fmul(x, zero);
        let acc = tr.builder.use_var(var);
        let acc = tr.builder.ins().fadd(acc, z);
        tr.builder.def_var(var, acc);
    });
    let probe = tr.builder.use_var(var);
    tr.builder.ins().fcmp(FloatCC::Unordered, probe, probe)
}

impl ModuleBuilder<'_> {
    /// The fixed-step loop of `scheme` with the state in memory: the signature of
    /// `step_loop`, the last argument the scratch array of [`scratch_len`] doubles.
    pub(super) fn step_loop_in_memory(
        &mut self,
        sys: &System,
        rhs: FuncId,
        scheme: Scheme,
    ) -> Result<FuncId, crate::jit::JitError> {
        let p = self.module.target_config().pointer_type();
        let i64t = types::I64;
        let sig = self.signature(&[types::F64, types::F64, i64t, i64t, p, p, p, p, p], &[i64t]);
        self.function(&format!("{}_{}", sys.name, scheme.name()), sig, |tr, args| {
            let (t0, h, n_steps, every) = (args[0], args[1], args[2], args[3]);
            let (y, p_ptr, rows, cause, scratch) = (args[4], args[5], args[6], args[7], args[8]);
            let d = sys.dim();
            let stride = (8 * (d + 1)) as i64;
            let buffer =
                |tr: &mut FunctionTranslator, k: usize| tr.builder.ins().iadd_imm_s(scratch, (8 * d * k) as i64);
            let (k1, k2, k3, k4, stage, next) =
                (scratch, buffer(tr, 1), buffer(tr, 2), buffer(tr, 3), buffer(tr, 4), buffer(tr, 5));

            let b = &mut tr.builder;
            let header = b.create_block();
            let body = b.create_block();
            let commit = b.create_block();
            let write_row = b.create_block();
            let done = b.create_block();
            let singular = b.create_block();
            let non_finite = b.create_block();
            b.set_cold_block(singular);
            b.set_cold_block(non_finite);
            let k_var = b.declare_var(i64t);
            let cd_var = b.declare_var(i64t);
            let row_var = b.declare_var(p);

            let half = b.ins().f64const(0.5);
            let hh = b.ins().fmul(h, half);
            let six = b.ins().f64const(6.0);
            let h6 = b.ins().fdiv(h, six);
            let two = b.ins().f64const(2.0);
            let zero = b.ins().iconst(i64t, 0);
            b.def_var(k_var, zero);
            b.def_var(cd_var, every);
            b.ins().store(mem(), t0, rows, 0);
            let first = b.ins().iadd_imm_s(rows, 8);
            copy(tr, first, y, d);
            let next_row = tr.builder.ins().iadd_imm_s(rows, stride);
            tr.builder.def_var(row_var, next_row);
            if scheme == Scheme::Verlet {
                // The stage state is (q, 0): the velocities stay zero. `k1` holds a(q) of
                // the current state, from step to step.
                let n = d / 2;
                let v = tr.builder.ins().iadd_imm_s(stage, (8 * n) as i64);
                emit_for(tr, n, |tr, off| {
                    let z = tr.builder.ins().f64const(0.0);
                    store_at(tr, z, v, off);
                });
                copy(tr, stage, y, n);
                call_checked(tr, rhs, (t0, stage, p_ptr, k1), singular);
            }
            tr.builder.ins().jump(header, &[]);

            tr.builder.switch_to_block(header);
            let k = tr.builder.use_var(k_var);
            let end = tr.builder.ins().icmp(IntCC::SignedGreaterThanOrEqual, k, n_steps);
            tr.builder.ins().brif(end, done, &[], body, &[]);

            // body: one step from t0 + k h into `next`; `y` is untouched until it is known finite.
            tr.builder.switch_to_block(body);
            let kf = tr.builder.ins().fcvt_from_sint(types::F64, k);
            let time = |tr: &mut FunctionTranslator, offset: f64| {
                let c = tr.builder.ins().f64const(offset);
                let s = if offset == 0.0 { kf } else { tr.builder.ins().fadd(kf, c) };
                let sh = tr.builder.ins().fmul(s, h);
                tr.builder.ins().fadd(t0, sh)
            };
            let t1 = time(tr, 0.0);
            let tm = time(tr, 0.5);
            let t4 = time(tr, 1.0);
            match scheme {
                Scheme::Rk4 => {
                    call_checked(tr, rhs, (t1, y, p_ptr, k1), singular);
                    axpy(tr, stage, y, hh, k1, d);
                    call_checked(tr, rhs, (tm, stage, p_ptr, k2), singular);
                    axpy(tr, stage, y, hh, k2, d);
                    call_checked(tr, rhs, (tm, stage, p_ptr, k3), singular);
                    axpy(tr, stage, y, h, k3, d);
                    call_checked(tr, rhs, (t4, stage, p_ptr, k4), singular);
                    // next = y + h/6 · (((k1 + 2 k2) + 2 k3) + k4)
                    emit_for(tr, d, |tr, off| {
                        let (a1, a2, a3, a4) =
                            (load_at(tr, k1, off), load_at(tr, k2, off), load_at(tr, k3, off), load_at(tr, k4, off));
                        let a = tr.ins().fmul(two, a2);
                        let s = tr.ins().fadd(a1, a);
                        let c = tr.ins().fmul(two, a3);
                        let s = tr.ins().fadd(s, c);
                        let s = tr.ins().fadd(s, a4);
                        let yi = load_at(tr, y, off);
                        let hs = tr.ins().fmul(h6, s);
                        let n = tr.ins().fadd(yi, hs);
                        store_at(tr, n, next, off);
                    });
                }
                Scheme::Verlet => {
                    // v½ = v + h/2 a(q), q' = q + h v½, v' = v½ + h/2 a(q'), with
                    // a(q) the right-hand side at (q, 0), carried in `k1`; a(q') goes to
                    // `k2` and replaces it when the step is accepted.
                    let n = d / 2;
                    let at = |tr: &mut FunctionTranslator, ptr: Value| tr.builder.ins().iadd_imm_s(ptr, (8 * n) as i64);
                    let (yv, next_v, acc, acc_new) = (at(tr, y), at(tr, next), at(tr, k1), at(tr, k2));
                    axpy(tr, next_v, yv, hh, acc, n);
                    axpy(tr, next, y, h, next_v, n);
                    copy(tr, stage, next, n);
                    call_checked(tr, rhs, (t4, stage, p_ptr, k2), singular);
                    axpy(tr, next_v, next_v, hh, acc_new, n);
                }
                Scheme::EulerMaruyama => unreachable!("the Euler–Maruyama block is built by `em_block`"),
            }
            let bad = any_non_finite(tr, next, d);
            tr.builder.ins().brif(bad, non_finite, &[], commit, &[]);

            // commit: accept the step; write a row every `every` steps.
            tr.builder.switch_to_block(commit);
            copy(tr, y, next, d);
            if scheme == Scheme::Verlet {
                let n = d / 2;
                let (acc, acc_new) =
                    (tr.builder.ins().iadd_imm_s(k1, (8 * n) as i64), tr.builder.ins().iadd_imm_s(k2, (8 * n) as i64));
                copy(tr, acc, acc_new, n);
            }
            count_step(tr, (k_var, cd_var), write_row, header);

            tr.builder.switch_to_block(write_row);
            let row = row_time(tr, k_var, row_var, (t0, h));
            let values = tr.builder.ins().iadd_imm_s(row, 8);
            copy(tr, values, y, d);
            let row = tr.builder.use_var(row_var);
            let next_row = tr.builder.ins().iadd_imm_s(row, stride);
            tr.builder.def_var(row_var, next_row);
            tr.builder.def_var(cd_var, every);
            tr.builder.ins().jump(header, &[]);

            // Exits: `y` holds the last accepted state; report the steps done.
            for (block, code) in [(done, 0), (singular, CAUSE_SINGULAR), (non_finite, CAUSE_NON_FINITE)] {
                tr.builder.switch_to_block(block);
                let c = tr.builder.ins().iconst(i64t, code);
                tr.builder.ins().store(mem(), c, cause, 0);
                let k = tr.builder.use_var(k_var);
                tr.builder.ins().return_(&[k]);
            }
        })
    }
}
