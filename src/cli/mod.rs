//! The command line (docs/numerics.md §Command line). Only this module reads arguments,
//! touches files and prints; everything else is data in, data out.
//!
//! Exit status: 0 success, 1 the model has errors, 2 bad command line,
//! 3 the run failed numerically.

use crate::report::Format;
use clap::{Parser, Subcommand, ValueEnum};
use load::{compile_file_for, compile_file_with_data, LoadError};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

// Within `cli`, `eprint!` and `eprintln!` write to standard error and drop a
// failed write (a full or closed stream): the std macros would panic, and
// there is nowhere left to report the failure. Defined before the submodules
// so that they use these too.
macro_rules! eprint {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}
macro_rules! eprintln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

mod density_out;
mod fit_cmd;
pub mod float_text;
mod guard;
pub mod load;
mod output;
mod run_cmd;
mod solve_cmd;

/// Exit status for a model with errors.
pub const EXIT_MODEL: i32 = 1;
/// Exit status for a bad command line.
pub const EXIT_USAGE: i32 = 2;
/// Exit status for a numerical failure during a run.
pub const EXIT_NUMERIC: i32 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "lagc",
    version,
    about = "Compile equations of motion from Lagrangians and energies, and run them",
    after_help = "Examples:\n  \
      lagc check examples/pendulum.lag\n  \
      lagc derive examples/double_pendulum.lag --format latex\n  \
      lagc run examples/kepler.lag --out kepler.csv --plot kepler.svg\n  \
      lagc run examples/rosenbrock.lag --method prox --dt 0.5 --t-end 20\n\n\
      Exit status: 0 success, 1 the model has errors, 2 bad command line, 3 the run failed numerically."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse and validate a model; report every error.
    #[command(
        after_help = "Examples:\n  lagc check examples/pendulum.lag\n  lagc check examples/fput.lag --method verlet --set N=64"
    )]
    Check {
        /// The `.lag` file.
        file: PathBuf,
        /// Also check that this method fits the model.
        #[arg(long)]
        method: Option<String>,
        /// Override a const or param: NAME=VALUE (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Read the `data` statement that declares NAME from PATH instead (repeatable).
        #[arg(long = "data", value_name = "NAME=PATH")]
        data: Vec<String>,
    },
    /// Print the derived equations: momenta, mass matrix, forcing and H, or gradient and flow.
    #[command(after_help = "Examples:\n  lagc derive examples/pendulum.lag\n  \
                      lagc derive examples/double_pendulum.lag --format json\n  \
                      lagc derive examples/pendulum_chain.lag --set N=3 --format latex")]
    Derive {
        /// The `.lag` file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = FormatArg::Text)]
        format: FormatArg,
        /// Override a const or param: NAME=VALUE (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Read the `data` statement that declares NAME from PATH instead (repeatable).
        #[arg(long = "data", value_name = "NAME=PATH")]
        data: Vec<String>,
    },
    /// Integrate a model and write its trajectory.
    #[command(after_help = "Examples:\n  \
        lagc run examples/pendulum.lag > pendulum.csv\n  \
        lagc run examples/kepler.lag --method variational --dt 0.01 --t-end 100 --plot kepler.svg --out kepler.npy\n  \
        lagc run examples/double_well.lag --particles 10000 --seed 7 --dump finals.csv --out moments.csv\n  \
        lagc run examples/logistic_regression.lag --batch 32 --out sgd.csv\n\n\
        Columns: t, each coordinate, each velocity `q'`, energy (H or E; grad_norm for energy models), each observe.")]
    Run(Box<RunArgs>),
    /// The path between the model's `init` positions and `--to` that makes the action stationary.
    #[command(after_help = "Examples:\n  \
        lagc solve examples/pendulum_bvp.lag --to th=1 --out narrow.csv --plot narrow.svg\n  \
        lagc solve examples/double_pendulum.lag --to th1=0.5,th2=-0.5 --t-end 0.5 --steps 500 --out dp_bvp.csv\n\n\
        Columns: as `lagc run` writes them. Exit status 3 when there is no isolated solution \
        (Newton does not converge, or the endpoints are conjugate points).")]
    Solve(Box<solve_cmd::SolveArgs>),
    /// Fit params to observed trajectories by Levenberg–Marquardt, with the sensitivities as the
    /// exact Jacobian.
    #[command(after_help = "Examples:\n  \
        lagc fit examples/fit_damped_oscillator.lag --data examples/data/damped_obs.csv --params c,log:k\n\n\
        Prints each param with its standard error, the residual norm and the iterations. Exit status 3 \
        when Levenberg–Marquardt does not converge.")]
    Fit(Box<fit_cmd::FitArgs>),
    /// Print the Cranelift IR of every compiled kernel.
    #[command(
        after_help = "Examples:\n  lagc ir examples/pendulum.lag\n  lagc ir examples/fput.lag --set N=4 --method rk4"
    )]
    Ir {
        /// The `.lag` file.
        file: PathBuf,
        /// The method whose kernels to compile [default: the model's `simulate method`, else rk4, or em
        /// with a temperature].
        #[arg(long)]
        method: Option<String>,
        /// Override a const or param: NAME=VALUE (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Read the `data` statement that declares NAME from PATH instead (repeatable).
        #[arg(long = "data", value_name = "NAME=PATH")]
        data: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// The `.lag` file.
    pub(crate) file: PathBuf,
    /// Override a const or param: NAME=VALUE (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub(crate) set: Vec<String>,
    /// Integration method: euler, prox, rk4, dopri5, verlet, midpoint, variational, em, baoab, fokker-planck,
    /// svgd [default: the model's `simulate method`, else rk4, or em with a temperature].
    #[arg(long)]
    pub(crate) method: Option<String>,
    /// Start time [default: the model's `simulate t0`, else 0].
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) t0: Option<f64>,
    /// End time [default: the model's `simulate t_end`, else t0 + 10].
    #[arg(long = "t-end", allow_hyphen_values = true)]
    pub(crate) t_end: Option<f64>,
    /// Step size, the output spacing for dopri5 [default: the model's `simulate dt`, else 0.001].
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) dt: Option<f64>,
    /// Relative tolerance of dopri5 [default: the model's `simulate rtol`, else 1e-6].
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) rtol: Option<f64>,
    /// Absolute tolerance of dopri5 [default: the model's `simulate atol`, else 1e-9].
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) atol: Option<f64>,
    /// Write every K-th step and always the last [default: the model's `simulate every`, else 1].
    #[arg(long)]
    pub(crate) every: Option<u64>,
    /// Output file: .csv, .json or .npy (CSV on standard output otherwise).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Draw the run as an SVG figure.
    #[arg(long)]
    pub(crate) plot: Option<PathBuf>,
    /// Run an ensemble of N particles: mean and standard deviation per output time [default: the
    /// model's `simulate particles`, else 1000 with a random `init`, else one trajectory].
    #[arg(long)]
    pub(crate) particles: Option<u64>,
    /// Seed of the particles' random streams [default: the model's `simulate seed`, else 0].
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Write every particle's final row, every column but t, of an ensemble run (.csv, .json or .npy).
    #[arg(long)]
    pub(crate) dump: Option<PathBuf>,
    /// Print `timings: parse=… derive=… jit=… integrate=… write=…` to standard error.
    #[arg(long)]
    pub(crate) timings: bool,
    /// No summary on standard error.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Minibatch size: sums over all the rows of the data use B rows drawn afresh each step [default:
    /// the model's `simulate batch`, else every row].
    #[arg(long)]
    pub(crate) batch: Option<u64>,
    /// Read the `data` statement that declares NAME from PATH instead (repeatable).
    #[arg(long = "data", value_name = "NAME=PATH")]
    pub(crate) data: Vec<String>,
    /// Grid cells per dimension of fokker-planck [default: the model's `simulate cells`, else 400].
    #[arg(long)]
    pub(crate) cells: Option<u64>,
    /// Write the density of fokker-planck at every output time (.npy, times × cells), the grid in a .json
    /// file of the same name.
    #[arg(long, value_name = "PATH.npy")]
    pub(crate) density: Option<PathBuf>,
    /// Forward sensitivities of every state column to these params (or `init.x`, the initial
    /// value of state column x), as columns `d(x)/d(p)` after all others (rk4, verlet, euler).
    #[arg(long, value_name = "P,…", value_delimiter = ',')]
    pub(crate) sensitivities: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Text,
    Latex,
    Json,
}

/// Parses `NAME=VALUE` pairs.
pub(crate) fn parse_sets(sets: &[String]) -> Result<Vec<(String, f64)>, String> {
    sets.iter()
        .map(|s| {
            let (n, v) =
                s.split_once('=').ok_or_else(|| format!("--set {s}: expected NAME=VALUE, e.g. --set g=9.81"))?;
            let x: f64 = v.trim().parse().map_err(|_| format!("--set {s}: `{v}` is not a number"))?;
            if !x.is_finite() {
                return Err(format!("--set {s}: the value must be a finite number"));
            }
            Ok((n.trim().to_string(), x))
        })
        .collect()
}

/// Parses `NAME=PATH` pairs of `--data`.
pub(crate) fn parse_data(data: &[String]) -> Result<Vec<(String, PathBuf)>, String> {
    data.iter()
        .map(|s| match s.split_once('=') {
            Some((n, p)) if !n.trim().is_empty() && !p.is_empty() => Ok((n.trim().to_string(), PathBuf::from(p))),
            _ => Err(format!("--data {s}: expected NAME=PATH, e.g. --data x=points.csv")),
        })
        .collect()
}

/// Every `--data` name must be a data family of the model.
pub(crate) fn check_data(c: &crate::Compiled, data: &[(String, PathBuf)]) -> Result<(), String> {
    let tables = c.model.arena.tables();
    match data.iter().find(|(n, _)| !tables.iter().any(|t| &t.name == n)) {
        None => Ok(()),
        Some((name, _)) if tables.is_empty() => Err(format!("--data {name}=…: the model has no `data` statement")),
        Some((name, _)) => {
            let all: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
            Err(format!("--data {name}=…: the model has no data family of that name; it has: {}", all.join(", ")))
        }
    }
}

/// Every `--set` name must be a param or const of the model.
pub(crate) fn check_sets(c: &crate::Compiled, sets: &[(String, f64)]) -> Result<(), String> {
    let m = &c.model;
    let known = |n: &String| m.params.iter().any(|p| &p.name == n) || m.consts.iter().any(|(k, _)| k == n);
    match sets.iter().find(|(n, _)| !known(n)) {
        None => Ok(()),
        Some((name, _)) => {
            let all: Vec<&str> =
                m.params.iter().map(|p| p.name.as_str()).chain(m.consts.iter().map(|(k, _)| k.as_str())).collect();
            Err(format!("--set {name}: the model has no param or const of that name; it has: {}", all.join(", ")))
        }
    }
}

/// Prints the model's warnings (names that look alike) to standard error.
pub(crate) fn warn(c: &crate::Compiled) {
    if !c.model.warnings.is_empty() {
        eprint!("{}", c.diagnostics(c.model.warnings.clone()).render_warnings(std::io::stderr().is_terminal()));
    }
}

pub(crate) fn report_load_error(e: &LoadError) -> i32 {
    match e {
        LoadError::Model(d) => {
            eprint!("{}", d.render_with(std::io::stderr().is_terminal()));
            EXIT_MODEL
        }
        LoadError::CommandLine(d) => {
            eprint!("{}", d.render_with(std::io::stderr().is_terminal()));
            eprintln!("error: the model is correct as written; the values given by --set or --data cause these errors");
            EXIT_USAGE
        }
        LoadError::Read { .. } => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

/// Runs the command line; returns the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to standard output, as any output does.
            return match e.print() {
                _ if e.use_stderr() => EXIT_USAGE,
                Err(w) if w.kind() != std::io::ErrorKind::BrokenPipe => {
                    usage(&format!("cannot write to standard output: {w}"))
                }
                _ => 0,
            };
        }
    };
    match cli.command {
        Command::Run(args) => run_cmd::run(*args),
        Command::Solve(args) => solve_cmd::solve(*args),
        Command::Fit(args) => fit_cmd::fit(*args),
        Command::Ir { file, method, set, data } => ir(file, method, set, data),
        Command::Check { file, method, set, data } => check(file, method, set, data),
        Command::Derive { file, format, set, data } => {
            let (sets, data) = match (parse_sets(&set), parse_data(&data)) {
                (Ok(s), Ok(d)) => (s, d),
                (Err(m), _) | (_, Err(m)) => return usage(&m),
            };
            match compile_file_with_data(&file, &sets, &data) {
                Ok(c) => {
                    if let Err(m) = check_sets(&c, &sets).and_then(|_| check_data(&c, &data)) {
                        return usage(&m);
                    }
                    warn(&c);
                    let f = match format {
                        FormatArg::Text => Format::Text,
                        FormatArg::Latex => Format::Latex,
                        FormatArg::Json => Format::Json,
                    };
                    let out = match c.render(f) {
                        Ok(out) => out,
                        Err(e) => {
                            eprintln!("error: {e}\n  help: {}", e.help());
                            return EXIT_MODEL;
                        }
                    };
                    print_out(&out)
                }
                Err(e) => report_load_error(&e),
            }
        }
    }
}

pub(crate) fn parse_method(m: Option<&str>) -> Result<Option<crate::Method>, String> {
    match m.map(|m| (m, crate::Method::from_name(m))) {
        None => Ok(None),
        Some((_, Some(m))) => Ok(Some(m)),
        Some((m, None)) => {
            let all: Vec<&str> = crate::Method::ALL.iter().map(|m| m.name()).collect();
            Err(format!("--method {m}: unknown method; use one of: {}", all.join(", ")))
        }
    }
}

/// `lagc check`: the model's errors, and whether `--method` fits.
fn check(file: PathBuf, method: Option<String>, set: Vec<String>, data: Vec<String>) -> i32 {
    let (method, sets, data) = match (parse_method(method.as_deref()), parse_sets(&set), parse_data(&data)) {
        (Ok(m), Ok(s), Ok(d)) => (m, s, d),
        (Err(m), _, _) | (_, Err(m), _) | (_, _, Err(m)) => return usage(&m),
    };
    let c = match compile_file_with_data(&file, &sets, &data) {
        Ok(c) => c,
        Err(e) => return report_load_error(&e),
    };
    if let Err(m) = check_sets(&c, &sets).and_then(|_| check_data(&c, &data)) {
        return usage(&m);
    }
    warn(&c);
    if let Some(code) = method.and_then(|m| refuse(&c, m)) {
        return code;
    }
    let m = &c.model;
    let what = match m.kind {
        crate::ModelKind::Lagrangian => "coordinate",
        crate::ModelKind::Energy => "state variable",
    };
    print_out(&format!(
        "{}: ok ({} model `{}`, {}, {})\n",
        crate::diag::escape(&file.display().to_string()),
        m.kind,
        m.name,
        crate::diag::count(m.vars.len(), what),
        crate::diag::count(m.params.len(), "param")
    ))
}

/// Prints the refusal of a method that does not fit, with its span; the exit
/// status of a bad command line.
pub(crate) fn refuse(c: &crate::Compiled, method: crate::Method) -> Option<i32> {
    let d = c.refusal(method)?;
    eprint!("{}", c.diagnostics(vec![d]).render_with(std::io::stderr().is_terminal()));
    Some(EXIT_USAGE)
}

/// `lagc ir`: the Cranelift IR of the kernels of a method.
fn ir(file: PathBuf, method: Option<String>, set: Vec<String>, data: Vec<String>) -> i32 {
    let (method, sets, data) = match (parse_method(method.as_deref()), parse_sets(&set), parse_data(&data)) {
        (Ok(m), Ok(s), Ok(d)) => (m, s, d),
        (Err(m), _, _) | (_, Err(m), _) | (_, _, Err(m)) => return usage(&m),
    };
    let c = match compile_file_for(&file, &sets, method, &data) {
        Ok(c) => c,
        Err(e) => return report_load_error(&e),
    };
    if let Err(m) = check_sets(&c, &sets).and_then(|_| check_data(&c, &data)) {
        return usage(&m);
    }
    if let Some(code) = refuse(&c, c.method) {
        return code;
    }
    let plan = match crate::plan::plan(&c.model, &c.equations, c.method, None) {
        Ok(p) => p,
        Err(m) => return usage(&m.why.to_string()),
    };
    match crate::Kernels::build(&c.model, &c.equations, &plan, crate::BackendKind::Native) {
        Ok(k) => print_out(k.ir().unwrap_or_default()),
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_MODEL
        }
    }
}

/// Writes `text` to standard output; the exit status. A closed pipe
/// (`lagc ir model.lag | head`) ends the command quietly with status 0, as
/// `ls | head` does; any other failed write is reported, with status 2.
pub(crate) fn print_out(text: &str) -> i32 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => usage(&format!("cannot write to standard output: {e}")),
    }
}

pub(crate) fn usage(msg: &str) -> i32 {
    eprintln!("error: {msg}");
    EXIT_USAGE
}
