//! Output files are complete or clearly not: a failed, interrupted or
//! refused run never replaces a file, two runs never share a temporary file,
//! a planted symbolic link is never followed, and outputs that cannot be
//! written or that are inputs are refused before the run. Faults are injected
//! from outside: signals sent to the process, a file-size limit, two runs at
//! once, links planted beside the output.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn lagc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lagc")).args(args).output().expect("run lagc")
}

/// A fresh directory of its own for each test.
fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lagc-outputs-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.lag")).to_str().unwrap().to_string()
}

/// The temporary files in `dir` (names ending in `.partial`).
fn partials(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect();
    v.sort();
    v
}

/// The path a message names after `marker`.
fn named_path(err: &str, marker: &str) -> PathBuf {
    let rest = &err[err.find(marker).unwrap_or_else(|| panic!("no path named: {err}")) + marker.len()..];
    PathBuf::from(rest.split([';', '\n']).next().unwrap().trim())
}

/// CSV text as a header and rows of numbers; every row must be whole.
fn parse_csv(text: &str) -> (String, Vec<Vec<f64>>) {
    let mut lines = text.lines();
    let header = lines.next().expect("a header").to_string();
    let width = header.split(',').count();
    let rows: Vec<Vec<f64>> =
        lines.map(|l| l.split(',').map(|x| x.parse().unwrap_or_else(|_| panic!("row {l:?}"))).collect()).collect();
    assert!(rows.iter().all(|r| r.len() == width), "every row has {width} values");
    (header, rows)
}

/// A model that blows up: `x'' = 4x³` from `x = 1` reaches infinity at a
/// finite time (about t = 0.93).
const BLOW_UP: &str = "coord x\nlagrangian = 1/2*x'^2 + x^4\ninit x = 1\n";

#[test]
fn a_failed_run_keeps_its_rows_under_a_temporary_name_and_the_old_file() {
    let d = scratch("failed");
    let model = d.join("blow.lag");
    std::fs::write(&model, BLOW_UP).unwrap();
    let out_path = d.join("out.csv");
    let plot = d.join("fig.svg");
    std::fs::write(&out_path, "PRE\n").unwrap();
    std::fs::write(&plot, "PRE\n").unwrap();
    let out = lagc(&["run", s(&model), "--out", s(&out_path), "--plot", s(&plot)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("non-finite state") && err.contains("out.csv is unchanged"), "{err}");
    assert!(err.contains("fig.svg is unchanged"), "{err}");
    assert_eq!(std::fs::read_to_string(&out_path).unwrap(), "PRE\n", "the old output is intact");
    assert_eq!(std::fs::read_to_string(&plot).unwrap(), "PRE\n", "the old figure is intact");
    let kept = named_path(&err, " are in ");
    let figure = named_path(&err, "their figure is in ");
    assert!(std::fs::read_to_string(&figure).unwrap().contains("<svg"), "the failed run's figure is kept");
    assert_eq!(partials(&d), vec![figure, kept.clone()], "the named files are the only temporary files");
    let name = kept.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with(".out.csv.") && name.ends_with(".partial"), "{name}");
    let (header, rows) = parse_csv(&std::fs::read_to_string(&kept).unwrap());
    assert_eq!(header, "t,x,x',energy");
    assert!(rows.len() > 10, "{} rows kept", rows.len());
    // Rows on the output grid up to the failure, each with H = ½v² − x⁴ = −1 (to the method's error).
    assert!(rows.windows(2).all(|w| (w[1][0] - w[0][0] - 0.001).abs() < 1e-9));
    assert!((rows[0][3] + 1.0).abs() < 1e-12 && (rows[5][3] + 1.0).abs() < 1e-6, "{:?}", &rows[..6]);
}

/// Starts a long run writing `out` (an oscillator to t = 10⁷, a row every
/// 10⁴ steps of 10⁻³), and waits until its temporary file holds rows.
fn long_run(dir: &Path, out: &Path) -> Child {
    let model = dir.join("oscillator.lag");
    std::fs::write(&model, "coord x\nlagrangian = 1/2*x'^2 - 1/2*x^2\ninit x = 1\n").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_lagc"))
        .args(["run", s(&model), "--t-end", "1e7", "--every", "10000", "--out", s(out)])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !partials(dir).iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 10_000)) {
        assert!(start.elapsed() < Duration::from_secs(120), "the run never wrote rows");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn sigint_sigterm_and_sighup_stop_the_run_and_keep_its_rows() {
    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")] {
        let d = scratch(&format!("signal-{name}"));
        let out_path = d.join("long.csv");
        std::fs::write(&out_path, "PRE\n").unwrap();
        let child = long_run(&d, &out_path);
        // SAFETY: sends a signal to our own child process.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(128 + sig), "{name}: {err}");
        assert!(err.contains("interrupted at t = ") && err.contains(&format!("by {name}")), "{err}");
        assert_eq!(std::fs::read_to_string(&out_path).unwrap(), "PRE\n", "{name}: the old output is intact");
        let kept = named_path(&err, " are in ");
        assert_eq!(partials(&d), vec![kept.clone()], "{name}");
        let (header, rows) = parse_csv(&std::fs::read_to_string(&kept).unwrap());
        assert_eq!(header, "t,x,x',energy");
        assert!(rows.len() > 10, "{name}: {} rows kept", rows.len());
        assert!(rows.windows(2).all(|w| (w[1][0] - w[0][0] - 10.0).abs() < 1e-6), "{name}: rows evenly spaced");
    }
}

#[test]
fn two_runs_writing_one_output_leave_one_of_them_whole() {
    let d = scratch("concurrent");
    let a = d.join("a.lag");
    let b = d.join("b.lag");
    std::fs::write(&a, "coord x\nlagrangian = 1/2*x'^2 - 1/2*x^2\ninit x = 1\n").unwrap();
    std::fs::write(&b, "coord y, z\nlagrangian = 1/2*y'^2 + 1/2*z'^2 - 2*y^2 - z^4\ninit y = 1, z = 0.5\n").unwrap();
    let args = ["--t-end", "200", "--dt", "0.001", "--every", "1", "--quiet"];
    let expected: Vec<Vec<u8>> = [&a, &b].iter().map(|m| lagc(&[&["run", s(m)][..], &args].concat()).stdout).collect();
    let out_path = d.join("out.csv");
    for round in 0..3 {
        let children: Vec<Child> = [&a, &b]
            .iter()
            .map(|m| {
                Command::new(env!("CARGO_BIN_EXE_lagc"))
                    .args(["run", s(m), "--out", s(&out_path)])
                    .args(args)
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(0), "round {round}: {}", stderr(&out));
        }
        let got = std::fs::read(&out_path).unwrap();
        assert!(got == expected[0] || got == expected[1], "round {round}: the output is neither run's, whole");
        assert!(partials(&d).is_empty(), "round {round}: {:?}", partials(&d));
    }
}

#[test]
fn a_planted_symbolic_link_is_not_followed() {
    let d = scratch("symlink");
    let victim = d.join("victim.txt");
    std::fs::write(&victim, "VICTIM\n").unwrap();
    let planted = d.join(".out.csv.partial");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let out_path = d.join("out.csv");
    let out = lagc(&["run", &example("pendulum"), "--t-end", "1", "--out", s(&out_path), "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "VICTIM\n", "the link's target is untouched");
    assert_eq!(std::fs::read_link(&planted).unwrap(), victim, "the planted link is left alone");
    assert!(std::fs::symlink_metadata(&out_path).unwrap().file_type().is_file(), "the output is a file, not a link");
    let (header, rows) = parse_csv(&std::fs::read_to_string(&out_path).unwrap());
    assert!(header.starts_with("t,"), "{header}");
    assert!(!rows.is_empty());
}

#[test]
fn replacing_an_output_keeps_its_permissions() {
    let d = scratch("mode");
    let out_path = d.join("out.csv");
    let plot = d.join("fig.svg");
    for (p, mode) in [(&out_path, 0o600), (&plot, 0o640)] {
        std::fs::write(p, "PRE\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let out =
        lagc(&["run", &example("pendulum"), "--t-end", "1", "--out", s(&out_path), "--plot", s(&plot), "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(std::fs::read_to_string(&out_path).unwrap().starts_with("t,"), "replaced");
    assert!(std::fs::read_to_string(&plot).unwrap().contains("<svg"), "replaced");
    assert_eq!(std::fs::metadata(&out_path).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&plot).unwrap().mode() & 0o777, 0o640);
}

/// Refused before the run: status 2 with `message`, no summary, no file written.
fn assert_refused(out: &Output, message: &str, dir: &Path, untouched: &[(&Path, &str)]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(message), "{err}");
    assert!(!err.contains(" rows,") && !err.contains("rk4"), "refused before the run: {err}");
    assert!(partials(dir).is_empty(), "{:?}", partials(dir));
    for (p, text) in untouched {
        assert_eq!(std::fs::read_to_string(p).unwrap(), *text, "{}", p.display());
    }
}

#[test]
fn outputs_that_are_one_file_or_an_input_are_refused() {
    let d = scratch("same");
    let x = d.join("x.csv");
    std::fs::write(&x, "PRE\n").unwrap();
    let ensemble = [example("double_well"), "--particles".into(), "10".into(), "--t-end".into(), "1".into()];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = vec!["run"];
        args.extend(ensemble.iter().map(String::as_str));
        args.extend(extra);
        lagc(&args)
    };
    // The same string, another spelling, a hard link.
    let spelled = d.join(".").join("x.csv");
    let linked = d.join("hard.csv");
    std::fs::hard_link(&x, &linked).unwrap();
    for other in [&x, &spelled, &linked] {
        let out = run(&["--out", s(&x), "--dump", s(other)]);
        assert_refused(&out, "are the same file", &d, &[(&x, "PRE\n")]);
    }
    // The model file, directly and through a symbolic link.
    let m = d.join("m.csv");
    std::fs::write(&m, BLOW_UP).unwrap();
    let alias = d.join("alias.csv");
    std::os::unix::fs::symlink(&m, &alias).unwrap();
    for out_path in [&m, &alias] {
        let out = lagc(&["run", s(&m), "--t-end", "0.1", "--out", s(out_path)]);
        assert_refused(&out, "is the model file", &d, &[(&m, BLOW_UP)]);
    }
    // A `--data` file.
    let line = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/line.csv")).unwrap();
    let data = d.join("line.csv");
    std::fs::write(&data, &line).unwrap();
    let given = format!("x={}", s(&data));
    let out = lagc(&["run", &example("least_squares"), "--data", &given, "--out", s(&data)]);
    assert_refused(&out, "is the --data file", &d, &[(&data, &line)]);
    // A data file the model's own `data` statement reads.
    let model = d.join("fit.lag");
    std::fs::write(&model, "data x[M], y[M] = \"line.csv\"\nstate a\nenergy = sum(i in 0..M, (a - y[i])^2)\n").unwrap();
    let out = lagc(&["run", s(&model), "--method", "euler", "--t-end", "0.1", "--out", s(&data)]);
    assert_refused(&out, "is the data file", &d, &[(&data, &line)]);
}

#[test]
fn unwritable_outputs_are_refused_before_the_run() {
    let d = scratch("unwritable");
    let out_path = d.join("out.csv");
    let dir_out = d.join("dir.csv");
    std::fs::create_dir(&dir_out).unwrap();
    let a_file = d.join("file");
    std::fs::write(&a_file, "PRE\n").unwrap();
    let pendulum = example("pendulum");
    let missing = d.join("missing").join("p.svg");
    let out = lagc(&["run", &pendulum, "--out", s(&out_path), "--plot", s(&missing)]);
    assert_refused(&out, "does not exist", &d, &[]);
    let out = lagc(&["run", &pendulum, "--out", s(&out_path), "--plot", s(&dir_out.join("p.svg"))]);
    // A directory's contents can be written: this one runs.
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::remove_file(&out_path).unwrap();
    let out = lagc(&["run", &pendulum, "--out", s(&dir_out)]);
    assert_refused(&out, "it is a directory", &d, &[]);
    let svg_dir = d.join("fig.svg");
    std::fs::create_dir(&svg_dir).unwrap();
    let out = lagc(&["run", &pendulum, "--out", s(&out_path), "--plot", s(&svg_dir)]);
    assert_refused(&out, "it is a directory", &d, &[]);
    let under_file = a_file.join("finals.csv");
    let out =
        lagc(&["run", &example("double_well"), "--particles", "10", "--out", s(&out_path), "--dump", s(&under_file)]);
    assert_refused(&out, "is not a directory", &d, &[(&a_file, "PRE\n")]);
    assert!(!out_path.exists(), "no output was written");
}

#[test]
fn a_full_disk_names_the_file_and_keeps_the_old_output() {
    let d = scratch("full");
    let out_path = d.join("out.csv");
    std::fs::write(&out_path, "PRE\n").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lagc"));
    cmd.args(["run", &example("pendulum"), "--t-end", "1000", "--dt", "0.001", "--every", "1", "--out", s(&out_path)]);
    // A file-size limit of 1 MB makes writes past it fail with EFBIG, as a full disk would with ENOSPC.
    // SAFETY: async-signal-safe calls only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit { rlim_cur: 1 << 20, rlim_max: 1 << 20 };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("File too large") && err.contains("out.csv is unchanged"), "{err}");
    assert!(err.contains(&format!("(for {})", out_path.display())), "the message names the file: {err}");
    assert_eq!(std::fs::read_to_string(&out_path).unwrap(), "PRE\n", "the old output is intact");
    assert!(partials(&d).is_empty(), "{:?}", partials(&d));
}
