//! The `lagc` binary: `check` and `derive --format json`, and the exit
//! statuses of docs/language.md §Exit status (0 ok, 1 model errors, 2 bad command line).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::examples;

fn lagc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lagc")).args(args).output().expect("run lagc")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A scratch directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lagc-cli-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

#[test]
fn check_accepts_every_example() {
    for p in examples() {
        let out = lagc(&["check", p.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{}: {}{}", p.display(), stdout, text(&out.stderr));
        assert!(stdout.contains(": ok ("), "{}: {stdout}", p.display());
        let stem = p.file_stem().unwrap().to_str().unwrap();
        assert!(stdout.contains(&format!("model `{stem}`")), "{stdout}");
    }
}

#[test]
fn check_reports_model_errors_with_status_1() {
    let p = root().join("tests/fixtures/errors/unknown_name.lag");
    let out = lagc(&["check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("unknown name `th3`") && err.contains("did you mean `th1`?"), "{err}");
    assert!(err.contains("unknown_name.lag:2:42"), "{err}");
    assert!(!err.contains('\u{1b}'), "no colour when standard error is not a terminal: {err:?}");
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn check_reports_every_error_of_a_file() {
    let p = root().join("tests/fixtures/errors/several_errors.lag");
    let out = lagc(&["check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("6 errors in"), "{}", text(&out.stderr));
}

#[test]
fn missing_file_is_status_2() {
    let out = lagc(&["check", "/nonexistent/dir/model.lag"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("cannot read /nonexistent/dir/model.lag"), "{err}");
}

#[test]
fn directory_is_status_2() {
    let d = root().join("tests/fixtures");
    let out = lagc(&["check", d.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("it is a directory"), "{}", text(&out.stderr));
}

#[test]
fn non_utf8_file_is_status_2() {
    let p = scratch("utf8").join("latin1.lag");
    std::fs::write(&p, b"coord x\n# caf\xe9\nlagrangian = x'^2\n").unwrap();
    let out = lagc(&["check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("not UTF-8") && err.contains("offset 13"), "{err}");
}

#[test]
fn bad_command_lines_are_status_2() {
    let ex = root().join("examples/pendulum.lag");
    let ex = ex.to_str().unwrap();
    for args in [
        vec!["frobnicate"],
        vec!["derive", ex, "--format", "yaml"],
        vec!["check", ex, "--set", "g"],
        vec!["check", ex, "--set", "g=abc"],
        vec!["check"],
    ] {
        let out = lagc(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn values_from_the_command_line_that_the_model_cannot_take_are_status_2() {
    // The model is right as written; the command line's values are not.
    let chain = root().join("examples/pendulum_chain.lag");
    for (cmd, set) in [("check", "N=2.5"), ("run", "N=2.5"), ("derive", "N=-3"), ("run", "N=0")] {
        let out = lagc(&[cmd, chain.to_str().unwrap(), "--set", set]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd} --set {set}: {err}");
        assert!(err.contains("--set"), "{err}");
    }
    // A model with an error of its own stays status 1 with or without --set.
    let dir = std::env::temp_dir().join(format!("lagc-cli-set-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.lag");
    std::fs::write(&bad, "const N = 2\ncoord q[N]\nlagrangian = q[0]'^2 + q[N]^2\n").unwrap();
    for set in ["N=3", "N=2.5"] {
        let out = lagc(&["check", bad.to_str().unwrap(), "--set", set]);
        assert_eq!(out.status.code(), Some(1), "--set {set}: {}", text(&out.stderr));
    }
    // So is one whose error shows only after derivation: a stated method that does not
    // fit (Verlet with dissipation), when the run would use it.
    let misfit = dir.join("misfit.lag");
    std::fs::write(
        &misfit,
        "const N = 3\ncoord q[N]\nlagrangian = sum(i in 0..N, 1/2*q[i]'^2 - 1/2*q[i]^2)\n\
         dissipation = sum(i in 0..N, q[i]'^2)\nsimulate method = verlet, t_end = 0.01\n",
    )
    .unwrap();
    for args in [vec!["check"], vec!["run"], vec!["run", "--method", "verlet"]] {
        let mut args = args.clone();
        args.extend([misfit.to_str().unwrap(), "--set", "N=5"]);
        let out = lagc(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("method `verlet` does not fit this model"), "{err}");
        assert!(!err.contains("correct as written"), "{args:?}: the file itself is wrong: {err}");
    }
    // The file's method is a default: `--method` overrides it, and a method that fits runs.
    let out = lagc(&["run", misfit.to_str().unwrap(), "--method", "variational", "--set", "N=5", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("t,q[0],q[1],q[2],q[3],q[4],"), "{}", text(&out.stdout));
}

#[test]
fn set_overrides_a_const() {
    let p = root().join("examples/pendulum_chain.lag");
    let out = lagc(&["check", p.to_str().unwrap(), "--set", "N=3"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("3 coordinates"), "{}", text(&out.stdout));
}

#[test]
fn derive_json_is_valid_for_every_example() {
    for p in examples() {
        let out = lagc(&["derive", p.to_str().unwrap(), "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{}: {}", p.display(), text(&out.stderr));
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", p.display()));
        let stem = p.file_stem().unwrap().to_str().unwrap();
        assert_eq!(v["model"], stem);
        assert!(v["kind"] == "lagrangian" || v["kind"] == "energy", "{v}");
    }
}

#[test]
fn derive_text_and_latex() {
    let p = root().join("examples/pendulum.lag");
    let out = lagc(&["derive", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("m*l^2*th'' = -m*l*g*sin(th)"), "{}", text(&out.stdout));
    let out = lagc(&["derive", p.to_str().unwrap(), "--format", "latex"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("\\begin{align*}"), "{}", text(&out.stdout));
}

#[test]
fn every_command_refuses_a_method_that_does_not_fit_in_the_same_words() {
    let dp = root().join("examples/double_pendulum.lag");
    let dp = dp.to_str().unwrap();
    for cmd in ["check", "run", "ir"] {
        let out = lagc(&[cmd, dp, "--method", "verlet"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(err.contains("method `verlet` does not fit this model"), "{cmd}: {err}");
        assert!(err.contains("its mass matrix depends on the state or on time"), "{cmd}: {err}");
        assert!(err.contains("double_pendulum.lag:"), "{cmd}: a span into the model: {err}");
        assert!(out.stdout.is_empty(), "{cmd}: nothing on stdout");
    }
    // The list of methods that fit leaves out those that do not (verlet here).
    let out = lagc(&["check", dp, "--method", "prox"]);
    let err = text(&out.stderr);
    assert!(err.contains("methods for this model: rk4, dopri5, midpoint, variational"), "{err}");
    // A method that fits passes.
    let out = lagc(&["check", dp, "--method", "variational"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_full_state_dependent_metric_of_many_variables_is_refused_with_a_span() {
    // Riemannian Langevin dynamics derives g⁻¹ symbolically: by cofactors up to three
    // variables, so a full metric g(θ) of four is refused at the metric.
    let d = scratch("em-metric");
    let p = d.join("full.lag");
    std::fs::write(
        &p,
        "param T = 0.1\nstate a, b, c, e\nenergy = a^2 + b^2 + c^2 + e^2\n\
         metric = [[2 + a^2, a, 0, 0], [a, 2, 0, 0], [0, 0, 2, b], [0, 0, b, 2]]\ntemperature = T\n",
    )
    .unwrap();
    let out = lagc(&["check", p.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the divergence of this metric's inverse is not derived"), "{err}");
    assert!(err.contains("full.lag:4:"), "the span is the metric's line: {err}");
    // The natural-gradient model with a temperature runs Riemannian Langevin dynamics.
    let p = d.join("natural.lag");
    std::fs::write(
        &p,
        "param T = 0.1\nstate mu, sigma\nenergy = log(sigma) + mu^2/(2*sigma^2)\n\
         metric = diag(1/sigma^2, 2/sigma^2)\ntemperature = T\ninit mu = 0, sigma = 1\n",
    )
    .unwrap();
    let out = lagc(&["run", p.to_str().unwrap(), "--t-end", "0.01", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn set_names_are_checked_by_every_command() {
    let dp = root().join("examples/double_pendulum.lag");
    for cmd in ["check", "derive", "ir", "run"] {
        let out = lagc(&[cmd, dp.to_str().unwrap(), "--set", "gravity=9"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(err.contains("--set gravity: the model has no param or const of that name"), "{cmd}: {err}");
    }
}

#[test]
fn every_help_shows_its_defaults_and_examples_that_work() {
    let dir = std::env::temp_dir().join(format!("lagc-cli-help-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for cmd in [None, Some("check"), Some("derive"), Some("run"), Some("ir")] {
        let args: Vec<&str> = cmd.into_iter().chain(["--help"]).collect();
        let out = lagc(&args);
        let help = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{help}");
        // Every argument says what it is: no bare `<FILE>` or `--set` line.
        for line in help.lines().filter(|l| l.trim_start().starts_with("--") || l.trim_start().starts_with('<')) {
            assert!(line.split_whitespace().count() > 2, "{cmd:?}: undescribed argument: {line:?}");
        }
        if cmd == Some("run") {
            for flag in ["--t-end", "--dt", "--method", "--every", "--rtol", "--particles", "--seed"] {
                let line = help.lines().find(|l| l.trim_start().starts_with(flag)).unwrap();
                let at = help.find(line).unwrap();
                assert!(help[at..].split("\n  -").next().unwrap().contains("[default:"), "{flag}: {line}");
            }
        }
        // The examples run, from the repository's root, writing into a scratch directory.
        let examples = help.split("Examples:").nth(1).unwrap_or_else(|| panic!("{cmd:?}: no examples:\n{help}"));
        let examples: Vec<&str> = examples.lines().skip(1).map(str::trim).take_while(|l| !l.is_empty()).collect();
        assert!(examples.len() >= 2, "{cmd:?}: {examples:?}");
        for ex in examples {
            let mut words: Vec<String> = ex.split_whitespace().skip(1).map(String::from).collect();
            let redirect = words.iter().position(|w| w == ">");
            if let Some(i) = redirect {
                words.truncate(i);
            }
            for w in 1..words.len() {
                if ["--out", "--plot", "--dump"].contains(&words[w - 1].as_str()) {
                    words[w] = dir.join(&words[w]).to_str().unwrap().to_string();
                }
            }
            if words[0] == "run" {
                // Short runs: the examples' own lengths are for a release build.
                if let Some(i) = words.iter().position(|w| w == "--t-end") {
                    words.drain(i..i + 2);
                }
                words.extend(["--t-end".into(), "0.5".into()]);
            }
            let out = Command::new(env!("CARGO_BIN_EXE_lagc")).args(&words).current_dir(root()).output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{ex}: {}", text(&out.stderr));
        }
    }
}
