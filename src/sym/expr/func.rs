//! The elementary functions, their values on doubles and their parity, and the canonical
//! constructors of function applications and of `atan2`.

use super::{Arena, ExprId, Node};
use crate::sym::num::Num;

/// Elementary functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Exp,
    Log,
    Abs,
    /// The sign function, the derivative of `abs`.
    Sign,
}

impl Func {
    pub const ALL: [Func; 13] = [
        Func::Sin,
        Func::Cos,
        Func::Tan,
        Func::Asin,
        Func::Acos,
        Func::Atan,
        Func::Sinh,
        Func::Cosh,
        Func::Tanh,
        Func::Exp,
        Func::Log,
        Func::Abs,
        Func::Sign,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Tan => "tan",
            Func::Asin => "asin",
            Func::Acos => "acos",
            Func::Atan => "atan",
            Func::Sinh => "sinh",
            Func::Cosh => "cosh",
            Func::Tanh => "tanh",
            Func::Exp => "exp",
            Func::Log => "log",
            Func::Abs => "abs",
            Func::Sign => "sign",
        }
    }

    pub fn from_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Evaluates the function on a double.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Func::Sin => x.sin(),
            Func::Cos => x.cos(),
            Func::Tan => x.tan(),
            Func::Asin => x.asin(),
            Func::Acos => x.acos(),
            Func::Atan => x.atan(),
            Func::Sinh => x.sinh(),
            Func::Cosh => x.cosh(),
            Func::Tanh => x.tanh(),
            Func::Exp => x.exp(),
            Func::Log => x.ln(),
            Func::Abs => x.abs(),
            Func::Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
        }
    }

    fn parity(self) -> Parity {
        match self {
            Func::Sin | Func::Tan | Func::Asin | Func::Atan | Func::Sinh | Func::Tanh | Func::Sign => Parity::Odd,
            Func::Cos | Func::Cosh | Func::Abs => Parity::Even,
            Func::Acos | Func::Exp | Func::Log => Parity::None,
        }
    }
}

enum Parity {
    Odd,
    Even,
    None,
}

impl Arena {
    /// The canonical application of a function.
    pub fn func(&mut self, f: Func, a: ExprId) -> ExprId {
        if let Some(Num::Float(x)) = self.as_num(a) {
            let y = f.apply(x);
            if y.is_finite() {
                return self.float(y);
            }
        }
        if self.is_zero(a) {
            match f {
                Func::Cos | Func::Cosh | Func::Exp => return self.int(1),
                Func::Acos => {}
                Func::Log => {}
                _ => return a,
            }
        }
        match (f, self.node(a).clone()) {
            (Func::Log, Node::Func(Func::Exp, x)) => return x,
            (Func::Exp, Node::Func(Func::Log, x)) => return x,
            (Func::Log, Node::Num(n)) if n.is_one() => return self.int(0),
            (Func::Abs, Node::Num(n)) => return self.num(if n.is_negative() { n.neg() } else { n }),
            (Func::Sign, Node::Num(n)) => return self.int(if n.is_negative() { -1 } else { 1 }),
            (Func::Abs, Node::Func(Func::Abs, _)) => return a,
            _ => {}
        }
        if self.is_negative_form(a) {
            match f.parity() {
                Parity::Odd => {
                    let na = self.neg(a);
                    let y = self.func(f, na);
                    return self.neg(y);
                }
                Parity::Even => {
                    let na = self.neg(a);
                    return self.func(f, na);
                }
                Parity::None => {}
            }
        }
        self.intern(Node::Func(f, a))
    }

    pub fn atan2(&mut self, y: ExprId, x: ExprId) -> ExprId {
        if let (Some(a), Some(b)) = (self.as_num(y), self.as_num(x)) {
            if !a.is_exact() || !b.is_exact() {
                return self.float(a.to_f64().atan2(b.to_f64()));
            }
        }
        self.intern(Node::Atan2(y, x))
    }
}
