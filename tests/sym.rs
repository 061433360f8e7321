//! The symbolic engine, one `check` helper per layer: parse → lower → text,
//! simplification, differentiation, and hash-consing. Expressions are read
//! through a tiny energy model whose state variables are the free symbols.

use lagc::sym::{Arena, ExprId, Func, SymId, SymKind};
use lagc::Model;

/// A model with state `a, b, q, x, y, z` and parameters `k, c`.
fn model() -> Model {
    let src = "param k = 2, c = 3\nstate a, b, q, x, y, z\nenergy = 0\n";
    lagc::compile_source(src, "sym", &[]).expect("the scratch model compiles").model
}

fn parse(m: &mut Model, text: &str) -> ExprId {
    lagc::parse_expression(m, text).unwrap_or_else(|d| panic!("cannot parse {text:?}: {}", d.message))
}

fn sym(m: &Model, name: &str) -> SymId {
    m.vars.iter().find(|v| v.name == name).map(|v| v.sym).unwrap_or_else(|| panic!("no variable {name}"))
}

/// Whether two expressions agree at a few points (the safety net behind
/// every text comparison).
fn agree(m: &Model, e: ExprId, f: ExprId) -> bool {
    let mut env = m.env();
    for p in 0..4 {
        for (i, v) in m.vars.iter().enumerate() {
            env.set(v.sym, 0.3 + 0.17 * (i as f64) + 0.11 * p as f64);
        }
        let (x, y) = (m.arena.eval(e, &env), m.arena.eval(f, &env));
        if (x - y).abs() > 1e-12 * (1.0 + x.abs().max(y.abs())) {
            return false;
        }
    }
    true
}

/// `text` parses and prints back as `expected`.
fn check_parse(text: &str, expected: &str) {
    let mut m = model();
    let e = parse(&mut m, text);
    assert_eq!(m.arena.to_text(e), expected, "parse {text:?}");
    let again = parse(&mut m, expected);
    assert_eq!(again, e, "{expected:?} does not read back as the same node");
}

/// `simplify(text)` prints as `expected` and equals it in value.
fn check_simplify(text: &str, expected: &str) {
    let mut m = model();
    let e = parse(&mut m, text);
    let s = m.arena.simplify(e);
    assert_eq!(m.arena.to_text(s), expected, "simplify {text:?}");
    assert!(agree(&m, e, s), "simplify({text:?}) changed the value");
}

/// `∂text/∂var`, simplified, prints as `expected` and equals it in value.
fn check_diff(text: &str, var: &str, expected: &str) {
    let mut m = model();
    let e = parse(&mut m, text);
    let d = m.arena.diff(e, sym(&m, var));
    let d = m.arena.simplify(d);
    let want = parse(&mut m, expected);
    assert!(agree(&m, d, want), "d/d{var} {text:?} = {} is not {expected}", m.arena.to_text(d));
    assert_eq!(m.arena.to_text(d), expected, "d/d{var} {text:?}");
}

#[test]
fn parse_round_trips() {
    check_parse("x", "x");
    check_parse("-x^2", "-x^2");
    check_parse("(-x)^2", "x^2");
    check_parse("x^2^3", "x^8");
    check_parse("2^-1", "1/2");
    check_parse("x - y", "x - y");
    check_parse("x/y", "x/y");
    check_parse("1/2*x", "x/2");
    check_parse("k*x + c", "k*x + c");
    check_parse("sqrt(x)", "sqrt(x)");
    check_parse("1/sqrt(x^2 + y^2)", "1/sqrt(x^2 + y^2)");
    check_parse("(x^2 + y^2)^(3/2)", "(x^2 + y^2)^(3/2)");
    check_parse("atan2(y, x)", "atan2(y, x)");
    check_parse("exp(-x)", "exp(-x)");
    check_parse("pi*x", "pi*x");
    check_parse("t*x", "t*x");
    check_parse("2.5*x", "2.5*x");
    check_parse("1e-3*x", "0.001*x");
    check_parse("sum(i in 0..3, x^i)", "x + x^2 + 1");
    check_parse("prod(i in 1..=3, i)", "6");
}

#[test]
fn canonical_forms() {
    check_simplify("2*x + 3*x", "5*x");
    check_simplify("x*x^3", "x^4");
    check_simplify("x - x", "0");
    check_simplify("x/x", "1");
    check_simplify("1/2 + 1/3", "5/6");
    check_simplify("(1/3)*3", "1");
    check_simplify("2/4", "1/2");
    check_simplify("sin(-x)", "-sin(x)");
    check_simplify("cos(-x)", "cos(x)");
    check_simplify("tan(-x)", "-tan(x)");
    check_simplify("abs(-x)", "abs(x)");
    check_simplify("log(exp(x))", "x");
    check_simplify("exp(log(x))", "x");
    check_simplify("exp(x)^2", "exp(2*x)");
    check_simplify("(x*y)^2", "x^2*y^2");
    check_simplify("sqrt(4*x)", "2*sqrt(x)");
    check_simplify("2*(x + y)", "2*x + 2*y");
}

#[test]
fn expansion() {
    check_simplify("(a + b)^2", "a^2 + b^2 + 2*a*b");
    check_simplify("(a + b)*(a - b)", "a^2 - b^2");
    check_simplify("(x + 1)^3 - x^3", "3*x + 3*x^2 + 1");
}

#[test]
fn trigonometric_identities() {
    check_simplify("sin(a)^2 + cos(a)^2", "1");
    check_simplify("k*sin(a)^2 + k*cos(a)^2", "k");
    check_simplify("cos(a)*cos(b) + sin(a)*sin(b)", "cos(a - b)");
    check_simplify("cos(a)*cos(b) - sin(a)*sin(b)", "cos(a + b)");
    check_simplify("sin(a)*cos(b) + cos(a)*sin(b)", "sin(a + b)");
    check_simplify("sin(a)*cos(b) - cos(a)*sin(b)", "sin(a - b)");
    check_simplify("k*cos(a)*cos(b) + k*sin(a)*sin(b)", "k*cos(a - b)");
    check_simplify("(sin(a) + cos(a))^2", "2*sin(a)*cos(a) + 1");
    // Different rests must not combine.
    check_simplify("k*sin(a)^2 + c*cos(a)^2", "k*sin(a)^2 + c*cos(a)^2");
}

#[test]
fn pythagorean_identity_inside_products() {
    // The square beside other trigonometric factors: the spherical pendulum's
    // M[ph, ph] written out.
    check_simplify("k*c^2*sin(a)^2*cos(b)^2 + k*c^2*sin(a)^2*sin(b)^2", "k*c^2*sin(a)^2");
    check_simplify("k*c^2*sin(a)^2*(cos(b)^2 + sin(b)^2)", "k*c^2*sin(a)^2");
    // Nested: the inner pair leaves cos(a)^2 beside sin(a)^2 (a second pass).
    check_simplify("sin(a)^2 + cos(a)^2*cos(b)^2 + cos(a)^2*sin(b)^2", "1");
    check_simplify("x*sin(a)^2*y + x*cos(a)^2*cos(b)^2*y + x*cos(a)^2*sin(b)^2*y", "x*y");
    // Higher powers keep what is left of the square.
    check_simplify("sin(a)^4 + sin(a)^2*cos(a)^2", "sin(a)^2");
    check_simplify("cos(b)*sin(a)^3 + cos(b)*cos(a)^2*sin(a)", "cos(b)*sin(a)");
    // The common factor may itself be a sum.
    check_simplify("sin(a)^2*exp(x + y) + cos(a)^2*exp(x + y)", "exp(x + y)");
    // Two squares in one term pair with two different partners.
    check_simplify("sin(a)^2*sin(b)^2 + cos(a)^2*sin(b)^2 + cos(b)^2", "1");
    // Neither a different coefficient nor a different cofactor combines.
    check_simplify("2*sin(a)^2*cos(b)^2 + cos(a)^2*cos(b)^2", "2*sin(a)^2*cos(b)^2 + cos(b)^2*cos(a)^2");
    check_simplify("sin(a)^2*cos(b)^2 + cos(a)^2*sin(b)^2", "sin(a)^2*cos(b)^2 + cos(a)^2*sin(b)^2");
}

/// Pairing is a hash-map pass over the terms: a sum of many independent
/// Pythagorean pairs, each behind its own trigonometric cofactor
/// (`sin(s_i)^2·sin(u)^2 + sin(s_i)^2·cos(u)^2`), combines completely.
#[test]
fn pythagorean_pairs_in_a_long_sum() {
    let mut a = Arena::new();
    let n = 2000;
    let u = a.new_symbol("u", SymKind::State(0));
    let syms: Vec<SymId> = (0..n).map(|i| a.new_symbol(format!("s{i}"), SymKind::State(i + 1))).collect();
    let u = a.sym(u);
    let (s, c) = (a.func(Func::Sin, u), a.func(Func::Cos, u));
    let (s2, c2) = (a.powi(s, 2), a.powi(c, 2));
    let mut terms = Vec::new();
    let mut want = Vec::new();
    for &x in &syms {
        let x = a.sym(x);
        let sx = a.func(Func::Sin, x);
        let x2 = a.powi(sx, 2);
        terms.push(a.mul(&[x2, s2]));
        terms.push(a.mul(&[x2, c2]));
        want.push(x2);
    }
    let e = a.add(&terms);
    let got = a.simplify(e);
    let want = a.add(&want);
    assert_eq!(got, want, "{}", a.to_text(got));
}

#[test]
fn derivatives() {
    check_diff("sin(q)", "q", "cos(q)");
    check_diff("cos(q)", "q", "-sin(q)");
    check_diff("tan(q)", "q", "tan(q)^2 + 1");
    check_diff("x^3", "x", "3*x^2");
    check_diff("k*x^2", "x", "2*k*x");
    check_diff("x*y", "x", "y");
    check_diff("x*sin(x)", "x", "sin(x) + cos(x)*x");
    check_diff("1/x", "x", "-1/x^2");
    check_diff("sin(x)/x", "x", "-sin(x)/x^2 + cos(x)/x");
    check_diff("sin(x^2)", "x", "2*cos(x^2)*x");
    check_diff("exp(2*x)", "x", "2*exp(2*x)");
    check_diff("log(x)", "x", "1/x");
    check_diff("sqrt(x)", "x", "1/(2*sqrt(x))");
    check_diff("sqrt(x^2 + y^2)", "x", "x/sqrt(x^2 + y^2)");
    check_diff("atan(x)", "x", "1/(x^2 + 1)");
    check_diff("atan2(y, x)", "x", "-y/(x^2 + y^2)");
    check_diff("atan2(y, x)", "y", "x/(x^2 + y^2)");
    check_diff("tanh(x)", "x", "-tanh(x)^2 + 1");
    check_diff("sinh(x)", "x", "cosh(x)");
    check_diff("cosh(x)", "x", "sinh(x)");
    check_diff("asin(x)", "x", "1/sqrt(-x^2 + 1)");
    check_diff("acos(x)", "x", "-1/sqrt(-x^2 + 1)");
    check_diff("abs(x)", "x", "sign(x)");
    check_diff("x^y", "y", "log(x)*x^y");
    check_diff("sin(y)", "x", "0");
    check_diff("k*x + c", "x", "k");
}

#[test]
fn hash_consing() {
    let mut m = model();
    let e1 = parse(&mut m, "sin(x)*y + k");
    let e2 = parse(&mut m, "k + y*sin(x)");
    assert_eq!(e1, e2);
    assert_eq!(parse(&mut m, "x + y"), parse(&mut m, "y + x"));
    assert_eq!(parse(&mut m, "x*y*z"), parse(&mut m, "z*(y*x)"));
    assert_ne!(parse(&mut m, "x - y"), parse(&mut m, "y - x"));
    let n = m.arena.len();
    let _ = parse(&mut m, "sin(x)*y + k");
    assert_eq!(m.arena.len(), n, "an existing expression added new nodes");
}

#[test]
fn arena_api_directly() {
    let mut a = Arena::new();
    let xs = a.new_symbol("x", SymKind::State(0));
    let ys = a.new_symbol("y", SymKind::State(1));
    let (x, y) = (a.sym(xs), a.sym(ys));
    let s1 = a.add(&[x, y]);
    let s2 = a.add(&[y, x]);
    assert_eq!(s1, s2);
    let two = a.int(2);
    let xx = a.mul(&[x, x]);
    assert_eq!(xx, a.pow(x, two));
    // Children before parents.
    assert!(a.children(s1).iter().all(|c| *c < s1));
    let sin = a.func(Func::Sin, x);
    let cos = a.func(Func::Cos, x);
    let s2_ = a.powi(sin, 2);
    let c2 = a.powi(cos, 2);
    let one = a.add(&[s2_, c2]);
    let one = a.simplify(one);
    assert!(a.is_one(one), "{}", a.to_text(one));
    let d = a.diff(sin, xs);
    assert_eq!(d, cos);
    assert_eq!(a.dag_size(&[s1, xx]), 5, "x, y, 2, x+y, x^2");
}

#[test]
fn shared_subexpressions_are_counted_once() {
    let mut m = model();
    let e = parse(&mut m, "sin(x + y)^2 + cos(x + y)");
    // x, y, x + y, sin(.), 2, sin^2, cos(.), sum
    assert_eq!(m.arena.dag_size(&[e]), 8);
}

#[test]
fn a_sum_too_long_to_multiply_in_stays_a_factor() {
    // (x + y)·s·s with s a sum of 70 symbols: 2·70·70 = 9,800 terms exceed
    // EXPAND_LIMIT, so the second s stays a factor. It must not be repeated in
    // each of the 140 terms already multiplied out (it was: 146 nodes became
    // over 10,000).
    let mut a = Arena::new();
    let syms: Vec<SymId> = (0..72).map(|i| a.new_symbol(format!("s{i}"), SymKind::State(i))).collect();
    let terms: Vec<ExprId> = syms[2..].iter().map(|&s| a.sym(s)).collect();
    let s = a.add(&terms);
    let (x, y) = (a.sym(syms[0]), a.sym(syms[1]));
    let xy = a.add(&[x, y]);
    let e = a.mul_raw(&[xy, s, s]);
    let expanded = a.expand(e);
    let (before, after) = (a.tree_size(&[e]), a.tree_size(&[expanded]));
    assert!(after < 5 * before, "expansion grew the printed size from {before} to {after}");
    let mut env = lagc::sym::Env::new(&a);
    for (i, &s) in syms.iter().enumerate() {
        env.set(s, 0.1 + 0.01 * i as f64);
    }
    let (want, got) = (a.eval(e, &env), a.eval(expanded, &env));
    assert!((want - got).abs() < 1e-12 * want.abs(), "{got} != {want}");
    // Within the limit a product is multiplied out completely.
    let small = a.mul_raw(&[xy, xy]);
    let small = a.expand(small);
    assert_eq!(a.to_text(small), "s0^2 + s1^2 + 2*s0*s1");
}

#[test]
fn sums_factor_what_every_term_of_their_body_shares() {
    // The shape of a loss's gradient over data: Σ_i (σ_i·x_i − y·x_i) = Σ_i x_i·(σ_i − y).
    let src = "param k = 2\nstate a, b, w[100]\nenergy = 0\n";
    let mut m = lagc::compile_source(src, "sym", &[]).expect("the scratch model compiles").model;
    let e = parse(&mut m, "sum(i in 0..100, exp(a*w[i])*w[i] - b*w[i])");
    let f = m.arena.factor_sums(e);
    assert_eq!(m.arena.to_text(f), "sum(i in 0..100, w[i]*(exp(w[i]*a) - b))");
    assert!(agree(&m, e, f));
    // A factor every term shares that does not depend on the index leaves the sum.
    let e = parse(&mut m, "sum(i in 0..100, a*w[i]^2 + a*b*w[i])");
    let f = m.arena.factor_sums(e);
    assert_eq!(m.arena.to_text(f), "sum(i in 0..100, w[i]^2 + w[i]*b)*a");
    assert!(agree(&m, e, f));
    // Nothing shared: the sum is as it was.
    let e = parse(&mut m, "sum(i in 0..100, a*w[i]^2 + b*w[i])");
    assert_eq!(m.arena.factor_sums(e), e);
}
