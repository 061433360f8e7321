//! RK4 steps per second: lagc's compiled loop against hand-written Rust for
//! the same equations, and against the portable evaluator, measured side by
//! side in one process. Run with `cargo bench --bench rk4`.
//!
//! Problem A: the double pendulum (unit masses and lengths, g = 9.81) from
//! θ = (0.5, 0.5) at rest, against its closed-form accelerations.
//! Problem B: the N-link chain in Cartesian form, against a hand-written chain that
//! computes the sine and cosine of each angle once and solves by Cholesky (the
//! reference of `../shared/bench/native`'s `chainfast`), and against a generic
//! hand-written mass matrix with Gaussian elimination.

// Index loops keep the hand-written reference as plain as the textbook.
#![allow(clippy::needless_range_loop)]

use criterion::{black_box, Criterion, Throughput};
use lagc::Method;
use lagc::{BackendKind as Backend, Kernels};
use std::time::{Duration, Instant};

const H: f64 = 1e-3;
const STEPS: usize = 1000;
const G: f64 = 9.81;

fn rk4_step<const D: usize>(y: &mut [f64; D], h: f64, f: &impl Fn(&[f64; D], &mut [f64; D])) {
    let (mut k1, mut k2, mut k3, mut k4, mut s) = ([0.0; D], [0.0; D], [0.0; D], [0.0; D], [0.0; D]);
    f(y, &mut k1);
    for i in 0..D {
        s[i] = y[i] + 0.5 * h * k1[i];
    }
    f(&s, &mut k2);
    for i in 0..D {
        s[i] = y[i] + 0.5 * h * k2[i];
    }
    f(&s, &mut k3);
    for i in 0..D {
        s[i] = y[i] + h * k3[i];
    }
    f(&s, &mut k4);
    for i in 0..D {
        y[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
    }
}

/// The textbook closed form of the double pendulum's accelerations.
fn double_pendulum(y: &[f64; 4], dy: &mut [f64; 4]) {
    let (t1, t2, w1, w2) = (y[0], y[1], y[2], y[3]);
    let (m1, m2, l1, l2) = (1.0, 1.0, 1.0, 1.0);
    let d = t1 - t2;
    let (sd, cd) = d.sin_cos();
    let den = 2.0 * m1 + m2 - m2 * (2.0 * d).cos();
    dy[0] = w1;
    dy[1] = w2;
    dy[2] = (-G * (2.0 * m1 + m2) * t1.sin()
        - m2 * G * (t1 - 2.0 * t2).sin()
        - 2.0 * sd * m2 * (w2 * w2 * l2 + w1 * w1 * l1 * cd))
        / (l1 * den);
    dy[3] = 2.0 * sd * (w1 * w1 * l1 * (m1 + m2) + G * (m1 + m2) * t1.cos() + w2 * w2 * l2 * m2 * cd) / (l2 * den);
}

/// The N-link chain: M_jk = (N − max(j,k)) cos(q_j − q_k),
/// f_j = −Σ_k (N − max(j,k)) sin(q_j − q_k) v_k² − g (N − j) sin q_j,
/// solved by Gaussian elimination with partial pivoting.
fn chain<const N: usize, const D: usize>(y: &[f64; D], dy: &mut [f64; D]) {
    let (q, v) = y.split_at(N);
    let mut m = [[0.0; N]; N];
    let mut f = [0.0; N];
    for j in 0..N {
        f[j] = -G * (N - j) as f64 * q[j].sin();
        for k in 0..N {
            let c = (N - j.max(k)) as f64;
            let (s, co) = (q[j] - q[k]).sin_cos();
            m[j][k] = c * co;
            f[j] -= c * s * v[k] * v[k];
        }
    }
    for col in 0..N {
        let p = (col..N).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs())).unwrap();
        m.swap(col, p);
        f.swap(col, p);
        for r in col + 1..N {
            let l = m[r][col] / m[col][col];
            for c in col..N {
                m[r][c] -= l * m[col][c];
            }
            f[r] -= l * f[col];
        }
    }
    for r in (0..N).rev() {
        let mut s = f[r];
        for c in r + 1..N {
            s -= m[r][c] * f[c];
        }
        f[r] = s / m[r][r];
    }
    dy[..N].copy_from_slice(v);
    dy[N..].copy_from_slice(&f);
}

/// The same chain as a careful hand-written kernel: `sin_cos` of each angle once, the
/// entries by `cos(a − b) = cos a cos b + sin a sin b`, Cholesky and two substitutions.
fn chain_fast<const N: usize, const D: usize>(y: &[f64; D], dy: &mut [f64; D]) {
    let (q, v) = y.split_at(N);
    let sc: [(f64, f64); N] = std::array::from_fn(|i| q[i].sin_cos());
    let mut m = [[0.0; N]; N];
    let mut f = [0.0; N];
    for i in 0..N {
        let (si, ci) = sc[i];
        let mut fi = -G * (N - i) as f64 * si;
        for j in 0..N {
            let (sj, cj) = sc[j];
            let w = (N - i.max(j)) as f64;
            m[i][j] = w * (ci * cj + si * sj);
            fi -= w * (si * cj - ci * sj) * v[j] * v[j];
        }
        f[i] = fi;
    }
    for j in 0..N {
        let mut d = m[j][j];
        for k in 0..j {
            d -= m[j][k] * m[j][k];
        }
        let d = d.sqrt();
        m[j][j] = d;
        for i in j + 1..N {
            let mut s = m[i][j];
            for k in 0..j {
                s -= m[i][k] * m[j][k];
            }
            m[i][j] = s / d;
        }
    }
    for i in 0..N {
        let mut s = f[i];
        for k in 0..i {
            s -= m[i][k] * f[k];
        }
        f[i] = s / m[i][i];
    }
    for i in (0..N).rev() {
        let mut s = f[i];
        for k in i + 1..N {
            s -= m[k][i] * f[k];
        }
        f[i] = s / m[i][i];
    }
    dy[..N].copy_from_slice(v);
    dy[N..].copy_from_slice(&f);
}

fn chain_source(n: usize) -> String {
    format!(
        "const N = {n}\nparam g = 9.81\ncoord q[N]\n\
         let x[i in 0..N] = sum(j in 0..=i, sin(q[j]))\nlet y[i in 0..N] = sum(j in 0..=i, -cos(q[j]))\n\
         lagrangian = sum(i in 0..N, 1/2*(x[i]'^2 + y[i]'^2) - g*y[i])\ninit q[i in 0..N] = 0.5"
    )
}

const DOUBLE_PENDULUM: &str = "param g = 9.81\nparam m1 = 1, m2 = 1\nparam l1 = 1, l2 = 1\ncoord th1, th2\n\
    let x1 = l1*sin(th1)\nlet y1 = -l1*cos(th1)\nlet x2 = x1 + l2*sin(th2)\nlet y2 = y1 - l2*cos(th2)\n\
    lagrangian = 1/2*m1*(x1'^2 + y1'^2) + 1/2*m2*(x2'^2 + y2'^2) - g*(m1*y1 + m2*y2)\ninit th1 = 0.5, th2 = 0.5";

/// A model's kernels and a function that takes `STEPS` RK4 steps.
fn lagc_stepper(src: &str, backend: Backend) -> impl FnMut() {
    let c = lagc::compile_for(src, "bench", &[], Some(Method::Rk4)).expect("model compiles");
    let plan = lagc::plan::plan(&c.model, &c.equations, Method::Rk4, None).expect("rk4 fits");
    let k = Kernels::build(&c.model, &c.equations, &plan, backend).expect("kernels build");
    let y0 = lagc::drive::initial_state(&c.model);
    let mut y = y0.clone();
    let mut rows = Vec::new();
    let mut work = lagc::backend::Work::default();
    move || {
        rows.clear();
        y.copy_from_slice(&y0);
        match k.step_loop() {
            Some(f) => {
                f.call(0.0, H, STEPS, STEPS, &mut y, k.params(), &mut rows).expect("regular run");
            }
            None => {
                let d = y.len();
                let (mut k1, mut k2, mut k3, mut k4, mut s) =
                    (vec![0.0; d], vec![0.0; d], vec![0.0; d], vec![0.0; d], vec![0.0; d]);
                for step in 0..STEPS {
                    let t = step as f64 * H;
                    k.rhs(t, &y, &mut k1, &mut work).unwrap();
                    for i in 0..d {
                        s[i] = y[i] + 0.5 * H * k1[i];
                    }
                    k.rhs(t + 0.5 * H, &s, &mut k2, &mut work).unwrap();
                    for i in 0..d {
                        s[i] = y[i] + 0.5 * H * k2[i];
                    }
                    k.rhs(t + 0.5 * H, &s, &mut k3, &mut work).unwrap();
                    for i in 0..d {
                        s[i] = y[i] + H * k3[i];
                    }
                    k.rhs(t + H, &s, &mut k4, &mut work).unwrap();
                    for i in 0..d {
                        y[i] += H / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
                    }
                }
            }
        }
        black_box(&y);
    }
}

fn hand_stepper<const D: usize>(y0: [f64; D], f: fn(&[f64; D], &mut [f64; D])) -> impl FnMut() {
    move || {
        let mut y = y0;
        for _ in 0..STEPS {
            rk4_step(&mut y, H, &f);
        }
        black_box(&y);
    }
}

/// Median nanoseconds per step over several timed batches.
fn ns_per_step(f: &mut impl FnMut()) -> f64 {
    f();
    let mut samples: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            let mut reps = 0;
            while start.elapsed() < Duration::from_millis(20) {
                f();
                reps += 1;
            }
            start.elapsed().as_nanos() as f64 / (reps * STEPS) as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The chain's initial state: every angle 0.5, at rest.
fn chain_y0<const D: usize>() -> [f64; D] {
    std::array::from_fn(|i| if i < D / 2 { 0.5 } else { 0.0 })
}

/// A closure that takes `STEPS` RK4 steps.
type Stepper = Box<dyn FnMut()>;

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut table = Vec::new();
    // One problem: lagc's compiled loop, the hand-written kernel the ratio is taken to, a
    // second, generic hand-written kernel, and lagc's portable evaluator (left out where it
    // would take minutes).
    let mut case =
        |name: &str, mut jit: Stepper, mut hand: Stepper, generic: Option<Stepper>, portable: Option<Stepper>| {
            let mut g = c.benchmark_group(name);
            g.throughput(Throughput::Elements(STEPS as u64));
            g.bench_function("lagc jit", |b| b.iter(&mut jit));
            g.bench_function("hand-written", |b| b.iter(&mut hand));
            g.finish();
            let (j, h) = (ns_per_step(&mut jit), ns_per_step(&mut hand));
            let generic = generic.map_or_else(|| "-".to_string(), |mut f| format!("{:.1}", ns_per_step(&mut f)));
            let (p, pj) = portable.map_or_else(
                || ("-".to_string(), "-".to_string()),
                |mut f| {
                    let p = ns_per_step(&mut f);
                    (format!("{p:.1}"), format!("{:.1}x", p / j))
                },
            );
            table.push(format!("{name:<24} {j:>10.1} {h:>12.1} {:>9.2}x {generic:>12} {p:>12} {pj:>10}", j / h));
        };
    case(
        "A double pendulum",
        Box::new(lagc_stepper(DOUBLE_PENDULUM, Backend::Native)),
        Box::new(hand_stepper([0.5, 0.5, 0.0, 0.0], double_pendulum)),
        None,
        Some(Box::new(lagc_stepper(DOUBLE_PENDULUM, Backend::Portable))),
    );
    macro_rules! chain_case {
        ($n:literal, $d:literal, $portable:expr) => {
            case(
                concat!("B chain N=", $n),
                Box::new(lagc_stepper(&chain_source($n), Backend::Native)),
                Box::new(hand_stepper(chain_y0::<$d>(), chain_fast::<$n, $d>)),
                Some(Box::new(hand_stepper(chain_y0::<$d>(), chain::<$n, $d>))),
                $portable.then(|| Box::new(lagc_stepper(&chain_source($n), Backend::Portable)) as Stepper),
            )
        };
    }
    chain_case!(2, 4, true);
    chain_case!(5, 10, true);
    chain_case!(10, 20, true);
    chain_case!(20, 40, true);
    chain_case!(50, 100, false);
    println!("\nRK4, h = {H}, ns per step (medians of one run; the ratio is to the careful");
    println!("hand-written kernel, sin/cos of each angle once and Cholesky; `generic` forms");
    println!("every sin/cos(q_j - q_k) and eliminates with pivoting):");
    println!(
        "{:<24} {:>10} {:>12} {:>10} {:>12} {:>12} {:>10}",
        "problem", "lagc jit", "hand-written", "jit/hand", "generic", "portable", "port/jit"
    );
    for row in table {
        println!("{row}");
    }
}
