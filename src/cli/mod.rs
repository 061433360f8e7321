//! The command line (LANGUAGE.md §7). Only this module reads arguments,
//! touches files and prints; everything else is data in, data out.
//!
//! Exit status: 0 success, 1 the model has errors, 2 bad command line,
//! 3 the run failed numerically.

use crate::report::Format;
use crate::{compile_file, LoadError};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

mod output;

/// Exit status for a model with errors.
pub const EXIT_MODEL: i32 = 1;
/// Exit status for a bad command line.
pub const EXIT_USAGE: i32 = 2;
/// Exit status for a numerical failure during a run.
pub const EXIT_NUMERIC: i32 = 3;

#[derive(Parser, Debug)]
#[command(name = "lagc", version, about = "Compile equations of motion from Lagrangians and energies, and run them")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse and validate a model; report every error.
    Check {
        /// The `.lag` file.
        file: PathBuf,
        /// Override a const or param: NAME=VALUE (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// Print the derived equations.
    Derive {
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = FormatArg::Text)]
        format: FormatArg,
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// Integrate a model and write its trajectory.
    Run(RunArgs),
    /// Print the Cranelift IR of every compiled kernel.
    Ir {
        file: PathBuf,
        /// The method whose kernels to compile (default: the model's).
        #[arg(long)]
        method: Option<String>,
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The `.lag` file.
    file: PathBuf,
    /// Override a const or param: NAME=VALUE (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Integration method: euler, prox, rk4, dopri5, verlet, midpoint, variational, em.
    #[arg(long)]
    method: Option<String>,
    /// Start time.
    #[arg(long, allow_hyphen_values = true)]
    t0: Option<f64>,
    /// End time.
    #[arg(long = "t-end", allow_hyphen_values = true)]
    t_end: Option<f64>,
    /// Step size (the output spacing for dopri5).
    #[arg(long, allow_hyphen_values = true)]
    dt: Option<f64>,
    /// Relative tolerance (dopri5).
    #[arg(long, allow_hyphen_values = true)]
    rtol: Option<f64>,
    /// Absolute tolerance (dopri5).
    #[arg(long, allow_hyphen_values = true)]
    atol: Option<f64>,
    /// Write every K-th step (and always the last).
    #[arg(long)]
    every: Option<u64>,
    /// Output file: .csv, .json or .npy (CSV on standard output otherwise).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print `timings: parse=… derive=… jit=… integrate=… write=…` to standard error.
    #[arg(long)]
    timings: bool,
    /// No summary on standard error.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Text,
    Latex,
    Json,
}

/// Parses `NAME=VALUE` pairs.
fn parse_sets(sets: &[String]) -> Result<Vec<(String, f64)>, String> {
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

fn report_load_error(e: &LoadError) -> i32 {
    match e {
        LoadError::Model(d) => {
            eprint!("{}", d.render_with(std::io::stderr().is_terminal()));
            EXIT_MODEL
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
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Run(args) => run(args),
        Command::Ir { file, method, set } => ir(file, method, set),
        Command::Check { file, set } => {
            let sets = match parse_sets(&set) {
                Ok(s) => s,
                Err(m) => return usage(&m),
            };
            match compile_file(&file, &sets) {
                Ok(c) => {
                    let m = &c.model;
                    let what = match m.kind {
                        crate::ModelKind::Lagrangian => "coordinates",
                        crate::ModelKind::Energy => "state variables",
                    };
                    println!(
                        "{}: ok ({} model `{}`, {} {what}, {} params)",
                        file.display(),
                        m.kind,
                        m.name,
                        m.vars.len(),
                        m.params.len()
                    );
                    0
                }
                Err(e) => report_load_error(&e),
            }
        }
        Command::Derive { file, format, set } => {
            let sets = match parse_sets(&set) {
                Ok(s) => s,
                Err(m) => return usage(&m),
            };
            match compile_file(&file, &sets) {
                Ok(mut c) => {
                    let f = match format {
                        FormatArg::Text => Format::Text,
                        FormatArg::Latex => Format::Latex,
                        FormatArg::Json => Format::Json,
                    };
                    let out = c.render(f);
                    let mut stdout = std::io::stdout().lock();
                    if stdout.write_all(out.as_bytes()).and_then(|_| stdout.flush()).is_err() {
                        return EXIT_USAGE;
                    }
                    0
                }
                Err(e) => report_load_error(&e),
            }
        }
    }
}

fn parse_method(m: Option<&str>) -> Result<Option<crate::Method>, String> {
    match m.map(|m| (m, crate::Method::from_name(m))) {
        None => Ok(None),
        Some((_, Some(m))) => Ok(Some(m)),
        Some((m, None)) => {
            let all: Vec<&str> = crate::Method::ALL.iter().map(|m| m.name()).collect();
            Err(format!("--method {m}: unknown method; use one of: {}", all.join(", ")))
        }
    }
}

fn ir(file: PathBuf, method: Option<String>, set: Vec<String>) -> i32 {
    let (method, sets) = match (parse_method(method.as_deref()), parse_sets(&set)) {
        (Ok(m), Ok(s)) => (m, s),
        (Err(m), _) | (_, Err(m)) => return usage(&m),
    };
    let mut c = match compile_file(&file, &sets) {
        Ok(c) => c,
        Err(e) => return report_load_error(&e),
    };
    let opts = crate::run::RunOptions { method, ..Default::default() };
    let cfg = match crate::run::RunConfig::resolve(&c.model, &opts) {
        Ok(cfg) => cfg,
        Err(m) => return usage(&m),
    };
    match crate::kernels::Kernels::new(&mut c.model, &c.equations, cfg.method, crate::kernels::Backend::Native) {
        Ok(k) => {
            print!("{}", k.ir().unwrap_or_default());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_MODEL
        }
    }
}

fn run(args: RunArgs) -> i32 {
    use crate::run::{self as runner, RunConfig, RunError, RunOptions};
    use std::time::Instant;
    let sets = match parse_sets(&args.set) {
        Ok(s) => s,
        Err(m) => return usage(&m),
    };
    let method = match parse_method(args.method.as_deref()) {
        Ok(m) => m,
        Err(m) => return usage(&m),
    };
    if let Some(p) = &args.out {
        if let Err(m) = output::Kind::of(p) {
            return usage(&m);
        }
    }
    let start = Instant::now();
    let mut c = match compile_file(&args.file, &sets) {
        Ok(c) => c,
        Err(e) => return report_load_error(&e),
    };
    if let Some((name, _)) = sets
        .iter()
        .find(|(n, _)| !c.model.params.iter().any(|p| &p.name == n) && !c.model.consts.iter().any(|(k, _)| k == n))
    {
        let known: Vec<&str> = c
            .model
            .params
            .iter()
            .map(|p| p.name.as_str())
            .chain(c.model.consts.iter().map(|(k, _)| k.as_str()))
            .collect();
        return usage(&format!(
            "--set {name}: the model has no param or const of that name; it has: {}",
            known.join(", ")
        ));
    }
    let opts = RunOptions {
        method,
        t0: args.t0,
        t_end: args.t_end,
        dt: args.dt,
        rtol: args.rtol,
        atol: args.atol,
        every: args.every,
    };
    let cfg = match RunConfig::resolve(&c.model, &opts) {
        Ok(cfg) => cfg,
        Err(m) => return usage(&m),
    };
    if let Err(m) = runner::check(&c.model, &c.equations, &cfg) {
        return usage(&m);
    }
    let columns = runner::columns(&c.model);
    let writer = match &args.out {
        Some(p) => output::Writer::file(p, columns),
        None => output::Writer::stdout(columns),
    };
    let mut writer = match writer {
        Ok(w) => w,
        Err(m) => return usage(&m),
    };
    let kernels = runner::build_kernels(&mut c.model, &c.equations, cfg.method);
    let t_run = Instant::now();
    let result = runner::run_with(&c.model, &c.equations, &kernels, &cfg, &mut writer);
    let integrate = t_run.elapsed();
    let t_write = Instant::now();
    let finished = writer.finish();
    let write = t_write.elapsed();
    if args.timings {
        eprintln!(
            "timings: parse={:.6} derive={:.6} jit={:.6} integrate={:.6} write={:.6}",
            c.timings.parse.as_secs_f64(),
            c.timings.derive.as_secs_f64(),
            kernels.build_time.as_secs_f64(),
            integrate.as_secs_f64(),
            write.as_secs_f64()
        );
    }
    if let Err(m) = finished {
        eprintln!("error: {m}");
        return EXIT_USAGE;
    }
    match result {
        Ok(s) => {
            if !args.quiet {
                let mut line = format!(
                    "{}: {} {} steps{}, {} rows, {:.3} s",
                    c.model.name,
                    cfg.method,
                    s.steps,
                    if s.rejected > 0 { format!(" ({} rejected)", s.rejected) } else { String::new() },
                    s.rows,
                    start.elapsed().as_secs_f64()
                );
                match (s.max_energy_drift, s.final_grad_norm) {
                    (Some(d), _) => line += &format!(", max relative drift of H {d:.3e}"),
                    (None, Some(g)) => line += &format!(", final E {:.6e}, |∇E| {g:.3e}", s.final_energy),
                    _ => {}
                }
                eprintln!("{line}");
            }
            0
        }
        Err(RunError::Numerical { .. }) => {
            eprintln!("error: the run failed: {}", result.unwrap_err());
            eprintln!("the rows computed before the failure were written");
            EXIT_NUMERIC
        }
        Err(e @ RunError::Setup(_)) => usage(&e.to_string()),
        Err(e @ RunError::Output(_)) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

fn usage(msg: &str) -> i32 {
    eprintln!("error: {msg}");
    EXIT_USAGE
}
