//! Learning problems with data, measured beside hand-written Rust in one
//! process: the full gradient of logistic regression (10⁴ rows × 20 features
//! read from a CSV file) as lagc compiles it, against a hand-written loop
//! computing the same numbers, and lagc's compile time for it. lagc's number is
//! one call of the flow's right-hand side `-∇E` as its integrators make it.
//! Run with `cargo bench --bench data`.

use criterion::black_box;
use lagc::backend::Work;
use lagc::{BackendKind, Kernels, Method, RunConfig, RunOptions};
use std::time::{Duration, Instant};

const ROWS: usize = 10_000;
const FEATURES: usize = 20;
const LAMBDA: f64 = 1e-3;

/// Deterministic features and labels (xorshift).
fn data() -> (Vec<f64>, Vec<f64>) {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut x = Vec::with_capacity(ROWS * FEATURES);
    let mut y = Vec::with_capacity(ROWS);
    for _ in 0..ROWS {
        let mut z = 0.0;
        for j in 0..FEATURES {
            let v = 2.0 * next() - 1.0;
            z += v * if j % 2 == 0 { 1.0 } else { -0.5 };
            x.push(v);
        }
        y.push(if next() < 1.0 / (1.0 + (-z).exp()) { 1.0 } else { 0.0 });
    }
    (x, y)
}

/// The gradient of the mean log-loss plus the ridge term, written by hand.
fn gradient(x: &[f64], y: &[f64], w: &[f64], b: f64, g: &mut [f64]) {
    g.fill(0.0);
    let mut gb = 0.0;
    for (row, &yi) in x.chunks_exact(FEATURES).zip(y) {
        let z = b + row.iter().zip(w).map(|(a, c)| a * c).sum::<f64>();
        let s = 1.0 / (1.0 + (-z).exp()) - yi;
        for (gj, a) in g.iter_mut().zip(row) {
            *gj += s * a;
        }
        gb += s;
    }
    let m = ROWS as f64;
    for (gj, wj) in g.iter_mut().zip(w) {
        *gj = *gj / m + LAMBDA * wj;
    }
    g[FEATURES] = gb / m;
}

fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut v: Vec<Duration> = (0..runs).map(|_| f()).collect();
    v.sort();
    v[runs / 2]
}

fn main() {
    let (x, y) = data();
    let dir = std::env::temp_dir().join(format!("lagc-bench-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv: String = (0..FEATURES).map(|j| format!("X[{j}],")).collect();
    csv.push_str("y\n");
    for (row, yi) in x.chunks_exact(FEATURES).zip(&y) {
        for v in row {
            csv.push_str(&format!("{v:?},"));
        }
        csv.push_str(&format!("{yi}\n"));
    }
    std::fs::write(dir.join("d.csv"), csv).unwrap();
    let src = format!(
        "data X[M, F], y[M] = \"d.csv\"\nparam lambda = {LAMBDA}\nstate w[F], b\n\
         let z[i in 0..M] = b + sum(j in 0..F, w[j]*X[i, j])\n\
         energy = 1/M*sum(i in 0..M, log(1 + exp(z[i])) - y[i]*z[i]) + lambda/2*sum(j in 0..F, w[j]^2)\n"
    );
    let files = lagc::DataFiles { dir: Some(dir.clone()), replace: vec![] };

    let start = Instant::now();
    let c = lagc::compile_for_in(&src, "logistic", &[], Some(Method::Euler), &files).expect("compiles");
    let front = start.elapsed();
    let cfg = RunConfig::resolve(&c.model, &RunOptions::default()).unwrap();
    let plan = c.plan(&cfg).unwrap();
    let k = Kernels::build(&c.model, &c.equations, &plan, BackendKind::Native).unwrap();
    let compile = start.elapsed();

    let n = FEATURES + 1;
    let theta: Vec<f64> = (0..n).map(|i| 0.1 * ((i % 7) as f64 - 3.0)).collect();
    let mut work = Work::default();
    let mut g_lagc = vec![0.0; n];
    let mut g_hand = vec![0.0; n];
    k.rhs(0.0, &theta, &mut g_lagc, &mut work).unwrap();
    g_lagc.iter_mut().for_each(|v| *v = -*v);
    gradient(&x, &y, &theta[..FEATURES], theta[FEATURES], &mut g_hand);
    let err = g_lagc.iter().zip(&g_hand).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(err < 1e-12, "lagc and the hand-written loop disagree by {err}");

    let reps = 50;
    let t_lagc = median(9, || {
        let s = Instant::now();
        for _ in 0..reps {
            k.rhs(0.0, black_box(&theta), &mut g_lagc, &mut work).unwrap();
        }
        s.elapsed() / reps
    });
    let t_hand = median(9, || {
        let s = Instant::now();
        for _ in 0..reps {
            gradient(black_box(&x), &y, black_box(&theta[..FEATURES]), theta[FEATURES], &mut g_hand);
        }
        s.elapsed() / reps
    });
    println!("logistic regression, {ROWS} rows x {FEATURES} features, full gradient (median of 9 x {reps})");
    println!("| | per gradient | per row | ratio |");
    println!("|---|---|---|---|");
    for (name, t) in [("lagc (native)", t_lagc), ("hand-written Rust", t_hand)] {
        println!(
            "| {name} | {:.1} µs | {:.2} ns | {:.2}x |",
            t.as_secs_f64() * 1e6,
            t.as_secs_f64() * 1e9 / ROWS as f64,
            t.as_secs_f64() / t_hand.as_secs_f64()
        );
    }
    println!(
        "compile: parse+derive {:.1} ms, total with kernels {:.1} ms (gradients agree to {err:.1e})",
        front.as_secs_f64() * 1e3,
        compile.as_secs_f64() * 1e3
    );
    // `benches/jax_logistic.sh` times JAX on the same file.
    if let Some(keep) = std::env::var_os("LAGC_BENCH_DATA_CSV") {
        std::fs::copy(dir.join("d.csv"), &keep).expect("the data file is copied");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
