//! Mass matrices by their structure (docs/numerics.md §Structure of the mass matrix): a
//! constant one factored once, a band solved in its band, a dense one past the unrolled size
//! solved out of line. Each against a closed form or a dense solve of the evaluated equations.

use lagc::backend::Work;
use lagc::integrate::linalg;
use lagc::plan::Plan;
use lagc::sym::{Env, SymKind};
use lagc::{BackendKind, Compiled, Kernels, Method, RunConfig, RunOptions};

/// A finite-element string of `n` nodes with fixed ends: linear elements give the consistent
/// mass matrix `tridiag(1/6, 2/3, 1/6)` and stiffness `k·tridiag(−1, 2, −1)`.
fn fem_string(n: usize, method: &str) -> String {
    format!(
        "const N = {n}\nparam k = 1\ncoord u[N]\n\
         lagrangian = sum(i in 0..N-1, 1/6*(u[i]'^2 + u[i]'*u[i+1]' + u[i+1]'^2)) + 1/6*u[0]'^2 + 1/6*u[N-1]'^2 \
         - 1/2*u[0]^2 - 1/2*u[N-1]^2 - sum(i in 0..N-1, k/2*(u[i+1] - u[i])^2)\n\
         init u[i in 0..N] = sin(pi*(i+1)/(N+1))\nsimulate method = {method}, dt = 0.05, t_end = 20, every = 40"
    )
}

/// A lattice whose kinetic energy couples neighbours through the state: a tridiagonal `M(q)`,
/// singular where every `u` is 0.
fn coupled_lattice(n: usize) -> String {
    format!(
        "const N = {n}\ncoord u[N]\n\
         lagrangian = sum(i in 0..N, 1/2*u[i]^2*u[i]'^2) + sum(i in 0..N-1, 1/4*u[i]*u[i+1]*u[i]'*u[i+1]') \
         - sum(i in 0..N-1, 1/2*(u[i+1] - u[i])^2 + 1/12*(u[i+1] - u[i])^4)"
    )
}

/// A constant pentadiagonal mass matrix.
fn pentadiagonal(n: usize) -> String {
    format!(
        "const N = {n}\nparam c = 0.2\ncoord u[N]\n\
         lagrangian = sum(i in 0..N, u[i]'^2) + sum(i in 0..N-2, c*u[i]'*u[i+2]') - sum(i in 0..N, 1/2*u[i]^2 + 1/4*u[i]^4)"
    )
}

/// A dense mass matrix that depends on the state: `(Σ u')²` weighted by `cos u[0]`.
fn dense(n: usize) -> String {
    format!(
        "const N = {n}\ncoord u[N]\n\
         lagrangian = sum(i in 0..N, 1/2*u[i]'^2) + 1/4*(1 + 1/2*cos(u[0]))/N*sum(i in 0..N, u[i]')^2 \
         - sum(i in 0..N, 1/2*u[i]^2)"
    )
}

fn compiled(src: &str, method: Method) -> (Compiled, Plan) {
    let c = lagc::compile_for(src, "structure", &[], Some(method)).expect("compiles");
    let plan = lagc::plan::plan(&c.model, &c.equations, method, None).unwrap();
    (c, plan)
}

/// A deterministic point in [0.4, 1.2] for every coordinate, velocity and the time.
fn point(c: &Compiled, k: &Kernels, seed: u64) -> (Vec<f64>, Env) {
    let mut s = seed;
    let mut env = c.model.env();
    let mut x = Vec::new();
    for &sym in k.inputs() {
        let v = match c.model.arena.symbol(sym).kind {
            SymKind::Param(i) => c.model.params[i].value,
            _ => {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                0.4 + 0.8 * ((s >> 11) as f64 / (1u64 << 53) as f64)
            }
        };
        env.set(sym, v);
        x.push(v);
    }
    (x, env)
}

/// `(v, M⁻¹f)` of both backends against the evaluated `M` and `f` and a dense solve.
#[test]
fn structured_mass_matrices_match_a_dense_solve() {
    // (model, the band the plan must find, whether derived by segments)
    let models = [
        (fem_string(40, "rk4"), 1, true),
        (coupled_lattice(40), 1, false),
        // A force keeps the string out of the derivation by segments: written out, factored once.
        (format!("{}\nforce u[i in 0..N] = 0.01*cos(t)", fem_string(40, "rk4")), 1, false),
        (pentadiagonal(30), 2, true),
        (dense(14), 13, false),
    ];
    for (src, band, indexed) in &models {
        let (c, plan) = compiled(src, Method::Rk4);
        assert_eq!(plan.matrix_band, Some(*band), "{src}");
        assert_eq!(plan.indexed, *indexed, "{src}");
        let lagc::Equations::Lagrangian(e) = &c.equations else { unreachable!() };
        let n = c.model.vars.len();
        for backend in [BackendKind::Native, BackendKind::Portable] {
            let k = Kernels::build(&c.model, &c.equations, &plan, backend).unwrap();
            for seed in 1..6 {
                let (x, env) = point(&c, &k, 0x9e37_79b9_7f4a_7c15 ^ seed);
                let y = &x[1..1 + 2 * n];
                let mut dy = vec![0.0; 2 * n];
                k.rhs(x[0], y, &mut dy, &mut Work::default()).expect("regular");
                // Equations by segments written out row by row, in a copy of the arena.
                let mut a = c.model.arena.clone();
                let (_, mass, forcing) = e.written_out(&mut a);
                let mut m = a.eval_many(&mass.concat(), &env);
                let mut f = a.eval_many(&forcing, &env);
                linalg::solve_spd_or_lu(&mut m, &mut f, n).unwrap();
                for i in 0..n {
                    assert_eq!(dy[i], y[n + i]);
                    let (got, want) = (dy[n + i], f[i]);
                    assert!(
                        (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
                        "{backend:?} a[{i}] {got} vs {want}\n{src}"
                    );
                }
            }
        }
    }
}

/// A band matrix that is singular at a state fails there on both backends, as a dense one does.
#[test]
fn a_singular_band_matrix_is_reported() {
    let (c, plan) = compiled(&coupled_lattice(20), Method::Rk4);
    for backend in [BackendKind::Native, BackendKind::Portable] {
        let k = Kernels::build(&c.model, &c.equations, &plan, backend).unwrap();
        let mut y = vec![0.3; 40];
        y[7] = 0.0;
        let err = k.rhs(0.0, &y, &mut [0.0; 40], &mut Work::default()).unwrap_err();
        assert_eq!(err, lagc::integrate::Cause::SingularMassMatrix, "{backend:?}");
    }
}

/// The string started in its lowest mode stays in it: `u_i = sin(θ(i+1))·cos(ωt)` with
/// `θ = π/(N+1)` and `ω² = 6k(1 − cos θ)/(2 + cos θ)` (the mode is an eigenvector of both
/// tridiagonal matrices). Verlet follows it with `cos(ω̃h) = 1 − (ωh)²/2` exactly (to
/// rounding), RK4 to `O(h⁴)`.
#[test]
fn a_finite_element_string_follows_its_lowest_mode() {
    let n = 100;
    let theta = std::f64::consts::PI / (n as f64 + 1.0);
    let omega = (6.0 * (1.0 - theta.cos()) / (2.0 + theta.cos())).sqrt();
    let h: f64 = 0.05;
    for method in ["verlet", "rk4"] {
        let c = lagc::compile_for(&fem_string(n, method), "string", &[], None).unwrap();
        let cfg = RunConfig::resolve(&c.model, &RunOptions::default()).unwrap();
        let mut rows: Vec<Vec<f64>> = Vec::new();
        c.run(&cfg, &mut rows).unwrap();
        assert_eq!(rows.len(), 11);
        let w = if method == "verlet" { (1.0 - (omega * h).powi(2) / 2.0).acos() / h } else { omega };
        let tol = if method == "verlet" { 1e-11 } else { 2e-9 };
        for row in &rows {
            let t = row[0];
            for i in 0..n {
                let want = (theta * (i + 1) as f64).sin() * (w * t).cos();
                assert!((row[1 + i] - want).abs() < tol, "{method} t = {t} u[{i}] = {} vs {want}", row[1 + i]);
            }
        }
    }
}

/// Sizes that crashed (a dense matrix on the kernel's stack) or took seconds a step run:
/// the string of 1,024 nodes, a band of 1,500 rows that depends on the state (compiled in
/// parts), a dense matrix of 200 rows that depends on the state.
#[test]
fn large_band_matrices_run() {
    for src in [fem_string(1024, "verlet"), coupled_lattice(1500), dense(200)] {
        let mut src = src;
        if !src.contains("init") {
            src.push_str("\ninit u[i in 0..N] = 1 + 0.1*sin(i)");
        }
        let c = lagc::compile_for(&src, "large", &[], Some(Method::Rk4)).unwrap();
        let opts = RunOptions { method: Some(Method::Rk4), t_end: Some(0.05), dt: Some(0.01), ..Default::default() };
        let cfg = RunConfig::resolve(&c.model, &opts).unwrap();
        let mut rows: Vec<Vec<f64>> = Vec::new();
        let summary = c.run(&cfg, &mut rows).unwrap();
        assert_eq!(summary.steps, 5);
        // Five RK4 steps of 0.01 keep H to far better than 1e-8 of itself.
        let drift = summary.energy_drift.expect("a conservative model reports its drift");
        assert!(drift.max_abs < 1e-8 * drift.h0.abs(), "drift {} of {}", drift.max_abs, drift.h0);
    }
}

/// Forward sensitivities through a constant band `M`, against central differences of whole
/// runs: the string's stiffness `k` (in `f`), and the pentadiagonal lattice's `c` (in `M`
/// itself). Both are derived by segments until the Jacobians are asked for.
#[test]
fn sensitivities_through_a_band_mass_matrix_match_differences() {
    let lattice =
        format!("{}\ninit u[i in 0..N] = sin(i)\nsimulate method = rk4, dt = 0.05, t_end = 5", pentadiagonal(30));
    for (src, param) in [(fem_string(40, "rk4"), "k"), (lattice, "c")] {
        let last = |set: Option<f64>, sens: bool| -> (Vec<f64>, Vec<f64>) {
            let overrides: Vec<(String, f64)> = set.map(|v| vec![(param.to_string(), v)]).unwrap_or_default();
            let mut c = lagc::compile_for(&src, "sens", &overrides, None).unwrap();
            let cfg = RunConfig::resolve(&c.model, &RunOptions::default()).unwrap();
            let mut rows: Vec<Vec<f64>> = Vec::new();
            if sens {
                c.derive_jacobians().unwrap();
                c.run_sensitivities(&cfg, &[param.to_string()], &mut rows).unwrap();
            } else {
                c.run(&cfg, &mut rows).unwrap();
            }
            let n = c.model.vars.len();
            let row = rows.pop().unwrap();
            // (u, ∂u/∂param): the state follows t, its sensitivities are the last columns.
            (row[1..1 + n].to_vec(), row[row.len() - 2 * n..row.len() - n].to_vec())
        };
        let p0 = if param == "k" { 1.0 } else { 0.2 };
        let h = 1e-5 * p0;
        let (up, _) = last(Some(p0 + h), false);
        let (down, _) = last(Some(p0 - h), false);
        let (_, s) = last(None, true);
        let scale = s.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        for i in 0..up.len() {
            let fd = (up[i] - down[i]) / (2.0 * h);
            assert!((fd - s[i]).abs() <= 1e-6 * scale, "{param}: ∂u[{i}] {} vs {fd}", s[i]);
        }
    }
}
