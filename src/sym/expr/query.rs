//! Queries on expressions: numeric values, negated forms, children, the nodes reachable from a
//! set of roots in topological order, sizes, and the symbols an expression depends on.

use super::{Arena, ExprId, FxHasher, FxMap, Node, SymId, SymKind};
use crate::sym::num::Num;
use std::hash::BuildHasherDefault;

impl Arena {
    /// The number held by `e`, if it is one.
    pub fn as_num(&self, e: ExprId) -> Option<Num> {
        match self.node(e) {
            Node::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn is_zero(&self, e: ExprId) -> bool {
        self.as_num(e).is_some_and(Num::is_zero)
    }

    pub fn is_one(&self, e: ExprId) -> bool {
        self.as_num(e).is_some_and(Num::is_one)
    }

    /// Whether `e` reads as a negated expression: a negative number, a product
    /// with a negative coefficient, or a sum whose first non-constant term is one.
    pub fn is_negative_form(&self, e: ExprId) -> bool {
        match self.node(e) {
            Node::Num(n) => n.is_negative(),
            Node::Mul(fs) => self.as_num(fs[0]).is_some_and(Num::is_negative),
            Node::Add(ts) => {
                let first = if self.as_num(ts[0]).is_some() { ts[1] } else { ts[0] };
                self.is_negative_form(first)
            }
            _ => false,
        }
    }

    /// The children of a node, in order.
    pub fn children(&self, e: ExprId) -> Vec<ExprId> {
        match self.node(e) {
            Node::Num(_) | Node::Sym(_) | Node::Data { .. } | Node::Member { .. } => vec![],
            Node::Add(xs) | Node::Mul(xs) => xs.to_vec(),
            Node::Pow(a, b) | Node::Atan2(a, b) => vec![*a, *b],
            Node::Func(_, a) | Node::Sum(_, a) => vec![*a],
        }
    }

    /// Every node reachable from `roots`, children first, each once.
    pub fn topo_order(&self, roots: &[ExprId]) -> Vec<ExprId> {
        let mut seen: std::collections::HashSet<ExprId, BuildHasherDefault<FxHasher>> = Default::default();
        let mut stack: Vec<ExprId> = roots.to_vec();
        let mut out = Vec::new();
        while let Some(e) = stack.pop() {
            if !seen.insert(e) {
                continue;
            }
            out.push(e);
            stack.extend(self.children(e));
        }
        // Children have smaller ids than their parents.
        out.sort();
        out
    }

    /// The number of distinct nodes reachable from `roots`.
    pub fn dag_size(&self, roots: &[ExprId]) -> usize {
        self.topo_order(roots).len()
    }

    /// The number of nodes of `roots` written out as trees, with no sharing:
    /// what printing them costs. Saturates at `u64::MAX`.
    pub fn tree_size(&self, roots: &[ExprId]) -> u64 {
        let mut size: FxMap<ExprId, u64> = FxMap::default();
        for n in self.topo_order(roots) {
            let s = self.children(n).iter().fold(1u64, |acc, c| acc.saturating_add(size[c]));
            size.insert(n, s);
        }
        roots.iter().fold(0u64, |acc, r| acc.saturating_add(size[r]))
    }

    /// Whether `e` contains any symbol for which `pred` holds.
    pub fn depends(&self, e: ExprId, pred: impl Fn(SymKind) -> bool) -> bool {
        // Numbers are most of a large sparse matrix: no walk for them.
        if let Node::Num(_) = self.node(e) {
            return false;
        }
        self.topo_order(&[e]).into_iter().any(|n| match self.node(n) {
            Node::Sym(s) => pred(self.symbol(*s).kind),
            // A member at a rolled index is a variable of its family's kind.
            Node::Member { family, .. } => pred(self.symbol(self.family(*family).members[0]).kind),
            _ => false,
        })
    }

    /// The symbols that occur in `e`, sorted.
    pub fn free_symbols(&self, roots: &[ExprId]) -> Vec<SymId> {
        let mut v: Vec<SymId> = self
            .topo_order(roots)
            .into_iter()
            .filter_map(|n| match self.node(n) {
                Node::Sym(s) => Some(*s),
                _ => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}
