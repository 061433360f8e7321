//! The front end: the pest grammar (`grammar/lag.pest`), the AST and the
//! parser that builds it.

pub mod ast;
mod parser;

pub use parser::{parse_expr, parse_file};
