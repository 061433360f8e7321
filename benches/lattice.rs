//! Lattices and N bodies: lagc's compiled Störmer–Verlet loop beside
//! hand-written Rust loops for the same equations (the springs of the FPUT-α
//! lattice with fixed ends; softened gravity over every pair, each pair once),
//! in one process, with the compile time of each model. Run with
//! `cargo bench --bench lattice`; prints a table of µs per step and ratios.

// Index loops keep the hand-written reference as plain as the textbook.
#![allow(clippy::needless_range_loop)]

use lagc::{BackendKind, Kernels, Method};
use std::time::Instant;

fn fput_source(n: usize) -> String {
    format!(
        "const N = {n}\nparam alpha = 0.25\ncoord u[N]\nlet d[i in 0..N-1] = u[i+1] - u[i]\n\
         lagrangian = sum(i in 0..N, 1/2*u[i]'^2) - 1/2*u[0]^2 - 1/2*u[N-1]^2 \
         - sum(i in 0..N-1, 1/2*d[i]^2 + alpha/3*d[i]^3)\n\
         init u[i in 0..N] = sin(pi*(i+1)/(N+1))"
    )
}

fn nbody_source(n: usize) -> String {
    format!(
        "const N = {n}\nparam eps = 0.1\ncoord x[N], y[N], z[N]\n\
         lagrangian = sum(i in 0..N, 1/2*(x[i]'^2 + y[i]'^2 + z[i]'^2)) \
         + 1/2*sum(i in 0..N, sum(j in 0..N, 1/sqrt((x[j] - x[i])^2 + (y[j] - y[i])^2 + (z[j] - z[i])^2 + eps^2)))\n\
         init x[i in 0..N] = cos(2*pi*i/N), y[i in 0..N] = sin(2*pi*i/N), z[i in 0..N] = 0.1*sin(4*pi*i/N)"
    )
}

/// Compile time (s) and µs per Verlet step of lagc's compiled loop, and the final state.
fn lagc_verlet(src: &str, h: f64, steps: usize) -> (f64, f64, Vec<f64>) {
    let start = Instant::now();
    let c = lagc::compile_for(src, "bench", &[], Some(Method::Verlet)).expect("compiles");
    let plan = lagc::plan::plan(&c.model, &c.equations, Method::Verlet, None).expect("verlet fits");
    let k = Kernels::build(&c.model, &c.equations, &plan, BackendKind::Native).expect("builds");
    let compile = start.elapsed().as_secs_f64();
    let mut y = lagc::drive::initial_state(&c.model);
    let f = k.step_loop().expect("a compiled loop");
    let mut rows = Vec::new();
    let t = Instant::now();
    f.call(0.0, h, steps, steps, &mut y, k.params(), &mut rows).expect("a regular run");
    (compile, t.elapsed().as_secs_f64() * 1e6 / steps as f64, y)
}

fn fput_native(n: usize, h: f64, steps: usize) -> (f64, f64) {
    let alpha = 0.25;
    let mut u: Vec<f64> = (0..n).map(|i| (std::f64::consts::PI * (i + 1) as f64 / (n + 1) as f64).sin()).collect();
    let (mut v, mut f) = (vec![0.0; n], vec![0.0; n]);
    let force = |u: &[f64], f: &mut [f64]| {
        f.iter_mut().for_each(|x| *x = 0.0);
        f[0] -= u[0];
        f[n - 1] -= u[n - 1];
        for i in 0..n - 1 {
            let d = u[i + 1] - u[i];
            let g = d + alpha * d * d;
            f[i] += g;
            f[i + 1] -= g;
        }
    };
    force(&u, &mut f);
    let t = Instant::now();
    for _ in 0..steps {
        for i in 0..n {
            v[i] += 0.5 * h * f[i];
            u[i] += h * v[i];
        }
        force(&u, &mut f);
        for i in 0..n {
            v[i] += 0.5 * h * f[i];
        }
    }
    (t.elapsed().as_secs_f64() * 1e6 / steps as f64, std::hint::black_box(u[0]))
}

fn nbody_native(n: usize, h: f64, steps: usize) -> (f64, f64) {
    let tau = 2.0 * std::f64::consts::PI;
    let mut x: Vec<[f64; 3]> = (0..n)
        .map(|i| {
            let th = tau * i as f64 / n as f64;
            [th.cos(), th.sin(), 0.1 * (2.0 * th).sin()]
        })
        .collect();
    let (mut v, mut f) = (vec![[0.0f64; 3]; n], vec![[0.0f64; 3]; n]);
    let force = |x: &[[f64; 3]], f: &mut [[f64; 3]]| {
        f.iter_mut().for_each(|a| *a = [0.0; 3]);
        for i in 0..n {
            for j in i + 1..n {
                let d = [x[j][0] - x[i][0], x[j][1] - x[i][1], x[j][2] - x[i][2]];
                let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + 0.01;
                let inv = 1.0 / (r2 * r2.sqrt());
                for k in 0..3 {
                    f[i][k] += d[k] * inv;
                    f[j][k] -= d[k] * inv;
                }
            }
        }
    };
    force(&x, &mut f);
    let t = Instant::now();
    for _ in 0..steps {
        for i in 0..n {
            for k in 0..3 {
                v[i][k] += 0.5 * h * f[i][k];
                x[i][k] += h * v[i][k];
            }
        }
        force(&x, &mut f);
        for i in 0..n {
            for k in 0..3 {
                v[i][k] += 0.5 * h * f[i][k];
            }
        }
    }
    (t.elapsed().as_secs_f64() * 1e6 / steps as f64, std::hint::black_box(x[0][0]))
}

fn main() {
    println!("| model | compile (ms) | lagc (µs/step) | hand-written (µs/step) | ratio | first coordinate agrees to |");
    println!("|---|---|---|---|---|---|");
    for n in [64, 1024, 10_000] {
        let steps = (20_000_000 / n).min(100_000);
        let (compile, ours, y) = lagc_verlet(&fput_source(n), 1e-2, steps);
        let (theirs, u0) = fput_native(n, 1e-2, steps);
        println!(
            "| FPUT-α, N = {n} | {:.1} | {ours:.3} | {theirs:.3} | {:.2} | {:.0e} |",
            compile * 1e3,
            ours / theirs,
            (y[0] - u0).abs()
        );
    }
    for n in [20, 100, 200] {
        let steps = (4_000_000 / (n * n)).max(100);
        let (compile, ours, _) = lagc_verlet(&nbody_source(n), 1e-3, steps);
        let (theirs, _) = nbody_native(n, 1e-3, steps);
        // The bodies fall together and pass close: compare the states after 100 steps,
        // before rounding differences grow through the close passes.
        let (_, _, y) = lagc_verlet(&nbody_source(n), 1e-3, 100);
        let (_, x0) = nbody_native(n, 1e-3, 100);
        println!(
            "| N-body, {n} bodies | {:.1} | {ours:.2} | {theirs:.2} | {:.2} | {:.0e} |",
            compile * 1e3,
            ours / theirs,
            (y[0] - x0).abs()
        );
    }
}
