//! The memory guard with `--sensitivities`: the `jacobian` kernel (`n × d`
//! derivatives by the state and more by the params, compiled and evaluated at
//! every stage) and the augmented state `[y, S]` are counted, so that a model
//! too large for its sensitivities is refused before they are derived, with the
//! estimate (status 2), and the estimate of one that runs bounds its measured
//! peak (as tests/memory.rs checks for runs without sensitivities).

use std::path::Path;
use std::process::{Command, Output};

const MB: f64 = 1e6;

fn lagc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lagc")).args(args).env("LAGC_PRINT_ESTIMATE", "1").output().expect("run lagc")
}

fn fput() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fput.lag").to_str().unwrap().to_string()
}

fn scratch(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("lagc-sensitivities-memory-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name).to_str().unwrap().to_string()
}

/// The number after `key` in `text` (up to the next space or comma).
fn number_after(text: &str, key: &str) -> Option<f64> {
    let at = text.find(key)? + key.len();
    text[at..].split([' ', ',', ')']).next()?.parse().ok()
}

#[test]
fn a_lattice_too_large_for_its_sensitivities_is_refused_with_the_estimate() {
    // 10⁵ coordinates: 2·10¹⁰ derivatives by the state, terabytes for any machine.
    let out = scratch("large.csv");
    let o = lagc(&["run", &fput(), "--set", "N=100000", "--sensitivities", "alpha", "--t-end", "0.01", "--out", &out]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("in memory") && err.contains("TB"), "{err}");
    assert!(err.contains("the Jacobian kernel's 20000100000 outputs (100000 × 200000 by the state"), "{err}");
    assert!(err.contains("smaller instance of the model"), "{err}");
    assert!(!Path::new(&out).exists());
    // The same refusal before a fit derives anything.
    let data = scratch("obs.csv");
    std::fs::write(&data, "t,u[0]\n0,0\n0.01,0\n0.02,0\n").unwrap();
    let o = lagc(&["fit", &fput(), "--set", "N=100000", "--data", &data, "--params", "alpha", "--dt", "0.01"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("the Jacobian kernel's 20000100000 outputs"), "{err}");
    std::fs::remove_file(&data).unwrap();
}

#[test]
fn a_lattice_s_sensitivities_run_within_the_estimate() {
    // 600 coordinates: 720,600 outputs of the kernel, nearly all zeros (written by loops),
    // compiled and evaluated in about 14 MB; the estimate bounds the peak, at most 4 × it +
    // 64 MB (as tests/memory.rs).
    let out = scratch("small.csv");
    let o = lagc(&["run", &fput(), "--set", "N=600", "--sensitivities", "alpha", "--t-end", "0.05", "--out", &out]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("bytes for the Jacobian kernel's 720600 outputs (600 × 1200"), "{err}");
    let estimate = number_after(&err, "estimate: peak memory ").expect("the estimate is printed");
    let so_far = number_after(&err, "(so far ").unwrap();
    let peak = number_after(&err, ", peak memory ").expect("the summary gives the peak") * 1024.0 * 1024.0;
    assert!(estimate >= peak, "estimate {estimate} below the peak {peak}: {err}");
    assert!(estimate <= 4.0 * peak + 64.0 * MB, "estimate {estimate} far above the peak {peak}: {err}");
    assert!(peak - so_far >= 8.0 * MB, "compiling and evaluating the kernel should take memory: {err}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.lines().next().unwrap().ends_with("d(u[599]')/d(alpha)"), "the last column is a sensitivity");
    std::fs::remove_file(&out).unwrap();
}
