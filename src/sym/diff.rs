//! Symbolic differentiation, the total time derivative and substitution.

use super::expr::FxMap;
use super::expr::{Arena, ExprId, Func, Node, SymId, SymKind};
use super::num::Num;
use std::collections::HashMap;

/// Sums with more terms than this are indexed by symbol when differentiated.
const LARGE_SUM: usize = 64;

impl Arena {
    /// `∂e/∂s`, canonical. Results are memoised in the arena, so differentiating
    /// a shared subexpression twice costs one lookup.
    pub fn diff(&mut self, e: ExprId, s: SymId) -> ExprId {
        if !self.may_contain(e, s) {
            return self.int(0);
        }
        if let Some(&d) = self.diff_cache.get(&(e, s)) {
            return d;
        }
        if let Some(p) = self.poisoned() {
            return p;
        }
        let d = self.diff_uncached(e, s);
        self.diff_cache.insert((e, s), d);
        d
    }

    fn diff_uncached(&mut self, e: ExprId, s: SymId) -> ExprId {
        match self.node(e).clone() {
            Node::Num(_) | Node::Data { .. } => self.int(0),
            // A member at a rolled index is not a symbol of the model: derivatives
            // by members are taken through placeholders (`derive::indexed`).
            Node::Member { .. } => self.int(0),
            Node::Sym(x) => self.int(i64::from(x == s)),
            // The index is bound inside the sum: a symbol of the model is never it.
            Node::Sum(i, body) => {
                let d = self.diff(body, s);
                self.sum_over(i, d)
            }
            Node::Add(ts) if ts.len() > LARGE_SUM => {
                // Only the terms that contain `s`, found in an index of the sum built
                // once: a lattice's Lagrangian of N terms differentiated by each of its
                // N coordinates costs N lookups, not N² tests.
                if !self.term_index.contains_key(&e) {
                    let mut index: FxMap<SymId, Vec<u32>> = FxMap::default();
                    for (k, &t) in ts.iter().enumerate() {
                        for x in self.free_symbols(&[t]) {
                            index.entry(x).or_default().push(k as u32);
                        }
                    }
                    self.term_index.insert(e, index);
                }
                let at = self.term_index[&e].get(&s).cloned().unwrap_or_default();
                let mut ds: Vec<ExprId> = Vec::with_capacity(at.len());
                for k in at {
                    let d = self.diff(ts[k as usize], s);
                    if !self.is_zero(d) {
                        ds.push(d);
                    }
                }
                self.add(&ds)
            }
            Node::Add(ts) => {
                // Only the terms that may contain `s`.
                let mut ds: Vec<ExprId> = Vec::new();
                for &t in ts.iter() {
                    if self.may_contain(t, s) {
                        let d = self.diff(t, s);
                        if !self.is_zero(d) {
                            ds.push(d);
                        }
                    }
                }
                self.add(&ds)
            }
            Node::Mul(fs) => {
                let mut terms = Vec::new();
                for i in 0..fs.len() {
                    let d = self.diff(fs[i], s);
                    if self.is_zero(d) {
                        continue;
                    }
                    let mut parts: Vec<ExprId> = Vec::with_capacity(fs.len());
                    parts.extend_from_slice(&fs[..i]);
                    parts.push(d);
                    parts.extend_from_slice(&fs[i + 1..]);
                    terms.push(self.mul(&parts));
                }
                self.add(&terms)
            }
            Node::Pow(b, x) => {
                let db = self.diff(b, s);
                let dx = self.diff(x, s);
                let mut terms = Vec::new();
                if !self.is_zero(db) {
                    // x · b^(x−1) · b'
                    let m1 = self.int(-1);
                    let xm1 = self.add(&[x, m1]);
                    let p = self.pow(b, xm1);
                    terms.push(self.mul(&[x, p, db]));
                }
                if !self.is_zero(dx) {
                    // b^x · log(b) · x'
                    let lb = self.func(Func::Log, b);
                    terms.push(self.mul(&[e, lb, dx]));
                }
                self.add(&terms)
            }
            Node::Func(f, a) => {
                let da = self.diff(a, s);
                if self.is_zero(da) {
                    return da;
                }
                let outer = self.func_derivative(f, a, e);
                self.mul(&[outer, da])
            }
            Node::Atan2(y, x) => {
                // (x·y' − y·x') / (x² + y²)
                let dy = self.diff(y, s);
                let dx = self.diff(x, s);
                let a = self.mul(&[x, dy]);
                let b = self.mul(&[y, dx]);
                let num = self.sub(a, b);
                let x2 = self.powi(x, 2);
                let y2 = self.powi(y, 2);
                let den = self.add(&[x2, y2]);
                self.div(num, den)
            }
        }
    }

    /// `f'(a)` where `fa = f(a)`.
    fn func_derivative(&mut self, f: Func, a: ExprId, fa: ExprId) -> ExprId {
        let one = self.int(1);
        let minus_half = self.num(Num::rat(-1, 2));
        match f {
            Func::Sin => self.func(Func::Cos, a),
            Func::Cos => {
                let s = self.func(Func::Sin, a);
                self.neg(s)
            }
            Func::Tan => {
                let t2 = self.powi(fa, 2);
                self.add(&[one, t2])
            }
            Func::Asin | Func::Acos => {
                let a2 = self.powi(a, 2);
                let na2 = self.neg(a2);
                let r = self.add(&[one, na2]);
                let d = self.pow(r, minus_half);
                if f == Func::Acos {
                    self.neg(d)
                } else {
                    d
                }
            }
            Func::Atan => {
                let a2 = self.powi(a, 2);
                let r = self.add(&[one, a2]);
                self.powi(r, -1)
            }
            Func::Sinh => self.func(Func::Cosh, a),
            Func::Cosh => self.func(Func::Sinh, a),
            Func::Tanh => {
                let t2 = self.powi(fa, 2);
                let nt2 = self.neg(t2);
                self.add(&[one, nt2])
            }
            Func::Exp => fa,
            Func::Log => self.powi(a, -1),
            Func::Abs => self.func(Func::Sign, a),
            Func::Sign => self.int(0),
        }
    }

    /// The gradient of `e` with respect to `syms`.
    pub fn gradient(&mut self, e: ExprId, syms: &[SymId]) -> Vec<ExprId> {
        syms.iter().map(|&s| self.diff(e, s)).collect()
    }

    /// The total time derivative along the motion:
    /// `Σ ∂e/∂q_i · q_i' + Σ ∂e/∂q_i' · q_i'' + ∂e/∂t`.
    ///
    /// `chain` lists pairs `(x, x')` of a symbol and the symbol of its time
    /// derivative; `time` is the symbol `t`.
    pub fn time_derivative(&mut self, e: ExprId, chain: &[(SymId, SymId)], time: Option<SymId>) -> ExprId {
        let position: FxMap<SymId, usize> = chain.iter().enumerate().map(|(k, &(x, _))| (x, k)).collect();
        self.time_derivative_in(e, chain, &position, time)
    }

    /// [`Arena::time_derivative`] with `position[x]` the index of `(x, x')` in
    /// `chain`, so that the cost follows the symbols of `e`, not the length of
    /// `chain` (a lattice has a long chain and short expressions).
    pub fn time_derivative_in(
        &mut self,
        e: ExprId,
        chain: &[(SymId, SymId)],
        position: &FxMap<SymId, usize>,
        time: Option<SymId>,
    ) -> ExprId {
        let holes = self.rolled_holes(e);
        if holes.is_empty() {
            return self.time_derivative_plain(e, chain, position, &[], time);
        }
        // Each member at a rolled index and each rolled sum that reads one is
        // differentiated as a symbol whose derivative is known: a member's is
        // the same member of the derivative family, a sum's the sum of its
        // body's derivative.
        let mut held = FxMap::default();
        let mut back: HashMap<SymId, ExprId> = HashMap::new();
        // The placeholders' pairs, after `chain` (not a copy of it: a member of
        // a long family would copy the whole chain).
        let mut extra: Vec<(SymId, SymId)> = Vec::with_capacity(holes.len());
        for h in holes {
            let dh = match self.node(h).clone() {
                Node::Member { family, row } => match self.family(family).derivative {
                    Some(d) => self.member(d, row),
                    None => self.float(f64::NAN),
                },
                Node::Sum(i, body) => {
                    let db = self.time_derivative_in(body, chain, position, time);
                    self.sum_over(i, db)
                }
                _ => unreachable!("holes are members and sums"),
            };
            let (s, ds) = (self.placeholder(h), self.placeholder(dh));
            let sx = self.sym(s);
            held.insert(h, sx);
            back.insert(s, h);
            back.insert(ds, dh);
            extra.push((s, ds));
        }
        let e2 = self.replace_nodes(e, held);
        let d = self.time_derivative_plain(e2, chain, position, &extra, time);
        self.subst(d, &back)
    }

    /// The members at a rolled index and the rolled sums that read members,
    /// reachable from `e` without entering a rolled sum.
    pub fn rolled_holes(&self, e: ExprId) -> Vec<ExprId> {
        let mut out = Vec::new();
        let mut seen: std::collections::HashSet<ExprId> = Default::default();
        let mut stack = vec![e];
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            match self.node(n) {
                Node::Member { row: super::expr::Row::Index(..), .. } => out.push(n),
                Node::Sum(..) => {
                    if self.reads_members(n) {
                        out.push(n);
                    }
                }
                _ => stack.extend(self.children(n)),
            }
        }
        out.sort();
        out
    }

    /// Whether `e` reads a family member at a rolled index.
    pub fn reads_members(&self, e: ExprId) -> bool {
        self.topo_order(&[e]).into_iter().any(|n| matches!(self.node(n), Node::Member { .. }))
    }

    /// About how many operands [`Arena::unroll_members`] would write for
    /// `roots`, without writing them: each sum that reads members contributes
    /// its length times the nodes of its body that read its index, a sum
    /// within that body counting as its own estimate (it is written once for
    /// every value of the outer index). Linear in the sizes of the sums' bodies.
    pub fn unrolled_operands(&self, roots: &[ExprId]) -> u64 {
        use super::expr::Row;
        let order = self.topo_order(roots);
        let mut est: FxMap<ExprId, u64> = FxMap::default();
        let mut total = 0u64;
        for &n in &order {
            let Node::Sum(i, body) = *self.node(n) else { continue };
            if !self.reads_members(body) {
                continue;
            }
            let SymKind::Index { lo, hi } = self.symbol(i).kind else { continue };
            // Which nodes of the body read `i`, children before parents.
            let mut reads: FxMap<ExprId, bool> = FxMap::default();
            let mut per = 0u64;
            for m in self.topo_order(&[body]) {
                let r = match self.node(m) {
                    Node::Sym(x) => *x == i,
                    Node::Data { row: Row::Index(x, _), .. } | Node::Member { row: Row::Index(x, _), .. } => *x == i,
                    _ => self.children(m).iter().any(|c| reads[c]),
                };
                reads.insert(m, r);
                if r {
                    per = per.saturating_add(est.get(&m).copied().unwrap_or(1));
                }
            }
            let e = ((hi - lo).max(0) as u64).saturating_mul(per.max(1));
            est.insert(n, e);
            total = total.saturating_add(e);
        }
        total
    }

    /// `e` with every rolled sum that reads family members written out term
    /// by term, each member its symbol: the form the per-coordinate
    /// derivation takes. Sums over data alone stay loops.
    pub fn unroll_members(&mut self, e: ExprId) -> ExprId {
        if !self.reads_members(e) {
            return e;
        }
        let mut memo = FxMap::default();
        self.rebuild(e, &mut memo, &mut |a, node| {
            let Node::Sum(i, body) = *node else { return None };
            if !a.reads_members(body) {
                return None;
            }
            let SymKind::Index { lo, hi } = a.symbol(i).kind else { return None };
            let terms: Vec<ExprId> = (lo..hi).map(|v| a.at_index(body, i, v)).collect();
            Some(a.add(&terms))
        })
    }

    /// `e` with the index `i` at the value `v`: members and data rows at `i`
    /// become the members and rows they read.
    pub fn at_index(&mut self, e: ExprId, i: SymId, v: i64) -> ExprId {
        use super::expr::Row;
        let mut memo = self.binding(e, i);
        self.rebuild(e, &mut memo, &mut |a, node| match *node {
            Node::Sym(s) if s == i => Some(a.int(v)),
            Node::Member { family, row: Row::Index(s, off) } if s == i => {
                Some(a.member(family, Row::At((v + i64::from(off)) as u32)))
            }
            Node::Data { table, row: Row::Index(s, off), col } if s == i => {
                Some(a.data(table, Row::At((v + i64::from(off)) as u32), col))
            }
            _ => None,
        })
    }

    /// `e` with the index `i` replaced by `j + shift`: members and data rows
    /// at `i + o` read `j + o + shift`.
    pub fn shift_index(&mut self, e: ExprId, i: SymId, j: SymId, shift: i64) -> ExprId {
        use super::expr::Row;
        let mut memo = self.binding(e, i);
        self.rebuild(e, &mut memo, &mut |a, node| match *node {
            Node::Sym(s) if s == i => {
                let (js, k) = (a.sym(j), a.int(shift));
                Some(a.add(&[js, k]))
            }
            Node::Member { family, row: Row::Index(s, off) } if s == i => {
                Some(a.member(family, Row::Index(j, off + shift as i32)))
            }
            Node::Data { table, row: Row::Index(s, off), col } if s == i => {
                Some(a.data(table, Row::Index(j, off + shift as i32), col))
            }
            _ => None,
        })
    }

    /// The rolled sums in `e` over the index `i`, each mapped to itself: a
    /// substitution for a free `i` leaves the sums that bind it alone.
    fn binding(&self, e: ExprId, i: SymId) -> FxMap<ExprId, ExprId> {
        self.topo_order(&[e])
            .into_iter()
            .filter(|&n| matches!(self.node(n), Node::Sum(s, _) if *s == i))
            .map(|n| (n, n))
            .collect()
    }

    /// `e` with the nodes of `map` replaced (and everything above them rebuilt).
    pub fn replace_nodes(&mut self, e: ExprId, map: FxMap<ExprId, ExprId>) -> ExprId {
        let mut memo = map;
        self.rebuild(e, &mut memo, &mut |_, _| None)
    }

    fn time_derivative_plain(
        &mut self,
        e: ExprId,
        chain: &[(SymId, SymId)],
        position: &FxMap<SymId, usize>,
        extra: &[(SymId, SymId)],
        time: Option<SymId>,
    ) -> ExprId {
        let free = self.free_symbols(&[e]);
        // In chain order, as the terms have always been built; `extra` continues `chain`.
        let extra_at: FxMap<SymId, usize> = extra.iter().enumerate().map(|(j, &(x, _))| (x, chain.len() + j)).collect();
        let mut at: Vec<usize> =
            free.iter().filter_map(|x| position.get(x).or_else(|| extra_at.get(x)).copied()).collect();
        at.sort_unstable();
        let mut terms = Vec::new();
        for k in at {
            let (x, dx) = if k < chain.len() { chain[k] } else { extra[k - chain.len()] };
            let d = self.diff(e, x);
            let v = self.sym(dx);
            terms.push(self.mul(&[d, v]));
        }
        if let Some(t) = time {
            if free.binary_search(&t).is_ok() {
                terms.push(self.diff(e, t));
            }
        }
        self.add(&terms)
    }

    /// Replaces symbols by expressions everywhere in `e`, rebuilding canonically.
    pub fn subst(&mut self, e: ExprId, map: &HashMap<SymId, ExprId>) -> ExprId {
        let mut memo: FxMap<ExprId, ExprId> = FxMap::default();
        self.rebuild(e, &mut memo, &mut |arena, node| match node {
            Node::Sym(s) => map.get(s).copied().or_else(|| Some(arena.sym(*s))),
            _ => None,
        })
    }

    /// Rebuilds `e` bottom-up through the canonical constructors. `leaf` may
    /// replace a node outright (it sees the node with rebuilt children).
    pub fn rebuild(
        &mut self,
        e: ExprId,
        memo: &mut FxMap<ExprId, ExprId>,
        leaf: &mut dyn FnMut(&mut Arena, &Node) -> Option<ExprId>,
    ) -> ExprId {
        let order = self.topo_order(&[e]);
        for n in order {
            if memo.contains_key(&n) {
                continue;
            }
            let node = self.node(n).clone();
            let m = |x: &ExprId| memo[x];
            let rebuilt = match &node {
                Node::Num(_) | Node::Sym(_) | Node::Data { .. } | Node::Member { .. } => node.clone(),
                Node::Sum(i, b) => Node::Sum(*i, m(b)),
                Node::Add(xs) => Node::Add(xs.iter().map(m).collect()),
                Node::Mul(xs) => Node::Mul(xs.iter().map(m).collect()),
                Node::Pow(a, b) => Node::Pow(m(a), m(b)),
                Node::Func(f, a) => Node::Func(*f, m(a)),
                Node::Atan2(a, b) => Node::Atan2(m(a), m(b)),
            };
            let out = match leaf(self, &rebuilt) {
                Some(x) => x,
                None => self.build(&rebuilt),
            };
            memo.insert(n, out);
        }
        memo[&e]
    }

    /// Interns `node` through the canonical constructor of its kind.
    pub fn build(&mut self, node: &Node) -> ExprId {
        match node {
            Node::Num(n) => self.num(*n),
            Node::Sym(s) => self.sym(*s),
            Node::Add(xs) => self.add(xs),
            Node::Mul(xs) => self.mul(xs),
            Node::Pow(a, b) => self.pow(*a, *b),
            Node::Func(f, a) => self.func(*f, *a),
            Node::Atan2(a, b) => self.atan2(*a, *b),
            Node::Data { table, row, col } => self.data(*table, *row, *col),
            Node::Member { family, row } => self.member(*family, *row),
            Node::Sum(i, b) => self.sum_over(*i, *b),
        }
    }

    /// The symbols of a given kind, in index order.
    pub fn symbols_of(&self, pred: impl Fn(SymKind) -> bool) -> Vec<SymId> {
        self.symbols().filter(|(_, s)| pred(s.kind)).map(|(id, _)| id).collect()
    }
}
