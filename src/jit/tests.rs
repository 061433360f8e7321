//! Compiled kernels against the tree-walking evaluator, the solvers against a
//! plain Gaussian elimination, the RK4 loop against closed forms and a plain
//! Rust loop over the same right-hand side.

use super::*;
use crate::sym::{Env, Func, Num, SymKind};

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

fn assert_close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1.0),
        "{what}: got {got:e}, want {want:e} (difference {:e})",
        (got - want).abs()
    );
}

/// The tree-walking evaluator's values of `outputs` with `inputs` set to `vals`.
fn evaluated(a: &Arena, inputs: &[SymId], vals: &[f64], outputs: &[ExprId]) -> Vec<f64> {
    let mut env = Env::new(a);
    for (&s, &v) in inputs.iter().zip(vals) {
        env.set(s, v);
    }
    a.eval_many(outputs, &env)
}

/// Gaussian elimination with partial pivoting, independent of the runtime's.
fn gauss(n: usize, mut a: Vec<f64>, mut b: Vec<f64>) -> Vec<f64> {
    for k in 0..n {
        let p = (k..n).max_by(|&i, &j| a[i * n + k].abs().total_cmp(&a[j * n + k].abs())).unwrap();
        for j in 0..n {
            a.swap(k * n + j, p * n + j);
        }
        b.swap(k, p);
        for i in k + 1..n {
            let l = a[i * n + k] / a[k * n + k];
            for j in k..n {
                a[i * n + j] -= l * a[k * n + j];
            }
            b[i] -= l * b[k];
        }
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|j| a[i * n + j] * x[j]).sum();
        x[i] = (b[i] - s) / a[i * n + i];
    }
    x
}

/// `M = ∂²L/∂v∂v`, `f = ∂L/∂q − ∂²L/∂v∂q · v − ∂²L/∂v∂t`.
fn euler_lagrange(a: &mut Arena, l: ExprId, q: &[SymId], v: &[SymId], t: SymId) -> (Vec<ExprId>, Vec<ExprId>) {
    let n = q.len();
    let lv: Vec<ExprId> = v.iter().map(|&s| a.diff(l, s)).collect();
    let mut m = Vec::with_capacity(n * n);
    let mut f = Vec::with_capacity(n);
    for i in 0..n {
        for &vj in v {
            m.push(a.diff(lv[i], vj));
        }
        let mut terms = vec![a.diff(l, q[i])];
        for j in 0..n {
            let d = a.diff(lv[i], q[j]);
            let vj = a.sym(v[j]);
            let dv = a.mul(&[d, vj]);
            terms.push(a.neg(dv));
        }
        let dt = a.diff(lv[i], t);
        terms.push(a.neg(dt));
        f.push(a.add(&terms));
    }
    (m, f)
}

/// The planar chain of `n` pendulums written with Cartesian bob positions;
/// parameters `(m_1…m_n, l_1…l_n, g)`.
fn pendulum_chain(a: &mut Arena, n: usize) -> OdeSpec {
    let t = a.new_symbol("t", SymKind::Time);
    let q: Vec<SymId> = (0..n).map(|i| a.new_symbol(format!("q[{i}]"), SymKind::Coord(i))).collect();
    let v: Vec<SymId> = (0..n).map(|i| a.new_symbol(format!("q[{i}]'"), SymKind::Velocity(i))).collect();
    let mut params: Vec<SymId> = (0..n).map(|i| a.new_symbol(format!("m{i}"), SymKind::Param(i))).collect();
    params.extend((0..n).map(|i| a.new_symbol(format!("l{i}"), SymKind::Param(n + i))));
    params.push(a.new_symbol("g", SymKind::Param(2 * n)));
    let chain: Vec<(SymId, SymId)> = q.iter().copied().zip(v.iter().copied()).collect();
    let g = a.sym(params[2 * n]);
    let (mut x, mut y) = (a.int(0), a.int(0));
    let mut lagrangian = Vec::new();
    for i in 0..n {
        let (qi, li, mi) = (a.sym(q[i]), a.sym(params[n + i]), a.sym(params[i]));
        let (s, c) = (a.func(Func::Sin, qi), a.func(Func::Cos, qi));
        let ls = a.mul(&[li, s]);
        let lc = a.mul(&[li, c]);
        x = a.add(&[x, ls]);
        y = a.sub(y, lc);
        let (xd, yd) = (a.time_derivative(x, &chain, Some(t)), a.time_derivative(y, &chain, Some(t)));
        let (xd2, yd2) = (a.powi(xd, 2), a.powi(yd, 2));
        let speed2 = a.add(&[xd2, yd2]);
        let half = a_half(a);
        lagrangian.push(a.mul(&[half, mi, speed2]));
        let pot = a.mul(&[mi, g, y]);
        lagrangian.push(a.neg(pot));
    }
    let l = a.add(&lagrangian);
    let (mass_matrix, forcing) = euler_lagrange(a, l, &q, &v, t);
    OdeSpec {
        n,
        time: t,
        coords: q,
        velocities: v,
        params,
        mass: Matrix::Dense(mass_matrix),
        forcing,
        batch: None,
        rows: None,
    }
}

fn a_half(a: &mut Arena) -> ExprId {
    a.num(Num::HALF)
}

/// Sets the state and parameters of an ODE spec in an environment.
fn ode_env(a: &Arena, s: &OdeSpec, t: f64, y: &[f64], p: &[f64]) -> Env {
    let mut env = Env::new(a);
    env.set(s.time, t);
    for (sym, &x) in s.coords.iter().chain(&s.velocities).zip(y) {
        env.set(*sym, x);
    }
    for (sym, &x) in s.params.iter().zip(p) {
        env.set(*sym, x);
    }
    env
}

fn random_chain_state(rng: &mut Rng, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut y: Vec<f64> = (0..n).map(|_| rng.range(-3.0, 3.0)).collect();
    y.extend((0..n).map(|_| rng.range(-2.0, 2.0)));
    let mut p: Vec<f64> = (0..2 * n).map(|_| rng.range(0.5, 2.0)).collect();
    p.push(rng.range(1.0, 10.0));
    (y, p)
}

/// Checks `ode_rhs` against evaluating `M`, `f` and solving densely.
fn check_rhs_against_dense(a: &Arena, s: &OdeSpec, c: &NativeCode, samples: usize, tol: f64) {
    let rhs = c.ode_rhs().unwrap();
    let n = s.n;
    let mut rng = Rng(7);
    for _ in 0..samples {
        let (y, p) = random_chain_state(&mut rng, n);
        let t = rng.range(0.0, 10.0);
        let env = ode_env(a, s, t, &y, &p);
        let m = a.eval_many(s.mass.entries(), &env);
        let f = a.eval_many(&s.forcing, &env);
        let want = gauss(n, m, f);
        let mut dy = vec![0.0; 2 * n];
        rhs.call(t, &y, &p, &mut dy).unwrap();
        for i in 0..n {
            assert_eq!(dy[i], y[n + i], "dq/dt = v");
            assert_close(dy[n + i], want[i], tol, &format!("acceleration {i}"));
        }
    }
}

/// The plain-Rust RK4 loop over a compiled right-hand side, in the loop's order of operations.
fn rk4_reference(rhs: &RhsFn, t0: f64, h: f64, n_steps: usize, y: &mut [f64], p: &[f64]) {
    let d = y.len();
    let f = |t: f64, y: &[f64]| {
        let mut dy = vec![0.0; d];
        rhs.call(t, y, p, &mut dy).unwrap();
        dy
    };
    let axpy = |y: &[f64], a: f64, x: &[f64]| -> Vec<f64> { y.iter().zip(x).map(|(yi, xi)| yi + a * xi).collect() };
    let (hh, h6) = (h * 0.5, h / 6.0);
    for k in 0..n_steps {
        let kf = k as f64;
        let (t1, tm, t4) = (t0 + kf * h, t0 + (kf + 0.5) * h, t0 + (kf + 1.0) * h);
        let k1 = f(t1, y);
        let k2 = f(tm, &axpy(y, hh, &k1));
        let k3 = f(tm, &axpy(y, hh, &k2));
        let k4 = f(t4, &axpy(y, h, &k3));
        let sum: Vec<f64> = (0..d).map(|i| ((k1[i] + 2.0 * k2[i]) + 2.0 * k3[i]) + k4[i]).collect();
        let next = axpy(y, h6, &sum);
        y.copy_from_slice(&next);
    }
}

/// A one-coordinate system `m q'' = f` with `m`, `f` built by the closures.
fn scalar_ode(
    a: &mut Arena,
    m: impl Fn(&mut Arena, ExprId, ExprId) -> ExprId,
    f: impl Fn(&mut Arena, ExprId, ExprId) -> ExprId,
) -> OdeSpec {
    let t = a.new_symbol("t", SymKind::Time);
    let q = a.new_symbol("q", SymKind::Coord(0));
    let v = a.new_symbol("q'", SymKind::Velocity(0));
    let (te, qe) = (a.sym(t), a.sym(q));
    let mass = m(a, te, qe);
    let force = f(a, te, qe);
    OdeSpec {
        n: 1,
        time: t,
        coords: vec![q],
        velocities: vec![v],
        params: vec![],
        mass: Matrix::Dense(vec![mass]),
        forcing: vec![force],

        batch: None,
        rows: None,
    }
}

fn harmonic(a: &mut Arena) -> OdeSpec {
    scalar_ode(a, |a, _, _| a.int(1), |a, _, q| a.neg(q))
}

/// A two-coordinate system with a constant mass matrix and forcing `(1, 2)`.
fn constant_ode(a: &mut Arena, m: [f64; 4]) -> OdeSpec {
    let t = a.new_symbol("t", SymKind::Time);
    let q: Vec<SymId> = (0..2).map(|i| a.new_symbol(format!("q{i}"), SymKind::Coord(i))).collect();
    let v: Vec<SymId> = (0..2).map(|i| a.new_symbol(format!("v{i}"), SymKind::Velocity(i))).collect();
    let mass_matrix = m.iter().map(|&x| a.num(Num::literal(x))).collect();
    let forcing = vec![a.int(1), a.int(2)];
    OdeSpec {
        n: 2,
        time: t,
        coords: q,
        velocities: v,
        params: vec![],
        mass: Matrix::Dense(mass_matrix),
        forcing,
        batch: None,
        rows: None,
    }
}

#[test]
fn expression_kernels_match_the_evaluator() {
    let mut a = Arena::new();
    let s = pendulum_chain(&mut a, 2);
    let x = a.new_symbol("x", SymKind::State(0));
    let y = a.new_symbol("y", SymKind::State(1));
    let pi = a.new_symbol("pi", SymKind::Pi);
    let (xe, ye, pie) = (a.sym(x), a.sym(y), a.sym(pi));
    let third = a.num(Num::rat(1, 3));
    let x3 = a.mul(&[third, xe]); // in (−1, 1) for the sampled x
    let one = a.int(1);
    let x2 = a.powi(xe, 2);
    let one_x2 = a.add(&[one, x2]);
    let mut zoo = vec![
        a.func(Func::Tan, xe),
        a.func(Func::Asin, x3),
        a.func(Func::Acos, x3),
        a.func(Func::Atan, xe),
        a.func(Func::Sinh, xe),
        a.func(Func::Cosh, ye),
        a.func(Func::Tanh, xe),
        a.func(Func::Exp, ye),
        a.func(Func::Log, one_x2),
        a.func(Func::Abs, xe),
        a.func(Func::Sign, xe),
        a.atan2(ye, xe),
        a.mul(&[pie, xe]),
        a.pow(one_x2, ye),
        a.div(xe, ye),
        a.sqrt(one_x2),
    ];
    for k in [-16, -3, -1, 2, 3, 5, 7, 16, 17, 40] {
        zoo.push(a.powi(one_x2, k));
    }
    for (p, q) in [(1, 2), (-1, 2), (3, 2), (-5, 3)] {
        let e = a.num(Num::rat(p, q));
        zoo.push(a.pow(one_x2, e));
    }
    let mut inputs = vec![s.time];
    inputs.extend(s.coords.iter().chain(&s.velocities).chain(&s.params));
    inputs.extend([x, y]);
    let mut outputs = s.mass.entries().to_vec();
    outputs.extend(&s.forcing);
    outputs.extend(&zoo);
    let kernel = ExprKernel { name: "all".into(), inputs: inputs.clone(), outputs: outputs.clone(), batch: None };
    let c = compile(&a, &[kernel], None, None).unwrap();
    let f = c.expr(0).unwrap();
    assert!(c.expr(1).is_none());
    let mut rng = Rng(1);
    let mut out = vec![0.0; outputs.len()];
    for sample in 0..100 {
        let vals: Vec<f64> = inputs
            .iter()
            .map(|&s| match a.symbol(s).kind {
                SymKind::Param(_) => rng.range(0.5, 2.0),
                SymKind::State(1) => rng.range(0.1, 2.0),
                _ => rng.range(-2.5, 2.5),
            })
            .collect();
        // Exercise sign(0) too.
        let vals: Vec<f64> =
            vals.iter().zip(&inputs).map(|(&v, &s)| if s == x && sample == 0 { 0.0 } else { v }).collect();
        let want = evaluated(&a, &inputs, &vals, &outputs);
        f.call(&vals, &mut out);
        for (k, (&got, &w)) in out.iter().zip(&want).enumerate() {
            assert_close(got, w, 1e-12, &format!("output {k} ({})", a.to_text(outputs[k])));
        }
    }
}

/// Sines and cosines of `±x ± y` are formed from those of `x` and `y` when that saves calls
/// (`translate::angle_sums`): every sign, against the evaluator, to a few units of rounding
/// of 1 (the expansion's error is absolute).
#[test]
fn angle_sums_are_expanded_with_every_sign() {
    let mut a = Arena::new();
    let x = a.new_symbol("x", SymKind::State(0));
    let y = a.new_symbol("y", SymKind::State(1));
    let (xe, ye) = (a.sym(x), a.sym(y));
    let (mx, my) = (a.neg(xe), a.neg(ye));
    let args = [a.add(&[xe, ye]), a.add(&[xe, my]), a.add(&[mx, ye]), a.add(&[mx, my])];
    let mut outputs = vec![a.func(Func::Sin, xe), a.func(Func::Cos, ye)];
    for &u in &args {
        outputs.push(a.func(Func::Sin, u));
        outputs.push(a.func(Func::Cos, u));
    }
    let inputs = vec![x, y];
    let kernel = ExprKernel { name: "angles".into(), inputs: inputs.clone(), outputs: outputs.clone(), batch: None };
    let c = compile(&a, &[kernel], None, None).unwrap();
    // Two calls of sincos (x and y), not six, and no other call.
    let ir = c.ir().unwrap();
    assert_eq!(count_calls(ir, "lagc_sincos"), 2, "{ir}");
    assert_eq!(count_calls(ir, "lagc_sin") + count_calls(ir, "lagc_cos"), 0, "{ir}");
    let f = c.expr(0).unwrap();
    let mut rng = Rng(3);
    let mut out = vec![0.0; outputs.len()];
    for _ in 0..200 {
        let vals = [rng.range(-7.0, 7.0), rng.range(-7.0, 7.0)];
        let want = evaluated(&a, &inputs, &vals, &outputs);
        f.call(&vals, &mut out);
        for (k, (&got, &w)) in out.iter().zip(&want).enumerate() {
            assert!((got - w).abs() <= 8.0 * f64::EPSILON, "output {k} ({}): {got} against {w}", a.to_text(outputs[k]));
        }
    }
}

/// A lone `sin(x − y)`, with no sine or cosine of `x` or `y` of its own, stays one call.
#[test]
fn a_lone_angle_difference_stays_one_call() {
    let mut a = Arena::new();
    let x = a.new_symbol("x", SymKind::State(0));
    let y = a.new_symbol("y", SymKind::State(1));
    let (xe, ye) = (a.sym(x), a.sym(y));
    let d = a.sub(xe, ye);
    let outputs = vec![a.func(Func::Sin, d)];
    let kernel = ExprKernel { name: "lone".into(), inputs: vec![x, y], outputs, batch: None };
    let c = compile(&a, &[kernel], None, None).unwrap();
    let ir = c.ir().unwrap();
    assert_eq!(count_calls(ir, "lagc_sin"), 1, "{ir}");
    assert_eq!(count_calls(ir, "lagc_sincos"), 0, "{ir}");
}

#[test]
fn ode_rhs_matches_a_dense_solve() {
    // The chain of eight forms its 28 angle differences from the angles' sines and cosines.
    for (n, samples, tol) in [(2, 100, 1e-12), (8, 50, 1e-11)] {
        let mut a = Arena::new();
        let s = pendulum_chain(&mut a, n);
        let c = compile(&a, &[], Some(&s), None).unwrap();
        check_rhs_against_dense(&a, &s, &c, samples, tol);
        assert!(c.flow_rhs().is_none());
    }
}

/// The textbook closed form of the double pendulum's accelerations.
fn double_pendulum_closed_form(y: &[f64], p: &[f64]) -> [f64; 2] {
    let (q1, q2, v1, v2) = (y[0], y[1], y[2], y[3]);
    let (m1, m2, l1, l2, g) = (p[0], p[1], p[2], p[3], p[4]);
    let d = q1 - q2;
    let den = 2.0 * m1 + m2 - m2 * (2.0 * d).cos();
    let a1 = (-g * (2.0 * m1 + m2) * q1.sin()
        - m2 * g * (q1 - 2.0 * q2).sin()
        - 2.0 * d.sin() * m2 * (v2 * v2 * l2 + v1 * v1 * l1 * d.cos()))
        / (l1 * den);
    let a2 = 2.0 * d.sin() * (v1 * v1 * l1 * (m1 + m2) + g * (m1 + m2) * q1.cos() + v2 * v2 * l2 * m2 * d.cos())
        / (l2 * den);
    [a1, a2]
}

#[test]
fn double_pendulum_agrees_with_its_closed_form() {
    let mut a = Arena::new();
    let s = pendulum_chain(&mut a, 2);
    let c = compile(&a, &[], Some(&s), None).unwrap();
    let rhs = c.ode_rhs().unwrap();
    let mut rng = Rng(3);
    for _ in 0..100 {
        let (y, p) = random_chain_state(&mut rng, 2);
        let mut dy = [0.0; 4];
        rhs.call(0.0, &y, &p, &mut dy).unwrap();
        let want = double_pendulum_closed_form(&y, &p);
        assert_close(dy[2], want[0], 1e-9, "a1");
        assert_close(dy[3], want[1], 1e-9, "a2");
    }
}

#[test]
fn singular_mass_matrices_are_reported() {
    for m in [[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 2.0, 4.0]] {
        let mut a = Arena::new();
        let s = constant_ode(&mut a, m);
        let c = compile(&a, &[], Some(&s), None).unwrap();
        let mut dy = [0.0; 4];
        assert_eq!(c.ode_rhs().unwrap().call(0.0, &[0.0; 4], &[], &mut dy), Err(Singular), "{m:?}");
    }
    // A non-finite entry: M = [1/q].
    let mut a = Arena::new();
    let s = scalar_ode(&mut a, |a, _, q| a.powi(q, -1), |a, _, _| a.int(1));
    let c = compile(&a, &[], Some(&s), None).unwrap();
    let mut dy = [0.0; 2];
    assert_eq!(c.ode_rhs().unwrap().call(0.0, &[0.0, 0.0], &[], &mut dy), Err(Singular));
    c.ode_rhs().unwrap().call(0.0, &[0.5, 0.0], &[], &mut dy).unwrap();
    assert_eq!(dy[1], 0.5);
}

#[test]
fn indefinite_mass_matrices_solve_by_lu() {
    // f = (1, 2) in every case.
    for (m, want) in
        [([1.0, 0.0, 0.0, -1.0], [1.0, -2.0]), ([0.0, 1.0, 1.0, 0.0], [2.0, 1.0]), ([1.0, 2.0, 2.0, 1.0], [1.0, 0.0])]
    {
        let mut a = Arena::new();
        let s = constant_ode(&mut a, m);
        let c = compile(&a, &[], Some(&s), None).unwrap();
        let mut dy = [0.0; 4];
        c.ode_rhs().unwrap().call(0.0, &[0.0; 4], &[], &mut dy).unwrap();
        assert_close(dy[2], want[0], 1e-14, "a1");
        assert_close(dy[3], want[1], 1e-14, "a2");
    }
    // The runtime helpers directly: n = 15 indefinite and singular.
    let n = 15;
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        m[i * n + i] = if i % 2 == 0 { 2.0 } else { -3.0 };
        if i + 1 < n {
            m[i * n + i + 1] = 0.5;
            m[(i + 1) * n + i] = 0.5;
        }
    }
    let b: Vec<f64> = (0..n).map(|i| i as f64 - 3.0).collect();
    let want = gauss(n, m.clone(), b.clone());
    // Its upper band (b = 1) row by row, then the right-hand side: Cholesky fails, band LU solves.
    let mut band: Vec<f64> =
        (0..n).flat_map(|i| [m[i * n + i], if i + 1 < n { m[i * n + i + 1] } else { 0.0 }]).collect();
    band.extend(&b);
    let mut x = vec![0.0; n];
    assert_eq!(unsafe { runtime::lagc_band_solve(n as i64, 1, band.as_ptr(), x.as_mut_ptr()) }, 0);
    for i in 0..n {
        assert_close(x[i], want[i], 1e-12, "band LU fallback");
    }
    let (mut zero, mut x) = (vec![0.0; n * n], b);
    assert_eq!(unsafe { runtime::lagc_lu_solve(n as i64, zero.as_mut_ptr(), x.as_mut_ptr()) }, 1);
}

#[test]
fn rk4_loop_integrates_the_harmonic_oscillator() {
    let mut a = Arena::new();
    let s = harmonic(&mut a);
    let c = compile(&a, &[], Some(&s), None).unwrap();
    let rk4 = c.rk4_loop().unwrap();
    let (h, n) = (0.01, 1000);
    let mut y = [1.0, 0.0];
    let mut rows = Vec::new();
    assert_eq!(rk4.call(0.0, h, n, 100, &mut y, &[], &mut rows), Ok(n));
    assert!((y[0] - 10f64.cos()).abs() < 1e-9, "q(10) = {}", y[0]);
    assert!((y[1] + 10f64.sin()).abs() < 1e-9, "v(10) = {}", y[1]);
    // Rows at steps 0, 100, …, 1000, times t0 + k h.
    assert_eq!(rows.len(), 11 * 3);
    for (r, row) in rows.chunks(3).enumerate() {
        assert_eq!(row[0], (100 * r) as f64 * h);
    }
    assert_eq!(&rows[30..], &[1000.0 * h, y[0], y[1]]);
    // The same steps in Rust through the compiled right-hand side.
    let mut z = [1.0, 0.0];
    rk4_reference(&c.ode_rhs().unwrap(), 0.0, h, n, &mut z, &[]);
    assert!((y[0] - z[0]).abs() <= 1e-13 && (y[1] - z[1]).abs() <= 1e-13, "{y:?} vs {z:?}");
    // The energy factor per step on y' = iωy (docs/numerics.md §RK4), ω h = 0.1, 10⁵ steps.
    let mut y = [1.0, 0.0];
    rk4.call(0.0, 0.1, 100_000, 100_000, &mut y, &[], &mut Vec::new()).unwrap();
    let ratio = y[0] * y[0] + y[1] * y[1];
    assert!((ratio / 0.998_613_808_86 - 1.0).abs() < 1e-9, "H/H0 = {ratio}");
}

#[test]
fn rk4_loop_writes_a_row_every_few_steps() {
    let mut a = Arena::new();
    let s = harmonic(&mut a);
    let c = compile(&a, &[], Some(&s), None).unwrap();
    let rk4 = c.rk4_loop().unwrap();
    for (n_steps, every, rows_expected) in [(10, 1, 11), (10, 3, 4), (10, 10, 2), (10, 11, 1), (10, 0, 11), (0, 1, 1)] {
        let mut y = [1.0, 0.0];
        let mut rows = vec![-1.0]; // rows are appended
        assert_eq!(rk4.call(2.0, 0.5, n_steps, every, &mut y, &[], &mut rows), Ok(n_steps));
        assert_eq!(rows.len(), 1 + 3 * rows_expected, "n = {n_steps}, every = {every}");
        let every = every.max(1);
        for (r, row) in rows[1..].chunks(3).enumerate() {
            assert_eq!(row[0], 2.0 + (r * every) as f64 * 0.5);
        }
    }
}

#[test]
fn rk4_loop_stops_at_a_non_finite_state() {
    // f = 1/(t − 1) with h = 1/4: step 3 evaluates its last stage at t = 1.
    let mut a = Arena::new();
    let s = scalar_ode(
        &mut a,
        |a, _, _| a.int(1),
        |a, t, _| {
            let m1 = a.int(-1);
            let d = a.add(&[t, m1]);
            a.powi(d, -1)
        },
    );
    let c = compile(&a, &[], Some(&s), None).unwrap();
    let mut y = [0.0, 0.0];
    let mut rows = Vec::new();
    let err = c.rk4_loop().unwrap().call(0.0, 0.25, 10, 1, &mut y, &[], &mut rows).unwrap_err();
    assert_eq!(err, LoopFailure { step: 3, t: 0.75, cause: FailureCause::NonFinite });
    assert_eq!(rows.len(), 4 * 3);
    assert!(y.iter().all(|x| x.is_finite()));
    assert_eq!(&rows[9..], &[0.75, y[0], y[1]]);
}

#[test]
fn rk4_loop_stops_at_a_singular_mass_matrix() {
    // M = t − 1 vanishes at the last stage of step 3.
    let mut a = Arena::new();
    let s = scalar_ode(
        &mut a,
        |a, t, _| {
            let m1 = a.int(-1);
            a.add(&[t, m1])
        },
        |a, _, _| a.int(1),
    );
    let c = compile(&a, &[], Some(&s), None).unwrap();
    let mut y = [0.0, 0.0];
    let mut rows = Vec::new();
    let err = c.rk4_loop().unwrap().call(2.0, -0.25, 10, 2, &mut y, &[], &mut rows).unwrap_err();
    assert_eq!(err, LoopFailure { step: 3, t: 1.25, cause: FailureCause::Singular });
    assert_eq!(rows.len(), 2 * 3); // steps 0 and 2
}

#[test]
fn a_chain_of_fifteen_is_solved_out_of_line() {
    let n = 15;
    let mut a = Arena::new();
    let s = pendulum_chain(&mut a, n);
    let c = compile(&a, &[], Some(&s), None).unwrap();
    // A dense matrix past the unrolled size is the band b = n − 1, in the scratch array.
    let ir = c.ir().unwrap();
    assert!(ir.contains("%lagc_band_solve") && ir.contains("%lagc_scratch"));
    check_rhs_against_dense(&a, &s, &c, 10, 1e-10);
    let (mut y, p) = random_chain_state(&mut Rng(11), n);
    for v in &mut y[n..] {
        *v *= 0.1;
    }
    let mut z = y.clone();
    c.rk4_loop().unwrap().call(0.0, 1e-3, 50, 10, &mut y, &p, &mut Vec::new()).unwrap();
    rk4_reference(&c.ode_rhs().unwrap(), 0.0, 1e-3, 50, &mut z, &p);
    for i in 0..2 * n {
        assert!((y[i] - z[i]).abs() <= 1e-13, "component {i}: {} vs {}", y[i], z[i]);
    }
}

/// The number of calls of `symbol` in CLIF text.
fn count_calls(ir: &str, symbol: &str) -> usize {
    let mut count = 0;
    for function in ir.split("\nfunction ") {
        let refs: Vec<String> = function
            .lines()
            .filter_map(|l| {
                let (lhs, rhs) = l.trim().split_once(" = ")?;
                (lhs.starts_with("fn") && rhs.contains(&format!("%{symbol} "))).then(|| format!("call {lhs}("))
            })
            .collect();
        count += function.lines().filter(|l| refs.iter().any(|r| l.contains(r.as_str()))).count();
    }
    count
}

#[test]
fn sin_and_cos_of_one_argument_share_a_call() {
    let mut a = Arena::new();
    let q = a.new_symbol("q", SymKind::Coord(0));
    let r = a.new_symbol("r", SymKind::Coord(1));
    let (qe, re) = (a.sym(q), a.sym(r));
    let half = a_half(&mut a);
    let half_q = a.mul(&[half, qe]);
    let outputs = vec![
        a.func(Func::Sin, qe),
        a.func(Func::Cos, qe),
        a.func(Func::Sin, re),
        a.func(Func::Sin, half_q),
        a.func(Func::Cos, half_q),
    ];
    let k = ExprKernel { name: "trig".into(), inputs: vec![q, r], outputs, batch: None };
    let c = compile(&a, &[k], None, None).unwrap();
    let ir = c.ir().unwrap();
    assert_eq!(count_calls(ir, "lagc_sincos"), 2, "{ir}");
    assert_eq!(count_calls(ir, "lagc_sin"), 1, "{ir}");
    assert_eq!(count_calls(ir, "lagc_cos"), 0, "{ir}");
    assert!(ir.contains("function %expr_trig("), "{ir}");
    let mut out = [0.0; 5];
    c.expr(0).unwrap().call(&[0.3, -1.2], &mut out);
    assert_eq!(out, [0.3f64.sin(), 0.3f64.cos(), (-1.2f64).sin(), 0.15f64.sin(), 0.15f64.cos()]);

    // The right-hand side of a chain: one sincos per coordinate, no other trig call (the
    // chain of eight's `sin(q_i − q_j)` and `cos(q_i − q_j)` are formed from them).
    for n in [2, 8] {
        let mut a = Arena::new();
        let s = pendulum_chain(&mut a, n);
        let c = compile(&a, &[], Some(&s), None).unwrap();
        let rhs_ir = c.ir().unwrap().split("\nfunction ").next().unwrap();
        assert_eq!(count_calls(rhs_ir, "lagc_sincos"), n, "{rhs_ir}");
        assert_eq!(count_calls(rhs_ir, "lagc_sin") + count_calls(rhs_ir, "lagc_cos"), 0);
        assert!(c.instruction_count() > 0);
    }
}

#[test]
fn flows_solve_with_their_metric() {
    let mut a = Arena::new();
    let t = a.new_symbol("t", SymKind::Time);
    let th: Vec<SymId> = (0..2).map(|i| a.new_symbol(format!("th{i}"), SymKind::State(i))).collect();
    let k = a.new_symbol("k", SymKind::Param(0));
    let (x, y, ke) = (a.sym(th[0]), a.sym(th[1]), a.sym(k));
    // E = ½(x² + k y²); rhs = −∇E; g = [[2 + sin² x, 0.5], [0.5, 1 + y²]].
    let mx = a.neg(x);
    let ky = a.mul(&[ke, y]);
    let rhs = vec![mx, a.neg(ky)];
    let two = a.int(2);
    let sx = a.func(Func::Sin, x);
    let sx2 = a.powi(sx, 2);
    let g00 = a.add(&[two, sx2]);
    let half = a_half(&mut a);
    let one = a.int(1);
    let y2 = a.powi(y, 2);
    let g11 = a.add(&[one, y2]);
    let metric = vec![g00, half, half, g11];
    let spec = FlowSpec {
        time: t,
        state: th.clone(),
        params: vec![k],
        rhs: rhs.clone(),
        metric: Some(Matrix::Dense(metric.clone())),
        batch: None,
    };
    let c = compile(&a, &[], None, Some(&spec)).unwrap();
    assert!(c.ode_rhs().is_none() && c.rk4_loop().is_none());
    let f = c.flow_rhs().unwrap();
    let mut rng = Rng(5);
    for _ in 0..100 {
        let st = [rng.range(-2.0, 2.0), rng.range(-2.0, 2.0)];
        let kv = rng.range(1.0, 10.0);
        let mut env = Env::new(&a);
        env.set(th[0], st[0]);
        env.set(th[1], st[1]);
        env.set(k, kv);
        let want = gauss(2, a.eval_many(&metric, &env), a.eval_many(&rhs, &env));
        let mut dy = [0.0; 2];
        f.call(0.0, &st, &[kv], &mut dy).unwrap();
        assert_close(dy[0], want[0], 1e-12, "flow 0");
        assert_close(dy[1], want[1], 1e-12, "flow 1");
    }
    // Without a metric, with k = 10: θ(t) = (e^{−t}, e^{−10t}).
    let spec = FlowSpec { metric: None, ..spec };
    let c = compile(&a, &[], None, Some(&spec)).unwrap();
    let mut st = [1.0, 1.0];
    c.flow_rk4_loop().unwrap().call(0.0, 1e-3, 1000, 1000, &mut st, &[10.0], &mut Vec::new()).unwrap();
    assert_close(st[0], (-1f64).exp(), 1e-12, "e^-t");
    assert_close(st[1], (-10f64).exp(), 1e-11, "e^-10t");
}

#[test]
fn bad_specs_are_errors() {
    let mut a = Arena::new();
    let s = pendulum_chain(&mut a, 2);
    let k = ExprKernel { name: "m".into(), inputs: s.coords.clone(), outputs: s.forcing.clone(), batch: None };
    assert!(matches!(compile(&a, std::slice::from_ref(&k), None, None), Err(JitError::UnboundSymbol { .. })));
    let k = ExprKernel { inputs: vec![], outputs: vec![], ..k };
    assert!(matches!(compile(&a, &[k.clone(), k], None, None), Err(JitError::DuplicateKernel(_))));
    let bad = OdeSpec { forcing: vec![], ..s.clone() };
    assert!(matches!(compile(&a, &[], Some(&bad), None), Err(JitError::Shape { expected: 2, found: 0, .. })));
    let bad = OdeSpec { params: vec![], ..s };
    let err = compile(&a, &[], Some(&bad), None).err().unwrap();
    assert!(matches!(err, JitError::UnboundSymbol { .. }), "{err}");
    assert!(err.to_string().starts_with("kernel `ode` reads the symbol"), "{err}");
}

fn resident_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}

#[test]
fn dropping_a_module_frees_its_code() {
    let mut a = Arena::new();
    let s = harmonic(&mut a);
    let before = resident_kib();
    for i in 0..1000 {
        let c = compile(&a, &[], Some(&s), None).unwrap();
        let mut dy = [0.0; 2];
        c.ode_rhs().unwrap().call(0.0, &[i as f64, 0.0], &[], &mut dy).unwrap();
        assert_eq!(dy[1], -(i as f64));
    }
    if let (Some(b), Some(after)) = (before, resident_kib()) {
        assert!(after < b + 200 * 1024, "resident memory grew from {b} KiB to {after} KiB");
    }
}

/// The hand-written double pendulum (unit masses and lengths), RK4 over `[f64; 4]`.
fn closed_form_rk4(y: &mut [f64; 4], g: f64, h: f64, n_steps: usize) {
    #[inline(always)]
    fn f(y: &[f64; 4], g: f64) -> [f64; 4] {
        let a = double_pendulum_closed_form(y, &[1.0, 1.0, 1.0, 1.0, g]);
        [y[2], y[3], a[0], a[1]]
    }
    for _ in 0..n_steps {
        let k1 = f(y, g);
        let k2 = f(&std::array::from_fn(|i| y[i] + 0.5 * h * k1[i]), g);
        let k3 = f(&std::array::from_fn(|i| y[i] + 0.5 * h * k2[i]), g);
        let k4 = f(&std::array::from_fn(|i| y[i] + h * k3[i]), g);
        *y = std::array::from_fn(|i| y[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]));
    }
}

/// `LAGC_BENCH=1 cargo test --release bench -- --nocapture`: the double
/// pendulum (docs/numerics.md, problem A) by the JIT's RK4 loop, with the
/// equations as derived and after `Arena::simplify`, against the closed form.
#[test]
fn bench_double_pendulum_rk4() {
    if std::env::var("LAGC_BENCH").as_deref() != Ok("1") {
        return;
    }
    let mut a = Arena::new();
    let raw = pendulum_chain(&mut a, 2);
    let mut simplified = raw.clone();
    let Matrix::Dense(m) = &mut simplified.mass else { unreachable!("the chain's matrix is dense") };
    for e in m.iter_mut().chain(simplified.forcing.iter_mut()) {
        *e = a.simplify(*e);
    }
    let p = [1.0, 1.0, 1.0, 1.0, 9.81];
    let (h, n) = (1e-3, 200_000);
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut hand = Vec::new();
    for _ in 0..9 {
        let mut z = [0.5, 0.5, 0.0, 0.0];
        let t = std::time::Instant::now();
        closed_form_rk4(std::hint::black_box(&mut z), std::hint::black_box(9.81), h, n);
        hand.push(t.elapsed().as_nanos() as f64 / n as f64);
        std::hint::black_box(z);
    }
    let hand = median(hand);
    println!("double pendulum RK4, h = 1e-3, {n} steps, median of 9:");
    println!("  hand-written closed form (Rust): {hand:.1} ns/step");
    for (label, spec) in [("as derived", &raw), ("simplified", &simplified)] {
        let start = std::time::Instant::now();
        let c = compile(&a, &[], Some(spec), None).unwrap();
        let compile_ms = start.elapsed().as_secs_f64() * 1e3;
        let rk4 = c.rk4_loop().unwrap();
        let mut jit = Vec::new();
        let mut rows = Vec::new();
        for _ in 0..9 {
            let mut y = [0.5, 0.5, 0.0, 0.0];
            rows.clear();
            let t = std::time::Instant::now();
            rk4.call(0.0, h, n, n / 4, &mut y, &p, &mut rows).unwrap();
            jit.push(t.elapsed().as_nanos() as f64 / n as f64);
            let mut z = [0.5, 0.5, 0.0, 0.0];
            closed_form_rk4(&mut z, 9.81, h, n);
            assert!(y.iter().zip(&z).all(|(a, b)| (a - b).abs() < 1e-8), "{y:?} vs {z:?}");
        }
        let jit = median(jit);
        let ir = c.ir().unwrap();
        println!(
            "  JIT rk4_loop, equations {label}: {jit:.1} ns/step (ratio to hand-written {:.2}); \
             compile {compile_ms:.2} ms, {} CLIF instructions, {} sincos + {} sin/cos calls per RK4 step",
            jit / hand,
            c.instruction_count(),
            count_calls(ir.split("\nfunction ").nth(1).unwrap(), "lagc_sincos"),
            count_calls(ir.split("\nfunction ").nth(1).unwrap(), "lagc_sin")
                + count_calls(ir.split("\nfunction ").nth(1).unwrap(), "lagc_cos"),
        );
    }
}

/// Runs of equal constant outputs are written by loops (a zero table's code
/// does not grow with the table), between and around computed ones, in
/// kernels whole and in parts; every output holds its value.
#[test]
fn runs_of_constant_outputs_are_filled() {
    let mut a = Arena::new();
    let x = a.new_symbol("x", SymKind::State(0));
    let xe = a.sym(x);
    let (zero, one, half) = (a.int(0), a.int(1), a.float(0.5));
    let square = a.mul(&[xe, xe]);
    let mut outputs = vec![zero; 20];
    outputs.push(xe);
    outputs.extend(vec![one; 17]);
    outputs.push(square);
    outputs.extend(vec![zero; 3]);
    outputs.extend(vec![half; 40]);
    // Large enough to be compiled in parts: a chain of terms in x.
    let mut terms = Vec::new();
    for k in 1..5_000 {
        let c = a.int(k);
        let s = a.func(Func::Sin, xe);
        let t = a.mul(&[c, s, xe]);
        let p = a.pow(xe, c);
        let shifted = a.add(&[xe, c]);
        let q = a.func(Func::Cos, shifted);
        terms.push(a.add(&[t, p, q]));
    }
    let big = a.add(&terms);
    for (name, outs) in [("small", outputs.clone()), ("parts", [outputs.clone(), vec![big], vec![zero; 30]].concat())] {
        let k = ExprKernel { name: name.into(), inputs: vec![x], outputs: outs.clone(), batch: None };
        let c = compile(&a, &[k], None, None).unwrap();
        let ir = c.ir().unwrap();
        let x0 = 0.7f64;
        let mut out = vec![f64::NAN; outs.len()];
        c.expr(0).unwrap().call(&[x0], &mut out);
        let mut expected = vec![0.0; 20];
        expected.push(x0);
        expected.extend(vec![1.0; 17]);
        expected.push(x0 * x0);
        expected.extend(vec![0.0; 3]);
        expected.extend(vec![0.5; 40]);
        if name == "parts" {
            assert!(ir.contains("expr_parts_part1"), "compiled in parts");
            let v: f64 = (1..5_000).map(|k| k as f64 * x0.sin() * x0 + x0.powi(k) + (x0 + k as f64).cos()).sum();
            expected.push(v);
            expected.extend(vec![0.0; 30]);
        }
        for (i, (o, e)) in out.iter().zip(&expected).enumerate() {
            assert!((o - e).abs() <= 1e-12 * e.abs().max(1.0), "{name}: output {i}: {o} against {e}");
        }
        // The runs are loops: a store each for x and x² and the three zeros between, and
        // one per fill loop (three, or four with the parts' trailing zeros); the parts add
        // two per partial sum. A store per output would be 82 (and 112 with the parts).
        let stores = ir.matches(" store ").count();
        let most = if name == "parts" { 30 } else { 8 };
        assert!(stores <= most, "{stores} stores: {ir}");
    }
}
