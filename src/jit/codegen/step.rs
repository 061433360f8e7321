//! The fixed-step loops, RK4 and Störmer–Verlet: each integrates a system over many steps in
//! one function, writing a row of the output every `every` steps.

use super::system::call_rhs;
use super::{ModuleBuilder, Scheme, System, CAUSE_NON_FINITE, CAUSE_SINGULAR};
use crate::jit::translate::{mem, FunctionTranslator};
use crate::jit::JitError;
use cranelift_codegen::ir::{
    condcodes::{FloatCC, IntCC},
    types, InstBuilder, Value,
};
use cranelift_module::{FuncId, Module};

/// The smallest state kept in memory by the loops of a system called out of line. Below it,
/// registers are faster (the FPUT lattice of 64 sites: 1.2 µs per Verlet step against 1.8 µs
/// in memory) and compile in about the same time; above it, register allocation of the
/// loop-carried state grows faster than the system (13 s for RK4 at 2,048 entries, against
/// 1.5 s in memory).
pub(crate) const MEMORY_LOOP_MIN_DIM: usize = 128;

impl ModuleBuilder<'_> {
    /// The fixed-step loop of `scheme`; `rhs` is the compiled right-hand side, called
    /// when the system is too large to inline.
    ///
    /// `fn(t0, h, n_steps, every, y, p, rows, cause, scratch) -> steps`. The state lives
    /// in registers (`scratch` unused) unless the system is called out of line and has more
    /// than [`MEMORY_LOOP_MIN_DIM`] entries; then it is stepped in memory (`step_memory.rs`).
    pub fn step_loop(&mut self, sys: &System, rhs: FuncId, scheme: Scheme) -> Result<FuncId, JitError> {
        // The two-pass loop kicks with each acceleration as it is computed; a system that
        // solves after its rows steps in memory through its right-hand side.
        if !sys.looped.is_empty() && scheme == Scheme::Verlet && sys.solve.is_none() {
            return self.verlet_looped(sys);
        }
        if sys.steps_in_memory() {
            return self.step_loop_in_memory(sys, rhs, scheme);
        }
        let p = self.module.target_config().pointer_type();
        let i64t = types::I64;
        let sig = self.signature(&[types::F64, types::F64, i64t, i64t, p, p, p, p, p], &[i64t]);
        self.function(&format!("{}_{}", sys.name, scheme.name()), sig, |tr, args| {
            let (t0, h, n_steps, every) = (args[0], args[1], args[2], args[3]);
            let (y_ptr, p_ptr, rows, cause) = (args[4], args[5], args[6], args[7]);
            let d = sys.dim();
            let stride = (8 * (d + 1)) as i64;
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

            // Loop state: the step index, the countdown to the next row, the row pointer, y.
            let k_var = b.declare_var(i64t);
            let cd_var = b.declare_var(i64t);
            let row_var = b.declare_var(p);
            let y_vars: Vec<_> = (0..d).map(|_| b.declare_var(types::F64)).collect();
            // Verlet carries the acceleration a(q) of the current state from step to step.
            let n_acc = if scheme == Scheme::Verlet { d / 2 } else { 0 };
            let a_vars: Vec<_> = (0..n_acc).map(|_| b.declare_var(types::F64)).collect();

            let half = b.ins().f64const(0.5);
            let hh = b.ins().fmul(h, half);
            let six = b.ins().f64const(6.0);
            let h6 = b.ins().fdiv(h, six);
            let two = b.ins().f64const(2.0);
            let y0 = tr.load_f64s(y_ptr, d);
            let pv = if sys.inline_in_loop() { sys.load_params(tr, p_ptr) } else { Vec::new() };
            let b = &mut tr.builder;
            for (var, v) in y_vars.iter().zip(&y0) {
                b.def_var(*var, *v);
            }
            let zero = b.ins().iconst(i64t, 0);
            b.def_var(k_var, zero);
            b.def_var(cd_var, every);
            tr.builder.ins().store(mem(), t0, rows, 0);
            tr.store_f64s(rows, 8, &y0);
            let next = tr.builder.ins().iadd_imm_s(rows, stride);
            tr.builder.def_var(row_var, next);
            if scheme == Scheme::Verlet {
                // a(q0), the right-hand side at (q0, 0).
                let zero_f = tr.builder.ins().f64const(0.0);
                let mut ys = y0[..n_acc].to_vec();
                ys.resize(d, zero_f);
                let a = stage_at(tr, (sys, rhs, &pv, p_ptr, singular), t0, &ys);
                for (var, v) in a_vars.iter().zip(&a[n_acc..]) {
                    tr.builder.def_var(*var, *v);
                }
            }
            tr.builder.ins().jump(header, &[]);

            // header: while k < n_steps
            tr.builder.switch_to_block(header);
            let k = tr.builder.use_var(k_var);
            let end = tr.builder.ins().icmp(IntCC::SignedGreaterThanOrEqual, k, n_steps);
            tr.builder.ins().brif(end, done, &[], body, &[]);

            // body: one RK4 step from t0 + k h.
            tr.builder.switch_to_block(body);
            let y: Vec<Value> = y_vars.iter().map(|v| tr.builder.use_var(*v)).collect();
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
            let stage = |tr: &mut FunctionTranslator, t: Value, ys: &[Value]| -> Vec<Value> {
                stage_at(tr, (sys, rhs, &pv, p_ptr, singular), t, ys)
            };
            let axpy = |tr: &mut FunctionTranslator, a: Value, x: &[Value]| -> Vec<Value> {
                y.iter()
                    .zip(x)
                    .map(|(&yi, &xi)| {
                        let ax = tr.builder.ins().fmul(a, xi);
                        tr.builder.ins().fadd(yi, ax)
                    })
                    .collect()
            };
            let (y_new, a_new) = match scheme {
                Scheme::Rk4 => {
                    let k1 = stage(tr, t1, &y);
                    let y2 = axpy(tr, hh, &k1);
                    let k2 = stage(tr, tm, &y2);
                    let y3 = axpy(tr, hh, &k2);
                    let k3 = stage(tr, tm, &y3);
                    let y4 = axpy(tr, h, &k3);
                    let k4 = stage(tr, t4, &y4);
                    // y + h/6 · (((k1 + 2 k2) + 2 k3) + k4)
                    let mut sum = Vec::with_capacity(d);
                    for i in 0..d {
                        let a = tr.ins().fmul(two, k2[i]);
                        let s = tr.ins().fadd(k1[i], a);
                        let c = tr.ins().fmul(two, k3[i]);
                        let s = tr.ins().fadd(s, c);
                        sum.push(tr.ins().fadd(s, k4[i]));
                    }
                    (axpy(tr, h6, &sum), None)
                }
                Scheme::Verlet => {
                    // y = (q, v) with constant M and forces of q alone, so the
                    // acceleration a(q) is the right-hand side at v = 0:
                    // v½ = v + h/2 a(q), q' = q + h v½, v' = v½ + h/2 a(q'); a(q')
                    // is carried to the next step, one evaluation per step.
                    let n = d / 2;
                    let zero_f = tr.builder.ins().f64const(0.0);
                    let at = |tr: &mut FunctionTranslator, t: Value, q: &[Value]| -> Vec<Value> {
                        let mut ys = q.to_vec();
                        ys.resize(d, zero_f);
                        stage(tr, t, &ys)[n..].to_vec()
                    };
                    let a0: Vec<Value> = a_vars.iter().map(|v| tr.builder.use_var(*v)).collect();
                    let v_half: Vec<Value> = (0..n)
                        .map(|i| {
                            let ha = tr.builder.ins().fmul(hh, a0[i]);
                            tr.builder.ins().fadd(y[n + i], ha)
                        })
                        .collect();
                    let q1: Vec<Value> = (0..n)
                        .map(|i| {
                            let hv = tr.builder.ins().fmul(h, v_half[i]);
                            tr.builder.ins().fadd(y[i], hv)
                        })
                        .collect();
                    let a1 = at(tr, t4, &q1);
                    let v1: Vec<Value> = (0..n)
                        .map(|i| {
                            let ha = tr.builder.ins().fmul(hh, a1[i]);
                            tr.builder.ins().fadd(v_half[i], ha)
                        })
                        .collect();
                    (q1.into_iter().chain(v1).collect(), Some(a1))
                }
                Scheme::EulerMaruyama => unreachable!("the Euler–Maruyama block is built by `em_block`"),
            };
            // Σ 0·y_i is NaN exactly when some y_i is not finite.
            let zero_f = tr.builder.ins().f64const(0.0);
            let mut probe = zero_f;
            for &v in &y_new {
                let z = tr.builder.ins().fmul(v, zero_f);
                probe = tr.builder.ins().fadd(probe, z);
            }
            let bad = tr.builder.ins().fcmp(FloatCC::Unordered, probe, probe);
            tr.builder.ins().brif(bad, non_finite, &[], commit, &[]);

            // commit: accept the step; write a row every `every` steps.
            tr.builder.switch_to_block(commit);
            for (var, v) in y_vars.iter().zip(&y_new) {
                tr.builder.def_var(*var, *v);
            }
            for (var, v) in a_vars.iter().zip(a_new.iter().flatten()) {
                tr.builder.def_var(*var, *v);
            }
            let k_next = tr.builder.ins().iadd_imm_s(k, 1);
            tr.builder.def_var(k_var, k_next);
            let cd = tr.builder.use_var(cd_var);
            let cd_next = tr.builder.ins().iadd_imm_s(cd, -1);
            tr.builder.def_var(cd_var, cd_next);
            let due = tr.builder.ins().icmp_imm_s(IntCC::Equal, cd_next, 0);
            tr.builder.ins().brif(due, write_row, &[], header, &[]);

            tr.builder.switch_to_block(write_row);
            let kf = tr.builder.ins().fcvt_from_sint(types::F64, k_next);
            let kh = tr.builder.ins().fmul(kf, h);
            let t = tr.builder.ins().fadd(t0, kh);
            let row = tr.builder.use_var(row_var);
            tr.builder.ins().store(mem(), t, row, 0);
            tr.store_f64s(row, 8, &y_new);
            let next = tr.builder.ins().iadd_imm_s(row, stride);
            tr.builder.def_var(row_var, next);
            tr.builder.def_var(cd_var, every);
            tr.builder.ins().jump(header, &[]);

            // Exits: store the last accepted state and report the steps done.
            for (block, code) in [(done, 0), (singular, CAUSE_SINGULAR), (non_finite, CAUSE_NON_FINITE)] {
                tr.builder.switch_to_block(block);
                let y: Vec<Value> = y_vars.iter().map(|v| tr.builder.use_var(*v)).collect();
                tr.store_f64s(y_ptr, 0, &y);
                let c = tr.builder.ins().iconst(i64t, code);
                tr.builder.ins().store(mem(), c, cause, 0);
                let k = tr.builder.use_var(k_var);
                tr.builder.ins().return_(&[k]);
            }
        })
    }
}

/// The right-hand side at `(t, ys)`: emitted inline, or called out of line.
fn stage_at(
    tr: &mut FunctionTranslator,
    (sys, rhs, pv, p_ptr, singular): (&System, FuncId, &[Option<Value>], Value, cranelift_codegen::ir::Block),
    t: Value,
    ys: &[Value],
) -> Vec<Value> {
    if sys.inline_in_loop() {
        sys.emit(tr, t, ys, pv, singular)
    } else {
        call_rhs(tr, rhs, sys.dim(), t, ys, p_ptr, singular)
    }
}
