//! Equations by segments of rows (docs/numerics.md §Indexed derivation): the
//! right-hand side of a model whose long sums stay rolled against the same
//! model with every sum written out term by term (sums split into pieces
//! shorter than `ROLLED_MIN`, which the lowering unrolls), at random states;
//! nested sums, pair sums (mirrored when symmetric, not when not), boundary
//! terms, dissipation; and code that does not grow with the families.

use lagc::backend::Work;
use lagc::{BackendKind, Kernels, Method};

/// `sum(v in lo..hi, body)` written as sums of fewer than 16 terms (`ROLLED_MIN`).
fn split(v: &str, lo: usize, hi: usize, body: &str) -> String {
    let mut parts = Vec::new();
    let mut a = lo;
    while a < hi {
        let b = (a + 10).min(hi);
        parts.push(format!("sum({v} in {a}..{b}, {body})"));
        a = b;
    }
    format!("({})", parts.join(" + "))
}

/// The compiled right-hand side of `src` (with `method`) at `y`, and whether
/// its equations are by segments.
fn rhs(src: &str, method: Method, y: &[f64]) -> (Vec<f64>, bool) {
    let c = lagc::compile_for(src, "lattice", &[], Some(method)).expect("model compiles");
    let plan = lagc::plan::plan(&c.model, &c.equations, method, None).expect("the method fits");
    let k = Kernels::build(&c.model, &c.equations, &plan, BackendKind::Native).expect("kernels build");
    let mut dy = vec![0.0; y.len()];
    k.rhs(0.3, y, &mut dy, &mut Work::default()).expect("a regular state");
    (dy, plan.indexed)
}

/// A state of `2n` entries drawn from a fixed sequence in [−1, 1].
fn state(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    (0..2 * n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            2.0 * ((s >> 11) as f64 / (1u64 << 53) as f64) - 1.0
        })
        .collect()
}

/// The FPUT-α lattice of `n` sites with fixed ends, started in its lowest mode.
fn fput(n: usize) -> String {
    format!(
        "const N = {n}\nparam alpha = 0.25\ncoord u[N]\n\
         lagrangian = sum(i in 0..N, 1/2*u[i]'^2) - 1/2*u[0]^2 - 1/2*u[N-1]^2 \
         - sum(i in 0..N-1, 1/2*(u[i+1] - u[i])^2 + alpha/3*(u[i+1] - u[i])^3)\n\
         init u[i in 0..N] = sin(pi*(i+1)/(N+1))"
    )
}

/// Compares the rolled model with the written-out one at three states.
fn agree(name: &str, rolled: &str, written: &str, n: usize, tol: f64) {
    for seed in 1..=3 {
        let y = state(n, seed);
        let (a, indexed) = rhs(rolled, Method::Rk4, &y);
        let (b, plain) = rhs(written, Method::Rk4, &y);
        assert!(indexed, "{name}: the rolled model is derived by segments");
        assert!(!plain, "{name}: the written-out model is derived per coordinate");
        let scale = b.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale;
        assert!(worst <= tol, "{name}: the two right-hand sides differ by {worst:e} (tolerance {tol:e})");
    }
}

#[test]
fn a_lattice_with_boundary_terms_and_dissipation_agrees_with_its_written_out_form() {
    let n = 40;
    let kinetic = "m/2*u[i]'^2";
    let springs = "k/2*(u[i+1] - u[i])^2 + alpha/3*(u[i+1] - u[i])^3";
    let pinning = "g*cos(u[i]) + 1/4*u[i]^4";
    let friction = "c/2*(u[i+1]' - u[i]')^2";
    let head = format!("const N = {n}\nparam m = 1.5, k = 2, alpha = 0.3, g = 0.7, c = 0.05\ncoord u[N]\n");
    let model = |s: &dyn Fn(&str, usize, usize, &str) -> String| {
        format!(
            "{head}lagrangian = {} - {} - {} - 1/2*u[0]^2 - 3*u[N-1]^2*u[N-2]\ndissipation = {}\ninit u[i in 0..N] = 0",
            s("i", 0, n, kinetic),
            s("i", 0, n - 1, springs),
            s("i", 0, n, pinning),
            s("i", 0, n - 1, friction),
        )
    };
    let rolled = model(&|v, lo, hi, b| format!("sum({v} in {lo}..{hi}, {b})"));
    let written = model(&split);
    agree("lattice", &rolled, &written, n, 1e-13);
}

#[test]
fn pair_sums_agree_with_their_written_out_form_mirrored_or_not() {
    let n = 24;
    let head = format!("const N = {n}\nparam eps = 0.3\ncoord x[N], y[N]\n");
    let kinetic = "1/2*(x[i]'^2 + y[i]'^2)";
    // Symmetric in (i, j): the pair potential of softened gravity (mirrored).
    let gravity = "1/sqrt((x[j] - x[i])^2 + (y[j] - y[i])^2 + eps^2)";
    // Not symmetric: must not be mirrored.
    let skew = "x[i]*y[j]^2 + sin(x[j] - 2*x[i])";
    for (name, pair) in [("gravity", gravity), ("an asymmetric pair term", skew)] {
        let rolled = format!(
            "{head}lagrangian = sum(i in 0..N, {kinetic}) + sum(i in 0..N, sum(j in 0..N, {pair}))\ninit x[i in 0..N] = 0"
        );
        let inner = split("j", 0, n, pair);
        let written = format!(
            "{head}lagrangian = {} + {}\ninit x[i in 0..N] = 0",
            split("i", 0, n, kinetic),
            split("i", 0, n, &inner)
        );
        agree(name, &rolled, &written, 2 * n, 1e-12);
    }
}

#[test]
fn a_nonlinear_function_of_an_inner_sum_agrees_with_its_written_out_form() {
    // Σ_i (u_i Σ_j cos(u_j − u_i))²: the inner sum inside a square, and members
    // read at the outer index both outside and inside it.
    let n = 24;
    let head = format!("const N = {n}\ncoord u[N]\n");
    let body = |inner: String| format!("(u[i]*{inner})^2/100");
    let rolled = format!(
        "{head}lagrangian = sum(i in 0..N, 1/2*u[i]'^2) - sum(i in 0..N, {})\ninit u[i in 0..N] = 0",
        body("sum(j in 0..N, cos(u[j] - u[i]))".into())
    );
    let written = format!(
        "{head}lagrangian = {} - {}\ninit u[i in 0..N] = 0",
        split("i", 0, n, "1/2*u[i]'^2"),
        split("i", 0, n, &body(split("j", 0, n, "cos(u[j] - u[i])")))
    );
    agree("nested", &rolled, &written, n, 1e-12);
}

#[test]
fn the_compiled_code_does_not_grow_with_the_lattice() {
    let size = |n: usize| {
        let c = lagc::compile_for(&fput(n), "fput", &[], Some(Method::Verlet)).unwrap();
        let plan = lagc::plan::plan(&c.model, &c.equations, Method::Verlet, None).unwrap();
        assert!(plan.indexed, "N = {n} is derived by segments");
        let k = Kernels::build(&c.model, &c.equations, &plan, BackendKind::Native).unwrap();
        k.ir().expect("native code").lines().count()
    };
    let (small, large) = (size(100), size(10_000));
    assert_eq!(small, large, "the Cranelift IR of N = 100 and N = 10,000 has the same number of lines");
}

#[test]
fn methods_that_need_more_than_the_equations_of_motion_have_the_sums_written_out() {
    let fput =
        "const N = 80\ncoord u[N]\nlagrangian = sum(i in 0..N, 1/2*u[i]'^2) - sum(i in 0..N-1, (u[i+1] - u[i])^4)\n\
                init u[i in 0..N] = sin(0.1*i)";
    // The implicit midpoint rule needs the Lagrangian's second derivatives: per coordinate.
    let c = lagc::compile_for(fput, "fput", &[], Some(Method::Midpoint)).unwrap();
    let plan = lagc::plan::plan(&c.model, &c.equations, Method::Midpoint, None).unwrap();
    assert!(!plan.indexed);
    let c = lagc::compile_for(fput, "fput", &[], Some(Method::Rk4)).unwrap();
    let plan = lagc::plan::plan(&c.model, &c.equations, Method::Rk4, None).unwrap();
    assert!(plan.indexed);
    // A row of the segments written out names its own members.
    for (i, names) in [(0, ["u[0]", "u[1]"]), (40, ["u[39]", "u[41]"]), (79, ["u[78]", "u[79]"])] {
        let text = c.text_of(lagc::Part::Forcing(i));
        for name in names {
            assert!(text.contains(name), "row {i}: {text}");
        }
        assert!(!text.contains("sum("), "row {i} is written out: {text}");
    }
}

/// Rows two at a time against rows one at a time, bit for bit: the right-hand side at three
/// states, and 200 steps of the compiled Störmer–Verlet loop (whose kick and drift go two
/// coordinates at a time too). The native kernels compute a long segment's rows in the two
/// lanes of a vector (docs/numerics.md §Two rows at a time); each lane does exactly the
/// operations of one row, so the numbers must be the same, whatever the parity of the
/// segment's length, and where a row calls a function (`sin`) lane by lane, reads its own
/// index, or adds a sum of its own over a second index (N bodies).
#[test]
fn rows_two_at_a_time_compute_exactly_what_one_row_computes() {
    let sine_gordon = "const N = 21\ncoord u[N]\nlagrangian = sum(i in 0..N, 1/2*u[i]'^2) \
        - sum(i in 0..N-1, 1/2*(u[i+1] - u[i])^2) - sum(i in 0..N, 1 - cos(u[i]))\ninit u[i in 0..N] = 0.1*i";
    let graded = "const N = 20\ncoord u[N]\nlagrangian = sum(i in 0..N, 1/2*u[i]'^2) \
        - sum(i in 0..N-1, (1 + sin(i))/2*(u[i+1] - u[i])^2 + (u[i+1] - u[i])^4/(i + 1))\n\
        init u[i in 0..N] = cos(i)";
    let bodies = |n: usize| {
        format!(
            "const N = {n}\nparam eps = 0.1\ncoord x[N], y[N], z[N]\n\
             lagrangian = sum(i in 0..N, 1/2*(x[i]'^2 + y[i]'^2 + z[i]'^2)) \
             + 1/2*sum(i in 0..N, sum(j in 0..N, 1/sqrt((x[j] - x[i])^2 + (y[j] - y[i])^2 + (z[j] - z[i])^2 + eps^2)))\n\
             init x[i in 0..N] = cos(2*pi*i/N), y[i in 0..N] = sin(2*pi*i/N), z[i in 0..N] = 0.1*sin(4*pi*i/N)"
        )
    };
    let cases = [
        ("FPUT, 33 sites", fput(33), 33),
        ("FPUT, 34 sites", fput(34), 34),
        ("sine-Gordon", sine_gordon.to_string(), 21),
        ("graded springs", graded.to_string(), 20),
        ("17 bodies", bodies(17), 51),
    ];
    for (name, src, n) in cases {
        let c = lagc::compile_for(&src, "lanes", &[], Some(Method::Verlet)).expect("model compiles");
        let plan = lagc::plan::plan(&c.model, &c.equations, Method::Verlet, None).expect("verlet fits");
        assert!(plan.indexed, "{name} is derived by segments");
        let build = || Kernels::build(&c.model, &c.equations, &plan, BackendKind::Native).expect("kernels build");
        let (two, one) = (build(), lagc::backend::one_row_at_a_time(build));
        let same = |a: &[f64], b: &[f64], what: &str| {
            for (i, (x, w)) in a.iter().zip(b).enumerate() {
                assert_eq!(x.to_bits(), w.to_bits(), "{name}, {what} {i}: {x:e} two at a time, {w:e} one at a time");
            }
        };
        for seed in 1..=3 {
            let y = state(n, seed);
            let (mut a, mut b) = (vec![0.0; 2 * n], vec![0.0; 2 * n]);
            two.rhs(0.3, &y, &mut a, &mut Work::default()).expect("a regular state");
            one.rhs(0.3, &y, &mut b, &mut Work::default()).expect("a regular state");
            same(&a, &b, "right-hand side row");
        }
        let run = |k: &Kernels| {
            let mut y = lagc::drive::initial_state(&c.model);
            let mut rows = Vec::new();
            let f = k.step_loop().expect("a compiled loop");
            f.call(0.0, 0.01, 200, 50, &mut y, k.params(), &mut rows).expect("a regular run");
            rows
        };
        let (a, b) = (run(&two), run(&one));
        assert!(a.len() > 4 * n, "{name}: rows were written");
        same(&a, &b, "Verlet row entry");
    }
}
