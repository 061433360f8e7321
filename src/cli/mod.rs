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

fn usage(msg: &str) -> i32 {
    eprintln!("error: {msg}");
    EXIT_USAGE
}
