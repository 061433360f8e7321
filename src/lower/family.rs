//! Index families: integer index expressions and ranges, the members of a family, and the
//! variables that a `force` or `init` target names.

use super::{suggest, Entry, Lowerer, MAX_FAMILY};
use crate::diag::{Diagnostic, Span};
use crate::model::ModelKind;
use crate::sym::ExprId;
use crate::syntax::ast::*;

impl Lowerer<'_> {
    /// The variables a `force` or `init` target names, each with the value
    /// expression lowered for it.
    pub(super) fn targets(&mut self, t: &Target, value: &Expr) -> Vec<(usize, ExprId)> {
        let Some(ks) = self.target_vars(t) else { return vec![] };
        ks.into_iter()
            .filter_map(|(k, i)| {
                let x = match (&t.selector, i) {
                    (Selector::Each(b), Some(i)) => self.with_index(&b.var, i, |l| l.expr(value)),
                    _ => self.expr(value),
                };
                x.ok().map(|x| (k, x))
            })
            .collect()
    }

    /// Resolves a target to variables, with the index value for `[i in …]`.
    pub(super) fn target_vars(&mut self, t: &Target) -> Option<Vec<(usize, Option<i64>)>> {
        let entry = self.scope.get(&t.name.name).map(|(e, _)| e.clone());
        match (entry, &t.selector) {
            (Some(Entry::Poisoned), _) => None,
            (Some(Entry::Var(k)), Selector::None) => Some(vec![(k, None)]),
            (Some(Entry::Family(ks)), Selector::Index(ix)) => {
                let i = self.int_value(ix).ok()?;
                let k = self.family_member(&t.name, &ks, i, ix.span)?;
                Some(vec![(k, None)])
            }
            (Some(Entry::Family(ks)), Selector::Each(b)) => {
                let (lo, hi) = self.range(&b.range).ok()?;
                let mut out = vec![];
                for i in lo..hi {
                    out.push((self.family_member(&t.name, &ks, i, b.range.span)?, Some(i)));
                }
                Some(out)
            }
            (Some(Entry::Family(_)), Selector::None) => {
                self.err(
                    Diagnostic::new(t.name.span, format!("`{}` is a family", t.name.name))
                        .label("an index is missing")
                        .help(format!("write `{0}[i in 0..N]` for every member or `{0}[0]` for one", t.name.name)),
                );
                None
            }
            (Some(Entry::Var(_)), _) => {
                self.err(
                    Diagnostic::new(t.span, format!("`{}` is not a family", t.name.name))
                        .label("it has no index")
                        .help(format!("write `{}` without brackets", t.name.name)),
                );
                None
            }
            (Some(_), _) => {
                let what = if self.kind == ModelKind::Lagrangian { "coordinate" } else { "state variable" };
                self.err(
                    Diagnostic::new(t.name.span, format!("`{}` is not a {what}", t.name.name))
                        .label(format!("only a {what} can be given here")),
                );
                None
            }
            (None, _) => {
                let names: Vec<String> = self.var_names();
                let mut d = Diagnostic::new(t.name.span, format!("`{}` is not declared", t.name.name))
                    .label("no coordinate or state variable of this name");
                if let Some(s) = suggest(&t.name.name, names.iter().map(|s| s.as_str())) {
                    d = d.help(format!("did you mean `{s}`?"));
                }
                self.err(d);
                None
            }
        }
    }

    pub(super) fn family_member(&mut self, name: &Ident, ks: &[usize], i: i64, span: Span) -> Option<usize> {
        if i < 0 || i as usize >= ks.len() {
            self.err(Diagnostic::new(span, format!("index {i} is out of range")).label(format!(
                "`{}` has indices 0..{}",
                name.name,
                ks.len()
            )));
            return None;
        }
        Some(ks[i as usize])
    }

    /// A half-open integer range from `a..b` or `a..=b`.
    pub(super) fn range(&mut self, r: &Range) -> Result<(i64, i64), ()> {
        let (lo, hi) = self.range_unlimited(r)?;
        self.check_unrolled(r, lo, hi, None)?;
        Ok((lo, hi))
    }

    /// A range `a..b` without the unrolling limit (for sums kept as loops).
    pub(super) fn range_unlimited(&mut self, r: &Range) -> Result<(i64, i64), ()> {
        let lo = self.int_value(&r.lo)?;
        let hi = self.int_value(&r.hi)? + i64::from(r.inclusive);
        Ok((lo, hi.max(lo)))
    }

    /// The limit of [`MAX_FAMILY`] members for a range already evaluated.
    pub(super) fn check_unrolled(&mut self, r: &Range, lo: i64, hi: i64, help: Option<&str>) -> Result<(), ()> {
        if hi.saturating_sub(lo) > MAX_FAMILY {
            let mut d = Diagnostic::new(r.span, "the range is too large")
                .label(format!("{} members; the limit is {MAX_FAMILY}", hi - lo));
            if let Some(h) = help {
                d = d.help(h);
            }
            self.err(d);
            return Err(());
        }
        Ok(())
    }

    /// Evaluates an index expression: integer arithmetic on literals, consts
    /// and index variables.
    pub(super) fn int_value(&mut self, e: &Expr) -> Result<i64, ()> {
        let bad = |l: &mut Self, label: &str| {
            l.err(
                Diagnostic::new(e.span, "expected an integer")
                    .label(label.to_string())
                    .help("sizes and indices are integer expressions of numbers, consts and index variables"),
            );
            Err(())
        };
        match &e.kind {
            ExprKind::Number(x) => {
                if x.fract() == 0.0 && x.abs() < 1e15 {
                    Ok(*x as i64)
                } else {
                    bad(self, &format!("{} is not an integer", crate::sym::fmt_float(*x)))
                }
            }
            ExprKind::Name(id) => match self.scope.get(&id.name) {
                Some((Entry::Const(n), _)) | Some((Entry::Index(n), _)) => Ok(*n),
                Some((Entry::Poisoned, _)) => Err(()),
                Some((Entry::Rolled { .. }, _)) => {
                    // Not an error: the sum is unrolled instead (see `data::try_rolled`).
                    self.rolled_misuse = true;
                    Err(())
                }
                Some(_) => bad(self, &format!("`{}` is not a const or an index variable", id.name)),
                None => {
                    self.unknown(id);
                    Err(())
                }
            },
            ExprKind::Neg(x) => Ok(-self.int_value(x)?),
            ExprKind::Binary(op, a, b) => {
                let (a, b) = (self.int_value(a)?, self.int_value(b)?);
                let r = match op {
                    BinOp::Add => a.checked_add(b),
                    BinOp::Sub => a.checked_sub(b),
                    BinOp::Mul => a.checked_mul(b),
                    BinOp::Div if b != 0 && a % b == 0 => Some(a / b),
                    BinOp::Div => return bad(self, &format!("{a}/{b} is not an integer")),
                    BinOp::Pow if (0..64).contains(&b) => a.checked_pow(b as u32),
                    BinOp::Pow => None,
                };
                match r {
                    Some(r) => Ok(r),
                    None => bad(self, "integer overflow"),
                }
            }
            _ => bad(self, "not an integer expression"),
        }
    }
}
