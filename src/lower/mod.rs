//! Checking and lowering: from the AST to the [`Model`] IR.
//!
//! Names are resolved in statement order, index families are unrolled, `let`s
//! are inlined into the symbolic DAG and `'` becomes the total time
//! derivative. Every error is collected with its span; lowering goes on after
//! an error so that one run reports them all.

mod data;
mod decl;
mod expr;
mod family;
mod kind;
mod scope;
mod settings;
mod stmt;

use crate::diag::{Diagnostic, Span};
use crate::model::{Model, ModelKind, Param, Variable};
use crate::sym::{Arena, ExprId, SymId, SymKind};
use crate::syntax::ast::*;
use scope::Entry;
use std::collections::HashMap;

pub use data::DataFiles;
pub use scope::suggest;

/// The largest index family (or unrolled `sum`/`prod`) accepted.
pub const MAX_FAMILY: i64 = 100_000;

/// The most errors reported for one file: checking stops at the statement
/// after them, and says so.
pub const MAX_ERRORS: usize = 100;

/// The diagnostic that ends a report of [`MAX_ERRORS`] errors, at the first
/// statement not checked; `unchecked` statements remain.
pub(crate) fn too_many_errors(at: crate::diag::Span, unchecked: usize) -> Diagnostic {
    Diagnostic::new(at, format!("too many errors: checking stopped after {MAX_ERRORS}"))
        .label(format!("{} from here on not checked", crate::diag::count(unchecked, "statement")))
        .help("fix the errors above and check again")
}

/// The error of a statement whose expressions passed the arena's limits
/// ([`crate::sym::MAX_NODES`], [`crate::sym::MAX_OPERANDS`]).
pub(crate) fn too_large(at: Span) -> Diagnostic {
    Diagnostic::new(at, "the model grew too large")
        .label(format!(
            "this statement needs more than {} expression nodes or {} operands",
            crate::sym::MAX_NODES,
            crate::sym::MAX_OPERANDS
        ))
        .help("write the model with fewer nested sums, or with smaller families")
}

/// Values given on the command line with `--set NAME=VALUE`.
pub type Overrides = [(String, f64)];

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
    files: &'a DataFiles,
    /// Set when a rolled sum's index is used where a number is needed.
    rolled_misuse: bool,
    /// The variable, body and range of each `let` family, for rolled indices.
    let_asts: HashMap<String, (Ident, Expr, i64, i64)>,
    let_cache: HashMap<(String, SymId, i64), ExprId>,
    /// Members of `let` families lowered as used.
    let_members: HashMap<(String, i64), ExprId>,
    /// The data files read, as opened.
    data_files: Vec<std::path::PathBuf>,
    /// The pairs `(x, x')` and `(x', x'')` of the variables, and where each `x` is,
    /// for `'`; rebuilt when variables are added.
    chain: (Vec<(SymId, SymId)>, crate::sym::FxMap<SymId, usize>),
    /// The twins `x~` of the state variables while an `interaction` is lowered; `None` elsewhere.
    twins: Option<Vec<SymId>>,
    /// The arena's family of each variable family read at a rolled index, by name.
    member_families: HashMap<String, u32>,
    /// Where each variable's initial value (or velocity's, `true`) was given.
    init_given: HashMap<(usize, bool), Span>,
}

type Lowered = Result<ExprId, ()>;

/// Checks a parsed file and lowers it to a model. `name` is used when the file
/// has no `model` statement.
pub fn lower(file: &File, name: &str, overrides: &Overrides, files: &DataFiles) -> Result<Model, Vec<Diagnostic>> {
    lower_in(Arena::new(), file, name, overrides, files)
}

/// [`lower`] into `arena` (an empty one, or one with a small node limit in tests).
fn lower_in(
    mut arena: Arena,
    file: &File,
    name: &str,
    overrides: &Overrides,
    files: &DataFiles,
) -> Result<Model, Vec<Diagnostic>> {
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
        files,
        rolled_misuse: false,
        let_asts: HashMap::new(),
        let_cache: HashMap::new(),
        let_members: HashMap::new(),
        data_files: Vec::new(),
        chain: Default::default(),
        twins: None,
        member_families: HashMap::new(),
        init_given: HashMap::new(),
    };
    l.prescan(file);
    let model = l.statements(file, name);
    match model {
        Some(m) if l.errors.is_empty() => Ok(m),
        _ => Err(l.errors),
    }
}

static NO_FILES: DataFiles = DataFiles { dir: None, replace: Vec::new() };

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
        files: &NO_FILES,
        rolled_misuse: false,
        let_asts: HashMap::new(),
        let_cache: HashMap::new(),
        let_members: HashMap::new(),
        data_files: Vec::new(),
        chain: Default::default(),
        twins: None,
        member_families: HashMap::new(),
        init_given: HashMap::new(),
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
        l.scope.insert(base, (Entry::Family(std::rc::Rc::from(ks)), Span::default()));
    }
    for (k, t) in l.arena.tables().iter().enumerate() {
        let entry = Entry::Data { table: k as u32, rows: t.rows as i64, cols: t.cols.map(|c| c as i64) };
        l.scope.insert(t.name.clone(), (entry, Span::default()));
    }
    let out = l.expr(e);
    model.arena = std::mem::take(&mut l.arena);
    match out {
        Ok(x) => Ok(x),
        Err(()) => Err(l.errors.into_iter().next().unwrap_or_else(|| Diagnostic::new(e.span, "invalid expression"))),
    }
}

impl Lowerer<'_> {
    fn err(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_past_the_node_limit_is_reported_before_anything_reads_it() {
        // The nested sum passes a limit of 2,000 nodes; the `simulate` line after it
        // would read NaN from the arena's placeholder. (Members at `N-1-i` are not
        // at an offset of the index: the sums are written out, not kept as loops.)
        let src = "const N = 60\ncoord q[N]\n\
                   lagrangian = 1/2*sum(i in 0..N, q[i]'^2) - sum(i in 0..N, sum(j in 0..N, cos(q[N-1-i] - q[N-1-j] + i*j)))\n\
                   simulate t_end = 10, dt = 1e-3\n";
        let file = crate::syntax::parse_file(src).unwrap();
        let errors = lower_in(Arena::with_node_limit(2_000), &file, "m", &[], &DataFiles::default()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].message, "the model grew too large");
        assert_eq!(&src[errors[0].span.start..errors[0].span.start + 10], "lagrangian");
        // Within the limit, the same model lowers.
        let small = src.replace("N = 60", "N = 3");
        let file = crate::syntax::parse_file(&small).unwrap();
        assert!(lower_in(Arena::with_node_limit(2_000), &file, "m", &[], &DataFiles::default()).is_ok());
    }

    #[test]
    fn lookalikes_have_the_skeleton_of_their_latin_letters() {
        assert_eq!(scope::skeleton("\u{445}\u{3bd}\u{440}"), "xvp");
        assert_eq!(scope::skeleton("θ_x"), "θ_x");
        // Every lookalike maps to the ASCII letter at its place, and none is ASCII itself.
        let from = "аеорсухіјѕԁһӏԛԝАВЕКМНОРСТХУІЈЅαονριυχϲΑΒΕΖΗΙΚΜΝΟΡΤΥΧ";
        let to = scope::skeleton(from);
        assert_eq!(to, "aeopcyxijsdhlqwABEKMHOPCTXYIJSaovpiuxcABEZHIKMNOPTYX");
        assert!(to.is_ascii() && !from.chars().any(|c| c.is_ascii()));
    }
}
