//! Every command README.md shows, run as a new user would (in a scratch
//! directory, with the examples of this checkout), with the exit status the
//! README gives (`# exit N`, else 0). And the README's library example.

use std::path::Path;
use std::process::Command;

/// The `lagc …` and `cargo run --release -- …` lines of the README's code blocks.
fn commands() -> Vec<(Vec<String>, i32)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut in_block = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let (cmd, comment) = match line.split_once('#') {
            Some((c, k)) => (c.trim(), k.trim()),
            None => (line.trim(), ""),
        };
        let rest = if let Some(r) = cmd.strip_prefix("cargo run --release -- ") {
            r
        } else if let Some(r) = cmd.strip_prefix("lagc ") {
            r
        } else {
            continue;
        };
        let code = comment.strip_prefix("exit ").and_then(|c| c.parse().ok()).unwrap_or(0);
        let args = rest
            .split_whitespace()
            .map(|a| {
                if a.starts_with("examples/") || a.starts_with("docs/") {
                    root.join(a).to_str().unwrap().to_string()
                } else {
                    a.to_string()
                }
            })
            .collect();
        out.push((args, code));
    }
    out
}

#[test]
fn every_readme_command_runs_as_documented() {
    let cmds = commands();
    assert!(cmds.len() >= 8, "found only {} commands", cmds.len());
    let dir = std::env::temp_dir().join(format!("lagc-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (args, code) in cmds {
        let out = Command::new(env!("CARGO_BIN_EXE_lagc")).args(&args).current_dir(&dir).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "lagc {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    // The files the tour writes are there.
    for f in ["dp.csv", "dp.svg", "dp.npy", "rb.svg", "dw.svg", "particles.csv", "chain.csv"] {
        assert!(dir.join(f).exists(), "{f} was not written");
    }
}

#[test]
fn the_readme_library_example_works() {
    let src = "coord x\nlagrangian = 1/2*x'^2 - 1/2*x^2\ninit x = 1";
    let c = lagc::compile_for(src, "oscillator", &[], None).unwrap();
    assert_eq!(c.text_of(lagc::Part::Forcing(0)), "-x");
    let text = c.render(lagc::Format::Text).expect("printable");
    assert!(text.contains("x'' = -x"), "{text}");
    let cfg = lagc::RunConfig::resolve(&c.model, &Default::default()).unwrap();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    c.run(&cfg, &mut rows).unwrap();
    assert_eq!(rows.len(), 10_001);
    assert!((rows.last().unwrap()[1] - 10f64.cos()).abs() < 1e-9);
    // The README's library snippet is this test, line for line.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for line in [
        "let src = \"coord x\\nlagrangian = 1/2*x'^2 - 1/2*x^2\\ninit x = 1\";",
        "let c = lagc::compile_for(src, \"oscillator\", &[], None).unwrap();",
        "assert_eq!(c.text_of(lagc::Part::Forcing(0)), \"-x\");",
        "c.run(&cfg, &mut rows).unwrap();",
    ] {
        assert!(readme.contains(line), "README no longer shows: {line}");
    }
}
