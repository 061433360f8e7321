//! The abstract syntax tree of a `.lag` file. Every node carries the byte span
//! of the source text it came from.

use crate::diag::Span;

/// A name as written, with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Sum,
    Prod,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A literal, with its value.
    Number(f64),
    Name(Ident),
    /// `q[i - 1]`, or `X[i, j]` for a data table.
    Index(Ident, Vec<Expr>),
    /// `sin(x)`
    Call(Ident, Vec<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `e'`, the total time derivative.
    Prime(Box<Expr>),
    /// `sum(i in a..b, body)` and `prod(…)`.
    Reduce {
        op: Reduction,
        binder: Box<Binder>,
        body: Box<Expr>,
    },
}

/// `a..b` (end excluded) or `a..=b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Range {
    pub lo: Expr,
    pub hi: Expr,
    pub inclusive: bool,
    pub span: Span,
}

/// `i in a..b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Binder {
    pub var: Ident,
    pub range: Range,
}

/// A declared name, optionally a family `q[N]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Decl {
    pub name: Ident,
    pub size: Option<Expr>,
}

/// The left side of `force` and `init` items: `q`, `q[3]` or `q[i in 0..N]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: Ident,
    pub selector: Selector,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Selector {
    None,
    Index(Expr),
    Each(Binder),
}

#[derive(Clone, Debug, PartialEq)]
pub enum MetricForm {
    Diag(Vec<Expr>),
    Matrix(Vec<Vec<Expr>>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum InitValue {
    Value(Expr),
    /// `~ normal(m, s)`
    Dist {
        name: Ident,
        args: Vec<Expr>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct InitItem {
    pub target: Target,
    /// `x' = …` sets a velocity.
    pub velocity: bool,
    pub value: InitValue,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub key: Ident,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    Model(Ident),
    Const(Ident, Expr),
    Param(Vec<(Ident, Expr)>),
    Coord(Vec<Decl>),
    State(Vec<Decl>),
    Let {
        name: Ident,
        binder: Option<Binder>,
        value: Expr,
    },
    Lagrangian(Expr),
    Dissipation(Expr),
    Force(Target, Expr),
    Energy(Expr),
    Metric(MetricForm),
    Temperature(Expr),
    Observe(Ident, Expr),
    Init(Vec<InitItem>),
    Simulate(Vec<Setting>),
    /// `data x[M], X[M, F] = "file.csv"`: families bound to a file's columns.
    Data {
        items: Vec<DataItem>,
        path: String,
        path_span: Span,
    },
    /// `domain x = [a, b]`: the grid domain of a state variable.
    Domain(Ident, Expr, Expr),
    /// `interaction = expr`: a pair energy of two particles, `x~` the other's `x`.
    Interaction(Expr),
}

/// One family of a `data` statement: its name and the names of its sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct DataItem {
    pub name: Ident,
    pub sizes: Vec<Ident>,
}

/// One statement: its kind, its whole span and the span of its keyword.
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
    pub keyword: Span,
}

impl Stmt {
    /// The keyword as written.
    pub fn keyword_name(&self) -> &'static str {
        match &self.kind {
            StmtKind::Model(_) => "model",
            StmtKind::Const(..) => "const",
            StmtKind::Param(_) => "param",
            StmtKind::Coord(_) => "coord",
            StmtKind::State(_) => "state",
            StmtKind::Let { .. } => "let",
            StmtKind::Lagrangian(_) => "lagrangian",
            StmtKind::Dissipation(_) => "dissipation",
            StmtKind::Force(..) => "force",
            StmtKind::Energy(_) => "energy",
            StmtKind::Metric(_) => "metric",
            StmtKind::Temperature(_) => "temperature",
            StmtKind::Observe(..) => "observe",
            StmtKind::Init(_) => "init",
            StmtKind::Simulate(_) => "simulate",
            StmtKind::Data { .. } => "data",
            StmtKind::Domain(..) => "domain",
            StmtKind::Interaction(_) => "interaction",
        }
    }
}

/// A parsed file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub stmts: Vec<Stmt>,
}
