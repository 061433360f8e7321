//! `fokker-planck`: the density on a grid against the exact Ornstein–Uhlenbeck
//! solution (second order in the cell size), the discrete Gibbs density as the
//! steady state, mass and free energy along the way, the density against a
//! histogram of Euler–Maruyama particles, and the refusals of models that do
//! not fit (docs/numerics.md §Fokker–Planck).

use lagc::{Method, RunConfig, RunOptions, Summary};

fn density_run(src: &str, opts: RunOptions) -> (Vec<Vec<f64>>, Summary) {
    let opts = RunOptions { method: Some(Method::FokkerPlanck), keep_density: true, ..opts };
    let c = lagc::compile_for(src, "test", &[], opts.method).expect("model compiles");
    let cfg = RunConfig::resolve(&c.model, &opts).expect("settings are valid");
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let s = c.run(&cfg, &mut rows).expect("run succeeds");
    (rows, s)
}

const OU: &str = "param k = 1, T = 0.5\nstate x\nenergy = k*x^2/2\ntemperature = T\n\
                  init x ~ normal(1, 0.5)\ndomain x = [-5, 5]";

/// The exact OU density at time `t` from `normal(1, 0.5)` with `k = 1`, `T = 0.5`.
fn ou_exact(x: f64, t: f64) -> f64 {
    let (k, temp, m0, s0) = (1.0f64, 0.5, 1.0, 0.5);
    let m = m0 * (-k * t).exp();
    let v = s0 * s0 * (-2.0 * k * t).exp() + temp / k * (1.0 - (-2.0 * k * t).exp());
    (-(x - m).powi(2) / (2.0 * v)).exp() / (2.0 * std::f64::consts::PI * v).sqrt()
}

#[test]
fn the_ou_density_converges_at_second_order_in_the_cell_size() {
    let t_end = 0.5;
    let mut errors = vec![];
    for cells in [50u64, 100, 200, 400] {
        let h = 10.0 / cells as f64;
        // dt ∝ h², so that backward Euler's O(dt) error falls with the grid's O(h²).
        let dt = t_end / (t_end / (0.25 * h * h)).round();
        let (_, s) = density_run(
            OU,
            RunOptions {
                cells: Some(cells),
                dt: Some(dt),
                t_end: Some(t_end),
                every: Some(1_000_000),
                ..Default::default()
            },
        );
        let d = s.density.expect("the density is kept");
        let last = d.times.len() - 1;
        assert!((d.times[last] - t_end).abs() < 1e-12);
        let err = d.axes[0]
            .centres
            .iter()
            .zip(d.frame(last))
            .map(|(&x, &r)| (r - ou_exact(x, t_end)).abs())
            .fold(0.0, f64::max);
        errors.push(err);
    }
    eprintln!("largest errors at 50, 100, 200, 400 cells: {errors:?}");
    for w in errors.windows(2) {
        let order = (w[0] / w[1]).log2();
        assert!((1.8..2.2).contains(&order), "observed order {order:.3}; errors {errors:?}");
    }
    assert!(errors[3] < 1e-3, "{errors:?}");
}

#[test]
fn the_ou_moments_follow_the_exact_solution_and_mass_is_conserved() {
    let (rows, _) = density_run(
        OU,
        RunOptions { cells: Some(400), dt: Some(1e-3), t_end: Some(2.0), every: Some(1), ..Default::default() },
    );
    assert_eq!(rows.len(), 2001);
    for r in &rows {
        assert!((r[1] - 1.0).abs() < 1e-12, "mass {} at t = {}", r[1], r[0]);
    }
    let last = rows.last().unwrap();
    let (m, v) = ((-2.0f64).exp(), 0.25 * (-4.0f64).exp() + 0.5 * (1.0 - (-4.0f64).exp()));
    // Backward Euler's O(dt) and the grid's O(h²) errors: well below 1e-3 here.
    assert!((last[2] - m).abs() < 1e-3, "mean {} against {m}", last[2]);
    assert!((last[3] - v.sqrt()).abs() < 1e-3, "std {} against {}", last[3], v.sqrt());
}

const WELL: &str = "param T = 0.5\nstate x\nenergy = (x^2 - 1)^2 + 0.3*x\nmetric = diag(1 + x^2)\n\
                    temperature = T\ninit x ~ uniform(-2, -1)\ndomain x = [-2.5, 2]";

#[test]
fn the_steady_state_is_the_discrete_gibbs_density() {
    // Large implicit steps contract onto the steady state; the mobility 1/(1 + x²) changes
    // the path there but not the state.
    let (_, s) = density_run(
        WELL,
        RunOptions { cells: Some(300), dt: Some(10.0), t_end: Some(3000.0), every: Some(100), ..Default::default() },
    );
    let d = s.density.unwrap();
    let x = &d.axes[0].centres;
    let h = d.axes[0].edges[1] - d.axes[0].edges[0];
    let w: Vec<f64> = x.iter().map(|x| (-((x * x - 1.0f64).powi(2) + 0.3 * x) / 0.5).exp()).collect();
    let z: f64 = w.iter().sum::<f64>() * h;
    let last = d.frame(d.times.len() - 1);
    let worst = w.iter().zip(last).map(|(g, r)| (g / z - r).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-10, "largest difference from exp(−E/T)/Z: {worst:e}");
}

#[test]
fn the_free_energy_never_increases() {
    let (rows, _) = density_run(
        WELL,
        RunOptions { cells: Some(200), dt: Some(0.01), t_end: Some(20.0), every: Some(1), ..Default::default() },
    );
    let f: Vec<f64> = rows.iter().map(|r| r[6]).collect();
    for (k, w) in f.windows(2).enumerate() {
        assert!(w[1] <= w[0] + 1e-13 * w[0].abs().max(1.0), "F rose at step {k}: {} → {}", w[0], w[1]);
    }
    assert!(f[0] - f[f.len() - 1] > 0.5, "the free energy fell from {} to {}", f[0], f[f.len() - 1]);
}

#[test]
fn the_density_matches_a_histogram_of_langevin_particles() {
    let src = "param T = 0.5\nstate x\nenergy = (x^2 - 1)^2\ntemperature = T\n\
               init x ~ normal(-1, 0.3)\ndomain x = [-3, 3]";
    let (t_end, n) = (1.0, 20_000usize);
    let (_, s) = density_run(
        src,
        RunOptions { cells: Some(400), dt: Some(1e-3), t_end: Some(t_end), every: Some(1000), ..Default::default() },
    );
    let d = s.density.unwrap();
    let h = 6.0 / 400.0;
    let frame = d.frame(d.times.len() - 1);
    let c = lagc::compile_for(src, "test", &[], Some(Method::Em)).unwrap();
    let opts = RunOptions {
        method: Some(Method::Em),
        dt: Some(1e-3),
        t_end: Some(t_end),
        every: Some(1000),
        particles: Some(n as u64),
        seed: Some(11),
        ..Default::default()
    };
    let cfg = RunConfig::resolve(&c.model, &opts).unwrap();
    let em = c.run(&cfg, &mut Vec::<Vec<f64>>::new()).unwrap();
    // 20 bins of 20 cells each: the particles' fraction against the grid's mass.
    let mut counts = [0usize; 20];
    for p in &em.finals {
        let b = ((p[0] + 3.0) / 0.3).floor();
        if (0.0..20.0).contains(&b) {
            counts[b as usize] += 1;
        }
    }
    for (b, &count) in counts.iter().enumerate() {
        let p: f64 = frame[20 * b..20 * (b + 1)].iter().sum::<f64>() * h;
        let frac = count as f64 / n as f64;
        // Five binomial standard errors (a false alarm about once in 10⁵ runs over the
        // 20 bins), plus 3e-3 for the O(dt) bias of Euler–Maruyama and the grid's error.
        let bound = 5.0 * (p * (1.0 - p) / n as f64).sqrt() + 3e-3;
        assert!((frac - p).abs() < bound, "bin {b}: particles {frac}, grid {p}, bound {bound}");
    }
}

#[test]
fn a_time_dependent_energy_moves_the_density() {
    // A trap dragged at speed 1: the mean lags it by 1/k in the long run (k = 2).
    let src = "param k = 2, T = 0.1\nstate x\nenergy = k*(x - t)^2/2\ntemperature = T\n\
               init x ~ normal(0, 0.3)\ndomain x = [-2, 6]";
    let (rows, _) = density_run(
        src,
        RunOptions { cells: Some(400), dt: Some(1e-3), t_end: Some(4.0), every: Some(100), ..Default::default() },
    );
    let last = rows.last().unwrap();
    // Exactly: mean(t) = t − (1 − e^{−kt})/k.
    let exact = 4.0 - (1.0 - (-8.0f64).exp()) / 2.0;
    assert!((last[2] - exact).abs() < 5e-3, "mean {} against {exact}", last[2]);
}

fn refusal(src: &str) -> String {
    let c = lagc::compile_for(src, "test", &[], Some(Method::FokkerPlanck));
    match c {
        Err(e) => e.to_string(),
        Ok(c) => c.refusal(Method::FokkerPlanck).map(|d| format!("{d:?}")).unwrap_or_default(),
    }
}

#[test]
fn models_without_a_grid_are_refused_with_what_would_fit() {
    let three = "state x, y, z\nenergy = x^2 + y^2 + z^2\ntemperature = 1\n\
                 init x ~ normal(0, 1), y ~ normal(0, 1), z ~ normal(0, 1)\n\
                 domain x = [-1, 1]\ndomain y = [-1, 1]\ndomain z = [-1, 1]";
    let r = refusal(three);
    assert!(r.contains("3 state variables"), "{r}");
    let skew = "state x, y\nenergy = x^2 + y^2\nmetric = [[2, 1], [1, 2]]\ntemperature = 1\n\
                init x ~ normal(0, 1), y ~ normal(0, 1)\ndomain x = [-1, 1]\ndomain y = [-1, 1]";
    let r = refusal(skew);
    assert!(r.contains("off-diagonal"), "{r}");
    let no_domain = "state x\nenergy = x^2\ntemperature = 1\ninit x ~ normal(0, 1)";
    let r = refusal(no_domain);
    assert!(r.contains("no `domain`") && r.contains("domain x = [a, b]"), "{r}");
    let point = "state x\nenergy = x^2\ntemperature = 1\ninit x = 1\ndomain x = [-1, 1]";
    let r = refusal(point);
    assert!(r.contains("point") && r.contains("init x ~ normal(m, s)"), "{r}");
}

#[test]
fn domains_are_checked_where_they_are_written() {
    let errors = |src: &str| match lagc::compile_source(src, "test", &[]) {
        Err(e) => e.render_with(false),
        Ok(_) => String::new(),
    };
    let e = errors("state x\nenergy = x^2\ndomain y = [0, 1]");
    assert!(e.contains("`y` is not a state variable") && e.contains("did you mean `x`"), "{e}");
    let e = errors("state x\nenergy = x^2\ndomain x = [1, 0]");
    assert!(e.contains("not an interval"), "{e}");
    let e = errors("state x\nenergy = x^2\ndomain x = [0, 1]\ndomain x = [0, 2]");
    assert!(e.contains("two domains"), "{e}");
    let e = errors("coord q\nlagrangian = q'^2/2\ndomain q = [0, 1]");
    assert!(e.contains("belongs to energy models"), "{e}");
}

const OU_2D: &str = "param T = 0.5\nstate x, y\nenergy = x^2/2 + 2*y^2\nmetric = diag(1, 2)\ntemperature = T\n\
                     init x ~ normal(1, 0.3), y ~ uniform(-1, 0)\ndomain x = [-3, 3]\ndomain y = [-2, 2]";

#[test]
fn a_2d_density_follows_two_independent_ou_processes() {
    // x: k = 1, mobility 1; y: k = 4, mobility 1/2, so its rate is 2 and its variance T/4.
    let (rows, s) = density_run(
        OU_2D,
        RunOptions { cells: Some(120), dt: Some(2e-3), t_end: Some(1.0), every: Some(10), ..Default::default() },
    );
    for r in &rows {
        assert!((r[1] - 1.0).abs() < 1e-12, "mass {} at t = {}", r[1], r[0]);
    }
    let last = rows.last().unwrap();
    let (ex, ey) = ((-1.0f64).exp(), (-4.0f64).exp());
    let x_mean = ex;
    let x_var = 0.09 * ex * ex + 0.5 * (1.0 - ex * ex);
    let y_mean = -0.5 * (-2.0f64).exp();
    let y_var = (1.0 / 12.0) * ey + 0.125 * (1.0 - ey);
    // Splitting and backward Euler are O(dt), the grid O(h²): 5e-3 is ten times the error here.
    for (got, want) in [(last[2], x_mean), (last[3], x_var.sqrt()), (last[4], y_mean), (last[5], y_var.sqrt())] {
        assert!((got - want).abs() < 5e-3, "{got} against {want}; row {last:?}");
    }
    let d = s.density.unwrap();
    assert_eq!(d.axes.len(), 2);
    assert_eq!(d.values.len(), d.times.len() * 120 * 120);
}

#[test]
fn the_2d_steady_state_is_the_discrete_gibbs_density_and_f_never_increases() {
    let src = "param T = 0.4\nstate x, y\nenergy = (x^2 - 1)^2 + (y - x/2)^2\nmetric = diag(1 + y^2, 2)\n\
               temperature = T\ninit x ~ normal(-1, 0.3), y ~ normal(0, 0.3)\ndomain x = [-2, 2]\ndomain y = [-2, 2]";
    let (rows, _) = density_run(
        src,
        RunOptions { cells: Some(40), dt: Some(0.01), t_end: Some(5.0), every: Some(1), ..Default::default() },
    );
    let f: Vec<f64> = rows.iter().map(|r| r[8]).collect();
    for (k, w) in f.windows(2).enumerate() {
        assert!(w[1] <= w[0] + 1e-13 * w[0].abs().max(1.0), "F rose at step {k}: {} → {}", w[0], w[1]);
    }
    let (_, s) = density_run(
        src,
        RunOptions { cells: Some(40), dt: Some(20.0), t_end: Some(20_000.0), every: Some(100), ..Default::default() },
    );
    let d = s.density.unwrap();
    let (x, y) = (&d.axes[0].centres, &d.axes[1].centres);
    let w: Vec<f64> = x
        .iter()
        .flat_map(|&x| y.iter().map(move |&y| (-((x * x - 1.0f64).powi(2) + (y - x / 2.0).powi(2)) / 0.4).exp()))
        .collect();
    let dv = 0.1 * 0.1;
    let z: f64 = w.iter().sum::<f64>() * dv;
    let last = d.frame(d.times.len() - 1);
    let worst = w.iter().zip(last).map(|(g, r)| (g / z - r).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-10, "largest difference from exp(−E/T)/Z: {worst:e}");
}

fn lagc_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lagc")).args(args).output().unwrap()
}

#[test]
fn the_command_line_writes_the_density_and_refuses_what_cannot_run() {
    let dir = std::env::temp_dir().join(format!("lagc-fp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("ou.lag");
    std::fs::write(&model, OU_2D).unwrap();
    let (m, npy) = (model.to_str().unwrap(), dir.join("rho.npy"));
    let out = lagc_cli(&[
        "run",
        m,
        "--method",
        "fokker-planck",
        "--cells",
        "30",
        "--t-end",
        "0.1",
        "--dt",
        "0.01",
        "--every",
        "5",
        "--quiet",
        "--density",
        npy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&npy).unwrap();
    let header = String::from_utf8_lossy(&bytes[10..128]);
    assert!(header.contains("'shape': (3, 30, 30)"), "{header}");
    let grid: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("rho.json")).unwrap()).unwrap();
    assert_eq!(grid["axes"][1]["name"], "y");
    assert_eq!(grid["axes"][0]["edges"].as_array().unwrap().len(), 31);
    // A grid past the memory there is: refused before the run, with the estimate.
    let out = lagc_cli(&["run", m, "--method", "fokker-planck", "--cells", "200000", "--quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cells") && err.contains("GB"), "{err}");
    // --density belongs to fokker-planck.
    let out = lagc_cli(&["run", m, "--method", "em", "--density", npy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_energy_undefined_on_the_domain_names_the_cell() {
    let src = "state x\nenergy = log(x)\ntemperature = 1\ninit x ~ uniform(0.5, 1)\ndomain x = [-1, 2]";
    let c = lagc::compile_for(src, "test", &[], Some(Method::FokkerPlanck)).unwrap();
    let opts = RunOptions { method: Some(Method::FokkerPlanck), cells: Some(30), ..Default::default() };
    let cfg = RunConfig::resolve(&c.model, &opts).unwrap();
    match c.run(&cfg, &mut Vec::<Vec<f64>>::new()) {
        Err(lagc::RunError::Numerical { t, state, .. }) => {
            assert_eq!(t, 0.0);
            assert_eq!(state[0].0, "x");
            assert!((state[0].1 + 0.95).abs() < 1e-12, "the first cell's centre: {state:?}");
        }
        other => panic!("{other:?}"),
    }
}
