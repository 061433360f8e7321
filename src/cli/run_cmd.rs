//! `lagc run`: settings, output files, the progress bar, the plot and the
//! summary around [`crate::drive::run`].

use super::{output, parse_method, parse_sets, report_load_error, usage, RunArgs, EXIT_NUMERIC, EXIT_USAGE};

/// Exit status after a signal that stops the run: 128 + its number, as
/// shells report it (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
const EXIT_SIGNAL_BASE: i32 = 128;
use super::load::compile_file_for;
use crate::diag::count;
use crate::drive::{self, Control, RowSink, RunConfig, RunError, RunOptions, SinkError};
use crate::plan::Plan;
use crate::plot::{self, PlotInfo};
use crate::sym::Env;
use crate::{Model, ModelKind};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Set by the signal handler: the run stops at its next row.
static INTERRUPT: AtomicBool = AtomicBool::new(false);
/// The signal that stopped the run; 0 until one arrives.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The signals that stop a run the way Ctrl-C does.
const STOPPING: [(libc::c_int, &str); 3] =
    [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")];

extern "C" fn on_signal(sig: libc::c_int) {
    // Atomic stores only: they are async-signal-safe.
    SIGNAL.store(sig, Ordering::Relaxed);
    INTERRUPT.store(true, Ordering::Relaxed);
}

/// Catches SIGINT, SIGTERM and SIGHUP: each stops the run at its next row,
/// which keeps what was computed. A signal the process was started ignoring
/// (`nohup`, a background job) stays ignored.
fn catch_signals() {
    for (sig, _) in STOPPING {
        // SAFETY: `act` is a zeroed `sigaction` filled in before use; the
        // handler only stores atomics.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

/// The name of a stopping signal.
fn signal_name(sig: i32) -> &'static str {
    STOPPING.iter().find(|(s, _)| *s == sig).map_or("a signal", |(_, n)| n)
}

/// How long a run goes before a progress bar appears.
const PROGRESS_AFTER: Duration = Duration::from_secs(1);

/// The least time between two moves of the progress bar: its message is
/// formatted anew at each, which costs more than a row.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);

/// Passes rows on, keeps a copy for the plot, and drives the progress bar.
struct Tee<'a> {
    sink: &'a mut dyn RowSink,
    keep: Option<Vec<Vec<f64>>>,
    progress: Option<Progress>,
}

/// A progress bar on a terminal's standard error, shown once a run has
/// taken [`PROGRESS_AFTER`]; hidden otherwise.
struct Progress {
    bar: ProgressBar,
    start: Instant,
    t0: f64,
    span: f64,
    shown: bool,
    /// When, after `start`, the bar moves next.
    next: Duration,
    /// Time (`t = …`) or an ensemble's particle-steps.
    particle_steps: bool,
}

impl Progress {
    fn new(t0: f64, t_end: f64) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {percent}% ({eta} left)")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        Progress {
            bar,
            start: Instant::now(),
            t0,
            span: (t_end - t0).max(f64::MIN_POSITIVE),
            shown: false,
            next: PROGRESS_AFTER,
            particle_steps: false,
        }
    }

    fn update(&mut self, t: f64) {
        let elapsed = self.start.elapsed();
        if elapsed < self.next {
            return;
        }
        self.next = elapsed + PROGRESS_EVERY;
        if !self.shown {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.shown = true;
        }
        self.bar.set_position((1000.0 * (t - self.t0) / self.span).clamp(0.0, 1000.0) as u64);
        self.bar.set_message(if self.particle_steps {
            format!("{t:.3e} particle-steps")
        } else {
            format!("t = {t:.4}")
        });
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

impl RowSink for Tee<'_> {
    fn row(&mut self, values: &[f64]) -> Result<(), SinkError> {
        if let Some(k) = &mut self.keep {
            k.push(values.to_vec());
        }
        if let Some(p) = &mut self.progress {
            p.update(values[0]);
        }
        self.sink.row(values)
    }
}

/// The plot format of a path: only SVG, which needs no system libraries.
pub(super) fn check_plot_path(p: &Path) -> Result<(), String> {
    match p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("svg") => Ok(()),
        Some("png") => Err(format!(
            "--plot {}: PNG output would need a rasteriser and fonts from the system; use a .svg path \
             (browsers and image viewers open SVG, and `rsvg-convert` turns it into PNG)",
            p.display()
        )),
        _ => Err(format!("--plot {}: the figure is written as SVG; give a path ending in .svg", p.display())),
    }
}

/// Draws the run into the figure's temporary file, and moves it into place
/// when the run ended well (`summary` is there); a failed run's figure stays
/// under the temporary name, which is returned.
pub(super) fn draw(
    model: &Model,
    plan: &Plan,
    rows: &[Vec<f64>],
    summary: Option<&drive::Summary>,
    path: &Path,
    (tmp, mut file): (output::Temporary, std::fs::File),
) -> Result<Option<std::path::PathBuf>, String> {
    let finals = summary.map(|s| s.finals.as_slice()).unwrap_or(&[]);
    let bands = summary.and_then(|s| s.bands.as_ref());
    let info = PlotInfo::of(model, plan);
    let columns = &plan.columns;
    let energy = model.energy;
    let env = model.env();
    let syms = model.var_syms();
    let eval_at = |xs: &[f64]| -> f64 {
        let mut e: Env = env.clone();
        for (s, x) in syms.iter().zip(xs) {
            e.set(*s, *x);
        }
        energy.map(|en| model.arena.eval(en, &e)).unwrap_or(f64::NAN)
    };
    let density = summary.and_then(|s| s.density.as_ref());
    if plan.method == crate::Method::FokkerPlanck && density.is_none() {
        // A density run that did not end well kept no frames: no figure (the temporary file goes).
        return Ok(None);
    }
    let svg = if let (crate::Method::FokkerPlanck, Some(d)) = (plan.method, density) {
        let temperature = info.temperature.unwrap_or(0.0);
        let gibbs = (temperature > 0.0 && d.axes.len() == 1).then(|| {
            let w: Vec<f64> = d.axes[0].centres.iter().map(|&x| eval_at(&[x])).collect();
            let low = w.iter().copied().fold(f64::INFINITY, f64::min);
            let w: Vec<f64> = w.iter().map(|e| (-(e - low) / temperature).exp()).collect();
            let h = d.axes[0].edges[1] - d.axes[0].edges[0];
            let z: f64 = w.iter().sum::<f64>() * h;
            w.into_iter().map(|v| v / z).collect::<Vec<f64>>()
        });
        plot::density_flow_svg(&info, columns, rows, d, gibbs.as_deref())
    } else if plan.is_ensemble() {
        let e1 = |x: f64| eval_at(&[x]);
        // With an interaction the particles' law is not exp(−E/T)/Z: no curve.
        let one_d = model.kind == ModelKind::Energy && syms.len() == 1 && model.interaction.is_none();
        let energy = one_d.then_some(&e1 as &dyn Fn(f64) -> f64);
        plot::ensemble_svg_with_bands(&info, columns, rows, finals, energy, bands)
    } else {
        let e2 = |x: f64, y: f64| eval_at(&[x, y]);
        let two_d = model.kind == ModelKind::Energy && syms.len() == 2;
        plot::trajectory_svg(&info, columns, rows, two_d.then_some(&e2 as &dyn Fn(f64, f64) -> f64))
    }
    .map_err(|e| format!("--plot: {e}"))?;
    use std::io::Write;
    file.write_all(svg.as_bytes()).and_then(|_| file.flush()).map_err(|e| format!("--plot {}: {e}", path.display()))?;
    drop(file);
    if summary.is_none() {
        return Ok(Some(tmp.keep()));
    }
    tmp.commit().map_err(|e| format!("--plot {}: {e}", path.display()))?;
    Ok(None)
}

pub(crate) fn run(args: RunArgs) -> i32 {
    let sets = match parse_sets(&args.set) {
        Ok(s) => s,
        Err(m) => return usage(&m),
    };
    let method = match parse_method(args.method.as_deref()) {
        Ok(m) => m,
        Err(m) => return usage(&m),
    };
    for p in args.out.iter().chain(&args.dump) {
        if let Err(m) = output::Kind::of(p) {
            return usage(&m);
        }
    }
    if let Some(p) = &args.plot {
        if let Err(m) = check_plot_path(p) {
            return usage(&m);
        }
    }
    if let Some(p) = &args.density {
        if let Err(m) = super::density_out::check_path(p) {
            return usage(&m);
        }
    }
    let density_grid = args.density.as_deref().map(super::density_out::grid_path);
    let data = match super::parse_data(&args.data) {
        Ok(d) => d,
        Err(m) => return usage(&m),
    };
    let inputs: Vec<(&str, &Path)> = std::iter::once(("model file", args.file.as_path()))
        .chain(data.iter().map(|(_, p)| ("--data file", p.as_path())))
        .collect();
    let outputs: Vec<(&str, &Path)> = [
        ("--out", &args.out),
        ("--dump", &args.dump),
        ("--plot", &args.plot),
        ("--density", &args.density),
        ("--density (its grid)", &density_grid),
    ]
    .into_iter()
    .filter_map(|(flag, p)| Some((flag, p.as_deref()?)))
    .collect();
    if let Err(m) = super::guard::check_paths(&inputs, &outputs) {
        return usage(&m);
    }
    let start = Instant::now();
    let mut c = match compile_file_for(&args.file, &sets, method, &data) {
        Ok(c) => c,
        Err(e) => return report_load_error(&e),
    };
    if !args.sensitivities.is_empty() {
        if let Err(m) = super::guard::check_sensitivities(&c.model, &c.equations, args.sensitivities.len()) {
            return usage(&m);
        }
        if let Err(d) = c.derive_jacobians() {
            return report_load_error(&super::load::LoadError::Model(d));
        }
    }
    if let Err(m) = super::check_sets(&c, &sets) {
        return usage(&m);
    }
    if let Err(m) = super::check_data(&c, &data) {
        return usage(&m);
    }
    // The data files the model's own `data` statements read are inputs too.
    let read: Vec<(&str, &Path)> = c.model.data_files.iter().map(|p| ("data file", p.as_path())).collect();
    if let Err(m) = super::guard::check_paths(&read, &outputs) {
        return usage(&m);
    }
    let opts = RunOptions {
        method,
        t0: args.t0,
        t_end: args.t_end,
        dt: args.dt,
        rtol: args.rtol,
        atol: args.atol,
        every: args.every,
        particles: args.particles,
        seed: args.seed,
        batch: args.batch,
        // The summary's drift of H is over every step (over the rows for a model with more than
        // `DRIFT_EVERY_STEP_MAX` coordinates, where H costs as much as a step); without a
        // summary, nothing is measured.
        energy_every_step: !args.quiet && c.model.vars.len() <= DRIFT_EVERY_STEP_MAX,
        // An ensemble's figure draws quantile bands.
        bands: args.plot.is_some(),
        cells: args.cells,
        // A density's figure draws it.
        keep_density: args.density.is_some() || args.plot.is_some(),
    };
    let cfg = match RunConfig::resolve(&c.model, &opts) {
        Ok(cfg) => cfg,
        Err(m) => return usage(&m.to_string()),
    };
    if let Some(code) = super::refuse(&c, cfg.method) {
        return code;
    }
    if let Some(temperature) = positive_temperature(&c.model, &cfg) {
        if !crate::plan::spec(cfg.method).stochastic {
            let stochastic: Vec<&str> = crate::plan::fitting(&c.model, &c.equations)
                .into_iter()
                .filter(|m| crate::Method::from_name(m).is_some_and(|m| crate::plan::spec(m).stochastic))
                .collect();
            return usage(&format!(
                "method `{}` is deterministic and would ignore the model's temperature ({}); \
                 use {} for Langevin dynamics, or --set the temperature's param to 0 for the noiseless dynamics",
                cfg.method,
                crate::sym::fmt_float(temperature),
                stochastic.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(" or ")
            ));
        }
    }
    if args.density.is_some() && cfg.method != crate::Method::FokkerPlanck {
        return usage(&format!("--density writes the density of `fokker-planck`, not of `{}`", cfg.method));
    }
    let planned =
        if args.sensitivities.is_empty() { c.plan(&cfg) } else { c.plan_sensitivities(&cfg, &args.sensitivities) };
    let plan = match planned {
        Ok(plan) => plan,
        Err(e) => return usage(&e.to_string()),
    };
    if !args.quiet {
        super::warn(&c);
        for w in warnings(&c.model, &cfg) {
            eprintln!("warning: {w}");
        }
    }
    let ensemble = plan.is_ensemble();
    if args.dump.is_some() && !ensemble {
        return usage("--dump writes the particles of an ensemble: give --particles N or a random `init x ~ …`");
    }
    let outputs = super::guard::Outputs {
        out: args.out.as_deref(),
        dump: args.dump.as_deref(),
        plot: args.plot.is_some(),
        density: args.density.is_some(),
    };
    let estimate = super::guard::estimate(&c.model, &plan, &cfg, outputs);
    if let Err(m) = super::guard::check(&estimate, args.out.as_deref()) {
        return usage(&m);
    }
    // Compiled before the signals are caught and the output files created: a
    // signal while compiling ends the process as usual and leaves no files.
    let kernels = match crate::Kernels::build_best(&c.model, &c.equations, &plan) {
        Ok(k) => k,
        Err(e) => return usage(&e.to_string()),
    };
    // From here on a signal stops the run at its next row and keeps what was computed.
    catch_signals();
    let dump = match &args.dump {
        Some(p) => match output::Writer::file("--dump", p, plan.trajectory_columns[1..].to_vec()) {
            Ok(w) => Some(w),
            Err(m) => return usage(&m),
        },
        None => None,
    };
    let writer = match &args.out {
        Some(p) => output::Writer::file("--out", p, plan.columns.clone()),
        None => output::Writer::stdout(plan.columns.clone()),
    };
    let mut writer = match writer {
        Ok(w) => w,
        Err(m) => return usage(&m),
    };
    // The figure's file is created now, so that a path that cannot be written is found before the run.
    let figure = match &args.plot {
        Some(p) => match output::Temporary::create(p) {
            Ok(f) => Some(f),
            Err(e) => return usage(&format!("--plot {}: cannot write there: {e}", p.display())),
        },
        None => None,
    };
    let progress = AtomicU64::new(0);
    let control = Control { interrupt: Some(&INTERRUPT), progress: Some(&progress) };
    let t_run = Instant::now();
    let on_terminal = !args.quiet && std::io::stderr().is_terminal();
    let show_progress = on_terminal && !ensemble;
    let (result, kept) = {
        let mut tee = Tee {
            sink: &mut writer,
            keep: args.plot.as_ref().map(|_| Vec::new()),
            progress: show_progress.then(|| Progress::new(cfg.t0, cfg.t_end)),
        };
        let finished = AtomicBool::new(false);
        let r = std::thread::scope(|scope| {
            if on_terminal && ensemble {
                // An ensemble writes its rows at the end: its bar follows the particle-steps done.
                let total = estimate.rows.saturating_sub(2).max(1) as f64 * cfg.every as f64 * plan.particles() as f64;
                let (finished, progress) = (&finished, &progress);
                scope.spawn(move || {
                    let mut bar = Progress::new(0.0, total);
                    bar.particle_steps = true;
                    while !finished.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                        bar.update(progress.load(Ordering::Relaxed) as f64);
                    }
                });
            }
            let r = drive::run(&c.model, &plan, &kernels, &cfg, &mut tee, control);
            finished.store(true, Ordering::Relaxed);
            r
        });
        (r, tee.keep.take())
    };
    let integrate = t_run.elapsed();
    if let Err(RunError::Interrupted { t }) = &result {
        let sig = match SIGNAL.load(Ordering::Relaxed) {
            0 => libc::SIGINT,
            s => s,
        };
        eprintln!(
            "interrupted at t = {} by {}{}",
            crate::sym::fmt_float(*t),
            signal_name(sig),
            kept_rows(writer, "the rows computed so far")
        );
        return EXIT_SIGNAL_BASE + sig;
    }
    if matches!(result, Err(RunError::Output(_))) && writer.reader_gone() {
        // `lagc run m.lag | head`: the reader has what it wanted.
        return 0;
    }
    if let Err(e @ RunError::Output(_)) = &result {
        // The temporary file is removed; the destination keeps what it held.
        writer.discard();
        let unchanged = args.out.as_ref().map(|p| format!("; {} is unchanged", p.display())).unwrap_or_default();
        eprintln!("error: {e}{unchanged}");
        return EXIT_USAGE;
    }
    let t_write = Instant::now();
    let mut failed_output = None;
    let mut failed_rows = String::new();
    let mut failed_figure = None;
    match &result {
        Ok(_) => failed_output = writer.finish().err(),
        // A failed run's rows stay under the temporary name, like an interrupted run's.
        Err(RunError::Numerical { .. }) => failed_rows = kept_rows(writer, "the rows computed before the failure"),
        // A run refused before its first row leaves nothing.
        Err(_) => writer.discard(),
    }
    if let (Some(mut w), Ok(s)) = (dump, &result) {
        let written =
            s.finals.iter().try_for_each(|f| RowSink::row(&mut w, f)).map_err(|e| e.0).and_then(|_| w.finish());
        failed_output = failed_output.or(written.err().map(|m| format!("--dump: {m}")));
    }
    if let (Some(p), Ok(drive::Summary { density: Some(d), .. })) = (&args.density, &result) {
        if failed_output.is_none() {
            failed_output = super::density_out::write(p, d).err();
        }
    }
    if let (Some(p), Some(rows), Some(figure)) = (&args.plot, &kept, figure) {
        let summary = result.as_ref().ok();
        if !rows.is_empty() {
            match draw(&c.model, &plan, rows, summary, p, figure) {
                Ok(kept) => failed_figure = kept,
                Err(m) => failed_output = failed_output.or(Some(m)),
            }
        }
    }
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
    if let Some(m) = failed_output {
        eprintln!("error: {m}");
        return EXIT_USAGE;
    }
    match result {
        Ok(s) => {
            if !args.quiet {
                eprintln!(
                    "{}",
                    summary_line(
                        &c.model,
                        &cfg,
                        &s,
                        ensemble,
                        start.elapsed(),
                        [c.timings.parse + c.timings.derive, kernels.build_time, integrate, write]
                    )
                );
            }
            0
        }
        Err(e @ RunError::Numerical { .. }) => {
            eprintln!("error: the run failed: {e}");
            match &args.out {
                Some(p) => eprintln!("{}; {} is unchanged", failed_rows.trim_start_matches("; "), p.display()),
                None => eprintln!("the rows computed before the failure were written"),
            }
            if let (Some(tmp), Some(p)) = (failed_figure, &args.plot) {
                eprintln!("their figure is in {}; {} is unchanged", tmp.display(), p.display());
            }
            EXIT_NUMERIC
        }
        Err(e) => usage(&e.to_string()),
    }
}

/// Leaves an unfinished run's rows under the temporary name and says where
/// they are (`; WHAT are in PATH`), or why they are not.
fn kept_rows(writer: output::Writer, what: &str) -> String {
    match writer.abandon() {
        Ok(Some(tmp)) => format!("; {what} are in {}", tmp.display()),
        Ok(None) => String::new(),
        Err(m) => format!("; keeping {what} failed: {m}"),
    }
}

/// The process's peak resident memory in KiB, where the system tells it
/// (`VmHWM` of `/proc/self/status` on Linux).
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What the run will do that the user may not expect: identical particles,
/// a start from the origin with nothing said.
fn warnings(model: &Model, cfg: &RunConfig) -> Vec<String> {
    let mut out = vec![];
    let random = model.has_random_init() || crate::plan::spec(cfg.method).stochastic;
    if let Some(n) = cfg.particles.filter(|&n| n > 1 && !random) {
        out.push(format!(
            "{n} particles of a deterministic method from one initial state are {n} identical trajectories; \
             give a random `init x ~ normal(m, s)` for an ensemble"
        ));
    }
    if model.spans.init.is_none() {
        let what = match model.kind {
            crate::ModelKind::Lagrangian => "every coordinate and velocity",
            crate::ModelKind::Energy => "every state variable",
        };
        out.push(format!("the model has no `init`: {what} starts at 0"));
    }
    out
}

/// Six decimals for a number of ordinary size, six significant digits in
/// exponent form for any other: never hundreds of digits.
fn six_digits(x: f64) -> String {
    if x == 0.0 || (1e-3..1e6).contains(&x.abs()) {
        format!("{x:.6}")
    } else {
        format!("{x:.6e}")
    }
}

/// Models with more coordinates than this measure the drift of `H` on the
/// rows written, not on every step: evaluating `H` costs about as much as a
/// step of a lattice.
pub const DRIFT_EVERY_STEP_MAX: usize = 256;

/// The end-of-run summary: steps, wall time per phase, and the energy drift,
/// the final energy and gradient norm, or the ensemble's final means.
fn summary_line(
    model: &Model,
    cfg: &RunConfig,
    s: &drive::Summary,
    ensemble: bool,
    wall: Duration,
    [front, jit, integrate, write]: [Duration; 4],
) -> String {
    let steps = if cfg.method == crate::Method::Dopri5 {
        format!("{} accepted, {} rejected", count(s.steps, "step"), s.rejected)
    } else {
        count(s.steps, "step")
    };
    let peak = peak_memory().map(|kb| format!(", peak memory {:.1} MB", kb as f64 / 1024.0)).unwrap_or_default();
    let mut line = format!(
        "{}: {} {steps}, {}, {:.3} s (front end {:.3}, jit {:.3}, integrate {:.3}, write {:.3}{peak})",
        model.name,
        cfg.method,
        count(s.rows, "row"),
        wall.as_secs_f64(),
        front.as_secs_f64(),
        jit.as_secs_f64(),
        integrate.as_secs_f64(),
        write.as_secs_f64()
    );
    if cfg.method == crate::Method::FokkerPlanck {
        let of = |name: &str| s.final_means.iter().find(|(n, _)| n == name).map_or(f64::NAN, |(_, v)| *v);
        line += &format!(
            "; {} cells, final mass {}, free energy {}",
            cfg.cells,
            six_digits(of("mass")),
            six_digits(of("free_energy"))
        );
    } else if ensemble {
        // The first few columns; a lattice's thousands of means belong in the output.
        const SHOWN: usize = 6;
        let wanted = (model.vars.len() + 1).min(s.final_means.len());
        let mut means: Vec<String> =
            s.final_means.iter().take(wanted.min(SHOWN)).map(|(n, m)| format!("{n} {}", six_digits(*m))).collect();
        if wanted > SHOWN {
            means.push(format!("… {} more in the rows", wanted - SHOWN));
        }
        line += &format!("; {}, final means: {}", count(s.particles, "particle"), means.join(", "));
    } else {
        match (s.energy_drift, s.final_grad_norm) {
            (Some(d), _) => match d.relative() {
                Some(r) if model.vars.len() > DRIFT_EVERY_STEP_MAX => {
                    line += &format!("; max relative drift of H over the rows {r:.3e}")
                }
                Some(r) => line += &format!("; max relative drift of H {r:.3e}"),
                None => {
                    line += &format!("; max |H − H0| {:.3e} (|H0| = {:.1e}: no relative drift)", d.max_abs, d.h0.abs())
                }
            },
            (None, Some(g)) => line += &format!("; final E {:.6e}, |∇E| {g:.3e}", s.final_energy),
            _ => line += &format!("; final H {:.6e}", s.final_energy),
        }
    }
    line
}

/// The model's temperature where it is positive at the run's start, middle or
/// end (a schedule `T(t)` may reach zero), or `None`.
fn positive_temperature(model: &crate::Model, cfg: &RunConfig) -> Option<f64> {
    let t = model.temperature?;
    let mut env = model.env();
    [cfg.t0, 0.5 * (cfg.t0 + cfg.t_end), cfg.t_end].into_iter().find_map(|time| {
        env.set(model.time, time);
        let v = model.arena.eval(t, &env);
        (v > 0.0).then_some(v)
    })
}
