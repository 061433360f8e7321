//! Declarations: parameters with their values, and coordinates and state variables, one symbol
//! for each member of a family.

use super::{Entry, Lowerer, MAX_FAMILY};
use crate::diag::Diagnostic;
use crate::model::{Param, Variable};
use crate::sym::{Env, SymKind};
use crate::syntax::ast::*;

impl Lowerer<'_> {
    pub(super) fn param(&mut self, id: &Ident, e: &Expr) {
        let expr = self.constant(e, "a parameter's value").unwrap_or_else(|_| self.arena.int(0));
        let value = match self.overrides.iter().find(|(n, _)| *n == id.name) {
            Some((_, x)) => *x,
            None => {
                let v = self.arena.eval(expr, &self.env());
                if !v.is_finite() {
                    self.err(
                        Diagnostic::new(e.span, format!("the value of `{}` is not a finite number", id.name))
                            .label(format!("this evaluates to {v}")),
                    );
                }
                v
            }
        };
        let sym = self.arena.new_symbol(id.name.clone(), SymKind::Param(self.params.len()));
        self.params.push(Param { name: id.name.clone(), sym, expr, value, span: id.span });
        self.declare(id, Entry::Param(sym));
    }

    pub(super) fn env(&self) -> Env {
        let mut env = Env::new(&self.arena);
        for p in &self.params {
            env.set(p.sym, p.value);
        }
        env
    }

    pub(super) fn variable(&mut self, d: &Decl, lagrangian: bool) {
        let make = |l: &mut Self, name: String| -> usize {
            let k = l.vars.len();
            let (kind, vel, acc) = if lagrangian {
                let sym = l.arena.new_symbol(name.clone(), SymKind::Coord(k));
                let v = l.arena.new_symbol(format!("{name}'"), SymKind::Velocity(k));
                let a = l.arena.new_symbol(format!("{name}''"), SymKind::Acceleration(k));
                (sym, Some(v), Some(a))
            } else {
                (l.arena.new_symbol(name.clone(), SymKind::State(k)), None, None)
            };
            l.vars.push(Variable { name, sym: kind, velocity: vel, acceleration: acc });
            k
        };
        match &d.size {
            None => {
                let k = make(self, d.name.name.clone());
                self.declare(&d.name, Entry::Var(k));
            }
            Some(size) => {
                let n = match self.int_value(size) {
                    Ok(n) if n < 1 => {
                        self.err(
                            Diagnostic::new(size.span, "a family needs at least one member")
                                .label(format!("this is {n}")),
                        );
                        None
                    }
                    Ok(n) if n > MAX_FAMILY => {
                        self.err(
                            Diagnostic::new(size.span, "the family is too large")
                                .label(format!("{n} members; the limit is {MAX_FAMILY}")),
                        );
                        None
                    }
                    Ok(n) => Some(n),
                    Err(()) => None,
                };
                let Some(n) = n else {
                    self.declare(&d.name, Entry::Poisoned);
                    return;
                };
                let ks: Vec<usize> = (0..n).map(|i| make(self, format!("{}[{}]", d.name.name, i))).collect();
                self.declare(&d.name, Entry::Family(std::rc::Rc::from(ks)));
            }
        }
    }
}
