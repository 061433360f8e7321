//! Bounded expansion: a model whose expanded equations would swell keeps them
//! factored past the budget (`EXPAND_BASE`, `EXPAND_RATIO`, `EXPAND_TOTAL`),
//! and the factored equations are still right. They are checked here against
//! finite differences of the Lagrangian, a second method that shares nothing
//! with the derivation but the tree-walking evaluator.

use lagc::sym::{Env, ExprId};
use lagc::{Compiled, Equations};
use std::path::Path;

/// `(x[i]'^2 + y[i]'^2)^-y[i]` over a chain: expanded, its mass matrix grows
/// like N⁶ or worse (found by fuzzing).
fn power_chain(n: usize) -> Compiled {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/timeout_symbolic_power_of_velocities.lag");
    lagc::compile_file(&path, &[("N".into(), n as f64)]).unwrap_or_else(|e| panic!("{e}"))
}

struct State {
    q: Vec<f64>,
    v: Vec<f64>,
}

fn env_at(c: &Compiled, s: &State) -> Env {
    let mut env = c.model.env();
    for (sym, x) in c.model.var_syms().into_iter().zip(&s.q) {
        env.set(sym, *x);
    }
    for (sym, x) in c.model.velocity_syms().into_iter().zip(&s.v) {
        env.set(sym, *x);
    }
    env
}

fn lagrangian_at(c: &Compiled, l: ExprId, s: &State) -> f64 {
    c.model.arena.eval(l, &env_at(c, s))
}

/// `∂²L/∂a∂b` by central differences, `a` and `b` each a coordinate or a velocity.
fn second_difference(c: &Compiled, l: ExprId, s: &State, a: (bool, usize), b: (bool, usize), h: f64) -> f64 {
    let shifted = |da: f64, db: f64| {
        let mut t = State { q: s.q.clone(), v: s.v.clone() };
        for ((vel, i), d) in [(a, da), (b, db)] {
            if vel {
                t.v[i] += d;
            } else {
                t.q[i] += d;
            }
        }
        lagrangian_at(c, l, &t)
    };
    (shifted(h, h) - shifted(h, -h) - shifted(-h, h) + shifted(-h, -h)) / (4.0 * h * h)
}

fn first_difference(c: &Compiled, l: ExprId, s: &State, i: usize, h: f64) -> f64 {
    let at = |d: f64| {
        let mut t = State { q: s.q.clone(), v: s.v.clone() };
        t.q[i] += d;
        lagrangian_at(c, l, &t)
    };
    (at(h) - at(-h)) / (2.0 * h)
}

fn close(got: f64, want: f64, what: &str) {
    let err = (got - want).abs() / want.abs().max(1.0);
    assert!(err < 1e-5, "{what}: derived {got}, finite differences {want} (relative error {err:.1e})");
}

#[test]
fn abandoned_expansions_still_give_the_right_equations() {
    let n = 6;
    let c = power_chain(n);
    let Equations::Lagrangian(e) = &c.equations else { panic!("a Lagrangian model") };
    // At N = 6 the arena's expansion budget runs out part way through the
    // mass matrix: both expanded and factored entries are checked.
    let state = State {
        q: (0..n).map(|i| 1.35 + 0.05 * i as f64).collect(),
        v: (0..n).map(|i| 0.4 + 0.1 * i as f64).collect(),
    };
    let env = env_at(&c, &state);
    let a = &c.model.arena;
    for i in 0..n {
        for j in 0..n {
            let want = second_difference(&c, e.lagrangian, &state, (true, i), (true, j), 1e-4);
            close(a.eval(e.mass_matrix[i][j], &env), want, &format!("M[{i}][{j}]"));
        }
        // f_i = ∂L/∂q_i − Σ_j ∂²L/∂v_i∂q_j v_j (L has no t, no R, no Q).
        let mut want = first_difference(&c, e.lagrangian, &state, i, 1e-5);
        for j in 0..n {
            want -= second_difference(&c, e.lagrangian, &state, (true, i), (false, j), 1e-4) * state.v[j];
        }
        close(a.eval(e.forcing[i], &env), want, &format!("f[{i}]"));
    }
}

#[test]
fn expansion_work_is_bounded() {
    // Unbounded, the derivation at N = 8 created 1.26 million nodes (and N = 10
    // did not finish in minutes); the budget caps the expansion part.
    for n in [6, 8] {
        let c = power_chain(n);
        let nodes = c.model.arena.len();
        let cap = lagc::sym::EXPAND_TOTAL + 100_000;
        assert!(nodes < cap, "N = {n}: the derivation created {nodes} nodes, more than {cap}");
    }
}

#[test]
fn small_models_are_expanded_fully() {
    // Below the budget nothing changes: the double pendulum's mass matrix is
    // the textbook one, which needs its squares of sums multiplied out.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/double_pendulum.lag");
    let c = lagc::compile_file(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.text_of(lagc::Part::MassMatrix(0, 1)), "m2*l1*l2*cos(th1 - th2)");
}
