//! Runs through the library, checked against the known answers of docs/numerics.md.

use lagc::Method;
use lagc::{RunConfig, RunOptions};

fn trajectory(src: &str, opts: RunOptions) -> Vec<Vec<f64>> {
    let c = lagc::compile_for(src, "test", &[], opts.method).expect("model compiles");
    let cfg = RunConfig::resolve(&c.model, &opts).expect("settings are valid");
    let mut rows: Vec<Vec<f64>> = Vec::new();
    c.run(&cfg, &mut rows).expect("run succeeds");
    rows
}

const OSCILLATOR: &str = "coord q\nlagrangian = 1/2*q'^2 - 1/2*q^2\ninit q = 1";

fn opts(method: Method, dt: f64, t_end: f64) -> RunOptions {
    RunOptions { method: Some(method), dt: Some(dt), t_end: Some(t_end), ..Default::default() }
}

#[test]
fn rk4_harmonic_oscillator_matches_cos_t() {
    let rows = trajectory(OSCILLATOR, opts(Method::Rk4, 0.01, 10.0));
    let last = rows.last().unwrap();
    assert_eq!(last[0], 10.0);
    assert!((last[1] - 10f64.cos()).abs() < 1e-9, "q(10) = {}", last[1]);
    assert_eq!(rows.len(), 1001);
}

#[test]
fn rk4_energy_factor_per_step_is_exact() {
    // Each step multiplies H by 1 − (ωh)⁶/72 + (ωh)⁸/576; 10⁵ steps at h = 0.1.
    let rows = trajectory(OSCILLATOR, RunOptions { every: Some(100_000), ..opts(Method::Rk4, 0.1, 10_000.0) });
    let ratio = rows.last().unwrap()[3] / rows[0][3];
    assert!((ratio / 0.99861380886 - 1.0).abs() < 1e-9, "H/H0 = {ratio}");
}

#[test]
fn symplectic_methods_match_their_closed_forms() {
    let h: f64 = 0.1;
    for (method, angle) in [
        (Method::Verlet, (1.0 - h * h / 2.0).acos()),
        (Method::Midpoint, 2.0 * (h / 2.0).atan()),
        (Method::Variational, 2.0 * (h / 2.0).atan()),
    ] {
        let rows = trajectory(OSCILLATOR, opts(method, h, 10.0));
        for (k, r) in rows.iter().enumerate() {
            let exact = (k as f64 * angle).cos();
            assert!((r[1] - exact).abs() < 1e-11, "{method} step {k}: {} vs {exact}", r[1]);
        }
    }
}

#[test]
fn damped_oscillator_at_t_10() {
    let src = "coord q\nlagrangian = 1/2*q'^2 - 1/2*q^2\ndissipation = 0.1*q'^2\ninit q = 1";
    for (method, dt, tol) in [(Method::Rk4, 0.01, 1e-8), (Method::Dopri5, 0.1, 1e-6), (Method::Variational, 0.01, 3e-5)]
    {
        let rows = trajectory(src, opts(method, dt, 10.0));
        let q = rows.last().unwrap()[1];
        assert!((q + 0.33685168059045).abs() < tol, "{method}: q(10) = {q}");
        let h: Vec<f64> = rows.iter().map(|r| r[3]).collect();
        assert!(h.windows(2).all(|w| w[1] <= w[0] + 1e-12), "{method}: H must not increase");
    }
}

#[test]
fn kepler_angular_momentum_is_kept_by_the_variational_integrator() {
    let src = "coord r, phi\nlagrangian = 1/2*(r'^2 + r^2*phi'^2) + 1/r\n\
               observe ang = r^2*phi'\ninit r = 0.4, phi' = 5";
    let rows = trajectory(src, opts(Method::Variational, 2.0 * std::f64::consts::PI / 628.0, 20.0));
    let l0 = rows[0][6];
    assert!((l0 - 0.8).abs() < 1e-15);
    for r in &rows {
        assert!((r[6] - l0).abs() < 1e-10, "angular momentum {} at t = {}", r[6], r[0]);
    }
    // H = −1/2 for this orbit.
    assert!((rows[0][5] + 0.5).abs() < 1e-12);
}

#[test]
fn quadratic_flow_euler_and_prox_are_exact() {
    let src = "state a, b\nenergy = 1/2*(a^2 + 10*b^2)\ninit a = 1, b = 1";
    let h = 0.05;
    let e = trajectory(src, opts(Method::Euler, h, 1.0));
    let p = trajectory(src, opts(Method::Prox, h, 1.0));
    for k in 0..e.len() {
        let kk = k as i32;
        assert!((e[k][1] - (1.0 - h).powi(kk)).abs() < 1e-14 * (1.0 + e[k][1].abs()));
        assert!((e[k][2] - (1.0 - 10.0 * h).powi(kk)).abs() < 1e-14);
        assert!((p[k][1] - (1.0 + h).powi(-kk)).abs() < 1e-13);
        assert!((p[k][2] - (1.0 + 10.0 * h).powi(-kk)).abs() < 1e-13);
    }
}

#[test]
fn every_writes_every_kth_step_and_the_last() {
    let rows = trajectory(OSCILLATOR, RunOptions { every: Some(3), ..opts(Method::Rk4, 0.1, 1.0) });
    let times: Vec<f64> = rows.iter().map(|r| (r[0] * 10.0).round() / 10.0).collect();
    assert_eq!(times, vec![0.0, 0.3, 0.6, 0.9, 1.0]);
}

#[test]
fn nesterov_from_t0_zero_fails_with_a_singular_mass_matrix() {
    let src = "coord x\nlagrangian = t^3*(1/2*x'^2 - 1/2*x^2)\ninit x = 1";
    let c = lagc::compile_for(src, "n", &[], None).unwrap();
    let cfg = RunConfig::resolve(&c.model, &opts(Method::Rk4, 0.01, 1.0)).unwrap();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let err = c.run(&cfg, &mut rows).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("singular mass matrix") && msg.contains("t = 0") && msg.contains("x = 1"), "{msg}");
}

fn summary_of(src: &str, opts: RunOptions) -> (Vec<Vec<f64>>, lagc::Summary) {
    let c = lagc::compile_for(src, "test", &[], opts.method).expect("model compiles");
    let cfg = RunConfig::resolve(&c.model, &opts).expect("settings are valid");
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let s = c.run(&cfg, &mut rows).expect("run succeeds");
    (rows, s)
}

#[test]
fn dopri5_harmonic_oscillator_takes_scipys_steps() {
    let opts = RunOptions { rtol: Some(1e-6), atol: Some(1e-9), ..opts(Method::Dopri5, 0.5, 10.0) };
    let (rows, s) = summary_of(OSCILLATOR, opts);
    let err =
        ((rows.last().unwrap()[1] - 10f64.cos()).powi(2) + (rows.last().unwrap()[2] + 10f64.sin()).powi(2)).sqrt();
    assert!((50..=54).contains(&s.steps), "{} steps", s.steps);
    assert!(err > 1.26e-6 / 1.5 && err < 1.26e-6 * 1.5, "error {err}");
    // Dense output: rows on the dt grid.
    assert_eq!(rows.len(), 21);
    assert!(rows.iter().enumerate().all(|(k, r)| (r[0] - 0.5 * k as f64).abs() < 1e-12));
}

#[test]
fn pendulum_period_by_dopri5() {
    let src = "coord th\nlagrangian = 1/2*th'^2 + cos(th)\ninit th = 1";
    let opts = RunOptions { rtol: Some(1e-12), atol: Some(1e-12), ..opts(Method::Dopri5, 1e-3, 2.0) };
    let (rows, _) = summary_of(src, opts);
    // The first zero of θ: a Newton step t − θ/θ' from the grid points on
    // either side of it. θ'' = −sin θ vanishes at the crossing, so each step
    // is accurate to third order in dt.
    let k = rows.iter().position(|r| r[1] <= 0.0).expect("θ crosses zero");
    let (a, b) = (&rows[k - 1], &rows[k]);
    let t0 = a[0] - a[1] / a[2];
    let t1 = b[0] - b[1] / b[2];
    let zero = 0.5 * (t0 + t1);
    let period = 4.0 * zero;
    assert!((period / 6.699975664370453 - 1.0).abs() < 1e-9, "period {period}");
}

const KEPLER: &str = "coord x, y\nlagrangian = 1/2*(x'^2 + y'^2) + 1/sqrt(x^2 + y^2)\n\
                      observe ang = x*y' - y*x'\ninit x = 0.4, y' = 2";

#[test]
fn kepler_orbit_closure_rk4_and_verlet() {
    let h = 2.0 * std::f64::consts::PI / 628.0;
    for (method, want) in [(Method::Rk4, 1.4e-6), (Method::Verlet, 1.4e-2)] {
        let (rows, _) =
            summary_of(KEPLER, RunOptions { every: Some(628), ..opts(method, h, 2.0 * std::f64::consts::PI) });
        let last = rows.last().unwrap();
        let closure = ((last[1] - 0.4).powi(2) + last[2].powi(2)).sqrt();
        assert!(closure > want * 0.85 && closure < want * 1.15, "{method}: |q(2π) − q0| = {closure:e}");
    }
}

#[test]
fn kepler_angular_momentum_kept_by_symplectic_methods() {
    let h = 2.0 * std::f64::consts::PI / 628.0;
    for method in [Method::Verlet, Method::Midpoint, Method::Variational] {
        let (rows, _) = summary_of(KEPLER, opts(method, h, 10.0));
        for r in &rows {
            assert!((r[6] - 0.8).abs() < 1e-12, "{method}: angular momentum {} at t = {}", r[6], r[0]);
        }
    }
}

#[test]
fn symplectic_energy_error_does_not_grow_while_rk4s_does() {
    // 100 periods of the Kepler orbit: compare the largest |ΔH| of the first
    // and last 10% (docs/numerics.md §Energy error growth).
    let h = 2.0 * std::f64::consts::PI / 628.0;
    let t_end = 100.0 * 2.0 * std::f64::consts::PI;
    let growth = |method| {
        let (rows, _) = summary_of(KEPLER, opts(method, h, t_end));
        let h0 = rows[0][5];
        let tenth = rows.len() / 10;
        let max = |r: &[Vec<f64>]| r.iter().map(|r| (r[5] - h0).abs()).fold(0.0, f64::max);
        max(&rows[rows.len() - tenth..]) / max(&rows[1..tenth])
    };
    let (v, r) = (growth(Method::Verlet), growth(Method::Rk4));
    assert!(v <= 1.5, "verlet grew {v}×");
    assert!(r >= 3.0, "rk4 grew only {r}×");
}

#[test]
fn midpoint_damped_oscillator_is_second_order() {
    let src = "coord q\nlagrangian = 1/2*q'^2 - 1/2*q^2\ndissipation = 0.1*q'^2\ninit q = 1";
    let err = |dt| {
        let rows = trajectory(src, opts(Method::Midpoint, dt, 10.0));
        (rows.last().unwrap()[1] + 0.33685168059045).abs()
    };
    let (e1, e2) = (err(0.02), err(0.01));
    assert!(e2 < 3e-5, "error {e2}");
    assert!((e1 / e2 - 4.0).abs() < 0.2, "halving dt divides the error by {}", e1 / e2);
}

/// The caller's interrupt flag stops a single run after its first row, and an
/// ensemble before its first step; both say so in a typed error.
#[test]
fn an_interrupt_stops_single_runs_and_ensembles_with_their_rows() {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    let stop = AtomicBool::new(true);
    let progress = AtomicU64::new(0);
    let control = lagc::Control { interrupt: Some(&stop), progress: Some(&progress) };
    for (src, method, particles) in [
        (OSCILLATOR, Method::Rk4, None),
        (OSCILLATOR, Method::Midpoint, None),
        ("param T = 1\nstate x\nenergy = x^2/2\ntemperature = T\ninit x = 1", Method::Em, Some(300)),
    ] {
        let c = lagc::compile_for(src, "stop", &[], Some(method)).unwrap();
        let opts = RunOptions { particles, ..opts(method, 0.01, 1.0) };
        let cfg = RunConfig::resolve(&c.model, &opts).unwrap();
        let plan = c.plan(&cfg).unwrap();
        let k = lagc::Kernels::build_best(&c.model, &c.equations, &plan).unwrap();
        let mut rows: Vec<Vec<f64>> = Vec::new();
        let err = lagc::drive::run(&c.model, &plan, &k, &cfg, &mut rows, control).unwrap_err();
        assert!(matches!(err, lagc::RunError::Interrupted { t } if t == 0.0), "{method}: {err}");
        assert_eq!(rows.len(), 1, "{method}: the first row is kept");
    }
    assert_eq!(progress.load(std::sync::atomic::Ordering::Relaxed), 0, "no step was taken");
}

/// A large system (its loop keeps the state in memory) that blows up: the run
/// fails with a non-finite state, names the last good state, keeps its rows.
#[test]
fn a_large_system_that_blows_up_fails_at_its_last_good_state() {
    let src = "const N = 70\ncoord x[N]\nlagrangian = sum(i in 0..N, 1/2*x[i]'^2 + x[i]^4)\n\
               init x[i in 0..N] = 1, x[i in 0..N]' = 1";
    for method in [Method::Rk4, Method::Verlet] {
        let c = lagc::compile_for(src, "blowup", &[], Some(method)).unwrap();
        let cfg = RunConfig::resolve(&c.model, &opts(method, 0.01, 100.0)).unwrap();
        let mut rows: Vec<Vec<f64>> = Vec::new();
        let err = c.run(&cfg, &mut rows).unwrap_err();
        let lagc::RunError::Numerical { t, state, cause, .. } = err else { panic!("{method}: {err}") };
        assert_eq!(cause, lagc::integrate::Cause::NonFinite, "{method}");
        assert!(t > 0.0 && t < 100.0, "{method}: t = {t}");
        assert!(state.iter().all(|(_, x)| x.is_finite()), "{method}: the last good state");
        // Every state written is finite (the energy of the last ones may overflow).
        assert!(rows.len() > 1 && rows.iter().all(|r| r[..=140].iter().all(|x| x.is_finite())), "{method}");
    }
}

/// A bead on a hoop turning at the constant rate `w`, written with `t` in
/// Cartesian `let`s. Its `L` simplifies to one without `t`, so the run
/// reports the drift of `H`, the Jacobi integral
/// `½mR²θ'² − ½mR²w²sin²θ − mgR cos θ` (checked against that closed form at
/// every row), and RK4 keeps it to its own order: halving `dt` from 0.02
/// divides the largest drift over ten seconds by at least about 2⁴ (measured:
/// 25.8, the energy error still approaching its asymptotic h⁴).
#[test]
fn hoop_turning_at_a_constant_rate_conserves_the_jacobi_integral() {
    let src = "param m = 1.3, R = 0.7, g = 9.81, w = 4.5\ncoord th\n\
               let x = R*sin(th)*cos(w*t)\nlet y = R*sin(th)*sin(w*t)\nlet z = -R*cos(th)\n\
               lagrangian = m/2*(x'^2 + y'^2 + z'^2) - m*g*z\ninit th = 1";
    let (m, r, g, w) = (1.3, 0.7, 9.81, 4.5);
    let jacobi =
        |th: f64, v: f64| 0.5 * m * r * r * v * v - 0.5 * m * r * r * w * w * th.sin().powi(2) - m * g * r * th.cos();
    let drift = |dt: f64| {
        let (rows, s) = summary_of(src, opts(Method::Rk4, dt, 10.0));
        for row in &rows {
            let want = jacobi(row[1], row[2]);
            assert!((row[3] - want).abs() < 1e-12 * want.abs().max(1.0), "H = {} ≠ {want} at t = {}", row[3], row[0]);
        }
        s.energy_drift.and_then(|d| d.relative()).expect("H is reported as conserved")
    };
    let (coarse, fine) = (drift(0.02), drift(0.01));
    assert!(fine < 1e-6, "drift {fine:e} at dt = 0.01");
    let ratio = coarse / fine;
    assert!((12.0..=40.0).contains(&ratio), "halving dt divided the drift by {ratio}");
}
