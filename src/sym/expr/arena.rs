//! The arena: nodes stored once each through a memo table (interning), the table of symbols,
//! and the limits on nodes and operands past which an arena overflows.

use super::{DataTable, ExprId, Family, FxHasher, FxMap, Node, Row, SymId, SymKind, Symbol};
use crate::sym::num::Num;

/// The most nodes an arena holds. Past it, every new node is a NaN
/// placeholder and [`Arena::overflowed`] is set, so a runaway derivation ends
/// in an error rather than in exhausted memory.
pub const MAX_NODES: usize = 4_000_000;

/// The most operands all sums and products of one arena may hold together
/// (memory, where [`MAX_NODES`] counts nodes): 32 million, about 256 MB with
/// the memo table. Past it the arena overflows as past [`MAX_NODES`].
pub const MAX_OPERANDS: usize = 32_000_000;

/// The hash of a node in the memo table: that of [`ops_hash`] for sums and products, so
/// that [`Arena::intern_ops`] finds them from their operands.
fn node_hash(node: &Node) -> u64 {
    use std::hash::{Hash, Hasher};
    match node {
        Node::Add(xs) => ops_hash(false, xs),
        Node::Mul(xs) => ops_hash(true, xs),
        _ => {
            let mut h = FxHasher::default();
            node.hash(&mut h);
            h.finish()
        }
    }
}

/// The hash of a sum (`product` false) or a product of `xs`.
fn ops_hash(product: bool, xs: &[ExprId]) -> u64 {
    use std::hash::Hasher;
    let mut h = FxHasher::default();
    h.write_u64(if product { 0x9e37_79b9 } else { 0x7f4a_7c15 });
    for x in xs {
        h.write_u32(x.0);
    }
    h.finish()
}

/// The arena of hash-consed expression nodes and the table of symbols.
#[derive(Clone, Debug, Default)]
pub struct Arena {
    nodes: Vec<Node>,
    /// Per node, a 64-bit summary of the symbols it contains (bit `id % 64`):
    /// a clear bit proves that a derivative is zero without a lookup.
    masks: Vec<u64>,
    /// Every node's id with its hash ([`node_hash`]), kept so that growing the table does
    /// not read the nodes again; the node itself is in `nodes`.
    memo: hashbrown::HashTable<(u64, ExprId)>,
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
    /// For each large sum differentiated so far, which of its terms contain
    /// each symbol (see `Arena::diff`).
    pub(crate) term_index: FxMap<ExprId, FxMap<SymId, Vec<u32>>>,
    /// The data tables that [`Node::Data`] reads.
    tables: Vec<DataTable>,
    /// For each index symbol, its range as written (`0..M`).
    ranges: FxMap<SymId, String>,
    /// The families that [`Node::Member`] reads.
    families: Vec<Family>,
    /// For each member symbol of a family, the family and the member's index.
    member_of: FxMap<SymId, (u32, u32)>,
    /// Stand-in symbols for nodes (see [`Arena::placeholder`]), both ways.
    pub(crate) placeholders: FxMap<ExprId, SymId>,
    pub(crate) placeheld: FxMap<SymId, ExprId>,
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

    /// The placeholder every constructor returns once the arena has
    /// overflowed: derivation past the limits stops doing work (a product of
    /// thousands of factors would otherwise go on multiplying placeholders
    /// for minutes before its error is reported).
    pub(crate) fn poisoned(&self) -> Option<ExprId> {
        if self.overflowed {
            self.poison
        } else {
            None
        }
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

    pub(super) fn intern(&mut self, node: Node) -> ExprId {
        let full = self.nodes.len() >= self.limit() || self.operands > self.operand_limit();
        // One hash per node, found or new.
        let hash = node_hash(&node);
        let nodes = &self.nodes;
        if let Some(&(_, id)) = self.memo.find(hash, |&(h, id)| h == hash && nodes[id.0 as usize] == node) {
            return id;
        }
        if full {
            self.overflowed = true;
            if let Some(p) = self.poison {
                return p;
            }
        }
        let id = ExprId(self.nodes.len() as u32);
        let masks = &self.masks;
        let mask = match &node {
            Node::Num(_) => 0,
            Node::Sym(s) => 1u64 << (s.0 % 64),
            Node::Add(xs) | Node::Mul(xs) => xs.iter().fold(0, |m, x| m | masks[x.0 as usize]),
            Node::Pow(a, b) | Node::Atan2(a, b) => masks[a.0 as usize] | masks[b.0 as usize],
            Node::Func(_, a) | Node::Sum(_, a) => masks[a.0 as usize],
            Node::Data { row: Row::Index(s, _), .. } | Node::Member { row: Row::Index(s, _), .. } => 1u64 << (s.0 % 64),
            Node::Data { row: Row::At(_), .. } | Node::Member { row: Row::At(_), .. } => 0,
        };
        self.masks.push(mask);
        if self.overflowed {
            self.poison = Some(id);
            self.nodes.push(Node::Num(Num::Float(f64::NAN)));
            return id;
        }
        if let Node::Add(xs) | Node::Mul(xs) = &node {
            self.operands += xs.len();
        }
        self.nodes.push(node);
        self.memo.insert_unique(hash, (hash, id), |&(h, _)| h);
        id
    }

    /// The sum (`product` false) or product of `xs`, canonical as given, interned without
    /// boxing the operands when the node exists already.
    pub(super) fn intern_ops(&mut self, product: bool, xs: Vec<ExprId>) -> ExprId {
        let hash = ops_hash(product, &xs);
        let nodes = &self.nodes;
        let same = |&(h, id): &(u64, ExprId)| {
            h == hash
                && match &nodes[id.0 as usize] {
                    Node::Mul(ys) => product && **ys == *xs,
                    Node::Add(ys) => !product && **ys == *xs,
                    _ => false,
                }
        };
        if let Some(&(_, id)) = self.memo.find(hash, same) {
            return id;
        }
        let xs = xs.into_boxed_slice();
        self.intern(if product { Node::Mul(xs) } else { Node::Add(xs) })
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

    /// Adds a data table; returns its number for [`Arena::data`].
    pub fn add_table(&mut self, t: DataTable) -> u32 {
        self.tables.push(t);
        self.tables.len() as u32 - 1
    }

    pub fn table(&self, k: u32) -> &DataTable {
        &self.tables[k as usize]
    }

    pub fn tables(&self) -> &[DataTable] {
        &self.tables
    }

    /// Replaces the numbers of table `k` by as many others (`--data` with a file
    /// of the same size).
    pub fn set_table_values(&mut self, k: u32, values: std::sync::Arc<[f64]>) {
        assert_eq!(values.len(), self.tables[k as usize].values.len(), "same size");
        self.tables[k as usize].values = values;
    }

    /// Column `col` of row `row` of table `table`.
    pub fn data(&mut self, table: u32, row: Row, col: u32) -> ExprId {
        self.intern(Node::Data { table, row, col })
    }

    /// Adds a family of variables whose members are `members`, in index
    /// order; returns its number for [`Arena::member`].
    pub fn add_family(&mut self, name: impl Into<String>, members: Vec<SymId>) -> u32 {
        let f = self.families.len() as u32;
        for (k, &s) in members.iter().enumerate() {
            self.member_of.insert(s, (f, k as u32));
        }
        self.families.push(Family { name: name.into(), members, derivative: None });
        f
    }

    /// Records that family `d` holds the time derivatives of family `f`'s members.
    pub fn set_family_derivative(&mut self, f: u32, d: u32) {
        self.families[f as usize].derivative = Some(d);
    }

    pub fn family(&self, f: u32) -> &Family {
        &self.families[f as usize]
    }

    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The family a symbol is a member of, and its index there.
    pub fn member_of(&self, s: SymId) -> Option<(u32, u32)> {
        self.member_of.get(&s).copied()
    }

    /// Member `row` of family `f`: its symbol for a fixed row, a
    /// [`Node::Member`] for a rolled index.
    pub fn member(&mut self, f: u32, row: Row) -> ExprId {
        match row {
            Row::At(k) => {
                let s = self.families[f as usize].members[k as usize];
                self.sym(s)
            }
            Row::Index(..) => self.intern(Node::Member { family: f, row }),
        }
    }

    /// A symbol that stands for node `e` (the same one each time), so that
    /// derivatives by a rolled sum or by a member at a rolled index can be
    /// taken as by any symbol; [`Arena::unhold`] puts the nodes back.
    pub fn placeholder(&mut self, e: ExprId) -> SymId {
        if let Some(&s) = self.placeholders.get(&e) {
            return s;
        }
        let s = self.new_symbol(format!("#{}", e.0), SymKind::Param(usize::MAX));
        self.placeholders.insert(e, s);
        self.placeheld.insert(s, e);
        s
    }

    /// A new loop index named `name` running over `lo..hi`; `range` is the
    /// range as written, for printing.
    pub fn new_index(&mut self, name: &str, lo: i64, hi: i64, range: String) -> SymId {
        let s = self.new_symbol(name, SymKind::Index { lo, hi });
        self.ranges.insert(s, range);
        s
    }

    /// The range of an index symbol as written.
    pub fn range_text(&self, s: SymId) -> String {
        match (self.ranges.get(&s), self.symbol(s).kind) {
            (Some(r), _) => r.clone(),
            (None, SymKind::Index { lo, hi }) => format!("{lo}..{hi}"),
            (None, _) => String::new(),
        }
    }

    /// `sum(index in lo..hi, body)`, canonical: factors of a product that do
    /// not contain the index come out of the sum, and a body without it is
    /// multiplied by the number of terms.
    pub fn sum_over(&mut self, index: SymId, body: ExprId) -> ExprId {
        let SymKind::Index { lo, hi } = self.symbol(index).kind else { panic!("sum_over needs an index symbol") };
        if hi <= lo || self.is_zero(body) {
            return self.int(0);
        }
        if !self.contains_index(body, index) {
            let n = self.int(hi - lo);
            return self.mul(&[n, body]);
        }
        if let Node::Mul(fs) = self.node(body).clone() {
            let (outside, inside): (Vec<ExprId>, Vec<ExprId>) =
                fs.iter().partition(|&&f| !self.contains_index(f, index));
            if !outside.is_empty() {
                let inner = self.mul(&inside);
                let s = self.intern(Node::Sum(index, inner));
                let mut all = outside;
                all.push(s);
                return self.mul(&all);
            }
        }
        self.intern(Node::Sum(index, body))
    }

    /// Whether `e` reads the index `s` (exact, unlike [`Arena::may_contain`]).
    pub fn contains_index(&self, e: ExprId, s: SymId) -> bool {
        if !self.may_contain(e, s) {
            return false;
        }
        self.topo_order(&[e]).into_iter().any(|n| match self.node(n) {
            Node::Sym(x) => *x == s,
            Node::Data { row: Row::Index(x, _), .. } | Node::Member { row: Row::Index(x, _), .. } => *x == s,
            _ => false,
        })
    }

    /// `Node::Sum(index, body)` exactly as given: a loop over the index whose
    /// body the compiled kernels store per row rather than add up.
    pub fn sum_raw(&mut self, index: SymId, body: ExprId) -> ExprId {
        self.intern(Node::Sum(index, body))
    }

    /// A product node exactly as given, for display forms that the canonical
    /// constructors would distribute again (`(m1 + m2)/2`).
    pub fn mul_raw(&mut self, factors: &[ExprId]) -> ExprId {
        match factors.len() {
            0 => self.int(1),
            1 => factors[0],
            _ => self.intern_ops(true, factors.to_vec()),
        }
    }

    /// A sum node exactly as given; see [`Arena::mul_raw`].
    pub fn add_raw(&mut self, terms: &[ExprId]) -> ExprId {
        match terms.len() {
            0 => self.int(0),
            1 => terms[0],
            _ => self.intern_ops(false, terms.to_vec()),
        }
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
