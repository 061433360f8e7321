//! Expression swell: the DAG of the N-link chain's equations (docs/numerics.md,
//! problem B) grows like N², neither exponentially nor like N³. Sizes only;
//! time is measured in benches, never in tests.

use lagc::sym::ExprId;
use lagc::Equations;
use std::path::Path;

fn dag_size(n: usize) -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pendulum_chain.lag");
    let c = lagc::compile_file(&path, &[("N".into(), n as f64)]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.model.vars.len(), n);
    let Equations::Lagrangian(e) = &c.equations else { panic!("the chain is Lagrangian") };
    let mut roots: Vec<ExprId> = e.mass_matrix.iter().flatten().copied().collect();
    roots.extend(&e.forcing);
    roots.push(e.energy);
    c.model.arena.dag_size(&roots)
}

#[test]
fn chain_equations_grow_like_n_squared() {
    let ns = [5usize, 10, 20, 40];
    let sizes: Vec<usize> = ns.iter().map(|&n| dag_size(n)).collect();
    for (n, s) in ns.iter().zip(&sizes) {
        println!("N = {n:>2}: {s:>7} DAG nodes ({:.1} per N²)", *s as f64 / (n * n) as f64);
    }
    for w in sizes.windows(2) {
        assert!(w[1] > w[0], "sizes must grow with N: {sizes:?}");
    }
    // N² would give 4 per doubling, N³ would give 8.
    let ratio = sizes[3] as f64 / sizes[2] as f64;
    assert!(ratio < 5.5, "size(40)/size(20) = {ratio:.2}: worse than N² ({sizes:?})");
    assert!(ratio > 2.5, "size(40)/size(20) = {ratio:.2}: the equations cannot be this small ({sizes:?})");
}
