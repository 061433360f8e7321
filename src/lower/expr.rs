//! Expression lowering: numbers, names, indexing, function calls, arithmetic, `sum` and `prod`,
//! and the time derivative `'`, into the symbolic arena.

use super::{data, suggest, Entry, Lowered, Lowerer};
use crate::diag::Diagnostic;
use crate::model::ModelKind;
use crate::sym::{ExprId, Func, Num, SymId, SymKind};
use crate::syntax::ast::*;

const FUNCTIONS: [&str; 16] = [
    "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "exp", "log", "sqrt", "abs", "sign",
    "pow",
];

impl Lowerer<'_> {
    /// Lowers an expression that must be constant: numbers, `pi`, consts and
    /// parameters only.
    pub(super) fn constant(&mut self, e: &Expr, what: &str) -> Lowered {
        let x = self.expr(e)?;
        if self.arena.depends(x, |k| !matches!(k, SymKind::Param(_) | SymKind::Pi)) {
            self.err(
                Diagnostic::new(e.span, format!("{what} must be constant"))
                    .label("this depends on the state or on time")
                    .help("use numbers, pi, consts and params here"),
            );
            return Err(());
        }
        Ok(x)
    }

    /// Lowers an expression that may depend on time and parameters but not on
    /// the state: a schedule such as a temperature `T0/log(2 + t)`.
    pub(super) fn schedule(&mut self, e: &Expr, what: &str) -> Lowered {
        let x = self.expr(e)?;
        if self.arena.depends(x, |k| !matches!(k, SymKind::Param(_) | SymKind::Pi | SymKind::Time)) {
            self.err(
                Diagnostic::new(e.span, format!("{what} must not depend on the state"))
                    .label("this depends on a coordinate, a velocity or a state variable")
                    .help("use numbers, pi, params and t here (an annealing schedule such as `T0/log(2 + t)`)"),
            );
            return Err(());
        }
        Ok(x)
    }

    /// Lowers an expression into the arena.
    pub(super) fn expr(&mut self, e: &Expr) -> Lowered {
        match &e.kind {
            ExprKind::Number(x) => {
                if !x.is_finite() {
                    self.err(
                        Diagnostic::new(e.span, "number out of range")
                            .label("this overflows a 64-bit float")
                            .help("numbers must be below about 1.8e308"),
                    );
                    return Err(());
                }
                Ok(self.arena.num(Num::literal(*x)))
            }
            ExprKind::Name(id) => self.name(id),
            ExprKind::Index(id, subs) => {
                let entry = self.scope.get(&id.name).map(|(e, _)| e.clone());
                if let Some(Entry::Data { table, rows, cols }) = entry {
                    return self.data_ref(id, subs, table, rows, cols);
                }
                if subs.len() != 1 && matches!(entry, Some(Entry::Family(_)) | Some(Entry::LetFamily { .. })) {
                    self.err(
                        Diagnostic::new(e.span, format!("`{}` takes one index", id.name))
                            .label(format!("{} given", subs.len()))
                            .help(format!("write `{}[i]`", id.name)),
                    );
                    return Err(());
                }
                let ix = &subs[0];
                match entry {
                    Some(Entry::Poisoned) => Err(()),
                    Some(Entry::Family(ks)) => {
                        let i = match self.index_value(ix)? {
                            data::Sub::At(i) => i,
                            data::Sub::Rolled(s, off) => return self.member_rolled(id, &ks, s, off, ix.span),
                        };
                        let k = self.family_member(id, &ks, i, ix.span).ok_or(())?;
                        Ok(self.arena.sym(self.vars[k].sym))
                    }
                    Some(Entry::LetFamily { lo, hi, items }) => {
                        let i = match self.index_value(ix)? {
                            data::Sub::At(i) => i,
                            data::Sub::Rolled(s, off) => return self.let_rolled(id, s, off, ix.span),
                        };
                        if i < lo || i >= hi {
                            self.err(
                                Diagnostic::new(ix.span, format!("index {i} is out of range"))
                                    .label(format!("`{}` has indices {lo}..{hi}", id.name)),
                            );
                            return Err(());
                        }
                        match items.get((i - lo) as usize) {
                            Some(&x) => Ok(x),
                            None => self.let_member(id, i),
                        }
                    }
                    Some(_) => {
                        self.err(
                            Diagnostic::new(e.span, format!("`{}` is not a family", id.name))
                                .label("it cannot be indexed")
                                .help(format!("write `{}` without brackets", id.name)),
                        );
                        Err(())
                    }
                    None => {
                        self.unknown(id);
                        Err(())
                    }
                }
            }
            ExprKind::Call(f, args) => self.call(e, f, args),
            ExprKind::Neg(x) => {
                let x = self.expr(x)?;
                Ok(self.arena.neg(x))
            }
            ExprKind::Binary(op, a, b) => {
                let (x, y) = (self.expr(a), self.expr(b));
                let (x, y) = (x?, y?);
                Ok(match op {
                    BinOp::Add => self.arena.add2(x, y),
                    BinOp::Sub => self.arena.sub(x, y),
                    BinOp::Mul => self.arena.mul2(x, y),
                    BinOp::Div => {
                        if self.arena.is_zero(y) {
                            self.err(Diagnostic::new(b.span, "division by zero").label("this is 0"));
                            return Err(());
                        }
                        self.arena.div(x, y)
                    }
                    BinOp::Pow => {
                        if self.arena.is_zero(x) && self.arena.as_num(y).is_some_and(|n| n.is_negative()) {
                            self.err(Diagnostic::new(e.span, "division by zero").label("0 to a negative power"));
                            return Err(());
                        }
                        self.arena.pow(x, y)
                    }
                })
            }
            ExprKind::Prime(x) => self.prime(e, x),
            ExprKind::Reduce { op, binder, body } => {
                let (lo, hi) = self.range_unlimited(&binder.range)?;
                if *op == Reduction::Sum {
                    if let Some(x) = self.try_rolled(binder, body, lo, hi)? {
                        return Ok(x);
                    }
                }
                let help = "a sum over the rows of a data family runs as a loop of any length";
                self.check_unrolled(&binder.range, lo, hi, Some(help))?;
                let mut parts = Vec::new();
                let mut failed = false;
                for i in lo..hi {
                    match self.with_index(&binder.var, i, |l| l.expr(body)) {
                        Ok(x) => parts.push(x),
                        Err(()) => {
                            failed = true;
                            break;
                        }
                    }
                }
                if failed {
                    return Err(());
                }
                Ok(match op {
                    Reduction::Sum => self.arena.add(&parts),
                    Reduction::Prod => self.arena.mul(&parts),
                })
            }
        }
    }

    /// `x~`: the other particle's `x`, inside an `interaction` only.
    fn twin(&mut self, id: &Ident, own: &str) -> Lowered {
        let var = self.vars.iter().position(|v| v.name == own);
        match (&self.twins, var) {
            (Some(twins), Some(k)) => Ok(self.arena.sym(twins[k])),
            (None, _) => {
                self.err(
                    Diagnostic::new(id.span, format!("`{}` is the other particle of an interaction", id.name))
                        .label("allowed only inside `interaction = …`")
                        .help(format!("write `{own}` for this particle's value")),
                );
                Err(())
            }
            (Some(_), None) => {
                let names: Vec<String> = self.vars.iter().map(|v| format!("{}~", v.name)).collect();
                self.err(
                    Diagnostic::new(id.span, format!("`{own}` is not a state variable"))
                        .label("`~` names the other particle's copy of a state variable")
                        .help(format!("the other particle's variables: {}", names.join(", "))),
                );
                Err(())
            }
        }
    }

    fn name(&mut self, id: &Ident) -> Lowered {
        match id.name.as_str() {
            "t" => return Ok(self.arena.sym(self.time)),
            "pi" => return Ok(self.arena.sym(self.pi)),
            _ => {}
        }
        if let Some(own) = id.name.strip_suffix('~') {
            return self.twin(id, own);
        }
        let entry = self.scope.get(&id.name).map(|(e, _)| e.clone());
        match entry {
            Some(Entry::Const(n)) | Some(Entry::Index(n)) => Ok(self.arena.int(n)),
            Some(Entry::Rolled { sym, offset }) => {
                let i = self.arena.sym(sym);
                let k = self.arena.int(offset);
                Ok(self.arena.add2(i, k))
            }
            Some(Entry::Param(s)) => Ok(self.arena.sym(s)),
            Some(Entry::Var(k)) => Ok(self.arena.sym(self.vars[k].sym)),
            Some(Entry::Let(x)) => Ok(x),
            Some(Entry::Poisoned) => Err(()),
            Some(Entry::Family(_)) | Some(Entry::LetFamily { .. }) | Some(Entry::Data { .. }) => {
                self.err(
                    Diagnostic::new(id.span, format!("`{}` is a family", id.name))
                        .label("an index is missing")
                        .help(format!("write `{}[i]`", id.name)),
                );
                Err(())
            }
            Some(Entry::Observe) => {
                self.err(
                    Diagnostic::new(id.span, format!("`{}` is an output column", id.name))
                        .label("observed quantities cannot be used in expressions")
                        .help("define it with `let` and observe the let"),
                );
                Err(())
            }
            None => {
                if FUNCTIONS.contains(&id.name.as_str()) {
                    self.err(
                        Diagnostic::new(id.span, format!("`{}` is a function", id.name))
                            .label("used without arguments")
                            .help(format!("call it: `{}(x)`", id.name)),
                    );
                } else {
                    self.unknown(id);
                }
                Err(())
            }
        }
    }

    fn call(&mut self, e: &Expr, f: &Ident, args: &[Expr]) -> Lowered {
        let name = f.name.as_str();
        let arity = match name {
            "atan2" | "pow" => 2,
            _ if FUNCTIONS.contains(&name) => 1,
            _ => {
                let mut d = Diagnostic::new(f.span, format!("unknown function `{name}`")).label("not a function");
                d = d.help(match suggest(name, FUNCTIONS) {
                    Some(s) => format!("did you mean `{s}`? Functions: {}", FUNCTIONS.join(", ")),
                    None => format!("functions: {}", FUNCTIONS.join(", ")),
                });
                self.err(d);
                return Err(());
            }
        };
        if args.len() != arity {
            self.err(
                Diagnostic::new(
                    e.span,
                    format!("`{name}` takes {arity} argument{}", if arity == 1 { "" } else { "s" }),
                )
                .label(format!("{} given", args.len())),
            );
            return Err(());
        }
        let xs: Vec<Lowered> = args.iter().map(|a| self.expr(a)).collect();
        let xs: Vec<ExprId> = xs.into_iter().collect::<Result<_, _>>()?;
        Ok(match name {
            "sqrt" => self.arena.sqrt(xs[0]),
            "atan2" => self.arena.atan2(xs[0], xs[1]),
            "pow" => self.arena.pow(xs[0], xs[1]),
            _ => self.arena.func(Func::from_name(name).expect("listed function"), xs[0]),
        })
    }

    fn prime(&mut self, e: &Expr, inner: &Expr) -> Lowered {
        if self.kind == ModelKind::Energy {
            let mut d = Diagnostic::new(e.span, "`'` (the time derivative) is not allowed in an energy model")
                .label("time derivative here")
                .help("an energy model has a state but no velocities; `'` belongs to Lagrangian models");
            if let Some((k, sp)) = self.kind_stmt {
                d = d.with(sp, format!("`{k}` makes this an energy model"));
            }
            self.err(d);
            return Err(());
        }
        let x = self.expr(inner)?;
        if self.chain.0.len() != 2 * self.vars.len() {
            let chain: Vec<(SymId, SymId)> = self
                .vars
                .iter()
                .filter_map(|v| Some([(v.sym, v.velocity?), (v.velocity?, v.acceleration?)]))
                .flatten()
                .collect();
            let position = chain.iter().enumerate().map(|(k, &(x, _))| (x, k)).collect();
            self.chain = (chain, position);
        }
        let (chain, position) = std::mem::take(&mut self.chain);
        let d = self.arena.time_derivative_in(x, &chain, &position, Some(self.time));
        self.chain = (chain, position);
        if self.arena.depends(d, |k| matches!(k, SymKind::Acceleration(_))) {
            self.err(
                Diagnostic::new(e.span, "an acceleration is not allowed here")
                    .label("this is a second time derivative")
                    .help("a Lagrangian, dissipation, force or observed quantity may depend on positions, velocities and time only"),
            );
            return Err(());
        }
        Ok(d)
    }
}
