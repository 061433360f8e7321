//! Checking and lowering: from the AST to the [`Model`] IR.
//!
//! Names are resolved in statement order, index families are unrolled, `let`s
//! are inlined into the symbolic DAG and `'` becomes the total time
//! derivative. Every error is collected with its span; lowering goes on after
//! an error so that one run reports them all.

use crate::diag::{Diagnostic, Span};
use crate::model::{Init, Method, Model, ModelKind, Param, Settings, Spans, Variable};
use crate::sym::{Arena, Env, ExprId, Func, Num, SymId, SymKind};
use crate::syntax::ast::*;
use std::collections::HashMap;

/// The largest index family (or unrolled `sum`/`prod`) accepted.
pub const MAX_FAMILY: i64 = 100_000;

/// Values given on the command line with `--set NAME=VALUE`.
pub type Overrides = [(String, f64)];

#[derive(Clone, Debug)]
enum Entry {
    Const(i64),
    Param(SymId),
    Var(usize),
    Family(Vec<usize>),
    Let(ExprId),
    LetFamily {
        lo: i64,
        items: Vec<ExprId>,
    },
    Index(i64),
    Observe,
    /// A name whose declaration had an error: uses of it report nothing more.
    Poisoned,
}

struct Lowerer<'a> {
    arena: Arena,
    kind: ModelKind,
    scope: HashMap<String, (Entry, Span)>,
    /// Every name the file declares anywhere, for "used before its declaration".
    declared: HashMap<String, Span>,
    errors: Vec<Diagnostic>,
    time: SymId,
    pi: SymId,
    params: Vec<Param>,
    vars: Vec<Variable>,
    consts: Vec<(String, i64)>,
    overrides: &'a Overrides,
    kind_stmt: Option<(&'static str, Span)>,
}

type Lowered = Result<ExprId, ()>;

/// Checks a parsed file and lowers it to a model. `name` is used when the file
/// has no `model` statement.
pub fn lower(file: &File, name: &str, overrides: &Overrides) -> Result<Model, Vec<Diagnostic>> {
    let mut arena = Arena::new();
    let time = arena.new_symbol("t", SymKind::Time);
    let pi = arena.new_symbol("pi", SymKind::Pi);
    let mut l = Lowerer {
        arena,
        kind: ModelKind::Lagrangian,
        scope: HashMap::new(),
        declared: HashMap::new(),
        errors: Vec::new(),
        time,
        pi,
        params: Vec::new(),
        vars: Vec::new(),
        consts: Vec::new(),
        overrides,
        kind_stmt: None,
    };
    l.prescan(file);
    let model = l.statements(file, name);
    match model {
        Some(m) if l.errors.is_empty() => Ok(m),
        _ => Err(l.errors),
    }
}

/// Lowers one expression in the names of a checked model: its parameters,
/// its coordinates or state (`q[3]` for family members) and their velocities
/// (`q'`). This reads back the expressions that `lagc derive` prints.
pub fn lower_expression(model: &mut Model, e: &Expr) -> Result<ExprId, Diagnostic> {
    let mut l = Lowerer {
        arena: std::mem::take(&mut model.arena),
        kind: model.kind,
        scope: HashMap::new(),
        declared: HashMap::new(),
        errors: Vec::new(),
        time: model.time,
        pi: model.time,
        params: model.params.clone(),
        vars: model.vars.clone(),
        consts: model.consts.clone(),
        overrides: &[],
        kind_stmt: None,
    };
    if l.pi == model.time {
        l.pi = l.arena.find_symbol(SymKind::Pi).unwrap_or(model.time);
    }
    for (name, n) in &model.consts {
        l.scope.insert(name.clone(), (Entry::Const(*n), Span::default()));
    }
    for p in &model.params {
        l.scope.insert(p.name.clone(), (Entry::Param(p.sym), Span::default()));
    }
    let mut families: HashMap<String, Vec<usize>> = HashMap::new();
    for (k, v) in model.vars.iter().enumerate() {
        match v.name.split_once('[') {
            Some((base, _)) => families.entry(base.to_string()).or_default().push(k),
            None => {
                l.scope.insert(v.name.clone(), (Entry::Var(k), Span::default()));
            }
        }
    }
    for (base, ks) in families {
        l.scope.insert(base, (Entry::Family(ks), Span::default()));
    }
    let out = l.expr(e);
    model.arena = std::mem::take(&mut l.arena);
    match out {
        Ok(x) => Ok(x),
        Err(()) => Err(l.errors.into_iter().next().unwrap_or_else(|| Diagnostic::new(e.span, "invalid expression"))),
    }
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `name`, if it is close enough to be a typo.
pub fn suggest<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|(d, c)| *d <= (name.chars().count().max(c.chars().count()) / 3).max(1))
        .min()
        .map(|(_, c)| c)
}

const FUNCTIONS: [&str; 16] = [
    "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "exp", "log", "sqrt", "abs", "sign",
    "pow",
];

const SETTINGS: [&str; 9] = ["t0", "t_end", "dt", "method", "rtol", "atol", "every", "particles", "seed"];

impl Lowerer<'_> {
    fn err(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    fn prescan(&mut self, file: &File) {
        let mut main: Option<(&'static str, Span)> = None;
        for s in &file.stmts {
            let names: Vec<&Ident> = match &s.kind {
                StmtKind::Const(n, _) | StmtKind::Observe(n, _) => vec![n],
                StmtKind::Let { name, .. } => vec![name],
                StmtKind::Param(items) => items.iter().map(|(n, _)| n).collect(),
                StmtKind::Coord(ds) | StmtKind::State(ds) => ds.iter().map(|d| &d.name).collect(),
                _ => vec![],
            };
            for n in names {
                self.declared.entry(n.name.clone()).or_insert(n.span);
            }
            let k = match s.kind {
                StmtKind::Lagrangian(_) => "lagrangian",
                StmtKind::Energy(_) => "energy",
                _ => continue,
            };
            match main {
                None => main = Some((k, s.keyword)),
                Some((k0, sp0)) if k0 != k => self.err(
                    Diagnostic::new(s.keyword, "a model has exactly one of `lagrangian` and `energy`")
                        .label(format!("`{k}` here"))
                        .with(sp0, format!("but `{k0}` is already given here"))
                        .help("write mechanics with `lagrangian = …` and gradient flows with `energy = …`, in separate files"),
                ),
                Some(_) => {}
            }
        }
        match main {
            Some((k, sp)) => {
                self.kind = if k == "lagrangian" { ModelKind::Lagrangian } else { ModelKind::Energy };
                self.kind_stmt = Some((k, sp));
            }
            None => {
                let span = file.stmts.first().map(|s| s.keyword).unwrap_or_default();
                self.err(
                    Diagnostic::new(span, "the model has neither `lagrangian` nor `energy`")
                        .label("no `lagrangian = …` or `energy = …` in this file")
                        .help("add `lagrangian = …` for mechanics, or `energy = …` for a gradient flow"),
                );
            }
        }
    }

    /// Reports a statement that does not belong to this kind of model.
    fn wrong_kind(&mut self, s: &Stmt, belongs: ModelKind) -> bool {
        if self.kind == belongs {
            return false;
        }
        if let Some((k, sp)) = self.kind_stmt {
            let what = match belongs {
                ModelKind::Lagrangian => "Lagrangian models",
                ModelKind::Energy => "energy models",
            };
            self.err(
                Diagnostic::new(s.keyword, format!("`{}` belongs to {what}", s.keyword_name()))
                    .label(format!("`{}` here", s.keyword_name()))
                    .with(
                        sp,
                        format!(
                            "but `{k}` makes this a{} model",
                            if k == "energy" { "n energy" } else { " Lagrangian" }
                        ),
                    )
                    .help(match self.kind {
                        ModelKind::Lagrangian => {
                            "a Lagrangian model declares `coord`, and may have `dissipation` and `force`"
                        }
                        ModelKind::Energy => {
                            "an energy model declares `state`, and may have `metric` and `temperature`"
                        }
                    }),
            );
        }
        true
    }

    fn declare(&mut self, id: &Ident, entry: Entry) {
        if id.name == "t" || id.name == "pi" {
            self.err(
                Diagnostic::new(id.span, format!("`{}` is reserved", id.name))
                    .label(if id.name == "t" { "`t` is time" } else { "`pi` is the constant π" })
                    .help("choose another name"),
            );
            return;
        }
        if let Some((_, prev)) = self.scope.get(&id.name) {
            let prev = *prev;
            self.err(
                Diagnostic::new(id.span, format!("`{}` is declared twice", id.name))
                    .label("declared again here")
                    .with(prev, "first declared here")
                    .help("rename one of them"),
            );
            return;
        }
        self.scope.insert(id.name.clone(), (entry, id.span));
    }

    fn statements(&mut self, file: &File, default_name: &str) -> Option<Model> {
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
        for (i, s) in file.stmts.iter().enumerate() {
            let kw = s.keyword_name();
            if matches!(kw, "model" | "lagrangian" | "energy" | "dissipation" | "metric" | "temperature") {
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
                                    .label(format!("--set gives {x}")),
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
                        let (lo, hi) = self.range(&b.range).unwrap_or((0, 0));
                        let mut items = Vec::new();
                        for i in lo..hi {
                            let e = self.with_index(&b.var, i, |l| l.expr(value));
                            items.push(e.unwrap_or_else(|_| self.arena.int(0)));
                        }
                        self.declare(name, Entry::LetFamily { lo, items });
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
                    if self.kind == ModelKind::Lagrangian && self.kind_stmt.is_some() {
                        self.wrong_kind(s, ModelKind::Energy);
                    } else if let Ok(x) = self.constant(e, "the temperature") {
                        temperature = Some(x);
                    }
                }
                StmtKind::Observe(id, e) => {
                    let x = self.expr(e).unwrap_or_else(|_| self.arena.int(0));
                    self.declare(id, Entry::Observe);
                    observes.push((id.name.clone(), x));
                }
                StmtKind::Init(items) => {
                    for item in items {
                        self.init_item(item, &mut inits);
                    }
                }
                StmtKind::Simulate(items) => {
                    for it in items {
                        self.setting(it, &mut settings, &mut spans);
                    }
                }
            }
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
        if let (Some(m), Some(sp)) = (settings.method, spans.method) {
            if !m.fits(self.kind, temperature.is_some()) {
                let why = if m == Method::Em && self.kind == ModelKind::Energy {
                    "`em` needs a `temperature`".to_string()
                } else {
                    format!("`{m}` does not apply to {} models", self.kind)
                };
                self.err(
                    Diagnostic::new(sp, format!("method `{m}` does not fit this model"))
                        .label(why)
                        .help(format!("methods for this model: {}", Method::fitting(self.kind, temperature.is_some()))),
                );
            }
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
                        .label(format!("{} rows for {} state variables", g.len(), n))
                        .help(format!("give a {n}×{n} metric, e.g. `diag(…)` with {n} entries")),
                );
            }
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
            temperature,
            observes,
            init,
            init_velocity,
            settings,
            spans,
        })
    }

    fn param(&mut self, id: &Ident, e: &Expr) {
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

    fn env(&self) -> Env {
        let mut env = Env::new(&self.arena);
        for p in &self.params {
            env.set(p.sym, p.value);
        }
        env
    }

    fn variable(&mut self, d: &Decl, lagrangian: bool) {
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
                let ks = (0..n).map(|i| make(self, format!("{}[{}]", d.name.name, i))).collect();
                self.declare(&d.name, Entry::Family(ks));
            }
        }
    }

    /// The variables a `force` or `init` target names, each with the value
    /// expression lowered for it.
    fn targets(&mut self, t: &Target, value: &Expr) -> Vec<(usize, ExprId)> {
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
    fn target_vars(&mut self, t: &Target) -> Option<Vec<(usize, Option<i64>)>> {
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

    fn var_names(&self) -> Vec<String> {
        self.scope
            .iter()
            .filter(|(_, (e, _))| matches!(e, Entry::Var(_) | Entry::Family(_)))
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn family_member(&mut self, name: &Ident, ks: &[usize], i: i64, span: Span) -> Option<usize> {
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

    fn init_item(&mut self, item: &InitItem, out: &mut Vec<(usize, bool, Init, Span)>) {
        if item.velocity && self.kind == ModelKind::Energy {
            self.err(
                Diagnostic::new(item.target.span, "an energy model has no velocities")
                    .label("`'` here")
                    .help("give only the state: `init x = 1`"),
            );
            return;
        }
        let Some(ks) = self.target_vars(&item.target) else { return };
        for (k, i) in ks {
            let var = match (&item.target.selector, i) {
                (Selector::Each(b), Some(i)) => Some((&b.var, i)),
                _ => None,
            };
            let val = |l: &mut Self, e: &Expr| -> Result<ExprId, ()> {
                match var {
                    Some((v, i)) => l.with_index(v, i, |l| l.constant(e, "an initial value")),
                    None => l.constant(e, "an initial value"),
                }
            };
            let init = match &item.value {
                InitValue::Value(e) => val(self, e).map(Init::Value),
                InitValue::Dist { name, args } => {
                    let kind = name.name.as_str();
                    if kind != "normal" && kind != "uniform" {
                        let mut d = Diagnostic::new(name.span, format!("unknown distribution `{kind}`"))
                            .label("not a distribution");
                        d = d.help(match suggest(kind, ["normal", "uniform"]) {
                            Some(s) => format!("did you mean `{s}`? Distributions: normal(mean, std), uniform(lo, hi)"),
                            None => "distributions: normal(mean, std), uniform(lo, hi)".into(),
                        });
                        self.err(d);
                        return;
                    }
                    if args.len() != 2 {
                        self.err(
                            Diagnostic::new(item.span, format!("`{kind}` takes 2 arguments"))
                                .label(format!("{} given", args.len()))
                                .help(if kind == "normal" { "normal(mean, std)" } else { "uniform(lo, hi)" }),
                        );
                        return;
                    }
                    match (val(self, &args[0]), val(self, &args[1])) {
                        (Ok(a), Ok(b)) if kind == "normal" => Ok(Init::Normal { mean: a, std: b }),
                        (Ok(a), Ok(b)) => Ok(Init::Uniform { lo: a, hi: b }),
                        _ => Err(()),
                    }
                }
            };
            if let Ok(init) = init {
                if let Some((_, _, _, prev)) = out.iter().find(|(j, v, _, _)| *j == k && *v == item.velocity) {
                    let prev = *prev;
                    self.err(
                        Diagnostic::new(item.span, format!("`{}` is given two initial values", self.vars[k].name))
                            .label("given again here")
                            .with(prev, "first given here"),
                    );
                } else {
                    out.push((k, item.velocity, init, item.span));
                }
            }
        }
    }

    fn setting(&mut self, it: &Setting, s: &mut Settings, spans: &mut Spans) {
        let key = it.key.name.as_str();
        if key == "method" {
            let name = match &it.value.kind {
                ExprKind::Name(id) => id.name.clone(),
                _ => String::new(),
            };
            match Method::from_name(&name) {
                Some(m) => {
                    s.method = Some(m);
                    spans.method = Some(it.value.span);
                }
                None => {
                    let all: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
                    let mut d = Diagnostic::new(it.value.span, "unknown method").label("not a method");
                    d = d.help(match suggest(&name, all.iter().copied()) {
                        Some(m) => format!("did you mean `{m}`? Methods: {}", all.join(", ")),
                        None => format!("methods: {}", all.join(", ")),
                    });
                    self.err(d);
                }
            }
            return;
        }
        if !SETTINGS.contains(&key) {
            let mut d =
                Diagnostic::new(it.key.span, format!("unknown `simulate` setting `{key}`")).label("not a setting");
            d = d.help(match suggest(key, SETTINGS) {
                Some(k) => format!("did you mean `{k}`? Settings: {}", SETTINGS.join(", ")),
                None => format!("settings: {}", SETTINGS.join(", ")),
            });
            self.err(d);
            return;
        }
        let Ok(x) = self.constant(&it.value, "a `simulate` setting") else { return };
        let v = self.arena.eval(x, &self.env());
        let bad = |l: &mut Self, what: &str| {
            l.err(
                Diagnostic::new(it.value.span, format!("`{key}` must be {what}"))
                    .label(format!("this is {}", crate::sym::fmt_float(v))),
            )
        };
        let int = |l: &mut Self, min: f64| -> Option<u64> {
            if v.fract() == 0.0 && v >= min && v < 1e18 {
                Some(v as u64)
            } else {
                bad(l, &format!("an integer ≥ {min}"));
                None
            }
        };
        match key {
            "t0" | "t_end" if !v.is_finite() => bad(self, "a finite number"),
            "t0" => s.t0 = Some(v),
            "t_end" => s.t_end = Some(v),
            "dt" | "rtol" | "atol" if !(v > 0.0 && v.is_finite()) => bad(self, "a positive number"),
            "dt" => s.dt = Some(v),
            "rtol" => s.rtol = Some(v),
            "atol" => s.atol = Some(v),
            "every" => s.every = int(self, 1.0),
            "particles" => s.particles = int(self, 1.0),
            "seed" => s.seed = int(self, 0.0),
            _ => {}
        }
    }

    fn metric(&mut self, form: &MetricForm, span: Span) -> Option<Vec<Vec<ExprId>>> {
        let n = self.vars.len();
        let zero = self.arena.int(0);
        match form {
            MetricForm::Diag(es) => {
                if es.len() != n {
                    self.err(
                        Diagnostic::new(span, "the metric has the wrong shape")
                            .label(format!("diag has {} entries, but the model has {} state variables", es.len(), n))
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
                                "rows of length [{}], but the model has {n} state variables",
                                shape.join(", ")
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

    /// Lowers `e` with the index variable `var` bound to `i`.
    fn with_index<T>(&mut self, var: &Ident, i: i64, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = self.scope.insert(var.name.clone(), (Entry::Index(i), var.span));
        let out = f(self);
        match saved {
            Some(s) => self.scope.insert(var.name.clone(), s),
            None => self.scope.remove(&var.name),
        };
        out
    }

    /// A half-open integer range from `a..b` or `a..=b`.
    fn range(&mut self, r: &Range) -> Result<(i64, i64), ()> {
        let lo = self.int_value(&r.lo)?;
        let hi = self.int_value(&r.hi)? + i64::from(r.inclusive);
        if hi.saturating_sub(lo) > MAX_FAMILY {
            self.err(
                Diagnostic::new(r.span, "the range is too large")
                    .label(format!("{} members; the limit is {MAX_FAMILY}", hi - lo)),
            );
            return Err(());
        }
        Ok((lo, hi.max(lo)))
    }

    /// Evaluates an index expression: integer arithmetic on literals, consts
    /// and index variables.
    fn int_value(&mut self, e: &Expr) -> Result<i64, ()> {
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

    /// Lowers an expression that must be constant: numbers, `pi`, consts and
    /// parameters only.
    fn constant(&mut self, e: &Expr, what: &str) -> Lowered {
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

    fn unknown(&mut self, id: &Ident) {
        if let Some(sp) = self.declared.get(&id.name) {
            if sp.start > id.span.start {
                let sp = *sp;
                self.err(
                    Diagnostic::new(id.span, format!("`{}` is used before its declaration", id.name))
                        .label("used here")
                        .with(sp, "declared later here")
                        .help("statements are read in order; move the declaration above this line"),
                );
                return;
            }
        }
        let names: Vec<String> = self.scope.keys().cloned().chain(["t".into(), "pi".into()]).collect();
        let mut d = Diagnostic::new(id.span, format!("unknown name `{}`", id.name)).label("not declared");
        if let Some(s) = suggest(&id.name, names.iter().map(|s| s.as_str())) {
            d = d.help(format!("did you mean `{s}`?"));
        }
        self.err(d);
    }

    /// Lowers an expression into the arena.
    fn expr(&mut self, e: &Expr) -> Lowered {
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
            ExprKind::Index(id, ix) => {
                let entry = self.scope.get(&id.name).map(|(e, _)| e.clone());
                match entry {
                    Some(Entry::Poisoned) => Err(()),
                    Some(Entry::Family(ks)) => {
                        let i = self.int_value(ix)?;
                        let k = self.family_member(id, &ks, i, ix.span).ok_or(())?;
                        Ok(self.arena.sym(self.vars[k].sym))
                    }
                    Some(Entry::LetFamily { lo, items }) => {
                        let i = self.int_value(ix)?;
                        if i < lo || i - lo >= items.len() as i64 {
                            self.err(Diagnostic::new(ix.span, format!("index {i} is out of range")).label(format!(
                                "`{}` has indices {lo}..{}",
                                id.name,
                                lo + items.len() as i64
                            )));
                            return Err(());
                        }
                        Ok(items[(i - lo) as usize])
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
                let (lo, hi) = self.range(&binder.range)?;
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

    fn name(&mut self, id: &Ident) -> Lowered {
        match id.name.as_str() {
            "t" => return Ok(self.arena.sym(self.time)),
            "pi" => return Ok(self.arena.sym(self.pi)),
            _ => {}
        }
        let entry = self.scope.get(&id.name).map(|(e, _)| e.clone());
        match entry {
            Some(Entry::Const(n)) | Some(Entry::Index(n)) => Ok(self.arena.int(n)),
            Some(Entry::Param(s)) => Ok(self.arena.sym(s)),
            Some(Entry::Var(k)) => Ok(self.arena.sym(self.vars[k].sym)),
            Some(Entry::Let(x)) => Ok(x),
            Some(Entry::Poisoned) => Err(()),
            Some(Entry::Family(_)) | Some(Entry::LetFamily { .. }) => {
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
        let chain: Vec<(SymId, SymId)> = self
            .vars
            .iter()
            .filter_map(|v| Some([(v.sym, v.velocity?), (v.velocity?, v.acceleration?)]))
            .flatten()
            .collect();
        let d = self.arena.time_derivative(x, &chain, Some(self.time));
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
