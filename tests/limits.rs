//! Hostile input and faults: every limit and refusal, with its message and
//! exit status, and Ctrl-C on a long run.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn lagc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lagc")).args(args).output().expect("run lagc")
}

fn scratch(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("lagc-limits-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name).to_str().unwrap().to_string()
}

fn model(name: &str, src: &str) -> String {
    let p = scratch(&format!("{name}.lag"));
    std::fs::write(&p, src).unwrap();
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.lag")).to_str().unwrap().to_string()
}

#[test]
fn deep_nesting_is_refused_without_a_stack_overflow() {
    let src = format!("coord x\nlagrangian = 1/2*x'^2 - {}x{}\n", "(".repeat(100_000), ")".repeat(100_000));
    let out = lagc(&["check", &model("deep", &src)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("expression nested too deeply") && stderr(&out).contains("200 levels"));
}

#[test]
fn a_huge_family_is_refused_with_the_limit_named() {
    let out = lagc(&["check", &model("huge", "const N = 1000000000\ncoord q[N]\nlagrangian = 1/2*q[0]'^2\n")]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the family is too large") && err.contains("the limit is 100000"), "{err}");
    let out = lagc(&["check", &model("sum", "coord x\nlagrangian = 1/2*x'^2 - sum(i in 0..10000000, x^2)\n")]);
    assert!(stderr(&out).contains("the range is too large"), "{}", stderr(&out));
    // A `let` family past the limit is one error; its uses, at fixed and rolled indices,
    // add none.
    let src = "coord x\nlet a[i in 0..200000] = i*x\n\
               lagrangian = 1/2*x'^2 - a[7] - sum(i in 0..200000, a[i]^2)\n";
    let out = lagc(&["check", &model("let", src)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the range is too large") && err.contains("200000 members"), "{err}");
    assert_eq!(err.matches("×").count(), 1, "one error, not its consequences: {err}");
}

#[test]
fn numbers_that_overflow_are_refused() {
    let out = lagc(&["check", &model("inf", "coord x\nlagrangian = 1/2*x'^2 - 1e999*x^2\n")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("number out of range") && stderr(&out).contains("1.8e308"));
}

#[test]
fn empty_missing_directory_and_binary_files() {
    let empty = model("empty", "");
    let out = lagc(&["check", &empty]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("neither `lagrangian` nor `energy`"), "{}", stderr(&out));
    let out = lagc(&["check", &scratch("missing.lag")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read") && stderr(&out).contains("No such file"));
    let out = lagc(&["run", &std::env::temp_dir().to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("it is a directory"));
    let bin = scratch("binary.lag");
    std::fs::write(&bin, [b'c', b'o', 0xff, 0xfe, b'\n']).unwrap();
    let out = lagc(&["derive", &bin]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not UTF-8") && stderr(&out).contains("offset 2"));
}

#[test]
fn outputs_that_would_not_fit_are_refused_up_front() {
    let out = lagc(&["run", &example("pendulum"), "--t-end", "1e9", "--out", &scratch("big.npy")]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("in memory") && err.contains("rows × 4 columns") && err.contains("--every"), "{err}");
    assert!(!Path::new(&scratch("big.npy")).exists());
    let dir = Path::new(&scratch("big.npy")).parent().unwrap().to_path_buf();
    let left = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".big.npy"));
    assert_eq!(left.count(), 0, "no temporary file is left");
    let out = lagc(&["run", &example("pendulum"), "--t-end", "1e11", "--out", &scratch("big.csv")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is free there"), "{}", stderr(&out));
    let out = lagc(&["run", &example("double_well"), "--particles", "1000000000", "--every", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("in memory"), "{}", stderr(&out));
}

#[test]
fn ctrl_c_stops_cleanly_keeps_the_rows_and_exits_130() {
    let out_path = scratch("long.csv");
    let child = Command::new(env!("CARGO_BIN_EXE_lagc"))
        .args(["run", &example("pendulum_chain"), "--set", "N=20", "--t-end", "100000", "--every", "100"])
        .args(["--out", &out_path])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it run past compiling and well into the integration.
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: sends SIGINT to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("interrupted at t = ") && err.contains("by SIGINT"), "{err}");
    assert!(!Path::new(&out_path).exists(), "no complete-looking file");
    // The rows are in the temporary file the message names: `.long.csv.PID-N-RANDOM.partial`.
    let partial = err[err.find(" are in ").expect("a path") + 8..].trim().to_string();
    let name = Path::new(&partial).file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with(".long.csv.") && name.ends_with(".partial"), "{name}");
    let kept = std::fs::read_to_string(&partial).unwrap();
    let rows: Vec<&str> = kept.lines().collect();
    assert!(rows.len() > 10, "{} rows kept", rows.len());
    assert!(rows[0].starts_with("t,q[0]"));
    // Rows are whole and evenly spaced.
    let t: Vec<f64> = rows[1..].iter().map(|r| r.split(',').next().unwrap().parse().unwrap()).collect();
    assert!(t.windows(2).all(|w| ((w[1] - w[0]) - 0.1).abs() < 1e-9), "{:?}", &t[..t.len().min(5)]);
}

#[test]
fn equations_too_large_to_print_are_refused_and_still_run() {
    // Shared as a DAG the equations of this five-link chain have about 24,000
    // nodes; written out as trees, over four million.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/timeout_symbolic_power_of_velocities.lag");
    let src = src.to_str().unwrap();
    for format in ["text", "latex", "json"] {
        let out = lagc(&["derive", src, "--set", "N=5", "--format", format]);
        assert_eq!(out.status.code(), Some(1), "{format}");
        assert!(out.stdout.is_empty(), "{format}: partial output on standard output");
        let err = stderr(&out);
        assert!(err.contains("too large to print") && err.contains("beyond the limit of 2,000,000"), "{err}");
        assert!(err.contains("help: `lagc run`"), "{err}");
    }
    let out = lagc(&["derive", src, "--set", "N=3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("mass matrix"));
    // The refusal is about printing only: the model runs (a few steps; its
    // motion is violent, its Lagrangian far from convex).
    let with_init = std::fs::read_to_string(src).unwrap().replace("const N = 10", "const N = 5")
        + "init q[i in 0..N] = 1.4, q[i in 0..N]' = 0.5\n";
    let out = lagc(&["run", &model("power_chain", &with_init), "--t-end", "0.002", "--dt", "0.001", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
}

/// A model whose `n × n` tables (the mass matrix, the Hessian) would not fit
/// is refused before any derivation, with the estimate; one just below the
/// limit's square root compiles (no abort on allocation, whatever `N`).
#[test]
fn a_model_too_large_for_its_matrices_is_refused_up_front() {
    let m = model("wide", "const N = 10001\nstate w[N]\nenergy = sum(i in 0..N, (w[i] - 1)^2)\n");
    let o = lagc(&["check", &m]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("10001 state variables are too many"), "{err}");
    assert!(err.contains("the Hessian would have 10001² = 100020001 entries, about 0.4 GB"), "{err}");
    assert!(err.contains("at most 100000000 entries (10000 state variables)"), "{err}");
    // A mass matrix that depends on the state is derived per coordinate, as a dense table.
    let m = model(
        "lattice",
        "const N = 100000\ncoord u[N]\nlagrangian = sum(i in 0..N, (1 + u[i]^2)/2*u[i]'^2 - 1/2*u[i]^2)\n",
    );
    let o = lagc(&["check", &m]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the mass matrix would have 100000² = 10000000000 entries, about 40.0 GB"),
        "{}",
        stderr(&o)
    );
    // A constant one is derived by segments and keeps no such table.
    let m = model("lattice", "const N = 100000\ncoord u[N]\nlagrangian = sum(i in 0..N, 1/2*u[i]'^2 - 1/2*u[i]^2)\n");
    let o = lagc(&["check", &m]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn thousands_of_errors_stop_after_a_hundred_and_say_so() {
    // Semantic errors (unknown names) and syntax errors (an operand missing),
    // 5,000 of each kind: the report holds the first 100 and one line that
    // says where checking stopped and how much was left.
    let semantic: String = (0..5000).map(|i| format!("let a{i} = nosuch{i} + 1\n")).collect();
    let syntax: String = (0..5000).map(|i| format!("let a{i} = 1 +\n")).collect();
    for (name, body) in [("semantic", semantic), ("syntax", syntax)] {
        let src = format!("coord x\n{body}lagrangian = x'^2\n");
        let out = lagc(&["check", &model(&format!("many_{name}"), &src)]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(err.contains("101 errors in"), "{name}: {}", &err[err.len().saturating_sub(500)..]);
        assert!(err.contains("too many errors: checking stopped after 100"), "{name}");
        // Statements 101.. of 5,000 `let`s, and the `lagrangian`, are not checked.
        assert!(err.contains("4901 statements from here on not checked"), "{name}: {}", &err[err.len() - 600..]);
    }
}

#[test]
fn a_model_file_that_never_ends_is_refused_after_64_mb() {
    let out = lagc(&["check", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("larger than 64 MB"), "{}", stderr(&out));
}

#[test]
fn long_chains_of_operators_run_without_a_deep_tree() {
    // 3×10⁴ terms of a sum, factors of a product, signs and primes: each is
    // read, derived and run, or refused with a message; none overflows the
    // stack. The sum is checked against its closed form Σ i = n(n+1)/2.
    let n = 30_000u64;
    let sum: Vec<String> = (1..=n).map(|i| format!("{i}*x^2")).collect();
    let long_sum = format!("coord x\nlagrangian = x'^2/2 - ({})\ninit x = 1\n", sum.join(" + "));
    let out = lagc(&["derive", &model("long_sum", &long_sum), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let forcing = format!("\"-{}*x\"", n * (n + 1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&forcing), "{forcing}");

    let differences: Vec<String> = (1..=n).map(|i| format!("{i}*x^2")).collect();
    let long_difference = format!("coord x\nlagrangian = x'^2/2 + {}\ninit x = 1\n", differences.join(" - "));
    let out = lagc(&["derive", &model("long_difference", &long_difference), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // 1 − 2 − 3 − … − n = 2 − n(n+1)/2, and f = 2·that·x.
    let forcing = format!("\"{}*x\"", 2 * (2 - (n * (n + 1) / 2) as i64));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&forcing), "{forcing}");

    let factors = vec!["(1 + x^2/1000)"; n as usize].join("*");
    let long_product = format!("coord x\nlagrangian = x'^2/2 - {factors}/2^3/2^-3\ninit x = 0.1\n");
    let out = lagc(&["run", &model("long_product", &long_product), "--t-end", "0.01", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let signs = format!("coord x\nlagrangian = x'^2/2 - {}x^2/2\ninit x = 1\n", "-".repeat(n as usize));
    let out = lagc(&["derive", &model("signs", &signs), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // An even number of signs is none: V = x²/2, f = −x.
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"-x\""));

    let primes = format!("coord x\nlet a = x{}\nlagrangian = x'^2/2\n", "'".repeat(n as usize));
    let out = lagc(&["check", &model("primes", &primes)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("second time derivative"), "{}", stderr(&out));

    let tower = format!("coord x\nlagrangian = x'^2/2 - {}\n", vec!["x"; 3000].join("^"));
    let out = lagc(&["check", &model("tower", &tower)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("powers nested too deeply"), "{}", stderr(&out));
}

/// A Cartesian chain past the derivation's reach is refused before the work, with the
/// work named: at 240 links by the pairs its squared speeds have (about 240³/3, 4.7·10⁶,
/// past 4·10⁶), at 10,000 by the operands its partial sums would be written out to
/// (about 5·10⁸, past 3.2·10⁷). Exit status 2: the model is correct as written, the
/// `--set` values are what is too large.
#[test]
fn a_chain_too_long_to_derive_is_refused_with_the_work_named() {
    let out = lagc(&["check", &example("pendulum_chain"), "--set", "N=240"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("the kinetic energy is too large to differentiate"), "{err}");
    assert!(err.contains("4.7e6 pairs of terms") && err.contains("240 momenta"), "{err}");
    let out = lagc(&["check", &example("pendulum_chain"), "--set", "N=10000"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("the model's sums are too long to write out"), "{err}");
    assert!(err.contains("10000 coordinates") && err.contains("5.0e8 operands"), "{err}");
    // Below the limit the same chain is derived (it is checked against its closed form
    // in tests/euler_lagrange.rs).
    let out = lagc(&["check", &example("pendulum_chain"), "--set", "N=30"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
