//! What lagc prints and where: no terminal escapes from a model file, warnings
//! for names that look alike, quiet ends on a closed pipe or a full stream,
//! and messages that name the real cause with numbers in their shortest form.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn lagc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lagc")).args(args).output().expect("run lagc")
}

fn model(name: &str, src: &str) -> String {
    let d = std::env::temp_dir().join(format!("lagc-messages-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(format!("{name}.lag"));
    std::fs::write(&p, src).unwrap();
    p.to_str().unwrap().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.lag")).to_str().unwrap().to_string()
}

/// The longest run of decimal digits in `text`.
fn longest_digits(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0)
}

#[test]
fn escape_sequences_in_a_model_never_reach_the_terminal() {
    // OSC 0 (set the window title) ended by BEL, then CSI 2J (clear the screen), and a
    // right-to-left override, in a comment above an error.
    let src = "coord x # \u{1b}]0;pwned\u{7}\u{1b}[2J \u{202e}\nlagrangian = 1/2*x'^2 - y\n";
    let out = lagc(&["check", &model("escapes", src)]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for c in ['\u{1b}', '\u{7}', '\u{202e}'] {
        assert!(!err.contains(c), "{c:?} reached the terminal:\n{err}");
    }
    assert!(err.contains(r"# \u{1b}]0;pwned\u{7}\u{1b}[2J \u{202e}"), "{err}");
    assert!(err.contains("unknown name `y`"), "{err}");
}

#[test]
fn lookalike_names_are_warned_with_both_declarations() {
    // A Cyrillic `х` (U+0445) beside a Latin `x`: two variables, accepted, with a warning.
    let path = model("lookalike", "coord x, \u{445}\nlagrangian = 1/2*x'^2 + 1/2*\u{445}'^2 - x^2\n");
    let out = lagc(&["check", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("⚠ `\u{445}` looks like `x` but is another name"), "{err}");
    assert!(err.contains("`x` declared here") && err.contains("U+0445"), "{err}");
    assert!(err.contains("1 warning in"), "{err}");
    // `run` shows it too; `derive` as well.
    let run = lagc(&["run", &path, "--t-end", "0.01", "--out", &format!("{path}.csv")]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(stderr(&run).contains("looks like `x`"), "{}", stderr(&run));
    assert!(stderr(&lagc(&["derive", &path])).contains("looks like `x`"));
    // Names that differ in Latin letters only are not confusable.
    let plain = lagc(&["check", &model("plain", "coord x, y\nlagrangian = 1/2*x'^2 + 1/2*y'^2\n")]);
    assert_eq!((plain.status.code(), stderr(&plain)), (Some(0), String::new()));
}

/// Runs `lagc args` with standard output in a pipe that is closed after its
/// first line (`lagc … | head -1`); returns that line and the finished process.
fn first_line_then_close(args: &[&str]) -> (String, Output) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lagc"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lagc");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    (first, child.wait_with_output().unwrap())
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    // `lagc ir … | head -1`: far more IR than one line and a pipe's buffer.
    let (first, out) = first_line_then_close(&["ir", &example("fput"), "--set", "N=64"]);
    assert!(first.starts_with("function"), "{first}");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}

#[test]
fn a_run_whose_reader_goes_away_ends_quietly() {
    // `lagc run … | head -1`: 20,001 rows, far more than a pipe's buffer.
    let (first, out) = first_line_then_close(&["run", &example("pendulum"), "--t-end", "20"]);
    assert!(first.starts_with("t,th"), "{first}");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("error"), "{}", stderr(&out));
}

#[test]
fn a_full_stream_is_an_error_where_one_can_be_written_and_never_a_panic() {
    let full = || File::options().write(true).open("/dev/full").expect("/dev/full");
    // Diagnostics to a full standard error: the model's exit status, no panic (101).
    let bad = model("bad", "coord x\nlagrangian = x'^2 +\n");
    let out = Command::new(env!("CARGO_BIN_EXE_lagc")).args(["check", &bad]).stderr(full()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    // A full standard output: a message on standard error and status 2.
    let ok = example("pendulum");
    let out = Command::new(env!("CARGO_BIN_EXE_lagc")).args(["check", &ok]).stdout(full()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot write to standard output"), "{}", stderr(&out));
    // Help goes to standard output too.
    let out = Command::new(env!("CARGO_BIN_EXE_lagc")).arg("--help").stdout(full()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot write to standard output"), "{}", stderr(&out));
    // Both full: nothing can be said, and the status still tells.
    let out =
        Command::new(env!("CARGO_BIN_EXE_lagc")).args(["derive", &ok]).stdout(full()).stderr(full()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_huge_gravity_is_not_reported_as_a_singular_mass_matrix() {
    // `M` of the chain does not depend on `g`; with g = 1e200 the first step's stages overflow.
    let csv = model("chain", "") + ".csv";
    let out = lagc(&["run", &example("pendulum_chain"), "--set", "g=1e200", "--t-end", "1", "--out", &csv]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("singular mass matrix inside a step, though regular where the step began"), "{err}");
    assert!(err.contains("at t = 0; state: q[0] = 0.5"), "{err}");
    // The largest rate, g·sin(0.5)·…, in its shortest form: no 200-digit number.
    assert!(err.contains("e199"), "{err}");
    assert!(longest_digits(&err) <= 17, "{err}");
}

#[test]
fn numbers_in_settings_errors_are_shortest_round_trip() {
    let out = lagc(&["run", &example("pendulum"), "--t0", "1e200", "--t-end", "1e100"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("t_end (1e100) is before t0 (1e200)"), "{err}");
    assert!(longest_digits(&err) <= 17, "{err}");
}

#[test]
fn an_ensemble_summary_prints_huge_and_tiny_means_in_exponent_form() {
    // E = k x²/2 with k = 1e-200 is about 5e-201: in six decimals it would
    // read 0.000000; in exponent form it is there, and no number is long.
    let out = Command::new(env!("CARGO_BIN_EXE_lagc"))
        .args(["run", &example("ornstein_uhlenbeck"), "--set", "k=1e-200", "--t-end", "0.1", "--out"])
        .arg(std::env::temp_dir().join(format!("lagc-means-{}.csv", std::process::id())))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("final means: x 1.0"), "{err}");
    assert!(err.contains("e-201"), "{err}");
    assert!(longest_digits(&err) <= 17, "{err}");
}
