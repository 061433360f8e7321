//! Data: the `data` statement, which binds families to the columns of a file,
//! and sums kept as loops over the rows.
//!
//! A `sum(i in a..b, body)` whose body reads a data family at row `i` is not
//! unrolled: it becomes one [`crate::sym::Node::Sum`] whose body is lowered
//! once with `i` symbolic, so code size and derivation time do not grow with
//! the number of rows. The body is first lowered with `i` bound to a loop
//! index; if it uses `i` where a number is needed (the index of a coordinate,
//! a range, a const), that attempt is dropped and the sum is unrolled as any
//! other.

use super::{Entry, Lowered, Lowerer};
use crate::data::{DataError, DataFile};
use crate::diag::{Diagnostic, Span};
use crate::sym::{DataTable, ExprId, Node, Row, SymId};
use crate::syntax::ast::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Sums over the members of a family of variables with at least this many
/// terms are kept as loops (shorter ones are unrolled, as written): the
/// derivation and the compiled code of a lattice then do not grow with its length.
pub const ROLLED_MIN: i64 = 16;

/// Where `data` statements find their files.
#[derive(Clone, Debug, Default)]
pub struct DataFiles {
    /// The directory that relative paths in the model are read from (the
    /// model file's); the working directory when `None`.
    pub dir: Option<PathBuf>,
    /// `--data NAME=PATH`: the file of the statement declaring `NAME` is `PATH`.
    pub replace: Vec<(String, PathBuf)>,
}

/// A subscript: a number, or a rolled sum's index plus an offset.
pub(super) enum Sub {
    At(i64),
    Rolled(SymId, i64),
}

impl Lowerer<'_> {
    /// `data x[M], X[M, F] = "file"`.
    pub(super) fn data_stmt(&mut self, items: &[DataItem], path: &str, path_span: Span) {
        let poison = |l: &mut Self| {
            for it in items {
                l.declare(&it.name, Entry::Poisoned);
                for s in &it.sizes {
                    if !l.scope.contains_key(&s.name) {
                        l.declare(s, Entry::Poisoned);
                    }
                }
            }
        };
        let replaced: Vec<&(String, PathBuf)> =
            self.files.replace.iter().filter(|(n, _)| items.iter().any(|it| it.name.name == *n)).collect();
        let file = match replaced.as_slice() {
            [] => match &self.files.dir {
                Some(d) => d.join(path),
                None => PathBuf::from(path),
            },
            [(_, p)] => p.clone(),
            [(a, p), (b, q), ..] if p != q => {
                self.err(
                    Diagnostic::new(path_span, "two files for one `data` statement")
                        .label(format!("--data gives {} for `{a}` and {} for `{b}`", p.display(), q.display()))
                        .help("the families of one statement come from one file; give one --data for it"),
                );
                return poison(self);
            }
            [(_, p), ..] => p.clone(),
        };
        let given = if replaced.is_empty() { String::new() } else { " (given by --data)".to_string() };
        // A device or a pipe would be read without end.
        if std::fs::metadata(&file).is_ok_and(|m| !m.is_file()) {
            self.err(
                Diagnostic::new(path_span, format!("{} is not a regular file", file.display()))
                    .label(format!("read here{given}"))
                    .help("a data file is a CSV table with a header row, or a .npy array"),
            );
            return poison(self);
        }
        self.data_files.push(file.clone());
        let read = match crate::data::read(&file) {
            Ok(r) => r,
            Err(e) => {
                let help = match &e {
                    DataError::Io { .. } => "paths in a model are relative to the model file's directory",
                    _ => "a data file is a CSV table with a header row, or a .npy array",
                };
                self.err(Diagnostic::new(path_span, e.to_string()).label(format!("read here{given}")).help(help));
                return poison(self);
            }
        };
        if matches!(read, DataFile::Array(_)) && items.len() != 1 {
            self.err(
                Diagnostic::new(path_span, format!("{} holds one array", file.display()))
                    .label(format!("{} families are bound to it", items.len()))
                    .help("bind one family to a .npy file, or use a CSV table with a column per family"),
            );
            return poison(self);
        }
        for it in items {
            match self.bind(it, &read, &file, path_span) {
                Some(entry) => self.declare(&it.name, entry),
                None => self.declare(&it.name, Entry::Poisoned),
            }
        }
    }

    /// Binds one family to its columns; declares its sizes.
    fn bind(&mut self, it: &DataItem, read: &DataFile, file: &Path, span: Span) -> Option<Entry> {
        let name = &it.name.name;
        let shown = file.display();
        let (rows, cols, values) = match (read, it.sizes.len()) {
            (DataFile::Table(t), 1) => match t.column(name) {
                Some(c) => (t.rows, None, c.values.clone()),
                None => {
                    let header: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
                    let mut d =
                        Diagnostic::new(it.name.span, format!("{shown} has no column `{name}`")).label("bound here");
                    d = match super::suggest(name, header.iter().copied()) {
                        Some(s) => d.help(format!("did you mean `{s}`? The header is: {}", header.join(", "))),
                        None => d.help(format!("the header is: {}", header.join(", "))),
                    };
                    self.err(d);
                    return None;
                }
            },
            (DataFile::Table(t), _) => match t.matrix(name) {
                Ok(Some((count, values))) => (t.rows, Some(count), values),
                Ok(None) => {
                    self.err(
                        Diagnostic::new(it.name.span, format!("{shown} has no column `{name}[0]`"))
                            .label("bound here")
                            .help(format!(
                                "a family `{name}[M, F]` reads the columns `{name}[0]`, `{name}[1]`, … of the header"
                            )),
                    );
                    return None;
                }
                Err(e) => {
                    self.err(Diagnostic::new(it.name.span, e.to_string()).label("bound here"));
                    return None;
                }
            },
            (DataFile::Array(a), k) if a.shape.len() == k => {
                (a.shape[0], (k == 2).then(|| a.shape[1]), a.values.clone())
            }
            (DataFile::Array(a), k) => {
                self.err(
                    Diagnostic::new(it.name.span, format!("{shown} holds a {}-D array", a.shape.len()))
                        .label(format!("`{name}` has {k} {}", if k == 1 { "index" } else { "indices" }))
                        .help("a 1-D array binds `x[M]`, a 2-D array `X[M, F]`"),
                );
                return None;
            }
        };
        if rows == 0 {
            self.err(Diagnostic::new(span, format!("{shown} has no rows")).label("read here"));
            return None;
        }
        let mut ok = self.size(&it.sizes[0], rows as i64, "rows", &shown.to_string());
        if let (Some(c), Some(s)) = (cols, it.sizes.get(1)) {
            ok &= self.size(s, c as i64, "columns", &shown.to_string());
        }
        if !ok {
            return None;
        }
        let table = self.arena.add_table(DataTable { name: name.clone(), rows, cols, values: Arc::from(values) });
        Some(Entry::Data { table, rows: rows as i64, cols: cols.map(|c| c as i64) })
    }

    /// Declares the size `id = n` fixed by a file, or checks it against a
    /// size already declared.
    fn size(&mut self, id: &Ident, n: i64, what: &str, file: &str) -> bool {
        if self.overrides.iter().any(|(k, _)| *k == id.name) {
            self.err(
                Diagnostic::new(id.span, format!("`{}` is fixed by the data file", id.name))
                    .label(format!("{file} has {n} {what}"))
                    .help("--set cannot change it; give another file with --data"),
            );
            return false;
        }
        match self.scope.get(&id.name).map(|(e, sp)| (e.clone(), *sp)) {
            None => {
                self.consts.push((id.name.clone(), n));
                self.declare(id, Entry::Const(n));
                true
            }
            Some((Entry::Const(m), _)) if m == n => true,
            Some((Entry::Const(m), prev)) => {
                self.err(
                    Diagnostic::new(id.span, format!("`{}` is {m}, but {file} has {n} {what}", id.name))
                        .label(format!("{n} {what} here"))
                        .with(prev, format!("`{}` is {m} here", id.name))
                        .help("families that share a size must come from files of the same length"),
                );
                false
            }
            Some((Entry::Poisoned, _)) => false,
            Some((_, prev)) => {
                self.err(
                    Diagnostic::new(id.span, format!("`{}` is not a size", id.name))
                        .label("a data family's size is a const")
                        .with(prev, "declared here"),
                );
                false
            }
        }
    }

    /// A subscript of a data or `let` family: a number, or a rolled index.
    pub(super) fn index_value(&mut self, e: &Expr) -> Result<Sub, ()> {
        match &e.kind {
            ExprKind::Name(id) => {
                if let Some((Entry::Rolled { sym, offset }, _)) = self.scope.get(&id.name) {
                    return Ok(Sub::Rolled(*sym, *offset));
                }
            }
            ExprKind::Binary(op @ (BinOp::Add | BinOp::Sub), a, b) if self.mentions_rolled(e) => {
                let sign = if *op == BinOp::Add { 1 } else { -1 };
                return match (self.index_value(a)?, self.index_value(b)?) {
                    (Sub::Rolled(s, k), Sub::At(c)) => Ok(Sub::Rolled(s, k + sign * c)),
                    (Sub::At(c), Sub::Rolled(s, k)) if sign == 1 => Ok(Sub::Rolled(s, k + c)),
                    _ => {
                        self.rolled_misuse = true;
                        Err(())
                    }
                };
            }
            _ => {}
        }
        self.int_value(e).map(Sub::At)
    }

    fn mentions_rolled(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Name(id) => matches!(self.scope.get(&id.name), Some((Entry::Rolled { .. }, _))),
            ExprKind::Binary(_, a, b) => self.mentions_rolled(a) || self.mentions_rolled(b),
            ExprKind::Neg(a) => self.mentions_rolled(a),
            _ => false,
        }
    }

    /// `name[subs]` of a data family.
    pub(super) fn data_ref(&mut self, id: &Ident, subs: &[Expr], table: u32, rows: i64, cols: Option<i64>) -> Lowered {
        let want = 1 + usize::from(cols.is_some());
        if subs.len() != want {
            self.err(
                Diagnostic::new(
                    id.span,
                    format!("`{}` takes {want} {}", id.name, if want == 1 { "index" } else { "indices" }),
                )
                .label(format!("{} given", subs.len()))
                .help(if want == 1 {
                    format!("write `{}[i]`", id.name)
                } else {
                    format!("write `{}[i, j]`", id.name)
                }),
            );
            return Err(());
        }
        let col = match cols {
            Some(c) => {
                let j = self.int_value(&subs[1])?;
                if !(0..c).contains(&j) {
                    self.err(
                        Diagnostic::new(subs[1].span, format!("column {j} is out of range"))
                            .label(format!("`{}` has columns 0..{c}", id.name)),
                    );
                    return Err(());
                }
                j as u32
            }
            None => 0,
        };
        let row = match self.index_value(&subs[0])? {
            Sub::At(i) if (0..rows).contains(&i) => Row::At(i as u32),
            Sub::At(i) => {
                self.err(
                    Diagnostic::new(subs[0].span, format!("index {i} is out of range"))
                        .label(format!("`{}` has rows 0..{rows}", id.name)),
                );
                return Err(());
            }
            Sub::Rolled(s, off) => {
                let (lo, hi) = self.index_range(s);
                if lo + off < 0 || hi + off > rows {
                    let bad = if lo + off < 0 { lo + off } else { hi - 1 + off };
                    self.err(
                        Diagnostic::new(subs[0].span, format!("index {bad} is out of range"))
                            .label(format!("`{}` has rows 0..{rows}; the sum runs over {lo}..{hi}", id.name))
                            .help("shorten the sum's range"),
                    );
                    return Err(());
                }
                Row::Index(s, off as i32)
            }
        };
        Ok(self.arena.data(table, row, col))
    }

    /// `name[i + offset]` of a family of variables at a rolled index: a
    /// [`crate::sym::Node::Member`] of the family (registered with its
    /// velocities and accelerations on first use).
    pub(super) fn member_rolled(&mut self, id: &Ident, ks: &[usize], sym: SymId, offset: i64, span: Span) -> Lowered {
        let (lo, hi) = self.index_range(sym);
        let n = ks.len() as i64;
        if lo + offset < 0 || hi + offset > n {
            let bad = if lo + offset < 0 { lo + offset } else { hi - 1 + offset };
            self.err(
                Diagnostic::new(span, format!("index {bad} is out of range"))
                    .label(format!("`{}` has indices 0..{n}; the sum runs over {lo}..{hi}", id.name))
                    .help("shorten the sum's range"),
            );
            return Err(());
        }
        let family = match self.member_families.get(&id.name) {
            Some(&f) => f,
            None => {
                let syms = |f: &dyn Fn(&crate::model::Variable) -> Option<SymId>| -> Option<Vec<SymId>> {
                    ks.iter().map(|&k| f(&self.vars[k])).collect()
                };
                let (q, v, a) = (syms(&|v| Some(v.sym)), syms(&|v| v.velocity), syms(&|v| v.acceleration));
                let f = self.arena.add_family(id.name.clone(), q.unwrap_or_default());
                if let (Some(v), Some(a)) = (v, a) {
                    let fv = self.arena.add_family(format!("{}'", id.name), v);
                    let fa = self.arena.add_family(format!("{}''", id.name), a);
                    self.arena.set_family_derivative(f, fv);
                    self.arena.set_family_derivative(fv, fa);
                }
                self.member_families.insert(id.name.clone(), f);
                f
            }
        };
        Ok(self.arena.member(family, Row::Index(sym, offset as i32)))
    }

    fn index_range(&self, s: SymId) -> (i64, i64) {
        match self.arena.symbol(s).kind {
            crate::sym::SymKind::Index { lo, hi } => (lo, hi),
            _ => (0, 0),
        }
    }

    /// `name[i + offset]` of a `let` family at a rolled index: its body
    /// lowered with the family's variable bound to that index.
    pub(super) fn let_rolled(&mut self, id: &Ident, sym: SymId, offset: i64, span: Span) -> Lowered {
        let key = (id.name.clone(), sym, offset);
        if let Some(&x) = self.let_cache.get(&key) {
            return Ok(x);
        }
        let Some((var, body, flo, fhi)) = self.let_asts.get(&id.name).cloned() else {
            self.rolled_misuse = true;
            return Err(());
        };
        let (lo, hi) = self.index_range(sym);
        if lo + offset < flo || hi + offset > fhi {
            let bad = if lo + offset < flo { lo + offset } else { hi - 1 + offset };
            self.err(
                Diagnostic::new(span, format!("index {bad} is out of range"))
                    .label(format!("`{}` has indices {flo}..{fhi}; the sum runs over {lo}..{hi}", id.name)),
            );
            return Err(());
        }
        let saved = self.scope.insert(var.name.clone(), (Entry::Rolled { sym, offset }, var.span));
        let out = self.expr(&body);
        match saved {
            Some(s) => self.scope.insert(var.name.clone(), s),
            None => self.scope.remove(&var.name),
        };
        let x = out?;
        self.let_cache.insert(key, x);
        Ok(x)
    }

    /// Member `i` of a `let` family lowered as used (families over data rows).
    pub(super) fn let_member(&mut self, id: &Ident, i: i64) -> Lowered {
        let Some((var, body, _, _)) = self.let_asts.get(&id.name).cloned() else { return Err(()) };
        let key = (id.name.clone(), i);
        if let Some(&x) = self.let_members.get(&key) {
            return Ok(x);
        }
        let x = self.with_index(&var, i, |l| l.expr(&body))?;
        self.let_members.insert(key, x);
        Ok(x)
    }

    /// Whether an expression reads a data family (by name, before lowering).
    pub(super) fn reads_data_family(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Index(id, subs) => {
                matches!(self.scope.get(&id.name), Some((Entry::Data { .. }, _)))
                    || subs.iter().any(|s| self.reads_data_family(s))
            }
            ExprKind::Number(_) | ExprKind::Name(_) => false,
            ExprKind::Call(_, args) => args.iter().any(|a| self.reads_data_family(a)),
            ExprKind::Neg(a) | ExprKind::Prime(a) => self.reads_data_family(a),
            ExprKind::Binary(_, a, b) => self.reads_data_family(a) || self.reads_data_family(b),
            ExprKind::Reduce { binder, body, .. } => {
                self.reads_data_family(body)
                    || self.reads_data_family(&binder.range.lo)
                    || self.reads_data_family(&binder.range.hi)
            }
        }
    }

    /// `sum(i in lo..hi, body)` as one loop, when the body reads data at row
    /// `i` and uses `i` nowhere a number is needed; `None` to unroll it.
    pub(super) fn try_rolled(&mut self, binder: &Binder, body: &Expr, lo: i64, hi: i64) -> Result<Option<ExprId>, ()> {
        let long = hi - lo >= ROLLED_MIN;
        if (self.arena.tables().is_empty() && !long) || hi <= lo {
            return Ok(None);
        }
        let errors = self.errors.len();
        let outer = std::mem::replace(&mut self.rolled_misuse, false);
        let text = format!("{lo}..{}", self.range_end_text(&binder.range, hi));
        let sym = self.arena.new_index(&binder.var.name, lo, hi, text);
        let saved = self.scope.insert(binder.var.name.clone(), (Entry::Rolled { sym, offset: 0 }, binder.var.span));
        let out = self.expr(body);
        match saved {
            Some(s) => self.scope.insert(binder.var.name.clone(), s),
            None => self.scope.remove(&binder.var.name),
        };
        let misuse = std::mem::replace(&mut self.rolled_misuse, outer);
        if misuse {
            self.errors.truncate(errors);
            return Ok(None);
        }
        let body = out?;
        let reads_data = self.arena.topo_order(&[body]).into_iter().any(|n| match self.arena.node(n) {
            Node::Data { row: Row::Index(s, _), .. } => *s == sym,
            Node::Member { row: Row::Index(s, _), .. } => *s == sym && long,
            _ => false,
        });
        if !reads_data {
            // Lowered again, unrolled: its errors would be reported twice.
            self.errors.truncate(errors);
            return Ok(None);
        }
        Ok(Some(self.arena.sum_over(sym, body)))
    }

    /// The end of a range as written when it is a const's name, else the number.
    fn range_end_text(&self, r: &Range, hi: i64) -> String {
        match &r.hi.kind {
            ExprKind::Name(id) if !r.inclusive && matches!(self.scope.get(&id.name), Some((Entry::Const(_), _))) => {
                id.name.clone()
            }
            _ => hi.to_string(),
        }
    }
}
