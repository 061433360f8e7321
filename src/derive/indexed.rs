//! Derivation over families read at rolled indices: the equations of a lattice
//! derived once for a general member `k` and once for each boundary case, as a
//! textbook writes them, rather than once per coordinate (docs/numerics.md
//! §Indexed derivation).
//!
//! A long `sum(i in a..b, body)` over family members is kept by the lowering as
//! one rolled sum whose body reads members at `i + o`. The derivative of such a
//! sum by member `k` of a family is `∂body/∂u[i+o]` at `i = k − o`, for each
//! offset `o` the body reads, where `a ≤ k − o < b`: a *range piece* over rows
//! `a+o .. b+o`. Terms outside rolled sums give *point pieces* for the members
//! they name. Cutting the rows at the ends of every piece gives segments over
//! which the same pieces apply: one expression in a segment index `k` per long
//! segment, one concrete expression per short one. Their number grows with the
//! number of distinct offsets and boundary terms, never with the family's length.
//!
//! The path applies to Lagrangian models whose momenta give a constant band
//! mass matrix (lattices, particles, a finite-element string), without temperature, forces or data, and
//! to methods that need the equations of motion alone; every other model and
//! method has its rolled sums written out ([`crate::sym::Arena::unroll_members`])
//! and is derived per coordinate.

use super::{Extras, LagrangianEquations};
use crate::model::{Model, ModelKind};
use crate::sym::{Arena, ExprId, FxMap, Node, Row, SymId, SymKind};
use std::collections::HashMap;
use std::ops::Range;

/// Segments no longer than this are written out row by row.
const SHORT: usize = 2;

/// Rows of a family-valued quantity that share one expression.
#[derive(Clone, Debug)]
pub struct Segment {
    /// The rows (variable indices) the segment covers.
    pub rows: Range<usize>,
    /// For a segment kept as a loop: its index (of kind [`SymKind::Index`],
    /// running over member indices), and the variable index of member 0 of its
    /// family, so that row `= base + k`. `None` for one concrete row.
    pub index: Option<(SymId, usize)>,
    /// The expression: in the index for a loop, concrete otherwise.
    pub expr: ExprId,
}

impl Segment {
    /// The concrete expression of row `row` (inside the segment).
    pub fn at(&self, a: &mut Arena, row: usize) -> ExprId {
        match self.index {
            Some((k, base)) => a.at_index(self.expr, k, (row - base) as i64),
            None => self.expr,
        }
    }
}

/// The equations of a Lagrangian model with indexed structure.
#[derive(Clone, Debug)]
pub struct Indexed {
    /// `p = ∂L/∂q'`, by rows.
    pub momenta: Vec<Segment>,
    /// The diagonal of the constant mass matrix.
    pub mass: Vec<Segment>,
    /// The constant entries above the diagonal, `M[r][r + offset]` for the rows `r` of each
    /// segment (those below mirror them); empty for a diagonal `M`.
    pub coupling: Vec<(usize, Segment)>,
    /// `f` of `M q'' = f`.
    pub forcing: Vec<Segment>,
    /// What the kernels compute: `q'' = f / m` for a diagonal `M`; `f` itself otherwise,
    /// solved with `M`'s factor (docs/numerics.md §Structure of the mass matrix).
    pub acceleration: Vec<Segment>,
}

impl Indexed {
    /// Whether `M` is diagonal (else a band, solved with its factor).
    pub fn diagonal(&self) -> bool {
        self.coupling.is_empty()
    }

    /// The half-bandwidth of `M`.
    pub fn band(&self) -> usize {
        self.coupling.iter().map(|(o, _)| *o).max().unwrap_or(0)
    }

    /// `M` at the parameters of `env`, its upper band row by row (the layout of
    /// [`crate::integrate::symband`]). Every entry is a constant.
    pub fn band_values(&self, a: &Arena, env: &crate::sym::Env) -> Vec<f64> {
        let n = self.mass.last().map_or(0, |s| s.rows.end);
        let b = self.band();
        let mut out = vec![0.0; crate::integrate::symband::band_len(n, b)];
        for seg in &self.mass {
            let m = a.eval(seg.expr, env);
            for r in seg.rows.clone() {
                out[crate::integrate::symband::band_index(b, r, r)] = m;
            }
        }
        for (o, seg) in &self.coupling {
            let m = a.eval(seg.expr, env);
            for r in seg.rows.clone().filter(|r| r + o < n) {
                out[crate::integrate::symband::band_index(b, r, r + o)] = m;
            }
        }
        out
    }

    /// The segment of `segs` holding `row`.
    pub fn find(segs: &[Segment], row: usize) -> &Segment {
        segs.iter().find(|s| s.rows.contains(&row)).expect("segments cover every row")
    }
}

/// A piece of a gradient: an expression for a range of rows (in a generic
/// index over member indices) or for one row.
struct Piece {
    rows: Range<usize>,
    /// The generic index and the base row of its family, for a range piece.
    index: Option<(SymId, usize)>,
    expr: ExprId,
}

/// The Lagrangian equations by segments, or `None` when the model or the
/// method is outside the indexed path (then the caller writes out the sums).
pub(super) fn lagrangian(model: &mut Model, extras: Extras) -> Option<LagrangianEquations> {
    if model.kind != ModelKind::Lagrangian
        || extras != Extras::default()
        || model.temperature.is_some()
        || model.interaction.is_some()
        || !model.arena.tables().is_empty()
    {
        return None;
    }
    let l = model.lagrangian?;
    if !model.arena.reads_members(l) {
        return None;
    }
    if model.forces.iter().any(|&f| !model.arena.is_zero(f)) {
        return None;
    }
    // A term of a rolled sum that reads velocities and positions together (a
    // chain's `x'²`) gives a mass matrix that depends on the state: leave at
    // once, before any derivative is taken.
    let arena = &model.arena;
    for h in arena.rolled_holes(l) {
        let Node::Sum(_, body) = *arena.node(h) else { continue };
        let terms = match arena.node(body) {
            Node::Add(ts) => ts.to_vec(),
            _ => vec![body],
        };
        for t in terms {
            let velocities = arena.depends(t, |k| matches!(k, SymKind::Velocity(_)));
            if velocities && arena.depends(t, |k| matches!(k, SymKind::Coord(_) | SymKind::Time)) {
                return None;
            }
        }
    }
    let q = model.var_syms();
    let v = model.velocity_syms();
    let taken: Vec<String> = model.consts.iter().map(|(c, _)| c.clone()).collect();
    let a = &mut model.arena;
    let taken = index_name(a, &taken);
    let momenta = gradient(a, l, &v, &taken)?;
    // A constant band M: each momentum linear in the velocities, with coefficients that
    // are constants; the diagonal by segments, each entry above it by offset.
    let mut mass = Vec::with_capacity(momenta.len());
    let mut coupling: Vec<(usize, Segment)> = Vec::new();
    // The row of member 0 of each family of velocities.
    let family_row: HashMap<u32, usize> = v
        .iter()
        .enumerate()
        .filter_map(|(row, &s)| a.member_of(s).filter(|&(_, m)| m == 0).map(|(f, _)| (f, row)))
        .collect();
    for seg in &momenta {
        if a.depends(seg.expr, |k| matches!(k, SymKind::Coord(_) | SymKind::Time)) {
            return None;
        }
        let (held, back) = hold_members(a, seg.expr);
        // The velocities read, by offset from the row: members at the segment's index, or
        // velocities named outright in a concrete row.
        let mut reads: Vec<(SymId, i64)> = Vec::new();
        for (&s, &m) in &back {
            match (a.node(m), seg.index) {
                (&Node::Member { family, row: Row::Index(k, o) }, Some((ks, base))) if k == ks => {
                    let first = *family_row.get(&family)?;
                    reads.push((s, first as i64 + i64::from(o) - base as i64))
                }
                _ => return None,
            }
        }
        for s in a.free_symbols(&[held]) {
            if let Some(j) = v.iter().position(|&x| x == s) {
                if seg.index.is_some() {
                    return None;
                }
                reads.push((s, j as i64 - seg.rows.start as i64));
            }
        }
        let mut diagonal = None;
        for (s, o) in reads {
            let c = a.diff(held, s);
            if a.depends(c, |k| !matches!(k, SymKind::Param(_) | SymKind::Pi)) || a.reads_members(c) {
                return None;
            }
            let entry = Segment { rows: seg.rows.clone(), index: seg.index, expr: c };
            match o {
                0 => diagonal = Some(c),
                // The entries below the diagonal mirror these.
                o if o > 0 => coupling.push((o as usize, entry)),
                _ => {}
            }
        }
        let zero = a.int(0);
        mass.push(Segment { rows: seg.rows.clone(), index: seg.index, expr: diagonal.unwrap_or(zero) });
    }
    let mut forcing = gradient(a, l, &q, &taken)?;
    let dissipation = model.dissipation;
    if let Some(r) = dissipation {
        // By the velocities: rows numbered as the coordinates' are.
        let rv = gradient(a, r, &v, &taken)?;
        forcing = combine(a, &forcing, &rv, |a, f, r| a.sub(f, r));
    }
    // With a band, the kernels solve `M a = f` with a factor made once per run.
    let acceleration =
        if coupling.is_empty() { combine(a, &forcing, &mass, |a, f, m| a.div(f, m)) } else { forcing.clone() };
    // H = Σ p·v − L, each rolled sum over the index of a sum of L with the same
    // range where there is one, so that like sums combine (`3 Σ u'² − …`).
    let l_indices: Vec<SymId> = a
        .topo_order(&[l])
        .into_iter()
        .filter_map(|e| match a.node(e) {
            Node::Sum(i, _) => Some(*i),
            _ => None,
        })
        .collect();
    let mut h_terms = Vec::new();
    for seg in &momenta {
        match seg.index {
            Some((k0, base)) => {
                let range = a.symbol(k0).kind;
                let k = l_indices.iter().copied().find(|&i| a.symbol(i).kind == range).unwrap_or(k0);
                let p = a.shift_index(seg.expr, k0, k, 0);
                let (f, _) = a.member_of(v[base])?;
                let vk = a.member(f, Row::Index(k, 0));
                let pv = a.mul(&[p, vk]);
                h_terms.push(a.sum_over(k, pv));
            }
            None => {
                let vi = a.sym(v[seg.rows.start]);
                h_terms.push(a.mul(&[seg.expr, vi]));
            }
        }
    }
    h_terms.push(a.neg(l));
    let energy = a.add(&h_terms);
    let zero = a.int(0);
    Some(LagrangianEquations {
        diagonal_mass: true,
        lagrangian: l,
        dissipation,
        momenta: Vec::new(),
        mass_matrix: Vec::new(),
        forcing: Vec::new(),
        energy,
        temperature: None,
        friction: None,
        power: zero,
        point: None,
        jacobian: None,
        indexed: Some(Indexed { momenta, mass, coupling, forcing, acceleration }),
    })
}

/// Replaces each member at a rolled index in `e` (outside nested sums) by its
/// placeholder symbol; returns the new expression and the way back.
fn hold_members(a: &mut Arena, e: ExprId) -> (ExprId, HashMap<SymId, ExprId>) {
    let members: Vec<ExprId> =
        a.topo_order(&[e]).into_iter().filter(|&n| matches!(a.node(n), Node::Member { .. })).collect();
    let mut map = FxMap::default();
    let mut back = HashMap::new();
    for m in members {
        let s = a.placeholder(m);
        let sx = a.sym(s);
        map.insert(m, sx);
        back.insert(s, m);
    }
    (a.replace_nodes(e, map), back)
}

/// `∂s/∂x` for every `x` of `vars`, by segments over the rows of `vars`;
/// `None` when `s` has a rolled sum inside another that reads members.
pub(super) fn gradient(a: &mut Arena, s: ExprId, vars: &[SymId], name: &str) -> Option<Vec<Segment>> {
    let n = vars.len() as i64;
    let generic = a.new_index(name, 0, n, format!("0..{n}"));
    let mut g = Gradient {
        row: vars.iter().enumerate().map(|(k, &x)| (x, k)).collect(),
        n: vars.len(),
        generic,
        pieces: Vec::new(),
    };
    let one = a.int(1);
    g.level(a, s, &[], one)?;
    Some(segments(a, &g.pieces, vars.len()))
}

/// The pieces of a gradient, gathered level by level through nested rolled sums.
struct Gradient {
    /// The row of each variable differentiated by.
    row: FxMap<SymId, usize>,
    n: usize,
    /// The index of the range pieces (a member index).
    generic: SymId,
    pieces: Vec<Piece>,
}

impl Gradient {
    /// The pieces of `Σ_{enclosing} mult · e`, where `e` sits inside rolled sums
    /// over `enclosing` (outermost first) and `mult` is the derivative of what
    /// holds it (it may read those indices). The derivative by member `k` of
    /// a read `u[s + o]` at index `s` sets `s = k − o` and keeps the sums over
    /// the other enclosing indices (docs/numerics.md §Indexed derivation).
    fn level(&mut self, a: &mut Arena, e: ExprId, enclosing: &[SymId], mult: ExprId) -> Option<()> {
        self.level_mirrored(a, e, enclosing, mult, None)
    }

    /// [`Gradient::level`]; with `mirror = (i, j)` the summand is symmetric in
    /// its indices `i` and `j` over one range, so the reads at `j` give what the
    /// reads at `i` give: those at `i` count twice and those at `j` are skipped
    /// (each pair's derivative computed once per row, as for Newton's third law).
    fn level_mirrored(
        &mut self,
        a: &mut Arena,
        e: ExprId,
        enclosing: &[SymId],
        mult: ExprId,
        mirror: Option<(SymId, SymId)>,
    ) -> Option<()> {
        let holes = a.rolled_holes(e);
        let mut map = FxMap::default();
        let mut back: HashMap<SymId, ExprId> = HashMap::new();
        for &h in &holes {
            let p = a.placeholder(h);
            let px = a.sym(p);
            map.insert(h, px);
            back.insert(p, h);
        }
        let e2 = a.replace_nodes(e, map);
        // Variables named outright: a row each, summed over every enclosing index.
        for x in a.free_symbols(&[e2]) {
            if let Some(&r) = self.row.get(&x) {
                let d = a.diff(e2, x);
                let d = a.subst(d, &back);
                let t = a.mul(&[mult, d]);
                let t = wrap(a, t, enclosing, None);
                self.pieces.push(Piece { rows: r..r + 1, index: None, expr: t });
            }
        }
        for &h in &holes {
            let ph = a.placeholder(h);
            let d = a.diff(e2, ph);
            if a.is_zero(d) {
                continue;
            }
            let d = a.subst(d, &back);
            let m = a.mul(&[mult, d]);
            match *a.node(h) {
                Node::Sum(i, body) => {
                    let mut inner = enclosing.to_vec();
                    inner.push(i);
                    // Σ_s Σ_i F(s, i) with F symmetric: the pair sum of a potential.
                    let alone = holes.len() == 1 && !a.free_symbols(&[e2]).iter().any(|x| self.row.contains_key(x));
                    let pair = match enclosing.last() {
                        Some(&s) if alone && a.symbol(s).kind == a.symbol(i).kind => {
                            let f = a.mul(&[m, body]);
                            symmetric(a, f, s, i).then_some((s, i))
                        }
                        _ => None,
                    };
                    self.level_mirrored(a, body, &inner, m, pair)?;
                }
                Node::Member { family, row: Row::Index(s, off) } => {
                    if !enclosing.contains(&s) {
                        return None;
                    }
                    let m = match mirror {
                        Some((_, j)) if j == s => continue,
                        Some((i, _)) if i == s => {
                            let two = a.int(2);
                            a.mul(&[two, m])
                        }
                        _ => m,
                    };
                    let Some(&base) = self.row.get(&a.family(family).members[0]) else { continue };
                    let len = a.family(family).members.len();
                    if base + len > self.n
                        || self.row.get(&a.family(family).members[len - 1]) != Some(&(base + len - 1))
                    {
                        return None;
                    }
                    let SymKind::Index { lo, hi } = a.symbol(s).kind else { return None };
                    // The other enclosing sums stay; `s` becomes `k − off`.
                    let t = wrap(a, m, enclosing, Some(s));
                    let at_k = a.shift_index(t, s, self.generic, -i64::from(off));
                    let (r0, r1) = (lo + i64::from(off), hi + i64::from(off));
                    self.pieces.push(Piece {
                        rows: base + r0 as usize..base + r1 as usize,
                        index: Some((self.generic, base)),
                        expr: at_k,
                    });
                }
                _ => return None,
            }
        }
        Some(())
    }
}

/// Whether `f(i, j) = f(j, i)` for a summand over two indices of one range
/// that reads no rolled sum of members: checked at three pairs of members and
/// random values of every symbol, to 1e-12 (a polynomial identity test; an
/// asymmetric summand passes it only by a coincidence of measure zero).
fn symmetric(a: &mut Arena, f: ExprId, i: SymId, j: SymId) -> bool {
    let SymKind::Index { lo, hi } = a.symbol(i).kind else { return false };
    if hi - lo < 3 || a.rolled_holes(f).iter().any(|&h| matches!(a.node(h), Node::Sum(..))) {
        return false;
    }
    let mut seed = 0x2545f4914f6cdd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        0.5 + (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let third = (hi - lo) / 3;
    for (p, q) in [(lo, hi - 1), (lo + third, lo + 2 * third), (hi - 2, lo + 1)] {
        let fp = a.at_index(f, i, p);
        let fpq = a.at_index(fp, j, q);
        let fq = a.at_index(f, i, q);
        let fqp = a.at_index(fq, j, p);
        let mut env = crate::sym::Env::new(a);
        for s in a.free_symbols(&[fpq, fqp]) {
            env.set(s, next());
        }
        let (x, y) = (a.eval(fpq, &env), a.eval(fqp, &env));
        if !(x.is_finite() && (x - y).abs() <= 1e-12 * x.abs().max(y.abs()).max(1e-300)) {
            return false;
        }
    }
    true
}

/// `Σ_{i ∈ enclosing, i ≠ except} t`, the innermost sum first. A range that
/// depends on another index is not one of the ranges kept as loops.
fn wrap(a: &mut Arena, t: ExprId, enclosing: &[SymId], except: Option<SymId>) -> ExprId {
    let mut t = t;
    for &i in enclosing.iter().rev() {
        if Some(i) != except {
            t = a.sum_over(i, t);
        }
    }
    t
}

/// The first of `k, j, l, r, s` (then `k1, k2, …`) that no symbol and no
/// const of the model is called: the index of the printed segments.
fn index_name(a: &Arena, taken: &[String]) -> String {
    let used = |c: &str| taken.iter().any(|t| t == c) || a.symbols().any(|(_, s)| s.name == c);
    ["k", "j", "l", "r", "s"]
        .iter()
        .map(|c| c.to_string())
        .chain((1..).map(|i| format!("k{i}")))
        .find(|c| !used(c))
        .expect("an unused name")
}

/// Cuts rows `0..n` at the ends of every piece and adds up the pieces over
/// each part: a loop for a long part, concrete rows for short ones.
fn segments(a: &mut Arena, pieces: &[Piece], n: usize) -> Vec<Segment> {
    let mut cuts: Vec<usize> = vec![0, n];
    for p in pieces {
        cuts.push(p.rows.start);
        cuts.push(p.rows.end);
    }
    cuts.sort_unstable();
    cuts.dedup();
    let zero = a.int(0);
    let mut out = Vec::new();
    for w in cuts.windows(2) {
        let (x, y) = (w[0], w[1]);
        let active: Vec<&Piece> = pieces.iter().filter(|p| p.rows.start <= x && y <= p.rows.end).collect();
        let ranged: Vec<&Piece> = active.iter().copied().filter(|p| p.index.is_some()).collect();
        if y - x > SHORT && !ranged.is_empty() && active.iter().all(|p| p.index.is_some()) {
            let (generic, base) = ranged[0].index.expect("a range piece");
            if ranged.iter().any(|p| p.index.map(|(_, b)| b) != Some(base)) {
                // Pieces of two families over one row: not a family's rows.
                out.extend(rows_of(a, &active, x..y));
                continue;
            }
            let (m0, m1) = ((x - base) as i64, (y - base) as i64);
            let name = a.symbol(generic).name.clone();
            let k = a.new_index(&name, m0, m1, format!("{m0}..{m1}"));
            let terms: Vec<ExprId> = ranged.iter().map(|p| a.shift_index(p.expr, generic, k, 0)).collect();
            let e = a.add(&terms);
            out.push(Segment { rows: x..y, index: Some((k, base)), expr: e });
        } else if active.is_empty() {
            // Rows no piece reaches: a zero of any length, as one loop-free segment per row
            // would grow with the family.
            out.push(Segment { rows: x..y, index: None, expr: zero });
        } else {
            out.extend(rows_of(a, &active, x..y));
        }
    }
    out
}

/// Concrete rows: each piece at the row.
fn rows_of(a: &mut Arena, active: &[&Piece], rows: Range<usize>) -> Vec<Segment> {
    rows.map(|r| {
        let terms: Vec<ExprId> = active
            .iter()
            .map(|p| match p.index {
                Some((k, base)) => a.at_index(p.expr, k, (r - base) as i64),
                None => p.expr,
            })
            .collect();
        Segment { rows: r..r + 1, index: None, expr: a.add(&terms) }
    })
    .collect()
}

/// `op(x, y)` row by row over two segmentations of the same rows.
fn combine(
    a: &mut Arena,
    xs: &[Segment],
    ys: &[Segment],
    op: impl Fn(&mut Arena, ExprId, ExprId) -> ExprId,
) -> Vec<Segment> {
    let mut cuts: Vec<usize> = xs.iter().chain(ys).flat_map(|s| [s.rows.start, s.rows.end]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    // One index per range of members: the rows of several families over the
    // same members then run in one loop (docs/numerics.md §Indexed derivation).
    let mut indices: FxMap<(i64, i64), SymId> = FxMap::default();
    for w in cuts.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        let (x, y) = (Indexed::find(xs, lo).clone(), Indexed::find(ys, lo).clone());
        let looped = |s: &Segment| s.index.map(|(_, b)| b);
        match (x.index, y.index) {
            (None, None) if hi - lo == 1 || (x.rows == (lo..hi) && y.rows == (lo..hi)) => {
                // Concrete on both sides (a zero segment may span rows).
                let e = op(a, x.expr, y.expr);
                out.push(Segment { rows: lo..hi, index: None, expr: e });
            }
            _ if hi - lo > SHORT && looped(&x).or(looped(&y)).is_some() => {
                let base = looped(&x).or(looped(&y)).expect("one side loops");
                let (m0, m1) = ((lo - base) as i64, (hi - base) as i64);
                let name = a.symbol(x.index.or(y.index).expect("one side loops").0).name.clone();
                let k = *indices.entry((m0, m1)).or_insert_with(|| a.new_index(&name, m0, m1, format!("{m0}..{m1}")));
                let ex = at_segment(a, &x, k, base);
                let ey = at_segment(a, &y, k, base);
                let e = op(a, ex, ey);
                out.push(Segment { rows: lo..hi, index: Some((k, base)), expr: e });
            }
            _ => {
                for r in lo..hi {
                    let (ex, ey) = (x.at(a, r), y.at(a, r));
                    let e = op(a, ex, ey);
                    out.push(Segment { rows: r..r + 1, index: None, expr: e });
                }
            }
        }
    }
    out
}

/// A segment's expression in the index `k` over the same members (a constant
/// segment as it is).
fn at_segment(a: &mut Arena, s: &Segment, k: SymId, base: usize) -> ExprId {
    match s.index {
        Some((j, b)) => {
            debug_assert_eq!(b, base, "one family's rows");
            a.shift_index(s.expr, j, k, 0)
        }
        None => s.expr,
    }
}
