//! The tree-walking evaluator: the reference semantics of the DAG, against
//! which every compiled kernel is tested.

use super::expr::{Arena, ExprId, Node, SymId, SymKind};

/// Values of symbols for evaluation, indexed by [`SymId`].
#[derive(Clone, Debug)]
pub struct Env {
    values: Vec<f64>,
}

impl Env {
    /// An environment with every symbol at 0, except `pi`.
    pub fn new(arena: &Arena) -> Env {
        let values =
            arena.symbols().map(|(_, s)| if s.kind == SymKind::Pi { std::f64::consts::PI } else { 0.0 }).collect();
        Env { values }
    }

    pub fn set(&mut self, s: SymId, x: f64) {
        if s.0 as usize >= self.values.len() {
            self.values.resize(s.0 as usize + 1, 0.0);
        }
        self.values[s.0 as usize] = x;
    }

    pub fn get(&self, s: SymId) -> f64 {
        self.values.get(s.0 as usize).copied().unwrap_or(0.0)
    }
}

impl Arena {
    /// Evaluates `roots` in `env`, each shared node once.
    pub fn eval_many(&self, roots: &[ExprId], env: &Env) -> Vec<f64> {
        let order = self.topo_order(roots);
        let mut vals: std::collections::HashMap<ExprId, f64> = std::collections::HashMap::with_capacity(order.len());
        for n in order {
            let v = match self.node(n) {
                Node::Num(x) => x.to_f64(),
                Node::Sym(s) => env.get(*s),
                Node::Add(xs) => xs.iter().map(|x| vals[x]).sum(),
                Node::Mul(xs) => xs.iter().map(|x| vals[x]).product(),
                Node::Pow(b, e) => pow(vals[b], vals[e]),
                Node::Func(f, a) => f.apply(vals[a]),
                Node::Atan2(y, x) => vals[y].atan2(vals[x]),
            };
            vals.insert(n, v);
        }
        roots.iter().map(|r| vals[r]).collect()
    }

    /// Evaluates one expression.
    pub fn eval(&self, e: ExprId, env: &Env) -> f64 {
        self.eval_many(&[e], env)[0]
    }
}

/// `b^e` with integer exponents by repeated multiplication (as compiled
/// kernels do) and `sqrt` for one half.
/// Integer powers up to this magnitude are computed by binary exponentiation
/// (`powi`), larger or fractional ones by `powf`. The evaluator, the portable
/// program and the native kernels all follow it, so they agree bit for bit.
pub const POWI_MAX: i64 = 64;

pub fn pow(b: f64, e: f64) -> f64 {
    if e == 0.5 {
        b.sqrt()
    } else if e == -0.5 {
        1.0 / b.sqrt()
    } else if e.fract() == 0.0 && e.abs() <= POWI_MAX as f64 {
        b.powi(e as i32)
    } else {
        b.powf(e)
    }
}
