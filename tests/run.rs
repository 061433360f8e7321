//! Runs through the library, checked against the closed forms of NUMERICS.md.

use lagc::run::{run, RunConfig, RunOptions};
use lagc::Method;

fn trajectory(src: &str, opts: RunOptions) -> Vec<Vec<f64>> {
    let mut c = lagc::compile_source(src, "test", &[]).expect("model compiles");
    let cfg = RunConfig::resolve(&c.model, &opts).expect("settings are valid");
    let mut rows: Vec<Vec<f64>> = Vec::new();
    run(&mut c.model, &c.equations, &cfg, &mut rows).expect("run succeeds");
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
    let mut c = lagc::compile_source(src, "n", &[]).unwrap();
    let cfg = RunConfig::resolve(&c.model, &opts(Method::Rk4, 0.01, 1.0)).unwrap();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let err = run(&mut c.model, &c.equations, &cfg, &mut rows).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("singular mass matrix") && msg.contains("t = 0") && msg.contains("x = 1"), "{msg}");
}
