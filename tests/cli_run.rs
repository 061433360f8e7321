//! `lagc run` and `lagc ir` end to end: output columns and formats, `--every`,
//! `--set`, `--t-end = t0`, the exit statuses and the failure report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::examples;

fn lagc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lagc")).args(args).output().expect("run lagc")
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.lag")).to_str().unwrap().to_string()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lagc-run-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d.join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A model file in the scratch directory.
fn model(name: &str, src: &str) -> String {
    let p = scratch(&format!("{name}.lag"));
    std::fs::write(&p, src).unwrap();
    p.to_str().unwrap().to_string()
}

fn csv(out: &Output) -> (Vec<String>, Vec<Vec<f64>>) {
    let s = text(&out.stdout);
    let mut lines = s.lines();
    let header = lines.next().expect("a header").split(',').map(String::from).collect();
    let rows = lines.map(|l| l.split(',').map(|x| x.parse().expect("a number")).collect()).collect();
    (header, rows)
}

#[test]
fn csv_columns_of_a_lagrangian_model() {
    let out = lagc(&["run", &example("double_pendulum"), "--t-end", "0.01", "--dt", "0.001", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (header, rows) = csv(&out);
    assert_eq!(header, ["t", "th1", "th2", "th1'", "th2'", "energy", "x_bob1", "y_bob1", "x_bob2", "y_bob2"]);
    assert_eq!(rows.len(), 11);
    assert_eq!(rows[0][..5], [0.0, 1.0, 0.5, 0.0, 0.0]);
    // The bobs at th = (1, 0.5) on rods of length 1.
    let bobs = [1f64.sin(), -1f64.cos(), 1f64.sin() + 0.5f64.sin(), -1f64.cos() - 0.5f64.cos()];
    assert!(rows[0][6..].iter().zip(bobs).all(|(a, b)| (a - b).abs() < 1e-12), "{:?}", &rows[0][6..]);
    assert!(text(&out.stderr).is_empty(), "--quiet prints nothing: {}", text(&out.stderr));
}

#[test]
fn csv_columns_of_an_energy_model_with_observes() {
    let src = "state x, y\nenergy = (x - 1)^2 + 2*y^2\nobserve r = sqrt(x^2 + y^2)\ninit x = 3, y = 4";
    let out = lagc(&["run", &model("observe", src), "--method", "euler", "--dt", "0.1", "--t-end", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (header, rows) = csv(&out);
    assert_eq!(header, ["t", "x", "y", "energy", "grad_norm", "r"]);
    assert_eq!(rows[0][1..], [3.0, 4.0, 4.0 + 32.0, (16.0f64 + 256.0).sqrt(), 5.0]);
    let summary = text(&out.stderr);
    assert!(summary.contains("euler 10 steps") && summary.contains("|∇E|"), "{summary}");
}

#[test]
fn every_writes_every_kth_row_and_the_last() {
    let out = lagc(&["run", &example("pendulum"), "--method", "rk4", "--dt", "0.1", "--t-end", "1.05", "--every", "4"]);
    let (_, rows) = csv(&out);
    let t: Vec<f64> = rows.iter().map(|r| r[0]).collect();
    // 11 steps: 10 of 0.1 and a last one of 0.05; rows at 0, 4, 8 and the last.
    assert_eq!(t.len(), 4);
    assert!((t[1] - 0.4).abs() < 1e-15 && (t[2] - 0.8).abs() < 1e-15 && t[3] == 1.05, "{t:?}");
}

#[test]
fn t_end_equal_to_t0_writes_only_the_initial_row() {
    let out = lagc(&["run", &example("kepler"), "--t-end", "0"]);
    assert_eq!(out.status.code(), Some(0));
    let (_, rows) = csv(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][..5], [0.0, 0.4, 0.0, 0.0, 2.0]);
}

#[test]
fn set_overrides_a_param_and_the_params_defined_from_it() {
    let src = "param k = 1, w = sqrt(k)\ncoord q\nlagrangian = 1/2*q'^2 - 1/2*w^2*q^2\ninit q = 1";
    let path = model("set", src);
    let out = lagc(&["run", &path, "--set", "k=4", "--t-end", "1", "--dt", "0.001", "--every", "1000"]);
    let (_, rows) = csv(&out);
    // ω = 2: q(1) = cos 2.
    assert!((rows.last().unwrap()[1] - 2f64.cos()).abs() < 1e-9, "{:?}", rows.last());
    let bad = lagc(&["run", &path, "--set", "kk=4"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("no param or const of that name") && text(&bad.stderr).contains("k, w"));
}

#[test]
fn out_files_in_csv_json_and_npy_agree() {
    let args = ["--t-end", "0.5", "--dt", "0.01", "--every", "10", "--quiet"];
    let stdout = lagc(&[&["run", &example("double_pendulum")][..], &args].concat());
    let (_, rows) = csv(&stdout);
    for ext in ["csv", "json", "npy"] {
        let p = scratch(&format!("dp.{ext}"));
        let out = lagc(&[&["run", &example("double_pendulum"), "--out", p.to_str().unwrap()][..], &args].concat());
        assert_eq!(out.status.code(), Some(0), "{ext}: {}", text(&out.stderr));
        let dir = scratch("dp").parent().unwrap().to_path_buf();
        let prefix = format!(".dp.{ext}.");
        let left = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(&prefix));
        assert_eq!(left.count(), 0, "no temporary file is left");
        let got: Vec<Vec<f64>> = match ext {
            "csv" => {
                let s = std::fs::read_to_string(&p).unwrap();
                s.lines().skip(1).map(|l| l.split(',').map(|x| x.parse().unwrap()).collect()).collect()
            }
            "json" => {
                let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                assert_eq!(v["columns"][0], "t");
                v["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
                    .collect()
            }
            _ => {
                let b = std::fs::read(&p).unwrap();
                assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
                let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
                let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
                assert!(header.contains("'descr': '<f8'") && header.contains("'shape': (6, 10)"), "{header}");
                assert_eq!((10 + hlen) % 64, 0, "data is 64-byte aligned");
                let data: Vec<f64> =
                    b[10 + hlen..].chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
                data.chunks(10).map(|r| r.to_vec()).collect()
            }
        };
        assert_eq!(got, rows, "{ext}");
    }
}

#[test]
fn bad_command_lines_exit_2_before_any_output() {
    let dp = example("double_pendulum");
    for (args, says) in [
        (vec!["--dt", "0"], "dt must be a positive number"),
        (vec!["--dt", "-1"], "dt must be a positive number"),
        (vec!["--t-end", "-1"], "is before t0"),
        (vec!["--every", "0"], "every must be 1 or more"),
        (vec!["--method", "leapfrog"], "unknown method"),
        (vec!["--method", "prox"], "does not fit"),
        (vec!["--method", "verlet"], "does not fit this model"),
        (vec!["--out", "x.txt"], ".csv, .json or .npy"),
        (vec!["--out", "/nonexistent-dir/x.csv"], "the directory /nonexistent-dir does not exist"),
        (vec!["--set", "g"], "expected NAME=VALUE"),
        (vec!["--set", "g=abc"], "is not a number"),
    ] {
        let out = lagc(&[&["run", &dp][..], &args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(says), "{args:?}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

#[test]
fn numerical_failure_exits_3_names_t_and_state_and_keeps_rows() {
    let p = scratch("nesterov.csv");
    let out = lagc(&["run", &example("nesterov"), "--t0", "0", "--out", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(err.contains("singular mass matrix at t = 0") && err.contains("x = "), "{err}");
    // A failure later in the run keeps the rows before it.
    let src = "coord q\nlagrangian = 1/2*q'^2 + 1/2*q^4\ninit q = 1, q' = 1";
    let out = lagc(&["run", &model("blowup", src), "--t-end", "100", "--dt", "0.01"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("non-finite") && err.contains("q = ") && err.contains("q' = "), "{err}");
    let (_, rows) = csv(&out);
    assert!(rows.len() > 10 && rows.iter().all(|r| r.iter().all(|x| x.is_finite())), "{} rows", rows.len());
}

#[test]
fn every_example_runs_or_says_why_not() {
    for p in examples() {
        let out = lagc(&["run", p.to_str().unwrap(), "--every", "1000", "--quiet"]);
        let err = text(&out.stderr);
        match out.status.code() {
            Some(0) => assert!(csv(&out).1.len() >= 2, "{}", p.display()),
            Some(2) => assert!(err.contains("not supported yet"), "{}: {err}", p.display()),
            c => panic!("{}: exit {c:?}: {err}", p.display()),
        }
    }
}

#[test]
fn ir_prints_every_kernel() {
    let out = lagc(&["ir", &example("double_pendulum"), "--method", "rk4"]);
    assert_eq!(out.status.code(), Some(0));
    let ir = text(&out.stdout);
    for f in ["function %expr_row", "function %ode_rhs", "function %ode_rk4"] {
        assert!(ir.contains(f), "missing {f} in:\n{}", &ir[..ir.len().min(2000)]);
    }
    // The right-hand side needs sin and cos of th1 − th2, computed by one
    // sincos call, and only the sine of th1 and th2: no separate cos call.
    let rhs = ir.split("function ").find(|f| f.starts_with("%ode_rhs")).unwrap();
    assert!(rhs.contains("%lagc_sincos") && !rhs.contains("%lagc_cos "), "{rhs}");
}

/// The number after `label` in the summary on standard error.
fn summary_number(out: &Output, label: &str) -> f64 {
    let err = text(&out.stderr);
    let at = err.find(label).unwrap_or_else(|| panic!("no `{label}` in the summary: {err}"));
    err[at + label.len()..].split_whitespace().next().unwrap().trim_end_matches(';').parse().unwrap()
}

#[test]
fn the_drift_of_h_is_measured_on_every_step_not_only_on_the_rows_written() {
    // The pendulum's energy error under a symplectic method oscillates: at
    // t = 20 it is 10⁴ times smaller than its largest value. Writing one row
    // in 10⁵ must not hide the drift between the rows: the summary's figure
    // is the same whatever `--every` is, for the compiled loops (rk4, verlet)
    // and the stepped methods (midpoint, variational).
    for method in ["rk4", "verlet", "midpoint", "variational"] {
        let run = |every: &str| {
            let path = scratch(&format!("drift-{method}-{every}.csv"));
            let out = lagc(&[
                "run",
                &example("pendulum"),
                "--method",
                method,
                "--dt",
                "0.1",
                "--t-end",
                "20",
                "--every",
                every,
                "--out",
                path.to_str().unwrap(),
            ]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            (summary_number(&out, "max relative drift of H"), std::fs::read_to_string(path).unwrap())
        };
        let ((all, rows), (sparse, _)) = (run("1"), run("100000"));
        // The largest drift over the rows, read from the file, is the summary's.
        let energy: Vec<f64> = rows.lines().skip(1).map(|l| l.split(',').nth(3).unwrap().parse().unwrap()).collect();
        let drift = |h: f64| (h - energy[0]).abs() / energy[0].abs();
        let from_rows = energy.iter().map(|&h| drift(h)).fold(0.0, f64::max);
        assert!((all - from_rows).abs() <= 1e-3 * from_rows, "{method}: summary {all:e}, rows {from_rows:e}");
        assert_eq!(all, sparse, "{method}: every row {all:e}, one row in 10⁵ {sparse:e}");
        if method != "rk4" {
            let at_end = drift(*energy.last().unwrap());
            assert!(at_end < all / 100.0, "{method}: the end row alone would show it: {at_end:e} vs {all:e}");
        }
    }
}

#[test]
fn a_zero_initial_energy_gives_the_absolute_drift() {
    // An inverted oscillator with equal kinetic and potential energy: H0 = 0.
    let src = "coord x\nlagrangian = x'^2/2 + x^2/2\ninit x = 1, x' = -1";
    let out = lagc(&["run", &model("zero_h0", src), "--method", "rk4", "--dt", "0.01", "--t-end", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(!err.contains("relative drift of H"), "{err}");
    let d = summary_number(&out, "max |H − H0|");
    // RK4 at h = 0.01 over t = 2 on this system: small, finite, not divided by 0.
    assert!(d.is_finite() && d < 1e-6, "{err}");
}

#[test]
fn a_temperature_with_a_deterministic_method_is_refused() {
    for method in ["rk4", "euler", "dopri5", "prox"] {
        let out = lagc(&["run", &example("ornstein_uhlenbeck"), "--method", method, "--t-end", "0.1", "--quiet"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{method}: {err}");
        assert!(err.contains("temperature") && err.contains("`em`"), "{err}");
        assert!(out.stdout.is_empty(), "no rows from a refused run");
    }
    // At temperature 0 the gradient flow runs.
    let out = lagc(&["run", &example("ornstein_uhlenbeck"), "--method", "rk4", "--set", "T=0", "--t-end", "0.1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn surprising_runs_are_said_once_and_quiet_silences_them() {
    let identical = ["run", &example("pendulum"), "--particles", "10", "--t-end", "0.1"];
    let out = lagc(&identical);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    assert!(err.contains("10 identical trajectories"), "{err}");
    let out = lagc(&[&identical[..], &["--quiet"]].concat());
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));

    let no_init = model("no_init", "coord x\nlagrangian = x'^2/2 - x^2/2\n");
    let out = lagc(&["run", &no_init, "--t-end", "0.1"]);
    let err = text(&out.stderr);
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    assert!(err.contains("no `init`"), "{err}");
    // One coordinate, one particle, one step: singular nouns.
    let out = lagc(&["check", &no_init]);
    assert!(text(&out.stdout).contains("1 coordinate, 0 params"), "{}", text(&out.stdout));
    let out = lagc(&["run", &no_init, "--t-end", "0.001", "--dt", "0.001"]);
    assert!(text(&out.stderr).contains("rk4 1 step, 2 rows"), "{}", text(&out.stderr));
}
