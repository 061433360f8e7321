//! The rest of lagc's speed, measured in one process and printed as tables:
//! compile latency per phase for the N-link chain (with the kernel's size
//! and the peak memory of a `lagc` process), the compiled kernels against
//! the tree-walking evaluator, dopri5's time to solution for the double
//! pendulum, the throughput of a Langevin ensemble, and the cost of writing
//! rows (per number, and per row of `lagc run --out` in each format).
//! Run with `cargo bench --bench pipeline`.

use criterion::black_box;
use lagc::backend::Work;
use lagc::drive::{run, Control, RowSink, RunConfig, RunOptions, SinkError};
use lagc::sym::Env;
use lagc::{BackendKind, Compiled, Kernels, Plan};
use lagc::{Equations, Method};
use std::process::Command;
use std::time::{Duration, Instant};

fn chain_source(n: usize) -> String {
    format!(
        "const N = {n}\nparam g = 9.81\ncoord q[N]\n\
         let x[i in 0..N] = sum(j in 0..=i, sin(q[j]))\nlet y[i in 0..N] = sum(j in 0..=i, -cos(q[j]))\n\
         lagrangian = sum(i in 0..N, 1/2*(x[i]'^2 + y[i]'^2) - g*y[i])\ninit q[i in 0..N] = 0.5"
    )
}

const DOUBLE_PENDULUM: &str = "param g = 9.81\ncoord th1, th2\n\
    let x1 = sin(th1)\nlet y1 = -cos(th1)\nlet x2 = x1 + sin(th2)\nlet y2 = y1 - cos(th2)\n\
    lagrangian = 1/2*(x1'^2 + y1'^2) + 1/2*(x2'^2 + y2'^2) - g*(y1 + y2)\ninit th1 = 0.5, th2 = 0.5";

/// The plan of `method` and its native kernels.
fn native(c: &Compiled, method: Method, particles: Option<u64>) -> (Plan, Kernels) {
    let plan = lagc::plan::plan(&c.model, &c.equations, method, particles).unwrap();
    let k = Kernels::build(&c.model, &c.equations, &plan, BackendKind::Native).unwrap();
    (plan, k)
}

/// The median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut v: Vec<Duration> = (0..runs).map(|_| f()).collect();
    v.sort();
    v[runs / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Discards rows.
struct Null(usize);
impl RowSink for Null {
    fn row(&mut self, v: &[f64]) -> Result<(), SinkError> {
        self.0 += 1;
        black_box(v);
        Ok(())
    }
}

fn compile_latency() {
    println!("\nCompile latency, N-link chain (medians of 5; ms), kernel size and peak memory:");
    println!(
        "{:>4} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12} {:>10}",
        "N", "parse", "derive", "jit", "total", "DAG nodes", "CLIF insts", "peak MB"
    );
    for n in [2usize, 5, 10, 20, 50, 100, 200] {
        let src = chain_source(n);
        let runs = if n >= 50 { 3 } else { 5 };
        let (mut parse, mut derive, mut jit) = (vec![], vec![], vec![]);
        let mut insts = 0;
        let mut nodes = 0;
        for _ in 0..runs {
            let c = lagc::compile_for(&src, "chain", &[], Some(Method::Rk4)).unwrap();
            parse.push(c.timings.parse);
            derive.push(c.timings.derive);
            let start = Instant::now();
            let (_, k) = native(&c, Method::Rk4, None);
            jit.push(start.elapsed());
            insts = k.instruction_count().unwrap_or(0);
            if let Equations::Lagrangian(e) = &c.equations {
                let mut roots: Vec<_> = e.mass_matrix.concat();
                roots.extend(&e.forcing);
                nodes = c.model.arena.dag_size(&roots);
            }
        }
        let med = |mut v: Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        let (p, d, j) = (med(parse), med(derive), med(jit));
        let peak = peak_memory_of_a_run(n).map(|m| format!("{m:.1}")).unwrap_or_else(|| "-".into());
        println!(
            "{n:>4} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {nodes:>12} {insts:>12} {peak:>10}",
            ms(p),
            ms(d),
            ms(j),
            ms(p + d + j)
        );
    }
}

/// The peak memory of `lagc run` compiling the chain, from its summary line.
fn peak_memory_of_a_run(n: usize) -> Option<f64> {
    let dir = std::env::temp_dir().join(format!("lagc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let model = dir.join("chain.lag");
    std::fs::write(&model, chain_source(n)).ok()?;
    let out = Command::new(env!("CARGO_BIN_EXE_lagc"))
        .args(["run", model.to_str()?, "--t-end", "0", "--out", dir.join("c.csv").to_str()?])
        .output()
        .ok()?;
    let err = String::from_utf8_lossy(&out.stderr);
    let at = err.find("peak memory ")? + "peak memory ".len();
    err[at..].split_whitespace().next()?.parse().ok()
}

/// One RK4 right-hand side by the compiled kernel and by the tree-walking
/// evaluator (mass matrix and forcing evaluated, then a dense solve).
fn jit_against_evaluator() {
    println!("\nRight-hand side y' = (v, M⁻¹f): compiled kernel against the tree-walking evaluator (ns per call):");
    println!("{:<20} {:>12} {:>14} {:>8}", "problem", "jit", "evaluator", "ratio");
    for (name, src) in [
        ("double pendulum", DOUBLE_PENDULUM.to_string()),
        ("chain N=5", chain_source(5)),
        ("chain N=10", chain_source(10)),
    ] {
        let c = lagc::compile_for(&src, "bench", &[], Some(Method::Rk4)).unwrap();
        let (_, k) = native(&c, Method::Rk4, None);
        let y0 = lagc::drive::initial_state(&c.model);
        let d = y0.len();
        let mut dy = vec![0.0; d];
        let mut work = Work::default();
        let reps = 2000;
        let jit = median(9, || {
            let start = Instant::now();
            for i in 0..reps {
                k.rhs(i as f64 * 1e-9, &y0, &mut dy, &mut work).unwrap();
                black_box(&dy);
            }
            start.elapsed() / reps
        });
        let Equations::Lagrangian(e) = &c.equations else { unreachable!() };
        let n = d / 2;
        let mut env: Env = c.model.env();
        for (s, x) in c.model.var_syms().into_iter().chain(c.model.velocity_syms()).zip(&y0) {
            env.set(s, *x);
        }
        let entries: Vec<_> = e.mass_matrix.concat();
        let reps = 50;
        let tree = median(5, || {
            let start = Instant::now();
            for _ in 0..reps {
                let mut m = c.model.arena.eval_many(&entries, &env);
                let mut f = c.model.arena.eval_many(&e.forcing, &env);
                lagc::integrate::linalg::solve_spd_or_lu(&mut m, &mut f, n).unwrap();
                black_box(&f);
            }
            start.elapsed() / reps
        });
        println!(
            "{name:<20} {:>12.0} {:>14.0} {:>7.0}x",
            jit.as_nanos() as f64,
            tree.as_nanos() as f64,
            tree.as_secs_f64() / jit.as_secs_f64()
        );
    }
}

fn dopri5_time_to_solution() {
    let c = lagc::compile_for(DOUBLE_PENDULUM, "bench", &[], Some(Method::Dopri5)).unwrap();
    let opts = RunOptions {
        method: Some(Method::Dopri5),
        rtol: Some(1e-9),
        atol: Some(1e-9),
        t_end: Some(10.0),
        dt: Some(10.0),
        ..Default::default()
    };
    let cfg = RunConfig::resolve(&c.model, &opts).unwrap();
    let (plan, k) = native(&c, Method::Dopri5, None);
    let mut steps = 0;
    let t = median(9, || {
        let start = Instant::now();
        let s = run(&c.model, &plan, &k, &cfg, &mut Null(0), Control::default()).unwrap();
        steps = s.steps;
        start.elapsed()
    });
    println!("\ndopri5, double pendulum to t = 10 at rtol = atol = 1e-9: {:.3} ms ({steps} steps)", ms(t));
}

fn ensemble_throughput() {
    let src = "param T = 0.5\nstate x\nenergy = (x^2 - 1)^2\ntemperature = T\ninit x ~ normal(0, 0.5)";
    let c = lagc::compile_for(src, "double_well", &[], Some(Method::Em)).unwrap();
    let (particles, steps) = (10_000u64, 1000u64);
    let opts = RunOptions {
        method: Some(Method::Em),
        dt: Some(1e-3),
        t_end: Some(steps as f64 * 1e-3),
        every: Some(steps),
        particles: Some(particles),
        ..Default::default()
    };
    let cfg = RunConfig::resolve(&c.model, &opts).unwrap();
    let (plan, k) = native(&c, Method::Em, Some(particles));
    let t = median(5, || {
        let start = Instant::now();
        run(&c.model, &plan, &k, &cfg, &mut Null(0), Control::default()).unwrap();
        start.elapsed()
    });
    let threads = rayon::current_num_threads();
    println!(
        "\nLangevin ensemble, double well, Euler–Maruyama h = 1e-3: {particles} particles × {steps} steps in {:.1} ms \
         = {:.2} ns per particle-step on {threads} threads",
        ms(t),
        t.as_secs_f64() * 1e9 / (particles * steps) as f64
    );
}

/// The median time per number of `f` over numbers of a trajectory's sizes.
fn per_number(numbers: &[f64], mut f: impl FnMut(f64)) -> f64 {
    let t = median(5, || {
        let start = Instant::now();
        for &x in numbers {
            f(black_box(x));
        }
        start.elapsed()
    });
    t.as_secs_f64() * 1e9 / numbers.len() as f64
}

/// The wall time of `lagc run` as its summary gives it (`…, X s (front end …`).
fn run_seconds(args: &[&str]) -> Option<f64> {
    let out = Command::new(env!("CARGO_BIN_EXE_lagc")).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let end = text.find(" s (front end")?;
    text[..end].rsplit(' ').next()?.parse().ok()
}

/// Problem A (docs/numerics.md §Row output): the double pendulum with unit masses and
/// lengths, whose rows have six columns (`t`, two angles, two velocities, `H`).
const PROBLEM_A: &str = "model problem_a
param g = 9.81
coord th1, th2
let x1 = sin(th1)
let y1 = -cos(th1)
let x2 = x1 + sin(th2)
let y2 = y1 - cos(th2)
lagrangian = 1/2*(x1'^2 + y1'^2) + 1/2*(x2'^2 + y2'^2) - g*(y1 + y2)
init th1 = 0.5, th2 = 0.5
";

/// What a row costs: formatting one number, and runs of the double pendulum (RK4,
/// h = 1e-3, 10⁶ steps) writing every row against runs writing two, in pairs one after
/// the other, each to a new file (docs/numerics.md §Row output).
fn row_cost() {
    let numbers: Vec<f64> = (0..1_000_000).map(|i| ((i as f64) * 0.618_033_988_749_894_9).sin() * 1.7).collect();
    let mut line = Vec::with_capacity(64);
    let mut text = String::with_capacity(64);
    let fast = per_number(&numbers, |x| {
        line.clear();
        lagc::cli::float_text::push_csv(&mut line, x);
        black_box(&line);
    });
    let fmt = per_number(&numbers, |x| {
        text.clear();
        lagc::sym::write_float(&mut text, x);
        black_box(&text);
    });
    println!(
        "
One number as CSV text: {fast:.1} ns (zmij, laid out as write_float), {fmt:.1} ns (core::fmt)"
    );
    let dir = std::env::temp_dir().join(format!("lagc-bench-rows-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let problem_a = dir.join("problem_a.lag");
    std::fs::write(&problem_a, PROBLEM_A).expect("a temporary model file");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/double_pendulum.lag");
    let steps = 1_000_000.0;
    let pairs = 9;
    println!("Rows of the double pendulum, RK4 h = 1e-3, 10⁶ steps ({pairs} pairs, medians):");
    println!(
        "{:>34} {:>6} {:>12} {:>12} {:>8} {:>7}",
        "model (columns)", "format", "no rows (s)", "all rows (s)", "ns/row", "ratio"
    );
    let problem_a = problem_a.to_string_lossy().into_owned();
    let cases = [
        ("problem A (6)", problem_a.as_str(), "csv"),
        ("problem A (6)", problem_a.as_str(), "json"),
        ("problem A (6)", problem_a.as_str(), "npy"),
        ("examples/double_pendulum.lag (10)", example, "csv"),
    ];
    for (name, model, ext) in &cases {
        let out = dir.join(format!("r.{ext}")).to_string_lossy().into_owned();
        let run = |every: &str| {
            // A new file each time: replacing a large file costs its removal, which is not the
            // run's.
            let _ = std::fs::remove_file(&out);
            let args =
                ["run", model, "--method", "rk4", "--dt", "1e-3", "--t-end", "1000", "--every", every, "--out", &out];
            run_seconds(&args).unwrap_or(f64::NAN)
        };
        let (mut none, mut all, mut ratio) = (vec![], vec![], vec![]);
        for _ in 0..pairs {
            let (a, b) = (run("1000000"), run("1"));
            none.push(a);
            all.push(b);
            ratio.push(b / a);
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (none, all, ratio) = (med(&mut none), med(&mut all), med(&mut ratio));
        println!("{name:>34} {ext:>6} {none:>12.3} {all:>12.3} {:>8.0} {ratio:>7.2}", (all - none) * 1e9 / steps);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // Criterion's command line is accepted; a word that is not an option picks the tables
    // whose names contain it (`cargo bench --bench pipeline -- rows`).
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let tables: [(&str, fn()); 5] = [
        ("compile", compile_latency),
        ("jit", jit_against_evaluator),
        ("dopri5", dopri5_time_to_solution),
        ("ensemble", ensemble_throughput),
        ("rows", row_cost),
    ];
    for (name, table) in tables {
        if filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())) {
            table();
        }
    }
}
