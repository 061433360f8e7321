//! `svgd`: Stein variational gradient descent against a Gaussian target's mean
//! and covariance, its independence of the thread count, and its refusals
//! (docs/numerics.md §Stein variational gradient descent).

use lagc::{Method, RunConfig, RunOptions, Summary};

fn svgd(src: &str, opts: RunOptions) -> (Vec<Vec<f64>>, Summary) {
    let opts = RunOptions { method: Some(Method::Svgd), ..opts };
    let c = lagc::compile_for(src, "test", &[], opts.method).expect("model compiles");
    let cfg = RunConfig::resolve(&c.model, &opts).expect("settings are valid");
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let s = c.run(&cfg, &mut rows).expect("run succeeds");
    (rows, s)
}

/// `N(μ, Σ)` with `μ = (1, −1)`, `Σ = [[1, 0.5], [0.5, 1]]`: `E = ½(θ − μ)ᵀΣ⁻¹(θ − μ)`, `T = 1`.
const GAUSSIAN: &str = "state x, y\nenergy = 2/3*((x - 1)^2 - (x - 1)*(y + 1) + (y + 1)^2)\n\
                        init x ~ normal(0, 0.5), y ~ normal(0, 0.5)";

fn mean_cov(finals: &[Vec<f64>]) -> ([f64; 2], [[f64; 2]; 2]) {
    let n = finals.len() as f64;
    let m = [0, 1].map(|c| finals.iter().map(|p| p[c]).sum::<f64>() / n);
    let cov = [0, 1].map(|a| [0, 1].map(|b| finals.iter().map(|p| (p[a] - m[a]) * (p[b] - m[b])).sum::<f64>() / n));
    (m, cov)
}

#[test]
fn svgd_particles_take_the_mean_and_covariance_of_a_gaussian_target() {
    let opts = RunOptions {
        particles: Some(150),
        dt: Some(0.25),
        t_end: Some(150.0),
        every: Some(100),
        seed: Some(5),
        ..Default::default()
    };
    let (rows, s) = svgd(GAUSSIAN, opts);
    let (m, cov) = mean_cov(&s.finals);
    eprintln!("mean {m:?}, covariance {cov:?}");
    // SVGD is deterministic: what is left is its bias at 150 particles and its slow filling
    // of the tails, a shrinkage of the covariance (7% at t = 150, still falling). The bounds
    // are 0.03 on the mean and 0.1 on each covariance entry; the initial cloud (mean 0,
    // variance 0.25, no correlation) is far outside both.
    assert!((m[0] - 1.0).abs() < 0.03 && (m[1] + 1.0).abs() < 0.03, "mean {m:?}");
    let target = [[1.0, 0.5], [0.5, 1.0]];
    for a in 0..2 {
        for b in 0..2 {
            assert!((cov[a][b] - target[a][b]).abs() < 0.1, "covariance {cov:?}");
        }
    }
    // The rows are an ensemble's: t, then mean and std of x, y, energy, grad_norm.
    let last = rows.last().unwrap();
    assert_eq!(last.len(), 9);
    assert!((last[1] - m[0]).abs() < 1e-12 && (last[2] - cov[0][0].sqrt()).abs() < 1e-12);
}

#[test]
fn svgd_does_not_depend_on_the_number_of_threads() {
    let opts =
        RunOptions { particles: Some(300), dt: Some(0.05), t_end: Some(0.5), seed: Some(9), ..Default::default() };
    let run_on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| svgd(GAUSSIAN, opts.clone()))
    };
    let (rows1, s1) = run_on(1);
    let (rows3, s3) = run_on(3);
    assert_eq!(rows1, rows3);
    assert_eq!(s1.finals, s3.finals);
    let (_, other) = svgd(GAUSSIAN, RunOptions { seed: Some(10), ..opts.clone() });
    assert_ne!(other.finals, s1.finals, "another seed draws other particles");
}

#[test]
fn a_fixed_bandwidth_and_a_temperature_are_used() {
    // exp(−E/T) with E = x²/2 and T = 0.25 is N(0, 1/4).
    let src = "param T = 0.25\nstate x\nenergy = x^2/2\ntemperature = T\ninit x ~ uniform(-2, 2)\n\
               simulate bandwidth = 0.1";
    let opts =
        RunOptions { particles: Some(100), dt: Some(0.02), t_end: Some(20.0), every: Some(1000), ..Default::default() };
    let (_, s) = svgd(src, opts);
    let n = s.finals.len() as f64;
    let var = s.finals.iter().map(|p| p[0] * p[0]).sum::<f64>() / n;
    assert!((var - 0.25).abs() < 0.025, "variance {var} against 0.25");
}

#[test]
fn svgd_is_refused_for_a_single_point_and_for_lagrangian_models() {
    let c = lagc::compile_for("state x\nenergy = x^2\ninit x = 1", "t", &[], Some(Method::Svgd)).unwrap();
    let d = format!("{:?}", c.refusal(Method::Svgd).expect("refused"));
    assert!(d.contains("init x ~ normal(m, s)"), "{d}");
    let c = lagc::compile_for("coord q\nlagrangian = q'^2/2", "t", &[], Some(Method::Svgd)).unwrap();
    assert!(c.refusal(Method::Svgd).is_some());
}
