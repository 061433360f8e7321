//! The model IR: what a `.lag` file means once names are resolved, indices
//! unrolled and `let`s inlined. Every expression lives in the model's
//! [`Arena`]; parameters stay symbols so derived equations keep their names.

use crate::diag::Span;
use crate::sym::{Arena, Env, ExprId, SymId};
use std::fmt;

/// The two kinds of model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// `L(q, q', t)`, compiled to the Euler–Lagrange equations.
    Lagrangian,
    /// `E(θ, t)`, compiled to the gradient flow or Langevin dynamics.
    Energy,
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Lagrangian => "lagrangian",
            ModelKind::Energy => "energy",
        })
    }
}

/// The integration methods of docs/language.md §Methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Euler,
    Prox,
    Rk4,
    Dopri5,
    Verlet,
    Midpoint,
    Variational,
    Em,
    Baoab,
    /// The density on a grid (docs/numerics.md §Fokker–Planck).
    FokkerPlanck,
    /// Stein variational gradient descent (docs/numerics.md §Stein variational gradient descent).
    Svgd,
}

impl Method {
    pub const ALL: [Method; 11] = [
        Method::Euler,
        Method::Prox,
        Method::Rk4,
        Method::Dopri5,
        Method::Verlet,
        Method::Midpoint,
        Method::Variational,
        Method::Em,
        Method::Baoab,
        Method::FokkerPlanck,
        Method::Svgd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Euler => "euler",
            Method::Prox => "prox",
            Method::Rk4 => "rk4",
            Method::Dopri5 => "dopri5",
            Method::Verlet => "verlet",
            Method::Midpoint => "midpoint",
            Method::Variational => "variational",
            Method::Em => "em",
            Method::Baoab => "baoab",
            Method::FokkerPlanck => "fokker-planck",
            Method::Svgd => "svgd",
        }
    }

    pub fn from_name(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == s)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A real parameter.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub sym: SymId,
    /// Its value expression, in numbers, `pi` and earlier parameters.
    pub expr: ExprId,
    /// Its current value.
    pub value: f64,
    pub span: Span,
}

/// A generalized coordinate (Lagrangian models) or a state variable (energy
/// models).
#[derive(Clone, Debug)]
pub struct Variable {
    /// `th1`, or `q[3]` for a member of a family.
    pub name: String,
    pub sym: SymId,
    /// The velocity symbol `q'` (Lagrangian models).
    pub velocity: Option<SymId>,
    /// The acceleration symbol `q''` (Lagrangian models).
    pub acceleration: Option<SymId>,
}

/// An initial value: a constant expression of parameters, or a distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Value(ExprId),
    Normal { mean: ExprId, std: ExprId },
    Uniform { lo: ExprId, hi: ExprId },
}

/// Run defaults from `simulate`; the command line overrides each.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub t0: Option<f64>,
    pub t_end: Option<f64>,
    pub dt: Option<f64>,
    pub method: Option<Method>,
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
    pub every: Option<u64>,
    pub particles: Option<u64>,
    pub seed: Option<u64>,
    /// Rows per minibatch of the sums over data.
    pub batch: Option<u64>,
    /// Grid cells per dimension of `fokker-planck`.
    pub cells: Option<u64>,
    /// The kernel bandwidth `h` of `svgd`, `k(x, y) = exp(−|x − y|²/h)`.
    pub bandwidth: Option<f64>,
}

/// `domain x = [lo, hi]`: the interval of a state variable on the grid of `fokker-planck`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Domain {
    /// The state variable's index.
    pub var: usize,
    /// The bounds, constant expressions of parameters.
    pub lo: ExprId,
    pub hi: ExprId,
    pub span: Span,
}

/// Where the model's main statements are, for diagnostics found after lowering.
#[derive(Clone, Debug, Default)]
pub struct Spans {
    /// The `lagrangian` or `energy` statement.
    pub main: Span,
    pub metric: Option<Span>,
    pub dissipation: Option<Span>,
    pub temperature: Option<Span>,
    pub method: Option<Span>,
    /// The first `init` statement, if any.
    pub init: Option<Span>,
}

/// A checked model.
#[derive(Clone, Debug)]
pub struct Model {
    pub name: String,
    pub kind: ModelKind,
    pub arena: Arena,
    /// The symbol `t`.
    pub time: SymId,
    pub consts: Vec<(String, i64)>,
    pub params: Vec<Param>,
    /// Coordinates or state variables, in declaration order.
    pub vars: Vec<Variable>,
    pub lagrangian: Option<ExprId>,
    pub dissipation: Option<ExprId>,
    /// One generalized force per coordinate (zero where none is given).
    pub forces: Vec<ExprId>,
    pub energy: Option<ExprId>,
    /// `g(θ)`, row-major rows; `None` for the Euclidean metric.
    pub metric: Option<Vec<Vec<ExprId>>>,
    pub temperature: Option<ExprId>,
    pub observes: Vec<(String, ExprId)>,
    /// Initial positions or states.
    pub init: Vec<Init>,
    /// Initial velocities (Lagrangian models).
    pub init_velocity: Vec<Init>,
    pub settings: Settings,
    pub spans: Spans,
    /// What is accepted but likely a mistake: names that look alike.
    pub warnings: Vec<crate::diag::Diagnostic>,
    /// The data files the model's `data` statements read, as opened.
    pub data_files: Vec<std::path::PathBuf>,
    /// The grid domains of state variables (`domain x = [a, b]`), in statement order.
    pub domains: Vec<Domain>,
    /// The pair energy `W(x, x~)` of `interaction = …`, symmetric under the swap.
    pub interaction: Option<Interaction>,
}

/// `interaction = W`: the energy of a pair of particles.
#[derive(Clone, Debug, PartialEq)]
pub struct Interaction {
    pub w: ExprId,
    /// The symbols `x~` of the other particle, one per state variable, in order.
    pub twins: Vec<SymId>,
    pub span: Span,
}

impl Model {
    /// The coordinate or state symbols.
    pub fn var_syms(&self) -> Vec<SymId> {
        self.vars.iter().map(|v| v.sym).collect()
    }

    /// The velocity symbols (empty for energy models).
    pub fn velocity_syms(&self) -> Vec<SymId> {
        self.vars.iter().filter_map(|v| v.velocity).collect()
    }

    pub fn param_syms(&self) -> Vec<SymId> {
        self.params.iter().map(|p| p.sym).collect()
    }

    /// An environment with every parameter at its current value.
    pub fn env(&self) -> Env {
        let mut env = Env::new(&self.arena);
        for p in &self.params {
            env.set(p.sym, p.value);
        }
        env
    }

    /// Writes out every rolled sum over family members, term by term
    /// ([`crate::sym::Arena::unroll_members`]), in every expression of the
    /// model: the form the per-coordinate derivation needs.
    pub fn unroll_members(&mut self) {
        if self.arena.families().is_empty() {
            return;
        }
        let (a, expressions) = self.arena_and_expressions();
        for e in expressions {
            *e = a.unroll_members(*e);
        }
    }

    /// Every expression the model states: `L`, `R`, `E`, `T`, the forces, the metric, the
    /// observes and the interaction.
    pub fn expressions(&mut self) -> Vec<ExprId> {
        self.arena_and_expressions().1.into_iter().map(|e| *e).collect()
    }

    /// The arena and the places of [`Model::expressions`], borrowed apart so that the
    /// arena can rewrite them.
    fn arena_and_expressions(&mut self) -> (&mut Arena, Vec<&mut ExprId>) {
        let mut out: Vec<&mut ExprId> = Vec::new();
        out.extend(self.lagrangian.iter_mut());
        out.extend(self.dissipation.iter_mut());
        out.extend(self.energy.iter_mut());
        out.extend(self.temperature.iter_mut());
        out.extend(self.forces.iter_mut());
        out.extend(self.metric.iter_mut().flatten().flatten());
        out.extend(self.observes.iter_mut().map(|(_, e)| e));
        out.extend(self.interaction.iter_mut().map(|w| &mut w.w));
        (&mut self.arena, out)
    }

    /// The domain of state variable `k`, if one is given.
    pub fn domain_of(&self, k: usize) -> Option<&Domain> {
        self.domains.iter().find(|d| d.var == k)
    }

    /// Whether any initial value is random (the run is an ensemble).
    pub fn has_random_init(&self) -> bool {
        self.init.iter().chain(&self.init_velocity).any(|i| !matches!(i, Init::Value(_)))
    }
}
