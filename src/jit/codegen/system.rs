//! The first-order system `y' = F(t, y)` that both specs lower to: its plan, its body emitted
//! inline, the right-hand side function compiled from it, and calls of that function.

use super::ModuleBuilder;
use crate::integrate::symband;
use crate::jit::linsolve::{emit_diagonal, emit_solve, upper_index, DiagonalSolve, UNROLLED_MAX};
use crate::jit::runtime::Extern;
use crate::jit::translate::{lanes_mem, mem, FunctionTranslator, Input, Plan, LANES};
use crate::jit::{JitError, Matrix, RowLoop};
use crate::sym::{Arena, ExprId, SymId};
use cranelift_codegen::ir::{condcodes::IntCC, types, Block, InstBuilder, Value};
use cranelift_module::{FuncId, Module};
use std::collections::HashMap;
use std::ops::Range;

/// Right-hand sides whose plan has more nodes than this are not inlined into
/// the fixed-step loops: four inlined copies cost four times the compile
/// time (30 ms instead of 8 ms for the 10-link chain) and gain nothing
/// measurable once a right-hand side is this large (the call costs a few
/// loads and stores against thousands of operations).
const INLINE_NODES_MAX: usize = 300;

/// A right-hand side without a dense matrix whose plan has more nodes than
/// this is compiled as several functions of consecutive rows, each of about
/// this many nodes, called in turn: register allocation grows faster than a
/// function's size, so many small functions compile in time linear in the
/// system (a lattice of 4,096 masses: 87 s as one function). Nodes shared
/// by two parts are computed by both.
const PART_NODES: usize = 8_000;

/// Segments of at least this many rows compute two rows at a time (`f64x2`), each lane
/// operation for operation what a single row computes.
const LANES_MIN: i64 = 4;

thread_local! {
    /// Whether kernels compiled on this thread compute long segments two rows at a time.
    static TWO_ROWS: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Whether kernels compiled now compute long segments two rows at a time.
pub(crate) fn two_rows() -> bool {
    TWO_ROWS.with(|c| c.get())
}

/// Runs `f` with kernels compiled one row at a time, the reference that rows two at a
/// time must match bit for bit (`tests/indexed.rs`).
pub fn one_row_at_a_time<R>(f: impl FnOnce() -> R) -> R {
    let before = TWO_ROWS.with(|c| c.replace(false));
    let r = f();
    TWO_ROWS.with(|c| c.set(before));
    r
}

/// The matrix `A` of a system, by its structure.
#[derive(Clone, Debug)]
pub(crate) enum Solve {
    /// A symmetric `n × n` matrix, its upper triangle in the plan.
    Dense(usize),
    /// A diagonal matrix, its `n` diagonal entries in the plan: a division each.
    Diagonal,
    /// A symmetric band matrix of half-bandwidth `b`: each row's upper band, then the row's
    /// right-hand side, in the plan; stored into the thread's scratch array as they are
    /// computed and solved there by `lagc_band_solve`.
    Banded { n: usize, b: usize },
    /// A matrix factored before compiling: the plan holds the right-hand side alone,
    /// solved in place by `lagc_factored_solve` with the factor at this address (0 for
    /// a matrix that could not be factored).
    Factored { factor: usize },
}

impl Solve {
    /// The doubles of the scratch array a banded solve fills: the band, then `b`.
    fn scratch_len(n: usize, b: usize) -> usize {
        crate::integrate::symband::band_len(n, b) + n
    }
}

/// A first-order system `y' = F(t, y)` in the form both specs lower to:
/// `F = (y[copy], A⁻¹ b)` where the plan's roots are the upper triangle (or
/// the diagonal, or the band row by row) of `A` (if `solve` is some) followed by `b`.
pub(crate) struct System {
    pub name: &'static str,
    pub time: SymId,
    pub state: Vec<SymId>,
    pub params: Vec<SymId>,
    /// State entries copied to the front of `F` (the velocities of a Lagrangian system).
    pub copy: Range<usize>,
    /// The matrix to solve with, if any.
    pub solve: Option<Solve>,
    pub plan: Plan,
    /// Where row `i`'s roots begin in `plan` (and where the rows after the last end), for
    /// every shape but a dense matrix.
    row_roots: Vec<usize>,
    /// For a banded matrix: where each root of `plan` goes in the scratch array.
    scratch_slots: Vec<usize>,
    /// For a large system without a dense matrix: its rows in parts, each
    /// with its own plan (roots as in `plan`, for those rows only).
    pub parts: Vec<(Range<usize>, Plan)>,
    /// The solved rows by segments (a system with indexed structure), grouped
    /// by index: the segments of one index (several families over the same
    /// members) run in one loop whose plan has a root per segment, sharing
    /// what they compute alike. `plan` then holds every segment's expression
    /// (for the parameters it reads).
    pub looped: Vec<(Vec<RowLoop>, Plan)>,
}

impl System {
    pub fn new(
        arena: &Arena,
        name: &'static str,
        (time, state, params): (SymId, Vec<SymId>, Vec<SymId>),
        copy: Range<usize>,
        matrix: Option<&Matrix>,
        vector: &[ExprId],
        batch: Option<crate::batch::Batch>,
    ) -> Result<System, JitError> {
        let n = vector.len();
        let mut roots = Vec::new();
        let mut row_roots = vec![0];
        let mut scratch_slots = Vec::new();
        let solve = match matrix {
            // Each diagonal entry beside its right-hand side: `(d_0, b_0, d_1, b_1, …)`.
            Some(Matrix::Diagonal(d)) => {
                for (di, bi) in d.iter().zip(vector) {
                    roots.push(*di);
                    roots.push(*bi);
                    row_roots.push(roots.len());
                }
                Some(Solve::Diagonal)
            }
            Some(Matrix::Dense(m)) => {
                for i in 0..n {
                    for j in i..n {
                        debug_assert_eq!(roots.len(), upper_index(n, i, j));
                        roots.push(m[i * n + j]);
                    }
                }
                roots.extend_from_slice(vector);
                Some(Solve::Dense(n))
            }
            Some(Matrix::Banded { band, entries }) => {
                let b = *band;
                for (i, bi) in vector.iter().enumerate() {
                    for j in i..(i + b + 1).min(n) {
                        let k = symband::band_index(b, i, j);
                        roots.push(entries[k]);
                        scratch_slots.push(k);
                    }
                    roots.push(*bi);
                    scratch_slots.push(symband::band_len(n, b) + i);
                    row_roots.push(roots.len());
                }
                Some(Solve::Banded { n, b })
            }
            Some(Matrix::Factored(f)) => {
                roots.extend_from_slice(vector);
                row_roots.extend(1..=n);
                let factor = f.as_ref().map_or(0, |f| std::sync::Arc::as_ptr(f) as usize);
                Some(Solve::Factored { factor })
            }
            None => {
                roots.extend_from_slice(vector);
                row_roots.extend(1..=n);
                None
            }
        };
        let mut bound = vec![time];
        bound.extend(&state);
        bound.extend(&params);
        let plan = Plan::batched(arena, &roots, &bound, name, batch)?;
        let mut parts = Vec::new();
        if !matches!(solve, Some(Solve::Dense(_))) && plan.node_count() > 2 * PART_NODES {
            let count = plan.node_count().div_ceil(PART_NODES).min(n.max(1));
            let size = n.div_ceil(count);
            for start in (0..n).step_by(size.max(1)) {
                let range = start..(start + size).min(n);
                let part =
                    Plan::batched(arena, &roots[row_roots[range.start]..row_roots[range.end]], &bound, name, batch)?;
                parts.push((range, part));
            }
        }
        Ok(System { name, time, state, params, copy, solve, plan, row_roots, scratch_slots, parts, looped: Vec::new() })
    }

    /// A system whose solved rows are given by segments ([`RowLoop`]): code
    /// in proportion to the number of segments, not of rows. The rows are the solution,
    /// or `b` of a [`Matrix::Factored`] solved in place after them.
    pub fn looped(
        arena: &Arena,
        name: &'static str,
        (time, state, params): (SymId, Vec<SymId>, Vec<SymId>),
        copy: Range<usize>,
        rows: &[RowLoop],
        matrix: &Matrix,
    ) -> Result<System, JitError> {
        let solve = match matrix {
            Matrix::Factored(f) => {
                Some(Solve::Factored { factor: f.as_ref().map_or(0, |f| std::sync::Arc::as_ptr(f) as usize) })
            }
            _ => None,
        };
        let mut bound = vec![time];
        bound.extend(&state);
        bound.extend(&params);
        let all: Vec<ExprId> = rows.iter().map(|r| r.expr).collect();
        let plan = Plan::batched(arena, &all, &bound, name, None)?;
        let mut groups: Vec<Vec<RowLoop>> = Vec::new();
        for r in rows {
            match groups.iter_mut().find(|g| r.index.is_some() && g[0].index.map(|x| x.0) == r.index.map(|x| x.0)) {
                Some(g) => g.push(r.clone()),
                None => groups.push(vec![r.clone()]),
            }
        }
        let looped = groups
            .into_iter()
            .map(|g| {
                let roots: Vec<ExprId> = g.iter().map(|r| r.expr).collect();
                let plan = Plan::within(arena, &roots, &bound, name, None, g[0].index.map(|(k, _)| k))?;
                Ok((g, plan))
            })
            .collect::<Result<Vec<_>, JitError>>()?;
        Ok(System {
            name,
            time,
            state,
            params,
            copy,
            solve,
            plan,
            row_roots: Vec::new(),
            scratch_slots: Vec::new(),
            parts: Vec::new(),
            looped,
        })
    }

    /// Emits the segments of a looped system: a counted loop over the members
    /// of each long segment, one row for each other, every value stored as
    /// soon as it is known.
    fn emit_looped(&self, tr: &mut FunctionTranslator, t: Value, (y, p, dy): (Value, Value, Value)) {
        let n = self.copy.len() as i64;
        let from = tr.builder.ins().iadd_imm_s(y, 8 * self.copy.start as i64);
        super::step_memory::copy(tr, dy, from, self.copy.len());
        let out = tr.builder.ins().iadd_imm_s(dy, 8 * n);
        self.emit_segments(tr, t, (y, p), &mut |tr, byte, v| {
            let addr = tr.builder.ins().iadd(out, byte);
            let flags = if tr.builder.func.dfg.value_type(v) == LANES { lanes_mem() } else { mem() };
            tr.builder.ins().store(flags, v, addr, 0);
        });
    }

    /// Emits every segment of a looped system with the state at `y`, handing
    /// each row's value to `each(tr, 8·row, value)` (`8·row` an `i64`) as soon
    /// as it is known: a counted loop over the members of a long segment, the
    /// rows of a short one one by one. A long segment's loop computes two rows
    /// at a time: `value` is then an `f64x2` ([`LANES`]) of rows `row` and `row + 1`.
    pub(super) fn emit_segments(
        &self,
        tr: &mut FunctionTranslator,
        t: Value,
        (y, p): (Value, Value),
        each: &mut dyn FnMut(&mut FunctionTranslator, Value, Value),
    ) {
        let inputs = self.inputs_in_memory(t, y, p);
        for (group, plan) in &self.looped {
            let seg = &group[0];
            match seg.index {
                None if seg.rows.len() == 1 => {
                    let byte = tr.builder.ins().iconst(types::I64, (8 * seg.rows.start) as i64);
                    tr.eval_streamed(plan, &inputs, |tr, _, v| each(tr, byte, v));
                }
                None => {
                    // One value for many rows (a family the dynamics leave alone).
                    let mut value = None;
                    tr.eval_streamed(plan, &inputs, |_, _, v| value = Some(v));
                    let v = value.expect("one root");
                    emit_counted(tr, seg.rows.start as i64, seg.rows.end as i64, |tr, r| {
                        let byte = tr.builder.ins().imul_imm_s(r, 8);
                        each(tr, byte, v);
                    });
                }
                Some((_, base)) => {
                    let (lo, hi) = ((seg.rows.start - base) as i64, (seg.rows.end - base) as i64);
                    // Rows two at a time, then the last one of an odd count.
                    let pairs = if hi - lo >= LANES_MIN && two_rows() { (hi - lo) / 2 } else { 0 };
                    let invariant = tr.eval_invariant(plan, &inputs, pairs > 0);
                    let mut rows = |tr: &mut FunctionTranslator, m: Value, wide: bool| {
                        // Root `p` is row `base_p + m` (and `base_p + m + 1` in the second lane).
                        let byte = tr.builder.ins().imul_imm_s(m, 8);
                        tr.eval_rows(plan, &inputs, &invariant, (m, wide), |tr, p, v| {
                            let at = tr.builder.ins().iadd_imm_s(byte, 8 * group[p].index.map_or(0, |x| x.1) as i64);
                            each(tr, at, v)
                        });
                    };
                    if pairs > 0 {
                        emit_counted(tr, 0, pairs, |tr, j| {
                            let twice = tr.builder.ins().imul_imm_s(j, 2);
                            let m = tr.builder.ins().iadd_imm_s(twice, lo);
                            rows(tr, m, true);
                        });
                    }
                    let rest = lo + 2 * pairs;
                    if hi - rest == 1 {
                        let m = tr.builder.ins().iconst(types::I64, rest);
                        rows(tr, m, false);
                    } else if hi > rest {
                        emit_counted(tr, rest, hi, |tr, m| rows(tr, m, false));
                    }
                }
            }
        }
    }

    pub fn dim(&self) -> usize {
        self.state.len()
    }

    /// Emits `F(t, y)`; jumps to `fail` if the matrix is singular.
    pub(super) fn emit(
        &self,
        tr: &mut FunctionTranslator,
        t: Value,
        y: &[Value],
        p: &[Option<Value>],
        fail: Block,
    ) -> Vec<Value> {
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
            Some(Solve::Dense(n)) => {
                let (upper, b) = vals.split_at(n * (n + 1) / 2);
                dy.extend(emit_solve(tr, n, upper, b, fail));
            }
            Some(Solve::Diagonal) => {
                let d: Vec<Value> = vals.iter().step_by(2).copied().collect();
                let b: Vec<Value> = vals.iter().skip(1).step_by(2).copied().collect();
                dy.extend(emit_diagonal(tr, &d, &b, fail));
            }
            Some(Solve::Banded { .. } | Solve::Factored { .. }) => {
                unreachable!("a system solved out of line is never inlined")
            }
        }
        dy
    }

    /// Emits `F(t, y)` of a system without a dense matrix from the arrays `y`
    /// and `p` into `dy`, loading each input where it is first used and
    /// storing each output as soon as it is known, so that no value lives
    /// across the whole function (register allocation then grows with the
    /// system, not faster). Jumps to `fail` if a diagonal entry is zero or
    /// not finite; `dy` may then hold part of the result.
    pub(super) fn emit_streamed(
        &self,
        tr: &mut FunctionTranslator,
        t: Value,
        (y, p, dy): (Value, Value, Value),
        fail: Block,
    ) {
        for (j, k) in self.copy.clone().enumerate() {
            let v = tr.builder.ins().load(types::F64, mem(), y, (8 * k) as i32);
            tr.builder.ins().store(mem(), v, dy, (8 * j) as i32);
        }
        let rows = self.row_roots.len() - 1;
        self.emit_rows(tr, t, (y, p, dy), fail, &self.plan, 0..rows);
        self.emit_finish(tr, dy, fail);
    }

    /// After every row of `b` (and of a banded matrix) is stored: the solve of a system
    /// whose matrix is solved out of line, its solution into `dy` after the copied entries.
    fn emit_finish(&self, tr: &mut FunctionTranslator, dy: Value, fail: Block) {
        let at = 8 * self.copy.len() as i64;
        let status = match self.solve {
            Some(Solve::Banded { n, b }) => {
                let out = tr.builder.ins().iadd_imm_s(dy, at);
                let len = tr.builder.ins().iconst(types::I64, Solve::scratch_len(n, b) as i64);
                let scratch = tr.call(Extern::Scratch, &[len]);
                let (nv, bv) =
                    (tr.builder.ins().iconst(types::I64, n as i64), tr.builder.ins().iconst(types::I64, b as i64));
                tr.call(Extern::BandSolve, &[nv, bv, scratch, out])
            }
            Some(Solve::Factored { factor, .. }) => {
                let out = tr.builder.ins().iadd_imm_s(dy, at);
                let f = tr.builder.ins().iconst(tr.pointer, factor as i64);
                tr.call(Extern::FactoredSolve, &[f, out])
            }
            _ => return,
        };
        let bad = tr.builder.ins().icmp_imm_s(IntCC::NotEqual, status, 0);
        let cont = tr.builder.create_block();
        tr.builder.ins().brif(bad, fail, &[], cont, &[]);
        tr.builder.switch_to_block(cont);
    }

    /// The rows `rows` of `F`'s solved part, from `plan` (whose roots are
    /// those rows'), into `dy` after the copied entries.
    pub(super) fn emit_rows(
        &self,
        tr: &mut FunctionTranslator,
        t: Value,
        (y, p, dy): (Value, Value, Value),
        fail: Block,
        plan: &Plan,
        rows: Range<usize>,
    ) {
        let copied = self.copy.len() + rows.start;
        let inputs = self.inputs_in_memory(t, y, p);
        let store = |tr: &mut FunctionTranslator, i: usize, v: Value| {
            tr.builder.ins().store(mem(), v, dy, (8 * (copied + i)) as i32);
        };
        match self.solve {
            None | Some(Solve::Factored { .. }) => tr.eval_streamed(plan, &inputs, store),
            Some(Solve::Banded { n, b }) => {
                let len = tr.builder.ins().iconst(types::I64, Solve::scratch_len(n, b) as i64);
                let scratch = tr.call(Extern::Scratch, &[len]);
                let first = self.row_roots[rows.start];
                tr.eval_streamed(plan, &inputs, |tr, pos, v| {
                    let slot = self.scratch_slots[first + pos];
                    tr.builder.ins().store(mem(), v, scratch, (8 * slot) as i32);
                });
            }
            Some(Solve::Diagonal) => {
                let n = rows.len();
                // Roots come in pairs (d_i, b_i); each x_i = b_i / d_i is stored as soon as
                // both are known, and every d_i is checked with one branch at the end.
                let mut pending: Vec<(Option<Value>, Option<Value>)> = vec![(None, None); n];
                let mut solve = DiagonalSolve::default();
                tr.eval_streamed(plan, &inputs, |tr, pos, v| {
                    let i = pos / 2;
                    if pos % 2 == 0 {
                        pending[i].0 = Some(v);
                    } else {
                        pending[i].1 = Some(v);
                    }
                    if let (Some(d), Some(b)) = pending[i] {
                        let x = solve.entry(tr, d, b);
                        store(tr, i, x);
                    }
                });
                solve.finish(tr, fail);
            }
            Some(Solve::Dense(_)) => unreachable!("a dense system is emitted by `emit`"),
        }
    }

    /// Where a plan finds its inputs: `t` at hand, the state and the
    /// parameters loaded from the arrays `y` and `p` where first used.
    fn inputs_in_memory(&self, t: Value, y: Value, p: Value) -> HashMap<SymId, Input> {
        let mut inputs: HashMap<SymId, Input> = HashMap::new();
        inputs.insert(self.time, Input::Value(t));
        for (k, s) in self.state.iter().enumerate() {
            inputs.insert(*s, Input::Load { ptr: y, offset: (8 * k) as i32 });
        }
        for (k, s) in self.params.iter().enumerate() {
            inputs.insert(*s, Input::Load { ptr: p, offset: (8 * k) as i32 });
        }
        inputs
    }

    /// Loads the parameters the plan reads (others stay `None`).
    pub(super) fn load_params(&self, tr: &mut FunctionTranslator, ptr: Value) -> Vec<Option<Value>> {
        (0..self.params.len())
            .map(|i| {
                self.plan
                    .free
                    .contains(&self.params[i])
                    .then(|| tr.builder.ins().load(types::F64, mem(), ptr, (8 * i) as i32))
            })
            .collect()
    }

    /// Whether the fixed-step loops keep this system's state in memory rather than in
    /// registers: a system called out of line with more than `MEMORY_LOOP_MIN_DIM` entries.
    pub(crate) fn steps_in_memory(&self) -> bool {
        !self.inline_in_loop() && self.dim() > super::step::MEMORY_LOOP_MIN_DIM
    }

    pub(super) fn inline_in_loop(&self) -> bool {
        // Loops over members read the state from memory.
        if !self.looped.is_empty() {
            return false;
        }
        let small = match self.solve {
            Some(Solve::Dense(n)) => n <= UNROLLED_MAX,
            Some(Solve::Diagonal) | None => true,
            Some(Solve::Banded { .. } | Solve::Factored { .. }) => false,
        };
        small && self.plan.node_count() <= INLINE_NODES_MAX
    }
}

impl ModuleBuilder<'_> {
    /// The right-hand side `fn(t, y, p, dy) -> status`.
    pub fn rhs(&mut self, sys: &System) -> Result<FuncId, JitError> {
        let p = self.module.target_config().pointer_type();
        let sig = self.signature(&[types::F64, p, p, p], &[types::I32]);
        let mut parts = Vec::with_capacity(sys.parts.len());
        for (k, (rows, plan)) in sys.parts.iter().enumerate() {
            let id = self.function(&format!("{}_rhs_part{k}", sys.name), sig.clone(), |tr, args| {
                let (t, y, params, dy) = (args[0], args[1], args[2], args[3]);
                let fail = tr.builder.create_block();
                tr.builder.set_cold_block(fail);
                sys.emit_rows(tr, t, (y, params, dy), fail, plan, rows.clone());
                let zero = tr.builder.ins().iconst(types::I32, 0);
                tr.builder.ins().return_(&[zero]);
                tr.builder.switch_to_block(fail);
                let one = tr.builder.ins().iconst(types::I32, 1);
                tr.builder.ins().return_(&[one]);
            })?;
            parts.push(id);
        }
        self.function(&format!("{}_rhs", sys.name), sig, |tr, args| {
            let (t, y, params, dy) = (args[0], args[1], args[2], args[3]);
            let fail = tr.builder.create_block();
            tr.builder.set_cold_block(fail);
            if !sys.looped.is_empty() {
                sys.emit_looped(tr, t, (y, params, dy));
                sys.emit_finish(tr, dy, fail);
            } else if matches!(sys.solve, Some(Solve::Dense(_))) {
                let yv = tr.load_f64s(y, sys.dim());
                let pv = sys.load_params(tr, params);
                let f = sys.emit(tr, t, &yv, &pv, fail);
                tr.store_f64s(dy, 0, &f);
            } else if parts.is_empty() {
                sys.emit_streamed(tr, t, (y, params, dy), fail);
            } else {
                for (j, k) in sys.copy.clone().enumerate() {
                    let v = tr.builder.ins().load(types::F64, mem(), y, (8 * k) as i32);
                    tr.builder.ins().store(mem(), v, dy, (8 * j) as i32);
                }
                for &part in &parts {
                    call_checked(tr, part, (t, y, params, dy), fail);
                }
                sys.emit_finish(tr, dy, fail);
            }
            let zero = tr.builder.ins().iconst(types::I32, 0);
            tr.builder.ins().return_(&[zero]);
            tr.builder.switch_to_block(fail);
            let one = tr.builder.ins().iconst(types::I32, 1);
            tr.builder.ins().return_(&[one]);
        })
    }
}

/// Emits `for m in lo..hi { body(tr, m) }`, `m` an `i64` value; the builder
/// continues after the loop.
pub(super) fn emit_counted(
    tr: &mut FunctionTranslator,
    lo: i64,
    hi: i64,
    body: impl FnOnce(&mut FunctionTranslator, Value),
) {
    let header = tr.builder.create_block();
    let block = tr.builder.create_block();
    let exit = tr.builder.create_block();
    tr.builder.append_block_param(header, types::I64);
    let start = tr.builder.ins().iconst(types::I64, lo);
    tr.builder.ins().jump(header, &[start.into()]);
    tr.builder.switch_to_block(header);
    let m = tr.builder.block_params(header)[0];
    // The exit first: Cranelift's loop-invariant code motion visits a branch's targets in
    // reverse, and hoists nothing out of a loop body visited after the loop's exit.
    let end = tr.builder.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, m, hi);
    tr.builder.ins().brif(end, exit, &[], block, &[]);
    tr.builder.switch_to_block(block);
    tr.builder.seal_block(block);
    body(tr, m);
    let next = tr.builder.ins().iadd_imm_s(m, 1);
    tr.builder.ins().jump(header, &[next.into()]);
    tr.builder.seal_block(header);
    tr.builder.switch_to_block(exit);
    tr.builder.seal_block(exit);
}

/// A call of the compiled right-hand side through stack slots.
pub(super) fn call_rhs(
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
    call_checked(tr, rhs, (t, y_addr, p_ptr, dy_addr), fail);
    tr.load_f64s(dy_addr, d)
}

/// Calls the compiled right-hand side `dy = F(t, y)` with the arrays at hand; jumps to
/// `fail` when it reports a singular matrix.
pub(super) fn call_checked(
    tr: &mut FunctionTranslator,
    rhs: FuncId,
    (t, y, p, dy): (Value, Value, Value, Value),
    fail: Block,
) {
    let f = tr.module.declare_func_in_func(rhs, tr.builder.func);
    let call = tr.builder.ins().call(f, &[t, y, p, dy]);
    let status = tr.builder.inst_results(call)[0];
    let bad = tr.builder.ins().icmp_imm_s(IntCC::NotEqual, status, 0);
    let cont = tr.builder.create_block();
    tr.builder.ins().brif(bad, fail, &[], cont, &[]);
    tr.builder.switch_to_block(cont);
}
