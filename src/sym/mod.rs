//! The symbolic engine: a hash-consed expression DAG with exact rational
//! literals, canonical sums and products, differentiation, simplification,
//! a tree-walking evaluator and printers.
//!
//! **Architecture Invariant:** `sym` knows nothing of the language, the JIT or
//! the command line; it is plain data and functions over [`Arena`].

mod diff;
mod eval;
mod expr;
mod num;
mod print;
mod simplify;

pub use eval::{pow as eval_pow, Env, POWI_MAX};
pub use expr::{
    Arena, DataTable, ExprId, Family, Func, FxHasher, FxMap, Loop, Node, Row, Schedule, Step, SymId, SymKind, Symbol,
    MAX_NODES, MAX_OPERANDS,
};
pub use num::{fmt_float, write_float, Num};
pub use print::latex_name;
pub use simplify::{EXPAND_BASE, EXPAND_LIMIT, EXPAND_RATIO, EXPAND_TOTAL, SQUARE_PAIRS};
