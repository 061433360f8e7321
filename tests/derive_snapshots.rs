//! `lagc derive` of every example, in text and LaTeX, as insta snapshots
//! (review material: a changed equation is a changed snapshot).

use lagc::Format;
use std::path::Path;

mod common;
use common::examples;

#[test]
fn derive_every_example() {
    let all = examples();
    assert_eq!(all.len(), 20, "a new example needs its snapshots: {all:?}");
    for path in all {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let c = lagc::compile_file(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(format!("derive_text__{stem}"), c.render(Format::Text).expect("printable"));
        insta::assert_snapshot!(format!("derive_latex__{stem}"), c.render(Format::Latex).expect("printable"));
    }
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
