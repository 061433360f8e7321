//! A compact, portable evaluator: the DAG flattened once into a list of
//! register operations, each shared node computed once. It runs every kernel
//! where no native code is generated, and is checked against the
//! tree-walking evaluator of `sym`.

use crate::sym::{eval_pow, Arena, ExprId, Func, Node, SymId, SymKind};
use std::collections::HashMap;

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
}

/// Outputs of a set of expressions as functions of an input vector.
#[derive(Clone, Debug)]
pub struct Program {
    ops: Vec<Op>,
    outputs: Vec<u32>,
    inputs: usize,
}

impl Program {
    /// Flattens `outputs` (expressions in `inputs`, symbol `inputs[k]` read
    /// from `x[k]`). Symbols that are not inputs read as 0.
    pub fn new(arena: &Arena, inputs: &[SymId], outputs: &[ExprId]) -> Program {
        let slot: HashMap<SymId, usize> = inputs.iter().enumerate().map(|(k, s)| (*s, k)).collect();
        let order = arena.topo_order(outputs);
        let mut reg: HashMap<ExprId, u32> = HashMap::with_capacity(order.len());
        let mut ops = Vec::with_capacity(order.len());
        for e in order {
            let r = |x: &ExprId| reg[x];
            let op = match arena.node(e) {
                Node::Num(n) => Op::Const(n.to_f64()),
                Node::Sym(s) => match slot.get(s) {
                    Some(&k) => Op::Input(k),
                    // What the tree-walking evaluator gives an unset symbol.
                    None if arena.symbol(*s).kind == SymKind::Pi => Op::Const(std::f64::consts::PI),
                    None => Op::Const(0.0),
                },
                Node::Add(xs) => Op::Add(xs.iter().map(r).collect()),
                Node::Mul(xs) => Op::Mul(xs.iter().map(r).collect()),
                Node::Pow(b, x) => match arena.as_num(*x).and_then(|n| n.as_int()) {
                    Some(k) if k.abs() <= crate::sym::POWI_MAX => Op::Powi(r(b), k as i32),
                    _ => Op::Pow(r(b), r(x)),
                },
                Node::Func(f, a) => Op::Func(*f, r(a)),
                Node::Atan2(y, x) => Op::Atan2(r(y), r(x)),
            };
            reg.insert(e, ops.len() as u32);
            ops.push(op);
        }
        Program { outputs: outputs.iter().map(|o| reg[o]).collect(), ops, inputs: inputs.len() }
    }

    /// Evaluates into `out`; `scratch` is reused between calls.
    pub fn run(&self, x: &[f64], out: &mut [f64], scratch: &mut Vec<f64>) {
        debug_assert_eq!(x.len(), self.inputs);
        scratch.clear();
        scratch.reserve(self.ops.len());
        for op in &self.ops {
            let v = match op {
                Op::Const(c) => *c,
                Op::Input(k) => x[*k],
                Op::Add(xs) => xs.iter().map(|&i| scratch[i as usize]).sum(),
                Op::Mul(xs) => xs.iter().map(|&i| scratch[i as usize]).product(),
                Op::Pow(b, e) => eval_pow(scratch[*b as usize], scratch[*e as usize]),
                Op::Powi(b, k) => eval_pow(scratch[*b as usize], *k as f64),
                Op::Func(f, a) => f.apply(scratch[*a as usize]),
                Op::Atan2(y, x) => scratch[*y as usize].atan2(scratch[*x as usize]),
            };
            scratch.push(v);
        }
        for (o, &r) in out.iter_mut().zip(&self.outputs) {
            *o = scratch[r as usize];
        }
    }
}
