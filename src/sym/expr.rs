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

use super::num::Num;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// A fast, non-cryptographic hasher for ids and nodes (the Fx hash of rustc):
/// the memo tables hash millions of small keys and need no DoS resistance.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.hash = (self.hash.rotate_left(5) ^ i).wrapping_mul(FX_SEED);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` with [`FxHasher`].
pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The most nodes an arena holds. Past it, every new node is a NaN
/// placeholder and [`Arena::overflowed`] is set, so a runaway derivation ends
/// in an error rather than in exhausted memory.
pub const MAX_NODES: usize = 4_000_000;

/// The most operands all sums and products of one arena may hold together
/// (memory, where [`MAX_NODES`] counts nodes): 32 million, about 256 MB with
/// the memo table. Past it the arena overflows as past [`MAX_NODES`].
pub const MAX_OPERANDS: usize = 32_000_000;

/// The id of a node in an [`Arena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExprId(pub u32);

/// The id of a symbol in an [`Arena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SymId(pub u32);

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
}

/// A named symbol.
#[derive(Clone, Debug)]
pub struct Symbol {
    /// The name as written in `.lag` syntax: `th1`, `q[3]`, `q[3]'`.
    pub name: String,
    pub kind: SymKind,
}

/// The arena of hash-consed expression nodes and the table of symbols.
#[derive(Clone, Debug, Default)]
pub struct Arena {
    nodes: Vec<Node>,
    /// Per node, a 64-bit summary of the symbols it contains (bit `id % 64`):
    /// a clear bit proves that a derivative is zero without a lookup.
    masks: Vec<u64>,
    memo: FxMap<Node, ExprId>,
    symbols: Vec<Symbol>,
    /// Set when a constructor was refused a node past [`MAX_NODES`]; the
    /// expression built since then is meaningless and must be reported.
    overflowed: bool,
    poison: Option<ExprId>,
    node_limit: Option<usize>,
    /// Operands of every sum and product so far (see [`MAX_OPERANDS`]).
    operands: usize,
    pub(crate) diff_cache: FxMap<(ExprId, SymId), ExprId>,
    pub(crate) expand_cache: FxMap<ExprId, ExprId>,
    /// Nodes created by expansion so far (see `EXPAND_TOTAL`).
    pub(crate) expand_spent: usize,
    pub(crate) trig_cache: FxMap<ExprId, ExprId>,
}

impl Arena {
    pub fn new() -> Arena {
        Arena::default()
    }

    /// Whether a constructor hit [`MAX_NODES`] (or the limit of
    /// [`Arena::with_node_limit`]).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// An arena that holds at most `limit` nodes and `8 × limit` operands
    /// (for tests of the limits).
    pub fn with_node_limit(limit: usize) -> Arena {
        Arena { node_limit: Some(limit), ..Arena::default() }
    }

    fn limit(&self) -> usize {
        self.node_limit.unwrap_or(MAX_NODES)
    }

    /// [`MAX_OPERANDS`], or eight per node of [`Arena::with_node_limit`].
    fn operand_limit(&self) -> usize {
        self.node_limit.map_or(MAX_OPERANDS, |n| 8 * n)
    }

    /// False only if `e` certainly does not contain `s`.
    pub fn may_contain(&self, e: ExprId, s: SymId) -> bool {
        self.masks[e.0 as usize] & (1u64 << (s.0 % 64)) != 0
    }

    /// Number of nodes in the arena.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, e: ExprId) -> &Node {
        &self.nodes[e.0 as usize]
    }

    pub fn symbol(&self, s: SymId) -> &Symbol {
        &self.symbols[s.0 as usize]
    }

    pub fn symbols(&self) -> impl Iterator<Item = (SymId, &Symbol)> {
        self.symbols.iter().enumerate().map(|(i, s)| (SymId(i as u32), s))
    }

    /// Declares a symbol; returns its id.
    pub fn new_symbol(&mut self, name: impl Into<String>, kind: SymKind) -> SymId {
        self.symbols.push(Symbol { name: name.into(), kind });
        SymId(self.symbols.len() as u32 - 1)
    }

    /// Finds a symbol by kind.
    pub fn find_symbol(&self, kind: SymKind) -> Option<SymId> {
        self.symbols().find(|(_, s)| s.kind == kind).map(|(id, _)| id)
    }

    fn intern(&mut self, node: Node) -> ExprId {
        use std::collections::hash_map::Entry;
        let full = self.nodes.len() >= self.limit() || self.operands > self.operand_limit();
        // One hash per node, found or new.
        let slot = match self.memo.entry(node) {
            Entry::Occupied(o) => return *o.get(),
            Entry::Vacant(v) => v,
        };
        if full {
            self.overflowed = true;
            if let Some(p) = self.poison {
                return p;
            }
        }
        let id = ExprId(self.nodes.len() as u32);
        let masks = &self.masks;
        let mask = match slot.key() {
            Node::Num(_) => 0,
            Node::Sym(s) => 1u64 << (s.0 % 64),
            Node::Add(xs) | Node::Mul(xs) => xs.iter().fold(0, |m, x| m | masks[x.0 as usize]),
            Node::Pow(a, b) | Node::Atan2(a, b) => masks[a.0 as usize] | masks[b.0 as usize],
            Node::Func(_, a) => masks[a.0 as usize],
        };
        self.masks.push(mask);
        if self.overflowed {
            self.poison = Some(id);
            self.nodes.push(Node::Num(Num::Float(f64::NAN)));
            return id;
        }
        if let Node::Add(xs) | Node::Mul(xs) = slot.key() {
            self.operands += xs.len();
        }
        self.nodes.push(slot.key().clone());
        slot.insert(id);
        id
    }

    pub fn num(&mut self, n: Num) -> ExprId {
        self.intern(Node::Num(n))
    }

    pub fn int(&mut self, n: i64) -> ExprId {
        self.num(Num::int(n))
    }

    pub fn float(&mut self, x: f64) -> ExprId {
        self.num(Num::float(x))
    }

    pub fn sym(&mut self, s: SymId) -> ExprId {
        self.intern(Node::Sym(s))
    }

    /// A product node exactly as given, for display forms that the canonical
    /// constructors would distribute again (`(m1 + m2)/2`).
    pub fn mul_raw(&mut self, factors: &[ExprId]) -> ExprId {
        match factors.len() {
            0 => self.int(1),
            1 => factors[0],
            _ => self.intern(Node::Mul(factors.into())),
        }
    }

    /// A sum node exactly as given; see [`Arena::mul_raw`].
    pub fn add_raw(&mut self, terms: &[ExprId]) -> ExprId {
        match terms.len() {
            0 => self.int(0),
            1 => terms[0],
            _ => self.intern(Node::Add(terms.into())),
        }
    }

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
                    let rest: Box<[ExprId]> = fs[1..].into();
                    (n, Some(self.intern(Node::Mul(rest))))
                }
                _ => (Num::ONE, Some(e)),
            },
            _ => (Num::ONE, Some(e)),
        }
    }

    /// Splits a factor into base and exponent.
    fn split_pow(&mut self, e: ExprId) -> (ExprId, ExprId) {
        match self.node(e) {
            Node::Pow(b, x) => (*b, *x),
            _ => (e, self.int(1)),
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

    pub fn powi(&mut self, b: ExprId, n: i64) -> ExprId {
        let n = self.int(n);
        self.pow(b, n)
    }

    pub fn sqrt(&mut self, x: ExprId) -> ExprId {
        let h = self.num(Num::HALF);
        self.pow(x, h)
    }

    /// The canonical sum of `terms`.
    pub fn add(&mut self, terms: &[ExprId]) -> ExprId {
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
            _ => self.intern(Node::Add(out.into())),
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
                self.intern(Node::Mul(v.into()))
            }
            Node::Add(_) => {
                let c = self.num(c);
                self.mul(&[c, r])
            }
            _ => {
                let c = self.num(c);
                self.intern(Node::Mul(Box::new([c, r])))
            }
        }
    }

    /// The canonical product of `factors`.
    pub fn mul(&mut self, factors: &[ExprId]) -> ExprId {
        let mut coeff = Num::ONE;
        // (base, exponents) in the order the bases are met; products are
        // short, so a linear search beats hashing.
        let mut bases: Vec<(ExprId, Vec<ExprId>)> = Vec::with_capacity(factors.len());
        let mut stack: Vec<ExprId> = factors.iter().rev().copied().collect();
        while let Some(f) = stack.pop() {
            match self.node(f) {
                Node::Num(n) => coeff = coeff.mul(*n),
                Node::Mul(fs) => stack.extend(fs.iter().rev()),
                _ => {
                    let (b, x) = self.split_pow(f);
                    match bases.iter_mut().find(|(c, _)| *c == b) {
                        Some((_, xs)) => xs.push(x),
                        None => bases.push((b, vec![x])),
                    }
                }
            }
            if coeff.is_zero() {
                return self.int(0);
            }
        }
        let mut out: Vec<ExprId> = Vec::with_capacity(bases.len());
        let mut again: Vec<ExprId> = Vec::new();
        for (b, xs) in bases {
            let x = if xs.len() == 1 { xs[0] } else { self.add(&xs) };
            let p = self.pow(b, x);
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
                self.intern(Node::Mul(out.into()))
            }
        }
    }

    fn base_key(&self, f: ExprId) -> ExprId {
        match self.node(f) {
            Node::Pow(b, _) => *b,
            _ => f,
        }
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

    /// The children of a node, in order.
    pub fn children(&self, e: ExprId) -> Vec<ExprId> {
        match self.node(e) {
            Node::Num(_) | Node::Sym(_) => vec![],
            Node::Add(xs) | Node::Mul(xs) => xs.to_vec(),
            Node::Pow(a, b) | Node::Atan2(a, b) => vec![*a, *b],
            Node::Func(_, a) => vec![*a],
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
        self.topo_order(&[e]).into_iter().any(|n| match self.node(n) {
            Node::Sym(s) => pred(self.symbol(*s).kind),
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

impl fmt::Display for ExprId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_limit_ends_in_a_flag_not_in_exhausted_memory() {
        let mut a = Arena::with_node_limit(50);
        let x = a.new_symbol("x", SymKind::State(0));
        let x = a.sym(x);
        let mut e = x;
        for k in 1..200 {
            let c = a.int(k);
            let p = a.powi(x, k);
            let t = a.mul(&[c, p]);
            e = a.add(&[e, t]);
        }
        assert!(a.overflowed());
        assert!(a.len() <= 52, "{} nodes", a.len());
        // What was built past the limit evaluates to NaN, never to a wrong number.
        let env = crate::sym::Env::new(&a);
        assert!(a.eval(e, &env).is_nan());
    }

    #[test]
    fn the_operand_limit_catches_few_nodes_with_many_operands() {
        // 20 sums of 100 operands each: 2,000 operands in about 120 nodes.
        let mut a = Arena::with_node_limit(200);
        let xs: Vec<ExprId> = (0..100)
            .map(|i| {
                let s = a.new_symbol(format!("x{i}"), SymKind::State(i));
                a.sym(s)
            })
            .collect();
        for k in 1..=20 {
            let c = a.int(k);
            let mut terms = xs.clone();
            terms.push(c);
            let _ = a.add(&terms);
        }
        assert!(a.len() < 200, "the node limit alone would not be reached");
        assert!(a.overflowed(), "1,600 operands is the limit of an arena of 200 nodes");
    }

    #[test]
    fn below_the_limit_nothing_is_flagged() {
        let mut a = Arena::with_node_limit(1000);
        let x = a.new_symbol("x", SymKind::State(0));
        let x = a.sym(x);
        let two = a.int(2);
        let _ = a.pow(x, two);
        assert!(!a.overflowed());
    }
}
