//! The Cranelift IR of the kernels of two small models, as `lagc ir` prints
//! it, so that a change to code generation shows in review: the pendulum's
//! Störmer–Verlet loop (the right-hand side with its in-kernel solve, inlined
//! into the loop) and the double well's Euler–Maruyama block and
//! minimizing-movement kernels.

use lagc::{BackendKind, Kernels, Method};

fn ir(example: &str, method: Method) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{example}.lag"));
    let c = lagc::cli::load::compile_file_for(&path, &[], Some(method), &[]).expect("example compiles");
    let plan = lagc::plan::plan(&c.model, &c.equations, method, None).expect("the method fits");
    let k = Kernels::build(&c.model, &c.equations, &plan, BackendKind::Native).expect("kernels build");
    k.ir().expect("native kernels have IR").to_string()
}

#[test]
fn pendulum_verlet() {
    insta::assert_snapshot!(ir("pendulum", Method::Verlet));
}

#[test]
fn double_well_em() {
    insta::assert_snapshot!(ir("double_well", Method::Em));
}

#[test]
fn double_well_prox() {
    insta::assert_snapshot!(ir("double_well", Method::Prox));
}
