//! The order in which the nodes of rolled sums are computed: a [`Schedule`] of
//! single nodes and loops. Every evaluator (the tree-walking one of `sym`, the
//! portable register programs, the Cranelift translator) follows it.
//!
//! A node belongs to the innermost loop whose index it reads (through a
//! [`Node::Data`] row or the index symbol itself); nodes that read no index are
//! computed once, before any loop that needs them. All sums over the same
//! index share one loop with one accumulator each: the gradient of
//! `sum(i in 0..M, ℓ(w, x[i]))` is one pass over the data computing every
//! component, as a hand-written loop would.

use super::{Arena, ExprId, FxMap, Node, Row, SymId, SymKind};

/// One step of a schedule.
#[derive(Clone, Debug)]
pub enum Step {
    /// Compute this node from values already computed.
    Node(ExprId),
    Loop(Loop),
}

/// A loop over `lo..hi` of an index that computes several sums at once.
#[derive(Clone, Debug)]
pub struct Loop {
    pub index: SymId,
    pub lo: i64,
    pub hi: i64,
    /// Each sum node with its body: after the loop the node holds the total.
    pub sums: Vec<(ExprId, ExprId)>,
    /// What each pass computes, in order.
    pub body: Vec<Step>,
}

/// The evaluation order of a set of roots.
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    pub steps: Vec<Step>,
}

impl Schedule {
    /// The number of nodes computed (inside loops counted once).
    pub fn node_count(&self) -> usize {
        fn count(steps: &[Step]) -> usize {
            steps
                .iter()
                .map(|s| match s {
                    Step::Node(_) => 1,
                    Step::Loop(l) => l.sums.len() + count(&l.body),
                })
                .sum()
        }
        count(&self.steps)
    }

    /// Every node, loops flattened, in schedule order.
    pub fn nodes(&self) -> Vec<ExprId> {
        fn walk(steps: &[Step], out: &mut Vec<ExprId>) {
            for s in steps {
                match s {
                    Step::Node(e) => out.push(*e),
                    Step::Loop(l) => {
                        walk(&l.body, out);
                        out.extend(l.sums.iter().map(|(s, _)| *s));
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.steps, &mut out);
        out
    }

    /// Whether any step is a loop.
    pub fn has_loops(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Loop(_)))
    }
}

impl Arena {
    /// The schedule of `roots`: nodes in topological order, rolled sums as loops.
    pub fn schedule(&self, roots: &[ExprId]) -> Schedule {
        self.schedule_within(roots, None)
    }

    /// The schedule of `roots` evaluated inside a loop over `outer` (a
    /// segment's index, whose value the caller provides): nodes that read it
    /// are computed at the top, as any other.
    pub fn schedule_within(&self, roots: &[ExprId], outer: Option<SymId>) -> Schedule {
        let order = self.topo_order(roots);
        if !order.iter().any(|&e| matches!(self.node(e), Node::Sum(..))) {
            return Schedule { steps: order.into_iter().map(Step::Node).collect() };
        }
        // The free indices of every node: few, and usually none.
        let mut free: FxMap<ExprId, Vec<SymId>> = FxMap::default();
        for &e in &order {
            let f: Vec<SymId> = match self.node(e) {
                Node::Sym(s) if Some(*s) == outer => vec![],
                Node::Data { row: Row::Index(s, _), .. } | Node::Member { row: Row::Index(s, _), .. }
                    if Some(*s) == outer =>
                {
                    vec![]
                }
                Node::Sym(s) if matches!(self.symbol(*s).kind, SymKind::Index { .. }) => vec![*s],
                Node::Data { row: Row::Index(s, _), .. } | Node::Member { row: Row::Index(s, _), .. } => vec![*s],
                Node::Sum(i, b) => free.get(b).map_or(vec![], |f| f.iter().copied().filter(|x| x != i).collect()),
                _ => {
                    let mut f: Vec<SymId> = Vec::new();
                    for c in self.children(e) {
                        if let Some(cf) = free.get(&c) {
                            f.extend(cf);
                        }
                    }
                    f.sort();
                    f.dedup();
                    f
                }
            };
            if !f.is_empty() {
                free.insert(e, f);
            }
        }
        let mut b = ScheduleBuilder { arena: self, free: &free, done: Default::default() };
        Schedule { steps: b.scope(&order, &[]) }
    }
}

struct ScheduleBuilder<'a> {
    arena: &'a Arena,
    free: &'a FxMap<ExprId, Vec<SymId>>,
    done: std::collections::HashSet<ExprId, std::hash::BuildHasherDefault<super::FxHasher>>,
}

impl ScheduleBuilder<'_> {
    fn free(&self, e: ExprId) -> &[SymId] {
        self.free.get(&e).map_or(&[], |f| f.as_slice())
    }

    /// Whether `e` is computed in the scope whose bound indices are `bound`
    /// and whose own index is the last of them (or at the top when empty).
    fn in_scope(&self, e: ExprId, bound: &[SymId]) -> bool {
        let f = self.free(e);
        f.iter().all(|x| bound.contains(x)) && bound.last().is_none_or(|own| f.contains(own))
    }

    /// The steps of one scope: `nodes` (sorted by id) are its candidates.
    fn scope(&mut self, nodes: &[ExprId], bound: &[SymId]) -> Vec<Step> {
        let mut steps = Vec::new();
        for &e in nodes {
            self.emit(e, nodes, bound, &mut steps);
        }
        steps
    }

    fn emit(&mut self, e: ExprId, nodes: &[ExprId], bound: &[SymId], steps: &mut Vec<Step>) {
        if self.done.contains(&e) || !self.in_scope(e, bound) {
            return;
        }
        let Node::Sum(index, _) = *self.arena.node(e) else {
            self.done.insert(e);
            steps.push(Step::Node(e));
            return;
        };
        // Every sum over this index in this scope that does not need another
        // of them joins the loop.
        let candidates: Vec<ExprId> = nodes
            .iter()
            .copied()
            .filter(|&s| {
                !self.done.contains(&s)
                    && matches!(self.arena.node(s), Node::Sum(i, _) if *i == index)
                    && self.in_scope(s, bound)
            })
            .collect();
        let mut members = Vec::new();
        let mut deps: Vec<ExprId> = Vec::new();
        let mut inner: Vec<ExprId> = Vec::new();
        for &s in &candidates {
            let (d, i) = self.split(s, index, bound);
            if s != e && d.iter().any(|x| candidates.contains(x)) {
                continue;
            }
            members.push(s);
            deps.extend(d);
            inner.extend(i);
        }
        deps.sort();
        deps.dedup();
        for d in deps {
            self.emit(d, nodes, bound, steps);
        }
        inner.sort();
        inner.dedup();
        let mut scope: Vec<SymId> = bound.to_vec();
        scope.push(index);
        // What the loop computes lives only inside it.
        let outer = std::mem::take(&mut self.done);
        let body = self.scope(&inner, &scope);
        self.done = outer;
        let SymKind::Index { lo, hi } = self.arena.symbol(index).kind else { unreachable!("a sum's index") };
        let mut sums = Vec::new();
        for s in members {
            let Node::Sum(_, b) = *self.arena.node(s) else { unreachable!() };
            // A body that reads no index is computed outside; the loop still adds it up.
            if !self.done.contains(&b) && self.in_scope(b, bound) {
                self.emit(b, nodes, bound, steps);
            }
            self.done.insert(s);
            sums.push((s, b));
        }
        steps.push(Step::Loop(Loop { index, lo, hi, sums, body }));
    }

    /// The nodes under the body of sum `s` over `index`: those computed in
    /// this scope before the loop (`deps`, sums among them) and those computed
    /// inside it (`inner`).
    fn split(&self, s: ExprId, index: SymId, bound: &[SymId]) -> (Vec<ExprId>, Vec<ExprId>) {
        let Node::Sum(_, body) = *self.arena.node(s) else { unreachable!() };
        let (mut deps, mut inner) = (Vec::new(), Vec::new());
        let mut seen: std::collections::HashSet<ExprId, std::hash::BuildHasherDefault<super::FxHasher>> =
            Default::default();
        let mut stack = vec![body];
        while let Some(n) = stack.pop() {
            if !seen.insert(n) || self.done.contains(&n) {
                continue;
            }
            if self.free(n).contains(&index) {
                inner.push(n);
                stack.extend(self.arena.children(n));
            } else if self.in_scope(n, bound) {
                deps.push(n);
                stack.extend(self.arena.children(n));
            }
        }
        (deps, inner)
    }
}
