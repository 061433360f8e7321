//! The expression DAG: an arena of hash-consed nodes.
//!
//! **Invariant:** every node is stored once. [`Arena`] keeps a memo table from
//! node to id, so two structurally equal expressions always have the same
//! [`ExprId`], and comparing ids compares expressions. Children are created
//! before their parents, so an id is always larger than the ids of its
//! children and a walk in id order visits children first.
//!
//! **Invariant:** nodes are canonical. The constructors ([`Arena::add`],
//! [`Arena::mul`], [`Arena::pow`], [`Arena::func`]) flatten nested sums and
//! products, collect like terms (`2x + 3x = 5x`) and like factors
//! (`x·x³ = x⁴`), fold numbers, sort operands, and apply the parity of odd and
//! even functions (`sin(−x) = −sin x`). Subtraction is `a + (−1)·b` and
//! division is `a·b^(−1)`; `sqrt x` is `x^(1/2)`.

mod arena;
mod canon;
mod func;
mod hash;
mod loops;
mod node;
mod power;
mod query;

pub use arena::{Arena, MAX_NODES, MAX_OPERANDS};
pub use func::Func;
pub use hash::{FxHasher, FxMap};
pub use loops::{Loop, Schedule, Step};
pub use node::{DataTable, ExprId, Family, Node, Row, SymId, SymKind, Symbol};
