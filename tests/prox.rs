//! The minimizing movement (`--method prox`) as a solver of
//! `min E(θ) + |θ − θ₀|²_g/(2h)` (docs/numerics.md §Minimizing movement): the cases where a
//! line-search Newton method failed, run end to end; an energy unbounded below, which must
//! still fail with the time, the state and the cause; and a few hundred random smooth
//! energies bounded below, whose every step must satisfy the dissipation inequality and the
//! optimality condition.

use lagc::integrate::{linalg, minimizing_movement, GradientSystem, Grid};
use std::process::{Command, Output};

fn lagc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lagc")).args(args).output().expect("run lagc")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A model file in a scratch directory.
fn model(name: &str, src: &str) -> String {
    let d = std::env::temp_dir().join(format!("lagc-prox-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    let p = d.join(format!("{name}.lag"));
    std::fs::write(&p, src).unwrap();
    p.to_str().unwrap().to_string()
}

/// Runs `prox` at `dt` to `t_end` and returns the CSV rows `t, θ…, energy, grad_norm`,
/// asserting exit status 0.
fn prox_rows(file: &str, dt: f64, t_end: f64) -> Vec<Vec<f64>> {
    let (dt, t_end) = (dt.to_string(), t_end.to_string());
    let out = lagc(&["run", file, "--method", "prox", "--dt", &dt, "--t-end", &t_end, "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{file} at dt = {dt}: {}", text(&out.stderr));
    let s = text(&out.stdout);
    s.lines().skip(1).map(|l| l.split(',').map(|x| x.parse().expect("a number")).collect()).collect()
}

/// Every step of a Euclidean run obeys `E₁ + |θ₁ − θ₀|²/(2h) ≤ E₀ + 1e-12·max(1, |E₀|)`.
fn assert_dissipates(rows: &[Vec<f64>], n: usize, h: f64) {
    for w in rows.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let step2: f64 = (1..=n).map(|i| (b[i] - a[i]).powi(2)).sum();
        let h = h.min(b[0] - a[0]);
        let (e0, e1) = (a[n + 1], b[n + 1]);
        assert!(e1 + step2 / (2.0 * h) <= e0 + 1e-12 * e0.abs().max(1.0), "t = {}: {e1} + {step2}/(2h) > {e0}", b[0]);
    }
}

const HIMMELBLAU: &str = "state x, y\nenergy = (x^2 + y - 11)^2 + (x + y^2 - 7)^2\n";

/// Himmelblau's four minima, where `E = 0`.
const HIMMELBLAU_MINIMA: [(f64, f64); 4] = [
    (3.0, 2.0),
    (-2.805118086952745, 3.131312518250573),
    (-3.779310253377747, -3.28318599128617),
    (3.584428340330492, -1.848126526964404),
];

/// Whether the last row sits on a Himmelblau minimum.
fn at_a_himmelblau_minimum(last: &[f64]) -> bool {
    HIMMELBLAU_MINIMA.iter().any(|(x, y)| (last[1] - x).abs() < 1e-7 && (last[2] - y).abs() < 1e-7)
}

#[test]
fn prox_stops_at_a_converged_point_instead_of_forcing_a_newton_step() {
    // At t = 47 the state sits on the minimum x = y = √0.3 with |∇E| at rounding level.
    let file = model("xy", "state x, y\nenergy = (x*y - 0.3)^2 + (x - y)^2\ninit x = -1, y = 4\n");
    let rows = prox_rows(&file, 1.0, 60.0);
    assert_eq!(rows.len(), 61);
    assert_dissipates(&rows, 2, 1.0);
    let last = rows.last().unwrap();
    let root = 0.3f64.sqrt();
    assert!((last[1] - root).abs() < 1e-9 && (last[2] - root).abs() < 1e-9, "{last:?}");
}

#[test]
fn prox_runs_himmelblau_to_a_minimum_at_every_step_size() {
    let file = model("himmelblau", &format!("{HIMMELBLAU}init x = -1, y = 4\n"));
    for h in [0.3, 1.0, 10.0] {
        let rows = prox_rows(&file, h, 100.0 * h);
        assert_dissipates(&rows, 2, h);
        let last = rows.last().unwrap();
        assert!(at_a_himmelblau_minimum(last), "h = {h}: {last:?}");
    }
}

#[test]
fn prox_leaves_himmelblau_from_its_local_maximum() {
    let file = model("himmelblau_max", &format!("{HIMMELBLAU}init x = -0.270845, y = -0.923039\n"));
    let rows = prox_rows(&file, 1.0, 100.0);
    assert_dissipates(&rows, 2, 1.0);
    let last = rows.last().unwrap();
    assert!(at_a_himmelblau_minimum(last), "{last:?}");
    // The energy fell from the maximum's 181.6 to the minimum's 0.
    assert!(rows[0][3] > 181.0 && last[3] < 1e-12, "{:?} → {last:?}", rows[0]);
}

#[test]
fn prox_takes_the_first_step_from_a_concave_point_at_any_step_size() {
    // E'' = 3x² − 2 < 0 at x = 0: for h > 1/2 the proximal objective is not convex there.
    // The minimum is the most negative root of E' = x³ − 2x + 1/2, found here by bisection.
    let file = model("tilted_well", "state x\nenergy = x^4/4 - x^2 + x/2\ninit x = 0\n");
    let (mut lo, mut hi) = (-2.0f64, -1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid * mid * mid - 2.0 * mid + 0.5 < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    for h in [0.7, 0.8, 0.9, 1.0, 2.0, 3.0, 5.0, 10.0] {
        let rows = prox_rows(&file, h, 200.0 * h);
        assert_dissipates(&rows, 1, h);
        let last = rows.last().unwrap();
        assert!((last[1] - lo).abs() < 1e-9, "h = {h}: {} against {lo}", last[1]);
    }
}

#[test]
fn prox_fails_with_time_state_and_cause_on_an_energy_unbounded_below() {
    // x' = 4x³ from x = 1 blows up at t = 1/8; the proximal objective −x⁴ + (x − x_k)²/(2h)
    // loses its local minimum once 12x_k²h is about 1.
    for src in ["state x\nenergy = -x^4\ninit x = 1\n", "state x\nenergy = log(x)\ninit x = 1\n"] {
        let file = model("unbounded", src);
        let out = lagc(&["run", &file, "--method", "prox", "--dt", "0.01", "--t-end", "10"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{src}: {err}");
        assert!(err.contains("proximal step failed") && err.contains("at t = ") && err.contains("x = "), "{err}");
        assert!(err.contains("bounded below"), "{err}");
    }
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform on `[a, b)`.
    fn uniform(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, k: usize) -> usize {
        (self.next() % k as u64) as usize
    }
}

/// The metric of a random energy.
enum Metric {
    Euclidean,
    /// A constant symmetric positive definite matrix.
    Constant(Vec<f64>),
    /// `g = diag(m_i (1 + θ_i²))`.
    Diagonal(Vec<f64>),
}

/// `E(θ) = Σ a_i θ_i⁴ + ½θᵀQθ + bᵀθ + Σ c cos(wᵀθ + φ) + Σ r(θ)²` with `a_i > 0` (so `E` is
/// bounded below), `Q` symmetric and indefinite, and `r = c₀ + vᵀθ + θᵀAθ`.
struct RandomEnergy {
    n: usize,
    quartic: Vec<f64>,
    q: Vec<f64>,
    b: Vec<f64>,
    waves: Vec<(f64, Vec<f64>, f64)>,
    squares: Vec<(f64, Vec<f64>, Vec<f64>)>,
    metric: Metric,
}

impl RandomEnergy {
    fn new(rng: &mut Rng) -> Self {
        let n = 1 + rng.below(5);
        let quartic = (0..n).map(|_| rng.uniform(0.01, 1.0)).collect();
        let mut q = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let v = rng.uniform(-3.0, 3.0);
                q[i * n + j] = v;
                q[j * n + i] = v;
            }
        }
        let b = (0..n).map(|_| rng.uniform(-2.0, 2.0)).collect();
        let waves = (0..rng.below(4))
            .map(|_| (rng.uniform(-2.0, 2.0), (0..n).map(|_| rng.uniform(-3.0, 3.0)).collect(), rng.uniform(0.0, 6.3)))
            .collect();
        let squares = (0..rng.below(3))
            .map(|_| {
                let mut a = vec![0.0; n * n];
                for i in 0..n {
                    for j in 0..=i {
                        let v = rng.uniform(-1.0, 1.0);
                        a[i * n + j] = v;
                        a[j * n + i] = v;
                    }
                }
                (rng.uniform(-3.0, 3.0), (0..n).map(|_| rng.uniform(-2.0, 2.0)).collect(), a)
            })
            .collect();
        let metric = match rng.below(3) {
            0 => Metric::Euclidean,
            1 => {
                // B Bᵀ + I/10.
                let m: Vec<f64> = (0..n * n).map(|_| rng.uniform(-1.5, 1.5)).collect();
                let mut g = vec![0.0; n * n];
                for i in 0..n {
                    for j in 0..n {
                        g[i * n + j] = (0..n).map(|k| m[i * n + k] * m[j * n + k]).sum::<f64>();
                    }
                    g[i * n + i] += 0.1;
                }
                Metric::Constant(g)
            }
            _ => Metric::Diagonal((0..n).map(|_| rng.uniform(0.1, 10.0)).collect()),
        };
        RandomEnergy { n, quartic, q, b, waves, squares, metric }
    }

    /// `v + 2Aθ`, the gradient of `r = c₀ + vᵀθ + θᵀAθ`, and `r`.
    fn square_parts(&self, k: usize, th: &[f64]) -> (f64, Vec<f64>) {
        let (c0, v, a) = &self.squares[k];
        let n = self.n;
        let at: Vec<f64> = (0..n).map(|i| (0..n).map(|j| a[i * n + j] * th[j]).sum()).collect();
        let r = c0 + (0..n).map(|i| v[i] * th[i] + th[i] * at[i]).sum::<f64>();
        (r, (0..n).map(|i| v[i] + 2.0 * at[i]).collect())
    }
}

impl GradientSystem for RandomEnergy {
    fn dim(&self) -> usize {
        self.n
    }
    fn energy(&mut self, _t: f64, th: &[f64]) -> f64 {
        let n = self.n;
        let mut e = 0.0;
        for i in 0..n {
            e += self.quartic[i] * th[i].powi(4) + self.b[i] * th[i];
            e += 0.5 * th[i] * (0..n).map(|j| self.q[i * n + j] * th[j]).sum::<f64>();
        }
        for (c, w, phase) in &self.waves {
            e += c * ((0..n).map(|i| w[i] * th[i]).sum::<f64>() + phase).cos();
        }
        for k in 0..self.squares.len() {
            e += self.square_parts(k, th).0.powi(2);
        }
        e
    }
    fn gradient(&mut self, _t: f64, th: &[f64], g: &mut [f64]) {
        let n = self.n;
        for i in 0..n {
            g[i] = 4.0 * self.quartic[i] * th[i].powi(3)
                + self.b[i]
                + (0..n).map(|j| self.q[i * n + j] * th[j]).sum::<f64>();
        }
        for (c, w, phase) in &self.waves {
            let s = ((0..n).map(|i| w[i] * th[i]).sum::<f64>() + phase).sin();
            (0..n).for_each(|i| g[i] -= c * s * w[i]);
        }
        for k in 0..self.squares.len() {
            let (r, dr) = self.square_parts(k, th);
            (0..n).for_each(|i| g[i] += 2.0 * r * dr[i]);
        }
    }
    fn hessian(&mut self, _t: f64, th: &[f64], hs: &mut [f64]) {
        let n = self.n;
        hs.copy_from_slice(&self.q);
        for i in 0..n {
            hs[i * n + i] += 12.0 * self.quartic[i] * th[i] * th[i];
        }
        for (c, w, phase) in &self.waves {
            let cs = ((0..n).map(|i| w[i] * th[i]).sum::<f64>() + phase).cos();
            (0..n * n).for_each(|k| hs[k] -= c * cs * w[k / n] * w[k % n]);
        }
        for k in 0..self.squares.len() {
            let (r, dr) = self.square_parts(k, th);
            let a = &self.squares[k].2;
            (0..n * n).for_each(|m| hs[m] += 2.0 * (dr[m / n] * dr[m % n] + 2.0 * r * a[m]));
        }
    }
    fn metric(&mut self, _t: f64, th: &[f64], g: &mut [f64]) -> bool {
        let n = self.n;
        match &self.metric {
            Metric::Euclidean => false,
            Metric::Constant(m) => {
                g.copy_from_slice(m);
                true
            }
            Metric::Diagonal(m) => {
                g.fill(0.0);
                (0..n).for_each(|i| g[i * n + i] = m[i] * (1.0 + th[i] * th[i]));
                true
            }
        }
    }
}

/// The gradient and Hessian of the random energies against central differences, so that
/// the residuals below are measured with the right derivatives.
#[test]
fn random_energies_have_the_derivatives_they_claim() {
    let mut rng = Rng(7);
    for _ in 0..50 {
        let mut e = RandomEnergy::new(&mut rng);
        let n = e.n;
        let th: Vec<f64> = (0..n).map(|_| rng.uniform(-2.0, 2.0)).collect();
        let (mut g, mut hs) = (vec![0.0; n], vec![0.0; n * n]);
        e.gradient(0.0, &th, &mut g);
        e.hessian(0.0, &th, &mut hs);
        let step = 1e-5;
        for j in 0..n {
            let (mut p, mut m) = (th.clone(), th.clone());
            p[j] += step;
            m[j] -= step;
            let fd = (e.energy(0.0, &p) - e.energy(0.0, &m)) / (2.0 * step);
            assert!((fd - g[j]).abs() < 1e-5 * (1.0 + g[j].abs()), "∂E/∂θ{j}: {fd} against {}", g[j]);
            let (mut gp, mut gm) = (vec![0.0; n], vec![0.0; n]);
            e.gradient(0.0, &p, &mut gp);
            e.gradient(0.0, &m, &mut gm);
            for i in 0..n {
                let fd = (gp[i] - gm[i]) / (2.0 * step);
                assert!(
                    (fd - hs[i * n + j]).abs() < 1e-5 * (1.0 + fd.abs()),
                    "H{i}{j}: {fd} against {}",
                    hs[i * n + j]
                );
            }
        }
    }
}

/// Every step of the minimizing movement on 300 random energies in 1 to 5 variables, a third
/// with a constant metric and a third with a state-dependent one, at steps `h = 10^U(−3, 3)`
/// from starts uniform in `[−3, 3]ⁿ`, four steps each:
/// - the dissipation inequality `E(θ₁) + |θ₁ − θ₀|²_g/(2h) ≤ E(θ₀) + 1e-12·max(1, |E(θ₀)|)`,
///   with `g = g(θ₀)`;
/// - stationarity: `‖∇E(θ₁) + g(θ₁ − θ₀)/h‖ ≤ 1e-8·(‖∇E(θ₁)‖ + ‖g(θ₁ − θ₀)/h‖) +
///   1e-12·‖|J|·|θ₁|‖`, `J = ∇²E(θ₁) + g/h` (the second term is what rounding θ₁ alone
///   changes the residual by, 4500 ulps);
/// - a minimum, not a saddle: the smallest eigenvalue of `D⁻¹JD⁻¹`, `D = diag(√g_ii)`, is at
///   least `−1e-6` times its largest absolute eigenvalue.
#[test]
fn prox_satisfies_dissipation_and_optimality_on_random_energies() {
    let (mut worst_rise, mut worst_residual, mut worst_curvature) = (f64::NEG_INFINITY, 0.0f64, 0.0f64);
    let mut rng = Rng(2024);
    for case in 0..300 {
        let mut e = RandomEnergy::new(&mut rng);
        let n = e.n;
        let h = 10f64.powf(rng.uniform(-3.0, 3.0));
        let theta0: Vec<f64> = (0..n).map(|_| rng.uniform(-3.0, 3.0)).collect();
        let grid = Grid { t0: 0.0, t_end: 4.0 * h, dt: h, every: 1 };
        let mut rows: Vec<(f64, Vec<f64>)> = Vec::new();
        if let Err(f) = minimizing_movement(&mut e, &grid, &theta0, &mut rows) {
            panic!("case {case} (n = {n}, h = {h:e}, θ0 = {theta0:?}): {f}");
        }
        assert_eq!(rows.len(), 5);
        for w in rows.windows(2) {
            let (a, b) = (&w[0].1, &w[1].1);
            let hk = w[1].0 - w[0].0;
            let mut g = vec![0.0; n * n];
            if !e.metric(0.0, a, &mut g) {
                (0..n).for_each(|i| g[i * n + i] = 1.0);
            }
            let d: Vec<f64> = (0..n).map(|i| b[i] - a[i]).collect();
            let mut gd = vec![0.0; n];
            linalg::mat_vec(&g, &d, &mut gd);
            let dist2: f64 = d.iter().zip(&gd).map(|(x, y)| x * y).sum();
            let (e0, e1) = (e.energy(0.0, a), e.energy(0.0, b));
            let rise = (e1 + dist2 / (2.0 * hk) - e0) / e0.abs().max(1.0);
            worst_rise = worst_rise.max(rise);
            assert!(rise <= 1e-12, "case {case}, h = {hk:e}: dissipation violated by {rise:e}");
            let (mut grad, mut jac) = (vec![0.0; n], vec![0.0; n * n]);
            e.gradient(0.0, b, &mut grad);
            e.hessian(0.0, b, &mut jac);
            (0..n * n).for_each(|k| jac[k] += g[k] / hk);
            let residual: Vec<f64> = (0..n).map(|i| grad[i] + gd[i] / hk).collect();
            let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let rounding: Vec<f64> = (0..n).map(|i| (0..n).map(|j| jac[i * n + j].abs() * b[j].abs()).sum()).collect();
            let terms = norm(&grad) + norm(&gd) / hk;
            let allowed = 1e-8 * terms + 1e-12 * norm(&rounding);
            worst_residual = worst_residual.max(norm(&residual) / allowed);
            assert!(
                norm(&residual) <= 1e-8 * terms + 1e-12 * norm(&rounding),
                "case {case}, n = {n}, h = {hk:e}: ‖G‖ = {:e}, terms {terms:e}, rounding {:e}",
                norm(&residual),
                norm(&rounding)
            );
            let scaled: Vec<f64> =
                (0..n * n).map(|k| jac[k] / (g[(k / n) * (n + 1)] * g[(k % n) * (n + 1)]).sqrt()).collect();
            let (values, _) = linalg::symmetric_eigen(&scaled, n);
            let largest = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let smallest = values.iter().fold(f64::INFINITY, |m, &v| m.min(v));
            worst_curvature = worst_curvature.max(-smallest / largest);
            assert!(smallest >= -1e-6 * largest, "case {case}, h = {hk:e}: λ_min = {smallest:e}, λ_max = {largest:e}");
        }
    }
    eprintln!(
        "worst relative rise {worst_rise:e}, worst residual {worst_residual:e} of its tolerance, worst negative curvature {worst_curvature:e}"
    );
}
