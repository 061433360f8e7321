//! The files `lagc run --out` writes, byte for byte, against the same rows
//! computed through the library and written the way the writers did before
//! they formatted numbers themselves: CSV numbers by `sym::write_float`
//! (`core::fmt`), JSON by serde_json, NPY as a header and every value's
//! little-endian bytes (docs/numerics.md §Row output). Two models with
//! observes: the double pendulum, and one whose columns reach every layout
//! of a number (exponent form above 1e15 and below 1e-4, zero, an exact tie
//! between two shortest texts).

use lagc::{Method, RunConfig, RunOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Columns of every size: `big` crosses 1e15 and `small` 1e-4 as `q` moves,
/// `tie` is 1500000000000000.25, halfway between two 17-digit texts.
const SCALES: &str = "model scales
coord q
lagrangian = 1/2*q'^2 - 1/2*q^2
observe big = 3e15*q
observe small = 5e-4*q
observe tiny = 1e-300*q'
observe huge = -1e300*q
observe whole = 2^60
observe tie = 1500000000000000.25
init q = 1
";

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lagc-rows-output-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// The columns and rows of a run through the library.
fn library_rows(source: &str, opts: &RunOptions) -> (Vec<String>, Vec<Vec<f64>>) {
    let c = lagc::compile_for(source, "m", &[], opts.method).expect("the model compiles");
    let cfg = RunConfig::resolve(&c.model, opts).expect("the settings are valid");
    let columns = c.plan(&cfg).expect("the method fits").columns;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    c.run(&cfg, &mut rows).expect("the run succeeds");
    (columns, rows)
}

fn csv_text(columns: &[String], rows: &[Vec<f64>]) -> String {
    let mut s = columns.join(",") + "\n";
    for r in rows {
        let cells: Vec<String> = r.iter().map(|&x| lagc::sym::fmt_float(x)).collect();
        s += &cells.join(",");
        s.push('\n');
    }
    s
}

fn json_text(columns: &[String], rows: &[Vec<f64>]) -> String {
    let number = |x: f64| serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number);
    let rows: Vec<serde_json::Value> = rows.iter().map(|r| r.iter().map(|&x| number(x)).collect()).collect();
    serde_json::to_string(&serde_json::json!({ "columns": columns, "rows": rows })).unwrap() + "\n"
}

fn npy_bytes(columns: &[String], rows: &[Vec<f64>]) -> Vec<u8> {
    let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}), }}", rows.len(), columns.len());
    let mut header = dict.into_bytes();
    header.extend(std::iter::repeat_n(b' ', (64 - (10 + header.len() + 1) % 64) % 64));
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header);
    bytes.extend(rows.iter().flatten().flat_map(|x| x.to_le_bytes()));
    bytes
}

/// Runs `lagc run model --out PATH` for each format and compares the files
/// with the library's rows written the reference way.
fn check(model: &Path, source: &str, args: &[&str], opts: RunOptions) {
    let (columns, rows) = library_rows(source, &opts);
    assert!(rows.len() > 100, "{} rows", rows.len());
    let expected: [(&str, Vec<u8>); 3] = [
        ("csv", csv_text(&columns, &rows).into_bytes()),
        ("json", json_text(&columns, &rows).into_bytes()),
        ("npy", npy_bytes(&columns, &rows)),
    ];
    for (ext, want) in expected {
        let out = scratch(&format!("{}.{ext}", model.file_stem().unwrap().to_string_lossy()));
        let status = Command::new(env!("CARGO_BIN_EXE_lagc"))
            .arg("run")
            .arg(model)
            .args(args)
            .arg("--quiet")
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run lagc");
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        let got = std::fs::read(&out).unwrap();
        if got != want {
            let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
            let show =
                |b: &[u8]| String::from_utf8_lossy(&b[at.saturating_sub(60)..(at + 60).min(b.len())]).into_owned();
            panic!(
                "{} .{ext}: {} bytes written, {} expected; first difference at byte {at}:\n  written:  {:?}\n  expected: {:?}",
                model.display(),
                got.len(),
                want.len(),
                show(&got),
                show(&want)
            );
        }
    }
}

#[test]
fn the_double_pendulums_outputs_are_the_reference_writers_bytes() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/double_pendulum.lag");
    let source = std::fs::read_to_string(&model).unwrap();
    let opts = RunOptions { method: Some(Method::Rk4), t_end: Some(2.0), every: Some(1), ..Default::default() };
    check(&model, &source, &["--method", "rk4", "--t-end", "2", "--every", "1"], opts);
}

#[test]
fn numbers_of_every_size_are_written_as_before() {
    let model = scratch("scales.lag");
    std::fs::write(&model, SCALES).unwrap();
    let opts = RunOptions { method: Some(Method::Rk4), t_end: Some(3.0), dt: Some(0.01), ..Default::default() };
    check(&model, SCALES, &["--method", "rk4", "--t-end", "3", "--dt", "0.01"], opts);
}
