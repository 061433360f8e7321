//! Statement lowering: the statements of a file, read in order, checked and assembled into a
//! [`Model`], with the `metric` of an energy model.

use super::{Entry, Lowerer};
use crate::diag::{count, Diagnostic, Span};
use crate::model::{Init, Model, ModelKind, Settings, Spans};
use crate::sym::ExprId;
use crate::syntax::ast::*;
use std::collections::HashMap;

impl Lowerer<'_> {
    pub(super) fn statements(&mut self, file: &File, default_name: &str) -> Option<Model> {
        let mut name = default_name.to_string();
        let mut lagrangian = None;
        let mut dissipation: Option<(ExprId, Span)> = None;
        let mut forces: Vec<(usize, ExprId, Span)> = Vec::new();
        let mut energy = None;
        let mut metric: Option<(Vec<Vec<ExprId>>, Span)> = None;
        let mut temperature = None;
        let mut observes = Vec::new();
        let mut inits: Vec<(usize, bool, Init, Span)> = Vec::new();
        let mut settings = Settings::default();
        let mut spans = Spans::default();
        let mut seen_once: HashMap<&'static str, Span> = HashMap::new();
        let mut domains: Vec<crate::model::Domain> = Vec::new();
        let mut interaction = None;
        for (i, s) in file.stmts.iter().enumerate() {
            // Past the node limit every expression is a placeholder: nothing after
            // the statement that grew too large is read (its values would be NaN).
            if self.arena.overflowed() {
                self.err(super::too_large(file.stmts[i.saturating_sub(1)].span));
                return None;
            }
            if self.errors.len() >= super::MAX_ERRORS {
                self.err(super::too_many_errors(s.keyword, file.stmts.len() - i));
                return None;
            }
            let kw = s.keyword_name();
            if matches!(
                kw,
                "model" | "lagrangian" | "energy" | "dissipation" | "metric" | "temperature" | "interaction"
            ) {
                if let Some(prev) = seen_once.get(kw) {
                    let prev = *prev;
                    self.err(
                        Diagnostic::new(s.keyword, format!("`{kw}` is given twice"))
                            .label("given again here")
                            .with(prev, "first given here")
                            .help("a model has one of each; combine the expressions"),
                    );
                    continue;
                }
                seen_once.insert(kw, s.keyword);
            }
            match &s.kind {
                StmtKind::Model(id) => {
                    if i != 0 {
                        self.err(
                            Diagnostic::new(s.keyword, "`model` must be the first statement")
                                .label("not first")
                                .help("move `model NAME` to the top of the file"),
                        );
                    }
                    name = id.name.clone();
                }
                StmtKind::Const(id, e) => {
                    let v = match self.overrides.iter().find(|(n, _)| *n == id.name) {
                        Some((_, x)) if x.fract() == 0.0 && x.abs() < 1e15 => Ok(*x as i64),
                        Some((_, x)) => {
                            self.err(
                                Diagnostic::new(id.span, format!("`{}` is a const and must be an integer", id.name))
                                    .label(format!("--set gives {}", crate::sym::fmt_float(*x))),
                            );
                            Err(())
                        }
                        None => self.int_value(e),
                    };
                    if let Ok(v) = v {
                        self.consts.push((id.name.clone(), v));
                        self.declare(id, Entry::Const(v));
                    } else {
                        self.declare(id, Entry::Poisoned);
                    }
                }
                StmtKind::Param(items) => {
                    for (id, e) in items {
                        self.param(id, e);
                    }
                }
                StmtKind::Coord(decls) => {
                    self.wrong_kind(s, ModelKind::Lagrangian);
                    for d in decls {
                        self.variable(d, true);
                    }
                }
                StmtKind::State(decls) => {
                    self.wrong_kind(s, ModelKind::Energy);
                    for d in decls {
                        self.variable(d, false);
                    }
                }
                StmtKind::Let { name, binder, value } => match binder {
                    None => {
                        let e = self.expr(value).unwrap_or_else(|_| self.arena.int(0));
                        self.declare(name, Entry::Let(e));
                    }
                    Some(b) => {
                        // A family over the rows of a data set is lowered member by member as
                        // used, so it has no limit of its own; the others are lowered whole.
                        let lazy = self.reads_data_family(value);
                        let range = if lazy { self.range_unlimited(&b.range) } else { self.range(&b.range) };
                        let Ok((lo, hi)) = range else {
                            // Its uses report nothing more.
                            self.declare(name, Entry::Poisoned);
                            continue;
                        };
                        self.let_asts.insert(name.name.clone(), (b.var.clone(), value.clone(), lo, hi));
                        let mut items = Vec::new();
                        let eager = if lazy { lo..(lo + 1).min(hi) } else { lo..hi };
                        for i in eager {
                            let e = self.with_index(&b.var, i, |l| l.expr(value));
                            items.push(e.unwrap_or_else(|_| self.arena.int(0)));
                        }
                        self.declare(name, Entry::LetFamily { lo, hi, items: items.into() });
                    }
                },
                StmtKind::Lagrangian(e) => {
                    spans.main = s.keyword;
                    if self.kind == ModelKind::Lagrangian {
                        lagrangian = self.expr(e).ok();
                    }
                }
                StmtKind::Energy(e) => {
                    spans.main = s.keyword;
                    if self.kind == ModelKind::Energy {
                        energy = self.expr(e).ok();
                    }
                }
                StmtKind::Dissipation(e) => {
                    if !self.wrong_kind(s, ModelKind::Lagrangian) {
                        if let Ok(x) = self.expr(e) {
                            dissipation = Some((x, e.span));
                            spans.dissipation = Some(e.span);
                        }
                    }
                }
                StmtKind::Force(target, e) => {
                    if !self.wrong_kind(s, ModelKind::Lagrangian) {
                        for (k, x) in self.targets(target, e) {
                            if let Some((_, _, prev)) = forces.iter().find(|(j, _, _)| *j == k) {
                                let prev = *prev;
                                self.err(
                                    Diagnostic::new(target.span, format!("a second force on `{}`", self.vars[k].name))
                                        .label("given again here")
                                        .with(prev, "first given here")
                                        .help("add the two forces in one expression"),
                                );
                            } else {
                                forces.push((k, x, target.span));
                            }
                        }
                    }
                }
                StmtKind::Metric(form) => {
                    if !self.wrong_kind(s, ModelKind::Energy) {
                        spans.metric = Some(s.span);
                        if let Some(g) = self.metric(form, s.span) {
                            metric = Some((g, s.span));
                        }
                    }
                }
                StmtKind::Temperature(e) => {
                    if let Ok(x) = self.schedule(e, "the temperature") {
                        temperature = Some((x, s.keyword));
                        spans.temperature = Some(e.span);
                    }
                }
                StmtKind::Observe(id, e) => {
                    let x = self.expr(e).unwrap_or_else(|_| self.arena.int(0));
                    self.declare(id, Entry::Observe);
                    observes.push((id.name.clone(), x));
                }
                StmtKind::Init(items) => {
                    spans.init.get_or_insert(s.span);
                    for item in items {
                        self.init_item(item, &mut inits);
                    }
                }
                StmtKind::Simulate(items) => {
                    for it in items {
                        self.setting(it, &mut settings, &mut spans);
                    }
                }
                StmtKind::Data { items, path, path_span } => self.data_stmt(items, path, *path_span),
                StmtKind::Interaction(e) => {
                    if !self.wrong_kind(s, ModelKind::Energy) {
                        interaction = self.interaction(e, s.span);
                    }
                }
                StmtKind::Domain(id, lo, hi) => {
                    if !self.wrong_kind(s, ModelKind::Energy) {
                        if let Some(d) = self.domain(id, lo, hi, s.span, &domains) {
                            domains.push(d);
                        }
                    }
                }
            }
        }
        if let (true, Some(last)) = (self.arena.overflowed(), file.stmts.last()) {
            self.err(super::too_large(last.span));
            return None;
        }
        let (need, what) = match self.kind {
            ModelKind::Lagrangian => ("coord", "coordinates"),
            ModelKind::Energy => ("state", "state variables"),
        };
        if self.vars.is_empty() && self.kind_stmt.is_some() && self.errors.is_empty() {
            self.err(
                Diagnostic::new(self.kind_stmt.unwrap().1, format!("the model has no {what}"))
                    .label(format!("this needs {what}"))
                    .help(format!("declare them with `{need} x, y`")),
            );
        }
        let n = self.vars.len();
        let zero = self.arena.int(0);
        let mut force_list = vec![zero; n];
        for (k, x, _) in forces {
            force_list[k] = x;
        }
        let mut init = vec![Init::Value(zero); n];
        let mut init_velocity = if self.kind == ModelKind::Lagrangian { vec![Init::Value(zero); n] } else { vec![] };
        for (k, vel, v, _) in inits {
            if vel {
                init_velocity[k] = v;
            } else {
                init[k] = v;
            }
        }
        if let Some((g, sp)) = &metric {
            if g.len() != n {
                self.err(
                    Diagnostic::new(*sp, "the metric has the wrong shape")
                        .label(format!("{} for {}", count(g.len(), "row"), count(n, "state variable")))
                        .help(format!("give a {n}×{n} metric, e.g. `diag(…)` with {n} entries")),
                );
            }
        }
        if let (ModelKind::Lagrangian, Some((_, kw)), None) = (self.kind, temperature, dissipation) {
            self.err(
                Diagnostic::new(kw, "a temperature needs a `dissipation`")
                    .label("no friction, no thermostat: the noise would heat the system without end")
                    .help(
                        "add a Rayleigh dissipation quadratic in the velocities, e.g. `dissipation = 1/2*gamma*x'^2`",
                    ),
            );
        }
        let main = match self.kind {
            ModelKind::Lagrangian => lagrangian,
            ModelKind::Energy => energy,
        };
        main?;
        Some(Model {
            name,
            kind: self.kind,
            arena: std::mem::take(&mut self.arena),
            time: self.time,
            consts: std::mem::take(&mut self.consts),
            params: std::mem::take(&mut self.params),
            vars: std::mem::take(&mut self.vars),
            lagrangian,
            dissipation: dissipation.map(|(x, _)| x),
            forces: if self.kind == ModelKind::Lagrangian { force_list } else { vec![] },
            energy,
            metric: metric.map(|(g, _)| g),
            temperature: temperature.map(|(x, _)| x),
            observes,
            init,
            init_velocity,
            settings,
            spans,
            warnings: self.confusables(),
            data_files: std::mem::take(&mut self.data_files),
            domains,
            interaction,
        })
    }

    /// `interaction = W(x, x~)`: lowered with the twins `x~` in scope, and
    /// checked symmetric, `W(x, x~) = W(x~, x)`, symbolically.
    fn interaction(&mut self, e: &Expr, span: Span) -> Option<crate::model::Interaction> {
        let twins: Vec<crate::sym::SymId> = (0..self.vars.len())
            .map(|k| {
                let n = self.vars.len();
                self.arena.new_symbol(format!("{}~", self.vars[k].name), crate::sym::SymKind::State(n + k))
            })
            .collect();
        self.twins = Some(twins.clone());
        let w = self.expr(e);
        self.twins = None;
        let w = w.ok()?;
        let mut swap = HashMap::new();
        for (v, &t) in self.vars.iter().zip(&twins) {
            swap.insert(v.sym, self.arena.sym(t));
            swap.insert(t, self.arena.sym(v.sym));
        }
        let swapped = self.arena.subst(w, &swap);
        let d = self.arena.sub(w, swapped);
        let d = self.arena.simplify(d);
        if !self.arena.is_zero(d) {
            self.err(
                Diagnostic::new(e.span, "the interaction is not symmetric")
                    .label("W(x, x~) differs from W(x~, x)")
                    .help("a pair energy is the same seen from either particle, e.g. `1/2*(x - x~)^2`"),
            );
            return None;
        }
        Some(crate::model::Interaction { w, twins, span })
    }

    /// `domain x = [lo, hi]`: a state variable, given one domain, with constant bounds `lo < hi`.
    fn domain(
        &mut self,
        id: &Ident,
        lo: &Expr,
        hi: &Expr,
        span: Span,
        seen: &[crate::model::Domain],
    ) -> Option<crate::model::Domain> {
        let Some(var) = self.vars.iter().position(|v| v.name == id.name) else {
            let names: Vec<&str> = self.vars.iter().map(|v| v.name.as_str()).collect();
            self.err(
                Diagnostic::new(id.span, format!("`{}` is not a state variable", id.name))
                    .label("a domain belongs to a state variable")
                    .help(match super::suggest(&id.name, names.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`? State variables: {}", names.join(", ")),
                        None => format!("state variables: {}", names.join(", ")),
                    }),
            );
            return None;
        };
        if let Some(prev) = seen.iter().find(|d| d.var == var) {
            let prev = prev.span;
            self.err(
                Diagnostic::new(span, format!("`{}` is given two domains", id.name))
                    .label("given again here")
                    .with(prev, "first given here"),
            );
            return None;
        }
        let (Ok(l), Ok(h)) = (self.constant(lo, "a domain bound"), self.constant(hi, "a domain bound")) else {
            return None;
        };
        let env = self.env();
        let (a, b) = (self.arena.eval(l, &env), self.arena.eval(h, &env));
        if !(a.is_finite() && b.is_finite() && a < b) {
            self.err(
                Diagnostic::new(lo.span.to(hi.span), "the domain is not an interval")
                    .label(format!("[{}, {}]", crate::sym::fmt_float(a), crate::sym::fmt_float(b)))
                    .help("give finite bounds with the lower one first: `domain x = [-3, 3]`"),
            );
            return None;
        }
        Some(crate::model::Domain { var, lo: l, hi: h, span })
    }

    fn metric(&mut self, form: &MetricForm, span: Span) -> Option<Vec<Vec<ExprId>>> {
        let n = self.vars.len();
        let zero = self.arena.int(0);
        match form {
            MetricForm::Diag(es) => {
                if es.len() != n {
                    self.err(
                        Diagnostic::new(span, "the metric has the wrong shape")
                            .label(format!(
                                "diag has {} {}, but the model has {}",
                                es.len(),
                                if es.len() == 1 { "entry" } else { "entries" },
                                count(n, "state variable")
                            ))
                            .help(format!("give {n} diagonal entries")),
                    );
                    return None;
                }
                let d: Vec<ExprId> = es.iter().map(|e| self.expr(e).unwrap_or(zero)).collect();
                Some((0..n).map(|i| (0..n).map(|j| if i == j { d[i] } else { zero }).collect()).collect())
            }
            MetricForm::Matrix(rows) => {
                if rows.len() != n || rows.iter().any(|r| r.len() != n) {
                    let shape: Vec<String> = rows.iter().map(|r| r.len().to_string()).collect();
                    self.err(
                        Diagnostic::new(span, "the metric has the wrong shape")
                            .label(format!(
                                "rows of length [{}], but the model has {}",
                                shape.join(", "),
                                count(n, "state variable")
                            ))
                            .help(format!("give a {n}×{n} matrix")),
                    );
                    return None;
                }
                let g: Vec<Vec<ExprId>> =
                    rows.iter().map(|r| r.iter().map(|e| self.expr(e).unwrap_or(zero)).collect()).collect();
                for i in 0..n {
                    for j in i + 1..n {
                        let d = self.arena.sub(g[i][j], g[j][i]);
                        let d = self.arena.simplify(d);
                        if !self.arena.is_zero(d) {
                            self.err(
                                Diagnostic::new(rows[i][j].span, "the metric is not symmetric")
                                    .label(format!("entry ({i}, {j})"))
                                    .with(rows[j][i].span, format!("differs from entry ({j}, {i})"))
                                    .help("a Riemannian metric is a symmetric positive definite matrix"),
                            );
                        }
                    }
                }
                Some(g)
            }
        }
    }
}
