//! Every example's kernels, native and portable, against the tree-walking
//! evaluator at random states (relative 1e-12), for every method's kernel set.

mod common;
use common::examples;
use lagc::backend::Work;
use lagc::integrate::linalg;
use lagc::plan::Kernel;
use lagc::sym::{Env, SymKind};
use lagc::{BackendKind, Kernels};
use lagc::{Compiled, Method, ModelKind};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (hi - lo) * ((self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0) || (a.is_nan() && b.is_nan())
}

fn methods(kind: ModelKind) -> Vec<Method> {
    match kind {
        ModelKind::Lagrangian => vec![Method::Rk4, Method::Midpoint, Method::Variational],
        ModelKind::Energy => vec![Method::Rk4, Method::Prox],
    }
}

/// Random inputs in [0.4, 1.2] for t and the state (away from the poles of
/// Kepler, relativistic and natural-gradient models), parameters at their values.
fn random_input(c: &Compiled, k: &Kernels, rng: &mut Rng) -> (Vec<f64>, Env) {
    let mut env = c.model.env();
    let mut x = Vec::new();
    for &s in k.inputs() {
        let v = match c.model.arena.symbol(s).kind {
            SymKind::Param(i) => c.model.params[i].value,
            _ => rng.next(0.4, 1.2),
        };
        env.set(s, v);
        x.push(v);
    }
    // Relativistic models need |v| < 1.
    if c.model.name == "relativistic_particle" {
        for (i, &s) in k.inputs().iter().enumerate() {
            if matches!(c.model.arena.symbol(s).kind, SymKind::Velocity(_)) {
                x[i] *= 0.5;
                env.set(s, x[i]);
            }
        }
    }
    (x, env)
}

#[test]
fn every_kernel_of_every_example_matches_the_evaluator() {
    let mut rng = Rng(0x2545f4914f6cdd1d);
    let mut checked = 0;
    for path in examples() {
        let base = lagc::compile_file(&path, &[]).expect("example compiles");
        for method in methods(base.model.kind) {
            let c = lagc::cli::load::compile_file_for(&path, &[], Some(method), &[]).expect("example compiles");
            let Ok(plan) = lagc::plan::plan(&c.model, &c.equations, method, None) else { continue };
            for backend in [BackendKind::Native, BackendKind::Portable] {
                let k = Kernels::build(&c.model, &c.equations, &plan, backend).expect("kernels build");
                for name in k.kernels() {
                    let exprs = k.expressions(name).to_vec();
                    let mut out = vec![0.0; k.outputs(name)];
                    assert_eq!(out.len(), exprs.len(), "{} {name}", c.model.name);
                    for _ in 0..20 {
                        let (x, env) = random_input(&c, &k, &mut rng);
                        k.eval(name, &x, &mut out, &mut Vec::new());
                        let want = c.model.arena.eval_many(&exprs, &env);
                        for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                            assert!(close(*a, *b), "{} {method} {backend:?} {name}[{i}]: {a} vs {b}", c.model.name);
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} kernel evaluations checked");
}

/// The right-hand side `(v, M⁻¹f)` or `−g⁻¹∇E` of both backends against the
/// evaluator's `M`, `f`, `∇E`, `g` and a dense solve.
#[test]
fn right_hand_sides_match_a_dense_solve_of_the_evaluated_equations() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for path in examples() {
        let c = lagc::cli::load::compile_file_for(&path, &[], Some(Method::Rk4), &[]).expect("example compiles");
        // A model with an `interaction` has no per-particle system (its particles move together).
        let Ok(plan) = lagc::plan::plan(&c.model, &c.equations, Method::Rk4, None) else {
            assert!(c.model.interaction.is_some(), "{} refuses rk4", c.model.name);
            continue;
        };
        for backend in [BackendKind::Native, BackendKind::Portable] {
            let k = Kernels::build(&c.model, &c.equations, &plan, backend).unwrap();
            let n = c.model.vars.len();
            for _ in 0..20 {
                let (x, env) = random_input(&c, &k, &mut rng);
                let t = x[0];
                let dim = if c.model.kind == ModelKind::Lagrangian { 2 * n } else { n };
                let y = &x[1..1 + dim];
                let mut dy = vec![0.0; dim];
                k.rhs(t, y, &mut dy, &mut Work::default()).expect("regular state");
                let want: Vec<f64> = match &c.equations {
                    lagc::Equations::Lagrangian(e) => {
                        // Equations by segments written out row by row, in a copy of the arena.
                        let mut a = c.model.arena.clone();
                        let (_, mass, forcing) = e.written_out(&mut a);
                        let mut m: Vec<f64> = a.eval_many(&mass.concat(), &env);
                        let mut f = a.eval_many(&forcing, &env);
                        linalg::solve_spd_or_lu(&mut m, &mut f, n).unwrap();
                        y[n..].iter().copied().chain(f).collect()
                    }
                    lagc::Equations::Energy(e) => {
                        let g = c.model.arena.eval_many(&e.kernel.gradient, &env);
                        let mut r: Vec<f64> = g.iter().map(|v| -v).collect();
                        if let Some(metric) = &e.kernel.metric {
                            let mut m = c.model.arena.eval_many(metric, &env);
                            linalg::solve_spd_or_lu(&mut m, &mut r, n).unwrap();
                        }
                        r
                    }
                };
                for i in 0..dim {
                    assert!(
                        (dy[i] - want[i]).abs() <= 1e-10 * (1.0 + want[i].abs()),
                        "{} {backend:?} dy[{i}]: {} vs {}",
                        c.model.name,
                        dy[i],
                        want[i]
                    );
                }
            }
        }
    }
}

/// The second derivatives of the Lagrangian point (`L_vv`, `L_vq`, `L_qq`, `F_v`, `F_q`, of
/// which the implicit methods build their exact Newton Jacobians) against central
/// differences of its first derivatives (`L_v`, `L_q`, `F`), on both backends.
#[test]
fn lagrangian_point_derivatives_match_finite_differences() {
    let mut rng = Rng(0xdeadbeefcafef00d);
    for name in ["double_pendulum", "kepler", "charged_particle", "damped_oscillator", "nesterov"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.lag"));
        let c = lagc::cli::load::compile_file_for(&path, &[], Some(Method::Midpoint), &[]).unwrap();
        let plan = lagc::plan::plan(&c.model, &c.equations, Method::Midpoint, None).unwrap();
        for backend in [BackendKind::Native, BackendKind::Portable] {
            let k = Kernels::build(&c.model, &c.equations, &plan, backend).unwrap();
            let n = c.model.vars.len();
            let mut w = Work::default();
            let at = |t: f64, q: &[f64], v: &[f64], w: &mut Work| {
                let mut p = lagc::integrate::LagrangianPoint::new(n);
                k.point(t, q, v, &mut p, w).unwrap();
                p
            };
            for _ in 0..5 {
                let (x, _) = random_input(&c, &k, &mut rng);
                let (t, q, v) = (x[0], x[1..1 + n].to_vec(), x[1 + n..1 + 2 * n].to_vec());
                let p = at(t, &q, &v, &mut w);
                let h = 1e-6;
                for j in 0..n {
                    for by_v in [false, true] {
                        let (mut qp, mut qm, mut vp, mut vm) = (q.clone(), q.clone(), v.clone(), v.clone());
                        if by_v {
                            vp[j] += h;
                            vm[j] -= h;
                        } else {
                            qp[j] += h;
                            qm[j] -= h;
                        }
                        let (pp, pm) = (at(t, &qp, &vp, &mut w), at(t, &qm, &vm, &mut w));
                        let d = |a: &[f64], b: &[f64], i: usize| (a[i] - b[i]) / (2.0 * h);
                        for i in 0..n {
                            let ij = i * n + j;
                            let pairs = if by_v {
                                [
                                    ("L_vv", p.lvv[ij], d(&pp.lv, &pm.lv, i)),
                                    ("F_v", p.force_v[ij], d(&pp.force, &pm.force, i)),
                                ]
                            } else {
                                [("L_vq", p.lvq[ij], d(&pp.lv, &pm.lv, i)), ("L_qq", p.lqq[ij], d(&pp.lq, &pm.lq, i))]
                            };
                            let mut all = pairs.to_vec();
                            if !by_v {
                                all.push(("F_q", p.force_q[ij], d(&pp.force, &pm.force, i)));
                            }
                            for (what, exact, fd) in all {
                                assert!(
                                    (exact - fd).abs() < 1e-6 * (1.0 + fd.abs()),
                                    "{name} ({backend:?}) {what}[{i}][{j}]: {exact} vs {fd}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A diagonal mass matrix (here state-dependent: Kepler in polar form, and a
/// lattice) is recognised and solved by a division per coordinate, by both
/// backends, to the same result as a dense solve; a zero diagonal entry is a
/// singular mass matrix for both.
#[test]
fn diagonal_mass_matrices_are_solved_by_division() {
    let polar = "coord r, ph\nlagrangian = 1/2*(r'^2 + r^2*ph'^2) + 1/r\ninit r = 0.4, ph' = 5";
    let chain =
        "const N = 6\ncoord u[N]\nlagrangian = sum(i in 0..N, (i+1)/2*u[i]'^2) - sum(i in 0..N-1, (u[i+1] - u[i])^4)";
    let coupled = "coord x, y\nlagrangian = 1/2*(x'^2 + x'*y' + y'^2) - x^2 - y^2";
    for (src, diagonal) in [(polar, true), (chain, true), (coupled, false)] {
        let c = lagc::compile_for(src, "diag", &[], Some(Method::Rk4)).unwrap();
        let lagc::Equations::Lagrangian(e) = &c.equations else { unreachable!() };
        assert_eq!(e.diagonal_mass, diagonal, "{src}");
        let plan = lagc::plan::plan(&c.model, &c.equations, Method::Rk4, None).unwrap();
        let n = c.model.vars.len();
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for backend in [BackendKind::Native, BackendKind::Portable] {
            let k = Kernels::build(&c.model, &c.equations, &plan, backend).unwrap();
            for _ in 0..10 {
                let (x, env) = random_input(&c, &k, &mut rng);
                let y = &x[1..1 + 2 * n];
                let mut dy = vec![0.0; 2 * n];
                k.rhs(x[0], y, &mut dy, &mut Work::default()).unwrap();
                let mut m = c.model.arena.eval_many(&e.mass_matrix.concat(), &env);
                let mut f = c.model.arena.eval_many(&e.forcing, &env);
                linalg::solve_spd_or_lu(&mut m, &mut f, n).unwrap();
                for i in 0..n {
                    assert!((dy[n + i] - f[i]).abs() <= 1e-13 * (1.0 + f[i].abs()), "{backend:?} {src}");
                }
            }
            if src == polar {
                // r = 0: M = diag(1, 0) is singular.
                let err = k.rhs(0.0, &[0.0, 0.3, 0.1, 0.2], &mut [0.0; 4], &mut Work::default()).unwrap_err();
                assert_eq!(err, lagc::integrate::Cause::SingularMassMatrix, "{backend:?}");
            }
        }
    }
}

/// A lattice large enough that its right-hand side and its row kernel are
/// compiled in parts (`jit::codegen`'s `PART_NODES`): both still match the
/// evaluator.
#[test]
fn a_lattice_compiled_in_parts_matches_the_evaluator() {
    // A force on every site keeps the lattice out of the indexed derivation:
    // derived per coordinate, its right-hand side is compiled in parts.
    let src = "const N = 2048\nparam alpha = 0.25\ncoord u[N]\n\
               lagrangian = sum(i in 0..N, 1/2*u[i]'^2) - 1/2*u[0]^2 - 1/2*u[N-1]^2 \
               - sum(i in 0..N-1, 1/2*(u[i+1] - u[i])^2 + alpha/3*(u[i+1] - u[i])^3)\n\
               force u[i in 0..N] = 0.01*cos(t)\ninit u[i in 0..N] = sin(pi*(i+1)/(N+1))";
    let c = lagc::compile_for(src, "fput", &[], Some(Method::Rk4)).expect("compiles");
    let plan = lagc::plan::plan(&c.model, &c.equations, Method::Rk4, None).unwrap();
    assert!(!plan.indexed);
    let k = Kernels::build(&c.model, &c.equations, &plan, BackendKind::Native).unwrap();
    let ir = k.ir().unwrap();
    assert!(ir.contains("ode_rhs_part1") && ir.contains("expr_row_part1"), "compiled in parts");
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let n = c.model.vars.len();
    for _ in 0..3 {
        let (x, env) = random_input(&c, &k, &mut rng);
        let exprs = k.expressions(Kernel::Row).to_vec();
        let mut out = vec![0.0; exprs.len()];
        k.eval(Kernel::Row, &x, &mut out, &mut Vec::new());
        let want = c.model.arena.eval_many(&exprs, &env);
        for (i, (a, b)) in out.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()) * n as f64, "row[{i}]: {a} vs {b}");
        }
        let y = &x[1..1 + 2 * n];
        let mut dy = vec![0.0; 2 * n];
        k.rhs(x[0], y, &mut dy, &mut Work::default()).unwrap();
        let lagc::Equations::Lagrangian(e) = &c.equations else { unreachable!() };
        let f = c.model.arena.eval_many(&e.forcing, &env);
        for i in 0..n {
            assert_eq!(dy[i], y[n + i]);
            assert!((dy[n + i] - f[i]).abs() <= 1e-12 * (1.0 + f[i].abs()), "a[{i}]: {} vs {}", dy[n + i], f[i]);
        }
    }
}

/// A gradient kernel of many small expressions, compiled as functions of
/// consecutive ones, matches the evaluator.
#[test]
fn a_large_gradient_compiled_in_parts_matches_the_evaluator() {
    let src = "const N = 6000\nstate w[N]\n\
               energy = sum(i in 0..N, (w[i] - 1)^2) + sum(i in 0..N-1, w[i]*w[i+1]*cos(w[i]))\n";
    let c = lagc::compile_for(src, "wide", &[], Some(Method::Euler)).expect("compiles");
    let plan = lagc::plan::plan(&c.model, &c.equations, Method::Euler, None).unwrap();
    let k = Kernels::build(&c.model, &c.equations, &plan, BackendKind::Native).unwrap();
    assert!(k.ir().unwrap().contains("expr_gradient_part1"), "compiled in parts");
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let (x, env) = random_input(&c, &k, &mut rng);
    let exprs = k.expressions(Kernel::Gradient).to_vec();
    let mut out = vec![0.0; exprs.len()];
    k.eval(Kernel::Gradient, &x, &mut out, &mut Vec::new());
    let want = c.model.arena.eval_many(&exprs, &env);
    for (i, (a, b)) in out.iter().zip(&want).enumerate() {
        assert!(close(*a, *b), "∂E/∂w[{i}]: {a} vs {b}");
    }
}

/// The kernels `lagc solve` and `--sensitivities` add to a plan (the metric's
/// derivatives of a geodesic; the Jacobians, of a lattice by segments too)
/// against the evaluator, natively and portably.
#[test]
fn the_metric_derivatives_and_jacobian_kernels_match_the_evaluator() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut checked = 0;
    for name in ["fisher_rao_geodesic", "natural_gradient", "riemannian_langevin", "fput", "pendulum_chain"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.lag"));
        let mut c = lagc::cli::load::compile_file_for(&path, &[], Some(Method::Rk4), &[]).expect("example compiles");
        c.derive_jacobians().expect("Jacobians");
        c.derive_metric_derivatives().expect("metric derivatives");
        let mut plan = lagc::plan::plan(&c.model, &c.equations, Method::Rk4, None).expect("plan");
        for kernel in [Kernel::Jacobian, Kernel::MetricDerivatives] {
            if kernel.expressions(&c.model, &c.equations).is_some() {
                plan.kernels.push(kernel);
            }
        }
        for backend in [BackendKind::Native, BackendKind::Portable] {
            let k = Kernels::build(&c.model, &c.equations, &plan, backend).expect("kernels build");
            for kernel in [Kernel::Jacobian, Kernel::MetricDerivatives].into_iter().filter(|&x| k.has(x)) {
                let exprs = k.expressions(kernel).to_vec();
                let mut out = vec![0.0; k.outputs(kernel)];
                assert_eq!(out.len(), exprs.len(), "{name} {kernel}");
                for _ in 0..5 {
                    let (x, env) = random_input(&c, &k, &mut rng);
                    k.eval(kernel, &x, &mut out, &mut Vec::new());
                    let want = c.model.arena.eval_many(&exprs, &env);
                    for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                        assert!(close(*a, *b), "{name} {backend:?} {kernel}[{i}]: {a} vs {b}");
                    }
                    checked += 1;
                }
            }
        }
    }
    // Three models with a metric (its derivatives) and five with Jacobians, two backends.
    assert_eq!(checked, (3 + 5) * 2 * 5);
}

/// A lattice long enough for band storage (100 coordinates, tridiagonal point matrices):
/// its point kernel computes the band of each matrix only (3 entries a row, not 100), and
/// the point it fills equals the evaluator's dense point entry for entry, zeros outside
/// the band included, for both backends.
#[test]
fn a_banded_point_is_computed_band_only_and_fills_the_dense_point() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fput.lag");
    let n = 100;
    let c = lagc::cli::load::compile_file_for(&path, &[("N".into(), n as f64)], Some(Method::Variational), &[])
        .expect("fput compiles");
    let plan = lagc::plan::plan(&c.model, &c.equations, Method::Variational, None).expect("a plan");
    let dense = Kernel::Point.expressions(&c.model, &c.equations).expect("a point");
    assert_eq!(dense.len(), 4 * n + 5 * n * n);
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for backend in [BackendKind::Native, BackendKind::Portable] {
        let k = Kernels::build(&c.model, &c.equations, &plan, backend).expect("kernels build");
        assert_eq!(k.point_band, Some(1), "FPUT's point matrices are tridiagonal");
        // Each matrix: n − 2 rows of 3 entries and 2 end rows of 2.
        assert_eq!(k.outputs(Kernel::Point), 4 * n + 5 * (3 * n - 2), "{backend:?}");
        for _ in 0..3 {
            let (x, env) = random_input(&c, &k, &mut rng);
            let (t, q, v) = (x[0], &x[1..1 + n], &x[1 + n..1 + 2 * n]);
            let mut p = lagc::integrate::LagrangianPoint::new(n);
            k.point(t, q, v, &mut p, &mut Work::default()).expect("a finite point");
            let want = c.model.arena.eval_many(&dense, &env);
            let got: Vec<f64> = [&p.lv, &p.lq, &p.force, &p.lvv, &p.lvq, &p.lqq, &p.force_v, &p.force_q, &p.lvt]
                .into_iter()
                .flat_map(|v| v.iter().copied())
                .collect();
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(close(*a, *b), "{backend:?} point[{i}]: {a} vs {b}");
            }
        }
    }
}
