//! `lagc fit`: known parameters recovered from synthetic noisy data, and the
//! command's errors and JSON.

use lagc::fit::{fit, FitError, Observations, Unknown};
use lagc::{Method, RunConfig, RunOptions};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use std::process::Command;

const OSCILLATOR: &str = "param c = 0.3, k = 1.5
coord q
lagrangian = 1/2*q'^2 - 1/2*k*q^2
dissipation = 1/2*c*q'^2
init q = 1
simulate t_end = 20, dt = 2e-3
";

const NOISE: f64 = 0.01;

/// Observations of `q` and `q'` every 0.5 from a run at `c`, `k`, with Gaussian
/// noise of standard deviation [`NOISE`] drawn from `seed`, and every 5th `q'` missing.
fn synthetic(c: f64, k: f64, seed: u64) -> Observations {
    let set = [("c".to_string(), c), ("k".to_string(), k)];
    let compiled = lagc::compile_for(OSCILLATOR, "m", &set, Some(Method::Rk4)).unwrap();
    let opts = RunOptions { every: Some(250), ..Default::default() };
    let cfg = RunConfig::resolve(&compiled.model, &opts).unwrap();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    compiled.run(&cfg, &mut rows).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0, NOISE).unwrap();
    let values = rows
        .iter()
        .enumerate()
        .map(|(i, r)| vec![Some(r[1] + noise.sample(&mut rng)), (i % 5 != 2).then(|| r[2] + noise.sample(&mut rng))])
        .collect();
    Observations { times: rows.iter().map(|r| r[0]).collect(), columns: vec!["q".into(), "q'".into()], values }
}

fn setup(set: &[(String, f64)]) -> (lagc::Compiled, RunConfig) {
    let mut c = lagc::compile_for(OSCILLATOR, "m", set, Some(Method::Rk4)).unwrap();
    c.derive_jacobians().unwrap();
    let cfg = RunConfig::resolve(&c.model, &RunOptions::default()).unwrap();
    (c, cfg)
}

/// Each estimate must lie within three standard errors of the truth: for a
/// Gaussian estimate a false alarm of 0.27% per param and seed.
#[test]
fn a_damped_oscillator_s_params_are_recovered_within_three_standard_errors() {
    for (seed, (c_true, k_true)) in [(1, (0.15, 2.0)), (2, (0.05, 0.7))] {
        let obs = synthetic(c_true, k_true, seed);
        let (mut c, cfg) = setup(&[]);
        let unknowns = [Unknown::parse("c"), Unknown::parse("log:k")];
        let r = fit(&mut c, &cfg, &obs, &unknowns, &[1.0, 1.0]).expect("fits");
        for ((name, value, se), truth) in r.params.iter().zip([c_true, k_true]) {
            assert!(*se > 0.0 && *se < 0.05, "{name}: stderr {se}");
            assert!((value - truth).abs() < 3.0 * se, "{name} = {value} ± {se}, truth {truth}");
        }
        // The residual norm is that of the noise: |r|²/σ² is χ² with m − 2 degrees of
        // freedom, within 5 of its standard deviations √(2(m − 2)).
        let m = r.residuals as f64;
        let chi2 = (r.residual_norm / NOISE).powi(2);
        assert!((chi2 - (m - 2.0)).abs() < 5.0 * (2.0 * (m - 2.0)).sqrt(), "χ² = {chi2} for {m} values");
        assert!(r.iterations < 50, "{} iterations", r.iterations);
    }
}

#[test]
fn unknown_params_unobservable_columns_and_times_off_the_grid_are_refused() {
    let obs = synthetic(0.15, 2.0, 3);
    let (mut c, cfg) = setup(&[]);
    let err = |c: &mut lagc::Compiled, obs: &Observations, names: &[&str]| {
        let u: Vec<Unknown> = names.iter().map(|n| Unknown::parse(n)).collect();
        let w = vec![1.0; obs.columns.len()];
        match fit(c, &cfg, obs, &u, &w) {
            Err(FitError::Input(m)) => m,
            other => panic!("expected an input error, got {other:?}"),
        }
    };
    let m = err(&mut c, &obs, &["cc"]);
    assert!(m.contains("`cc`") && m.contains("params: c, k"), "{m}");
    let mut energy = obs.clone();
    energy.columns[1] = "energy".into();
    let m = err(&mut c, &energy, &["c"]);
    assert!(m.contains("not a state column"), "{m}");
    let mut wrong = obs.clone();
    wrong.columns[1] = "p".into();
    let m = err(&mut c, &wrong, &["c"]);
    assert!(m.contains("`p` is not a column of the run"), "{m}");
    let mut off = obs.clone();
    off.times[3] += 1e-4;
    let m = err(&mut c, &off, &["c"]);
    assert!(m.contains("not a step of the run"), "{m}");
    let (mut negative, _) = setup(&[("k".into(), -1.0)]);
    let m = err(&mut negative, &obs, &["log:k"]);
    assert!(m.contains("not positive"), "{m}");
}

#[test]
fn the_command_prints_its_json_and_writes_the_fitted_trajectory() {
    let dir = std::env::temp_dir().join(format!("lagc-fit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("osc.lag");
    std::fs::write(&model, OSCILLATOR).unwrap();
    let obs = synthetic(0.15, 2.0, 5);
    let mut csv = String::from("t,q,q'\n");
    for (t, v) in obs.times.iter().zip(&obs.values) {
        let cell = |x: &Option<f64>| x.map(|x| format!("{x:?}")).unwrap_or_default();
        csv.push_str(&format!("{t:?},{},{}\n", cell(&v[0]), cell(&v[1])));
    }
    let data = dir.join("obs.csv");
    std::fs::write(&data, csv).unwrap();
    let out = dir.join("fitted.csv");
    let run = |extra: &[&str]| {
        let mut args = vec!["fit", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--params", "c,log:k"];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_lagc")).args(&args).output().unwrap()
    };
    let o = run(&["--json", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["iterations", "params", "residual_norm"]);
    for p in ["c", "k"] {
        let e = &v["params"][p];
        assert_eq!(e.as_object().unwrap().len(), 2);
        assert!(e["value"].as_f64().is_some() && e["stderr"].as_f64().is_some(), "{e}");
    }
    assert!(v["iterations"].as_u64().is_some() && v["residual_norm"].as_f64().is_some());
    // The fitted trajectory: every step to the last observation, at the fitted values.
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.starts_with("t,q,q',energy\n"));
    assert_eq!(written.lines().count(), 1 + 10_001);
    let o = run(&["--weights", "x=2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`x` is not an observed column"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `x' = −e^(−a)` from `x = 0` against observations `x = 0`: the residuals
/// `−t e^(−a)` fall by `e^(−1)` at every Gauss–Newton step, so the fit never
/// meets its stopping rule and `a` grows by one per iteration. The command
/// must stop at the iteration cap with status 3, the residual norm, where the
/// params ended and what to try.
#[test]
fn a_fit_that_cannot_converge_exits_3_with_the_residual_norm_and_a_hint() {
    let dir = std::env::temp_dir().join(format!("lagc-fit-runaway-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("runaway.lag");
    std::fs::write(
        &model,
        "param a = 0\nstate x\nenergy = exp(-a)*x\ninit x = 0\nsimulate t_end = 1, dt = 0.1, method = euler\n",
    )
    .unwrap();
    let mut csv = String::from("t,x\n");
    for j in 0..=10 {
        csv.push_str(&format!("{},0\n", j as f64 / 10.0));
    }
    let data = dir.join("zero.csv");
    std::fs::write(&data, csv).unwrap();
    let out = dir.join("fitted.csv");
    let o = Command::new(env!("CARGO_BIN_EXE_lagc"))
        .args(["fit", model.to_str().unwrap(), "--data", data.to_str().unwrap(), "--params", "a"])
        .args(["--method", "euler", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(o.stdout.is_empty(), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(stderr.contains(&format!("no convergence after {} iterations", lagc::fit::MAX_ITERATIONS)), "{stderr}");
    // The residual norm printed is that of the last accepted step: |r| = e^(−a)·√(Σ t²)
    // with a the value printed beside it.
    let number_after = |key: &str| -> f64 {
        let rest = &stderr[stderr.find(key).unwrap_or_else(|| panic!("no `{key}` in {stderr}")) + key.len()..];
        let end = rest.find(|c: char| !(c.is_ascii_digit() || "+-.e".contains(c))).unwrap_or(rest.len());
        rest[..end].parse().unwrap_or_else(|_| panic!("`{key}` is not followed by a number in {stderr}"))
    };
    let residual = number_after("residual norm ");
    let a = number_after("a = ");
    let sum_t2: f64 = (0..=10).map(|j| (j as f64 / 10.0).powi(2)).sum();
    assert!(a > 100.0, "a = {a}: {stderr}");
    assert!((residual / ((-a).exp() * sum_t2.sqrt()) - 1.0).abs() < 1e-9, "{stderr}");
    assert!(stderr.contains("--set") && stderr.contains("model can follow the data"), "{stderr}");
    assert!(!out.exists(), "no fitted trajectory after a failed fit");
    std::fs::remove_dir_all(&dir).unwrap();
}
