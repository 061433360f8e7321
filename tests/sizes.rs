//! The size sweep: each class of input that once crashed lagc at size (deep or long
//! expressions, many primes, many coordinates with each method, many errors, large
//! files, many particles) generated at growing sizes and run by the binary under a memory
//! limit (`RLIMIT_AS`) and a wall-clock limit. Every run must end by itself with status
//! 0, 1, 2 or 3 — a result or a refusal — never by a signal (a stack overflow, an
//! allocation abort, a segmentation fault) and never by the time limit.
//!
//! The default sizes keep the suite short; `LAGC_SIZES=large` adds the next factor of
//! ten of each class (minutes in a debug build).

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The address space a run may take: far above what any case needs, far below the machine.
const MEMORY: u64 = 6 << 30;
/// The wall-clock time a run may take.
const TIME: Duration = Duration::from_secs(240);

fn large() -> bool {
    std::env::var("LAGC_SIZES").is_ok_and(|v| v == "large")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lagc-sizes-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// How a bounded run ended.
struct Ended {
    code: Option<i32>,
    signal: Option<i32>,
    elapsed: Duration,
    stderr: String,
}

/// Runs the binary with `args` under [`MEMORY`] and [`TIME`]; kills it at the time limit.
fn bounded(args: &[&str]) -> Ended {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lagc"));
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: MEMORY, rlim_max: MEMORY };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("the binary starts");
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIME {
            child.kill().unwrap();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ended { code: status.code(), signal: status.signal(), elapsed: start.elapsed(), stderr: reader.join().unwrap() }
}

/// Writes `src` and runs `lagc ARGS FILE EXTRA`, asserting a clean end; returns the status.
fn sweep_case(class: &str, size: usize, src: &str, cmd: &str, extra: &[&str]) -> i32 {
    let path = scratch(&format!("{class}-{size}.lag"));
    std::fs::write(&path, src).unwrap();
    let mut args = vec![cmd, path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let e = bounded(&args);
    let tail: String = e.stderr.chars().rev().take(600).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(e.signal.is_none(), "{class} at {size}: killed by signal {:?} after {:?}: {tail}", e.signal, e.elapsed);
    assert!(e.elapsed < TIME, "{class} at {size}: still running after {TIME:?}");
    let code = e.code.expect("an exit code");
    assert!((0..=3).contains(&code), "{class} at {size}: exit {code}: {tail}");
    eprintln!("{class} at {size}: exit {code} in {:.2} s", e.elapsed.as_secs_f64());
    code
}

fn sizes(small: &[usize], big: usize) -> Vec<usize> {
    let mut s = small.to_vec();
    if large() {
        s.push(big);
    }
    s
}

#[test]
fn long_sums_products_and_sign_runs() {
    for n in sizes(&[300, 3_000, 30_000], 300_000) {
        let sum: Vec<String> = (1..=n).map(|k| format!("{k}*x^2")).collect();
        let src = format!("state x\nenergy = {}\ninit x = 1\nsimulate t_end = 0.01", sum.join(" + "));
        assert_eq!(sweep_case("sum", n, &src, "run", &["--quiet"]), 0);
        let src = format!("state x\nenergy = {}x^2\ninit x = 1", "-".repeat(n));
        sweep_case("signs", n, &src, "check", &[]);
        // An error at the end of a long line: shown in a window of the line (past column
        // 65,535 the renderer once panicked).
        let src = format!("state x\nenergy = {} + y\ninit x = 1", sum.join(" + "));
        assert_eq!(sweep_case("error-in-a-long-line", n, &src, "check", &[]), 1);
    }
    // A product of n sums: its derivative has n terms of n − 1 factors, and its second
    // n² terms of n − 2. 300 factors pass the operand limit and are refused as too
    // large; in a debug build that takes about 30 s at 300 factors and 55 s at 3,000
    // (the arena stops building once it has overflowed).
    for n in sizes(&[30, 100], 3_000) {
        let prod: Vec<String> = (0..n).map(|k| format!("(1 + x/{})", k + 1)).collect();
        let src = format!("state x\nenergy = x^2 + 1e-9*{}\ninit x = 0.1\nsimulate t_end = 0.01", prod.join("*"));
        sweep_case("product", n, &src, "check", &[]);
    }
}

#[test]
fn many_primes_and_deep_nesting() {
    for n in sizes(&[10, 1_000, 30_000], 300_000) {
        let src = format!("coord q\nlagrangian = q{}^2/2\n", "'".repeat(n));
        // Beyond q' a prime is refused: a status of 1, never a crash.
        sweep_case("primes", n, &src, "check", &[]);
        let src = format!("state x\nenergy = {}x{}\n", "(".repeat(n), ")".repeat(n));
        sweep_case("parentheses", n, &src, "check", &[]);
        let src = format!("state x\nenergy = x{}\n", "^2".repeat(n));
        sweep_case("powers", n, &src, "check", &[]);
    }
}

#[test]
fn many_coordinates_with_each_method() {
    // Independent oscillators: n coordinates, a diagonal mass matrix.
    let lattice = |n: usize| {
        format!(
            "const N = {n}\ncoord q[N]\nlagrangian = sum(i in 0..N, q[i]'^2/2 - q[i]^2/2)\n\
             init q[i in 0..N] = 0.1\nsimulate t_end = 0.02, dt = 0.01"
        )
    };
    for n in sizes(&[10, 100, 1_000], 10_000) {
        for method in ["rk4", "verlet", "dopri5"] {
            assert_eq!(
                sweep_case(&format!("oscillators-{method}"), n, &lattice(n), "run", &["--method", method, "--quiet"]),
                0
            );
        }
    }
    // The implicit methods build a dense n × n Newton matrix: they run to a few hundred.
    for n in sizes(&[10, 100], 300) {
        for method in ["midpoint", "variational"] {
            assert_eq!(
                sweep_case(&format!("oscillators-{method}"), n, &lattice(n), "run", &["--method", method, "--quiet"]),
                0
            );
        }
    }
    // N bodies: a pair sum over all bodies. The explicit methods keep it rolled; the
    // implicit ones write it out and compile the dense Hessian of the Lagrangian (n² entries
    // of 3N coordinates: 160 bodies take about 30 s in a release build).
    let bodies = |n: usize| {
        format!(
            "const N = {n}\ncoord x[N], y[N]\nlagrangian = sum(i in 0..N, (x[i]'^2 + y[i]'^2)/2)\n\
             + 1/2*sum(i in 0..N, sum(j in 0..N, 1/sqrt((x[j] - x[i])^2 + (y[j] - y[i])^2 + 0.01)))\n\
             init x[i in 0..N] = cos(2*pi*i/N), y[i in 0..N] = sin(2*pi*i/N)\n\
             simulate t_end = 0.002, dt = 0.001"
        )
    };
    for n in sizes(&[10, 40], 160) {
        for method in ["rk4", "verlet", "dopri5", "midpoint", "variational"] {
            assert_eq!(
                sweep_case(&format!("bodies-{method}"), n, &bodies(n), "run", &["--method", method, "--quiet"]),
                0
            );
        }
    }
    // Past the implicit methods' tables (5 n² entries, at most 10⁸ together) a model is
    // refused before any derivative is taken.
    for method in ["midpoint", "variational"] {
        let code = sweep_case(&format!("oscillators-{method}"), 10_000, &lattice(10_000), "run", &["--method", method]);
        assert_eq!(code, 1, "refused by the derivation");
    }
    // Energy models: gradient descent, the minimizing movement, Langevin.
    let bowl = |n: usize| {
        format!(
            "const N = {n}\nstate w[N]\nenergy = sum(i in 0..N, (i + 1)*w[i]^2/2)\ntemperature = 0\n\
             init w[i in 0..N] = 1\nsimulate t_end = 0.02, dt = 0.01"
        )
    };
    for n in sizes(&[10, 100, 1_000], 10_000) {
        for method in ["euler", "em"] {
            assert_eq!(sweep_case(&format!("bowl-{method}"), n, &bowl(n), "run", &["--method", method, "--quiet"]), 0);
        }
    }
    for n in sizes(&[10, 100], 1_000) {
        assert_eq!(sweep_case("bowl-prox", n, &bowl(n), "run", &["--method", "prox", "--quiet"]), 0);
    }
}

#[test]
fn many_errors_and_large_files() {
    for n in sizes(&[100, 1_000, 10_000], 100_000) {
        let src: String = (0..n).map(|k| format!("param p{k} = undefined{k}\n")).collect();
        assert_eq!(sweep_case("errors", n, &src, "check", &[]), 1);
    }
    for mb in sizes(&[1, 10], 70) {
        // A model followed by megabytes of comment: read, or refused past 64 MB.
        let mut src = String::from("state x\nenergy = x^2\ninit x = 1\n");
        let line = format!("# {}\n", "x".repeat(98));
        src.push_str(&line.repeat(mb * 10_000));
        sweep_case("file", mb, &src, "check", &[]);
    }
}

#[test]
fn many_particles() {
    let src = "param T = 0.5\nstate x\nenergy = (x^2 - 1)^2\ntemperature = T\ninit x ~ normal(0, 0.5)";
    for n in sizes(&[1_000, 100_000], 10_000_000) {
        let p = n.to_string();
        let code = sweep_case("particles", n, src, "run", &["--particles", &p, "--t-end", "0.002", "--quiet"]);
        assert!(code == 0 || code == 2, "run or refused up front");
    }
}

/// A signal while the kernels compile ends the process at once (the run's
/// handler, which stops at the next row, is installed only after compiling),
/// and leaves no output file.
#[test]
fn a_signal_while_compiling_ends_the_process() {
    // Sixty bodies with `midpoint`: seconds of derivation and compilation in a debug build.
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nbody.lag")).unwrap();
    let path = scratch("signal.lag");
    std::fs::write(&path, src).unwrap();
    let out = scratch("signal.csv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lagc"))
        .args(["run", path.to_str().unwrap(), "--set", "N=60", "--method", "midpoint", "--quiet", "--out"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill with the pid of a child not yet waited for.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("still running 30 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.signal(), Some(libc::SIGTERM), "ended by the signal while compiling: {status:?}");
    assert!(!out.exists(), "no output file");
}
