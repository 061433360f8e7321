//! Simplification beyond the canonical form: polynomial expansion, the
//! Pythagorean and angle-sum identities, and grouping for display.
//!
//! [`Arena::simplify`] is what derivation applies to `L`, `R`, `H` and each
//! equation: expand products of sums, then combine `a·sin²u + a·cos²u = a`
//! (whatever other factors `a` holds),
//! `cos u cos w ± sin u sin w = cos(u ∓ w)` and
//! `sin u cos w ± cos u sin w = sin(u ± w)` among terms that agree in
//! everything else (docs/numerics.md §Simplification). Expansion is bounded (per product by [`EXPAND_LIMIT`], per
//! call and per arena by [`EXPAND_BASE`], [`EXPAND_RATIO`] and
//! [`EXPAND_TOTAL`]) so it cannot swell: past the bounds, products stay factored.
//!
//! [`Arena::tidy`] only changes how a result reads: terms that share the same
//! state-dependent part are grouped and their parameter coefficients factored,
//! so the mass matrix of a double pendulum reads `l1^2*(m1 + m2)`.

use super::expr::{Arena, ExprId, Func, FxMap, Node, SymKind};
use super::num::Num;
use std::collections::HashMap;

/// The most terms an expansion of one product may produce; beyond it the
/// product is left factored.
pub const EXPAND_LIMIT: usize = 4096;

/// Nodes any one [`Arena::simplify`] may create while expanding, besides
/// [`EXPAND_RATIO`] per node of its input.
pub const EXPAND_BASE: usize = 2_000;

/// Nodes one [`Arena::simplify`] may create per node of its input.
pub const EXPAND_RATIO: usize = 32;

/// Nodes all expansions in one arena may create together.
pub const EXPAND_TOTAL: usize = 250_000;

/// The largest integer power of a sum that is multiplied out.
const EXPAND_POWER: i64 = 6;

/// A square of a sum of more terms than this is multiplied out together with
/// the other such squares of the sum it is a term of, pair by pair
/// ([`Arena::add_expanding_squares`]), not on its own.
const SQUARE_ALONE: usize = 16;

/// The most pairs of terms the squares of one sum may have; past it they stay
/// factored. A chain of 230 links written in Cartesian form has 4·10⁶, and
/// its equations take about 5 s to derive and compile.
pub const SQUARE_PAIRS: u64 = 4_000_000;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Trig {
    Sin,
    Cos,
}

impl Arena {
    /// Expands, then applies the trigonometric identities.
    ///
    /// Expansion is what makes Euler–Lagrange equations read like a textbook
    /// (the squares of a chain's velocities become `cos(q1 - q2)` terms), but
    /// multiplied out, a product of several long sums is far larger than the
    /// product itself. So each call may create at most
    /// `EXPAND_BASE + EXPAND_RATIO × (size of e)` nodes while expanding, and a
    /// whole arena at most [`EXPAND_TOTAL`] (once that is spent, nothing more
    /// is expanded); an expansion that would need more is abandoned and `e` is
    /// kept factored. Either way the result equals `e`.
    pub fn simplify(&mut self, e: ExprId) -> ExprId {
        let x = self.expand_bounded(e).unwrap_or(e);
        self.combine_trig(x)
    }

    /// Multiplies out products of sums and small integer powers of sums,
    /// without a bound on the work.
    pub fn expand(&mut self, e: ExprId) -> ExprId {
        let order = self.topo_order(&[e]);
        self.expand_within(e, &order, usize::MAX).expect("an unbounded expansion always finishes")
    }

    /// [`Arena::expand`] within the budget described at [`Arena::simplify`];
    /// `None` when the budget ran out.
    pub fn expand_bounded(&mut self, e: ExprId) -> Option<ExprId> {
        if let Some(&x) = self.expand_cache.get(&e) {
            return Some(x);
        }
        let left = EXPAND_TOTAL.saturating_sub(self.expand_spent);
        if left == 0 {
            return None;
        }
        let order = self.topo_order(&[e]);
        let budget = EXPAND_BASE.saturating_add(EXPAND_RATIO.saturating_mul(order.len())).min(left);
        let before = self.len();
        let out = self.expand_within(e, &order, budget);
        self.expand_spent += self.len() - before;
        out
    }

    /// Expands `e`, giving up (`None`) once the arena has grown by more than
    /// `budget` nodes. The cache keeps only complete expansions, so an
    /// abandoned attempt leaves nothing half-done behind.
    fn expand_within(&mut self, e: ExprId, order: &[ExprId], budget: usize) -> Option<ExprId> {
        let mut memo = std::mem::take(&mut self.expand_cache);
        let stop = self.len().saturating_add(budget);
        // A square of a long sum is left factored until the sum it is a term of,
        // and so is every sum or product of such squares that is only ever a
        // term or factor of a larger one: the outermost sum multiplies out all
        // its squares at once.
        // What is left factored depends on where it is used, so it is kept
        // here, apart from the memo, which holds complete expansions only.
        let summed = self.only_summed(e, order);
        let mut deferred: FxMap<ExprId, ExprId> = FxMap::default();
        let mut out = None;
        for &n in order {
            if memo.contains_key(&n) {
                continue;
            }
            let node = self.node(n).clone();
            let m = |x: &ExprId| deferred.get(x).copied().unwrap_or_else(|| memo[x]);
            let holds_square = match &node {
                Node::Add(xs) | Node::Mul(xs) => xs.iter().any(|x| deferred.contains_key(x)),
                _ => false,
            };
            let (x, defer) = match &node {
                Node::Num(_) | Node::Sym(_) | Node::Data { .. } | Node::Member { .. } => (Some(n), false),
                Node::Sum(i, b) => {
                    let b = m(b);
                    (Some(self.sum_over(*i, b)), false)
                }
                Node::Add(xs) => {
                    let xs: Vec<ExprId> = xs.iter().map(m).collect();
                    match (holds_square, summed.get(&n) == Some(&true)) {
                        (true, false) => (self.add_expanding_squares(&xs, stop), false),
                        (square, _) => (Some(self.add(&xs)), square),
                    }
                }
                Node::Mul(xs) => {
                    let xs: Vec<ExprId> = xs.iter().map(m).collect();
                    let x = self.expand_product(&xs, stop);
                    match (holds_square, summed.get(&n) == Some(&true), x) {
                        (true, false, Some(x)) => (self.add_expanding_squares(&[x], stop), false),
                        (square, _, x) => (x, square),
                    }
                }
                Node::Pow(b, x) => {
                    let (b, x) = (m(b), m(x));
                    match self.as_num(x).and_then(Num::as_int) {
                        Some(2) if self.long_sum(b) => {
                            let p = self.pow(b, x);
                            if n == e {
                                (self.add_expanding_squares(&[p], stop), false)
                            } else {
                                (Some(p), true)
                            }
                        }
                        Some(k) if (2..=EXPAND_POWER).contains(&k) && matches!(self.node(b), Node::Add(_)) => {
                            (self.expand_product(&vec![b; k as usize], stop), false)
                        }
                        _ => (Some(self.pow(b, x)), false),
                    }
                }
                Node::Func(f, a) => {
                    let a = m(a);
                    (Some(self.func(*f, a)), false)
                }
                Node::Atan2(a, b) => {
                    let (a, b) = (m(a), m(b));
                    (Some(self.atan2(a, b)), false)
                }
            };
            let Some(x) = x.filter(|_| self.len() <= stop) else { break };
            if defer {
                deferred.insert(n, x);
                continue;
            }
            memo.insert(n, x);
            if n == e {
                out = Some(x);
            }
        }
        self.expand_cache = memo;
        out
    }

    /// Which nodes under `e` (in `order`, children first) are terms of sums or
    /// factors of products and nothing else (both spread a sum of squares
    /// into the sum above them); `e` is not.
    fn only_summed(&self, e: ExprId, order: &[ExprId]) -> FxMap<ExprId, bool> {
        let mut summed: FxMap<ExprId, bool> = FxMap::default();
        for &n in order {
            let node = self.node(n);
            let spreads = matches!(node, Node::Add(_) | Node::Mul(_));
            for c in self.children(n) {
                *summed.entry(c).or_insert(true) &= spreads;
            }
        }
        summed.insert(e, false);
        summed
    }

    /// What multiplying out the squares of long sums in `e` costs, both ways:
    /// `(pairs, spread)`, `pairs` the pairs of terms the squares have
    /// together (what [`Arena::add_expanding_squares`] visits) and `spread`
    /// the terms the squares give the derivatives by the `by` symbols if left
    /// factored (each square's length times the symbols of `by` it holds).
    /// The Euler–Lagrange equations of a chain of `n` links cost `n³/3` either
    /// way, and a model is refused up front when both are past
    /// [`SQUARE_PAIRS`].
    pub fn square_work(&self, e: ExprId, by: &[super::expr::SymId]) -> (u64, u64) {
        let (mut pairs, mut spread) = (0u64, 0u64);
        for n in self.topo_order(&[e]) {
            let Some(b) = self.long_square(n) else { continue };
            let Node::Add(ts) = self.node(b) else { unreachable!("a long sum is a sum") };
            let len = ts.len() as u64;
            let free = self.free_symbols(&[b]);
            let held = by.iter().filter(|s| free.binary_search(s).is_ok()).count() as u64;
            pairs = pairs.saturating_add(len * (len + 1) / 2);
            spread = spread.saturating_add(len.saturating_mul(held));
        }
        (pairs, spread)
    }

    /// Whether `b` is a sum whose square is left to the sum that holds it.
    fn long_sum(&self, b: ExprId) -> bool {
        matches!(self.node(b), Node::Add(ts) if ts.len() > SQUARE_ALONE)
    }

    /// The sum `s` when `f = s²` and `s` is a [long sum](Arena::long_sum).
    fn long_square(&self, f: ExprId) -> Option<ExprId> {
        match self.node(f) {
            Node::Pow(b, x) if self.as_num(*x).and_then(Num::as_int) == Some(2) && self.long_sum(*b) => Some(*b),
            _ => None,
        }
    }

    /// `(c, k, s)` when `t = c·k·s²` with `c` a number, `s` a
    /// [long sum](Arena::long_sum) and `k` free of sums.
    fn square_term(&mut self, t: ExprId) -> Option<(Num, ExprId, ExprId)> {
        let (c, rest) = self.split_coeff(t);
        let rest = rest?;
        let factors = match self.node(rest) {
            Node::Mul(fs) => fs.to_vec(),
            _ => vec![rest],
        };
        let at = factors.iter().position(|&f| self.long_square(f).is_some())?;
        let s = self.long_square(factors[at])?;
        let others: Vec<ExprId> = factors.iter().enumerate().filter(|&(i, _)| i != at).map(|(_, &f)| f).collect();
        if others.iter().any(|&f| matches!(self.node(f), Node::Add(_)) || self.long_square(f).is_some()) {
            return None;
        }
        let k = self.mul(&others);
        Some((c, k, s))
    }

    /// The sum of `terms`, the terms `c·k·(Σ_a t_a)²` of long sums multiplied
    /// out together: each pair `(a, b)` adds `c·(2 − δ_ab)·t_a·t_b·k` to one
    /// running coefficient per distinct product, so a product met in many
    /// squares (a chain's `cos q_j cos q_k v_j v_k` is in the square of every
    /// bob below `j` and `k`) is built once, not once per square
    /// (docs/numerics.md §Simplification). Squares with more than
    /// [`SQUARE_PAIRS`] pairs between them stay factored. `None` once the arena
    /// has grown past `stop` nodes.
    fn add_expanding_squares(&mut self, terms: &[ExprId], stop: usize) -> Option<ExprId> {
        let sum = self.add(terms);
        let terms = match self.node(sum) {
            Node::Add(ts) => ts.to_vec(),
            _ => vec![sum],
        };
        let mut plain: Vec<ExprId> = Vec::with_capacity(terms.len());
        let mut squares: Vec<(Num, ExprId, ExprId)> = Vec::new();
        let mut pairs = 0u64;
        for &t in &terms {
            match self.square_term(t) {
                Some((c, k, s)) => {
                    let Node::Add(ts) = self.node(s) else { unreachable!("a long sum is a sum") };
                    let n = ts.len() as u64;
                    pairs += n * (n + 1) / 2;
                    squares.push((c, k, s));
                }
                None => plain.push(t),
            }
        }
        if squares.is_empty() || pairs > SQUARE_PAIRS {
            return Some(sum);
        }
        // (k, the smaller and the larger product of a pair) → coefficient, in the order met.
        let mut index: FxMap<(ExprId, ExprId, ExprId), usize> = FxMap::default();
        let mut products: Vec<((ExprId, ExprId, ExprId), Num)> = Vec::new();
        let one = self.int(1);
        for (c, k, s) in squares {
            let Node::Add(ts) = self.node(s).clone() else { unreachable!() };
            let parts: Vec<(Num, ExprId)> = ts
                .iter()
                .map(|&t| {
                    let (c, r) = self.split_coeff(t);
                    (c, r.unwrap_or(one))
                })
                .collect();
            for (a, &(ca, ra)) in parts.iter().enumerate() {
                let cca = c.mul(ca);
                for (b, &(cb, rb)) in parts.iter().enumerate().skip(a) {
                    let twice = if a == b { Num::ONE } else { Num::int(2) };
                    let w = cca.mul(cb).mul(twice);
                    let key = (k, ra.min(rb), ra.max(rb));
                    match index.get(&key) {
                        Some(&i) => products[i].1 = products[i].1.add(w),
                        None => {
                            index.insert(key, products.len());
                            products.push((key, w));
                        }
                    }
                }
            }
        }
        for ((k, ra, rb), w) in products {
            if w.is_zero() {
                continue;
            }
            let p = self.mul(&[k, ra, rb]);
            plain.push(self.scale(w, p));
            if self.len() > stop {
                return None;
            }
        }
        Some(self.add(&plain))
    }

    /// Multiplies out one product; `None` once the arena has grown past
    /// `stop` nodes.
    fn expand_product(&mut self, fs: &[ExprId], stop: usize) -> Option<ExprId> {
        let one = self.int(1);
        let mut acc: Vec<ExprId> = vec![one];
        let mut others: Vec<ExprId> = Vec::new();
        for &f in fs {
            match self.node(f) {
                Node::Add(ts) if acc.len() * ts.len() <= EXPAND_LIMIT => {
                    let ts = ts.clone();
                    if self.len() > stop {
                        return None;
                    }
                    let mut next = Vec::with_capacity(acc.len() * ts.len());
                    for &a in &acc {
                        for &t in ts.iter() {
                            next.push(self.mul(&[a, t]));
                        }
                    }
                    // Collect as we go, so repeated factors do not multiply terms.
                    let s = self.add(&next);
                    acc = match self.node(s) {
                        Node::Add(xs) => xs.to_vec(),
                        _ => vec![s],
                    };
                }
                _ => others.push(f),
            }
        }
        let rest = self.mul(&others);
        if others.iter().any(|&f| matches!(self.node(f), Node::Add(_))) {
            // A sum too long to multiply in: distributing the rest over the
            // terms would repeat it in every one of them.
            let sum = self.add(&acc);
            return Some(self.mul(&[sum, rest]));
        }
        let terms: Vec<ExprId> = acc.into_iter().map(|t| self.mul(&[t, rest])).collect();
        Some(self.add(&terms))
    }

    /// `e` with the body of every sum over an index factored: `Σ_i (a_i·c_i + b_i·c_i)`
    /// becomes `Σ_i c_i·(a_i + b_i)` ([`Arena::factor_shared`]). The gradient of a loss summed
    /// over data is such a sum per parameter, `Σ_i (σ(z_i)·x_ij − y_i·x_ij)`, and factored
    /// each component costs one product and one sum per row, the rest (`σ(z_i) − y_i`) being
    /// the same expression for every component, computed once per row
    /// (docs/numerics.md §Sums over data).
    pub fn factor_sums(&mut self, e: ExprId) -> ExprId {
        let mut memo = FxMap::default();
        self.rebuild(e, &mut memo, &mut |a, node| match node {
            Node::Sum(i, b) => {
                let b = a.factor_shared(*b);
                Some(a.sum_over(*i, b))
            }
            _ => None,
        })
    }

    /// A sum whose terms share factors as the common factors times the sum of the rest:
    /// `a·c + b·c = c·(a + b)`. Factors are compared as they are (`c` and `c²` are two);
    /// numeric coefficients stay with their terms. Anything else is returned as it is.
    pub fn factor_shared(&mut self, e: ExprId) -> ExprId {
        let Node::Add(ts) = self.node(e) else { return e };
        let ts = ts.to_vec();
        let factors = |a: &Arena, t: ExprId| -> Vec<ExprId> {
            match a.node(t) {
                Node::Mul(fs) => fs.iter().filter(|&&f| a.as_num(f).is_none()).copied().collect(),
                Node::Num(_) => Vec::new(),
                _ => vec![t],
            }
        };
        let mut common = factors(self, ts[0]);
        for &t in &ts[1..] {
            let f = factors(self, t);
            common.retain(|c| f.contains(c));
            if common.is_empty() {
                return e;
            }
        }
        let rests: Vec<ExprId> = ts
            .iter()
            .map(|&t| match self.node(t) {
                Node::Mul(fs) => {
                    let keep: Vec<ExprId> = fs.iter().filter(|f| !common.contains(f)).copied().collect();
                    self.mul(&keep)
                }
                _ => self.int(1),
            })
            .collect();
        let rest = self.add(&rests);
        common.push(rest);
        self.mul(&common)
    }

    /// Applies `sin² + cos² = 1` and the angle-sum identities throughout `e`.
    pub fn combine_trig(&mut self, e: ExprId) -> ExprId {
        let mut memo = std::mem::take(&mut self.trig_cache);
        let out = self.rebuild(e, &mut memo, &mut |a, node| match node {
            Node::Add(ts) => Some(a.combine_trig_sum(ts)),
            _ => None,
        });
        self.trig_cache = memo;
        out
    }

    /// Splits a term into (coefficient, trigonometric factors, other factors).
    #[allow(clippy::type_complexity)]
    fn trig_parts(&mut self, t: ExprId) -> (Num, Vec<(Trig, ExprId, i64)>, Vec<ExprId>) {
        let (c, rest) = self.split_coeff(t);
        let factors = match rest.map(|r| self.node(r).clone()) {
            None => vec![],
            Some(Node::Mul(fs)) => fs.to_vec(),
            Some(_) => vec![rest.unwrap()],
        };
        let mut trig = Vec::new();
        let mut other = Vec::new();
        for f in factors {
            let (b, n) = match self.node(f) {
                Node::Pow(b, x) => match self.as_num(*x).and_then(Num::as_int) {
                    Some(n) => (*b, n),
                    None => (f, 1),
                },
                _ => (f, 1),
            };
            match self.node(b) {
                Node::Func(Func::Sin, u) if n > 0 => trig.push((Trig::Sin, *u, n)),
                Node::Func(Func::Cos, u) if n > 0 => trig.push((Trig::Cos, *u, n)),
                _ => other.push(f),
            }
        }
        (c, trig, other)
    }

    fn combine_trig_sum(&mut self, terms: &[ExprId]) -> ExprId {
        let mut terms: Vec<ExprId> = terms.to_vec();
        for _ in 0..8 {
            let Some(next) = self.combine_trig_pass(&terms) else { break };
            let s = self.add(&next);
            terms = match self.node(s) {
                Node::Add(xs) => xs.to_vec(),
                _ => return s,
            };
        }
        self.add(&terms)
    }

    /// One pass of pairing; `None` when nothing combined. The Pythagorean
    /// pairs are found first, then the angle sums among the terms left; the
    /// two never compete for a term (a Pythagorean term has a trigonometric
    /// square, an angle-sum term has none).
    fn combine_trig_pass(&mut self, terms: &[ExprId]) -> Option<Vec<ExprId>> {
        let mut used = vec![false; terms.len()];
        let mut new_terms = Vec::new();
        let parts: Vec<_> = terms.iter().map(|&t| self.trig_parts(t)).collect();
        self.pythagorean_pairs(terms, &parts, &mut used, &mut new_terms);
        self.angle_sum_pairs(&parts, &mut used, &mut new_terms);
        if new_terms.is_empty() {
            return None;
        }
        new_terms.extend(terms.iter().enumerate().filter(|(i, _)| !used[*i]).map(|(_, &t)| t));
        Some(new_terms)
    }

    /// `c·a·sin(u)^n + c·a·cos(u)^2·sin(u)^(n−2) = c·a·sin(u)^(n−2)` for any
    /// common factor `a` (docs/numerics.md §Simplification). Each square of a
    /// sine or cosine in a term offers the term under the key `(u, cofactor)`,
    /// the cofactor being the term's other factors with that square taken
    /// out; a sine and a cosine under one key with one coefficient pair up.
    /// One hash-map pass: linear in the number of terms and their factors.
    #[allow(clippy::type_complexity)]
    fn pythagorean_pairs(
        &mut self,
        terms: &[ExprId],
        parts: &[(Num, Vec<(Trig, ExprId, i64)>, Vec<ExprId>)],
        used: &mut [bool],
        new_terms: &mut Vec<ExprId>,
    ) {
        // Per key, the unpaired sine term and cosine term (a canonical sum
        // has at most one of each: equal keys and kinds mean equal terms).
        let mut open: FxMap<(ExprId, Vec<ExprId>), [Option<usize>; 2]> = FxMap::default();
        // (the earlier term of a pair, the cofactor, the coefficient)
        let mut pairs: Vec<(usize, Vec<ExprId>, Num)> = Vec::new();
        for (i, &t) in terms.iter().enumerate() {
            let (c, trig, _) = &parts[i];
            if !trig.iter().any(|&(_, _, n)| n >= 2) {
                continue;
            }
            let factors = self.term_factors(t);
            for j in 0..factors.len() {
                if used[i] {
                    break;
                }
                let Some((kind, u, n)) = self.trig_power(factors[j]).filter(|&(_, _, n)| n >= 2) else {
                    continue;
                };
                let mut cofactor = factors.clone();
                if n == 2 {
                    cofactor.remove(j);
                } else {
                    let b = self.trig_node(kind, u);
                    cofactor[j] = self.powi(b, n - 2);
                }
                let slot = usize::from(kind == Trig::Sin);
                let entry = open.entry((u, cofactor.clone())).or_default();
                match entry[1 - slot] {
                    Some(k) if !used[k] && parts[k].0 == *c => {
                        entry[1 - slot] = None;
                        used[i] = true;
                        used[k] = true;
                        pairs.push((k, cofactor, *c));
                    }
                    _ => {
                        if entry[slot].is_none_or(|k| used[k]) {
                            entry[slot] = Some(i);
                        }
                    }
                }
            }
        }
        // Built in the order of the terms, so that the printed order of a
        // sum (which follows node ids) follows the order of what it came from.
        pairs.sort_by_key(|&(k, ..)| k);
        for (_, cofactor, c) in pairs {
            let r = self.mul(&cofactor);
            new_terms.push(self.scale(c, r));
        }
    }

    /// The factors of a term without its numeric coefficient, in canonical order.
    fn term_factors(&mut self, t: ExprId) -> Vec<ExprId> {
        match self.split_coeff(t).1 {
            None => vec![],
            Some(r) => match self.node(r) {
                Node::Mul(fs) => fs.to_vec(),
                _ => vec![r],
            },
        }
    }

    /// `sin(u)^n` or `cos(u)^n` with a positive integer `n`, as its parts.
    fn trig_power(&self, f: ExprId) -> Option<(Trig, ExprId, i64)> {
        let (b, n) = match self.node(f) {
            Node::Pow(b, x) => (*b, self.as_num(*x).and_then(Num::as_int)?),
            _ => (f, 1),
        };
        match self.node(b) {
            Node::Func(Func::Sin, u) if n > 0 => Some((Trig::Sin, *u, n)),
            Node::Func(Func::Cos, u) if n > 0 => Some((Trig::Cos, *u, n)),
            _ => None,
        }
    }

    fn trig_node(&mut self, kind: Trig, u: ExprId) -> ExprId {
        self.func(if kind == Trig::Sin { Func::Sin } else { Func::Cos }, u)
    }

    /// `cos u cos w ± sin u sin w = cos(u ∓ w)` and
    /// `sin u cos w ± cos u sin w = sin(u ± w)` between terms whose only
    /// trigonometric factors are these two and that agree in everything else.
    #[allow(clippy::type_complexity)]
    fn angle_sum_pairs(
        &mut self,
        parts: &[(Num, Vec<(Trig, ExprId, i64)>, Vec<ExprId>)],
        used: &mut [bool],
        new_terms: &mut Vec<ExprId>,
    ) {
        // Key: (class, u, w, rest). Class 1: cos·cos / sin·sin; class 2:
        // sin·cos / cos·sin.
        type Key = (u8, ExprId, ExprId, ExprId);
        let mut buckets: FxMap<Key, Vec<(usize, bool, Num)>> = FxMap::default();
        let mut keys: Vec<Key> = Vec::new();
        for (i, (c, trig, other)) in parts.iter().enumerate() {
            if used[i] {
                continue;
            }
            let [(k1, u1, 1), (k2, u2, 1)] = trig.as_slice() else { continue };
            if u1 == u2 {
                continue;
            }
            let rest = self.mul(other);
            let ((k1, u1), (k2, u2)) = if u1 < u2 { ((*k1, *u1), (*k2, *u2)) } else { ((*k2, *u2), (*k1, *u1)) };
            let class = if k1 == k2 { 1u8 } else { 2u8 };
            let key = (class, u1, u2, rest);
            buckets
                .entry(key)
                .or_insert_with(|| {
                    keys.push(key);
                    Vec::new()
                })
                .push((i, k1 == Trig::Sin, *c));
        }
        for key in keys {
            let (class, u, w, rest) = key;
            let list = buckets[&key].clone();
            for a in 0..list.len() {
                let (ia, fa, ca) = list[a];
                if used[ia] {
                    continue;
                }
                for &(ib, fb, cb) in &list[a + 1..] {
                    if used[ib] || fa == fb {
                        continue;
                    }
                    let same = ca == cb;
                    let opposite = ca == cb.neg();
                    if !same && !opposite {
                        continue;
                    }
                    let term = if class == 1 {
                        // `c` belongs to the cos·cos term.
                        let c = if fa { cb } else { ca };
                        let nw = self.neg(w);
                        let arg = if same { self.add(&[u, nw]) } else { self.add(&[u, w]) };
                        let f = self.func(Func::Cos, arg);
                        let cn = self.num(c);
                        self.mul(&[cn, f, rest])
                    } else {
                        // `fa`: the entry is sin u·cos w.
                        let c = if fa { ca } else { cb };
                        let nw = self.neg(w);
                        let arg = if same { self.add(&[u, w]) } else { self.add(&[u, nw]) };
                        let f = self.func(Func::Sin, arg);
                        let cn = self.num(c);
                        self.mul(&[cn, f, rest])
                    };
                    used[ia] = true;
                    used[ib] = true;
                    new_terms.push(term);
                    break;
                }
            }
        }
    }

    /// Regroups `e` for reading: within each sum, terms with the same
    /// state-dependent part are collected and their parameter coefficients
    /// factored. The result is equal to `e` but may not be canonical; use it
    /// for display only.
    pub fn tidy(&mut self, e: ExprId) -> ExprId {
        let mut memo = FxMap::default();
        self.rebuild(e, &mut memo, &mut |a, node| match node {
            Node::Add(ts) => Some(a.tidy_sum(ts)),
            _ => None,
        })
    }

    fn is_state_dependent(&self, e: ExprId) -> bool {
        self.depends(e, |k| !matches!(k, SymKind::Param(_) | SymKind::Pi))
    }

    fn tidy_sum(&mut self, ts: &[ExprId]) -> ExprId {
        let mut order: Vec<ExprId> = Vec::new();
        let mut groups: HashMap<ExprId, Vec<ExprId>> = HashMap::new();
        for &t in ts {
            let factors = match self.node(t) {
                Node::Mul(fs) => fs.to_vec(),
                _ => vec![t],
            };
            let (state, coeff): (Vec<ExprId>, Vec<ExprId>) =
                factors.into_iter().partition(|&f| self.is_state_dependent(f));
            let s = self.mul(&state);
            let c = self.mul(&coeff);
            groups
                .entry(s)
                .or_insert_with(|| {
                    order.push(s);
                    Vec::new()
                })
                .push(c);
        }
        if order.len() == ts.len() && order.len() > 1 {
            // Nothing to group; still factor what all terms share.
            return self.factor_common(ts);
        }
        let mut out = Vec::new();
        for s in order {
            let cs = groups.remove(&s).unwrap_or_default();
            let c = if cs.len() == 1 { cs[0] } else { self.factor_common(&cs) };
            out.push(if self.is_one(s) { c } else { self.mul_raw(&[c, s]) });
        }
        if out.len() == 1 {
            out[0]
        } else {
            self.add_raw(&out)
        }
    }

    /// `Σ ts` with the symbolic factors that every term shares pulled out
    /// (`a·b + a·c = a·(b + c)`), and a shared rational coefficient too.
    fn factor_common(&mut self, ts: &[ExprId]) -> ExprId {
        let sum = self.add(ts);
        let terms = match self.node(sum) {
            Node::Add(xs) => xs.to_vec(),
            _ => return sum,
        };
        let mut common: Option<HashMap<ExprId, Num>> = None;
        let mut coeffs = Vec::new();
        for &t in &terms {
            let (c, rest) = self.split_coeff(t);
            coeffs.push(c);
            let mut here = HashMap::new();
            if let Some(r) = rest {
                let fs = match self.node(r) {
                    Node::Mul(fs) => fs.to_vec(),
                    _ => vec![r],
                };
                for f in fs {
                    let (b, x) = match self.node(f) {
                        Node::Pow(b, x) => (*b, self.as_num(*x)),
                        _ => (f, Some(Num::ONE)),
                    };
                    if let Some(x) = x {
                        here.insert(b, x);
                    }
                }
            }
            common = Some(match common {
                None => here,
                Some(prev) => prev
                    .into_iter()
                    .filter_map(|(b, x)| {
                        // Shared powers of one sign: the one nearest to zero.
                        let &y = here.get(&b)?;
                        if x.is_negative() != y.is_negative() {
                            return None;
                        }
                        let nearer = if x.is_negative() { x.cmp_value(y).is_ge() } else { x.cmp_value(y).is_le() };
                        Some((b, if nearer { x } else { y }))
                    })
                    .collect(),
            });
        }
        let common = common.unwrap_or_default();
        // A shared rational coefficient, such as the 1/2 of m1/2 + m2/2.
        let shared = shared_coefficient(&coeffs);
        if common.is_empty() && shared.is_one() {
            return sum;
        }
        let mut factor_list: Vec<ExprId> = common
            .iter()
            .map(|(&b, &x)| {
                let x = self.num(x);
                self.pow(b, x)
            })
            .collect();
        factor_list.sort();
        let f = self.mul(&factor_list);
        let inv = self.powi(f, -1);
        let inv_shared = self.num(shared.recip().unwrap_or(Num::ONE));
        let quotients: Vec<ExprId> = terms.iter().map(|&t| self.mul(&[t, inv, inv_shared])).collect();
        let inner = self.add_raw(&quotients);
        let mut parts = vec![];
        if !shared.is_one() {
            parts.push(self.num(shared));
        }
        if !self.is_one(f) {
            parts.push(f);
        }
        parts.push(inner);
        if parts.len() == 1 {
            inner
        } else {
            self.mul_raw(&parts)
        }
    }
}

/// The largest rational that divides every coefficient exactly (for
/// rationals: gcd of numerators over lcm of denominators), with the sign of
/// the first one when all are negative; 1 when any coefficient is inexact.
fn shared_coefficient(cs: &[Num]) -> Num {
    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 {
            a.abs()
        } else {
            gcd(b, a % b)
        }
    }
    let mut n = 0i64;
    let mut d = 1i64;
    for c in cs {
        let Num::Rat(p, q) = *c else { return Num::ONE };
        n = gcd(n, p);
        let g = gcd(d, q);
        d = match (d / g).checked_mul(q) {
            Some(x) => x,
            None => return Num::ONE,
        };
    }
    if n == 0 {
        return Num::ONE;
    }
    let sign = if cs.iter().all(|c| c.is_negative()) { -1 } else { 1 };
    Num::rat(sign * n as i128, d as i128)
}
