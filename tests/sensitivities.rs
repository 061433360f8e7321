//! Forward sensitivities (`lagc run --sensitivities`) against central finite
//! differences of whole runs: every column `d(X)/d(P)` must agree with
//! `(X(P + δ) − X(P − δ)) / 2δ` to 1e-7 of the column's largest magnitude, on
//! every row. The sensitivities differentiate the computed steps themselves
//! (docs/numerics.md §Sensitivities), so the only differences are the finite
//! difference's own: its truncation (`δ²`, about 1e-10 here) and rounding
//! (`ε/δ`, about 1e-11).

use lagc::{Method, RunConfig, RunOptions};

/// The rows of a run of `src` with `set` overrides, and with the
/// sensitivities to `names` when there are any. `dopri5` runs at
/// `rtol = 1e-10`, `atol = 1e-12`.
fn rows(src: &str, set: &[(String, f64)], method: Method, names: &[&str]) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut c = lagc::compile_for(src, "m", set, Some(method)).expect("compiles");
    let opts = RunOptions { method: Some(method), rtol: Some(1e-10), atol: Some(1e-12), ..Default::default() };
    let cfg = RunConfig::resolve(&c.model, &opts).expect("settings");
    let mut out: Vec<Vec<f64>> = Vec::new();
    if names.is_empty() {
        let plan = c.plan(&cfg).expect("plan");
        c.run(&cfg, &mut out).expect("runs");
        return (plan.columns, out);
    }
    c.derive_jacobians().expect("Jacobians");
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let plan = c.plan_sensitivities(&cfg, &names).expect("plan");
    c.run_sensitivities(&cfg, &names, &mut out).expect("runs");
    (plan.columns, out)
}

/// Checks every sensitivity to `target` against central differences of runs of
/// `at(±δ)`, the source with the target moved by `±δ`.
fn check(base: &str, method: Method, target: &str, delta: f64, at: impl Fn(f64) -> (String, Vec<(String, f64)>)) {
    check_within(base, method, target, delta, 1e-7, at);
}

/// As [`check`], to `tol` of each column's largest magnitude.
fn check_within(
    base: &str,
    method: Method,
    target: &str,
    delta: f64,
    tol: f64,
    at: impl Fn(f64) -> (String, Vec<(String, f64)>),
) {
    let (columns, sens) = rows(base, &[], method, &[target]);
    let (src_plus, set_plus) = at(delta);
    let (src_minus, set_minus) = at(-delta);
    let (plain, plus) = rows(&src_plus, &set_plus, method, &[]);
    let (_, minus) = rows(&src_minus, &set_minus, method, &[]);
    assert_eq!(sens.len(), plus.len());
    let state: Vec<&String> = plain.iter().skip(1).take_while(|c| *c != "energy").collect();
    let mut tested = 0;
    for (j, x) in state.iter().enumerate() {
        let name = format!("d({x})/d({target})");
        let c = columns.iter().position(|c| *c == name).unwrap_or_else(|| panic!("no column {name} in {columns:?}"));
        let fd: Vec<f64> = plus.iter().zip(&minus).map(|(p, m)| (p[1 + j] - m[1 + j]) / (2.0 * delta)).collect();
        let scale = fd.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        if scale < 1e-6 {
            // X does not depend on the target: both are 0 but for rounding (`ε/δ` for the differences).
            assert!(sens.iter().all(|row| row[c].abs() < 1e-9), "{name} is not 0");
            continue;
        }
        tested += 1;
        let mut worst = 0.0f64;
        for (r, (row, d)) in sens.iter().zip(&fd).enumerate() {
            let err = (row[c] - d).abs() / scale;
            worst = worst.max(err);
            assert!(err < tol, "{name} at row {r} (t = {}): {} against {d} (relative {err:e})", row[0], row[c]);
        }
        eprintln!("{method}: {name} within {worst:.1e} of central differences");
    }
    assert!(tested > 0, "no state column depends on {target}: nothing was tested");
}

/// A param moved by `δ` times its value, through `--set`.
fn param(src: &'static str, name: &'static str, value: f64) -> impl Fn(f64) -> (String, Vec<(String, f64)>) {
    move |d| (src.to_string(), vec![(name.to_string(), value + d)])
}

const PENDULUM: &str = "param m = 1.3, l = 1.2, g = 9.81, c = 0.3
coord th
lagrangian = 1/2*m*l^2*th'^2 + m*g*l*cos(th)
dissipation = 1/2*c*th'^2
init th = 1, th' = 0.5
simulate t_end = 3, dt = 1e-3, every = 50
";

#[test]
fn a_damped_pendulum_matches_finite_differences_in_every_param() {
    for (name, value) in [("g", 9.81), ("l", 1.2), ("c", 0.3), ("m", 1.3)] {
        check(PENDULUM, Method::Rk4, name, 1e-5 * value, param(PENDULUM, name, value));
    }
}

#[test]
fn a_damped_pendulum_matches_finite_differences_in_its_initial_values() {
    let at = |th: f64, v: f64| PENDULUM.replace("init th = 1, th' = 0.5", &format!("init th = {th:?}, th' = {v:?}"));
    check(PENDULUM, Method::Rk4, "init.th", 1e-5, |d| (at(1.0 + d, 0.5), vec![]));
    check(PENDULUM, Method::Rk4, "init.th'", 1e-5, |d| (at(1.0, 0.5 + d), vec![]));
}

/// Two coordinates and a mass matrix that depends on the state: `∂M/∂q` enters.
const DOUBLE: &str = "param m1 = 1, m2 = 0.7, l1 = 1, l2 = 0.8, g = 9.81
coord th1, th2
lagrangian = 1/2*(m1+m2)*l1^2*th1'^2 + 1/2*m2*l2^2*th2'^2 + m2*l1*l2*th1'*th2'*cos(th1 - th2) + (m1+m2)*g*l1*cos(th1) + m2*g*l2*cos(th2)
init th1 = 1, th2 = -0.5
simulate t_end = 2, dt = 1e-3, every = 50
";

#[test]
fn a_double_pendulum_with_its_state_dependent_mass_matrix_matches_finite_differences() {
    check(DOUBLE, Method::Rk4, "l2", 1e-5 * 0.8, param(DOUBLE, "l2", 0.8));
    check(DOUBLE, Method::Rk4, "m2", 1e-5 * 0.7, param(DOUBLE, "m2", 0.7));
    let at = |d: f64| DOUBLE.replace("th2 = -0.5", &format!("th2 = {:?}", -0.5 + d));
    check(DOUBLE, Method::Rk4, "init.th2", 1e-5, |d| (at(d), vec![]));
}

const ROSENBROCK: &str = "param a = 1, b = 10
state x, y
energy = (a - x)^2 + b*(y - x^2)^2
init x = -1.2, y = 1
simulate t_end = 1, dt = 1e-3, every = 20
";

#[test]
fn a_rosenbrock_flow_matches_finite_differences_by_rk4_and_euler() {
    for method in [Method::Rk4, Method::Euler] {
        check(ROSENBROCK, method, "b", 1e-5 * 10.0, param(ROSENBROCK, "b", 10.0));
        check(ROSENBROCK, method, "a", 1e-5, param(ROSENBROCK, "a", 1.0));
        let at = |d: f64| ROSENBROCK.replace("x = -1.2", &format!("x = {:?}", -1.2 + d));
        check(ROSENBROCK, method, "init.x", 1e-5, |d| (at(d), vec![]));
    }
}

/// A metric that depends on the state: `∂g/∂θ` enters.
const NATURAL: &str = "param m = 1, s2 = 4
state mu, sigma
energy = ((mu - m)^2 + s2)/(2*sigma^2) + log(sigma)
metric = diag(1/sigma^2, 2/sigma^2)
init mu = -1, sigma = 0.5
simulate t_end = 2, dt = 1e-3, every = 40
";

#[test]
fn a_natural_gradient_flow_with_its_metric_matches_finite_differences() {
    for method in [Method::Rk4, Method::Euler] {
        check(NATURAL, method, "m", 1e-5, param(NATURAL, "m", 1.0));
        check(NATURAL, method, "s2", 4e-5, param(NATURAL, "s2", 4.0));
        let at = |d: f64| NATURAL.replace("sigma = 0.5", &format!("sigma = {:?}", 0.5 + d));
        check(NATURAL, method, "init.sigma", 1e-5, |d| (at(d), vec![]));
    }
}

#[test]
fn an_initial_value_given_by_a_param_carries_its_sensitivity_from_the_start() {
    let src = "param l = 1.5\ncoord th\nlagrangian = 1/2*th'^2 + cos(th)\ninit th = l/2\nsimulate t_end = 1, dt = 1e-3, every = 100\n";
    let (columns, out) = rows(src, &[], Method::Rk4, &["l"]);
    let c = columns.iter().position(|c| c == "d(th)/d(l)").unwrap();
    assert_eq!(out[0][c], 0.5);
    check(src, Method::Rk4, "l", 1.5e-5, param(src, "l", 1.5));
}

#[test]
fn other_methods_names_not_known_and_ensembles_are_refused() {
    let mut c = lagc::compile_for(PENDULUM, "m", &[], Some(Method::Midpoint)).unwrap();
    c.derive_jacobians().unwrap();
    let refuse = |method: Method, particles: Option<u64>, names: &[&str]| {
        let opts = RunOptions { method: Some(method), particles, ..Default::default() };
        let cfg = RunConfig::resolve(&c.model, &opts).unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        c.plan_sensitivities(&cfg, &names).unwrap_err().to_string()
    };
    let e = refuse(Method::Midpoint, None, &["g"]);
    assert!(e.contains("rk4") && e.contains("dopri5") && e.contains("`midpoint`"), "{e}");
    let e = refuse(Method::Rk4, Some(10), &["g"]);
    assert!(e.contains("ensemble"), "{e}");
    let e = refuse(Method::Rk4, None, &["gg"]);
    assert!(e.contains("gg") && e.contains("params: m, l, g, c"), "{e}");
    let e = refuse(Method::Rk4, None, &["init.x"]);
    assert!(e.contains("th, th'"), "{e}");
    let e = refuse(Method::Rk4, None, &["g", "g"]);
    assert!(e.contains("twice"), "{e}");
}

#[test]
fn the_command_refuses_other_methods_and_writes_the_columns_last() {
    let dir = std::env::temp_dir().join(format!("lagc-sens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("p.lag");
    std::fs::write(&model, PENDULUM).unwrap();
    let lagc = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lagc")).arg("run").arg(&model).args(args).output().unwrap()
    };
    let o = lagc(&["--sensitivities", "g", "--method", "midpoint"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rk4") && err.contains("dopri5") && err.contains("`midpoint`"), "{err}");
    let o = lagc(&["--sensitivities", "g,init.th", "--quiet", "--t-end", "0.1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().next().unwrap(),
        "t,th,th',energy,d(th)/d(g),d(th)/d(init.th),d(th')/d(g),d(th')/d(init.th)"
    );
    // The figure has a panel of the sensitivities of th, a line per name.
    let svg = dir.join("p.svg");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_lagc"))
        .arg("run")
        .arg(&model)
        .args(["--sensitivities", "g,init.th", "--quiet", "--t-end", "0.1", "--plot"])
        .arg(&svg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let figure = std::fs::read_to_string(&svg).unwrap();
    assert!(figure.contains("sensitivities of th") && figure.contains("init.th"), "no sensitivities panel");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_model_whose_jacobians_would_be_too_large_is_refused_before_they_are_derived() {
    let src = "const N = 2000\nparam k = 1\ncoord u[N]\nlagrangian = sum(i in 0..N, 1/2*u[i]'^2 - k/2*u[i]^2)\n";
    let mut c = lagc::compile_for(src, "m", &[], Some(Method::Rk4)).unwrap();
    // The mass matrix is constant: n (d + P) = 2000 · 4001 entries pass.
    c.derive_jacobians().expect("a constant mass matrix has no derivatives to keep");
    let src =
        "const N = 400\nparam k = 1\ncoord u[N]\nlagrangian = sum(i in 0..N, 1/2*exp(u[i])*u[i]'^2 - k/2*u[i]^2)\n";
    let mut c = lagc::compile_for(src, "m", &[], Some(Method::Rk4)).unwrap();
    let e = c.derive_jacobians().unwrap_err().render();
    assert!(e.contains("too large") && e.contains("10000000"), "{e}");
}

/// Constant mass matrix, forces of `q` alone: Störmer–Verlet applies.
const CONSERVATIVE: &str = "param m = 1.3, l = 1.2, g = 9.81, k = 2
coord th, x
lagrangian = 1/2*m*l^2*th'^2 + 1/2*x'^2 + m*g*l*cos(th) - k/2*x^2 - x*sin(th)
init th = 1, th' = 0.5, x = 0.2
simulate t_end = 3, dt = 1e-3, every = 50
";

#[test]
fn verlet_s_steps_are_differentiated_exactly() {
    for (name, value) in [("g", 9.81), ("l", 1.2), ("k", 2.0)] {
        check(CONSERVATIVE, Method::Verlet, name, 1e-5 * value, param(CONSERVATIVE, name, value));
    }
    let at = |d: f64| CONSERVATIVE.replace("th' = 0.5", &format!("th' = {:?}", 0.5 + d));
    check(CONSERVATIVE, Method::Verlet, "init.th'", 1e-5, |d| (at(d), vec![]));
    let at = |d: f64| CONSERVATIVE.replace("x = 0.2", &format!("x = {:?}", 0.2 + d));
    check(CONSERVATIVE, Method::Verlet, "init.x", 1e-5, |d| (at(d), vec![]));
}

/// An FPUT lattice written with sums: its equations are by segments
/// (`derive::indexed`), and the Jacobian is of the acceleration `f/m` written
/// out row by row, with no matrix to solve.
const LATTICE: &str = "const N = 32
param alpha = 0.25, m = 1.5
coord u[N]
let d[i in 0..N-1] = u[i+1] - u[i]
lagrangian = sum(i in 0..N, 1/2*m*u[i]'^2) - 1/2*u[0]^2 - 1/2*u[N-1]^2
           - sum(i in 0..N-1, 1/2*d[i]^2 + alpha/3*d[i]^3)
init u[i in 0..N] = sin(pi*(i+1)/(N+1))
simulate t_end = 2, dt = 0.01, every = 10
";

#[test]
fn a_lattice_with_equations_by_segments_matches_finite_differences() {
    let c = lagc::compile_for(LATTICE, "m", &[], Some(Method::Verlet)).unwrap();
    let cfg = RunConfig::resolve(&c.model, &RunOptions::default()).unwrap();
    assert!(c.plan(&cfg).unwrap().indexed, "the lattice should be derived by segments");
    for method in [Method::Verlet, Method::Rk4] {
        // The displacements' dependence on alpha is small (its cubic term, about 4e-4 at most):
        // δ = 1e-4 keeps the differences' rounding `ε/δ` far below 1e-7 of it.
        for (name, value) in [("alpha", 0.25), ("m", 1.5)] {
            check(LATTICE, method, name, 1e-4, param(LATTICE, name, value));
        }
    }
}

/// `dopri5` integrates the variational equations on the steps of the state,
/// chosen by the error of the state alone: the steps, and so the state's rows,
/// are those of the run without sensitivities, bit for bit.
#[test]
fn dopri5_s_sensitivities_leave_the_steps_and_the_state_as_they_were() {
    for (src, names) in [(PENDULUM, &["g", "init.th"][..]), (NATURAL, &["s2"][..])] {
        let (plain_columns, plain) = rows(src, &[], Method::Dopri5, &[]);
        let (_, sens) = rows(src, &[], Method::Dopri5, names);
        assert_eq!(plain.len(), sens.len());
        for (p, s) in plain.iter().zip(&sens) {
            assert_eq!(p[..], s[..plain_columns.len()], "{src}");
        }
    }
}

/// Central differences of whole `dopri5` runs at `rtol = 1e-10` also move the
/// steps: the rows change by `∂X/∂h · dh/dP`, of the size of the global error
/// (about 1e-10 relative here), and a step rejected at `P + δ` but not at
/// `P − δ` moves them by a local error (`≤ 1e-10`) over `2δ = 2e-5·P`: up to
/// 1e-5. The sensitivities (the variational equations on the steps of `P`)
/// must agree to that, 1e-5 of each column's largest value.
#[test]
fn dopri5_s_sensitivities_match_finite_differences_of_adaptive_runs() {
    for (name, value) in [("g", 9.81), ("l", 1.2), ("c", 0.3), ("m", 1.3)] {
        check_within(PENDULUM, Method::Dopri5, name, 1e-5 * value, 1e-5, param(PENDULUM, name, value));
    }
    let at = |d: f64| PENDULUM.replace("th = 1,", &format!("th = {:?},", 1.0 + d));
    check_within(PENDULUM, Method::Dopri5, "init.th", 1e-5, 1e-5, |d| (at(d), vec![]));
    check_within(NATURAL, Method::Dopri5, "m", 1e-5, 1e-5, param(NATURAL, "m", 1.0));
    check_within(NATURAL, Method::Dopri5, "s2", 4e-5, 1e-5, param(NATURAL, "s2", 4.0));
    check_within(ROSENBROCK, Method::Dopri5, "b", 1e-4, 1e-5, param(ROSENBROCK, "b", 10.0));
}
