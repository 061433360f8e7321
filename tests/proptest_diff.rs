//! Properties of the symbolic engine on random expression trees over x, y, z:
//! the derivative agrees with a central finite difference, simplification
//! keeps the value, and printed text reads back to the same value.

use lagc::sym::{ExprId, SymId};
use lagc::Model;
use proptest::prelude::*;

/// Random expression text. Logarithms and roots only see positive arguments.
fn expr_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("x".to_string()),
        Just("y".to_string()),
        Just("z".to_string()),
        (1i32..5).prop_map(|n| n.to_string()),
        Just("1/2".to_string()),
        Just("0.75".to_string()),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) + ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) - ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a})*({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a})/({b})")),
            (inner.clone(), -2i32..4).prop_map(|(a, k)| format!("({a})^({k})")),
            inner.clone().prop_map(|a| format!("sin({a})")),
            inner.clone().prop_map(|a| format!("cos({a})")),
            inner.clone().prop_map(|a| format!("exp({a})")),
            inner.clone().prop_map(|a| format!("log(1 + ({a})^2)")),
            inner.clone().prop_map(|a| format!("sqrt(1 + ({a})^2)")),
            inner.clone().prop_map(|a| format!("atan({a})")),
            inner.prop_map(|a| format!("tanh({a})")),
        ]
    })
}

fn model() -> Model {
    lagc::compile_source("state x, y, z\nenergy = 0\n", "prop", &[]).expect("scratch model").model
}

/// Parses generated text; text whose denominator is identically zero is
/// rightly refused ("division by zero") and the case is discarded.
fn parse(m: &mut Model, text: &str) -> Option<ExprId> {
    match lagc::parse_expression(m, text) {
        Ok(e) => Some(e),
        Err(d) if d.message == "division by zero" => None,
        Err(d) => panic!("generated text {text:?} does not parse: {}", d.message),
    }
}

fn vars(m: &Model) -> Vec<SymId> {
    m.var_syms()
}

/// The value of `e` at `p`, and the largest magnitude of any of its nodes
/// there: the scale against which rounding error is measured.
fn eval_scaled(m: &Model, e: ExprId, p: &[f64]) -> (f64, f64) {
    let mut env = m.env();
    for (s, v) in vars(m).into_iter().zip(p) {
        env.set(s, *v);
    }
    let nodes = m.arena.topo_order(&[e]);
    let vals = m.arena.eval_many(&nodes, &env);
    let scale = vals.iter().fold(1.0f64, |s, v| s.max(v.abs()));
    (m.arena.eval(e, &env), scale)
}

const HUGE: f64 = 1e6;

fn point() -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(-2.0f64..2.0, 3)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn derivative_matches_finite_difference(text in expr_text(), p in point(), var in 0usize..3) {
        let mut m = model();
        let e = parse(&mut m, &text);
        prop_assume!(e.is_some());
        let e = e.unwrap();
        let s = vars(&m)[var];
        let d = m.arena.diff(e, s);
        let d = m.arena.simplify(d);
        let h = 1e-6;
        let (f0, scale) = eval_scaled(&m, e, &p);
        let (dv, dscale) = eval_scaled(&m, d, &p);
        let mut hi = p.clone();
        hi[var] += h;
        let mut lo = p.clone();
        lo[var] -= h;
        let (fp, _) = eval_scaled(&m, e, &hi);
        let (fm, _) = eval_scaled(&m, e, &lo);
        let all = [f0, dv, fp, fm, scale, dscale];
        prop_assume!(all.iter().all(|v| v.is_finite() && v.abs() < HUGE));
        let fd = (fp - fm) / (2.0 * h);
        // Round-off of the difference quotient is ~ eps·scale/h; truncation is O(h²).
        let tol = 1e-5 * dv.abs().max(fd.abs()) + 1e-9 * scale / h + 1e-6;
        prop_assert!((dv - fd).abs() <= tol,
            "d/d{} of {} at {:?}: symbolic {} = {}, finite difference {}",
            ["x", "y", "z"][var], text, p, m.arena.to_text(d), dv, fd);
    }

    #[test]
    fn simplify_keeps_the_value(text in expr_text(), p in point()) {
        let mut m = model();
        let e = parse(&mut m, &text);
        prop_assume!(e.is_some());
        let e = e.unwrap();
        let s = m.arena.simplify(e);
        let (a, sa) = eval_scaled(&m, e, &p);
        let (b, sb) = eval_scaled(&m, s, &p);
        prop_assume!([a, b, sa, sb].iter().all(|v| v.is_finite() && v.abs() < HUGE));
        prop_assert!((a - b).abs() <= 1e-9 * sa.max(sb),
            "simplify({}) = {} at {:?}: {} vs {}", text, m.arena.to_text(s), p, a, b);
    }

    #[test]
    fn printed_text_reads_back(text in expr_text(), p in point()) {
        let mut m = model();
        let e = parse(&mut m, &text);
        prop_assume!(e.is_some());
        let e = e.unwrap();
        let s = m.arena.simplify(e);
        for shown in [e, s, m.arena.tidy(s)] {
            let printed = m.arena.to_text(shown);
            let back = lagc::parse_expression(&mut m, &printed)
                .unwrap_or_else(|d| panic!("printed {printed:?} does not parse: {}", d.message));
            let (a, sa) = eval_scaled(&m, shown, &p);
            let (b, sb) = eval_scaled(&m, back, &p);
            prop_assume!([a, b, sa, sb].iter().all(|v| v.is_finite() && v.abs() < HUGE));
            prop_assert!((a - b).abs() <= 1e-9 * sa.max(sb),
                "{} printed as {} reads back as {} at {:?}: {} vs {}",
                text, printed, m.arena.to_text(back), p, a, b);
        }
    }
}
