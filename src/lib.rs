//! lagc compiles the equations of motion of physics and of learning.
//!
//! A `.lag` model — a Lagrangian `L(q, q', t)` or an energy `E(θ, t)` — is
//! parsed ([`syntax`]), checked and lowered to a symbolic model ([`lower`],
//! [`model`]), differentiated into its equations ([`derive`]) and printed
//! ([`report`]).
//!
//! ```
//! let src = "coord x\nlagrangian = 1/2*x'^2 - 1/2*x^2";
//! let mut c = lagc::compile_source(src, "oscillator", &[]).unwrap();
//! let f = c.text_of(lagc::Part::Forcing(0));
//! assert_eq!(f, "-x");
//! ```

pub mod cli;
pub mod derive;
pub mod diag;
pub mod ensemble;
pub mod integrate;
pub mod jit;
pub mod kernels;
pub mod lower;
pub mod model;
pub mod plot;
pub mod program;
pub mod report;
pub mod run;
pub mod sym;
pub mod syntax;

pub use derive::{EnergyEquations, Equations, LagrangianEquations};
pub use diag::{Diagnostic, Diagnostics, Span};
pub use model::{Method, Model, ModelKind};
pub use report::Format;

use std::path::Path;

/// A checked model with its derived equations.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub model: Model,
    pub equations: Equations,
    /// Time spent parsing and checking (`parse`) and deriving (`derive`).
    pub timings: Timings,
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
    pub fn text_of(&mut self, part: Part) -> String {
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
        report::show(&mut self.model.arena, e)
    }

    /// All derived equations in one format; refused when they would print
    /// larger than [`report::PRINT_LIMIT`].
    pub fn render(&mut self, format: Format) -> Result<String, report::TooLarge> {
        report::render(&mut self.model, &self.equations, format)
    }
}

/// Parses, checks and derives a model from source text. `name` is the model's
/// name when the source has no `model` statement; `overrides` are `--set`
/// values for consts and params.
pub fn compile_source(source: &str, name: &str, overrides: &lower::Overrides) -> Result<Compiled, Diagnostics> {
    let fail = |list: Vec<Diagnostic>| Diagnostics { file: format!("{name}.lag"), source: source.to_string(), list };
    let start = std::time::Instant::now();
    let file = syntax::parse_file(source).map_err(|d| fail(vec![d]))?;
    let mut model = lower::lower(&file, name, overrides).map_err(fail)?;
    let parse = start.elapsed();
    let equations = derive::derive(&mut model).map_err(fail)?;
    Ok(Compiled { model, equations, timings: Timings { parse, derive: start.elapsed() - parse } })
}

/// Errors of [`compile_file`]: the file could not be read, or the model has errors.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{0}")]
    Model(#[from] Diagnostics),
}

/// Reads a `.lag` file and compiles it as [`compile_source`] does.
pub fn compile_file(path: &Path, overrides: &lower::Overrides) -> Result<Compiled, LoadError> {
    let shown = path.display().to_string();
    if path.is_dir() {
        return Err(LoadError::Read { path: shown, reason: "it is a directory".into() });
    }
    let bytes = std::fs::read(path).map_err(|e| LoadError::Read { path: shown.clone(), reason: e.to_string() })?;
    let source = String::from_utf8(bytes).map_err(|e| LoadError::Read {
        path: shown.clone(),
        reason: format!("it is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()),
    })?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model").to_string();
    compile_source(&source, &stem, overrides).map_err(|mut d| {
        d.file = shown;
        LoadError::Model(d)
    })
}

/// Parses one expression in `.lag` syntax and lowers it in `model`'s names
/// (velocities written `q'`), as derived equations are printed.
pub fn parse_expression(model: &mut Model, text: &str) -> Result<sym::ExprId, Diagnostic> {
    let e = syntax::parse_expr(text)?;
    lower::lower_expression(model, &e)
}
