//! The Euler–Maruyama block: one step of a first-order flow with noise for a block of
//! particles, stopping at the first particle that fails.

use super::system::call_rhs;
use super::{ModuleBuilder, System, CAUSE_NON_FINITE, CAUSE_SINGULAR};
use crate::jit::translate::mem;
use crate::jit::JitError;
use cranelift_codegen::ir::{
    condcodes::{FloatCC, IntCC},
    types, InstBuilder, Value,
};
use cranelift_module::{FuncId, Module};

impl ModuleBuilder<'_> {
    /// One Euler–Maruyama step for a block of particles:
    /// `fn(t, h, np, theta, noise, p, cause) -> i64`, with `theta` and `noise`
    /// `np × d` row-major. Particle `i` moves to `θ_i + h·F(t, θ_i) + noise_i`
    /// (the noise comes scaled). The loop stops at the first particle whose
    /// matrix is singular or whose new state is not finite, leaves it as it was,
    /// writes the cause and returns its index; otherwise it returns `np`.
    pub fn em_block(&mut self, sys: &System, rhs: FuncId) -> Result<FuncId, JitError> {
        let p = self.module.target_config().pointer_type();
        let i64t = types::I64;
        let sig = self.signature(&[types::F64, types::F64, i64t, p, p, p, p], &[i64t]);
        self.function(&format!("{}_em_block", sys.name), sig, |tr, args| {
            let (t, h, np, theta, noise, p_ptr, cause) =
                (args[0], args[1], args[2], args[3], args[4], args[5], args[6]);
            let d = sys.dim();
            let pv = if sys.inline_in_loop() { sys.load_params(tr, p_ptr) } else { Vec::new() };
            let b = &mut tr.builder;
            let header = b.create_block();
            let body = b.create_block();
            let commit = b.create_block();
            let done = b.create_block();
            let singular = b.create_block();
            let non_finite = b.create_block();
            b.set_cold_block(singular);
            b.set_cold_block(non_finite);
            let i_var = b.declare_var(i64t);
            let zero = b.ins().iconst(i64t, 0);
            b.def_var(i_var, zero);
            b.ins().jump(header, &[]);

            tr.builder.switch_to_block(header);
            let i = tr.builder.use_var(i_var);
            let end = tr.builder.ins().icmp(IntCC::SignedGreaterThanOrEqual, i, np);
            tr.builder.ins().brif(end, done, &[], body, &[]);

            tr.builder.switch_to_block(body);
            let off = tr.builder.ins().imul_imm_s(i, (8 * d) as i64);
            let y_ptr = tr.builder.ins().iadd(theta, off);
            let n_ptr = tr.builder.ins().iadd(noise, off);
            let y = tr.load_f64s(y_ptr, d);
            let xi = tr.load_f64s(n_ptr, d);
            let f = if sys.inline_in_loop() {
                sys.emit(tr, t, &y, &pv, singular)
            } else {
                call_rhs(tr, rhs, d, t, &y, p_ptr, singular)
            };
            let y_new: Vec<Value> = (0..d)
                .map(|k| {
                    let hf = tr.builder.ins().fmul(h, f[k]);
                    let s = tr.builder.ins().fadd(y[k], hf);
                    tr.builder.ins().fadd(s, xi[k])
                })
                .collect();
            // Σ 0·y_i is NaN exactly when some y_i is not finite.
            let zero_f = tr.builder.ins().f64const(0.0);
            let mut probe = zero_f;
            for &v in &y_new {
                let z = tr.builder.ins().fmul(v, zero_f);
                probe = tr.builder.ins().fadd(probe, z);
            }
            let bad = tr.builder.ins().fcmp(FloatCC::Unordered, probe, probe);
            tr.builder.ins().brif(bad, non_finite, &[], commit, &[]);

            tr.builder.switch_to_block(commit);
            tr.store_f64s(y_ptr, 0, &y_new);
            let next = tr.builder.ins().iadd_imm_s(i, 1);
            tr.builder.def_var(i_var, next);
            tr.builder.ins().jump(header, &[]);

            for (block, code) in [(done, 0), (singular, CAUSE_SINGULAR), (non_finite, CAUSE_NON_FINITE)] {
                tr.builder.switch_to_block(block);
                let c = tr.builder.ins().iconst(i64t, code);
                tr.builder.ins().store(mem(), c, cause, 0);
                let i = tr.builder.use_var(i_var);
                tr.builder.ins().return_(&[i]);
            }
        })
    }
}
