//! A compact, portable evaluator: the DAG flattened once into a list of
//! register operations, each shared node computed once. It runs every kernel
//! where no native code is generated, and is checked against the
//! tree-walking evaluator of `sym`.

use crate::batch::Batch;
use crate::sym::{eval_pow, Arena, ExprId, Func, Node, Row, Step, SymId, SymKind};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone, Debug)]
enum Op {
    Const(f64),
    Input(usize),
    Add(Vec<u32>),
    Mul(Vec<u32>),
    Pow(u32, u32),
    Powi(u32, i32),
    Func(Func, u32),
    Atan2(u32, u32),
    /// The value of a loop's index.
    Index(u32),
    /// `values[(row + offset) · width + col]`, the row fixed or a loop's index.
    Data {
        values: Arc<[f64]>,
        width: usize,
        col: usize,
        row: DataRow,
    },
    /// `x[inputs[index + offset]]`: a family member at a loop's index, its
    /// members' input positions in `inputs` (`usize::MAX` reads 0).
    Member {
        inputs: Arc<[usize]>,
        slot: u32,
        offset: i64,
    },
    Loop(Box<LoopOp>),
}

#[derive(Clone, Copy, Debug)]
enum DataRow {
    At(usize),
    /// The index held by loop slot `slot`, plus an offset.
    Index {
        slot: u32,
        offset: i64,
    },
}

#[derive(Clone, Debug)]
struct LoopOp {
    /// The loop's slot among the indices.
    slot: u32,
    lo: i64,
    hi: i64,
    /// Runs over the step's minibatch instead of `lo..hi`.
    batch: Option<Batch>,
    body: Vec<(u32, Op)>,
    /// `(sum register, body register)` pairs.
    sums: Vec<(u32, u32)>,
}

/// Outputs of a set of expressions as functions of an input vector.
#[derive(Clone, Debug)]
pub struct Program {
    /// Each op with the register it writes.
    ops: Vec<(u32, Op)>,
    outputs: Vec<u32>,
    inputs: usize,
    registers: usize,
    loops: usize,
}

struct Flattener<'a> {
    arena: &'a Arena,
    slot: HashMap<SymId, usize>,
    reg: HashMap<ExprId, u32>,
    index_slot: HashMap<SymId, u32>,
    batch: Option<Batch>,
}

impl Flattener<'_> {
    fn register(&mut self, e: ExprId) -> u32 {
        let n = self.reg.len() as u32;
        *self.reg.entry(e).or_insert(n)
    }

    fn steps(&mut self, steps: &[Step]) -> Vec<(u32, Op)> {
        let mut ops = Vec::with_capacity(steps.len());
        for step in steps {
            match step {
                Step::Node(e) => {
                    let op = self.op(*e);
                    ops.push((self.register(*e), op));
                }
                Step::Loop(l) => {
                    let slot = self.index_slot.len() as u32;
                    self.index_slot.insert(l.index, slot);
                    let body = self.steps(&l.body);
                    let sums: Vec<(u32, u32)> = l.sums.iter().map(|&(s, b)| (self.register(s), self.reg[&b])).collect();
                    let batch = self.batch.filter(|b| b.applies(l.lo, l.hi));
                    ops.push((0, Op::Loop(Box::new(LoopOp { slot, lo: l.lo, hi: l.hi, batch, body, sums }))));
                }
            }
        }
        ops
    }

    fn op(&mut self, e: ExprId) -> Op {
        let arena = self.arena;
        let r = |x: &ExprId| self.reg[x];
        match arena.node(e) {
            Node::Num(n) => Op::Const(n.to_f64()),
            Node::Sym(s) => match (self.slot.get(s), arena.symbol(*s).kind) {
                (Some(&k), _) => Op::Input(k),
                (None, SymKind::Index { .. }) => Op::Index(self.index_slot[s]),
                // What the tree-walking evaluator gives an unset symbol.
                (None, SymKind::Pi) => Op::Const(std::f64::consts::PI),
                (None, _) => Op::Const(0.0),
            },
            Node::Add(xs) => Op::Add(xs.iter().map(r).collect()),
            Node::Mul(xs) => Op::Mul(xs.iter().map(r).collect()),
            Node::Pow(b, x) => match arena.as_num(*x).and_then(|n| n.as_int()) {
                Some(k) if k.abs() <= crate::sym::POWI_MAX => Op::Powi(r(b), k as i32),
                _ => Op::Pow(r(b), r(x)),
            },
            Node::Func(f, a) => Op::Func(*f, r(a)),
            Node::Atan2(y, x) => Op::Atan2(r(y), r(x)),
            Node::Data { table, row, col } => {
                let t = arena.table(*table);
                let row = match row {
                    Row::At(k) => DataRow::At(*k as usize),
                    Row::Index(s, off) => DataRow::Index { slot: self.index_slot[s], offset: i64::from(*off) },
                };
                Op::Data { values: t.values.clone(), width: t.width(), col: *col as usize, row }
            }
            Node::Member { family, row } => {
                let members = &arena.family(*family).members;
                let inputs: Arc<[usize]> =
                    members.iter().map(|m| self.slot.get(m).copied().unwrap_or(usize::MAX)).collect();
                match row {
                    Row::At(k) => match inputs[*k as usize] {
                        usize::MAX => Op::Const(0.0),
                        k => Op::Input(k),
                    },
                    Row::Index(s, off) => Op::Member { inputs, slot: self.index_slot[s], offset: i64::from(*off) },
                }
            }
            Node::Sum(..) => unreachable!("a sum is computed by its loop"),
        }
    }
}

impl Program {
    /// Flattens `outputs` (expressions in `inputs`, symbol `inputs[k]` read
    /// from `x[k]`). Symbols that are not inputs read as 0. The loops that
    /// `batch` applies to run over the step's minibatch ([`crate::batch`]).
    pub fn batched(arena: &Arena, inputs: &[SymId], outputs: &[ExprId], batch: Option<Batch>) -> Program {
        let schedule = arena.schedule(outputs);
        let mut f = Flattener {
            arena,
            slot: inputs.iter().enumerate().map(|(k, s)| (*s, k)).collect(),
            reg: HashMap::with_capacity(schedule.node_count()),
            index_slot: HashMap::new(),
            batch,
        };
        let ops = f.steps(&schedule.steps);
        Program {
            outputs: outputs.iter().map(|o| f.reg[o]).collect(),
            ops,
            inputs: inputs.len(),
            registers: f.reg.len(),
            loops: f.index_slot.len(),
        }
    }

    /// Evaluates into `out`; `scratch` is reused between calls.
    pub fn run(&self, x: &[f64], out: &mut [f64], scratch: &mut Vec<f64>) {
        debug_assert_eq!(x.len(), self.inputs);
        scratch.clear();
        scratch.resize(self.registers, 0.0);
        let mut index = vec![0i64; self.loops];
        run_ops(&self.ops, x, scratch, &mut index);
        for (o, &r) in out.iter_mut().zip(&self.outputs) {
            *o = scratch[r as usize];
        }
    }
}

fn run_ops(ops: &[(u32, Op)], x: &[f64], reg: &mut [f64], index: &mut [i64]) {
    for (dst, op) in ops {
        let v = match op {
            Op::Const(c) => *c,
            Op::Input(k) => x[*k],
            Op::Add(xs) => xs.iter().map(|&i| reg[i as usize]).sum(),
            Op::Mul(xs) => xs.iter().map(|&i| reg[i as usize]).product(),
            Op::Pow(b, e) => eval_pow(reg[*b as usize], reg[*e as usize]),
            Op::Powi(b, k) => eval_pow(reg[*b as usize], *k as f64),
            Op::Func(f, a) => f.apply(reg[*a as usize]),
            Op::Atan2(y, x) => reg[*y as usize].atan2(reg[*x as usize]),
            Op::Index(slot) => index[*slot as usize] as f64,
            Op::Data { values, width, col, row } => {
                let r = match row {
                    DataRow::At(r) => *r,
                    DataRow::Index { slot, offset } => (index[*slot as usize] + offset) as usize,
                };
                values[r * width + col]
            }
            Op::Member { inputs, slot, offset } => match inputs[(index[*slot as usize] + offset) as usize] {
                usize::MAX => 0.0,
                k => x[k],
            },
            Op::Loop(l) => {
                let mut acc = vec![0.0; l.sums.len()];
                let mut pass = |i: i64, reg: &mut [f64], index: &mut [i64]| {
                    index[l.slot as usize] = i;
                    run_ops(&l.body, x, reg, index);
                    for (a, (_, b)) in acc.iter_mut().zip(&l.sums) {
                        *a += reg[*b as usize];
                    }
                };
                let scale = match l.batch {
                    Some(b) => {
                        crate::batch::with_rows(|rows| {
                            for &r in rows {
                                pass(i64::from(r), reg, index);
                            }
                        });
                        b.scale()
                    }
                    None => {
                        for i in l.lo..l.hi {
                            pass(i, reg, index);
                        }
                        1.0
                    }
                };
                for (a, (s, _)) in acc.into_iter().zip(&l.sums) {
                    reg[*s as usize] = a * scale;
                }
                continue;
            }
        };
        reg[*dst as usize] = v;
    }
}
