//! Derived Euler–Lagrange equations against hand-derived forms, compared
//! numerically at random states (and by text where the form is canonical).

use lagc::sym::{Env, ExprId, SymKind};
use lagc::{Compiled, Equations, LagrangianEquations, Part};

fn compile(src: &str) -> Compiled {
    lagc::compile_source(src, "el", &[]).unwrap_or_else(|d| panic!("{}", d.render()))
}

fn example(name: &str) -> Compiled {
    let path = format!("{}/examples/{name}.lag", env!("CARGO_MANIFEST_DIR"));
    lagc::compile_file(std::path::Path::new(&path), &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn eqs(c: &Compiled) -> LagrangianEquations {
    match &c.equations {
        Equations::Lagrangian(e) => e.clone(),
        Equations::Energy(_) => panic!("not a Lagrangian model"),
    }
}

/// A small deterministic generator (xorshift), values in [lo, hi).
struct Rng(u64);
impl Rng {
    fn next(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (hi - lo) * ((self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// Random environments: parameters at their values, coordinates, velocities
/// and time drawn from [lo, hi).
fn envs(c: &Compiled, lo: f64, hi: f64) -> Vec<Env> {
    let mut rng = Rng(0x2545f4914f6cdd1d);
    (0..8)
        .map(|_| {
            let mut env = c.model.env();
            for (s, sym) in c.model.arena.symbols() {
                if matches!(sym.kind, SymKind::Coord(_) | SymKind::Velocity(_) | SymKind::Time) {
                    env.set(s, rng.next(lo, hi));
                }
            }
            env
        })
        .collect()
}

/// `derived` equals the hand-derived `expected` (in `.lag` syntax) at random states.
fn same(c: &mut Compiled, what: &str, derived: ExprId, expected: &str, range: (f64, f64)) {
    let want = lagc::parse_expression(&mut c.model, expected).unwrap_or_else(|d| panic!("{expected}: {}", d.message));
    for env in envs(c, range.0, range.1) {
        let (a, b) = (c.model.arena.eval(derived, &env), c.model.arena.eval(want, &env));
        assert!(
            (a - b).abs() <= 1e-10 * (1.0 + a.abs().max(b.abs())),
            "{what}: derived {} = {a}, expected {expected} = {b}",
            c.model.arena.to_text(derived)
        );
    }
}

/// Checks mass matrix, forcing and (optionally) energy.
fn check(c: &mut Compiled, mass: &[&[&str]], forcing: &[&str], energy: Option<&str>, range: (f64, f64)) {
    let e = eqs(c);
    assert_eq!(e.mass_matrix.len(), mass.len());
    for (i, row) in mass.iter().enumerate() {
        for (j, m) in row.iter().enumerate() {
            same(c, &format!("M[{i}][{j}]"), e.mass_matrix[i][j], m, range);
        }
    }
    for (i, f) in forcing.iter().enumerate() {
        same(c, &format!("f[{i}]"), e.forcing[i], f, range);
    }
    if let Some(h) = energy {
        same(c, "H", e.energy, h, range);
    }
}

const R: (f64, f64) = (-1.5, 1.5);

#[test]
fn simple_pendulum() {
    let mut c = example("pendulum");
    check(&mut c, &[&["m*l^2"]], &["-m*g*l*sin(th)"], Some("1/2*m*l^2*th'^2 - m*g*l*cos(th)"), R);
    assert_eq!(c.text_of(Part::MassMatrix(0, 0)), "m*l^2");
    assert_eq!(c.text_of(Part::Forcing(0)), "-m*l*g*sin(th)");
    assert_eq!(c.text_of(Part::Momentum(0)), "m*l^2*th'");
}

#[test]
fn kepler_cartesian() {
    let mut c = compile("coord x, y\nlagrangian = 1/2*(x'^2 + y'^2) + 1/sqrt(x^2 + y^2)");
    check(
        &mut c,
        &[&["1", "0"], &["0", "1"]],
        &["-x/sqrt(x^2 + y^2)^3", "-y/sqrt(x^2 + y^2)^3"],
        Some("1/2*(x'^2 + y'^2) - 1/sqrt(x^2 + y^2)"),
        (0.3, 1.5),
    );
    assert_eq!(c.text_of(Part::Forcing(0)), "-x/(x^2 + y^2)^(3/2)");
}

#[test]
fn kepler_polar() {
    let mut c = compile("coord r, phi\nlagrangian = 1/2*(r'^2 + r^2*phi'^2) + 1/r");
    check(
        &mut c,
        &[&["1", "0"], &["0", "r^2"]],
        &["r*phi'^2 - 1/r^2", "-2*r*r'*phi'"],
        Some("1/2*(r'^2 + r^2*phi'^2) - 1/r"),
        (0.3, 1.5),
    );
    assert_eq!(c.text_of(Part::MassMatrix(1, 1)), "r^2");
    assert_eq!(c.text_of(Part::MassMatrix(0, 1)), "0");
}

#[test]
fn charged_particle_lorentz_force() {
    // Uniform B in the symmetric gauge A = B × r / 2, uniform E from φ = −E·r.
    let src = "param m = 1.3, e = 0.7, Bx = 0.2, By = -0.5, Bz = 1.1, Ex = 0.3, Ey = -0.4, Ez = 0.9
coord x, y, z
let Ax = (By*z - Bz*y)/2
let Ay = (Bz*x - Bx*z)/2
let Az = (Bx*y - By*x)/2
let phi = -(Ex*x + Ey*y + Ez*z)
lagrangian = 1/2*m*(x'^2 + y'^2 + z'^2) + e*(Ax*x' + Ay*y' + Az*z') - e*phi";
    let mut c = compile(src);
    check(
        &mut c,
        &[&["m", "0", "0"], &["0", "m", "0"], &["0", "0", "m"]],
        &["e*(y'*Bz - z'*By) + e*Ex", "e*(z'*Bx - x'*Bz) + e*Ey", "e*(x'*By - y'*Bx) + e*Ez"],
        // The magnetic force does no work: H is kinetic plus electric energy.
        Some("1/2*m*(x'^2 + y'^2 + z'^2) - e*(Ex*x + Ey*y + Ez*z)"),
        R,
    );
}

#[test]
fn penning_trap_example() {
    let mut c = example("charged_particle");
    check(
        &mut c,
        &[&["m", "0", "0"], &["0", "m", "0"], &["0", "0", "m"]],
        &["e*B*y' + e*V0*x/(2*d^2)", "-e*B*x' + e*V0*y/(2*d^2)", "-e*V0*z/d^2"],
        None,
        R,
    );
}

#[test]
fn double_pendulum_textbook_form() {
    let mut c = example("double_pendulum");
    check(
        &mut c,
        &[&["(m1 + m2)*l1^2", "m2*l1*l2*cos(th1 - th2)"], &["m2*l1*l2*cos(th1 - th2)", "m2*l2^2"]],
        &[
            "-m2*l1*l2*th2'^2*sin(th1 - th2) - (m1 + m2)*g*l1*sin(th1)",
            "m2*l1*l2*th1'^2*sin(th1 - th2) - m2*g*l2*sin(th2)",
        ],
        Some(
            "1/2*(m1 + m2)*l1^2*th1'^2 + 1/2*m2*l2^2*th2'^2 + m2*l1*l2*th1'*th2'*cos(th1 - th2) \
             - (m1 + m2)*g*l1*cos(th1) - m2*g*l2*cos(th2)",
        ),
        (-3.0, 3.0),
    );
    assert_eq!(c.text_of(Part::MassMatrix(0, 1)), "m2*l1*l2*cos(th1 - th2)");
    assert_eq!(c.text_of(Part::MassMatrix(0, 0)), "l1^2*(m1 + m2)");
    assert_eq!(c.text_of(Part::MassMatrix(1, 1)), "m2*l2^2");
}

#[test]
fn two_link_chain_is_the_double_pendulum() {
    let path = format!("{}/examples/pendulum_chain.lag", env!("CARGO_MANIFEST_DIR"));
    let mut c = lagc::compile_file(std::path::Path::new(&path), &[("N".into(), 2.0)]).unwrap_or_else(|e| panic!("{e}"));
    check(
        &mut c,
        &[&["2*m*l^2", "m*l^2*cos(q[0] - q[1])"], &["m*l^2*cos(q[0] - q[1])", "m*l^2"]],
        &["-m*l^2*q[1]'^2*sin(q[0] - q[1]) - 2*m*g*l*sin(q[0])", "m*l^2*q[0]'^2*sin(q[0] - q[1]) - m*g*l*sin(q[1])"],
        None,
        (-3.0, 3.0),
    );
}

#[test]
fn damped_oscillator_forcing_includes_dissipation() {
    let mut c = example("damped_oscillator");
    check(&mut c, &[&["1"]], &["-q - 2*c*q'"], Some("1/2*(q'^2 + q^2)"), R);
    assert_eq!(c.text_of(Part::Forcing(0)), "-(2*c*q' + q)");
}

#[test]
fn driven_pendulum_forcing_includes_force_and_dissipation() {
    let mut c = example("driven_pendulum");
    check(&mut c, &[&["m*l^2"]], &["-m*g*l*sin(th) - c*th' + A*cos(w*t)"], None, R);
}

#[test]
fn nesterov_forcing_includes_explicit_time_term() {
    let mut c = example("nesterov");
    check(
        &mut c,
        &[&["t^3", "0"], &["0", "t^3"]],
        &["-3*t^2*x' - t^3*a*(x - 1)", "-3*t^2*y' - t^3*b*(y + 1)"],
        None,
        R,
    );
}

#[test]
fn relativistic_mass_matrix() {
    let mut c = example("relativistic_particle");
    check(&mut c, &[&["m*(1 - x'^2)^(-3/2)"]], &["-k*x"], Some("m/sqrt(1 - x'^2) + 1/2*k*x^2"), (-0.9, 0.9));
}

#[test]
fn energy_is_v_dot_p_minus_l_everywhere() {
    for name in ["double_pendulum", "charged_particle", "nesterov", "heavy_ball", "kepler"] {
        let mut c = example(name);
        let e = eqs(&c);
        let v = c.model.velocity_syms();
        let a = &mut c.model.arena;
        let mut terms: Vec<ExprId> = v
            .iter()
            .zip(&e.momenta)
            .map(|(&vi, &p)| {
                let vs = a.sym(vi);
                a.mul(&[vs, p])
            })
            .collect();
        terms.push(a.neg(e.lagrangian));
        let h = a.add(&terms);
        let h = a.simplify(h);
        let d = a.sub(h, e.energy);
        let d = a.simplify(d);
        assert!(a.is_zero(d), "{name}: H − (v·p − L) = {}", a.to_text(d));
    }
}

#[test]
fn mass_matrix_is_symmetric() {
    for name in ["double_pendulum", "pendulum_chain", "charged_particle"] {
        let c = example(name);
        let e = eqs(&c);
        let n = e.mass_matrix.len();
        for i in 0..n {
            for j in 0..n {
                assert_eq!(e.mass_matrix[i][j], e.mass_matrix[j][i], "{name}: M[{i}][{j}] ≠ M[{j}][{i}]");
            }
        }
    }
}

/// The spherical pendulum in Cartesian `let`s: `sin²u + cos²u = 1` applied
/// inside products leaves the textbook form.
#[test]
fn spherical_pendulum_from_cartesian_lets() {
    let mut c = compile(
        "param m = 1.3, l = 0.7, g = 9.81\ncoord th, ph\n\
         let x = l*sin(th)*cos(ph)\nlet y = l*sin(th)*sin(ph)\nlet z = -l*cos(th)\n\
         lagrangian = m/2*(x'^2 + y'^2 + z'^2) - m*g*z",
    );
    check(
        &mut c,
        &[&["m*l^2", "0"], &["0", "m*l^2*sin(th)^2"]],
        &["m*l^2*sin(th)*cos(th)*ph'^2 - m*g*l*sin(th)", "-2*m*l^2*sin(th)*cos(th)*th'*ph'"],
        Some("1/2*m*l^2*(th'^2 + sin(th)^2*ph'^2) - m*g*l*cos(th)"),
        R,
    );
    assert_eq!(c.text_of(Part::MassMatrix(0, 0)), "m*l^2");
    assert_eq!(c.text_of(Part::MassMatrix(1, 1)), "m*l^2*sin(th)^2");
    assert_eq!(c.text_of(Part::Forcing(1)), "-2*m*l^2*sin(th)*cos(th)*th'*ph'");
    assert_eq!(c.text_of(Part::Momentum(0)), "m*l^2*th'");
}

/// A bead on a hoop turning at the constant rate `w` about the vertical,
/// written in Cartesian `let`s with `t`: once simplified, `L` does not depend
/// on `t`, so neither do the equations, and `H` (the Jacobi integral) is
/// conserved.
const HOOP: &str = "param m = 1.3, R = 0.7, g = 9.81, w = 4.5\ncoord th\n\
                    let x = R*sin(th)*cos(w*t)\nlet y = R*sin(th)*sin(w*t)\nlet z = -R*cos(th)\n\
                    lagrangian = m/2*(x'^2 + y'^2 + z'^2) - m*g*z\ninit th = 1";

#[test]
fn hoop_turning_at_a_constant_rate_has_no_time_in_its_equations() {
    let mut c = compile(HOOP);
    check(
        &mut c,
        &[&["m*R^2"]],
        &["m*R^2*w^2*sin(th)*cos(th) - m*g*R*sin(th)"],
        Some("1/2*m*R^2*th'^2 - 1/2*m*R^2*w^2*sin(th)^2 - m*g*R*cos(th)"),
        R,
    );
    let e = eqs(&c);
    let a = &c.model.arena;
    let timeless = |x: ExprId| !a.depends(x, |k| k == SymKind::Time);
    assert!(timeless(e.lagrangian), "L = {}", a.to_text(e.lagrangian));
    assert!(timeless(e.mass_matrix[0][0]) && timeless(e.forcing[0]) && timeless(e.energy));
    let text = c.render(lagc::Format::Text).expect("printable");
    assert!(!text.contains("w*t"), "{text}");
}

/// A chain long enough that each bob's squared speed has more products than one
/// expansion may make alone (72² > 4,096): its squares are multiplied out
/// together, pair by pair, and its equations are still the closed form of
/// problem B (docs/numerics.md), `M_jk = (N − max(j,k))·m·l²·cos(q_j − q_k)`
/// and `f_j = −m·l²·Σ_k (N − max(j,k))·sin(q_j − q_k)·q_k'² − m·g·l·(N − j)·sin q_j`,
/// each entry one term and each forcing `N` terms, not a factored square.
#[test]
fn a_chain_past_the_expansion_limit_has_the_closed_form_equations() {
    const N: usize = 72;
    let path = format!("{}/examples/pendulum_chain.lag", env!("CARGO_MANIFEST_DIR"));
    let set = [("N".into(), N as f64), ("m".into(), 1.3), ("l".into(), 0.7)];
    let c = lagc::compile_file(std::path::Path::new(&path), &set).unwrap_or_else(|e| panic!("{e}"));
    let e = eqs(&c);
    let (q, v) = (c.model.var_syms(), c.model.velocity_syms());
    let (m, l, g) = (1.3, 0.7, 9.81);
    for env in envs(&c, -1.5, 1.5).into_iter().take(2) {
        let (qs, vs): (Vec<f64>, Vec<f64>) =
            (q.iter().map(|&s| env.get(s)).collect(), v.iter().map(|&s| env.get(s)).collect());
        for j in 0..N {
            let mut f = -m * g * l * (N - j) as f64 * qs[j].sin();
            for k in 0..N {
                let w = (N - j.max(k)) as f64;
                f -= m * l * l * w * (qs[j] - qs[k]).sin() * vs[k] * vs[k];
                let (got, want) =
                    (c.model.arena.eval(e.mass_matrix[j][k], &env), m * l * l * w * (qs[j] - qs[k]).cos());
                assert!((got - want).abs() <= 1e-12 * N as f64, "M[{j}][{k}] = {got}, expected {want}");
            }
            let got = c.model.arena.eval(e.forcing[j], &env);
            assert!((got - f).abs() <= 1e-10 * (1.0 + f.abs()), "f[{j}] = {got}, expected {f}");
        }
    }
    for j in 0..N {
        for k in 0..N {
            let text = c.model.arena.to_text(e.mass_matrix[j][k]);
            assert!(!text.contains(" + ") && text.matches("cos").count() <= 1, "M[{j}][{k}] = {text}");
        }
        match c.model.arena.node(e.forcing[j]) {
            lagc::sym::Node::Add(ts) => assert_eq!(ts.len(), N, "f[{j}] = {}", c.model.arena.to_text(e.forcing[j])),
            _ => panic!("f[{j}] = {} is not multiplied out", c.model.arena.to_text(e.forcing[j])),
        }
    }
}
