//! Replays the fuzzers' inputs as regular tests: every `tests/fuzz_corpus/*.lag`
//! (inputs that once crashed, hung or ran out of memory, minimised) and the
//! minimised corpus in `tests/fuzz_corpus/corpus/`, through the pipelines of
//! `fuzz/fuzz_targets/front_end.rs` and `fuzz/fuzz_targets/kernels.rs`.
//! Errors are fine; a panic is a bug.

use std::path::{Path, PathBuf};

/// Inputs that still panic, skipped by the replay until their bug is fixed.
/// Each has its own ignored test below, so that `--ignored` shows them.
const KNOWN_PANICS: &[&str] = &[];

/// Inputs that made the fuzzer time out (over 10 s). They do not panic, but
/// replaying them in a debug build takes minutes, so the replay skips them;
/// each has its own ignored test below.
const KNOWN_SLOW: &[&str] = &[
    // SLOW: the pendulum_chain example with N = 100 takes 0.5 s to derive in
    // release (dense N x N trigonometric mass matrix): legitimate but slow.
    "timeout_pendulum_chain_n100.lag",
    // SLOW: `x[i]'^4` in an 11-link chain; the run refuses it (singular mass
    // matrix at t = 0, correct) after 1.8 s in release, mostly kernel building.
    "slow_quartic_velocities_kernels.lag",
    // SLOW: `x[i]'^3` in a 30-link chain: N^4 terms in the mass matrix, 1.3 s
    // to derive and 1.7 s per format in release.
    "slow_cubic_velocities_n30.lag",
    // SLOW: `x[i]'^9 * y[i]'^2` in a 49-link chain: 2 s in release within the
    // expansion budget (73 s and 3.4 GB without it).
    "slow_ninth_power_velocities_n49.lag",
];

use lagc::fuzzing::{front_end, kernels};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus").join(sub)
}

/// Runs both pipelines on one file; `Err` names the pipeline and the panic.
fn replay(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).expect("readable");
    // The fuzz targets skip input that is not UTF-8, as `compile_file` refuses it.
    let Ok(source) = String::from_utf8(bytes) else { return Ok(()) };
    for (name, target) in [("front_end", front_end as fn(&str)), ("kernels", kernels)] {
        if let Err(e) = std::panic::catch_unwind(|| target(&source)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Err(format!("{}: {name} panicked: {msg}", path.display()));
        }
    }
    Ok(())
}

fn replay_all(paths: &[PathBuf]) {
    let mut failures = Vec::new();
    for p in paths {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if KNOWN_PANICS.contains(&name) || KNOWN_SLOW.contains(&name) {
            continue;
        }
        if let Err(e) = replay(p) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{} input(s) panicked:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn regression_inputs_never_panic() {
    let paths = files(&dir(""));
    assert!(paths.iter().any(|p| p.extension().is_some_and(|x| x == "lag")), "no regression inputs");
    for name in KNOWN_PANICS.iter().chain(KNOWN_SLOW) {
        assert!(paths.iter().any(|p| p.ends_with(name)), "KNOWN_PANICS names a missing file {name}");
    }
    replay_all(&paths);
}

#[test]
fn the_minimised_fuzz_corpus_never_panics() {
    let paths = files(&dir("corpus"));
    assert!(paths.len() >= 20, "the minimised corpus has only {} inputs", paths.len());
    replay_all(&paths);
}

#[test]
#[ignore = "SLOW: pendulum_chain with N = 100 takes 0.5 s to derive in release, seconds more in a debug build"]
fn timeout_pendulum_chain_n100() {
    replay(&dir("timeout_pendulum_chain_n100.lag")).unwrap();
}

#[test]
#[ignore = "SLOW: 11-link chain quartic in the velocities: 1.8 s to build and run in release"]
fn slow_quartic_velocities_kernels() {
    replay(&dir("slow_quartic_velocities_kernels.lag")).unwrap();
}

#[test]
#[ignore = "SLOW: 30-link chain cubic in the velocities: 1.3 s to derive, 1.7 s per format, in release"]
fn slow_cubic_velocities_n30() {
    replay(&dir("slow_cubic_velocities_n30.lag")).unwrap();
}

#[test]
#[ignore = "SLOW: 49-link chain with x'^9 y'^2: 2 s to derive in release"]
fn slow_ninth_power_velocities_n49() {
    replay(&dir("slow_ninth_power_velocities_n49.lag")).unwrap();
}

/// The large-size mode of the fuzz targets on the examples: each scaled by 10
/// (its consts ten times larger, its energy or Lagrangian a sum of ten copies)
/// goes through the front end without a panic. The scaling itself is checked
/// on one example: its family is ten times longer and its Lagrangian has ten
/// copies.
#[test]
fn the_examples_scaled_by_ten_never_panic() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let fput = std::fs::read_to_string(examples.join("fput.lag")).unwrap();
    let scaled = lagc::fuzzing::scale(&fput, 10);
    assert!(scaled.contains("const N = 320\n"), "{scaled}");
    let copies = scaled.lines().find(|l| l.starts_with("lagrangian = ")).expect("a lagrangian line");
    assert_eq!(copies.matches(") + (").count(), 9, "{copies}");
    for path in files(&examples).into_iter().filter(|p| p.extension().is_some_and(|x| x == "lag")) {
        // The 10-link chain scaled is a 100-link chain: seconds in release, minutes here.
        if path.ends_with("pendulum_chain.lag") {
            continue;
        }
        let source = std::fs::read(&path).unwrap();
        let mut data = vec![0u8];
        data.extend_from_slice(&source);
        let start = std::time::Instant::now();
        lagc::fuzzing::front_end_scaled(&data);
        eprintln!("{}: {:.2} s", path.display(), start.elapsed().as_secs_f64());
    }
}
