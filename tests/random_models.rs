//! Random valid models, generated from the grammar: every one compiles (and
//! derivation never panics), every kernel of every method agrees with the
//! tree-walking evaluator, and the portable backend agrees with the native one.
//!
//! 64 cases per property; `LAGC_SLOW_TESTS=1` runs 2000.

use lagc::backend::Work;
use lagc::sym::{Env, SymKind};
use lagc::{BackendKind, Kernels};
use lagc::{Compiled, Equations, Method, ModelKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

fn cases() -> u32 {
    if std::env::var("LAGC_SLOW_TESTS").is_ok_and(|v| v == "1") {
        2000
    } else {
        64
    }
}

fn config() -> Config {
    Config { cases: cases(), max_shrink_iters: 2000, failure_persistence: None, ..Config::default() }
}

// ---------------------------------------------------------------- generator

/// A small positive number as `.lag` text: an exact fraction or a double.
fn positive() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u32..=9).prop_map(|k| k.to_string()),
        (1u32..=9, 2u32..=7).prop_map(|(a, b)| format!("{a}/{b}")),
        (1u32..=30).prop_map(|k| format!("{}", k as f64 / 10.0)),
    ]
}

/// A small coefficient of either sign.
fn coefficient() -> impl Strategy<Value = String> {
    (any::<bool>(), positive()).prop_map(|(neg, c)| if neg { format!("-{c}") } else { c })
}

/// A smooth expression of `vars` (and the parameters), bounded in size: the
/// operators + - * / ^ (small integers), sin, cos, exp of small arguments,
/// `sqrt(1 + x^2)` and `log(2 + cos(x))`. Divisions and negative powers only
/// divide by something at least 1.
fn expr(vars: Vec<String>, params: Vec<String>) -> impl Strategy<Value = String> {
    // Parameters are rarer than variables; a model without any uses a variable.
    let params = if params.is_empty() { vars.clone() } else { params };
    let leaf = prop_oneof![
        8 => prop::sample::select(vars),
        2 => prop::sample::select(params),
        1 => (1u32..=5).prop_map(|k| k.to_string()),
        1 => (1u32..=5, 2u32..=7).prop_map(|(a, b)| format!("{a}/{b}")),
        1 => (1u32..=20).prop_map(|k| format!("{}", k as f64 / 8.0)),
        1 => Just("pi".to_string()),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            3 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} + {b})")),
            2 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} - {b})")),
            3 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}*{b}")),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}/(1 + ({b})^2)")),
            1 => (inner.clone(), positive()).prop_map(|(a, c)| format!("({a})/({c})")),
            2 => (inner.clone(), 2i32..=4).prop_map(|(a, k)| format!("({a})^{k}")),
            1 => (inner.clone(), 1i32..=3).prop_map(|(a, k)| format!("(1 + ({a})^2)^-{k}")),
            1 => inner.clone().prop_map(|a| format!("-({a})")),
            2 => inner.clone().prop_map(|a| format!("sin({a})")),
            2 => inner.clone().prop_map(|a| format!("cos({a})")),
            1 => inner.clone().prop_map(|a| format!("exp(sin({a}))")),
            1 => inner.clone().prop_map(|a| format!("exp(-({a})^2)")),
            1 => inner.clone().prop_map(|a| format!("sqrt(1 + ({a})^2)")),
            1 => inner.clone().prop_map(|a| format!("log(2 + cos({a}))")),
        ]
    })
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// `param p0 = …, p1 = …` (or nothing), with the names.
fn params() -> impl Strategy<Value = (String, Vec<String>)> {
    prop::collection::vec(coefficient(), 0..=3).prop_map(|values| {
        let names = names("p", values.len());
        let decl = if values.is_empty() {
            String::new()
        } else {
            let items: Vec<String> = names.iter().zip(&values).map(|(n, v)| format!("{n} = {v}")).collect();
            format!("param {}\n", items.join(", "))
        };
        (decl, names)
    })
}

/// A valid Lagrangian model.
fn lagrangian_model() -> impl Strategy<Value = String> {
    (1usize..=3, params()).prop_flat_map(|(n, (param_decl, params))| {
        let q = names("q", n);
        let with_t = {
            let mut v = q.clone();
            v.push("t".into());
            v
        };
        let velocities: Vec<String> = q.iter().map(|x| format!("{x}'")).collect();
        let mut with_v = with_t.clone();
        with_v.extend(velocities.clone());
        // Masses in [1/2, 3], so that bounded couplings keep M nonsingular.
        let masses = prop::collection::vec((1u32..=6).prop_map(|k| format!("{}", k as f64 / 2.0)), n);
        let lets = prop::collection::vec(expr(q.clone(), params.clone()), 0..=2);
        // Couplings: `c*cos(qi - qj)*qi'*qj'` with |c| ≤ 1/10 (off-diagonal,
        // bounded), `c*(f)^2*qi'^2` with c ≥ 0 (adds to the diagonal), and
        // gyroscopic `c*f*qi'` (no effect on M).
        let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect();
        let cross = prop::collection::vec(
            (
                prop::sample::select(if pairs.is_empty() { vec![(0, 0)] } else { pairs.clone() }),
                1u32..=10,
                any::<bool>(),
            ),
            if pairs.is_empty() { 0..=0 } else { 0..=2 },
        );
        let diag = prop::collection::vec((0..n, positive(), expr(with_t.clone(), params.clone())), 0..=2);
        let gyro = prop::collection::vec((0..n, coefficient(), expr(with_t.clone(), params.clone())), 0..=1);
        let potential = prop::collection::vec(expr(with_t.clone(), params.clone()), 1..=3);
        let dissipation = prop::option::of(prop::collection::vec((0..n, positive()), 1..=n));
        let force = prop::option::of((0..n, expr(with_v.clone(), params.clone())));
        let observe = prop::option::of(expr(with_v, params.clone()));
        let init = prop::collection::vec((-10i32..=10, -10i32..=10), n);
        (
            Just((n, param_decl, params)),
            masses,
            lets,
            cross,
            diag,
            gyro,
            potential,
            (dissipation, force, observe, init, prop::option::of(coefficient())),
        )
            .prop_map(
                |(
                    (n, param_decl, _),
                    masses,
                    lets,
                    cross,
                    diag,
                    gyro,
                    potential,
                    (diss, force, observe, init, let_c),
                )| {
                    let q = names("q", n);
                    let mut s = format!("model random_lagrangian\n{param_decl}coord {}\n", q.join(", "));
                    for (i, l) in lets.iter().enumerate() {
                        s += &format!("let u{i} = {l}\n");
                    }
                    let mut kinetic: Vec<String> =
                        q.iter().zip(&masses).map(|(x, m)| format!("1/2*{m}*{x}'^2")).collect();
                    for &((i, j), c, neg) in &cross {
                        let sign = if neg { "-" } else { "" };
                        kinetic.push(format!("{sign}{}*cos(q{i} - q{j})*q{i}'*q{j}'", c as f64 / 100.0));
                    }
                    for (i, c, f) in &diag {
                        kinetic.push(format!("{c}*sin({f})^2*q{i}'^2"));
                    }
                    for (i, c, f) in &gyro {
                        kinetic.push(format!("({c})*({f})*q{i}'"));
                    }
                    // A let's velocity squared adds a positive semidefinite term.
                    if let (Some(c), false) = (&let_c, lets.is_empty()) {
                        kinetic.push(format!("1/2*({c})^2/10*u0'^2"));
                    }
                    let mut v: Vec<String> = potential.clone();
                    for i in 0..lets.len() {
                        v.push(format!("u{i}"));
                    }
                    s += &format!("lagrangian = {} - ({})\n", kinetic.join(" + "), v.join(" + "));
                    if let Some(d) = diss {
                        let terms: Vec<String> = d.iter().map(|(i, c)| format!("{c}*q{i}'^2")).collect();
                        s += &format!("dissipation = {}\n", terms.join(" + "));
                    }
                    if let Some((i, f)) = force {
                        s += &format!("force q{i} = {f}\n");
                    }
                    if let Some(o) = observe {
                        s += &format!("observe o = {o}\n");
                    }
                    let items: Vec<String> = init
                        .iter()
                        .enumerate()
                        .map(|(i, (a, b))| format!("q{i} = {}, q{i}' = {}", *a as f64 / 10.0, *b as f64 / 10.0))
                        .collect();
                    s += &format!("init {}\n", items.join(", "));
                    s
                },
            )
    })
}

/// A valid energy model.
fn energy_model() -> impl Strategy<Value = String> {
    (1usize..=3, params()).prop_flat_map(|(n, (param_decl, params))| {
        let x = names("x", n);
        let mut with_t = x.clone();
        with_t.push("t".into());
        let weights = prop::collection::vec(positive(), n);
        let lets = prop::collection::vec(expr(x.clone(), params.clone()), 0..=2);
        let terms = prop::collection::vec((coefficient(), expr(with_t.clone(), params.clone())), 0..=3);
        let metric = prop::option::of(prop::collection::vec(
            prop_oneof![
                expr(x.clone(), params.clone()).prop_map(|f| format!("1 + ({f})^2")),
                expr(x.clone(), params.clone()).prop_map(|f| format!("2 + cos({f})")),
                expr(x.clone(), params.clone()).prop_map(|f| format!("exp(sin({f}))")),
                positive(),
            ],
            n,
        ));
        let temperature = prop::option::of(positive());
        let observe = prop::option::of(expr(with_t, params.clone()));
        let init = prop::collection::vec(-10i32..=10, n);
        (Just((n, param_decl)), weights, lets, terms, metric, temperature, observe, init).prop_map(
            |((n, param_decl), weights, lets, terms, metric, temperature, observe, init)| {
                let x = names("x", n);
                let mut s = format!("model random_energy\n{param_decl}");
                if let Some(t) = &temperature {
                    s += &format!("param T = {t}\n");
                }
                s += &format!("state {}\n", x.join(", "));
                for (i, l) in lets.iter().enumerate() {
                    s += &format!("let u{i} = {l}\n");
                }
                let mut e: Vec<String> = x.iter().zip(&weights).map(|(v, w)| format!("{w}/2*{v}^2")).collect();
                for (c, f) in &terms {
                    e.push(format!("({c})/4*{f}"));
                }
                for i in 0..lets.len() {
                    e.push(format!("u{i}/8"));
                }
                s += &format!("energy = {}\n", e.join(" + "));
                if let Some(m) = metric {
                    s += &format!("metric = diag({})\n", m.join(", "));
                }
                if temperature.is_some() {
                    s += "temperature = T\n";
                }
                if let Some(o) = observe {
                    s += &format!("observe o = {o}\n");
                }
                let items: Vec<String> =
                    init.iter().enumerate().map(|(i, a)| format!("x{i} = {}", *a as f64 / 10.0)).collect();
                s += &format!("init {}\n", items.join(", "));
                s
            },
        )
    })
}

// ---------------------------------------------------------------- checks

/// A small deterministic generator (xorshift) for the evaluation points.
struct Rng(u64);
impl Rng {
    fn next(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (hi - lo) * ((self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

/// `M` (Lagrangian) or `g` (energy, the identity without a metric) and the
/// right-hand side `f` or `−∇E`, by the evaluator.
fn system(c: &Compiled, env: &Env) -> (Vec<f64>, Vec<f64>) {
    let a = &c.model.arena;
    let ev = |es: &[lagc::sym::ExprId]| a.eval_many(es, env);
    match &c.equations {
        Equations::Lagrangian(e) => {
            let m: Vec<_> = e.mass_matrix.iter().flatten().copied().collect();
            (ev(&m), ev(&e.forcing))
        }
        Equations::Energy(e) => {
            let n = e.gradient.len();
            let g = match &e.metric {
                Some(g) => ev(&g.iter().flatten().copied().collect::<Vec<_>>()),
                None => (0..n * n).map(|k| if k % (n + 1) == 0 { 1.0 } else { 0.0 }).collect(),
            };
            (g, ev(&e.gradient).iter().map(|x| -x).collect())
        }
    }
}

/// The smallest over the largest absolute eigenvalue of the (symmetric)
/// system matrix: 0 for a singular one, NaN if it is not finite.
fn condition_ratio(c: &Compiled, env: &Env) -> f64 {
    let (m, f) = system(c, env);
    if m.iter().any(|x| !x.is_finite()) {
        return f64::NAN;
    }
    let (values, _) = lagc::integrate::linalg::symmetric_eigen(&m, f.len());
    let abs: Vec<f64> = values.iter().map(|l| l.abs()).collect();
    let (lo, hi) = abs.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &l| (lo.min(l), hi.max(l)));
    if hi == 0.0 {
        0.0
    } else {
        lo / hi
    }
}

/// Whether `d = y'` solves the equations of motion at `env` (whose state is
/// `y`): `v` copied, and `M a = f` (Lagrangian) or `g θ' = −∇E` (energy) with a
/// residual within 1e-8 of `|M||a| + |f|` in every row (generated matrices
/// such as `2 + cos((x1 + pi^4)^4)` are themselves computed to only about
/// 1e-9 when native code forms them differently). `Some` says where not.
fn residual(c: &Compiled, env: &Env, y: &[f64], d: &[f64]) -> Option<String> {
    let (m, rhs) = system(c, env);
    let sol: &[f64] = match &c.equations {
        Equations::Lagrangian(_) => {
            let n = rhs.len();
            if d[..n] != y[n..] {
                return Some(format!("q' = {:?}, not the velocities {:?}", &d[..n], &y[n..]));
            }
            &d[n..]
        }
        Equations::Energy(_) => d,
    };
    let n = rhs.len();
    if m.iter().chain(&rhs).any(|x| !x.is_finite()) {
        return None;
    }
    for i in 0..n {
        let row = &m[i * n..(i + 1) * n];
        let r: f64 = row.iter().zip(sol).map(|(m, s)| m * s).sum::<f64>() - rhs[i];
        let scale: f64 = row.iter().zip(sol).map(|(m, s)| (m * s).abs()).sum::<f64>() + rhs[i].abs();
        if r.abs() > 1e-8 * scale.max(f64::MIN_POSITIVE) {
            return Some(format!("row {i}: residual {r:e} against a scale of {scale:e}"));
        }
    }
    None
}

fn methods(kind: ModelKind) -> Vec<Method> {
    match kind {
        ModelKind::Lagrangian => vec![Method::Rk4, Method::Midpoint, Method::Variational],
        ModelKind::Energy => vec![Method::Rk4, Method::Prox],
    }
}

/// Inputs in [0.3, 1.2] for `t` and the state, parameters at their values.
fn random_input(c: &Compiled, k: &Kernels, rng: &mut Rng) -> (Vec<f64>, Env) {
    let mut env = c.model.env();
    let mut x = Vec::new();
    for &s in k.inputs() {
        let v = match c.model.arena.symbol(s).kind {
            SymKind::Param(i) => c.model.params[i].value,
            _ => rng.next(0.3, 1.2),
        };
        env.set(s, v);
        x.push(v);
    }
    (x, env)
}

fn compile(source: &str) -> Result<Compiled, TestCaseError> {
    let result = std::panic::catch_unwind(|| lagc::compile_source(source, "random", &[]));
    match result {
        Err(_) => Err(TestCaseError::fail(format!("compile_source panicked on\n{source}"))),
        Ok(Err(d)) => Err(TestCaseError::fail(format!("a valid model was refused:\n{source}\n{}", d.render()))),
        Ok(Ok(c)) => Ok(c),
    }
}

/// Properties (b) and (c) for one compiled model: every kernel of every
/// method, native and portable, against the evaluator and each other.
fn check_kernels(base: &Compiled, source: &str, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed | 1);
    for method in methods(base.model.kind) {
        let native = lagc::compile_for(source, "random", &[], Some(method))
            .map_err(|d| TestCaseError::fail(format!("{method}: {}\n{source}", d.render())))?;
        let Ok(plan) = lagc::plan::plan(&native.model, &native.equations, method, None) else { continue };
        let kn = Kernels::build(&native.model, &native.equations, &plan, BackendKind::Native)
            .map_err(|e| TestCaseError::fail(format!("native {method} kernels: {e}\n{source}")))?;
        let kp = Kernels::build(&native.model, &native.equations, &plan, BackendKind::Portable)
            .map_err(|e| TestCaseError::fail(format!("portable {method} kernels: {e}\n{source}")))?;
        prop_assert_eq!(kn.kernels().collect::<Vec<_>>(), kp.kernels().collect::<Vec<_>>());
        prop_assert_eq!(kn.inputs(), kp.inputs());
        for _ in 0..4 {
            let (x, env) = random_input(&native, &kn, &mut rng);
            for name in kn.kernels() {
                let exprs = kn.expressions(name).to_vec();
                let want = native.model.arena.eval_many(&exprs, &env);
                let mut out_n = vec![0.0; kn.outputs(name)];
                let mut out_p = vec![0.0; kp.outputs(name)];
                prop_assert_eq!(out_n.len(), exprs.len(), "{} {}: outputs\n{}", method, name, source);
                kn.eval(name, &x, &mut out_n, &mut Vec::new());
                kp.eval(name, &x, &mut out_p, &mut Vec::new());
                for i in 0..exprs.len() {
                    let (a, p, w) = (out_n[i], out_p[i], want[i]);
                    if !(a.is_finite() && w.is_finite()) {
                        continue;
                    }
                    prop_assert!(
                        close(a, w, 1e-12),
                        "{method} native {name}[{i}] = {a:e}, evaluator {w:e} at {x:?}\n{source}"
                    );
                    prop_assert!(
                        close(a, p, 1e-12),
                        "{method} {name}[{i}]: native {a:e}, portable {p:e} at {x:?}\n{source}"
                    );
                }
            }
            // The right-hand sides (with the solve of `M q'' = f` or `g θ' = −∇E`) too.
            if !plan.system {
                continue;
            }
            let dim = if native.model.kind == ModelKind::Lagrangian { 2 * kn.n } else { kn.n };
            let y = &x[1..1 + dim];
            let (mut dn, mut dp) = (vec![0.0; dim], vec![0.0; dim]);
            let rn = kn.rhs(x[0], y, &mut dn, &mut Work::default());
            let rp = kp.rhs(x[0], y, &mut dp, &mut Work::default());
            if let (Ok(()), Ok(())) = (&rn, &rp) {
                // M q'' = f (or g θ' = −∇E) may be ill-conditioned, so the two
                // solves are not compared with each other: each must solve the
                // equations as the evaluator states them, to a small residual.
                for (backend, d) in [("native", &dn), ("portable", &dp)] {
                    if let Some(why) = residual(&native, &env, y, d) {
                        return Err(TestCaseError::fail(format!(
                            "{method} {backend} rhs {d:?} at {x:?}: {why}\n{source}"
                        )));
                    }
                }
            } else if rn.is_ok() != rp.is_ok() {
                // Native code tests its pivots against the largest entry, the
                // portable solver estimates the condition number (Hager): near
                // the singular boundary, and only there, they may disagree.
                let ratio = condition_ratio(&native, &env);
                prop_assert!(
                    ratio < 1e-8,
                    "{method} rhs: native {rn:?}, portable {rp:?}, yet |λ|min/|λ|max = {ratio:e}\n{source}"
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_lagrangian_models_compile_and_their_kernels_agree(source in lagrangian_model(), seed in any::<u64>()) {
        let c = compile(&source)?;
        check_kernels(&c, &source, seed)?;
    }

    #[test]
    fn random_energy_models_compile_and_their_kernels_agree(source in energy_model(), seed in any::<u64>()) {
        let c = compile(&source)?;
        check_kernels(&c, &source, seed)?;
    }
}

/// The generator itself: a few of its models, printed with `--nocapture`.
#[test]
fn the_generators_make_valid_models() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..8 {
        for s in [
            lagrangian_model().new_tree(&mut runner).unwrap().current(),
            energy_model().new_tree(&mut runner).unwrap().current(),
        ] {
            if let Err(d) = lagc::compile_source(&s, "random", &[]) {
                panic!("{s}\n{}", d.render());
            }
        }
    }
    println!("{}", lagrangian_model().new_tree(&mut runner).unwrap().current());
    println!("{}", energy_model().new_tree(&mut runner).unwrap().current());
}

/// Found by the properties: integer powers from 17 to 64 (`q1^20` in a
/// multiplied-out `((t - q1)*q1^4*q0)^4`, `pi^18` in a metric) were computed
/// by `powf` in native kernels but by `powi` in the evaluator, one ulp apart,
/// and cancellation or `cos` of a large number made that visible. All three
/// evaluators now use `powi` up to `POWI_MAX`.
#[test]
fn large_integer_powers_agree_bit_for_bit() {
    let lagrangian = "model random_lagrangian\nparam p0 = -0.3, p1 = -2/6\ncoord q0, q1\n\
        lagrangian = 1/2*0.5*q0'^2 + 1/2*0.5*q1'^2 + 3/2*sin(((t - q1)*(q1)^4*q0)^4)^2*q0'^2 - ((sqrt(1 + ((t + t))^2))^2)\n\
        observe o = ((2/2*p0 + 4))^2\ninit q0 = -0.4, q0' = 0.3, q1 = -0.3, q1' = 0.3\n";
    let energy = "model random_energy\nparam p0 = -9\nparam T = 2.8\nstate x0, x1\nenergy = 1/2*x0^2 + 1/2*x1^2\n\
        metric = diag(2 + cos((((pi)^3)^3)^2), exp(sin((x0 - sqrt(1 + ((x0 - 1))^2)))))\n\
        temperature = T\ninit x0 = 0.3, x1 = 0.5\n";
    for (source, seed) in [(lagrangian, 13140016751299341533), (energy, 11187474229867953251)] {
        let c = compile(source).unwrap_or_else(|e| panic!("{e}"));
        check_kernels(&c, source, seed).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Found by the properties: with `u0 = (q0 + q1)^16` the mass matrix is
/// nearly rank one (|λ|min/|λ|max below 1e-10 at some states); the native
/// pivot test accepted it and the portable condition estimate did not.
#[test]
fn near_singular_mass_matrices_may_be_judged_differently_only_near_the_boundary() {
    let source = "model random_lagrangian\ncoord q0, q1\nlet u0 = (((q0 + q1))^4)^4\n\
        lagrangian = 1/2*1.5*q0'^2 + 1/2*2*q1'^2 + 1/2*(-4)^2/10*u0'^2 - (((q0 + 3)*q1)^4 + u0)\n\
        dissipation = 2.7*q1'^2 + 4/4*q1'^2\nobserve o = -((5/5 - q0'))\n\
        init q0 = 0.8, q0' = -0.3, q1 = -0.2, q1' = -0.2\n";
    let c = compile(source).unwrap_or_else(|e| panic!("{e}"));
    check_kernels(&c, source, 4775670743508724144).unwrap_or_else(|e| panic!("{e}"));
}
