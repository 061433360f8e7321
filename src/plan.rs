//! Planning a run: which methods fit a model, what each needs, and what a run
//! of one computes and writes.
//!
//! [`SPECS`] is the one table of the methods: for each, the model kinds it
//! applies to, the derivatives it needs from `derive` ([`Extras`]), the
//! expression kernels and the first-order system it evaluates, and its
//! compiled loop. [`refusal`] is the one place that says whether a method fits
//! a model; `check`, `derive`, `ir` and `run` all ask it. [`plan`] turns a
//! method into a [`Plan`]: the kernels as a typed set, the output columns, and
//! whether the run is an ensemble.

use crate::derive::{Equations, Extras, LagrangianEquations};
use crate::diag::Diagnostic;
use crate::model::{Method, Model, ModelKind};
use crate::sym::{ExprId, Node, SymKind};
use std::fmt;

/// An expression kernel: a list of derived expressions evaluated together at
/// `x = [t, state…, params…]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// The row of a trajectory: `H` (or `E`, then `∇E`), then the observes.
    Row,
    /// `E` as written; for a conservative Lagrangian model, `H` alone (its
    /// drift measured on every step).
    Energy,
    /// `∇E`.
    Gradient,
    /// `∇²E`, row-major.
    Hessian,
    /// `g(θ)`, row-major.
    Metric,
    /// The Lagrangian point of the variational integrator and the canonical midpoint rule.
    Point,
    /// The power of the explicit time dependence and the forces, `∂E/∂t` or
    /// `−∂L/∂t + Q·q'` (the work's integrand).
    Power,
    /// `M(q)`, row-major (the noise of underdamped Langevin dynamics).
    Mass,
    /// `Γ(q) = ∂²R/∂q'∂q'`, row-major.
    Friction,
    /// `∇·g⁻¹` of a state-dependent metric (Riemannian Langevin dynamics).
    Divergence,
    /// `∇₁W(x, x~)` of an `interaction`, at `x = [t, state…, other state…, params…]`.
    PairGradient,
    /// `W(x, x~)` of an `interaction`, at the same inputs.
    Pair,
    /// The derivatives of the first-order system's vector and matrix with
    /// respect to the state and the parameters (forward sensitivities;
    /// [`crate::derive::Jacobian::kernel`]).
    Jacobian,
    /// `∂g/∂θ` and `∂²g/∂θ∂θ` of the metric (the geodesic of `lagc solve`;
    /// [`crate::derive::metric_derivatives`]).
    MetricDerivatives,
}

impl Kernel {
    pub const ALL: [Kernel; 14] = [
        Kernel::Row,
        Kernel::Energy,
        Kernel::Gradient,
        Kernel::Hessian,
        Kernel::Metric,
        Kernel::Point,
        Kernel::Power,
        Kernel::Mass,
        Kernel::Friction,
        Kernel::Divergence,
        Kernel::PairGradient,
        Kernel::Pair,
        Kernel::Jacobian,
        Kernel::MetricDerivatives,
    ];

    /// The kernel's label in the IR.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Row => "row",
            Kernel::Energy => "energy",
            Kernel::Gradient => "gradient",
            Kernel::Hessian => "hessian",
            Kernel::Metric => "metric",
            Kernel::Point => "point",
            Kernel::Power => "power",
            Kernel::Mass => "mass",
            Kernel::Friction => "friction",
            Kernel::Divergence => "divergence",
            Kernel::PairGradient => "pair_gradient",
            Kernel::Pair => "pair",
            Kernel::Jacobian => "jacobian",
            Kernel::MetricDerivatives => "metric_derivatives",
        }
    }

    /// The expressions the kernel computes, in output order; `None` when the
    /// model has no such quantity or `derive` was not asked for it.
    pub fn expressions(self, model: &Model, eq: &Equations) -> Option<Vec<ExprId>> {
        let observes = model.observes.iter().map(|(_, x)| *x);
        match (self, eq) {
            (Kernel::Row, Equations::Lagrangian(e)) => Some(std::iter::once(e.energy).chain(observes).collect()),
            (Kernel::Row, Equations::Energy(e)) => {
                let k = &e.kernel;
                Some(std::iter::once(k.energy).chain(k.gradient.iter().copied()).chain(observes).collect())
            }
            (Kernel::Energy, Equations::Energy(e)) => Some(vec![e.kernel.energy]),
            (Kernel::Energy, Equations::Lagrangian(e)) => Some(vec![e.energy]),
            (Kernel::Gradient, Equations::Energy(e)) => Some(e.kernel.gradient.clone()),
            (Kernel::Hessian, Equations::Energy(e)) => e.kernel.hessian.clone(),
            (Kernel::Metric, Equations::Energy(e)) => e.kernel.metric.clone(),
            (Kernel::Point, Equations::Lagrangian(e)) => e.point.clone(),
            (Kernel::Power, Equations::Lagrangian(e)) => Some(vec![e.power]),
            (Kernel::Power, Equations::Energy(e)) => Some(vec![e.power]),
            (Kernel::Mass, Equations::Lagrangian(e)) => Some(e.mass_matrix.iter().flatten().copied().collect()),
            (Kernel::Friction, Equations::Lagrangian(e)) => {
                e.friction.as_ref().map(|g| g.iter().flatten().copied().collect())
            }
            (Kernel::Divergence, Equations::Energy(e)) => e.divergence.clone(),
            (Kernel::PairGradient, Equations::Energy(e)) => e.kernel.pair_gradient.clone(),
            (Kernel::Pair, Equations::Energy(e)) => e.kernel.pair.map(|w| vec![w]),
            (Kernel::Jacobian, Equations::Lagrangian(e)) => e.jacobian.as_ref().map(|j| j.kernel()),
            (Kernel::Jacobian, Equations::Energy(e)) => e.jacobian.as_ref().map(|j| j.kernel()),
            (Kernel::MetricDerivatives, Equations::Energy(e)) => e.metric_derivatives.clone(),
            _ => None,
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fixed-step loop compiled whole into native code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loop {
    /// Classical RK4 over the first-order system.
    Rk4,
    /// Störmer–Verlet over `M q'' = f` with constant `M`.
    Verlet,
    /// One Euler–Maruyama step of a block of particles.
    EulerMaruyama,
}

/// What a method needs to run on one kind of model.
#[derive(Clone, Copy, Debug)]
pub struct Needs {
    /// The derivatives `derive` must build.
    pub extras: Extras,
    /// The expression kernels, besides [`Kernel::Row`], which every run has.
    pub kernels: &'static [Kernel],
    /// Whether the first-order right-hand side `y' = F(t, y)` is evaluated.
    pub system: bool,
    /// The method's compiled loop, where there is one.
    pub compiled: Option<Loop>,
}

/// One row of [`SPECS`]: a method and what it needs on each kind of model
/// (`None`: it does not apply).
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub method: Method,
    pub lagrangian: Option<Needs>,
    pub energy: Option<Needs>,
    /// Whether the method samples at a temperature (and needs one).
    pub stochastic: bool,
}

const NONE: Extras = Extras { hessian: false, lagrangian_point: false, jacobians: false };

const fn needs(kernels: &'static [Kernel], system: bool, compiled: Option<Loop>) -> Option<Needs> {
    Some(Needs { extras: NONE, kernels, system, compiled })
}

/// The methods: what each needs, on which models (docs/numerics.md has their formulas).
pub const SPECS: [Spec; 11] = [
    Spec {
        method: Method::Euler,
        lagrangian: None,
        energy: needs(&[Kernel::Gradient, Kernel::Metric], false, None),
        stochastic: false,
    },
    Spec {
        method: Method::Prox,
        lagrangian: None,
        energy: Some(Needs {
            extras: Extras { hessian: true, ..NONE },
            kernels: &[Kernel::Energy, Kernel::Gradient, Kernel::Hessian, Kernel::Metric],
            system: false,
            compiled: None,
        }),
        stochastic: false,
    },
    Spec {
        method: Method::Rk4,
        lagrangian: needs(&[], true, Some(Loop::Rk4)),
        energy: needs(&[], true, Some(Loop::Rk4)),
        stochastic: false,
    },
    Spec {
        method: Method::Dopri5,
        lagrangian: needs(&[], true, None),
        energy: needs(&[], true, None),
        stochastic: false,
    },
    Spec { method: Method::Verlet, lagrangian: needs(&[], true, Some(Loop::Verlet)), energy: None, stochastic: false },
    Spec {
        method: Method::Midpoint,
        lagrangian: Some(Needs {
            extras: Extras { lagrangian_point: true, ..NONE },
            kernels: &[Kernel::Point],
            system: false,
            compiled: None,
        }),
        energy: None,
        stochastic: false,
    },
    Spec {
        method: Method::Variational,
        lagrangian: Some(Needs {
            extras: Extras { lagrangian_point: true, ..NONE },
            kernels: &[Kernel::Point],
            system: false,
            compiled: None,
        }),
        energy: None,
        stochastic: false,
    },
    Spec {
        method: Method::Em,
        lagrangian: needs(&[Kernel::Mass, Kernel::Friction], true, Some(Loop::EulerMaruyama)),
        energy: needs(&[Kernel::Metric, Kernel::Divergence], true, Some(Loop::EulerMaruyama)),
        stochastic: true,
    },
    Spec {
        method: Method::Baoab,
        lagrangian: needs(&[Kernel::Mass, Kernel::Friction], true, None),
        energy: None,
        stochastic: true,
    },
    // The density on a grid; `T = 0` (no temperature) is pure transport.
    Spec {
        method: Method::FokkerPlanck,
        lagrangian: None,
        energy: needs(&[Kernel::Energy, Kernel::Metric], false, None),
        stochastic: true,
    },
    // Particles moved by all the others towards exp(−E/T); T = 1 without a temperature.
    Spec { method: Method::Svgd, lagrangian: None, energy: needs(&[Kernel::Gradient], false, None), stochastic: true },
];

/// The most state variables `fokker-planck` solves for.
pub const GRID_MAX_DIM: usize = 2;

/// The row of [`SPECS`] of a method.
pub fn spec(method: Method) -> &'static Spec {
    SPECS.iter().find(|s| s.method == method).expect("every method has a spec")
}

/// What `method` needs on a model of `kind`, if it applies to that kind.
pub fn needs_of(method: Method, kind: ModelKind) -> Option<Needs> {
    let s = spec(method);
    match kind {
        ModelKind::Lagrangian => s.lagrangian,
        ModelKind::Energy => s.energy,
    }
}

/// The derivatives `derive` must build for `method` on a model of `kind`.
pub fn extras(method: Method, kind: ModelKind) -> Extras {
    needs_of(method, kind).map(|n| n.extras).unwrap_or_default()
}

/// The method of a run: the one asked for, else the model's `simulate method`,
/// else `em` for a model with a temperature and `rk4` otherwise.
pub fn method_for(model: &Model, asked: Option<Method>) -> Method {
    asked.or(model.settings.method).unwrap_or(if model.temperature.is_some() { Method::Em } else { Method::Rk4 })
}

/// Why a method does not fit a model (the diagnostic's label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Why {
    #[error("`{0}` does not apply to {1} models")]
    Kind(Method, ModelKind),
    #[error("`{0}` needs a `temperature`")]
    NoTemperature(Method),
    #[error("its mass matrix depends on the state or on time")]
    MassNotConstant,
    #[error("its friction ∂²R/∂q'∂q' depends on the state or on time")]
    FrictionNotConstant,
    #[error("its forces depend on the velocities")]
    VelocityForce,
    #[error("it has dissipation or forces")]
    NotConservative,
    #[error("its Lagrangian depends on time")]
    TimeDependent,
    #[error("its momenta depend on the coordinates (a velocity-dependent potential)")]
    VelocityPotential,
    #[error("it has {0} state variables, and a density on a grid is solved for at most {max}", max = GRID_MAX_DIM)]
    GridDimension(usize),
    #[error("a state variable has no `domain`, the interval of the grid")]
    NoDomain(usize),
    #[error("its `init` is a point, not a density")]
    PointMass(usize),
    #[error("its metric has off-diagonal entries, which a density on a 2-D grid does not take")]
    GridMetric,
    #[error("it has an `interaction`, whose particles move together")]
    Interaction,
}

/// Why a method does not fit a model, and what would: the diagnostic's label and help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misfit {
    pub why: Why,
    pub help: String,
}

/// Whether `method` fits the model and its equations; `Err` says why not and
/// what would. The one place where fit is decided.
pub fn misfit(model: &Model, eq: &Equations, method: Method) -> Result<(), Misfit> {
    why_not(model, eq, method).map_err(|why| {
        let help = if method == Method::Verlet && needs_of(method, model.kind).is_some() {
            "use `midpoint` or `variational` for a symplectic method on this model".to_string()
        } else if method == Method::Baoab && needs_of(method, model.kind).is_some() && model.temperature.is_some() {
            "use `em`, which takes any M(q) and Γ(q)".to_string()
        } else if let Why::NoDomain(k) = why {
            format!("give the grid's interval: `domain {} = [a, b]`", model.vars[k].name)
        } else if why == Why::Interaction {
            "interacting particles run with `em` (with a temperature) or `euler` (without), and their density with \
             `fokker-planck` in 1-D; all without a metric"
                .to_string()
        } else if let (Why::PointMass(k), Method::Svgd) = (why, method) {
            format!(
                "svgd moves a cloud of distinct particles: give a random `init {0} ~ normal(m, s)` or `~ uniform(a, b)`",
                model.vars[k].name
            )
        } else if let Why::PointMass(k) = why {
            format!(
                "the initial density comes from a random `init`: `init {0} ~ normal(m, s)` or `init {0} ~ uniform(a, b)`",
                model.vars[k].name
            )
        } else {
            format!("methods for this model: {}", fitting(model, eq).join(", "))
        };
        Misfit { why, help }
    })
}

/// Why `method` does not fit the model, if it does not.
fn why_not(model: &Model, eq: &Equations, method: Method) -> Result<(), Why> {
    if needs_of(method, model.kind).is_none() {
        return Err(Why::Kind(method, model.kind));
    }
    // A density flows without a temperature too, by transport alone; svgd's default is T = 1.
    if spec(method).stochastic && model.temperature.is_none() && !matches!(method, Method::FokkerPlanck | Method::Svgd)
    {
        return Err(Why::NoTemperature(method));
    }
    if method == Method::FokkerPlanck {
        grid_fits(model)?;
    }
    let pair_method = matches!(method, Method::Em | Method::Euler)
        || (method == Method::FokkerPlanck && model.vars.len() == 1 && model.metric.is_none());
    if model.interaction.is_some() && !pair_method {
        return Err(Why::Interaction);
    }
    if model.interaction.is_some() && model.metric.is_some() {
        return Err(Why::Interaction);
    }
    if method == Method::Svgd {
        if let Some(k) = model.init.iter().position(|i| matches!(i, crate::model::Init::Value(_))) {
            return Err(Why::PointMass(k));
        }
    }
    if let (Method::Verlet, Equations::Lagrangian(e)) = (method, eq) {
        verlet_fits(model, e)?;
    }
    if let (Method::Baoab, Equations::Lagrangian(e)) = (method, eq) {
        baoab_fits(model, e)?;
    }
    Ok(())
}

/// Whether the model has what a density on a grid needs: at most
/// [`GRID_MAX_DIM`] state variables, a `domain` and a random `init` for each.
fn grid_fits(model: &Model) -> Result<(), Why> {
    if model.vars.len() > GRID_MAX_DIM {
        return Err(Why::GridDimension(model.vars.len()));
    }
    if let Some(k) = (0..model.vars.len()).find(|&k| model.domain_of(k).is_none()) {
        return Err(Why::NoDomain(k));
    }
    if let Some(k) = model.init.iter().position(|i| matches!(i, crate::model::Init::Value(_))) {
        return Err(Why::PointMass(k));
    }
    let a = &model.arena;
    let off_diagonal = model
        .metric
        .iter()
        .flat_map(|g| g.iter().enumerate())
        .any(|(i, row)| row.iter().enumerate().any(|(j, &x)| i != j && !a.is_zero(x)));
    if off_diagonal {
        return Err(Why::GridMetric);
    }
    Ok(())
}

/// The names of the methods that fit the model, in [`SPECS`] order.
pub fn fitting(model: &Model, eq: &Equations) -> Vec<&'static str> {
    SPECS.iter().filter(|s| why_not(model, eq, s.method).is_ok()).map(|s| s.method.name()).collect()
}

/// The refusal of `method` as a diagnostic: at the model's `simulate method`
/// when `from_model`, else at its main statement.
pub fn refusal(model: &Model, eq: &Equations, method: Method, from_model: bool) -> Option<Diagnostic> {
    let m = misfit(model, eq, method).err()?;
    let span = if from_model { model.spans.method.unwrap_or(model.spans.main) } else { model.spans.main };
    Some(
        Diagnostic::new(span, format!("method `{method}` does not fit this model"))
            .label(m.why.to_string())
            .help(m.help),
    )
}

/// Whether `L = ½ v·Mv − V(q)` with constant `M` and no dissipation or
/// force, as Störmer–Verlet needs. `Err` says what is wrong.
fn verlet_fits(model: &Model, eq: &LagrangianEquations) -> Result<(), Why> {
    let a = &model.arena;
    let not_const = |e: ExprId| a.depends(e, |k| !matches!(k, SymKind::Param(_) | SymKind::Pi));
    if eq.mass_matrix.iter().flatten().any(|&m| not_const(m)) {
        return Err(Why::MassNotConstant);
    }
    if model.dissipation.is_some() || model.forces.iter().any(|&f| !a.is_zero(f)) {
        return Err(Why::NotConservative);
    }
    // With constant M, L − ½v·Mv must not depend on t.
    if a.depends(eq.lagrangian, |k| matches!(k, SymKind::Time)) {
        return Err(Why::TimeDependent);
    }
    for &p in &eq.momenta {
        // With constant M, p = M·v unless a velocity-dependent potential adds to it.
        if a.depends(p, |k| matches!(k, SymKind::Coord(_))) {
            return Err(Why::VelocityPotential);
        }
    }
    Ok(())
}

/// Whether `L = ½ v·Mv − V(q, t)` with constant `M`, a constant friction `Γ`
/// and forces of `q` and `t` alone, as BAOAB needs (docs/numerics.md §BAOAB).
fn baoab_fits(model: &Model, eq: &LagrangianEquations) -> Result<(), Why> {
    let a = &model.arena;
    let not_const = |e: ExprId| a.depends(e, |k| !matches!(k, SymKind::Param(_) | SymKind::Pi));
    if eq.mass_matrix.iter().flatten().any(|&m| not_const(m)) {
        return Err(Why::MassNotConstant);
    }
    if eq.friction.iter().flatten().flatten().any(|&g| not_const(g)) {
        return Err(Why::FrictionNotConstant);
    }
    if model.forces.iter().any(|&f| a.depends(f, |k| matches!(k, SymKind::Velocity(_)))) {
        return Err(Why::VelocityForce);
    }
    for &p in &eq.momenta {
        // With constant M, p = M·v unless a velocity-dependent potential adds to it.
        if a.depends(p, |k| matches!(k, SymKind::Coord(_) | SymKind::Time)) {
            return Err(Why::VelocityPotential);
        }
    }
    Ok(())
}

/// The constant mass matrix and friction of underdamped Langevin dynamics, as
/// numbers: their diagonals when both are diagonal, else row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct MechanicalNoise {
    pub diagonal: bool,
    pub mass: Vec<f64>,
    pub friction: Vec<f64>,
}

impl MechanicalNoise {
    fn of(model: &Model, m: &[Vec<ExprId>], g: &[Vec<ExprId>]) -> MechanicalNoise {
        let (a, env) = (&model.arena, model.env());
        let n = m.len();
        let diagonal = (0..n).all(|i| (0..n).all(|j| i == j || (a.is_zero(m[i][j]) && a.is_zero(g[i][j]))));
        let values = |x: &[Vec<ExprId>]| -> Vec<f64> {
            if diagonal {
                (0..n).map(|i| a.eval(x[i][i], &env)).collect()
            } else {
                x.iter().flatten().map(|&e| a.eval(e, &env)).collect()
            }
        };
        MechanicalNoise { diagonal, mass: values(m), friction: values(g) }
    }
}

/// Particles of an ensemble when the model has random initial values but
/// says nothing of their number.
pub const DEFAULT_PARTICLES: usize = 1000;

/// How many trajectories a run computes and how it writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One trajectory, its rows written as they are computed.
    Single,
    /// `particles` trajectories (random initial values, or a particle count
    /// asked for), written as the mean and standard deviation of every column.
    Ensemble { particles: usize },
}

/// A run's plan: what to build and what to write.
#[derive(Clone, Debug)]
pub struct Plan {
    pub method: Method,
    pub kind: ModelKind,
    /// Coordinates or state variables.
    pub n: usize,
    /// The expression kernels to build, [`Kernel::Row`] first.
    pub kernels: Vec<Kernel>,
    /// Whether the first-order system is built.
    pub system: bool,
    /// The compiled loop to build.
    pub compiled: Option<Loop>,
    pub layout: Layout,
    /// The columns of one trajectory's rows.
    pub trajectory_columns: Vec<String>,
    /// The columns written: those of a trajectory, or `X_mean`, `X_std` for
    /// every column `X` of an ensemble.
    pub columns: Vec<String>,
    /// Whether `H` is conserved (no explicit time dependence, dissipation or
    /// force), so that its drift is worth reporting.
    pub conservative: bool,
    /// Whether the model is time-dependent or stochastic (an explicit `t`, a
    /// force, a temperature), so that rows carry `work` and `heat`.
    pub thermo: bool,
    /// Whether the noise of Langevin dynamics is the same at every state and
    /// time (constant `M` and `Γ`, or a constant metric).
    pub constant_noise: bool,
    /// A Lagrangian model's constant `M` and `Γ` at the parameters' values, when
    /// it has a temperature and [`Plan::constant_noise`]: no kernel computes them.
    pub mechanical_noise: Option<MechanicalNoise>,
    /// Minibatches of the dynamics' sums over data (`simulate batch`).
    pub batch: Option<crate::batch::Batch>,
    /// Forward sensitivities, when asked for ([`Plan::with_sensitivities`]).
    pub sensitivity: Option<crate::sensitivity::Sensitivity>,
    /// Whether the equations are by segments of rows ([`crate::derive::indexed`]):
    /// no `n × n` table anywhere, code that does not grow with the families.
    pub indexed: bool,
    /// The half-bandwidth of the mass matrix or metric the system solves with, when it has
    /// one ([`crate::derive::MatrixShape`]); `0` for a diagonal one.
    pub matrix_band: Option<usize>,
}

/// The plan of a run of `method` (with `particles` asked for, if any), or the
/// refusal of a method that does not fit.
pub fn plan(model: &Model, eq: &Equations, method: Method, particles: Option<u64>) -> Result<Plan, Misfit> {
    misfit(model, eq, method)?;
    let needs = needs_of(method, model.kind).expect("a fitting method applies to the model's kind");
    let mut kernels = vec![Kernel::Row];
    kernels.extend(needs.kernels.iter().copied().filter(|&k| k.expressions(model, eq).is_some()));
    let constant_noise = constant_noise(model, eq);
    let mechanical_noise = match eq {
        Equations::Lagrangian(e) if constant_noise && model.temperature.is_some() => {
            e.friction.as_ref().map(|g| MechanicalNoise::of(model, &e.mass_matrix, g))
        }
        _ => None,
    };
    if mechanical_noise.is_some() {
        // Numbers once per run instead of n² compiled outputs.
        kernels.retain(|&k| !matches!(k, Kernel::Mass | Kernel::Friction));
    }
    if model.interaction.is_some() && method == Method::FokkerPlanck {
        // The convolution W∗ρ on the grid.
        kernels.push(Kernel::Pair);
    } else if model.interaction.is_some() {
        // The particles move together by the pair sum: no per-particle system or loop.
        for k in [Kernel::Gradient, Kernel::PairGradient] {
            if !kernels.contains(&k) {
                kernels.push(k);
            }
        }
    }
    let conservative = is_conservative(model, eq);
    // The density and the particles that move together (svgd, an interaction) have no
    // per-particle work ledger yet.
    let together = method == Method::FokkerPlanck || method == Method::Svgd || model.interaction.is_some();
    let thermo = is_thermodynamic(model, eq) && !together;
    let power = Kernel::Power.expressions(model, eq).unwrap_or_default();
    if thermo && !power.iter().all(|&p| model.arena.is_zero(p)) {
        // Without it the work stays 0.
        kernels.push(Kernel::Power);
    }
    if conservative && model.kind == ModelKind::Lagrangian && !kernels.contains(&Kernel::Energy) {
        // `H` alone, for its drift on the steps between rows, without the observes.
        kernels.push(Kernel::Energy);
    }
    let layout = match (particles, model.has_random_init()) {
        (Some(p), _) => Layout::Ensemble { particles: p as usize },
        (None, true) => Layout::Ensemble { particles: DEFAULT_PARTICLES },
        (None, false) => Layout::Single,
    };
    let layout = if method == Method::FokkerPlanck { Layout::Single } else { layout };
    let trajectory_columns =
        if method == Method::FokkerPlanck { density_columns(model) } else { trajectory_columns(model, thermo) };
    let columns = match layout {
        Layout::Single => trajectory_columns.clone(),
        Layout::Ensemble { .. } => {
            let mut c = vec!["t".to_string()];
            for name in &trajectory_columns[1..] {
                c.push(format!("{name}_mean"));
                c.push(format!("{name}_std"));
            }
            c
        }
    };
    let alone = model.interaction.is_none();
    Ok(Plan {
        method,
        kind: model.kind,
        n: model.vars.len(),
        kernels,
        system: needs.system && alone,
        compiled: needs.compiled.filter(|_| alone),
        layout,
        trajectory_columns,
        columns,
        conservative,
        thermo,
        constant_noise,
        mechanical_noise,
        batch: None,
        sensitivity: None,
        indexed: matches!(eq, Equations::Lagrangian(e) if e.indexed.is_some()),
        matrix_band: matrix_band(model, eq),
    })
}

/// The half-bandwidth of the system's matrix, if it has one.
fn matrix_band(model: &Model, eq: &Equations) -> Option<usize> {
    let n = model.vars.len();
    let a = &model.arena;
    match eq {
        Equations::Lagrangian(e) if e.indexed.is_some() => e.indexed.as_ref().map(|ix| ix.band()),
        Equations::Lagrangian(e) if n > 0 => {
            Some(crate::derive::MatrixShape::of(a, n, |i, j| e.mass_matrix[i][j]).band)
        }
        Equations::Energy(e) => {
            e.kernel.metric.as_ref().map(|g| crate::derive::MatrixShape::of(a, n, |i, j| g[i * n + j]).band)
        }
        _ => None,
    }
}

impl Plan {
    /// The length of the state: `2n` (positions and velocities) or `n`.
    pub fn dim(&self) -> usize {
        match self.kind {
            ModelKind::Lagrangian => 2 * self.n,
            ModelKind::Energy => self.n,
        }
    }

    /// The plan with minibatches of `size` rows (`simulate batch`): every sum
    /// over all the rows of a data family in the dynamics runs over `size`
    /// rows drawn afresh for each step, times `M/size`. Refused, with the
    /// reason, for methods whose steps are not one explicit evaluation per
    /// stage and for dynamics without such a sum.
    pub fn with_batch(mut self, model: &Model, eq: &Equations, size: u64) -> Result<Plan, String> {
        if !matches!(self.method, Method::Euler | Method::Rk4 | Method::Verlet | Method::Em) {
            return Err(format!(
                "batch: minibatches fit the fixed-step explicit methods euler, rk4, verlet and em, not {}",
                self.method
            ));
        }
        if self.method == Method::Em && self.is_ensemble() {
            return Err("batch: an em ensemble steps its particles together and cannot give each its own \
                        minibatch yet; run one trajectory, or a deterministic method's ensemble"
                .into());
        }
        let roots: Vec<ExprId> = match eq {
            Equations::Lagrangian(e) => e.forcing.iter().chain(e.mass_matrix.iter().flatten()).copied().collect(),
            Equations::Energy(e) => e.kernel.descent.iter().chain(e.kernel.metric.iter().flatten()).copied().collect(),
        };
        let a = &model.arena;
        let mut sizes: Vec<i64> = a
            .topo_order(&roots)
            .into_iter()
            .filter_map(|n| match a.node(n) {
                Node::Sum(i, _) => match a.symbol(*i).kind {
                    SymKind::Index { lo: 0, hi } if a.tables().iter().any(|t| t.rows as i64 == hi) => Some(hi),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        sizes.sort();
        sizes.dedup();
        let rows = match sizes.as_slice() {
            [] => {
                return Err("batch: the equations of motion have no sum over all the rows of a data family \
                            (`sum(i in 0..M, …)` reading `x[i]`)"
                    .into())
            }
            [m] => *m as usize,
            _ => {
                return Err(format!("batch: the equations sum over data of {sizes:?} rows; minibatches need one size"))
            }
        };
        if size == 0 || size as usize > rows {
            return Err(format!("batch must be between 1 and the {rows} rows of the data, not {size}"));
        }
        self.batch = Some(crate::batch::Batch { rows, size: size as usize });
        Ok(self)
    }

    /// Whether the run is an ensemble.
    pub fn is_ensemble(&self) -> bool {
        matches!(self.layout, Layout::Ensemble { .. })
    }

    /// The number of trajectories.
    pub fn particles(&self) -> usize {
        match self.layout {
            Layout::Single => 1,
            Layout::Ensemble { particles } => particles,
        }
    }
}

/// The columns of one trajectory: `t`, the coordinates, the velocities (`q'`),
/// `energy`, `grad_norm` (energy models), the observes, then `work` and `heat`
/// (time-dependent or stochastic models).
fn trajectory_columns(model: &Model, thermo: bool) -> Vec<String> {
    let mut c = vec!["t".to_string()];
    c.extend(model.vars.iter().map(|v| v.name.clone()));
    if model.kind == ModelKind::Lagrangian {
        c.extend(model.vars.iter().map(|v| format!("{}'", v.name)));
    }
    c.push("energy".into());
    if model.kind == ModelKind::Energy {
        c.push("grad_norm".into());
    }
    c.extend(model.observes.iter().map(|(n, _)| n.clone()));
    if thermo {
        c.push("work".into());
        c.push("heat".into());
    }
    c
}

/// The columns of a density's rows: `t`, `mass`, each variable's `_mean` and
/// `_std`, `energy` (`∫ E ρ`), `entropy` (`−∫ ρ log ρ`), `free_energy`.
fn density_columns(model: &Model) -> Vec<String> {
    let mut c = vec!["t".to_string(), "mass".to_string()];
    for v in &model.vars {
        c.push(format!("{}_mean", v.name));
        c.push(format!("{}_std", v.name));
    }
    c.extend(["energy", "entropy", "free_energy"].map(String::from));
    c
}

/// Whether `H` is conserved: no explicit time dependence, dissipation or force.
fn is_conservative(model: &Model, eq: &Equations) -> bool {
    let Equations::Lagrangian(e) = eq else { return false };
    let a = &model.arena;
    !a.depends(e.lagrangian, |k| k == SymKind::Time)
        && model.dissipation.is_none()
        && model.forces.iter().all(|&f| a.is_zero(f))
}

/// Whether the model exchanges work or heat: an explicit time dependence of
/// `L`, `E` or a force, a force, or a temperature (docs/numerics.md §Work and heat).
fn is_thermodynamic(model: &Model, eq: &Equations) -> bool {
    let a = &model.arena;
    let timed = |e: ExprId| a.depends(e, |k| k == SymKind::Time);
    model.temperature.is_some()
        || match eq {
            Equations::Lagrangian(e) => timed(e.lagrangian) || model.forces.iter().any(|&f| !a.is_zero(f)),
            Equations::Energy(e) => timed(e.kernel.energy),
        }
}

/// Whether the noise matrix of Langevin dynamics depends on neither the state
/// nor time: `M` and `Γ`, or the metric, are constant.
fn constant_noise(model: &Model, eq: &Equations) -> bool {
    let a = &model.arena;
    let constant = |e: &ExprId| !a.depends(*e, |k| !matches!(k, SymKind::Param(_) | SymKind::Pi));
    match eq {
        Equations::Lagrangian(e) => {
            e.mass_matrix.iter().flatten().all(constant) && e.friction.iter().flatten().flatten().all(constant)
        }
        Equations::Energy(e) => e.kernel.metric.iter().flatten().all(constant),
    }
}
