//! The optimization and sampling side, run through the whole pipeline:
//! the minimizing movement on Rosenbrock, natural gradient in two
//! parameterisations, and Nesterov's and Polyak's methods as Lagrangians.

use lagc::Method;
use lagc::{RunConfig, RunOptions};
use std::path::Path;

fn rows_of(src: &str, opts: RunOptions) -> Vec<Vec<f64>> {
    let c = lagc::compile_for(src, "test", &[], opts.method).expect("model compiles");
    let cfg = RunConfig::resolve(&c.model, &opts).expect("settings are valid");
    let mut rows: Vec<Vec<f64>> = Vec::new();
    c.run(&cfg, &mut rows).expect("run succeeds");
    rows
}

fn example(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.lag"))).unwrap()
}

#[test]
fn prox_dissipates_energy_on_every_rosenbrock_step() {
    // E_{k+1} + |θ_{k+1} − θ_k|²/(2h) ≤ E_k (docs/numerics.md §Minimizing movement), at three step sizes.
    for h in [0.1, 1.0, 10.0] {
        let rows =
            rows_of(&example("rosenbrock"), RunOptions { dt: Some(h), t_end: Some(50.0 * h), ..Default::default() });
        assert_eq!(rows.len(), 51);
        for w in rows.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let step2 = (b[1] - a[1]).powi(2) + (b[2] - a[2]).powi(2);
            let lhs = b[3] + step2 / (2.0 * h);
            assert!(lhs <= a[3] + 1e-12 * a[3].abs().max(1.0), "h = {h}, t = {}: {lhs} > {}", b[0], a[3]);
        }
    }
}

#[test]
fn prox_at_dt_1_reaches_the_rosenbrock_minimum() {
    let rows = rows_of(&example("rosenbrock"), RunOptions::default());
    let last = rows.last().unwrap();
    assert!((last[1] - 1.0).abs() < 1e-6 && (last[2] - 1.0).abs() < 1e-6, "{last:?}");
}

#[test]
fn natural_gradient_does_not_depend_on_the_parameterisation() {
    // The same Fisher–Rao flow in (mu, sigma) and in (mu, v = sigma²).
    let by_variance = "param m = 1, s2 = 4\nstate mu, v\n\
                       energy = ((mu - m)^2 + s2)/(2*v) + log(v)/2\n\
                       metric = diag(1/v, 1/(2*v^2))\ninit mu = -1, v = 0.25";
    let opts = RunOptions {
        method: Some(Method::Rk4),
        dt: Some(1e-3),
        t_end: Some(5.0),
        every: Some(100),
        ..Default::default()
    };
    let a = rows_of(&example("natural_gradient"), opts.clone());
    let b = rows_of(by_variance, opts);
    assert_eq!(a.len(), b.len());
    for (ra, rb) in a.iter().zip(&b) {
        assert!((ra[1] - rb[1]).abs() < 1e-9, "mu at t = {}: {} vs {}", ra[0], ra[1], rb[1]);
        assert!((ra[2] * ra[2] - rb[2]).abs() < 1e-9, "sigma² at t = {}: {} vs {}", ra[0], ra[2] * ra[2], rb[2]);
    }
    // The flow converges to the data: mu → m, sigma² → s2.
    let last = b.last().unwrap();
    assert!((last[1] - 1.0).abs() < 0.05 && (last[2] - 4.0).abs() < 0.2, "{last:?}");
}

#[test]
fn nesterov_converges_at_the_rate_one_over_t_squared() {
    // For x'' + (3/t) x' + ∇f = 0 the Lyapunov function
    // t²(f − f*) + 2|x + t x'/2 − x*|² never increases (f convex), so
    // t² f(x(t)) ≤ t0² f(x0) + 2|x0 − x*|² = 24.5 + 26 = 50.5 from t0 = 1 at rest.
    let rows = rows_of(&example("nesterov"), RunOptions { every: Some(100), ..Default::default() });
    let bound = 50.5;
    for r in &rows {
        let (t, f, t2f) = (r[0], r[6], r[7]);
        assert!((t2f - t * t * f).abs() < 1e-9 * t2f.max(1.0));
        assert!(t2f <= bound * (1.0 + 1e-9), "t² f = {t2f} at t = {t}");
    }
    let last = rows.last().unwrap();
    assert!(last[0] == 50.0 && last[6] < bound / 2500.0);
}

#[test]
fn heavy_ball_decays_as_its_closed_form() {
    // x'' + γ x' + ∇f = 0 on f = (μu² + w²)/2: the slow mode u is critically
    // damped (γ = 2√μ), the fast mode w underdamped; both decay like e^{−γt/2}.
    let rows = rows_of(&example("heavy_ball"), RunOptions { every: Some(100), ..Default::default() });
    let (mu, gamma) = (0.01f64, 0.2f64);
    let (u0, w0) = ((-2.0 + 1.0) / 2f64.sqrt(), (-2.0 - 1.0) / 2f64.sqrt());
    let omega = (1.0 - gamma * gamma / 4.0).sqrt();
    for r in &rows {
        let t = r[0];
        let decay = (-gamma * t / 2.0).exp();
        let u = u0 * (1.0 + mu.sqrt() * t) * decay;
        let w = w0 * decay * ((omega * t).cos() + gamma / (2.0 * omega) * (omega * t).sin());
        let f = 0.5 * (mu * u * u + w * w);
        assert!((r[6] - f).abs() < 1e-8 * (1.0 + f), "f at t = {t}: {} vs {f}", r[6]);
    }
    assert!(rows.last().unwrap()[6] < 1e-7);
}
