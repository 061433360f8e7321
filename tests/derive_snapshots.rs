//! `lagc derive` of every example, in text and LaTeX, as insta snapshots
//! (review material: a changed equation is a changed snapshot).

use lagc::Format;
use std::path::Path;

mod common;
use common::examples;

#[test]
fn derive_every_example() {
    let all = examples();
    for path in &all {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let c = lagc::compile_file(path, &[]).unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(format!("derive_text__{stem}"), c.render(Format::Text).expect("printable"));
        insta::assert_snapshot!(format!("derive_latex__{stem}"), c.render(Format::Latex).expect("printable"));
    }
    let snapshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let missing: Vec<&Path> = all
        .iter()
        .filter(|p| {
            let stem = p.file_stem().unwrap().to_str().unwrap();
            !snapshots.join(format!("derive_snapshots__derive_text__{stem}.snap")).exists()
        })
        .map(|p| p.as_path())
        .collect();
    assert!(all.len() >= 20 && missing.is_empty(), "a new example needs its snapshots: {missing:?}");
}

/// The plain smoke test beside the snapshots: the chain at its default N.
#[test]
fn pendulum_chain_at_default_n() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pendulum_chain.lag");
    let c = lagc::compile_file(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.model.vars.len(), 10);
    let text = c.render(Format::Text).expect("printable");
    assert!(text.starts_with("model pendulum_chain (Lagrangian, 10 coordinates)"), "{text}");
    assert!(text.contains("  M[q[0], q[0]] = 10*m*l^2\n"), "{text}");
    assert!(text.contains("  M[q[0], q[9]] = m*l^2*cos(q[0] - q[9])\n"), "{text}");
    assert!(text.contains("  M[q[9], q[9]] = m*l^2\n"), "{text}");
    let tex = c.render(Format::Latex).expect("printable");
    assert!(tex.starts_with("\\begin{align*}") && tex.ends_with("\\end{align*}\n"), "{tex}");
}

/// The text of one expression does not depend on what was printed before
/// it (`tidy` creates nodes; the printer must not order by node id alone).
#[test]
fn text_does_not_depend_on_history() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/double_pendulum.lag");
    let fresh = lagc::compile_file(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
    let used = lagc::compile_file(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
    let _ = used.render(Format::Text);
    for (i, j) in [(0, 0), (0, 1), (1, 1)] {
        assert_eq!(
            fresh.text_of(lagc::Part::MassMatrix(i, j)),
            used.text_of(lagc::Part::MassMatrix(i, j)),
            "M[{i}][{j}]"
        );
    }
}

/// Structural checks of a LaTeX `align*` block: braces balance and never go
/// below zero, `\begin`/`\end` nest, each row's `\left`s and `\right`s pair
/// up, every non-ASCII character is inside `\text{…}` (math mode rejects it
/// raw), and no row says `X &= X`.
fn check_latex(tex: &str) -> Result<(), String> {
    let mut depth = 0usize;
    // The brace depth at which each open `\text{` group began.
    let mut text_groups: Vec<usize> = Vec::new();
    let mut envs: Vec<String> = Vec::new();
    let mut rest = tex;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("\\{").or_else(|| rest.strip_prefix("\\}")) {
            rest = r;
            continue;
        }
        for (cmd, open) in [("\\begin{", true), ("\\end{", false)] {
            if let Some(r) = rest.strip_prefix(cmd) {
                let name = &r[..r.find('}').ok_or("an unclosed environment name")?];
                if open {
                    envs.push(name.to_string());
                } else if envs.pop().as_deref() != Some(name) {
                    return Err(format!("\\end{{{name}}} closes nothing"));
                }
            }
        }
        if let Some(r) = rest.strip_prefix("\\text{") {
            text_groups.push(depth);
            depth += 1;
            rest = r;
            continue;
        }
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1).ok_or("a closing brace without an opening one")?;
                if text_groups.last() == Some(&depth) {
                    text_groups.pop();
                }
            }
            c if !c.is_ascii() && text_groups.is_empty() => return Err(format!("{c:?} in math mode")),
            _ => {}
        }
        rest = &rest[c.len_utf8()..];
    }
    if depth != 0 || !envs.is_empty() {
        return Err(format!("{depth} braces and environments {envs:?} left open"));
    }
    for row in tex.split(" \\\\\n") {
        if row.matches("\\left").count() != row.matches("\\right").count() {
            return Err(format!("unpaired \\left/\\right in {row}"));
        }
        if let Some((lhs, rhs)) = row.split_once("&=") {
            if lhs.trim() == rhs.trim() {
                return Err(format!("a tautology: {row}"));
            }
        }
    }
    Ok(())
}

#[test]
fn the_latex_checker_finds_what_it_looks_for() {
    assert!(check_latex("\\begin{align*}\nx &= \\text{ж} \\left(y\\right)\n\\end{align*}\n").is_ok());
    for bad in [
        "x &= ж",
        "x &= {y",
        "x &= y}{",
        "x &= \\left(y",
        "T &= T",
        "\\begin{pmatrix} x \\end{bmatrix}",
        "x &= \\text{a} ж",
    ] {
        assert!(check_latex(bad).is_err(), "{bad}");
    }
}

/// Every example, and models with non-ASCII names, observes, forces, more
/// than ten coordinates and a full metric, print valid LaTeX holding
/// everything the text form holds: `M` and `f` for Lagrangian models, `∇²E`
/// for energy models.
#[test]
fn latex_is_well_formed_and_complete() {
    let mut models: Vec<(String, lagc::Compiled)> = examples()
        .into_iter()
        .map(|p| (p.display().to_string(), lagc::compile_file(&p, &[]).unwrap_or_else(|e| panic!("{e}"))))
        .collect();
    for (name, src) in [
        (
            "unicode_lagrangian",
            "param ħ = 1, ℓ = 2, ж = 3\ncoord φ1, жук\nlet x = ℓ*sin(φ1)\n\
             lagrangian = ħ/2*(φ1'^2 + жук'^2) + ж*cos(φ1) - x*жук\n\
             force жук = -ж*жук'\nobserve энергия = жук^2\n",
        ),
        (
            "unicode_energy",
            "param ħ = 1, ℓ = 2, ж = 3, T = 0.5\nstate x, мю\nenergy = ħ*x^2 + ℓ*мю^2 + ж*x*мю\ntemperature = T\n",
        ),
        ("chain_of_eleven", "const N = 11\ncoord q[N]\nlagrangian = sum(i in 0..N, 1/2*q[i]'^2 - 1/2*q[i]^2)\n"),
        ("full_metric", "state x, y\nenergy = x^4 + y^2\nmetric = [[2, 1], [1, 2]]\n"),
    ] {
        models.push((name.into(), lagc::compile_source(src, name, &[]).unwrap_or_else(|d| panic!("{}", d.render()))));
    }
    for (name, c) in &models {
        let tex = c.render(Format::Latex).expect("printable");
        if let Err(e) = check_latex(&tex) {
            panic!("{name}: {e}\n{tex}");
        }
        let indexed = matches!(&c.equations, lagc::Equations::Lagrangian(e) if e.indexed.is_some());
        let needs: &[&str] = match c.model.kind {
            // Equations by segments: a line per segment of each quantity.
            lagc::ModelKind::Lagrangian if indexed => &["\nM_{", "\nf_{"],
            lagc::ModelKind::Lagrangian => &["\nM &= ", "\nf &= "],
            lagc::ModelKind::Energy => &["\\nabla^2 E &= "],
        };
        for need in needs {
            assert!(tex.contains(need), "{name}: no {need:?} in\n{tex}");
        }
        let text = c.render(Format::Text).expect("printable");
        for line in text.lines() {
            let parts: Vec<&str> = line.split(" = ").map(str::trim).collect();
            assert!(parts.windows(2).all(|w| w[0] != w[1]), "{name}: a tautology: {line}");
        }
    }
    let tex = |name: &str| {
        let (_, c) = models.iter().find(|(n, _)| n == name).expect("model");
        c.render(Format::Latex).expect("printable")
    };
    let u = tex("unicode_lagrangian");
    for want in [
        "\\hbar",
        "\\ell",
        "\\text{ж}",
        "\\phi_{1}",
        "\\dot{\\text{жук}}",
        "Q_{\\text{жук}} &= ",
        "\\text{энергия} &= ",
    ] {
        assert!(u.contains(want), "no {want:?} in\n{u}");
    }
    let e = tex("unicode_energy");
    assert!(e.contains("\nT &= 0.5 \\\\\n"), "{e}");
    assert!(tex("chain_of_eleven").contains("\\left(\\begin{array}{ccccccccccc}"));
    assert!(tex("full_metric").contains("-g^{-1} \\nabla E"));
    assert!(tex("chain_of_eleven").contains("\\dot{q}_{0}"));
}
