//! The memory guard's estimate against the memory runs really take: `lagc run`
//! prints its estimate (`LAGC_PRINT_ESTIMATE=1`) before it starts and its
//! measured peak (`VmHWM`) in the summary when it ends. The estimate must be
//! an upper bound of the peak, and not so far above it that the guard would
//! refuse runs that fit (docs/language.md, § Memory and disk). Sizes are
//! chosen so that what grows with the run (tens to hundreds of MB) outweighs
//! what does not; the whole file runs in about twenty seconds in a debug build.

use std::path::Path;
use std::process::{Command, Output};

const MB: f64 = 1e6;

fn lagc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lagc")).args(args).env("LAGC_PRINT_ESTIMATE", "1").output().expect("run lagc")
}

fn scratch(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("lagc-memory-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name).to_str().unwrap().to_string()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.lag")).to_str().unwrap().to_string()
}

/// The number after `key` in `text` (up to the next space or comma).
fn number_after(text: &str, key: &str) -> Option<f64> {
    let at = text.find(key)? + key.len();
    text[at..].split([' ', ',', ')']).next()?.parse().ok()
}

/// What one run estimated and measured, in bytes.
#[derive(Debug)]
struct Measured {
    /// The estimated peak: an upper bound.
    estimate: f64,
    /// The process's peak before the run (when the estimate was made).
    so_far: f64,
    /// The sum of the terms that grow with the run.
    terms: f64,
    /// The peak resident memory the run reported at its end.
    peak: f64,
    stderr: String,
}

fn measure(args: &[&str]) -> Measured {
    let out = lagc(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    let estimate = number_after(&stderr, "estimate: peak memory ").expect("the estimate is printed");
    let so_far = number_after(&stderr, "(so far ").expect("the peak so far is printed");
    let terms =
        stderr.lines().filter_map(|l| number_after(l, "estimate: ").filter(|_| l.contains(" bytes for "))).sum();
    // The summary's `peak memory X MB` is VmHWM in KiB / 1024.
    let peak = number_after(&stderr, ", peak memory ").expect("the summary gives the peak") * 1024.0 * 1024.0;
    Measured { estimate, so_far, terms, peak, stderr }
}

/// What a small run takes beyond its peak before the run (compiling the
/// kernels, the threads), which the estimate's allowance covers.
const SMALL_RUN: f64 = 16.0 * MB;

/// The estimate is an upper bound of the measured peak, at most 4 × it + 64 MB; the terms
/// that grow with the run alone bound what the run took beyond a small run's `SMALL_RUN`,
/// so that a per-item size set too low fails even where the fixed allowance would hide it.
fn check(what: &str, args: &[&str], term: Option<&str>, grows_at_least: f64) -> Measured {
    let m = measure(args);
    let ctx = format!("{what}: {m:?}");
    assert!(m.estimate >= m.peak, "the estimate is below the measured peak; {ctx}");
    assert!(m.estimate <= 4.0 * m.peak + 64.0 * MB, "the estimate is far above the measured peak; {ctx}");
    assert!(m.terms >= m.peak - m.so_far - SMALL_RUN, "the growing terms are below what the run took; {ctx}");
    assert!(m.peak - m.so_far >= grows_at_least, "the run should grow by {grows_at_least} bytes; {ctx}");
    if let Some(t) = term {
        assert!(m.stderr.contains(t), "the estimate names {t:?}; {ctx}");
    }
    m
}

#[test]
fn ensemble_estimates_bound_the_measured_peak() {
    // Every particle's final row dominates: 5e5 particles of a 1-D model take about 120
    // bytes each (a `Vec<f64>` of its five values, x, energy, grad_norm, work, heat).
    check(
        "em ensemble, 5e5 particles",
        &["run", &example("double_well"), "--particles", "500000", "--t-end", "0.001", "--out", &scratch("e.csv")],
        Some("every particle's final row (500000 particles × 5 values)"),
        30.0 * MB,
    );
    // An NPY dump holds every particle's values until the run ends, beside the final rows.
    check(
        "em ensemble, 2e5 particles dumped to NPY",
        &["run", &example("double_well"), "--particles", "200000", "--t-end", "0.001", "--dump", &scratch("d.npy")],
        Some("the NPY --dump of 200000 particles"),
        30.0 * MB,
    );
    // A deterministic method's ensemble: each particle's trajectory in turn, 3 values each.
    check(
        "verlet ensemble, 2e5 particles",
        &["run", &example("pendulum"), "--particles", "200000", "--t-end", "0.002", "--out", &scratch("v.csv")],
        Some("every particle's final row (200000 particles × 3 values)"),
        15.0 * MB,
    );
    // A figure: the rows kept, the histogram of every particle's final x.
    let svg = scratch("e.svg");
    check(
        "em ensemble, 2e5 particles with --plot",
        &["run", &example("double_well"), "--particles", "200000", "--t-end", "0.002", "--plot", &svg],
        Some("the quantile bands and the histogram of --plot"),
        15.0 * MB,
    );
    // The quantile bands' sample: 1,024 particles × 502 rows × 3 columns.
    check(
        "em ensemble, 502 rows with --plot",
        &["run", &example("double_well"), "--particles", "2000", "--t-end", "5", "--dt", "0.01", "--plot", &svg],
        Some("the quantile bands and the histogram of --plot"),
        10.0 * MB,
    );
}

#[test]
fn output_estimates_bound_the_measured_peak() {
    // 5e5 rows of the pendulum: 2e6 values, 16 MB held by NPY.
    let long = ["run", &example("pendulum"), "--t-end", "500"];
    // JSON is streamed: 5e5 rows (about 30 MB of text) take no more memory than a few blocks.
    let json = scratch("p.json");
    let m = measure(&[&long[..], &["--out", &json]].concat());
    assert!(m.estimate >= m.peak, "the estimate is below the measured peak; JSON, 5e5 rows: {m:?}");
    assert!(!m.stderr.contains("JSON output"), "JSON is not held: {m:?}");
    assert!(m.peak - m.so_far < 8.0 * MB, "JSON is streamed, not held: {m:?}");
    let npy = scratch("p.npy");
    check("NPY, 5e5 rows", &[&long[..], &["--out", &npy]].concat(), Some("the NPY output's 500002 rows"), 12.0 * MB);
    let (csv, svg) = (scratch("p.csv"), scratch("p.svg"));
    check(
        "CSV with --plot, 5e5 rows",
        &[&long[..], &["--out", &csv, "--plot", &svg]].concat(),
        Some("rows × 4 columns kept for --plot"),
        60.0 * MB,
    );
    // CSV is streamed: nothing grows with the rows, and the estimate has no terms.
    let m = check("CSV, 5e5 rows", &[&long[..], &["--out", &csv]].concat(), None, 0.0);
    assert_eq!(m.terms, 0.0, "{m:?}");
}

fn refusal(args: &[&str]) -> String {
    let out = lagc(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains("in memory"), "{err}");
    err
}

#[test]
fn refusals_name_the_real_cause_and_a_fix_that_applies() {
    // An ensemble too large for any machine, writing CSV: the particles are the cause.
    let err = refusal(&["run", &example("double_well"), "--particles", "30000000000", "--out", &scratch("x.csv")]);
    assert!(err.contains("every particle's final row") && err.contains("--particles"), "{err}");
    assert!(!err.contains("write CSV"), "{err}");
    // An NPY output: write CSV or JSON.
    let err = refusal(&["run", &example("pendulum"), "--t-end", "1e9", "--out", &scratch("x.npy")]);
    assert!(err.contains("the NPY output's") && err.contains("write CSV or JSON") && err.contains("--every"), "{err}");
    // CSV with a figure: the kept rows are the cause; CSV is not the fix.
    let err = refusal(&["run", &example("pendulum"), "--t-end", "1e9", "--plot", &scratch("x.svg")]);
    assert!(err.contains("kept for --plot") && err.contains("leave out --plot"), "{err}");
    assert!(!err.contains("write CSV"), "{err}");
}

#[test]
fn compiling_a_large_model_is_within_the_estimate() {
    // The 50-link chain: compiling its kernels takes memory (about 11 MB beyond what the
    // front end holds, with the single-pass register allocator it is compiled with), and
    // nothing grows with the rows; the allowance per node of the equations covers it.
    let m =
        measure(&["run", &example("pendulum_chain"), "--set", "N=50", "--t-end", "0.001", "--out", &scratch("c.csv")]);
    assert!(m.estimate >= m.peak, "{m:?}");
    assert!(m.estimate <= 4.0 * m.peak + 64.0 * MB, "{m:?}");
    assert_eq!(m.terms, 0.0, "{m:?}");
    assert!(m.peak - m.so_far >= SMALL_RUN / 2.0, "compiling should take memory: {m:?}");
}
