//! Data: `data` statements, sums over the rows kept as loops, `--data`, and
//! the errors of bad files. Numbers are checked against closed forms computed
//! here from the same files, or against the same sums written out by hand.

use lagc::plan::Kernel;
use lagc::{BackendKind, Kernels, Method, RunConfig, RunOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lagc-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn lagc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lagc")).args(args).output().expect("lagc runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn read_columns(path: &Path) -> (Vec<f64>, Vec<f64>) {
    let text = std::fs::read_to_string(path).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let (a, b) = line.split_once(',').unwrap();
        x.push(a.parse().unwrap());
        y.push(b.parse().unwrap());
    }
    (x, y)
}

/// The last row of a run's CSV output.
fn last_row(csv: &str) -> Vec<f64> {
    csv.lines().last().unwrap().split(',').map(|v| v.parse().unwrap()).collect()
}

#[test]
fn least_squares_descends_to_the_normal_equations() {
    let (x, y) = read_columns(&root().join("examples/data/line.csv"));
    let m = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / m, y.iter().sum::<f64>() / m);
    let sxy: f64 = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let b = sxy / sxx;
    let a = my - b * mx;
    let e = x.iter().zip(&y).map(|(xi, yi)| (a + b * xi - yi).powi(2)).sum::<f64>() / (2.0 * m);
    let (code, out, err) = lagc(&["run", root().join("examples/least_squares.lag").to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let last = last_row(&out);
    assert!((last[1] - a).abs() < 1e-10, "a = {} vs {a}", last[1]);
    assert!((last[2] - b).abs() < 1e-10, "b = {} vs {b}", last[2]);
    assert!((last[3] - e).abs() < 1e-12, "E = {} vs {e}", last[3]);
    // Gradient descent on a convex quadratic: E never rises.
    let es: Vec<f64> = out.lines().skip(1).map(|l| l.split(',').nth(3).unwrap().parse().unwrap()).collect();
    assert!(es.windows(2).all(|w| w[1] <= w[0] * (1.0 + 1e-15)), "E rose");
}

/// The gradient of a data model, native and portable, against central
/// differences of its energy.
#[test]
fn gradients_of_the_learning_examples_match_finite_differences() {
    for name in ["least_squares", "logistic_regression", "two_layer_net"] {
        let path = root().join(format!("examples/{name}.lag"));
        let c = lagc::cli::load::compile_file_for(&path, &[], Some(Method::Prox), &[]).expect("compiles");
        let cfg =
            RunConfig::resolve(&c.model, &RunOptions { method: Some(Method::Prox), ..Default::default() }).unwrap();
        let plan = c.plan(&cfg).unwrap();
        let native = Kernels::build(&c.model, &c.equations, &plan, BackendKind::Native).unwrap();
        let portable = Kernels::build(&c.model, &c.equations, &plan, BackendKind::Portable).unwrap();
        let n = native.n;
        let theta: Vec<f64> = (0..n).map(|i| 0.3 + 0.17 * ((i * 7) % 5) as f64 - 0.1 * i as f64 / n as f64).collect();
        let mut work = lagc::backend::Work::default();
        let (mut g, mut gp) = (vec![0.0; n], vec![0.0; n]);
        native.eval_at(Kernel::Gradient, 0.0, &theta, &mut g, &mut work);
        portable.eval_at(Kernel::Gradient, 0.0, &theta, &mut gp, &mut work);
        assert_eq!(g, gp, "{name}: native and portable compute the same sums in the same order");
        let energy = |th: &[f64], work: &mut lagc::backend::Work| {
            let mut e = [0.0];
            native.eval_at(Kernel::Energy, 0.0, th, &mut e, work);
            e[0]
        };
        for i in 0..n {
            let h = 1e-6;
            let (mut up, mut down) = (theta.clone(), theta.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (energy(&up, &mut work) - energy(&down, &mut work)) / (2.0 * h);
            assert!((fd - g[i]).abs() <= 1e-7 * g[i].abs().max(1.0), "{name}: ∂E/∂θ[{i}] = {} vs {fd}", g[i]);
        }
    }
}

/// A sum kept as a loop gives what the same sum written out term by term gives.
/// A data set of more rows than a family may have members (`MAX_FAMILY`, 100,000), with a
/// `let` family over its rows: the family is never written out, so it has no limit of its
/// own. Gradient descent reaches the normal equations' solution computed here.
#[test]
fn a_let_family_over_more_rows_than_a_family_may_have() {
    let dir = scratch("many-rows");
    let m = 150_000;
    let mut csv = String::from("x,y\n");
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..m {
        let xi = i as f64 / m as f64;
        // Deterministic scatter about the line 2 + 3x.
        let yi = 2.0 + 3.0 * xi + 0.1 * ((i * 7919) % 1000) as f64 / 1000.0 - 0.05;
        csv.push_str(&format!("{xi:?},{yi:?}\n"));
        x.push(xi);
        y.push(yi);
    }
    std::fs::write(dir.join("points.csv"), csv).unwrap();
    let model = dir.join("fit.lag");
    std::fs::write(
        &model,
        "data x[M], y[M] = \"points.csv\"\nstate a, b\nlet r[i in 0..M] = a + b*x[i] - y[i]\n\
         energy = 1/(2*M)*sum(i in 0..M, r[i]^2)\ninit a = 0, b = 0\n\
         simulate method = euler, dt = 1, t_end = 800, every = 800\n",
    )
    .unwrap();
    let (mx, my) = (x.iter().sum::<f64>() / m as f64, y.iter().sum::<f64>() / m as f64);
    let sxy: f64 = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let b = sxy / sxx;
    let a = my - b * mx;
    let (code, out, err) = lagc(&["run", model.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let last = last_row(&out);
    assert!((last[1] - a).abs() < 1e-9, "a = {} vs {a}", last[1]);
    assert!((last[2] - b).abs() < 1e-9, "b = {} vs {b}", last[2]);
}

#[test]
fn a_rolled_sum_equals_the_sum_written_out() {
    let dir = scratch("written-out");
    let xs = [0.5, -1.25, 2.0, 3.5, -0.75];
    let mut csv = String::from("x\n");
    for x in xs {
        csv.push_str(&format!("{x}\n"));
    }
    std::fs::write(dir.join("x.csv"), csv).unwrap();
    let rolled = "data x[M] = \"x.csv\"\nstate a, b\n\
                  energy = sum(i in 0..M, cosh(a*x[i] - b) + x[i]^2*a^3)\ninit a = 0.3, b = -0.2\n";
    let terms: Vec<String> = xs.iter().map(|x| format!("cosh(a*({x}) - b) + ({x})^2*a^3")).collect();
    let written = format!("state a, b\nenergy = {}\ninit a = 0.3, b = -0.2\n", terms.join(" + "));
    let files = lagc::DataFiles { dir: Some(dir.clone()), replace: vec![] };
    let grad = |src: &str| {
        let c = lagc::compile_for_in(src, "m", &[], Some(Method::Euler), &files).expect("compiles");
        let cfg = RunConfig::resolve(&c.model, &RunOptions { t_end: Some(0.5), dt: Some(0.01), ..Default::default() });
        let mut rows: Vec<Vec<f64>> = Vec::new();
        c.run(&cfg.unwrap(), &mut rows).expect("runs");
        rows.last().unwrap().clone()
    };
    let (r, w) = (grad(rolled), grad(&written));
    for (a, b) in r.iter().zip(&w) {
        assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0), "{r:?} vs {w:?}");
    }
}

/// The code compiled for a sum over the rows does not grow with the rows:
/// the same number of instructions for 10 rows and for 100,000.
#[test]
fn code_size_does_not_grow_with_the_rows() {
    let dir = scratch("sizes");
    let mut counts = Vec::new();
    for m in [10usize, 100_000] {
        let mut csv = String::from("x,y\n");
        for i in 0..m {
            let x = i as f64 / m as f64;
            csv.push_str(&format!("{x},{}\n", 2.0 * x + 1.0));
        }
        let file = dir.join(format!("d{m}.csv"));
        std::fs::write(&file, csv).unwrap();
        let src = format!(
            "data x[M], y[M] = \"{}\"\nstate a, b\nenergy = 1/(2*M)*sum(i in 0..M, (a + b*x[i] - y[i])^2)\n",
            file.display()
        );
        let c = lagc::compile_for(&src, "m", &[], Some(Method::Rk4)).expect("compiles");
        let cfg = RunConfig::resolve(&c.model, &RunOptions::default()).unwrap();
        let k = Kernels::build(&c.model, &c.equations, &c.plan(&cfg).unwrap(), BackendKind::Native).unwrap();
        counts.push(k.instruction_count().unwrap());
        // And it computes the sum: the flow's fixed point is the exact line.
        let mut rows: Vec<Vec<f64>> = Vec::new();
        let cfg = RunConfig::resolve(&c.model, &RunOptions { t_end: Some(400.0), dt: Some(0.5), ..Default::default() });
        c.run(&cfg.unwrap(), &mut rows).unwrap();
        let last = rows.last().unwrap();
        assert!((last[1] - 1.0).abs() < 1e-6 && (last[2] - 2.0).abs() < 1e-6, "M = {m}: {last:?}");
    }
    assert_eq!(counts[0], counts[1], "instructions for 10 and 100,000 rows");
}

#[test]
fn data_replaces_the_file_and_the_size_follows_it() {
    let dir = scratch("replace");
    std::fs::write(dir.join("a.csv"), "x\n1\n2\n3\n").unwrap();
    std::fs::write(dir.join("b.csv"), "x\n10\n20\n30\n40\n50\n").unwrap();
    let model = dir.join("mean.lag");
    std::fs::write(&model, "data x[M] = \"a.csv\"\nstate m\nenergy = sum(i in 0..M, (m - x[i])^2)/(2*M)\nsimulate method = euler, dt = 0.5, t_end = 40\n")
        .unwrap();
    let m = model.to_str().unwrap();
    let (code, out, err) = lagc(&["run", m, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!((last_row(&out)[1] - 2.0).abs() < 1e-9, "the mean of a.csv");
    let b = dir.join("b.csv");
    let (code, out, err) = lagc(&["run", m, "--quiet", "--data", &format!("x={}", b.display())]);
    assert_eq!(code, 0, "{err}");
    assert!((last_row(&out)[1] - 30.0).abs() < 1e-9, "the mean of b.csv, five rows");
    let (code, out, err) = lagc(&["derive", m, "--data", &format!("x={}", b.display())]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("E = sum(i in 0..M, ") && out.contains(")/10\n"), "2M = 10 with five rows:\n{out}");
    let (code, _, err) = lagc(&["run", m, "--data", "z=b.csv"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no data family of that name") && err.contains('x'), "{err}");
}

/// Bad files and bad uses end in an error that names the file, the line or
/// column, and points at the statement.
#[test]
fn bad_data_is_an_error_with_a_place() {
    let dir = scratch("errors");
    std::fs::write(dir.join("ok.csv"), "x,y\n1,2\n3,4\n").unwrap();
    std::fs::write(dir.join("three.csv"), "z\n1\n2\n3\n").unwrap();
    std::fs::write(dir.join("text.csv"), "x,y\n1,2\n3,oops\n").unwrap();
    std::fs::write(dir.join("ragged.csv"), "x,y\n1,2\n3\n").unwrap();
    let cases: [(&str, &[&str]); 7] = [
        ("data x[M] = \"missing.csv\"", &["missing.csv", "No such file"]),
        ("data x[M], w[M] = \"ok.csv\"", &["no column `w`", "header is: x, y"]),
        ("data x[M], y[M] = \"text.csv\"", &["text.csv:3", "column \"y\"", "\"oops\" is not a number"]),
        ("data x[M], y[M] = \"ragged.csv\"", &["ragged.csv:3", "1 cell"]),
        ("data x[M] = \"ok.csv\"\ndata z[M] = \"three.csv\"", &["`M` is 2, but", "has 3 rows"]),
        ("data x[M] = \"ok.csv\"\nlet s = sum(i in 0..M, x[i+1])", &["index 2 is out of range", "rows 0..2"]),
        ("data X[M, F] = \"ok.csv\"", &["no column `X[0]`"]),
    ];
    for (k, (stmts, wanted)) in cases.iter().enumerate() {
        let model = dir.join(format!("case{k}.lag"));
        std::fs::write(&model, format!("{stmts}\nstate a\nenergy = a^2\n")).unwrap();
        let (code, _, err) = lagc(&["check", model.to_str().unwrap()]);
        assert_eq!(code, 1, "case {k}: {err}");
        for w in *wanted {
            assert!(err.contains(w), "case {k}: `{w}` not in\n{err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    }
    // A size fixed by the file cannot be set.
    let model = dir.join("set.lag");
    std::fs::write(&model, "data x[M] = \"ok.csv\"\nstate a\nenergy = sum(i in 0..M, (a - x[i])^2)\n").unwrap();
    let (code, _, err) = lagc(&["run", model.to_str().unwrap(), "--set", "M=5"]);
    // The model is right; the command line is not.
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`M` is fixed by the data file"), "{err}");
}

/// Where the index is also the index of a state family, the sum is unrolled
/// as before; data at fixed rows and data in `observe` work too.
#[test]
fn data_at_fixed_rows_and_in_unrolled_sums() {
    let dir = scratch("unrolled");
    std::fs::write(dir.join("t.csv"), "x\n1\n2\n4\n").unwrap();
    let src = "data x[M] = \"t.csv\"\nstate w[M]\n\
               energy = 1/2*sum(i in 0..M, (w[i] - x[i])^2)\n\
               observe first = x[0] + w[0]\nobserve total = sum(i in 0..M, x[i])\n\
               simulate method = euler, dt = 0.5, t_end = 30\n";
    let files = lagc::DataFiles { dir: Some(dir), replace: vec![] };
    let c = lagc::compile_for_in(src, "m", &[], None, &files).expect("compiles");
    let cfg = RunConfig::resolve(&c.model, &RunOptions::default()).unwrap();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    c.run(&cfg, &mut rows).unwrap();
    let last = rows.last().unwrap();
    // t, w[0..3], E, grad_norm, first, total
    assert!((last[1] - 1.0).abs() < 1e-9 && (last[2] - 2.0).abs() < 1e-9 && (last[3] - 4.0).abs() < 1e-9, "{last:?}");
    assert!((last[6] - 2.0).abs() < 1e-9, "first = x[0] + w[0]");
    assert_eq!(last[7], 7.0, "total = 1 + 2 + 4");
}

/// Minibatches of all the rows are the full sum: the same trajectory, bit for bit.
#[test]
fn a_batch_of_every_row_is_the_full_gradient() {
    let model = root().join("examples/least_squares.lag");
    let m = model.to_str().unwrap();
    for method in ["euler", "rk4"] {
        let (_, full, _) = lagc(&["run", m, "--quiet", "--method", method, "--t-end", "5"]);
        let (code, all, err) = lagc(&["run", m, "--quiet", "--method", method, "--t-end", "5", "--batch", "200"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(full, all, "{method}");
    }
    // The same seed gives the same minibatches; another seed others.
    let run = |seed: &str| lagc(&["run", m, "--quiet", "--t-end", "5", "--batch", "10", "--seed", seed]).1;
    assert_eq!(run("3"), run("3"));
    assert_ne!(run("3"), run("4"));
}

/// The minibatch gradient is an unbiased estimate of the full one: over
/// 4,000 draws its mean is within 5 standard errors of the full gradient in
/// every component (a false alarm about once in 10⁶ per component), native
/// and portable alike.
#[test]
fn minibatch_gradients_are_unbiased() {
    let path = root().join("examples/logistic_regression.lag");
    let c = lagc::cli::load::compile_file_for(&path, &[], Some(Method::Euler), &[]).expect("compiles");
    let cfg = RunConfig::resolve(&c.model, &RunOptions::default()).unwrap();
    let full_plan = c.plan(&cfg).unwrap();
    let plan = full_plan.clone().with_batch(&c.model, &c.equations, 25).unwrap();
    let batch = plan.batch.unwrap();
    assert_eq!((batch.rows, batch.size), (500, 25));
    let n = c.model.vars.len();
    let theta = vec![0.4, -0.3, 0.2, 0.1, -0.2];
    let mut work = lagc::backend::Work::default();
    let full = Kernels::build(&c.model, &c.equations, &full_plan, BackendKind::Native).unwrap();
    let mut g_full = vec![0.0; n];
    full.eval_at(Kernel::Gradient, 0.0, &theta, &mut g_full, &mut work);
    for which in [BackendKind::Native, BackendKind::Portable] {
        let k = Kernels::build(&c.model, &c.equations, &plan, which).unwrap();
        let mut draws = lagc::batch::Draws::new(batch, 1, 0);
        let draws_n = 4000;
        let (mut sum, mut sum2) = (vec![0.0; n], vec![0.0; n]);
        let mut g = vec![0.0; n];
        for _ in 0..draws_n {
            draws.next();
            k.eval_at(Kernel::Gradient, 0.0, &theta, &mut g, &mut work);
            for i in 0..n {
                sum[i] += g[i];
                sum2[i] += g[i] * g[i];
            }
        }
        for i in 0..n {
            let mean = sum[i] / draws_n as f64;
            let var = sum2[i] / draws_n as f64 - mean * mean;
            let se = (var / draws_n as f64).sqrt();
            assert!(var > 0.0, "{which:?}: a batch of 25 of 500 rows varies");
            assert!((mean - g_full[i]).abs() < 5.0 * se, "{which:?} component {i}: {mean} vs {} (se {se})", g_full[i]);
        }
    }
}

#[test]
fn batch_is_refused_where_it_does_not_fit() {
    let ls = root().join("examples/least_squares.lag");
    let cases: [(&[&str], &str); 4] = [
        (&["--batch", "500"], "between 1 and the 200 rows"),
        (&["--batch", "0"], "between 1 and the 200 rows"),
        (&["--batch", "10", "--method", "prox"], "euler, rk4, verlet and em, not prox"),
        (&["--batch", "10", "--method", "dopri5"], "not dopri5"),
    ];
    for (extra, wanted) in cases {
        let mut args = vec!["run", ls.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, _, err) = lagc(&args);
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(err.contains(wanted), "{extra:?}: {err}");
    }
    let pendulum = root().join("examples/pendulum.lag");
    let (code, _, err) = lagc(&["run", pendulum.to_str().unwrap(), "--batch", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no sum over all the rows of a data family"), "{err}");
}

/// The stationary variance of SGD on `E(m) = Σ(m − y_i)²/(2M)` is exactly
/// `h σ_b²/(2 − h)`, `σ_b²` the variance of a batch mean drawn without
/// replacement; Euler–Maruyama with the full gradient at `T = h σ_b²/2` has the
/// same. Each is measured over 2·10⁵ steps (a row every 10, the first 100
/// dropped): the relative standard error of the variance is about 1.1%, so 6%
/// is over 5 standard errors (`examples/sgd_noise.lag`).
#[test]
fn minibatch_noise_is_a_temperature() {
    let (_, y) = read_columns(&root().join("examples/data/line.csv"));
    let m = y.len() as f64;
    let mean = y.iter().sum::<f64>() / m;
    let s = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m;
    let (b, h) = (10.0, 0.1);
    let sb = s / b * (m - b) / (m - 1.0);
    let expected = h * sb / (2.0 - h);
    let model = root().join("examples/sgd_noise.lag");
    let t = format!("T={}", h * sb / 2.0);
    let runs: [&[&str]; 2] = [&[], &["--method", "em", "--batch", "200", "--set", &t]];
    for extra in runs {
        let mut args = vec!["run", model.to_str().unwrap(), "--quiet", "--t-end", "20000"];
        args.extend_from_slice(extra);
        let (code, out, err) = lagc(&args);
        assert_eq!(code, 0, "{err}");
        let ms: Vec<f64> = out.lines().skip(101).map(|l| l.split(',').nth(1).unwrap().parse().unwrap()).collect();
        let mu = ms.iter().sum::<f64>() / ms.len() as f64;
        let var = ms.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / ms.len() as f64;
        assert!((var / expected - 1.0).abs() < 0.06, "{extra:?}: variance {var} vs {expected}");
        assert!((mu - mean).abs() < 5.0 * (var / ms.len() as f64 * 19.0).sqrt(), "{extra:?}: mean {mu} vs {mean}");
    }
}

/// A directory or a device named as a data file is refused, never read.
#[test]
fn only_regular_files_are_read() {
    let dir = scratch("devices");
    for path in ["/dev/zero", dir.to_str().unwrap()] {
        let model = dir.join("m.lag");
        std::fs::write(&model, format!("data x[M] = \"{path}\"\nstate a\nenergy = a^2\n")).unwrap();
        let (code, _, err) = lagc(&["check", model.to_str().unwrap()]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("is not a regular file"), "{err}");
    }
}
