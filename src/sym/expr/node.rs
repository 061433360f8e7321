//! The node types of the DAG, the ids of nodes and symbols, and what a symbol stands for. The
//! canonical form the nodes are kept in is described in the `expr` module.

#[cfg(doc)]
use super::Arena;
use super::Func;
use crate::sym::num::Num;
use std::fmt;

/// The id of a node in an [`Arena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExprId(pub u32);

/// The id of a symbol in an [`Arena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SymId(pub u32);

/// One node of the DAG. See the module documentation for the canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    Num(Num),
    Sym(SymId),
    /// A sum of at least two terms: at most one number, first; then terms
    /// sorted by their non-numeric part, no two with the same part.
    Add(Box<[ExprId]>),
    /// A product of at least two factors: at most one number (≠ 0, ≠ 1), first;
    /// then factors sorted by base, no two with the same base.
    Mul(Box<[ExprId]>),
    /// `base ^ exponent`, exponent never 0 or 1.
    Pow(ExprId, ExprId),
    Func(Func, ExprId),
    /// `atan2(y, x)`.
    Atan2(ExprId, ExprId),
    /// One number of a data table (see [`Arena::add_table`]): column `col` of
    /// a fixed row or of the row a rolled sum's index points at.
    Data {
        table: u32,
        row: Row,
        col: u32,
    },
    /// `sum(i in lo..hi, body)` kept as a loop: the symbol (of kind
    /// [`SymKind::Index`]) is the loop index, bound only inside `body`.
    Sum(SymId, ExprId),
    /// A member of a family of the model's variables (see
    /// [`Arena::add_family`]) at a rolled sum's index plus an offset: `u[i+1]`
    /// inside `sum(i in …)`. Outside such a sum the member is its symbol.
    Member {
        family: u32,
        row: Row,
    },
}

/// The row a [`Node::Data`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Row {
    At(u32),
    /// The index of the enclosing rolled sum, plus an offset.
    Index(SymId, i32),
}

/// A table of numbers bound by a `data` statement: `rows × cols`, row-major.
#[derive(Clone, Debug)]
pub struct DataTable {
    /// The family's name as written (`x`, `X`).
    pub name: String,
    pub rows: usize,
    /// Columns of a two-index family `X[M, F]`; `None` for `x[M]` (one column).
    pub cols: Option<usize>,
    pub values: std::sync::Arc<[f64]>,
}

impl DataTable {
    /// Columns per row.
    pub fn width(&self) -> usize {
        self.cols.unwrap_or(1)
    }
}

/// A family of the model's variables whose members are read at a rolled
/// index ([`Node::Member`]): coordinates, velocities or state variables,
/// consecutive in the state.
#[derive(Clone, Debug)]
pub struct Family {
    /// The family's name as written (`u`, or `u'` for the velocities).
    pub name: String,
    /// The symbol of each member, in index order.
    pub members: Vec<SymId>,
    /// The family of the members' time derivatives (the velocities of coordinates).
    pub derivative: Option<u32>,
}

/// What a symbol stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SymKind {
    /// A real parameter (its number is an index into the model's parameters).
    Param(usize),
    /// A generalized coordinate `q_i`.
    Coord(usize),
    /// A generalized velocity `q_i'`.
    Velocity(usize),
    /// A generalized acceleration `q_i''`; never allowed in a Lagrangian.
    Acceleration(usize),
    /// A state variable `θ_i` of an energy model.
    State(usize),
    /// Time `t`.
    Time,
    /// The constant π.
    Pi,
    /// The index of a rolled sum, running over `lo..hi`.
    Index { lo: i64, hi: i64 },
}

/// A named symbol.
#[derive(Clone, Debug)]
pub struct Symbol {
    /// The name as written in `.lag` syntax: `th1`, `q[3]`, `q[3]'`.
    pub name: String,
    pub kind: SymKind,
}

impl fmt::Display for ExprId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}
