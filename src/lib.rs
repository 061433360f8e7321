//! lagc compiles the equations of motion of physics and of learning.
//!
//! A `.lag` model — a Lagrangian `L(q, q', t)` or an energy `E(θ, t)` — goes
//! through one straight pipeline, each stage a module with one entry that
//! takes data and returns data:
//!
//! ```text
//! source → syntax::parse_file → AST → lower::lower → Model → derive::derive → Equations
//!        → plan::plan → Plan → Kernels::build (backend) → Kernels → drive::run → rows
//! ```
//!
//! [`compile_source`] runs the front half (to [`Equations`], for `check` and
//! `derive`); [`compile_for`] also derives what a method needs, and
//! [`Compiled::run`] plans, builds and drives a run.
//!
//! ```
//! let src = "coord x\nlagrangian = 1/2*x'^2 - 1/2*x^2";
//! let c = lagc::compile_source(src, "oscillator", &[]).unwrap();
//! let f = c.text_of(lagc::Part::Forcing(0));
//! assert_eq!(f, "-x");
//! ```

pub mod backend;
pub mod batch;
pub mod cli;
pub mod data;
pub mod derive;
mod diag;
pub mod drive;
pub mod fit;
pub mod integrate;
mod jit;
mod lower;
pub mod model;
pub mod plan;
pub mod plot;
mod report;
mod report_indexed;
pub mod sensitivity;
pub mod sym;
mod syntax;

pub use backend::{BackendKind, Kernels};
pub use cli::load::{compile_file, LoadError};
pub use derive::{EnergyEquations, Equations, Extras, LagrangianEquations};
pub use diag::{Diagnostic, Diagnostics, Span};
pub use drive::{Bands, Control, RowSink, RunConfig, RunError, RunOptions, Summary};
pub use lower::{DataFiles, Overrides};
pub use model::{Method, Model, ModelKind};
pub use plan::{Kernel, Plan};
pub use report::{Format, TooLarge, PRINT_LIMIT};

/// A checked model with its derived equations.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub model: Model,
    pub equations: Equations,
    /// The method the equations were derived for: the one asked for, the
    /// model's own, or the default.
    pub method: Method,
    /// Time spent parsing and checking (`parse`) and deriving (`derive`).
    pub timings: Timings,
    /// The file name and source text, for diagnostics found later.
    file: String,
    source: String,
}

/// Wall time of the front-end phases.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// Parsing, name resolution and checking.
    pub parse: std::time::Duration,
    /// Derivation and simplification of the equations.
    pub derive: std::time::Duration,
}

/// One derived quantity, for [`Compiled::text_of`].
#[derive(Clone, Copy, Debug)]
pub enum Part {
    Lagrangian,
    Momentum(usize),
    MassMatrix(usize, usize),
    Forcing(usize),
    Energy,
    Gradient(usize),
}

impl Compiled {
    /// The `.lag` text of one derived quantity (as `lagc derive` prints it).
    ///
    /// # Panics
    /// If the model's kind has no such quantity.
    pub fn text_of(&self, part: Part) -> String {
        if let Equations::Lagrangian(LagrangianEquations { indexed: Some(ix), .. }) = &self.equations {
            // Equations by segments: the row written out, in a copy of the arena.
            let mut a = self.model.arena.clone();
            let row = |a: &mut sym::Arena, segs: &[derive::indexed::Segment], i: usize| {
                derive::indexed::Indexed::find(segs, i).at(a, i)
            };
            let e = match part {
                Part::Momentum(i) => Some(row(&mut a, &ix.momenta, i)),
                Part::Forcing(i) => Some(row(&mut a, &ix.forcing, i)),
                Part::MassMatrix(i, j) if i == j => Some(row(&mut a, &ix.mass, i)),
                Part::MassMatrix(..) => Some(a.int(0)),
                _ => None,
            };
            if let Some(e) = e {
                return report::show(&mut a, e);
            }
        }
        let e = match (&self.equations, part) {
            (Equations::Lagrangian(e), Part::Lagrangian) => e.lagrangian,
            (Equations::Lagrangian(e), Part::Momentum(i)) => e.momenta[i],
            (Equations::Lagrangian(e), Part::MassMatrix(i, j)) => e.mass_matrix[i][j],
            (Equations::Lagrangian(e), Part::Forcing(i)) => e.forcing[i],
            (Equations::Lagrangian(e), Part::Energy) => e.energy,
            (Equations::Energy(e), Part::Energy) => e.energy,
            (Equations::Energy(e), Part::Gradient(i)) => e.gradient[i],
            _ => panic!("{part:?} is not a quantity of a {} model", self.model.kind),
        };
        // Printing builds display nodes; they go to a copy of the arena.
        report::show(&mut self.model.arena.clone(), e)
    }

    /// All derived equations in one format; refused when they would print
    /// larger than [`PRINT_LIMIT`].
    pub fn render(&self, format: Format) -> Result<String, TooLarge> {
        report::render(&mut self.model.clone(), &self.equations, format)
    }

    /// Diagnostics about this model's source.
    pub fn diagnostics(&self, list: Vec<Diagnostic>) -> Diagnostics {
        Diagnostics { file: self.file.clone(), source: self.source.clone(), list }
    }

    /// The refusal of `method`, with a span, if it does not fit this model.
    pub fn refusal(&self, method: Method) -> Option<Diagnostic> {
        let from_model = self.model.settings.method == Some(method);
        plan::refusal(&self.model, &self.equations, method, from_model)
    }

    /// The plan of a run with these settings.
    pub fn plan(&self, cfg: &RunConfig) -> Result<Plan, RunError> {
        let plan = plan::plan(&self.model, &self.equations, cfg.method, cfg.particles)
            .map_err(|misfit| RunError::Misfit { method: cfg.method, misfit })?;
        match cfg.batch {
            Some(b) => plan
                .with_batch(&self.model, &self.equations, b)
                .map_err(|m| RunError::Setup(integrate::Cause::Invalid(m))),
            None => Ok(plan),
        }
    }

    /// Derives the Jacobians of the first-order system that forward
    /// sensitivities need (what [`Extras::jacobians`] asks of `derive`).
    pub fn derive_jacobians(&mut self) -> Result<(), Diagnostics> {
        derive::jacobians(&mut self.model, &mut self.equations).map_err(|d| self.diagnostics(vec![d]))
    }

    /// Derives the metric's first and second derivatives that an energy
    /// model's geodesic needs (`lagc solve`; the kernel
    /// [`plan::Kernel::MetricDerivatives`]).
    pub fn derive_metric_derivatives(&mut self) -> Result<(), Diagnostics> {
        derive::metric_derivatives(&mut self.model, &mut self.equations).map_err(|d| self.diagnostics(vec![d]))
    }

    /// The plan of a run with these settings and the sensitivities of every
    /// state column to `names` (params, or `init.x`); the Jacobians must have
    /// been derived ([`Compiled::derive_jacobians`]).
    pub fn plan_sensitivities(&self, cfg: &RunConfig, names: &[String]) -> Result<Plan, RunError> {
        self.plan(cfg)?
            .with_sensitivities(&self.model, &self.equations, names)
            .map_err(|m| RunError::Setup(integrate::Cause::Invalid(m)))
    }

    /// As [`Compiled::run`], with the sensitivities to `names` as the last columns.
    pub fn run_sensitivities(
        &self,
        cfg: &RunConfig,
        names: &[String],
        sink: &mut dyn RowSink,
    ) -> Result<Summary, RunError> {
        let plan = self.plan_sensitivities(cfg, names)?;
        let kernels = Kernels::build_best(&self.model, &self.equations, &plan)?;
        drive::run(&self.model, &plan, &kernels, cfg, sink, Control::default())
    }

    /// Plans the run, builds its kernels (native, or portable where Cranelift
    /// refuses) and runs it, writing rows to `sink`.
    pub fn run(&self, cfg: &RunConfig, sink: &mut dyn RowSink) -> Result<Summary, RunError> {
        let plan = self.plan(cfg)?;
        let kernels = Kernels::build_best(&self.model, &self.equations, &plan)?;
        drive::run(&self.model, &plan, &kernels, cfg, sink, Control::default())
    }
}

/// Parses, checks and derives a model from source text, for `check` and
/// `derive`. `name` is the model's name when the source has no `model`
/// statement; `overrides` are `--set` values for consts and params. A method
/// named by the model's `simulate` line that does not fit is an error.
pub fn compile_source(source: &str, name: &str, overrides: &Overrides) -> Result<Compiled, Diagnostics> {
    compile(source, name, overrides, None, false, &DataFiles::default())
}

/// As [`compile_source`], with `data` files found through `files`.
pub fn compile_source_in(
    source: &str,
    name: &str,
    overrides: &Overrides,
    files: &DataFiles,
) -> Result<Compiled, Diagnostics> {
    compile(source, name, overrides, None, false, files)
}

/// As [`compile_source`], and derives what `method` (or, when `None`, the
/// model's own method or the default) needs to run. Whether the method fits
/// is the business of [`Compiled::refusal`] and [`Compiled::plan`]; a method
/// the model's `simulate` line states is not checked when `method` asks for
/// another, since the command line overrides it.
pub fn compile_for(
    source: &str,
    name: &str,
    overrides: &Overrides,
    method: Option<Method>,
) -> Result<Compiled, Diagnostics> {
    compile(source, name, overrides, method, true, &DataFiles::default())
}

/// As [`compile_for`], with `data` files found through `files`.
pub fn compile_for_in(
    source: &str,
    name: &str,
    overrides: &Overrides,
    method: Option<Method>,
    files: &DataFiles,
) -> Result<Compiled, Diagnostics> {
    compile(source, name, overrides, method, true, files)
}

fn compile(
    source: &str,
    name: &str,
    overrides: &Overrides,
    asked: Option<Method>,
    extras: bool,
    files: &DataFiles,
) -> Result<Compiled, Diagnostics> {
    let file = format!("{name}.lag");
    let fail = |list: Vec<Diagnostic>| Diagnostics { file: file.clone(), source: source.to_string(), list };
    let start = std::time::Instant::now();
    let ast = syntax::parse_file(source).map_err(fail)?;
    let mut model = lower::lower(&ast, name, overrides, files).map_err(fail)?;
    let parse = start.elapsed();
    let method = plan::method_for(&model, asked);
    let wanted = if extras { plan::extras(method, model.kind) } else { Extras::default() };
    let equations = derive::derive(&mut model, wanted).map_err(fail)?;
    // The file's method is a default the command line overrides: a misfit is the file's error
    // only when the run would use it.
    if let Some(stated) = model.settings.method.filter(|&m| asked.is_none_or(|a| a == m)) {
        if let Some(d) = plan::refusal(&model, &equations, stated, true) {
            return Err(fail(vec![d]));
        }
    }
    let timings = Timings { parse, derive: start.elapsed() - parse };
    Ok(Compiled { model, equations, method, timings, file, source: source.to_string() })
}

/// Parses one expression in `.lag` syntax and lowers it in `model`'s names
/// (velocities written `q'`), as derived equations are printed.
pub fn parse_expression(model: &mut Model, text: &str) -> Result<sym::ExprId, Diagnostic> {
    let e = syntax::parse_expr(text)?;
    lower::lower_expression(model, &e)
}

/// Entry points for the fuzz targets and their regression test
/// (`tests/fuzz_corpus.rs`), so that both run the same code. Errors are fine;
/// a panic, a hang or running out of memory is a bug.
#[doc(hidden)]
pub mod fuzzing {
    /// The whole front end on arbitrary text: parse → check → derive →
    /// render as text, LaTeX and JSON, or render the diagnostics.
    pub fn front_end(source: &str) {
        match crate::compile_source(source, "fuzz", &[]) {
            Ok(compiled) => {
                for format in [crate::Format::Text, crate::Format::Latex, crate::Format::Json] {
                    let _ = compiled.render(format).map(|s| s.len());
                }
            }
            Err(diagnostics) => {
                let _ = diagnostics.render();
            }
        }
    }

    /// The largest factor [`scaled`] applies.
    pub const SCALE_MAX: u64 = 1000;

    /// The large-size mode of the fuzz targets: `data`'s first byte picks a
    /// factor of 10, 100 or 1,000, and the rest, as a model, is scaled by it:
    /// every integer `const` (a family's length, a sum's range) is multiplied
    /// by the factor, and the right-hand side of each `energy =` or
    /// `lagrangian =` line is repeated as that many terms of a sum. `None`
    /// when the rest is not text.
    pub fn scaled(data: &[u8]) -> Option<String> {
        let (&first, rest) = data.split_first()?;
        let source = std::str::from_utf8(rest).ok()?;
        let factor = 10u64.pow(1 + u32::from(first % 3));
        Some(scale(source, factor))
    }

    /// `source` with its integer consts and its `energy`/`lagrangian`
    /// right-hand sides scaled by `factor` (see [`scaled`]).
    pub fn scale(source: &str, factor: u64) -> String {
        let mut out = String::with_capacity(source.len());
        for line in source.split_inclusive('\n') {
            let (body, end) = match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            };
            let trimmed = body.trim_start();
            if let Some(rest) = trimmed.strip_prefix("const ") {
                // `const N = 16` (one or more, comma-separated): integers scaled.
                let scaled: Vec<String> = rest
                    .split(',')
                    .map(|item| match item.split_once('=') {
                        Some((name, value)) => match value.trim().parse::<u64>() {
                            Ok(v) => format!("{}= {}", name, v.saturating_mul(factor)),
                            Err(_) => item.to_string(),
                        },
                        None => item.to_string(),
                    })
                    .collect();
                out.push_str(&format!("const {}{end}", scaled.join(",")));
                continue;
            }
            let head = ["energy", "lagrangian"].into_iter().find_map(|k| {
                let after = trimmed.strip_prefix(k)?.trim_start();
                after.strip_prefix('=').map(|rhs| (k, rhs.trim()))
            });
            match head {
                Some((k, rhs)) if !rhs.is_empty() && !rhs.contains('#') => {
                    let term = format!("({rhs})");
                    let terms = vec![term; factor as usize];
                    out.push_str(&format!("{k} = {}{end}", terms.join(" + ")));
                }
                _ => out.push_str(line),
            }
        }
        out
    }

    /// [`front_end`] on a model scaled by [`scaled`].
    pub fn front_end_scaled(data: &[u8]) {
        if let Some(source) = scaled(data) {
            front_end(&source);
        }
    }

    /// A model that compiles is built into native kernels and run for ten
    /// steps of 1e-3.
    pub fn kernels(source: &str) {
        // Large models only make the run slow, not more interesting.
        if source.len() > 2048 {
            return;
        }
        let Ok(compiled) = crate::compile_for(source, "fuzz", &[], None) else { return };
        let options = crate::RunOptions {
            // A far-away `t0` with the short `t_end` would be a long run, not a bug.
            t0: Some(0.0),
            t_end: Some(0.01),
            dt: Some(0.001),
            // `simulate particles = 1e9` asks for a long run; a few particles exercise the same code.
            particles: compiled.model.settings.particles.map(|p| p.min(64)),
            ..Default::default()
        };
        let Ok(cfg) = crate::RunConfig::resolve(&compiled.model, &options) else { return };
        let mut rows: Vec<Vec<f64>> = Vec::new();
        let _ = compiled.run(&cfg, &mut rows);
    }
}
