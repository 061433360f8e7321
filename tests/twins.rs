//! Every compiled loop against its Rust twin, from the same state, for many
//! steps: the compiled RK4 loop against `integrate::rk4`, the compiled
//! Störmer–Verlet loop against `integrate::verlet`, and the compiled
//! Euler–Maruyama block against `integrate::em_block_step` with the same noise.
//!
//! Both sides do the same step arithmetic in the same order over the same
//! compiled right-hand side. They still differ in the last bits: a loop
//! inlines small right-hand sides, where Cranelift's optimiser may share and
//! reorder their operations across stages, and with explicit time the stage
//! times round differently (the loop computes `t0 + (k + ½)h`, the Rust twin
//! `(t0 + k·dt) + h/2`). Measured over the runs below that is at most 2e-15 of
//! the state's scale; the tolerances, 1e-13 (1e-11 with explicit time),
//! leave room for that and nothing more. A twin that computes anything
//! else (another stage weight, a missing half kick) is off by 1e-4 or more
//! after the first steps. The Euler–Maruyama block calls the right-hand side
//! out of line and agrees bit for bit.

use lagc::backend::Work;
use lagc::integrate::{self, Cause, Grid, OdeSystem};
use lagc::plan::Plan;
use lagc::{BackendKind, Compiled, Kernels, Method};

fn build(src: &str, method: Method) -> (Compiled, Plan, Kernels) {
    let c = lagc::compile_for(src, "twin", &[], Some(method)).expect("model compiles");
    let plan = lagc::plan::plan(&c.model, &c.equations, method, None).expect("the method fits");
    let k = Kernels::build(&c.model, &c.equations, &plan, BackendKind::Native).expect("kernels build");
    (c, plan, k)
}

/// The model's right-hand side as an `OdeSystem`, through the compiled kernel.
struct Rhs<'k>(&'k Kernels, Work);

impl OdeSystem for Rhs<'_> {
    fn dim(&self) -> usize {
        match self.0.kind {
            lagc::ModelKind::Lagrangian => 2 * self.0.n,
            lagc::ModelKind::Energy => self.0.n,
        }
    }
    fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) -> Result<(), Cause> {
        self.0.rhs(t, y, dy, &mut self.1)
    }
    fn jacobian(&mut self, _t: f64, _y: &[f64], _jac: &mut [f64]) -> Result<(), Cause> {
        unreachable!("explicit methods need no Jacobian")
    }
}

/// The rows of the compiled loop: `steps` steps of `h` from `y0`, every `every`.
fn compiled_rows(k: &Kernels, t0: f64, h: f64, steps: usize, every: usize, y0: &[f64]) -> Vec<Vec<f64>> {
    let mut y = y0.to_vec();
    let mut rows = Vec::new();
    let f = k.step_loop().expect("the plan compiles a loop");
    f.call(t0, h, steps, every, &mut y, k.params(), &mut rows).expect("a regular run");
    rows.chunks(y.len() + 1).map(|r| r.to_vec()).collect()
}

/// The largest difference between two sets of rows, relative to the state's scale.
fn worst(a: &[Vec<f64>], b: &[(f64, Vec<f64>)]) -> f64 {
    assert_eq!(a.len(), b.len(), "row counts");
    let scale = b.iter().flat_map(|(_, y)| y.iter()).fold(1.0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(ra, (t, yb))| {
            assert!((ra[0] - t).abs() <= 1e-12 * t.abs().max(1.0), "row times {} vs {t}", ra[0]);
            ra[1..].iter().zip(yb).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
        })
        .fold(0.0, f64::max)
}

const DOUBLE_PENDULUM: &str = "param g = 9.81\ncoord th1, th2\n\
    let x1 = sin(th1)\nlet y1 = -cos(th1)\nlet x2 = x1 + sin(th2)\nlet y2 = y1 - cos(th2)\n\
    lagrangian = 1/2*(x1'^2 + y1'^2) + 1/2*(x2'^2 + y2'^2) - g*(y1 + y2)\ninit th1 = 0.5, th2 = 0.5";
const DRIVEN: &str = "param w = 1.3\ncoord q\nlagrangian = 1/2*q'^2 - 1/2*q^2 + q*cos(w*t)\n\
    dissipation = 1/20*q'^2\ninit q = 1";
const ROSENBROCK_FLOW: &str = "state x, y\nenergy = (1 - x)^2 + 10*(y - x^2)^2\ninit x = -1, y = 1";
/// A lattice large enough that the compiled loops call the right-hand side out of line
/// and keep the state in memory.
const FPUT80: &str = "const N = 80\nparam alpha = 0.25\ncoord u[N]\n\
    lagrangian = sum(i in 0..N, 1/2*u[i]'^2) - 1/2*u[0]^2 - 1/2*u[N-1]^2 \
    - sum(i in 0..N-1, 1/2*(u[i+1] - u[i])^2 + alpha/3*(u[i+1] - u[i])^3)\n\
    init u[i in 0..N] = sin(pi*(i+1)/(N+1))";
/// A 14-link chain: a dense mass matrix beyond the unrolled solve, called out of line.
const CHAIN14: &str = "const N = 14\ncoord q[N]\n\
    let x[i in 0..N] = sum(j in 0..=i, sin(q[j]))\nlet y[i in 0..N] = sum(j in 0..=i, -cos(q[j]))\n\
    lagrangian = sum(i in 0..N, 1/2*(x[i]'^2 + y[i]'^2) - 9.81*y[i])\ninit q[i in 0..N] = 0.5";
const NATURAL: &str = "param m = 1, s2 = 2\nstate mu, sigma\n\
    energy = log(sigma) + (s2 + (m - mu)^2)/(2*sigma^2)\nmetric = diag(1/sigma^2, 2/sigma^2)\n\
    init mu = 0, sigma = 1";

#[test]
fn compiled_rk4_agrees_with_integrate_rk4() {
    for (name, src, h, steps, tol) in [
        ("double pendulum", DOUBLE_PENDULUM, 1e-3, 5000, 1e-13),
        ("driven oscillator", DRIVEN, 1e-2, 5000, 1e-11),
        ("Rosenbrock flow", ROSENBROCK_FLOW, 1e-3, 5000, 1e-13),
        ("natural gradient", NATURAL, 1e-2, 2000, 1e-13),
        ("FPUT, 80 sites, state in memory", FPUT80, 1e-2, 2000, 1e-13),
        ("14-link chain, called out of line", CHAIN14, 1e-3, 300, 1e-13),
    ] {
        let (c, _, k) = build(src, Method::Rk4);
        let y0 = lagc::drive::initial_state(&c.model);
        let every = 50;
        let native = compiled_rows(&k, 0.0, h, steps, every, &y0);
        let grid = Grid { t0: 0.0, t_end: steps as f64 * h, dt: h, every };
        let mut rust = Vec::new();
        integrate::rk4(&mut Rhs(&k, Work::default()), &grid, &y0, &mut rust).unwrap();
        let w = worst(&native, &rust);
        eprintln!("{name}: compiled and Rust RK4 differ by {w:e}");
        assert!(w <= tol, "{name}: compiled and Rust RK4 differ by {w:e} (tolerance {tol:e})");
    }
}

#[test]
fn compiled_verlet_agrees_with_integrate_verlet() {
    let kepler = "coord x, y\nlagrangian = 1/2*(x'^2 + y'^2) + 1/sqrt(x^2 + y^2)\ninit x = 0.4, y = 0, y' = 2";
    let chain = "const N = 8\nparam k = 1, m = 2\ncoord u[N]\n\
        lagrangian = sum(i in 0..N, m/2*u[i]'^2) - sum(i in 0..N-1, k/2*(u[i+1] - u[i])^2 + (u[i+1] - u[i])^3/3)\n\
        init u[i in 0..N] = 0.1*i";
    for (name, src, h, steps) in [
        ("Kepler", kepler, 2.0 * std::f64::consts::PI / 628.0, 6280),
        ("FPUT", chain, 0.05, 4000),
        ("FPUT, 80 sites, state in memory", FPUT80, 0.01, 3000),
    ] {
        let (c, _, k) = build(src, Method::Verlet);
        let n = c.model.vars.len();
        let y0 = lagc::drive::initial_state(&c.model);
        let native = compiled_rows(&k, 0.0, h, steps, 20, &y0);
        let grid = Grid { t0: 0.0, t_end: steps as f64 * h, dt: h, every: 20 };
        let mut rhs = Rhs(&k, Work::default());
        let (mut y, mut dy) = (vec![0.0; 2 * n], vec![0.0; 2 * n]);
        let accel = |t: f64, q: &[f64], a: &mut [f64]| {
            y[..n].copy_from_slice(q);
            rhs.rhs(t, &y, &mut dy)?;
            a.copy_from_slice(&dy[n..]);
            Ok(())
        };
        let mut rust = Vec::new();
        integrate::verlet(n, accel, &grid, &y0[..n], &y0[n..], &mut rust).unwrap();
        let w = worst(&native, &rust);
        eprintln!("{name}: compiled and Rust Verlet differ by {w:e}");
        assert!(w <= 1e-13, "{name}: compiled and Rust Verlet differ by {w:e}");
    }
}

#[test]
fn compiled_euler_maruyama_agrees_with_em_block_step() {
    use rand::{Rng, SeedableRng};
    let double_well = "param T = 0.5\nstate x, y\nenergy = (x^2 - 1)^2 + x*y + y^2\ntemperature = T\n\
        metric = [[2, 1/2], [1/2, 1]]\ninit x = 0.2, y = -0.1";
    let (c, _, k) = build(double_well, Method::Em);
    let n = c.model.vars.len();
    let block = k.em_block().expect("the plan compiles the block step");
    let particles = 64;
    let scale = integrate::noise_scale(0.5, Some(&[2.0, 0.5, 0.5, 1.0]), n).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let y0 = lagc::drive::initial_state(&c.model);
    let mut native: Vec<f64> = (0..particles).flat_map(|_| y0.clone()).collect();
    let mut rust = native.clone();
    let (h, mut noise, mut xi) = (1e-3f64, vec![0.0; native.len()], vec![0.0; n]);
    let mut rhs = Rhs(&k, Work::default());
    for step in 0..2000 {
        for p in 0..particles {
            xi.iter_mut().for_each(|x| *x = rng.sample(rand_distr::StandardNormal));
            integrate::em_noise(&scale, h.sqrt(), &xi, &mut noise[p * n..(p + 1) * n]);
        }
        let t = step as f64 * h;
        block.call(t, h, &mut native, &noise, k.params()).unwrap();
        integrate::em_block_step(&mut rhs, t, h, &mut rust, &noise).unwrap();
    }
    assert_eq!(native, rust, "compiled and Rust Euler–Maruyama blocks differ");
    // The run moved: the comparison is not of two untouched copies.
    assert!(native.iter().zip(y0.iter().cycle()).any(|(a, b)| (a - b).abs() > 0.1));
}

#[test]
fn compiled_underdamped_euler_maruyama_agrees_with_em_block_step() {
    // A pendulum on a cart in a heat bath: a state-dependent M, friction on both
    // coordinates; the noise enters the velocities only.
    use rand::{Rng, SeedableRng};
    let src = "param T = 0.3\ncoord x, th\nlagrangian = (2*x'^2 + th'^2)/2 + cos(th)*x'*th' + cos(th)\n\
        dissipation = (x'^2 + th'^2)/2\ntemperature = T\ninit x = 0.1, th = 0.5";
    let (c, _, k) = build(src, Method::Em);
    let dim = 2 * c.model.vars.len();
    let block = k.em_block().expect("the plan compiles the block step for a Lagrangian model too");
    let particles = 32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let y0 = lagc::drive::initial_state(&c.model);
    let mut native: Vec<f64> = (0..particles).flat_map(|_| y0.clone()).collect();
    let mut rust = native.clone();
    let (h, mut noise) = (1e-3f64, vec![0.0; native.len()]);
    let mut rhs = Rhs(&k, Work::default());
    for step in 0..2000 {
        for p in 0..particles {
            for v in &mut noise[p * dim + dim / 2..(p + 1) * dim] {
                *v = 0.02 * rng.sample::<f64, _>(rand_distr::StandardNormal);
            }
        }
        let t = step as f64 * h;
        block.call(t, h, &mut native, &noise, k.params()).unwrap();
        integrate::em_block_step(&mut rhs, t, h, &mut rust, &noise).unwrap();
    }
    assert_eq!(native, rust, "compiled and Rust Euler–Maruyama blocks differ");
    assert!(native.iter().zip(y0.iter().cycle()).any(|(a, b)| (a - b).abs() > 0.1));
}

#[test]
fn a_run_by_the_compiled_loop_matches_one_by_the_portable_backend() {
    // The driver end to end, last shortened step included: native (compiled
    // loop) and portable (Rust twin over the register program) runs of the
    // same model. The register program rounds as the evaluator does, the
    // native kernel as Cranelift emits it; 1e-10 over this run bounds that.
    for (src, method) in [(DOUBLE_PENDULUM, Method::Rk4), (ROSENBROCK_FLOW, Method::Rk4)] {
        let c = lagc::compile_for(src, "twin", &[], Some(method)).unwrap();
        let opts = lagc::RunOptions { method: Some(method), dt: Some(0.003), t_end: Some(2.0), ..Default::default() };
        let cfg = lagc::RunConfig::resolve(&c.model, &opts).unwrap();
        let plan = c.plan(&cfg).unwrap();
        let mut rows = [Vec::new(), Vec::new()];
        for (backend, out) in [BackendKind::Native, BackendKind::Portable].into_iter().zip(&mut rows) {
            let k = Kernels::build(&c.model, &c.equations, &plan, backend).unwrap();
            assert_eq!(k.step_loop().is_some(), backend == BackendKind::Native);
            lagc::drive::run(&c.model, &plan, &k, &cfg, out, lagc::Control::default()).unwrap();
        }
        assert_eq!(rows[0].len(), 668);
        assert_eq!(rows[0].last().unwrap()[0], 2.0);
        for (a, b) in rows[0].iter().zip(&rows[1]) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-10 * (1.0 + y.abs()), "{x} vs {y} at t = {}", a[0]);
            }
        }
    }
}
