//! `lagc fit`: parameters from observed trajectories ([`crate::fit`]): the
//! observations read from a CSV file, the estimates printed (or as JSON), and
//! the fitted trajectory written.

use super::load::compile_file_for;
use super::{output, parse_method, parse_sets, print_out, report_load_error, usage, EXIT_NUMERIC};
use crate::drive::{RunConfig, RunOptions};
use crate::fit::{FitError, Observations, Unknown};
use crate::sym::fmt_float;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub(crate) struct FitArgs {
    /// The `.lag` file.
    pub(crate) file: PathBuf,
    /// The observations: a CSV file with a `t` column and any state columns of the run (an empty
    /// cell is a missing value). Every `t` must be a step of the run, t0 + k·dt.
    #[arg(long)]
    pub(crate) data: PathBuf,
    /// The params to fit, separated by commas; `log:m` fits log m (m stays positive).
    #[arg(long, value_name = "P,log:Q,…", value_delimiter = ',', required = true)]
    pub(crate) params: Vec<String>,
    /// Weights of the observed columns' residuals, `NAME=W` separated by commas [default: 1].
    #[arg(long, value_name = "NAME=W,…", value_delimiter = ',')]
    pub(crate) weights: Vec<String>,
    /// Override a const or param (for a param being fitted: its starting value): NAME=VALUE.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub(crate) set: Vec<String>,
    /// Integration method: rk4 (default), dopri5 (the model's `simulate` rtol and atol), verlet on
    /// Lagrangian models, euler on energy models.
    #[arg(long)]
    pub(crate) method: Option<String>,
    /// Step size [default: the model's `simulate dt`, else 0.001].
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) dt: Option<f64>,
    /// Print the result as JSON: {"params": {"c": {"value": …, "stderr": …}}, "residual_norm": …,
    /// "iterations": …}.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write the fitted trajectory (every step to the last observation) as `lagc run` writes it.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

/// Reads the observations: a header with `t`, numbers or empty cells.
fn read_observations(path: &Path) -> Result<Observations, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("--data {shown}: cannot read it: {e}"))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or(format!("--data {shown}: the file is empty"))?;
    let header: Vec<String> = header.split(',').map(|h| h.trim().to_string()).collect();
    let t = header.iter().position(|h| h == "t").ok_or(format!("--data {shown}: no `t` column in the header"))?;
    let columns: Vec<String> = header.iter().enumerate().filter(|(i, _)| *i != t).map(|(_, h)| h.clone()).collect();
    if columns.is_empty() {
        return Err(format!("--data {shown}: no column besides `t`"));
    }
    let (mut times, mut values) = (vec![], vec![]);
    for (l, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != header.len() {
            return Err(format!("--data {shown}:{}: {} cells, the header has {}", l + 1, cells.len(), header.len()));
        }
        let number = |c: usize| -> Result<Option<f64>, String> {
            if cells[c].is_empty() {
                return Ok(None);
            }
            match cells[c].parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(format!(
                    "--data {shown}:{}: column `{}`: `{}` is not a finite number",
                    l + 1,
                    header[c],
                    cells[c]
                )),
            }
        };
        let time = number(t)?.ok_or(format!("--data {shown}:{}: the time is missing", l + 1))?;
        if times.last().is_some_and(|&p| time <= p) {
            return Err(format!("--data {shown}:{}: times must increase", l + 1));
        }
        times.push(time);
        values.push((0..header.len()).filter(|&c| c != t).map(number).collect::<Result<Vec<_>, _>>()?);
    }
    if times.is_empty() {
        return Err(format!("--data {shown}: no rows"));
    }
    Ok(Observations { times, columns, values })
}

/// The weight of every observed column.
fn weights_of(args: &[String], columns: &[String]) -> Result<Vec<f64>, String> {
    let mut w = vec![1.0; columns.len()];
    for a in args {
        let (name, value) = a.split_once('=').ok_or(format!("--weights {a}: expected NAME=W"))?;
        let i = columns
            .iter()
            .position(|c| c == name.trim())
            .ok_or(format!("--weights {a}: `{name}` is not an observed column ({})", columns.join(", ")))?;
        w[i] = match value.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => x,
            _ => return Err(format!("--weights {a}: the weight must be a number ≥ 0")),
        };
    }
    Ok(w)
}

pub(crate) fn fit(args: FitArgs) -> i32 {
    let sets = match parse_sets(&args.set) {
        Ok(s) => s,
        Err(m) => return usage(&m),
    };
    let method = match parse_method(args.method.as_deref()) {
        Ok(m) => m.or(Some(crate::Method::Rk4)),
        Err(m) => return usage(&m),
    };
    let obs = match read_observations(&args.data) {
        Ok(o) => o,
        Err(m) => return usage(&m),
    };
    let weights = match weights_of(&args.weights, &obs.columns) {
        Ok(w) => w,
        Err(m) => return usage(&m),
    };
    let unknowns: Vec<Unknown> = args.params.iter().map(|p| Unknown::parse(p.trim())).collect();
    let start = Instant::now();
    let mut c = match compile_file_for(&args.file, &sets, method, &[]) {
        Ok(c) => c,
        Err(e) => return report_load_error(&e),
    };
    if let Err(m) = super::check_sets(&c, &sets) {
        return usage(&m);
    }
    if let Err(m) = super::guard::check_sensitivities(&c.model, &c.equations, unknowns.len()) {
        return usage(&m);
    }
    if let Err(d) = c.derive_jacobians() {
        return report_load_error(&super::load::LoadError::Model(d));
    }
    let last = *obs.times.last().expect("observations have rows");
    let opts = RunOptions { method, t_end: Some(last), dt: args.dt, ..Default::default() };
    let cfg = match RunConfig::resolve(&c.model, &opts) {
        Ok(cfg) => cfg,
        Err(m) => return usage(&m.to_string()),
    };
    if let Some(code) = super::refuse(&c, cfg.method) {
        return code;
    }
    let result = match crate::fit::fit(&mut c, &cfg, &obs, &unknowns, &weights) {
        Ok(r) => r,
        Err(FitError::Input(m)) => return usage(&m),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_NUMERIC;
        }
    };
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(p) = &args.out {
        let plan = match c.plan(&cfg) {
            Ok(p) => p,
            Err(e) => return usage(&e.to_string()),
        };
        let mut writer = match output::Writer::file("--out", p, plan.columns.clone()) {
            Ok(w) => w,
            Err(m) => return usage(&m),
        };
        if let Err(e) = c.run(&cfg, &mut writer) {
            writer.discard();
            eprintln!("error: the fitted run failed: {e}");
            return EXIT_NUMERIC;
        }
        if let Err(m) = writer.finish() {
            return usage(&m);
        }
    }
    if args.json {
        let params: Vec<String> = result
            .params
            .iter()
            .map(|(n, v, s)| {
                format!("{}: {{\"value\": {}, \"stderr\": {}}}", json_string(n), json_number(*v), json_number(*s))
            })
            .collect();
        return print_out(&format!(
            "{{\"params\": {{{}}}, \"residual_norm\": {}, \"iterations\": {}}}\n",
            params.join(", "),
            json_number(result.residual_norm),
            result.iterations
        ));
    }
    let mut text = String::new();
    for (n, v, s) in &result.params {
        text.push_str(&format!("{n} = {} ± {}\n", fmt_float(*v), fmt_float(*s)));
    }
    text.push_str(&format!(
        "residual norm {} over {} values, {} iterations, {:.3} s\n",
        fmt_float(result.residual_norm),
        result.residuals,
        result.iterations,
        elapsed
    ));
    print_out(&text)
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A number as JSON: its shortest form, `null` when not finite.
fn json_number(x: f64) -> String {
    if x.is_finite() {
        fmt_float(x)
    } else {
        "null".into()
    }
}
