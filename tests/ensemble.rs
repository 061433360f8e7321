//! Ensembles and Langevin dynamics: answer 6 of docs/numerics.md, the Gibbs density
//! of the double well, reproducibility across thread counts, and `--dump`.

use lagc::Method;
use lagc::{RunConfig, RunOptions, Summary};

fn ensemble(src: &str, opts: RunOptions) -> (Vec<Vec<f64>>, Summary) {
    let c = lagc::compile_for(src, "test", &[], opts.method).expect("model compiles");
    let cfg = RunConfig::resolve(&c.model, &opts).expect("settings are valid");
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let s = c.run(&cfg, &mut rows).expect("run succeeds");
    (rows, s)
}

const OU: &str = "param k = 2, T = 0.5\nstate x\nenergy = k*x^2/2\ntemperature = T\ninit x = 1";

#[test]
fn ornstein_uhlenbeck_matches_the_exact_euler_maruyama_moments() {
    // EM exactly: mean (1 − kh)^n, variance (T/k)(1 − (1 − kh)^{2n}) / (1 − kh/2).
    let (k, t, h, n) = (2.0f64, 0.5, 0.01, 20_000usize);
    let opts = RunOptions {
        method: Some(Method::Em),
        dt: Some(h),
        t_end: Some(5.0),
        every: Some(25),
        particles: Some(n as u64),
        seed: Some(7),
        ..Default::default()
    };
    let (rows, s) = ensemble(OU, opts);
    assert_eq!(s.particles, n);
    assert_eq!(rows.len(), 21);
    for r in &rows[1..] {
        let steps = (r[0] / h).round() as i32;
        let a = (1.0 - k * h).powi(steps);
        let var = t / k * (1.0 - a * a) / (1.0 - k * h / 2.0);
        let (mean, std) = (r[1], r[2]);
        let se_mean = (var / n as f64).sqrt();
        let se_var = var * (2.0 / n as f64).sqrt();
        assert!((mean - a).abs() < 5.0 * se_mean, "t = {}: mean {mean} vs {a} (SE {se_mean})", r[0]);
        assert!((std * std - var).abs() < 5.0 * se_var, "t = {}: var {} vs {var} (SE {se_var})", r[0], std * std);
    }
    // The stationary variance of EM at h = 0.01 is 0.2525253, not the exact 0.25.
    let last = rows.last().unwrap();
    assert!((last[2] * last[2] - 0.2525253).abs() < 5.0 * 0.2525253 * (2.0 / n as f64).sqrt());
}

/// ∫ exp(−E/T) over [lo, hi] by Simpson's rule, and the CDF on a grid.
fn gibbs_cdf(e: impl Fn(f64) -> f64, t: f64, lo: f64, hi: f64, m: usize) -> impl Fn(f64) -> f64 {
    let h = (hi - lo) / m as f64;
    let w: Vec<f64> = (0..=m).map(|i| (-e(lo + i as f64 * h) / t).exp()).collect();
    let mut cdf = vec![0.0; m + 1];
    for i in 1..=m {
        cdf[i] = cdf[i - 1] + 0.5 * h * (w[i - 1] + w[i]);
    }
    let z = cdf[m];
    move |x: f64| {
        if x <= lo {
            return 0.0;
        }
        if x >= hi {
            return 1.0;
        }
        let f = (x - lo) / h;
        let i = f.floor() as usize;
        let a = cdf[i] + (f - i as f64) * (cdf[(i + 1).min(m)] - cdf[i]);
        a / z
    }
}

#[test]
fn double_well_particles_follow_the_gibbs_density() {
    // Kolmogorov–Smirnov test of the final particles against exp(−E/T)/Z.
    // With a fixed seed the test is deterministic; a correct sampler would
    // fail it for 0.1% of seeds (critical value 1.95/√N). The EM bias at
    // h = 1e-3 shifts the CDF by about 1e-3, well inside the bound.
    let src = "param T = 0.5\nstate x\nenergy = (x^2 - 1)^2\ntemperature = T\ninit x ~ normal(0, 0.5)";
    let n = 4000;
    let opts = RunOptions {
        method: Some(Method::Em),
        dt: Some(1e-3),
        t_end: Some(10.0),
        every: Some(10_000),
        particles: Some(n as u64),
        seed: Some(11),
        ..Default::default()
    };
    let (_, s) = ensemble(src, opts);
    let mut xs: Vec<f64> = s.finals.iter().map(|f| f[0]).collect();
    assert_eq!(xs.len(), n);
    xs.sort_by(f64::total_cmp);
    let cdf = gibbs_cdf(|x| (x * x - 1.0).powi(2), 0.5, -3.0, 3.0, 60_000);
    let d = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n as f64).abs().max(((i + 1) as f64 / n as f64 - f).abs())
        })
        .fold(0.0, f64::max);
    let critical = 1.95 / (n as f64).sqrt();
    assert!(d < critical, "KS statistic {d} ≥ {critical}");
    // And the test has power: the particles are not the standard normal they started near.
    let normal = |x: f64| 0.5 * (1.0 + erf(x / (0.5 * 2f64.sqrt())));
    let d0 = xs.iter().enumerate().map(|(i, &x)| (normal(x) - i as f64 / n as f64).abs()).fold(0.0, f64::max);
    assert!(d0 > 3.0 * critical, "the initial law would also pass: {d0}");
}

/// The error function (Abramowitz–Stegun 7.1.26, absolute error < 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.3275911 * x.abs());
    let y = 1.0
        - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592)
            * t
            * (-x * x).exp();
    y.copysign(x)
}

#[test]
fn output_does_not_depend_on_the_thread_count() {
    let src = "param T = 0.5\nstate x, y\nenergy = (x^2 - 1)^2 + y^2\ntemperature = T\n\
               init x ~ uniform(-1, 1), y ~ normal(0, 1)";
    let opts = RunOptions {
        method: Some(Method::Em),
        dt: Some(1e-2),
        t_end: Some(2.0),
        every: Some(20),
        particles: Some(1500),
        seed: Some(3),
        ..Default::default()
    };
    let with = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| ensemble(src, opts.clone()))
    };
    let (a, sa) = with(1);
    let (b, sb) = with(2);
    assert_eq!(a, b, "rows differ between 1 and 2 threads");
    assert_eq!(sa.finals, sb.finals);
    // Another seed gives another sample.
    let (c, _) = ensemble(src, RunOptions { seed: Some(4), ..opts.clone() });
    assert_ne!(a, c);
}

#[test]
fn an_ensemble_of_double_pendulums_spreads() {
    let src = "param g = 9.81\ncoord th1, th2\n\
               let x1 = sin(th1)\nlet y1 = -cos(th1)\nlet x2 = x1 + sin(th2)\nlet y2 = y1 - cos(th2)\n\
               lagrangian = 1/2*(x1'^2 + y1'^2) + 1/2*(x2'^2 + y2'^2) - g*(y1 + y2)\n\
               init th1 ~ normal(2, 1e-3), th2 = 2";
    let opts = RunOptions {
        method: Some(Method::Rk4),
        dt: Some(1e-3),
        t_end: Some(10.0),
        every: Some(1000),
        particles: Some(64),
        ..Default::default()
    };
    let (rows, s) = ensemble(src, opts);
    let std0 = rows[0][2];
    let std_end = rows.last().unwrap()[2];
    assert!(std0 > 5e-4 && std0 < 2e-3, "initial spread {std0}");
    assert!(std_end > 30.0 * std0, "chaos should spread the ensemble: {std0} → {std_end}");
    // Every particle keeps its own energy (the model is conservative), so the
    // energies' mean and spread stay those of the initial conditions.
    let (e0, e1) = (&rows[0][9..11], &rows.last().unwrap()[9..11]);
    assert!((e0[0] - e1[0]).abs() < 1e-6 && (e0[1] - e1[1]).abs() < 1e-6, "energy {e0:?} → {e1:?}");
    assert_eq!(s.finals.len(), 64);
}

/// The `q`-quantile of `v` by linear interpolation between order statistics.
fn quantile_of(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let at = q * (v.len() - 1) as f64;
    let (i, f) = (at.floor() as usize, at.fract());
    v[i] + f * (v[(i + 1).min(v.len() - 1)] - v[i])
}

#[test]
fn quantile_bands_are_the_quantiles_of_the_first_particles() {
    // The double well's particles split into two wells: mean ± std of x
    // reaches into the barrier and mean − std of E below 0, where no particle
    // is; the quantiles are of the particles themselves. At the last row they
    // are those of the final states, which the summary also holds.
    let src = "param T = 0.5\nstate x\nenergy = (x^2 - 1)^2\ntemperature = T\ninit x ~ normal(0, 0.5)";
    // The gradient flow's ensemble (rk4, T = 0) samples one particle's rows at a time.
    let cases = [(Method::Em, 600usize, 600usize), (Method::Em, 3000, 1024), (Method::Rk4, 700, 700)];
    for (method, particles, used) in cases {
        let src = if method == Method::Em { src.to_string() } else { src.replace("T = 0.5", "T = 0") };
        let src = src.as_str();
        let opts = RunOptions {
            method: Some(method),
            dt: Some(1e-3),
            t_end: Some(1.0),
            every: Some(100),
            particles: Some(particles as u64),
            seed: Some(3),
            bands: true,
            ..Default::default()
        };
        let (rows, s) = ensemble(src, opts);
        let b = s.bands.as_ref().expect("bands were asked for");
        assert_eq!(b.particles, used);
        assert_eq!(b.rows.len(), rows.len());
        let first: Vec<f64> = s.finals[..used].iter().map(|p| p[0]).collect();
        let (lo, hi) = b.rows.last().unwrap()[0];
        assert_eq!(lo, quantile_of(first.clone(), 0.1));
        assert_eq!(hi, quantile_of(first.clone(), 0.9));
        // The energy band stays at E ≥ 0, at every output time.
        for r in &b.rows {
            assert!(r[1].0 >= 0.0 && r[1].1 >= r[1].0, "{r:?}");
        }
        let energy: Vec<f64> = first.iter().map(|x| (x * x - 1.0) * (x * x - 1.0)).collect();
        assert_eq!(b.rows.last().unwrap()[1].0, quantile_of(energy, 0.1));
    }
    // Without asking, none are kept.
    let opts = RunOptions { particles: Some(100), t_end: Some(0.1), ..Default::default() };
    assert!(ensemble(src, opts).1.bands.is_none());
}
