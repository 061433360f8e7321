//! `lagc solve`: the trajectory between the model's `init` positions and
//! `--to`, by discrete stationary action ([`crate::drive::solve`]), written
//! and drawn as `lagc run` writes and draws a run.

use super::load::compile_file_for;
use super::{output, parse_sets, report_load_error, usage, EXIT_NUMERIC};
use crate::drive::{self, Control, RowSink, RunConfig, RunOptions, SolveConfig, SolveError};
use crate::integrate::{Banded, BoundaryError};
use crate::model::{Method, Model, ModelKind};
use crate::sym::{fmt_float, SymKind};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Steps when neither `--steps` nor the model says.
pub const DEFAULT_STEPS: u64 = 1000;

#[derive(clap::Args, Debug)]
pub(crate) struct SolveArgs {
    /// The `.lag` file.
    pub(crate) file: PathBuf,
    /// The positions at the end: every coordinate, `NAME=VALUE` separated by commas (values may
    /// be expressions of params and `pi`).
    #[arg(long, value_name = "NAME=VALUE, …", allow_hyphen_values = true)]
    pub(crate) to: String,
    /// End time [default: the model's `simulate t_end`, else t0 + 10]; t0 is the model's
    /// `simulate t0`, else 0.
    #[arg(long = "t-end", allow_hyphen_values = true)]
    pub(crate) t_end: Option<f64>,
    /// Steps of the discrete path [default: 1000].
    #[arg(long)]
    pub(crate) steps: Option<u64>,
    /// A starting path: a CSV file with a `t` column and one per coordinate (an earlier
    /// solve's or run's output), interpolated linearly onto the steps.
    #[arg(long)]
    pub(crate) guess: Option<PathBuf>,
    /// Output file: .csv, .json or .npy (CSV on standard output otherwise).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Draw the solution as an SVG figure.
    #[arg(long)]
    pub(crate) plot: Option<PathBuf>,
    /// Override a const or param: NAME=VALUE (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub(crate) set: Vec<String>,
    /// Read the `data` statement that declares NAME from PATH instead (repeatable).
    #[arg(long = "data", value_name = "NAME=PATH")]
    pub(crate) data: Vec<String>,
    /// No summary on standard error.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// The end positions of `--to`, in the order of the model's coordinates.
fn parse_target(model: &Model, to: &str) -> Result<Vec<f64>, String> {
    let names: Vec<&str> = model.vars.iter().map(|v| v.name.as_str()).collect();
    let what = match model.kind {
        ModelKind::Lagrangian => "coordinate",
        ModelKind::Energy => "state variable",
    };
    let mut values: Vec<Option<f64>> = vec![None; names.len()];
    let mut scratch = model.clone();
    let env = model.env();
    for entry in to.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, text) = entry
            .split_once('=')
            .map(|(n, v)| (n.trim(), v.trim()))
            .ok_or_else(|| format!("--to {entry}: expected NAME=VALUE, e.g. --to \"{}=1\"", names[0]))?;
        let Some(i) = names.iter().position(|n| *n == name) else {
            return Err(format!(
                "--to {entry}: the model has no {what} `{name}`; its {what}s are: {}",
                names.join(", ")
            ));
        };
        if values[i].is_some() {
            return Err(format!("--to: `{name}` is given twice"));
        }
        let value = match text.parse::<f64>() {
            Ok(x) => x,
            Err(_) => {
                let e = crate::parse_expression(&mut scratch, text)
                    .map_err(|d| format!("--to {entry}: `{text}` is not a number or an expression: {}", d.message))?;
                let state = |k: SymKind| !matches!(k, SymKind::Param(_) | SymKind::Pi);
                if scratch.arena.depends(e, state) {
                    return Err(format!(
                        "--to {entry}: the value may use numbers, params and `pi`, not the state or t"
                    ));
                }
                scratch.arena.eval(e, &env)
            }
        };
        if !value.is_finite() {
            return Err(format!("--to {entry}: the value must be a finite number"));
        }
        values[i] = Some(value);
    }
    let missing: Vec<&str> = names.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|(n, _)| *n).collect();
    if !missing.is_empty() {
        return Err(format!(
            "--to gives no end position for {}; give every {what}, e.g. --to \"{}\"",
            missing.join(", "),
            names.iter().map(|n| format!("{n}=0")).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(values.into_iter().map(|v| v.expect("checked")).collect())
}

/// The starting path of `--guess`: its coordinates interpolated linearly at
/// the `steps + 1` node times of `[t0, t_end]`, which its `t` column must span.
fn read_guess(path: &Path, model: &Model, t0: f64, t_end: f64, steps: usize) -> Result<Vec<f64>, String> {
    let table = crate::data::read_csv(path).map_err(|e| format!("--guess: {e}"))?;
    let flag = format!("--guess {}", path.display());
    let t = &table.column("t").ok_or_else(|| format!("{flag}: the file has no `t` column"))?.values;
    let mut columns = vec![];
    for v in &model.vars {
        let c = table.column(&v.name).ok_or_else(|| format!("{flag}: the file has no column `{}`", v.name))?;
        columns.push(&c.values);
    }
    if t.len() < 2
        || t.windows(2).any(|w| w[1].partial_cmp(&w[0]) != Some(std::cmp::Ordering::Greater))
        || t.iter().any(|x| !x.is_finite())
    {
        return Err(format!("{flag}: the `t` column must be at least two finite, increasing times"));
    }
    let (first, last) = (t[0], t[t.len() - 1]);
    let slack = 1e-9 * (t_end - t0).abs().max(1.0);
    if first > t0 + slack || last < t_end - slack {
        return Err(format!(
            "{flag}: its times run from {} to {}, which does not span the solve's [{}, {}]; \
             give --t-end within its times or a guess that covers them",
            fmt_float(first),
            fmt_float(last),
            fmt_float(t0),
            fmt_float(t_end)
        ));
    }
    let h = (t_end - t0) / steps as f64;
    let mut out = Vec::with_capacity((steps + 1) * columns.len());
    let mut j = 0;
    for k in 0..=steps {
        let tk = (t0 + k as f64 * h).clamp(first, last);
        while j + 2 < t.len() && t[j + 1] < tk {
            j += 1;
        }
        let s = ((tk - t[j]) / (t[j + 1] - t[j])).clamp(0.0, 1.0);
        for c in &columns {
            let x = c[j] + s * (c[j + 1] - c[j]);
            if !x.is_finite() {
                return Err(format!("{flag}: a coordinate near t = {} is not a finite number", fmt_float(tk)));
            }
            out.push(x);
        }
    }
    Ok(out)
}

/// What to try after a failed solve.
fn help(e: &BoundaryError) -> &'static str {
    match e {
        BoundaryError::NoConvergence { .. } => {
            "help: give more --steps, or a --guess closer to the solution (an earlier solve's or run's --out)"
        }
        BoundaryError::Singular { .. } | BoundaryError::Conjugate { .. } => {
            "help: the endpoints do not determine one path here; change --t-end or --to, or give more --steps \
             if the endpoints are only close to conjugate"
        }
        BoundaryError::Failed { .. } => "help: give more --steps, or a --guess that stays where the model is defined",
        BoundaryError::Invalid(_) => "help: check --t-end, --steps and --guess",
    }
}

pub(crate) fn solve(args: SolveArgs) -> i32 {
    let start = Instant::now();
    let sets = match parse_sets(&args.set) {
        Ok(s) => s,
        Err(m) => return usage(&m),
    };
    if let Some(p) = &args.out {
        if let Err(m) = output::Kind::of(p) {
            return usage(&m);
        }
    }
    if let Some(p) = &args.plot {
        if let Err(m) = super::run_cmd::check_plot_path(p) {
            return usage(&m);
        }
    }
    let data = match super::parse_data(&args.data) {
        Ok(d) => d,
        Err(m) => return usage(&m),
    };
    let inputs: Vec<(&str, &Path)> =
        [("model file", Some(args.file.as_path())), ("--guess file", args.guess.as_deref())]
            .into_iter()
            .filter_map(|(f, p)| Some((f, p?)))
            .chain(data.iter().map(|(_, p)| ("--data file", p.as_path())))
            .collect();
    let outputs: Vec<(&str, &Path)> = [("--out", &args.out), ("--plot", &args.plot)]
        .into_iter()
        .filter_map(|(flag, p)| Some((flag, p.as_deref()?)))
        .collect();
    if let Err(m) = super::guard::check_paths(&inputs, &outputs) {
        return usage(&m);
    }
    let steps = match args.steps {
        Some(0) => return usage("--steps must be 1 or more"),
        Some(s) => s,
        None => DEFAULT_STEPS,
    };
    // A Lagrangian model is solved over the `variational` plan's kernels (the
    // Lagrangian point); an energy model's geodesic over its metric, which
    // every plan of it builds (`variational` asks nothing more of derive there).
    let mut c = match compile_file_for(&args.file, &sets, Some(Method::Variational), &data) {
        Ok(c) => c,
        Err(e) => return report_load_error(&e),
    };
    let method = if c.model.kind == ModelKind::Energy { Method::Euler } else { Method::Variational };
    if let Err(m) = super::check_sets(&c, &sets).and_then(|_| super::check_data(&c, &data)) {
        return usage(&m);
    }
    if c.model.kind == ModelKind::Energy && c.model.metric.is_none() {
        return usage(&format!(
            "`lagc solve` of an energy model gives the geodesic of its `metric`, and `{}` has none \
             (without one the geodesic is the straight line); add `metric = …`, or solve a Lagrangian model",
            c.model.name
        ));
    }
    // The geodesic's exact L_q and L_qq need the metric's derivatives.
    if let Err(d) = c.derive_metric_derivatives() {
        return report_load_error(&super::load::LoadError::Model(d));
    }
    let read: Vec<(&str, &Path)> = c.model.data_files.iter().map(|p| ("data file", p.as_path())).collect();
    if let Err(m) = super::guard::check_paths(&read, &outputs) {
        return usage(&m);
    }
    let target = match parse_target(&c.model, &args.to) {
        Ok(t) => t,
        Err(m) => return usage(&m),
    };
    let opts = RunOptions { method: Some(method), t_end: args.t_end, ..Default::default() };
    let mut cfg = match RunConfig::resolve(&c.model, &opts) {
        Ok(cfg) => cfg,
        Err(m) => return usage(&m.to_string()),
    };
    if cfg.t_end <= cfg.t0 {
        return usage(&format!("--t-end {} must be after t0 = {}", fmt_float(cfg.t_end), fmt_float(cfg.t0)));
    }
    cfg.dt = (cfg.t_end - cfg.t0) / steps as f64;
    cfg.every = 1;
    // Node times t0 + k·h must be told apart.
    if cfg.dt.is_nan() || cfg.dt <= 4.0 * f64::EPSILON * cfg.t0.abs().max(cfg.t_end.abs()) {
        return usage(&format!("--steps {steps}: the steps are too small to tell the times apart"));
    }
    if let Some(code) = super::refuse(&c, method) {
        return code;
    }
    let mut plan = match crate::plan::plan(&c.model, &c.equations, method, None) {
        Ok(p) => p,
        Err(m) => return usage(&format!("{}; {}", m.why, m.help)),
    };
    // One path: random initial values count at their means.
    plan.layout = crate::plan::Layout::Single;
    if c.model.kind == ModelKind::Energy {
        plan.kernels.push(crate::plan::Kernel::MetricDerivatives);
    }
    plan.columns = plan.trajectory_columns.clone();
    let mut estimate = super::guard::estimate(
        &c.model,
        &plan,
        &cfg,
        super::guard::Outputs { out: args.out.as_deref(), dump: None, plot: args.plot.is_some(), density: false },
    );
    let n = c.model.vars.len();
    let unknowns = (steps as usize).saturating_sub(1).saturating_mul(n);
    let band = (2 * n).saturating_sub(1);
    // The Newton matrix, ten node vectors (positions, trial, best, step, residuals,
    // momenta, velocities) and the rows kept for writing.
    let nodes = steps.saturating_add(1);
    let newton = Banded::bytes(unknowns, band, band).saturating_add(nodes.saturating_mul(80 * n as u64));
    let kept = nodes.saturating_mul(24 + 16 + 8 * plan.columns.len() as u64);
    estimate.terms.push(super::guard::Term {
        what: format!("the Newton matrix of {unknowns} unknowns and the {nodes} rows"),
        bytes: newton.saturating_add(kept),
        fix: "give fewer --steps",
    });
    estimate.memory = estimate.memory.saturating_add(newton.saturating_add(kept));
    // An energy model's geodesic compiles the metric's derivatives, n³ + n⁴ outputs.
    if let Some(outputs) = crate::plan::Kernel::MetricDerivatives.expressions(&c.model, &c.equations).map(|e| e.len()) {
        let bytes = (outputs as f64 * (super::guard::COMPILE_BYTES_PER_OUTPUT + 16.0)) as u64;
        estimate.terms.push(super::guard::Term {
            what: format!("the metric's derivatives kernel of {outputs} outputs"),
            bytes,
            fix: "solve the geodesic of a smaller instance of the model (fewer state variables)",
        });
        estimate.memory = estimate.memory.saturating_add(bytes);
    }
    estimate.terms.sort_by_key(|t| std::cmp::Reverse(t.bytes));
    if let Err(m) = super::guard::check(&estimate, args.out.as_deref()) {
        return usage(&m);
    }
    let guess = match &args.guess {
        Some(p) => match read_guess(p, &c.model, cfg.t0, cfg.t_end, steps as usize) {
            Ok(g) => Some(g),
            Err(m) => return usage(&m),
        },
        None => None,
    };
    if !args.quiet {
        super::warn(&c);
    }
    let kernels = match crate::Kernels::build_best(&c.model, &c.equations, &plan) {
        Ok(k) => k,
        Err(e) => return usage(&e.to_string()),
    };
    let solve_cfg = SolveConfig { t0: cfg.t0, t_end: cfg.t_end, steps: steps as usize, target, guess };
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let t_solve = Instant::now();
    let result = drive::solve(&c.model, &plan, &kernels, &solve_cfg, &mut rows, Control::default());
    let solve_time = t_solve.elapsed();
    let summary = match result {
        Ok(s) => s,
        Err(e @ SolveError::Numerical { .. }) => {
            eprintln!("error: the solve failed: {e}");
            if let SolveError::Numerical { error, .. } = &e {
                eprintln!("  {}", help(error));
            }
            if let Some(p) = &args.out {
                eprintln!("{} is unchanged", p.display());
            }
            return EXIT_NUMERIC;
        }
        Err(e) => return usage(&e.to_string()),
    };
    // The rows are written only now, so that a failed or interrupted solve leaves no file.
    let writer = match &args.out {
        Some(p) => output::Writer::file("--out", p, plan.columns.clone()),
        None => output::Writer::stdout(plan.columns.clone()),
    };
    let mut writer = match writer {
        Ok(w) => w,
        Err(m) => return usage(&m),
    };
    if let Err(e) = rows.iter().try_for_each(|r| writer.row(r)) {
        if writer.reader_gone() {
            return 0;
        }
        writer.discard();
        return usage(&e.0);
    }
    if let Err(m) = writer.finish() {
        return usage(&m);
    }
    if let Some(p) = &args.plot {
        let figure = match output::Temporary::create(p) {
            Ok(f) => f,
            Err(e) => return usage(&format!("--plot {}: cannot write there: {e}", p.display())),
        };
        if let Err(m) = super::run_cmd::draw(&c.model, &plan, &rows, Some(&summary.rows), p, figure) {
            return usage(&m);
        }
    }
    if !args.quiet {
        eprintln!(
            "{}: stationary action {} over {} (t = {} to {}), {} Newton {}, residual {:.1e} ({:.1e} of its scale), \
             {} rows, {:.3} s (solve {:.3})",
            c.model.name,
            fmt_float(summary.action),
            crate::diag::count(steps as usize, "step"),
            fmt_float(cfg.t0),
            fmt_float(cfg.t_end),
            summary.iterations,
            if summary.iterations == 1 { "iteration" } else { "iterations" },
            summary.residual,
            summary.residual / summary.scale,
            rows.len(),
            start.elapsed().as_secs_f64(),
            solve_time.as_secs_f64()
        );
    }
    0
}
