//! Stochastic and thermodynamic dynamics (docs/numerics.md §Underdamped Langevin, §BAOAB,
//! §Riemannian Langevin, §Work and heat): equipartition under `baoab` and `em` against
//! the exact stationary covariance of each discrete method, BAOAB's exact configurational
//! variance at a large step, Riemannian Langevin against its Gibbs density (and against
//! the law it would have without the divergence term), Jarzynski's equality, the first law
//! row by row, the work of a driven system against its energy balance, and the
//! reverse-time diffusion's samples against the data's mixture.
//!
//! Statistical checks use 5 standard errors (a false alarm about once in 1.7 million per
//! check) or Kolmogorov–Smirnov at the 0.1% level (critical value 1.95/√N). The seeds are
//! fixed, so each test is deterministic.

use lagc::{Method, RunConfig, RunOptions, Summary};

fn run(src: &str, opts: RunOptions) -> (Vec<String>, Vec<Vec<f64>>, Summary) {
    let c = lagc::compile_for(src, "test", &[], opts.method).expect("model compiles");
    let cfg = RunConfig::resolve(&c.model, &opts).expect("settings are valid");
    let columns = c.plan(&cfg).expect("the method fits").columns;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let s = c.run(&cfg, &mut rows).expect("run succeeds");
    (columns, rows, s)
}

fn col(columns: &[String], name: &str) -> usize {
    columns.iter().position(|c| c == name).unwrap_or_else(|| panic!("no column {name} in {columns:?}"))
}

fn opts(method: Method, dt: f64, t_end: f64, particles: u64, seed: u64) -> RunOptions {
    RunOptions {
        method: Some(method),
        dt: Some(dt),
        t_end: Some(t_end),
        every: Some(1_000_000),
        particles: Some(particles),
        seed: Some(seed),
        ..Default::default()
    }
}

/// The stationary covariance `Σ = AΣAᵀ + Q` of a linear map on `(x, v)`, by iteration.
fn lyapunov(a: [[f64; 2]; 2], q: [[f64; 2]; 2]) -> [[f64; 2]; 2] {
    let mut s = [[0.0; 2]; 2];
    for _ in 0..20_000 {
        let mut next = q;
        for i in 0..2 {
            for j in 0..2 {
                for k in 0..2 {
                    for l in 0..2 {
                        next[i][j] += a[i][k] * s[k][l] * a[j][l];
                    }
                }
            }
        }
        s = next;
    }
    s
}

/// `A y + B ξ` as matrices: the composition of linear steps on `(x, v)` with noise.
#[derive(Clone, Copy)]
struct Affine {
    a: [[f64; 2]; 2],
    /// Noise covariance added so far.
    q: [[f64; 2]; 2],
}

impl Affine {
    fn id() -> Affine {
        Affine { a: [[1.0, 0.0], [0.0, 1.0]], q: [[0.0; 2]; 2] }
    }
    /// Applies `m` (and adds `noise` covariance) after `self`.
    fn then(self, m: [[f64; 2]; 2], noise: [[f64; 2]; 2]) -> Affine {
        let mut a = [[0.0; 2]; 2];
        let mut q = noise;
        for i in 0..2 {
            for j in 0..2 {
                for k in 0..2 {
                    a[i][j] += m[i][k] * self.a[k][j];
                    for l in 0..2 {
                        q[i][j] += m[i][k] * self.q[k][l] * m[j][l];
                    }
                }
            }
        }
        Affine { a, q }
    }
}

const OSCILLATOR: &str = "param m = 2, k = 3, gamma = 1.5, T = 0.5\ncoord x\n\
    lagrangian = 1/2*m*x'^2 - 1/2*k*x^2\ndissipation = 1/2*gamma*x'^2\ntemperature = T\n\
    init x ~ normal(1, 0.1)";

/// The exact stationary covariance of BAOAB and of Euler–Maruyama on the oscillator.
fn discrete_covariance(method: Method, h: f64) -> [[f64; 2]; 2] {
    let (m, k, g, t) = (2.0, 3.0, 1.5, 0.5);
    let z = [[0.0; 2]; 2];
    let step = match method {
        Method::Baoab => {
            let kick = [[1.0, 0.0], [-0.5 * h * k / m, 1.0]];
            let drift = [[1.0, 0.5 * h], [0.0, 1.0]];
            let c = (-h * g / m).exp();
            let ou = [[1.0, 0.0], [0.0, c]];
            let ou_noise = [[0.0, 0.0], [0.0, t / m * (1.0 - c * c)]];
            Affine::id().then(kick, z).then(drift, z).then(ou, ou_noise).then(drift, z).then(kick, z)
        }
        _ => {
            let a = [[1.0, h], [-h * k / m, 1.0 - h * g / m]];
            Affine::id().then(a, [[0.0, 0.0], [0.0, 2.0 * t * g * h / (m * m)]])
        }
    };
    lyapunov(step.a, step.q)
}

#[test]
fn equipartition_under_baoab_and_em_at_each_methods_exact_stationary_covariance() {
    let n = 4000u64;
    for (method, h) in [(Method::Baoab, 0.5), (Method::Baoab, 0.05), (Method::Em, 0.05)] {
        let (columns, rows, _) = run(OSCILLATOR, opts(method, h, 30.0, n, 21));
        let last = rows.last().unwrap();
        let exact = discrete_covariance(method, h);
        for (name, var) in [("x", exact[0][0]), ("x'", exact[1][1])] {
            let std = last[col(&columns, &format!("{name}_std"))];
            let se = var * (2.0 / n as f64).sqrt();
            assert!((std * std - var).abs() < 5.0 * se, "{method} h = {h}: var({name}) {} vs {var}", std * std);
        }
        if method == Method::Baoab {
            // BAOAB's configurational marginal is exact: ⟨x²⟩ = T/k at any stable step.
            assert!((exact[0][0] - 0.5 / 3.0).abs() < 1e-12, "BAOAB ⟨x²⟩ = {}", exact[0][0]);
        }
    }
    // And the check has power: EM at the large step is far from equipartition.
    let em = discrete_covariance(Method::Em, 0.5);
    assert!((em[0][0] - 0.5 / 3.0).abs() > 20.0 * (0.5 / 3.0) * (2.0 / n as f64).sqrt(), "{em:?}");
}

#[test]
fn baoab_ensembles_do_not_depend_on_the_thread_count() {
    let with = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run(OSCILLATOR, opts(Method::Baoab, 0.1, 2.0, 600, 9)))
    };
    let (_, a, sa) = with(1);
    let (_, b, sb) = with(2);
    assert_eq!(a, b);
    assert_eq!(sa.finals, sb.finals);
}

/// `P(X ≤ x)` of a Gamma law of integer shape `a` and rate `b`.
fn gamma_cdf(a: u32, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let (mut term, mut sum) = (1.0, 1.0);
    for k in 1..a {
        term *= b * x / k as f64;
        sum += term;
    }
    1.0 - (-b * x).exp() * sum
}

/// The Kolmogorov–Smirnov statistic of a sample against a CDF.
fn ks(mut xs: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    xs.iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max)
}

#[test]
fn riemannian_langevin_samples_exp_minus_e_over_t_under_a_state_dependent_metric() {
    // The Poisson rate's posterior Gamma(S + 1, N) under the Fisher metric g = N/λ
    // (examples/riemannian_langevin.lag). Without the divergence term the same dynamics
    // settle at Gamma(S, N); the sample must pass the first test and fail the second.
    let src = "param S = 20, N = 10, T = 1\nstate lam\nenergy = N*lam - S*log(lam)\nmetric = diag(N/lam)\n\
               temperature = T\ninit lam ~ uniform(1.5, 2.5)";
    let n = 2000;
    let (_, _, s) = run(src, opts(Method::Em, 5e-3, 8.0, n, 4));
    let xs: Vec<f64> = s.finals.iter().map(|f| f[0]).collect();
    let critical = 1.95 / (n as f64).sqrt();
    let d = ks(xs.clone(), |x| gamma_cdf(21, 10.0, x));
    assert!(d < critical, "KS against Gamma(21, 10): {d} ≥ {critical}");
    let without = ks(xs, |x| gamma_cdf(20, 10.0, x));
    assert!(without > critical, "the law without the divergence term also passes: {without}");
}

#[test]
fn the_divergence_of_a_full_metrics_inverse_matches_finite_differences() {
    // g(θ) full and state-dependent in two variables: the symbolic ∇·g⁻¹ (cofactors)
    // against central differences of the numerically inverted metric.
    let src = "state a, b\nenergy = a^2 + b^2\nmetric = [[2 + a^2, a*b], [a*b, 1 + b^2 + a]]\ntemperature = 1";
    let mut c = lagc::compile_for(src, "test", &[], Some(Method::Em)).expect("compiles");
    let lagc::Equations::Energy(e) = &c.equations else { panic!("an energy model") };
    let div = e.divergence.clone().expect("a state-dependent metric has a divergence");
    let syms = c.model.var_syms();
    let inv = |a: f64, b: f64| {
        let g = [2.0 + a * a, a * b, a * b, 1.0 + b * b + a];
        let det = g[0] * g[3] - g[1] * g[2];
        [g[3] / det, -g[1] / det, -g[2] / det, g[0] / det]
    };
    for (a0, b0) in [(0.3, -0.7), (1.1, 0.4), (-0.5, 2.0)] {
        let mut env = c.model.env();
        env.set(syms[0], a0);
        env.set(syms[1], b0);
        let got: Vec<f64> = div.iter().map(|&d| c.model.arena.eval(d, &env)).collect();
        let h = 1e-5;
        let da = |i: usize| (inv(a0 + h, b0)[i] - inv(a0 - h, b0)[i]) / (2.0 * h);
        let db = |i: usize| (inv(a0, b0 + h)[i] - inv(a0, b0 - h)[i]) / (2.0 * h);
        let want = [da(0) + db(1), da(2) + db(3)];
        for i in 0..2 {
            assert!((got[i] - want[i]).abs() < 1e-8, "at ({a0}, {b0}): {got:?} vs {want:?}");
        }
    }
    // The text of `derive` shows it.
    let text = c.render(lagc::Format::Text).unwrap();
    assert!(text.contains("(∇·g⁻¹)[a] = ") && text.contains("Riemannian Langevin dynamics"), "{text}");
    let _ = &mut c;
}

#[test]
fn jarzynski_equality_holds_for_a_switched_trap() {
    // ⟨exp(−W/T)⟩ = sqrt(k0/k1) = 1/2; the mean work exceeds ΔF = T ln 2.
    let src = "param k0 = 1, k1 = 4, tau = 1, T = 0.5\nstate x\nenergy = 1/2*(k0 + (k1 - k0)*t/tau)*x^2\n\
               temperature = T\ninit x ~ normal(0, sqrt(T/k0))";
    let n = 4000;
    let c = lagc::compile_for(src, "test", &[], Some(Method::Em)).unwrap();
    let cfg = RunConfig::resolve(&c.model, &opts(Method::Em, 2e-3, 1.0, n, 13)).unwrap();
    let plan = c.plan(&cfg).unwrap();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let s = c.run(&cfg, &mut rows).unwrap();
    // Summary::finals holds every particle's last row without `t`.
    let w = col(&plan.trajectory_columns, "work") - 1;
    let works: Vec<f64> = s.finals.iter().map(|f| f[w]).collect();
    let e: Vec<f64> = works.iter().map(|w| (-w / 0.5).exp()).collect();
    let mean = e.iter().sum::<f64>() / n as f64;
    let sd = (e.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0)).sqrt();
    let se = sd / (n as f64).sqrt();
    assert!((mean - 0.5).abs() < 5.0 * se, "⟨exp(−W/T)⟩ = {mean} ± {se}");
    let mean_work = works.iter().sum::<f64>() / n as f64;
    assert!(mean_work > 0.5 * 2f64.ln() + 0.05, "⟨W⟩ = {mean_work}");
}

#[test]
fn the_first_law_holds_row_by_row_and_the_work_balances_a_driven_system() {
    // A single stochastic trajectory: heat = work − (E − E0) in every row, to rounding.
    let src = "param k0 = 1, T = 0.3\nstate x\nenergy = 1/2*k0*(1 + t)*x^2 + x^4/4\ntemperature = T\ninit x = 1";
    let o = RunOptions { particles: None, every: Some(10), ..opts(Method::Em, 1e-3, 2.0, 1, 5) };
    let (columns, rows, _) = run(src, RunOptions { particles: None, ..o });
    let (e, w, q) = (col(&columns, "energy"), col(&columns, "work"), col(&columns, "heat"));
    assert_eq!(rows.len(), 201);
    assert!(rows.iter().any(|r| r[w].abs() > 0.01), "the work moves");
    for r in &rows {
        let first_law = r[w] - (r[e] - rows[0][e]);
        assert!((r[q] - first_law).abs() <= 1e-13 * (1.0 + r[w].abs() + r[e].abs()), "{r:?}");
    }
    // A driven oscillator without friction or noise: all the work becomes energy, so the
    // heat is the integration error of rk4 and of the work's midpoint rule, O(h²).
    let driven = "param A = 0.7, w = 1.3\ncoord x\nlagrangian = 1/2*x'^2 - 1/2*(1 + 0.5*sin(t))*x^2\n\
                  force x = A*cos(w*t)\ninit x = 1";
    let heat_at = |h: f64| {
        let o = RunOptions { particles: None, every: Some(1), ..opts(Method::Rk4, h, 10.0, 1, 1) };
        let (columns, rows, _) = run(driven, RunOptions { particles: None, ..o });
        let (w, q) = (col(&columns, "work"), col(&columns, "heat"));
        let last = rows.last().unwrap();
        assert!(last[w].abs() > 0.1, "the drive does work: {}", last[w]);
        rows.iter().map(|r| r[q].abs()).fold(0.0, f64::max)
    };
    let (coarse, fine) = (heat_at(0.02), heat_at(0.01));
    assert!(coarse < 1e-3, "heat {coarse}");
    let order = (coarse / fine).log2();
    assert!((1.7..2.3).contains(&order), "the heat falls at order {order} ({coarse} → {fine})");
}

/// The standard normal CDF (Abramowitz–Stegun 7.1.26, absolute error < 1.5e-7).
fn phi(x: f64) -> f64 {
    let z = x / 2f64.sqrt();
    let t = 1.0 / (1.0 + 0.3275911 * z.abs());
    let y = 1.0
        - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592)
            * t
            * (-z * z).exp();
    0.5 * (1.0 + y.copysign(z))
}

#[test]
fn the_reverse_time_diffusion_samples_the_data_mixture() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/diffusion_reverse.lag")).unwrap();
    let n = 2000;
    let mixture = |x: f64| 0.3 * phi((x + 2.0) / 0.4) + 0.7 * phi((x - 1.5) / 0.6);
    let critical = 1.95 / (n as f64).sqrt();
    for method in [Method::Em, Method::Rk4] {
        // em at T = 1 is the reverse-time SDE; rk4 runs the probability-flow ODE at T = 0.
        let sets = if method == Method::Rk4 { vec![("T".to_string(), 0.0)] } else { vec![] };
        let c = lagc::compile_for(&src, "test", &sets, Some(method)).unwrap();
        let cfg = RunConfig::resolve(&c.model, &opts(method, 1e-2, 5.0, n, 6)).unwrap();
        let s = c.run(&cfg, &mut Vec::<Vec<f64>>::new()).unwrap();
        let xs: Vec<f64> = s.finals.iter().map(|f| f[0]).collect();
        let d = ks(xs.clone(), mixture);
        assert!(d < critical, "{method}: KS against the mixture {d} ≥ {critical}");
        // Power: a normal law of the same mean and variance fails.
        let normal = ks(xs, |x| phi((x - 0.45) / 1.69485));
        assert!(normal > 3.0 * critical, "{method}: the moment-matched normal passes too: {normal}");
    }
}

#[test]
fn models_that_cannot_be_thermostatted_are_refused_with_a_reason() {
    let err = |src: &str| match lagc::compile_for(src, "test", &[], None) {
        Ok(_) => panic!("accepted: {src}"),
        Err(d) => format!("{d:?}"),
    };
    let no_friction = err("coord x\nlagrangian = x'^2/2 - x^2/2\ntemperature = 1");
    assert!(no_friction.contains("a temperature needs a `dissipation`"), "{no_friction}");
    let nonlinear = err("coord x\nlagrangian = x'^2/2 - x^2/2\ndissipation = x'^4\ntemperature = 1");
    assert!(nonlinear.contains("quadratic in the velocities"), "{nonlinear}");
    let state = err("state x\nenergy = x^2\ntemperature = 1 + x^2");
    assert!(state.contains("must not depend on the state"), "{state}");
    // BAOAB needs a constant mass matrix; em takes any.
    let src = "coord x\nlagrangian = (1 + x^2)*x'^2/2 - x^2/2\ndissipation = x'^2/2\ntemperature = 1";
    let c = lagc::compile_for(src, "test", &[], Some(Method::Baoab)).unwrap();
    let why = c.refusal(Method::Baoab).expect("baoab refuses a state-dependent M");
    assert!(format!("{why:?}").contains("mass matrix depends on the state"), "{why:?}");
    assert!(c.refusal(Method::Em).is_none());
}
