//! The compiled functions: their signatures and bodies, defined one after the
//! other into one [`JITModule`].
//!
//! | function | signature |
//! |---|---|
//! | expression kernel | `fn(x: *const f64, out: *mut f64)` |
//! | right-hand side | `fn(t: f64, y: *const f64, p: *const f64, dy: *mut f64) -> i32` (0 ok, 1 singular) |
//! | RK4 loop | `fn(t0: f64, h: f64, n_steps: i64, every: i64, y: *mut f64, p: *const f64, rows: *mut f64, cause: *mut i64) -> i64` (steps done) |

use super::linsolve::{emit_solve, upper_index, UNROLLED_MAX};
use super::translate::{mem, Externs, FunctionTranslator, Plan};
use super::JitError;
use crate::sym::{Arena, ExprId, SymId};
use cranelift_codegen::ir::{
    condcodes::{FloatCC, IntCC},
    types, AbiParam, Block, InstBuilder, Signature, UserFuncName, Value,
};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Linkage, Module};
use std::collections::HashMap;
use std::ops::Range;

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

/// Right-hand sides whose plan has more nodes than this are not inlined into
/// the fixed-step loops: four inlined copies cost four times the compile
/// time (30 ms instead of 8 ms for the 10-link chain) and gain nothing
/// measurable once a right-hand side is this large (the call costs a few
/// loads and stores against thousands of operations).
const INLINE_NODES_MAX: usize = 300;

/// A first-order system `y' = F(t, y)` in the form both specs lower to:
/// `F = (y[copy], A⁻¹ b)` where the plan's roots are the upper triangle of
/// `A` (if `solve` is some) followed by `b`.
pub(crate) struct System {
    pub name: &'static str,
    pub time: SymId,
    pub state: Vec<SymId>,
    pub params: Vec<SymId>,
    /// State entries copied to the front of `F` (the velocities of a Lagrangian system).
    pub copy: Range<usize>,
    /// The dimension of `A`, when there is a matrix to solve with.
    pub solve: Option<usize>,
    pub plan: Plan,
}

impl System {
    pub fn new(
        arena: &Arena,
        name: &'static str,
        (time, state, params): (SymId, Vec<SymId>, Vec<SymId>),
        copy: Range<usize>,
        matrix: Option<(usize, &[ExprId])>,
        vector: &[ExprId],
    ) -> Result<System, JitError> {
        let mut roots = Vec::new();
        if let Some((n, m)) = matrix {
            for i in 0..n {
                for j in i..n {
                    debug_assert_eq!(roots.len(), upper_index(n, i, j));
                    roots.push(m[i * n + j]);
                }
            }
        }
        roots.extend_from_slice(vector);
        let mut bound = vec![time];
        bound.extend(&state);
        bound.extend(&params);
        let plan = Plan::new(arena, &roots, &bound, name)?;
        Ok(System { name, time, state, params, copy, solve: matrix.map(|(n, _)| n), plan })
    }

    pub fn dim(&self) -> usize {
        self.state.len()
    }

    /// Emits `F(t, y)`; jumps to `fail` if the matrix is singular.
    fn emit(&self, tr: &mut FunctionTranslator, t: Value, y: &[Value], p: &[Option<Value>], fail: Block) -> Vec<Value> {
        let mut syms: HashMap<SymId, Value> = HashMap::new();
        syms.insert(self.time, t);
        syms.extend(self.state.iter().copied().zip(y.iter().copied()));
        for (s, v) in self.params.iter().zip(p) {
            if let Some(v) = v {
                syms.insert(*s, *v);
            }
        }
        let vals = tr.eval(&self.plan, &syms);
        let mut dy = y[self.copy.clone()].to_vec();
        match self.solve {
            None => dy.extend(vals),
            Some(n) => {
                let (upper, b) = vals.split_at(n * (n + 1) / 2);
                dy.extend(emit_solve(tr, n, upper, b, fail));
            }
        }
        dy
    }

    /// Loads the parameters the plan reads (others stay `None`).
    fn load_params(&self, tr: &mut FunctionTranslator, ptr: Value) -> Vec<Option<Value>> {
        (0..self.params.len())
            .map(|i| {
                self.plan
                    .free
                    .contains(&self.params[i])
                    .then(|| tr.builder.ins().load(types::F64, mem(), ptr, (8 * i) as i32))
            })
            .collect()
    }

    fn inline_in_loop(&self) -> bool {
        self.solve.is_none_or(|n| n <= UNROLLED_MAX) && self.plan.node_count() <= INLINE_NODES_MAX
    }
}

/// The module under construction and the text of what has been compiled.
pub(crate) struct ModuleBuilder<'a> {
    pub module: JITModule,
    arena: &'a Arena,
    ctx: Context,
    fctx: FunctionBuilderContext,
    externs: Externs,
    /// The CLIF of every function, after optimisation, with raw external names.
    ir: Vec<String>,
    pub instructions: usize,
}

impl<'a> ModuleBuilder<'a> {
    pub fn new(module: JITModule, arena: &'a Arena) -> Self {
        let ctx = module.make_context();
        ModuleBuilder {
            module,
            arena,
            ctx,
            fctx: FunctionBuilderContext::new(),
            externs: Externs::default(),
            ir: Vec::new(),
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
        self.ir.push(func.display().to_string());
        self.module.clear_context(&mut self.ctx);
        Ok(id)
    }

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

    /// The right-hand side `fn(t, y, p, dy) -> status`.
    pub fn rhs(&mut self, sys: &System) -> Result<FuncId, JitError> {
        let p = self.module.target_config().pointer_type();
        let sig = self.signature(&[types::F64, p, p, p], &[types::I32]);
        self.function(&format!("{}_rhs", sys.name), sig, |tr, args| {
            let (t, y, params, dy) = (args[0], args[1], args[2], args[3]);
            let fail = tr.builder.create_block();
            tr.builder.set_cold_block(fail);
            let yv = tr.load_f64s(y, sys.dim());
            let pv = sys.load_params(tr, params);
            let f = sys.emit(tr, t, &yv, &pv, fail);
            tr.store_f64s(dy, 0, &f);
            let zero = tr.builder.ins().iconst(types::I32, 0);
            tr.builder.ins().return_(&[zero]);
            tr.builder.switch_to_block(fail);
            let one = tr.builder.ins().iconst(types::I32, 1);
            tr.builder.ins().return_(&[one]);
        })
    }

    /// The fixed-step RK4 loop; `rhs` is the compiled right-hand side, called
    /// when the system is too large to inline.
    pub fn step_loop(&mut self, sys: &System, rhs: FuncId, scheme: Scheme) -> Result<FuncId, JitError> {
        let p = self.module.target_config().pointer_type();
        let i64t = types::I64;
        let sig = self.signature(&[types::F64, types::F64, i64t, i64t, p, p, p, p], &[i64t]);
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
            tr.builder.ins().jump(header, &[]);

            // header: while k < n_steps
            tr.builder.switch_to_block(header);
            let k = tr.builder.use_var(k_var);
            let more = tr.builder.ins().icmp(IntCC::SignedLessThan, k, n_steps);
            tr.builder.ins().brif(more, body, &[], done, &[]);

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
                if sys.inline_in_loop() {
                    sys.emit(tr, t, ys, &pv, singular)
                } else {
                    call_rhs(tr, rhs, d, t, ys, p_ptr, singular)
                }
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
            let y_new = match scheme {
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
                    axpy(tr, h6, &sum)
                }
                Scheme::Verlet => {
                    // y = (q, v) with constant M and forces of q alone, so the
                    // acceleration a(q) is the right-hand side at v = 0:
                    // v½ = v + h/2 a(q), q' = q + h v½, v' = v½ + h/2 a(q').
                    let n = d / 2;
                    let zero_f = tr.builder.ins().f64const(0.0);
                    let at = |tr: &mut FunctionTranslator, t: Value, q: &[Value]| -> Vec<Value> {
                        let mut ys = q.to_vec();
                        ys.resize(d, zero_f);
                        stage(tr, t, &ys)[n..].to_vec()
                    };
                    let a0 = at(tr, t1, &y[..n]);
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
                    q1.into_iter().chain(v1).collect()
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
            let finite = tr.builder.ins().fcmp(FloatCC::Ordered, probe, probe);
            tr.builder.ins().brif(finite, commit, &[], non_finite, &[]);

            // commit: accept the step; write a row every `every` steps.
            tr.builder.switch_to_block(commit);
            for (var, v) in y_vars.iter().zip(&y_new) {
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
            let more = tr.builder.ins().icmp(IntCC::SignedLessThan, i, np);
            tr.builder.ins().brif(more, body, &[], done, &[]);

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
            let finite = tr.builder.ins().fcmp(FloatCC::Ordered, probe, probe);
            tr.builder.ins().brif(finite, commit, &[], non_finite, &[]);

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

    /// The CLIF text of every function, external names replaced by symbols.
    pub fn ir_text(&self) -> String {
        let names: HashMap<u32, String> = self
            .module
            .declarations()
            .get_functions()
            .filter_map(|(id, decl)| decl.name.clone().map(|n| (id.as_u32(), n)))
            .collect();
        self.ir.iter().map(|f| rename_externals(f, &names)).collect::<Vec<_>>().join("\n")
    }
}

/// A call of the compiled right-hand side through stack slots.
fn call_rhs(
    tr: &mut FunctionTranslator,
    rhs: FuncId,
    d: usize,
    t: Value,
    y: &[Value],
    p_ptr: Value,
    fail: Block,
) -> Vec<Value> {
    use cranelift_codegen::ir::{StackSlotData, StackSlotKind};
    let slot = tr.builder.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (16 * d) as u32, 3));
    let y_addr = tr.builder.ins().stack_addr(tr.pointer, slot, 0);
    let dy_addr = tr.builder.ins().stack_addr(tr.pointer, slot, (8 * d) as i32);
    tr.store_f64s(y_addr, 0, y);
    let f = tr.module.declare_func_in_func(rhs, tr.builder.func);
    let call = tr.builder.ins().call(f, &[t, y_addr, p_ptr, dy_addr]);
    let status = tr.builder.inst_results(call)[0];
    let bad = tr.builder.ins().icmp_imm_s(IntCC::NotEqual, status, 0);
    let cont = tr.builder.create_block();
    tr.builder.ins().brif(bad, fail, &[], cont, &[]);
    tr.builder.switch_to_block(cont);
    tr.load_f64s(dy_addr, d)
}

/// Replaces each `u0:N` (a module function id in CLIF text) by `%name`.
fn rename_externals(text: &str, names: &HashMap<u32, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("u0:") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 3..];
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match after[..digits].parse::<u32>().ok().and_then(|n| names.get(&n)) {
            Some(name) => {
                out.push('%');
                out.push_str(name);
            }
            None => out.push_str(&rest[pos..pos + 3 + digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}
