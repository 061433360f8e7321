//! Interacting particles: the quadratic aggregation model's stationary spread
//! against its closed form, and the checks of `interaction` and `x~`
//! (docs/numerics.md §Interacting particles).

use lagc::{Method, RunConfig, RunOptions};

#[test]
fn the_quadratic_aggregation_model_has_its_closed_form_variance() {
    // dx_i = (−k x_i − a(x_i − x̄)) dt + √(2T) dW_i: the deviations from the particles' mean
    // are OU processes of rate λ = k + a driven by the noise minus its mean, so under
    // Euler–Maruyama the spread (1/N)Σ(x_i − x̄)² has the stationary mean
    // T (1 − 1/N) / (λ (1 − λh/2)).
    let src = "param k = 1, a = 2, T = 0.5\nstate x\nenergy = k*x^2/2\ninteraction = a/2*(x - x~)^2\n\
               temperature = T\ninit x ~ normal(2, 1)";
    let (n, h) = (200usize, 0.02);
    let c = lagc::compile_for(src, "test", &[], Some(Method::Em)).unwrap();
    let opts = RunOptions {
        method: Some(Method::Em),
        particles: Some(n as u64),
        dt: Some(h),
        t_end: Some(20.0),
        every: Some(10),
        seed: Some(4),
        ..Default::default()
    };
    let cfg = RunConfig::resolve(&c.model, &opts).unwrap();
    let mut rows: Vec<Vec<f64>> = vec![];
    c.run(&cfg, &mut rows).unwrap();
    let lambda = 3.0;
    let exact = 0.5 * (1.0 - 1.0 / n as f64) / (lambda * (1.0 - lambda * h / 2.0));
    // After the start (rate 3: e^{−24} of it is left at t = 4), rows every 0.2.
    let spread: Vec<f64> = rows.iter().filter(|r| r[0] >= 4.0).map(|r| r[2] * r[2]).collect();
    let mean = spread.iter().sum::<f64>() / spread.len() as f64;
    // One row's spread has a relative standard deviation of about √(2/N) = 0.1; rows 0.2
    // apart are correlated by e^{−2λ·0.2} = 0.3, which at most doubles the variance of the
    // average. Five standard errors: a false alarm about once in 10⁶ runs.
    let se = exact * (2.0 / n as f64).sqrt() * (2.0 / spread.len() as f64).sqrt();
    assert!((mean - exact).abs() < 5.0 * se, "spread {mean} against {exact} (5 SE = {})", 5.0 * se);
    // Without the attraction the spread would be T/k = 0.5: far outside the bound.
    assert!(5.0 * se < 0.5 - exact);
}

#[test]
fn without_a_temperature_euler_aggregates_the_particles() {
    // T = 0: the deviations shrink by (1 − λh) per step, the mean by (1 − kh).
    let src = "state x\nenergy = x^2/2\ninteraction = (x - x~)^2\ninit x ~ uniform(1, 3)";
    let c = lagc::compile_for(src, "test", &[], Some(Method::Euler)).unwrap();
    let opts = RunOptions {
        method: Some(Method::Euler),
        particles: Some(50),
        dt: Some(0.1),
        t_end: Some(1.0),
        every: Some(10),
        ..Default::default()
    };
    let cfg = RunConfig::resolve(&c.model, &opts).unwrap();
    let mut rows: Vec<Vec<f64>> = vec![];
    c.run(&cfg, &mut rows).unwrap();
    let (first, last) = (&rows[0], rows.last().unwrap());
    // ∇₁W = 2(x − x~), so λ = 1 + 2 = 3: the std shrinks by 0.7¹⁰, the mean by 0.9¹⁰.
    assert!((last[2] / first[2] - 0.7f64.powi(10)).abs() < 1e-12, "{first:?} {last:?}");
    assert!((last[1] / first[1] - 0.9f64.powi(10)).abs() < 1e-12, "{first:?} {last:?}");
}

fn errors(src: &str) -> String {
    match lagc::compile_source(src, "test", &[]) {
        Err(e) => e.render_with(false),
        Ok(_) => String::new(),
    }
}

#[test]
fn interactions_are_checked_symmetric_and_twins_stay_inside_them() {
    let e = errors("state x\nenergy = x^2\ninteraction = x*(x - x~)");
    assert!(e.contains("not symmetric"), "{e}");
    assert!(errors("state x, y\nenergy = x^2\ninteraction = sin(x - x~)^2 + (y*y~)").is_empty());
    let e = errors("state x\nenergy = x^2 + x~");
    assert!(e.contains("the other particle") && e.contains("only inside `interaction"), "{e}");
    let e = errors("state x\nenergy = x^2\ninteraction = (x - z~)^2");
    assert!(e.contains("`z` is not a state variable"), "{e}");
    // A method whose particles move alone is refused.
    let c = lagc::compile_for("state x\nenergy = x^2\ninteraction = (x - x~)^2\ninit x ~ normal(0, 1)", "t", &[], None)
        .unwrap();
    let d = format!("{:?}", c.refusal(Method::Rk4).expect("refused"));
    assert!(d.contains("interaction"), "{d}");
}

#[test]
fn the_aggregation_density_relaxes_to_its_self_consistent_gaussian() {
    // On the grid, ∂ρ/∂t = ∂ₓ(ρ ∂ₓ(E + W∗ρ) + T ∂ₓρ): with E = kx²/2, W = a(x − x~)²/2 the
    // potential is (k + a)x²/2 − a·m·x + const, so the density relaxes to the Gaussian of
    // mean 0 and variance T/(k + a) = 1/6 (up to the grid's O(h²)).
    let src = "param k = 1, a = 2, T = 0.5\nstate x\nenergy = k*x^2/2\ninteraction = a/2*(x - x~)^2\n\
               temperature = T\ninit x ~ normal(2, 1)\ndomain x = [-4, 6]";
    let c = lagc::compile_for(src, "test", &[], Some(Method::FokkerPlanck)).unwrap();
    let opts = RunOptions {
        method: Some(Method::FokkerPlanck),
        cells: Some(400),
        dt: Some(0.01),
        t_end: Some(10.0),
        every: Some(100),
        ..Default::default()
    };
    let cfg = RunConfig::resolve(&c.model, &opts).unwrap();
    let mut rows: Vec<Vec<f64>> = vec![];
    c.run(&cfg, &mut rows).unwrap();
    let last = rows.last().unwrap();
    assert!((last[1] - 1.0).abs() < 1e-12, "mass {}", last[1]);
    assert!(last[2].abs() < 1e-3, "mean {}", last[2]);
    assert!((last[3] - (0.5f64 / 3.0).sqrt()).abs() < 1e-5, "std {} against {}", last[3], (0.5f64 / 3.0).sqrt());
    // The energy column holds ∫Eρ + ½∬Wρρ: k/2·Var = 1/12 plus ½·(a/2)·2·Var = 1/6, so 1/4.
    assert!((last[4] - 0.25).abs() < 1e-4, "energy {}", last[4]);
}

#[test]
fn the_pair_kernels_match_the_evaluator_on_both_backends() {
    use lagc::{BackendKind, Kernel, Kernels};
    let src = "param a = 1.5\nstate x, y\nenergy = x^2 + y^2\n\
               interaction = a*exp(-((x - x~)^2 + (y - y~)^2)) + sin(x*x~) + y*y~\n\
               temperature = 1\ninit x ~ normal(0, 1), y ~ normal(0, 1)";
    let kernel = Kernel::PairGradient;
    for method in [Method::Em, Method::Euler] {
        let c = lagc::compile_for(src, "t", &[], Some(method)).unwrap();
        let plan = lagc::plan::plan(&c.model, &c.equations, method, Some(10)).unwrap();
        for backend in [BackendKind::Native, BackendKind::Portable] {
            let k = Kernels::build(&c.model, &c.equations, &plan, backend).unwrap();
            let w = c.model.interaction.as_ref().unwrap();
            let (own, other) = ([0.3, -1.1], [0.7, 0.4]);
            let mut x = vec![];
            k.input(0.0, &[own[0], own[1], other[0], other[1]], &mut x);
            let mut out = vec![0.0; 2];
            k.eval(kernel, &x, &mut out, &mut Vec::new());
            let mut env = c.model.env();
            for (v, val) in c.model.var_syms().into_iter().zip(own) {
                env.set(v, val);
            }
            for (&s, val) in w.twins.iter().zip(other) {
                env.set(s, val);
            }
            let want = c.model.arena.eval_many(k.expressions(kernel), &env);
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-14 * (1.0 + b.abs()), "{backend:?}: {a} vs {b}");
            }
            // ∂W/∂x against a central difference of W itself.
            let wx = |d: f64| {
                let mut e = env.clone();
                e.set(c.model.var_syms()[0], own[0] + d);
                c.model.arena.eval(w.w, &e)
            };
            assert!((out[0] - (wx(1e-6) - wx(-1e-6)) / 2e-6).abs() < 1e-7);
        }
    }
}
