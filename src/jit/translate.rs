//! Translation of the expression DAG into Cranelift IR.
//!
//! A [`Plan`] fixes, once per kernel, the nodes to compute (the topological
//! order of its roots) and which `sin`/`cos` pairs share one `sincos` call.
//! The [`FunctionTranslator`] then emits the plan into the function being
//! built, once per evaluation point (the RK4 loop evaluates one plan four
//! times per step), with one exhaustive `match` over the node kinds.

use super::runtime::Extern;
use super::JitError;
use crate::batch::Batch;
use crate::sym::{Arena, ExprId, Func, Loop, Node, Num, Row, Schedule, Step, SymId, SymKind};
use cranelift_codegen::ir::{
    condcodes::{FloatCC, IntCC},
    types, InstBuilder, MemFlagsData, StackSlot, StackSlotData, StackSlotKind, Value,
};
use cranelift_frontend::FunctionBuilder;
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Linkage, Module};
use std::collections::{HashMap, HashSet};

/// Integer exponents up to this size are expanded into multiplications, in
/// the order of the evaluator's `powi` (at most 12 of them).
const MAX_UNROLLED_POWER: i64 = crate::sym::POWI_MAX;

/// What one kernel computes: the nodes in topological order and the symbols it reads.
pub(crate) struct Plan {
    pub roots: Vec<ExprId>,
    /// The nodes in order, rolled sums as loops.
    schedule: Schedule,
    /// Loops over whole data tables that run over the step's minibatch instead.
    batch: Option<Batch>,
    /// Arguments `u` such that both `sin u` and `cos u` are computed.
    sincos: HashSet<ExprId>,
    /// Arguments `±a ± b` whose sine and cosine are formed from those of `a` and `b`
    /// (see [`angle_sums`]): the term and whether it is negated.
    angle_sums: HashMap<ExprId, [(ExprId, bool); 2]>,
    /// The symbols the plan reads (other than `pi`).
    pub free: HashSet<SymId>,
    /// For each root node, its positions in `roots`.
    root_positions: HashMap<ExprId, Vec<usize>>,
    /// The index of the loop the plan is evaluated in (a segment's rows), if any.
    outer: Option<SymId>,
    /// With an outer index: the nodes that read it, whose values differ from row to
    /// row. The others are computed once, before the rows' loop ([`FunctionTranslator::eval_invariant`]).
    varying: HashSet<ExprId>,
}

/// Where the translator finds a symbol's value: a value at hand, or a load
/// from `ptr + offset`, emitted where the value is first needed so that it
/// lives no longer than its uses (a long-lived value per state entry makes
/// register allocation grow faster than the kernel).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Input {
    Value(Value),
    Load { ptr: Value, offset: i32 },
}

impl Plan {
    /// Plans the evaluation of `roots`; every symbol they read must be in
    /// `bound` (or be `pi`, or the index of a rolled sum). The loops that
    /// `batch` applies to run over the step's minibatch.
    pub fn batched(
        arena: &Arena,
        roots: &[ExprId],
        bound: &[SymId],
        kernel: &str,
        batch: Option<Batch>,
    ) -> Result<Plan, JitError> {
        Plan::within(arena, roots, bound, kernel, batch, None)
    }

    /// [`Plan::batched`] for roots evaluated inside a loop over `outer`
    /// ([`FunctionTranslator::eval_rows`] gives its value).
    pub fn within(
        arena: &Arena,
        roots: &[ExprId],
        bound: &[SymId],
        kernel: &str,
        batch: Option<Batch>,
        outer: Option<SymId>,
    ) -> Result<Plan, JitError> {
        let order = arena.topo_order(roots);
        let bound: HashSet<SymId> = bound.iter().copied().collect();
        let mut free = HashSet::new();
        let (mut sin_args, mut cos_args) = (HashSet::new(), HashSet::new());
        for &e in &order {
            match arena.node(e) {
                Node::Sym(s) if !matches!(arena.symbol(*s).kind, SymKind::Pi | SymKind::Index { .. }) => {
                    if !bound.contains(s) {
                        return Err(JitError::UnboundSymbol {
                            kernel: kernel.to_string(),
                            symbol: arena.symbol(*s).name.clone(),
                        });
                    }
                    free.insert(*s);
                }
                Node::Func(Func::Sin, a) => {
                    sin_args.insert(*a);
                }
                Node::Func(Func::Cos, a) => {
                    cos_args.insert(*a);
                }
                _ => {}
            }
        }
        let angle_sums = angle_sums(arena, &sin_args, &cos_args);
        let mut sincos: HashSet<ExprId> = sin_args.intersection(&cos_args).copied().collect();
        sincos.extend(angle_sums.values().flatten().map(|&(t, _)| t));
        let mut root_positions: HashMap<ExprId, Vec<usize>> = HashMap::new();
        for (i, r) in roots.iter().enumerate() {
            root_positions.entry(*r).or_default().push(i);
        }
        let schedule = arena.schedule_within(roots, outer);
        let mut varying = HashSet::new();
        if let Some(k) = outer {
            // Children have smaller ids than their parents: one pass in `order`.
            for &e in &order {
                let reads = match arena.node(e) {
                    Node::Sym(s) => *s == k,
                    Node::Member { row: Row::Index(s, _), .. } | Node::Data { row: Row::Index(s, _), .. } => *s == k,
                    _ => arena.children(e).iter().any(|c| varying.contains(c)),
                };
                if reads {
                    varying.insert(e);
                }
            }
        }
        Ok(Plan { roots: roots.to_vec(), schedule, batch, sincos, angle_sums, free, root_positions, outer, varying })
    }

    /// Whether a step of the top of the schedule reads the outer index.
    fn step_varies(&self, step: &Step) -> bool {
        match step {
            Step::Node(e) => self.varying.contains(e),
            Step::Loop(l) => l.sums.iter().any(|(s, _)| self.varying.contains(s)),
        }
    }

    /// Whether the plan has loops (rolled sums).
    pub fn has_loops(&self) -> bool {
        self.schedule.has_loops()
    }

    /// The number of DAG nodes the plan computes (those of a loop once).
    pub fn node_count(&self) -> usize {
        self.schedule.node_count()
    }
}

/// The arguments of `sin` and `cos` of the form `±x ± y` to compute from the sines and
/// cosines of `x` and `y`: those of a chain's mass matrix and forcing, `cos(q[i] − q[j])`
/// for every pair, take `n` calls of `sincos` instead of `n(n − 1)/2`. They are expanded
/// when that saves calls: when fewer terms lack a sine or cosine of their own than there are
/// such arguments. The error of the expansion is a few units of rounding in absolute terms
/// (relative to `1`, not to a small `sin(x − y)`).
fn angle_sums(
    arena: &Arena,
    sin_args: &HashSet<ExprId>,
    cos_args: &HashSet<ExprId>,
) -> HashMap<ExprId, [(ExprId, bool); 2]> {
    let term = |e: ExprId| match arena.node(e) {
        Node::Mul(fs) if fs.len() == 2 && arena.as_num(fs[0]) == Some(Num::MINUS_ONE) => (fs[1], true),
        _ => (e, false),
    };
    let mut sums = HashMap::new();
    for &a in sin_args.union(cos_args) {
        if let Node::Add(xs) = arena.node(a) {
            if let [x, y] = xs[..] {
                let (x, y) = (term(x), term(y));
                // A term that is itself a number or a sum gains nothing.
                if [x.0, y.0].iter().all(|&t| !matches!(arena.node(t), Node::Num(_) | Node::Add(_))) {
                    sums.insert(a, [x, y]);
                }
            }
        }
    }
    let own: HashSet<ExprId> = sin_args.union(cos_args).filter(|a| !sums.contains_key(a)).copied().collect();
    let new_terms: HashSet<ExprId> = sums.values().flatten().map(|&(t, _)| t).filter(|t| !own.contains(t)).collect();
    if new_terms.len() < sums.len() {
        sums
    } else {
        HashMap::new()
    }
}

/// The values emitted so far in one function: per node, per `sincos`
/// argument, and the loop counter of each index in scope.
#[derive(Default)]
struct Values {
    vals: HashMap<ExprId, Value>,
    sincos: HashMap<ExprId, (Value, Value)>,
    index: HashMap<SymId, Value>,
    /// Per family read at a rolled index, the address of its member 0 (the
    /// members are 8 bytes apart).
    families: HashMap<u32, Value>,
    /// Two-lane copies (`f64x2`) of values that are the same in both lanes.
    splats: HashMap<ExprId, Value>,
}

/// The values of a plan's nodes that do not read its outer index: computed once,
/// before the rows' loop, by [`FunctionTranslator::eval_invariant`].
pub(crate) struct Invariant(Values);

/// The external functions declared in the module so far, shared by all its functions.
#[derive(Default)]
pub(crate) struct Externs {
    ids: HashMap<Extern, FuncId>,
}

/// Translation state for one function: the builder, the module (to import
/// external functions) and per-function caches.
pub(crate) struct FunctionTranslator<'a, 'f> {
    pub builder: FunctionBuilder<'f>,
    pub module: &'a mut JITModule,
    arena: &'a Arena,
    externs: &'a mut Externs,
    refs: HashMap<Extern, cranelift_codegen::ir::FuncRef>,
    /// A 16-byte slot receiving the two results of `sincos`.
    sincos_slot: Option<StackSlot>,
    pub pointer: types::Type,
    /// Whether the rows being emitted are two at a time ([`FunctionTranslator::eval_rows`]).
    wide: bool,
}

/// Memory flags for the kernels' own arrays: aligned, never trapping.
pub(crate) fn mem() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Memory flags for two doubles at once (`f64x2`) in the kernels' own arrays: never
/// trapping, aligned only to 8 bytes.
pub(crate) fn lanes_mem() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

/// The two lanes of rows emitted two at a time: row `m` and row `m + 1`.
pub(crate) const LANES: types::Type = types::F64X2;

/// Memory flags for a kernel's inputs, which nothing writes while it runs:
/// such a load is pure, and the optimiser places it beside its first use.
pub(crate) fn input_mem() -> MemFlagsData {
    MemFlagsData::trusted().with_readonly().with_can_move()
}

impl<'a, 'f> FunctionTranslator<'a, 'f> {
    pub fn new(
        builder: FunctionBuilder<'f>,
        module: &'a mut JITModule,
        arena: &'a Arena,
        externs: &'a mut Externs,
    ) -> Self {
        let pointer = module.target_config().pointer_type();
        FunctionTranslator {
            builder,
            module,
            arena,
            externs,
            refs: HashMap::new(),
            sincos_slot: None,
            pointer,
            wide: false,
        }
    }

    /// The instruction builder at the current position.
    pub fn ins(&mut self) -> cranelift_frontend::FuncInstBuilder<'_, 'f> {
        self.builder.ins()
    }

    /// Emits the plan with the symbols bound to `syms`; returns the values of its roots.
    pub fn eval(&mut self, plan: &Plan, syms: &HashMap<SymId, Value>) -> Vec<Value> {
        let inputs: HashMap<SymId, Input> = syms.iter().map(|(s, v)| (*s, Input::Value(*v))).collect();
        let mut out = vec![None; plan.roots.len()];
        self.eval_streamed(plan, &inputs, |_, i, v| out[i] = Some(v));
        out.into_iter().map(|v| v.expect("every root is computed")).collect()
    }

    /// Emits the plan with the symbols found by `inputs`, handing each root's
    /// value to `root(self, position, value)` as soon as it is computed (a root
    /// that appears twice in `roots` is handed over twice).
    pub fn eval_streamed(
        &mut self,
        plan: &Plan,
        inputs: &HashMap<SymId, Input>,
        mut root: impl FnMut(&mut Self, usize, Value),
    ) {
        self.emit_steps(plan, &plan.schedule.steps, inputs, &mut Values::default(), &mut root);
    }

    /// Emits the steps of a plan within a loop ([`Plan::within`]) that do not read the
    /// loop's index, before the loop.
    /// With `wide`, the two-lane copies that rows two at a time read are made here too.
    pub fn eval_invariant(&mut self, plan: &Plan, inputs: &HashMap<SymId, Input>, wide: bool) -> Invariant {
        let steps: Vec<Step> = plan.schedule.steps.iter().filter(|s| !plan.step_varies(s)).cloned().collect();
        let mut at = Values::default();
        self.emit_steps(plan, &steps, inputs, &mut at, &mut |_, _, _| {});
        if wide {
            let mut read: Vec<ExprId> = plan
                .varying
                .iter()
                .flat_map(|&e| self.arena.children(e))
                .chain(plan.roots.iter().copied())
                .filter(|c| !plan.varying.contains(c) && at.vals.contains_key(c))
                .collect();
            read.sort();
            read.dedup();
            for c in read {
                self.lanes_of(c, &mut at);
            }
        }
        Invariant(at)
    }

    /// Emits the rows of a plan within a loop at the loop's index `m` (an `i64`), the values
    /// of `invariant` at hand; with `wide`, rows `m` and `m + 1` at once: every value that
    /// reads the index is a two-lane vector ([`LANES`]) and each root is handed to `root` as
    /// one. The lanes compute exactly what two single rows compute, operation for operation;
    /// what has no two-lane instruction (a call of `sin`, `pow`) is computed lane by lane.
    pub fn eval_rows(
        &mut self,
        plan: &Plan,
        inputs: &HashMap<SymId, Input>,
        invariant: &Invariant,
        (m, wide): (Value, bool),
        mut root: impl FnMut(&mut Self, usize, Value),
    ) {
        let k = plan.outer.expect("a plan within a loop");
        let mut at = Values {
            vals: invariant.0.vals.clone(),
            sincos: invariant.0.sincos.clone(),
            index: HashMap::from([(k, m)]),
            families: invariant.0.families.clone(),
            splats: invariant.0.splats.clone(),
        };
        let steps: Vec<Step> = plan.schedule.steps.iter().filter(|s| plan.step_varies(s)).cloned().collect();
        self.wide = wide;
        self.emit_steps(plan, &steps, inputs, &mut at, &mut root);
        // Roots that read no index: the same value in every row.
        for (i, r) in plan.roots.iter().enumerate() {
            if !plan.varying.contains(r) {
                let v = if wide { self.lanes_of(*r, &mut at) } else { at.vals[r] };
                root(self, i, v);
            }
        }
        self.wide = false;
    }

    /// The value of computed node `e` in both lanes: itself if it reads the index, else a splat.
    fn lanes_of(&mut self, e: ExprId, at: &mut Values) -> Value {
        let v = at.vals[&e];
        if self.builder.func.dfg.value_type(v) == LANES {
            return v;
        }
        if let Some(&s) = at.splats.get(&e) {
            return s;
        }
        let s = self.builder.ins().splat(LANES, v);
        at.splats.insert(e, s);
        s
    }

    fn emit_steps(
        &mut self,
        plan: &Plan,
        steps: &[Step],
        inputs: &HashMap<SymId, Input>,
        at: &mut Values,
        root: &mut impl FnMut(&mut Self, usize, Value),
    ) {
        for step in steps {
            match step {
                Step::Node(e) => {
                    let v = self.node(plan, *e, inputs, at);
                    self.computed(plan, *e, v, at, root);
                }
                Step::Loop(l) => self.emit_loop(plan, l, inputs, at, root),
            }
        }
    }

    /// One loop: `k` from the start to the end, an accumulator per sum in
    /// block parameters, the body in between; the builder ends after it.
    fn emit_loop(
        &mut self,
        plan: &Plan,
        l: &Loop,
        inputs: &HashMap<SymId, Input>,
        at: &mut Values,
        root: &mut impl FnMut(&mut Self, usize, Value),
    ) {
        let batch = plan.batch.filter(|b| b.applies(l.lo, l.hi));
        let (start, end) = match batch {
            Some(b) => (0, b.size as i64),
            None => (l.lo, l.hi),
        };
        let rows = batch.map(|_| self.call(Extern::BatchRows, &[]));
        let header = self.builder.create_block();
        let body = self.builder.create_block();
        let exit = self.builder.create_block();
        self.builder.append_block_param(header, types::I64);
        // Two-lane accumulators for the sums that read the outer index, rows emitted two at a time.
        let wide: Vec<bool> = l.sums.iter().map(|(s, _)| self.wide && plan.varying.contains(s)).collect();
        for &w in &wide {
            let ty = if w { LANES } else { types::F64 };
            self.builder.append_block_param(header, ty);
            self.builder.append_block_param(exit, ty);
        }
        let k0 = self.builder.ins().iconst(types::I64, start);
        let zero = self.builder.ins().f64const(0.0);
        let zeros = if wide.contains(&true) { self.builder.ins().splat(LANES, zero) } else { zero };
        let mut args = vec![k0.into()];
        args.extend(wide.iter().map(|&w| cranelift_codegen::ir::BlockArg::from(if w { zeros } else { zero })));
        self.builder.ins().jump(header, &args);

        self.builder.switch_to_block(header);
        let params = self.builder.block_params(header).to_vec();
        let (k, accs) = (params[0], &params[1..]);
        // The exit first (see `emit_counted` in `codegen/system.rs`).
        let done = self.builder.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, k, end);
        let out: Vec<cranelift_codegen::ir::BlockArg> = accs.iter().map(|&a| a.into()).collect();
        self.builder.ins().brif(done, exit, &out, body, &[]);

        self.builder.switch_to_block(body);
        self.builder.seal_block(body);
        let i = match rows {
            Some(ptr) => {
                let off = self.builder.ins().imul_imm_s(k, 4);
                let addr = self.builder.ins().iadd(ptr, off);
                let r = self.builder.ins().load(types::I32, input_mem(), addr, 0);
                self.builder.ins().uextend(types::I64, r)
            }
            None => k,
        };
        at.index.insert(l.index, i);
        let before: std::collections::HashSet<ExprId> = at.vals.keys().copied().collect();
        let splats_before: std::collections::HashSet<ExprId> = at.splats.keys().copied().collect();
        let families_before: std::collections::HashSet<u32> = at.families.keys().copied().collect();
        self.emit_steps(plan, &l.body, inputs, at, root);
        let mut next = vec![self.builder.ins().iadd_imm_s(k, 1).into()];
        for (acc, (_, b)) in accs.iter().zip(&l.sums) {
            next.push(self.builder.ins().fadd(*acc, at.vals[b]).into());
        }
        self.builder.ins().jump(header, &next);
        self.builder.seal_block(header);
        // What the body computed does not exist after the loop.
        at.vals.retain(|e, _| before.contains(e));
        at.sincos.retain(|e, _| before.contains(e));
        at.splats.retain(|e, _| splats_before.contains(e));
        at.families.retain(|f, _| families_before.contains(f));
        at.index.remove(&l.index);

        self.builder.switch_to_block(exit);
        self.builder.seal_block(exit);
        let totals = self.builder.block_params(exit).to_vec();
        let scale = batch.map(|b| self.builder.ins().f64const(b.scale()));
        for (((s, _), mut v), &w) in l.sums.iter().zip(totals).zip(&wide) {
            if let Some(mut c) = scale {
                if w {
                    c = self.builder.ins().splat(LANES, c);
                }
                v = self.builder.ins().fmul(v, c);
            }
            self.computed(plan, *s, v, at, root);
        }
    }

    /// Records the value of node `e`, and hands it to `root` at each of its
    /// positions among the roots.
    fn computed(
        &mut self,
        plan: &Plan,
        e: ExprId,
        v: Value,
        at: &mut Values,
        root: &mut impl FnMut(&mut Self, usize, Value),
    ) {
        at.vals.insert(e, v);
        if let Some(positions) = plan.root_positions.get(&e) {
            for &i in positions {
                root(self, i, v);
            }
        }
    }

    /// The value of one node whose operands are computed.
    fn node(&mut self, plan: &Plan, e: ExprId, inputs: &HashMap<SymId, Input>, at: &mut Values) -> Value {
        if self.wide && plan.varying.contains(&e) {
            return self.node_wide(plan, e, inputs, at);
        }
        let arena = self.arena;
        let vals = &at.vals;
        match arena.node(e) {
            Node::Num(n) => self.builder.ins().f64const(n.to_f64()),
            Node::Sym(s) => match inputs.get(s) {
                Some(&Input::Value(v)) => v,
                Some(&Input::Load { ptr, offset }) => self.builder.ins().load(types::F64, input_mem(), ptr, offset),
                None => match (arena.symbol(*s).kind, at.index.get(s)) {
                    (SymKind::Index { .. }, Some(&i)) => self.builder.ins().fcvt_from_sint(types::F64, i),
                    // `Plan::new` admits no other unbound symbol.
                    _ => self.builder.ins().f64const(std::f64::consts::PI),
                },
            },
            Node::Add(xs) => self.translate_add(xs, vals),
            Node::Mul(xs) => self.translate_mul(xs, vals),
            Node::Pow(b, x) => self.translate_pow(vals[b], *x, vals[x]),
            Node::Func(f @ (Func::Sin | Func::Cos), a) if plan.angle_sums.contains_key(a) => {
                // sin(x ± y) = sin x cos y ± cos x sin y, cos(x ± y) = cos x cos y ∓ sin x sin y,
                // with sin(−t) = −sin t.
                let [(x, nx), (y, ny)] = plan.angle_sums[a];
                let (sx, cx) = self.sincos_at(x, at);
                let (sy, cy) = self.sincos_at(y, at);
                let mul = |t: &mut Self, u, v| t.builder.ins().fmul(u, v);
                if *f == Func::Sin {
                    let (p, q) = (mul(self, sx, cy), mul(self, cx, sy));
                    let b = self.builder.ins();
                    match (nx, ny) {
                        (false, false) => b.fadd(p, q),
                        (false, true) => b.fsub(p, q),
                        (true, false) => b.fsub(q, p),
                        (true, true) => {
                            let s = b.fadd(p, q);
                            self.builder.ins().fneg(s)
                        }
                    }
                } else {
                    let (p, q) = (mul(self, cx, cy), mul(self, sx, sy));
                    let b = self.builder.ins();
                    if nx == ny {
                        b.fsub(p, q)
                    } else {
                        b.fadd(p, q)
                    }
                }
            }
            Node::Func(f @ (Func::Sin | Func::Cos), a) if plan.sincos.contains(a) => {
                let (s, c) = self.sincos_at(*a, at);
                if *f == Func::Sin {
                    s
                } else {
                    c
                }
            }
            Node::Func(f, a) => self.translate_func(*f, vals[a]),
            Node::Atan2(y, x) => self.call(Extern::Atan2, &[vals[y], vals[x]]),
            Node::Data { table, row, col } => {
                let t = arena.table(*table);
                let width = t.width() as i64;
                let base = self.builder.ins().iconst(self.pointer, t.values.as_ptr() as i64);
                let byte = match row {
                    Row::At(r) => {
                        let b = (i64::from(*r) * width + i64::from(*col)) * 8;
                        self.builder.ins().iconst(self.pointer, b)
                    }
                    Row::Index(s, off) => {
                        let r = self.builder.ins().iadd_imm_s(at.index[s], i64::from(*off));
                        let b = self.builder.ins().imul_imm_s(r, width * 8);
                        self.builder.ins().iadd_imm_s(b, i64::from(*col) * 8)
                    }
                };
                let addr = self.builder.ins().iadd(base, byte);
                self.builder.ins().load(types::F64, input_mem(), addr, 0)
            }
            Node::Member { family, row } => {
                let Row::Index(s, off) = *row else {
                    let Row::At(k) = *row else { unreachable!() };
                    let m = arena.family(*family).members[k as usize];
                    return match inputs.get(&m) {
                        Some(&Input::Value(v)) => v,
                        Some(&Input::Load { ptr, offset }) => {
                            self.builder.ins().load(types::F64, input_mem(), ptr, offset)
                        }
                        None => self.builder.ins().f64const(0.0),
                    };
                };
                // `base + 8k` is the same value for every member read at `k` (one
                // address per index and family); the offset is the load's immediate.
                let base = self.family_base(*family, inputs, at);
                let byte = self.builder.ins().imul_imm_s(at.index[&s], 8);
                let addr = self.builder.ins().iadd(base, byte);
                self.builder.ins().load(types::F64, input_mem(), addr, 8 * off)
            }
            // Computed by its loop.
            Node::Sum(..) => at.vals[&e],
        }
    }

    /// `(sin u, cos u)` of a computed node, one call per node and scope.
    fn sincos_at(&mut self, u: ExprId, at: &mut Values) -> (Value, Value) {
        if let Some(&pair) = at.sincos.get(&u) {
            return pair;
        }
        let pair = self.translate_sincos(at.vals[&u]);
        at.sincos.insert(u, pair);
        pair
    }

    /// The address of member 0 of a family whose members are read at a
    /// rolled index: where the inputs are (members loaded from consecutive
    /// entries of one array), or a copy in a stack slot when they are values
    /// at hand or scattered (code in proportion to the family, so the large
    /// systems that have such families are called with their inputs in memory).
    fn family_base(&mut self, family: u32, inputs: &HashMap<SymId, Input>, at: &mut Values) -> Value {
        if let Some(&b) = at.families.get(&family) {
            return b;
        }
        let members = &self.arena.family(family).members;
        let n = members.len();
        let contiguous = match (inputs.get(&members[0]), inputs.get(&members[n - 1])) {
            (Some(&Input::Load { ptr, offset }), Some(&Input::Load { ptr: p2, offset: o2 })) if ptr == p2 => {
                (i64::from(o2) - i64::from(offset) == 8 * (n as i64 - 1)).then_some((ptr, offset))
            }
            _ => None,
        };
        let base = match contiguous {
            Some((ptr, offset)) => self.builder.ins().iadd_imm_s(ptr, i64::from(offset)),
            None => {
                let slot = self.builder.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    (8 * n) as u32,
                    3,
                ));
                let addr = self.builder.ins().stack_addr(self.pointer, slot, 0);
                for (k, m) in members.clone().iter().enumerate() {
                    let v = match inputs.get(m) {
                        Some(&Input::Value(v)) => v,
                        Some(&Input::Load { ptr, offset }) => {
                            self.builder.ins().load(types::F64, input_mem(), ptr, offset)
                        }
                        None => self.builder.ins().f64const(0.0),
                    };
                    self.builder.ins().store(mem(), v, addr, (8 * k) as i32);
                }
                addr
            }
        };
        at.families.insert(family, base);
        base
    }

    /// A sum, left to right as the reference evaluator adds. A term `−1·u…`
    /// is subtracted (`a − b` is exactly `a + (−b)`), which saves the negation.
    /// A sum that starts `−u + v` starts `v − u` instead: the same number, one operation fewer.
    fn translate_add(&mut self, xs: &[ExprId], vals: &HashMap<ExprId, Value>) -> Value {
        if let (Some(a), None) = (self.negated(xs[0], vals), self.negated(xs[1], vals)) {
            let mut acc = self.builder.ins().fsub(vals[&xs[1]], a);
            for x in &xs[2..] {
                acc = match self.negated(*x, vals) {
                    Some(b) => self.builder.ins().fsub(acc, b),
                    None => self.builder.ins().fadd(acc, vals[x]),
                };
            }
            return acc;
        }
        let mut acc = vals[&xs[0]];
        for x in &xs[1..] {
            acc = match self.negated(*x, vals) {
                Some(b) => self.builder.ins().fsub(acc, b),
                None => self.builder.ins().fadd(acc, vals[x]),
            };
        }
        acc
    }

    /// For a product `−1·u·v…` whose factors are computed, `u·v…` (left to
    /// right, as [`FunctionTranslator::translate_mul`] multiplies before it negates).
    fn negated(&mut self, x: ExprId, vals: &HashMap<ExprId, Value>) -> Option<Value> {
        let Node::Mul(fs) = self.arena.node(x) else { return None };
        if self.arena.as_num(fs[0]) != Some(Num::MINUS_ONE) {
            return None;
        }
        let mut acc = *vals.get(&fs[1])?;
        for f in &fs[2..] {
            acc = self.builder.ins().fmul(acc, *vals.get(f)?);
        }
        Some(acc)
    }

    /// A product, left to right; a leading coefficient −1 becomes a negation
    /// (exact, so the result is the same).
    fn translate_mul(&mut self, xs: &[ExprId], vals: &HashMap<ExprId, Value>) -> Value {
        let negate = self.arena.as_num(xs[0]).is_some_and(|n| n == Num::MINUS_ONE);
        let xs = if negate { &xs[1..] } else { xs };
        let mut acc = vals[&xs[0]];
        for x in &xs[1..] {
            acc = self.builder.ins().fmul(acc, vals[x]);
        }
        if negate {
            acc = self.builder.ins().fneg(acc);
        }
        acc
    }

    /// `b^x`: small integer powers by repeated squaring, square roots by
    /// `sqrt`, anything else by a call to `pow`.
    fn translate_pow(&mut self, b: Value, x: ExprId, xv: Value) -> Value {
        match self.arena.as_num(x) {
            Some(Num::Rat(n, 1)) if n != 0 && n.abs() <= MAX_UNROLLED_POWER => {
                let p = self.powi(b, n.unsigned_abs());
                if n < 0 {
                    let one = self.one_like(b);
                    self.builder.ins().fdiv(one, p)
                } else {
                    p
                }
            }
            Some(Num::Rat(1, 2)) => self.builder.ins().sqrt(b),
            Some(Num::Rat(-1, 2)) => {
                let r = self.builder.ins().sqrt(b);
                let one = self.one_like(b);
                self.builder.ins().fdiv(one, r)
            }
            // `b^(m + 1/2) = b^m · √b`, as the evaluator's `pow`.
            Some(Num::Rat(n, 2)) if n.abs() < 2 * MAX_UNROLLED_POWER => {
                // |n| ≥ 3 here: `m ≥ 1`.
                let m = self.powi(b, n.unsigned_abs() / 2);
                let r = self.builder.ins().sqrt(b);
                let p = self.builder.ins().fmul(m, r);
                if n < 0 {
                    let one = self.one_like(b);
                    self.builder.ins().fdiv(one, p)
                } else {
                    p
                }
            }
            _ => self.call(Extern::Pow, &[b, xv]),
        }
    }

    /// `1.0` of the type of `v`: a double, or both lanes.
    fn one_like(&mut self, v: Value) -> Value {
        let one = self.builder.ins().f64const(1.0);
        if self.builder.func.dfg.value_type(v) == LANES {
            self.builder.ins().splat(LANES, one)
        } else {
            one
        }
    }

    /// Whether `b^x` is computed without a call (see [`FunctionTranslator::translate_pow`]).
    fn pow_inline(&self, x: ExprId) -> bool {
        match self.arena.as_num(x) {
            Some(Num::Rat(n, 1)) => n != 0 && n.abs() <= MAX_UNROLLED_POWER,
            Some(Num::Rat(n, 2)) => n.abs() < 2 * MAX_UNROLLED_POWER,
            _ => false,
        }
    }

    /// The value of a node that reads the outer index, rows two at a time: both lanes.
    fn node_wide(&mut self, plan: &Plan, e: ExprId, inputs: &HashMap<SymId, Input>, at: &mut Values) -> Value {
        let arena = self.arena;
        let lanes_flags = lanes_mem().with_readonly().with_can_move();
        match arena.node(e) {
            Node::Member { family, row: Row::Index(s, off) } => {
                let base = self.family_base(*family, inputs, at);
                let byte = self.builder.ins().imul_imm_s(at.index[s], 8);
                let addr = self.builder.ins().iadd(base, byte);
                self.builder.ins().load(LANES, lanes_flags, addr, 8 * off)
            }
            Node::Data { table, row: Row::Index(s, off), col } if arena.table(*table).width() == 1 => {
                debug_assert_eq!(*col, 0);
                let t = arena.table(*table);
                let base = self.builder.ins().iconst(self.pointer, t.values.as_ptr() as i64);
                let byte = self.builder.ins().imul_imm_s(at.index[s], 8);
                let addr = self.builder.ins().iadd(base, byte);
                self.builder.ins().load(LANES, lanes_flags, addr, 8 * off)
            }
            Node::Add(xs) | Node::Mul(xs) => {
                // The operands in both lanes, and the factors of a subtracted `−1·u·v…`.
                let mut vals = HashMap::new();
                for &x in xs.iter() {
                    let v = self.lanes_of(x, at);
                    vals.insert(x, v);
                    if let Node::Mul(fs) = arena.node(x) {
                        // A product that reads no index is at hand whole.
                        if matches!(arena.node(e), Node::Add(_))
                            && plan.varying.contains(&x)
                            && arena.as_num(fs[0]) == Some(Num::MINUS_ONE)
                        {
                            for &f in &fs[1..] {
                                let v = self.lanes_of(f, at);
                                vals.insert(f, v);
                            }
                        }
                    }
                }
                if matches!(arena.node(e), Node::Add(_)) {
                    self.translate_add(xs, &vals)
                } else {
                    self.translate_mul(xs, &vals)
                }
            }
            Node::Pow(b, x) if self.pow_inline(*x) => {
                let bv = self.lanes_of(*b, at);
                self.translate_pow(bv, *x, at.vals[x])
            }
            Node::Func(Func::Abs, a) => {
                let a = self.lanes_of(*a, at);
                self.builder.ins().fabs(a)
            }
            // Computed by its loop.
            Node::Sum(..) => at.vals[&e],
            _ => self.node_by_lane(plan, e, inputs, at),
        }
    }

    /// A node without a two-lane instruction: computed for each lane from that lane's
    /// operands, then joined.
    fn node_by_lane(&mut self, plan: &Plan, e: ExprId, inputs: &HashMap<SymId, Input>, at: &mut Values) -> Value {
        let k = plan.outer.expect("rows two at a time are within a loop");
        // What `node` reads: the operands, and the terms of an angle sum.
        let mut reads = self.arena.children(e);
        if let Node::Func(Func::Sin | Func::Cos, a) = self.arena.node(e) {
            if let Some(terms) = plan.angle_sums.get(a) {
                reads.extend(terms.iter().map(|&(t, _)| t));
            }
        }
        let mut lanes = [None; 2];
        for (lane, out) in lanes.iter_mut().enumerate() {
            let mut one = Values { index: at.index.clone(), families: at.families.clone(), ..Values::default() };
            if lane == 1 {
                let next = self.builder.ins().iadd_imm_s(at.index[&k], 1);
                one.index.insert(k, next);
            }
            for &r in &reads {
                let Some(&v) = at.vals.get(&r) else { continue };
                let v = if self.builder.func.dfg.value_type(v) == LANES {
                    self.builder.ins().extractlane(v, lane as u8)
                } else {
                    v
                };
                one.vals.insert(r, v);
            }
            self.wide = false;
            *out = Some(self.node(plan, e, inputs, &mut one));
            self.wide = true;
        }
        let [a, b] = lanes.map(|v| v.expect("both lanes"));
        let v = self.builder.ins().scalar_to_vector(LANES, a);
        self.builder.ins().insertlane(v, b, 1)
    }

    /// `b^n`, `n ≥ 1`, by binary exponentiation in the order of compiler-rt's
    /// `__powidf2` (which the reference evaluator's `powi` uses).
    fn powi(&mut self, b: Value, mut n: u64) -> Value {
        let mut base = b;
        let mut acc: Option<Value> = None;
        loop {
            if n & 1 == 1 {
                acc = Some(match acc {
                    None => base,
                    Some(a) => self.builder.ins().fmul(a, base),
                });
            }
            n >>= 1;
            if n == 0 {
                break;
            }
            base = self.builder.ins().fmul(base, base);
        }
        acc.expect("n ≥ 1")
    }

    fn translate_func(&mut self, f: Func, a: Value) -> Value {
        let ext = match f {
            Func::Abs => return self.builder.ins().fabs(a),
            Func::Sign => {
                let zero = self.builder.ins().f64const(0.0);
                let one = self.builder.ins().f64const(1.0);
                let minus = self.builder.ins().f64const(-1.0);
                let pos = self.builder.ins().fcmp(FloatCC::GreaterThan, a, zero);
                let neg = self.builder.ins().fcmp(FloatCC::LessThan, a, zero);
                let m = self.builder.ins().select(neg, minus, zero);
                return self.builder.ins().select(pos, one, m);
            }
            Func::Sin => Extern::Sin,
            Func::Cos => Extern::Cos,
            Func::Tan => Extern::Tan,
            Func::Asin => Extern::Asin,
            Func::Acos => Extern::Acos,
            Func::Atan => Extern::Atan,
            Func::Sinh => Extern::Sinh,
            Func::Cosh => Extern::Cosh,
            Func::Tanh => Extern::Tanh,
            Func::Exp => Extern::Exp,
            Func::Log => Extern::Log,
        };
        self.call(ext, &[a])
    }

    /// `(sin u, cos u)` with one call.
    fn translate_sincos(&mut self, u: Value) -> (Value, Value) {
        let slot = *self.sincos_slot.get_or_insert_with(|| {
            self.builder.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 3))
        });
        let addr = self.builder.ins().stack_addr(self.pointer, slot, 0);
        self.call_void(Extern::SinCos, &[u, addr]);
        let s = self.builder.ins().load(types::F64, mem(), addr, 0);
        let c = self.builder.ins().load(types::F64, mem(), addr, 8);
        (s, c)
    }

    fn func_ref(&mut self, ext: Extern) -> cranelift_codegen::ir::FuncRef {
        if let Some(&r) = self.refs.get(&ext) {
            return r;
        }
        let id = match self.externs.ids.get(&ext) {
            Some(&id) => id,
            None => {
                let sig = ext.signature(self.module.isa().default_call_conv(), self.pointer);
                let id = self
                    .module
                    .declare_function(ext.symbol(), Linkage::Import, &sig)
                    .expect("runtime symbols have fixed, distinct signatures");
                self.externs.ids.insert(ext, id);
                id
            }
        };
        let r = self.module.declare_func_in_func(id, self.builder.func);
        self.refs.insert(ext, r);
        r
    }

    /// Calls an external function with one result.
    pub fn call(&mut self, ext: Extern, args: &[Value]) -> Value {
        let r = self.func_ref(ext);
        let inst = self.builder.ins().call(r, args);
        self.builder.inst_results(inst)[0]
    }

    /// Calls an external function without results.
    pub fn call_void(&mut self, ext: Extern, args: &[Value]) {
        let r = self.func_ref(ext);
        self.builder.ins().call(r, args);
    }

    /// Loads `count` doubles from `ptr`.
    pub fn load_f64s(&mut self, ptr: Value, count: usize) -> Vec<Value> {
        (0..count).map(|i| self.builder.ins().load(types::F64, mem(), ptr, (8 * i) as i32)).collect()
    }

    /// Stores doubles to `ptr`, starting at byte `offset`.
    pub fn store_f64s(&mut self, ptr: Value, offset: usize, vals: &[Value]) {
        for (i, &v) in vals.iter().enumerate() {
            self.builder.ins().store(mem(), v, ptr, (offset + 8 * i) as i32);
        }
    }
}
