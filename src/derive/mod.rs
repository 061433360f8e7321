//! Derivation: from a model to its equations of motion (docs/language.md,
//! "What lagc derives"; docs/numerics.md §Equations of motion). All the calculus of
//! lagc happens here: nothing after `derive` differentiates or builds
//! expressions.
//!
//! Lagrangian models ([`mechanics`]): momenta `p = ∂L/∂v`, mass matrix
//! `M = ∂²L/∂v∂v`, forcing `f = ∂L/∂q − (∂²L/∂v∂q)·v − ∂²L/∂v∂t − ∂R/∂v + Q`
//! so that `M q'' = f`, and the energy `H = v·p − L`.
//!
//! Energy models ([`flow`]): the gradient `∇E`, the Hessian `∇²E`, the metric
//! and the flow `θ' = −g⁻¹∇E`.
//!
//! The printed equations are simplified ([`crate::sym::Arena::simplify`]):
//! expanded, with the Pythagorean and angle-sum identities applied, so that
//! they read like a textbook and stay small. Beside them, `derive` builds the
//! expressions the numerical methods evaluate ([`Extras`] says which of the
//! costly ones a method needs): the energy model's gradient of the energy as
//! written (expansion cancels digits near a minimum), and the Lagrangian point
//! of the variational integrator and the implicit midpoint rule (the derivatives
//! their exact Newton Jacobians are made of).

mod checks;
mod flow;
mod geodesic;
pub mod indexed;
mod jacobian;
mod mechanics;
mod thermo;

pub use flow::gradient_flow;
pub use geodesic::{metric_derivatives, MAX_METRIC_DERIVATIVES};
pub use jacobian::{jacobians, outputs as jacobian_outputs, Jacobian, MAX_JACOBIAN_ENTRIES};
pub use mechanics::euler_lagrange;
pub use thermo::MAX_COFACTOR_DIM;

use crate::diag::Diagnostic;
use crate::model::{Model, ModelKind};
use crate::sym::ExprId;

/// What derivation knows of a symmetric matrix (a mass matrix or a metric) before any
/// number: how far from the diagonal its entries reach, and whether it depends on the
/// parameters alone (docs/numerics.md §Structure of the mass matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixShape {
    pub n: usize,
    /// The largest `|i − j|` of an entry that is not identically zero (0: diagonal).
    pub band: usize,
    /// No entry reads the state, the velocities, the time or a data table.
    pub constant: bool,
}

impl MatrixShape {
    /// The shape of the `n × n` matrix whose entry `(i, j)` is `m(i, j)`.
    pub fn of(a: &crate::sym::Arena, n: usize, m: impl Fn(usize, usize) -> ExprId) -> MatrixShape {
        use crate::sym::{Node, SymKind};
        let band = crate::integrate::symband::half_bandwidth(n, |i, j| a.is_zero(m(i, j)) && a.is_zero(m(j, i)));
        let entries: Vec<ExprId> = (0..n)
            .flat_map(|i| (i..(i + band + 1).min(n)).map(move |j| (i, j)))
            .map(|(i, j)| m(i, j))
            .filter(|&e| a.as_num(e).is_none())
            .collect();
        let constant = a.topo_order(&entries).into_iter().all(|e| match a.node(e) {
            Node::Sym(s) => matches!(a.symbol(*s).kind, SymKind::Param(_) | SymKind::Pi),
            Node::Member { .. } | Node::Data { .. } | Node::Sum(..) => false,
            _ => true,
        });
        MatrixShape { n, band, constant }
    }

    /// Whether the matrix is diagonal.
    pub fn diagonal(&self) -> bool {
        self.band == 0
    }

    /// The upper band of the matrix `m(i, j)` of this shape, row by row (the layout of
    /// [`crate::integrate::symband`]); entries past the last column are `filler`, never read.
    pub fn band_entries(&self, m: impl Fn(usize, usize) -> ExprId, filler: ExprId) -> Vec<ExprId> {
        let (n, b) = (self.n, self.band);
        let mut out = vec![filler; crate::integrate::symband::band_len(n, b)];
        for i in 0..n {
            for j in i..(i + b + 1).min(n) {
                out[crate::integrate::symband::band_index(b, i, j)] = m(i, j);
            }
        }
        out
    }
}

/// The derived equations of a Lagrangian model.
#[derive(Clone, Debug)]
pub struct LagrangianEquations {
    /// `L`, simplified.
    pub lagrangian: ExprId,
    /// `R`, simplified, when given.
    pub dissipation: Option<ExprId>,
    /// `p_i = ∂L/∂q_i'`.
    pub momenta: Vec<ExprId>,
    /// `M_ij = ∂²L/∂q_i'∂q_j'`, row-major rows.
    pub mass_matrix: Vec<Vec<ExprId>>,
    /// `f` of `M q'' = f`.
    pub forcing: Vec<ExprId>,
    /// `H = v·p − L`.
    pub energy: ExprId,
    /// Whether every entry of `M` off the diagonal is identically zero, so
    /// that `M q'' = f` is solved by a division per coordinate.
    pub diagonal_mass: bool,
    /// `T`, when the model has a temperature (underdamped Langevin dynamics).
    pub temperature: Option<ExprId>,
    /// `Γ = ∂²R/∂q'∂q'`, row-major rows, when the model has a temperature:
    /// the friction of `M q'' = f + √(2T) Γ^{1/2} ξ` (its `−Γq'` is in `f`).
    pub friction: Option<Vec<Vec<ExprId>>>,
    /// `∂H/∂t + Q·q' = −∂L/∂t + Q·q'`, the power whose integral is the work.
    pub power: ExprId,
    /// `L_v, L_q, F, L_vv, L_vq, L_qq, F_v, F_q, L_vt` (in the order of
    /// [`crate::integrate::LagrangianPoint`]), with `F = −∂R/∂v + Q`, when
    /// [`Extras::lagrangian_point`] asked for it.
    pub point: Option<Vec<ExprId>>,
    /// The Jacobians of the first-order system, when [`Extras::jacobians`] asked for them.
    pub jacobian: Option<Jacobian>,
    /// The equations by segments of rows, for a model whose long sums over
    /// families stay rolled ([`indexed`]); `momenta`, `mass_matrix` and
    /// `forcing` are then empty.
    pub indexed: Option<indexed::Indexed>,
}

impl LagrangianEquations {
    /// The momenta, the mass matrix (row-major rows) and the forcing, one
    /// expression per coordinate: these fields as they are, or for equations
    /// by segments each row written out into `a` (the mass matrix dense, with
    /// its zeros; `n²` entries, for models small enough to hold them).
    #[allow(clippy::type_complexity)]
    pub fn written_out(&self, a: &mut crate::sym::Arena) -> (Vec<ExprId>, Vec<Vec<ExprId>>, Vec<ExprId>) {
        let Some(ix) = &self.indexed else {
            return (self.momenta.clone(), self.mass_matrix.clone(), self.forcing.clone());
        };
        let n = ix.forcing.last().map_or(0, |s| s.rows.end);
        let row =
            |a: &mut crate::sym::Arena, segs: &[indexed::Segment], i: usize| indexed::Indexed::find(segs, i).at(a, i);
        let momenta = (0..n).map(|i| row(a, &ix.momenta, i)).collect();
        let forcing = (0..n).map(|i| row(a, &ix.forcing, i)).collect();
        let zero = a.int(0);
        let mut mass: Vec<Vec<ExprId>> = (0..n)
            .map(|i| {
                let d = row(a, &ix.mass, i);
                (0..n).map(|j| if i == j { d } else { zero }).collect()
            })
            .collect();
        for (o, seg) in &ix.coupling {
            for r in seg.rows.clone().filter(|r| r + o < n) {
                let m = seg.at(a, r);
                mass[r][r + o] = m;
                mass[r + o][r] = m;
            }
        }
        (momenta, mass, forcing)
    }
}

/// The derived equations of an energy model.
#[derive(Clone, Debug)]
pub struct EnergyEquations {
    pub energy: ExprId,
    pub gradient: Vec<ExprId>,
    /// `∇²E`, row-major rows.
    pub hessian: Vec<Vec<ExprId>>,
    /// `g(θ)` when the model declares one.
    pub metric: Option<Vec<Vec<ExprId>>>,
    /// `θ' = −g⁻¹∇E`, when the metric is Euclidean or diagonal (otherwise
    /// the linear solve is numeric, in the kernel).
    pub flow: Option<Vec<ExprId>>,
    pub temperature: Option<ExprId>,
    /// `(∇·g⁻¹)_i = Σ_j ∂(g⁻¹)_ij/∂θ_j`, when the model has a temperature and
    /// a metric that depends on the state (Riemannian Langevin dynamics).
    pub divergence: Option<Vec<ExprId>>,
    /// `∂E/∂t`, the power whose integral is the work.
    pub power: ExprId,
    /// The expressions the numerical methods evaluate.
    pub kernel: FlowKernels,
    /// The Jacobians of the flow, when [`Extras::jacobians`] asked for them.
    pub jacobian: Option<Jacobian>,
    /// `∂g/∂θ` then `∂²g/∂θ∂θ` of the metric as written, for its geodesic
    /// ([`metric_derivatives`]), when they were derived.
    pub metric_derivatives: Option<Vec<ExprId>>,
}

/// An energy model's expressions for evaluation: derivatives of the energy as
/// written, not of its expanded display form, whose cancellations lose digits
/// near a minimum.
#[derive(Clone, Debug)]
pub struct FlowKernels {
    /// `E` as written.
    pub energy: ExprId,
    /// `∇E`.
    pub gradient: Vec<ExprId>,
    /// `−∇E`, the right-hand side of `g θ' = −∇E`.
    pub descent: Vec<ExprId>,
    /// `g(θ)` as written, row-major, when the model declares one.
    pub metric: Option<Vec<ExprId>>,
    /// Whether every entry of `g` off the diagonal is identically zero.
    pub diagonal_metric: bool,
    /// `∇²E`, row-major, when [`Extras::hessian`] asked for it.
    pub hessian: Option<Vec<ExprId>>,
    /// `∇₁W(x, x~)` of the model's `interaction`, when it has one.
    pub pair_gradient: Option<Vec<ExprId>>,
    /// `W(x, x~)` itself.
    pub pair: Option<ExprId>,
}

/// The derivatives only some methods need, each costly at large sizes
/// (`n²` to `n³` expressions); the table of methods in `plan` says which needs which.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// `∇²E` of the energy as written (the minimizing movement).
    pub hessian: bool,
    /// The Lagrangian point (the variational integrator and the implicit midpoint rule),
    /// from which they build their exact Newton Jacobians.
    pub lagrangian_point: bool,
    /// The Jacobians of the first-order system with respect to the state and
    /// the parameters (forward sensitivities).
    pub jacobians: bool,
}

/// The equations of either kind of model.
#[derive(Clone, Debug)]
pub enum Equations {
    Lagrangian(LagrangianEquations),
    Energy(EnergyEquations),
}

/// Derives the equations of motion, and the `extras` a method needs. An
/// identically singular mass matrix is an error with the span of the
/// `lagrangian` statement.
pub fn derive(model: &mut Model, extras: Extras) -> Result<Equations, Vec<Diagnostic>> {
    if let Some(mut eq) = indexed::lagrangian(model, extras) {
        within_limits(model)?;
        if let Some(d) = checks::singular_indexed(model, &eq) {
            return Err(vec![d]);
        }
        eq.power = thermo::lagrangian_power(model, eq.lagrangian);
        within_limits(model)?;
        return Ok(Equations::Lagrangian(eq));
    }
    matrix_fits(model)?;
    unrolled_fits(model)?;
    model.unroll_members();
    if extras.lagrangian_point && model.kind == ModelKind::Lagrangian {
        point_fits(model)?;
    }
    match model.kind {
        ModelKind::Lagrangian => {
            squares_fit(model)?;
            let mut eq = euler_lagrange(model);
            // Nothing reads an expression of an arena past its limit.
            within_limits(model)?;
            if let Some(d) = checks::singular_mass_matrix(model, &eq) {
                return Err(vec![d]);
            }
            if extras.lagrangian_point {
                eq.point = Some(mechanics::lagrangian_point(model, &eq));
            }
            eq.temperature = model.temperature;
            if let (Some(_), Some(r)) = (model.temperature, eq.dissipation) {
                eq.friction = Some(thermo::friction(model, r).map_err(|d| vec![d])?);
            }
            eq.power = thermo::lagrangian_power(model, eq.lagrangian);
            within_limits(model)?;
            let mut eq = Equations::Lagrangian(eq);
            if extras.jacobians {
                jacobians(model, &mut eq).map_err(|d| vec![d])?;
                within_limits(model)?;
            }
            Ok(eq)
        }
        ModelKind::Energy => {
            let mut eq = gradient_flow(model, extras.hessian);
            if model.temperature.is_some() {
                eq.divergence = thermo::metric_divergence(model).map_err(|d| vec![d])?;
            }
            eq.power = thermo::energy_power(model);
            within_limits(model)?;
            let mut eq = Equations::Energy(eq);
            if extras.jacobians {
                jacobians(model, &mut eq).map_err(|d| vec![d])?;
                within_limits(model)?;
            }
            Ok(eq)
        }
    }
}

/// `∂r_i/∂s_j` for rows `r` and symbols `s`, simplified: an entry is zero
/// unless `r_i` contains `s_j`, so only those are differentiated (a lattice's
/// momentum holds one velocity). The mass matrix, the Hessian and the friction.
fn sparse_jacobian(a: &mut crate::sym::Arena, rows: &[ExprId], by: &[crate::sym::SymId]) -> Vec<Vec<ExprId>> {
    let zero = a.int(0);
    rows.iter()
        .map(|&r| {
            let free = a.free_symbols(&[r]);
            by.iter()
                .map(|&s| {
                    if free.binary_search(&s).is_err() {
                        return zero;
                    }
                    let d = a.diff(r, s);
                    a.simplify(d)
                })
                .collect()
        })
        .collect()
}

/// The most entries of the `n × n` tables a derivation keeps (`M`, `g`, the
/// Hessian): 10⁸, about 400 MB of node ids, reached at 10,000 variables.
pub const MAX_MATRIX_ENTRIES: usize = 100_000_000;

/// Refuses, before any work, a model whose sums over family members would
/// write more operands than an arena may hold when written out term by term
/// ([`crate::sym::Arena::unrolled_operands`]); a chain of 10⁴ links whose bob
/// positions are partial sums of its angles would write about 10⁹.
fn unrolled_fits(model: &mut Model) -> Result<(), Vec<Diagnostic>> {
    let roots = model.expressions();
    let operands = model.arena.unrolled_operands(&roots);
    let limit = crate::sym::MAX_OPERANDS as u64;
    if operands <= limit {
        return Ok(());
    }
    Err(vec![Diagnostic::new(model.spans.main, "the model's sums are too long to write out")
        .label(format!(
            "its sums over members, written term by term for each of the {} {}, come to about {operands:.1e} operands; the limit is {limit:.1e}",
            model.vars.len(),
            match model.kind {
                ModelKind::Lagrangian => "coordinates",
                ModelKind::Energy => "state variables",
            }
        ))
        .help("write the model with fewer members: every term of these sums becomes an operand of the equations")])
}

/// Refuses, before any work, a Lagrangian whose squares of long sums cost
/// more than [`crate::sym::SQUARE_PAIRS`] products both multiplied out and
/// left factored ([`crate::sym::Arena::square_work`]): the kinetic energy of
/// a chain of `n` links written in Cartesian form costs `n³/3`, which passes
/// it near 225 links.
fn squares_fit(model: &Model) -> Result<(), Vec<Diagnostic>> {
    let Some(l) = model.lagrangian else { return Ok(()) };
    let v = model.velocity_syms();
    let mut by = v.clone();
    by.sort_unstable();
    let (pairs, spread) = model.arena.square_work(l, &by);
    let limit = crate::sym::SQUARE_PAIRS;
    if pairs <= limit || spread <= limit {
        return Ok(());
    }
    // 1.5 µs a pair: the 200-link chain's 2.7·10⁶ pairs derive and compile in 4 s.
    let seconds = pairs as f64 * 1.5e-6;
    Err(vec![Diagnostic::new(model.spans.main, "the kinetic energy is too large to differentiate")
        .label(format!(
            "its squares of sums have {pairs:.1e} pairs of terms to multiply out (about {seconds:.0} s), and left factored they would spread {spread:.1e} terms over the {} momenta",
            v.len()
        ))
        .help(format!("lagc multiplies out at most {limit:.0e} pairs (a chain of about 225 links in Cartesian form); write fewer coordinates, or the kinetic energy as a sum of shorter squares"))])
}

/// Refuses, before any work, a model whose `n × n` tables would not fit.
fn matrix_fits(model: &Model) -> Result<(), Vec<Diagnostic>> {
    let n = model.vars.len();
    let entries = n.saturating_mul(n);
    if entries <= MAX_MATRIX_ENTRIES {
        return Ok(());
    }
    let (what, table) = match model.kind {
        ModelKind::Lagrangian => ("coordinates", "mass matrix"),
        ModelKind::Energy => ("state variables", "Hessian"),
    };
    let gb = entries as f64 * 4.0 / 1e9;
    let largest = (MAX_MATRIX_ENTRIES as f64).sqrt() as usize;
    Err(vec![Diagnostic::new(model.spans.main, format!("{n} {what} are too many"))
        .label(format!("the {table} would have {n}² = {entries} entries, about {gb:.1} GB"))
        .help(format!("lagc keeps it as a dense table of at most {MAX_MATRIX_ENTRIES} entries ({largest} {what})"))])
}

/// The `n × n` tables of the implicit methods' Newton steps (`M`, `L_vq`,
/// `L_qq`, `F_v`, `F_q`; see `mechanics::lagrangian_point`).
const POINT_TABLES: usize = 5;

/// Refuses, before any work, a model too large for the tables of the
/// implicit methods (together at most [`MAX_MATRIX_ENTRIES`] entries).
fn point_fits(model: &Model) -> Result<(), Vec<Diagnostic>> {
    let n = model.vars.len();
    let entries = n.saturating_mul(n).saturating_mul(POINT_TABLES);
    if entries <= MAX_MATRIX_ENTRIES {
        return Ok(());
    }
    let gb = entries as f64 * 4.0 / 1e9;
    let largest = ((MAX_MATRIX_ENTRIES / POINT_TABLES) as f64).sqrt() as usize;
    Err(vec![Diagnostic::new(
        model.spans.main,
        format!("{n} coordinates are too many for `midpoint` and `variational`"),
    )
    .label(format!(
        "their Newton steps need {POINT_TABLES} tables of the Lagrangian's derivatives of {n}² entries each: \
             {entries} in all, about {gb:.1} GB"
    ))
    .help(format!(
        "`verlet`, `rk4` and `dopri5` need no such tables; the implicit methods take at most {largest} coordinates"
    ))])
}

/// The error of a derivation whose arena passed [`crate::sym::MAX_NODES`] or
/// [`crate::sym::MAX_OPERANDS`].
fn within_limits(model: &Model) -> Result<(), Vec<Diagnostic>> {
    if !model.arena.overflowed() {
        return Ok(());
    }
    Err(vec![Diagnostic::new(model.spans.main, "the derivation grew too large")
        .label(format!(
            "the equations need more than {} expression nodes or {} operands",
            crate::sym::MAX_NODES,
            crate::sym::MAX_OPERANDS
        ))
        .help("write the model with fewer nested products of sums, or with smaller families")])
}
