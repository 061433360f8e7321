//! The canonical constructor of powers, with integer powers and square roots built on it.

use super::{Arena, ExprId, Func, Node};
use crate::sym::num::Num;

impl Arena {
    pub fn powi(&mut self, b: ExprId, n: i64) -> ExprId {
        let n = self.int(n);
        self.pow(b, n)
    }

    pub fn sqrt(&mut self, x: ExprId) -> ExprId {
        let h = self.num(Num::HALF);
        self.pow(x, h)
    }

    /// The canonical power `b^x`.
    pub fn pow(&mut self, b: ExprId, x: ExprId) -> ExprId {
        if self.is_zero(x) {
            return self.int(1);
        }
        if self.is_one(x) {
            return b;
        }
        if self.is_one(b) {
            return b;
        }
        if let (Some(nb), Some(nx)) = (self.as_num(b), self.as_num(x)) {
            if nb.is_zero() && !nx.is_negative() {
                return b;
            }
            if let Some(r) = nb.pow(nx) {
                return self.num(r);
            }
            if let (Num::Rat(p, q), Num::Rat(..)) = (nb, nx) {
                if q != 1 {
                    // (p/q)^x = p^x · q^(−x)
                    let (pn, qn) = (self.int(p), self.int(q));
                    let a = self.pow(pn, x);
                    let negx = self.neg(x);
                    let c = self.pow(qn, negx);
                    return self.mul(&[a, c]);
                }
            }
        }
        let int_x = self.as_num(x).and_then(Num::as_int);
        match self.node(b).clone() {
            // (c^y)^n = c^(y·n) for integer n, or for odd integer y; (c^2)^(1/2) stays.
            Node::Pow(c, y) if int_x.is_some() || self.as_num(y).and_then(Num::as_int).is_some_and(|k| k % 2 != 0) => {
                let yx = self.mul(&[y, x]);
                return self.pow(c, yx);
            }
            Node::Mul(fs) if int_x.is_some() => {
                let parts: Vec<ExprId> = fs.iter().map(|&f| self.pow(f, x)).collect();
                return self.mul(&parts);
            }
            Node::Mul(fs) => {
                // A positive number factors out of a root: (4x)^(1/2) = 2·x^(1/2).
                if let Some(c) = self.as_num(fs[0]) {
                    if !c.is_negative() {
                        let rest = self.mul(&fs[1..]);
                        let cn = self.num(c);
                        let a = self.pow(cn, x);
                        let r = self.pow(rest, x);
                        return self.mul(&[a, r]);
                    }
                }
            }
            Node::Func(Func::Exp, a) => {
                let ax = self.mul(&[a, x]);
                return self.func(Func::Exp, ax);
            }
            _ => {}
        }
        self.intern(Node::Pow(b, x))
    }
}
