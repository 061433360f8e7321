//! The tree-walking evaluator: the reference semantics of the DAG, against
//! which every compiled kernel is tested.

use super::expr::{Arena, ExprId, FxMap, Node, Row, Step, SymId, SymKind};

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
    /// Evaluates `roots` in `env`, each shared node once; rolled sums run as loops.
    pub fn eval_many(&self, roots: &[ExprId], env: &Env) -> Vec<f64> {
        let schedule = self.schedule(roots);
        let mut vals: FxMap<ExprId, f64> = FxMap::default();
        let mut index: FxMap<SymId, i64> = FxMap::default();
        self.run_steps(&schedule.steps, env, &mut vals, &mut index);
        roots.iter().map(|r| vals[r]).collect()
    }

    fn run_steps(&self, steps: &[Step], env: &Env, vals: &mut FxMap<ExprId, f64>, index: &mut FxMap<SymId, i64>) {
        for step in steps {
            match step {
                Step::Node(n) => {
                    let v = self.eval_node(*n, env, vals, index);
                    vals.insert(*n, v);
                }
                Step::Loop(l) => {
                    let mut acc = vec![0.0; l.sums.len()];
                    for i in l.lo..l.hi {
                        index.insert(l.index, i);
                        self.run_steps(&l.body, env, vals, index);
                        for (a, (_, b)) in acc.iter_mut().zip(&l.sums) {
                            *a += vals[b];
                        }
                    }
                    index.remove(&l.index);
                    for (a, (s, _)) in acc.into_iter().zip(&l.sums) {
                        vals.insert(*s, a);
                    }
                }
            }
        }
    }

    fn eval_node(&self, n: ExprId, env: &Env, vals: &FxMap<ExprId, f64>, index: &FxMap<SymId, i64>) -> f64 {
        match self.node(n) {
            Node::Num(x) => x.to_f64(),
            Node::Sym(s) => match self.symbol(*s).kind {
                SymKind::Index { .. } => index.get(s).map_or(f64::NAN, |&i| i as f64),
                _ => env.get(*s),
            },
            Node::Add(xs) => xs.iter().map(|x| vals[x]).sum(),
            Node::Mul(xs) => xs.iter().map(|x| vals[x]).product(),
            Node::Pow(b, e) => pow(vals[b], vals[e]),
            Node::Func(f, a) => f.apply(vals[a]),
            Node::Atan2(y, x) => vals[y].atan2(vals[x]),
            Node::Data { table, row, col } => {
                let t = self.table(*table);
                let r = match row {
                    Row::At(r) => i64::from(*r),
                    Row::Index(s, off) => index.get(s).map_or(-1, |&i| i + i64::from(*off)),
                };
                match usize::try_from(r) {
                    Ok(r) if r < t.rows => t.values[r * t.width() + *col as usize],
                    _ => f64::NAN,
                }
            }
            Node::Member { family, row } => {
                let members = &self.family(*family).members;
                let k = match row {
                    Row::At(r) => i64::from(*r),
                    Row::Index(s, off) => index.get(s).map_or(-1, |&i| i + i64::from(*off)),
                };
                match usize::try_from(k) {
                    Ok(k) if k < members.len() => env.get(members[k]),
                    _ => f64::NAN,
                }
            }
            // Scheduled as a loop; never a single step.
            Node::Sum(..) => vals.get(&n).copied().unwrap_or(f64::NAN),
        }
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
    } else if e.fract().abs() == 0.5 && e.abs() <= POWI_MAX as f64 {
        // `b^(m + 1/2) = b^m · √b`: the `r^(3/2)` of an inverse-square force
        // without a call to `pow`.
        let m = e.abs().trunc() as i32;
        let p = b.powi(m) * b.sqrt();
        if e < 0.0 {
            1.0 / p
        } else {
            p
        }
    } else {
        b.powf(e)
    }
}
