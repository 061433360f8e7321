//! `lagc solve` end to end: the pendulum's two paths between the same
//! endpoints, the columns `run` writes, `--to` and `--guess` errors (exit 2),
//! conjugate endpoints and Newton's failure (exit 3, no output file).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lagc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lagc")).args(args).output().expect("run lagc")
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.lag")).to_str().unwrap().to_string()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lagc-solve-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d.join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn model(name: &str, src: &str) -> String {
    let p = scratch(&format!("{name}.lag"));
    std::fs::write(&p, src).unwrap();
    p.to_str().unwrap().to_string()
}

/// The header and rows of a CSV file.
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let s = std::fs::read_to_string(path).unwrap();
    let mut lines = s.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    (header, lines.map(|l| l.split(',').map(|x| x.parse().unwrap()).collect()).collect())
}

/// The action the summary line reports.
fn action(stderr: &str) -> f64 {
    let rest = stderr.split("stationary action ").nth(1).unwrap_or_else(|| panic!("{stderr}"));
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn the_pendulum_has_two_paths_between_the_same_endpoints() {
    let (narrow, kick, wide) = (scratch("narrow.csv"), scratch("kick.csv"), scratch("wide.csv"));
    let e = example("pendulum_bvp");
    let out = lagc(&["solve", &e, "--to", "th=1", "--out", narrow.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let s_narrow = action(&err);
    let out = lagc(&["run", &e, "--set", "w0=1.9", "--out", kick.to_str().unwrap(), "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = lagc(&["solve", &e, "--to", "th=1", "--guess", kick.to_str().unwrap(), "--out", wide.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let s_wide = action(&err);
    assert!((s_narrow - s_wide).abs() > 1.0, "{s_narrow} {s_wide}");
    let amplitude = |rows: &[Vec<f64>]| rows.iter().fold(0.0_f64, |m, r| m.max(r[1].abs()));
    for (path, lo, hi) in [(&narrow, 1.3, 1.6), (&wide, 2.2, 2.5)] {
        let (header, rows) = read_csv(path);
        assert_eq!(header, ["t", "th", "th'", "energy"]);
        assert_eq!(rows.len(), 1001);
        assert_eq!((rows[0][0], rows[0][1]), (0.0, 0.0));
        assert_eq!((rows[1000][0], rows[1000][1]), (10.0, 1.0));
        let a = amplitude(&rows);
        assert!(a > lo && a < hi, "{path:?}: amplitude {a}");
        // A conservative model's H is constant along the solution to O(h²).
        let h0 = rows[0][3];
        let drift = rows.iter().fold(0.0_f64, |m, r| m.max((r[3] - h0).abs()));
        assert!(drift < 1e-4 * h0.abs().max(1.0), "{path:?}: H drifts by {drift:e}");
    }
}

#[test]
fn the_double_pendulum_path_ends_where_asked_and_satisfies_the_equations() {
    let out_path = scratch("dp.csv");
    let out = lagc(&[
        "solve",
        &example("double_pendulum"),
        "--to",
        "th1 = 0.5, th2 = -pi/6",
        "--t-end",
        "0.5",
        "--steps",
        "400",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (header, rows) = read_csv(&out_path);
    assert_eq!(&header[..6], ["t", "th1", "th2", "th1'", "th2'", "energy"]);
    let last = &rows[400];
    assert_eq!((last[1], last[2]), (0.5, -std::f64::consts::PI / 6.0));
    // Shooting from the solution's start with its velocity lands on the end.
    let start = format!("{},{}", rows[0][3], rows[0][4]);
    let source = std::fs::read_to_string(example("double_pendulum")).unwrap();
    let (init, simulate) = ("init th1 = 1, th2 = 0.5", "simulate t_end = 20, dt = 1e-3, method = variational");
    assert!(source.contains(init) && source.contains(simulate), "the example's init or simulate line changed");
    let shoot = model(
        "dp_shoot",
        &source
            .replace(init, &format!("{init}, th1' = {}, th2' = {}", rows[0][3], rows[0][4]))
            .replace(simulate, "simulate t_end = 0.5, dt = 1e-4, method = rk4"),
    );
    let out = lagc(&["run", &shoot, "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{start}: {}", text(&out.stderr));
    let s = text(&out.stdout);
    let end: Vec<f64> = s.lines().last().unwrap().split(',').map(|x| x.parse().unwrap()).collect();
    // The discrete path is second order in h = 0.5/400: about 1e-6 from the exact one.
    assert!((end[1] - 0.5).abs() < 1e-4 && (end[2] + std::f64::consts::PI / 6.0).abs() < 1e-4, "{start}: {end:?}");
}

#[test]
fn to_names_every_coordinate_once() {
    let e = example("double_pendulum");
    for (to, says) in [
        ("th1=1, th3=0", "--to th3=0: the model has no coordinate `th3`; its coordinates are: th1, th2"),
        ("th1=1", "--to gives no end position for th2; give every coordinate, e.g. --to \"th1=0, th2=0\""),
        ("th1=1, th1=2, th2=0", "--to: `th1` is given twice"),
        ("th1=1, th2", "--to th2: expected NAME=VALUE"),
        ("th1=1, th2=th1", "the value may use numbers, params and `pi`, not the state or t"),
        ("th1=1, th2=1/0", "--to th2=1/0: `1/0` is not a number or an expression: division by zero"),
        ("th1=1, th2=1e400", "--to th2=1e400: the value must be a finite number"),
    ] {
        let out = lagc(&["solve", &e, "--to", to, "--steps", "10"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{to}: {err}");
        assert!(err.contains(says), "{to}: {err}");
        assert!(out.stdout.is_empty(), "{to}");
    }
}

const OSCILLATOR: &str = "coord x\nlagrangian = 1/2*x'^2 - 1/2*x^2\ninit x = 1\n";

#[test]
fn conjugate_endpoints_fail_with_status_3_and_leave_no_file() {
    let m = model("oscillator", OSCILLATOR);
    let out_path = scratch("conjugate.csv");
    for t_end in ["3.141592653589793", "6.283185307179586"] {
        let out = lagc(&["solve", &m, "--to", "x=1", "--t-end", t_end, "--out", out_path.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(err.contains("conjugate points"), "{err}");
        assert!(err.contains("help: the endpoints do not determine one path here"), "{err}");
        assert!(!out_path.exists());
    }
    // A quarter period is fine: x = cos t + ½ sin t reaches 0.5 at T = π/2.
    let out =
        lagc(&["solve", &m, "--to", "x=0.5", "--t-end", "1.5707963267948966", "--out", out_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (_, rows) = read_csv(&out_path);
    let worst = rows.iter().fold(0.0_f64, |m, r| m.max((r[1] - (r[0].cos() + 0.5 * r[0].sin())).abs()));
    assert!(worst < 1e-6, "{worst:e}");
}

#[test]
fn newton_that_does_not_converge_says_so_and_what_to_try() {
    // From the straight line to th = 0.5 at t = 10 Newton stalls away from every solution.
    let out = lagc(&["solve", &example("pendulum_bvp"), "--to", "th=0.5"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("Newton's method did not converge"), "{err}");
    assert!(err.contains("of its scale"), "{err}");
    assert!(err.contains("give more --steps, or a --guess"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_guesses_and_models_are_usage_errors() {
    let m = model("oscillator_guess", OSCILLATOR);
    let short = scratch("short.csv");
    std::fs::write(&short, "t,x\n0,1\n0.5,0.5\n").unwrap();
    let no_x = scratch("no_x.csv");
    std::fs::write(&no_x, "t,y\n0,1\n2,0.5\n").unwrap();
    for (guess, says) in [
        (&short, "its times run from 0 to 0.5, which does not span the solve's [0, 1]"),
        (&no_x, "the file has no column `x`"),
    ] {
        let out = lagc(&["solve", &m, "--to", "x=0", "--t-end", "1", "--guess", guess.to_str().unwrap()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(says), "{err}");
    }
    let energy = model("bowl", "state x\nenergy = x^2\n");
    let out = lagc(&["solve", &energy, "--to", "x=1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("gives the geodesic of its `metric`, and `bowl` has none"),
        "{}",
        text(&out.stderr)
    );
    let out = lagc(&["solve", &m, "--to", "x=1", "--steps", "0"]);
    assert_eq!(out.status.code(), Some(2));
    // Refused up front with the estimate, not attempted.
    let out = lagc(&["solve", &m, "--to", "x=1", "--steps", "10000000000"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the Newton matrix of 9999999999 unknowns") && err.contains("give fewer --steps"), "{err}");
    let out = lagc(&["solve", &m, "--to", "x=1", "--steps", "18446744073709551615"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the steps are too small to tell the times apart"), "{err}");
}

#[test]
fn the_help_examples_run() {
    let out = lagc(&["solve", "--help"]);
    let help = text(&out.stdout);
    let examples = help.split("Examples:").nth(1).unwrap();
    let dir = scratch("help");
    std::fs::create_dir_all(&dir).unwrap();
    let mut ran = 0;
    for ex in examples.lines().skip(1).map(str::trim).take_while(|l| !l.is_empty()) {
        let mut words: Vec<String> = ex.split_whitespace().skip(1).map(String::from).collect();
        for w in 1..words.len() {
            if ["--out", "--plot"].contains(&words[w - 1].as_str()) {
                words[w] = dir.join(&words[w]).to_str().unwrap().to_string();
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(env!("CARGO_BIN_EXE_lagc")).args(&words).current_dir(root).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{ex}: {}", text(&out.stderr));
        ran += 1;
    }
    assert!(ran >= 2, "{help}");
}

/// `lagc solve` of the Fisher–Rao geodesic from the example's `init` to `(μ, σ) = (1, 0.5)` over `t ∈ [0, 1]`.
fn fisher_rao_geodesic(steps: &str, out: &std::path::Path) -> Output {
    lagc(&[
        "solve",
        &example("fisher_rao_geodesic"),
        "--to",
        "mu=1, sigma=0.5",
        "--t-end",
        "1",
        "--steps",
        steps,
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn the_fisher_rao_geodesic_is_the_half_plane_geodesic() {
    // In x = mu/√2 the metric is 2(dx² + dσ²)/σ²: geodesics are x = R tanh s, σ = R sech s
    // with s linear in t; here R² = 3/4 and s runs from −a to a, tanh a = (1/√2)/R.
    let r = 0.75_f64.sqrt();
    let a = (std::f64::consts::FRAC_1_SQRT_2 / r).atanh();
    let mut errors = vec![];
    for steps in ["100", "200"] {
        let out_path = scratch(&format!("fr{steps}.csv"));
        let out = fisher_rao_geodesic(steps, &out_path);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        // The action is the squared length over 2T: (2√2 a)²/2 = 4a².
        let s = action(&err);
        assert!((s - 4.0 * a * a).abs() < 1e-3, "{s} against {}", 4.0 * a * a);
        let (header, rows) = read_csv(&out_path);
        assert_eq!(&header[..3], ["t", "mu", "sigma"]);
        let worst = rows.iter().fold(0.0_f64, |m, row| {
            let s = -a + 2.0 * a * row[0];
            let (mu, sigma) = (std::f64::consts::SQRT_2 * r * s.tanh(), r / s.cosh());
            m.max((row[1] - mu).abs()).max((row[2] - sigma).abs())
        });
        errors.push(worst);
    }
    eprintln!("Fisher–Rao geodesic errors at N = 100, 200: {errors:?}");
    assert!(errors[1] < 1e-4, "{errors:?}");
    assert!((errors[0] / errors[1] - 4.0).abs() < 0.3, "second order: {errors:?}");
}

/// The discrete action of the geodesic at the written nodes, its gradient by
/// hand for the Fisher metric `g = diag(1/σ², 2/σ²)`: with `L = (v_μ² + 2v_σ²)/2σ²` at
/// each segment's midpoint, `∂S/∂q_k = L_v(k−1) − L_v(k) + (h/2)(L_q(k−1) + L_q(k))`. The
/// metric's derivatives are derived symbolically, so the solution makes it zero to
/// rounding: 1e-14 of `|L_v|` measured at N = 100, where differences of the compiled
/// metric (δ = 1e-3) left 5e-12.
#[test]
fn the_geodesic_s_discrete_action_is_stationary_to_rounding() {
    let steps = 100;
    let out_path = scratch("fr_stationary.csv");
    let out = fisher_rao_geodesic(&steps.to_string(), &out_path);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (_, rows) = read_csv(&out_path);
    let h = 1.0 / steps as f64;
    let q: Vec<[f64; 2]> = rows.iter().map(|r| [r[1], r[2]]).collect();
    // L_v and L_q of segment k.
    let segment = |k: usize| {
        let (a, b) = (q[k], q[k + 1]);
        let s = (a[1] + b[1]) / 2.0;
        let v = [(b[0] - a[0]) / h, (b[1] - a[1]) / h];
        ([v[0] / (s * s), 2.0 * v[1] / (s * s)], [0.0, -(v[0] * v[0] + 2.0 * v[1] * v[1]) / s.powi(3)])
    };
    let (mut worst, mut scale) = (0.0_f64, 0.0_f64);
    for k in 1..steps {
        let ((lv0, lq0), (lv1, lq1)) = (segment(k - 1), segment(k));
        for i in 0..2 {
            worst = worst.max((lv0[i] - lv1[i] + 0.5 * h * (lq0[i] + lq1[i])).abs());
            scale = scale.max(lv0[i].abs()).max(lv1[i].abs());
        }
    }
    eprintln!("the geodesic's discrete action gradient: {:e} of |L_v|", worst / scale);
    assert!(worst < 1e-13 * scale, "{worst:e} against |L_v| {scale}");
}
