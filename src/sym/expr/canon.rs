//! The canonical constructors of sums and products: flattening, collecting like terms and like
//! factors, folding numbers and sorting operands; subtraction and division are built on them.

use super::{Arena, ExprId, Node};
use crate::sym::num::Num;

impl Arena {
    /// Splits a term into its numeric coefficient and the rest (`None` when the
    /// term is a number).
    pub fn split_coeff(&mut self, e: ExprId) -> (Num, Option<ExprId>) {
        match self.node(e) {
            Node::Num(n) => (*n, None),
            Node::Mul(fs) => match self.node(fs[0]) {
                Node::Num(n) => {
                    let n = *n;
                    if fs.len() == 2 {
                        return (n, Some(fs[1]));
                    }
                    // The rest of a canonical product is canonical too.
                    let rest = fs[1..].to_vec();
                    (n, Some(self.intern_ops(true, rest)))
                }
                _ => (Num::ONE, Some(e)),
            },
            _ => (Num::ONE, Some(e)),
        }
    }

    /// `c · e` for a number `c`.
    pub fn scale(&mut self, c: Num, e: ExprId) -> ExprId {
        let c = self.num(c);
        self.mul(&[c, e])
    }

    pub fn neg(&mut self, e: ExprId) -> ExprId {
        self.scale(Num::MINUS_ONE, e)
    }

    pub fn sub(&mut self, a: ExprId, b: ExprId) -> ExprId {
        let nb = self.neg(b);
        self.add(&[a, nb])
    }

    pub fn div(&mut self, a: ExprId, b: ExprId) -> ExprId {
        let m1 = self.int(-1);
        let rb = self.pow(b, m1);
        self.mul(&[a, rb])
    }

    pub fn add2(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.add(&[a, b])
    }

    pub fn mul2(&mut self, a: ExprId, b: ExprId) -> ExprId {
        self.mul(&[a, b])
    }

    /// The canonical sum of `terms`.
    pub fn add(&mut self, terms: &[ExprId]) -> ExprId {
        if let Some(p) = self.poisoned() {
            return p;
        }
        let mut constant = Num::ZERO;
        // (term without its coefficient, coefficient), merged after sorting.
        let mut parts: Vec<(ExprId, Num)> = Vec::with_capacity(terms.len());
        let mut stack: Vec<(Num, ExprId)> = terms.iter().rev().map(|&t| (Num::ONE, t)).collect();
        while let Some((scale, t)) = stack.pop() {
            match self.node(t) {
                Node::Add(ts) => {
                    for &u in ts.iter().rev() {
                        stack.push((scale, u));
                    }
                }
                _ => {
                    let (c, rest) = self.split_coeff(t);
                    let c = c.mul(scale);
                    match rest {
                        None => constant = constant.add(c),
                        // A scaled sum, `c·(a + b)`, is already distributed by `mul`.
                        Some(r) => parts.push((r, c)),
                    }
                }
            }
        }
        // A stable sort keeps equal terms in the order met, so their
        // coefficients are added in that order.
        parts.sort_by_key(|&(r, _)| r);
        let mut out: Vec<ExprId> = Vec::with_capacity(parts.len() + 1);
        if !constant.is_zero() {
            out.push(self.num(constant));
        }
        let mut i = 0;
        while i < parts.len() {
            let (r, mut c) = parts[i];
            i += 1;
            while i < parts.len() && parts[i].0 == r {
                c = c.add(parts[i].1);
                i += 1;
            }
            if !c.is_zero() {
                let t = if c.is_one() { r } else { self.scale_raw(c, r) };
                out.push(t);
            }
        }
        match out.len() {
            0 => self.int(0),
            1 => out[0],
            _ => self.intern_ops(false, out),
        }
    }

    /// `c·r` where `r` is a canonical non-numeric term without coefficient.
    fn scale_raw(&mut self, c: Num, r: ExprId) -> ExprId {
        match self.node(r) {
            Node::Mul(fs) => {
                let mut v = Vec::with_capacity(fs.len() + 1);
                v.push(ExprId(0));
                v.extend_from_slice(fs);
                v[0] = self.num(c);
                self.intern_ops(true, v)
            }
            Node::Add(_) => {
                let c = self.num(c);
                self.mul(&[c, r])
            }
            _ => {
                let c = self.num(c);
                self.intern_ops(true, vec![c, r])
            }
        }
    }

    /// The canonical product of `factors`.
    pub fn mul(&mut self, factors: &[ExprId]) -> ExprId {
        if let Some(p) = self.poisoned() {
            return p;
        }
        let mut coeff = Num::ONE;
        // (base, exponent) of every factor, products flattened; like bases are merged after
        // a stable sort by base, so that their exponents are added in the order met.
        let mut pairs: Vec<(ExprId, ExprId)> = Vec::with_capacity(factors.len() + 4);
        let mut stack: Vec<ExprId> = factors.iter().rev().copied().collect();
        let mut one = None;
        while let Some(f) = stack.pop() {
            match self.node(f) {
                Node::Num(n) => coeff = coeff.mul(*n),
                Node::Mul(fs) => stack.extend(fs.iter().rev()),
                Node::Pow(b, x) => pairs.push((*b, *x)),
                _ => {
                    let x = *one.get_or_insert_with(|| self.int(1));
                    pairs.push((f, x));
                }
            }
            if coeff.is_zero() {
                return self.int(0);
            }
        }
        pairs.sort_by_key(|&(b, _)| b);
        let mut out: Vec<ExprId> = Vec::with_capacity(pairs.len());
        let mut again: Vec<ExprId> = Vec::new();
        for run in pairs.chunk_by(|p, q| p.0 == q.0) {
            let x = match run {
                [(_, x)] => *x,
                _ => {
                    let xs: Vec<ExprId> = run.iter().map(|&(_, x)| x).collect();
                    self.add(&xs)
                }
            };
            let p = self.pow(run[0].0, x);
            match self.node(p) {
                Node::Num(n) => coeff = coeff.mul(*n),
                Node::Mul(_) => again.push(p),
                _ => out.push(p),
            }
        }
        if !again.is_empty() {
            // A power that distributed over a product, such as (a·b)², merges again.
            again.extend(out);
            let c = self.num(coeff);
            again.push(c);
            return self.mul(&again);
        }
        if coeff.is_zero() {
            return self.int(0);
        }
        out.sort_by_key(|&f| self.base_key(f));
        match out.len() {
            0 => self.num(coeff),
            1 if coeff.is_one() => out[0],
            1 if matches!(self.node(out[0]), Node::Add(_)) => {
                // Numbers distribute over sums: 2·(a + b) = 2a + 2b.
                let Node::Add(ts) = self.node(out[0]).clone() else { unreachable!() };
                let c = self.num(coeff);
                let scaled: Vec<ExprId> = ts.iter().map(|&t| self.mul(&[c, t])).collect();
                self.add(&scaled)
            }
            _ => {
                if !coeff.is_one() {
                    let c = self.num(coeff);
                    out.insert(0, c);
                }
                self.intern_ops(true, out)
            }
        }
    }

    fn base_key(&self, f: ExprId) -> ExprId {
        match self.node(f) {
            Node::Pow(b, _) => *b,
            _ => f,
        }
    }
}
